/*-------------------------------------------------------------------------
 *
 * audit_queue.c
 *		The shared-memory queue between the backends that produce audit
 *		records and the one audit writer that chains and stores them.
 *
 *		A ring buffer of agentauth.audit_queue_size bytes, addressed by
 *		64-bit positions that only grow (position % size is the offset), so
 *		"everything before position p" is a plain comparison.  Entries are
 *		whole queued records (record.c's AAQueueEntry), MAXALIGNed, opaque
 *		here, and may wrap around the end of the buffer.
 *
 *		  committed <= head
 *
 *		committed is the tail.  Backends append at head under the queue
 *		lock, in one lock round per batch of records.  The writer reads from
 *		committed without the lock (only it moves committed, and entries
 *		before head are complete: head moves after a write barrier), and
 *		after the transaction holding a batch has committed it moves
 *		committed past the batch (under the lock) and broadcasts the
 *		condition variable: space is released only once the records are
 *		durable, so a writer that dies re-reads what it had not committed.
 *		A backend waiting for its records (audit_sync) or for space sleeps on
 *		that condition variable.
 *
 *		Waking the writer: a push wakes it only when the queue was empty
 *		(everything committed) or is filling up; a backend that waits for
 *		its records (audit_sync) counts itself in sync_waiters and wakes it,
 *		and its pushes move sync_end (aa_queue_note_sync): records someone
 *		will wait for are not gathered.
 *		While nobody waits and little is queued, the writer gathers records
 *		for up to AA_GATHER_MS before committing them in one transaction
 *		(aa_queue_should_gather): records of audit_sync = off statements
 *		share one WAL flush instead of paying one each.
 *
 *		How late the writer is.  Each entry is stamped with the time it was
 *		pushed, and the shared state keeps the stamp of the oldest entry not
 *		yet committed (oldest_at: set by the push onto an empty queue, moved
 *		by aa_queue_release to the next entry's), so a backend learns with
 *		one atomic read that nothing is waiting, and with a clock reading
 *		how long the oldest has.  The writer also says whether it can write
 *		(writer_state, and unable_since: when it stopped being able): a
 *		writer that exited, or exits again and again with an error, is known
 *		unable before anything waits for it.  aa_queue_late() puts both
 *		together for audit.c, which fails statements closed on it.
 *
 *		What the status view shows (status.c, agentauth.status).  The writer
 *		also notes, under the mutex, when it started, how many records it
 *		has committed (in all, and in each of the last AA_RATE_SECONDS
 *		seconds, for a recent rate), the newest seq, and the chain head it
 *		last wrote to the server log; aa_queue_status() reads them with the
 *		rest for one consistent-enough picture.  Nothing here is on the path
 *		of a statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "agentauth.h"

typedef struct AAQueue
{
	LWLock		lock;			/* appending at head */
	int			tranche;
	ConditionVariable cv;		/* committed moved (space freed) */
	pg_atomic_uint64 head;		/* next byte to write */
	pg_atomic_uint64 committed; /* everything before it is stored or dropped */
	pg_atomic_uint32 sync_waiters;	/* backends in aa_queue_wait_committed */
	pg_atomic_uint64 sync_end;	/* end of the last records pushed by an
								 * audit_sync = on backend: to be waited for */
	pg_atomic_uint64 oldest_at; /* queued_at of the entry at committed; 0:
								 * the queue is empty (moved under lock) */
	pg_atomic_uint32 writer_state;	/* AAWriterState */
	pg_atomic_uint64 unable_since;	/* when the writer stopped being able */

	slock_t		mutex;			/* protects the fields below */
	pid_t		writer_pid;		/* 0: no writer connected */
	Latch	   *writer_latch;
	bool		db_known;		/* agentauth.database exists: connect to it */
	uint64		inflight_end;	/* batch being committed: end position ... */
	int64		inflight_last_seq;	/* ... and the last seq it assigns */
	/* for the status view (aa_queue_status) */
	TimestampTz writer_started_at;	/* the running writer's start */
	uint64		records_written;	/* committed since the server started */
	int64		last_seq;		/* the newest record in the log */
	bool		head_known;		/* the three below: the last a writer committed */
	Oid			head_db;
	Oid			head_relid;
	unsigned char last_hash[AA_HASH_LEN];
	TimestampTz last_written_at;	/* the writer's last commit of records */
	int64		rate_sec[AA_RATE_SECONDS];	/* second (epoch) of each slot */
	uint64		rate_count[AA_RATE_SECONDS];	/* records committed in it */
	bool		head_logged;	/* a head was written to the server log */
	int64		head_seq;		/* the last head written there */
	unsigned char head_hash[AA_HASH_LEN];
	TimestampTz head_logged_at;

	Size		size;			/* bytes of data[] */
	char		data[FLEXIBLE_ARRAY_MEMBER];
} AAQueue;

