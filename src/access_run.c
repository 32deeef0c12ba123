/*-------------------------------------------------------------------------
 *
 * access_run.c
 *		The runs of a statement on protected tables: the records of the rows
 *		each run counted, and the checks before every run after the first.
 *
 *		A statement is one executor run; a cursor, or a portal fetched a few
 *		rows at a time, runs once per FETCH.  At the end of every run and at
 *		ExecutorEnd the counts of access.c become one `access` record per
 *		table x patient x action and one `denied` record per table x
 *		withheld patient x action (patient NULL for rows that name none);
 *		then aa_audit_wait().  If the statement fails, what was counted is
 *		emitted when its executor memory goes away (no wait: the error
 *		already reaches the client).  All the records of one query, of
 *		every run, carry one statement number (aa_audit_new_statement):
 *		the alert rules count them as one statement.
 *
 *		Rows that a later run returns may have been checked by an earlier
 *		one: a plan that keeps rows (Sort, Material, Hash, Agg, WindowAgg,
 *		CTEs and other subplans, Memoize, a merge, the outer row of a
 *		nested loop ...) or a function whose own statements read protected
 *		rows (a materialised set-returning function).  So before every run
 *		the session is checked again (28000 when revoked, expired,
 *		suspended, replaced; 42501 when ended), and when the plan may keep
 *		rows or a function read some, every patient an earlier run read is
 *		decided again once the decision generation moved: one now refused
 *		refuses the run (42501, recorded as `denied`).  A change for another
 *		patient disturbs nothing, and a plan that keeps no row needs no
 *		second decision: its rows are checked as they are returned.
 *
 *		A WITH HOLD cursor is read to its end at COMMIT and then fetched
 *		without the executor: one over a protected table is refused at
 *		ExecutorStart (columns.c), one over a function that reads protected
 *		rows at the end of the first run in which it does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/executor.h"
#include "nodes/plannodes.h"
#include "parser/parsetree.h"
#include "tcop/dest.h"
#include "tcop/pquery.h"
#include "utils/portal.h"

#include "access_int.h"

/* ------------------------------------------------------------------
 * The records of the rows counted
 * ------------------------------------------------------------------
 */

static int
cmp_patient(const void *a, const void *b)
{
	return strcmp((*(PatientAccess *const *) a)->patient.str,
				  (*(PatientAccess *const *) b)->patient.str);
}

static void inherit_patient(QueryDesc *outer, AAQueryAccess *from,
							RelAccess *ra, PatientAccess *pa);

/* the rows of a table that name no patient: one denied record per action */
static bool
flush_nopatient(RelAccess *ra, uint64 statement)
{
	bool		emitted = false;

	for (int idx = 0; idx < AA_NACTIONS; idx++)
	{
		AARecord	rec;
		AAJsonbBuilder authority;

		if (ra->nopatient[idx] == 0)
			continue;
		aa_jsonb_begin(&authority, NULL);
		aa_jsonb_add_string(&authority, "reason", "the row names no patient");
		aa_access_record_init(&rec, ra, idx, statement);
		rec.event = "denied";
		rec.row_count = ra->nopatient[idx];
		rec.outcome = "deny";
		rec.authority = aa_jsonb_end(&authority);
		ra->nopatient[idx] = 0;	/* before: see flush_query() */
		aa_audit_emit(&rec, false);
		emitted = true;
	}
	return emitted;
}

/* the query's statement number: all its records, of every run, share it */
static uint64
query_statement(AAQueryAccess *q)
{
	if (q->statement == 0)
		q->statement = aa_audit_new_statement();
	return q->statement;
}

/*
 * Emit the counted records of one query; returns whether any were.  With
 * inherit, the statements running it (a function's caller) learn which
 * patients it read.
 *
 * An emit may fail (the writer late, the queue full): each count is
 * cleared just before its record is emitted, and a relation counts as
 * flushed only once all its records are, so the flush at the query's end
 * or abort emits what an error left -- each record once, none lost.
 */
