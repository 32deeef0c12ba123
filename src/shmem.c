/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Shared memory of agentauth: the generation counter that invalidates
 *		every backend's caches after a commit that changed access state.
 *
 *		A transaction that changes tokens, principals, consent, defaults,
 *		overrides, approvals or classifications calls
 *		aa_generation_bump_at_commit(); the counter moves in the COMMIT
 *		callback, after the change is visible to new snapshots.  A backend
 *		reads the counter before it reloads, and reloads with the latest
 *		snapshot, so it can never cache old state under a new generation.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "agentauth.h"

AASharedState *aa_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool bump_pending = false;
static bool xact_callback_registered = false;

static void
aa_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AASharedState)));
	RequestAddinShmemSpace(aa_audit_shmem_size());
	RequestAddinShmemSpace(aa_monitor_shmem_size());
}

static void
aa_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	aa_shared = ShmemInitStruct("agentauth", sizeof(AASharedState), &found);
	if (!found)
		pg_atomic_init_u64(&aa_shared->generation, 1);
	aa_audit_shmem_startup();
	aa_monitor_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
}

static void
aa_shmem_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (bump_pending && aa_shared != NULL)
				pg_atomic_fetch_add_u64(&aa_shared->generation, 1);
			bump_pending = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			bump_pending = false;
			break;
		default:
			break;
	}
}

void
aa_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = aa_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = aa_shmem_startup;
}

uint64
aa_generation(void)
{
	if (aa_shared == NULL)
		return 0;
	return pg_atomic_read_u64(&aa_shared->generation);
}

/*
 * Ask for the generation counter to move once the current transaction has
 * committed.  Also moves it at once: a backend that reloads between now and
 * our commit reads the old state, which is still the truth until then, and
 * the bump at commit makes it reload again.
 */
void
aa_generation_bump_at_commit(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(aa_shmem_xact_callback, NULL);
		xact_callback_registered = true;
	}
	bump_pending = true;
	if (aa_shared != NULL)
		pg_atomic_fetch_add_u64(&aa_shared->generation, 1);
}
