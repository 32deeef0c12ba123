/*-------------------------------------------------------------------------
 *
 * schema_guard.c
 *		The protection of everything in the extension's schema, against
 *		every role, superusers included (the audit log's own, stricter
 *		guard is audit_guard.c).
 *
 *		Before a utility statement (aa_schema_guard_check), refused on the
 *		schema agentauth and the objects in it: renaming, moving (out, or
 *		in), changing the owner (ALTER ... OWNER TO, REASSIGN OWNED of the
 *		schema's owner), GRANT and REVOKE (ALTER DEFAULT PRIVILEGES IN
 *		SCHEMA agentauth too), ALTER FUNCTION, CREATE [OR REPLACE] FUNCTION
 *		in the schema, ALTER TABLE other than storage settings, triggers,
 *		rules and policies on its tables, and SECURITY LABEL of any
 *		provider (label.c refuses the agentauth provider's labels on them
 *		by any route).  Before a drop (aa_schema_guard_drop): the triggers
 *		of its tables (they keep the caches of consent and classes
 *		current).  COMMENT is allowed.  The extension's own install and
 *		update scripts are let through.  At executor start
 *		(aa_schema_guard_view_read): a use of its views by a role they
 *		are not granted to (pg_read_all_data's or pg_write_all_data's
 *		implied privileges).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_trigger.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentauth.h"

static void
refuse(const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed on the objects of schema agentauth", what),
			 errdetail("The extension's schema and everything in it keep their owners, privileges, labels and protection against every role; only the extension's own scripts (ALTER EXTENSION agentauth UPDATE) change them."),
			 errhint("COMMENT ON is allowed.  Grant access to the extension's functions by granting its roles (agentauth_admin, agentauth_auditor, ...).")));
}

static bool
rel_in_schema(Oid nsp, Oid relid)
{
	return OidIsValid(relid) && get_rel_namespace(relid) == nsp;
}

static bool
rangevar_in_schema(Oid nsp, RangeVar *rv)
{
	return rv != NULL && rel_in_schema(nsp, RangeVarGetRelid(rv, NoLock, true));
}

static bool
name_is_schema(const char *name)
{
	return name != NULL && strcmp(name, AA_SCHEMA) == 0;
}

/* Is this object (as a utility statement names it) the schema, or in it? */
static bool
object_in_schema(Oid nsp, ObjectType type, Node *object)
{
	ObjectAddress addr;
	Relation	rel = NULL;

	if (object == NULL)
		return false;
	if (IsA(object, RangeVar))
		return rangevar_in_schema(nsp, (RangeVar *) object);
	if (type == OBJECT_SCHEMA)
		return IsA(object, String) && name_is_schema(strVal(object));
	switch (type)
	{
		case OBJECT_TYPE:
		case OBJECT_DOMAIN:
			if (IsA(object, List))
				object = (Node *) makeTypeNameFromNameList((List *) object);
			break;
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
		case OBJECT_AGGREGATE:
		case OBJECT_COLLATION:
		case OBJECT_CONVERSION:
		case OBJECT_OPERATOR:
		case OBJECT_OPCLASS:
		case OBJECT_OPFAMILY:
		case OBJECT_STATISTIC_EXT:
		case OBJECT_TSCONFIGURATION:
		case OBJECT_TSDICTIONARY:
		case OBJECT_TSPARSER:
		case OBJECT_TSTEMPLATE:
		case OBJECT_TABLE:
		case OBJECT_SEQUENCE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_FOREIGN_TABLE:
		case OBJECT_INDEX:
		case OBJECT_COLUMN:
			break;
		default:
			/* not in a schema: a role, a database, a language ... */
			return false;
	}
	addr = get_object_address(type, object, &rel, AccessShareLock, true);
	if (rel != NULL)
		relation_close(rel, NoLock);
	if (!OidIsValid(addr.objectId))
		return false;
	if (addr.classId == RelationRelationId)
		return rel_in_schema(nsp, addr.objectId);
	return get_object_namespace(&addr) == nsp;
}

/* ALTER TABLE subcommands that change no protection: storage settings */
static bool
alter_table_harmless(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		switch (((AlterTableCmd *) lfirst(lc))->subtype)
		{
			case AT_SetRelOptions:
			case AT_ResetRelOptions:
			case AT_SetStatistics:
			case AT_SetStorage:
			case AT_SetOptions:
			case AT_ResetOptions:
			case AT_ClusterOn:
			case AT_DropCluster:
				break;
			default:
				return false;
		}
	}
	return true;
}

