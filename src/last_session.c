/*-------------------------------------------------------------------------
 *
 * last_session.c
 *		agentauth.principal.last_session_at, kept by the audit writer from
 *		the session_begin records it stores.
 *
 *		1.0 updated the row in begin_session's own transaction.  That left
 *		the principal's row locked by the agent until its transaction
 *		ended, and set_principal_status -- an administrator's suspension,
 *		or an alert rule's -- waited for it: an agent that kept its
 *		transaction open kept reading, unsuspended (1.1, found by review).
 *		No row of the registry is written on an agent's behalf now.  The
 *		writer notes the principal of every session_begin record
 *		(aa_monitor_observe) and, in its round after the batch, moves
 *		last_session_at of those whose value is older than an hour to
 *		now, skipping a row an administrator holds (tried again next
 *		round).  It so counts sessions begun in read-only transactions and
 *		on standbys too (their records are forwarded), which 1.0 did not.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/uuid.h"

#include "agentauth.h"

/* principals noted since the last round; more are dropped until then */
#define AA_LAST_SESSION_MAX	1024

static pg_uuid_t noted[AA_LAST_SESSION_MAX];
static int	nnoted = 0;

/*
 * Of the principals in $1 whose last_session_at is older than an hour,
 * those not locked get now(); the ids left are those that still need it
 * (locked: tried again).
 */
#define STORE_SQL \
	"WITH want AS (SELECT p.id FROM agentauth.principal p " \
	"  WHERE p.id OPERATOR(pg_catalog.=) ANY ($1) AND (p.last_session_at IS NULL " \
	"   OR p.last_session_at OPERATOR(pg_catalog.<) (pg_catalog.now() " \
	"       OPERATOR(pg_catalog.-) '1 hour'::pg_catalog.interval))), " \
	"got AS (SELECT p.id FROM agentauth.principal p " \
	"  WHERE p.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT w.id FROM want w)) " \
	"  FOR NO KEY UPDATE SKIP LOCKED), " \
	"done AS (UPDATE agentauth.principal p SET last_session_at = pg_catalog.now() " \
	"  FROM got WHERE p.id OPERATOR(pg_catalog.=) got.id RETURNING p.id) " \
	"SELECT w.id FROM want w WHERE w.id OPERATOR(pg_catalog.<>) ALL " \
	"  (ARRAY(SELECT d.id FROM done d))"

/* a session_begin record of principal was stored */
void
aa_last_session_note(const pg_uuid_t *principal)
{
	for (int i = 0; i < nnoted; i++)
		if (memcmp(&noted[i], principal, sizeof(pg_uuid_t)) == 0)
			return;
	if (nnoted < AA_LAST_SESSION_MAX)
		noted[nnoted++] = *principal;
}

bool
aa_last_session_pending(void)
{
	return nnoted > 0;
}

/* the update, in aa_last_session_store()'s subtransaction */
static void
store_noted(void *arg)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {UUIDARRAYOID};
	Datum		ids = PointerGetDatum(arg);
	int			ret;

	ret = SPI_execute_plan(aa_spi_keep_plan(&plan, STORE_SQL, 1, argtypes),
						   &ids, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not update agentauth.principal: %d", ret);
	/* those still to do: the rows an administrator held */
	nnoted = 0;
	for (uint64 i = 0; i < SPI_processed && nnoted < AA_LAST_SESSION_MAX; i++)
	{
		bool		isnull;
		Datum		v = SPI_getbinval(SPI_tuptable->vals[i],
									  SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			noted[nnoted++] = *DatumGetUUIDP(v);
	}
}

/*
 * Store what was noted, in the caller's transaction (SPI connected), in a
 * subtransaction of its own: a failure here loses these updates (with a
 * warning), never the round's alerts.
 */
void
aa_last_session_store(void)
{
	Datum	   *d;
	ErrorData  *edata;

	if (nnoted == 0)
		return;
	d = palloc(sizeof(Datum) * nnoted);
	for (int i = 0; i < nnoted; i++)
		d[i] = UUIDPGetDatum(&noted[i]);
	edata = aa_in_subtransaction(store_noted,
								 construct_array(d, nnoted, UUIDOID, UUID_LEN, false,
												 TYPALIGN_CHAR));
	if (edata != NULL)
	{
		ereport(WARNING,
				(errmsg("agentauth audit writer could not record when principals last began a session: %s",
						edata->message)));
		FreeErrorData(edata);
		nnoted = 0;
	}
}
