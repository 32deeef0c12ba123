/*-------------------------------------------------------------------------
 *
 * policy.c
 *		Row-level security for protected tables: the row-security policy
 *		hooks, the per-row check agentauth._row_check(), and the guard that
 *		keeps DDL from switching protection off.
 *
 *		For a protected table the permissive hook returns one policy whose
 *		qual is true and the restrictive hook one whose qual is
 *		agentauth._row_check(relid, patient::text, cmd).  Being restrictive,
 *		no permissive policy a user creates can widen it; it is not a row of
 *		pg_policy, so dropping policies changes nothing.  _row_check is not
 *		leakproof, so a leaky function in WHERE runs after it, while
 *		leakproof quals on the patient column still drive an index.
 *
 *		cmd is 'read' (USING of SELECT), 'update' / 'delete' (USING of the
 *		write: invisible when the row cannot be read, an error when it can
 *		be read but not written), 'insert' and 'update_new' (WITH CHECK on
 *		the new row: an error when not permitted).
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
#include "catalog/pg_collation.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "rewrite/rowsecurity.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_row_check);

#define POLICY_NAME "agentauth"

static row_security_policy_hook_type prev_permissive = NULL;
static row_security_policy_hook_type prev_restrictive = NULL;
static ProcessUtility_hook_type prev_utility = NULL;

typedef enum RowCmd
{
	ROW_READ,
	ROW_INSERT,
	ROW_UPDATE,
	ROW_UPDATE_NEW,
	ROW_DELETE
} RowCmd;

static const char *const row_cmd_names[] = {"read", "insert", "update", "update_new", "delete"};

/* ------------------------------------------------------------------
 * Policy hooks
 * ------------------------------------------------------------------
 */

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
row_check_expr(Relation relation, AAProtectedRel *prot, RowCmd cmd)
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
													  CStringGetTextDatum(row_cmd_names[cmd]),
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
			p = make_policy(cmd, row_check_expr(relation, prot, ROW_READ), NULL);
			break;
		case CMD_INSERT:
			p = make_policy(cmd, row_check_expr(relation, prot, ROW_INSERT),
							row_check_expr(relation, prot, ROW_INSERT));
			break;
		case CMD_UPDATE:
			p = make_policy(cmd, row_check_expr(relation, prot, ROW_UPDATE),
							row_check_expr(relation, prot, ROW_UPDATE_NEW));
			break;
		case CMD_DELETE:
			p = make_policy(cmd, row_check_expr(relation, prot, ROW_DELETE), NULL);
			break;
		default:
			p = make_policy(cmd, bool_const(false), bool_const(false));
			break;
	}
	p->permissive = false;
	return lappend(result, p);
}

/* ------------------------------------------------------------------
 * The per-row check
 * ------------------------------------------------------------------
 */

typedef struct RowCheckState
{
	AARelAccess *ra;
	RowCmd		cmd;
	uint64		dgen;			/* decision generation the session was
								 * last found unchanged at */
} RowCheckState;

static int
cmd_index(RowCmd cmd)
{
	switch (cmd)
	{
		case ROW_READ:
			return AA_IDX_READ;
		case ROW_INSERT:
			return AA_IDX_INSERT;
		case ROW_UPDATE:
		case ROW_UPDATE_NEW:
			return AA_IDX_UPDATE;
		case ROW_DELETE:
			return AA_IDX_DELETE;
	}
	return AA_IDX_READ;
}

static const int idx_action[AA_NIDX] = {AA_ACT_READ, AA_ACT_INSERT, AA_ACT_UPDATE, AA_ACT_DELETE};
static const char *const idx_name[AA_NIDX] = {"read", "insert", "update", "delete"};

/* the decision for one patient and action, cached for the run */
static bool
decide(AARelAccess *ra, AAPatientAccess *pa, int idx)
{
	if (pa->decided[idx] < 0)
	{
		AADecision d;
		MemoryContext oldcxt = MemoryContextSwitchTo(ra->query->cxt);

		if (ra->nclasses[idx] > 0)
			aa_consent_decide(pa->patient, ra->nclasses[idx], ra->classes[idx],
							  false, idx_action[idx], &d);
		else
			aa_consent_decide(pa->patient, ra->nanyof[idx], ra->anyof[idx],
							  true, idx_action[idx], &d);
		MemoryContextSwitchTo(oldcxt);
		pa->decided[idx] = d.permit ? 1 : 0;
		pa->authority[idx] = d.authority;
		pa->btg[idx] = d.btg;
	}
	return pa->decided[idx] == 1;
}

