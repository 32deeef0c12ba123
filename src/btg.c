/*-------------------------------------------------------------------------
 *
 * btg.c
 *		Break-the-glass overrides and clinician approvals (SPEC 8, 9).
 *
 *		The SQL functions of src/sql/40_btg.sql validate, write the catalog
 *		rows and audit; what they need from the backend (the session, the
 *		caller, the audit entry point) comes from the private helpers here.
 *
 *		Overrides of the current session are cached in aa_session->break_glass
 *		(the session's memory belongs to session.c; this file only fills the
 *		two fields, in a child context of the session's).  The cache is loaded
 *		from agentauth.break_glass, with the latest snapshot, only in a session
 *		that has broken the glass, and reloaded when the generation counter
 *		moves (an override ended by a privacy officer elsewhere) or a
 *		(sub)transaction aborts.  aa_btg_active_for() is a compare of the
 *		session id, one atomic read, a string compare per override and, for
 *		a match, the clock against ends_at.
 *
 *		Approvals are not cached: each write that needs one consumes a use
 *		with an UPDATE ... WHERE uses_left > 0 in the writer's
 *		transaction.  The row lock serializes concurrent writers; the one
 *		that waits re-checks the row after the first commits, so a last use
 *		goes to exactly one of them, and a write that rolls back gives its
 *		use back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/memnodes.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "agentauth.h"

/*
 * A session that broke the glass has a child context of this name in its
 * memory (aa_session->cxt); the cached overrides live there.  Its existence
 * is the mark "this session may own rows in agentauth.break_glass", so
 * sessions that never broke the glass never query anything, and the mark
 * goes with the session's memory (also when an aborted transaction restores
 * an earlier session).
 */
#define BTG_CONTEXT_NAME	"agentauth break-the-glass"

/* the session the statics below describe */
static pg_uuid_t btg_session_id;
static bool btg_session_known = false;
static MemoryContext btg_context = NULL;	/* NULL: never broke the glass */
static uint64 btg_loaded_gen = 0;	/* 0: reload before use */
static bool btg_callbacks_registered = false;

/* the queries, schema-qualified (the caller's search_path is in force) */
#define LOAD_SQL \
	"SELECT id, patient, ends_at FROM agentauth.break_glass " \
	"WHERE session_id OPERATOR(pg_catalog.=) $1 AND ended_at IS NULL"

/*
 * On a hot standby (issue "Read replicas"): no override can start there (it
 * is a write), and a session there is not the primary's session that
 * started one.  An override started on the primary takes effect, after
 * replay, for the standby's sessions of the same credential: the token an
 * agent broke the glass with, or the human principal without a token --
 * unless the principal's status changed since it began (1.1: a suspension
 * passes by an override whose row another transaction holds, and a
 * reactivation must not bring it back).
 */
#define LOAD_STANDBY_SQL \
	"SELECT b.id, b.patient, b.ends_at FROM agentauth.break_glass b " \
	"WHERE b.ended_at IS NULL AND CASE WHEN $1 IS NULL " \
	"THEN b.token IS NULL AND b.principal OPERATOR(pg_catalog.=) $2 " \
	"ELSE b.token OPERATOR(pg_catalog.=) $1 END " \
	"AND NOT EXISTS (SELECT FROM agentauth.principal p " \
	" WHERE p.id OPERATOR(pg_catalog.=) b.principal " \
	" AND p.status_changed_at OPERATOR(pg_catalog.>=) b.started_at)"

/*
 * An approval is used only while its agent and its approver are active and
 * have been since it was granted (1.1): set_principal_status ends the
 * approvals of a principal it suspends, but passes by one an agent's open
 * transaction is using rather than wait for it, and a reactivation must
 * not bring such an approval back (found by review: one granted to an
 * agent survived its suspension).
 */
#define AA_APPROVAL_PRINCIPALS_SQL \
	"AND NOT EXISTS (SELECT FROM agentauth.principal p " \
	" WHERE p.id OPERATOR(pg_catalog.=) ANY (ARRAY[agent, approved_by]) " \
	" AND (p.status OPERATOR(pg_catalog.<>) 'active' " \
	"  OR p.status_changed_at OPERATOR(pg_catalog.>=) approved_at)) "

