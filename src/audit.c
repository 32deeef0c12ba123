/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The one entry point for audit records: aa_audit_emit() and
 *		aa_audit_wait(), the backend's side of the audit path.
 *
 *		A record is resolved at once (identity, db_role, client and
 *		statement are taken now, in the caller's context) and encoded by
 *		record.c into its queued form: the record's canonical body, fields
 *		event..detail encoded exactly as the chain hashes them, and the
 *		binary jsonb of authority and detail for the writer to store.  The
 *		writer (audit_writer.c) adds seq and logged_at.
 *
 *		Non-transactional records (accesses, denials, session events) are
 *		collected in backend memory and pushed to the queue in one lock
 *		round by aa_audit_wait(), when 64 kB have gathered, before commit,
 *		on abort and at backend exit: whatever becomes of the caller's
 *		transaction, they reach the queue.  aa_audit_wait() then waits,
 *		when agentauth.audit_sync is on, until the writer has committed
 *		them, and fails closed after agentauth.audit_wait_timeout.
 *
 *		Transactional records (administrative events) are staged per
 *		subtransaction level: a rolled-back subtransaction drops its own.
 *		At PRE_COMMIT they are pushed tagged with the top-level xid; the
 *		writer stores them once that xid is known committed and drops them
 *		if it aborted.  After COMMIT the backend waits for them (logging a
 *		warning on timeout: no error is possible there), so they are
 *		visible when the committing statement returns.  A transaction with
 *		more than the queue takes spills them into a table instead
 *		(audit_spill.c), which a worker moves into the queue after commit.
 *
 *		Each queue entry's header also says which statement it belongs to
 *		(aa_audit_new_statement: the caller's, or one of its own), for the
 *		alert rules, which count statements; the record does not carry it.
 *
 *		The bounds -- when a statement fails closed instead of leaving
 *		records the writer may never store -- are audit_bounds.c's: the
 *		database (at each record), how late the writer is (after each push:
 *		aa_audit_wait(), every 64 kB, and at PRE_COMMIT of a transaction with
 *		records, where with audit_sync on its non-transactional records are
 *		waited for too, before the transactional ones are pushed: those can
 *		only be written after the commit, which happens only while the
 *		writer writes).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "postmaster/bgworker.h"
#include "utils/backend_status.h"

#include "agentauth.h"

#define FLUSH_THRESHOLD		(64 * 1024)

/* records not yet in the queue, and where this backend's last push ended */
static StringInfo pending = NULL;
static uint64 pushed_end = 0;

/* transactional records of the current transaction */
static StringInfo staged = NULL;
static int	nstaged = 0;
static int	staged_cap = 0;
static int *staged_level = NULL;	/* subtransaction level of each */
static int *staged_off = NULL;	/* offset of each in staged->data */
static uint64 txn_end = 0;		/* end of this transaction's push */
static bool xact_spilled = false;	/* records went to _audit_spill */
static bool is_mover = false;	/* the spill mover: never spills */

static bool wait_failed = false;	/* in this transaction */
static bool commit_unwritten = false;	/* the last COMMIT's records not yet written */
static bool xact_pushed = false;	/* records pushed in this transaction */
static bool retained = false;	/* pending: records an abort could not push */
static bool callbacks_registered = false;
static bool exit_registered = false;

/* cached values that need catalog access */
static Oid	cached_role = InvalidOid;
static char *cached_role_name = NULL;
static TimestampTz cached_stmt_start = 0;
static uint64 cached_query_id = 0;
static const char *cached_query_ptr = NULL;
static char cached_statement[128];

static void audit_xact_callback(XactEvent event, void *arg);
static bool push_pieces(StringInfo buf, bool throw, int timeout_ms, Size limit,
						int *offp);
static bool spill_staged(void);
static void stage_slot(void);
static void audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

static MemoryContext
audit_context(void)
{
	static MemoryContext cxt = NULL;

	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "agentauth audit",
									ALLOCSET_SMALL_SIZES);
	return cxt;
}

void
aa_audit_init(void)
{
	BackgroundWorker worker;

	aa_shmem_register(aa_queue_shmem_size, aa_queue_shmem_startup);
	aa_spill_init();
	RegisterXactCallback(audit_xact_callback, NULL);
	RegisterSubXactCallback(audit_subxact_callback, NULL);
	callbacks_registered = true;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "agentauth");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aa_audit_writer_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "agentauth audit writer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "agentauth audit writer");
	RegisterBackgroundWorker(&worker);
}

