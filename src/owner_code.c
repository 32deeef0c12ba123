/*-------------------------------------------------------------------------
 *
 * owner_code.c
 *		Owner code over the existing rows of a protected table, during DDL
 *		and maintenance.
 *
 *		A statement that evaluates stored code over every row of a table --
 *		ALTER TABLE (a type change through a domain or a cast, a rewrite,
 *		constraint validation, a foreign key), an index build (CREATE
 *		INDEX, REINDEX, CLUSTER, VACUUM FULL, a BRIN summary in VACUUM),
 *		ANALYZE (expression indexes, statistics on expressions), ALTER
 *		DOMAIN on a domain a protected column uses -- hands every value to
 *		the functions that code calls, outside the row check and unaudited.
 *		Code a non-superuser made ("owner code": a function, a domain, a
 *		type) may not run there:
 *
 *		- while such a statement runs on a protected table, a function
 *		  owned by a role that is not a superuser is refused (42501) when
 *		  a non-superuser runs the statement, and recorded once as
 *		  privileged_access when a superuser does (fmgr hook).  The
 *		  statement is known from the utility statement (utility.c brackets
 *		  it with aa_owner_code_begin/end) or, for maintenance that names
 *		  no table (database-wide VACUUM, ANALYZE, CLUSTER, REINDEX SCHEMA,
 *		  autovacuum), from the backend's progress report of the relation
 *		  it is processing (an autovacuum work item, a BRIN summary: from
 *		  its activity).  Autovacuum never runs owner code over a
 *		  protected table: a superuser runs ANALYZE by hand (recorded).
 *		  Index maintenance called as a function is refused at planning on a
 *		  protected table's index (aa_owner_code_plan).
 *		  The hook is asked for every function owned by a non-superuser,
 *		  whatever runs, so that no such SQL function is ever inlined into
 *		  a cached expression (a domain's CHECK) and escapes it later.
 *		- code that is not a function call: a CHECK of a domain made by a
 *		  non-superuser may be built of built-in functions only and still
 *		  copy every value (set_config()), so ddl.c refuses, before the
 *		  statement, a change of a protected column to a type a
 *		  non-superuser made (aa_owner_code_type_trusted), and here
 *		  ALTER DOMAIN ... ADD or VALIDATE CONSTRAINT on a domain that a
 *		  protected column uses (aa_owner_code_check_domain).
 *
 *		In a session, code of other roles: other_code.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/index.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "postmaster/autovacuum.h"
#include "storage/proc.h"
#include "utils/backend_progress.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/syscache.h"

#include "agentauth.h"

#if PG_VERSION_NUM >= 170000
#define MY_LXID()			(MyProc->vxid.lxid)
#define IN_AUTOVACUUM()		AmAutoVacuumWorkerProcess()
#else
#define MY_LXID()			(MyProc->lxid)
#define IN_AUTOVACUUM()		IsAutoVacuumWorkerProcess()
#endif

/* the utility statement under way, when it processes a protected table */
static AAOwnerCodeGuard guard = {InvalidOid, InvalidOid, NULL};

/* the last privileged_access written by the hook: one per relation/statement */
static Oid	audited_relid = InvalidOid;
static Oid	audited_fn = InvalidOid;
static LocalTransactionId audited_lxid = InvalidLocalTransactionId;
static const char *audited_command = NULL;

/*
 * Is this function code that a non-superuser made?  Built-in functions and
 * those of superusers (extensions included) are trusted.
 */
static Oid
function_owner(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}

bool
aa_owner_code_function(Oid fn)
{
	Oid			owner;

	if (fn < FirstNormalObjectId || !IsTransactionState())
		return false;
	owner = function_owner(fn);
	return OidIsValid(owner) && !superuser_arg(owner);
}

/*
 * Is this type free of code a non-superuser made?  A type (a domain and
 * its CHECK constraints, a composite, a range) belongs to its owner, who
 * alone may add constraints to it; every type it is made of counts too.
 */