static void
check_grant(Oid nsp, GrantStmt *g)
{
	ListCell   *lc;

	foreach(lc, g->objects)
	{
		Node	   *obj = lfirst(lc);

		if (g->targtype == ACL_TARGET_ALL_IN_SCHEMA)
		{
			if (IsA(obj, String) && name_is_schema(strVal(obj)))
				refuse(g->is_grant ? "GRANT" : "REVOKE");
		}
		else if (g->targtype == ACL_TARGET_OBJECT &&
				 object_in_schema(nsp, g->objtype, obj))
			refuse(g->is_grant ? "GRANT" : "REVOKE");
	}
}

static void
check_default_privileges(AlterDefaultPrivilegesStmt *a)
{
	ListCell   *lc;

	foreach(lc, a->options)
	{
		DefElem    *d = lfirst(lc);
		ListCell   *lc2;

		if (strcmp(d->defname, "schemas") != 0 || !IsA(d->arg, List))
			continue;
		foreach(lc2, (List *) d->arg)
			if (name_is_schema(strVal(lfirst(lc2))))
				refuse("ALTER DEFAULT PRIVILEGES");
	}
}

static void
check_reassign(Oid nsp, ReassignOwnedStmt *r)
{
	HeapTuple	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	Oid			owner;
	ListCell   *lc;

	if (!HeapTupleIsValid(tup))
		return;
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);
	foreach(lc, r->roles)
		if (get_rolespec_oid(lfirst(lc), true) == owner)
			refuse("REASSIGN OWNED");
}

static bool
rename_in_schema(Oid nsp, RenameStmt *r)
{
	if (r->relation != NULL)
		return rangevar_in_schema(nsp, r->relation);
	if (r->renameType == OBJECT_SCHEMA)
		return name_is_schema(r->subname);
	if (r->renameType == OBJECT_DOMCONSTRAINT)
		return object_in_schema(nsp, OBJECT_DOMAIN, r->object);
	return object_in_schema(nsp, r->renameType, r->object);
}

/*
 * A utility statement is about to run: refuse it when it would change the
 * extension's schema or an object in it.  Called by the one ProcessUtility
 * hook (utility.c), after the audit log's guard.
 */
void
aa_schema_guard_check(Node *stmt)
{
	Oid			nsp;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
		case T_RenameStmt:
		case T_AlterObjectSchemaStmt:
		case T_AlterOwnerStmt:
		case T_AlterFunctionStmt:
		case T_CreateFunctionStmt:
		case T_CreateTrigStmt:
		case T_RuleStmt:
		case T_CreatePolicyStmt:
		case T_AlterPolicyStmt:
		case T_GrantStmt:
		case T_AlterDefaultPrivilegesStmt:
		case T_ReassignOwnedStmt:
		case T_SecLabelStmt:
			break;
		default:
			return;
	}
	if (!aa_schema_guarded(&nsp))
		return;

	switch (nodeTag(stmt))
	{
		case T_AlterTableStmt:
			if (rangevar_in_schema(nsp, ((AlterTableStmt *) stmt)->relation) &&
				!alter_table_harmless((AlterTableStmt *) stmt))
				refuse("ALTER");
			break;
		case T_RenameStmt:
			if (rename_in_schema(nsp, (RenameStmt *) stmt))
				refuse("ALTER ... RENAME");
			break;
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *a = (AlterObjectSchemaStmt *) stmt;

				if (name_is_schema(a->newschema) ||
					(a->relation ? rangevar_in_schema(nsp, a->relation) :
					 object_in_schema(nsp, a->objectType, a->object)))
					refuse("ALTER ... SET SCHEMA");
				break;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *a = (AlterOwnerStmt *) stmt;

				if (a->relation ? rangevar_in_schema(nsp, a->relation) :
					object_in_schema(nsp, a->objectType, a->object))
					refuse("ALTER ... OWNER TO");
				break;
			}
		case T_AlterFunctionStmt:
			{
				AlterFunctionStmt *a = (AlterFunctionStmt *) stmt;

				if (object_in_schema(nsp, a->objtype, (Node *) a->func))
					refuse("ALTER FUNCTION");
				break;
			}
		case T_CreateFunctionStmt:
			{
				char	   *fname;

				if (QualifiedNameGetCreationNamespace(((CreateFunctionStmt *) stmt)->funcname,
													  &fname) == nsp)
					refuse("CREATE FUNCTION");
				break;
			}
		case T_CreateTrigStmt:
			if (rangevar_in_schema(nsp, ((CreateTrigStmt *) stmt)->relation))
				refuse("CREATE TRIGGER");
			break;
		case T_RuleStmt:
			if (rangevar_in_schema(nsp, ((RuleStmt *) stmt)->relation))
				refuse("CREATE RULE");
			break;
		case T_CreatePolicyStmt:
			if (rangevar_in_schema(nsp, ((CreatePolicyStmt *) stmt)->table))
				refuse("CREATE POLICY");
			break;
		case T_AlterPolicyStmt:
			if (rangevar_in_schema(nsp, ((AlterPolicyStmt *) stmt)->table))
				refuse("ALTER POLICY");
			break;
		case T_GrantStmt:
			check_grant(nsp, (GrantStmt *) stmt);
			break;
		case T_AlterDefaultPrivilegesStmt:
			check_default_privileges((AlterDefaultPrivilegesStmt *) stmt);
			break;
		case T_ReassignOwnedStmt:
			check_reassign(nsp, (ReassignOwnedStmt *) stmt);
			break;
		case T_SecLabelStmt:
			if (object_in_schema(nsp, ((SecLabelStmt *) stmt)->objtype,
								 ((SecLabelStmt *) stmt)->object))
				refuse("SECURITY LABEL");
			break;
		default:
			break;
	}
}

