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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "rewrite/rowsecurity.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "agentauth.h"

#define POLICY_NAME "agentauth"

static row_security_policy_hook_type prev_permissive = NULL;
static row_security_policy_hook_type prev_restrictive = NULL;

static ArrayType *
public_roles(void)
{
	Datum		role = ObjectIdGetDatum(ACL_ID_PUBLIC);

	return construct_array(&role, 1, OIDOID, sizeof(Oid), true, TYPALIGN_INT);
}

static RowSecurityPolicy *
make_policy(CmdType cmd, Expr *qual, Expr *with_check)
{
	RowSecurityPolicy *p = palloc0(sizeof(RowSecurityPolicy));

	p->policy_name = pstrdup(POLICY_NAME);
	switch (cmd)
	{
		case CMD_SELECT:
			p->polcmd = ACL_SELECT_CHR;
			break;
		case CMD_INSERT:
			p->polcmd = ACL_INSERT_CHR;
			break;
		case CMD_UPDATE:
			p->polcmd = ACL_UPDATE_CHR;
			break;
		case CMD_DELETE:
			p->polcmd = ACL_DELETE_CHR;
			break;
		default:
			p->polcmd = '*';
			break;
	}
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
}