#define FIND_APPROVAL_SQL \
	"SELECT id FROM agentauth.approval " \
	"WHERE agent OPERATOR(pg_catalog.=) $1 AND relation OPERATOR(pg_catalog.=) $2 " \
	"AND patient OPERATOR(pg_catalog.=) $3 AND action OPERATOR(pg_catalog.=) $4 " \
	"AND uses_left OPERATOR(pg_catalog.>) 0 " \
	"AND expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp() " \
	AA_APPROVAL_PRINCIPALS_SQL \
	"ORDER BY expires_at, id"

/*
 * From 1.1 an approval covers agent writes under one of the approver's
 * registered purposes only ($5, the agent session's purpose).  Until ALTER
 * EXTENSION UPDATE adds approval.purposes, the 1.0 rule (any purpose)
 * stands.
 */
#define FIND_APPROVAL_BY_PURPOSE_SQL \
	"SELECT id FROM agentauth.approval " \
	"WHERE agent OPERATOR(pg_catalog.=) $1 AND relation OPERATOR(pg_catalog.=) $2 " \
	"AND patient OPERATOR(pg_catalog.=) $3 AND action OPERATOR(pg_catalog.=) $4 " \
	"AND $5 OPERATOR(pg_catalog.=) ANY (purposes) " \
	"AND uses_left OPERATOR(pg_catalog.>) 0 " \
	"AND expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp() " \
	AA_APPROVAL_PRINCIPALS_SQL \
	"ORDER BY expires_at, id"

#define USE_APPROVAL_SQL \
	"UPDATE agentauth.approval SET uses_left = uses_left OPERATOR(pg_catalog.-) 1 " \
	"WHERE id OPERATOR(pg_catalog.=) $1 AND uses_left OPERATOR(pg_catalog.>) 0 " \
	"AND expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp() " \
	"RETURNING id"

/* prepared once per backend */
static SPIPlanPtr load_plan = NULL;
static SPIPlanPtr load_standby_plan = NULL;
static SPIPlanPtr find_approval_plan = NULL;
static SPIPlanPtr use_approval_plan = NULL;

static MemoryContext
btg_find_context(bool create)
{
	for (MemoryContext c = aa_session->cxt->firstchild; c != NULL; c = c->nextchild)
		if (strcmp(c->name, BTG_CONTEXT_NAME) == 0)
			return c;
	if (!create)
		return NULL;
	return AllocSetContextCreate(aa_session->cxt, BTG_CONTEXT_NAME,
								 ALLOCSET_SMALL_SIZES);
}

/* Point the statics at the current session; false when there is none. */
static bool
btg_current(void)
{
	if (aa_session == NULL)
		return false;
	if (btg_session_known &&
		memcmp(&btg_session_id, &aa_session->id, sizeof(pg_uuid_t)) == 0)
		return true;
	memcpy(&btg_session_id, &aa_session->id, sizeof(pg_uuid_t));
	btg_session_known = true;
	/* a standby session's overrides come from the replayed table */
	btg_context = btg_find_context(RecoveryInProgress());
	btg_loaded_gen = 0;
	return true;
}

/* an abort may have taken an override with it: reload before next use */
static void
btg_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		btg_loaded_gen = 0;
}

static void
btg_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		btg_loaded_gen = 0;
}

/*
 * Load the open overrides of the current session into aa_session, with the
 * latest snapshot (a REPEATABLE READ transaction must still see an override
 * ended elsewhere).  Expired ones are dropped at use, not here.
 */
