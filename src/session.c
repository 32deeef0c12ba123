/*-------------------------------------------------------------------------
 *
 * session.c
 *		The backend's agentauth session: its state, staged with the
 *		transaction, its audit events, and the per-row validity check with
 *		its revalidation.  The SQL entry points that begin, end and show a
 *		session are in session_sql.c.
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
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "agentauth.h"

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
static SPIPlanPtr sensitive_plan = NULL;
static SPIPlanPtr revalidate_agent_plan = NULL;
static SPIPlanPtr revalidate_human_plan = NULL;

/*
 * Queries run by the extension on behalf of any caller, with whatever
 * search_path the caller set: everything is schema-qualified, operators
 * included.
 */
#define REVALIDATE_AGENT_SQL \
	"SELECT t.expires_at, " AA_TOKEN_REVOKED_SQL ", p.status, p.db_role, " \
	AA_TXONLY_REQUIRED_SQL " " \
	"FROM agentauth.token t JOIN agentauth.principal p " \
	"ON p.id OPERATOR(pg_catalog.=) t.agent " \
	"WHERE t.id OPERATOR(pg_catalog.=) $1"

#define REVALIDATE_HUMAN_SQL \
	"SELECT p.status, p.db_role, " AA_TXONLY_REQUIRED_SQL ", " \
	"p.status_changed_at IS DISTINCT FROM $2 " \
	"FROM agentauth.principal p " \
	"WHERE p.id OPERATOR(pg_catalog.=) $1"

/* ---------------------------------------------------------------------
 * Session memory
 * ---------------------------------------------------------------------
 */

static char *
uuid_to_cstring(const pg_uuid_t *u)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u)));
}

/* a new, empty session in a memory context of its own */
AASession *
aa_session_alloc(void)
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

/* how a session record goes to the audit (audit.c) */
typedef enum EmitHow
{
	EMIT_NOW,					/* aa_audit_emit */
	EMIT_HELD,					/* aa_audit_emit_held: after aa_audit_ready */
	EMIT_UNWAITED				/* aa_audit_emit_unwaited: end_session() */
} EmitHow;

static void emit_session_event(const char *event, AASession *s, const char *why);
static void emit_session_event_how(const char *event, AASession *s, const char *why,
								   EmitHow how);

/*
 * The transaction-only session's session_end is recorded (PRE_COMMIT or
 * PRE_PREPARE): a commit that fails after it (a serialization failure, a
 * PREPARE refused) must not record a second one at its abort.
 */
static bool txonly_end_recorded = false;

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

	/*
	 * The changes' records are not undone with them (written whatever the
	 * transaction does: a session's reads are recorded under it): say
	 * what the undoing does.  1.1, found by review: an end_session() whose
	 * wait for its record failed left "session_end" in the log, and the
	 * session read on; a begin_*() rolled back left its "session_begin",
	 * and the session it replaced read on under records that said it had
	 * ended.
	 */
	if (aa_session != restore)
	{
		/* (a transaction-only session's end was recorded at PRE_COMMIT) */
		if (aa_session != NULL && !txonly_end_recorded)
			emit_session_event("session_end", aa_session,
							   "its beginning was rolled back");
		if (restore != NULL)
			emit_session_event("session_begin", restore,
							   "its end was rolled back");
	}
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


/* what else ends with a session (btg.c: its overrides), set at init */
static void (*session_end_callback) (void) = NULL;

/*
 * The overrides of the session (aa_session, still set) end with it, in the
 * transaction under way: only a session that started one pays for it.
 */
static void
end_overrides(void)
{
	bool		snap;

	if (aa_session == NULL || !aa_session->broke_glass || session_end_callback == NULL)
		return;
	snap = !ActiveSnapshotSet();
	if (snap)
		PushActiveSnapshot(GetTransactionSnapshot());
	session_end_callback();
	if (snap)
		PopActiveSnapshot();
}