/* ------------------------------------------------------------------
 * Resolving a record: who, from where, which statement
 * ------------------------------------------------------------------
 */

static const char *
session_user_name(void)
{
	Oid			role = GetSessionUserId();

	if (role != cached_role || cached_role_name == NULL)
	{
		char	   *name = NULL;
		char	   *copy;

		if (IsTransactionState())
			name = GetUserNameFromId(role, true);
		if (name == NULL)
			name = psprintf("%u", role);
		/* the old one freed only once the new one is there */
		copy = MemoryContextStrdup(audit_context(), name);
		if (cached_role_name)
			pfree(cached_role_name);
		cached_role_name = copy;
		cached_role = role;
	}
	return cached_role_name;
}

/* "pid=N query_id=Q", or "pid=N statement_hash=H" without a query id */
static const char *
statement_text(void)
{
	uint64		qid = pgstat_get_my_query_id();
	TimestampTz st = GetCurrentStatementStartTimestamp();

	if (cached_statement[0] != '\0' && st == cached_stmt_start &&
		qid == cached_query_id && debug_query_string == cached_query_ptr)
		return cached_statement;

	if (qid != 0)
		snprintf(cached_statement, sizeof(cached_statement),
				 "pid=%d query_id=" INT64_FORMAT, MyProcPid, (int64) qid);
	else if (debug_query_string != NULL)
		snprintf(cached_statement, sizeof(cached_statement),
				 "pid=%d statement_hash=%016llx", MyProcPid,
				 (unsigned long long) hash_bytes_extended((const unsigned char *) debug_query_string,
														  strlen(debug_query_string), 0));
	else
		snprintf(cached_statement, sizeof(cached_statement), "pid=%d", MyProcPid);
	cached_stmt_start = st;
	cached_query_id = qid;
	cached_query_ptr = debug_query_string;
	return cached_statement;
}

/*
 * The pid in the high half, a counter in the low half: unique among the
 * live backends, and a backend that reuses an earlier one's pid starts its
 * counter elsewhere (from its start time), never 0.
 */
uint64
aa_audit_new_statement(void)
{
	static uint32 counter = 0;
	static bool started = false;

	if (!started)
	{
		counter = (uint32) (MyStartTimestamp ^ (MyStartTimestamp >> 32));
		started = true;
	}
	if (++counter == 0)
		counter = 1;
	return ((uint64) (uint32) MyProcPid << 32) | counter;
}

/* "address=A application_name=N"; A is "local" for a Unix socket */
static void
client_text(StringInfo out)
{
	static char *addr = NULL;

	if (addr == NULL)
	{
		LOCAL_FCINFO(fcinfo, 0);
		Datum		d;

		InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
		d = inet_client_addr(fcinfo);
		if (fcinfo->isnull)
			addr = MemoryContextStrdup(audit_context(),
									   MyBackendType == B_BG_WORKER ? "background worker" : "local");
		else
			addr = MemoryContextStrdup(audit_context(),
									   DatumGetCString(DirectFunctionCall1(inet_out, d)));
	}
	appendStringInfo(out, "address=%s application_name=%s", addr,
					 application_name ? application_name : "");
}

/*
 * The session acting, whose identity a record carries unless it names its
 * own: session.c, a phase above this one, says where it keeps it.
 */
static AASession *const *acting_session = NULL;

