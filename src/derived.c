/*-------------------------------------------------------------------------
 *
 * derived.c
 *		Derived copies keep their protection: in an agentauth session, what
 *		is read from a protected table never lands in a relation that is
 *		not protected.
 *
 *		A statement reads a protected table when it selects from it, or
 *		updates or deletes its rows (triggers see them); it writes an
 *		unprotected relation when it inserts, updates, deletes or merges
 *		into one (a temporary table included), when it fills a relation
 *		that CREATE TABLE AS, SELECT INTO or CREATE / REFRESH MATERIALIZED
 *		VIEW makes, when it locks rows of one (FOR UPDATE or FOR SHARE:
 *		the lock is written into the row), or when it is a COPY to a
 *		server file.  In a session,
 *		within one client statement (statement_timestamp(): a function, a
 *		DO block or a procedure is one, across its COMMITs), refused with a
 *		denied record (42501), before any row of the later statement is
 *		read or written:
 *
 *		- a statement that reads a protected table and writes an
 *		  unprotected relation (INSERT ... SELECT, CREATE TABLE AS, a
 *		  data-modifying WITH, UPDATE ... FROM);
 *		- a statement that writes an unprotected relation after another
 *		  statement read a protected table (a function, a trigger, a DO
 *		  block that keeps rows in variables);
 *		- a statement that reads a protected table while a statement that
 *		  writes an unprotected relation runs (a function called for each
 *		  row that statement writes).
 *
 *		A session's write to a protected table whose CHECK constraints
 *		call a volatile function is refused too: the constraint sees the
 *		whole row and the function can send it out.
 *
 *		Referential-integrity checks and actions (which read only keys) and
 *		the extension's own tables are not counted.  Writes into protected
 *		tables are checked row by row as any write (access.c).
 *
 *		Callers: the executor hooks (columns.c), the utility hook
 *		(utility.c: COPY to a server file).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/typcache.h"

#include "agentauth.h"

/*
 * A quoted qualified name whole: each name at most NAMEDATALEN - 1 bytes,
 * every '"' in it doubled, two quotes, the dot and the NUL (1.0 kept 135
 * bytes, and cut a long name -- through a multibyte character too); and
 * room for what a row lock adds
 */
#define AA_DERIVED_NAME_LEN (4 * NAMEDATALEN + 2 + 80)

/* the client statement that read a protected table, and which table */
static bool read_valid = false;
static TimestampTz read_stmt;
static Oid	read_source;	/* named only when a refusal needs it */

/* statements writing an unprotected relation that are running now */
static int	writer_depth = 0;
static char writer_target[AA_DERIVED_NAME_LEN];

/* COPY ... TO a server file or program under way */
static int	copy_to_server = 0;

typedef struct Flow
{
	Oid			source;			/* a protected relation read, or InvalidOid */
	bool		writes;			/* writes an unprotected relation */
	char		target[AA_DERIVED_NAME_LEN];
} Flow;

static void
relation_name(Oid relid, char *out)
{
	Oid			nspid = get_rel_namespace(relid);
	char	   *nsp = isAnyTempNamespace(nspid) ? "pg_temp" : get_namespace_name(nspid);
	char	   *rel = get_rel_name(relid);

	strlcpy(out, aa_qualified_name(nsp ? nsp : "?", rel ? rel : "?"),
			AA_DERIVED_NAME_LEN);
}

static AclMode
rte_required(PlannedStmt *ps, RangeTblEntry *rte)
{
#if PG_VERSION_NUM >= 160000
	if (rte->perminfoindex == 0)
		return 0;
	return list_nth_node(RTEPermissionInfo, ps->permInfos,
						 rte->perminfoindex - 1)->requiredPerms;
#else
	return rte->requiredPerms;
#endif
}

