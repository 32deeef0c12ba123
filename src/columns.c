/*-------------------------------------------------------------------------
 *
 * columns.c
 *		Executor hooks for protected tables: minimum necessary by column,
 *		checked before the statement reads a row.
 *
 *		ExecutorStart: for every protected relation in the range table,
 *		every column the statement references -- selected anywhere (target
 *		list, WHERE, JOIN, ORDER BY, GROUP BY, window, RETURNING ...),
 *		inserted or updated; a whole-row reference is every column; DELETE
 *		removes every column -- must be of a class in the session's scopes
 *		for that action.  The patient column needs a scope for some class of
 *		the table, non_phi columns none; an unclassified column is never in
 *		scope.  Otherwise the statement fails before it reads a row.
 *
 *		The same pass admits the statement (admit.c: a session, row
 *		security in force) and describes to access.c, per protected
 *		relation, the columns touched per action: the statement's access
 *		context, into which agentauth._row_check() counts rows.  The other
 *		executor hooks tell access.c when the statement runs (the row check
 *		finds its context) and when a run or the statement ends (its
 *		records).  Derived copies (derived.c) are checked at the start and
 *		around each run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_partitioned_table.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/portal.h"

#include "agentauth.h"

static ExecutorStart_hook_type prev_start = NULL;
static ExecutorRun_hook_type prev_run = NULL;
static ExecutorFinish_hook_type prev_finish = NULL;
static ExecutorEnd_hook_type prev_end = NULL;

/* ------------------------------------------------------------------
 * Column scope
 * ------------------------------------------------------------------
 */

typedef struct RteCols
{
	Oid			checkAsUser;
	AclMode		required;
	Bitmapset  *cols[AA_NACTIONS];
} RteCols;

static void
rte_cols(PlannedStmt *ps, RangeTblEntry *rte, RteCols *rc)
{
	memset(rc, 0, sizeof(*rc));
#if PG_VERSION_NUM >= 160000
	if (rte->perminfoindex != 0)
	{
		RTEPermissionInfo *p = list_nth_node(RTEPermissionInfo, ps->permInfos,
											 rte->perminfoindex - 1);

		rc->checkAsUser = p->checkAsUser;
		rc->required = p->requiredPerms;
		rc->cols[AA_READ] = p->selectedCols;
		rc->cols[AA_INSERT] = p->insertedCols;
		rc->cols[AA_UPDATE] = p->updatedCols;
	}
#else
	rc->checkAsUser = rte->checkAsUser;
	rc->required = rte->requiredPerms;
	rc->cols[AA_READ] = rte->selectedCols;
	rc->cols[AA_INSERT] = rte->insertedCols;
	rc->cols[AA_UPDATE] = rte->updatedCols;
#endif
}

/* Accumulates one relation's use across all of its range-table entries. */
typedef struct RelUse
{
	Oid			relid;
	AAProtectedRel *prot;		/* copy, in the statement's memory */
	bool		used[AA_NACTIONS];
	bool	   *att[AA_NACTIONS];	/* [1..natts]: column referenced */
	bool		bypass;
	bool		checked;		/* at least one entry under row security */
	bool		tableoid;		/* reads tableoid: which partition a row is in */
} RelUse;

static AAProtectedRel *
copy_prot(AAProtectedRel *src)
{
	AAProtectedRel *r = palloc(sizeof(AAProtectedRel));

	*r = *src;
	r->relname = pstrdup(src->relname);
	r->patient_column = src->patient_column ? pstrdup(src->patient_column) : NULL;
	r->att_name = palloc0(sizeof(char *) * (src->natts + 1));
	r->att_class = palloc0(sizeof(char *) * (src->natts + 1));
	for (int i = 1; i <= src->natts; i++)
	{
		r->att_name[i] = src->att_name[i] ? pstrdup(src->att_name[i]) : NULL;
		r->att_class[i] = src->att_class[i] ? pstrdup(src->att_class[i]) : NULL;
	}
	r->classes = palloc0(sizeof(char *) * (src->nclasses + 1));
	for (int i = 0; i < src->nclasses; i++)
		r->classes[i] = pstrdup(src->classes[i]);
	return r;
}