/*
 * The entry being written into a buffer, until it is whole: an error part
 * way (out of memory, a buffer past 1 GB) would leave a header whose
 * length is still zero, which push_entries() would step over forever.
 * Dropped before the buffer is used again.
 */
static StringInfo half_written = NULL;
static int	half_written_at = 0;

static void
drop_half_written(void)
{
	if (half_written != NULL && half_written_at <= half_written->len)
	{
		half_written->len = half_written_at;
		half_written->data[half_written_at] = '\0';
	}
	half_written = NULL;
}

void
aa_audit_set_session_source(AASession *const *session)
{
	acting_session = session;
}

/* the last authority and detail: a statement's records usually share them */
static AAJsonbCache authority_cache;
static AAJsonbCache detail_cache;

/*
 * Resolve rec (identity, db_role, statement, client) and append it as one
 * queue entry to out.
 */
static void
serialize_record(StringInfo out, const AARecord *rec, TransactionId xid)
{
	AARecordFields f;
	int			start = out->len;
	bool		session_token = false;
	MemoryContext old;
	static MemoryContext scratch = NULL;
	static StringInfo client = NULL;

	if (rec->event == NULL || rec->event[0] == '\0')
		elog(ERROR, "audit record without an event");
	drop_half_written();
	if (scratch == NULL)
	{
		/* scratch, tested above, last: both are there once it is */
		old = MemoryContextSwitchTo(audit_context());
		client = makeStringInfo();
		MemoryContextSwitchTo(old);
		scratch = AllocSetContextCreate(audit_context(), "agentauth audit record",
										ALLOCSET_DEFAULT_SIZES);
	}
	MemoryContextReset(scratch);

	memset(&f, 0, sizeof(f));
	f.event = rec->event;
	f.principal = rec->principal;
	f.principal_name = rec->principal_name;
	f.token = rec->token;
	f.purpose = rec->purpose;
	f.patient = rec->patient;
	f.relation = rec->relation;
	f.ncolumns = rec->ncolumns;
	f.columns = rec->columns;
	f.nclasses = rec->nclasses;
	f.classes = rec->classes;
	f.action = rec->action;
	f.row_count = rec->row_count;
	f.outcome = rec->outcome;

	/*
	 * The patient goes into the log's patient index, whose entries have a
	 * size limit: a record the writer cannot store would stop it, and with
	 * it every audited statement.  Refuse it here, in the statement that
	 * produced it; during abort processing, where no error may be raised,
	 * keep its beginning, marked.
	 */
	if (rec->patient != NULL && strlen(rec->patient) > AA_AUDIT_MAX_PATIENT)
	{
		if (IsTransactionState())
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("patient id is too long to be audited"),
					 errdetail("It has %zu bytes; the audit log takes at most %d.",
							   strlen(rec->patient), AA_AUDIT_MAX_PATIENT)));
		else
		{
			char	   *cut = MemoryContextAlloc(scratch, AA_AUDIT_MAX_PATIENT + 16);
			int			n = pg_mbcliplen(rec->patient, strlen(rec->patient),
										 AA_AUDIT_MAX_PATIENT);

			memcpy(cut, rec->patient, n);
			strcpy(cut + n, "...(truncated)");
			f.patient = cut;
		}
	}

	/* what can fail (malformed JSON) first: then nothing is half written */
	if (rec->authority != NULL && rec->authority_canon != NULL)
	{
		/* a kept decision's: its canonical text made once */
		f.authority = (const struct varlena *) rec->authority;
		f.authority_text = rec->authority_canon;
		f.authority_text_len = rec->authority_canon_len;
	}
	else
	{
		f.authority = (struct varlena *) aa_jsonb_cached(&authority_cache, rec->authority,
														   audit_context());
		if (f.authority)
		{
			f.authority_text = authority_cache.canon.data;
			f.authority_text_len = authority_cache.canon.len;
		}
	}
	f.detail = (struct varlena *) aa_jsonb_text_cached(&detail_cache, rec->detail,
														 audit_context());
	if (f.detail)
	{
		f.detail_text = detail_cache.canon.data;
		f.detail_text_len = detail_cache.canon.len;
	}

	/* identity: the session's, unless the record names its own */
	if (acting_session != NULL && *acting_session != NULL)
	{
		const AASession *session = *acting_session;

		if (f.principal == NULL)
			f.principal = &session->principal;
		if (f.principal_name == NULL)
			f.principal_name = session->name;
		if (f.token == NULL && session->has_token)
			f.token = &session->token;
		if (f.purpose == NULL)
			f.purpose = session->purpose;
		session_token = session->has_token && f.token != NULL &&
			memcmp(f.token->data, session->token.data, UUID_LEN) == 0;
		if (session_token || (!session->has_token && rec->token == NULL))
			f.on_behalf_of = session->on_behalf_of;
		if (session_token)
		{
			f.nchain = session->nchain;
			f.chain = session->chain;
		}
	}
	resetStringInfo(client);
	client_text(client);
	f.client = client->data;
	f.client_len = client->len;

	old = MemoryContextSwitchTo(scratch);
	f.db_role = session_user_name();
	f.statement = statement_text();
	if (out == pending)			/* staged: an abort trims it (below) */
	{
		half_written = out;
		half_written_at = start;
	}
	aa_record_encode(out, &f, xid);
	MemoryContextSwitchTo(old);

	/* for the alert rules: which statement (not part of the record) */
	{
		uint64		stmt = rec->statement ? rec->statement : aa_audit_new_statement();

		memcpy(out->data + start + offsetof(AAQueueEntry, statement), &stmt,
			   sizeof(stmt));
	}

	if ((Size) (out->len - start) > aa_queue_capacity() / 4)
	{
		drop_half_written();
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("audit record is too large"),
				 errdetail("A record may take at most a quarter of agentauth.audit_queue_size.")));
	}
	half_written = NULL;		/* whole */
}

