/*-------------------------------------------------------------------------
 *
 * columns.c
 *		Executor hooks for protected tables: minimum necessary by column,
 *		and the per-statement accounting that becomes the audit records.
 *
 *		ExecutorStart: for every protected relation in the range table,
 *		every column the statement references -- selected anywhere (target
 *		list, WHERE, JOIN, ORDER BY, GROUP BY, window, RETURNING ...),
 *		inserted or updated; a whole-row reference is every column; DELETE
 *		removes every column -- must be of a class in the session's scopes
 *		for that action.  The patient column needs a scope for some class of
 *		the table, non_phi columns none; an unclassified column is never in
 *		scope.  Otherwise the statement fails before it reads a row.
 *
 *		The same pass builds the statement's access context: per protected
 *		relation the columns and classes touched per action, and a hash of
 *		patients into which agentauth._row_check() counts rows allowed and
 *		withheld.  At the end of every ExecutorRun (a statement, or each
 *		FETCH of a cursor) and at ExecutorEnd the counts become one `access`
 *		record per table x patient x action and one `denied` record per
 *		table x withheld patient x action; then aa_audit_wait().  If the
 *		statement fails, what was counted is emitted when its executor
 *		memory goes away (no wait: the error already reaches the client).
 *
 *		A role for which row security is not applied (superuser,
 *		BYPASSRLS) is let through outside a session, audited as
 *		privileged_access; inside a session nothing bypasses: a view or a
 *		SECURITY DEFINER function owned by such a role is refused.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "nodes/parsenodes.h"
#include "tcop/pquery.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "agentauth.h"


static ExecutorStart_hook_type prev_start = NULL;
static ExecutorRun_hook_type prev_run = NULL;
static ExecutorFinish_hook_type prev_finish = NULL;
static ExecutorEnd_hook_type prev_end = NULL;

static AAQueryAccess *live_queries = NULL;	/* newest first */
static List *running = NIL;		/* QueryDesc *, innermost first */

static const char *const idx_name[AA_NIDX] = {"read", "insert", "update", "delete"};

/* ------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------
 */

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

bool
aa_rls_bypassed(Oid relid, Oid checkAsUser)
{
	return check_enable_rls(relid, checkAsUser, true) != RLS_ENABLED;
}

void
aa_check_standby(const char *relname)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("protected table %s cannot be accessed on a hot standby", relname),
				 errdetail("No audit record can be written during recovery, so agentauth fails closed."),
				 errhint("Run the statement on the primary server.")));
}

static bool
is_registered_principal(Oid roleid)
{
	Oid			save_userid;
	int			save_sec;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	bool		found;
	int			nest;

	values[0] = ObjectIdGetDatum(roleid);
	GetUserIdAndSecContext(&save_userid, &save_sec);
	nest = aa_pin_search_path();
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	if (SPI_execute_with_args("SELECT 1 FROM agentauth.principal "
							  " WHERE db_role OPERATOR(pg_catalog.=) $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read agentauth.principal");
	found = SPI_processed > 0;
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	aa_unpin_search_path(nest);
	return found;
}

/*
 * One statement-level record (no patient, no row count): the refusals and
 * privileged accesses that are decided before any row is read.
 */
static void
emit_statement_record(const char *event, const char *outcome,
					  const char *relname, const char *action,
					  int ncols, const char **cols, const char *detail)
{
	AARecord	rec;

	memset(&rec, 0, sizeof(rec));
	rec.event = event;
	rec.outcome = outcome;
	rec.relation = relname;
	rec.action = action;
	rec.ncolumns = ncols;
	rec.columns = cols;
	rec.row_count = -1;
	rec.detail = detail;
	aa_audit_emit(&rec, false);
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
	bool		registered = is_registered_principal(GetSessionUserId());
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"reason\": \"no agentauth session\", %s}", client_json());
	emit_statement_record(registered ? "denied" : "unregistered_access", "deny",
						  relname, action, ncols, cols, detail.data);
	if (registered)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no agentauth session"),
				 errdetail("Table %s is protected; every statement on it needs an agentauth session.", relname),
				 errhint("Call agentauth.begin_session() with a token, or agentauth.begin_human_session().")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("no agentauth session"),
			 errdetail("Table %s is protected, and role \"%s\" is not a registered agentauth principal.",
					   relname, GetUserNameFromId(GetSessionUserId(), false)),
			 errhint("An administrator registers agents with agentauth.register_agent().")));
}

