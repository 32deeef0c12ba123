/*-------------------------------------------------------------------------
 *
 * session_sql.c
 *		The SQL entry points of the session: begin_session (an agent's
 *		token), begin_human_session (a clinician's role and purpose),
 *		end_session, whoami, check_session and _session_token.
 *
 *		Each begin reads the principal (and token) with one query on the
 *		latest snapshot, refuses with a session_denied record, or fills a
 *		new session and hands it to session.c, which stages it.  Where the
 *		principal is marked transaction_only_required, or the setting
 *		agentauth.require_transaction_only is on, only a transaction_only
 *		session may begin (a transaction-mode pooler would hand any other to
 *		the next client).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "agentauth.h"

PG_FUNCTION_INFO_V1(aa_begin_session);
PG_FUNCTION_INFO_V1(aa_begin_human_session);
PG_FUNCTION_INFO_V1(aa_end_session);
PG_FUNCTION_INFO_V1(aa_whoami);
PG_FUNCTION_INFO_V1(aa_check_session);
PG_FUNCTION_INFO_V1(aa_session_token_sql);

/*
 * Queries run by the extension on behalf of any caller, with whatever
 * search_path the caller set: everything is schema-qualified, operators
 * included.
 */
#define LOOKUP_TOKEN_SQL \
	"SELECT t.id, t.agent, t.purpose, t.on_behalf_of, t.scopes, t.patients, " \
	"t.expires_at, t.chain, " AA_TOKEN_REVOKED_SQL ", " \
	"p.name, p.owner, p.db_role, p.status, p.can_break_glass, " \
	"p.can_delegate, p.can_approve, " AA_TXONLY_REQUIRED_SQL " " \
	"FROM agentauth.token t JOIN agentauth.principal p " \
	"ON p.id OPERATOR(pg_catalog.=) t.agent " \
	"WHERE t.secret_hash OPERATOR(pg_catalog.=) $1"

#define LOOKUP_HUMAN_SQL \
	"SELECT p.id, p.kind, p.name, p.status, p.purposes, p.scopes, " \
	"p.can_break_glass, p.can_delegate, p.can_approve, " \
	"(SELECT pu.reserved FROM agentauth.purpose pu " \
	" WHERE pu.code OPERATOR(pg_catalog.=) $2), " AA_TXONLY_REQUIRED_SQL ", " \
	"p.status_changed_at " \
	"FROM agentauth.principal p WHERE p.db_role OPERATOR(pg_catalog.=) $1"

/* ---------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------
 */

