/*-------------------------------------------------------------------------
 *
 * audit_spill.c
 *		Administrative audit records of a large transaction (a bulk load of
 *		consents): spilled into the table agentauth._audit_spill inside the
 *		transaction, instead of one push into the shared queue at commit.
 *
 *		Why.  A transaction's administrative records are stored iff it
 *		commits; the writer stops at the first of them until it knows, so
 *		they were pushed in one piece at PRE_COMMIT, and a transaction whose
 *		records did not fit in agentauth.audit_queue_size was refused
 *		("too many administrative audit records in one transaction"), and
 *		held them all in backend memory until then.  Spilled, they are rows
 *		the transaction itself writes: committed with it, gone with its
 *		abort -- the same guarantee, with no bound but the disk.
 *
 *		When.  audit.c calls aa_spill_write() once a transaction's staged
 *		records pass aa_spill_threshold() (a quarter of the queue): at once
 *		while the transaction is at its top level (every staged record is
 *		then of level 1, and a row written now commits exactly with them),
 *		which bounds the backend's memory by the threshold; otherwise at
 *		PRE_COMMIT.  After the commit the backend hands out a ticket
 *		(aa_spill_committed) and waits, as for its other records, until the
 *		mover has moved them (or warns that they will follow).
 *
 *		The mover (audit_spill_mover.c, the "agentauth audit spill" worker)
 *		moves committed rows into the queue a chunk at a time, each chunk
 *		staged as the administrative records of a transaction of its own,
 *		each record marked with its row's key; the writer deletes the row in
 *		the transaction that stores the record (aa_spill_take), and skips a
 *		record whose row is gone.  So a row leaves the table iff its record
 *		is in the log: a crash of the server or of either worker neither
 *		loses nor repeats a record.  (1.1 before, found by review: the mover
 *		deleted the rows itself and committed; a crash before the writer's
 *		commit lost the chunk, undetectably.)
 *
 *		This file owns the table's format, the shared state (tickets, the
 *		mover's latch) and the worker's registration.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "agentauth.h"

typedef struct AASpillShared
{
	slock_t		mutex;
	Latch	   *mover_latch;	/* NULL: no mover attached */
	pg_atomic_uint64 requested; /* tickets handed out (committed spills) */
	pg_atomic_uint64 done;		/* every ticket up to this one is moved */
	pg_atomic_uint64 moved;		/* records moved since the server started */
	ConditionVariable cv;		/* done or moved advanced */
} AASpillShared;

static AASpillShared *spill = NULL;
static int64 spill_ord = 0;		/* order of this backend's rows */

static Size
spill_shmem_size(void)
{
	return MAXALIGN(sizeof(AASpillShared));
}

static void
spill_shmem_startup(void)
{
	bool		found;

	spill = ShmemInitStruct("agentauth audit spill", spill_shmem_size(), &found);
	if (!found)
	{
		SpinLockInit(&spill->mutex);
		spill->mover_latch = NULL;
		pg_atomic_init_u64(&spill->requested, 0);
		pg_atomic_init_u64(&spill->done, 0);
		pg_atomic_init_u64(&spill->moved, 0);
		ConditionVariableInit(&spill->cv);
	}
}

void
aa_spill_init(void)
{
	BackgroundWorker worker;

	aa_shmem_register(spill_shmem_size, spill_shmem_startup);
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "agentauth");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aa_spill_mover_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "agentauth audit spill");
	snprintf(worker.bgw_type, BGW_MAXLEN, "agentauth audit spill");
	RegisterBackgroundWorker(&worker);
}

/* staged records past this many bytes go to the table */
Size
aa_spill_threshold(void)
{
	return aa_queue_capacity() / 4;
}

/* the mover moves at most this many bytes per transaction */
Size
aa_spill_chunk(void)
{
	return aa_queue_capacity() / 8;
}

Oid
aa_spill_relid(void)
{
	Oid			nsp = get_namespace_oid("agentauth", true);

	return OidIsValid(nsp) ? get_relname_relid("_audit_spill", nsp) : InvalidOid;
}

/* a valid btree on (txn, ord), ascending, nothing else: the move's order */
static bool
is_order_index(Relation idx)
{
	Form_pg_index ind = idx->rd_index;

	return idx->rd_rel->relam == BTREE_AM_OID &&
		ind->indisvalid && ind->indisready && ind->indislive &&
		ind->indnatts == 2 && ind->indnkeyatts == 2 &&
		ind->indkey.values[0] == 1 && ind->indkey.values[1] == 2 &&
		idx->rd_indoption[0] == 0 && idx->rd_indoption[1] == 0 &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
		heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL);
}

