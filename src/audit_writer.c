/*-------------------------------------------------------------------------
 *
 * audit_writer.c
 *		The audit writer: one background worker ("agentauth audit writer")
 *		that drains the shared queue (audit_queue.c), assigns the gapless
 *		seq, stamps logged_at, chains each record (aa_chain_hash, with one
 *		reused SHA-256 context), turns it into its row (record.c), and
 *		inserts the records in batches, one transaction per batch, straight
 *		into the heap and its indexes (no triggers: the append-only trigger
 *		refuses every other writer).  Queue space is released only after the
 *		batch has committed.  Each stored row is shown to the alert rules
 *		(monitor.c), which raise their alerts after the commit.
 *
 *		Starting up.  The worker cannot connect to agentauth.database before
 *		it exists (pg_regress creates its database after starting the
 *		server), and a failed connection is a FATAL in the log every restart.
 *		So a writer that does not yet know the database exists connects to
 *		no database, polls pg_database once a second (one LOG line in all),
 *		and when it appears notes that in shared memory and exits to be
 *		restarted (bgw_restart_time 1 s) by the postmaster, connected to it.
 *		Connected, it waits quietly while the extension is not installed,
 *		and notices when it is dropped and created again.
 *
 *		logged_at is the time the writer takes the record into the chain
 *		(one clock reading per batch), never earlier than the record before
 *		it: it grows with seq, which purge_audit relies on.
 *
 *		Transactional records carry their transaction's xid.  The writer
 *		stores one only once the xid has committed, drops it when the xid
 *		aborted (or vanished in a crash), and stops at it while the
 *		transaction is still running -- a short wait: it is pushed at
 *		PRE_COMMIT and the committing backend wakes the writer.
 *
 *		The chain head goes to the server log every
 *		agentauth.head_log_interval (when it moved) and at shutdown; the
 *		status view (status.c) shows the last one logged, and the records
 *		committed (aa_queue_note_written, after each batch).
 *
 *		Whether it can write, it tells the queue (aa_queue_set_writer_state):
 *		waiting for the database; able after each batch that went through
 *		(the log found, or the extension not installed yet); stopped or
 *		failed when it exits -- failed when an error ends it, so that a
 *		writer failing at every restart is known unable to write and
 *		backends fail closed instead of queueing records it never stores.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/gin_private.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "common/cryptohash.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "agentauth.h"

#define MAX_BATCH	8192		/* rows per transaction */
#define MAX_ENTRIES	65536		/* queue entries per transaction */
#define TIDY_IDLE_MS 1000		/* idle this long, merge (tidy_patient_index) */

static volatile sig_atomic_t got_sigterm = false;
static bool exiting_cleanly = false;	/* set before the writer's own exits */

/* the chain head, as committed */
typedef struct ChainHead
{
	Oid			relid;			/* the audit_record it was read from */
	int64		seq;
	unsigned char hash[AA_HASH_LEN];
	TimestampTz logged_at;
} ChainHead;

static ChainHead head = {InvalidOid, 0, {0}, 0};
static int64 logged_seq = -1;	/* head last written to the server log */
static bool ext_missing_noted = false;
static pg_cryptohash_ctx *sha_ctx = NULL;
static MemoryContext batch_cxt = NULL;
static TupleDesc slot_desc = NULL;
static TupleTableSlot *slots[MAX_BATCH];
/*
 * The units being gathered (unit.c), at most one per backend: concurrent
 * readers' records arrive interleaved.  A backend's next record that cannot
 * join its unit stores that unit first, and any record that is not a
 * unit's entry stores every open unit first, so each backend's records
 * keep their order and every record its place relative to the
 * administrative records around it; units go in their first entry's order.
 */
#define MAX_OPEN_UNITS	16
static AAUnit *units[MAX_OPEN_UNITS];
static int	nopen = 0;			/* units[0 .. nopen-1] have entries, oldest first */
static int	log_natts = AA_AUDIT_NATTS; /* or 23: a 1.0 log, records only */

static void
writer_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* an error that ends the writer is a FATAL: it comes here uncleanly */
static void
writer_exit(int code, Datum arg)
{
	aa_queue_writer_detach(!exiting_cleanly);
}

