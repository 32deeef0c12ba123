/*-------------------------------------------------------------------------
 *
 * policy.c
 *		The row-security policy hooks of protected tables: the first step of
 *		the row path.
 *
 *		For a protected table the permissive hook returns one policy whose
 *		qual is true and the restrictive hook one whose qual is
 *		agentauth._row_check(relid, patient::text, cmd) (access.c).  Being
 *		restrictive, no permissive policy a user creates can widen it; it is
 *		not a row of pg_policy, so dropping policies changes nothing.
 *		_row_check is not leakproof, so a leaky function in WHERE runs after
 *		it, while leakproof quals on the patient column still drive an index.
 *
 *		cmd is 'read' (USING of SELECT), 'update' / 'delete' (USING of the
 *		write: invisible when the row cannot be read, an error when it can
 *		be read but not written), 'insert' and 'update_new' (WITH CHECK on
 *		the new row: an error when not permitted).
 *
 *		What runs before the check (1.1).  PostgreSQL orders a scan's
 *		conditions by security level and cost, and lets a cheap leakproof
 *		condition of the statement go first.  But "leakproof" promises only
 *		that a function does not reveal its arguments; some leakproof
 *		functions raise errors (starts_with() under a nondeterministic
 *		collation, a comparison whose collation is indeterminate), and a
 *		CASE around one raises it for exactly the withheld rows a question
 *		selects: an exact answer, per probe, with no record.  So after
 *		planning, every scan that holds a row check has its conditions
 *		reordered (aa_policy_order_plan): first those that cannot fail on
 *		any row -- comparisons by a btree operator of the column's own type
 *		and a deterministic collation, of columns, constants and bound
 *		parameters, IS [NOT] NULL, AND/OR/NOT of these: what the patient
 *		filter of a point query or an UPDATE ... WHERE patient_id = $1 is
 *		made of -- then the row checks, then everything else.  Index
 *		conditions run in the index, before all of them, as before.
 *
 *		Restrictive policies of pg_policy on a protected table are
 *		PostgreSQL's own security quals, placed before the hook's: an
 *		owner's function there would run over every row, withheld patients
 *		and columns out of scope included.  One whose expression could see
 *		a row's values (contain_leaked_vars, or a sub-select) refuses the
 *		statement it applies to for anyone the row check holds; protect_table() refuses a
 *		table that has one (_policy_sees_rows).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "parser/parse_func.h"
#include "rewrite/rewriteManip.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "agentauth.h"

#define POLICY_NAME "agentauth"

PG_FUNCTION_INFO_V1(aa_policy_sees_rows);

static row_security_policy_hook_type prev_permissive = NULL;
static row_security_policy_hook_type prev_restrictive = NULL;

static ArrayType *
public_roles(void)
{
	Datum		role = ObjectIdGetDatum(ACL_ID_PUBLIC);

	return construct_array(&role, 1, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
}

/* a command as pg_policy.polcmd names it */
static char
policy_cmd(CmdType cmd)
{
	switch (cmd)
	{
		case CMD_SELECT:
			return ACL_SELECT_CHR;
		case CMD_INSERT:
			return ACL_INSERT_CHR;
		case CMD_UPDATE:
			return ACL_UPDATE_CHR;
		case CMD_DELETE:
			return ACL_DELETE_CHR;
		default:
			return '*';
	}
}

static RowSecurityPolicy *
make_policy(CmdType cmd, Expr *qual, Expr *with_check)
{
	RowSecurityPolicy *p = palloc0(sizeof(RowSecurityPolicy));

	p->policy_name = pstrdup(POLICY_NAME);
	p->polcmd = policy_cmd(cmd);
	p->roles = public_roles();
	p->qual = qual;
	p->with_check_qual = with_check;
	p->hassublinks = false;
	p->permissive = (qual != NULL && IsA(qual, Const));
	return p;
}

static Expr *
bool_const(bool b)
{
	return (Expr *) makeBoolConst(b, false);
}