static void no_order_index(void) pg_attribute_noreturn();

static void
no_order_index(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("agentauth._audit_spill has no valid index on (txn, ord)"),
			 errhint("REINDEX TABLE agentauth._audit_spill rebuilds the extension's index _audit_spill_order.")));
}

/*
 * The table's index on (txn, ord), by which the mover reads it in order
 * (_audit_spill_order, or its copy while REINDEX CONCURRENTLY runs).  None:
 * an error, not a scan of the whole table per chunk.
 */
Oid
aa_spill_order_index(Relation rel)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			indexid = InvalidOid;

	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		bool		ok = is_order_index(idx);

		index_close(idx, AccessShareLock);
		if (ok)
		{
			indexid = lfirst_oid(lc);
			break;
		}
	}
	list_free(indexes);
	if (!OidIsValid(indexid))
		no_order_index();
	return indexid;
}

/*
 * The writer, storing a record the mover queued from the row (txn, ord):
 * delete that row in the writer's transaction, so that the record is in the
 * log iff its row is gone -- a crash before the writer's commit leaves the
 * row for the mover to queue again, and a record queued twice (a mover
 * restarted, a pass after a wait that timed out) finds its row gone the
 * second time.  False: no such row (the record is already in the log).
 * SnapshotSelf: a row this transaction deleted for an earlier copy of the
 * record is gone too.
 */
bool
aa_spill_take(int64 txn, int64 ord)
{
	Oid			relid = aa_spill_relid();
	Relation	rel;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, RowExclusiveLock);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(txn));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(ord));
	scan = systable_beginscan(rel, aa_spill_order_index(rel), true, SnapshotSelf,
							  2, keys);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		simple_heap_delete(rel, &tup->t_self);
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, NoLock);
	return found;
}

/*
 * Write the queued entries data[0..len) as rows of the current
 * (sub)transaction, with their entries in each of the table's indexes that
 * takes entries (the order index, and a copy REINDEX CONCURRENTLY is
 * building).  false: there is no spill table (the extension's SQL is older
 * than the library); the caller keeps them.
 */
bool
aa_spill_write(const char *data, Size len)
{
	Oid			relid;
	Relation	rel;
	TupleDesc	desc;
	List	   *indexes;
	ListCell   *lc;
	int			nidx = 0;
	bool		have_order = false;
	Relation   *idx;
	IndexInfo **ii;
	Size		off = 0;
	uint64		txn;

	if (RecoveryInProgress() || !OidIsValid(relid = aa_spill_relid()))
		return false;
	/* at the backend's exit no wait could end: a lock held elsewhere, not here */
	if (proc_exit_inprogress && !ConditionalLockRelationOid(relid, RowExclusiveLock))
		return false;
	txn = U64FromFullTransactionId(GetTopFullTransactionId());
	rel = table_open(relid, RowExclusiveLock);
	desc = RelationGetDescr(rel);
	if (desc->natts != 3)
		elog(ERROR, "agentauth._audit_spill has an unexpected shape");
	indexes = RelationGetIndexList(rel);
	if (proc_exit_inprogress)
	{
		foreach(lc, indexes)
			if (!ConditionalLockRelationOid(lfirst_oid(lc), RowExclusiveLock))
			{
				table_close(rel, RowExclusiveLock);
				return false;
			}
	}
	idx = palloc(list_length(indexes) * sizeof(Relation));
	ii = palloc(list_length(indexes) * sizeof(IndexInfo *));
	foreach(lc, indexes)
	{
		Relation	r = index_open(lfirst_oid(lc), RowExclusiveLock);

		if (!r->rd_index->indisready)
		{
			index_close(r, RowExclusiveLock);
			continue;
		}
		idx[nidx] = r;
		ii[nidx] = BuildIndexInfo(r);
		/* plain columns only: no executor here to compute anything else */
		if (ii[nidx]->ii_Expressions != NIL || ii[nidx]->ii_Predicate != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("agentauth._audit_spill has an index on an expression or with a predicate: \"%s\"",
							RelationGetRelationName(r))));
		have_order |= is_order_index(r);
		nidx++;
	}
	list_free(indexes);
	if (!have_order)
		no_order_index();		/* the mover needs one: fail before the commit */
	while (off < len)
	{
		const AAQueueEntry *e = (const AAQueueEntry *) (data + off);
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		bytea	   *b;
		HeapTuple	tup;

		if (e->len < MAXALIGN(sizeof(AAQueueEntry)) || e->len > len - off)
			elog(ERROR, "corrupt staged audit record");
		b = palloc(VARHDRSZ + e->len);
		SET_VARSIZE(b, VARHDRSZ + e->len);
		memcpy(VARDATA(b), data + off, e->len);
		values[0] = Int64GetDatum((int64) txn);
		values[1] = Int64GetDatum(++spill_ord);
		values[2] = PointerGetDatum(b);
		tup = heap_form_tuple(desc, values, nulls);
		simple_heap_insert(rel, tup);
		for (int k = 0; k < nidx; k++)
		{
			Datum		ivalues[INDEX_MAX_KEYS];
			bool		inulls[INDEX_MAX_KEYS];

			for (int a = 0; a < ii[k]->ii_NumIndexAttrs; a++)
			{
				AttrNumber	attno = ii[k]->ii_IndexAttrNumbers[a];

				ivalues[a] = values[attno - 1];
				inulls[a] = false;
			}
			(void) index_insert(idx[k], ivalues, inulls, &tup->t_self, rel,
								idx[k]->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
								false, ii[k]);
		}
		heap_freetuple(tup);
		pfree(b);
		off += e->len;
	}
	for (int k = 0; k < nidx; k++)
	{
#if PG_VERSION_NUM >= 170000
		/* what an access method kept across inserts (BRIN: a buffer pin) */
		index_insert_cleanup(idx[k], ii[k]);
#endif
		index_close(idx[k], NoLock);
		pfree(ii[k]);
	}
	pfree(idx);
	pfree(ii);
	table_close(rel, NoLock);
	return true;
}

