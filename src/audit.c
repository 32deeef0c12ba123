/*-------------------------------------------------------------------------
 *
 * audit.c
 *		The one entry point for audit records: aa_audit_emit().
 *
 *		Foundation version: inserts into agentauth.audit_log directly, in the
 *		caller's transaction.  The audit-log work replaces the inside (queue,
 *		writer, chain) and keeps this interface.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "agentauth.h"

void
aa_audit_init(void)
{
}

Size
aa_audit_shmem_size(void)
{
	return 0;
}

/* called with AddinShmemInitLock held */
void
aa_audit_shmem_startup(void)
{
}

void
aa_audit_wait(void)
{
}

static void
append_literal(StringInfo buf, const char *s)
{
	if (s == NULL)
		appendStringInfoString(buf, "NULL");
	else
		appendStringInfoString(buf, quote_literal_cstr(s));
}

static void
append_uuid(StringInfo buf, const pg_uuid_t *u)
{
	if (u == NULL)
		appendStringInfoString(buf, "NULL");
	else
		appendStringInfo(buf, "'%s'::uuid",
						 DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(u))));
}

static void
append_array(StringInfo buf, int n, const char **items)
{
	if (items == NULL)
	{
		appendStringInfoString(buf, "NULL");
		return;
	}
	appendStringInfoString(buf, "ARRAY[");
	for (int i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoChar(buf, ',');
		append_literal(buf, items[i]);
	}
	appendStringInfoString(buf, "]::text[]");
}

void
aa_audit_emit(const AARecord *rec, bool transactional)
{
	StringInfoData buf;
	Oid			save_userid;
	int			save_sec;
	const pg_uuid_t *principal = rec->principal;
	const char *pname = rec->principal_name;
	const pg_uuid_t *token = rec->token;
	const char *purpose = rec->purpose;

	if (aa_session != NULL)
	{
		if (principal == NULL)
			principal = &aa_session->principal;
		if (pname == NULL)
			pname = aa_session->name;
		if (token == NULL && aa_session->has_token)
			token = &aa_session->token;
		if (purpose == NULL)
			purpose = aa_session->purpose;
	}

	initStringInfo(&buf);
	appendStringInfoString(&buf,
						   "INSERT INTO agentauth.audit_log (seq, logged_at, event, principal, principal_name, db_role, token, purpose, patient, relation, columns, data_classes, action, row_count, authority, outcome, detail, prev_hash, row_hash) "
						   "SELECT coalesce(max(seq), 0) + 1, clock_timestamp(), ");
	append_literal(&buf, rec->event);
	appendStringInfoChar(&buf, ',');
	append_uuid(&buf, principal);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, pname);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, GetUserNameFromId(GetSessionUserId(), false));
	appendStringInfoChar(&buf, ',');
	append_uuid(&buf, token);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, purpose);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, rec->patient);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, rec->relation);
	appendStringInfoChar(&buf, ',');
	append_array(&buf, rec->ncolumns, rec->columns);
	appendStringInfoChar(&buf, ',');
	append_array(&buf, rec->nclasses, rec->classes);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, rec->action);
	appendStringInfoChar(&buf, ',');
	if (rec->row_count < 0)
		appendStringInfoString(&buf, "NULL");
	else
		appendStringInfo(&buf, INT64_FORMAT, rec->row_count);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, rec->authority);
	appendStringInfoString(&buf, "::jsonb,");
	append_literal(&buf, rec->outcome);
	appendStringInfoChar(&buf, ',');
	append_literal(&buf, rec->detail);
	appendStringInfoString(&buf, "::jsonb, ''::bytea, ''::bytea FROM agentauth.audit_log");

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	SPI_connect();
	if (SPI_execute(buf.data, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write audit record");
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
	pfree(buf.data);
}

PG_FUNCTION_INFO_V1(aa_audit_sql);

/*
 * agentauth._audit(event, detail jsonb, principal uuid, token uuid,
 *                  patient text, relation text)
 *
 * The SQL door to aa_audit_emit() for administrative events written in SQL:
 * transactional (recorded iff the caller's transaction commits).  Private to
 * the extension's own SECURITY DEFINER functions (no grant to PUBLIC).
 */
Datum
aa_audit_sql(PG_FUNCTION_ARGS)
{
	AARecord	rec;
	pg_uuid_t  *principal = NULL;
	pg_uuid_t  *token = NULL;

	memset(&rec, 0, sizeof(rec));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("audit event must not be null")));
	rec.event = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
		rec.detail = DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(1)));
	if (!PG_ARGISNULL(2))
		principal = PG_GETARG_UUID_P(2);
	if (!PG_ARGISNULL(3))
		token = PG_GETARG_UUID_P(3);
	if (!PG_ARGISNULL(4))
		rec.patient = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!PG_ARGISNULL(5))
		rec.relation = text_to_cstring(PG_GETARG_TEXT_PP(5));
	rec.principal = principal;
	rec.token = token;
	rec.row_count = -1;
	rec.outcome = "permit";
	aa_audit_emit(&rec, true);
	PG_RETURN_VOID();
}