static void
new_uuid(pg_uuid_t *u)
{
	if (!pg_strong_random(u->data, UUID_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random session id")));
	u->data[6] = (u->data[6] & 0x0f) | 0x40;	/* version 4 */
	u->data[8] = (u->data[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
}

static int
cmp_cstring(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static pg_uuid_t *
uuid_array_copy(Datum d, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(d);
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	pg_uuid_t  *out;

	deconstruct_array(arr, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR,
					  &elems, &nulls, &nelems);
	out = palloc(sizeof(pg_uuid_t) * Max(nelems, 1));
	for (int i = 0; i < nelems; i++)
		memcpy(&out[i], DatumGetUUIDP(elems[i]), sizeof(pg_uuid_t));
	*n = nelems;
	return out;
}

/* Parse 'class:action' scopes (validated when they were stored). */
static void
set_scopes(AASession *s, char **items, int n)
{
	s->scopes = palloc(sizeof(AAScope) * Max(n, 1));
	s->nscopes = 0;
	for (int i = 0; i < n; i++)
	{
		char	   *colon = strrchr(items[i], ':');

		if (colon == NULL)
			continue;
		*colon = '\0';
		s->scopes[s->nscopes].data_class = items[i];
		s->scopes[s->nscopes].write =
			(aa_action_from_name(colon + 1, -1) == AA_ACT_WRITE);
		s->nscopes++;
	}
}

/*
 * Refuse a session: record session_denied (surviving the error that
 * follows) and raise.  For a bad secret the message is the same whatever
 * was wrong with it; the reason goes to the server log and the audit
 * record only.
 */
static void
deny(const char *function, const char *reason, const pg_uuid_t *principal,
	 const char *principal_name, const pg_uuid_t *token, int sqlstate,
	 const char *message, const char *hint)
{
	AARecord	rec;
	StringInfoData detail;

	initStringInfo(&detail);
	appendStringInfoString(&detail, "{\"function\": ");
	escape_json(&detail, function);
	appendStringInfoString(&detail, ", \"reason\": ");
	escape_json(&detail, reason);
	appendStringInfoChar(&detail, '}');

	memset(&rec, 0, sizeof(rec));
	rec.event = "session_denied";
	rec.row_count = -1;
	rec.outcome = "deny";
	rec.detail = detail.data;
	rec.principal = principal;
	rec.principal_name = principal_name;
	rec.token = token;

	/*
	 * The record names the principal and token that were tried (or none),
	 * not the session this backend may already have: hide it from the
	 * audit entry point while it fills in identity.
	 */
	{
		AASession  *current = aa_session;

		aa_session = NULL;
		PG_TRY();
		{
			aa_audit_emit(&rec, false);
		}
		PG_FINALLY();
		{
			aa_session = current;
		}
		PG_END_TRY();
	}

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s", message),
			 errdetail_log("%s: %s", function, reason),
			 hint ? errhint("%s", hint) : 0));
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

static bool
bool_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return PG_GETARG_BOOL(argno);
}

/*
 * Behind a transaction-pooling pooler the next transaction of this backend
 * may be another client's: a session that outlives its transaction would be
 * handed to it.  Where the principal is marked transaction_only_required, or
 * agentauth.require_transaction_only is on, only a transaction_only session
 * may begin.  NULL: allowed; otherwise the reason.
 */
static const char *
session_scope_refused(bool txonly, bool principal_requires)
{
	if (txonly)
		return NULL;
	if (principal_requires)
		return "the principal requires transaction_only sessions";
	if (aa_require_transaction_only)
		return "agentauth.require_transaction_only is on";
	return NULL;
}

#define TXONLY_HINT \
	"Begin the session inside a transaction block with transaction_only => true: " \
	"it ends with that transaction, so a pooled connection cannot hand it to the next client."

#define BAD_TOKEN_MSG	"invalid or expired token"
#define BAD_TOKEN_HINT	"Ask the token issuer for a new token for this agent."

/*
 * Sessions begin and end in statements of their own: inside a statement
 * that is reading protected tables, the records of the rows it read would
 * name the next session (access_run.c).
 */
static void
refuse_inside_statement(const char *what)
{
	aa_other_code_session_call(strcmp(what, "end") == 0 ? "agentauth.end_session()" :
							   "a function that begins a session");
	if (aa_access_statement_running())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s an agentauth session inside a statement that reads protected tables", what),
				 errdetail("The records of the rows the statement read would name another session."),
				 errhint("Begin or end a session in a statement of its own.")));
}

/*
 * agentauth.begin_session(secret text, transaction_only boolean) RETURNS uuid
 */
Datum
aa_begin_session(PG_FUNCTION_ARGS)
{
	text	   *secret;
	bool		txonly;
	const char *sdata;
	int			slen;
	unsigned char digest[32];
	bytea	   *hash;
	AASpiState	st;
	Oid			argtypes[1] = {BYTEAOID};
	Datum		values[1];
	static SPIPlanPtr lookup_plan = NULL;
	uint64		gen;
	bool		isnull;
	MemoryContext callercxt = CurrentMemoryContext;
	pg_uuid_t	token_id;
	pg_uuid_t	agent_id;
	AASession  *s;
	MemoryContext old;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("secret must not be null")));
	refuse_inside_statement("begin");
	txonly = bool_arg(fcinfo, 1, "transaction_only");
	secret = PG_GETARG_TEXT_PP(0);
	sdata = VARDATA_ANY(secret);
	slen = VARSIZE_ANY_EXHDR(secret);

	if (!aa_secret_well_formed(sdata, slen))
		deny("begin_session", "malformed secret", NULL, NULL, NULL,
			 ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, BAD_TOKEN_MSG, BAD_TOKEN_HINT);

	aa_secret_digest(sdata, slen, digest);
	hash = palloc(VARHDRSZ + sizeof(digest));
	SET_VARSIZE(hash, VARHDRSZ + sizeof(digest));
	memcpy(VARDATA(hash), digest, sizeof(digest));
	values[0] = PointerGetDatum(hash);

	gen = aa_generation();
	aa_spi_begin(&st, false);
	aa_spi_select_latest(aa_spi_keep_plan(&lookup_plan, LOOKUP_TOKEN_SQL, 1, argtypes),
						 values, NULL, 1);
	if (SPI_processed == 0)
	{
		aa_spi_end(&st);
		deny("begin_session", "unknown token", NULL, NULL, NULL,
			 ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, BAD_TOKEN_MSG, BAD_TOKEN_HINT);
	}
	memcpy(&token_id, DatumGetUUIDP(aa_spi_first_value(1, &isnull)), sizeof(pg_uuid_t));
	memcpy(&agent_id, DatumGetUUIDP(aa_spi_first_value(2, &isnull)), sizeof(pg_uuid_t));
	{
		const char *reason = NULL;

		/* (the agent's status first: the revoked test counts it too) */
		if (strcmp(TextDatumGetCString(aa_spi_first_value(13, &isnull)), "active") != 0)
			reason = "agent not active";
		else if (DatumGetBool(aa_spi_first_value(9, &isnull)))
			reason = "token revoked";
		else if (DatumGetTimestampTz(aa_spi_first_value(7, &isnull)) <= GetCurrentTimestamp())
			reason = "token expired";
		else if (DatumGetObjectId(aa_spi_first_value(12, &isnull)) != GetSessionUserId())
			reason = "session user is not the agent's role";
		else if (aa_role_bypasses_rls(GetSessionUserId()))
			reason = "the agent's role bypasses row security";
		if (reason != NULL)
		{
			char	   *name = MemoryContextStrdup(callercxt,
												   TextDatumGetCString(aa_spi_first_value(10, &isnull)));

			aa_spi_end(&st);
			deny("begin_session", reason, &agent_id, name, &token_id,
				 ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, BAD_TOKEN_MSG, BAD_TOKEN_HINT);
		}
		reason = session_scope_refused(txonly,
									   DatumGetBool(aa_spi_first_value(17, &isnull)));
		if (reason != NULL)
		{
			char	   *name = MemoryContextStrdup(callercxt,
												   TextDatumGetCString(aa_spi_first_value(10, &isnull)));
			char	   *msg;

			aa_spi_end(&st);
			msg = psprintf("principal \"%s\" may begin only transaction_only sessions", name);
			deny("begin_session", reason, &agent_id, name, &token_id,
				 ERRCODE_INSUFFICIENT_PRIVILEGE, msg, TXONLY_HINT);
		}
	}

	s = aa_session_alloc();
	old = MemoryContextSwitchTo(s->cxt);
	new_uuid(&s->id);
	s->principal = agent_id;
	s->is_agent = true;
	s->has_token = true;
	s->token = token_id;
	s->purpose = TextDatumGetCString(aa_spi_first_value(3, &isnull));
	{
		Datum		d = aa_spi_first_value(4, &isnull);

		s->on_behalf_of = isnull ? NULL : TextDatumGetCString(d);
	}
	{
		int			n;
		char	  **items = aa_text_array_to_cstrings(aa_spi_first_value(5, &isnull), &n);

		set_scopes(s, items, n);
	}
	{
		Datum		d = aa_spi_first_value(6, &isnull);

		if (isnull)
			s->npatients = -1;
		else
		{
			s->patients = aa_text_array_to_cstrings(d, &s->npatients);
			qsort(s->patients, s->npatients, sizeof(char *), cmp_cstring);
		}
	}
	s->expires_at = DatumGetTimestampTz(aa_spi_first_value(7, &isnull));
	s->chain = uuid_array_copy(aa_spi_first_value(8, &isnull), &s->nchain);
	s->name = TextDatumGetCString(aa_spi_first_value(10, &isnull));
	{
		Datum		d = aa_spi_first_value(11, &isnull);

		s->owner = isnull ? NULL : TextDatumGetCString(d);
	}
	s->db_role = DatumGetObjectId(aa_spi_first_value(12, &isnull));
	s->can_break_glass = DatumGetBool(aa_spi_first_value(14, &isnull));
	s->can_delegate = DatumGetBool(aa_spi_first_value(15, &isnull));
	s->can_approve = DatumGetBool(aa_spi_first_value(16, &isnull));
	s->transaction_only = txonly;
	s->validated_gen = gen;
	aa_session_load_sensitive(s);
	MemoryContextSwitchTo(old);

	aa_spi_end(&st);

	aa_session_install(s);
	PG_RETURN_UUID_P(aa_uuid_copy(&s->id));
}