/* agentauth._row_check(relid, patient::text, 'cmd'), with Vars of varno 1 */
static Expr *
row_check_expr(Relation relation, AAProtectedRel *prot, AARowCmd cmd)
{
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	Oid			fn;
	Form_pg_attribute att;
	Var		   *var;
	Expr	   *patient;

	if (prot->patient_attno <= 0 ||
		prot->patient_attno > RelationGetDescr(relation)->natts)
		return bool_const(false);	/* broken label: fail closed */
	att = TupleDescAttr(RelationGetDescr(relation), prot->patient_attno - 1);
	if (att->attisdropped)
		return bool_const(false);
	/* a text form the session's settings change: fail closed (patient_id.c) */
	if (!aa_patient_type_stable(att->atttypid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the patient column \"%s\" of protected table %s has type %s, whose text form depends on the session's settings",
						NameStr(att->attname), prot->relname, format_type_be(att->atttypid)),
				 errdetail("Consents and records name a patient by that text: an agent could print a patient's id another way."),
				 errhint("Keep patient ids as text, an integer, numeric or uuid; a superuser may change the column's type.")));

	fn = LookupFuncName(list_make2(makeString(AA_SCHEMA), makeString("_row_check")),
						3, argtypes, false);
	var = makeVar(1, att->attnum, att->atttypid, att->atttypmod,
				  att->attcollation, 0);
	if (att->atttypid == TEXTOID)
		patient = (Expr *) var;
	else if (getBaseType(att->atttypid) == BPCHAROID)
	{
		/*
		 * char(n) pads with blanks, and its output keeps them: 'P1' of a
		 * consent or a token's list would not match 'P1      ', so a deny
		 * would not apply.  Cast as SQL does (text(bpchar) drops them).
		 */
		Expr	   *arg = (Expr *) var;

		if (att->atttypid != BPCHAROID)
			arg = (Expr *) makeRelabelType(arg, BPCHAROID, -1, att->attcollation,
										   COERCE_IMPLICIT_CAST);
		patient = (Expr *) makeFuncExpr(F_TEXT_BPCHAR, TEXTOID, list_make1(arg),
										InvalidOid, DEFAULT_COLLATION_OID,
										COERCE_EXPLICIT_CAST);
	}
	else
	{
		CoerceViaIO *c = makeNode(CoerceViaIO);

		c->arg = (Expr *) var;
		c->resulttype = TEXTOID;
		c->resultcollid = DEFAULT_COLLATION_OID;
		c->coerceformat = COERCE_EXPLICIT_CAST;
		c->location = -1;
		patient = (Expr *) c;
	}
	return (Expr *) makeFuncExpr(fn, BOOLOID,
								 list_make3(makeConst(OIDOID, -1, InvalidOid, sizeof(Oid),
													  ObjectIdGetDatum(prot->relid),
													  false, true),
											patient,
											makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
													  CStringGetTextDatum(aa_row_cmd_name(cmd)),
													  false, false)),
								 InvalidOid, DEFAULT_COLLATION_OID,
								 COERCE_EXPLICIT_CALL);
}

/* ------------------------------------------------------------------
 * Restrictive policies of pg_policy on a protected table
 * ------------------------------------------------------------------
 */

/* an expression of a policy that could see the values of the row */
static bool
policy_sees_rows(Node *expr)
{
	if (expr == NULL)
		return false;
	/* a sub-select may pass the row's values to anything */
	if (checkExprHasSubLink(expr))
		return true;
	return contain_leaked_vars(expr);
}

/*
 * The policy applies to this command.  Its roles are not looked at: a
 * view's policies apply as the view's owner, and whoever they apply to,
 * such code has no place on a protected table.
 */
static bool
policy_applies(RowSecurityPolicy *p, CmdType cmd)
{
	/* an UPDATE or DELETE reads with the SELECT policies too */
	return p->polcmd == '*' || p->polcmd == policy_cmd(cmd) ||
		(p->polcmd == ACL_SELECT_CHR && (cmd == CMD_UPDATE || cmd == CMD_DELETE));
}

static void
refuse_policy_code(CmdType cmd, Relation relation, AAProtectedRel *prot)
{
	ListCell   *lc;

	if (relation->rd_rsdesc == NULL)
		return;
	foreach(lc, relation->rd_rsdesc->policies)
	{
		RowSecurityPolicy *p = lfirst(lc);

		if (p->permissive || !policy_applies(p, cmd))
			continue;
		if (policy_sees_rows((Node *) p->qual) ||
			policy_sees_rows((Node *) p->with_check_qual))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("protected table %s has restrictive policy \"%s\", whose expression runs code over its rows",
							prot->relname, p->policy_name),
					 errdetail("PostgreSQL evaluates it before agentauth's row check, over the rows of every patient and every column."),
					 errhint("Drop the policy: agentauth decides who reads a protected table.")));
	}
}