static void
refuse_write(AARelAccess *ra, AAPatientAccess *pa, int idx)
{
	pa->withheld[idx]++;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s rows of patient \"%s\" in table %s",
					idx_name[idx], pa->patient, ra->relname),
			 errdetail("Decision: %s", pa->authority[idx] ? pa->authority[idx] : "{}"),
			 errhint("A write needs a consent provision that permits it for this session's purpose, or a break-the-glass override.")));
}

static void
consume_approval(AARelAccess *ra, AAPatientAccess *pa, int idx)
{
	pg_uuid_t	approval;
	MemoryContext oldcxt;

	if (pa->approval_done[idx] || !(ra->approve_mask & idx_action[idx]) ||
		aa_session == NULL || !aa_session->is_agent)
		return;
	aa_approval_consume(ra->relid, pa->patient, idx_name[idx], &approval);
	oldcxt = MemoryContextSwitchTo(ra->query->cxt);
	pa->approval[idx] = DatumGetCString(DirectFunctionCall1(uuid_out,
															UUIDPGetDatum(&approval)));
	MemoryContextSwitchTo(oldcxt);
	pa->approval_done[idx] = true;
}

/*
 * agentauth._row_check(relid oid, patient text, cmd text) RETURNS boolean
 */
Datum
aa_row_check(PG_FUNCTION_ARGS)
{
	RowCheckState *st = (RowCheckState *) fcinfo->flinfo->fn_extra;
	AARelAccess *ra;
	AAPatientAccess *pa;
	uint64		dgen;
	int			idx;
	text	   *pt;

	if (st == NULL)
	{
		Oid			relid;
		char	   *cmd;
		RowCmd		c;

		if (IsParallelWorker())
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("protected rows cannot be checked in a parallel worker")));
		if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("relation and command must not be null")));
		relid = PG_GETARG_OID(0);
		cmd = text_to_cstring(PG_GETARG_TEXT_PP(2));
		for (c = ROW_READ; c <= ROW_DELETE; c++)
			if (strcmp(cmd, row_cmd_names[c]) == 0)
				break;
		if (c > ROW_DELETE)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown row check command \"%s\"", cmd)));
		ra = aa_access_for(relid);
		if (ra == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("agentauth._row_check() may only be called by the row security of a protected table")));
		st = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(RowCheckState));
		st->ra = ra;
		st->cmd = c;
		st->dgen = PG_UINT64_MAX;
		fcinfo->flinfo->fn_extra = st;
	}
	ra = st->ra;

	/* the token, principal and session are still good: one atomic read */
	if (aa_session == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no agentauth session"),
				 errdetail("The session ended while the statement on table %s was running.",
						   ra->relname)));
	aa_session_check();
	dgen = aa_decision_gen();
	idx = cmd_index(st->cmd);

	/*
	 * The statement's columns were checked against the scopes of the
	 * session it started in.  A begin_session() inside the statement (in a
	 * target list, or on the outer side of a join) must not let another
	 * token's patients or purpose see them.  A session change moves the
	 * decision generation, so this costs nothing per row.
	 */
	if (dgen != st->dgen)
	{
		if (memcmp(&aa_session->id, &ra->query->session_id, sizeof(pg_uuid_t)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the agentauth session changed during a statement on table %s",
							ra->relname),
					 errhint("Begin or end a session in a statement of its own.")));
		st->dgen = dgen;
	}

	if (PG_ARGISNULL(1))
	{
		if (st->cmd == ROW_READ)
			return BoolGetDatum(false);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("a row of protected table %s must name its patient", ra->relname)));
	}
	pt = PG_GETARG_TEXT_PP(1);
	pa = aa_access_patient(ra, VARDATA_ANY(pt), VARSIZE_ANY_EXHDR(pt));
	if (pa->dgen != (uint32) dgen)
	{
		for (int i = 0; i < AA_NIDX; i++)
			pa->decided[i] = -1;
		pa->dgen = (uint32) dgen;
	}

	switch (st->cmd)
	{
		case ROW_READ:
			if (decide(ra, pa, AA_IDX_READ))
			{
				pa->allowed[AA_IDX_READ]++;
				return BoolGetDatum(true);
			}
			pa->withheld[AA_IDX_READ]++;
			return BoolGetDatum(false);

		case ROW_UPDATE:
		case ROW_DELETE:
			/* a row the session cannot read stays invisible */
			if (!decide(ra, pa, AA_IDX_READ))
			{
				pa->withheld[idx]++;
				return BoolGetDatum(false);
			}
			if (!decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			/* an UPDATE takes its approval at the new row: rows it writes */
			if (st->cmd == ROW_DELETE)
				consume_approval(ra, pa, idx);
			pa->allowed[idx]++;
			return BoolGetDatum(true);

		case ROW_INSERT:
			if (!decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			consume_approval(ra, pa, idx);
			pa->allowed[idx]++;
			return BoolGetDatum(true);

		case ROW_UPDATE_NEW:
			if (!decide(ra, pa, idx))
				refuse_write(ra, pa, idx);
			consume_approval(ra, pa, idx);
			pa->written_new++;
			return BoolGetDatum(true);
	}
	return BoolGetDatum(false);
}

/* ------------------------------------------------------------------
 * DDL guard
 * ------------------------------------------------------------------
 */

static void
refuse_ddl(const char *relname, const char *what, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s protected table %s", what, relname),
			 hint ? errhint("%s", hint) : 0));
}

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
	refuse_ddl(prot->relname, what,
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

static void
refuse_moved(Oid relid, const char *what)
{
	AAProtectedRel *prot;

	if (!OidIsValid(relid) || superuser())
		return;
	prot = aa_protected_rel(relid);
	if (prot != NULL)
		refuse_ddl(prot->relname, what,
				   "Another table could take its name, unprotected. A superuser may do this; otherwise unprotect it first with agentauth.unprotect_table() (audited).");
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

static void
check_alter_table(AlterTableStmt *stmt)
{
	Oid			relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	AAProtectedRel *prot;
	ListCell   *lc;
	char	   *relname;
	char	   *patient_column;

	if (!OidIsValid(relid))
		return;

	/* a protected table may not become the parent of another */
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AddInherit && cmd->def && IsA(cmd->def, RangeVar))
		{
			Oid			parent = RangeVarGetRelid((RangeVar *) cmd->def, NoLock, true);

			if (OidIsValid(parent) && aa_is_protected(parent))
				refuse_ddl(get_rel_name(parent), "inherit from",
						   "Rows of a child table would escape the checks of the protected table.");
		}

		/*
		 * A partition is read through its parent with the parent's row
		 * security only, and directly with its own: both or neither must
		 * be protected.
		 */
		if (cmd->subtype == AT_AttachPartition && cmd->def &&
			IsA(cmd->def, PartitionCmd))
		{
			Oid			part = rangevar_relid(((PartitionCmd *) cmd->def)->name);

			if (OidIsValid(part) && aa_is_protected(part) != aa_is_protected(relid))
				refuse_ddl(aa_is_protected(part) ? get_rel_name(part) :
						   get_rel_name(relid),
						   "attach a partition across the boundary of",
						   "A partition and its parent must both be protected, or neither: rows would escape the checks of the protected one.");
		}
	}
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
				refuse_ddl(relname, "disable row level security on",
						   "Only agentauth.unprotect_table() ends protection.");
				break;
			case AT_NoForceRowSecurity:
				refuse_ddl(relname, "stop forcing row level security on",
						   "Only agentauth.unprotect_table() ends protection.");
				break;
			case AT_DropColumn:
				if (patient_column && cmd->name &&
					strcmp(cmd->name, patient_column) == 0)
					refuse_ddl(relname, "drop the patient column of",
							   "Unprotect the table first with agentauth.unprotect_table().");
				break;
			case AT_AddInherit:
				refuse_ddl(relname, "make an inheritance child of", NULL);
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
				break;
			case AT_AlterColumnType:
				if (cmd->def && IsA(cmd->def, ColumnDef) &&
					((ColumnDef *) cmd->def)->raw_default != NULL)
					refuse_attached_code(relid, "change a column type with a USING expression on");
				break;
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
	if (stmt->renameType == OBJECT_TABLE && stmt->relation != NULL)
	{
		refuse_moved(rangevar_relid(stmt->relation), "rename");
		return;
	}
	if (stmt->renameType != OBJECT_COLUMN || stmt->relation == NULL)
		return;
	relid = RangeVarGetRelid(stmt->relation, NoLock, true);
	if (!OidIsValid(relid))
		return;
	prot = aa_protected_rel(relid);
	if (prot && prot->patient_column && stmt->subname &&
		strcmp(stmt->subname, prot->patient_column) == 0)
		refuse_ddl(prot->relname, "rename the patient column of",
				   "Unprotect the table, rename the column, and protect it again.");
}