static void
log_head(const char *why)
{
	char		hex[AA_HASH_LEN * 2 + 1];

	if (!OidIsValid(head.relid))
		return;
	hex[hex_encode((const char *) head.hash, AA_HASH_LEN, hex)] = '\0';
	ereport(LOG,
			(errmsg("agentauth audit chain head: seq=" INT64_FORMAT " row_hash=%s logged_at=%s",
					head.seq, hex,
					head.seq > 0 ? timestamptz_to_str(head.logged_at) : "none"),
			 errdetail("Written %s; keep it outside the database and pass row_hash to agentauth.verify_audit() as expected_head.", why)));
	logged_seq = head.seq;
	aa_queue_note_head_logged(head.seq, head.hash);
}

/* ------------------------------------------------------------------
 * Phase one: wait for agentauth.database to exist
 * ------------------------------------------------------------------
 */

/* without a database only a heap scan of pg_database works (as autovacuum) */
static Oid
database_exists(void)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	Oid			dbid = InvalidOid;

	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (strcmp(NameStr(db->datname), aa_database) == 0)
		{
			dbid = db->oid;
			break;
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return dbid;
}
static void
wait_for_database(void)
{
	bool		noted = false;

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	aa_queue_set_writer_state(AA_WRITER_NO_DATABASE);
	for (;;)
	{
		Oid			dbid;

		CHECK_FOR_INTERRUPTS();
		if (got_sigterm)
			proc_exit(1);
		dbid = database_exists();
		if (OidIsValid(dbid))
		{
			aa_queue_set_db_known(true);
			/* restarted by the postmaster, this time connected */
			proc_exit(1);
		}
		if (!noted)
		{
			ereport(LOG,
					(errmsg("agentauth audit writer is waiting for database \"%s\" to be created",
							aa_database)));
			noted = true;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ------------------------------------------------------------------
 * The audit log and its head
 * ------------------------------------------------------------------
 */

/*
 * audit_record's oid (the stored log) when the extension is installed,
 * else InvalidOid.  Two syscache lookups per batch; the scan of
 * pg_extension (no syscache) only for a relation not seen before:
 * audit_record, a member of the extension, is dropped with it, so the one
 * we already write to says it is installed.
 */
static Oid
audit_log_relid(void)
{
	Oid			nsp;
	Oid			relid;

	nsp = get_namespace_oid(AA_SCHEMA, true);
	if (!OidIsValid(nsp))
		return InvalidOid;
	relid = aa_record_log_relid(nsp);
	if (OidIsValid(relid) && relid != head.relid &&
		!OidIsValid(get_extension_oid("agentauth", true)))
		return InvalidOid;
	return relid;
}

/* read the last record of the log (the chain head): one the writer wrote */
static void
load_head(Relation rel)
{
	Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan = index_beginscan(rel, idx, GetActiveSnapshot(), 0, 0);
	uint64		inflight_end;
	int64		inflight_last;

	index_rescan(scan, NULL, 0, NULL, 0);
	head.relid = RelationGetRelid(rel);
	head.seq = 0;
	memset(head.hash, 0, AA_HASH_LEN);
	head.logged_at = 0;
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		slot_getallattrs(slot);
		aa_record_get_chain(slot->tts_values, slot->tts_isnull, log_natts,
							&head.seq, &head.logged_at, head.hash);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, AccessShareLock);
	aa_queue_check_head(head.relid, head.seq, head.hash);
	/* a previous writer died between committing a batch and releasing it */
	aa_queue_get_inflight(&inflight_end, &inflight_last);
	if (inflight_end > 0)
	{
		if (inflight_last > 0 && head.seq >= inflight_last)
			aa_queue_release(inflight_end);
		else
			aa_queue_set_inflight(0, 0);
	}

	/* slots for this relation's row type */
	if (slot_desc != NULL)
	{
		for (int i = 0; i < MAX_BATCH; i++)
			if (slots[i])
			{
				ExecDropSingleTupleTableSlot(slots[i]);
				slots[i] = NULL;
			}
		FreeTupleDesc(slot_desc);
	}
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		slot_desc = CreateTupleDescCopy(RelationGetDescr(rel));
		MemoryContextSwitchTo(old);
	}
}

/* ------------------------------------------------------------------
 * One batch
 * ------------------------------------------------------------------
 */

typedef enum XidState
{
	XS_COMMITTED,
	XS_ABORTED,
	XS_RUNNING
} XidState;

/*
 * The commit log first: a transaction that committed but still waits for a
 * synchronous standby is in progress in the proc array, and its records
 * must not wait for the standby.  Asked again after the proc array, for a
 * transaction that committed between the two looks.
 */
static XidState
xid_state(TransactionId xid)
{
	if (TransactionIdDidCommit(xid))
		return XS_COMMITTED;
	if (TransactionIdIsInProgress(xid))
		return XS_RUNNING;
	if (TransactionIdDidCommit(xid))
		return XS_COMMITTED;
	return XS_ABORTED;			/* aborted, or lost in a crash */
}

/* the batch's slot i, made for the log's row type when first needed */
static TupleTableSlot *
batch_slot(Relation rel, int i)
{
	if (slots[i] == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		slots[i] = MakeSingleTupleTableSlot(slot_desc, table_slot_callbacks(rel));
		MemoryContextSwitchTo(old);
	}
	ExecClearTuple(slots[i]);
	return slots[i];
}

/* the queue entry e as a record of its own (version 1), the batch's i-th row */
static void
store_record(Relation rel, ChainHead *h, TimestampTz now, int i,
			 const AAQueueEntry *e)
{
	TupleTableSlot *slot = batch_slot(rel, i);
	Datum	   *values = slot->tts_values;
	bool	   *nulls = slot->tts_isnull;
	unsigned char canon_head[AA_CANON_HEAD_LEN];
	unsigned char hash[AA_HASH_LEN];

	aa_record_decode(e, values, nulls);
	aa_record_set_no_entries(values, nulls, log_natts);
	h->seq++;
	h->logged_at = now;
	aa_record_canon_head(canon_head, 1, h->seq, h->logged_at);
	aa_chain_hash(sha_ctx, h->hash, AA_HASH_LEN,
				  (const char *) canon_head, AA_CANON_HEAD_LEN,
				  AA_ENTRY_BODY(e), e->body_len, hash);
	aa_record_set_chain(values, nulls, h->seq, h->logged_at, h->hash, hash);
	memcpy(h->hash, hash, AA_HASH_LEN);
	ExecStoreVirtualTuple(slot);
	aa_monitor_observe(values, nulls, e->statement);	/* alert rules */
}

/*
 * The open unit k as the batch's i-th row -- n records, one hash -- or, a
 * unit of one, as its record; then closed.
 */
static void
store_unit(Relation rel, ChainHead *h, TimestampTz now, int i, int k)
{
	AAUnit	   *u = units[k];
	const AAQueueEntry *single = aa_unit_take_single(u);

	if (single != NULL)
		store_record(rel, h, now, i, single);
	else
	{
		TupleTableSlot *slot = batch_slot(rel, i);
		unsigned char hash[AA_HASH_LEN];
		int64		first = h->seq + 1;

		h->seq += aa_unit_size(u);
		h->logged_at = now;
		aa_unit_finish(u, sha_ctx, first, now, h->hash,
					   slot->tts_values, slot->tts_isnull, hash);
		memcpy(h->hash, hash, AA_HASH_LEN);
		ExecStoreVirtualTuple(slot);
		aa_unit_observe(u, slot->tts_values, slot->tts_isnull); /* alert rules */
	}
	/* keep the order of the others; the emptied unit goes to the end */
	memmove(&units[k], &units[k + 1], sizeof(AAUnit *) * (MAX_OPEN_UNITS - k - 1));
	units[MAX_OPEN_UNITS - 1] = u;
	nopen--;
}

/* every open unit, oldest first, as the batch's rows from *nrec on */
static void
store_open_units(Relation rel, ChainHead *h, TimestampTz now, int *nrec)
{
	while (nopen > 0)
		store_unit(rel, h, now, (*nrec)++, 0);
}

/*
 * Take e into the open unit of its backend; false when it is no unit's
 * entry.  A unit it cannot join is stored first (rows from *nrec on), and
 * so is the oldest unit when all are open.
 */
static bool
gather(const AAQueueEntry *e, Relation rel, ChainHead *h, TimestampTz now,
	   int *nrec)
{
	int			k;

	if (log_natts != AA_AUDIT_NATTS || !aa_unit_candidate(e))
		return false;
	for (k = 0; k < nopen; k++)
		if (aa_unit_backend(units[k]) == e->backend)
			break;
	if (k < nopen)
	{
		if (aa_unit_add(units[k], e))
			return true;
		store_unit(rel, h, now, (*nrec)++, k);
	}
	if (nopen == MAX_OPEN_UNITS)
		store_unit(rel, h, now, (*nrec)++, 0);
	if (!aa_unit_add(units[nopen], e))
		return false;			/* not an access or denied record */
	nopen++;
	return true;
}

/*
 * Store what the queue holds, up to MAX_BATCH records, in one transaction.
 * Returns the number of queue entries consumed (stored or dropped); sets
 * *blocked when it stopped at a transaction still in progress, and
 * *no_log when the extension is not installed.
 */
static int
process_batch(bool *blocked, bool *no_log)
{
	uint64		tail;
	uint64		qhead;
	uint64		pos;
	int			nrec = 0;
	int			nentries = 0;
	Oid			relid;
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	ChainHead	h;
	TimestampTz now;
	CommandId	cid;
	MemoryContext old;

	*blocked = false;
	*no_log = false;
	aa_queue_bounds(&tail, &qhead);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());

	relid = audit_log_relid();
	if (!OidIsValid(relid))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		head.relid = InvalidOid;
		*no_log = true;
		return 0;
	}
	ext_missing_noted = false;
	rel = table_open(relid, RowExclusiveLock);
	log_natts = aa_record_check_tupdesc(RelationGetDescr(rel));
	/* a new log, or the same one given the unit columns by the 1.1 update */
	if (head.relid != relid || slot_desc == NULL ||
		slot_desc->natts != RelationGetDescr(rel)->natts)
	{
		load_head(rel);
		aa_queue_note_written(0, head.relid, head.seq, head.hash, 0);
		aa_queue_bounds(&tail, &qhead);
		if (logged_seq < 0)
			log_head("when the audit writer started");
	}
	if (tail == qhead)
	{
		table_close(rel, RowExclusiveLock);
		PopActiveSnapshot();
		CommitTransactionCommand();
		return 0;
	}

	pgstat_report_activity(STATE_RUNNING, "writing audit records");
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);
	cid = GetCurrentCommandId(true);

	h = head;
	now = GetCurrentTimestamp();
	if (now < h.logged_at)
		now = h.logged_at;

	MemoryContextReset(batch_cxt);
	old = MemoryContextSwitchTo(batch_cxt);
	pos = tail;
	/* room for the open units and a record in each round */
	while (pos < qhead && nrec < MAX_BATCH - MAX_OPEN_UNITS - 2 &&
		   nentries < MAX_ENTRIES)
	{
		const AAQueueEntry *e = aa_queue_entry_at(pos);

		if (TransactionIdIsValid(e->xid))
		{
			XidState	st = xid_state(e->xid);

			if (st == XS_RUNNING)
			{
				*blocked = true;
				break;
			}
			/* or moved from the spill table and already stored */
			if (st == XS_ABORTED ||
				(e->spill_txn != 0 && !aa_spill_take(e->spill_txn, e->spill_ord)))
			{
				pos += e->len;
				nentries++;
				continue;
			}
		}

		/* a patient's record of a statement: an entry of a unit */
		if (gather(e, rel, &h, now, &nrec))
		{
			pos += e->len;
			nentries++;
			continue;
		}
		/* anything else comes after every record that arrived before it */
		store_open_units(rel, &h, now, &nrec);

		store_record(rel, &h, now, nrec++, e);
		nentries++;
		pos += e->len;
	}
	store_open_units(rel, &h, now, &nrec);

	if (nrec > 0)
	{
		/*
		 * Always at the end of the table, never into free space found
		 * earlier (TABLE_INSERT_SKIP_FSM): the log then stays in seq order
		 * on disk, and verify_audit() reads it with a sequential scan.  A
		 * record put into an early page's free space by the FSM sends the
		 * verifier to the primary key, five times slower.
		 */
		table_multi_insert(rel, slots, nrec, cid, TABLE_INSERT_SKIP_FSM, NULL);
		for (int i = 0; i < nrec; i++)
		{
			List	   *r;

			ResetPerTupleExprContext(estate);
#if PG_VERSION_NUM >= 160000
			r = ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL, false);
#else
			r = ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
#endif
			list_free(r);
		}
	}
	MemoryContextSwitchTo(old);

	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);

	if (nentries > 0)
		aa_queue_set_inflight(pos, nrec > 0 ? h.seq : 0);
	PopActiveSnapshot();
	/* one commit, one WAL flush (synchronous_commit is on) for the batch */
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (nentries > 0)
	{
		int64		written = h.seq - head.seq;	/* records, not rows */

		head = h;
		aa_queue_release(pos);
		aa_queue_note_written(written, h.relid, h.seq, h.hash, h.logged_at);
	}
	for (int i = 0; i < nrec; i++)
		ExecClearTuple(slots[i]);
	MemoryContextReset(batch_cxt);
	return nentries;
}

