/*-------------------------------------------------------------------------
 *
 * ddl.c
 *		The DDL guard of protected tables: what a utility statement may not
 *		do to a protected table, or does only after a check.
 *
 *		Refused: switching row security off (only unprotect_table() ends
 *		protection); dropping or renaming the patient column (also as a
 *		dependent of another object, and by ALTER TYPE ... RENAME
 *		ATTRIBUTE naming the table); inheritance
 *		across the boundary of protection (partitions: partition.c, called
 *		from here); renaming or
 *		moving the table (another could take its name; by whatever ALTER
 *		INDEX/VIEW/SEQUENCE spelling), or renaming or re-owning its schema,
 *		or moving an extension it is a member of (ddl_names.c), unless a
 *		superuser does it; making it an extension's member; renaming a
 *		value of an enum a protected column uses (owner_code.c), unless a
 *		superuser does it; code attached to the table -- triggers,
 *		rules, restrictive policies, index, constraint, generated-column,
 *		USING and statistics expressions, a change of a column to a type a
 *		non-superuser made, validating a stored constraint, a constraint
 *		added to a domain a column uses (owner_code.c) -- unless a
 *		superuser attaches it; dropping the table, unless a superuser drops
 *		it (recorded as table_unprotected).
 *
 *		Checked: TRUNCATE and COPY (ddl_bulk.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/heap.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_policy.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "agentauth.h"


/*
 * Code that a table's owner attaches to a protected table -- a trigger, a
 * rule, a policy, an index or constraint expression, a USING or generated
 * column expression -- runs over whole rows outside the row check: at
 * creation over every existing row (CREATE INDEX, ADD CONSTRAINT ... CHECK,
 * a table rewrite), or on every row an agent's statement scans (a
 * restrictive policy with a cheaper function runs before ours).  Its author
 * would read every class of every patient, unaudited.  Only a superuser,
 * who bypasses row security anyway, may attach such code; anyone else
 * unprotects the table first (audited).
 */
static void
refuse_attached_code(Oid relid, const char *what)
{
	AAProtectedRel *prot;

	if (!OidIsValid(relid) || superuser())
		return;
	prot = aa_protected_rel(relid);
	if (prot == NULL)
		return;
	aa_ddl_refuse(prot->relname, what,
			   "Code attached to a protected table sees whole rows outside the row check. "
			   "A superuser may make this change; otherwise unprotect the table with agentauth.unprotect_table() (audited), change it, and protect it again.");
}

static bool
policy_is_restrictive(Oid relid, const char *name)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		restrictive = false;

	ScanKeyInit(&keys[0], Anum_pg_policy_polrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_policy_polname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(name));
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, true, NULL, 2, keys);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		restrictive = !((Form_pg_policy) GETSTRUCT(tup))->polpermissive;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return restrictive;
}

static Oid
rangevar_relid(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

static bool
constraints_run_code(List *constraints)
{
	ListCell   *lc;

	foreach(lc, constraints)
	{
		Constraint *c = lfirst(lc);

		if (IsA(c, Constraint) &&
			(c->contype == CONSTR_CHECK || c->contype == CONSTR_EXCLUSION ||
			 c->contype == CONSTR_GENERATED))
			return true;
	}
	return false;
}

static void
check_index(IndexStmt *stmt)
{
	ListCell   *lc;
	bool		code = stmt->whereClause != NULL || stmt->excludeOpNames != NIL;

	foreach(lc, stmt->indexParams)
	{
		IndexElem  *e = lfirst(lc);

		if (e->expr != NULL)
			code = true;
	}
	foreach(lc, stmt->indexIncludingParams)
	{
		IndexElem  *e = lfirst(lc);

		if (e->expr != NULL)
			code = true;
	}
	if (code)
		refuse_attached_code(rangevar_relid(stmt->relation),
							 "create an index with expressions or a predicate on");
}

static void
check_stats(CreateStatsStmt *stmt)
{
	ListCell   *lc;
	bool		code = false;

	foreach(lc, stmt->exprs)
	{
		StatsElem  *e = lfirst(lc);

		if (IsA(e, StatsElem) && e->expr != NULL)
			code = true;
	}
	if (!code)
		return;
	foreach(lc, stmt->relations)
		if (IsA(lfirst(lc), RangeVar))
			refuse_attached_code(rangevar_relid(lfirst(lc)),
								 "create statistics on expressions of");
}

/*
 * ALTER TYPE ... ALTER, ADD, DROP or RENAME ATTRIBUTE ... CASCADE changes
 * the columns of every table typed by the composite type (CREATE TABLE
 * ... OF), without naming them: a domain its maker made on a protected
 * column, the patient column renamed or dropped.  Refused while a
 * protected table is typed by it (unprotect that table first).
 */
static void
refuse_typed_tables(Oid typrelid)
{
	Oid			typid = get_rel_type_id(typrelid);
	Relation	classrel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			typed = InvalidOid;

	if (!OidIsValid(typid))
		return;
	classrel = table_open(RelationRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_class_reloftype, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(typid));
	scan = systable_beginscan(classrel, InvalidOid, false, NULL, 1, &key);
	while (!OidIsValid(typed) && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Oid			relid = ((Form_pg_class) GETSTRUCT(tup))->oid;

		if (aa_is_protected(relid))
			typed = relid;
	}
	systable_endscan(scan);
	table_close(classrel, AccessShareLock);
	if (OidIsValid(typed))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot alter the attributes of type %s: protected table %s is typed by it",
						format_type_be(typid), get_rel_name(typed)),
				 errhint("Unprotect the table with agentauth.unprotect_table() (audited), change the type, and protect the table again.")));
}

