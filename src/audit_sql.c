/*-------------------------------------------------------------------------
 *
 * audit_sql.c
 *		The SQL door to the audit path: agentauth._audit(), with which the
 *		extension's SQL functions record their administrative events.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "agentauth.h"

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
	rec.event = aa_text_arg(fcinfo, 0, "audit event", true, AA_MAX_NAME_LEN);
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