/* ------------------------------------------------------------------
 * Pushing and waiting
 * ------------------------------------------------------------------
 */

/* the statement fails closed; its records are already queued (kept) */
static void
audit_unavailable(const char *what)
{
	wait_failed = true;
	aa_audit_fail_closed(what, NULL);
}

/* fail closed when the log is agentauth.audit_wait_timeout behind */
static void
check_late(void)
{
	AAQueueLate late;

	if (!aa_queue_in_writer() && aa_audit_late(&late))
	{
		wait_failed = true;
		aa_audit_fail_closed("committed", &late);
	}
}

/*
 * Push len bytes of whole entries from buf, in pieces of at most a quarter
 * of the queue.  With throw = false never raises an error (the caller is
 * already failing, in abort or exit processing): what could not be pushed
 * in time stays in buf, and the session pushes it before it reads a
 * protected table again (aa_audit_push_retained) or as it ends; only what
 * its exit cannot push is lost, with a WARNING in the server log.  1.1
 * before: an abort dropped them, though a failing statement's rows may
 * already have reached the client.
 */
static bool
push_entries(StringInfo buf, bool throw, int timeout_ms)
{
	Size		limit = Max(aa_queue_capacity() / 4, MAXIMUM_ALIGNOF);
	volatile int off = 0;
	bool		ok;

	/*
	 * A wait for room can be interrupted (a cancel, a timeout, a
	 * terminate): the pieces pushed before it leave the buffer, which the
	 * abort pushes again (1.1: pushed twice).
	 */
	PG_TRY();
	{
		ok = push_pieces(buf, throw, timeout_ms, limit, (int *) &off);
	}
	PG_CATCH();
	{
		if (off > 0 && off <= buf->len)
		{
			memmove(buf->data, buf->data + off, buf->len - off);
			buf->len -= off;
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	return ok;
}

static bool
push_pieces(StringInfo buf, bool throw, int timeout_ms, Size limit, int *offp)
{
	int			off = 0;

	while (off < buf->len)
	{
		int			chunk = 0;
		uint64		end;

		/* whole entries, up to limit bytes (at least one entry) */
		while (off + chunk < buf->len)
		{
			AAQueueEntry *e = (AAQueueEntry *) (buf->data + off + chunk);

			if (chunk > 0 && (Size) (chunk + e->len) > limit)
				break;
			chunk += e->len;
		}
		if (!aa_queue_push(buf->data + off, chunk,
						   aa_queue_in_writer() ? 0 : timeout_ms, &end))
		{
			/* keep what was not pushed for a later attempt */
			memmove(buf->data, buf->data + off, buf->len - off);
			buf->len -= off;
			*offp = 0;
			if (throw)
				audit_unavailable("queued");

			/*
			 * No second wait in this abort: each record emitted after this
			 * one would otherwise wait the whole timeout again (1.1: a
			 * statement cancelled while its records waited for room took
			 * minutes to abort, uninterruptibly).  A subtransaction's abort
			 * leaves the transaction's waits alone; emits skip the push
			 * while records are retained (aa_audit_emit).
			 */
			if (GetCurrentTransactionNestLevel() <= 1)
				wait_failed = true;
			if (!proc_exit_inprogress)
			{
				retained = true;
				ereport(WARNING,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("%d bytes of audit records could not be queued yet",
								buf->len),
						 errdetail("The audit queue is full.  This session queues them before it reads a protected table again, or when it ends.")));
				return false;
			}
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("%d bytes of audit records could not be queued and are lost",
							buf->len),
					 errdetail("The audit queue stayed full while the session ended.")));
			resetStringInfo(buf);
			retained = false;
			return false;
		}
		pushed_end = Max(pushed_end, end);
		xact_pushed = true;
		off += chunk;
		*offp = off;
		/* the statement will wait for them: the writer must not gather */
		if (aa_audit_sync && !aa_queue_in_writer())
			aa_queue_note_sync(end);
	}
	resetStringInfo(buf);
	*offp = 0;
	retained = false;
	return true;
}

