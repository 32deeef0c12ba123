/*-------------------------------------------------------------------------
 *
 * audit_spill_mover.c
 *		The "agentauth audit spill" background worker: moves the
 *		administrative records that committed transactions spilled into
 *		agentauth._audit_spill (audit_spill.c) into the audit queue.
 *
 *		One chunk (at most aa_spill_chunk() bytes, oldest transaction
 *		first, in the order each wrote them: read by the table's index on
 *		(txn, ord), as far as the chunk goes) per transaction of its own:
 *		the rows' records are staged as this transaction's own
 *		administrative records (aa_audit_stage_entry, re-tagged with its
 *		xid and marked with each row's key).  The rows stay: the writer
 *		deletes each in the transaction that stores its record, and skips a
 *		record whose row is gone (aa_spill_take) -- exactly once across
 *		crashes of the server or either side (1.1 before, found by review:
 *		this transaction deleted the rows, and a crash between its commit
 *		and the writer's lost the chunk).  Each commit also waits until the
 *		writer has stored the chunk (audit_sync is forced on here), and a
 *		pass marks the committing sessions' tickets done only when every
 *		chunk of it was stored in time.
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

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/rel.h"
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

/* the key (txn, ord) of the last row a pass moved */
typedef struct SpillKey
{
	bool		valid;
	int64		txn;
	int64		ord;
} SpillKey;

typedef struct Chunk
{
	Size		limit;			/* bytes */
	Size		bytes;
	uint64		n;
	SpillKey	last;
	bool		full;
} Chunk;

/*
 * Stage the rows of one ordered scan of the index (keys: where it starts)
 * until the chunk is full.
 */
/*
 * Whether a spilled entry's parts lie inside it as the writer reads them:
 * the body, then each jsonb copy MAXALIGNed, each copy as long as its own
 * header says.  The rows are written only by this module's backends, but a
 * superuser can insert one by hand: it must stop the mover, not make the
 * writer read past the entry (1.1 before: only the body was checked).
 */
static bool
entry_fits(const AAQueueEntry *hdr, const char *entry)
{
	uint64		need = MAXALIGN(sizeof(AAQueueEntry));
	const char *copy;

	if (hdr->len != MAXALIGN(hdr->len))
		return false;
	need += MAXALIGN((uint64) hdr->body_len);
	copy = entry + need;
	need += MAXALIGN((uint64) hdr->authority_len) + MAXALIGN((uint64) hdr->detail_len);
	if (need > hdr->len)
		return false;
	for (int i = 0; i < 2; i++)
	{
		uint32		len = i == 0 ? hdr->authority_len : hdr->detail_len;
		uint32		have;

		if (len == 0)
			continue;
		if (len < VARHDRSZ)
			return false;
		memcpy(&have, copy, sizeof(have));	/* the copy's varlena header */
		if (VARSIZE(&have) != len || VARATT_IS_EXTENDED(&have))
			return false;
		copy += MAXALIGN(len);
	}
	return true;
}

static void
scan_into_chunk(Relation rel, Relation idx, int nkeys, ScanKey keys, Chunk *c)
{
	SysScanDesc scan;
	HeapTuple	tup;
	TupleDesc	desc = RelationGetDescr(rel);

	scan = systable_beginscan_ordered(rel, idx, GetActiveSnapshot(), nkeys, keys);
	while ((tup = systable_getnext_ordered(scan, ForwardScanDirection)) != NULL)
	{
		bool		isnull[3];
		Datum		d[3];
		bytea	   *b;
		AAQueueEntry hdr;

		heap_deform_tuple(tup, desc, d, isnull);
		if (isnull[0] || isnull[1] || isnull[2])
			elog(ERROR, "agentauth._audit_spill holds a NULL");
		/* a row the mover cannot queue stops it: it is never skipped */
		b = DatumGetByteaPP(d[2]);
		if (VARSIZE_ANY_EXHDR(b) >= MAXALIGN(sizeof(AAQueueEntry)))
			memcpy(&hdr, VARDATA_ANY(b), sizeof(hdr));
		if (VARSIZE_ANY_EXHDR(b) < MAXALIGN(sizeof(AAQueueEntry)) ||
			hdr.len != VARSIZE_ANY_EXHDR(b) ||
			!entry_fits(&hdr, VARDATA_ANY(b)))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("agentauth._audit_spill holds a malformed record (txn " INT64_FORMAT ", ord " INT64_FORMAT ")",
							DatumGetInt64(d[0]), DatumGetInt64(d[1])),
					 errdetail("The audit spill worker moves no record after it until the row is repaired or removed."),
					 errhint("Compare the row with the queued record format (src/record.c); removing it loses that audit record.")));
		if (c->n > 0 && c->bytes + hdr.len > c->limit)
		{
			c->full = true;
			break;
		}
		/* copied, with the row's key: the writer deletes the row */
		aa_audit_stage_entry(VARDATA_ANY(b), hdr.len,
							 DatumGetInt64(d[0]), DatumGetInt64(d[1]));
		c->bytes += hdr.len;
		c->n++;
		c->last.valid = true;
		c->last.txn = DatumGetInt64(d[0]);
		c->last.ord = DatumGetInt64(d[1]);
	}
	systable_endscan_ordered(scan);
}

