/*-------------------------------------------------------------------------
 *
 * other_code.c
 *		Code of other roles in a session.
 *
 *		A session's statements run over the rows the session reads, so code
 *		that another role wrote could pass them on -- pg_notify, a lock or a
 *		setting others see in pg_locks or pg_stat_activity -- or read more
 *		protected tables under the session, with no record of where the
 *		values went.  That code reaches a session's statement by name (an
 *		operator or function in a schema on its search_path: "$user" is a
 *		schema anyone with CREATE on the database may make), inside a view,
 *		a row-security policy or a rule of another role's table, or as a
 *		trigger of a table the session writes (1.1, found by review, each).
 *		"Another role" is one that is neither a superuser nor the session's
 *		own login role; code of a superuser is the site's, and a function
 *		or view the site trusts belongs to one.  In a session:
 *
 *		- a function of another role is refused when it is called (42501;
 *		  the fmgr hook, whatever calls it: an operator, a cast, an
 *		  aggregate, an index expression, a domain's CHECK, another
 *		  function), except a trigger function (triggers of protected
 *		  tables are governed by ddl.c's rules; a trigger of another table
 *		  sees what the session writes);
 *		- while a trigger function of another role runs, no protected table
 *		  may be read (aa_other_code_read, from access.c: a trigger deferred
 *		  to the commit read the patients the session may see and sent them
 *		  on), no cursor of the session on one fetched (from access_run.c),
 *		  and nothing done with the session's authority: an override, an
 *		  approval, a session begun or ended (aa_other_code_session_call);
 *		- a view, a policy of a table that is not protected, or a rule's
 *		  query, written by another role (a rule: by anyone), that calls a
 *		  volatile function or makes a value of a type a non-superuser made
 *		  (a domain's CHECK runs then: a cast, record_in, array_in,
 *		  jsonb_populate_record) is refused when the statement is planned
 *		  (aa_other_code_plan, from stats.c's planner hook; a plan made
 *		  outside a session is made again).
 *
 *		Every refusal is recorded as denied, reason "code of another role".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentauth.h"

/* trigger functions of other roles running now, in a session */
static int	other_triggers = 0;

/* whose code is another role's, for the session's (or the login's) role */
static bool
other_role(Oid owner, Oid role)
{
	return owner != role && !superuser_arg(owner);
}

static Oid
code_role(void)
{
	return aa_session ? aa_session->db_role : GetSessionUserId();
}

static void pg_attribute_noreturn()
refuse(const char *what, const char *name, const char *key, Oid owner)
{
	StringInfoData detail;
	char	   *who = OidIsValid(owner) ? GetUserNameFromId(owner, true) : NULL;
	bool		function = strcmp(key, "function") == 0 || strcmp(key, "operator") == 0;

	if (who == NULL)
		who = "?";
	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"reason\": \"code of another role\", ");
	escape_json(&detail, key);
	appendStringInfoString(&detail, ": ");
	escape_json(&detail, name);
	if (OidIsValid(owner))
	{
		appendStringInfo(&detail, ", \"%s_owner\": ", key);
		escape_json(&detail, who);
	}
	appendStringInfoChar(&detail, '}');
	aa_audit_statement("denied", "deny", NULL, aa_action_name(AA_ACT_READ),
					   0, NULL, detail.data, false);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s %s may not run in an agentauth session", what, name),
				 errdetail("A rule runs code of its table's owner, and this one calls a volatile function or makes a value of a type a non-superuser made: it could pass on what the session reads, unrecorded."),
				 errhint("Write to a table without such a rule; code the site trusts belongs to a superuser.")));
	if (function)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s %s may not run in an agentauth session", key, name),
				 errdetail("The %s belongs to role \"%s\", which is neither a superuser nor the session's role: it would see what the session reads, and could pass it on unrecorded.",
						   key, who),
				 errhint("Name the function you mean with its schema, and pin search_path (a schema named after your role, or public, may hold another role's function of the same name); a function the site trusts belongs to a superuser.")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s %s may not run in an agentauth session", what, name),
			 errdetail("It belongs to role \"%s\", which is neither a superuser nor the session's role, and calls a volatile function or makes a value of a type a non-superuser made: it could pass on what the session reads, unrecorded.",
					   who),
			 errhint("Read the tables it reads directly, or have a superuser review it and take it over.")));
}