/* every column of the table, for action idx */
static void
mark_all_cols(RelUse *u, int idx)
{
	for (int i = 1; i <= u->prot->natts; i++)
		if (u->prot->att_name[i])
			u->att[idx][i] = true;
}

static void
mark_cols(RelUse *u, int idx, Bitmapset *cols)
{
	int			k = -1;

	while ((k = bms_next_member(cols, k)) >= 0)
	{
		AttrNumber	attno = k + FirstLowInvalidHeapAttributeNumber;

		if (attno == InvalidAttrNumber)
			mark_all_cols(u, idx);	/* whole-row reference: every column */
		else if (attno > 0)
		{
			if (attno > u->prot->natts)
			{
				/* a column added after we cached: reload gives it no class */
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to columns of protected table %s",
								u->prot->relname),
						 errdetail("Column %d is not classified.", attno)));
			}
			u->att[idx][attno] = true;
		}
		else if (attno == TableOidAttributeNumber)
			u->tableoid = true;
		/* system columns reveal no PHI (tableoid: see note_sensitive_read) */
	}
	u->used[idx] = true;
}

static bool
scope_allows(const char *data_class, int idx)
{
	return aa_session_scope_allows(data_class, idx != AA_READ);
}

static bool
any_class_in_scope(AAProtectedRel *prot, int idx)
{
	for (int i = 0; i < prot->nclasses; i++)
		if (scope_allows(prot->classes[i], idx))
			return true;
	return false;
}

/* Refuse the statement when a referenced column is out of scope. */
static void
check_scope(RelUse *u)
{
	StringInfoData out;
	List	   *bad_cols = NIL;
	List	   *bad_classes = NIL;
	bool		write = false;

	initStringInfo(&out);
	for (int idx = 0; idx < AA_NACTIONS; idx++)
	{
		if (!u->used[idx])
			continue;
		/*
		 * Any use needs a scope for some class of the table: a read that
		 * names no classified column (count(*), non_phi columns) would see
		 * no row and log a denial for every patient (found by review, r33:
		 * an agent counted 0 notes and learnt nothing of why), and a write
		 * needs a write scope
		 */
		if (!any_class_in_scope(u->prot, idx))
		{
			if (out.len > 0)
				appendStringInfoString(&out, ", ");
			appendStringInfo(&out, "no class of the table in %s scope",
							 idx == AA_READ ? "read" : "write");
			if (idx != AA_READ)
				write = true;
		}
		for (int i = 1; i <= u->prot->natts; i++)
		{
			const char *cls = u->prot->att_class[i];
			const char *why = NULL;

			if (!u->att[idx][i])
				continue;
			if (i == u->prot->patient_attno)
			{
				if (!any_class_in_scope(u->prot, idx))
					why = "patient column; no class of the table in scope";
			}
			else if (cls == NULL)
				why = "unclassified";
			else if (strcmp(cls, AA_NON_PHI) == 0)
				continue;
			else if (!scope_allows(cls, idx))
				why = psprintf("%s:%s", cls,
							   aa_action_name(idx == AA_READ ? AA_ACT_READ : AA_ACT_WRITE));
			if (why == NULL)
				continue;
			if (out.len > 0)
				appendStringInfoString(&out, ", ");
			appendStringInfo(&out, "%s (%s)", quote_identifier(u->prot->att_name[i]), why);
			bad_cols = lappend(bad_cols, u->prot->att_name[i]);
			if (cls)
			{
				bool		dup = false;
				ListCell   *lc;

				/* C strings, not Nodes: list_member() would not do */
				foreach(lc, bad_classes)
					if (strcmp(lfirst(lc), cls) == 0)
						dup = true;
				if (!dup)
					bad_classes = lappend(bad_classes, (void *) cls);
			}
			if (idx != AA_READ)
				write = true;
		}
	}
	if (out.len == 0)
		return;

	{
		AARecord	rec;
		const char **cols = palloc(sizeof(char *) * list_length(bad_cols));
		const char **classes = palloc(sizeof(char *) * (list_length(bad_classes) + 1));
		StringInfoData detail;
		int			n = 0;
		ListCell   *lc;

		foreach(lc, bad_cols)
			cols[n++] = lfirst(lc);
		n = 0;
		foreach(lc, bad_classes)
			classes[n++] = lfirst(lc);
		initStringInfo(&detail);
		appendStringInfoString(&detail, "{\"reason\": \"columns out of scope\", \"out_of_scope\": ");
		escape_json(&detail, out.data);
		appendStringInfoChar(&detail, '}');
		memset(&rec, 0, sizeof(rec));
		rec.event = "denied";
		rec.relation = u->prot->relname;
		rec.ncolumns = list_length(bad_cols);
		rec.columns = cols;
		rec.nclasses = n;
		rec.classes = classes;
		rec.action = aa_action_name(write ? AA_ACT_WRITE : AA_ACT_READ);
		rec.row_count = -1;
		rec.outcome = "deny";
		rec.detail = detail.data;
		aa_audit_emit(&rec, false);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s columns of protected table %s",
					aa_action_name(write ? AA_ACT_WRITE : AA_ACT_READ),
					u->prot->relname),
			 errdetail("Out of the session's scopes: %s.", out.data),
			 errhint("Name only the columns the task needs; their classes must be in the token's scopes.")));
}