static AAQueue *aa_queue = NULL;

/* this process is the audit writer (aa_queue_writer_attach) */
static bool in_writer = false;

static Size
queue_data_size(void)
{
	return MAXALIGN_DOWN((Size) aa_audit_queue_size * 1024);
}

Size
aa_queue_shmem_size(void)
{
	return MAXALIGN(add_size(offsetof(AAQueue, data), queue_data_size()));
}

/* called with AddinShmemInitLock held */
void
aa_queue_shmem_startup(void)
{
	bool		found;

	aa_queue = ShmemInitStruct("agentauth audit queue", aa_queue_shmem_size(),
							   &found);
	if (!found)
	{
		memset(aa_queue, 0, offsetof(AAQueue, data));
		aa_queue->tranche = LWLockNewTrancheId();
		LWLockInitialize(&aa_queue->lock, aa_queue->tranche);
		ConditionVariableInit(&aa_queue->cv);
		pg_atomic_init_u64(&aa_queue->head, 0);
		pg_atomic_init_u64(&aa_queue->committed, 0);
		pg_atomic_init_u32(&aa_queue->sync_waiters, 0);
		pg_atomic_init_u64(&aa_queue->sync_end, 0);
		pg_atomic_init_u64(&aa_queue->oldest_at, 0);
		pg_atomic_init_u32(&aa_queue->writer_state, AA_WRITER_NOT_STARTED);
		pg_atomic_init_u64(&aa_queue->unable_since, 0);
		SpinLockInit(&aa_queue->mutex);
		aa_queue->size = queue_data_size();
	}
	LWLockRegisterTranche(aa_queue->tranche, "agentauth audit queue");
}

Size
aa_queue_capacity(void)
{
	return aa_queue ? aa_queue->size : 0;
}

static void
ring_write(uint64 pos, const char *src, Size len)
{
	Size		off = pos % aa_queue->size;
	Size		first = Min(len, aa_queue->size - off);

	memcpy(aa_queue->data + off, src, first);
	if (first < len)
		memcpy(aa_queue->data, src + first, len - first);
}

static void
queue_read(uint64 pos, char *dst, Size len)
{
	Size		off = pos % aa_queue->size;
	Size		first = Min(len, aa_queue->size - off);

	memcpy(dst, aa_queue->data + off, first);
	if (first < len)
		memcpy(dst + first, aa_queue->data, len - first);
}

/*
 * The reader's side (the writer, or the standby's forwarder): a copy of the
 * whole entry at pos, in one buffer of this process that the next call
 * reuses.  An entry's length outside what the queue can hold is a corrupt
 * queue: PANIC, as nothing after it can be read.
 */
const AAQueueEntry *
aa_queue_entry_at(uint64 pos)
{
	static char *buf = NULL;
	static Size buf_size = 0;
	AAQueueEntry hdr;

	queue_read(pos, (char *) &hdr, sizeof(hdr));
	if (hdr.len < MAXALIGN(sizeof(AAQueueEntry)) || hdr.len > aa_queue_capacity())
		elog(PANIC, "corrupt audit queue at position " UINT64_FORMAT, pos);
	if (hdr.len > buf_size)
	{
		buf_size = Max(hdr.len, 8192);
		buf = buf ? repalloc(buf, buf_size)
			: MemoryContextAlloc(TopMemoryContext, buf_size);
	}
	queue_read(pos, buf, hdr.len);
	return (const AAQueueEntry *) buf;
}

static void
wake_writer(void)
{
	Latch	   *latch;

	SpinLockAcquire(&aa_queue->mutex);
	latch = aa_queue->writer_latch;
	SpinLockRelease(&aa_queue->mutex);
	if (latch)
		SetLatch(latch);
}

void
aa_queue_wake_writer(void)
{
	if (aa_queue)
		wake_writer();
}

/*
 * Append len bytes of whole entries, waiting up to timeout_ms for space.
 * Returns false (nothing appended) when there was no space in time; on
 * success *end is the position after the last byte appended.  Each entry
 * is stamped (queued_at) with the time of the call.
 */