/*
 * agentauth._policy_sees_rows(expr pg_node_tree) RETURNS boolean: a stored
 * policy expression (pg_policy.polqual, polwithcheck) could see the values
 * of the rows it is evaluated on; for protect_table().
 */
Datum
aa_policy_sees_rows(PG_FUNCTION_ARGS)
{
	Node	   *expr;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	expr = stringToNode(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_BOOL(policy_sees_rows(expr));
}

/* ------------------------------------------------------------------
 * The order of a protected scan's conditions: the row check first
 * ------------------------------------------------------------------
 */

/*
 * A btree comparison, leakproof, under a deterministic collation when its
 * inputs have collations: it returns true or false on any two values, and
 * raises nothing (the leakproof btree comparisons of PostgreSQL 15, one
 * type or across types, were read for errors on stored values: none).
 */
static bool
comparison_cannot_fail(Oid opno, Oid inputcollid)
{
	Oid			left,
				right;

	op_input_types(opno, &left, &right);
	if (!get_func_leakproof(get_opcode(opno)) ||
		get_op_btree_interpretation(opno) == NIL)
		return false;
	if ((type_is_collatable(left) || type_is_collatable(right)) &&
		(!OidIsValid(inputcollid) || !get_collation_isdeterministic(inputcollid)))
		return false;
	return true;
}

/*
 * A condition that raises no error on any row: columns, constants and
 * bound parameters, compared as above, tested for NULL, combined by
 * AND/OR/NOT.  Anything else may fail on some rows and not on others: a
 * function call, a CASE, a coercion, an array built of columns (past
 * 1 GB), an initplan's value (it runs when the first row reaches it).  A
 * bound parameter ($n of a generic plan, a SQL function's argument) sets
 * *params: it cannot fail where its values are given before the run, but
 * PL/pgSQL fetches a variable only when a row reaches it, and fails there
 * when the variable's type changed since planning (aa_policy_order_run).
 */
static bool
cannot_fail_walk(Node *node, bool *params)
{
	ListCell   *lc;

	if (node == NULL)
		return true;
	switch (nodeTag(node))
	{
		case T_Var:
		case T_Const:
			return true;
		case T_Param:
			if (((Param *) node)->paramkind != PARAM_EXTERN)
				return false;
			*params = true;
			return true;
		case T_RelabelType:
			return cannot_fail_walk((Node *) ((RelabelType *) node)->arg, params);
		case T_NullTest:
			return cannot_fail_walk((Node *) ((NullTest *) node)->arg, params);
		case T_BooleanTest:
			return cannot_fail_walk((Node *) ((BooleanTest *) node)->arg, params);
		case T_BoolExpr:
			foreach(lc, ((BoolExpr *) node)->args)
				if (!cannot_fail_walk(lfirst(lc), params))
					return false;
			return true;
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			{
				OpExpr	   *op = (OpExpr *) node;

				return comparison_cannot_fail(op->opno, op->inputcollid) &&
					cannot_fail_walk((Node *) op->args, params);
			}
		case T_ScalarArrayOpExpr:
			{
				ScalarArrayOpExpr *op = (ScalarArrayOpExpr *) node;

				return comparison_cannot_fail(op->opno, op->inputcollid) &&
					cannot_fail_walk((Node *) op->args, params);
			}
		case T_List:
			foreach(lc, (List *) node)
				if (!cannot_fail_walk(lfirst(lc), params))
					return false;
			return true;
		default:
			return false;
	}
}

/* 0: may fail; 1: cannot fail; 2: cannot fail where parameters are given */
static int
cannot_fail(Node *node)
{
	bool		params = false;

	if (!cannot_fail_walk(node, &params))
		return 0;
	return params ? 2 : 1;
}

typedef struct QualOrder QualOrder;
struct QualOrder
{
	ParamListInfo params;		/* a run's, at its start */
	void		(*scan) (Plan *plan, QualOrder *o);	/* called for each scan */
};

/* o->scan for every scan of the plan and of its subplans */
static void
walk_scans(Plan *plan, QualOrder *o)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	check_stack_depth();
	if (aa_plan_scanrelid(plan) != 0 && list_length(plan->qual) > 1)
		o->scan(plan, o);
	walk_scans(outerPlan(plan), o);
	walk_scans(innerPlan(plan), o);
	foreach(lc, aa_plan_children(plan))
		walk_scans(lfirst(lc), o);
}

/* agentauth._row_check's OID, looked up once; forgotten when pg_proc changes */
static Oid	row_check_oid = InvalidOid;
static bool row_check_known = false;

