/*-------------------------------------------------------------------------
 *
 * session.c
 *		The backend's agentauth session: begin, end, whoami, and the per-row
 *		validity check with its revalidation.
 *
 *		The session lives only here, in C memory (a context of its own under
 *		TopMemoryContext), never in a setting a client can SET.
 *
 *		Transactions.  Beginning, replacing or ending a session takes effect
 *		at once, and is undone when the (sub)transaction that did it aborts:
 *		each change pushes the state it replaced onto a stack tagged with
 *		the subtransaction; a subtransaction abort restores the state from
 *		before its first change, a commit drops what was replaced.  A
 *		transaction_only session ends when its transaction does.
 *
 *		Revocation (SPEC 4.4).  The session remembers the generation counter
 *		it was validated at.  aa_session_check() compares it with the shared
 *		counter, and checks a flag that the token's expiry timer sets
 *		(a USER_TIMEOUT armed at expires_at), so the per-row cost is an
 *		atomic read and two compares.  When either moved, it revalidates with
 *		one query on the latest snapshot -- not the statement's or the
 *		transaction's, so an open cursor, a prepared statement or a
 *		REPEATABLE READ transaction sees a revocation committed after it
 *		started.  It reads the counter before the query, so state read
 *		before a change can never be cached under the generation after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_begin_session);
PG_FUNCTION_INFO_V1(aa_begin_human_session);
PG_FUNCTION_INFO_V1(aa_end_session);
PG_FUNCTION_INFO_V1(aa_whoami);
PG_FUNCTION_INFO_V1(aa_check_session);
PG_FUNCTION_INFO_V1(aa_session_token_sql);

AASession  *aa_session = NULL;

/* one entry per change of aa_session in the current transaction */
typedef struct StagedChange
{
	SubTransactionId subid;
	AASession  *prev;			/* the state this change replaced */
} StagedChange;

static List *staged = NIL;		/* in TopMemoryContext */

/* set by the expiry timer (a signal handler) and after an abort */
static volatile sig_atomic_t recheck_pending = false;
static TimeoutId expiry_timeout = MAX_TIMEOUTS;

/* plans kept across calls (SPI_keepplan) */
static SPIPlanPtr revalidate_agent_plan = NULL;
static SPIPlanPtr revalidate_human_plan = NULL;

/*
 * Queries run by the extension on behalf of any caller, with whatever
 * search_path the caller set: everything is schema-qualified, operators
 * included.
 */
#define TOKEN_REVOKED_SQL \
	"(t.revoked_at IS NOT NULL OR EXISTS (SELECT FROM agentauth.token a " \
	" WHERE a.id OPERATOR(pg_catalog.=) ANY (t.chain) AND a.revoked_at IS NOT NULL))"

#define REVALIDATE_AGENT_SQL \
	"SELECT t.expires_at, " TOKEN_REVOKED_SQL ", p.status, p.db_role " \
	"FROM agentauth.token t JOIN agentauth.principal p " \
	"ON p.id OPERATOR(pg_catalog.=) t.agent " \
	"WHERE t.id OPERATOR(pg_catalog.=) $1"

#define REVALIDATE_HUMAN_SQL \
	"SELECT p.status, p.db_role FROM agentauth.principal p " \
	"WHERE p.id OPERATOR(pg_catalog.=) $1"

#define LOOKUP_TOKEN_SQL \
	"SELECT t.id, t.agent, t.purpose, t.on_behalf_of, t.scopes, t.patients, " \
	"t.expires_at, t.chain, " TOKEN_REVOKED_SQL ", " \
	"p.name, p.owner, p.db_role, p.status, p.can_break_glass, " \
	"p.can_delegate, p.can_approve " \
	"FROM agentauth.token t JOIN agentauth.principal p " \
	"ON p.id OPERATOR(pg_catalog.=) t.agent " \
	"WHERE t.secret_hash OPERATOR(pg_catalog.=) $1"

#define LOOKUP_HUMAN_SQL \
	"SELECT p.id, p.kind, p.name, p.status, p.purposes, p.scopes, " \
	"p.can_break_glass, p.can_delegate, p.can_approve, " \
	"(SELECT pu.reserved FROM agentauth.purpose pu " \
	" WHERE pu.code OPERATOR(pg_catalog.=) $2) " \
	"FROM agentauth.principal p WHERE p.db_role OPERATOR(pg_catalog.=) $1"

