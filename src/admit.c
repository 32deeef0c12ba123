/*-------------------------------------------------------------------------
 *
 * admit.c
 *		Whether a statement may touch a protected table at all, decided
 *		before any row is read, and the statement-level records of it.
 *
 *		On a hot standby a protected table is read only when its records
 *		can be forwarded to the primary (agentauth.forward_conninfo).
 *		Outside any session a statement on it is audited (as
 *		unregistered_access when the login role is no principal) and
 *		refused.  A role for which row security is not applied (superuser,
 *		BYPASSRLS) is let through outside a session, audited as
 *		privileged_access; inside a session nothing bypasses: a view or a
 *		SECURITY DEFINER function owned by such a role is refused, and so is
 *		a foreign-key cascade that writes a protected table unchecked (a
 *		key check, which writes nothing, is let through by columns.c).  The
 *		validation of a foreign key over a protected table reads every row
 *		as the role in effect: refused before it starts unless that role
 *		bypasses row security.
 *
 *		A principal's login may not LISTEN on agentauth_alerts (utility.c).
 *		Maintenance that reads a protected table's rows (an index built,
 *		ALTER TABLE's rewrites and validations, CLUSTER, VACUUM FULL,
 *		ANALYZE) by a role that bypasses row security is privileged_access
 *		too (utility.c).
 *
 *		Callers: the executor (columns.c), TRUNCATE, COPY and ALTER TABLE
 *		(ddl.c), the end of a run that a cascade wrote in (access.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#include "agentauth.h"

bool
aa_rls_bypassed(Oid relid, Oid checkAsUser)
{
	return check_enable_rls(relid, checkAsUser, true) != RLS_ENABLED;
}

/*
 * On a hot standby the records are forwarded to the primary (forward.c):
 * without agentauth.forward_conninfo there is nowhere to write them, and a
 * protected table fails closed.  With it, the statement runs under the
 * same checks, and its records fail it closed if they cannot be delivered.
 */
void
aa_check_standby(const char *relname)
{
	if (RecoveryInProgress() &&
		(aa_forward_conninfo == NULL || aa_forward_conninfo[0] == '\0'))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("protected table %s cannot be accessed on a hot standby", relname),
				 errdetail("No audit record can be written during recovery and agentauth.forward_conninfo is not set, so agentauth fails closed."),
				 errhint("Run the statement on the primary server, or set agentauth.forward_conninfo on this standby (see the README, \"Read replicas\").")));
}

static char *
client_json(void)
{
	StringInfoData buf;
	const char *addr = "local";
	const char *app = GetConfigOption("application_name", true, false);

	LOCAL_FCINFO(fcinfo, 0);
	Datum		inet;

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	inet = inet_client_addr(fcinfo);
	if (!fcinfo->isnull)
		addr = DatumGetCString(DirectFunctionCall1(inet_out, inet));

	initStringInfo(&buf);
	appendStringInfoString(&buf, "\"role\": ");
	escape_json(&buf, GetUserNameFromId(GetSessionUserId(), false));
	appendStringInfoString(&buf, ", \"current_user\": ");
	escape_json(&buf, GetUserNameFromId(GetUserId(), false));
	appendStringInfoString(&buf, ", \"client_addr\": ");
	escape_json(&buf, addr);
	appendStringInfoString(&buf, ", \"application_name\": ");
	escape_json(&buf, app ? app : "");
	return buf.data;
}

