/*-------------------------------------------------------------------------
 *
 * ddl_names.c
 *		What frees a protected table's name, for the DDL guard (ddl.c).
 *		Agents reach a table by its name: its owner renaming or moving it
 *		and putting an unprotected table in its place would have agents'
 *		reads and writes land there, unchecked and unaudited.  So renaming
 *		or moving a protected table is refused to anyone but a superuser,
 *		and so is whatever does the same without naming the table:
 *		renaming its schema or giving the schema to another owner (who
 *		could rename it) -- also by REASSIGN OWNED --, moving an extension
 *		it is a member of; and no role may make it an extension's member
 *		(left out of pg_dump, moved and dropped with the extension).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_seclabel.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "agentauth.h"

void
aa_ddl_refuse(const char *relname, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s protected table %s", what, relname),
			 hint ? errhint("%s", hint) : 0));
}

void
aa_ddl_refuse_moved(Oid relid, const char *what)
{
	AAProtectedRel *prot;

	if (!OidIsValid(relid) || superuser())
		return;
	prot = aa_protected_rel(relid);
	if (prot != NULL)
		aa_ddl_refuse(prot->relname, what,
				   "Another table could take its name, unprotected. A superuser may do this; otherwise unprotect it first with agentauth.unprotect_table() (audited).");
}

/*
 * The protected table of a schema first by name (a name to report, the
 * same whatever the catalog's order), or NULL.  The labels are few:
 * pg_seclabel is read whole.
 */
static char *
schema_protected_table(Oid nsp)
{
	Relation	rel = table_open(SecLabelRelationId, AccessShareLock);
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *relids = NIL;
	ListCell   *lc;
	char	   *found = NULL;

	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		FormData_pg_seclabel *form = (FormData_pg_seclabel *) GETSTRUCT(tup);

		if (form->classoid == RelationRelationId && form->objsubid == 0 &&
			get_rel_namespace(form->objoid) == nsp)
			relids = lappend_oid(relids, form->objoid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	foreach(lc, relids)
	{
		AAProtectedRel *prot = aa_protected_rel(lfirst_oid(lc));

		if (prot != NULL && (found == NULL || strcmp(prot->relname, found) < 0))
			found = pstrdup(prot->relname);
	}
	return found;
}

/*
 * Renaming the schema of a protected table (or giving it to another owner,
 * who could rename it) frees the table's name as renaming the table does.
 */
void
aa_ddl_refuse_schema(const char *schema, const char *what)
{
	Oid			nsp;
	char	   *relname;

	if (schema == NULL || superuser())
		return;
	nsp = get_namespace_oid(schema, true);
	if (!OidIsValid(nsp) || (relname = schema_protected_table(nsp)) == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s schema %s, which holds protected table %s",
					what, quote_identifier(schema), relname),
			 errdetail("Another table could take the name of a protected table, unprotected."),
			 errhint("A superuser may do this; otherwise unprotect its tables first with agentauth.unprotect_table() (audited).")));
}

/*
 * REASSIGN OWNED gives every schema the roles own to another role, without
 * naming one: each that holds a protected table is refused as ALTER
 * SCHEMA ... OWNER TO is (1.1).
 */
void
aa_ddl_check_reassign_owned(ReassignOwnedStmt *stmt)
{
	List	   *owners = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	ListCell   *lc;

	if (superuser())
		return;
	foreach(lc, stmt->roles)
	{
		Oid			role = get_rolespec_oid(lfirst(lc), true);

		if (OidIsValid(role))
			owners = lappend_oid(owners, role);
	}
	rel = table_open(NamespaceRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_namespace n = (Form_pg_namespace) GETSTRUCT(tup);

		if (list_member_oid(owners, n->nspowner))
			aa_ddl_refuse_schema(NameStr(n->nspname), "change the owner of");
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * ALTER EXTENSION ... ADD of a protected table: an extension's member is
 * left out of pg_dump (the table and its rows would be missing from every
 * backup), moved with ALTER EXTENSION ... SET SCHEMA and dropped with
 * DROP EXTENSION, none of which names it.  Refused for every role (1.1).
 */
void
aa_ddl_check_extension_add(AlterExtensionContentsStmt *stmt)
{
	Oid			relid;

	if (stmt->action <= 0 ||
		(stmt->objtype != OBJECT_TABLE && stmt->objtype != OBJECT_FOREIGN_TABLE))
		return;
	relid = RangeVarGetRelid(makeRangeVarFromNameList(castNode(List, stmt->object)),
							 NoLock, true);
	if (OidIsValid(relid) && aa_is_protected(relid))
		aa_ddl_refuse(get_rel_name(relid), "make an extension member of",
				   "A member of an extension is left out of pg_dump and moved and dropped with it.");
}

/* ALTER EXTENSION ... SET SCHEMA: a protected member moves as if named */
void
aa_ddl_refuse_extension_move(const char *extname)
{
	Oid			extid = get_extension_oid(extname, true);
	Relation	dep;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *members = NIL;
	ListCell   *lc;

	if (!OidIsValid(extid))
		return;
	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(ExtensionRelationId));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(extid));
	dep = table_open(DependRelationId, AccessShareLock);
	scan = systable_beginscan(dep, DependReferenceIndexId, true, NULL, 2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);

		if (d->deptype == DEPENDENCY_EXTENSION && d->classid == RelationRelationId)
			members = lappend_oid(members, d->objid);
	}
	systable_endscan(scan);
	table_close(dep, AccessShareLock);
	foreach(lc, members)
		aa_ddl_refuse_moved(lfirst_oid(lc), "move");
}