#define SENSITIVE_SQL \
	"SELECT d.name FROM agentauth.data_class d WHERE d.sensitive ORDER BY 1"

#define TOUCH_SQL \
	"UPDATE agentauth.principal SET last_session_at = pg_catalog.now() " \
	"WHERE id OPERATOR(pg_catalog.=) (SELECT p.id FROM agentauth.principal p " \
	" WHERE p.id OPERATOR(pg_catalog.=) $1 AND (p.last_session_at IS NULL " \
	" OR p.last_session_at OPERATOR(pg_catalog.<) (pg_catalog.now() " \
	" OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval)) FOR UPDATE SKIP LOCKED)"

/* ---------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------
 */

static char *
uuid_to_cstring(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

static void
new_uuid(pg_uuid_t *u)
{
	if (!pg_strong_random(u->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session id")));
	u->data[6] = (u->data[6] & 0x0f) | 0x40;	/* version 4 */
	u->data[8] = (u->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
}

static pg_uuid_t *
copy_uuid(const pg_uuid_t *u)
{
	pg_uuid_t  *c = palloc(sizeof(pg_uuid_t));

	memcpy(c, u, sizeof(pg_uuid_t));
	return c;
}

static int
cmp_cstring(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Copy a text[] datum into a palloc'd array of C strings (current context). */
static char **
text_array_to_cstrings(Datum d, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	  **out;
	int			k = 0;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &nelems);
	out = palloc(sizeof(char *) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			out[k++] = TextDatumGetCString(elems[i]);
	*n = k;
	return out;
}

static pg_uuid_t *
uuid_array_copy(Datum d, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	pg_uuid_t  *out;

	deconstruct_array(arr, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
					  &elems, &nulls, &nelems);
	out = palloc(sizeof(pg_uuid_t) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
		memcpy(&out[i], DatumGetUUIDP(elems[i]), sizeof(pg_uuid_t));
	*n = nelems;
	return out;
}

/* Parse 'class:action' scopes (validated when they were stored). */
static void
set_scopes(AASession *s, char **items, int n)
{
	s->scopes = palloc(sizeof(AAScope) * Max(n, 1));
	s->nscopes = 0;
	for (int i = 0; i < n; i++)
	{
		char	   *colon = strrchr(items[i], ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		s->scopes[s->nscopes].data_class = items[i];
		s->scopes[s->nscopes].write = (strcmp(colon + 1, "write") == 0);
		s->nscopes++;
	}
}

static Datum
cstrings_to_text_array(char **items, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(items[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static AASession *
session_alloc(void)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext,
											  "agentauth session",
											  ALLOCSET_SMALL_SIZES);
	AASession  *s = MemoryContextAllocZero(cxt, sizeof(AASession));

	s->cxt = cxt;
	s->npatients = -1;
	s->expires_at = DT_NOEND;
	return s;
}

static void
session_free(AASession *s)
{
	if (s != NULL)
		MemoryContextDelete(s->cxt);
}

/* ---------------------------------------------------------------------
 * Expiry timer
 * ---------------------------------------------------------------------
 */

static void
expiry_timeout_handler(void)
{
	recheck_pending = true;
}

/* Arm the expiry timer for the current session (or disarm it). */
static void
arm_expiry(void)
{
	if (expiry_timeout == MAX_TIMEOUTS)
	{
		if (aa_session == NULL || !aa_session->has_token)
			return;
		expiry_timeout = RegisterTimeout(USER_TIMEOUT, expiry_timeout_handler);
	}
	if (aa_session != NULL && aa_session->has_token && !aa_session->revoked)
		enable_timeout_at(expiry_timeout, aa_session->expires_at);
	else if (get_timeout_active(expiry_timeout))
		disable_timeout(expiry_timeout, false);
}

/* ---------------------------------------------------------------------
 * Staging: changes undone by the abort of the (sub)transaction that made
 * them
 * ---------------------------------------------------------------------
 */

static void
set_session(AASession *s)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	StagedChange *c = palloc(sizeof(StagedChange));

	c->subid = GetCurrentSubTransactionId();
	c->prev = aa_session;
	staged = lappend(staged, c);
	MemoryContextSwitchTo(old);

	aa_session = s;
	arm_expiry();
}

/*
 * Undo the changes from index 'from' on: restore the state before them and
 * free every session created since.
 */
static void
unstage_from(int from)
{
	AASession  *restore;

	if (staged == NIL || from >= list_length(staged))
		return;
	restore = ((StagedChange *) list_nth(staged, from))->prev;
	for (int i = from + 1; i < list_length(staged); i++)
		session_free(((StagedChange *) list_nth(staged, i))->prev);
	if (aa_session != restore)
		session_free(aa_session);
	aa_session = restore;

	for (int i = list_length(staged) - 1; i >= from; i--)
		pfree(list_nth(staged, i));
	if (from == 0)
	{
		list_free(staged);
		staged = NIL;
	}
	else
		staged = list_truncate(staged, from);
	arm_expiry();
}

/* The transaction committed: what the changes replaced can go. */
static void
unstage_commit(void)
{
	ListCell   *lc;

	foreach(lc, staged)
	{
		StagedChange *c = lfirst(lc);

		session_free(c->prev);
		pfree(c);
	}
	list_free(staged);
	staged = NIL;
}

static void emit_session_event(const char *event, AASession *s, const char *why);

static void
session_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (aa_session != NULL && aa_session->transaction_only)
				emit_session_event("session_end", aa_session, "transaction ended");
			break;

		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			unstage_commit();
			if (aa_session != NULL && aa_session->transaction_only)
			{
				session_free(aa_session);
				aa_session = NULL;
				arm_expiry();
			}
			break;

		case XACT_EVENT_ABORT:
			unstage_from(0);
			if (aa_session != NULL && aa_session->transaction_only)
			{
				session_free(aa_session);
				aa_session = NULL;
			}

			/*
			 * Error recovery disables every timeout: re-arm ours, and
			 * revalidate before the next protected row in any case.
			 */
			if (aa_session != NULL)
			{
				recheck_pending = true;
				arm_expiry();
			}
			break;

		default:
			break;
	}
}

static void
session_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;
	int			i;

	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			foreach(lc, staged)
			{
				StagedChange *c = lfirst(lc);

				if (c->subid == mySubid)
					c->subid = parentSubid;
			}
			break;

		case SUBXACT_EVENT_ABORT_SUB:
			i = 0;
			foreach(lc, staged)
			{
				StagedChange *c = lfirst(lc);

				if (c->subid >= mySubid)
					break;
				i++;
			}
			unstage_from(i);
			break;

		default:
			break;
	}
}

/*
 * DISCARD ALL resets a connection for its next client (a session-mode
 * pooler such as pgbouncer runs it between clients): it ends the agentauth
 * session too, so no client inherits another's.  Called by the one
 * ProcessUtility hook (utility.c) after a utility statement ran.
 */
void
aa_session_utility_done(Node *stmt)
{
	if (IsA(stmt, DiscardStmt) &&
		((DiscardStmt *) stmt)->target == DISCARD_ALL &&
		aa_session != NULL)
	{
		emit_session_event("session_end", aa_session, "DISCARD ALL");
		set_session(NULL);
	}
}

void
aa_session_init(void)
{
	RegisterXactCallback(session_xact_callback, NULL);
	RegisterSubXactCallback(session_subxact_callback, NULL);
}

/* ---------------------------------------------------------------------
 * Audit
 * ---------------------------------------------------------------------
 */

static void
emit_session_event(const char *event, AASession *s, const char *why)
{
	AARecord	rec;
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"session\": \"%s\", \"kind\": \"%s\", \"transaction_only\": %s",
					 uuid_to_cstring(&s->id), s->is_agent ? "agent" : "human",
					 s->transaction_only ? "true" : "false");
	if (why != NULL)
	{
		appendStringInfoString(&detail, ", \"reason\": ");
		escape_json(&detail, why);
	}
	appendStringInfoChar(&detail, '}');

	memset(&rec, 0, sizeof(rec));
	rec.event = event;
	rec.row_count = -1;
	rec.outcome = "permit";
	rec.detail = detail.data;
	rec.principal = &s->principal;
	rec.principal_name = s->name;
	rec.token = s->has_token ? &s->token : NULL;
	rec.purpose = s->purpose;

	/* at PRE_COMMIT portals are closed: the audit may need a snapshot */
	if (IsTransactionState() && !ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		aa_audit_emit(&rec, false);
		PopActiveSnapshot();
	}
	else
		aa_audit_emit(&rec, false);
}

/*
 * Refuse a session: record session_denied (surviving the error that
 * follows) and raise.  For a bad secret the message is the same whatever
 * was wrong with it; the reason goes to the server log and the audit
 * record only.
 */
static void
deny(const char *function, const char *reason, const pg_uuid_t *principal,
	 const char *principal_name, const pg_uuid_t *token, int sqlstate,
	 const char *message, const char *hint)
{
	AARecord	rec;
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"function\": ");
	escape_json(&detail, function);
	appendStringInfoString(&detail, ", \"reason\": ");
	escape_json(&detail, reason);
	appendStringInfoChar(&detail, '}');

	memset(&rec, 0, sizeof(rec));
	rec.event = "session_denied";
	rec.row_count = -1;
	rec.outcome = "deny";
	rec.detail = detail.data;
	rec.principal = principal;
	rec.principal_name = principal_name;
	rec.token = token;

	/*
	 * The record names the principal and token that were tried (or none),
	 * not the session this backend may already have: hide it from the
	 * audit entry point while it fills in identity.
	 */
	{
		AASession  *current = aa_session;

		aa_session = NULL;
		PG_TRY();
		{
			aa_audit_emit(&rec, false);
		}
		PG_FINALLY();
		{
			aa_session = current;
		}
		PG_END_TRY();
	}

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s", message),
			 errdetail_log("%s: %s", function, reason),
			 hint ? errhint("%s", hint) : 0));
}

