/*-------------------------------------------------------------------------
 *
 * audit_spill_mover.c
 *		The "agentauth audit spill" background worker: moves the
 *		administrative records that committed transactions spilled into
 *		agentauth._audit_spill (audit_spill.c) into the audit queue.
 *
 *		One chunk (at most aa_spill_chunk() bytes, oldest transaction
 *		first, in the order each wrote them) per transaction of its own:
 *		the rows are deleted and their records staged as this
 *		transaction's own administrative records (aa_audit_stage_entry,
 *		re-tagged with its xid), so the writer stores the chunk iff the
 *		deletion commits -- exactly once across crashes of either side.
 *		With audit_sync on (the default) each commit also waits until the
 *		writer has stored the chunk.
 *
 *		It waits for the writer to know that agentauth.database exists
 *		(no FATAL while it does not), polls every 10 s for rows a crash
 *		left behind, and is woken by every committed spill.  An error (the
 *		writer cannot write, say) ends it; the postmaster starts it again
 *		after a second, and the rows are still there.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "agentauth.h"

static volatile sig_atomic_t got_sigterm = false;

static void
mover_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* one chunk; returns the number of records moved */
static uint64
move_chunk(void)
{
	Size		limit = aa_spill_chunk();
	Size		bytes = 0;
	uint64		n = 0;
	StringInfoData tids;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!OidIsValid(aa_spill_relid()))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return 0;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT ctid::text, entry FROM agentauth._audit_spill "
					"ORDER BY txn, ord LIMIT 10000", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "cannot read agentauth._audit_spill");
	initStringInfo(&tids);
	appendStringInfoString(&tids, "{");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		Datum		d = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);
		bytea	   *b;
		AAQueueEntry hdr;

		if (isnull)
			elog(ERROR, "agentauth._audit_spill holds a NULL record");
		b = DatumGetByteaPP(d);
		if (VARSIZE_ANY_EXHDR(b) >= MAXALIGN(sizeof(AAQueueEntry)))
			memcpy(&hdr, VARDATA_ANY(b), sizeof(hdr));
		if (VARSIZE_ANY_EXHDR(b) < MAXALIGN(sizeof(AAQueueEntry)) ||
			hdr.len != VARSIZE_ANY_EXHDR(b) ||
			MAXALIGN(sizeof(AAQueueEntry)) + hdr.body_len > hdr.len)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("agentauth._audit_spill holds a malformed record at %s",
							SPI_getvalue(tup, SPI_tuptable->tupdesc, 1))));
		if (n > 0 && bytes + hdr.len > limit)
			break;
		aa_audit_stage_entry(VARDATA_ANY(b), hdr.len);	/* copied */
		bytes += hdr.len;
		if (n > 0)
			appendStringInfoChar(&tids, ',');
		appendStringInfo(&tids, "\"%s\"", SPI_getvalue(tup, SPI_tuptable->tupdesc, 1));
		n++;
	}
	appendStringInfoChar(&tids, '}');
	if (n > 0)
	{
		Oid			argtype = TIDARRAYOID;
		Datum		arg = OidInputFunctionCall(F_ARRAY_IN, tids.data, TIDOID, -1);

		if (SPI_execute_with_args("DELETE FROM agentauth._audit_spill WHERE ctid = ANY ($1)",
								  1, &argtype, &arg, NULL, false, 0) != SPI_OK_DELETE ||
			SPI_processed != n)
			elog(ERROR, "agentauth._audit_spill changed while its records were moved");
	}
	SPI_finish();
	PopActiveSnapshot();
	/* PRE_COMMIT queues the chunk, COMMIT waits for the writer */
	CommitTransactionCommand();
	pgstat_report_stat(false);
	return n;
}

void
aa_spill_mover_main(Datum main_arg)
{
	pqsignal(SIGTERM, mover_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* the writer finds out whether the database exists */
	while (!aa_queue_db_known() && !got_sigterm)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	if (got_sigterm)
		proc_exit(1);
	BackgroundWorkerInitializeConnection(aa_database, NULL, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("agentauth audit spill");
	aa_spill_attach(MyLatch);

	while (!got_sigterm)
	{
		uint64		ticket;
		uint64		n;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		ticket = aa_spill_requested();
		pgstat_report_activity(STATE_RUNNING, "moving spilled audit records");
		while (!got_sigterm && (n = move_chunk()) > 0)
			aa_spill_note_moved(n);
		if (!got_sigterm)
			aa_spill_note_done(ticket);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10000L, PG_WAIT_EXTENSION);
	}
	proc_exit(1);				/* restarted unless the server is stopping */
}