/*
 * After the commit of a transaction that spilled: wake the mover, and wait
 * until it has moved them, as long as it makes progress (a bulk load can
 * take it a while) and at most audit_wait_timeout without any.  No error
 * is possible here (the transaction has committed): a warning.  At the
 * backend's exit nobody waits for the statement to return: the records are
 * kept in the table, and the exit goes on.
 */
void
aa_spill_committed(void)
{
	uint64		ticket;
	uint64		last_moved;
	TimestampTz progress_at;

	if (spill == NULL)
		return;
	ticket = pg_atomic_add_fetch_u64(&spill->requested, 1);
	SpinLockAcquire(&spill->mutex);
	if (spill->mover_latch)
		SetLatch(spill->mover_latch);
	SpinLockRelease(&spill->mutex);
	if (proc_exit_inprogress)
		return;

	last_moved = pg_atomic_read_u64(&spill->moved);
	progress_at = GetCurrentTimestamp();
	ConditionVariablePrepareToSleep(&spill->cv);
	while (pg_atomic_read_u64(&spill->done) < ticket)
	{
		uint64		m = pg_atomic_read_u64(&spill->moved);

		if (m != last_moved)
		{
			last_moved = m;
			progress_at = GetCurrentTimestamp();
		}
		else if (TimestampDifferenceExceeds(progress_at, GetCurrentTimestamp(),
											aa_audit_wait_timeout))
		{
			ereport(WARNING,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("the audit records of this transaction are not yet written"),
					 errdetail("The transaction committed and its administrative records are kept in agentauth._audit_spill; the audit spill worker will move them into the log when it can.")));
			break;
		}
		(void) ConditionVariableTimedSleep(&spill->cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/* the mover's side */
void
aa_spill_attach(Latch *latch)
{
	SpinLockAcquire(&spill->mutex);
	spill->mover_latch = latch;
	SpinLockRelease(&spill->mutex);
}

uint64
aa_spill_requested(void)
{
	return pg_atomic_read_u64(&spill->requested);
}

void
aa_spill_note_moved(uint64 nrecords)
{
	pg_atomic_fetch_add_u64(&spill->moved, nrecords);
	ConditionVariableBroadcast(&spill->cv);
}

void
aa_spill_note_done(uint64 ticket)
{
	if (pg_atomic_read_u64(&spill->done) < ticket)
		pg_atomic_write_u64(&spill->done, ticket);
	ConditionVariableBroadcast(&spill->cv);
}