bool
aa_queue_push(char *data, Size len, int timeout_ms, uint64 *end)
{
	TimestampTz start = 0;
	TimestampTz now;
	bool		sleeping = false;
	bool		ok = false;

	Assert(len % MAXIMUM_ALIGNOF == 0);
	if (aa_queue == NULL || len > aa_queue->size)
		return false;

	now = GetCurrentTimestamp();
	for (Size off = 0; off < len;)
	{
		AAQueueEntry *e = (AAQueueEntry *) (data + off);

		Assert(e->len > 0 && off + e->len <= len);
		e->queued_at = now;
		off += e->len;
	}

	for (;;)
	{
		uint64		head;
		uint64		tail;
		bool		wake = true;

		LWLockAcquire(&aa_queue->lock, LW_EXCLUSIVE);
		head = pg_atomic_read_u64(&aa_queue->head);
		/* committed moves only under the lock: it is the tail */
		tail = pg_atomic_read_u64(&aa_queue->committed);
		if (head - tail + len <= aa_queue->size)
		{
			ring_write(head, data, len);
			if (head == tail)
				pg_atomic_write_u64(&aa_queue->oldest_at, (uint64) now);
			pg_write_barrier();
			pg_atomic_write_u64(&aa_queue->head, head + len);
			*end = head + len;
			ok = true;

			/*
			 * The writer sleeps without a timeout only after finding
			 * everything committed, so a push onto a non-empty queue needs
			 * no wakeup: the writer is at work or gathering on a timer.
			 */
			wake = (head == tail ||
					head + len - tail > aa_queue->size / AA_GATHER_FILL);
		}
		LWLockRelease(&aa_queue->lock);
		if (wake)
			wake_writer();
		if (ok)
			break;

		/* full: wait for the writer to free space */
		if (!sleeping)
		{
			start = GetCurrentTimestamp();
			ConditionVariablePrepareToSleep(&aa_queue->cv);
			sleeping = true;
		}
		else
		{
			long		waited = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());

			if (waited >= timeout_ms)
				break;
			(void) ConditionVariableTimedSleep(&aa_queue->cv,
											   Min(timeout_ms - waited, 100),
											   PG_WAIT_EXTENSION);
		}
	}
	if (sleeping)
		ConditionVariableCancelSleep();
	return ok;
}

/*
 * Records up to end were pushed by a backend that will wait for them
 * (audit_sync = on): the writer commits them without gathering, from the
 * first push of the statement on (a cohort query pushes every 64 kB, and
 * the writer works through them while the statement still runs).  No
 * wakeup here: a push onto an empty queue wakes the writer, a busy writer
 * looks again after its batch, and the wait wakes it.
 */
void
aa_queue_note_sync(uint64 end)
{
	uint64		cur;

	if (aa_queue == NULL)
		return;
	cur = pg_atomic_read_u64(&aa_queue->sync_end);
	while (cur < end)
	{
		if (pg_atomic_compare_exchange_u64(&aa_queue->sync_end, &cur, end))
			break;
	}
}

/*
 * Wait up to timeout_ms until everything before pos is committed (or
 * dropped) by the writer.  Returns whether it is.
 */