static void
btg_reload(void)
{
	uint64		gen = aa_generation();	/* before reading: see shmem.c */
	AASpiState	st;
	Oid			types[1] = {UUIDOID};
	Datum		arg;
	char		nulls[1] = {' '};
	AABreakGlass *list = NULL;
	int			n;

	aa_spi_begin(&st, false);
	if (RecoveryInProgress())
	{
		Oid			stypes[2] = {UUIDOID, UUIDOID};
		Datum		sargs[2];
		char		snulls[2] = {' ', ' '};

		sargs[0] = UUIDPGetDatum(&aa_session->token);
		snulls[0] = aa_session->has_token ? ' ' : 'n';
		sargs[1] = UUIDPGetDatum(&aa_session->principal);
		aa_spi_select_latest(aa_spi_keep_plan(&load_standby_plan, LOAD_STANDBY_SQL,
											  2, stypes),
							 sargs, snulls, 0);
	}
	else
	{
		arg = UUIDPGetDatum(&aa_session->id);
		aa_spi_select_latest(aa_spi_keep_plan(&load_plan, LOAD_SQL, 1, types),
							 &arg, nulls, 0);
	}

	/* the new list replaces the old one in our child of the session's memory */
	MemoryContextReset(btg_context);
	n = (int) SPI_processed;
	if (n > 0)
	{
		list = MemoryContextAllocZero(btg_context, sizeof(AABreakGlass) * n);
		for (int i = 0; i < n; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			Datum		d;

			d = SPI_getbinval(tup, desc, 1, &isnull);
			memcpy(&list[i].id, DatumGetUUIDP(d), sizeof(pg_uuid_t));
			d = SPI_getbinval(tup, desc, 2, &isnull);
			list[i].patient = MemoryContextStrdup(btg_context,
												  TextDatumGetCString(d));
			d = SPI_getbinval(tup, desc, 3, &isnull);
			list[i].ends_at = DatumGetTimestampTz(d);
		}
	}
	aa_spi_end(&st);

	aa_session->break_glass = list;
	aa_session->nbreak_glass = n;
	btg_loaded_gen = gen;
}

/* bring aa_session->break_glass up to date; false when there is none */
static bool
btg_fresh(void)
{
	if (!btg_current() || btg_context == NULL)
		return false;
	if (btg_loaded_gen == 0 || btg_loaded_gen != aa_generation())
		btg_reload();
	return aa_session->nbreak_glass > 0;
}

/*
 * The per-row hook of the row check: the active override of the current
 * session for this patient, or NULL.
 */
const AABreakGlass *
aa_btg_active_for(const char *patient)
{
	TimestampTz now = 0;

	if (patient == NULL || !btg_fresh())
		return NULL;
	for (int i = 0; i < aa_session->nbreak_glass; i++)
	{
		const AABreakGlass *bg = &aa_session->break_glass[i];

		if (strcmp(bg->patient, patient) != 0)
			continue;
		if (now == 0)
			now = GetCurrentTimestamp();
		if (bg->ends_at > now)
			return bg;
	}
	return NULL;
}

/*
 * Bring aa_session->break_glass up to date and drop the expired entries, for
 * whoami() and explain_access().
 */
void
aa_btg_refresh(void)
{
	TimestampTz now;
	int			j = 0;

	if (!btg_fresh())
		return;
	now = GetCurrentTimestamp();
	for (int i = 0; i < aa_session->nbreak_glass; i++)
		if (aa_session->break_glass[i].ends_at > now)
			aa_session->break_glass[j++] = aa_session->break_glass[i];
	aa_session->nbreak_glass = j;
}

/*
 * Consume one use of an approval for (session agent, relid, patient,
 * action), in the writer's transaction; raise 42501 when there is none.
 */
