/*-------------------------------------------------------------------------
 *
 * audit_sql.c
 *		The SQL doors to the audit path: agentauth._audit(), with which the
 *		extension's SQL functions record their administrative events; and
 *		agentauth._json_ascii(), with which export_audit() writes lines that
 *		every client passes on as they are.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_audit_sql);
PG_FUNCTION_INFO_V1(aa_json_ascii);

/*
 * The events the extension records itself, never through this door: a
 * superuser calling it by hand (it is a superuser's, as every function of
 * the extension) made records that the reports took as real -- an access
 * the agent never made, a purge that anchored the chain past records it
 * had deleted (1.1, found by review).
 */
static const char *const own_events[] = {
	"access", "denied", "privileged_access", "unregistered_access",
	"session_begin", "session_end", "session_denied", "session_authorization",
	"break_glass_start", "break_glass_end", "break_glass_review",
	"approval_granted", "audit_purged", NULL
};

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
	if (aa_str_in_list(rec.event, own_events))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("agentauth._audit() does not record %s events", rec.event),
				 errdetail("The extension records them itself, where they happen; one made by hand would stand in the log as real.")));
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

static void
append_u_escape(StringInfo out, pg_wchar c)
{
	static const char hex[] = "0123456789abcdef";

	appendStringInfoString(out, "\\u");
	for (int shift = 12; shift >= 0; shift -= 4)
		appendStringInfoChar(out, hex[(c >> shift) & 0xF]);
}

/*
 * agentauth._json_ascii(text): JSON text with every character beyond ASCII
 * written as a \u escape (a surrogate pair beyond U+FFFF).  JSON holds such
 * characters only inside strings, where the escape means the same; what the
 * verifier hashes is unchanged.  1.1, found by review: psql's aligned and
 * unaligned output dropped some characters (U+1FFFF, U+10FFFF) of a patient
 * id that an agent had written into a record, and aa_verify failed an
 * intact log at that record -- and a client encoding other than UTF-8
 * would have changed more.
 */
Datum
aa_json_ascii(PG_FUNCTION_ARGS)
{
	text	   *in = PG_GETARG_TEXT_PP(0);
	const char *s = VARDATA_ANY(in);
	int			len = VARSIZE_ANY_EXHDR(in);
	const unsigned char *u;
	StringInfoData out;
	int			i;

	for (i = 0; i < len; i++)
		if ((unsigned char) s[i] >= 0x80)
			break;
	/*
	 * In SQL_ASCII bytes have no characters: the verifiers hash them as
	 * they are, and the export carries them so (README).
	 */
	if (i == len || GetDatabaseEncoding() == PG_SQL_ASCII)
		PG_RETURN_TEXT_P(in);
	/* the characters as UTF-8, whatever the database's encoding */
	u = (const unsigned char *) pg_server_to_any(s, len, PG_UTF8);
	if ((const char *) u != s)
		len = strlen((const char *) u);
	initStringInfo(&out);
	for (i = 0; i < len;)
	{
		int			n = pg_utf_mblen(u + i);
		pg_wchar	c;

		if (u[i] < 0x80)
		{
			appendStringInfoChar(&out, (char) u[i++]);
			continue;
		}
		if (i + n > len || !pg_utf8_islegal(u + i, n))
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("invalid UTF-8 in an audit record's text")));
		c = utf8_to_unicode(u + i);
		if (c > 0xFFFF)
		{
			c -= 0x10000;
			append_u_escape(&out, 0xD800 + (c >> 10));
			append_u_escape(&out, 0xDC00 + (c & 0x3FF));
		}
		else
			append_u_escape(&out, c);
		i += n;
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