/*
 * The units' GIN index gathers new keys in a pending list that every
 * patient lookup reads whole (about 2 us a page: a report up to 2.7 times
 * slower), merged when an insert finds it past gin_pending_list_limit or by
 * VACUUM.  Idle TIDY_IDLE_MS, the writer merges it (bench/README.md).  As
 * an insert does, it only tries the list's lock: a VACUUM holding it for
 * seconds must not hold the writer, and the statements waiting for it; and
 * it does not begin with records queued.
 */
static void
tidy_patient_index(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	uint64		tail,
				qhead;

	if (RecoveryInProgress())
		return;
	aa_queue_bounds(&tail, &qhead);
	if (tail != qhead)
		return;
	PG_TRY();					/* a failure is the next merge's to do */
	{
		Oid			idx;

		StartTransactionCommand();
		/* none in a 1.0 log, or without the extension */
		idx = get_relname_relid("audit_record_entry_patients_idx",
								get_namespace_oid("agentauth", true));
		if (OidIsValid(idx))
		{
			Relation	rel = index_open(idx, RowExclusiveLock);

			if (rel->rd_rel->relam == GIN_AM_OID)
			{
				GinState	gs;

				pgstat_report_activity(STATE_RUNNING, "merging the log's patient index");
				initGinState(&gs, rel);
				ginInsertCleanup(&gs, true, true, false, NULL);
			}
			index_close(rel, RowExclusiveLock);
		}
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("agentauth audit writer could not merge the pending list of the log's patient index: %s",
						edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(oldcxt);
}

/* ------------------------------------------------------------------
 * Main loop
 * ------------------------------------------------------------------
 */
void
aa_audit_writer_main(Datum main_arg)
{
	TimestampTz next_head_log;
	TimestampTz gather_since = 0;
	TimestampTz stored_at = 0;	/* the last store since the last tidy */
	bool		own_records = false;	/* the last round's alerts queued some */

	pqsignal(SIGTERM, writer_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	if (!aa_queue_db_known())
		wait_for_database();

	/* if this fails (database dropped), the next start polls again */
	aa_queue_set_db_known(false);
	BackgroundWorkerInitializeConnection(aa_database, NULL, 0);
	aa_queue_set_db_known(true);

	/*
	 * Our queries run as the bootstrap superuser: resolve nothing in a
	 * schema that a database owner's ALTER DATABASE ... SET search_path
	 * put first, and follow none of its other settings (util.c).
	 */
	aa_worker_pin_settings();
	/* durable commits whatever the server's default */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("agentauth audit writer");

	/* the hash context lives as long as the writer: give it an owner */
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "agentauth audit writer");
	sha_ctx = pg_cryptohash_create(PG_SHA256);
	if (sha_ctx == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	CurrentResourceOwner = NULL;
	/*
	 * A batch's decoded columns take a few MB; a kept block of that size
	 * survives each reset, so the memory is not given back to the kernel and
	 * faulted in again every batch.
	 */
	batch_cxt = AllocSetContextCreate(TopMemoryContext, "agentauth audit batch",
									  16 * 1024 * 1024, 16 * 1024 * 1024,
									  16 * 1024 * 1024);
	for (int k = 0; k < MAX_OPEN_UNITS; k++)
		units[k] = aa_unit_create(TopMemoryContext);

	on_shmem_exit(writer_exit, (Datum) 0);
	aa_queue_writer_attach(MyLatch);

	next_head_log = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												aa_head_log_interval * 1000L);
	while (!got_sigterm)
	{
		bool		blocked = false;
		bool		no_log = false;
		int			n;
		long		timeout;
		TimestampTz now;
		uint64		tail,
					qhead,
					qhead_before;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/*
		 * Records nobody waits for (audit_sync = off): gather them for up
		 * to AA_GATHER_MS and commit them together, one WAL flush for all,
		 * and each backend's run of one statement's records as one unit
		 * (at 8 clients, 10 ms made units of about 20 entries, 50 ms of
		 * about 100: a third of the stored bytes per entry less).  Never
		 * more than a quarter of audit_wait_timeout: records gathered are
		 * records waiting, and at that age statements fail closed.  A
		 * backend that starts waiting, or a filling queue, wakes us.  The
		 * records of the alerts just raised (a suspension, an alert) are
		 * not held back: whoever the alert reached looks for them next.
		 */
		if (!own_records && aa_queue_should_gather())
		{
			now = GetCurrentTimestamp();
			if (gather_since == 0)
				gather_since = now;
			timeout = Min(AA_GATHER_MS, aa_audit_wait_timeout / 4) -
				TimestampDifferenceMilliseconds(gather_since, now);
			if (timeout > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 timeout, PG_WAIT_EXTENSION);
				continue;
			}
		}
		gather_since = 0;

		/*
		 * Nothing queued and the log known: no transaction to start (the
		 * loop comes here once more after every batch).
		 */
		aa_queue_bounds(&tail, &qhead);
		if (OidIsValid(head.relid) && tail == qhead)
			n = 0;
		else
			n = process_batch(&blocked, &no_log);
		aa_queue_set_writer_state(AA_WRITER_ABLE);
		if (no_log && !ext_missing_noted)
		{
			ereport(LOG,
					(errmsg("agentauth audit writer is waiting for the extension to be created in database \"%s\"",
							aa_database)));
			ext_missing_noted = true;
		}

		/* raise the alerts of what was just committed (monitor.c) */
		aa_queue_bounds(&tail, &qhead);
		qhead_before = qhead;
		aa_monitor_after_commit();
		aa_queue_bounds(&tail, &qhead);
		own_records = (qhead != qhead_before);
		/* the writer's commits and WAL in pg_stat_* (at most once a second) */
		pgstat_report_stat(false);

		now = GetCurrentTimestamp();
		if (now >= next_head_log)
		{
			if (OidIsValid(head.relid) && head.seq != logged_seq)
				log_head("every agentauth.head_log_interval");
			next_head_log = TimestampTzPlusMilliseconds(now, aa_head_log_interval * 1000L);
		}

		stored_at = (n > 0) ? now : stored_at;
		if (n > 0 && !blocked)
			continue;			/* more may be waiting */
		timeout = blocked ? 10L : (no_log ? 1000L :
								   Max(1L, TimestampDifferenceMilliseconds(now, next_head_log)));
		if (stored_at != 0 && !blocked && !no_log)
		{
			long		idle = TimestampDifferenceMilliseconds(stored_at, now);

			if (idle >= TIDY_IDLE_MS)
			{
				tidy_patient_index();	/* stored again first: again later */
				stored_at = 0;
				continue;
			}
			timeout = Min(timeout, TIDY_IDLE_MS - idle);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
	}

	/* shutting down: store what is there, then leave the head in the log */
	for (int i = 0; i < 100; i++)
	{
		bool		blocked,
					no_log;

		if (process_batch(&blocked, &no_log) == 0)
			break;
	}
	log_head("at shutdown");
	/* restarted when terminated on its own; not at server shutdown */
	exiting_cleanly = true;
	proc_exit(1);
}