/*
 * agentauth.begin_human_session(purpose text, transaction_only boolean)
 * RETURNS uuid
 */
Datum
aa_begin_human_session(PG_FUNCTION_ARGS)
{
	char	   *purpose;
	bool		txonly;
	AASpiState	st;
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		values[2];
	static SPIPlanPtr lookup_plan = NULL;
	uint64		gen;
	bool		isnull;
	Datum		d;
	pg_uuid_t	pid;
	char	   *role = GetUserNameFromId(GetSessionUserId(), false);
	char	   *msg = NULL;
	char	   *pname = NULL;
	const char *bad_purpose = NULL;
	int			sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	bool		known = false;
	MemoryContext callercxt = CurrentMemoryContext;
	AASession  *s;
	MemoryContext old;
	int			npurposes;
	char	  **purposes;
	bool		found = false;
	const char *txonly_refused = NULL;

	refuse_inside_statement("begin");
	purpose = aa_text_arg(fcinfo, 0, "purpose", true, AA_MAX_NAME_LEN);
	txonly = bool_arg(fcinfo, 1, "transaction_only");

	gen = aa_generation();
	aa_spi_begin(&st, false);
	values[0] = ObjectIdGetDatum(GetSessionUserId());
	values[1] = CStringGetTextDatum(purpose);
	aa_spi_select_latest(aa_spi_keep_plan(&lookup_plan, LOOKUP_HUMAN_SQL, 2, argtypes),
						 values, NULL, 1);

	/* decide while the row is at hand; raise after SPI_finish */
	if (SPI_processed == 0)
		msg = psprintf("role \"%s\" is not a registered principal", role);
	else
	{
		char	   *name = TextDatumGetCString(aa_spi_first_value(3, &isnull));

		pname = MemoryContextStrdup(callercxt, name);
		memcpy(&pid, DatumGetUUIDP(aa_spi_first_value(1, &isnull)), sizeof(pg_uuid_t));
		known = true;
		if (strcmp(TextDatumGetCString(aa_spi_first_value(2, &isnull)), "human") != 0)
			msg = psprintf("role \"%s\" is an agent", role);
		else if (strcmp(TextDatumGetCString(aa_spi_first_value(4, &isnull)), "active") != 0)
			msg = psprintf("principal \"%s\" is not active", name);
		else if (aa_role_bypasses_rls(GetSessionUserId()))
			msg = psprintf("role \"%s\" bypasses row security", role);
		else
		{
			d = aa_spi_first_value(10, &isnull);
			if (isnull)
				bad_purpose = "unknown purpose of use \"%s\"";
			else if (DatumGetBool(d))
				bad_purpose = "purpose of use \"%s\" is reserved";
			else
			{
				purposes = aa_text_array_to_cstrings(aa_spi_first_value(5, &isnull), &npurposes);
				for (int i = 0; i < npurposes; i++)
					if (strcmp(purposes[i], purpose) == 0)
						found = true;
				if (!found)
				{
					msg = psprintf("principal \"%s\" is not registered for purpose \"%s\"",
								   name, purpose);
					sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
				}
			}
		}
	}
	if (msg == NULL && bad_purpose == NULL)
	{
		const char *why = session_scope_refused(txonly,
												DatumGetBool(aa_spi_first_value(11, &isnull)));

		if (why != NULL)
		{
			msg = psprintf("principal \"%s\" may begin only transaction_only sessions",
						   pname);
			sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
			txonly_refused = why;
		}
	}
	if (msg != NULL || bad_purpose != NULL)
	{
		MemoryContext spicxt = MemoryContextSwitchTo(callercxt);

		if (msg)
			msg = pstrdup(msg);
		MemoryContextSwitchTo(spicxt);
		aa_spi_end(&st);
		if (bad_purpose != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg(bad_purpose, purpose),
					 errhint("Purpose codes are listed in agentauth.purpose (HL7 v3 PurposeOfUse); BTG is entered only through agentauth.break_glass().")));
		deny("begin_human_session", txonly_refused ? txonly_refused : msg,
			 known ? &pid : NULL, pname, NULL, sqlstate, msg,
			 txonly_refused ? TXONLY_HINT : known ? NULL :
			 "An administrator registers clinicians with agentauth.register_human().");
	}

	s = aa_session_alloc();
	old = MemoryContextSwitchTo(s->cxt);
	new_uuid(&s->id);
	s->principal = pid;
	s->is_agent = false;
	s->has_token = false;
	s->name = TextDatumGetCString(aa_spi_first_value(3, &isnull));
	s->db_role = GetSessionUserId();
	s->purpose = pstrdup(purpose);
	{
		int			n;
		char	  **items = aa_text_array_to_cstrings(aa_spi_first_value(6, &isnull), &n);

		set_scopes(s, items, n);
	}
	s->npatients = -1;
	s->expires_at = DT_NOEND;
	{
		Datum		changed = aa_spi_first_value(12, &isnull);

		s->status_changed_at = isnull ? DT_NOBEGIN : DatumGetTimestampTz(changed);
	}
	s->can_break_glass = DatumGetBool(aa_spi_first_value(7, &isnull));
	s->can_delegate = DatumGetBool(aa_spi_first_value(8, &isnull));
	s->can_approve = DatumGetBool(aa_spi_first_value(9, &isnull));
	s->transaction_only = txonly;
	s->validated_gen = gen;
	aa_session_load_sensitive(s);
	MemoryContextSwitchTo(old);

	aa_spi_end(&st);

	aa_session_install(s);
	PG_RETURN_UUID_P(aa_uuid_copy(&s->id));
}

