/*-------------------------------------------------------------------------
 *
 * ddl_values.c
 *		DDL on a protected table that converts its stored values, runs in
 *		the agents' sessions, or checks its rows as the owner: a column's
 *		type change, a column's default, a foreign key.  Refused to anyone
 *		but a superuser (ddl.c calls these for ALTER TABLE and CREATE
 *		TABLE, before the statement and again after it).
 *
 *		- A type change converts every stored value outside the row
 *		  check.  A built-in cast that fails names the value in its error
 *		  (text to regclass: "relation "positive" does not exist"), one
 *		  that succeeds may change it silently (numeric(9,0) rounds,
 *		  "char" truncates), and the patient column's new text form (an
 *		  integer id as numeric: "8.0") no longer matches the consents
 *		  recorded for it, so a deny stops applying (1.1).  Only a change
 *		  that converts nothing -- binary coercible, varchar(n) to text --
 *		  is let through.
 *		- A column default runs inside the agent's statement that inserts,
 *		  with the agent's access: a function of the owner's there reads
 *		  whatever the agent may, and hands it on (pg_notify), as a
 *		  trigger would.  A default may call built-in functions that are
 *		  immutable, and the few volatile ones defaults are made of
 *		  (nextval, now, clock_timestamp, gen_random_uuid, ...); nothing
 *		  else.  Checked after the statement, on the stored expression:
 *		  the names in the statement may resolve anywhere.
 *		- A foreign key is checked by PostgreSQL as the tables' owner,
 *		  outside the row check, on the columns its maker chose: deleting a
 *		  row of a table the owner fills with guesses (patient, HIV status)
 *		  tells, row by row, which the protected table holds; a key from
 *		  an unprotected table cascades an agent's update into it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/transam.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentauth.h"

/* ------------------------------------------------------------------
 * Type changes
 * ------------------------------------------------------------------
 */

/*
 * ALTER TABLE ... ALTER COLUMN ... TYPE on protected table relid (before
 * the statement: the column still has its old type).
 */
void
aa_ddl_check_type_change(Oid relid, AlterTableCmd *cmd, const char *relname)
{
	ColumnDef  *def = (ColumnDef *) cmd->def;
	AttrNumber	attnum;
	Oid			oldtype;
	int32		oldmod;
	Oid			oldcoll;
	Oid			newtype;
	int32		typmod;
	Type		tup;

	if (superuser() || cmd->name == NULL || def == NULL || !IsA(def, ColumnDef) ||
		def->typeName == NULL)
		return;
	attnum = get_attnum(relid, cmd->name);
	if (attnum == InvalidAttrNumber)
		return;					/* PostgreSQL says so */
	get_atttypetypmodcoll(relid, attnum, &oldtype, &oldmod, &oldcoll);
	tup = LookupTypeName(NULL, def->typeName, &typmod, true);
	if (tup == NULL)
		return;					/* PostgreSQL says so */
	newtype = typeTypeId(tup);
	ReleaseSysCache(tup);

	/*
	 * Nothing converted: the same type, or text and varchar, with no
	 * length coercion, or a varchar made no shorter (numeric(9,0) or
	 * timestamp(0) would round, char(n) pad; an integer as regclass or oid
	 * is binary coercible, but prints another way)
	 */
	if ((oldtype == newtype ||
		 ((oldtype == TEXTOID || oldtype == VARCHAROID) &&
		  (newtype == TEXTOID || newtype == VARCHAROID))) &&
		(typmod < 0 ||
		 (oldtype == VARCHAROID && newtype == VARCHAROID && oldmod >= 0 &&
		  typmod >= oldmod)))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot change column \"%s\" of protected table %s from %s to %s",
					cmd->name, relname, format_type_with_typemod(oldtype, oldmod),
					format_type_with_typemod(newtype, typmod)),
			 errdetail("The change converts every stored value outside the row check: a conversion that fails shows the value in its error, one that succeeds may change it, and a patient column's new text form no longer matches its consents."),
			 errhint("A superuser may make this change; otherwise unprotect the table with agentauth.unprotect_table() (audited), change it, and protect it again.")));
}

/* ------------------------------------------------------------------
 * Column defaults
 * ------------------------------------------------------------------
 */

