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
 *		(aa_monitor_observe), every one however many, and after the batch,
 *		in a transaction of its own (an alert round that fails loses none
 *		of them), moves last_session_at of those whose value is older than
 *		an hour to now, skipping a row an administrator holds (tried again
 *		next round).  It so counts sessions begun in read-only transactions
 *		and on standbys too (their records are forwarded), which 1.0 did
 *		not.  The query for agents inactive past agentauth.inactive_after,
 *		which reads it, is here too (monitor.c raises their alerts).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "agentauth.h"

/* the principals noted since the last store: a set, no bound */
static HTAB *noted = NULL;

/* stores that failed in a row; past 3 what is noted is dropped, said */
static int	failures = 0;

/*
 * Of the principals in $1 whose last_session_at is older than $2 seconds,
 * those not locked get now(); the ids left are those that still need it
 * (locked: tried again).
 */
#define STORE_SQL \
	"WITH want AS (SELECT p.id FROM agentauth.principal p " \
	"  WHERE p.id OPERATOR(pg_catalog.=) ANY ($1) AND (p.last_session_at IS NULL " \
	"   OR p.last_session_at OPERATOR(pg_catalog.<) (pg_catalog.now() " \
	"       OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $2)))), " \
	"got AS (SELECT p.id FROM agentauth.principal p " \
	"  WHERE p.id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT w.id FROM want w)) " \
	"  FOR NO KEY UPDATE SKIP LOCKED), " \
	"done AS (UPDATE agentauth.principal p SET last_session_at = pg_catalog.now() " \
	"  FROM got WHERE p.id OPERATOR(pg_catalog.=) got.id RETURNING p.id) " \
	"SELECT w.id FROM want w WHERE w.id OPERATOR(pg_catalog.<>) ALL " \
	"  (ARRAY(SELECT d.id FROM done d))"

/* a session_begin record of principal was stored (or its row was held) */
void
aa_last_session_note(const pg_uuid_t *principal)
{
	if (noted == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(pg_uuid_t);
		ctl.entrysize = sizeof(pg_uuid_t);
		ctl.hcxt = TopMemoryContext;
		noted = hash_create("agentauth principals that began sessions", 64, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	(void) hash_search(noted, principal, HASH_ENTER, NULL);
}

bool
aa_last_session_pending(void)
{
	return noted != NULL && hash_get_num_entries(noted) > 0;
}

/* what was noted, as a uuid[] (the set is left as it is) */
static Datum
noted_array(void)
{
	long		n = hash_get_num_entries(noted);
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	HASH_SEQ_STATUS seq;
	pg_uuid_t  *e;
	int			i = 0;
	ArrayType  *a;

	hash_seq_init(&seq, noted);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		pg_uuid_t  *copy = palloc(sizeof(pg_uuid_t));

		*copy = *e;
		d[i++] = UUIDPGetDatum(copy);
	}
	a = construct_array(d, i, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
	return PointerGetDatum(a);
}

/*
 * Store what was noted, in a transaction of its own; the writer calls this
 * after its batch, outside any transaction, before its alert round (which
 * looks for inactive agents).  An error leaves what was noted for the next
 * call (three in a row drop it, with a warning).
 */
void
aa_last_session_store(void)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext oldcxt = CurrentMemoryContext;
	Oid			argtypes[2] = {UUIDARRAYOID, FLOAT8OID};
	Datum		args[2];

	if (!aa_last_session_pending())
		return;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		int			ret;

		PushActiveSnapshot(GetTransactionSnapshot());
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (OidIsValid(get_extension_oid("agentauth", true)))
		{
			args[0] = noted_array();
			/*
			 * at most hourly, and within half of agentauth.inactive_after
			 * (1.1, found by review: under an inactive_after of minutes, an
			 * agent in use every minute was suspended as inactive)
			 */
			args[1] = Float8GetDatum(aa_inactive_after > 0 ?
									 Max(Min(3600.0, aa_inactive_after / 2.0), 1.0) : 3600.0);
			ret = SPI_execute_plan(aa_spi_keep_plan(&plan, STORE_SQL, 2, argtypes),
								   args, NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "could not update agentauth.principal: %d", ret);
			hash_destroy(noted);
			noted = NULL;
			/* the rows an administrator held: next time */
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				bool		isnull;
				Datum		v = SPI_getbinval(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 1, &isnull);

				if (!isnull)
					aa_last_session_note(DatumGetUUIDP(v));
			}
		}
		else
		{
			hash_destroy(noted);	/* no extension: nothing to record */
			noted = NULL;
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		failures = 0;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(oldcxt);
		ereport(WARNING,
				(errmsg("agentauth audit writer could not record when principals last began a session: %s",
						edata->message),
				 errdetail(++failures >= 3 ? "Those noted are dropped." :
						   "It tries again after its next batch.")));
		FreeErrorData(edata);
		if (failures >= 3 && noted != NULL)
		{
			hash_destroy(noted);
			noted = NULL;
			failures = 0;
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The agents without a session for longer than agentauth.inactive_after
 * (id, login role, detail as JSON text), into SPI_tuptable; the caller is
 * connected to SPI.  Returns how many.
 */
uint64
aa_inactive_agents(void)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	int			ret;

	args[0] = Int64GetDatum((int64) aa_inactive_after);
	ret = SPI_execute_with_args("SELECT p.id, r.rolname::pg_catalog.text, "
								"pg_catalog.json_build_object('last_session_at', p.last_session_at, "
								"  'registered_at', p.registered_at, "
								"  'inactive_after', $1)::pg_catalog.text "
								"FROM agentauth.principal p "
								"LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.db_role "
								"WHERE p.kind OPERATOR(pg_catalog.=) 'agent' "
								"AND p.status OPERATOR(pg_catalog.=) 'active' "
								"AND greatest(p.last_session_at, p.registered_at, p.status_changed_at) "
								"OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) "
								"pg_catalog.make_interval(secs => $1))",
								1, argtypes, args, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not look for inactive agents: %d", ret);
	return SPI_processed;
}

/* principal id's login role, or NULL; the caller is connected to SPI */
char *
aa_principal_role(const pg_uuid_t *id)
{
	Oid			argtypes[1] = {UUIDOID};
	Datum		arg = UUIDPGetDatum(id);

	if (SPI_execute_with_args("SELECT r.rolname::pg_catalog.text FROM agentauth.principal p "
							  "JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) p.db_role "
							  "WHERE p.id OPERATOR(pg_catalog.=) $1",
							  1, argtypes, &arg, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}