static bool
flush_query(AAQueryAccess *q, bool inherit)
{
	ListCell   *lc;
	bool		emitted = false;
	uint64		statement = query_statement(q);

	foreach(lc, q->rels)
	{
		RelAccess  *ra = lfirst(lc);
		PatientAccess *pa;
		PatientAccess **sorted;
		long		n = 0;

		if (!ra->any_counted || ra->inherited)
			continue;
		q->touched = true;
		if (flush_nopatient(ra, statement))
			emitted = true;
		if (ra->patients == NULL)
		{
			ra->any_counted = false;
			continue;
		}
		/* records in patient order: the same statement, the same log */
		sorted = palloc(sizeof(PatientAccess *) * (ra->patients->members + 1));
		for (uint32 i = 0; i < ra->patients->members; i++)
			sorted[n++] = aa_patient_at(ra->patients, i);
		qsort(sorted, n, sizeof(PatientAccess *), cmp_patient);
		for (long k = 0; k < n; k++)
		{
			pa = sorted[k];
			if (pa->allowed[AA_READ] > 0)
			{
				ListCell   *lc2;

				pa->read_before = true;
				if (inherit)
					foreach(lc2, aa_running)
						inherit_patient(lfirst(lc2), q, ra, pa);
			}
			for (int idx = 0; idx < AA_NACTIONS; idx++)
			{
				int64		allowed = pa->allowed[idx];
				int64		withheld = pa->withheld[idx];
				AARecord	rec;

				if (idx == AA_UPDATE && pa->written_new > allowed)
					allowed = pa->written_new;
				if (allowed == 0 && withheld == 0)
					continue;
				aa_access_record_init(&rec, ra, idx, statement);
				rec.patient = pa->patient.str;
				if (allowed > 0)
				{
					rec.event = "access";
					rec.row_count = allowed;
					rec.outcome = "permit";
					rec.authority = pa->decision[idx] ?
						aa_decision_authority(pa->decision[idx], pa->approval[idx]) :
						NULL;
					if (rec.authority != NULL &&
						rec.authority == pa->decision[idx]->authority)
					{
						rec.authority_canon = pa->decision[idx]->authority_canon;
						rec.authority_canon_len = pa->decision[idx]->authority_canon_len;
					}
					if (pa->btg[idx])
						rec.purpose = "BTG";
					pa->allowed[idx] = 0;
					if (idx == AA_UPDATE)
						pa->written_new = 0;
					aa_audit_emit(&rec, false);
					emitted = true;
				}
				if (withheld > 0)
				{
					rec.event = "denied";
					rec.row_count = withheld;
					rec.outcome = "deny";
					rec.purpose = NULL;
					rec.authority = pa->decision[idx] ?
						pa->decision[idx]->authority : NULL;
					rec.authority_canon = pa->decision[idx] ?
						pa->decision[idx]->authority_canon : NULL;
					rec.authority_canon_len = pa->decision[idx] ?
						pa->decision[idx]->authority_canon_len : 0;
					pa->withheld[idx] = 0;
					aa_audit_emit(&rec, false);
					emitted = true;
				}
			}
			pa->written_new = 0;
		}
		pfree(sorted);
		ra->any_counted = false;
	}
	return emitted;
}

/* the statement ran and no protected row reached its row check (access.c) */
static bool
flush_untouched(AAQueryAccess *q)
{
	if (q->touched || !q->in_session || q->runs == 0)
		return false;
	return aa_access_flush_untouched(q, query_statement(q));
}

/* ------------------------------------------------------------------
 * What a statement keeps across its runs
 * ------------------------------------------------------------------
 */

/*
 * Does this plan node scan a protected relation: one the statement's row
 * checks name, or another -- a partition or inheritance child of one, which
 * is protected itself while the row check names the table the statement
 * named (1.1, found by review: a cursor over a partitioned table was taken
 * for one that keeps nothing, and returned the rows of a patient whose
 * consent was withdrawn)?
 */
