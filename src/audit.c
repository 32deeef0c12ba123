/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The one entry point for audit records: aa_audit_emit() and
 *		aa_audit_wait(), the backend's side of the audit path.
 *
 *		A record is resolved at once (identity, db_role, client and
 *		statement are taken now, in the caller's context: audit_resolve.c)
 *		and encoded by
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
static int	pending_pushed = 0;	/* its first bytes already in the queue */
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

static void audit_xact_callback(XactEvent event, void *arg);
static bool spill_staged(void);
static void stage_slot(void);
static void audit_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);

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
 * Before a session's statement reads a protected row (access_run.c, at
 * each run): a log already agentauth.audit_wait_timeout behind fails it
 * closed at once.  1.1, found by review: with the writer stopped, a
 * statement read and sent 100,000 rows and failed only at its end, when
 * its records were pushed; had the server then crashed, the rows were out
 * and their records gone.
 */
void
aa_audit_check_writer(void)
{
	check_late();
}

/*
 * Push the pending records, in pieces of at most a quarter of the queue.
 * pending_pushed bytes at its start are already in the queue: each piece
 * counts as pushed at once, so that an error or an exit in the middle (a
 * wait for room interrupted by a cancel, a timeout, a terminate) never
 * pushes a piece twice (1.1: the pieces before it were pushed again).
 *
 * With throw = false never raises an error (the caller is already
 * failing, in abort or exit processing): what could not be pushed in time
 * stays, "retained": the session pushes it at its next commit or
 * protected read, which fail closed until it can (aa_audit_push_retained),
 * or as it ends; only what its exit cannot push is lost, with a WARNING
 * in the server log.  1.1 before: an abort dropped them, though a failing
 * statement's rows may already have reached the client.  While records
 * are retained an abort does not wait for room again (1.1: every record of
 * a cancelled statement waited the whole timeout, uninterruptibly).
 */
static bool
push_pending(bool throw, int timeout_ms)
{
	Size		limit = Max(aa_queue_capacity() / 4, MAXIMUM_ALIGNOF);

	if (pending_pushed > 0)
	{
		memmove(pending->data, pending->data + pending_pushed,
				pending->len - pending_pushed);
		pending->len -= pending_pushed;
		pending_pushed = 0;
	}
	while (pending_pushed < pending->len)
	{
		int			off = pending_pushed;
		int			chunk = 0;
		uint64		end;

		/* whole entries, up to limit bytes (at least one entry) */
		while (off + chunk < pending->len)
		{
			AAQueueEntry *e = (AAQueueEntry *) (pending->data + off + chunk);

			if (chunk > 0 && (Size) (chunk + e->len) > limit)
				break;
			chunk += e->len;
		}
		if (!aa_queue_push(pending->data + off, chunk,
						   aa_queue_in_writer() ? 0 : timeout_ms, &end))
		{
			/* keep what was not pushed for a later attempt */
			memmove(pending->data, pending->data + off, pending->len - off);
			pending->len -= off;
			pending_pushed = 0;
			if (throw)
				audit_unavailable("queued");
			if (!proc_exit_inprogress)
			{
				retained = true;
				ereport(WARNING,
						(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						 errmsg("%d bytes of audit records could not be queued yet",
								pending->len),
						 errdetail("The audit queue is full.  This session queues them at its next commit or read of a protected table, which fail until they are queued, or when it ends.")));
				return false;
			}
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("%d bytes of audit records could not be queued and are lost",
							pending->len),
					 errdetail("The audit queue stayed full while the session ended.")));
			resetStringInfo(pending);
			retained = false;
			return false;
		}
		pending_pushed = off + chunk;	/* in the queue: never again */
		pushed_end = Max(pushed_end, end);
		xact_pushed = true;
		/* the statement will wait for them: the writer must not gather */
		if (aa_audit_sync && !aa_queue_in_writer())
			aa_queue_note_sync(end);
	}
	resetStringInfo(pending);
	pending_pushed = 0;
	retained = false;
	return true;
}

/*
 * Push the pending records.  Once a wait has failed in this transaction
 * (its error is on its way to the client), or records are retained, abort
 * processing does not wait a second time for space.
 */