static bool
type_trusted(Oid typid, int depth)
{
	HeapTuple	tup;
	Form_pg_type typ;
	Oid			owner;
	char		typtype;
	Oid			base;
	Oid			elem;
	Oid			typrelid;
	bool		ok = true;

	if (typid < FirstNormalObjectId)
		return true;
	if (depth > 16)
		return false;
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (!HeapTupleIsValid(tup))
		return false;
	typ = (Form_pg_type) GETSTRUCT(tup);
	owner = typ->typowner;
	typtype = typ->typtype;
	base = typ->typbasetype;
	elem = typ->typelem;
	typrelid = typ->typrelid;
	ReleaseSysCache(tup);

	if (!superuser_arg(owner))
		return false;
	if (typtype == TYPTYPE_DOMAIN)
		return type_trusted(base, depth + 1);
	if (OidIsValid(elem) && !type_trusted(elem, depth + 1))
		return false;
	if (typtype == TYPTYPE_RANGE)
		return type_trusted(get_range_subtype(typid), depth + 1);
	if (typtype == TYPTYPE_MULTIRANGE)
		return type_trusted(get_multirange_range(typid), depth + 1);
	if (typtype == TYPTYPE_COMPOSITE && OidIsValid(typrelid))
	{
		for (AttrNumber i = 1; ok; i++)
		{
			HeapTuple	atup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(typrelid),
											   Int16GetDatum(i));

			if (!HeapTupleIsValid(atup))
				break;
			if (!((Form_pg_attribute) GETSTRUCT(atup))->attisdropped)
				ok = type_trusted(((Form_pg_attribute) GETSTRUCT(atup))->atttypid,
								  depth + 1);
			ReleaseSysCache(atup);
		}
	}
	return ok;
}

bool
aa_owner_code_type_trusted(Oid typid)
{
	return type_trusted(typid, 0);
}

/*
 * A protected table with a column of this type (through domains over it,
 * arrays, ranges and composite types made of it), or InvalidOid.
 */
static Oid
type_protected_user(Oid typid, int depth)
{
	Relation	dep;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *types = NIL;
	Oid			found = InvalidOid;
	ListCell   *lc;

	if (depth > 16)
		return InvalidOid;
	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(TypeRelationId));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(typid));
	dep = table_open(DependRelationId, AccessShareLock);
	scan = systable_beginscan(dep, DependReferenceIndexId, true, NULL, 2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);

		if (d->classid == TypeRelationId)
			types = lappend_oid(types, d->objid);
		else if (d->classid == RelationRelationId && d->objsubid > 0)
		{
			if (get_rel_relkind(d->objid) == RELKIND_COMPOSITE_TYPE)
				types = lappend_oid(types, get_rel_type_id(d->objid));
			else if (!OidIsValid(found) && aa_is_protected(d->objid))
				found = d->objid;
		}
	}
	systable_endscan(scan);
	table_close(dep, AccessShareLock);
	foreach(lc, types)
	{
		if (OidIsValid(found))
			break;
		if (lfirst_oid(lc) != typid)
			found = type_protected_user(lfirst_oid(lc), depth + 1);
	}
	return found;
}

/* a protected table with a column of this type (as above), or NULL */
static AAProtectedRel *
protected_table_using(Oid typid)
{
	Oid			relid = OidIsValid(typid) ? type_protected_user(typid, 0) : InvalidOid;

	return OidIsValid(relid) ? aa_protected_rel(relid) : NULL;
}

static Oid
domain_of(AlterDomainStmt *stmt)
{
	TypeName   *tn = makeTypeNameFromNameList(stmt->typeName);

	return LookupTypeNameOid(NULL, tn, true);
}

/*
 * ALTER DOMAIN ... ADD CONSTRAINT runs the new CHECK over every value of
 * every column of the domain (and, NOT VALID or not, over every value an
 * agent writes later); VALIDATE CONSTRAINT runs a stored one; SET DEFAULT
 * puts an expression into every agent's INSERT (1.1).  Refused to a
 * non-superuser when a protected column uses the domain.
 */
void
aa_owner_code_check_domain(Node *node)
{
	AlterDomainStmt *stmt = (AlterDomainStmt *) node;
	Oid			typid;
	AAProtectedRel *prot;

	if ((stmt->subtype != 'C' && stmt->subtype != 'V' &&
		 !(stmt->subtype == 'T' && stmt->def != NULL)) || superuser())
		return;
	typid = domain_of(stmt);
	if ((prot = protected_table_using(typid)) == NULL)
		return;
	/* a domain's default runs in the agent's INSERT, as a column's (1.1) */
	if (stmt->subtype == 'T')
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot set the default of domain %s, which a column of protected table %s uses",
						format_type_be(typid), prot->relname),
				 errdetail("A default runs in the agent's statement that inserts, with the agent's access."),
				 errhint("A superuser may do this; otherwise unprotect the table first with agentauth.unprotect_table() (audited).")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s a constraint of domain %s, which a column of protected table %s uses",
					stmt->subtype == 'C' ? "add" : "validate",
					format_type_be(typid), prot->relname),
			 errdetail("The constraint would see every value of the column outside the row check."),
			 errhint("A superuser may do this (audited when it runs code a non-superuser made); otherwise unprotect the table first with agentauth.unprotect_table() (audited).")));
}