void
aa_audit_privileged(const char *relname, int ncols, const char **cols,
					const char *action)
{
	StringInfoData detail;
	Oid			uid = GetUserId();

	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"reason\": \"%s\", %s}",
					 superuser_arg(uid) ? "superuser" :
					 has_bypassrls_privilege(uid) ? "bypassrls" : "row security not applied",
					 client_json());
	emit_statement_record("privileged_access", "permit", relname, action,
						  ncols, cols, detail.data);
	aa_audit_wait();
}

/* ------------------------------------------------------------------
 * Column scope
 * ------------------------------------------------------------------
 */

typedef struct RteCols
{
	Oid			checkAsUser;
	AclMode		required;
	Bitmapset  *cols[AA_NIDX];
} RteCols;

static void
rte_cols(PlannedStmt *ps, RangeTblEntry *rte, RteCols *rc)
{
	memset(rc, 0, sizeof(*rc));
#if PG_VERSION_NUM >= 160000
	if (rte->perminfoindex != 0)
	{
		RTEPermissionInfo *p = list_nth_node(RTEPermissionInfo, ps->permInfos,
											 rte->perminfoindex - 1);

		rc->checkAsUser = p->checkAsUser;
		rc->required = p->requiredPerms;
		rc->cols[AA_IDX_READ] = p->selectedCols;
		rc->cols[AA_IDX_INSERT] = p->insertedCols;
		rc->cols[AA_IDX_UPDATE] = p->updatedCols;
	}
#else
	rc->checkAsUser = rte->checkAsUser;
	rc->required = rte->requiredPerms;
	rc->cols[AA_IDX_READ] = rte->selectedCols;
	rc->cols[AA_IDX_INSERT] = rte->insertedCols;
	rc->cols[AA_IDX_UPDATE] = rte->updatedCols;
#endif
}

/* Accumulates one relation's use across all of its range-table entries. */
typedef struct RelUse
{
	Oid			relid;
	AAProtectedRel *prot;		/* copy, in the statement's memory */
	bool		used[AA_NIDX];
	bool	   *att[AA_NIDX];	/* [1..natts]: column referenced */
	bool		bypass;
	bool		checked;		/* at least one entry under row security */
} RelUse;

static AAProtectedRel *
copy_prot(AAProtectedRel *src)
{
	AAProtectedRel *r = palloc(sizeof(AAProtectedRel));

	*r = *src;
	r->relname = pstrdup(src->relname);
	r->patient_column = src->patient_column ? pstrdup(src->patient_column) : NULL;
	r->att_name = palloc0(sizeof(char *) * (src->natts + 1));
	r->att_class = palloc0(sizeof(char *) * (src->natts + 1));
	for (int i = 1; i <= src->natts; i++)
	{
		r->att_name[i] = src->att_name[i] ? pstrdup(src->att_name[i]) : NULL;
		r->att_class[i] = src->att_class[i] ? pstrdup(src->att_class[i]) : NULL;
	}
	r->classes = palloc0(sizeof(char *) * (src->nclasses + 1));
	for (int i = 0; i < src->nclasses; i++)
		r->classes[i] = pstrdup(src->classes[i]);
	return r;
}

static void
mark_cols(RelUse *u, int idx, Bitmapset *cols)
{
	int			k = -1;

	while ((k = bms_next_member(cols, k)) >= 0)
	{
		AttrNumber	attno = k + FirstLowInvalidHeapAttributeNumber;

		if (attno == InvalidAttrNumber)
		{
			/* whole-row reference: every column */
			for (int i = 1; i <= u->prot->natts; i++)
				if (u->prot->att_name[i])
					u->att[idx][i] = true;
		}
		else if (attno > 0)
		{
			if (attno > u->prot->natts)
			{
				/* a column added after we cached: reload gives it no class */
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to columns of protected table %s",
								u->prot->relname),
						 errdetail("Column %d is not classified.", attno)));
			}
			u->att[idx][attno] = true;
		}
		/* system columns reveal no PHI */
	}
	u->used[idx] = true;
}

static bool
scope_allows(const char *data_class, int idx)
{
	return aa_session_scope_allows(data_class, idx != AA_IDX_READ);
}