/* Build the relation's access context from its accumulated use. */
static const char *
statement_action(AclMode required)
{
	if (required & ACL_DELETE)
		return aa_action_name(AA_ACT_DELETE);
	if (required & ACL_UPDATE)
		return aa_action_name(AA_ACT_UPDATE);
	if (required & ACL_INSERT)
		return aa_action_name(AA_ACT_INSERT);
	return aa_action_name(AA_ACT_READ);
}

/* the columns of the relation the statement touches, by any action */
static const char **
touched_cols(RelUse *u, int *ncols)
{
	const char **cols = palloc(sizeof(char *) * (u->prot->natts + 1));
	int			n = 0;

	for (int i = 1; i <= u->prot->natts; i++)
	{
		bool		any = false;

		for (int idx = 0; idx < AA_NACTIONS; idx++)
			any |= u->att[idx][i];
		if (any)
			cols[n++] = u->prot->att_name[i];
	}
	*ncols = n;
	return cols;
}

/* is column i of prot of a sensitive class? */
static bool
column_sensitive(AAProtectedRel *prot, int i)
{
	bool		sensitive = false;

	return prot->att_class[i] != NULL &&
		aa_class_lookup(prot->att_class[i], &sensitive) && sensitive;
}

/*
 * The sensitive classes of a partitioned table's key columns, as read.
 * From the catalog's row, not the relation: a partition the plan pruned
 * is not locked, and opening it would wait behind, or fail after, a
 * concurrent DROP or DETACH.
 */
static void
note_partition_key(Oid parent, AAProtectedRel *prot)
{
	HeapTuple	tuple = SearchSysCache1(PARTRELID, ObjectIdGetDatum(parent));
	Form_pg_partitioned_table form;
	Bitmapset  *cols = NULL;
	Datum		exprs;
	bool		isnull;
	int			attno = -1;

	if (!HeapTupleIsValid(tuple))
		return;					/* gone meanwhile */
	form = (Form_pg_partitioned_table) GETSTRUCT(tuple);
	for (int k = 0; k < form->partnatts; k++)
	{
		if (form->partattrs.values[k] != 0)
			cols = bms_add_member(cols, form->partattrs.values[k] - FirstLowInvalidHeapAttributeNumber);
	}
	exprs = SysCacheGetAttr(PARTRELID, tuple, Anum_pg_partitioned_table_partexprs, &isnull);
	if (!isnull)
		pull_varattnos(stringToNode(TextDatumGetCString(exprs)), 1, &cols);
	ReleaseSysCache(tuple);
	while ((attno = bms_next_member(cols, attno)) >= 0)
	{
		const char *name = get_attname(parent, attno + FirstLowInvalidHeapAttributeNumber, true);

		for (int i = 1; name != NULL && i <= prot->natts; i++)
			if (prot->att_name[i] != NULL && strcmp(prot->att_name[i], name) == 0 &&
				column_sensitive(prot, i))
				aa_protected_schema_read_sensitive(prot->att_class[i], prot->relname);
	}
}

