/*-------------------------------------------------------------------------
 *
 * forward.c
 *		The audit forwarder of a hot standby (SPEC 6.9): one background
 *		worker ("agentauth audit forwarder") that takes the audit writer's
 *		place while the server is in recovery.
 *
 *		A standby runs no chain: its backends queue their records as on a
 *		primary (audit.c, audit_queue.c: the queued form, an AAQueueEntry and
 *		the canonical body), and the forwarder, attached to the queue as its
 *		consumer, sends them in batches over libpq to the primary named by
 *		agentauth.forward_conninfo, as a login granted agentauth_forwarder:
 *
 *		    SELECT agentauth.forward_audit(<standby name>, <batch bytea>)
 *
 *		The batch is each record's body, as the chain hashes it, with its
 *		length and statement number (forward_sql.c reads it).  The primary
 *		validates every record, queues it for its own writer and returns
 *		only once its writer has committed them; only then does the
 *		forwarder release the batch from the standby's queue, which wakes
 *		the standby's backends waiting with audit_sync = on.  So the
 *		standby's queue keeps a record until the primary has it: a statement
 *		whose records cannot be delivered fails closed after
 *		audit_wait_timeout (audit_bounds.c), rollback and cancel on the
 *		standby erase nothing (the records are queued), and a batch sent
 *		again after a connection lost before the answer may be stored twice
 *		(at least once, never lost).
 *
 *		The connection is made and used without blocking (PQconnectPoll,
 *		PQsendQueryParams, WaitLatchOrSocket): SIGTERM and a reload are seen
 *		at once.  Failing to connect or to deliver marks the writer state
 *		failed (backends then fail closed within audit_wait_timeout) and is
 *		retried with a backoff from 100 ms to AA_FORWARD_BACKOFF_MAX_MS; the
 *		first delivery after that marks it able again.  A changed
 *		agentauth.forward_conninfo (reload) closes the connection.
 *
 *		The standby's name, recorded by the primary in each record's client
 *		("... standby=<name>"), is its cluster_name, or "standby".
 *
 *		Between batches, every AA_REPLICA_POLL_MS, it accepts the replayed
 *		invalidations that carry the primary's access-state changes
 *		(replica.c).  When recovery ends (promotion) it exits for good; the
 *		audit writer, started by the end of recovery, stores what is left in
 *		the queue and continues the chain from the replicated log.  On a
 *		primary it exits at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_bswap.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "agentauth.h"

#define AA_REPLICA_POLL_MS			100
#define AA_FORWARD_BATCH_BYTES		(1024 * 1024)
#define AA_FORWARD_BACKOFF_MAX_MS	2000
#define AA_FORWARD_CONNECT_MS		10000
#define AA_FORWARD_ANSWER_MS		60000

static volatile sig_atomic_t got_sigterm = false;
static bool exiting_cleanly = false;

static PGconn *conn = NULL;
static char *conn_info_used = NULL; /* the conninfo conn was made with */
static bool failing = false;		/* last attempt failed (logged once) */
static StringInfoData batch;

void
aa_forward_init(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "agentauth");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "aa_forward_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "agentauth audit forwarder");
	snprintf(worker.bgw_type, BGW_MAXLEN, "agentauth audit forwarder");
	RegisterBackgroundWorker(&worker);
}

static void
forward_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
forward_exit(int code, Datum arg)
{
	if (conn)
		PQfinish(conn);
	conn = NULL;
	aa_queue_writer_detach(!exiting_cleanly);
}

static void
disconnect(void)
{
	if (conn)
		PQfinish(conn);
	conn = NULL;
}

/* the attempt failed: log it once per run of failures, mark the state */
static void
forward_failed(const char *what)
{
	if (!failing)
		ereport(LOG,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("agentauth audit forwarder could not %s the primary", what),
				 errdetail("%s", conn ? PQerrorMessage(conn) : "no connection"),
				 errhint("Statements on protected tables fail closed on this standby until the primary accepts audit records again (agentauth.forward_conninfo).")));
	failing = true;
	disconnect();
	aa_queue_set_writer_state(AA_WRITER_FAILED);
}

