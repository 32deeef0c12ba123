/*-------------------------------------------------------------------------
 *
 * partition.c
 *		Partitioned tables: a protected partitioned table protects every
 *		partition, present and future, at every level.
 *
 *		PostgreSQL applies the row security of the relation a statement
 *		names: a query through the parent gets the parent's policies (its
 *		partitions' are not applied), a query that names a partition gets
 *		the partition's.  So the parent and every partition carry the same
 *		classification (labels copied by column name), row security enabled
 *		and forced, and the replication triggers of replication.c.  A
 *		statement is checked, counted and recorded under the relation it
 *		names: the parent (the row check of its policy is given the parent's
 *		OID whichever partition a row comes from) or the partition.
 *
 *		protect_table(), require_approval() and unprotect_table() on the
 *		parent act on the whole tree (src/sql/30_protect_partitions.sql);
 *		on a partition alone they are refused.  Here:
 *
 *		- before a utility statement (called by ddl.c): CREATE [FOREIGN]
 *		  TABLE ... PARTITION OF and ALTER TABLE ... ATTACH PARTITION under
 *		  a protected parent are checked: no foreign table, no code of a
 *		  non-superuser's on the new partition (triggers, rules,
 *		  restrictive policies, CHECK or exclusion constraints, generated
 *		  columns, expression indexes and statistics, partition keys on
 *		  expressions, publications -- as ddl.c refuses them on a
 *		  protected table), and a table that is protected already must
 *		  have the parent's classification.  A protected table may not be
 *		  attached to an unprotected parent.  DETACH of a partition that
 *		  lacks its own labels is refused; any other DETACH leaves the
 *		  partition a protected table of its own.
 *		- after it (called by utility.c): the new partitions get the
 *		  parent's classification, row security and triggers
 *		  (_protect_partitions), each recorded as table_protected; a
 *		  detached partition gets back the replication trigger that
 *		  PostgreSQL drops with the parent's clone.
 *		- (partition_label.c, for label.c and for this file: a partition of
 *		  a protected table that lacks its own table label, and an
 *		  unprotected partitioned table with a protected partition, count
 *		  as protected with no classification.  Fail closed.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/extension.h"
#include "commands/seclabel.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_inherit_classification);

#define WRITE_TRIGGER	"agentauth_replicated_write"

/* ------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------
 */

static char *
qualified_name(Oid relid)
{
	char	   *name = get_rel_name(relid);
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));

	if (name == NULL || nsp == NULL)
		return psprintf("%u", relid);
	return aa_qualified_name(nsp, name);
}

/* walk the live columns of a relation by attnum */
static int
rel_natts(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	int			natts;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	natts = ((Form_pg_class) GETSTRUCT(tup))->relnatts;
	ReleaseSysCache(tup);
	return natts;
}

/* the name of a live column, or NULL when dropped or missing */
static char *
live_attname(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
									  Int16GetDatum(attnum));
	char	   *name = NULL;

	if (!HeapTupleIsValid(tup))
		return NULL;
	if (!((Form_pg_attribute) GETSTRUCT(tup))->attisdropped)
		name = pstrdup(NameStr(((Form_pg_attribute) GETSTRUCT(tup))->attname));
	ReleaseSysCache(tup);
	return name;
}

