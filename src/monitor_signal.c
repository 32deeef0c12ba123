/*-------------------------------------------------------------------------
 *
 * monitor_signal.c
 *		What backends tell the monitor (monitor.c) through shared memory:
 *		that the alert rules changed (a counter the writer reloads them
 *		at), and the two always-on alerts that start outside the writer --
 *		a backend whose audit records could not be queued or committed in
 *		time (the writer failing closed), and a chain verification that
 *		found a problem.  Both are counted here and raised by the writer
 *		when it next runs (aa_monitor_take_signals): a NOTIFY of the failing
 *		transaction would be lost with it, and the writer may be the thing
 *		that is down.  The server log has each refusal at once, and the
 *		status view (status.c) their count since the server started.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "agentauth.h"

/* ------------------------------------------------------------------
 * Shared state
 * ------------------------------------------------------------------
 */

typedef struct AAMonitorShared
{
	pg_atomic_uint64 rules_gen; /* moved by every change of alert_rule */
	slock_t		mutex;			/* protects the fields below */
	/* backends whose audit records could not be made durable in time */
	uint64		fail_closed;	/* how many, since the server started */
	uint64		fail_closed_alerted;	/* of which the writer has raised */
	TimestampTz fail_closed_at; /* the last one */
	Oid			fail_closed_role;
	char		fail_closed_what[AA_MONITOR_WHAT_LEN];
	/* chain verifications that found a problem */
	uint64		chain_failed;
	uint64		chain_failed_alerted;
	TimestampTz chain_failed_at;
	Oid			chain_failed_role;
	int64		chain_first_bad;
	char		chain_problem[AA_MONITOR_PROBLEM_LEN];
} AAMonitorShared;

static AAMonitorShared *mon_shared = NULL;

Size
aa_monitor_shmem_size(void)
{
	return MAXALIGN(sizeof(AAMonitorShared));
}

/* called with AddinShmemInitLock held */
void
aa_monitor_shmem_startup(void)
{
	bool		found;

	mon_shared = ShmemInitStruct("agentauth monitor", sizeof(AAMonitorShared), &found);
	if (!found)
	{
		memset(mon_shared, 0, sizeof(AAMonitorShared));
		pg_atomic_init_u64(&mon_shared->rules_gen, 1);
		SpinLockInit(&mon_shared->mutex);
	}
}

/* ------------------------------------------------------------------
 * Backends: the rules changed, a statement failed closed, a chain
 * verification failed
 * ------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(aa_alert_rules_changed);

/*
 * agentauth._alert_rules_changed(): the statement trigger of alert_rule.
 * The counter moves now and again at commit (shmem.c's aa_bump_at_commit),
 * and the writer is woken then, so it never keeps rules older than the
 * last committed change.
 */
Datum
aa_alert_rules_changed(PG_FUNCTION_ARGS)
{
	if (mon_shared != NULL)
		aa_bump_at_commit(&mon_shared->rules_gen, aa_queue_wake_writer);
	PG_RETURN_VOID();
}

/*
 * A backend is failing closed: its audit records could not be queued or
 * committed within agentauth.audit_wait_timeout.  No error, no catalog
 * access: called on the way to the error.
 */
void
aa_monitor_fail_closed(const char *what)
{
	if (mon_shared == NULL)
		return;
	SpinLockAcquire(&mon_shared->mutex);
	mon_shared->fail_closed++;
	mon_shared->fail_closed_at = GetCurrentTimestamp();
	mon_shared->fail_closed_role = GetSessionUserId();
	strlcpy(mon_shared->fail_closed_what, what ? what : "",
			sizeof(mon_shared->fail_closed_what));
	SpinLockRelease(&mon_shared->mutex);
	aa_queue_wake_writer();
}

/* A chain verification (verify_audit or verify_audit_sql) found a problem. */
void
aa_monitor_chain_failure(int64 first_bad_seq, const char *problem)
{
	if (mon_shared == NULL)
		return;
	SpinLockAcquire(&mon_shared->mutex);
	mon_shared->chain_failed++;
	mon_shared->chain_failed_at = GetCurrentTimestamp();
	mon_shared->chain_failed_role = GetSessionUserId();
	mon_shared->chain_first_bad = first_bad_seq;
	strlcpy(mon_shared->chain_problem, problem ? problem : "",
			sizeof(mon_shared->chain_problem));
	SpinLockRelease(&mon_shared->mutex);
	aa_queue_wake_writer();
}

PG_FUNCTION_INFO_V1(aa_monitor_chain_failure_sql);

/* agentauth._chain_failure(first_bad_seq bigint, problem text) */
Datum
aa_monitor_chain_failure_sql(PG_FUNCTION_ARGS)
{
	int64		first_bad = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0);
	char	   *problem = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));

	aa_monitor_chain_failure(first_bad, problem);
	PG_RETURN_VOID();
}

/*
 * Statements failed closed since the server started, and when the last one
 * did (0: none).  For the status view.
 */
uint64
aa_monitor_fail_closed_count(TimestampTz *last_at)
{
	uint64		n;

	*last_at = 0;
	if (mon_shared == NULL)
		return 0;
	SpinLockAcquire(&mon_shared->mutex);
	n = mon_shared->fail_closed;
	*last_at = mon_shared->fail_closed_at;
	SpinLockRelease(&mon_shared->mutex);
	return n;
}

/* ------------------------------------------------------------------
 * The writer's side
 * ------------------------------------------------------------------
 */

/* false until shared memory is attached */
bool
aa_monitor_signals_ready(void)
{
	return mon_shared != NULL;
}

/* moved by every committed change of agentauth.alert_rule */
uint64
aa_monitor_rules_gen(void)
{
	return pg_atomic_read_u64(&mon_shared->rules_gen);
}

/* has a backend signalled something the writer has not taken yet? */
bool
aa_monitor_signals_pending(void)
{
	bool		news;

	SpinLockAcquire(&mon_shared->mutex);
	news = mon_shared->fail_closed != mon_shared->fail_closed_alerted ||
		mon_shared->chain_failed != mon_shared->chain_failed_alerted;
	SpinLockRelease(&mon_shared->mutex);
	return news;
}

/*
 * Take over what backends signalled since the last call: the counts in
 * *out are the new ones (0: none), with the details of the last of each.
 */
void
aa_monitor_take_signals(AAMonitorSignals *out)
{
	SpinLockAcquire(&mon_shared->mutex);
	out->fail_closed = mon_shared->fail_closed - mon_shared->fail_closed_alerted;
	out->fail_closed_at = mon_shared->fail_closed_at;
	out->fail_closed_role = mon_shared->fail_closed_role;
	memcpy(out->fail_closed_what, mon_shared->fail_closed_what,
		   sizeof(out->fail_closed_what));
	out->chain_failed = mon_shared->chain_failed - mon_shared->chain_failed_alerted;
	out->chain_failed_at = mon_shared->chain_failed_at;
	out->chain_failed_role = mon_shared->chain_failed_role;
	out->chain_first_bad = mon_shared->chain_first_bad;
	memcpy(out->chain_problem, mon_shared->chain_problem,
		   sizeof(out->chain_problem));
	mon_shared->fail_closed_alerted = mon_shared->fail_closed;
	mon_shared->chain_failed_alerted = mon_shared->chain_failed;
	SpinLockRelease(&mon_shared->mutex);
}