/* a function a default of a protected table may not call (true) */
static bool
default_function_refused(Oid fn, void *context)
{
	if (fn >= FirstGenbkiObjectId)
		return true;			/* not built in */
	switch (fn)
	{
		case F_NEXTVAL:
		case F_NOW:
		case F_STATEMENT_TIMESTAMP:
		case F_CLOCK_TIMESTAMP:
		case F_GEN_RANDOM_UUID:
		case F_DATE_TIMESTAMPTZ:
		case F_TIMESTAMP_TIMESTAMPTZ:
			return false;
		default:
			return func_volatile(fn) != PROVOLATILE_IMMUTABLE;
	}
}

static bool
default_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, default_function_refused, context))
		return true;
	/* a domain's CHECK runs whatever it calls (1.1: the owner's function) */
	if (IsA(node, CoerceToDomain) &&
		!aa_owner_code_type_trusted(((CoerceToDomain *) node)->resulttype))
		return true;
	return expression_tree_walker(node, default_walker, context);
}

/* the default of parent's column of that name, or NULL */
static Node *
parent_default(Oid parent, const char *attname)
{
	Relation	rel;
	TupleConstr *constr;
	Node	   *expr = NULL;
	AttrNumber	attnum;

	if (!OidIsValid(parent) || (attnum = get_attnum(parent, attname)) == InvalidAttrNumber)
		return NULL;
	rel = relation_open(parent, AccessShareLock);
	constr = RelationGetDescr(rel)->constr;
	for (int i = 0; constr != NULL && i < constr->num_defval; i++)
		if (constr->defval[i].adnum == attnum)
			expr = stringToNode(constr->defval[i].adbin);
	relation_close(rel, AccessShareLock);
	return expr;
}

/*
 * The first column of rel (of those named in cols; every column when
 * all) whose default calls what a default of a protected table may not,
 * or NULL.  A default the parent has alike does not count: a partition
 * copies its parent's defaults, which a superuser set.
 */
static char *
first_refused_default(Relation rel, Oid parent, List *cols, bool all)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TupleConstr *constr = desc->constr;

	for (int i = 0; constr != NULL && i < constr->num_defval; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, constr->defval[i].adnum - 1);
		char	   *name = NameStr(att->attname);
		Node	   *expr;
		bool		named = all;
		ListCell   *lc;

		foreach(lc, cols)
			named = named || strcmp(strVal(lfirst(lc)), name) == 0;
		if (!named || att->attisdropped || att->attgenerated != '\0')
			continue;
		expr = stringToNode(constr->defval[i].adbin);
		if (default_walker(expr, NULL) && !equal(expr, parent_default(parent, name)))
			return pstrdup(name);
	}
	return NULL;
}

/*
 * The first column of relid whose default calls code (described), or
 * NULL: for a table about to become protected (an attached or new
 * partition of parent, a table entering a protected schema with parent
 * InvalidOid: partition.c's aa_attached_code).
 */
char *
aa_ddl_default_refused(Oid relid, Oid parent)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	char	   *bad = first_refused_default(rel, parent, NIL, true);
	char	   *what = NULL;

	if (bad != NULL)
		what = psprintf("the default of column %s of %s, which calls code",
						quote_identifier(bad), RelationGetRelationName(rel));
	relation_close(rel, AccessShareLock);
	return what;
}

/*
 * After a statement that set the defaults of the columns named in cols
 * (ALTER COLUMN ... SET DEFAULT, ADD COLUMN ... DEFAULT, a partition's own
 * column definitions) of relid: refuse it, unless a superuser ran it, when
 * relid is protected and one of those defaults calls a function it may not.
 */
void
aa_ddl_check_defaults(Oid relid, List *cols)
{
	Relation	rel;
	char	   *bad;
	Oid			parent;

	if (cols == NIL || superuser() || !OidIsValid(relid) || !aa_is_protected(relid))
		return;
	parent = get_rel_relispartition(relid) ? get_partition_parent(relid, true) : InvalidOid;
	rel = relation_open(relid, NoLock);	/* the statement holds its lock */
	bad = first_refused_default(rel, parent, cols, false);
	relation_close(rel, NoLock);
	if (bad != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot set the default of column \"%s\" of protected table %s: it calls a function other than a built-in immutable one, nextval() or the clock's, or a domain a non-superuser made",
						bad, get_rel_name(relid)),
				 errdetail("A default runs in the agent's statement that inserts, with the agent's access: a function there reads what the agent may, outside the records."),
				 errhint("A superuser may set it; otherwise unprotect the table with agentauth.unprotect_table() (audited), set it, and protect it again.")));
}