/*
 * The sensitive classes a privileged statement read (protected_schema.c):
 * those of the columns it names, and, of a table whose every column but
 * the patient's, non_phi and unclassified ones is sensitive (HIV tests,
 * psychiatric screenings: every row is that data), those of its columns
 * whatever it names -- count(*), EXISTS or the patient column list which
 * patients have such rows.
 */
static void
note_sensitive_read(RelUse *u)
{
	AAProtectedRel *prot = u->prot;
	bool		all_sensitive = false;

	for (int i = 1; i <= prot->natts; i++)
	{
		/* an unclassified column is read by nobody: it changes nothing */
		if (i == prot->patient_attno || prot->att_name[i] == NULL ||
			prot->att_class[i] == NULL || strcmp(prot->att_class[i], AA_NON_PHI) == 0)
			continue;
		all_sensitive = column_sensitive(prot, i);
		if (!all_sensitive)
			break;
	}
	for (int i = 1; i <= prot->natts; i++)
		if ((u->att[AA_READ][i] || all_sensitive) && column_sensitive(prot, i))
			aa_protected_schema_read_sensitive(prot->att_class[i], prot->relname);

	/*
	 * A partition holds the rows whose key has its bound's values: read
	 * alone, it tells each row's value of the key's columns, whether named
	 * or not (the partition of HIV-positive results); so does tableoid read
	 * of a partitioned table, which names each row's partition
	 */
	if (get_rel_relispartition(u->relid))
	{
		ListCell   *lc;

		foreach(lc, get_partition_ancestors(u->relid))
			note_partition_key(lfirst_oid(lc), prot);
	}
	if (u->tableoid && get_rel_relkind(u->relid) == RELKIND_PARTITIONED_TABLE)
	{
		ListCell   *lc;

		foreach(lc, find_all_inheritors(u->relid, NoLock, NULL))
			if (get_rel_relkind(lfirst_oid(lc)) == RELKIND_PARTITIONED_TABLE)
				note_partition_key(lfirst_oid(lc), prot);
	}
}

/*
 * A referential-integrity query that only reads (and locks) rows: a SELECT
 * with no data-modifying WITH.  Only called under InNoForceRLSOperation(),
 * which PostgreSQL sets for its referential-integrity queries alone.
 */
static bool
ri_key_check(PlannedStmt *ps)
{
	return ps->commandType == CMD_SELECT && !ps->hasModifyingCTE;
}

/*
 * Check the statement, in the memory of its access context q, and describe
 * to q each protected relation it touches under row security.
 */
