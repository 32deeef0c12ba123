/*-------------------------------------------------------------------------
 *
 * ddl_bulk.c
 *		Reading or writing a protected table outside the executor, for the
 *		DDL guard (ddl.c): TRUNCATE, and COPY where row security does not
 *		turn it into a query.  Refused outside a session and in one (a
 *		session deletes rows one by one, with DELETE, and cannot COPY FROM
 *		under row security), audited as privileged access for a role that
 *		bypasses row security.
 *
 *		The statement's reach is taken as PostgreSQL takes it, not as its
 *		text names it: TRUNCATE's tables with their inheritance children
 *		and partitions, and what its CASCADE reaches from any of them; a
 *		COPY column list is the client's, of any length and any names.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"

#include "agentauth.h"

/*
 * Reading or writing a protected table outside the executor: TRUNCATE,
 * and COPY where row security does not turn it into a query.
 */
static void
check_bulk(Oid relid, int act, List *attnames)
{
	const char *action = aa_action_name(act);
	AAProtectedRel *prot;
	char	   *relname;
	const char **cols;
	bool	   *att;
	int			ncols = 0;
	ListCell   *lc;

	/* looked up last: the pointer is good until the next lookup */
	prot = aa_protected_rel(relid);
	if (prot == NULL)
		return;
	relname = pstrdup(prot->relname);

	/*
	 * The columns the statement names, or all: each of the table's own
	 * once, at most natts.  The list is the client's, checked by
	 * PostgreSQL only after this hook -- it may repeat a name any number
	 * of times or name no column at all (1.1: a list longer than the table
	 * wrote past this array) -- and what is not a column of the table
	 * goes into no audit record.
	 */
	cols = palloc(sizeof(char *) * (prot->natts + 1));
	att = palloc0(sizeof(bool) * (prot->natts + 1));
	for (int i = 1; i <= prot->natts; i++)
	{
		if (prot->att_name[i] == NULL)
			continue;
		att[i] = (attnames == NIL);
		foreach(lc, attnames)
			if (strcmp(strVal(lfirst(lc)), prot->att_name[i]) == 0)
				att[i] = true;
	}
	/* COPY FROM writes the generated columns too (written.c; 1.1) */
	if (act == AA_ACT_INSERT)
		aa_written_generated(relid, att, prot->natts, true);
	for (int i = 1; i <= prot->natts; i++)
		if (att[i] && prot->att_name[i] != NULL)
			cols[ncols++] = pstrdup(prot->att_name[i]);

	aa_check_standby(relname);
	if (aa_rls_bypassed(relid, InvalidOid) &&
		!superuser() && !has_bypassrls_privilege(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row level security is not in force on protected table %s", relname),
				 errhint("An administrator runs agentauth.protect_table() on it again, which enables and forces row level security.")));
	if (!aa_rls_bypassed(relid, InvalidOid))
	{
		if (aa_session == NULL)
			aa_refuse_outside_session(relname, ncols, cols, action);
		/* refusals of the session are recorded, as COPY FROM's (1.1) */
		if (act == AA_ACT_DELETE)
		{
			aa_audit_statement("denied", "deny", relname, action, ncols, cols,
							   "{\"reason\": \"TRUNCATE empties a table without the row check\"}",
							   false);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot truncate protected table %s", relname),
					 errhint("Delete the rows with DELETE, which checks each row.")));
		}
		/* PostgreSQL refuses COPY FROM under row security: say so, recorded */
		if (act == AA_ACT_INSERT)
			aa_refuse_copy_in_session(relname, ncols, cols);
		/* COPY TO under row security goes through the executor */
		return;
	}
	/* TRUNCATE or COPY as a role that bypasses row security: recorded (1.1) */
	if (aa_session != NULL)
		aa_refuse_bypass_in_session(relname, action, GetUserId());
	aa_audit_privileged(relname, ncols, cols, action);
}

/* TRUNCATE empties tables without the row check */
void
aa_bulk_check_truncate(TruncateStmt *ts)
{
	List	   *relids = NIL;
	ListCell   *lc;

	/*
	 * Each named table with its inheritance children and partitions (unless
	 * ONLY), as PostgreSQL's TRUNCATE empties them; CASCADE also empties
	 * every table whose foreign key references one of those -- a child or
	 * a partition included (1.1: only the named tables' referencing ones
	 * were looked for) -- and, over-counting rather than missing one, the
	 * children of those too.
	 */
	foreach(lc, ts->relations)
	{
		RangeVar   *rv = lfirst_node(RangeVar, lc);
		Oid			relid = RangeVarGetRelid(rv, NoLock, true);

		if (OidIsValid(relid))
			relids = list_concat_unique_oid(relids, rv->inh ?
											find_all_inheritors(relid, NoLock, NULL) :
											list_make1_oid(relid));
	}
	if (ts->behavior == DROP_CASCADE)
	{
		bool		added = true;

		while (added)
		{
			added = false;
			foreach(lc, heap_truncate_find_FKs(relids))
			{
				if (!list_member_oid(relids, lfirst_oid(lc)))
				{
					relids = list_concat_unique_oid(relids,
													find_all_inheritors(lfirst_oid(lc), NoLock, NULL));
					added = true;
				}
			}
		}
	}
	foreach(lc, relids)
		check_bulk(lfirst_oid(lc), AA_ACT_DELETE, NIL);
}

void
aa_bulk_check_copy(CopyStmt *cs)
{
	Oid			relid;

	if (cs->relation == NULL)
		return;
	relid = RangeVarGetRelid(cs->relation, NoLock, true);
	if (OidIsValid(relid))
		check_bulk(relid, cs->is_from ? AA_ACT_INSERT : AA_ACT_READ, cs->attlist);
}