/* ------------------------------------------------------------------
 * Functions (the fmgr hook, utility.c)
 * ------------------------------------------------------------------
 */

/* another role's trigger function, or another role's function: its owner */
static Oid
other_function(Oid fn, bool *trigger)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	Oid			owner;
	Oid			rettype;

	if (aa_session == NULL || fn < FirstNormalObjectId || !IsTransactionState())
		return InvalidOid;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	owner = proc->proowner;
	rettype = proc->prorettype;
	ReleaseSysCache(tup);
	if (!other_role(owner, aa_session->db_role))
		return InvalidOid;
	*trigger = (rettype == TRIGGEROID || rettype == EVENT_TRIGGEROID);
	return owner;
}

/*
 * A function owned by a non-superuser is about to run (FHET_START).  In a
 * session: refused when it is another role's, unless a trigger function,
 * which is counted while it runs.  (fmgr's private datum for the call is
 * left to the hooks before ours: a trigger function is known again by its
 * oid when it ends.)
 */
void
aa_other_code_start(Oid fn)
{
	bool		trigger = false;
	Oid			owner = other_function(fn, &trigger);

	if (!OidIsValid(owner))
		return;
	if (trigger)
	{
		other_triggers++;
		return;
	}
	refuse("function", format_procedure_qualified(fn), "function", owner);
}

/* it returned, or failed (FHET_END, FHET_ABORT) */
void
aa_other_code_end(Oid fn)
{
	bool		trigger = false;

	if (other_triggers > 0 && OidIsValid(other_function(fn, &trigger)) && trigger)
		other_triggers--;
}

/*
 * A session's statement is about to read protected table relname
 * (access.c): refused while a trigger function of another role runs.
 */
void
aa_other_code_read(const char *relname)
{
	if (other_triggers == 0)
		return;
	aa_audit_statement("denied", "deny", relname, aa_action_name(AA_ACT_READ),
					   0, NULL, "{\"reason\": \"code of another role\", \"trigger\": true}", false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a trigger of another role may not read protected table %s in an agentauth session",
					relname),
			 errdetail("The trigger function belongs to a role that is neither a superuser nor the session's role: it would see what the session may read, and could pass it on unrecorded."),
			 errhint("Have a superuser review the trigger function and take it over, or drop the trigger.")));
}

/*
 * A call that acts with the session's authority -- an override, an
 * approval, a session begun or ended (btg.c, session_sql.c): refused while
 * a trigger function of another role runs.  Only the session's own client
 * decides those (1.1, found by review: an owner's trigger on a table the
 * agent wrote broke the glass for a patient in the agent's name, and the
 * agent's next statement read the patient).
 */
void
aa_other_code_session_call(const char *what)
{
	StringInfoData detail;

	if (other_triggers == 0)
		return;
	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"reason\": \"code of another role\", \"trigger\": true, \"call\": ");
	escape_json(&detail, what);
	appendStringInfoChar(&detail, '}');
	aa_audit_statement("denied", "deny", NULL, NULL, 0, NULL, detail.data, false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a trigger of another role may not call %s in an agentauth session", what),
			 errdetail("The trigger function belongs to a role that is neither a superuser nor the session's role; only the session's own client acts with its authority."),
			 errhint("Call it from the session's own statement.")));
}

/* ------------------------------------------------------------------
 * Views, policies and rules (the planner hook, stats.c)
 * ------------------------------------------------------------------
 */