static bool
is_registered_principal(Oid roleid)
{
	AASpiState	spi;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	bool		found;

	values[0] = ObjectIdGetDatum(roleid);
	aa_spi_begin(&spi, false);
	if (SPI_execute_with_args("SELECT 1 FROM agentauth.principal "
							  " WHERE db_role OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.principal");
	found = SPI_processed > 0;
	aa_spi_end(&spi);
	return found;
}

/*
 * Is the login (session_user) a registered principal's?  Kept until the
 * login or the generation changes (a registration bumps it).  Not in a
 * database without the extension -- every other database of the cluster,
 * and agentauth.database before CREATE EXTENSION -- where there is no
 * principal (1.1 before: its query failed there, and with it every
 * statement of every role but the bootstrap superuser).
 */
bool
aa_login_is_principal(void)
{
	static bool known = false;
	static Oid	login = InvalidOid;
	static uint64 gen = 0;
	static bool is = false;
	Oid			now = GetSessionUserId();
	uint64		g = aa_generation();

	if (!known || now != login || g != gen)
	{
		is = aa_extension_ready() && is_registered_principal(now);
		login = now;
		gen = g;
		known = true;
	}
	return is;
}

/*
 * The role the statement runs as, when it is not the login role (SET ROLE,
 * a SECURITY DEFINER function): named in the refusal, which otherwise
 * names only the login.
 */
static void
append_role_in_effect(StringInfo buf)
{
	/* a foreign-key action runs as the table's owner: not the user's doing */
	if (GetUserId() != GetSessionUserId() && !InNoForceRLSOperation())
	{
		if (aa_role_bypasses_rls(GetUserId()))
			appendStringInfo(buf, " The statement runs as role \"%s\", which bypasses row security; a principal's login reads protected tables only in a session, whatever role it acts as.",
							 GetUserNameFromId(GetUserId(), false));
		else
			appendStringInfo(buf, " The statement runs as role \"%s\", which row security binds like any other (a table's owner included).",
							 GetUserNameFromId(GetUserId(), false));
	}
}

/*
 * A protected table touched outside any session: audited (as
 * unregistered_access when the login role is not a principal at all), then
 * refused.
 */
void
aa_refuse_outside_session(const char *relname, int ncols, const char **cols,
						  const char *action)
{
	bool		registered = aa_login_is_principal();
	StringInfoData detail;
	StringInfoData why;

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"reason\": \"no agentauth session\", %s}", client_json());
	aa_audit_statement(registered ? "denied" : "unregistered_access", "deny",
						  relname, action, ncols, cols, detail.data, false);
	initStringInfo(&why);
	if (registered)
		appendStringInfo(&why, "Table %s is protected; every statement on it needs an agentauth session.",
						 relname);
	else
		appendStringInfo(&why, "Table %s is protected, and role \"%s\" is not a registered agentauth principal.",
						 relname, GetUserNameFromId(GetSessionUserId(), false));
	append_role_in_effect(&why);
	if (registered)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no agentauth session"),
				 errdetail_internal("%s", why.data),
				 errhint("Call agentauth.begin_session() with a token, or agentauth.begin_human_session().")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("no agentauth session"),
			 errdetail_internal("%s", why.data),
			 errhint("An administrator registers agents with agentauth.register_agent().")));
}

/*
 * A role for which row security is not applied, outside a session.  Not
 * when the login is a principal's: it reads only in a session, whatever
 * role it acts as -- one that may SET ROLE to a role bypassing row
 * security (a group made for ETL, granted before or after it was
 * registered) read every row with no token, recorded as privileged access
 * (1.1).  Refused and recorded as any principal's read without a session.
 */
void
aa_audit_privileged(const char *relname, int ncols, const char **cols,
					const char *action)
{
	StringInfoData detail;
	Oid			uid = GetUserId();

	if (aa_login_is_principal())
		aa_refuse_outside_session(relname, ncols, cols, action);
	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"reason\": \"%s\", %s}",
					 superuser_arg(uid) ? "superuser" :
					 has_bypassrls_privilege(uid) ? "bypassrls" : "row security not applied",
					 client_json());
	aa_audit_statement("privileged_access", "permit", relname, action,
						  ncols, cols, detail.data, false);
	aa_audit_wait();
}

/*
 * Inside a session nothing bypasses row security: a view or a SECURITY
 * DEFINER function owned by such a role (as_role) is audited and refused.
 */
void
aa_refuse_bypass_in_session(const char *relname, const char *action,
							Oid as_role)
{
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"reason\": \"reached as a role that bypasses row-level security\", \"as_role\": ");
	escape_json(&detail, GetUserNameFromId(as_role, false));
	appendStringInfoChar(&detail, '}');
	aa_audit_statement("denied", "deny", relname, action, 0, NULL,
						  detail.data, false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("row security cannot be applied to table %s here", relname),
			 errdetail("The table is reached as role \"%s\", which bypasses row-level security, while this backend has an agentauth session.",
					   GetUserNameFromId(as_role, false)),
			 errhint("Views and SECURITY DEFINER functions over protected tables must belong to a role that does not bypass row-level security.")));
}

/*
 * COPY FROM into a protected table in a session: PostgreSQL cannot apply
 * row security to it, so it is refused -- and recorded, like any other
 * refused write of the session.
 */
void
aa_refuse_copy_in_session(const char *relname, int ncols, const char **cols)
{
	aa_audit_statement("denied", "deny", relname, "insert", ncols, cols,
						  "{\"reason\": \"COPY FROM cannot check rows one by one\"}", false);
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("COPY FROM into protected table %s is not supported in an agentauth session", relname),
			 errhint("Use INSERT, which checks each row.")));
}

/*
 * A foreign-key cascade of the statement wrote rows of a protected table
 * without the row check: audited, and the statement refused.
 */