static void check_alter_protected(AlterTableStmt *stmt, Oid relid);

/*
 * A column definition (ADD COLUMN, ALTER COLUMN TYPE) of a type or domain a
 * non-superuser made: a domain's CHECK or a type's cast runs over every
 * value.
 */
static bool
column_type_untrusted(Node *def)
{
	Oid			typid;

	if (def == NULL || !IsA(def, ColumnDef) || ((ColumnDef *) def)->typeName == NULL)
		return false;
	typid = LookupTypeNameOid(NULL, ((ColumnDef *) def)->typeName, true);
	return OidIsValid(typid) && !aa_owner_code_type_trusted(typid);
}

/* ALTER TABLE ... INHERIT: a protected table may not become a parent */
static void
check_add_inherit(AlterTableCmd *cmd)
{
	Oid			parent;

	if (cmd->subtype != AT_AddInherit || cmd->def == NULL || !IsA(cmd->def, RangeVar))
		return;
	parent = RangeVarGetRelid((RangeVar *) cmd->def, NoLock, true);
	if (OidIsValid(parent) && aa_is_protected(parent))
		aa_ddl_refuse(get_rel_name(parent), "inherit from",
				   "Rows of a child table would escape the checks of the protected table.");
}

static void
check_alter_table(AlterTableStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	ListCell   *lc;

	if (!OidIsValid(relid))
		return;
	if (get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE)
	{
		refuse_typed_tables(relid);
		return;
	}

	/* a protected table may not become the parent of another */
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		/* a foreign key's validation reads both tables whole (admit.c) */
		aa_admit_fk_validation(relid, cmd);

		check_add_inherit(cmd);

		/* partitions: partition.c */
		if ((cmd->subtype == AT_AttachPartition || cmd->subtype == AT_DetachPartition) &&
			cmd->def && IsA(cmd->def, PartitionCmd))
		{
			Oid			part = rangevar_relid(((PartitionCmd *) cmd->def)->name);

			if (cmd->subtype == AT_AttachPartition)
				aa_partition_check_attach(relid, part);
			else
				aa_partition_check_detach(relid, part);
		}
	}
	aa_ddl_check_alter_keys(relid, stmt);
	check_alter_protected(stmt, relid);
}

/*
 * The subcommands of ALTER TABLE refused on a protected table: before the
 * statement, and again after it (aa_ddl_check_after: the table may have
 * been protected while the statement waited for its lock).  Each depends
 * on the statement's text and the table's classification only.
 */