bool
aa_queue_wait_committed(uint64 pos, int timeout_ms)
{
	TimestampTz start;
	volatile bool ok = false;

	if (aa_queue == NULL)
		return false;
	if (pg_atomic_read_u64(&aa_queue->committed) >= pos)
		return true;

	start = GetCurrentTimestamp();
	pg_atomic_fetch_add_u32(&aa_queue->sync_waiters, 1);
	/* a cancel while sleeping must not leave us counted as waiting */
	PG_TRY();
	{
		wake_writer();
		ConditionVariablePrepareToSleep(&aa_queue->cv);
		for (;;)
		{
			long		waited;

			if (pg_atomic_read_u64(&aa_queue->committed) >= pos)
			{
				ok = true;
				break;
			}
			waited = TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
			if (waited >= timeout_ms)
				break;
			/* wake up now and then: a lost wakeup costs 100 ms, never more */
			(void) ConditionVariableTimedSleep(&aa_queue->cv,
											   Min(timeout_ms - waited, 100),
											   PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_FINALLY();
	{
		pg_atomic_fetch_sub_u32(&aa_queue->sync_waiters, 1);
	}
	PG_END_TRY();
	return ok;
}

/* the position after the last byte queued so far */
uint64
aa_queue_head(void)
{
	return aa_queue ? pg_atomic_read_u64(&aa_queue->head) : 0;
}

/* for error messages */
bool
aa_queue_writer_running(void)
{
	pid_t		pid;

	if (aa_queue == NULL)
		return false;
	SpinLockAcquire(&aa_queue->mutex);
	pid = aa_queue->writer_pid;
	SpinLockRelease(&aa_queue->mutex);
	return pid != 0;
}

int
aa_queue_percent_full(void)
{
	uint64		used;

	if (aa_queue == NULL)
		return 0;
	used = pg_atomic_read_u64(&aa_queue->head) -
		pg_atomic_read_u64(&aa_queue->committed);
	return (int) (used * 100 / aa_queue->size);
}

/* ---------------- the writer's side ---------------- */

/*
 * Should the writer wait a little before committing what is queued?  Yes
 * while something is queued, nobody waits or will wait for it (sync_end)
 * and it is little.
 */
bool
aa_queue_should_gather(void)
{
	uint64		head = pg_atomic_read_u64(&aa_queue->head);
	uint64		committed = pg_atomic_read_u64(&aa_queue->committed);

	return head != committed &&
		pg_atomic_read_u32(&aa_queue->sync_waiters) == 0 &&
		pg_atomic_read_u64(&aa_queue->sync_end) <= committed &&
		head - committed <= aa_queue->size / AA_GATHER_FILL;
}

/*
 * True in the audit writer itself: the records of the alerts it raises go
 * to the queue without waiting for space and are never waited for -- it
 * would be waiting for itself.
 */
bool
aa_queue_in_writer(void)
{
	return in_writer;
}

void
aa_queue_writer_attach(Latch *latch)
{
	in_writer = true;
	SpinLockAcquire(&aa_queue->mutex);
	aa_queue->writer_pid = MyProcPid;
	aa_queue->writer_latch = latch;
	aa_queue->writer_started_at = MyStartTimestamp;
	SpinLockRelease(&aa_queue->mutex);
}

/* The writer exits: failed says whether with an error. */
void
aa_queue_writer_detach(bool failed)
{
	if (aa_queue == NULL)
		return;
	SpinLockAcquire(&aa_queue->mutex);
	if (aa_queue->writer_pid == MyProcPid)
	{
		aa_queue->writer_pid = 0;
		aa_queue->writer_latch = NULL;
	}
	SpinLockRelease(&aa_queue->mutex);
	aa_queue_set_writer_state(failed ? AA_WRITER_FAILED : AA_WRITER_STOPPED);
}

/*
 * The writer says whether it can write.  unable_since keeps the first
 * moment of an unbroken run of not being able: a writer failing again after
 * each restart stays unable since its first failure.  Only the writer
 * writes these (one at a time: the postmaster runs one writer).
 */
void
aa_queue_set_writer_state(AAWriterState state)
{
	if (aa_queue == NULL)
		return;
	if (state == AA_WRITER_ABLE)
	{
		if (pg_atomic_read_u32(&aa_queue->writer_state) != AA_WRITER_ABLE)
		{
			pg_atomic_write_u64(&aa_queue->unable_since, 0);
			pg_atomic_write_u32(&aa_queue->writer_state, AA_WRITER_ABLE);
		}
		return;
	}
	if (pg_atomic_read_u64(&aa_queue->unable_since) == 0)
		pg_atomic_write_u64(&aa_queue->unable_since,
							(uint64) GetCurrentTimestamp());
	pg_atomic_write_u32(&aa_queue->writer_state, state);
}

/*
 * Is the writer late, by timeout_ms or more?  Late when the oldest record
 * it has not committed was pushed that long ago, or when it has been
 * unable to write for that long (it exited, or keeps failing; a writer not
 * started at all counts from this backend's own start, which came after
 * recovery).  Cheap when all is well: two atomic reads, no clock.
 */
bool
aa_queue_late(int timeout_ms, AAQueueLate *late)
{
	TimestampTz oldest;
	TimestampTz now;
	AAWriterState state;

	memset(late, 0, sizeof(*late));
	if (aa_queue == NULL)
		return false;
	oldest = (TimestampTz) pg_atomic_read_u64(&aa_queue->oldest_at);
	state = (AAWriterState) pg_atomic_read_u32(&aa_queue->writer_state);
	late->state = state;
	if (oldest == 0 && state == AA_WRITER_ABLE)
		return false;

	now = GetCurrentTimestamp();
	if (oldest != 0 && now > oldest)
		late->oldest_ms = (long) ((now - oldest) / 1000);
	if (state == AA_WRITER_STOPPED || state == AA_WRITER_FAILED ||
		state == AA_WRITER_NOT_STARTED)
	{
		TimestampTz since = (TimestampTz) pg_atomic_read_u64(&aa_queue->unable_since);

		if (state == AA_WRITER_NOT_STARTED || since == 0)
			since = Max(since, MyStartTimestamp);
		if (since != 0 && now > since)
			late->unable_ms = (long) ((now - since) / 1000);
	}
	return late->oldest_ms >= timeout_ms || late->unable_ms >= timeout_ms;
}

bool
aa_queue_db_known(void)
{
	bool		known;

	SpinLockAcquire(&aa_queue->mutex);
	known = aa_queue->db_known;
	SpinLockRelease(&aa_queue->mutex);
	return known;
}

void
aa_queue_set_db_known(bool known)
{
	SpinLockAcquire(&aa_queue->mutex);
	aa_queue->db_known = known;
	SpinLockRelease(&aa_queue->mutex);
}

/* Positions the writer reads between: [*tail, *head). */
void
aa_queue_bounds(uint64 *tail, uint64 *head)
{
	*head = pg_atomic_read_u64(&aa_queue->head);
	pg_read_barrier();
	*tail = pg_atomic_read_u64(&aa_queue->committed);
}

/*
 * The batch ending at end, assigning seqs up to last_seq, is about to
 * commit.  If the writer dies between its commit and aa_queue_release(),
 * the next writer finds last_seq in the table and releases the batch
 * instead of writing it twice.
 */
void
aa_queue_set_inflight(uint64 end, int64 last_seq)
{
	SpinLockAcquire(&aa_queue->mutex);
	aa_queue->inflight_end = end;
	aa_queue->inflight_last_seq = last_seq;
	SpinLockRelease(&aa_queue->mutex);
}

void
aa_queue_get_inflight(uint64 *end, int64 *last_seq)
{
	SpinLockAcquire(&aa_queue->mutex);
	*end = aa_queue->inflight_end;
	*last_seq = aa_queue->inflight_last_seq;
	SpinLockRelease(&aa_queue->mutex);
}

/*
 * Everything before end is committed (or dropped): free it, wake waiters.
 * The oldest entry left is the one at end: its stamp is now the oldest.
 */
void
aa_queue_release(uint64 end)
{
	LWLockAcquire(&aa_queue->lock, LW_EXCLUSIVE);
	if (end > pg_atomic_read_u64(&aa_queue->committed))
	{
		pg_atomic_write_u64(&aa_queue->committed, end);
		if (end == pg_atomic_read_u64(&aa_queue->head))
			pg_atomic_write_u64(&aa_queue->oldest_at, 0);
		else
		{
			AAQueueEntry hdr;

			queue_read(end, (char *) &hdr, sizeof(hdr));
			pg_atomic_write_u64(&aa_queue->oldest_at, (uint64) hdr.queued_at);
		}
	}
	LWLockRelease(&aa_queue->lock);
	SpinLockAcquire(&aa_queue->mutex);
	aa_queue->inflight_end = 0;
	aa_queue->inflight_last_seq = 0;
	SpinLockRelease(&aa_queue->mutex);
	ConditionVariableBroadcast(&aa_queue->cv);
}

/* ---------------- what the status view shows ---------------- */

/*
 * The writer committed nrec records (0: it only learned the newest seq,
 * reading the head of the log); the newest is last_seq, committed at now.
 */
void
aa_queue_note_written(int nrec, Oid relid, int64 last_seq, const unsigned char *hash,
					  TimestampTz now)
{
	int64		sec = (int64) (now / USECS_PER_SEC);
	int			slot = (int) (sec % AA_RATE_SECONDS);

	if (aa_queue == NULL)
		return;
	SpinLockAcquire(&aa_queue->mutex);
	aa_queue->last_seq = last_seq;
	aa_queue->head_known = OidIsValid(relid) && hash != NULL;
	if (aa_queue->head_known)
	{
		aa_queue->head_db = MyDatabaseId;
		aa_queue->head_relid = relid;
		memcpy(aa_queue->last_hash, hash, AA_HASH_LEN);
	}
	if (nrec > 0)
	{
		aa_queue->records_written += nrec;
		aa_queue->last_written_at = now;
		if (aa_queue->rate_sec[slot] != sec)
		{
			aa_queue->rate_sec[slot] = sec;
			aa_queue->rate_count[slot] = 0;
		}
		aa_queue->rate_count[slot] += nrec;
	}
	SpinLockRelease(&aa_queue->mutex);
}

/*
 * The log's last record, as a writer starting reads it (audit_writer.c).
 * One that no writer of this server committed -- past the last one a
 * writer committed here (other than the batch a writer died committing),
 * or at its seq with another hash -- was put there by hand, and the chain
 * must not go on from it (1.1, found by review: a superuser appended a
 * record hashed by hand; the writer, restarted by the duplicate seq,
 * chained every later record onto it, and verify_audit() passed).  The
 * writer fails, again at each restart, until that record is gone; a
 * server restart forgets what was committed, and takes the log as it is.
 */
void
aa_queue_check_head(Oid relid, int64 seq, const unsigned char *hash)
{
	bool		known;
	int64		kseq;
	int64		inflight_last;
	unsigned char khash[AA_HASH_LEN];

	SpinLockAcquire(&aa_queue->mutex);
	known = aa_queue->head_known && aa_queue->head_db == MyDatabaseId &&
		aa_queue->head_relid == relid;
	kseq = aa_queue->last_seq;
	memcpy(khash, aa_queue->last_hash, AA_HASH_LEN);
	inflight_last = aa_queue->inflight_last_seq;
	SpinLockRelease(&aa_queue->mutex);
	if (!known || seq < kseq ||
		(seq == kseq && memcmp(hash, khash, AA_HASH_LEN) == 0) ||
		(seq > kseq && inflight_last > 0 && seq <= inflight_last))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the audit log's last record, seq " INT64_FORMAT ", is not one the audit writer wrote",
					seq),
			 errdetail("The last record the writer committed is seq " INT64_FORMAT "; the chain does not go on from a record put there by other means.",
					   kseq),
			 errhint("Investigate: the log was written around its append-only guard.  Remove the records after seq " INT64_FORMAT " to let the writer go on, or restart the server to take the log as it is.",
					 kseq)));
}

