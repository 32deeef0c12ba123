/*-------------------------------------------------------------------------
 *
 * agentauth.c
 *		Module entry: refuse to load outside shared_preload_libraries, then
 *		let each module install its settings, shared memory and hooks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "agentauth.h"

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("agentauth must be loaded via shared_preload_libraries"),
				 errhint("Add agentauth to shared_preload_libraries in postgresql.conf and restart the server.")));

	aa_guc_init();
	aa_redact_init();			/* before anything can log a secret */
	aa_label_init();			/* pg_upgrade restores our labels */
	if (IsBinaryUpgrade)
		return;

	aa_shmem_init();

	/*
	 * audit first: at each transaction event the callback registered last
	 * runs first, and the audit module's push must come after what the
	 * others emit (a transaction-only session's end at commit, the counts
	 * of a statement aborted).
	 */
	aa_audit_init();			/* records: queue, writer, chain */
	aa_session_init();			/* who: the backend's agentauth session */
	aa_btg_init();				/* break-the-glass ends with its session */
	aa_utility_init();			/* utility statements: DDL, audit log, DISCARD */
	aa_policy_init();			/* rewrite: the row check on protected tables */
	aa_columns_init();			/* ExecutorStart: column scope */
	aa_stats_init();			/* plans and statistics: no withheld contents */
	aa_access_init();			/* rows: the statement's access context */
	aa_replica_init();			/* hot standbys: replayed changes reach caches */
	aa_forward_init();			/* hot standbys: records forwarded to the primary */
	aa_monitor_init();			/* alerts on the records written */
	aa_shmem_init_publishing();	/* last: a commit's changes published first */
}
