/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Shared memory of agentauth, requested and attached in one place:
 *		the generation counter that invalidates every backend's caches after
 *		a commit that changed access state, the consent change log, and the
 *		one mechanism that moves a shared counter at commit.  The other
 *		modules' shared memory (the audit queue, the monitor's signals) is
 *		requested and attached here too, through the size and startup
 *		functions each registers at its init (aa_shmem_register): this file
 *		calls into no module.
 *
 *		A transaction that changes tokens, principals, consent, defaults,
 *		overrides, approvals or classifications calls
 *		aa_generation_bump_at_commit(); the counter moves at once and again
 *		in the COMMIT callback, after the change is visible to new
 *		snapshots.  Every shared counter of this kind (the alert rules' too)
 *		goes through aa_bump_at_commit(): one transaction callback, one
 *		list of pending bumps, dropped at abort.  A backend
 *		reads the counter before it reloads, and reloads with the latest
 *		snapshot, so it can never cache old state under a new generation.
 *
 *		Consent changes move a counter of their own, consent_generation,
 *		and say which patient they concern in a small log (a ring of
 *		AA_CONSENT_LOG entries): a backend then forgets that patient's
 *		consent and keeps the rest of its cache, its session validation and
 *		its classifications.  A consent toggled a few times a second would
 *		otherwise make every backend reload everything as often.  The same
 *		rule holds: the counter is read before the reload, the log is
 *		written before the counter moves, and both happen at once and again
 *		at commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"

#include "agentauth.h"

AASharedState *aa_shared = NULL;
pg_atomic_uint64 *aa_generation_counter = NULL;
pg_atomic_uint64 *aa_consent_generation_counter = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* the shared memory of the other modules, registered at their init */
#define MAX_SHMEM_REQUESTS 4

static struct
{
	Size		(*size) (void);
	void		(*startup) (void);
}			requests[MAX_SHMEM_REQUESTS];
static int	nrequests = 0;

/*
 * Told once per committing transaction that changed consent (true) or
 * other access state (false), just before its commit (replica.c), or NULL
 */
static void (*publish_hook) (bool consent) = NULL;

/*
 * What the current transaction changed, published again at its commit and
 * forgotten at its abort.  A change made in a subtransaction that rolls
 * back is published all the same: one reload too many, never one too few.
 */
#define MAX_PENDING_BUMPS 4
#define MAX_PENDING_PATIENTS 32

typedef struct PendingBump
{
	pg_atomic_uint64 *counter;
	void		(*after) (void);	/* run after the commit's bump, or NULL */
} PendingBump;

static struct
{
	int			nbumps;
	PendingBump bumps[MAX_PENDING_BUMPS];
	int			npatients;		/* consent changes; -1: every patient */
	char		patient[MAX_PENDING_PATIENTS][AA_CONSENT_PATIENT_MAX];
	int			patient_len[MAX_PENDING_PATIENTS];
	bool		hook_told;		/* publish_hook called at pre-commit */
} pending;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AASharedState)));
	for (int i = 0; i < nrequests; i++)
		RequestAddinShmemSpace(requests[i].size());
}

static void
shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	aa_shared = ShmemInitStruct("agentauth", sizeof(AASharedState), &found);
	if (!found)
	{
		pg_atomic_init_u64(&aa_shared->generation, 1);
		pg_atomic_init_u64(&aa_shared->consent_generation, 1);
		SpinLockInit(&aa_shared->consent_mutex);
		aa_shared->consent_nlog = 0;
	}
	aa_generation_counter = &aa_shared->generation;
	aa_consent_generation_counter = &aa_shared->consent_generation;
	for (int i = 0; i < nrequests; i++)
		requests[i].startup();
	LWLockRelease(AddinShmemInitLock);
}

static void pending_xact_callback(XactEvent event, void *arg);
static void pending_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									 SubTransactionId parentSubid, void *arg);

void
aa_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * Publishing at commit, registered at load, last (_PG_init): at each
 * event it runs first, so that a commit's changes reach the other
 * backends before the audit module waits for the writer.  Registered on
 * a backend's first change, as before 1.1, it missed the pre-commit of a
 * change made by another pre-commit callback (PostgreSQL calls one
 * registered during its walk only from the next event on), and the hot
 * standbys were never told (found by review; no path of agentauth's own
 * made such a change).  A change made by a pre-commit callback that runs
 * after it is told to the hook at once (hook_told).
 */