/* ---------------------------------------------------------------------
 * SPI as the extension (the caller may be anyone)
 * ---------------------------------------------------------------------
 */

typedef struct AsExtension
{
	Oid			save_userid;
	int			save_sec;
	int			guc_nest;		/* search_path pinned (aa_pin_search_path) */
} AsExtension;

static void
spi_begin(AsExtension *st)
{
	GetUserIdAndSecContext(&st->save_userid, &st->save_sec);
	st->guc_nest = aa_pin_search_path();
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   st->save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

static void
spi_end(AsExtension *st)
{
	SPI_finish();
	SetUserIdAndSecContext(st->save_userid, st->save_sec);
	aa_unpin_search_path(st->guc_nest);
}

static SPIPlanPtr
keep_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, argtypes);

		if (p == NULL)
			elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "SPI_keepplan failed");
		*cache = p;
	}
	return *cache;
}

/* Run a kept plan on the latest snapshot (never the statement's). */
static void
exec_latest(SPIPlanPtr plan, Datum *values, const char *nulls)
{
	int			rc = SPI_execute_snapshot(plan, values, nulls,
										  GetLatestSnapshot(), InvalidSnapshot,
										  true, false, 1);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "agentauth session query failed: %s", SPI_result_code_string(rc));
}

static Datum
spi_get(int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);
}