static void
session_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			if (aa_session != NULL && aa_session->transaction_only)
			{
				end_overrides();
				emit_session_event("session_end", aa_session, "transaction ended");
				txonly_end_recorded = true;
			}
			break;

		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PREPARE:
			txonly_end_recorded = false;
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
			txonly_end_recorded = false;
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

			/*
			 * As at a top-level abort: the error may have cut a
			 * revalidation short (its flag cleared, the generation not
			 * yet noted) and, at the top level, disabled every timeout.
			 * Revalidate before the next protected row; re-arm the expiry.
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

/*
 * DISCARD ALL resets a connection for its next client (a session-mode
 * pooler such as pgbouncer runs it between clients): it ends the agentauth
 * session too, so no client inherits another's.  Called by the one
 * ProcessUtility hook (utility.c) before the statement runs, and not
 * undone by its failure: a DISCARD ALL cancelled part way (a statement
 * timeout, the lock table full of temporary tables) fails, and a pooler
 * hands the connection on all the same (1.1: the session ended only when
 * the statement succeeded, and the next client read under it).  Run by the
 * client itself outside a transaction block only, where DISCARD ALL can run
 * at all, so nothing staged can bring the session back (in a function, it
 * fails and ends nothing).  The session's overrides end in the statement's
 * transaction, read-write whatever the client set: a failure after it
 * (a statement timeout) leaves them to their time.
 */
void
aa_session_utility_begin(Node *stmt, bool toplevel)
{
	AASession  *s = aa_session;
	bool		read_only = XactReadOnly;

	if (!IsA(stmt, DiscardStmt) ||
		((DiscardStmt *) stmt)->target != DISCARD_ALL ||
		s == NULL || !toplevel || IsTransactionBlock())
		return;
	PG_TRY();
	{
		emit_session_event("session_end", s, "DISCARD ALL");
		/* what the client made of the transaction: not the overrides' end */
		if (!RecoveryInProgress())
			XactReadOnly = false;
		end_overrides();
	}
	PG_FINALLY();
	{
		XactReadOnly = read_only;
		unstage_commit();
		if (aa_session == s)
		{
			aa_session = NULL;
			session_free(s);
		}
		arm_expiry();
	}
	PG_END_TRY();
}

void
aa_session_init(void)
{
	RegisterXactCallback(session_xact_callback, NULL);
	RegisterSubXactCallback(session_subxact_callback, NULL);
	/* records carry the identity of the session acting */
	aa_audit_set_session_source(&aa_session);
}

void
aa_session_on_end(void (*callback) (void))
{
	session_end_callback = callback;
}

/* what must be recorded before the session's end at exit (access_run.c) */
static void (*session_exit_hook) (void) = NULL;

void
aa_session_on_exit(void (*callback) (void))
{
	session_exit_hook = callback;
}

/* ---------------------------------------------------------------------
 * Audit
 * ---------------------------------------------------------------------
 */

static void
emit_session_event_how(const char *event, AASession *s, const char *why, EmitHow how)
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

	if (how == EMIT_HELD)
		aa_audit_emit_held(&rec);
	else if (how == EMIT_UNWAITED)
		aa_audit_emit_unwaited(&rec);
	/* at PRE_COMMIT portals are closed: the audit may need a snapshot */
	else if (IsTransactionState() && !ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		aa_audit_emit(&rec, false);
		PopActiveSnapshot();
	}
	else
		aa_audit_emit(&rec, false);
}

static void
emit_session_event(const char *event, AASession *s, const char *why)
{
	emit_session_event_how(event, s, why, EMIT_NOW);
}

/* ---------------------------------------------------------------------
 * Beginning and ending, for session_sql.c
 * ---------------------------------------------------------------------
 */

/*
 * A superuser or a BYPASSRLS role is not held to row security: such a role
 * may have been made one after it was registered.  No session for it.
 */
bool
aa_role_bypasses_rls(Oid roleid)
{
	return superuser_arg(roleid) || has_bypassrls_privilege(roleid);
}

/*
 * The connection ends (disconnect, or a FATAL error): record what the
 * statement running read, then the end of the session.  Registered after
 * the audit module's own exit callback, so it runs before it (they run in
 * reverse order) and the records are flushed.
 */
