/*-------------------------------------------------------------------------
 *
 * replica.c
 *		Hot standbys and the access state (SPEC 6.9): what the primary
 *		changes reaches a standby's caches once replayed, and what would
 *		change it is refused on a standby.
 *
 *		The primary's shared counters (shmem.c) do not replicate.  So every
 *		transaction that publishes a change at commit -- a token, principal,
 *		default, override, approval or classification (the generation), or
 *		a consent provision -- also registers a relcache invalidation of a
 *		marker relation: agentauth.token for the generation, agentauth.consent
 *		for consent.  Invalidations travel in the commit record's WAL and are
 *		replayed on hot standbys after the commit is visible there.  On a
 *		standby the forwarder (forward.c), connected to agentauth.database,
 *		registers a relcache callback and accepts invalidations every
 *		AA_REPLICA_POLL_MS (aa_replica_poll); a marker's invalidation (or a
 *		reset of the invalidation queue: everything) moves the standby's own
 *		counters once, so each of its backends revalidates at its next
 *		protected row -- an open cursor's next FETCH included -- on the
 *		latest snapshot, which holds the replayed change.  The bound: replay
 *		lag plus AA_REPLICA_POLL_MS.  Any other invalidation of a marker
 *		(ANALYZE, VACUUM) reloads once more: never one reload too few.
 *
 *		Writes: a statement that writes a table of schema agentauth (or
 *		locks its rows) on a standby fails at ExecutorStart with 25006 and a
 *		hint to use the primary, before PostgreSQL's generic read-only error
 *		(columns.c calls aa_replica_check_write).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "nodes/plannodes.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "agentauth.h"

/* the standby's side: what the invalidations accepted so far said */
static bool callback_registered = false;
static Oid	token_relid = InvalidOid;
static Oid	consent_relid = InvalidOid;
static bool changed_generation = false;
static bool changed_consent = false;

static Oid
marker_relid(const char *name)
{
	Oid			nsp = get_namespace_oid(AA_SCHEMA, true);

	return OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
}

/*
 * The primary's side, called by shmem.c once before the commit of a
 * transaction that changed access state: a relcache invalidation of the
 * marker, logged with the commit.  (Once, not per change: PostgreSQL
 * merges such invalidations only within a command, and processes them
 * here at every command's end.)
 */
static void
replica_publish(bool consent)
{
	Oid			relid;

	if (!IsTransactionState() || RecoveryInProgress())
		return;
	relid = marker_relid(consent ? "consent" : "token");
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
}

void
aa_replica_init(void)
{
	aa_shmem_on_publish(replica_publish);
}

/* in the standby's forwarder, for every relcache invalidation accepted */
static void
replica_relcache_callback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || !OidIsValid(token_relid) ||
		!OidIsValid(consent_relid))
	{
		/* a reset, or markers not known yet: everything may have changed */
		changed_generation = true;
		changed_consent = true;
	}
	else if (relid == token_relid)
		changed_generation = true;
	else if (relid == consent_relid)
		changed_consent = true;
}

/*
 * The standby's forwarder, every AA_REPLICA_POLL_MS, outside a
 * transaction: accept the invalidations replayed since the last call, and
 * move the standby's counters for the markers among them.
 */
void
aa_replica_poll(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(replica_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	/* starting a transaction accepts every pending invalidation */
	StartTransactionCommand();
	token_relid = marker_relid("token");
	consent_relid = marker_relid("consent");
	CommitTransactionCommand();

	if (changed_generation)
		aa_shared_changed_now(false);
	if (changed_consent)
		aa_shared_changed_now(true);
	changed_generation = false;
	changed_consent = false;
}

/*
 * ExecutorStart on a hot standby (columns.c): a statement that would
 * write agentauth's state -- or lock its rows, as issue_token does -- is
 * refused with a clear message before the executor's generic one.
 */
void
aa_replica_check_write(PlannedStmt *ps)
{
	ListCell   *lc;
	Oid			nsp;

	if (!RecoveryInProgress())
		return;
	nsp = get_namespace_oid(AA_SCHEMA, true);
	if (!OidIsValid(nsp))
		return;
	foreach(lc, ps->rtable)
	{
		RangeTblEntry *rte = lfirst(lc);
		AclMode		required;

		if (rte->rtekind != RTE_RELATION)
			continue;
#if PG_VERSION_NUM >= 160000
		if (rte->perminfoindex == 0)
			continue;
		required = list_nth_node(RTEPermissionInfo, ps->permInfos,
								 rte->perminfoindex - 1)->requiredPerms;
#else
		required = rte->requiredPerms;
#endif
		if ((required & ~ACL_SELECT) == 0 ||
			get_rel_namespace(rte->relid) != nsp)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("agentauth state cannot be changed on a hot standby"),
				 errdetail("Break-the-glass, approvals, consent, tokens, principals and protection are written on the primary; this server is in recovery."),
				 errhint("Connect to the primary server; the change reaches this standby once it is replayed.")));
	}
}