/*
 * Push the pending records.  Once a wait has failed in this transaction
 * (its error is on its way to the client), abort processing does not wait
 * a second time for space.
 */
static void
flush_pending(bool throw)
{
	drop_half_written();
	if (pending != NULL && pending->len > 0)
		push_entries(pending, throw,
					 (!throw && wait_failed) ? 0 : aa_audit_wait_timeout);
}

/*
 * Before a statement reads a protected table: records an earlier abort
 * could not push go first, or the read fails closed (53000) -- no row
 * leaves while this session holds records it could not queue.
 */
void
aa_audit_push_retained(void)
{
	if (!retained)
		return;
	flush_pending(true);
	check_late();
}

static void
audit_exit_callback(int code, Datum arg)
{
	flush_pending(false);
}

static void
ensure_buffers(void)
{
	MemoryContext old;

	if (pending != NULL)
		return;
	old = MemoryContextSwitchTo(audit_context());
	if (staged == NULL)
		staged = makeStringInfo();
	pending = makeStringInfo();	/* tested above: last */
	MemoryContextSwitchTo(old);
	if (!callbacks_registered)
	{
		RegisterXactCallback(audit_xact_callback, NULL);
		RegisterSubXactCallback(audit_subxact_callback, NULL);
		callbacks_registered = true;
	}
}