/*
 * ALTER TYPE ... RENAME VALUE changes every stored value of an enum
 * without naming a table: on a protected column, a write to every row
 * without the row check (a patient column's: each row then counts as
 * another patient's).  Refused to a non-superuser when a protected column
 * uses the type (1.1).  ADD VALUE changes no stored value.
 */
void
aa_owner_code_check_enum(Node *node)
{
	AlterEnumStmt *stmt = (AlterEnumStmt *) node;
	Oid			typid;
	AAProtectedRel *prot;

	if (stmt->oldVal == NULL || superuser())
		return;
	typid = LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true);
	if ((prot = protected_table_using(typid)) == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot rename a value of type %s, which a column of protected table %s uses",
					format_type_be(typid), prot->relname),
			 errdetail("Every stored value would change without the row check."),
			 errhint("A superuser may do this; otherwise unprotect the table first with agentauth.unprotect_table() (audited).")));
}

/* ------------------------------------------------------------------
 * The statement under way
 * ------------------------------------------------------------------
 */

static Oid
first_protected(List *relids)
{
	ListCell   *lc;

	foreach(lc, relids)
		if (OidIsValid(lfirst_oid(lc)) && aa_is_protected(lfirst_oid(lc)))
			return lfirst_oid(lc);
	return InvalidOid;
}

static Oid
rv_relid(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

/*
 * The protected table whose existing rows this utility statement processes
 * (its first one), with the statement's name; InvalidOid when none, or
 * when it names no table (maintenance of a whole schema or database, left
 * to the progress report).
 */
static Oid
statement_relid(Node *stmt, const char **command)
{
	List	   *relids = NIL;
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			{
				AlterTableStmt *a = (AlterTableStmt *) stmt;

				*command = "ALTER TABLE";
				relids = list_make1_oid(rv_relid(a->relation));
				/* a foreign key's validation reads the referenced table */
				foreach(lc, a->cmds)
				{
					AlterTableCmd *cmd = lfirst(lc);

					if (cmd->subtype == AT_AddConstraint && cmd->def &&
						IsA(cmd->def, Constraint) &&
						((Constraint *) cmd->def)->contype == CONSTR_FOREIGN)
						relids = lappend_oid(relids,
											 rv_relid(((Constraint *) cmd->def)->pktable));
				}
				break;
			}
		case T_IndexStmt:
			*command = "CREATE INDEX";
			relids = list_make1_oid(rv_relid(((IndexStmt *) stmt)->relation));
			break;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;
				Oid			relid = rv_relid(r->relation);

				*command = "REINDEX";
				if (r->kind == REINDEX_OBJECT_INDEX && OidIsValid(relid))
					relid = IndexGetRelation(relid, true);
				relids = list_make1_oid(relid);
				break;
			}
		case T_ClusterStmt:
			*command = "CLUSTER";
			relids = list_make1_oid(rv_relid(((ClusterStmt *) stmt)->relation));
			break;
		case T_VacuumStmt:
			{
				VacuumStmt *v = (VacuumStmt *) stmt;

				*command = v->is_vacuumcmd ? "VACUUM" : "ANALYZE";
				foreach(lc, v->rels)
					relids = lappend_oid(relids,
										 rv_relid(lfirst_node(VacuumRelation, lc)->relation));
				break;
			}
		case T_AlterDomainStmt:
			{
				Oid			typid = domain_of((AlterDomainStmt *) stmt);

				*command = "ALTER DOMAIN";
				if (OidIsValid(typid))
					relids = list_make1_oid(type_protected_user(typid, 0));
				break;
			}
		default:
			return InvalidOid;
	}
	return first_protected(relids);
}

/*
 * A utility statement is about to run (utility.c): remember the protected
 * table it processes, if any, until aa_owner_code_end(save).
 */