static bool
scans_protected(Plan *plan, PlannedStmt *ps, AAQueryAccess *q)
{
	Index		scanrelid = aa_plan_scanrelid(plan);
	Oid			relid;
	ListCell   *lc;

	if (scanrelid == 0 || scanrelid > list_length(ps->rtable))
		return false;
	relid = rt_fetch(scanrelid, ps->rtable)->relid;
	foreach(lc, q->rels)
		if (((RelAccess *) lfirst(lc))->relid == relid)
			return true;
	return aa_is_protected(relid);
}

/*
 * Walk a plan: *scans when the subtree scans a protected relation of the
 * statement, and the result says whether a node of it may keep such a row
 * (checked in one call of the executor) to return it in a later call.
 * Unknown nodes keep: only those listed below pass rows straight through.
 */
static bool
plan_keeps(Plan *plan, PlannedStmt *ps, AAQueryAccess *q, bool *scans)
{
	bool		keeps = false;
	bool		child_scans = false;
	bool		outer_scans = false;
	List	   *children = NIL;
	ListCell   *lc;

	*scans = false;
	if (plan == NULL)
		return false;
	children = aa_plan_children(plan);
	keeps = plan_keeps(outerPlan(plan), ps, q, &outer_scans);
	if (plan_keeps(innerPlan(plan), ps, q, &child_scans))
		keeps = true;
	child_scans |= outer_scans;
	foreach(lc, children)
	{
		bool		s;

		if (plan_keeps(lfirst(lc), ps, q, &s))
			keeps = true;
		child_scans |= s;
	}
	*scans = child_scans || scans_protected(plan, ps, q);

	switch (nodeTag(plan))
	{
			/* each row they return is one their child just returned */
		case T_Result:
		case T_Limit:
		case T_LockRows:
		case T_Append:
		case T_SubqueryScan:
		case T_Unique:
		case T_Gather:
		case T_BitmapAnd:
		case T_BitmapOr:
		case T_BitmapHeapScan:
		case T_ModifyTable:
			return keeps;
			/* the outer row stays while the inner side is read */
		case T_NestLoop:
			return keeps || outer_scans;
		default:
			return keeps || child_scans;
	}
}

/*
 * May the statement return, in a later run, a protected row that an
 * earlier run checked?  Values of subplans (InitPlans, hashed subplans,
 * CTEs) are kept by construction.
 */
static bool
statement_keeps(PlannedStmt *ps, AAQueryAccess *q)
{
	bool		scans;
	ListCell   *lc;

	if (plan_keeps(ps->planTree, ps, q, &scans))
		return true;
	foreach(lc, ps->subplans)
	{
		if (plan_keeps(lfirst(lc), ps, q, &scans) || scans)
			return true;
	}
	return false;
}

/*
 * A statement that ran this one (a function's caller, at any depth) may
 * keep what it returned: it learns that the patient was read, for the
 * checks before its own later runs.  Its context is made here if it has
 * none (it touches no protected table itself).
 */