static bool
any_class_in_scope(AAProtectedRel *prot, int idx)
{
	for (int i = 0; i < prot->nclasses; i++)
		if (scope_allows(prot->classes[i], idx))
			return true;
	return false;
}

/* Refuse the statement when a referenced column is out of scope. */
static void
check_scope(RelUse *u)
{
	StringInfoData out;
	List	   *bad_cols = NIL;
	List	   *bad_classes = NIL;
	bool		write = false;

	initStringInfo(&out);
	for (int idx = 0; idx < AA_NIDX; idx++)
	{
		if (!u->used[idx])
			continue;
		/* a write needs a write scope for some class of the table */
		if (idx != AA_IDX_READ && !any_class_in_scope(u->prot, idx))
		{
			if (out.len > 0)
				appendStringInfoString(&out, ", ");
			appendStringInfoString(&out, "no class of the table in write scope");
			write = true;
		}
		for (int i = 1; i <= u->prot->natts; i++)
		{
			const char *cls = u->prot->att_class[i];
			const char *why = NULL;

			if (!u->att[idx][i])
				continue;
			if (i == u->prot->patient_attno)
			{
				if (!any_class_in_scope(u->prot, idx))
					why = "patient column; no class of the table in scope";
			}
			else if (cls == NULL)
				why = "unclassified";
			else if (strcmp(cls, AA_NON_PHI) == 0)
				continue;
			else if (!scope_allows(cls, idx))
				why = psprintf("%s:%s", cls, idx == AA_IDX_READ ? "read" : "write");
			if (why == NULL)
				continue;
			if (out.len > 0)
				appendStringInfoString(&out, ", ");
			appendStringInfo(&out, "%s (%s)", quote_identifier(u->prot->att_name[i]), why);
			bad_cols = lappend(bad_cols, u->prot->att_name[i]);
			if (cls)
			{
				bool		dup = false;
				ListCell   *lc;

				/* C strings, not Nodes: list_member() would not do */
				foreach(lc, bad_classes)
					if (strcmp(lfirst(lc), cls) == 0)
						dup = true;
				if (!dup)
					bad_classes = lappend(bad_classes, (void *) cls);
			}
			if (idx != AA_IDX_READ)
				write = true;
		}
	}
	if (out.len == 0)
		return;

	{
		AARecord	rec;
		const char **cols = palloc(sizeof(char *) * list_length(bad_cols));
		const char **classes = palloc(sizeof(char *) * (list_length(bad_classes) + 1));
		StringInfoData detail;
		int			n = 0;
		ListCell   *lc;

		foreach(lc, bad_cols)
			cols[n++] = lfirst(lc);
		n = 0;
		foreach(lc, bad_classes)
			classes[n++] = lfirst(lc);
		initStringInfo(&detail);
		appendStringInfoString(&detail, "{\"reason\": \"columns out of scope\", \"out_of_scope\": ");
		escape_json(&detail, out.data);
		appendStringInfoChar(&detail, '}');
		memset(&rec, 0, sizeof(rec));
		rec.event = "denied";
		rec.relation = u->prot->relname;
		rec.ncolumns = list_length(bad_cols);
		rec.columns = cols;
		rec.nclasses = n;
		rec.classes = classes;
		rec.action = write ? "write" : "read";
		rec.row_count = -1;
		rec.outcome = "deny";
		rec.detail = detail.data;
		aa_audit_emit(&rec, false);
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s columns of protected table %s",
					write ? "write" : "read", u->prot->relname),
			 errdetail("Out of the session's scopes: %s.", out.data),
			 errhint("Name only the columns the task needs; their classes must be in the token's scopes.")));
}