void
aa_refuse_cascade(const char *relname, const char *action, uint64 rows)
{
	AARecord	rec;

	/* outside a session: as any statement on the table (unregistered_access) */
	if (aa_session == NULL)
		aa_refuse_outside_session(relname, 0, NULL, action);

	memset(&rec, 0, sizeof(rec));
	rec.event = "denied";
	rec.relation = relname;
	rec.action = action;
	rec.row_count = (int64) rows;
	rec.outcome = "deny";
	rec.detail = "{\"reason\": \"foreign key cascade\"}";
	aa_audit_emit(&rec, false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a foreign key action cannot %s rows of protected table %s",
					action, relname),
			 errdetail("A cascading action (CASCADE, SET NULL, SET DEFAULT) writes them without the row check."),
			 errhint("Delete or update the rows of the protected table first, in statements of their own, which are checked.")));
}

/*
 * Does this ALTER TABLE subcommand validate a foreign key of relid (ADD of
 * one not NOT VALID, VALIDATE CONSTRAINT of one)?  *parent: the table it
 * references (InvalidOid when its name does not resolve).
 */
static bool
validates_fk(Oid relid, AlterTableCmd *cmd, Oid *parent)
{
	*parent = InvalidOid;
	if (cmd->subtype == AT_AddConstraint && cmd->def != NULL &&
		IsA(cmd->def, Constraint) &&
		((Constraint *) cmd->def)->contype == CONSTR_FOREIGN &&
		!((Constraint *) cmd->def)->skip_validation)
	{
		*parent = RangeVarGetRelid(((Constraint *) cmd->def)->pktable, NoLock, true);
		return true;
	}
	if (cmd->subtype == AT_ValidateConstraint && cmd->name != NULL && OidIsValid(relid))
	{
		Oid			conid = get_relation_constraint_oid(relid, cmd->name, true);
		HeapTuple	tup;

		if (!OidIsValid(conid))
			return false;
		tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conid));
		if (!HeapTupleIsValid(tup))
			return false;
		if (((Form_pg_constraint) GETSTRUCT(tup))->contype == CONSTRAINT_FOREIGN)
			*parent = ((Form_pg_constraint) GETSTRUCT(tup))->confrelid;
		ReleaseSysCache(tup);
		return OidIsValid(*parent);
	}
	return false;
}

/*
 * ALTER TABLE ... ADD FOREIGN KEY (unless NOT VALID) and VALIDATE
 * CONSTRAINT of a foreign key read every row of the referencing table
 * against the referenced one, as the role in effect.  When either is
 * protected only a role that bypasses row security reads them all: for
 * anyone else -- the tables' owner included, which row security binds --
 * the check would see only the rows of the patients it may see (none
 * outside a session), so it is refused before it starts.  A superuser's
 * validation is recorded as privileged_access.  Called by ddl.c for each
 * subcommand of an ALTER TABLE on relid.
 */
void
aa_admit_fk_validation(Oid relid, AlterTableCmd *cmd)
{
	Oid			parent;
	const char *what;
	AAProtectedRel *prot;

	if (!validates_fk(relid, cmd, &parent))
		return;
	what = cmd->subtype == AT_AddConstraint ? "add a validated foreign key" :
		"validate a foreign key";

	if (superuser() || has_bypassrls_privilege(GetUserId()))
		return;
	prot = aa_protected_rel(relid);
	if (prot == NULL && OidIsValid(parent))
		prot = aa_protected_rel(parent);
	if (prot == NULL)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("cannot %s over protected table %s", what, prot->relname),
			 errdetail("The check reads every row as role \"%s\", which row security binds (a table's owner included): it would see only the rows of the patients that role may see.",
					   GetUserNameFromId(GetUserId(), false)),
			 errhint("Add the foreign key NOT VALID (every row written from then on is checked), or have a superuser add or validate it (recorded as privileged_access).")));
}

/*
 * LISTEN agentauth_alerts (utility.c, before every utility statement):
 * refused to a principal's login.  What the alerts tell is not for the
 * principals they are about: an alert of the `denied` rule follows a
 * statement in which rows were withheld, and so told an agent probing a
 * withheld patient's rows with conditions (which run before the row check
 * where an index answers them) whether any such row matched (1.1, found by
 * review).
 */
void
aa_admit_listen(Node *stmt)
{
	if (!IsA(stmt, ListenStmt) ||
		strcmp(((ListenStmt *) stmt)->conditionname, "agentauth_alerts") != 0 ||
		!aa_extension_ready() || !aa_login_is_principal())
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a principal's login may not listen on agentauth_alerts"),
			 errdetail("An alert follows a statement that was refused rows: it would tell the agent what rows it may not see contain."),
			 errhint("The security console listens as a role that is not a registered principal.")));
}

/* ------------------------------------------------------------------
 * Maintenance that reads every row
 * ------------------------------------------------------------------
 */