static void
check_create(CreateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->inhRelations)
	{
		RangeVar   *rv = lfirst(lc);
		Oid			parent = RangeVarGetRelid(rv, NoLock, true);

		if (OidIsValid(parent) && aa_is_protected(parent))
			refuse_ddl(get_rel_name(parent), "inherit from",
					   "Rows of a child table would escape the checks of the protected table.");
	}
}

/*
 * Reading or writing a protected table outside the executor: TRUNCATE,
 * and COPY where row security does not turn it into a query.
 */
static void
check_bulk(Oid relid, const char *action, List *attnames)
{
	AAProtectedRel *prot = aa_protected_rel(relid);
	char	   *relname;
	const char **cols;
	int			ncols = 0;
	ListCell   *lc;

	/* looked up last: the pointer is good until the next lookup */
	prot = aa_protected_rel(relid);
	if (prot == NULL)
		return;
	relname = pstrdup(prot->relname);
	cols = palloc(sizeof(char *) * (prot->natts + 1));
	if (attnames != NIL)
	{
		foreach(lc, attnames)
			cols[ncols++] = pstrdup(strVal(lfirst(lc)));
	}
	else
		for (int i = 1; i <= prot->natts; i++)
			if (prot->att_name[i])
				cols[ncols++] = pstrdup(prot->att_name[i]);

	aa_check_standby(relname);
	if (aa_rls_bypassed(relid, InvalidOid) &&
		!superuser() && !has_bypassrls_privilege(GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row level security is not in force on protected table %s", relname),
				 errhint("An administrator runs agentauth.protect_table() on it again, which enables and forces row level security.")));
	if (!aa_rls_bypassed(relid, InvalidOid))
	{
		if (aa_session == NULL)
			aa_refuse_outside_session(relname, ncols, cols, action);
		if (strcmp(action, "delete") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("cannot truncate protected table %s", relname),
					 errhint("Delete the rows with DELETE, which checks each row.")));
		/* COPY under row security goes through the executor */
		return;
	}
	if (aa_session != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row security cannot be applied to table %s for this role", relname),
				 errdetail("The role bypasses row-level security, and this backend has an agentauth session.")));
	aa_audit_privileged(relname, ncols, cols, action);
}