void
aa_owner_code_begin(Node *stmt, AAOwnerCodeGuard *save)
{
	const char *command = NULL;
	Oid			relid;

	*save = guard;
	if (!IsTransactionState() || !aa_extension_ready())
		return;
	relid = statement_relid(stmt, &command);
	if (!OidIsValid(relid))
		return;
	guard.relid = relid;
	guard.user = GetUserId();
	guard.command = command;
}

void
aa_owner_code_end(const AAOwnerCodeGuard *save)
{
	guard = *save;
}

/* the relation that the backend's maintenance command is processing now */
static Oid
progress_relid(const char **command)
{
	volatile PgBackendStatus *be = MyBEEntry;

	if (be == NULL)
		return InvalidOid;
	switch (be->st_progress_command)
	{
		case PROGRESS_COMMAND_ANALYZE:
			*command = "ANALYZE";
			break;
		case PROGRESS_COMMAND_CLUSTER:
			*command = "CLUSTER or VACUUM FULL";
			break;
		case PROGRESS_COMMAND_CREATE_INDEX:
			*command = "CREATE INDEX or REINDEX";
			break;
		case PROGRESS_COMMAND_VACUUM:
			*command = "VACUUM";
			break;
		default:
			return InvalidOid;
	}
	return be->st_progress_command_target;
}

/*
 * An autovacuum work item -- the BRIN summary of a page range that an
 * index's autosummarize asked for -- reports no progress, only its
 * activity ("autovacuum: BRIN summarize schema.index block"): the table
 * of that index, or InvalidOid when it cannot be told (then failing closed).
 */
static Oid
workitem_relid(void)
{
	static const char prefix[] = "autovacuum: BRIN summarize ";
	volatile PgBackendStatus *be = MyBEEntry;
	char	   *name;
	char	   *dot;
	char	   *space;
	Oid			nsp;

	if (be == NULL || be->st_activity_raw == NULL ||
		strncmp((const char *) be->st_activity_raw, prefix, sizeof(prefix) - 1) != 0)
		return InvalidOid;
	name = pstrdup((const char *) be->st_activity_raw + sizeof(prefix) - 1);
	if ((space = strrchr(name, ' ')) == NULL || (dot = strchr(name, '.')) == NULL ||
		dot > space)
		return InvalidOid;
	*space = '\0';
	*dot = '\0';
	nsp = get_namespace_oid(name, true);
	if (!OidIsValid(nsp))
		return InvalidOid;
	return IndexGetRelation(get_relname_relid(dot + 1, nsp), true);
}

static const char *
func_owner_name(Oid fn)
{
	char	   *name = GetUserNameFromId(function_owner(fn), true);

	return name ? name : "?";
}

static void
audit_owner_code(const char *relname, Oid fn, const char *command)
{
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"reason\": \"owner code\", \"command\": ");
	escape_json(&detail, command);
	appendStringInfoString(&detail, ", \"function\": ");
	escape_json(&detail, format_procedure_qualified(fn));
	appendStringInfoString(&detail, ", \"function_owner\": ");
	escape_json(&detail, func_owner_name(fn));
	appendStringInfoChar(&detail, '}');

	aa_audit_statement("privileged_access", "permit", relname, "read", 0, NULL,
					   detail.data, false);
}

/*
 * A function is about to run (the fmgr hook, for every function
 * aa_owner_code_function() names, and any another hook asked for).  Refuse it, or record
 * it for a superuser, when it runs over the rows of a protected table in
 * DDL or maintenance.
 */