void
aa_approval_consume(Oid relid, const char *patient, const char *action,
					pg_uuid_t *approval, const AARecord *denied)
{
	AASpiState	st;
	Oid			types[5] = {UUIDOID, OIDOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	uint64		ncand;
	pg_uuid_t  *cand;
	bool		found = false;

	if (aa_session == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no agentauth session")));

	aa_spi_begin(&st, false);
	if (find_approval_plan == NULL)
	{
		Oid			approval_rel = get_relname_relid("approval",
													 get_namespace_oid(AA_SCHEMA, false));
		bool		by_purpose = OidIsValid(approval_rel) &&
			get_attnum(approval_rel, "purposes") != InvalidAttrNumber;

		aa_spi_keep_plan(&find_approval_plan,
						 by_purpose ? FIND_APPROVAL_BY_PURPOSE_SQL : FIND_APPROVAL_SQL,
						 5, types);
	}
	aa_spi_keep_plan(&use_approval_plan, USE_APPROVAL_SQL, 1, types);
	args[0] = UUIDPGetDatum(&aa_session->principal);
	args[1] = ObjectIdGetDatum(relid);
	args[2] = CStringGetTextDatum(patient);
	args[3] = CStringGetTextDatum(action);
	args[4] = CStringGetTextDatum(aa_session->purpose ? aa_session->purpose : "");
	/*
	 * On the latest snapshot, whatever the transaction's isolation (1.1,
	 * found by review): a REPEATABLE READ transaction that had taken a use
	 * before its approver's suspension -- which passes by the row it holds
	 * -- saw the approver active still, and went on using the approval
	 */
	aa_spi_select_latest(find_approval_plan, args, nulls, 0);
	ncand = SPI_processed;
	cand = palloc(sizeof(pg_uuid_t) * Max(ncand, 1));
	for (uint64 i = 0; i < ncand; i++)
	{
		bool		isnull;

		memcpy(&cand[i],
			   DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[i],
										   SPI_tuptable->tupdesc, 1, &isnull)),
			   sizeof(pg_uuid_t));
	}

	/*
	 * Take a use of the first candidate still usable.  A concurrent writer
	 * holding the row makes us wait; its commit leaves us re-checking the
	 * newest version (uses_left > 0), its rollback leaves the use to us.
	 */
	for (uint64 i = 0; i < ncand && !found; i++)
	{
		Datum		id = UUIDPGetDatum(&cand[i]);

		if (SPI_execute_plan(use_approval_plan, &id, nulls, false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not consume an approval");
		if (SPI_processed == 1)
		{
			memcpy(approval, &cand[i], sizeof(pg_uuid_t));
			found = true;
		}
	}
	aa_spi_end(&st);

	if (!found)
	{
		char	   *relname = get_rel_name(relid);
		char	   *nspname = get_namespace_name(get_rel_namespace(relid));
		const char *agent = aa_session->name ? aa_session->name : "?";
		const char *table = relname && nspname ? aa_qualified_name(nspname, relname) : "?";

		/*
		 * On record before the refusal, as a write consent refuses is (1.1:
		 * a write refused for want of an approval left no record at all):
		 * the caller's record, the statement's columns and classes in it
		 */
		if (denied != NULL)
			aa_audit_emit(denied, false);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("this write needs a clinician's approval"),
				 aa_errdetail_patient(psprintf("No unused, unexpired approval covers agent \"%s\", table %s, patient \"%s\" and action %s.",
											   agent, table, patient, action),
									  psprintf("No unused, unexpired approval covers agent \"%s\", table %s and action %s for the patient",
											   agent, table, action)),
				 errhint("A clinician grants one with agentauth.approve_action().")));
	}
}

/*
 * A session's end takes its overrides along: mark the open ones ended and
 * audit their end.  session.c calls it (aa_session_on_end), in a
 * transaction, while aa_session is still set, at every end: end_session(),
 * a new session replacing it, DISCARD ALL, the commit that ends a
 * transaction-only session, and the backend's exit.  A standby matches
 * overrides by token and principal, not by session: one left open would
 * serve the token's next session there until its time ran out.
 */