static void
inherit_patient(QueryDesc *outer, AAQueryAccess *from, RelAccess *ra,
				PatientAccess *pa)
{
	AAQueryAccess *q = aa_access_find(outer);
	RelAccess  *to = NULL;
	PatientAccess *opa;
	ListCell   *lc;

	if (q == NULL)
	{
		q = aa_access_begin();
		aa_access_register(q, outer);
		/* this run is under way: the next one checks what it kept */
		q->runs = 1;
		q->run_dgen = 0;
	}
	if (!q->in_session)
	{
		memcpy(&q->session_id, &from->session_id, sizeof(pg_uuid_t));
		q->in_session = true;
	}
	q->nested = true;
	foreach(lc, q->rels)
	{
		RelAccess  *r = lfirst(lc);

		if (r->inherited && r->relid == ra->relid)
			to = r;
	}
	if (to == NULL)
	{
		MemoryContext oldcxt = MemoryContextSwitchTo(q->cxt);

		to = palloc0(sizeof(RelAccess));
		to->relid = ra->relid;
		to->relname = pstrdup(ra->relname);
		to->inherited = true;
		to->query = q;
		for (int idx = 0; idx < AA_NACTIONS; idx++)
			to->question[idx] = AA_QUESTION_UNKNOWN;
		to->ncols[AA_READ] = ra->ncols[AA_READ];
		to->cols[AA_READ] = palloc0(sizeof(char *) * (ra->ncols[AA_READ] + 1));
		for (int i = 0; i < ra->ncols[AA_READ]; i++)
			to->cols[AA_READ][i] = pstrdup(ra->cols[AA_READ][i]);
		to->nclasses[AA_READ] = ra->nclasses[AA_READ];
		to->classes[AA_READ] = palloc0(sizeof(char *) * (ra->nclasses[AA_READ] + 1));
		for (int i = 0; i < ra->nclasses[AA_READ]; i++)
			to->classes[AA_READ][i] = pstrdup(ra->classes[AA_READ][i]);
		to->nanyof[AA_READ] = ra->nanyof[AA_READ];
		to->anyof[AA_READ] = palloc0(sizeof(char *) * (ra->nanyof[AA_READ] + 1));
		for (int i = 0; i < ra->nanyof[AA_READ]; i++)
			to->anyof[AA_READ][i] = pstrdup(ra->anyof[AA_READ][i]);
		q->rels = lappend(q->rels, to);
		MemoryContextSwitchTo(oldcxt);
	}
	opa = aa_access_patient(to, pa->patient.str, pa->patient.len);
	to->any_counted = false;	/* its records are the function's */
	opa->read_before = true;
	opa->decided[AA_READ] = pa->decided[AA_READ];
	opa->dgen = pa->dgen;
}

/*
 * Before a later run of a statement that may keep rows: a patient an
 * earlier run read under a permit that the decision now refuses refuses
 * the run, recorded as denied.
 */
static void
refuse_changed(AAQueryAccess *q, uint64 dgen, bool this_run)
{
	ListCell   *lc;

	foreach(lc, q->rels)
	{
		RelAccess  *ra = lfirst(lc);

		if (ra->patients == NULL)
			continue;
		for (uint32 i = 0; i < ra->patients->members; i++)
		{
			PatientAccess *pa = aa_patient_at(ra->patients, i);
			AARecord	rec;
			const AADecision *d;
			const char *why;

			if (!pa->read_before && !(this_run && pa->allowed[AA_READ] > 0))
				continue;
			if (pa->dgen != (uint32) dgen)
			{
				memset(pa->decided, -1, sizeof(pa->decided));
				pa->dgen = (uint32) dgen;
			}
			if (aa_access_decide(ra, pa, AA_READ))
				continue;

			d = pa->decision[AA_READ];
			memset(&rec, 0, sizeof(rec));
			rec.event = "denied";
			rec.patient = pa->patient.str;
			rec.relation = ra->relname;
			rec.ncolumns = ra->ncols[AA_READ];
			rec.columns = (const char **) ra->cols[AA_READ];
			rec.classes = aa_access_record_classes(ra, AA_READ, &rec.nclasses);
			rec.action = aa_action_name(AA_ACT_READ);
			rec.row_count = -1;
			rec.outcome = "deny";
			rec.authority = d->authority;
			rec.detail = "{\"reason\": \"the decision changed while the statement kept rows of the patient\"}";
			rec.statement = query_statement(q);
			aa_audit_emit(&rec, false);
			why = aa_decision_text(d);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to read rows of a patient in table %s",
							ra->relname),
					 aa_errdetail_patient(psprintf("Patient \"%s\".  The statement keeps rows of the patient that it read before the decision changed: %s",
												   pa->patient.str, why),
										  psprintf("The statement keeps rows of a patient that it read before the decision changed: %s",
												   why)),
					 errhint("Close the cursor; a statement run again checks each row as it reads it.")));
		}
	}
}