/* Build the relation's access context from its accumulated use. */
static AARelAccess *
make_rel_access(RelUse *u, AAQueryAccess *q)
{
	AARelAccess *ra = palloc0(sizeof(AARelAccess));
	AAProtectedRel *prot = u->prot;

	ra->relid = u->relid;
	ra->relname = prot->relname;
	ra->approve_mask = prot->approve_mask;
	ra->query = q;
	for (int idx = 0; idx < AA_NIDX; idx++)
	{
		ra->cols[idx] = palloc0(sizeof(char *) * (prot->natts + 1));
		ra->classes[idx] = palloc0(sizeof(char *) * (prot->natts + 1));
		ra->anyof[idx] = palloc0(sizeof(char *) * (prot->nclasses + 1));
		for (int i = 1; i <= prot->natts; i++)
		{
			const char *cls = prot->att_class[i];
			bool		seen = false;

			if (!u->att[idx][i])
				continue;
			ra->cols[idx][ra->ncols[idx]++] = prot->att_name[i];
			if (i == prot->patient_attno || cls == NULL ||
				strcmp(cls, AA_NON_PHI) == 0)
				continue;
			for (int j = 0; j < ra->nclasses[idx]; j++)
				if (strcmp(ra->classes[idx][j], cls) == 0)
					seen = true;
			if (!seen)
				ra->classes[idx][ra->nclasses[idx]++] = (char *) cls;
		}
		for (int j = 0; j < prot->nclasses; j++)
			if (scope_allows(prot->classes[j], idx))
				ra->anyof[idx][ra->nanyof[idx]++] = prot->classes[j];
	}
	return ra;
}

static const char *
statement_action(AclMode required)
{
	if (required & ACL_DELETE)
		return "delete";
	if (required & ACL_UPDATE)
		return "update";
	if (required & ACL_INSERT)
		return "insert";
	return "read";
}

/*
 * Check the statement and build its access context in cxt; returns the
 * list of AARelAccess (NIL when no protected relation is checked).
 */