void
aa_owner_code_call(Oid fn)
{
	const char *command = guard.command;
	Oid			relid = guard.relid;
	Oid			user = guard.user;
	AAProtectedRel *prot;
	char	   *relname;

	if (!IsTransactionState())
		return;
	if (!OidIsValid(relid))
	{
		relid = progress_relid(&command);
		user = GetOuterUserId();
	}
	if (!OidIsValid(relid) && IN_AUTOVACUUM() && aa_owner_code_function(fn))
	{
		/* a work item (1.1, found by review: it ran the owner's code) */
		relid = workitem_relid();
		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("autovacuum does not run function %s in a task whose table it cannot tell",
							format_procedure(fn)),
					 errdetail("The function belongs to role \"%s\", which is not a superuser; the task could be the summary of an index of a protected table.",
							   func_owner_name(fn)),
					 errhint("A superuser runs VACUUM on the table.")));
	}
	if (!OidIsValid(relid) || !aa_owner_code_function(fn) ||
		(prot = aa_protected_rel(relid)) == NULL)
		return;
	relname = pstrdup(prot->relname);

	if (IN_AUTOVACUUM())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("autovacuum does not run function %s over the rows of protected table %s",
						format_procedure(fn), relname),
				 errdetail("The function belongs to role \"%s\", which is not a superuser.",
						   func_owner_name(fn)),
				 errhint("A superuser runs ANALYZE on the table (recorded), or replaces the index or statistics that call the function.")));
	if (!superuser_arg(user))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s may not run function %s over the rows of protected table %s",
						command, format_procedure(fn), relname),
				 errdetail("The function belongs to role \"%s\", which is not a superuser: it would see every row outside the row check, unaudited.",
						   func_owner_name(fn)),
				 errhint("A superuser may run the statement (recorded as privileged_access); otherwise unprotect the table first with agentauth.unprotect_table() (audited).")));
	if (relid == audited_relid && fn == audited_fn &&
		MY_LXID() == audited_lxid && command == audited_command)
		return;
	audit_owner_code(relname, fn, command);
	aa_audit_wait();
	audited_relid = relid;
	audited_fn = fn;
	audited_lxid = MY_LXID();
	audited_command = command;
}

/* ------------------------------------------------------------------
 * Index maintenance run by a function call
 * ------------------------------------------------------------------
 */

/*
 * A function that runs an index's code over rows of its table without a
 * utility statement or a progress report: a BRIN summary (the index's
 * expressions and operator class over a range), a GIN pending list's
 * cleanup (the operator class's compare over the pending keys), amcheck's
 * checks (with heapallindexed, the expressions over every row).  NULL for
 * any other.
 */
static const char *
maintenance_function(Oid funcid)
{
	char	   *name;

	switch (funcid)
	{
		case F_BRIN_SUMMARIZE_RANGE:
			return "brin_summarize_range()";
		case F_BRIN_SUMMARIZE_NEW_VALUES:
			return "brin_summarize_new_values()";
		case F_GIN_CLEAN_PENDING_LIST:
			return "gin_clean_pending_list()";
	}
	if (funcid < FirstNormalObjectId || (name = get_func_name(funcid)) == NULL)
		return NULL;
	if (strcmp(name, "bt_index_check") == 0 || strcmp(name, "bt_index_parent_check") == 0)
		return psprintf("%s()", name);
	return NULL;
}

static bool
maintenance_walker(Node *node, void *context)
{
	const char *what;

	if (node == NULL)
		return false;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->args != NIL &&
		(what = maintenance_function(((FuncExpr *) node)->funcid)) != NULL)
	{
		Node	   *arg = linitial(((FuncExpr *) node)->args);
		Oid			heap = InvalidOid;
		AAProtectedRel *prot;

		if (IsA(arg, Const) && !((Const *) arg)->constisnull)
			heap = IndexGetRelation(DatumGetObjectId(((Const *) arg)->constvalue), true);
		else if (!superuser())
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s takes a constant index here", what),
					 errdetail("It runs an index's code over rows of its table, and the index of a protected table must be known before it runs."),
					 errhint("Name the index as a literal, or run VACUUM on the table.")));
		if (OidIsValid(heap) && (prot = aa_protected_rel(heap)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot run %s on an index of protected table %s",
							what, prot->relname),
					 errdetail("It runs the index's expressions and operator class over rows of the table, outside the row check; called as a function it is not recognized as maintenance."),
					 errhint("Run VACUUM on the table: it summarizes and cleans the index with the checks of maintenance, which refuse (or, for a superuser, record) a non-superuser's code.")));
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, maintenance_walker, context, 0);
	return expression_tree_walker(node, maintenance_walker, context);
}

/*
 * A statement is planned (stats.c's planner hook): index maintenance by a
 * function call on an index of a protected table is refused to everyone
 * (1.1, found by review: brin_summarize_range() ran the owner's BRIN index
 * expression over every row, unrefused and unrecorded); VACUUM does it
 * with the checks of any maintenance.
 */
void
aa_owner_code_plan(Query *parse)
{
	if (!IsTransactionState() || !aa_extension_ready())
		return;
	(void) maintenance_walker((Node *) parse, NULL);
}