/* ------------------------------------------------------------------
 * The statement's life in the executor
 * ------------------------------------------------------------------
 */

static void
unregister_query(AAQueryAccess *q)
{
	AAQueryAccess **pp;

	if (!q->live)
		return;
	for (pp = &aa_live_queries; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q)
		{
			*pp = q->next;
			break;
		}
	q->live = false;
}

/* The statement holds no kept decision any more: its pins go. */
static void
unpin_decisions(AAQueryAccess *q)
{
	ListCell   *lc;

	foreach(lc, q->pins)
		aa_consent_unpin(lfirst(lc));
	list_free(q->pins);
	q->pins = NIL;
}

/*
 * The statement's executor memory is going away.  After an error, emit
 * what was counted: a reader's error or rollback does not erase its
 * records.
 */
static void
query_memory_gone(void *arg)
{
	AAQueryAccess *q = (AAQueryAccess *) arg;

	unregister_query(q);
	PG_TRY();
	{
		if (!q->done)
		{
			q->done = true;
			/* non-transactional records reach the queue whatever the abort */
			flush_query(q, false);
			flush_untouched(q);
		}
	}
	PG_CATCH();
	{
		/* the decisions are not needed any more: no arena kept forever */
		unpin_decisions(q);
		PG_RE_THROW();
	}
	PG_END_TRY();
	unpin_decisions(q);
}

/* After ExecutorStart: the context lives and dies with the executor's memory. */
void
aa_access_register(AAQueryAccess *q, QueryDesc *qd)
{
	MemoryContextSetParent(q->cxt, qd->estate->es_query_cxt);
	q->qd = qd;
	q->holds = q->rels != NIL && statement_keeps(qd->plannedstmt, q);
	q->subxid = GetCurrentSubTransactionId();
	q->cb.func = query_memory_gone;
	q->cb.arg = q;
	MemoryContextRegisterResetCallback(q->cxt, &q->cb);
	q->next = aa_live_queries;
	aa_live_queries = q;
	q->live = true;
}

/* ExecutorRun or ExecutorFinish of qd begins / ends (also on error) */
void
aa_access_enter(QueryDesc *qd)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

	aa_running = lcons(qd, aa_running);
	MemoryContextSwitchTo(oldcxt);
}

void
aa_access_leave(void)
{
	aa_running = list_delete_first(aa_running);
}

/*
 * An ExecutorRun of qd begins (a statement, or a FETCH of a cursor): the
 * session is still the one it was checked for, and still valid; what an
 * earlier run may have kept is still permitted.
 */
void
aa_access_run_begin(QueryDesc *qd)
{
	AAQueryAccess *q = aa_access_find(qd);
	uint64		dgen;

	if (q == NULL)
		return;
	aa_audit_push_retained();
	q->in_run = true;
	q->run_subxid = GetCurrentSubTransactionId();
	if (!q->in_session)
		return;
	if (aa_session == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no agentauth session"),
				 errdetail("The session ended while a statement on protected tables was open.")));
	if (memcmp(&aa_session->id, &q->session_id, sizeof(pg_uuid_t)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the agentauth session changed while a statement on protected tables was open"),
				 errhint("Begin or end a session in a statement of its own, with no cursor open.")));
	aa_session_check();
	/* a cursor fetched by another role's trigger (other_code.c) */
	if (q->rels != NIL)
		aa_other_code_read(((RelAccess *) linitial(q->rels))->relname);
	/* a log already too far behind: refused before a row goes out */
	aa_audit_check_writer();

	/*
	 * A loop over protected rows that commits inside it (a FOR loop of a
	 * procedure or DO block, a cursor loop): at the COMMIT PostgreSQL reads
	 * the rest of the loop's query into a store, and feeds the loop from it
	 * afterwards with no check -- past a revocation or a consent
	 * withdrawal, as a WITH HOLD cursor (1.1: the loop went on).  That read
	 * is this run: a pinned portal being persisted into its hold store.
	 */
	if (ActivePortal != NULL && ActivePortal->queryDesc == qd &&
		ActivePortal->portalPinned && ActivePortal->holdStore != NULL &&
		ActivePortal->strategy == PORTAL_ONE_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot commit inside a loop over rows of protected tables"),
				 errdetail("The rest of the loop's rows would be kept after the transaction, beyond a revocation or a consent withdrawal."),
				 errhint("Commit after the loop, or read the rows in batches, each in a transaction of its own.")));
	dgen = aa_decision_gen();
	if (q->runs++ > 0 && (q->holds || q->nested) && dgen != q->run_dgen)
		refuse_changed(q, dgen, false);
	q->run_dgen = dgen;
}