static List *
check_statement(QueryDesc *qd, int eflags, AAQueryAccess *q)
{
	PlannedStmt *ps = qd->plannedstmt;
	List	   *uses = NIL;
	List	   *result = NIL;
	ListCell   *lc;
	bool		explain_only = (eflags & EXEC_FLAG_EXPLAIN_ONLY) != 0;

	if (ps->rtable == NIL)
		return NIL;

	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		AAProtectedRel *prot;
		RelUse	   *u = NULL;
		RteCols		rc;
		ListCell   *lc2;
		bool		bypass;

		if (rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_RELATION)
			continue;
		prot = aa_protected_rel(rte->relid);
		if (prot == NULL)
			continue;
		rte_cols(ps, rte, &rc);
		if (rc.required == 0)
			continue;			/* no permission check of its own (rule placeholders) */

		foreach(lc2, uses)
		{
			if (((RelUse *) lfirst(lc2))->relid == rte->relid)
				u = lfirst(lc2);
		}
		if (u == NULL)
		{
			u = palloc0(sizeof(RelUse));
			u->relid = rte->relid;
			u->prot = copy_prot(prot);
			for (int idx = 0; idx < AA_NIDX; idx++)
				u->att[idx] = palloc0(sizeof(bool) * (u->prot->natts + 1));
			uses = lappend(uses, u);
		}
		aa_check_standby(u->prot->relname);

		if (rc.required & ACL_SELECT)
			mark_cols(u, AA_IDX_READ, rc.cols[AA_IDX_READ]);
		if (rc.required & ACL_INSERT)
			mark_cols(u, AA_IDX_INSERT, rc.cols[AA_IDX_INSERT]);
		if (rc.required & ACL_UPDATE)
			mark_cols(u, AA_IDX_UPDATE, rc.cols[AA_IDX_UPDATE]);
		if (rc.required & ACL_DELETE)
		{
			/* a deleted row loses every column */
			for (int i = 1; i <= u->prot->natts; i++)
				if (u->prot->att_name[i])
					u->att[AA_IDX_DELETE][i] = true;
			u->used[AA_IDX_DELETE] = true;
		}
		/* the read of an UPDATE/DELETE target decides its visibility */
		if (rc.required & (ACL_UPDATE | ACL_DELETE))
			u->used[AA_IDX_READ] = true;

		bypass = aa_rls_bypassed(rte->relid, rc.checkAsUser);
		if (bypass)
		{
			Oid			uid = OidIsValid(rc.checkAsUser) ? rc.checkAsUser : GetUserId();

			/*
			 * Referential-integrity queries run as the owner without RLS.
			 * A key check reads no more than the constraint's error says;
			 * a cascading action (ON DELETE / ON UPDATE CASCADE, SET NULL,
			 * SET DEFAULT) writes rows with no row check: refused at its
			 * first written row (aa_executor_run), unless a role that
			 * bypasses row security anyway runs it outside a session
			 * (audited as privileged access below).
			 */
			if (InNoForceRLSOperation())
			{
				Oid			outer = GetOuterUserId();

				if (!(rc.required & (ACL_INSERT | ACL_UPDATE | ACL_DELETE)))
					continue;
				if (aa_session != NULL ||
					!(superuser_arg(outer) || has_bypassrls_privilege(outer)))
				{
					q->cascade_rel = u->prot->relname;
					q->cascade_action = statement_action(rc.required);
					continue;
				}
			}
			/* row security switched off behind our back: fail closed */
			else if (!superuser_arg(uid) && !has_bypassrls_privilege(uid))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("row level security is not in force on protected table %s",
								u->prot->relname),
						 errhint("An administrator runs agentauth.protect_table() on it again, which enables and forces row level security.")));
			if (aa_session != NULL)
			{
				StringInfoData detail;

				initStringInfo(&detail);
				appendStringInfoString(&detail, "{\"reason\": \"reached as a role that bypasses row-level security\", \"as_role\": ");
				escape_json(&detail, GetUserNameFromId(OidIsValid(rc.checkAsUser) ?
													   rc.checkAsUser : GetUserId(), false));
				appendStringInfoChar(&detail, '}');
				emit_statement_record("denied", "deny", u->prot->relname,
									  statement_action(rc.required), 0, NULL,
									  detail.data);
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("row security cannot be applied to table %s here",
								u->prot->relname),
						 errdetail("The table is reached as role \"%s\", which bypasses row-level security, while this backend has an agentauth session.",
								   GetUserNameFromId(OidIsValid(rc.checkAsUser) ?
													 rc.checkAsUser : GetUserId(), false)),
						 errhint("Views and SECURITY DEFINER functions over protected tables must belong to a role that does not bypass row-level security.")));
			}
			if (!explain_only)
			{
				const char **cols = palloc(sizeof(char *) * (u->prot->natts + 1));
				int			n = 0;

				for (int i = 1; i <= u->prot->natts; i++)
				{
					bool		any = false;

					for (int idx = 0; idx < AA_NIDX; idx++)
						any |= u->att[idx][i];
					if (any)
						cols[n++] = u->prot->att_name[i];
				}
				aa_audit_privileged(u->prot->relname, n, cols,
									statement_action(rc.required));
			}
			u->bypass = true;
			continue;
		}
		u->checked = true;
	}

	foreach(lc, uses)
	{
		RelUse	   *u = lfirst(lc);

		if (!u->checked)
			continue;
		if (explain_only)
			continue;
		if (aa_session == NULL)
		{
			const char **cols = palloc(sizeof(char *) * (u->prot->natts + 1));
			int			n = 0;
			const char *action = "read";

			for (int i = 1; i <= u->prot->natts; i++)
			{
				bool		any = false;

				for (int idx = 0; idx < AA_NIDX; idx++)
					any |= u->att[idx][i];
				if (any)
					cols[n++] = u->prot->att_name[i];
			}
			for (int idx = AA_NIDX - 1; idx > 0; idx--)
				if (u->used[idx])
				{
					action = idx_name[idx];
					break;
				}
			aa_refuse_outside_session(u->prot->relname, n, cols, action);
		}
		aa_session_check();
		/* the row check refuses the rows of any other session */
		memcpy(&q->session_id, &aa_session->id, sizeof(pg_uuid_t));

		/*
		 * A WITH HOLD cursor is read to its end at COMMIT and fetched from
		 * a copy afterwards: its rows would still reach the client after
		 * the token was revoked or the consent withdrawn (SPEC 4.4).
		 */
		if (ActivePortal != NULL && ActivePortal->status == PORTAL_DEFINED &&
			(ActivePortal->cursorOptions & CURSOR_OPT_HOLD))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot declare a WITH HOLD cursor over protected table %s",
							u->prot->relname),
					 errdetail("Its rows would be kept after the transaction, beyond a revocation or a consent withdrawal."),
					 errhint("Declare the cursor without WITH HOLD inside a transaction: every FETCH is checked.")));
		check_scope(u);
		result = lappend(result, make_rel_access(u, q));
	}
	return result;
}

/* ------------------------------------------------------------------
 * Access contexts and records
 * ------------------------------------------------------------------
 */