/* load the names of the sensitive data classes into s (SPI connected) */
static void
load_sensitive(AASession *s)
{
	int			rc = SPI_execute(SENSITIVE_SQL, true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.data_class");
	s->nsensitive = SPI_processed;
	s->sensitive = MemoryContextAlloc(s->cxt, sizeof(char *) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
		s->sensitive[i] = MemoryContextStrdup(s->cxt,
											  SPI_getvalue(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1));
}

/* remember when the principal last began a session (at most hourly) */
static void
touch_principal(const pg_uuid_t *principal)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[1];

	if (XactReadOnly || RecoveryInProgress())
		return;
	keep_plan(&plan, TOUCH_SQL, 1, argtypes);
	values[0] = UUIDPGetDatum(principal);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update agentauth.principal");
}

/*
 * A superuser or a BYPASSRLS role is not held to row security: such a role
 * may have been made one after it was registered.  No session for it.
 */
static bool
role_bypasses_rls(Oid roleid)
{
	return superuser_arg(roleid) || has_bypassrls_privilege(roleid);
}

/* ---------------------------------------------------------------------
 * Revalidation and the per-row check
 * ---------------------------------------------------------------------
 */

static void pg_attribute_noreturn()
session_invalid(AASession *s, const char *reason)
{
	if (!s->revoked)
	{
		s->revoked = true;
		s->invalid_reason = reason;
		arm_expiry();
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("agentauth session is no longer valid"),
			 errdetail("%s", s->invalid_reason),
			 errhint("End the session and begin a new one.")));
}

