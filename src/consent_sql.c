/*-------------------------------------------------------------------------
 *
 * consent_sql.c
 *		The SQL entry points of consent: explain_access(), which asks
 *		consent.c for the decision of one (patient, class, action) and says
 *		why, and the triggers on the consent, default and data-class tables
 *		that publish their changes to every backend (shmem.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "agentauth.h"

/* ------------------------------------------------------------------
 * agentauth.explain_access(patient text, data_class text, action text)
 *   RETURNS TABLE (decision text, reason text, authority jsonb)
 * ------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(aa_explain_access);

Datum
aa_explain_access(PG_FUNCTION_ARGS)
{
	char	   *patient = aa_text_arg(fcinfo, 0, "patient", true, AA_MAX_NAME_LEN);
	char	   *data_class = aa_text_arg(fcinfo, 1, "data_class", true, AA_MAX_NAME_LEN);
	char	   *action_s = aa_text_arg(fcinfo, 2, "action", true, AA_MAX_NAME_LEN);
	int			action = aa_action_from_name(action_s, -1);
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	const char *decision = "deny";
	char	   *reason;
	Jsonb	   *authority = NULL;
	bool		sensitive;

	if (action == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown action \"%s\"", action_s),
				 errhint("Actions are read, write, insert, update and delete.")));
	if (!aa_class_lookup(data_class, &sensitive))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown data class \"%s\"", data_class)));
	/* an id no patient column could hold would be explained in vain */
	aa_patient_id_check(patient);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	if (aa_session == NULL)
		reason = "no agentauth session";
	else
	{
		aa_session_check();
		if (strcmp(data_class, AA_NON_PHI) != 0 &&
			!aa_session_scope_allows(data_class, action != AA_ACT_READ))
			reason = psprintf("data class \"%s\" is not in the session's %s scopes",
							  data_class, aa_action_name(action == AA_ACT_READ ? AA_ACT_READ : AA_ACT_WRITE));
		else if (strcmp(data_class, AA_NON_PHI) == 0)
		{
			decision = "permit";
			reason = "non_phi needs no consent";
		}
		else
		{
			AADecision d;
			char	   *classes[1];

			classes[0] = data_class;
			aa_consent_decide(patient, 1, classes, false, action, &d);
			authority = d.authority;
			if (d.permit)
			{
				decision = "permit";
				if (d.btg)
					reason = "break-the-glass override of this session";
				else if (d.consents != NIL)
					reason = "permitted by consent";
				else
					reason = psprintf("permitted by the default for purpose %s",
									  aa_session->purpose);
			}
			else
			{
				if (d.reason == AA_DECIDE_NOT_IN_TOKEN)
					reason = "patient is not in the token's patient list";
				else if (d.reason == AA_DECIDE_DENIED_BY_CONSENT)
					reason = "denied by consent";
				else if (d.reason == AA_DECIDE_DENIED_BY_DEFAULT)
					reason = psprintf("denied by the default for purpose %s",
									  aa_session->purpose);
				else
					reason = psprintf("no consent or default permits %s of %s for purpose %s",
									  aa_action_name(action), data_class,
									  aa_session->purpose);
			}
		}
	}
	values[0] = CStringGetTextDatum(decision);
	values[1] = CStringGetTextDatum(reason);
	if (authority)
		values[2] = JsonbPGetDatum(authority);
	else
		nulls[2] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * agentauth._consent_trigger(): row trigger on agentauth.consent (and
 * statement trigger for TRUNCATE): publish which patients' provisions
 * changed, so that backends forget only those (shmem.c).
 */
PG_FUNCTION_INFO_V1(aa_consent_trigger);

static void
consent_row_changed(Relation rel, HeapTuple tup)
{
	int			attno = SPI_fnumber(RelationGetDescr(rel), "patient");
	bool		isnull;
	Datum		d;
	text	   *t;

	if (tup == NULL || attno <= 0)
	{
		aa_consent_changed_at_commit(NULL, -1);
		return;
	}
	d = heap_getattr(tup, attno, RelationGetDescr(rel), &isnull);
	if (isnull)
	{
		aa_consent_changed_at_commit(NULL, -1);
		return;
	}
	t = DatumGetTextPP(d);
	aa_consent_changed_at_commit(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

Datum
aa_consent_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("agentauth._consent_trigger() must be called as a trigger")));
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event))
		aa_consent_changed_at_commit(NULL, -1);
	else
	{
		consent_row_changed(td->tg_relation, td->tg_trigtuple);
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
			consent_row_changed(td->tg_relation, td->tg_newtuple);
	}
	return PointerGetDatum(NULL);
}

/*
 * agentauth._generation_trigger(): statement trigger on the consent,
 * default and data-class tables, so a change made by any path (a superuser
 * editing a table directly, too) reaches every backend's cache.
 */
PG_FUNCTION_INFO_V1(aa_generation_trigger);

Datum
aa_generation_trigger(PG_FUNCTION_ARGS)
{
	aa_generation_bump_at_commit();
	return PointerGetDatum(NULL);
}