static void
session_exit_callback(int code, Datum arg)
{
	AASession  *s;

	/*
	 * The statement the exit interrupts (a terminate, a client gone) is
	 * recorded first, as this session's: its records would otherwise be
	 * emitted at the abort that follows, with no session (1.1: no
	 * principal, token or purpose, after the session's end).
	 */
	if (session_exit_hook)
		session_exit_hook();

	/*
	 * Then out of the transaction the exit interrupted: its abort undoes
	 * what it staged -- an end_session() or a replacing begin_* rolled back
	 * brings the session before it back, overrides and all; a begin_*
	 * rolled back leaves the one before -- so the session that ends here
	 * is the one left, never one the abort freed (1.1: the override of a
	 * session ended in an unfinished transaction stayed open, and the
	 * record of a rolled-back session's end was written from freed memory).
	 */
	AbortOutOfAnyTransaction();
	s = aa_session;
	if (s == NULL)
		return;
	/* on record first, whatever fails after */
	emit_session_event("session_end", s, code == 0 ? "disconnect" : "backend exit");

	/*
	 * Its overrides end with it, in a transaction of their own (as the
	 * temporary tables' removal at exit): read-write whatever the client
	 * set, and skipping a row another transaction holds, which no timeout
	 * could stop waiting on here (btg.c; an error here is FATAL, and leaves
	 * them to their time).
	 */
	if (s->broke_glass && session_end_callback && !RecoveryInProgress())
	{
		StartTransactionCommand();
		XactReadOnly = false;
		end_overrides();
		CommitTransactionCommand();
	}
	aa_session = NULL;
}

/*
 * Make s (from aa_session_alloc) the session, recording the end of the one
 * it replaces: staged, undone if the (sub)transaction aborts.
 */
void
aa_session_install(AASession *s)
{
	static bool exit_registered = false;

	/*
	 * What may fail comes before the records: the replaced session's
	 * overrides end (a lock wait may time out), the records' encoding is
	 * prepared, and the audit is asked whether it takes records now
	 * (aa_audit_ready: 53000 on a late writer or a full queue).  Then the
	 * records, held with the statement's, which nothing after can fail,
	 * and the change at once, staged: an abort from here on says in the
	 * log that it undid them (unstage_from).  1.1, found by review (r32,
	 * r34): the end's record came first, and an error in ending the
	 * overrides (a lock timeout; any session on a hot standby, which
	 * cannot write) or in the emission's own flush (a late writer) left
	 * the session on, reading under a record that said it had ended.
	 */
	if (aa_session != NULL)
		end_overrides();
	/* its records may be encoded outside a transaction (an abort, the exit) */
	aa_canon_prepare();
	aa_audit_ready();
	if (aa_session != NULL)
		emit_session_event_how("session_end", aa_session, "replaced by a new session",
							   EMIT_HELD);
	emit_session_event_how("session_begin", s, NULL, EMIT_HELD);
	/* after the audit module's own, which the first record registers */
	if (!exit_registered)
	{
		before_shmem_exit(session_exit_callback, (Datum) 0);
		exit_registered = true;
	}
	set_session(s);
}

/*
 * end_session(): end the session's overrides, record its end, forget it
 * (staged: a rollback brings the session back, recorded by unstage_from).
 * The overrides end first: when that fails (a lock timeout, a read-only
 * transaction), nothing is recorded and the session goes on.  The record is
 * queued at once and not waited for at the commit (aa_audit_emit_unwaited):
 * a late writer does not keep a session on (1.1, found by review, r35: the
 * end's record failed the commit, the abort brought the session back, and
 * a pool handed the connection on with the agent's session).
 */