static void
forget_row_check(Datum arg, int cacheid, uint32 hashvalue)
{
	row_check_known = false;
}

static bool
is_row_check(Node *node, QualOrder *o)
{
	FuncExpr   *f;

	if (!IsA(node, FuncExpr))
		return false;
	f = (FuncExpr *) node;
	if (f->funcresulttype != BOOLOID || list_length(f->args) != 3)
		return false;
	if (!row_check_known)
	{
		Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};

		row_check_oid = LookupFuncName(list_make2(makeString(AA_SCHEMA), makeString("_row_check")),
									   3, argtypes, true);
		row_check_known = true;
	}
	return OidIsValid(row_check_oid) && f->funcid == row_check_oid;
}

/*
 * The check of an UPDATE's or DELETE's old row (or a row locked FOR
 * UPDATE) refuses a row the session may read but not write.  Before the
 * statement's other conditions it would refuse rows they were to skip
 * (another patient's, where the patient is compared with a parameter):
 * its first half -- invisible unless readable -- goes there, a copy with
 * cmd 'update_seen' / 'delete_seen', and the check itself at the end.
 */
/*
 * The action a write check of an UPDATE's or DELETE's old row asks about
 * (cmd 'update' or 'delete'), or -1 for any other check.
 */
static int
write_check(FuncExpr *check)
{
	Const	   *cmd = lthird(check->args);
	text	   *t;

	if (!IsA(cmd, Const) || cmd->constisnull)
		return -1;
	t = DatumGetTextPP(cmd->constvalue);
	if (VARSIZE_ANY_EXHDR(t) != 6)
		return -1;
	if (memcmp(VARDATA_ANY(t), "update", 6) == 0)
		return AA_ROW_UPDATE;
	if (memcmp(VARDATA_ANY(t), "delete", 6) == 0)
		return AA_ROW_DELETE;
	return -1;
}

/* its first half: a copy with cmd 'update_seen' / 'delete_seen' */
static FuncExpr *
seen_half(FuncExpr *check)
{
	Const	   *cmd = lthird(check->args);
	AARowCmd	seen = write_check(check) == AA_ROW_UPDATE ?
		AA_ROW_UPDATE_SEEN : AA_ROW_DELETE_SEEN;
	FuncExpr   *copy = copyObject(check);

	lthird(copy->args) = makeConst(TEXTOID, -1, cmd->constcollid, -1,
								   CStringGetTextDatum(aa_row_cmd_name(seen)),
								   false, false);
	return copy;
}

static void
order_scan_quals(Plan *plan, QualOrder *o)
{
	List	   *first = NIL;
	List	   *pfirst = NIL;
	List	   *checks = NIL;
	List	   *rest = NIL;
	List	   *last = NIL;
	ListCell   *lc;

	foreach(lc, plan->qual)
	{
		Node	   *q = lfirst(lc);

		if (is_row_check(q, o))
			checks = lappend(checks, q);
		else
			switch (cannot_fail(q))
			{
				case 1:
					first = lappend(first, q);
					break;
				case 2:
					pfirst = lappend(pfirst, q);
					break;
				default:
					rest = lappend(rest, q);
					break;
			}
	}
	if (checks == NIL)
		return;

	/*
	 * Split the write checks when something comes after them, or may be
	 * moved after them at a run's start (aa_policy_order_run); else each
	 * stays whole, one call a row.
	 */
	if (rest != NIL || pfirst != NIL)
	{
		List	   *hide = NIL;

		foreach(lc, checks)
		{
			FuncExpr   *c = lfirst(lc);

			if (write_check(c) >= 0)
			{
				hide = lappend(hide, seen_half(c));
				last = lappend(last, c);
			}
			else
				hide = lappend(hide, c);
		}
		checks = hide;
	}
	plan->qual = list_concat(list_concat(list_concat(list_concat(first, pfirst), checks),
										 rest), last);
}

/*
 * A parameter of the condition may fail when a row reaches it: its list
 * fetches values as rows need them (PL/pgSQL: a variable whose type changed
 * since planning fails at the fetch), or its value is missing or of
 * another type than the plan's -- PostgreSQL checks that at every
 * evaluation (an SPI cursor of PL/pgSQL copies the variables at its open,
 * with their types then).
 */