static void
session_revalidate(AASession *s)
{
	AsExtension st;
	uint64		gen;
	Datum		values[1];
	bool		isnull;
	const char *reason = NULL;

	if (s->revoked)
		session_invalid(s, s->invalid_reason);
	if (GetSessionUserId() != s->db_role)
		session_invalid(s, "The session user is not the principal's role.");
	if (role_bypasses_rls(s->db_role))
		session_invalid(s, "The principal's role now bypasses row security.");

	/* first clear the flag and read the counter, then read the state */
	recheck_pending = false;
	gen = aa_generation();

	spi_begin(&st);
	values[0] = UUIDPGetDatum(s->has_token ? &s->token : &s->principal);
	if (s->has_token)
	{
		Oid			argtypes[1] = {UUIDOID};

		exec_latest(keep_plan(&revalidate_agent_plan, REVALIDATE_AGENT_SQL, 1, argtypes),
					values, NULL);
		if (SPI_processed == 0)
			reason = "The token no longer exists.";
		else if (DatumGetBool(spi_get(2, &isnull)))
			reason = "The token was revoked.";
		else if (strcmp(TextDatumGetCString(spi_get(3, &isnull)), "active") != 0)
			reason = "The agent was suspended or retired.";
		else if (DatumGetTimestampTz(spi_get(1, &isnull)) <= GetCurrentTimestamp())
			reason = "The token expired.";
	}
	else
	{
		Oid			argtypes[1] = {UUIDOID};

		exec_latest(keep_plan(&revalidate_human_plan, REVALIDATE_HUMAN_SQL, 1, argtypes),
					values, NULL);
		if (SPI_processed == 0)
			reason = "The principal no longer exists.";
		else if (strcmp(TextDatumGetCString(spi_get(1, &isnull)), "active") != 0)
			reason = "The principal was suspended or retired.";
	}
	spi_end(&st);

	if (reason != NULL)
		session_invalid(s, reason);
	s->validated_gen = gen;
	arm_expiry();
}

void
aa_session_check(void)
{
	AASession  *s = aa_session;

	if (s == NULL)
		return;
	if (likely(!recheck_pending &&
			   aa_generation() == s->validated_gen &&
			   !s->revoked &&
			   GetSessionUserId() == s->db_role))
		return;
	session_revalidate(s);
}

bool
aa_session_scope_allows(const char *data_class, bool write)
{
	AASession  *s = aa_session;

	if (s == NULL)
		return false;
	for (int i = 0; i < s->nscopes; i++)
	{
		const AAScope *sc = &s->scopes[i];

		if (sc->write != write)
			continue;
		if (strcmp(sc->data_class, data_class) == 0)
			return true;
		if (strcmp(sc->data_class, "*") == 0)
		{
			bool		sensitive = false;

			for (int j = 0; j < s->nsensitive; j++)
				if (strcmp(s->sensitive[j], data_class) == 0)
					sensitive = true;
			if (!sensitive)
				return true;
		}
	}
	return false;
}

bool
aa_session_patient_allowed(const char *patient)
{
	AASession  *s = aa_session;

	if (s == NULL || patient == NULL)
		return false;
	if (s->npatients < 0)
		return true;
	return bsearch(&patient, s->patients, s->npatients, sizeof(char *),
				   cmp_cstring) != NULL;
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

static bool
bool_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return PG_GETARG_BOOL(argno);
}

/*
 * The connection ends (disconnect, or a FATAL error): record the end of the
 * session.  Registered after the audit module's own exit callback, so it
 * runs before it (they run in reverse order) and the record is flushed.
 */
static void
session_exit_callback(int code, Datum arg)
{
	if (aa_session != NULL)
	{
		AASession  *s = aa_session;

		aa_session = NULL;
		emit_session_event("session_end", s, code == 0 ? "disconnect" : "backend exit");
	}
}

/* make s the session, recording the end of the one it replaces */
static void
install_session(AASession *s)
{
	static bool exit_registered = false;

	if (aa_session != NULL)
	{
		emit_session_event("session_end", aa_session, "replaced by a new session");
		aa_btg_session_end();
	}
	emit_session_event("session_begin", s, NULL);
	if (!exit_registered)
	{
		before_shmem_exit(session_exit_callback, (Datum) 0);
		exit_registered = true;
	}
	set_session(s);
}

#define BAD_TOKEN_MSG	"invalid or expired token"
#define BAD_TOKEN_HINT	"Ask the token issuer for a new token for this agent."

/*
 * agentauth.begin_session(secret text, transaction_only boolean) RETURNS uuid
 */