static void
check_statement(QueryDesc *qd, int eflags, AAQueryAccess *q)
{
	PlannedStmt *ps = qd->plannedstmt;
	List	   *uses = NIL;
	ListCell   *lc;
	bool		explain_only = (eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0;

	if (ps->rtable == NIL)
		return;

	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		AAProtectedRel *prot;
		RelUse	   *u = NULL;
		RteCols		rc;
		ListCell   *lc2;
		bool		bypass;

		/*
		 * a view (PostgreSQL 16 keeps it as a subquery with its relid):
		 * agentauth's own are read by their grantees only
		 */
		if (rte->relkind == RELKIND_VIEW && OidIsValid(rte->relid))
		{
			rte_cols(ps, rte, &rc);
			if (rc.required != 0)
				aa_schema_guard_view_read(rte->relid, rc.checkAsUser, rc.required);
			continue;
		}
		/* a partitioned table named by the statement: partition.c */
		if (rte->rtekind != RTE_RELATION ||
			(rte->relkind != RELKIND_RELATION &&
			 rte->relkind != RELKIND_PARTITIONED_TABLE))
			continue;
		prot = aa_protected_rel(rte->relid);
		if (prot == NULL)
			continue;
		rte_cols(ps, rte, &rc);
		if (rc.required == 0)
			continue;			/* no permission check of its own (rule placeholders) */

		foreach(lc2, uses)
		{
			if (((RelUse *) lfirst(lc2))->relid == rte->relid)
				u = lfirst(lc2);
		}
		if (u == NULL)
		{
			u = palloc0(sizeof(RelUse));
			u->relid = rte->relid;
			u->prot = copy_prot(prot);
			for (int idx = 0; idx < AA_NACTIONS; idx++)
				u->att[idx] = palloc0(sizeof(bool) * (u->prot->natts + 1));
			uses = lappend(uses, u);
		}
		aa_check_standby(u->prot->relname);

		if (rc.required & ACL_SELECT)
			mark_cols(u, AA_READ, rc.cols[AA_READ]);
		/* and the generated columns they set (written.c) */
		if (rc.required & ACL_INSERT)
		{
			mark_cols(u, AA_INSERT, rc.cols[AA_INSERT]);
			aa_written_generated(rte->relid, u->att[AA_INSERT], u->prot->natts, true);
		}
		if (rc.required & ACL_UPDATE)
		{
			mark_cols(u, AA_UPDATE, rc.cols[AA_UPDATE]);
			aa_written_generated(rte->relid, u->att[AA_UPDATE], u->prot->natts, false);

			/*
			 * A row moved to another patient moves every column of it: each
			 * class is written, for the patient it leaves and the one it
			 * joins (1.1: only the patient column was, and a class the
			 * first patient's consent refused became readable under the
			 * second's)
			 */
			if (u->prot->patient_attno > 0 && u->att[AA_UPDATE][u->prot->patient_attno])
				mark_all_cols(u, AA_UPDATE);
		}
		if (rc.required & ACL_DELETE)
		{
			/* a deleted row loses every column */
			mark_all_cols(u, AA_DELETE);
			u->used[AA_DELETE] = true;
		}
		/* the read of an UPDATE/DELETE target decides its visibility */
		if (rc.required & (ACL_UPDATE | ACL_DELETE))
		{
			/*
			 * and what its scans test is read, whatever the permission
			 * bits say: a view's WHERE (plan_reads.c)
			 */
			Bitmapset  *tested = aa_plan_scan_reads(ps, foreach_current_index(lc) + 1);

			if (tested != NULL)
				mark_cols(u, AA_READ, tested);
			u->used[AA_READ] = true;
		}

		bypass = aa_rls_bypassed(rte->relid, rc.checkAsUser);
		if (bypass)
		{
			Oid			uid = OidIsValid(rc.checkAsUser) ? rc.checkAsUser : GetUserId();

			/*
			 * Referential-integrity queries run as the owner without RLS.
			 * A key check reads no more than the constraint's error says:
			 * a SELECT, whose FOR KEY SHARE lock asks for UPDATE privilege
			 * but writes nothing (the child's check of its parent, the
			 * parent's NO ACTION / RESTRICT check of its children, the
			 * validation of a new constraint).  A cascading action (ON
			 * DELETE / ON UPDATE CASCADE, SET NULL, SET DEFAULT) writes
			 * rows with no row check: refused at its first written row
			 * (aa_access_run_done), unless a role that bypasses row
			 * security anyway runs it outside a session (audited as
			 * privileged access below).
			 */
			if (InNoForceRLSOperation())
			{
				Oid			outer = GetOuterUserId();

				if (ri_key_check(ps) ||
					!(rc.required & (ACL_INSERT | ACL_UPDATE | ACL_DELETE)))
					continue;
				if (aa_session != NULL ||
					!(superuser_arg(outer) || has_bypassrls_privilege(outer)))
				{
					aa_access_add_cascade(q, u->prot->relname,
										  statement_action(rc.required));
					continue;
				}
			}
			/* row security switched off behind our back: fail closed */
			else if (!superuser_arg(uid) && !has_bypassrls_privilege(uid))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("row level security is not in force on protected table %s",
								u->prot->relname),
						 errhint("An administrator runs agentauth.protect_table() on it again, which enables and forces row level security.")));
			if (aa_session != NULL)
				aa_refuse_bypass_in_session(u->prot->relname,
											statement_action(rc.required), uid);
			if (!explain_only)
			{
				int			n;
				const char **cols = touched_cols(u, &n);

				aa_audit_privileged(u->prot->relname, n, cols,
									statement_action(rc.required));
				note_sensitive_read(u);
			}
			u->bypass = true;
			continue;
		}
		u->checked = true;
	}

	foreach(lc, uses)
	{
		RelUse	   *u = lfirst(lc);

		if (!u->checked)
			continue;
		/* EXPLAIN in a session: the column check; stats.c the rest */
		if (explain_only && aa_session == NULL)
			continue;
		if (aa_session == NULL)
		{
			int			n;
			const char **cols = touched_cols(u, &n);
			const char *action = aa_action_name(AA_ACT_READ);

			for (int idx = AA_NACTIONS - 1; idx > 0; idx--)
				if (u->used[idx])
				{
					action = aa_action_name(AA_ACT_BIT(idx));
					break;
				}
			aa_refuse_outside_session(u->prot->relname, n, cols, action);
		}
		aa_session_check();

		/*
		 * A WITH HOLD cursor is read to its end at COMMIT and fetched from
		 * a copy afterwards: its rows would still reach the client after
		 * the token was revoked or the consent withdrawn (SPEC 4.4).
		 */
		if (ActivePortal != NULL && ActivePortal->status == PORTAL_DEFINED &&
			(ActivePortal->cursorOptions & CURSOR_OPT_HOLD))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot declare a WITH HOLD cursor over protected table %s",
							u->prot->relname),
					 errdetail("Its rows would be kept after the transaction, beyond a revocation or a consent withdrawal."),
					 errhint("Declare the cursor without WITH HOLD inside a transaction: every FETCH is checked.")));
		check_scope(u);
		if (explain_only)
			continue;
		aa_access_add_rel(q, u->relid, u->prot, u->att);
	}
}