static void
statement_flow(QueryDesc *qd, Flow *f)
{
	PlannedStmt *ps = qd->plannedstmt;
	Oid			own = get_namespace_oid(AA_SCHEMA, true);
	ListCell   *lc;
	int			mydest = qd->dest ? qd->dest->mydest : DestNone;

	memset(f, 0, sizeof(*f));

	/* a referential-integrity query reads or writes keys only */
	if (InNoForceRLSOperation())
		return;

	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind != RTE_RELATION ||
			(rte->relkind != RELKIND_RELATION &&
			 rte->relkind != RELKIND_PARTITIONED_TABLE))
			continue;
		if (!(rte_required(ps, rte) & (ACL_SELECT | ACL_UPDATE | ACL_DELETE)))
			continue;
		if (aa_is_protected(rte->relid))
		{
			f->source = rte->relid;
			break;
		}
	}

	foreach(lc, ps->resultRelations)
	{
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), ps->rtable);

		if (rte->rtekind != RTE_RELATION || aa_is_protected(rte->relid) ||
			get_rel_namespace(rte->relid) == own)
			continue;
		f->writes = true;
		relation_name(rte->relid, f->target);
		return;
	}
	/*
	 * FOR UPDATE / FOR SHARE writes its lock into each row it locks, where
	 * the relation's owner reads it (xmax): locking the rows of another
	 * relation that match what was read copies it there as surely as an
	 * insert (1.1, found by review: an owner's view over a protected table
	 * and a table of guesses, FOR UPDATE OF the guesses)
	 */
	foreach(lc, ps->rowMarks)
	{
		PlanRowMark *rc = lfirst(lc);
		RangeTblEntry *rte = rt_fetch(rc->rti, ps->rtable);

		if (!RowMarkRequiresRowShareLock(rc->markType) ||
			rte->rtekind != RTE_RELATION || aa_is_protected(rte->relid) ||
			get_rel_namespace(rte->relid) == own)
			continue;
		f->writes = true;
		relation_name(rte->relid, f->target);
		strlcat(f->target, " (a row lock: FOR UPDATE or FOR SHARE writes into each row it locks)",
				AA_DERIVED_NAME_LEN);
		return;
	}
	if (mydest == DestIntoRel)
	{
		f->writes = true;
		strlcpy(f->target, "the relation CREATE TABLE AS, SELECT INTO or CREATE MATERIALIZED VIEW makes",
				AA_DERIVED_NAME_LEN);
	}
	else if (mydest == DestTransientRel)
	{
		f->writes = true;
		strlcpy(f->target, "a materialized view (REFRESH)", AA_DERIVED_NAME_LEN);
	}
	else if (mydest == DestCopyOut && copy_to_server > 0)
	{
		f->writes = true;
		strlcpy(f->target, "a server file (COPY TO)", AA_DERIVED_NAME_LEN);
	}
}

static bool
read_in_this_statement(void)
{
	return read_valid && read_stmt == GetCurrentStatementStartTimestamp();
}

static void
note_read(Oid source)
{
	if (read_in_this_statement())
		return;
	read_valid = true;
	read_stmt = GetCurrentStatementStartTimestamp();
	read_source = source;
}

static void
refuse(Oid source_rel, const char *target, const char *how)
{
	StringInfoData detail;
	char		source[AA_DERIVED_NAME_LEN];

	relation_name(source_rel, source);

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"reason\": \"a copy into a relation that is not protected\", \"target\": ");
	escape_json(&detail, target);
	appendStringInfoString(&detail, ", \"how\": ");
	escape_json(&detail, how);
	appendStringInfoChar(&detail, '}');

	aa_audit_statement("denied", "deny", source, "read", 0, NULL, detail.data, false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot copy rows of protected table %s into %s, which is not protected",
					source, target),
			 errdetail("In an agentauth session, what is read from a protected table never lands in an unprotected relation (%s).",
					   how),
			 errhint("Write into a protected table, or return the rows to the client.")));
}

static bool
in_session(void)
{
	return aa_session != NULL && !IsParallelWorker() && IsTransactionState();
}

/*
 * A CHECK of the domain a column is written as (its base domains', an
 * array's element domain too) that calls a volatile function: its name,
 * or NULL.  A domain made before protection sees each value written.
 */
static char *
volatile_domain_check(Oid typid)
{
	for (int depth = 0; depth < 16 && OidIsValid(typid); depth++)
	{
		DomainConstraintRef *ref;
		ListCell   *lc;

		if (OidIsValid(get_element_type(typid)))
		{
			typid = get_element_type(typid);
			continue;
		}
		if (get_typtype(typid) != TYPTYPE_DOMAIN)
			return NULL;
		/*
		 * the domain's constraints and its base domains' (the reference
		 * lives in the context it is registered with: its release runs
		 * when that context goes)
		 */
		ref = palloc(sizeof(DomainConstraintRef));
		InitDomainConstraintRef(typid, ref, CurrentMemoryContext, false);
		foreach(lc, ref->constraints)
		{
			DomainConstraintState *c = lfirst(lc);

			if (c->constrainttype == DOM_CONSTRAINT_CHECK &&
				contain_volatile_functions((Node *) c->check_expr))
				return pstrdup(c->name);
		}
		typid = getBaseType(typid);
	}
	return NULL;
}

/*
 * A CHECK constraint of a protected table (or of one of its partitions)
 * that calls a volatile function, in a session's write: the constraint
 * sees each whole row written, the columns outside the writer's scope
 * too, and a volatile function can send it out (pg_notify, setval, a
 * large object).  Code attached after protection is refused (ddl.c); a
 * constraint made before was the administrator's to review, and one
 * calling pg_notify(..., ssn) sent every agent write's SSN to the table's
 * owner (1.1, found by review).  Refused, with a denied record (42501);
 * stable and immutable calls (now(), comparisons) stay.
 */