/* wait for the socket (or the latch, or the deadline); false: give up */
static bool
wait_socket(int events, TimestampTz deadline)
{
	long		timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
	int			rc;

	if (timeout <= 0 || got_sigterm)
		return false;
	rc = WaitLatchOrSocket(MyLatch,
						   WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH | events,
						   PQsocket(conn), Min(timeout, 1000L), PG_WAIT_EXTENSION);
	if (rc & WL_LATCH_SET)
	{
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	return !got_sigterm;
}

/* Connect to agentauth.forward_conninfo without blocking. */
static bool
forward_connect(void)
{
	const char *keys[4];
	const char *vals[4];
	int			n = 0;
	PQconninfoOption *opts;
	bool		has_db = false;
	TimestampTz deadline;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	opts = PQconninfoParse(aa_forward_conninfo, NULL);
	if (opts == NULL)
	{
		if (!failing)
			ereport(LOG,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("agentauth.forward_conninfo is not a valid connection string")));
		failing = true;
		aa_queue_set_writer_state(AA_WRITER_FAILED);
		return false;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "dbname") == 0 && o->val && o->val[0])
			has_db = true;
	PQconninfoFree(opts);

	keys[n] = "dbname";
	vals[n++] = aa_forward_conninfo;
	keys[n] = "fallback_application_name";
	vals[n++] = "agentauth audit forwarder";
	if (!has_db)
	{
		/* a later dbname is a plain name: the primary's agentauth.database */
		keys[n] = "dbname";
		vals[n++] = aa_database;
	}
	keys[n] = NULL;
	vals[n] = NULL;

	conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL || PQstatus(conn) == CONNECTION_BAD)
	{
		forward_failed("connect to");
		return false;
	}
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), AA_FORWARD_CONNECT_MS);
	while (st != PGRES_POLLING_OK)
	{
		if (st == PGRES_POLLING_FAILED ||
			!wait_socket(st == PGRES_POLLING_READING ? WL_SOCKET_READABLE
						 : WL_SOCKET_WRITEABLE, deadline))
		{
			forward_failed("connect to");
			return false;
		}
		st = PQconnectPoll(conn);
	}
	if (PQsetnonblocking(conn, 1) != 0)
	{
		forward_failed("connect to");
		return false;
	}
	if (conn_info_used)
		pfree(conn_info_used);
	conn_info_used = MemoryContextStrdup(TopMemoryContext, aa_forward_conninfo);
	return true;
}

/*
 * The batch from tail: each record as [be32 body length][be64 statement]
 * [body], up to AA_FORWARD_BATCH_BYTES (at least one record).  Returns the
 * queue position after the last entry taken.  Transactional entries cannot
 * come from a standby (no xid is assigned in recovery): skipped.
 */
static uint64
build_batch(uint64 tail, uint64 head, int *nrec)
{
	uint64		pos = tail;

	resetStringInfo(&batch);
	*nrec = 0;
	while (pos < head && (batch.len == 0 || batch.len < AA_FORWARD_BATCH_BYTES))
	{
		const AAQueueEntry *e = aa_queue_entry_at(pos);

		if (!TransactionIdIsValid(e->xid))
		{
			uint32		len = pg_hton32(e->body_len);
			uint64		stmt = pg_hton64(e->statement);

			appendBinaryStringInfo(&batch, (char *) &len, sizeof(len));
			appendBinaryStringInfo(&batch, (char *) &stmt, sizeof(stmt));
			appendBinaryStringInfo(&batch, AA_ENTRY_BODY(e), e->body_len);
			(*nrec)++;
		}
		pos += e->len;
	}
	return pos;
}

static const char *
standby_name(void)
{
	const char *name = GetConfigOption("cluster_name", true, false);

	return (name && name[0]) ? name : "standby";
}