/*
 * A trigger is about to be dropped: refuse it when it is one of the
 * extension's triggers on its tables (an internal one -- a foreign key's
 * of a user's table referencing ours -- goes with its constraint).  Called
 * by the one object-access hook (utility.c) while agentauth guards drops.
 */
void
aa_schema_guard_drop_trigger(Oid trigoid)
{
	Oid			relid;
	bool		internal;
	Oid			nsp;

	if (!aa_schema_guarded(&nsp))
		return;
	relid = aa_trigger_relation(trigoid, &internal);
	if (!internal && rel_in_schema(nsp, relid))
		refuse("DROP TRIGGER");
}

/*
 * A view of the extension's schema is used only by a role that holds what
 * the statement needs of it (SELECT; UPDATE or DELETE alone would still run
 * the view's query and tell whether it has rows) through its own
 * privileges: a grant to the role, to a role it has the privileges of, or
 * to PUBLIC (and by superusers).  What pg_read_all_data and
 * pg_write_all_data imply on every relation does not reach them: the views
 * read agentauth's tables as their owner, above the tables' row
 * security, and show the log, consents and registry.  Called for each view
 * of a statement's range table at executor start (columns.c), with the
 * role its permissions are checked as; checkAsUser is a view owner's for a
 * view inside another view.
 */
void
aa_schema_guard_view_read(Oid viewid, Oid checkAsUser, uint64 required)
{
	Oid			uid = OidIsValid(checkAsUser) ? checkAsUser : GetUserId();
	Oid			nsp;
	HeapTuple	tuple;
	Form_pg_class form;
	Datum		datum;
	bool		isnull;
	Acl		   *acl;
	AclMode		held;

	if (superuser_arg(uid))
		return;
	nsp = get_namespace_oid(AA_SCHEMA, true);
	if (!rel_in_schema(nsp, viewid))
		return;
	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(viewid));
	if (!HeapTupleIsValid(tuple))
		return;					/* dropped meanwhile: PostgreSQL says so */
	form = (Form_pg_class) GETSTRUCT(tuple);
	datum = SysCacheGetAttr(RELOID, tuple, Anum_pg_class_relacl, &isnull);
	acl = isnull ? acldefault(OBJECT_TABLE, form->relowner) : DatumGetAclP(datum);
	/* aclmask: the ACL's grants alone, without the predefined roles */
	held = aclmask(acl, uid, form->relowner, (AclMode) required, ACLMASK_ALL);
	ReleaseSysCache(tuple);
	if (held != (AclMode) required)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for view %s.%s", AA_SCHEMA,
						get_rel_name(viewid)),
				 errdetail("agentauth's views are read by the roles they are granted to; the privileges pg_read_all_data and pg_write_all_data imply do not cover them."),
				 errhint("Grant the role the README's \"Roles\" table names for this view.")));
}
