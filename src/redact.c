/*-------------------------------------------------------------------------
 *
 * redact.c
 *		Keep token secrets out of the server log.
 *
 *		A secret is passed to begin_session(), and every way the server
 *		writes text to its log can carry it there: a failing statement
 *		(log_min_error_statement), log_statement, log_min_duration_statement,
 *		the values of bind parameters, error context, and any other
 *		extension that logs statements (pgaudit, auto_explain).  All of them
 *		go through EmitErrorReport(), which calls emit_log_hook before it
 *		writes to the server log.  The hook rewrites every text field of the
 *		report, and the statement the log will print with it
 *		(debug_query_string), replacing what follows each "aat_" prefix with
 *		a fixed mark.  Matching is deliberately broad: any run of base64url
 *		characters after the prefix, in any letter case, is removed, so a
 *		mistyped or truncated secret is hidden too.
 *
 *		The client that sent the secret gets the same redacted report.
 *
 *		Patients: an error report of agentauth's own that names a patient
 *		(a refused row, a patient id it cannot take, a FHIR Consent it
 *		cannot import) names it in the DETAIL the client gets; the log gets
 *		another DETAIL, and neither the statement nor the context, which
 *		may name the patient too (aa_errdetail_patient).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/memutils.h"

#include "agentauth.h"

#define REDACTED_MARK	"[redacted]"
#define AA_REDACT_MAX	((Size) 64 * 1024 * 1024)	/* bytes of text redacted */

static emit_log_hook_type prev_emit_log_hook = NULL;

/* our redacted copy of the current statement, in TopMemoryContext */
static char *redacted_statement = NULL;

static inline bool
is_secret_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* the next secret prefix at or after s, or NULL */
static const char *
find_prefix(const char *s)
{
	for (; *s; s++)
	{
		if ((s[0] == 'a' || s[0] == 'A') && (s[1] == 'a' || s[1] == 'A') &&
			(s[2] == 't' || s[2] == 'T') && s[3] == '_' && is_secret_char(s[4]))
			return s;
	}
	return NULL;
}

/*
 * s with every secret replaced, allocated in cxt; or NULL when s holds none
 * (the common case costs one scan and no allocation).
 */
char *
aa_redact_secrets(const char *s, MemoryContext cxt)
{
	const char *p;
	StringInfoData buf;
	MemoryContext oldcxt;

	if (s == NULL || (p = find_prefix(s)) == NULL)
		return NULL;

	/*
	 * Each secret's mark may be longer than the secret: a text made of
	 * nothing but short ones grows 2.8 times.  A text past this size is
	 * not copied at all (1.1: a statement of 400 MB of them grew past 1 GB
	 * inside the log hook, an error there, the copy left behind in
	 * TopMemoryContext); it is not logged either way.
	 */
	if (strlen(s) > AA_REDACT_MAX)
		return MemoryContextStrdup(cxt, "[a text of more than 64 MB that names agentauth secrets: not logged]");
	oldcxt = MemoryContextSwitchTo(cxt);
	initStringInfo(&buf);
	while (p != NULL)
	{
		appendBinaryStringInfo(&buf, s, p - s + 4);
		appendStringInfoString(&buf, REDACTED_MARK);
		p += 4;
		while (is_secret_char(*p))
			p++;
		s = p;
		p = find_prefix(s);
	}
	appendStringInfoString(&buf, s);
	MemoryContextSwitchTo(oldcxt);
	return buf.data;
}

static void
redact_field(char **field)
{
	char	   *r = aa_redact_secrets(*field, ErrorContext);

	if (r != NULL)
		*field = r;				/* the old text goes with ErrorContext */
}

static void
redact_emit_log(ErrorData *edata)
{
	char	   *stmt;

	redact_field(&edata->message);
	redact_field(&edata->detail);
	redact_field(&edata->detail_log);
	redact_field(&edata->hint);
	redact_field(&edata->context);
	redact_field(&edata->internalquery);
	redact_field(&edata->backtrace);

	/*
	 * The statement the log prints with this report (and with any later
	 * report of the same statement): point debug_query_string at a redacted
	 * copy.  The server parses and runs its own copy of the text, not this
	 * pointer, and resets it for the next statement.
	 */
	stmt = aa_redact_secrets(debug_query_string, TopMemoryContext);
	if (stmt != NULL)
	{
		if (redacted_statement != NULL && redacted_statement != debug_query_string)
			pfree(redacted_statement);
		redacted_statement = stmt;
		debug_query_string = stmt;
	}

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/*
 * Call inside ereport(), after an errmsg() that names no patient: detail,
 * which names one, goes to the client only; the server log gets detail_log
 * (what detail says without the patient) and a sentence saying the patient
 * is left out, without the statement or the context.  A NULL detail: no
 * DETAIL, the statement and context kept out of the log all the same.
 * Operations staff who read the log are not given patients' identities
 * (1.1, found by review: every refused row wrote its patient and the
 * decision to the log, whatever log_min_error_statement said).
 */
int
aa_errdetail_patient(const char *detail, const char *detail_log)
{
	if (detail != NULL)
	{
		errdetail_internal("%s", detail);
		if (detail_log != NULL)
			errdetail_log("%s.  The patient is named to the client only.", detail_log);
		else
			errdetail_log("It names a patient, which is sent to the client only.");
	}
	errhidestmt(true);
	errhidecontext(true);
	return 0;
}

void
aa_redact_init(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = redact_emit_log;
}