static void
aa_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
		   ProcessUtilityContext context, ParamListInfo params,
		   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (IsTransactionState() && !IsParallelWorker())
	{
		switch (nodeTag(stmt))
		{
			case T_AlterTableStmt:
				check_alter_table((AlterTableStmt *) stmt);
				break;
			case T_RenameStmt:
				check_rename((RenameStmt *) stmt);
				break;
			case T_CreateStmt:
				check_create((CreateStmt *) stmt);
				break;
			case T_IndexStmt:
				check_index((IndexStmt *) stmt);
				break;
			case T_AlterObjectSchemaStmt:
				if (((AlterObjectSchemaStmt *) stmt)->objectType == OBJECT_TABLE)
					refuse_moved(rangevar_relid(((AlterObjectSchemaStmt *) stmt)->relation),
								 "move");
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
				{
					TruncateStmt *ts = (TruncateStmt *) stmt;
					List	   *relids = NIL;
					ListCell   *lc;

					foreach(lc, ts->relations)
					{
						Oid			relid = RangeVarGetRelid(lfirst(lc), NoLock, true);

						if (OidIsValid(relid))
							relids = lappend_oid(relids, relid);
					}

					/*
					 * CASCADE also empties every table whose foreign key
					 * references one of them, a protected one included.
					 */
					if (ts->behavior == DROP_CASCADE)
					{
						bool		added = true;

						while (added)
						{
							added = false;
							foreach(lc, heap_truncate_find_FKs(relids))
							{
								if (!list_member_oid(relids, lfirst_oid(lc)))
								{
									relids = lappend_oid(relids, lfirst_oid(lc));
									added = true;
								}
							}
						}
					}
					foreach(lc, relids)
						check_bulk(lfirst_oid(lc), "delete", NIL);
				}
				break;
			case T_CopyStmt:
				{
					CopyStmt   *cs = (CopyStmt *) stmt;

					if (cs->relation)
					{
						Oid			relid = RangeVarGetRelid(cs->relation, NoLock, true);

						if (OidIsValid(relid))
							check_bulk(relid, cs->is_from ? "insert" : "read",
									   cs->attlist);
					}
				}
				break;
			default:
				break;
		}
	}

	if (prev_utility)
		prev_utility(pstmt, queryString, readOnlyTree, context, params,
					 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}

void
aa_policy_init(void)
{
	prev_permissive = row_security_policy_hook_permissive;
	row_security_policy_hook_permissive = permissive_hook;
	prev_restrictive = row_security_policy_hook_restrictive;
	row_security_policy_hook_restrictive = restrictive_hook;
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = aa_utility;
	aa_columns_init();
}