void
aa_audit_emit(const AARecord *rec, bool transactional)
{
	if (rec == NULL)
		elog(ERROR, "null audit record");
	ensure_buffers();
	if (!exit_registered)
	{
		before_shmem_exit(audit_exit_callback, (Datum) 0);
		exit_registered = true;
	}

	if (IsTransactionState() && !aa_queue_in_writer())
		aa_audit_check_database();

	if (!transactional)
	{
		serialize_record(pending, rec, InvalidTransactionId);
		if (pending->len >= FLUSH_THRESHOLD && !(retained && !IsTransactionState()))
		{
			bool		in_xact = IsTransactionState();

			flush_pending(in_xact);
			if (in_xact)
				check_late();
		}
		return;
	}

	if (!IsTransactionState())
		elog(ERROR, "transactional audit record outside a transaction");
	/* a large transaction, at its top level: spilled (bounded memory) */
	if ((Size) staged->len >= aa_spill_threshold() && GetCurrentTransactionNestLevel() == 1)
		(void) spill_staged();
	stage_slot();
	serialize_record(staged, rec, GetTopTransactionId());
}

/*
 * The spill mover: whether the records of the transaction it last committed
 * were not yet written when COMMIT returned (its wait timed out).
 */
bool
aa_audit_commit_unwritten(void)
{
	return commit_unwritten;
}

/* the spill mover: stage a queued entry as this transaction's own record */
void
aa_audit_stage_entry(const char *entry, Size len)
{
	ensure_buffers();
	is_mover = true;
	stage_slot();
	appendBinaryStringInfo(staged, entry, len);
	((AAQueueEntry *) (staged->data + staged_off[nstaged - 1]))->xid = GetTopTransactionId();
}

/* room for one more staged record, which starts at staged->len */
static void
stage_slot(void)
{
	if (nstaged == staged_cap)
	{
		int			newcap = Max(16, staged_cap * 2);
		MemoryContext old = MemoryContextSwitchTo(audit_context());

		/* each array kept valid: a failed repalloc leaves the old one */
		if (staged_off == NULL)
			staged_off = palloc(newcap * sizeof(int));
		else
			staged_off = repalloc(staged_off, newcap * sizeof(int));
		if (staged_level == NULL)
			staged_level = palloc(newcap * sizeof(int));
		else
			staged_level = repalloc(staged_level, newcap * sizeof(int));
		staged_cap = newcap;
		MemoryContextSwitchTo(old);
	}
	staged_off[nstaged] = staged->len;
	staged_level[nstaged] = GetCurrentTransactionNestLevel();
	nstaged++;
}

/*
 * A record about a whole statement (no patient, no row count): refusals,
 * privileged accesses and administrative events decided before or without
 * reading rows.  detail is jsonb text or NULL.
 */
void
aa_audit_statement(const char *event, const char *outcome, const char *relname,
				   const char *action, int ncols, const char **cols,
				   const char *detail, bool transactional)
{
	AARecord	rec;

	memset(&rec, 0, sizeof(rec));
	rec.event = event;
	rec.outcome = outcome;
	rec.relation = relname;
	rec.action = action;
	rec.ncolumns = ncols;
	rec.columns = cols;
	rec.row_count = -1;
	rec.detail = detail;
	aa_audit_emit(&rec, transactional);
}

void
aa_audit_wait(void)
{
	if (pending == NULL)
		return;
	flush_pending(true);
	if (aa_queue_in_writer())
		return;
	check_late();
	if (!aa_audit_sync || pushed_end == 0)
		return;
	if (!aa_queue_wait_committed(pushed_end, aa_audit_wait_timeout))
		audit_unavailable("committed");
}

static void
reset_staged(void)
{
	if (staged)
		resetStringInfo(staged);
	nstaged = 0;
}

/* the staged records into agentauth._audit_spill (audit_spill.c), if it is there */
static bool
spill_staged(void)
{
	if (aa_queue_in_writer() || is_mover || !aa_spill_write(staged->data, staged->len))
		return false;
	xact_spilled = true;
	reset_staged();
	return true;
}