static void
btg_session_end(void)
{
	AASpiState	st;
	Datum		arg;
	char		nulls[1] = {' '};
	uint64		n;
	char	  **ids;
	char	  **patients;
	MemoryContext caller = CurrentMemoryContext;

	if (!btg_current() || btg_context == NULL)
		return;

	/*
	 * At the backend's exit nothing can end a wait (proc_exit holds
	 * interrupts off, so no lock_timeout fires): a table lock another
	 * transaction holds on the overrides or their indexes (a REINDEX, a
	 * LOCK TABLE) leaves them to their time, as a held row does below
	 */
	if (proc_exit_inprogress)
	{
		Oid			rel = get_relname_relid("break_glass", get_namespace_oid(AA_SCHEMA, true));
		Relation	r;
		List	   *indexes;
		ListCell   *lc;

		if (!OidIsValid(rel) || !ConditionalLockRelationOid(rel, RowExclusiveLock))
			return;
		r = relation_open(rel, NoLock);
		indexes = RelationGetIndexList(r);
		relation_close(r, NoLock);
		foreach(lc, indexes)
			if (!ConditionalLockRelationOid(lfirst_oid(lc), RowExclusiveLock))
				return;
	}

	aa_spi_begin(&st, false);
	{
		Oid			types[1] = {UUIDOID};

		/*
		 * At the backend's exit no interrupt or lock_timeout can end a wait
		 * (proc_exit holds them off): an override whose row another
		 * transaction holds is skipped, left to its time, rather than the
		 * exit waiting on that transaction
		 */
		arg = UUIDPGetDatum(&aa_session->id);
		if (SPI_execute_with_args(proc_exit_inprogress ?
								  "UPDATE agentauth.break_glass "
								  "SET ended_at = pg_catalog.clock_timestamp(), ended_by = 'session end' "
								  "WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT b.id FROM agentauth.break_glass b "
								  "WHERE b.session_id OPERATOR(pg_catalog.=) $1 AND b.ended_at IS NULL "
								  "AND b.ends_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp() "
								  "FOR UPDATE SKIP LOCKED)) "
								  "RETURNING id::pg_catalog.text, patient" :
								  "UPDATE agentauth.break_glass "
								  "SET ended_at = pg_catalog.clock_timestamp(), ended_by = 'session end' "
								  "WHERE session_id OPERATOR(pg_catalog.=) $1 AND ended_at IS NULL "
								  "AND ends_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp() "
								  "RETURNING id::pg_catalog.text, patient",
								  1, types, &arg, nulls, false, 0) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not end break-the-glass overrides");
	}
	n = SPI_processed;
	ids = MemoryContextAlloc(caller, sizeof(char *) * Max(n, 1));
	patients = MemoryContextAlloc(caller, sizeof(char *) * Max(n, 1));
	for (uint64 i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(caller);

		ids[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		patients[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		MemoryContextSwitchTo(old);
	}
	aa_spi_end(&st);

	for (uint64 i = 0; i < n; i++)
	{
		AARecord	rec;
		AAJsonbBuilder authority;

		aa_jsonb_begin(&authority, NULL);
		aa_jsonb_add_string(&authority, "break_glass", ids[i]);
		memset(&rec, 0, sizeof(rec));
		rec.event = "break_glass_end";
		rec.patient = patients[i];
		rec.row_count = -1;
		rec.authority = aa_jsonb_end(&authority);
		rec.outcome = "permit";
		rec.purpose = "BTG";
		rec.detail = psprintf("{\"break_glass\": \"%s\", \"ended_by\": \"session end\"}", ids[i]);
		aa_audit_emit(&rec, true);
	}
	if (n > 0)
		aa_generation_bump_at_commit();
	/* an abort restores the session: reload then */
	btg_loaded_gen = 0;
}

/* ---------------------------------------------------------------------
 * Private SQL helpers of src/sql/40_btg.sql (no grant to PUBLIC)
 * ---------------------------------------------------------------------
 */

void
aa_btg_init(void)
{
	aa_session_on_end(btg_session_end);
}

PG_FUNCTION_INFO_V1(aa_btg_session);

/*
 * agentauth._btg_session(): the current session and the caller, as the
 * override and approval functions need them.  Every session field is NULL
 * when the backend has no session; a session that is no longer valid
 * raises 28000 here (aa_session_check).
 */
Datum
aa_btg_session(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[10];
	bool		nulls[10];
	Oid			outer = GetOuterUserId();

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	if (desc->natts != 10)
		elog(ERROR, "agentauth._btg_session() has an unexpected result type");
	memset(nulls, true, sizeof(nulls));

	aa_other_code_session_call("agentauth's override and approval functions");
	if (aa_session != NULL)
		aa_session_check();
	if (aa_session != NULL)
	{
		values[0] = UUIDPGetDatum(aa_uuid_copy(&aa_session->id));
		nulls[0] = false;
		values[1] = UUIDPGetDatum(aa_uuid_copy(&aa_session->principal));
		nulls[1] = false;
		values[2] = CStringGetTextDatum(aa_session->is_agent ? "agent" : "human");
		nulls[2] = false;
		if (aa_session->has_token)
		{
			values[3] = UUIDPGetDatum(aa_uuid_copy(&aa_session->token));
			nulls[3] = false;
		}
		if (aa_session->on_behalf_of != NULL)
		{
			values[4] = CStringGetTextDatum(aa_session->on_behalf_of);
			nulls[4] = false;
		}
		if (aa_session->npatients >= 0)
		{
			values[5] = aa_cstrings_to_text_array(aa_session->patients,
												  aa_session->npatients);
			nulls[5] = false;
		}
		values[6] = BoolGetDatum(aa_session->can_break_glass);
		nulls[6] = false;
		values[7] = BoolGetDatum(aa_session->can_approve);
		nulls[7] = false;
	}
	values[8] = ObjectIdGetDatum(outer);
	nulls[8] = false;
	values[9] = ObjectIdGetDatum(GetSessionUserId());
	nulls[9] = false;

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

PG_FUNCTION_INFO_V1(aa_btg_changed);

/*
 * agentauth._btg_changed(session uuid): an override of that session was
 * started or ended in this transaction.  Every backend reloads after our
 * commit; this one at once when it is the session's own.
 */
Datum
aa_btg_changed(PG_FUNCTION_ARGS)
{
	if (!btg_callbacks_registered)
	{
		RegisterXactCallback(btg_xact_callback, NULL);
		RegisterSubXactCallback(btg_subxact_callback, NULL);
		btg_callbacks_registered = true;
	}
	if (!PG_ARGISNULL(0) && btg_current() &&
		memcmp(PG_GETARG_UUID_P(0), &aa_session->id, sizeof(pg_uuid_t)) == 0)
	{
		btg_context = btg_find_context(true);
		btg_loaded_gen = 0;
		aa_session->broke_glass = true;
	}
	aa_generation_bump_at_commit();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(aa_btg_audit);

/*
 * agentauth._btg_audit(event, patient, relation, action, authority jsonb,
 *                      detail jsonb, purpose text): an administrative record
 * of this module, recorded iff the transaction commits.  The principal and
 * token are the caller's session's.
 */
Datum
aa_btg_audit(PG_FUNCTION_ARGS)
{
	AARecord	rec;

	static const char *const btg_events[] = {
		"break_glass_start", "break_glass_end", "break_glass_review", "approval_granted", NULL
	};

	memset(&rec, 0, sizeof(rec));
	rec.event = aa_text_arg(fcinfo, 0, "audit event", true, AA_MAX_NAME_LEN);
	/* the events of src/sql/40_btg.sql only (as agentauth._audit()'s) */
	if (!aa_str_in_list(rec.event, btg_events))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentauth._btg_audit() does not record %s events", rec.event)));
	if (!PG_ARGISNULL(1))
		rec.patient = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(2))
		rec.relation = text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (!PG_ARGISNULL(3))
		rec.action = text_to_cstring(PG_GETARG_TEXT_PP(3));
	if (!PG_ARGISNULL(4))
		rec.authority = PG_GETARG_JSONB_P(4);
	if (!PG_ARGISNULL(5))
		rec.detail = DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(5)));
	if (!PG_ARGISNULL(6))
		rec.purpose = text_to_cstring(PG_GETARG_TEXT_PP(6));
	rec.row_count = -1;
	rec.outcome = "permit";
	aa_audit_emit(&rec, true);
	PG_RETURN_VOID();
}