void
aa_session_end(void)
{
	if (aa_session == NULL)
		return;
	end_overrides();
	emit_session_event_how("session_end", aa_session, "end_session", EMIT_UNWAITED);
	set_session(NULL);
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

#define SENSITIVE_SQL \
	"SELECT d.name FROM agentauth.data_class d WHERE d.sensitive ORDER BY 1"

/*
 * The names of the sensitive data classes, which a '*' scope does not
 * cover, into s (SPI connected; the latest snapshot): when the session
 * begins, and again whenever it is revalidated -- a class made sensitive,
 * or a sensitive class added, while a session runs is not covered by its
 * '*' from its next statement on (1.1: the list of its beginning was kept
 * for the session's life).  The new list is made whole before it replaces
 * the old.
 */
void
aa_session_load_sensitive(AASession *s)
{
	char	  **names;
	int			n;

	aa_spi_select_latest(aa_spi_keep_plan(&sensitive_plan, SENSITIVE_SQL, 0, NULL),
						 NULL, NULL, 0);
	n = (int) SPI_processed;
	names = MemoryContextAlloc(s->cxt, sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		names[i] = MemoryContextStrdup(s->cxt,
									   SPI_getvalue(SPI_tuptable->vals[i],
													SPI_tuptable->tupdesc, 1));
	for (int i = 0; i < s->nsensitive; i++)
		pfree(s->sensitive[i]);
	if (s->sensitive != NULL)
		pfree(s->sensitive);
	s->sensitive = names;
	s->nsensitive = n;
}

static void
session_revalidate(AASession *s)
{
	AASpiState	st;
	uint64		gen;
	Oid			argtypes[1] = {UUIDOID};
	Datum		values[2];
	bool		isnull;
	const char *reason = NULL;

	if (s->revoked)
		session_invalid(s, s->invalid_reason);
	if (GetSessionUserId() != s->db_role)
		session_invalid(s, "The session user is not the principal's role.");
	if (aa_role_bypasses_rls(s->db_role))
		session_invalid(s, "The principal's role now bypasses row security.");
	if (!s->transaction_only && aa_require_transaction_only)
		session_invalid(s, "agentauth.require_transaction_only is now on.");

	/* first clear the flag and read the counter, then read the state */
	recheck_pending = false;
	gen = aa_generation();

	aa_spi_begin(&st, false);
	values[0] = UUIDPGetDatum(s->has_token ? &s->token : &s->principal);
	if (s->has_token)
	{
		aa_spi_select_latest(aa_spi_keep_plan(&revalidate_agent_plan,
											   REVALIDATE_AGENT_SQL, 1, argtypes),
							 values, NULL, 1);
		if (SPI_processed == 0)
			reason = "The token no longer exists.";
		else if (DatumGetBool(aa_spi_first_value(2, &isnull)))
			reason = "The token was revoked.";
		else if (strcmp(TextDatumGetCString(aa_spi_first_value(3, &isnull)), "active") != 0)
			reason = "The agent was suspended or retired.";
		else if (DatumGetTimestampTz(aa_spi_first_value(1, &isnull)) <= GetCurrentTimestamp())
			reason = "The token expired.";
		else if (!s->transaction_only && DatumGetBool(aa_spi_first_value(5, &isnull)))
			reason = "The principal now requires transaction_only sessions.";
	}
	else
	{
		Oid			htypes[2] = {UUIDOID, TIMESTAMPTZOID};

		/*
		 * its status changed since the session began: compared with what
		 * begin read, never with a clock (a standby's may differ)
		 */
		char		hnulls[2] = {' ', s->status_changed_at == DT_NOBEGIN ? 'n' : ' '};

		values[1] = TimestampTzGetDatum(s->status_changed_at);
		aa_spi_select_latest(aa_spi_keep_plan(&revalidate_human_plan,
											   REVALIDATE_HUMAN_SQL, 2, htypes),
							 values, hnulls, 1);
		if (SPI_processed == 0)
			reason = "The principal no longer exists.";
		else if (strcmp(TextDatumGetCString(aa_spi_first_value(1, &isnull)), "active") != 0)
			reason = "The principal was suspended or retired.";
		/* (1.1, found by review: idle through both, it lived on) */
		else if (DatumGetBool(aa_spi_first_value(4, &isnull)))
			reason = "The principal was suspended or retired, and reactivated since.";
		else if (!s->transaction_only && DatumGetBool(aa_spi_first_value(3, &isnull)))
			reason = "The principal now requires transaction_only sessions.";
	}
	if (reason == NULL)
		aa_session_load_sensitive(s);
	aa_spi_end(&st);

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
			   GetSessionUserId() == s->db_role &&
			   (s->transaction_only || !aa_require_transaction_only)))
		return;
	session_revalidate(s);
}

/* the token's patient list names the patient (sorted by strcmp: a binary search); true without a list */
bool
aa_session_token_names(const char *patient)
{
	int			lo = 0,
				hi;

	if (aa_session->npatients < 0)
		return true;
	hi = aa_session->npatients - 1;
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			c = strcmp(aa_session->patients[mid], patient);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/*
 * The session's delegation chain (token ids, root first) as a uuid[] for a
 * query; *isnull without one (a human session).
 */
Datum
aa_session_chain_array(bool *isnull)
{
	Datum	   *d;

	*isnull = (aa_session == NULL || aa_session->nchain <= 0);
	if (*isnull)
		return (Datum) 0;
	d = palloc(sizeof(Datum) * aa_session->nchain);
	for (int i = 0; i < aa_session->nchain; i++)
		d[i] = UUIDPGetDatum(&aa_session->chain[i]);
	return PointerGetDatum(construct_array(d, aa_session->nchain, UUIDOID,
										   UUID_LEN, false, TYPALIGN_CHAR));
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