/* The writer wrote this chain head to the server log. */
void
aa_queue_note_head_logged(int64 seq, const unsigned char *hash)
{
	if (aa_queue == NULL)
		return;
	SpinLockAcquire(&aa_queue->mutex);
	aa_queue->head_logged = true;
	aa_queue->head_seq = seq;
	memcpy(aa_queue->head_hash, hash, AA_HASH_LEN);
	aa_queue->head_logged_at = GetCurrentTimestamp();
	SpinLockRelease(&aa_queue->mutex);
}

/* Everything the status view shows of the queue and the writer, as of now. */
void
aa_queue_status(AAWriterStatus *st)
{
	int64		now_sec;

	memset(st, 0, sizeof(*st));
	st->now = GetCurrentTimestamp();
	if (aa_queue == NULL)
	{
		st->state = AA_WRITER_NOT_STARTED;
		return;
	}
	now_sec = (int64) (st->now / USECS_PER_SEC);

	LWLockAcquire(&aa_queue->lock, LW_SHARED);
	st->queue_used = pg_atomic_read_u64(&aa_queue->head) -
		pg_atomic_read_u64(&aa_queue->committed);
	st->oldest_at = (TimestampTz) pg_atomic_read_u64(&aa_queue->oldest_at);
	LWLockRelease(&aa_queue->lock);
	st->queue_capacity = aa_queue->size;
	st->state = (AAWriterState) pg_atomic_read_u32(&aa_queue->writer_state);
	st->unable_since = (TimestampTz) pg_atomic_read_u64(&aa_queue->unable_since);

	SpinLockAcquire(&aa_queue->mutex);
	st->writer_pid = aa_queue->writer_pid;
	st->writer_started_at = aa_queue->writer_started_at;
	st->records_written = aa_queue->records_written;
	st->last_seq = aa_queue->last_seq;
	st->last_written_at = aa_queue->last_written_at;
	for (int i = 0; i < AA_RATE_SECONDS; i++)
		if (aa_queue->rate_sec[i] > now_sec - AA_RATE_SECONDS &&
			aa_queue->rate_sec[i] <= now_sec)
			st->records_recent += aa_queue->rate_count[i];
	st->head_logged = aa_queue->head_logged;
	st->head_seq = aa_queue->head_seq;
	memcpy(st->head_hash, aa_queue->head_hash, AA_HASH_LEN);
	st->head_logged_at = aa_queue->head_logged_at;
	SpinLockRelease(&aa_queue->mutex);
}