/* the columns whose defaults an ALTER TABLE sets, for aa_ddl_check_defaults */
List *
aa_ddl_default_columns(AlterTableStmt *stmt)
{
	List	   *cols = NIL;
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (cmd->subtype == AT_ColumnDefault && cmd->def != NULL && cmd->name != NULL)
			cols = lappend(cols, makeString(cmd->name));
		else if (cmd->subtype == AT_AddColumn && cmd->def != NULL &&
				 IsA(cmd->def, ColumnDef))
			cols = lappend(cols, makeString(((ColumnDef *) cmd->def)->colname));
	}
	return cols;
}

/* ------------------------------------------------------------------
 * Foreign keys
 * ------------------------------------------------------------------
 */

static void
refuse_foreign_key(Oid protected_relid, const char *how)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot add a foreign key %s protected table %s", how,
					get_rel_name(protected_relid)),
			 errdetail("PostgreSQL checks a foreign key as the tables' owner, outside the row check: whoever chooses its columns learns, row by row, what the protected table holds, and its cascades copy agents' writes out of it."),
			 errhint("A superuser may add it; otherwise unprotect the table with agentauth.unprotect_table() (audited), add it, and protect it again.")));
}

/*
 * A foreign key constraint c being added to table relid, or to a new
 * partition of relid (how says which), whose rows will be protected when
 * protect_rows.
 */
static void
check_foreign_key(Node *c, Oid relid, bool protect_rows, const char *how)
{
	Constraint *con = (Constraint *) c;
	Oid			pk;

	if (c == NULL || !IsA(c, Constraint) || con->contype != CONSTR_FOREIGN)
		return;
	if (protect_rows)
		refuse_foreign_key(relid, how);
	pk = con->pktable ? RangeVarGetRelid(con->pktable, NoLock, true) : InvalidOid;
	if (OidIsValid(pk) && aa_is_protected(pk))
		refuse_foreign_key(pk, "referencing");
}

static void
check_column_keys(ColumnDef *def, Oid relid, bool protect_rows, const char *how)
{
	ListCell   *lc;

	foreach(lc, def->constraints)
		check_foreign_key(lfirst(lc), relid, protect_rows, how);
}

/* ALTER TABLE relid: ADD CONSTRAINT ... FOREIGN KEY, ADD COLUMN ... REFERENCES */
void
aa_ddl_check_alter_keys(Oid relid, AlterTableStmt *stmt)
{
	bool		protect_rows;
	ListCell   *lc;

	if (superuser() || !OidIsValid(relid))
		return;
	protect_rows = aa_is_protected(relid);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (cmd->subtype == AT_AddConstraint)
			check_foreign_key(cmd->def, relid, protect_rows, "to");
		else if (cmd->subtype == AT_AddColumn && cmd->def && IsA(cmd->def, ColumnDef))
			check_column_keys((ColumnDef *) cmd->def, relid, protect_rows, "to");
	}
}

/*
 * CREATE TABLE: keys referencing a protected table; any key of a new
 * partition of a protected table (parent: its parent, or InvalidOid).
 */
void
aa_ddl_check_create_keys(CreateStmt *stmt, Oid parent)
{
	bool		protect_rows;
	ListCell   *lc;

	if (superuser())
		return;
	protect_rows = OidIsValid(parent) && aa_is_protected(parent);
	foreach(lc, stmt->tableElts)
	{
		Node	   *elt = lfirst(lc);

		if (IsA(elt, ColumnDef))
			check_column_keys((ColumnDef *) elt, parent, protect_rows,
							  "to a new partition of");
		else
			check_foreign_key(elt, parent, protect_rows, "to a new partition of");
	}
	foreach(lc, stmt->constraints)
		check_foreign_key(lfirst(lc), parent, protect_rows, "to a new partition of");
}