static void
patient_table_grow(AARelAccess *ra)
{
	uint32		nslots = ra->nslots ? ra->nslots * 2 : 64;
	void	   *raw = MemoryContextAlloc(ra->query->cxt,
										 sizeof(AAPatientAccess) * nslots + 64);
	AAPatientAccess *slots = (AAPatientAccess *) TYPEALIGN(64, raw);

	for (uint32 i = 0; i < nslots; i++)
		slots[i].len = -1;
	for (uint32 i = 0; i < ra->nslots; i++)
	{
		AAPatientAccess *old = &ra->slots[i];
		uint32		k;

		if (old->len < 0)
			continue;
		for (k = old->hash & (nslots - 1); slots[k].len >= 0; k = (k + 1) & (nslots - 1))
			;
		slots[k] = *old;
		if (old->len < AA_SHORT_KEY)
			slots[k].patient = slots[k].key;
	}
	if (ra->slots_raw)
		pfree(ra->slots_raw);
	ra->slots_raw = raw;
	ra->slots = slots;
	ra->nslots = nslots;
	ra->last = NULL;
}

/*
 * The statement's entry for a patient (created on first sight).  The row
 * check calls this for every row: the previous row's patient first, then
 * a probe of an open-addressing table keyed by the bytes of the value.
 */
AAPatientAccess *
aa_access_patient(AARelAccess *ra, const char *patient, int len)
{
	AAPatientAccess *pa = ra->last;
	uint32		hash;
	uint32		k;

	ra->any_counted = true;
	if (pa != NULL && ra->last_len == len &&
		memcmp(ra->last_key, patient, len) == 0)
		return pa;

	if (ra->npatients * 2 >= ra->nslots)
		patient_table_grow(ra);
	hash = hash_bytes((const unsigned char *) patient, len);
	for (k = hash & (ra->nslots - 1);; k = (k + 1) & (ra->nslots - 1))
	{
		pa = &ra->slots[k];
		if (pa->len < 0)
			break;
		if (pa->hash == hash && pa->len == len &&
			memcmp(len < AA_SHORT_KEY ? pa->key : pa->patient, patient, len) == 0)
			goto found;
	}

	/*
	 * A patient id is at most AA_MAX_NAME_LEN characters, as everywhere
	 * else (tokens, consent).  A longer one would go into the audit log's
	 * patient index, which cannot hold it: the writer could then never
	 * commit its batch, and every PHI statement of every session would
	 * fail closed.  Refuse the row instead (the value is not echoed).
	 */
	if (len > AA_MAX_NAME_LEN &&
		pg_mbstrlen_with_len(patient, len) > AA_MAX_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("patient id of a row of protected table %s is too long",
						ra->relname),
				 errdetail("It has %d characters; the limit is %d.",
						   pg_mbstrlen_with_len(patient, len), AA_MAX_NAME_LEN)));

	/* a new patient in the empty slot pa */
	memset(pa, 0, sizeof(AAPatientAccess));
	pa->hash = hash;
	pa->len = len;
	if (len < AA_SHORT_KEY)
		pa->patient = pa->key;
	else
		pa->patient = MemoryContextAlloc(ra->query->cxt, len + 1);
	memcpy(pa->patient, patient, len);
	pa->patient[len] = '\0';
	for (int i = 0; i < AA_NIDX; i++)
		pa->decided[i] = -1;
	ra->npatients++;
found:
	ra->last = pa;
	if (len <= (int) sizeof(ra->last_key))
	{
		memcpy(ra->last_key, patient, len);
		ra->last_len = len;
	}
	else
		ra->last_len = -1;
	return pa;
}

static AAQueryAccess *
find_query(QueryDesc *qd)
{
	for (AAQueryAccess *q = live_queries; q != NULL; q = q->next)
		if (q->qd == qd)
			return q;
	return NULL;
}

static AARelAccess *
rel_in_query(AAQueryAccess *q, Oid relid)
{
	ListCell   *lc;

	foreach(lc, q->rels)
	{
		AARelAccess *ra = lfirst(lc);

		if (ra->relid == relid)
			return ra;
	}
	return NULL;
}

/*
 * The access context of the running statement for this relation (the
 * innermost running query first, then any live one, newest first).
 */
AARelAccess *
aa_access_for(Oid relid)
{
	AAQueryAccess *q;
	AARelAccess *ra;

	if (running != NIL)
	{
		q = find_query((QueryDesc *) linitial(running));
		if (q && (ra = rel_in_query(q, relid)) != NULL)
			return ra;
	}
	for (q = live_queries; q != NULL; q = q->next)
		if ((ra = rel_in_query(q, relid)) != NULL)
			return ra;
	return NULL;
}

