/*-------------------------------------------------------------------------
 *
 * written.c
 *		The columns a write of a protected table sets that its statement
 *		does not name, for the column scope and the consent check
 *		(columns.c): a view's column defaults and generated columns.
 *
 *		PostgreSQL's insertedCols and updatedCols hold the columns a
 *		statement names.  An INSERT through a view also writes the view's
 *		own defaults for the columns it leaves out (the rewriter adds them
 *		after the view's columns were noted), and a row's stored generated
 *		columns are written from the columns it sets.  1.1, found by
 *		review: an agent made a temporary view of a protected table with
 *		ALTER VIEW ... SET DEFAULT 'positive' on the HIV column, inserted
 *		through it, and the row was stored with a class outside its scope and
 *		its patient's consent, recorded without that column; and an UPDATE
 *		of the column a generated patient column is computed from moved a
 *		row to another patient with only that column checked.
 *
 *		The table's own defaults are not the statement's: its owner set
 *		them, and what they may run is checked when they are set (ddl.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/sysattr.h"
#include "catalog/pg_class.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "partitioning/partdesc.h"
#include "rewrite/rewriteHandler.h"
#include "utils/rel.h"

#include "agentauth.h"

/*
 * Is tle what an INSERT of rel writes into a column it does not name
 * without a view: nothing, or the column's own default?
 */
static bool
table_default(Relation rel, TargetEntry *tle)
{
	Node	   *def;

	if (tle->expr == NULL ||
		(IsA(tle->expr, Const) && ((Const *) tle->expr)->constisnull))
		return true;
	def = build_column_default(rel, tle->resno);
	return def != NULL && equal(def, tle->expr);
}

static void
mark_unnamed(Relation rel, List *tlist, Bitmapset **cols)
{
	ListCell   *lc;

	foreach(lc, tlist)
	{
		TargetEntry *tle = lfirst(lc);

		if (tle->resjunk || tle->resno <= 0 ||
			tle->resno > RelationGetNumberOfAttributes(rel) ||
			bms_is_member(tle->resno - FirstLowInvalidHeapAttributeNumber, *cols) ||
			table_default(rel, tle))
			continue;
		*cols = bms_add_member(*cols, tle->resno - FirstLowInvalidHeapAttributeNumber);
	}
}

/*
 * At planning: a column that an INSERT (or a MERGE's INSERT) into a
 * protected table sets other than to NULL or the table's own default is an
 * inserted column, named or not -- a view's default.  In a session or not:
 * a plan made before a session began is executed in it.  (The view's owner
 * is then also asked for INSERT on it, as for a named one.)
 */
void
aa_written_plan(Query *q)
{
	RangeTblEntry *rte;
	Bitmapset **cols;
	Relation	rel;
	ListCell   *lc;

	foreach(lc, q->cteList)
	{
		CommonTableExpr *cte = lfirst(lc);

		if (IsA(cte->ctequery, Query))
			aa_written_plan((Query *) cte->ctequery);
	}
	if ((q->commandType != CMD_INSERT && q->commandType != CMD_MERGE) ||
		q->resultRelation <= 0)
		return;
	rte = rt_fetch(q->resultRelation, q->rtable);
	if (rte->rtekind != RTE_RELATION || aa_protected_rel(rte->relid) == NULL)
		return;
#if PG_VERSION_NUM >= 160000
	cols = &getRTEPermissionInfo(q->rteperminfos, rte)->insertedCols;
#else
	cols = &rte->insertedCols;
#endif
	/* locked by the parser or the rewriter */
	rel = relation_open(rte->relid, NoLock);
	if (q->commandType == CMD_INSERT)
		mark_unnamed(rel, q->targetList, cols);
	else
	{
		foreach(lc, q->mergeActionList)
		{
			MergeAction *a = lfirst(lc);

			if (a->commandType == CMD_INSERT)
				mark_unnamed(rel, a->targetList, cols);
		}
	}
	relation_close(rel, NoLock);
}


/*
 * A partition's own stored generated columns, where its partitioned parent
 * has a plain column of that name (set up before the table was protected:
 * after, ATTACH and CREATE ... PARTITION OF with one are refused,
 * partition.c): a row routed or moved into the partition writes them.
 * Marked for every write of the tree, whatever it sets (1.1, found by
 * review).  top: the partitioned table the statement names.
 */
static bool
mark_partitions(Relation top, Relation rel, bool *att, int natts, int depth)
{
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	TupleDesc	tdesc = RelationGetDescr(top);
	bool		marked = false;

	if (depth > 32)
		return false;
	for (int p = 0; p < pd->nparts; p++)
	{
		Relation	part = RelationIdGetRelation(pd->oids[p]);
		TupleDesc	desc;

		if (!RelationIsValid(part))
			continue;
		desc = RelationGetDescr(part);
		if (desc->constr != NULL && desc->constr->has_generated_stored)
		{
			for (int i = 0; i < desc->natts; i++)
			{
				Form_pg_attribute a = TupleDescAttr(desc, i);

				if (a->attisdropped || a->attgenerated != ATTRIBUTE_GENERATED_STORED)
					continue;
				for (int j = 0; j < tdesc->natts && j < natts; j++)
				{
					Form_pg_attribute t = TupleDescAttr(tdesc, j);

					if (!t->attisdropped && t->attgenerated == '\0' &&
						strcmp(NameStr(t->attname), NameStr(a->attname)) == 0)
						att[j + 1] = marked = true;
				}
			}
		}
		if (part->rd_rel->relkind == RELKIND_PARTITIONED_TABLE &&
			mark_partitions(top, part, att, natts, depth + 1))
			marked = true;
		RelationClose(part);
	}
	return marked;
}

/*
 * At executor start: the stored generated columns of relid that a write
 * sets -- every one for an INSERT, for an UPDATE those computed from a
 * column it sets; and of a partitioned table, its partitions' own.
 * att[1..natts] holds the columns written; those are marked too.  True
 * when one was.
 */
bool
aa_written_generated(Oid relid, bool *att, int natts, bool insert)
{
	Relation	rel = RelationIdGetRelation(relid);
	TupleDesc	desc;
	bool		marked = false;

	if (!RelationIsValid(rel))
		return false;
	desc = RelationGetDescr(rel);
	if (rel->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		marked = mark_partitions(rel, rel, att, natts, 0);
	if (desc->constr != NULL && desc->constr->has_generated_stored)
	{
		for (int i = 0; i < desc->natts && i < natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, i);
			Bitmapset  *uses = NULL;
			int			k = -1;
			bool		set = insert;

			if (a->attisdropped || a->attgenerated != ATTRIBUTE_GENERATED_STORED ||
				att[i + 1])
				continue;
			if (!set)
			{
				pull_varattnos(build_column_default(rel, i + 1), 1, &uses);
				while (!set && (k = bms_next_member(uses, k)) >= 0)
				{
					AttrNumber	attno = k + FirstLowInvalidHeapAttributeNumber;

					/* a whole-row reference: any column */
					set = attno == InvalidAttrNumber ||
						(attno > 0 && attno <= natts && att[attno]);
				}
			}
			if (set)
				att[i + 1] = marked = true;
		}
	}
	RelationClose(rel);
	return marked;
}