static void
check_alter_protected(AlterTableStmt *stmt, Oid relid)
{
	AAProtectedRel *prot;
	ListCell   *lc;
	char	   *relname;
	char	   *patient_column;

	/* looked up last: the pointer is good until the next lookup */
	prot = aa_protected_rel(relid);
	if (prot == NULL)
		return;
	relname = pstrdup(prot->relname);
	patient_column = prot->patient_column ? pstrdup(prot->patient_column) : NULL;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		switch (cmd->subtype)
		{
			case AT_DisableRowSecurity:
				aa_ddl_refuse(relname, "disable row level security on",
						   "Only agentauth.unprotect_table() ends protection.");
				break;
			case AT_NoForceRowSecurity:
				aa_ddl_refuse(relname, "stop forcing row level security on",
						   "Only agentauth.unprotect_table() ends protection.");
				break;
			case AT_DropColumn:
				if (patient_column && cmd->name &&
					strcmp(cmd->name, patient_column) == 0)
					aa_ddl_refuse(relname, "drop the patient column of",
							   "Unprotect the table first with agentauth.unprotect_table().");
				break;
			case AT_AddInherit:
				aa_ddl_refuse(relname, "make an inheritance child of", NULL);
				break;
			case AT_AddConstraint:
				if (cmd->def && IsA(cmd->def, Constraint) &&
					constraints_run_code(list_make1(cmd->def)))
					refuse_attached_code(relid, "add a check or exclusion constraint to");
				break;
			case AT_AddColumn:
				if (cmd->def && IsA(cmd->def, ColumnDef) &&
					constraints_run_code(((ColumnDef *) cmd->def)->constraints))
					refuse_attached_code(relid, "add a generated or checked column to");
				if (column_type_untrusted(cmd->def))
					refuse_attached_code(relid, "add a column of a type or domain that a non-superuser made to");
				break;
			case AT_AlterColumnType:
				if (cmd->def && IsA(cmd->def, ColumnDef) &&
					((ColumnDef *) cmd->def)->raw_default != NULL)
					refuse_attached_code(relid, "change a column type with a USING expression on");
				if (column_type_untrusted(cmd->def))
					refuse_attached_code(relid, "change a column to a type or domain that a non-superuser made on");
				/* a built-in conversion too (ddl_values.c) */
				aa_ddl_check_type_change(relid, cmd, relname);
				break;
			case AT_ValidateConstraint:
				/* a stored CHECK (made before protection) runs over every row */
				refuse_attached_code(relid, "validate a constraint of");
				break;
			case AT_EnableTrig:
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
			case AT_EnableTrigAll:
			case AT_EnableTrigUser:
				/*
				 * A trigger disabled (or firing in replicas only) when the
				 * table was protected is inert; enabling it attaches its
				 * code as CREATE TRIGGER would (1.1, found by review)
				 */
				refuse_attached_code(relid, "enable a trigger of");
				break;
			case AT_EnableRule:
			case AT_EnableAlwaysRule:
			case AT_EnableReplicaRule:
				refuse_attached_code(relid, "enable a rule of");
				break;
#if PG_VERSION_NUM >= 170000
			case AT_SetExpression:
				refuse_attached_code(relid, "change a generated column's expression on");
				break;
#endif
			default:
				break;
		}
	}
}

static void
check_rename(RenameStmt *stmt)
{
	Oid			relid;
	AAProtectedRel *prot;

	/*
	 * Its owner could rename (or move) a protected table and put an
	 * unprotected one in its place, into which agents would then write.
	 */
	if (aa_renames_relation(stmt))
	{
		/* ALTER INDEX ... RENAME renames a table too */
		aa_ddl_refuse_moved(rangevar_relid(stmt->relation), "rename");
		return;
	}
	if (stmt->renameType == OBJECT_SCHEMA)
	{
		aa_ddl_refuse_schema(stmt->subname, "rename");
		return;
	}
	if (stmt->renameType == OBJECT_ATTRIBUTE && stmt->relation != NULL)
	{
		relid = rangevar_relid(stmt->relation);
		refuse_typed_tables(relid);

		/*
		 * ALTER TYPE ... RENAME ATTRIBUTE naming a table renames the
		 * table's column: PostgreSQL does not check that it is a type (1.1:
		 * it renamed the patient column, and a column added under the old
		 * name became the patient column)
		 */
		if (!OidIsValid(relid) || get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE)
			return;
	}
	else if (stmt->renameType != OBJECT_COLUMN || stmt->relation == NULL)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	prot = aa_protected_rel(relid);
	if (prot && prot->patient_column && stmt->subname &&
		strcmp(stmt->subname, prot->patient_column) == 0)
		aa_ddl_refuse(prot->relname, "rename the patient column of",
				   "Unprotect the table, rename the column, and protect it again.");

	/*
	 * The audit records name a column as it was named when it was read;
	 * a rename, or two swapped, would make the log say that one element
	 * was read where another was, and element_access() answer for the
	 * wrong one (1.1: the owner could rename every column but the
	 * patient's, unrecorded).
	 */
	if (prot && !superuser())
		aa_ddl_refuse(prot->relname, "rename a column of",
				   "The audit log names columns as they were named when read. A superuser may do this; otherwise unprotect the table with agentauth.unprotect_table() (audited), rename the column, and protect it again.");
}