/* Send the batch; true once the primary answered that its writer committed it. */
static bool
send_batch(void)
{
	Oid			types[2] = {TEXTOID, BYTEAOID};
	const char *values[2];
	int			lengths[2];
	int			formats[2] = {0, 1};
	TimestampTz deadline;
	PGresult   *res;
	bool		ok = false;
	int			rc;

	values[0] = standby_name();
	lengths[0] = 0;
	values[1] = batch.data;
	lengths[1] = batch.len;
	if (!PQsendQueryParams(conn, "SELECT agentauth.forward_audit($1, $2)",
						   2, types, values, lengths, formats, 0))
		return false;

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), AA_FORWARD_ANSWER_MS);
	while ((rc = PQflush(conn)) > 0)
		if (!wait_socket(WL_SOCKET_WRITEABLE | WL_SOCKET_READABLE, deadline) ||
			!PQconsumeInput(conn))
			return false;
	if (rc < 0)
		return false;
	for (;;)
	{
		while (PQisBusy(conn))
		{
			if (!wait_socket(WL_SOCKET_READABLE, deadline) || !PQconsumeInput(conn))
				return false;
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		if (PQresultStatus(res) == PGRES_TUPLES_OK)
			ok = true;
		else if (!failing)
		{
			ereport(LOG,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("agentauth audit forwarder: the primary refused a batch of audit records"),
					 errdetail("%s", PQresultErrorMessage(res))));
			failing = true;
		}
		PQclear(res);
	}
	return ok;
}

/*
 * One round: deliver what the queue holds (one batch).  Returns true when
 * a batch went through (look again at once).
 */
static bool
forward_round(void)
{
	uint64		tail,
				head,
				end;
	int			nrec;

	aa_queue_bounds(&tail, &head);
	if (tail == head && conn != NULL)
		return false;
	if (aa_forward_conninfo == NULL || aa_forward_conninfo[0] == '\0')
	{
		aa_queue_set_writer_state(AA_WRITER_FAILED);
		return false;
	}
	if (conn == NULL && !forward_connect())
		return false;
	if (tail == head)
	{
		/* connected and nothing to send: able */
		aa_queue_set_writer_state(AA_WRITER_ABLE);
		return false;
	}

	pgstat_report_activity(STATE_RUNNING, "forwarding audit records");
	end = build_batch(tail, head, &nrec);
	if (nrec > 0 && !send_batch())
	{
		pgstat_report_activity(STATE_IDLE, NULL);
		forward_failed("deliver audit records to");
		return false;
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	if (failing)
		ereport(LOG,
				(errmsg("agentauth audit forwarder delivers audit records to the primary again")));
	failing = false;
	aa_queue_release(end);
	aa_queue_note_written(nrec, InvalidOid, 0, NULL, GetCurrentTimestamp());
	aa_queue_set_writer_state(AA_WRITER_ABLE);
	return true;
}

void
aa_forward_main(Datum main_arg)
{
	int			backoff = 0;
	TimestampTz next_try = 0;

	pqsignal(SIGTERM, forward_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	/* a primary (or a promoted standby) has its writer: never restarted */
	if (!RecoveryInProgress())
		proc_exit(0);
	BackgroundWorkerInitializeConnection(aa_database, NULL, 0);
	aa_worker_pin_settings();
	pgstat_report_appname("agentauth audit forwarder");

	initStringInfo(&batch);
	on_shmem_exit(forward_exit, (Datum) 0);
	aa_queue_writer_attach(MyLatch);

	while (!got_sigterm)
	{
		TimestampTz now;

		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (conn && (conn_info_used == NULL ||
						 strcmp(conn_info_used, aa_forward_conninfo) != 0))
				disconnect();
			next_try = 0;
		}
		/* promoted: the audit writer takes over the queue */
		if (!RecoveryInProgress())
			break;

		aa_replica_poll();		/* replayed access-state changes */

		now = GetCurrentTimestamp();
		if (now >= next_try)
		{
			if (forward_round())
			{
				backoff = 0;
				continue;
			}
			if (failing)
			{
				backoff = backoff == 0 ? 100 : Min(backoff * 2, AA_FORWARD_BACKOFF_MAX_MS);
				next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff);
			}
			else
				backoff = 0;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 AA_REPLICA_POLL_MS, PG_WAIT_EXTENSION);
	}

	exiting_cleanly = true;
	if (!RecoveryInProgress())
	{
		ereport(LOG,
				(errmsg("agentauth audit forwarder stops: recovery ended, the audit writer stores the records from now on")));
		proc_exit(0);
	}
	proc_exit(1);
}