static char *
with_approval(const char *authority, const char *approval)
{
	StringInfoData buf;
	int			len;

	if (approval == NULL)
		return (char *) authority;
	initStringInfo(&buf);
	len = authority ? strlen(authority) : 0;
	if (len >= 2 && authority[len - 1] == '}')
	{
		appendBinaryStringInfo(&buf, authority, len - 1);
		if (len > 2)
			appendStringInfoString(&buf, ", ");
	}
	else
		appendStringInfoChar(&buf, '{');
	appendStringInfoString(&buf, "\"approval\": ");
	escape_json(&buf, approval);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

static int
cmp_patient(const void *a, const void *b)
{
	return strcmp((*(AAPatientAccess *const *) a)->patient,
				  (*(AAPatientAccess *const *) b)->patient);
}

/* Emit the counted records of one query; returns whether any were. */
static bool
flush_query(AAQueryAccess *q)
{
	ListCell   *lc;
	bool		emitted = false;

	foreach(lc, q->rels)
	{
		AARelAccess *ra = lfirst(lc);
		AAPatientAccess *pa;

		AAPatientAccess **sorted;
		long		n = 0;

		if (!ra->any_counted)
			continue;
		ra->any_counted = false;
		/* records in patient order: the same statement, the same log */
		sorted = palloc(sizeof(AAPatientAccess *) * (ra->npatients + 1));
		for (uint32 i = 0; i < ra->nslots; i++)
			if (ra->slots[i].len >= 0)
				sorted[n++] = &ra->slots[i];
		qsort(sorted, n, sizeof(AAPatientAccess *), cmp_patient);
		for (long k = 0; k < n; k++)
		{
			pa = sorted[k];
			for (int idx = 0; idx < AA_NIDX; idx++)
			{
				int64		allowed = pa->allowed[idx];
				AARecord	rec;

				if (idx == AA_IDX_UPDATE && pa->written_new > allowed)
					allowed = pa->written_new;
				memset(&rec, 0, sizeof(rec));
				rec.patient = pa->patient;
				rec.relation = ra->relname;
				rec.ncolumns = ra->ncols[idx];
				rec.columns = (const char **) ra->cols[idx];
				if (ra->nclasses[idx] > 0)
				{
					rec.nclasses = ra->nclasses[idx];
					rec.classes = (const char **) ra->classes[idx];
				}
				else
				{
					rec.nclasses = 0;
					rec.classes = (const char **) ra->classes[idx];
				}
				rec.action = idx_name[idx];
				if (allowed > 0)
				{
					rec.event = "access";
					rec.row_count = allowed;
					rec.outcome = "permit";
					rec.authority = with_approval(pa->authority[idx], pa->approval[idx]);
					if (pa->btg[idx])
						rec.purpose = "BTG";
					aa_audit_emit(&rec, false);
					emitted = true;
				}
				if (pa->withheld[idx] > 0)
				{
					rec.event = "denied";
					rec.row_count = pa->withheld[idx];
					rec.outcome = "deny";
					rec.purpose = NULL;
					rec.authority = pa->authority[idx];
					aa_audit_emit(&rec, false);
					emitted = true;
				}
				pa->allowed[idx] = 0;
				pa->withheld[idx] = 0;
			}
			pa->written_new = 0;
		}
		pfree(sorted);
	}
	return emitted;
}

static void
unregister_query(AAQueryAccess *q)
{
	AAQueryAccess **pp;

	if (!q->live)
		return;
	for (pp = &live_queries; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q)
		{
			*pp = q->next;
			break;
		}
	q->live = false;
}

/*
 * The statement's executor memory is going away.  After an error, emit
 * what was counted: a reader's error or rollback does not erase its
 * records.
 */
static void
query_memory_gone(void *arg)
{
	AAQueryAccess *q = (AAQueryAccess *) arg;

	unregister_query(q);
	if (q->done)
		return;
	q->done = true;
	/* non-transactional records reach the queue whatever the abort */
	flush_query(q);
}

/* ------------------------------------------------------------------
 * Executor hooks
 * ------------------------------------------------------------------
 */

static void
aa_executor_start(QueryDesc *qd, int eflags)
{
	AAQueryAccess *q = NULL;
	MemoryContext cxt = NULL;

	if (!IsParallelWorker() && qd->plannedstmt->rtable != NIL &&
		IsTransactionState())
	{
		MemoryContext oldcxt;
		List	   *rels;

		cxt = AllocSetContextCreate(CurrentMemoryContext, "agentauth statement access",
									ALLOCSET_SMALL_SIZES);
		oldcxt = MemoryContextSwitchTo(cxt);
		q = palloc0(sizeof(AAQueryAccess));
		q->cxt = cxt;
		rels = check_statement(qd, eflags, q);
		MemoryContextSwitchTo(oldcxt);
		if (rels == NIL && q->cascade_rel == NULL)
		{
			MemoryContextDelete(cxt);
			q = NULL;
		}
		else
			q->rels = rels;
	}

	if (prev_start)
		prev_start(qd, eflags);
	else
		standard_ExecutorStart(qd, eflags);

	if (q != NULL)
	{
		MemoryContextSetParent(cxt, qd->estate->es_query_cxt);
		q->qd = qd;
		q->cb.func = query_memory_gone;
		q->cb.arg = q;
		MemoryContextRegisterResetCallback(cxt, &q->cb);
		q->next = live_queries;
		live_queries = q;
		q->live = true;
	}
}

/* A foreign-key cascade wrote rows of a protected table: undo it all. */
static void
refuse_cascade(AAQueryAccess *q, uint64 rows)
{
	AARecord	rec;

	/* outside a session: as any statement on the table (unregistered_access) */
	if (aa_session == NULL)
		aa_refuse_outside_session(q->cascade_rel, 0, NULL, q->cascade_action);

	memset(&rec, 0, sizeof(rec));
	rec.event = "denied";
	rec.relation = q->cascade_rel;
	rec.action = q->cascade_action;
	rec.row_count = (int64) rows;
	rec.outcome = "deny";
	rec.detail = "{\"reason\": \"foreign key cascade\"}";
	aa_audit_emit(&rec, false);
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("a foreign key action cannot %s rows of protected table %s",
					q->cascade_action, q->cascade_rel),
			 errdetail("A cascading action (CASCADE, SET NULL, SET DEFAULT) writes them without the row check."),
			 errhint("Delete or update the rows of the protected table first, in statements of their own, which are checked.")));
}

