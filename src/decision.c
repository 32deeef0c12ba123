/*-------------------------------------------------------------------------
 *
 * decision.c
 *		A consent decision (AADecision, made by consent.c) as the authority
 *		of its records -- jsonb, what the audit log stores and hashes -- and
 *		as JSON text for messages, with its keys in the order a reader
 *		expects.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "agentauth.h"

/* the reason of a refusal, by AADecisionReason (none for a permit) */
static const char *const reason_text[] = {
	[AA_DECIDE_NO_SESSION] = "no agentauth session",
	[AA_DECIDE_NOT_IN_TOKEN] = "patient not in the token's patient list",
	[AA_DECIDE_NO_CLASS_IN_SCOPE] = "no data class of the table is in scope",
	[AA_DECIDE_DENIED_BY_CONSENT] = "denied by consent",
	[AA_DECIDE_DENIED_BY_DEFAULT] = "denied by default",
	[AA_DECIDE_NOTHING_PERMITS] = "no consent or default permits",
	[AA_DECIDE_NOTHING_PERMITS_ANY] = "no consent or default permits any data class in scope",
};

/*
 * The decision as the authority of its records (jsonb), with an approval
 * when one was consumed; with text, also as JSON text with its keys in
 * this order, for messages.
 */
Jsonb *
aa_decision_build_authority(const AADecision *d, const char *approval,
							StringInfo text)
{
	AAJsonbBuilder b;

	aa_jsonb_begin(&b, text);
	switch (d->reason)
	{
		case AA_DECIDE_PERMIT:
			if (d->consents != NIL)
				aa_jsonb_add_strings(&b, "consents", d->consents);
			if (d->defaults != NIL)
				aa_jsonb_add_strings(&b, "defaults", d->defaults);
			break;
		case AA_DECIDE_BREAK_GLASS:
			aa_jsonb_add_string(&b, "break_glass", d->break_glass);
			break;
		default:
			aa_jsonb_add_string(&b, "reason", reason_text[d->reason]);
			if (d->data_class != NULL)
				aa_jsonb_add_string(&b, "data_class", d->data_class);
			if (d->reason >= AA_DECIDE_DENIED_BY_CONSENT)
				aa_jsonb_add_string(&b, "action", aa_action_name(d->action));
			if (d->consent != NULL)
				aa_jsonb_add_string(&b, "consent", d->consent);
			if (d->default_rule != NULL)
				aa_jsonb_add_string(&b, "default", d->default_rule);
			break;
	}
	if (approval != NULL)
		aa_jsonb_add_string(&b, "approval", approval);
	return aa_jsonb_end(&b);
}

/* the authority of a record of the decision, with the approval consumed */
Jsonb *
aa_decision_authority(const AADecision *d, const char *approval)
{
	if (approval == NULL)
		return d->authority;
	return aa_decision_build_authority(d, approval, NULL);
}

/* the decision as JSON text, for messages */
char *
aa_decision_text(const AADecision *d)
{
	StringInfoData buf;

	initStringInfo(&buf);
	(void) aa_decision_build_authority(d, NULL, &buf);
	return buf.data;
}