static bool
same_label(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* do two tables carry the same labels, column by column name? */
static bool
same_classification(Oid parent, Oid part)
{
	int			natts = rel_natts(part);

	if (!same_label(aa_partition_label(parent, 0), aa_partition_label(part, 0)))
		return false;
	for (AttrNumber i = 1; i <= natts; i++)
	{
		char	   *name = live_attname(part, i);
		AttrNumber	pattno;

		if (name == NULL)
			continue;
		pattno = get_attnum(parent, name);
		if (pattno <= 0 || !same_label(aa_partition_label(parent, pattno), aa_partition_label(part, i)))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------
 * agentauth._inherit_classification(parent regclass, part regclass)
 * ------------------------------------------------------------------
 */

/*
 * Give a partition the classification of its (protected) ancestor: the
 * table label, and each column the class of the ancestor's column of the
 * same name (none where the ancestor's has none).  Recorded as
 * table_protected, via "partition".  Called by _protect_partitions(), as
 * the extension's owner; it can only ever copy an ancestor's protection.
 */
Datum
aa_inherit_classification(PG_FUNCTION_ARGS)
{
	Oid			parent;
	Oid			part;
	char	   *label;
	char		relkind;
	int			natts;
	Oid			nsp;
	ObjectAddress addr;
	StringInfoData detail;

	if (!superuser() && !aa_has_role("agentauth_admin"))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only agentauth_admin may classify tables")));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tables must not be null")));
	parent = PG_GETARG_OID(0);
	part = PG_GETARG_OID(1);
	if (get_rel_relkind(parent) == '\0' || get_rel_relkind(part) == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist",
						get_rel_relkind(parent) == '\0' ? parent : part)));
	if (!list_member_oid(get_partition_ancestors(part), parent))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("table %s is not a partition of %s",
						qualified_name(part), qualified_name(parent))));
	label = aa_partition_label(parent, 0);
	if (label == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not protected", qualified_name(parent))));
	relkind = get_rel_relkind(part);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("partition %s of protected table %s is not a table",
						qualified_name(part), qualified_name(parent)),
				 errdetail("Rows of a foreign table cannot be protected."),
				 errhint("Detach it before protecting the partitioned table.")));
	if (aa_schema_guarded(&nsp) && get_rel_namespace(part) == nsp)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentauth labels cannot be set on the objects of schema agentauth")));

	addr.classId = RelationRelationId;
	addr.objectId = part;
	addr.objectSubId = 0;
	SetSecurityLabel(&addr, AA_LABEL_PROVIDER, label);
	natts = rel_natts(part);
	for (AttrNumber i = 1; i <= natts; i++)
	{
		char	   *name = live_attname(part, i);
		AttrNumber	pattno;

		if (name == NULL)
			continue;
		pattno = get_attnum(parent, name);
		addr.objectSubId = i;
		SetSecurityLabel(&addr, AA_LABEL_PROVIDER,
						 pattno > 0 ? aa_partition_label(parent, pattno) : NULL);
	}
	CommandCounterIncrement();
	aa_generation_bump_at_commit();

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"via\": \"partition\", \"parent\": ");
	escape_json(&detail, qualified_name(parent));
	appendStringInfoChar(&detail, '}');
	aa_audit_statement("table_protected", "permit", qualified_name(part), NULL,
					   0, NULL, detail.data, true);
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------
 * Before the statement
 * ------------------------------------------------------------------
 */