/*
 * One chunk; returns the number of records moved.  The rows are read in
 * order by the table's index on (txn, ord) -- oldest transaction first, in
 * the order each wrote them -- from after the last row this pass moved
 * (*last), and only as far as the chunk goes: the work per record does not
 * grow with the rows still waiting, nor with the index entries of rows
 * already moved that an older snapshot still keeps from being marked dead
 * (a sort of the whole table per chunk made a 100,000-record load
 * quadratic).  A row that committed with a smaller key after the pass began
 * is left to the next pass, which starts from the beginning: its
 * transaction's ticket is later than this pass's.
 */
static uint64
move_chunk(SpillKey *last, bool *unwritten)
{
	Chunk		c;
	Oid			relid;
	Relation	rel;
	Relation	idx;
	ScanKeyData keys[2];

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	relid = aa_spill_relid();
	if (!OidIsValid(relid))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		return 0;
	}
	rel = table_open(relid, AccessShareLock);
	if (RelationGetDescr(rel)->natts != 3)
		elog(ERROR, "agentauth._audit_spill has an unexpected shape");
	idx = index_open(aa_spill_order_index(rel), AccessShareLock);
	memset(&c, 0, sizeof(c));
	c.limit = aa_spill_chunk();
	c.last = *last;
	if (!last->valid)
		scan_into_chunk(rel, idx, 0, NULL, &c);
	else
	{
		/* the rest of the last transaction, then the later ones */
		ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ,
					Int64GetDatum(last->txn));
		ScanKeyInit(&keys[1], 2, BTGreaterStrategyNumber, F_INT8GT,
					Int64GetDatum(last->ord));
		scan_into_chunk(rel, idx, 2, keys, &c);
		if (!c.full)
		{
			ScanKeyInit(&keys[0], 1, BTGreaterStrategyNumber, F_INT8GT,
						Int64GetDatum(last->txn));
			scan_into_chunk(rel, idx, 1, keys, &c);
		}
	}
	index_close(idx, AccessShareLock);
	table_close(rel, NoLock);
	PopActiveSnapshot();
	/* PRE_COMMIT queues the chunk, COMMIT waits for the writer */
	CommitTransactionCommand();
	pgstat_report_stat(false);
	*last = c.last;
	if (c.n > 0 && aa_audit_commit_unwritten())
		*unwritten = true;
	return c.n;
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
	aa_worker_pin_settings();
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	/* a chunk counts as moved once the writer has stored it */
	SetConfigOption("agentauth.audit_sync", "on", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("agentauth audit spill");
	aa_spill_attach(MyLatch);

	while (!got_sigterm)
	{
		uint64		ticket;
		uint64		n;
		SpillKey	last;
		bool		unwritten;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		ticket = aa_spill_requested();
		pgstat_report_activity(STATE_RUNNING, "moving spilled audit records");
		last.valid = false;		/* a pass starts from the beginning */
		unwritten = false;
		while (!got_sigterm && (n = move_chunk(&last, &unwritten)) > 0)
			aa_spill_note_moved(n);

		/*
		 * The tickets are done once their records are in the log: not when
		 * the writer did not store a chunk in time (the committing backends
		 * then warn); the next pass, which finds nothing, marks them.
		 */
		if (!got_sigterm && !unwritten)
			aa_spill_note_done(ticket);
		pgstat_report_stat(true);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10000L, PG_WAIT_EXTENSION);
	}
	proc_exit(1);				/* restarted unless the server is stopping */
}
