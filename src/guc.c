/*-------------------------------------------------------------------------
 *
 * guc.c
 *		The agentauth.* settings (SPEC 11).  Everything that affects what is
 *		allowed or recorded is PGC_SUSET or stricter; no setting grants access.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/guc.h"

#include "agentauth.h"

char	   *aa_database = NULL;
bool		aa_audit_sync = true;
int			aa_audit_wait_timeout = 5000;
int			aa_audit_queue_size = 8192;
int			aa_head_log_interval = 60;
int			aa_review_deadline = 72 * 3600;
int			aa_audit_retention = 6 * 365 * 86400 + 2 * 86400;	/* six years */
bool		aa_allow_uninstall = false;
int			aa_inactive_after = 90 * 86400;
bool		aa_require_transaction_only = false;
char	   *aa_forward_conninfo = NULL;
static char *aa_fhir_patient_reference = NULL;	/* read by SQL only */
static char *aa_fhir_patient_identifier_system = NULL;	/* read by SQL only */

/*
 * agentauth.fhir_patient_reference: empty, or a template with one %s (the
 * patient id) and no other %.  Checked when it is set, at start and at a
 * reload (1.1: a template without %s was taken, and every export of a
 * patient's record then failed, holding up the audit feed).
 */
static bool
check_patient_reference(char **newval, void **extra, GucSource source)
{
	const char *t = *newval;
	const char *p;
	int			ids = 0;

	if (t == NULL || t[0] == '\0')
		return true;
	for (p = strchr(t, '%'); p != NULL; p = strchr(p + 2, '%'))
	{
		if (p[1] != 's')
		{
			GUC_check_errdetail("The template may hold no %% but the one in %%s.");
			return false;
		}
		ids++;
	}
	if (ids != 1)
	{
		GUC_check_errdetail("The template must hold %%s, where the patient id goes, once.");
		GUC_check_errhint("For example 'Patient/%%s' or 'https://fhir.example.org/r4/Patient/%%s'; empty names patients by identifier.");
		return false;
	}
	return true;
}

void
aa_guc_init(void)
{
	DefineCustomStringVariable("agentauth.database",
							   "The one database where agentauth lives and its audit writer works.",
							   NULL,
							   &aa_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("agentauth.fhir_patient_reference",
							   "How audit_event_fhir names a patient: a reference template, %s the patient id.",
							   "Empty: a logical reference by identifier (system urn:agentauth:patient).",
							   &aa_fhir_patient_reference,
							   "Patient/%s",
							   PGC_SIGHUP,
							   0,
							   check_patient_reference, NULL, NULL);

	DefineCustomStringVariable("agentauth.fhir_patient_identifier_system",
							   "The identifier system whose values are the protected tables' patient ids (import_fhir_consent).",
							   "Empty: a Consent names its patient by identifier only with system urn:agentauth:patient.",
							   &aa_fhir_patient_identifier_system,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("agentauth.audit_sync",
							 "A statement touching PHI completes only after its audit records are committed.",
							 NULL,
							 &aa_audit_sync,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("agentauth.audit_wait_timeout",
							"How long a statement waits for the audit writer before failing closed.",
							NULL,
							&aa_audit_wait_timeout,
							5000, 10, 3600 * 1000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("agentauth.audit_queue_size",
							"Size of the shared-memory audit queue.",
							NULL,
							&aa_audit_queue_size,
							8192, 256, 1024 * 1024,
							PGC_POSTMASTER,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("agentauth.head_log_interval",
							"How often the audit writer writes the chain head to the server log.",
							NULL,
							&aa_head_log_interval,
							60, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("agentauth.review_deadline",
							"Break-the-glass events unreviewed for longer than this are overdue.",
							NULL,
							&aa_review_deadline,
							72 * 3600, 60, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("agentauth.audit_retention",
							"Minimum age of audit records before purge_audit may remove them.",
							NULL,
							&aa_audit_retention,
							6 * 365 * 86400 + 2 * 86400, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("agentauth.allow_uninstall",
							 "Permits DROP EXTENSION agentauth.",
							 NULL,
							 &aa_allow_uninstall,
							 false,
							 PGC_POSTMASTER,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("agentauth.inactive_after",
							"An agent with no session for this long is suspended by the audit writer.",
							NULL,
							&aa_inactive_after,
							90 * 86400, 1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("agentauth.require_transaction_only",
							 "Every agentauth session must be begun with transaction_only => true (for transaction-pooling poolers).",
							 NULL,
							 &aa_require_transaction_only,
							 false,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	/*
	 * On a hot standby: where the forwarder (forward.c) sends the records.
	 * It may hold a password, so only superusers see it (GUC_SUPERUSER_ONLY,
	 * as primary_conninfo); a .pgpass file keeps the secret out of it.
	 */
	DefineCustomStringVariable("agentauth.forward_conninfo",
							   "On a hot standby: the libpq connection string to the primary, where audit records are forwarded.",
							   NULL,
							   &aa_forward_conninfo,
							   "",
							   PGC_SIGHUP,
							   GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	MarkGUCPrefixReserved("agentauth");
}