static void
push_running(QueryDesc *qd)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(TopMemoryContext);

	running = lcons(qd, running);
	MemoryContextSwitchTo(oldcxt);
}

static void
pop_running(void)
{
	running = list_delete_first(running);
}

static void
aa_executor_run(QueryDesc *qd, ScanDirection direction, uint64 count,
				bool execute_once)
{
	AAQueryAccess *q;

	push_running(qd);
	PG_TRY();
	{
		if (prev_run)
			prev_run(qd, direction, count, execute_once);
		else
			standard_ExecutorRun(qd, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		pop_running();
	}
	PG_END_TRY();

	q = find_query(qd);
	if (q != NULL && q->cascade_rel != NULL && qd->estate->es_processed > 0)
		refuse_cascade(q, qd->estate->es_processed);
	if (q != NULL && flush_query(q))
		aa_audit_wait();
}

static void
aa_executor_finish(QueryDesc *qd)
{
	push_running(qd);
	PG_TRY();
	{
		if (prev_finish)
			prev_finish(qd);
		else
			standard_ExecutorFinish(qd);
	}
	PG_FINALLY();
	{
		pop_running();
	}
	PG_END_TRY();
}

static void
aa_executor_end(QueryDesc *qd)
{
	AAQueryAccess *q = find_query(qd);

	if (q != NULL)
	{
		bool		emitted = flush_query(q);

		q->done = true;
		unregister_query(q);
		if (emitted)
			aa_audit_wait();
	}
	if (prev_end)
		prev_end(qd);
	else
		standard_ExecutorEnd(qd);
}

/* The transaction ended: nothing of its statements is running any more. */
static void
columns_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_PREPARE)
	{
		if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		{
			list_free(running);
			running = NIL;
		}
	}
}

void
aa_columns_init(void)
{
	prev_start = ExecutorStart_hook;
	ExecutorStart_hook = aa_executor_start;
	prev_run = ExecutorRun_hook;
	ExecutorRun_hook = aa_executor_run;
	prev_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = aa_executor_finish;
	prev_end = ExecutorEnd_hook;
	ExecutorEnd_hook = aa_executor_end;
	RegisterXactCallback(columns_xact_callback, NULL);
}
