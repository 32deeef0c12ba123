/*-------------------------------------------------------------------------
 *
 * utility.c
 *		The entry points of the utility hooks: one ProcessUtility hook and
 *		one object-access hook for the whole extension, each calling the
 *		checks of the modules in turn (the model is contrib/sepgsql's
 *		hooks.c).
 *
 *		Before a utility statement runs: the DDL guard of protected tables
 *		(ddl.c), then the append-only guard of the audit log
 *		(audit_guard.c), then the guard of the extension's schema
 *		(schema_guard.c), then renaming a protected schema
 *		(protected_schema.c), then EXPLAIN in a session (stats.c, told again
 *		when the statement ends), then COPY to a server file (derived.c,
 *		told again when the statement ends), then DISCARD ALL, which ends
 *		the session before it runs (session.c: a reset that fails part way
 *		has still ended it).  After it ran: the protection of the
 *		partitions it created or attached (partition.c), and the relations
 *		it made or moved into a protected schema protected
 *		(protected_schema.c).
 *
 *		When a relation is created or altered: protected_schema.c notes it.
 *
 *		While it runs: the protected table it processes, if any, for the
 *		owner-code guard (owner_code.c).
 *
 *		Before an object is dropped: the audit log's guard, then, for a
 *		relation, the drop guard of protected tables (ddl.c), for a
 *		trigger, the schema's guard (schema_guard.c).  Nothing is
 *		guarded while an allowed DROP EXTENSION agentauth is under way
 *		(agentauth.allow_uninstall = on).
 *
 *		The fmgr hooks: every function a non-superuser owns is called
 *		through fmgr_hook, which hands it to owner_code.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/objectaccess.h"
#include "catalog/pg_class.h"
#include "catalog/pg_trigger.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"

#include "agentauth.h"

static ProcessUtility_hook_type prev_utility_hook = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static fmgr_hook_type prev_fmgr_hook = NULL;

/* an allowed DROP EXTENSION agentauth is under way */
static bool uninstalling = false;

static void
aa_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	bool		save_uninstalling = uninstalling;
	AAOwnerCodeGuard save_guard;
	AAPendingRelations outer_relations;
	Oid			moved;

	aa_ddl_check(stmt);
	aa_admit_listen(stmt);
	aa_admit_utility_reads(stmt);
	moved = aa_ddl_moved_relation(stmt);
	aa_audit_guard_check(stmt);
	aa_schema_guard_check(stmt);
	aa_protected_schema_check(stmt);
	aa_stats_utility_begin(stmt);
	aa_stats_utility_text(stmt, queryString, pstmt->stmt_location, pstmt->stmt_len);
	aa_owner_code_begin(stmt, &save_guard);
	aa_derived_utility_begin(stmt);
	aa_protected_schema_utility_begin(&outer_relations);
	aa_session_utility_begin(stmt, context == PROCESS_UTILITY_TOPLEVEL);
	if (context == PROCESS_UTILITY_TOPLEVEL)
		aa_protected_schema_toplevel();

	/*
	 * DROP EXTENSION agentauth, when the site allows it: its own objects go
	 * without the guards.  Only agentauth's: another extension's drop takes
	 * a protected table it holds through the guards as any drop (1.1).
	 */
	if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION &&
		aa_allow_uninstall)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) stmt)->objects)
			if (IsA(lfirst(lc), String) && strcmp(strVal(lfirst(lc)), "agentauth") == 0)
				uninstalling = true;
	}

	PG_TRY();
	{
		if (prev_utility_hook)
			prev_utility_hook(pstmt, queryString, readOnlyTree, context,
							  params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
									params, queryEnv, dest, qc);
		aa_ddl_check_after(stmt, moved);
		aa_partition_utility_done(stmt);
		aa_protected_schema_utility_done(stmt);
	}
	PG_FINALLY();
	{
		aa_protected_schema_utility_end(&outer_relations);
		aa_derived_utility_end(stmt);
		uninstalling = save_uninstalling;
		aa_stats_utility_end(stmt);
		aa_owner_code_end(&save_guard);
	}
	PG_END_TRY();
}

static void
aa_object_access(ObjectAccessType access, Oid classId, Oid objectId,
				 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access == OAT_POST_CREATE || access == OAT_POST_ALTER)
		aa_protected_schema_object(access, classId, objectId, subId, arg);
	if (access != OAT_DROP || uninstalling)
		return;
	if (!aa_audit_guard_drop(classId, objectId))
		return;
	if (classId == RelationRelationId && subId == 0)
		aa_ddl_check_drop(objectId);
	else if (classId == RelationRelationId)
		aa_ddl_check_drop_column(objectId, (AttrNumber) subId);
	if (classId == TriggerRelationId)
		aa_schema_guard_drop_trigger(objectId);
}

static bool
aa_needs_fmgr_hook(Oid fn)
{
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn))
		return true;
	return aa_owner_code_function(fn);
}

static void
aa_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *arg)
{
	if (event == FHET_START)
	{
		aa_other_code_start(flinfo->fn_oid);
		aa_owner_code_call(flinfo->fn_oid);
	}
	else
		aa_other_code_end(flinfo->fn_oid);
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, arg);
}

void
aa_utility_init(void)
{
	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = aa_process_utility;
	prev_object_access_hook = object_access_hook;
	object_access_hook = aa_object_access;
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = aa_needs_fmgr_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = aa_fmgr_hook;
}