/*
 * Code in a CREATE TABLE statement itself: CHECK, exclusion or generated
 * columns, a partition key on expressions.
 */
static bool
create_runs_code(CreateStmt *stmt)
{
	ListCell   *lc;

	if (constraints_run_code(stmt->constraints))
		return true;
	foreach(lc, stmt->tableElts)
	{
		Node	   *elt = lfirst(lc);

		if (IsA(elt, ColumnDef) &&
			constraints_run_code(((ColumnDef *) elt)->constraints))
			return true;
		if (IsA(elt, Constraint) && constraints_run_code(list_make1(elt)))
			return true;
	}
	if (stmt->partspec != NULL)
		foreach(lc, stmt->partspec->partParams)
		{
			PartitionElem *pe = lfirst(lc);

			if (IsA(pe, PartitionElem) && pe->expr != NULL)
				return true;
		}
	return false;
}

static void
check_create(CreateStmt *stmt, bool foreign)
{
	ListCell   *lc;

	/* foreign keys to a new partition of a protected table, or referencing one */
	aa_ddl_check_create_keys(stmt, stmt->partbound != NULL && stmt->inhRelations != NIL ?
							 RangeVarGetRelid(linitial(stmt->inhRelations), NoLock, true) :
							 InvalidOid);
	/* a partition of a protected table becomes protected: partition.c */
	if (stmt->partbound != NULL)
	{
		aa_partition_check_create(stmt, foreign, create_runs_code(stmt));
		return;
	}
	foreach(lc, stmt->inhRelations)
	{
		RangeVar   *rv = lfirst(lc);
		Oid			parent = RangeVarGetRelid(rv, NoLock, true);

		if (OidIsValid(parent) && aa_is_protected(parent))
			aa_ddl_refuse(get_rel_name(parent), "inherit from",
					   "Rows of a child table would escape the checks of the protected table.");
	}
}

/*
 * A utility statement is about to run: refuse it when it would end or get
 * around the protection of a protected table.  Called by the one
 * ProcessUtility hook (utility.c), before the statement runs.
 */