Datum
aa_begin_session(PG_FUNCTION_ARGS)
{
	text	   *secret;
	bool		txonly;
	const char *sdata;
	int			slen;
	unsigned char digest[32];
	bytea	   *hash;
	AsExtension st;
	Oid			argtypes[1] = {BYTEAOID};
	Datum		values[1];
	static SPIPlanPtr lookup_plan = NULL;
	uint64		gen;
	bool		isnull;
	MemoryContext callercxt = CurrentMemoryContext;
	pg_uuid_t	token_id;
	pg_uuid_t	agent_id;
	AASession  *s;
	MemoryContext old;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("secret must not be null")));
	txonly = bool_arg(fcinfo, 1, "transaction_only");
	secret = PG_GETARG_TEXT_PP(0);
	sdata = VARDATA_ANY(secret);
	slen = VARSIZE_ANY_EXHDR(secret);

	if (!aa_secret_well_formed(sdata, slen))
		deny("begin_session", "malformed secret", NULL, NULL, NULL,
			 ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, BAD_TOKEN_MSG, BAD_TOKEN_HINT);

	aa_secret_digest(sdata, slen, digest);
	hash = palloc(VARHDRSZ + sizeof(digest));
	SET_VARSIZE(hash, VARHDRSZ + sizeof(digest));
	memcpy(VARDATA(hash), digest, sizeof(digest));
	values[0] = PointerGetDatum(hash);

	gen = aa_generation();
	spi_begin(&st);
	exec_latest(keep_plan(&lookup_plan, LOOKUP_TOKEN_SQL, 1, argtypes), values, NULL);
	if (SPI_processed == 0)
	{
		spi_end(&st);
		deny("begin_session", "unknown token", NULL, NULL, NULL,
			 ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, BAD_TOKEN_MSG, BAD_TOKEN_HINT);
	}
	memcpy(&token_id, DatumGetUUIDP(spi_get(1, &isnull)), sizeof(pg_uuid_t));
	memcpy(&agent_id, DatumGetUUIDP(spi_get(2, &isnull)), sizeof(pg_uuid_t));
	{
		const char *reason = NULL;

		if (DatumGetBool(spi_get(9, &isnull)))
			reason = "token revoked";
		else if (DatumGetTimestampTz(spi_get(7, &isnull)) <= GetCurrentTimestamp())
			reason = "token expired";
		else if (strcmp(TextDatumGetCString(spi_get(13, &isnull)), "active") != 0)
			reason = "agent not active";
		else if (DatumGetObjectId(spi_get(12, &isnull)) != GetSessionUserId())
			reason = "session user is not the agent's role";
		else if (role_bypasses_rls(GetSessionUserId()))
			reason = "the agent's role bypasses row security";
		if (reason != NULL)
		{
			char	   *name = MemoryContextStrdup(callercxt,
												   TextDatumGetCString(spi_get(10, &isnull)));

			spi_end(&st);
			deny("begin_session", reason, &agent_id, name, &token_id,
				 ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, BAD_TOKEN_MSG, BAD_TOKEN_HINT);
		}
	}

	s = session_alloc();
	old = MemoryContextSwitchTo(s->cxt);
	new_uuid(&s->id);
	s->principal = agent_id;
	s->is_agent = true;
	s->has_token = true;
	s->token = token_id;
	s->purpose = TextDatumGetCString(spi_get(3, &isnull));
	{
		Datum		d = spi_get(4, &isnull);

		s->on_behalf_of = isnull ? NULL : TextDatumGetCString(d);
	}
	{
		int			n;
		char	  **items = text_array_to_cstrings(spi_get(5, &isnull), &n);

		set_scopes(s, items, n);
	}
	{
		Datum		d = spi_get(6, &isnull);

		if (isnull)
			s->npatients = -1;
		else
		{
			s->patients = text_array_to_cstrings(d, &s->npatients);
			qsort(s->patients, s->npatients, sizeof(char *), cmp_cstring);
		}
	}
	s->expires_at = DatumGetTimestampTz(spi_get(7, &isnull));
	s->chain = uuid_array_copy(spi_get(8, &isnull), &s->nchain);
	s->name = TextDatumGetCString(spi_get(10, &isnull));
	{
		Datum		d = spi_get(11, &isnull);

		s->owner = isnull ? NULL : TextDatumGetCString(d);
	}
	s->db_role = DatumGetObjectId(spi_get(12, &isnull));
	s->can_break_glass = DatumGetBool(spi_get(14, &isnull));
	s->can_delegate = DatumGetBool(spi_get(15, &isnull));
	s->can_approve = DatumGetBool(spi_get(16, &isnull));
	s->transaction_only = txonly;
	s->validated_gen = gen;
	load_sensitive(s);
	MemoryContextSwitchTo(old);

	touch_principal(&agent_id);
	spi_end(&st);

	install_session(s);
	PG_RETURN_UUID_P(copy_uuid(&s->id));
}