static void
refuse_volatile_checks(PlannedStmt *ps)
{
	ListCell   *lc;

	if (ps->commandType == CMD_DELETE)
		return;
	foreach(lc, ps->resultRelations)
	{
		RangeTblEntry *rte = rt_fetch(lfirst_int(lc), ps->rtable);
		List	   *rels;
		ListCell   *lc2;

		if (rte->rtekind != RTE_RELATION || !aa_is_protected(rte->relid))
			continue;
		rels = rte->relkind == RELKIND_PARTITIONED_TABLE ?
			find_all_inheritors(rte->relid, AccessShareLock, NULL) :
			list_make1_oid(rte->relid);
		foreach(lc2, rels)
		{
			Relation	rel = table_open(lfirst_oid(lc2), AccessShareLock);
			TupleDesc	desc = RelationGetDescr(rel);
			TupleConstr *constr = desc->constr;
			char	   *bad = NULL;

			for (int i = 0; constr != NULL && bad == NULL && i < constr->num_check; i++)
				if (contain_volatile_functions(stringToNode(constr->check[i].ccbin)))
					bad = pstrdup(constr->check[i].ccname);
			for (int i = 0; bad == NULL && i < desc->natts; i++)
				if (!TupleDescAttr(desc, i)->attisdropped)
					bad = volatile_domain_check(TupleDescAttr(desc, i)->atttypid);
			table_close(rel, AccessShareLock);
			if (bad != NULL)
			{
				char		relname[AA_DERIVED_NAME_LEN];
				StringInfoData detail;

				relation_name(lfirst_oid(lc2), relname);
				initStringInfo(&detail);
				appendStringInfoString(&detail, "{\"reason\": \"a CHECK constraint calls a volatile function\", \"constraint\": ");
				escape_json(&detail, bad);
				appendStringInfoChar(&detail, '}');
				aa_audit_statement("denied", "deny", relname, "write", 0, NULL, detail.data, false);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("cannot write protected table %s in an agentauth session: its constraint %s calls a volatile function",
								relname, quote_identifier(bad)),
						 errdetail("A CHECK constraint sees every whole row written, columns outside the session's scope included; a volatile function can send it out."),
						 errhint("An administrator replaces the constraint with one that calls only stable or immutable functions (now() rather than clock_timestamp()).")));
			}
		}
	}
}

/*
 * ExecutorStart (columns.c), before the executor's: refuse the statement
 * when it would copy protected rows into an unprotected relation.
 */
void
aa_derived_start(QueryDesc *qd, int eflags)
{
	Flow		f;

	if (!in_session() || (eflags & EXEC_FLAG_EXPLAIN_ONLY))
		return;
	refuse_volatile_checks(qd->plannedstmt);
	statement_flow(qd, &f);
	if (OidIsValid(f.source))
	{
		if (f.writes)
			refuse(f.source, f.target, "the statement reads the one and writes the other");
		if (writer_depth > 0)
			refuse(f.source, writer_target,
				   "read while a statement writing the other runs");
		note_read(f.source);
	}
	if (f.writes && read_in_this_statement())
		refuse(read_source, f.target,
			   "written after the same client statement read the protected table");
}

/*
 * Before each ExecutorRun (columns.c): a later run of a statement that
 * reads a protected table (a cursor's FETCH) counts as a read of the
 * client statement that runs it; a statement that writes an unprotected
 * relation is counted while it runs.  Returns whether aa_derived_leave()
 * has a writer to uncount.
 */
bool
aa_derived_enter(QueryDesc *qd)
{
	Flow		f;

	if (!in_session())
		return false;
	statement_flow(qd, &f);
	if (OidIsValid(f.source) && !f.writes)
	{
		if (writer_depth > 0)
			refuse(f.source, writer_target,
				   "read while a statement writing the other runs");
		note_read(f.source);
	}
	if (!f.writes)
		return false;
	if (read_in_this_statement())
		refuse(read_source, f.target,
			   "written after the same client statement read the protected table");
	if (writer_depth++ == 0)
		strlcpy(writer_target, f.target, AA_DERIVED_NAME_LEN);
	return true;
}

void
aa_derived_leave(bool writer)
{
	if (writer && writer_depth > 0)
		writer_depth--;
}

static bool
is_copy_to_server(Node *stmt)
{
	return IsA(stmt, CopyStmt) && !((CopyStmt *) stmt)->is_from &&
		((CopyStmt *) stmt)->filename != NULL;
}

/* around every utility statement (utility.c): COPY to a server file */
void
aa_derived_utility_begin(Node *stmt)
{
	if (is_copy_to_server(stmt))
		copy_to_server++;
}

void
aa_derived_utility_end(Node *stmt)
{
	if (is_copy_to_server(stmt) && copy_to_server > 0)
		copy_to_server--;
}
