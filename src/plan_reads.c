/*-------------------------------------------------------------------------
 *
 * plan_reads.c
 *		The columns of a relation that a plan's scans of it read in their
 *		conditions, for the column check of a write (columns.c).
 *
 *		PostgreSQL's permission bits say what the statement as written
 *		reads: an UPDATE or DELETE through an updatable view gets on the
 *		table only the view's permissions -- UPDATE, and SELECT of the view
 *		columns it names -- while the view's WHERE becomes a condition of
 *		the table's scan.  An agent's own view (a temporary one will do)
 *		could thus test columns out of its scopes, and of classes its
 *		patients' consent refuses, row by row, with the count of rows
 *		updated as the answer (1.1).  What the scans of the table test is
 *		read: their conditions' columns, less the patient column that the
 *		row check itself is given.
 *
 *		Only conditions: a scan's target list may be its relation's every
 *		column (a physical target list), which the statement does not read.
 *		Conditions of a join refer to their inputs, not to the table; a
 *		join that tests the table's columns is written in the statement,
 *		whose permission bits already name them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pathnodes.h"
#include "nodes/plannodes.h"
#include "parser/parse_func.h"

#include "agentauth.h"

typedef struct PlanReads
{
	PlannedStmt *ps;
	Index		rti;			/* the relation asked about */
	Index		scanrelid;		/* the scan being walked */
	Oid			row_check;		/* agentauth._row_check */
	Bitmapset  *cols;			/* as pull_varattnos() numbers them */
} PlanReads;

/* a scan of rti itself, or of a partition or inheritance child of it */
static bool
scans_for(PlanReads *pr, Index scanrelid)
{
	for (int depth = 0; depth < 64 && scanrelid != 0; depth++)
	{
		Index		parent = 0;
		ListCell   *lc;

		if (scanrelid == pr->rti)
			return true;
		foreach(lc, pr->ps->appendRelations)
		{
			AppendRelInfo *ai = lfirst_node(AppendRelInfo, lc);

			if (ai->child_relid == scanrelid)
			{
				parent = ai->parent_relid;
				break;
			}
		}
		scanrelid = parent;
	}
	return false;
}

static bool
condition_vars(Node *node, PlanReads *pr)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		if (v->varno == pr->scanrelid && v->varlevelsup == 0)
			pr->cols = bms_add_member(pr->cols,
									  v->varattno - FirstLowInvalidHeapAttributeNumber);
		return false;
	}
	/* the row check is given the patient column: not a read of the agent's */
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == pr->row_check)
		return false;
	return expression_tree_walker(node, condition_vars, (void *) pr);
}

/* the range-table index a scan node scans; 0 for any other node */
Index
aa_plan_scanrelid(Plan *plan)
{
	switch (nodeTag(plan))
	{
		case T_SeqScan:
		case T_SampleScan:
		case T_IndexScan:
		case T_IndexOnlyScan:
		case T_BitmapHeapScan:
		case T_TidScan:
		case T_TidRangeScan:
		case T_ForeignScan:
		case T_CustomScan:
			return ((Scan *) plan)->scanrelid;
		default:
			return 0;
	}
}

/*
 * A plan node's children other than its outer and inner plan: the plans
 * of an Append, MergeAppend, BitmapAnd or BitmapOr, a subquery scan's, a
 * custom scan's (also for access_run.c's walk).
 */
List *
aa_plan_children(Plan *plan)
{
	switch (nodeTag(plan))
	{
		case T_Append:
			return ((Append *) plan)->appendplans;
		case T_MergeAppend:
			return ((MergeAppend *) plan)->mergeplans;
		case T_BitmapAnd:
			return ((BitmapAnd *) plan)->bitmapplans;
		case T_BitmapOr:
			return ((BitmapOr *) plan)->bitmapplans;
		case T_SubqueryScan:
			return list_make1(((SubqueryScan *) plan)->subplan);
		case T_CustomScan:
			return ((CustomScan *) plan)->custom_plans;
		default:
			return NIL;
	}
}

static void
walk_plan(Plan *plan, PlanReads *pr)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	pr->scanrelid = aa_plan_scanrelid(plan);
	if (pr->scanrelid != 0 && scans_for(pr, pr->scanrelid))
	{
		condition_vars((Node *) plan->qual, pr);
		if (IsA(plan, IndexScan))
			condition_vars((Node *) ((IndexScan *) plan)->indexqualorig, pr);
		else if (IsA(plan, BitmapHeapScan))
			condition_vars((Node *) ((BitmapHeapScan *) plan)->bitmapqualorig, pr);
		else if (IsA(plan, TidScan))
			condition_vars((Node *) ((TidScan *) plan)->tidquals, pr);
		else if (IsA(plan, TidRangeScan))
			condition_vars((Node *) ((TidRangeScan *) plan)->tidrangequals, pr);
	}
	walk_plan(outerPlan(plan), pr);
	walk_plan(innerPlan(plan), pr);
	foreach(lc, aa_plan_children(plan))
		walk_plan(lfirst(lc), pr);
}

/*
 * The columns of range-table entry rti that the scans of the statement's
 * plans (its subplans too) test in their conditions, numbered as
 * pull_varattnos() numbers them; NULL when none.
 */
Bitmapset *
aa_plan_scan_reads(PlannedStmt *ps, Index rti)
{
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	PlanReads	pr;
	ListCell   *lc;

	memset(&pr, 0, sizeof(pr));
	pr.ps = ps;
	pr.rti = rti;
	pr.row_check = LookupFuncName(list_make2(makeString(AA_SCHEMA), makeString("_row_check")),
								  3, argtypes, true);
	walk_plan(ps->planTree, &pr);
	foreach(lc, ps->subplans)
		walk_plan(lfirst(lc), &pr);
	return pr.cols;
}