static bool
param_may_fail(Node *node, ParamListInfo params)
{
	if (node == NULL)
		return false;
	if (IsA(node, Param) && ((Param *) node)->paramkind == PARAM_EXTERN)
	{
		Param	   *p = (Param *) node;
		ParamExternData *prm;

		if (params == NULL || params->paramFetch != NULL || params->paramCompile != NULL ||
			p->paramid <= 0 || p->paramid > params->numParams)
			return true;
		prm = &params->params[p->paramid - 1];
		return !OidIsValid(prm->ptype) || prm->ptype != p->paramtype;
	}
	return expression_tree_walker(node, param_may_fail, (void *) params);
}

/*
 * At a run's start, a scan's conditions whose parameters may fail (above),
 * before its row checks -- the plan-time order put only conditions that
 * cannot fail there -- are moved after the checks that hide rows (not the
 * write check an UPDATE ends with).  In place: the plan is cached, and its
 * lists are the cache's memory.
 */
static void
params_after_checks(Plan *plan, QualOrder *o)
{
	int			n = list_length(plan->qual);
	Node	  **q = palloc(sizeof(Node *) * n);
	bool	   *moved = palloc0(sizeof(bool) * n);
	bool		any = false;
	int			k,
				end,
				m = 0,
				i;
	ListCell   *lc;

	foreach(lc, plan->qual)
		q[foreach_current_index(lc)] = lfirst(lc);
	for (k = 0; k < n && !is_row_check(q[k], o); k++)
		if (param_may_fail(q[k], o->params))
			moved[k] = any = true;
	if (any && k < n)
	{
		Node	  **out = palloc(sizeof(Node *) * n);

		end = k;
		while (end < n && is_row_check(q[end], o) && write_check((FuncExpr *) q[end]) < 0)
			end++;
		/* the kept of [0, k), then [k, end), the moved of [0, k), [end, n) */
		for (i = 0; i < k; i++)
			if (!moved[i])
				out[m++] = q[i];
		for (i = k; i < end; i++)
			out[m++] = q[i];
		for (i = 0; i < k; i++)
			if (moved[i])
				out[m++] = q[i];
		for (i = end; i < n; i++)
			out[m++] = q[i];
		foreach(lc, plan->qual)
			lfirst(lc) = out[foreach_current_index(lc)];
		pfree(out);
	}
	pfree(moved);
	pfree(q);
}

static void
walk_statement(PlannedStmt *ps, QualOrder *o)
{
	ListCell   *lc;

	if (ps == NULL || ps->commandType == CMD_UTILITY)
		return;
	walk_scans(ps->planTree, o);
	foreach(lc, ps->subplans)
		walk_scans(lfirst(lc), o);
}

/*
 * At the start of a run: the conditions whose parameters may fail on the
 * first row that reaches them (param_may_fail) go after the row checks.
 * Parameters given before the run, of the plan's types (protocol binds,
 * EXECUTE, SQL functions), stay first.
 */
void
aa_policy_order_run(PlannedStmt *ps, ParamListInfo params)
{
	QualOrder	o = {params, params_after_checks};

	walk_statement(ps, &o);
}

/* a read check of an UPDATE's new row: cmd 'read' becomes 'read_new' */
static bool
read_new_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (is_row_check(node, NULL))
	{
		FuncExpr   *f = (FuncExpr *) node;
		Const	   *cmd = lthird(f->args);

		if (IsA(cmd, Const) && !cmd->constisnull &&
			strcmp(TextDatumGetCString(cmd->constvalue), aa_row_cmd_name(AA_ROW_READ)) == 0)
			lthird(f->args) = makeConst(TEXTOID, -1, cmd->constcollid, -1,
										CStringGetTextDatum(aa_row_cmd_name(AA_ROW_READ_NEW)),
										false, false);
		return false;
	}
	return expression_tree_walker(node, read_new_walker, context);
}

/*
 * PostgreSQL checks the new row of an UPDATE (ON CONFLICT DO UPDATE, MERGE)
 * against the SELECT policies too, when the statement reads the table: the
 * same row check that counted the old row as read.  There it only decides.
 */
static void
read_new_checks(Plan *plan)
{
	ListCell   *lc;

	if (plan == NULL)
		return;
	check_stack_depth();
	if (IsA(plan, ModifyTable))
	{
		ListCell   *l1;

		foreach(l1, ((ModifyTable *) plan)->withCheckOptionLists)
		{
			ListCell   *l2;

			foreach(l2, (List *) lfirst(l1))
			{
				WithCheckOption *wco = lfirst_node(WithCheckOption, l2);

				if (wco->kind == WCO_RLS_UPDATE_CHECK)
					(void) read_new_walker(wco->qual, NULL);
			}
		}
	}
	read_new_checks(outerPlan(plan));
	read_new_checks(innerPlan(plan));
	foreach(lc, aa_plan_children(plan))
		read_new_checks(lfirst(lc));
}