static void
audit_xact_callback(XactEvent event, void *arg)
{
	if (pending == NULL)
		return;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			flush_pending(true);
			if ((xact_pushed || nstaged > 0) && !aa_queue_in_writer())
			{
				/*
				 * Commit only while the writer writes: the transactional
				 * records can be stored only after the commit, and must not
				 * be left to a writer known unable to store them.  The
				 * other records, already queued, are waited for here
				 * (audit_sync): a failure can still refuse the commit.
				 */
				check_late();
				if (aa_audit_sync && pushed_end > 0 &&
					!aa_queue_wait_committed(pushed_end, aa_audit_wait_timeout))
					audit_unavailable("committed");
			}
			if (nstaged > 0)
			{
				uint64		end;

				/*
				 * All of the transaction's records in one piece, or none
				 * (then the transaction aborts): the writer stops at the
				 * first of them until we commit, so a part could never be
				 * followed by the rest.
				 */
				if ((xact_spilled || (Size) staged->len > aa_spill_threshold()) && spill_staged())
					break;		/* the spill mover queues them after the commit */
				if ((Size) staged->len > aa_queue_capacity())
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("too many administrative audit records in one transaction"),
							 errdetail("Their %d bytes do not fit in agentauth.audit_queue_size.",
									   staged->len),
							 errhint("Make the change in smaller transactions.")));
				if (!aa_queue_push(staged->data, staged->len,
								   aa_queue_in_writer() ? 0 : aa_audit_wait_timeout,
								   &end))
					audit_unavailable("queued");
				txn_end = end;
				reset_staged();
			}
			break;
		case XACT_EVENT_PRE_PREPARE:
			if (nstaged > 0 || xact_spilled)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that changed agentauth state"),
						 errdetail("Its audit records are written only when it commits.")));
			flush_pending(true);
			break;
		case XACT_EVENT_COMMIT:
			/* records of a committed transaction: visible on return */
			if (txn_end > 0)
				aa_queue_wake_writer();
			commit_unwritten = false;
			if (aa_audit_sync && (txn_end > 0 || pushed_end > 0) && !wait_failed &&
				!aa_queue_in_writer())
			{
				commit_unwritten = !aa_queue_wait_committed(Max(txn_end, pushed_end),
															aa_audit_wait_timeout);
				if (commit_unwritten)
					ereport(WARNING,
							(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
							 errmsg("the audit records of this transaction are not yet written"),
							 errdetail("The transaction committed; the audit writer will write its records when it resumes.")));
			}
			if (xact_spilled)
				aa_spill_committed();
			txn_end = 0;
			wait_failed = false;
			xact_pushed = false;
			xact_spilled = false;
			break;
		case XACT_EVENT_ABORT:
			reset_staged();
			flush_pending(false);
			if (txn_end > 0)
				aa_queue_wake_writer();		/* it may be waiting on our xid */
			txn_end = 0;
			/* make the failed statement's records visible, unless waiting failed */
			if (aa_audit_sync && pushed_end > 0 && !wait_failed && !aa_queue_in_writer())
				(void) aa_queue_wait_committed(pushed_end, aa_audit_wait_timeout);
			wait_failed = false;
			xact_pushed = false;
			xact_spilled = false;
			break;
		case XACT_EVENT_PREPARE:
			reset_staged();
			txn_end = 0;
			xact_pushed = false;
			break;
		default:
			break;
	}
}

static void
audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	int			level;

	/*
	 * What the aborted subtransaction's statements read (access_run.c
	 * emitted it just before) reaches the queue now, not at the
	 * transaction's end.
	 */
	if (event == SUBXACT_EVENT_ABORT_SUB && pending != NULL && pending->len > 0)
		flush_pending(false);
	if (pending == NULL || nstaged == 0)
		return;
	level = GetCurrentTransactionNestLevel();
	switch (event)
	{
		case SUBXACT_EVENT_ABORT_SUB:
			while (nstaged > 0 && staged_level[nstaged - 1] >= level)
			{
				nstaged--;
				staged->len = staged_off[nstaged];
			}
			break;
		case SUBXACT_EVENT_COMMIT_SUB:
			for (int i = nstaged - 1; i >= 0 && staged_level[i] >= level; i--)
				staged_level[i] = level - 1;
			break;
		default:
			break;
	}
}