static Oid
named_relid(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

/*
 * Does this ALTER TABLE subcommand read or rewrite relid's rows?  A foreign
 * key's validation is recorded by aa_admit_fk_validation, for both tables.
 */
static bool
alter_reads_rows(Oid relid, AlterTableCmd *cmd)
{
	switch (cmd->subtype)
	{
		case AT_AddConstraint:	/* a CHECK validated, a unique index built */
			return !(cmd->def != NULL && IsA(cmd->def, Constraint) &&
					 ((Constraint *) cmd->def)->contype == CONSTR_FOREIGN);
		case AT_ValidateConstraint:
			{
				Oid			parent;

				return !validates_fk(relid, cmd, &parent);
			}
		case AT_AddColumn:		/* a default may rewrite every row */
		case AT_AlterColumnType:
		case AT_SetNotNull:
		case AT_AddIndex:
		case AT_AddIndexConstraint:
		case AT_SetAccessMethod:
			return true;
		default:
			return false;
	}
}

/*
 * The protected relations a utility statement reads every row of, by the
 * relation it names (an index's table for REINDEX INDEX).  Forms that name
 * none (REINDEX SCHEMA/DATABASE, CLUSTER and ANALYZE without a table)
 * are not counted: README.
 */
static List *
utility_reads(Node *stmt)
{
	List	   *rels = NIL;
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_IndexStmt:
			rels = list_make1_oid(named_relid(((IndexStmt *) stmt)->relation));
			break;
		case T_ReindexStmt:
			{
				ReindexStmt *r = (ReindexStmt *) stmt;
				Oid			relid = named_relid(r->relation);

				if (r->kind == REINDEX_OBJECT_INDEX && OidIsValid(relid))
					relid = IndexGetRelation(relid, true);
				if (r->kind == REINDEX_OBJECT_INDEX || r->kind == REINDEX_OBJECT_TABLE)
					rels = list_make1_oid(relid);
			}
			break;
		case T_ClusterStmt:
			rels = list_make1_oid(named_relid(((ClusterStmt *) stmt)->relation));
			break;
		case T_VacuumStmt:
			{
				VacuumStmt *v = (VacuumStmt *) stmt;
				bool		reads = !v->is_vacuumcmd;	/* ANALYZE */

				foreach(lc, v->options)
				{
					DefElem    *opt = lfirst(lc);

					if (strcmp(opt->defname, "full") == 0 ||
						strcmp(opt->defname, "analyze") == 0)
						reads |= defGetBoolean(opt);
				}
				if (reads)
					foreach(lc, v->rels)
						rels = lappend_oid(rels, named_relid(((VacuumRelation *) lfirst(lc))->relation));
			}
			break;
		case T_AlterTableStmt:
			{
				Oid			relid = named_relid(((AlterTableStmt *) stmt)->relation);

				foreach(lc, ((AlterTableStmt *) stmt)->cmds)
					if (alter_reads_rows(relid, lfirst(lc)))
					{
						rels = list_make1_oid(relid);
						break;
					}
			}
			break;
		default:
			break;
	}
	return rels;
}

/*
 * A utility statement that reads the rows of a protected table -- an index
 * built (CREATE INDEX, REINDEX, a constraint's), ALTER TABLE's rewrites and
 * validations, CLUSTER, VACUUM FULL, ANALYZE -- run by a role that row
 * security does not bind: recorded as privileged_access before it runs,
 * so a statement that fails is recorded too (1.1, found by review: none
 * was, and a failing one wrote other patients' values to the server log).
 * A role that row security binds gets no value from them: PostgreSQL
 * leaves the key out of its errors on such a table, and code that would
 * see whole rows cannot be attached (ddl.c).  Called by the utility hook.
 */
void
aa_admit_utility_reads(Node *stmt)
{
	Oid			uid = GetUserId();
	ListCell   *lc;
	bool		recorded = false;

	if (!IsTransactionState() || IsParallelWorker() || !aa_role_bypasses_rls(uid))
		return;
	foreach(lc, utility_reads(stmt))
	{
		Oid			relid = lfirst_oid(lc);
		AAProtectedRel *prot;
		StringInfoData detail;

		if (!OidIsValid(relid) || (prot = aa_protected_rel(relid)) == NULL)
			continue;
		initStringInfo(&detail);
		appendStringInfo(&detail, "{\"reason\": \"%s\", \"command\": ",
						 superuser_arg(uid) ? "superuser" : "bypassrls");
		escape_json(&detail, GetCommandTagName(CreateCommandTag(stmt)));
		appendStringInfo(&detail, ", %s}", client_json());
		aa_audit_statement("privileged_access", "permit", prot->relname, "read",
						   0, NULL, detail.data, false);
		recorded = true;
	}
	if (recorded)
		aa_audit_wait();
}