void
aa_ddl_check(Node *stmt)
{
	if (!IsTransactionState() || IsParallelWorker())
		return;
	aa_replication_ddl_check(stmt); /* the triggers of replication.c */

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			check_alter_table((AlterTableStmt *) stmt);
			break;
		case T_RenameStmt:
			check_rename((RenameStmt *) stmt);
			break;
		case T_CreateStmt:
			check_create((CreateStmt *) stmt, false);
			break;
		case T_CreateForeignTableStmt:
			check_create(&((CreateForeignTableStmt *) stmt)->base, true);
			break;
		case T_IndexStmt:
			check_index((IndexStmt *) stmt);
			break;
		case T_AlterObjectSchemaStmt:
			/* ALTER TABLE, VIEW, INDEX ... SET SCHEMA: whatever it says */
			if (((AlterObjectSchemaStmt *) stmt)->relation != NULL)
				aa_ddl_refuse_moved(rangevar_relid(((AlterObjectSchemaStmt *) stmt)->relation),
							 "move");
			/* ALTER EXTENSION ... SET SCHEMA moves its member tables */
			else if (((AlterObjectSchemaStmt *) stmt)->objectType == OBJECT_EXTENSION)
				aa_ddl_refuse_extension_move(strVal(((AlterObjectSchemaStmt *) stmt)->object));
			break;
		case T_AlterOwnerStmt:
			if (((AlterOwnerStmt *) stmt)->objectType == OBJECT_SCHEMA)
				aa_ddl_refuse_schema(strVal(((AlterOwnerStmt *) stmt)->object),
							  "change the owner of");
			break;
		case T_AlterDomainStmt:
			aa_owner_code_check_domain(stmt);
			break;
		case T_AlterEnumStmt:
			aa_owner_code_check_enum(stmt);
			break;
		case T_ReassignOwnedStmt:
			aa_ddl_check_reassign_owned((ReassignOwnedStmt *) stmt);
			break;
		case T_AlterExtensionContentsStmt:
			aa_ddl_check_extension_add((AlterExtensionContentsStmt *) stmt);
			break;
		case T_CreateStatsStmt:
			check_stats((CreateStatsStmt *) stmt);
			break;
		case T_CreateTrigStmt:
			refuse_attached_code(rangevar_relid(((CreateTrigStmt *) stmt)->relation),
								 "create a trigger on");
			break;
		case T_RuleStmt:
			refuse_attached_code(rangevar_relid(((RuleStmt *) stmt)->relation),
								 "create a rule on");
			break;
		case T_CreatePolicyStmt:
			/* a permissive one is ORed with our "true": never evaluated */
			if (!((CreatePolicyStmt *) stmt)->permissive)
				refuse_attached_code(rangevar_relid(((CreatePolicyStmt *) stmt)->table),
									 "create a restrictive policy on");
			break;
		case T_AlterPolicyStmt:
			{
				AlterPolicyStmt *ps = (AlterPolicyStmt *) stmt;
				Oid			relid = rangevar_relid(ps->table);

				if ((ps->qual || ps->with_check) && OidIsValid(relid) &&
					policy_is_restrictive(relid, ps->policy_name))
					refuse_attached_code(relid, "alter a restrictive policy on");
			}
			break;
		case T_TruncateStmt:
			aa_bulk_check_truncate((TruncateStmt *) stmt);
			break;
		case T_CopyStmt:
			aa_bulk_check_copy((CopyStmt *) stmt);
			break;
		default:
			break;
	}
}

/*
 * The table a RENAME or SET SCHEMA names, before the statement (after it,
 * the name no longer leads to it): for aa_ddl_check_after().
 */
Oid
aa_ddl_moved_relation(Node *stmt)
{
	if (IsA(stmt, RenameStmt))
	{
		RenameStmt *rs = (RenameStmt *) stmt;

		if (aa_renames_relation(rs))
			return rangevar_relid(rs->relation);
	}
	else if (IsA(stmt, AlterObjectSchemaStmt) &&
			 ((AlterObjectSchemaStmt *) stmt)->relation != NULL)
		return rangevar_relid(((AlterObjectSchemaStmt *) stmt)->relation);
	return InvalidOid;
}

/* the columns a CREATE TABLE defines with a default of their own */
static List *
create_default_columns(CreateStmt *stmt)
{
	List	   *cols = NIL;
	ListCell   *lc;

	foreach(lc, stmt->tableElts)
	{
		ColumnDef  *def = lfirst(lc);
		ListCell   *c;

		if (!IsA(def, ColumnDef))
			continue;
		if (def->raw_default != NULL || def->cooked_default != NULL)
			cols = lappend(cols, makeString(def->colname));
		else
			foreach(c, def->constraints)
				if (IsA(lfirst(c), Constraint) &&
					((Constraint *) lfirst(c))->contype == CONSTR_DEFAULT)
				{
					cols = lappend(cols, makeString(def->colname));
					break;
				}
	}
	return cols;
}

/*
 * After a statement that attaches code to a table: the check before it
 * ran on what was committed then, before the statement waited for its
 * lock; a transaction that protected the table (protect_table, a move into
 * a protected schema, an ATTACH under a protected parent) may have
 * committed meanwhile.  Checked again, now that the lock is held.
 */