/*
 * agentauth.begin_human_session(purpose text, transaction_only boolean)
 * RETURNS uuid
 */
Datum
aa_begin_human_session(PG_FUNCTION_ARGS)
{
	char	   *purpose;
	bool		txonly;
	AsExtension st;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	static SPIPlanPtr lookup_plan = NULL;
	uint64		gen;
	bool		isnull;
	Datum		d;
	pg_uuid_t	pid;
	char	   *role = GetUserNameFromId(GetSessionUserId(), false);
	char	   *msg = NULL;
	char	   *pname = NULL;
	const char *bad_purpose = NULL;
	int			sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	bool		known = false;
	MemoryContext callercxt = CurrentMemoryContext;
	AASession  *s;
	MemoryContext old;
	int			npurposes;
	char	  **purposes;
	bool		found = false;

	purpose = aa_text_arg(fcinfo, 0, "purpose", true, AA_MAX_NAME_LEN);
	txonly = bool_arg(fcinfo, 1, "transaction_only");

	gen = aa_generation();
	spi_begin(&st);
	values[0] = ObjectIdGetDatum(GetSessionUserId());
	values[1] = CStringGetTextDatum(purpose);
	exec_latest(keep_plan(&lookup_plan, LOOKUP_HUMAN_SQL, 2, argtypes), values, NULL);

	/* decide while the row is at hand; raise after SPI_finish */
	if (SPI_processed == 0)
		msg = psprintf("role \"%s\" is not a registered principal", role);
	else
	{
		char	   *name = TextDatumGetCString(spi_get(3, &isnull));

		pname = MemoryContextStrdup(callercxt, name);
		memcpy(&pid, DatumGetUUIDP(spi_get(1, &isnull)), sizeof(pg_uuid_t));
		known = true;
		if (strcmp(TextDatumGetCString(spi_get(2, &isnull)), "human") != 0)
			msg = psprintf("role \"%s\" is an agent", role);
		else if (strcmp(TextDatumGetCString(spi_get(4, &isnull)), "active") != 0)
			msg = psprintf("principal \"%s\" is not active", name);
		else if (role_bypasses_rls(GetSessionUserId()))
			msg = psprintf("role \"%s\" bypasses row security", role);
		else
		{
			d = spi_get(10, &isnull);
			if (isnull)
				bad_purpose = "unknown purpose of use \"%s\"";
			else if (DatumGetBool(d))
				bad_purpose = "purpose of use \"%s\" is reserved";
			else
			{
				purposes = text_array_to_cstrings(spi_get(5, &isnull), &npurposes);
				for (int i = 0; i < npurposes; i++)
					if (strcmp(purposes[i], purpose) == 0)
						found = true;
				if (!found)
				{
					msg = psprintf("principal \"%s\" is not registered for purpose \"%s\"",
								   name, purpose);
					sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
				}
			}
		}
	}
	if (msg != NULL || bad_purpose != NULL)
	{
		MemoryContext spicxt = MemoryContextSwitchTo(callercxt);

		if (msg)
			msg = pstrdup(msg);
		MemoryContextSwitchTo(spicxt);
		spi_end(&st);
		if (bad_purpose != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg(bad_purpose, purpose),
					 errhint("Purpose codes are listed in agentauth.purpose (HL7 v3 PurposeOfUse); BTG is entered only through agentauth.break_glass().")));
		deny("begin_human_session", msg, known ? &pid : NULL, pname, NULL, sqlstate, msg,
			 known ? NULL :
			 "An administrator registers clinicians with agentauth.register_human().");
	}

	s = session_alloc();
	old = MemoryContextSwitchTo(s->cxt);
	new_uuid(&s->id);
	s->principal = pid;
	s->is_agent = false;
	s->has_token = false;
	s->name = TextDatumGetCString(spi_get(3, &isnull));
	s->db_role = GetSessionUserId();
	s->purpose = pstrdup(purpose);
	{
		int			n;
		char	  **items = text_array_to_cstrings(spi_get(6, &isnull), &n);

		set_scopes(s, items, n);
	}
	s->npatients = -1;
	s->expires_at = DT_NOEND;
	s->can_break_glass = DatumGetBool(spi_get(7, &isnull));
	s->can_delegate = DatumGetBool(spi_get(8, &isnull));
	s->can_approve = DatumGetBool(spi_get(9, &isnull));
	s->transaction_only = txonly;
	s->validated_gen = gen;
	load_sensitive(s);
	MemoryContextSwitchTo(old);

	touch_principal(&pid);
	spi_end(&st);

	install_session(s);
	PG_RETURN_UUID_P(copy_uuid(&s->id));
}