/*
 * The rows of a run whose plan keeps protected rows (a sort, a hash, an
 * aggregate ...), as they are sent: the plan read them, checked, before
 * it sends the first, so a revocation, an expiry or a consent withdrawal
 * that commits meanwhile was not seen by the row check (1.1: a sorted
 * statement went on sending a revoked session's rows).  Before each row,
 * the session is checked again (one atomic read), and when a decision has
 * changed, each patient read so far is decided again: one now refused
 * refuses the statement, recorded as denied -- what the next FETCH of a
 * cursor does, here for the statement's own rows.
 */
typedef struct OutputCheck
{
	DestReceiver pub;
	DestReceiver *inner;
	AAQueryAccess *q;
} OutputCheck;

static bool
output_receive(TupleTableSlot *slot, DestReceiver *self)
{
	OutputCheck *c = (OutputCheck *) self;
	AAQueryAccess *q = c->q;
	uint64		dgen;

	if (aa_session == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no agentauth session"),
				 errdetail("The session ended while a statement on protected tables was sending rows.")));
	aa_session_check();
	dgen = aa_decision_gen();
	if (unlikely(dgen != q->run_dgen))
	{
		refuse_changed(q, dgen, true);
		q->run_dgen = dgen;
	}
	return c->inner->receiveSlot(slot, c->inner);
}

static void
output_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	OutputCheck *c = (OutputCheck *) self;

	c->inner->rStartup(c->inner, operation, typeinfo);
}

static void
output_shutdown(DestReceiver *self)
{
	OutputCheck *c = (OutputCheck *) self;

	c->inner->rShutdown(c->inner);
}

static void
output_destroy(DestReceiver *self)
{
	pfree(self);
}

/*
 * The receiver a run of qd sends its rows to: dest itself, or, for a
 * statement of a session whose plan keeps protected rows, dest behind the
 * check above (allocated in the query's memory; columns.c swaps it in for
 * the run).
 */
DestReceiver *
aa_access_output_dest(QueryDesc *qd, DestReceiver *dest)
{
	AAQueryAccess *q = aa_access_find(qd);
	OutputCheck *c;

	if (q == NULL || !q->in_session || !q->holds || dest == NULL)
		return dest;
	/* one per statement, for all its runs (a FETCH, then a MOVE ...) */
	c = (OutputCheck *) q->output;
	if (c == NULL)
	{
		c = MemoryContextAllocZero(q->cxt, sizeof(OutputCheck));
		c->pub.receiveSlot = output_receive;
		c->pub.rStartup = output_startup;
		c->pub.rShutdown = output_shutdown;
		c->pub.rDestroy = output_destroy;
		c->q = q;
		q->output = &c->pub;
	}
	c->pub.mydest = dest->mydest;
	c->inner = dest;
	return &c->pub;
}