void
aa_shmem_init_publishing(void)
{
	RegisterXactCallback(pending_xact_callback, NULL);
	RegisterSubXactCallback(pending_subxact_callback, NULL);
}

/*
 * A module's shared memory: size() bytes requested, startup() called with
 * AddinShmemInitLock held to attach (and, the first time, initialize) it.
 * Called from the module's init, in _PG_init after aa_shmem_init().
 */
void
aa_shmem_register(Size (*size) (void), void (*startup) (void))
{
	if (nrequests >= MAX_SHMEM_REQUESTS)
		elog(ERROR, "too many shared memory requests");
	requests[nrequests].size = size;
	requests[nrequests].startup = startup;
	nrequests++;
}

/* ---------------------------------------------------------------------
 * Publishing at commit
 * ---------------------------------------------------------------------
 */

/*
 * Write the log entries of one consent change (n patients, or n = -1:
 * every patient) and then move the consent counter, so that a backend that
 * sees the new value finds the entries.
 */
static void
publish_consent_change(int n, char (*pats)[AA_CONSENT_PATIENT_MAX], const int *lens)
{
	uint64		gen;

	if (aa_shared == NULL)
		return;
	SpinLockAcquire(&aa_shared->consent_mutex);
	gen = pg_atomic_read_u64(&aa_shared->consent_generation) + 1;
	for (int i = 0; i < (n < 0 ? 1 : n); i++)
	{
		struct AAConsentChange *c =
			&aa_shared->consent_log[aa_shared->consent_nlog % AA_CONSENT_LOG];

		c->gen = gen;
		c->len = n < 0 ? -1 : lens[i];
		if (n >= 0)
			memcpy(c->patient, pats[i], lens[i]);
		aa_shared->consent_nlog++;
	}
	pg_atomic_write_u64(&aa_shared->consent_generation, gen);
	SpinLockRelease(&aa_shared->consent_mutex);
}

/*
 * Move the counters this transaction moved, and publish its consent
 * patients, once more: at commit, and at an abort, where every backend
 * that loaded in between -- in practice this one, which alone saw the
 * changes before they were committed -- must reload.  Nothing here may
 * fail: it runs in commit and abort.
 */
static void
publish_pending(void)
{
	for (int i = 0; i < pending.nbumps; i++)
		pg_atomic_fetch_add_u64(pending.bumps[i].counter, 1);
	if (pending.npatients != 0)
		publish_consent_change(pending.npatients, pending.patient,
							   pending.patient_len);
}

static void
pending_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/*
			 * Once per transaction, however many changes it made: the
			 * hook's relcache invalidation is processed here at every
			 * command end, and a bulk load of consents re-planned and
			 * re-read its statements after each one (1.1).  A change
			 * made after this point tells the hook itself.
			 */
			if (publish_hook && pending.nbumps != 0)
				publish_hook(false);
			if (publish_hook && pending.npatients != 0)
				publish_hook(true);
			pending.hook_told = true;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			publish_pending();
			for (int i = 0; i < pending.nbumps; i++)
				if (pending.bumps[i].after != NULL)
					pending.bumps[i].after();
			pending.nbumps = 0;
			pending.npatients = 0;
			pending.hook_told = false;
			break;
		case XACT_EVENT_PRE_PREPARE:
			/*
			 * Nothing would publish the change when COMMIT PREPARED makes
			 * it true, perhaps in another backend: every backend that
			 * reloaded meanwhile would keep the old state.  Refused, as
			 * audit.c refuses a transaction with staged records.
			 */
			if (pending.nbumps != 0 || pending.npatients != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that changed agentauth state"),
						 errdetail("Its changes to consent, defaults, the registry or protection are published to the other sessions only when it commits.")));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* this backend's caches may hold what is rolled back */
			publish_pending();
			pending.nbumps = 0;
			pending.npatients = 0;
			pending.hook_told = false;
			break;
		default:
			break;
	}
}

/*
 * A savepoint rolled back: its changes are gone, and this backend's caches
 * may hold them (it reloads with its own transaction's changes in sight).
 * What the transaction changed so far is published again now; the commit
 * still publishes it all.
 */
static void
pending_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		publish_pending();
}


/*
 * Move a shared counter now and again once the current transaction has
 * committed, then run after (NULL: nothing; at commit only).  Moving it at
 * once too means a backend that reloads between now and our commit reads
 * the old state, which is still the truth until then, and the bump at
 * commit makes it reload again.  The counter must live in shared memory
 * attached for the life of the backend.
 */