/*
 * agentauth.end_session() RETURNS void: forget the session (none: nothing)
 */
Datum
aa_end_session(PG_FUNCTION_ARGS)
{
	if (aa_session != NULL)
	{
		emit_session_event("session_end", aa_session, "end_session");
		aa_btg_session_end();
		set_session(NULL);
	}
	PG_RETURN_VOID();
}

/*
 * agentauth.whoami(): one row describing the session, none without one;
 * 28000 when the session is no longer valid.
 */
Datum
aa_whoami(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AASession  *s;
	Datum		values[11];
	bool		nulls[11];

	InitMaterializedSRF(fcinfo, 0);
	aa_session_check();
	aa_btg_refresh();
	s = aa_session;
	if (s == NULL)
		return (Datum) 0;

	memset(nulls, 0, sizeof(nulls));
	values[0] = UUIDPGetDatum(&s->principal);
	values[1] = CStringGetTextDatum(s->is_agent ? "agent" : "human");
	values[2] = CStringGetTextDatum(s->name);
	if (s->has_token)
		values[3] = UUIDPGetDatum(&s->token);
	else
		nulls[3] = true;
	values[4] = CStringGetTextDatum(s->purpose);
	if (s->on_behalf_of)
		values[5] = CStringGetTextDatum(s->on_behalf_of);
	else
		nulls[5] = true;
	{
		char	  **items = palloc(sizeof(char *) * Max(s->nscopes, 1));

		for (int i = 0; i < s->nscopes; i++)
			items[i] = psprintf("%s:%s", s->scopes[i].data_class,
								s->scopes[i].write ? "write" : "read");
		values[6] = cstrings_to_text_array(items, s->nscopes);
	}
	if (s->npatients >= 0)
		values[7] = cstrings_to_text_array(s->patients, s->npatients);
	else
		nulls[7] = true;
	if (s->has_token)
		values[8] = TimestampTzGetDatum(s->expires_at);
	else
		nulls[8] = true;
	if (s->has_token)
	{
		Datum	   *d = palloc(sizeof(Datum) * Max(s->nchain, 1));

		for (int i = 0; i < s->nchain; i++)
			d[i] = UUIDPGetDatum(&s->chain[i]);
		values[9] = PointerGetDatum(construct_array(d, s->nchain, UUIDOID,
													UUID_LEN, false, TYPALIGN_CHAR));
	}
	else
		nulls[9] = true;
	{
		Datum	   *d = palloc(sizeof(Datum) * Max(s->nbreak_glass, 1));

		for (int i = 0; i < s->nbreak_glass; i++)
			d[i] = UUIDPGetDatum(&s->break_glass[i].id);
		values[10] = PointerGetDatum(construct_array(d, s->nbreak_glass, UUIDOID,
													 UUID_LEN, false, TYPALIGN_CHAR));
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * agentauth.check_session() RETURNS boolean: the per-row check, for tests
 * (from a cursor over generate_series) and for clients: true, or 28000.
 */
Datum
aa_check_session(PG_FUNCTION_ARGS)
{
	aa_session_check();
	if (aa_session == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no agentauth session"),
				 errhint("Begin one with agentauth.begin_session(token) or agentauth.begin_human_session(purpose).")));
	PG_RETURN_BOOL(true);
}

/*
 * agentauth._session_token() RETURNS uuid: the token of the current,
 * revalidated agent session (for delegate_token).
 */
Datum
aa_session_token_sql(PG_FUNCTION_ARGS)
{
	aa_session_check();
	if (aa_session == NULL || !aa_session->has_token)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no agent session"),
				 errhint("Delegation needs an agent session: call agentauth.begin_session(token) first.")));
	PG_RETURN_UUID_P(copy_uuid(&aa_session->token));
}