/* a value made of a type a non-superuser made: a domain's CHECK runs */
static bool
owner_type_walker(Node *node, void *context)
{
	Oid			typid = InvalidOid;

	if (node == NULL)
		return false;
	if (IsA(node, CoerceToDomain))
		typid = ((CoerceToDomain *) node)->resulttype;
	else if (IsA(node, CoerceViaIO))
		typid = ((CoerceViaIO *) node)->resulttype;
	else if (IsA(node, ArrayCoerceExpr))
		typid = ((ArrayCoerceExpr *) node)->resulttype;
	else if (IsA(node, FuncExpr))
		typid = ((FuncExpr *) node)->funcresulttype;
	if (OidIsValid(typid) && !aa_owner_code_type_trusted(typid))
		return true;
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, owner_type_walker, context, 0);
	return expression_tree_walker(node, owner_type_walker, context);
}

/*
 * An aggregate, window function, operator or function of another role,
 * named by the statement (or a view, a policy in it): refused at planning.
 * An aggregate never runs as itself (its support functions do, built-ins
 * maybe: a review's count(integer) planted in "$user" ran int84pl and
 * pg_try_advisory_lock over each heart rate), nor an operator (a prefix
 * operator over pg_try_advisory_lock): their own owner is what counts.
 */
/* the owner of a function, operator or relation (cacheid: its syscache) */
static Oid
object_owner(int cacheid, Oid oid)
{
	HeapTuple	tup;
	Oid			owner;

	if (cacheid != RELOID && oid < FirstNormalObjectId)
		return InvalidOid;		/* built in */
	tup = SearchSysCache1(cacheid, ObjectIdGetDatum(oid));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	owner = cacheid == PROCOID ? ((Form_pg_proc) GETSTRUCT(tup))->proowner :
		cacheid == OPEROID ? ((Form_pg_operator) GETSTRUCT(tup))->oprowner :
		((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

typedef struct NamedWalk
{
	Oid			role;
	Oid			found;			/* a pg_proc or pg_operator oid */
	bool		is_operator;
	Oid			found_owner;
} NamedWalk;

static bool
named_walker(Node *node, NamedWalk *w)
{
	Oid			fn = InvalidOid;
	Oid			op = InvalidOid;
	Oid			owner;

	if (node == NULL)
		return false;
	if (IsA(node, Aggref))
		fn = ((Aggref *) node)->aggfnoid;
	else if (IsA(node, WindowFunc))
		fn = ((WindowFunc *) node)->winfnoid;
	else if (IsA(node, FuncExpr))
		fn = ((FuncExpr *) node)->funcid;
	else if (IsA(node, OpExpr) || IsA(node, DistinctExpr) || IsA(node, NullIfExpr))
		op = ((OpExpr *) node)->opno;
	else if (IsA(node, ScalarArrayOpExpr))
		op = ((ScalarArrayOpExpr *) node)->opno;
	if (OidIsValid(fn) && OidIsValid(owner = object_owner(PROCOID, fn)) && other_role(owner, w->role))
	{
		w->found = fn;
		w->found_owner = owner;
		return true;
	}
	if (OidIsValid(op) && OidIsValid(owner = object_owner(OPEROID, op)) && other_role(owner, w->role))
	{
		w->found = op;
		w->is_operator = true;
		w->found_owner = owner;
		return true;
	}
	if (IsA(node, Query))
		return query_tree_walker((Query *) node, named_walker, w, 0);
	return expression_tree_walker(node, named_walker, w);
}

/*
 * Built-ins that are not volatile yet run a query on a relation named at
 * run time (a review's view chose one of 200 tables by a heart rate: its
 * lock and its scan counters told the value).
 */
static bool
runs_a_query(Oid funcid, void *context)
{
	char	   *name;

	if (funcid >= FirstNormalObjectId)
		return false;
	name = get_func_name(funcid);
	return name != NULL &&
		(strncmp(name, "table_to_xml", 12) == 0 || strncmp(name, "schema_to_xml", 13) == 0 ||
		 strncmp(name, "database_to_xml", 15) == 0 || strncmp(name, "query_to_xml", 12) == 0 ||
		 strncmp(name, "cursor_to_xml", 13) == 0);
}

/* code with effects others may see */
static bool
has_effects(Node *node)
{
	return contain_volatile_functions(node) || owner_type_walker(node, NULL) ||
		aa_query_calls(node, runs_a_query);
}

typedef struct CodeWalk
{
	Oid			role;
	List	   *seen;			/* views looked at */
	const char *what;			/* what was found: "view", "policy of table" */
	Oid			found;
	Oid			found_owner;
} CodeWalk;

static bool
view_has_effects(Oid view)
{
	Relation	rel = relation_open(view, AccessShareLock);
	bool		effects = has_effects((Node *) get_view_query(rel));

	relation_close(rel, AccessShareLock);
	return effects;
}

static bool
code_walker(Node *node, CodeWalk *w)
{
	ListCell   *lc;

	if (node == NULL)
		return false;
	if (!IsA(node, Query))
		return expression_tree_walker(node, code_walker, w);
	foreach(lc, ((Query *) node)->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		Oid			owner;

		if (!OidIsValid(rte->relid) ||
			(rte->rtekind != RTE_RELATION && rte->rtekind != RTE_SUBQUERY))
			continue;

		/*
		 * A view is a relation entry of its expanded body (15) or the
		 * subquery entry that holds it (16 on), and a view written through.
		 */
		if (rte->relkind == RELKIND_VIEW)
		{
			if (list_member_oid(w->seen, rte->relid))
				continue;
			w->seen = lappend_oid(w->seen, rte->relid);
			owner = object_owner(RELOID, rte->relid);
			if (other_role(owner, w->role) && view_has_effects(rte->relid))
			{
				w->what = "view";
				w->found = rte->relid;
				w->found_owner = owner;
				return true;
			}
			continue;
		}

		/*
		 * The row-security policies of a table that is not protected: its
		 * owner's (those of a protected table are agentauth's alone).
		 */
		if (rte->rtekind == RTE_RELATION && rte->securityQuals != NIL &&
			aa_protected_rel(rte->relid) == NULL)
		{
			owner = object_owner(RELOID, rte->relid);
			if (other_role(owner, w->role) && has_effects((Node *) rte->securityQuals))
			{
				w->what = "a policy of table";
				w->found = rte->relid;
				w->found_owner = owner;
				return true;
			}
		}
	}
	return query_tree_walker((Query *) node, code_walker, w, 0);
}

/*
 * The code of other roles in a statement about to be planned.  In a
 * session: refused (recorded).  Outside one: true when a session of this
 * login would refuse the plan (stats.c makes it be planned again).
 */
bool
aa_other_code_plan(Query *parse)
{
	CodeWalk	w = {code_role(), NIL, NULL, InvalidOid, InvalidOid};
	NamedWalk	nw = {code_role(), InvalidOid, false, InvalidOid};

	if (named_walker((Node *) parse, &nw))
	{
		if (aa_session == NULL)
			return true;
		if (nw.is_operator)
			refuse("operator", format_operator_qualified(nw.found), "operator", nw.found_owner);
		refuse("function", format_procedure_qualified(nw.found), "function", nw.found_owner);
	}

	/*
	 * A rule's query (DO INSTEAD SELECT pg_notify(...) of another role's
	 * table: the statement that fired it named no such thing).  Whose
	 * rule it was the query does not say: any rule's, with effects --
	 * save nextval(), which the rewriter puts in for a serial column's
	 * default (a history table's key; found by review).
	 */
	if (parse->querySource != QSRC_ORIGINAL && parse->querySource != QSRC_PARSER &&
		(contain_volatile_functions_not_nextval((Node *) parse) ||
		 owner_type_walker((Node *) parse, NULL) || aa_query_calls((Node *) parse, runs_a_query)))
	{
		if (aa_session == NULL)
			return true;
		refuse("a rule's query", "(of a table the statement writes)", "rule", InvalidOid);
	}
	if (!code_walker((Node *) parse, &w))
		return false;
	if (aa_session == NULL)
		return true;
	refuse(w.what, aa_qualified_name(get_namespace_name(get_rel_namespace(w.found)),
											  get_rel_name(w.found)),
		   strcmp(w.what, "view") == 0 ? "view" : "policy", w.found_owner);
}