void
aa_bump_at_commit(pg_atomic_uint64 *counter, void (*after) (void))
{
	int			i;

	if (publish_hook && pending.hook_told)
		publish_hook(false);
	pg_atomic_fetch_add_u64(counter, 1);
	for (i = 0; i < pending.nbumps; i++)
		if (pending.bumps[i].counter == counter)
			return;
	if (i >= MAX_PENDING_BUMPS)
		elog(ERROR, "too many shared counters changed in one transaction");
	pending.bumps[i].counter = counter;
	pending.bumps[i].after = after;
	pending.nbumps++;
}

/*
 * At init (replica.c): told, before the commit, that the transaction
 * changed consent (true) or other access state -- so that hot standbys
 * learn of it when they replay the commit.
 */
void
aa_shmem_on_publish(void (*hook) (bool consent))
{
	publish_hook = hook;
}

/*
 * A change replayed on a hot standby (replica.c): move the counters at
 * once, every patient's consent (true) or the generation.
 */
void
aa_shared_changed_now(bool consent)
{
	if (aa_shared == NULL)
		return;
	if (consent)
		publish_consent_change(-1, NULL, NULL);
	else
		pg_atomic_fetch_add_u64(&aa_shared->generation, 1);
}

/* the generation counter: every backend drops its caches (see above) */
void
aa_generation_bump_at_commit(void)
{
	if (aa_shared != NULL)
		aa_bump_at_commit(&aa_shared->generation, NULL);
}

/*
 * A consent provision of this patient (NULL: of any patient, e.g. after
 * TRUNCATE) was written: publish it now and again at commit, like
 * aa_bump_at_commit().  A transaction that touches more patients than it
 * can remember publishes "every patient" at commit.
 */
void
aa_consent_changed_at_commit(const char *patient, int len)
{
	char		one[1][AA_CONSENT_PATIENT_MAX];
	int			onelen[1];
	bool		all = (patient == NULL || len < 0 || len > AA_CONSENT_PATIENT_MAX);

	if (publish_hook && pending.hook_told)
		publish_hook(true);
	if (all)
	{
		pending.npatients = -1;
		publish_consent_change(-1, NULL, NULL);
		return;
	}
	memcpy(one[0], patient, len);
	onelen[0] = len;
	publish_consent_change(1, one, onelen);

	if (pending.npatients < 0)
		return;
	for (int i = 0; i < pending.npatients; i++)
		if (pending.patient_len[i] == len &&
			memcmp(pending.patient[i], patient, len) == 0)
			return;
	if (pending.npatients >= MAX_PENDING_PATIENTS)
	{
		pending.npatients = -1;
		return;
	}
	memcpy(pending.patient[pending.npatients], patient, len);
	pending.patient_len[pending.npatients] = len;
	pending.npatients++;
}

/*
 * The patients of the changes published in (since, upto].  False when some
 * of them are no longer in the log or one said "every patient".
 */
bool
aa_consent_changes(uint64 since, uint64 upto, List **patients)
{
	uint64		first;
	bool		ok = true;
	int			n = 0;
	char	  (*pats)[AA_CONSENT_PATIENT_MAX];
	int		   *lens;

	*patients = NIL;
	if (aa_shared == NULL)
		return false;
	/* copy under the spinlock (no allocation there), then build the list */
	pats = palloc(sizeof(*pats) * AA_CONSENT_LOG);
	lens = palloc(sizeof(int) * AA_CONSENT_LOG);
	SpinLockAcquire(&aa_shared->consent_mutex);
	first = aa_shared->consent_nlog > AA_CONSENT_LOG ?
		aa_shared->consent_nlog - AA_CONSENT_LOG : 0;
	/* everything after 'since' must still be there */
	if (first > 0 && aa_shared->consent_log[first % AA_CONSENT_LOG].gen > since)
		ok = false;
	for (uint64 i = aa_shared->consent_nlog; ok && i > first; i--)
	{
		struct AAConsentChange *c = &aa_shared->consent_log[(i - 1) % AA_CONSENT_LOG];

		if (c->gen <= since)
			break;
		if (c->gen > upto)
			continue;
		if (c->len < 0)
			ok = false;
		else
		{
			memcpy(pats[n], c->patient, c->len);
			lens[n] = c->len;
			n++;
		}
	}
	SpinLockRelease(&aa_shared->consent_mutex);
	if (ok)
		for (int i = 0; i < n; i++)
			*patients = lappend(*patients, pnstrdup(pats[i], lens[i]));
	pfree(pats);
	pfree(lens);
	return ok;
}