/*
 * agentauth.end_session() RETURNS void: forget the session (none: nothing)
 */
Datum
aa_end_session(PG_FUNCTION_ARGS)
{
	refuse_inside_statement("end");
	aa_session_end();
	PG_RETURN_VOID();
}

/*
 * agentauth.whoami(): one row describing the session, none without one;
 * 28000 when the session is no longer valid.
 */
Datum
aa_whoami(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AASession  *s;
	Datum		values[11];
	bool		nulls[11];

	InitMaterializedSRF(fcinfo, 0);
	aa_session_check();
	aa_btg_refresh();
	s = aa_session;
	if (s == NULL)
		return (Datum) 0;

	memset(nulls, 0, sizeof(nulls));
	values[0] = UUIDPGetDatum(&s->principal);
	values[1] = CStringGetTextDatum(s->is_agent ? "agent" : "human");
	values[2] = CStringGetTextDatum(s->name);
	if (s->has_token)
		values[3] = UUIDPGetDatum(&s->token);
	else
		nulls[3] = true;
	values[4] = CStringGetTextDatum(s->purpose);
	if (s->on_behalf_of)
		values[5] = CStringGetTextDatum(s->on_behalf_of);
	else
		nulls[5] = true;
	{
		char	  **items = palloc(sizeof(char *) * Max(s->nscopes, 1));

		for (int i = 0; i < s->nscopes; i++)
			items[i] = psprintf("%s:%s", s->scopes[i].data_class,
								aa_action_name(s->scopes[i].write ?
											   AA_ACT_WRITE : AA_ACT_READ));
		values[6] = aa_cstrings_to_text_array(items, s->nscopes);
	}
	if (s->npatients >= 0)
		values[7] = aa_cstrings_to_text_array(s->patients, s->npatients);
	else
		nulls[7] = true;
	if (s->has_token)
		values[8] = TimestampTzGetDatum(s->expires_at);
	else
		nulls[8] = true;
	if (s->has_token)
	{
		Datum	   *d = palloc(sizeof(Datum) * Max(s->nchain, 1));

		for (int i = 0; i < s->nchain; i++)
			d[i] = UUIDPGetDatum(&s->chain[i]);
		values[9] = PointerGetDatum(construct_array(d, s->nchain, UUIDOID,
													UUID_LEN, false, TYPALIGN_CHAR));
	}
	else
		nulls[9] = true;
	{
		Datum	   *d = palloc(sizeof(Datum) * Max(s->nbreak_glass, 1));

		for (int i = 0; i < s->nbreak_glass; i++)
			d[i] = UUIDPGetDatum(&s->break_glass[i].id);
		values[10] = PointerGetDatum(construct_array(d, s->nbreak_glass, UUIDOID,
													 UUID_LEN, false, TYPALIGN_CHAR));
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * agentauth.check_session() RETURNS boolean: the per-row check, for tests
 * (from a cursor over generate_series) and for clients: true, or 28000.
 */
Datum
aa_check_session(PG_FUNCTION_ARGS)
{
	aa_session_check();
	if (aa_session == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no agentauth session"),
				 errhint("Begin one with agentauth.begin_session(token) or agentauth.begin_human_session(purpose).")));
	PG_RETURN_BOOL(true);
}

/*
 * agentauth._session_token() RETURNS uuid: the token of the current,
 * revalidated agent session (for delegate_token).
 */
Datum
aa_session_token_sql(PG_FUNCTION_ARGS)
{
	aa_session_check();
	if (aa_session == NULL || !aa_session->has_token)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no agent session"),
				 errhint("Delegation needs an agent session: call agentauth.begin_session(token) first.")));
	PG_RETURN_UUID_P(aa_uuid_copy(&aa_session->token));
}

