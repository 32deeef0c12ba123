/*-------------------------------------------------------------------------
 *
 * status.c
 *		agentauth._status(), the one row behind the view agentauth.status:
 *		the audit writer's health, read from shared memory -- is it
 *		running and since when, how full the queue is, how old the oldest
 *		record not yet written is, how many records it wrote recently, the
 *		chain head it last wrote to the server log, and how many statements
 *		failed closed since the server started.  It reads what
 *		audit_queue.c and monitor_signal.c keep, takes no table lock and
 *		writes nothing: a monitoring system may poll it as often as it
 *		likes, and it answers while the writer is down.
 *
 *		writer_state, in words:
 *		  running      a writer is attached and its last batch went through
 *		  starting     a writer is attached and has not yet written (it was
 *		               restarted after stopping or failing)
 *		  waiting for database   agentauth.database does not exist yet
 *		  not started  no writer since the server started
 *		  stopped      it exited (terminated, or the server is shutting
 *		               down); the postmaster restarts it within a second
 *		  failed       it exited with an error (see the server log)
 *		A writer that is running but stuck shows as a growing
 *		oldest_unwritten_age.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "agentauth.h"

#define STATUS_COLUMNS 19

static const char *
state_name(const AAWriterStatus *st)
{
	switch (st->state)
	{
		case AA_WRITER_ABLE:
			return st->writer_pid != 0 ? "running" : "stopped";
		case AA_WRITER_NO_DATABASE:
			return "waiting for database";
		case AA_WRITER_NOT_STARTED:
			return st->writer_pid != 0 ? "starting" : "not started";
		case AA_WRITER_STOPPED:
			return st->writer_pid != 0 ? "starting" : "stopped";
		case AA_WRITER_FAILED:
			return st->writer_pid != 0 ? "starting" : "failed";
	}
	return "unknown";
}

static Datum
interval_usecs(int64 usecs)
{
	Interval   *iv = (Interval *) palloc0(sizeof(Interval));

	iv->time = usecs;
	return IntervalPGetDatum(iv);
}

/* x rounded to two decimals, as numeric */
static Datum
numeric2(double x)
{
	return DirectFunctionCall2(numeric_round,
							   DirectFunctionCall1(float8_numeric, Float8GetDatum(x)),
							   Int32GetDatum(2));
}

PG_FUNCTION_INFO_V1(aa_status);

/* agentauth._status(): one row, see the view agentauth.status */
Datum
aa_status(PG_FUNCTION_ARGS)
{
	AAWriterStatus st;
	TupleDesc	tupdesc;
	Datum		values[STATUS_COLUMNS];
	bool		nulls[STATUS_COLUMNS];
	TimestampTz failed_at;
	uint64		failed;
	TimestampTz since;
	char		hex[AA_HASH_LEN * 2 + 1];
	int			i = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("agentauth._status() must return a record")));
	if (tupdesc->natts != STATUS_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("agentauth._status() returns %d columns, the library expects %d",
						tupdesc->natts, STATUS_COLUMNS),
				 errhint("ALTER EXTENSION agentauth UPDATE to the version of the installed library.")));
	tupdesc = BlessTupleDesc(tupdesc);

	aa_queue_status(&st);
	failed = aa_monitor_fail_closed_count(&failed_at);
	memset(nulls, 0, sizeof(nulls));

	/* writer_state, writer_pid, writer_since */
	values[i++] = CStringGetTextDatum(state_name(&st));
	if (st.writer_pid != 0)
		values[i++] = Int32GetDatum((int32) st.writer_pid);
	else
		nulls[i++] = true;
	if (st.state == AA_WRITER_ABLE && st.writer_pid != 0)
		since = st.writer_started_at;
	else if (st.state == AA_WRITER_NOT_STARTED)
		since = PgStartTime;
	else
		since = st.unable_since;
	if (since != 0)
		values[i++] = TimestampTzGetDatum(since);
	else
		nulls[i++] = true;

	/* queue_used_bytes, queue_capacity_bytes, queue_percent */
	values[i++] = Int64GetDatum((int64) st.queue_used);
	values[i++] = Int64GetDatum((int64) st.queue_capacity);
	values[i++] = numeric2(st.queue_capacity > 0 ?
						   100.0 * (double) st.queue_used / (double) st.queue_capacity : 0.0);

	/* oldest_unwritten_age: 0 when everything is written */
	values[i++] = interval_usecs(st.oldest_at != 0 && st.now > st.oldest_at ?
								 st.now - st.oldest_at : 0);

	/* records_written, records_per_second */
	values[i++] = Int64GetDatum((int64) st.records_written);
	values[i++] = numeric2((double) st.records_recent / AA_RATE_SECONDS);

	/* last_seq, last_written_at */
	values[i++] = Int64GetDatum(st.last_seq);
	if (st.last_written_at != 0)
		values[i++] = TimestampTzGetDatum(st.last_written_at);
	else
		nulls[i++] = true;

	/* head_seq, head_hash, head_logged_at */
	if (st.head_logged)
	{
		hex[hex_encode((const char *) st.head_hash, AA_HASH_LEN, hex)] = '\0';
		values[i++] = Int64GetDatum(st.head_seq);
		values[i++] = CStringGetTextDatum(hex);
		values[i++] = TimestampTzGetDatum(st.head_logged_at);
	}
	else
	{
		nulls[i++] = true;
		nulls[i++] = true;
		nulls[i++] = true;
	}

	/* failed_closed, last_failed_closed_at */
	values[i++] = Int64GetDatum((int64) failed);
	if (failed > 0 && failed_at != 0)
		values[i++] = TimestampTzGetDatum(failed_at);
	else
		nulls[i++] = true;

	/* the settings that bound the writer, as this session has them */
	values[i++] = BoolGetDatum(aa_audit_sync);
	values[i++] = interval_usecs((int64) aa_audit_wait_timeout * 1000);
	values[i++] = interval_usecs((int64) aa_head_log_interval * USECS_PER_SEC);

	Assert(i == STATUS_COLUMNS);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