/*
 * After planning: in every scan that holds a row check, the conditions that
 * cannot fail first, then the row checks, then the rest (see the head of
 * this file); an UPDATE's new row's read check only decides.
 */
void
aa_policy_order_plan(PlannedStmt *ps)
{
	QualOrder	o = {NULL, order_scan_quals};
	ListCell   *lc;

	walk_statement(ps, &o);
	if (ps == NULL || ps->commandType == CMD_UTILITY)
		return;
	read_new_checks(ps->planTree);
	foreach(lc, ps->subplans)
		read_new_checks(lfirst(lc));
}

/*
 * A function that a parallel worker could run and that could itself read a
 * protected table: user-defined, PARALLEL SAFE, and in a language that runs
 * queries (not C or internal; an aggregate or window function whatever its
 * support functions are written in).
 */
static bool
may_read_in_worker(Oid fn, void *context)
{
	HeapTuple	tp;
	Form_pg_proc p;
	bool		may;

	if (fn < FirstNormalObjectId)
		return false;
	tp = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tp))
		return false;
	p = (Form_pg_proc) GETSTRUCT(tp);
	may = p->proparallel == PROPARALLEL_SAFE &&
		(p->prokind != PROKIND_FUNCTION ||
		 (p->prolang != ClanguageId && p->prolang != INTERNALlanguageId));
	ReleaseSysCache(tp);
	return may;
}

/*
 * Before planning: may the statement have parallel workers?  The row check
 * runs only in a parallel plan's leader (it is PARALLEL RESTRICTED), but a
 * PARALLEL SAFE function of the statement that reads a protected table runs
 * its query in whichever process evaluates it: in a worker the row check
 * refuses (0A000), so the same statement answered or failed by the plan and
 * by which process met which rows (1.1, found by review).  For a role the
 * row check holds (not a superuser), a statement that calls such a function
 * is planned without workers.
 */
bool
aa_policy_parallel_ok(Query *parse)
{
	if (superuser() || !aa_extension_ready())
		return true;
	return !aa_query_calls((Node *) parse, may_read_in_worker);
}

static List *
permissive_hook(CmdType cmd, Relation relation)
{
	List	   *result = NIL;

	if (prev_permissive)
		result = prev_permissive(cmd, relation);
	if (aa_is_protected(RelationGetRelid(relation)))
		result = lappend(result, make_policy(cmd, bool_const(true), bool_const(true)));
	return result;
}

static List *
restrictive_hook(CmdType cmd, Relation relation)
{
	List	   *result = NIL;
	AAProtectedRel *prot;
	RowSecurityPolicy *p;

	if (prev_restrictive)
		result = prev_restrictive(cmd, relation);
	prot = aa_protected_rel(RelationGetRelid(relation));
	if (prot == NULL)
		return result;
	refuse_policy_code(cmd, relation, prot);
	switch (cmd)
	{
		case CMD_SELECT:
			p = make_policy(cmd, row_check_expr(relation, prot, AA_ROW_READ), NULL);
			break;
		case CMD_INSERT:
			p = make_policy(cmd, row_check_expr(relation, prot, AA_ROW_INSERT),
							row_check_expr(relation, prot, AA_ROW_INSERT));
			break;
		case CMD_UPDATE:
			p = make_policy(cmd, row_check_expr(relation, prot, AA_ROW_UPDATE),
							row_check_expr(relation, prot, AA_ROW_UPDATE_NEW));
			break;
		case CMD_DELETE:
			p = make_policy(cmd, row_check_expr(relation, prot, AA_ROW_DELETE), NULL);
			break;
		default:
			p = make_policy(cmd, bool_const(false), bool_const(false));
			break;
	}
	p->permissive = false;
	return lappend(result, p);
}

void
aa_policy_init(void)
{
	prev_permissive = row_security_policy_hook_permissive;
	row_security_policy_hook_permissive = permissive_hook;
	prev_restrictive = row_security_policy_hook_restrictive;
	row_security_policy_hook_restrictive = restrictive_hook;
	CacheRegisterSyscacheCallback(PROCOID, forget_row_check, (Datum) 0);
}