/* ------------------------------------------------------------------
 * Executor hooks
 * ------------------------------------------------------------------
 */

static void
aa_executor_start(QueryDesc *qd, int eflags)
{
	AAQueryAccess *q = NULL;

	if (!IsParallelWorker() && qd->plannedstmt->rtable != NIL &&
		IsTransactionState())
	{
		MemoryContext oldcxt;

		aa_replica_check_write(qd->plannedstmt);	/* hot standby: refused */
		q = aa_access_begin();
		oldcxt = MemoryContextSwitchTo(aa_access_memory(q));
		check_statement(qd, eflags, q);
		MemoryContextSwitchTo(oldcxt);
		q = aa_access_built(q);
		aa_derived_start(qd, eflags);
	}

	if (prev_start)
		prev_start(qd, eflags);
	else
		standard_ExecutorStart(qd, eflags);

	if (q != NULL)
		aa_access_register(q, qd);
}

static void
aa_executor_run(QueryDesc *qd, ScanDirection direction, uint64 count,
				bool execute_once)
{
	bool		writer;
	volatile bool entered = false;

	/*
	 * What may refuse comes before what must be undone: a writer counted
	 * and then refused by the run's check would stay counted, and refuse
	 * every later read of the backend.
	 */
	DestReceiver *volatile dest = qd->dest;

	aa_access_run_begin(qd);
	writer = aa_derived_enter(qd);
	PG_TRY();
	{
		aa_access_enter(qd);
		entered = true;
		/* rows a plan kept are checked as they are sent (access_run.c) */
		qd->dest = aa_access_output_dest(qd, dest);
		if (prev_run)
			prev_run(qd, direction, count, execute_once);
		else
			standard_ExecutorRun(qd, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		qd->dest = dest;
		if (entered)
			aa_access_leave();
		aa_derived_leave(writer);
	}
	PG_END_TRY();

	aa_access_run_done(qd);
}

static void
aa_executor_finish(QueryDesc *qd)
{
	aa_access_enter(qd);
	PG_TRY();
	{
		if (prev_finish)
			prev_finish(qd);
		else
			standard_ExecutorFinish(qd);
	}
	PG_FINALLY();
	{
		aa_access_leave();
	}
	PG_END_TRY();
}

static void
aa_executor_end(QueryDesc *qd)
{
	aa_access_end(qd);
	if (prev_end)
		prev_end(qd);
	else
		standard_ExecutorEnd(qd);
}

void
aa_columns_init(void)
{
	prev_start = ExecutorStart_hook;
	ExecutorStart_hook = aa_executor_start;
	prev_run = ExecutorRun_hook;
	ExecutorRun_hook = aa_executor_run;
	prev_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = aa_executor_finish;
	prev_end = ExecutorEnd_hook;
	ExecutorEnd_hook = aa_executor_end;
}