/* An ExecutorRun of qd ended: a cascade is refused, the counts recorded. */
void
aa_access_run_done(QueryDesc *qd)
{
	AAQueryAccess *q = aa_access_find(qd);

	if (q == NULL)
		return;
	q->in_run = false;
	if (q->cascade_rel != NULL && qd->estate->es_processed > 0)
		aa_refuse_cascade(q->cascade_rel, q->cascade_action,
						  qd->estate->es_processed);
	if (flush_query(q, true))
		aa_audit_wait();

	/* a function of a WITH HOLD cursor read protected rows */
	if (q->nested && ActivePortal != NULL && ActivePortal->queryDesc == qd &&
		(ActivePortal->cursorOptions & CURSOR_OPT_HOLD))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot keep a WITH HOLD cursor over rows of protected tables"),
				 errdetail("A function of the cursor read rows of a protected table; they would be kept after the transaction, beyond a revocation or a consent withdrawal."),
				 errhint("Declare the cursor without WITH HOLD inside a transaction: every FETCH is checked.")));
}

/* ExecutorEnd of qd: the last counts recorded. */
void
aa_access_end(QueryDesc *qd)
{
	AAQueryAccess *q = aa_access_find(qd);

	if (q != NULL)
	{
		bool		emitted = flush_query(q, true);

		if (flush_untouched(q))
			emitted = true;
		q->done = true;
		unregister_query(q);
		unpin_decisions(q);
		if (emitted)
			aa_audit_wait();
	}
}

/*
 * The transaction aborts: emit what every statement still alive counted.
 *
 * A statement's counts are emitted when its executor memory goes
 * (query_memory_gone).  A top-level statement's goes with its portal,
 * before the abort's callbacks; but a query that a function runs inside a
 * statement (PL/pgSQL, SPI) lives in the transaction's memory, which goes
 * only at the transaction's cleanup -- after audit.c's abort callback has
 * pushed the backend's records into the queue, and at backend exit after
 * its exit callback too.  1.1 before: a terminate while such a query ran
 * lost its records, a cancel left them until the session's next
 * statement.  They are emitted here, and audit.c's callback, which runs
 * after this one (agentauth.c registers it first), pushes them.
 */
static void
flush_live_queries(void)
{
	for (AAQueryAccess *q = aa_live_queries; q != NULL; q = q->next)
	{
		if (q->done)
			continue;
		q->done = true;			/* first: an error in it is not met again */
		flush_query(q, false);
		flush_untouched(q);
	}
}

/*
 * A subtransaction aborts (ROLLBACK TO SAVEPOINT, a PL/pgSQL EXCEPTION
 * block): the statements begun in it (or in subtransactions nested in it)
 * will never run again, and their memory goes only at its cleanup, after
 * audit.c's callback, which pushes (1.1: their records waited in the
 * backend until a later push -- an idle transaction's, indefinitely).  So
 * do the counts of a run that failed in it of a statement begun before it
 * (a cursor's FETCH: PostgreSQL marks the cursor failed, and it is not
 * fetched again).
 */
static void
access_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (AAQueryAccess *q = aa_live_queries; q != NULL; q = q->next)
	{
		if (q->done)
			continue;
		if (q->subxid >= mySubid)
			q->done = true;
		else if (!q->in_run || q->run_subxid < mySubid)
			continue;
		q->in_run = false;
		flush_query(q, false);
		if (q->done)
			flush_untouched(q);
	}
}

/*
 * A statement on protected tables is running -- not a cursor between two
 * FETCHes.  begin_session() and end_session() refuse to run inside one:
 * the records of the rows it read before would carry the next session's
 * token, purpose and on-behalf-of, or no principal at all (1.1).
 */
bool
aa_access_statement_running(void)
{
	for (AAQueryAccess *q = aa_live_queries; q != NULL; q = q->next)
		if (q->in_run && !q->done)
			return true;
	return false;
}

/* The transaction ended: nothing of its statements is running any more. */
static void
access_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		flush_live_queries();
		list_free(aa_running);
		aa_running = NIL;
	}
}

void
aa_access_init(void)
{
	RegisterXactCallback(access_xact_callback, NULL);
	RegisterSubXactCallback(access_subxact_callback, NULL);
	/* at backend exit, while the session's identity is still there */
	aa_session_on_exit(flush_live_queries);
}