static void
flush_pending(bool throw)
{
	aa_audit_drop_half_written();
	if (pending != NULL && pending->len > pending_pushed)
		push_pending(throw,
					 (!throw && (wait_failed || retained)) ? 0 : aa_audit_wait_timeout);
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

/* the session ends: one last wait for room, retained or not */
static void
audit_exit_callback(int code, Datum arg)
{
	aa_audit_drop_half_written();
	if (pending != NULL && pending->len > pending_pushed)
		push_pending(false, aa_audit_wait_timeout);
}

static void
ensure_buffers(void)
{
	MemoryContext old;

	if (pending != NULL)
		return;
	old = MemoryContextSwitchTo(aa_audit_memory());
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

/*
 * At the first record: the session's pending records are pushed at the
 * backend's exit (registered then, so that a module registering its own
 * exit callback after its first record -- session.c -- runs before it)
 */
static void
register_exit_flush(void)
{
	if (!exit_registered)
	{
		before_shmem_exit(audit_exit_callback, (Datum) 0);
		exit_registered = true;
	}
}

void
aa_audit_emit(const AARecord *rec, bool transactional)
{
	bool		in_xact;

	if (rec == NULL)
		elog(ERROR, "null audit record");
	ensure_buffers();
	register_exit_flush();

	/*
	 * At backend exit the transaction may still be open (the exit callbacks
	 * run before it is aborted): nothing may raise an error there.
	 */
	in_xact = IsTransactionState() && !proc_exit_inprogress;
	if (in_xact && !aa_queue_in_writer())
		aa_audit_check_database();

	if (!transactional)
	{
		aa_audit_serialize(pending, rec, InvalidTransactionId, true);
		if (pending->len - pending_pushed >= FLUSH_THRESHOLD && (in_xact || !retained))
		{
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
	aa_audit_serialize(staged, rec, GetTopTransactionId(), false);
}

/*
 * Before records that must be in the log iff the change they tell of is
 * made (a session begun, replaced or ended: session.c): whatever would
 * refuse them refuses now, before any of them is kept -- the database, the
 * queue (the pending records pushed: 53000 when it has no room in time), a
 * late writer (53000) -- and aa_audit_emit_held() then only adds them to
 * the pending records, pushed with the statement's.  1.1, found by review
 * (r34): the 64 kB flush inside the emission of a session's end queued the
 * record, then failed on a late writer, and the session read on under it.
 */
void
aa_audit_ready(void)
{
	ensure_buffers();
	if (!IsTransactionState() || proc_exit_inprogress || aa_queue_in_writer())
		return;
	aa_audit_check_database();
	if (pending->len > pending_pushed)
		flush_pending(true);
	check_late();
}

/*
 * The record of a session's end (session.c): queued at once, after the
 * records before it, waited for here (audit_sync) without failing, and
 * not waited for again at the commit --
 * a session ends whatever the audit does, and its end is not undone (a
 * late writer kept a pooled agent's session on: 1.1, found by review,
 * r35).  A queue with no room keeps it with the session's pending records,
 * with a WARNING, and the commit's push of them then waits and may fail
 * (r36: the end is then undone, recorded; README says so), as does the
 * commit of the overrides' transactional end records.  Records queued
 * before it are waited for as before.
 */
void
aa_audit_emit_unwaited(const AARecord *rec)
{
	bool		earlier;
	bool		was_pushed;
	uint64		was_end;

	ensure_buffers();
	register_exit_flush();
	earlier = pending->len > pending_pushed;
	was_pushed = xact_pushed;
	was_end = pushed_end;
	aa_audit_serialize(pending, rec, InvalidTransactionId, true);
	/* waited for here, as audit_sync asks, but never failing */
	if (push_pending(false, 0) && aa_audit_sync && !aa_queue_in_writer())
	{
		AAQueueLate late;

		if (aa_audit_late(&late) ||
			!aa_queue_wait_committed(pushed_end, aa_audit_wait_timeout))
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("the audit record of this session's end is not yet written"),
					 errdetail("The session has ended; the audit writer will write the record when it resumes.")));
	}
	if (!earlier)
	{
		xact_pushed = was_pushed;
		pushed_end = was_end;
	}
}

void
aa_audit_emit_held(const AARecord *rec)
{
	ensure_buffers();
	register_exit_flush();
	aa_audit_serialize(pending, rec, InvalidTransactionId, true);
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

/*
 * The spill mover: stage a queued entry as this transaction's own record,
 * marked with the key of the row it came from (the writer deletes the row)
 */
void
aa_audit_stage_entry(const char *entry, Size len, int64 spill_txn, int64 spill_ord)
{
	AAQueueEntry *e;

	ensure_buffers();
	is_mover = true;
	stage_slot();
	appendBinaryStringInfo(staged, entry, len);
	e = (AAQueueEntry *) (staged->data + staged_off[nstaged - 1]);
	e->xid = GetTopTransactionId();
	e->spill_txn = spill_txn;
	e->spill_ord = spill_ord;
}

/* room for one more staged record, which starts at staged->len */
static void
stage_slot(void)
{
	if (nstaged == staged_cap)
	{
		int			newcap = Max(16, staged_cap * 2);
		MemoryContext old = MemoryContextSwitchTo(aa_audit_memory());

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
				/*
				 * At the backend's exit (the overrides a session ends as it
				 * goes: session.c) they are spilled however few: the
				 * writer may be gone by the commit -- a server stopping --
				 * and the queue with it, whereas the spill is committed
				 * with the change (1.1, found by review: an override ended
				 * at a fast shutdown had no break_glass_end in the log).
				 */
				if ((xact_spilled || proc_exit_inprogress ||
					 (Size) staged->len > aa_spill_threshold()) && spill_staged())
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
	if (event == SUBXACT_EVENT_ABORT_SUB)
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