void
aa_ddl_check_after(Node *stmt, Oid moved)
{
	if (superuser() || !aa_extension_ready())
		return;
	/* renamed or moved while a transaction protecting it committed */
	if (OidIsValid(moved))
		aa_ddl_refuse_moved(moved, "rename or move");
	switch (nodeTag(stmt))
	{
		case T_IndexStmt:
			/* CONCURRENTLY has committed its index: checked before only */
			if (!((IndexStmt *) stmt)->concurrent)
				aa_ddl_check(stmt);
			break;
		case T_CreateStmt:
			/* an inheritance child of a table protected meanwhile */
			if (((CreateStmt *) stmt)->partbound == NULL &&
				((CreateStmt *) stmt)->inhRelations != NIL)
				aa_ddl_check(stmt);
			/* a new partition's own defaults, now that they are stored */
			if (((CreateStmt *) stmt)->partbound != NULL)
				aa_ddl_check_defaults(RangeVarGetRelid(((CreateStmt *) stmt)->relation,
													   NoLock, true),
									  create_default_columns((CreateStmt *) stmt));
			break;
		case T_CreateForeignTableStmt:
			/* the same, a foreign table (1.1: was not checked again) */
			if (((CreateForeignTableStmt *) stmt)->base.partbound == NULL &&
				((CreateForeignTableStmt *) stmt)->base.inhRelations != NIL)
				aa_ddl_check(stmt);
			break;
		case T_RenameStmt:
			/* the patient column's: the label still names it */
			if (((RenameStmt *) stmt)->renameType == OBJECT_COLUMN ||
				((RenameStmt *) stmt)->renameType == OBJECT_ATTRIBUTE)
				aa_ddl_check(stmt);
			break;
		case T_CreateTrigStmt:
		case T_RuleStmt:
		case T_CreatePolicyStmt:
		case T_AlterPolicyStmt:
		case T_CreateStatsStmt:
			aa_ddl_check(stmt);
			break;
		case T_AlterTableStmt:
			{
				AlterTableStmt *as = (AlterTableStmt *) stmt;
				Oid			relid = RangeVarGetRelid(as->relation, NoLock, true);

				ListCell   *lc;

				/* made a child of a table protected meanwhile (1.1) */
				foreach(lc, as->cmds)
					check_add_inherit(lfirst_node(AlterTableCmd, lc));
				if (OidIsValid(relid) &&
					get_rel_relkind(relid) != RELKIND_COMPOSITE_TYPE)
				{
					aa_ddl_check_alter_keys(relid, as);
					check_alter_protected(as, relid);
					aa_ddl_check_defaults(relid, aa_ddl_default_columns(as));
				}
			}
			break;
		default:
			break;
	}
}

/*
 * A column of a relation is about to be dropped, by ALTER TABLE ... DROP
 * COLUMN (refused by name before: check_alter_protected) or as an object
 * that depends on another being dropped with CASCADE -- its collation, its
 * type, a domain or enum its owner made (1.1).  A protected table's
 * patient column is refused either way, for every role: a column of the
 * same name added after it would become the patient column, and its rows
 * the patient that column's default names.
 */
void
aa_ddl_check_drop_column(Oid relid, AttrNumber attnum)
{
	AAProtectedRel *prot = aa_protected_rel(relid);

	if (prot == NULL || attnum != prot->patient_attno)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot drop the patient column of protected table %s", prot->relname),
			 errdetail("The drop of another object would take the column with it."),
			 errhint("Unprotect the table first with agentauth.unprotect_table().")));
}

/*
 * Dropping a protected table deletes every patient's rows with no row check
 * and no record (DROP TABLE, DROP SCHEMA ... CASCADE, DROP OWNED): only a
 * superuser may, and the drop is recorded, with the settings kept under
 * its name when it is in a protected schema.  Called by the one
 * object-access hook (utility.c) for a relation about to be dropped, while
 * agentauth is installed and none of its own scripts runs.
 */
void
aa_ddl_check_drop(Oid relid)
{
	AAProtectedRel *prot = aa_protected_rel(relid);
	char	   *kept;

	if (prot == NULL)
		return;
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot drop protected table %s", prot->relname),
				 errhint("Unprotect it first with agentauth.unprotect_table() (audited), or ask a superuser.")));
	kept = aa_protected_schema_keep(relid);
	aa_audit_statement("table_unprotected", "permit", pstrdup(prot->relname), NULL,
					   0, NULL,
					   kept ? psprintf("{\"via\": \"drop\", \"kept\": %s}", kept)
					   : "{\"via\": \"drop\"}", true);
	aa_generation_bump_at_commit();
}
