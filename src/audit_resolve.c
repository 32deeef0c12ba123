/*-------------------------------------------------------------------------
 *
 * audit_resolve.c
 *		A record resolved and encoded as one queue entry: who (the acting
 *		session, the session user), from where (the client), which
 *		statement -- taken at once, in the caller's context -- and
 *		record.c's encoding of it, appended to one of audit.c's buffers.
 *		Split from audit.c, which collects, pushes and waits.
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
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "agentauth.h"

/* the audit module's long-lived memory (audit.c's buffers too) */
MemoryContext
aa_audit_memory(void)
{
	static MemoryContext cxt = NULL;

	if (cxt == NULL)
		cxt = AllocSetContextCreate(TopMemoryContext, "agentauth audit",
									ALLOCSET_SMALL_SIZES);
	return cxt;
}

/* cached values that need catalog access */
static Oid	cached_role = InvalidOid;
static char *cached_role_name = NULL;
static TimestampTz cached_stmt_start = 0;
static uint64 cached_query_id = 0;
static const char *cached_query_ptr = NULL;
static char cached_statement[128];


/* ------------------------------------------------------------------
 * Resolving a record: who, from where, which statement
 * ------------------------------------------------------------------
 */

/*
 * The session user's name.  Outside a transaction (a disconnect's
 * session_end) the catalog cannot be read: a role not seen before, as
 * after RESET SESSION AUTHORIZATION, is named by the session_authorization
 * setting, which holds the name it was set by (or the login's), and is
 * not kept: the catalog's name replaces it in the next transaction.  A
 * role renamed while the backend runs is named by its new name from the
 * next record made in a transaction (the name was kept for the backend's
 * life: its records named the role that took the old name).
 */
static bool role_name_stale = false;

/* a role was renamed, made or dropped: read the name again (1.1, found by review) */
static void
forget_role_name(Datum arg, int cacheid, uint32 hashvalue)
{
	role_name_stale = true;
}

static const char *
session_user_name(void)
{
	Oid			role = GetSessionUserId();
	static bool callback_registered = false;

	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(AUTHOID, forget_role_name, (Datum) 0);
		callback_registered = true;
	}
	if (role != cached_role || cached_role_name == NULL ||
		(role_name_stale && IsTransactionState()))
	{
		char	   *name = NULL;
		char	   *copy;

		if (!IsTransactionState())
		{
			const char *set = GetConfigOption("session_authorization", true, false);

			return (set && set[0] != '\0') ? set : psprintf("%u", role);
		}
		name = GetUserNameFromId(role, true);
		if (name == NULL)
			name = psprintf("%u", role);
		/* the old one freed only once the new one is there */
		copy = MemoryContextStrdup(aa_audit_memory(), name);
		if (cached_role_name)
			pfree(cached_role_name);
		cached_role_name = copy;
		cached_role = role;
		role_name_stale = false;
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
			addr = MemoryContextStrdup(aa_audit_memory(),
									   MyBackendType == B_BG_WORKER ? "background worker" : "local");
		else
			addr = MemoryContextStrdup(aa_audit_memory(),
									   DatumGetCString(DirectFunctionCall1(inet_out, d)));
	}
	appendStringInfo(out, "address=%s application_name=", addr);

	/*
	 * The name is the client's: its blanks, '=' and backslashes are escaped, so
	 * that no name reads as a field of the text -- a primary's client named
	 * "psql standby=replica1" read as a standby's forwarded record
	 * (forward_sql.c appends " standby=<name>").
	 */
	for (const char *c = application_name ? application_name : ""; *c; c++)
	{
		if (*c == ' ' || *c == '=' || *c == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *c);
	}
}

/*
 * The session acting, whose identity a record carries unless it names its
 * own: session.c, a phase above this one, says where it keeps it.
 */
static AASession *const *acting_session = NULL;

/*
 * The entry being written into a buffer, until it is whole: an error part
 * way (out of memory, a buffer past 1 GB) would leave a header whose
 * length is still zero, which the push would step over forever.
 * Dropped before the buffer is used again.
 */
static StringInfo half_written = NULL;
static int	half_written_at = 0;

void
aa_audit_drop_half_written(void)
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
void
aa_audit_serialize(StringInfo out, const AARecord *rec, TransactionId xid,
				   bool trim_on_error)
{
	AARecordFields f;
	int			start = out->len;
	bool		session_token = false;
	MemoryContext old;
	static MemoryContext scratch = NULL;
	static StringInfo client = NULL;

	if (rec->event == NULL || rec->event[0] == '\0')
		elog(ERROR, "audit record without an event");
	aa_audit_drop_half_written();
	if (scratch == NULL)
	{
		/* scratch, tested above, last: both are there once it is */
		old = MemoryContextSwitchTo(aa_audit_memory());
		client = makeStringInfo();
		MemoryContextSwitchTo(old);
		scratch = AllocSetContextCreate(aa_audit_memory(), "agentauth audit record",
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
														   aa_audit_memory());
		if (f.authority)
		{
			f.authority_text = authority_cache.canon.data;
			f.authority_text_len = authority_cache.canon.len;
		}
	}
	f.detail = (struct varlena *) aa_jsonb_text_cached(&detail_cache, rec->detail,
														 aa_audit_memory());
	if (f.detail)
	{
		f.detail_text = detail_cache.canon.data;
		f.detail_text_len = detail_cache.canon.len;
	}

	/*
	 * identity: the session's, unless the record names its own.  A record
	 * about another principal (a token issued or delegated to it, its
	 * status changed, in a session) takes nothing else of the session: its
	 * name, token and purpose are the session's principal's, not its own
	 * (1.1: the record named the issuing session's principal).
	 */
	if (acting_session != NULL && *acting_session != NULL &&
		(f.principal == NULL ||
		 memcmp(f.principal->data, (*acting_session)->principal.data, UUID_LEN) == 0))
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
	if (trim_on_error)			/* staged: an abort trims it (audit.c) */
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
		aa_audit_drop_half_written();
		/* in an abort or an exit no error may be raised: the record goes */
		ereport(IsTransactionState() && !proc_exit_inprogress ? ERROR : WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("audit record is too large"),
				 errdetail("A record may take at most a quarter of agentauth.audit_queue_size.")));
	}
	half_written = NULL;		/* whole */
}