static void
refuse(const char *msg, const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s", msg),
			 detail ? errdetail("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0));
}

/* agentauth._refuse_extension_member() says why, for protect_table() */
#define EXTENSION_DETAIL "A member of an extension is left out of pg_dump and dropped with its extension."

#define CODE_HINT "Code attached to a protected table sees whole rows outside the row check. " \
	"A superuser may do this; otherwise drop that code first."

/*
 * The first code object of a table (and its partitions) that would run
 * over the rows agents write once it is protected -- a partition of
 * parent, or a table of a protected schema (protected_schema.c, parent
 * InvalidOid) -- described; NULL when there is none.  Foreign keys and
 * defaults that call code count (1.1: ddl_values.c refuses them on a
 * protected table).  Objects the parent
 * has alike (a constraint of the same name and definition, a generated
 * column of the same expression) do not count.
 */
char *
aa_attached_code(Oid parent, Oid part)
{
	static const char *sql =
		"WITH t AS (SELECT $2::pg_catalog.regclass AS relid UNION"
		"           SELECT t.relid FROM pg_catalog.pg_partition_tree($2) t) "
		"SELECT x.what FROM ("
		" SELECT pg_catalog.format('trigger %I on %s', g.tgname, g.tgrelid::pg_catalog.regclass) AS what"
		"   FROM pg_catalog.pg_trigger g JOIN t ON g.tgrelid = t.relid"
		"  WHERE NOT g.tgisinternal AND g.tgparentid = 0"
		"    AND g.tgfoid <> 'agentauth._replicated_write()'::pg_catalog.regprocedure"
		" UNION ALL SELECT pg_catalog.format('rule %I on %s', r.rulename, r.ev_class::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_rewrite r JOIN t ON r.ev_class = t.relid"
		" UNION ALL SELECT pg_catalog.format('restrictive policy %I on %s', p.polname, p.polrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_policy p JOIN t ON p.polrelid = t.relid WHERE NOT p.polpermissive"
		" UNION ALL SELECT pg_catalog.format('constraint %I on %s', c.conname, c.conrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_constraint c JOIN t ON c.conrelid = t.relid"
		"  WHERE c.contype IN ('c', 'x') AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint pc"
		"         WHERE pc.conrelid = $1 AND pc.conname = c.conname AND pc.contype = c.contype"
		"           AND pg_catalog.pg_get_constraintdef(pc.oid) = pg_catalog.pg_get_constraintdef(c.oid))"
		" UNION ALL SELECT pg_catalog.format('index %s', i.indexrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_index i JOIN t ON i.indrelid = t.relid"
		"  WHERE (i.indexprs IS NOT NULL OR i.indpred IS NOT NULL)"
		"    AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype = 'x')"
		"    AND NOT EXISTS (SELECT FROM pg_catalog.pg_inherits h WHERE h.inhrelid = i.indexrelid)"
		" UNION ALL SELECT pg_catalog.format('statistics %I on %s', s.stxname, s.stxrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_statistic_ext s JOIN t ON s.stxrelid = t.relid WHERE s.stxexprs IS NOT NULL"
		" UNION ALL SELECT pg_catalog.format('generated column %I of %s', a.attname, a.attrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_attribute a JOIN t ON a.attrelid = t.relid"
		"   JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
		"  WHERE a.attgenerated <> '' AND NOT a.attisdropped AND NOT EXISTS (SELECT"
		"         FROM pg_catalog.pg_attribute pa JOIN pg_catalog.pg_attrdef pd"
		"           ON pd.adrelid = pa.attrelid AND pd.adnum = pa.attnum"
		"        WHERE pa.attrelid = $1 AND pa.attname = a.attname"
		"          AND pg_catalog.pg_get_expr(pd.adbin, pd.adrelid) = pg_catalog.pg_get_expr(d.adbin, d.adrelid))"
		" UNION ALL SELECT pg_catalog.format('partition key of %s', k.partrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_partitioned_table k JOIN t ON k.partrelid = t.relid WHERE k.partexprs IS NOT NULL"
		" UNION ALL SELECT pg_catalog.format('publication %I of %s', b.pubname, r.prrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_publication_rel r JOIN t ON r.prrelid = t.relid"
		"   JOIN pg_catalog.pg_publication b ON b.oid = r.prpubid"
		" UNION ALL SELECT pg_catalog.format('foreign key %I on %s', f.conname, f.conrelid::pg_catalog.regclass)"
		"   FROM pg_catalog.pg_constraint f JOIN t ON f.conrelid = t.relid OR f.confrelid = t.relid"
		"  WHERE f.contype = 'f' AND f.conparentid = 0"
		") x LIMIT 1";
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		args[2];
	AASpiState	spi;
	char	   *what = NULL;
	MemoryContext caller = CurrentMemoryContext;

	args[0] = ObjectIdGetDatum(parent);
	args[1] = ObjectIdGetDatum(part);
	/* the latest snapshot: code the running statement attached counts */
	aa_spi_begin(&spi, true);
	if (SPI_execute_with_args(sql, 2, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the code attached to a table");
	if (SPI_processed > 0)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		what = MemoryContextStrdup(caller, v);
	}
	aa_spi_end(&spi);

	/* a default that calls code runs in agents' INSERTs (ddl_values.c) */
	if (what == NULL)
	{
		ListCell   *lc;

		foreach(lc, find_all_inheritors(part, NoLock, NULL))
		{
			Oid			member = lfirst_oid(lc);

			if (what == NULL)
				what = aa_ddl_default_refused(member, member == part ? parent :
											  get_partition_parent(member, true));
		}
	}
	return what;
}

/*
 * CREATE [FOREIGN] TABLE ... PARTITION OF a protected table: the new
 * partition will be protected by the statement's end; it may not be a
 * foreign table, nor bring code of a non-superuser's (runs_code: ddl.c
 * found constraints, generated columns or a partition key that run code).
 */
void
aa_partition_check_create(CreateStmt *stmt, bool foreign, bool runs_code)
{
	Oid			parent;
	AAProtectedRel *prot;
	char	   *relname;

	if (stmt->partbound == NULL || list_length(stmt->inhRelations) != 1)
		return;
	parent = RangeVarGetRelid(linitial(stmt->inhRelations), NoLock, true);
	if (!OidIsValid(parent) || (prot = aa_protected_rel(parent)) == NULL)
		return;
	relname = pstrdup(prot->relname);
	if (foreign)
		refuse(psprintf("cannot create a foreign table as a partition of protected table %s", relname),
			   "Rows of a foreign table cannot be protected.", NULL);
	if (creating_extension)
		refuse(psprintf("cannot create a partition of protected table %s in an extension's script", relname),
			   EXTENSION_DETAIL, NULL);
	if (!superuser() && runs_code)
		refuse(psprintf("cannot create a partition with check, exclusion or generated columns or an expression partition key of protected table %s",
						relname),
			   NULL, CODE_HINT);
}

/*
 * ALTER TABLE parent ATTACH PARTITION part.  A protected table may only be
 * attached to a protected parent of the same classification; a table
 * attached to a protected parent becomes protected, so it may not be a
 * foreign table nor carry code of a non-superuser's.
 */
void
aa_partition_check_attach(Oid parent, Oid part)
{
	bool		parent_protected;
	bool		part_labelled;
	char	   *what;
	ListCell   *lc;

	if (!OidIsValid(parent) || !OidIsValid(part))
		return;
	parent_protected = aa_is_protected(parent);
	part_labelled = aa_partition_label(part, 0) != NULL;
	if (!parent_protected)
	{
		if (part_labelled || aa_is_protected(part))
			refuse(psprintf("cannot attach a partition across the boundary of protected table %s",
							get_rel_name(part)),
				   NULL,
				   "A partition and its parent must both be protected, or neither: rows would escape the checks of the protected one.");
		return;
	}

	foreach(lc, find_all_inheritors(part, NoLock, NULL))
	{
		Oid			member = lfirst_oid(lc);

		if (get_rel_relkind(member) == RELKIND_FOREIGN_TABLE)
			refuse(psprintf("cannot attach foreign table %s to protected table %s",
							qualified_name(member), qualified_name(parent)),
				   "Rows of a foreign table cannot be protected.", NULL);
		if (OidIsValid(getExtensionOfObject(RelationRelationId, member)))
			refuse(psprintf("cannot attach table %s to protected table %s: it is a member of an extension",
							qualified_name(member), qualified_name(parent)),
				   EXTENSION_DETAIL, NULL);
		if (aa_partition_label(member, 0) != NULL && !same_classification(parent, member))
			refuse(psprintf("cannot attach protected table %s to protected table %s: their classifications differ",
							qualified_name(member), qualified_name(parent)),
				   "A partition takes its parent's classification.",
				   "Protect it as the parent is, or unprotect it in the transaction that attaches it.");
	}

	if (part_labelled)
	{
		Oid			trig;

		/*
		 * Its own replication trigger makes way for the clone of the
		 * parent's (PostgreSQL refuses two of one name); the ATTACH fails
		 * or commits with it.
		 */
		trig = get_trigger_oid(part, WRITE_TRIGGER, true);
		if (OidIsValid(trig))
		{
			ObjectAddress addr;

			addr.classId = TriggerRelationId;
			addr.objectId = trig;
			addr.objectSubId = 0;
			performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
			CommandCounterIncrement();
		}
		return;
	}
	if (!superuser() && (what = aa_attached_code(parent, part)) != NULL)
		refuse(psprintf("cannot attach table %s to protected table %s: it carries %s",
						qualified_name(part), qualified_name(parent), what),
			   NULL, CODE_HINT);
}

/*
 * ALTER TABLE parent DETACH PARTITION part: the partition stays protected
 * with the labels it has; one without labels of its own would leave
 * unprotected.
 */
void
aa_partition_check_detach(Oid parent, Oid part)
{
	Oid			anc;

	if (!OidIsValid(part) || aa_partition_label(part, 0) != NULL)
		return;
	anc = aa_partition_labelled_ancestor(part);
	if (OidIsValid(anc))
		refuse(psprintf("cannot detach partition %s of protected table %s: it has no classification of its own",
						qualified_name(part), qualified_name(anc)),
			   "Detached, its rows would be read unchecked.",
			   "Run agentauth.protect_table() on the partitioned table again: it classifies every partition.");
}

/* ------------------------------------------------------------------
 * After the statement
 * ------------------------------------------------------------------
 */

static void
run_as_owner(const char *sql, Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];
	AASpiState	spi;

	args[0] = ObjectIdGetDatum(relid);
	aa_spi_begin(&spi, false);
	if (SPI_execute_with_args(sql, 1, argtypes, args, NULL, false, 0) < 0)
		elog(ERROR, "could not run \"%s\"", sql);
	aa_spi_end(&spi);
}

/*
 * After the statement, before its partitions are protected: code a
 * non-superuser attached to the new partition while the statement ran (a
 * function in a partition bound that creates a trigger on it) or in a
 * transaction that committed while the statement waited for its lock is
 * refused as the checks before the statement refuse it.
 */
static void
refuse_code_after(RangeVar *parent_rv, RangeVar *part_rv)
{
	Oid			parent = parent_rv ? RangeVarGetRelid(parent_rv, NoLock, true) : InvalidOid;
	Oid			part = part_rv ? RangeVarGetRelid(part_rv, NoLock, true) : InvalidOid;
	char	   *what;

	/* a protected table attached, as before the statement: its own code */
	if (superuser() || !OidIsValid(parent) || !OidIsValid(part) ||
		aa_partition_label(parent, 0) == NULL || aa_partition_label(part, 0) != NULL)
		return;
	if ((what = aa_attached_code(parent, part)) != NULL)
		refuse(psprintf("cannot make %s a partition of protected table %s: it carries %s",
						qualified_name(part), qualified_name(parent), what),
			   NULL, CODE_HINT);
}

static void
protect_new_partitions(RangeVar *parent_rv)
{
	Oid			parent = parent_rv ? RangeVarGetRelid(parent_rv, NoLock, true) : InvalidOid;

	if (OidIsValid(parent) && aa_partition_label(parent, 0) != NULL)
		run_as_owner("SELECT agentauth._protect_partitions($1::pg_catalog.regclass, true)",
					 parent);
}

/*
 * A utility statement ran: protect the partitions it made or attached
 * under a protected table; give a detached protected partition back the
 * replication trigger PostgreSQL dropped with the parent's clone.  Called
 * by the one ProcessUtility hook (utility.c), after the statement.
 */
void
aa_partition_utility_done(Node *stmt)
{
	CreateStmt *cs = NULL;

	if (IsBinaryUpgrade || !IsTransactionState() || !aa_extension_ready())
		return;
	if (IsA(stmt, CreateStmt))
		cs = (CreateStmt *) stmt;
	else if (IsA(stmt, CreateForeignTableStmt))
		cs = &((CreateForeignTableStmt *) stmt)->base;
	if (cs != NULL)
	{
		if (cs->partbound != NULL && list_length(cs->inhRelations) == 1)
		{
			refuse_code_after(linitial(cs->inhRelations), cs->relation);
			protect_new_partitions(linitial(cs->inhRelations));
		}
		return;
	}
	if (IsA(stmt, AlterTableStmt))
	{
		AlterTableStmt *as = (AlterTableStmt *) stmt;
		ListCell   *lc;

		foreach(lc, as->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);
			Oid			part;

			if (cmd->def == NULL || !IsA(cmd->def, PartitionCmd))
				continue;
			if (cmd->subtype == AT_AttachPartition)
			{
				refuse_code_after(as->relation, ((PartitionCmd *) cmd->def)->name);
				protect_new_partitions(as->relation);
			}
			else if (cmd->subtype == AT_DetachPartition ||
					 cmd->subtype == AT_DetachPartitionFinalize)
			{
				part = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);
				if (OidIsValid(part) && aa_partition_label(part, 0) != NULL)
					run_as_owner("SELECT agentauth._replication_triggers(s.r) FROM"
								 " (SELECT $1::pg_catalog.regclass AS r, 0 AS level"
								 "  UNION ALL SELECT t.relid, t.level"
								 "  FROM pg_catalog.pg_partition_tree($1::pg_catalog.regclass) t"
								 "  WHERE t.level > 0) s ORDER BY s.level",
								 part);
			}
		}
	}
}
