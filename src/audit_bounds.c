/*-------------------------------------------------------------------------
 *
 * audit_bounds.c
 *		The audit path's bounds: when a statement must fail closed rather
 *		than leave records that the writer may never store (issue 12,
 *		items 9 and 13).  audit.c asks; audit_queue.c knows how late the
 *		writer is.
 *
 *		  - The database.  The writer works in agentauth.database and
 *		    stores records only in its log.  A backend of another database
 *		    (the extension was installed there before agentauth.database
 *		    was changed) would queue records the writer never stores, or
 *		    stores in another database's log: they are refused (55000) in
 *		    the statement that produces them.
 *		  - How late the writer is.  The log must never be more than
 *		    agentauth.audit_wait_timeout behind a completed statement,
 *		    audit_sync on or off.  Late is: the oldest record the writer
 *		    has not committed is that old, or the writer has not been able
 *		    to write for that long (it exited, or fails at every restart).
 *		    A writer that is late but says it can write may be catching up
 *		    (it has just resumed, or a burst was queued): it gets the
 *		    timeout to commit everything queued so far before the
 *		    statement fails (53000).
 *
 *		On a hot standby the forwarder (forward.c) is in the writer's
 *		place: late is the primary not having committed them in time, and
 *		the error says so.
 *
 *		Every refusal is counted for the always-on "audit writer failing
 *		closed" alert (monitor_signal.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "agentauth.h"

static const char *
writer_state_text(AAWriterState state)
{
	switch (state)
	{
		case AA_WRITER_ABLE:
			return "the audit writer is running but not writing";
		case AA_WRITER_STOPPED:
			return "the audit writer is not running";
		case AA_WRITER_FAILED:
			return "the audit writer fails with an error at every attempt (see the server log)";
		case AA_WRITER_NOT_STARTED:
			return "the audit writer has not started";
		case AA_WRITER_NO_DATABASE:
			return "the audit writer is waiting for agentauth.database to be created";
	}
	return "?";
}

/* Refuse (55000) a record emitted outside agentauth.database. */
void
aa_audit_check_database(void)
{
	static int	in_audit_db = -1;
	static char *dbname = NULL;

	if (in_audit_db < 0)
	{
		char	   *db = OidIsValid(MyDatabaseId) ? get_database_name(MyDatabaseId) : NULL;

		dbname = MemoryContextStrdup(TopMemoryContext, db ? db : "?");
		in_audit_db = (db != NULL && aa_database != NULL &&
					   strcmp(db, aa_database) == 0);
	}
	if (!in_audit_db)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("audit records cannot be written in database \"%s\"", dbname),
				 errdetail("agentauth.database is \"%s\": the audit writer stores records only there.",
						   aa_database ? aa_database : ""),
				 errhint("Set agentauth.database in postgresql.conf to the database where the extension is installed, and restart the server.")));
}

/*
 * Is the log agentauth.audit_wait_timeout behind (and not catching up
 * within the timeout)?  Cheap when nothing waits: two atomic reads.
 */
bool
aa_audit_late(AAQueueLate *late)
{
	if (!aa_queue_late(aa_audit_wait_timeout, late))
		return false;
	if (late->unable_ms < aa_audit_wait_timeout &&
		(aa_queue_wait_committed(aa_queue_head(), aa_audit_wait_timeout) ||
		 !aa_queue_late(aa_audit_wait_timeout, late)))
		return false;
	return true;
}

/*
 * The statement fails closed (53000): its records could not be queued or
 * committed within the timeout (late NULL), or the log is that far behind.
 */
void
aa_audit_fail_closed(const char *what, const AAQueueLate *late)
{
	/* the always-on "audit writer failing closed" alert (monitor.c) */
	if (!aa_queue_in_writer())
		aa_monitor_fail_closed(what);
	/* a hot standby: its records go to the primary (forward.c) */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("audit records could not be %s within agentauth.audit_wait_timeout", what),
				 errdetail("On this hot standby audit records are forwarded to the primary (agentauth.forward_conninfo); the primary has not committed them in time."),
				 errhint("The statement was refused because its audit records could not be made durable in time; statements run again once the primary accepts records.  Check the primary, and the audit forwarder in this server's log.")));
	if (late == NULL)
	{
		AAQueueLate now;

		/*
		 * how long the oldest record has waited says whether a running
		 * writer writes (1.1, found by review: a stopped or blocked writer
		 * read as "running; 0% full")
		 */
		(void) aa_queue_late(0, &now);
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("audit records could not be %s within agentauth.audit_wait_timeout", what),
				 aa_queue_writer_running() ?
				 errdetail("The audit writer is running; the oldest audit record not yet written has waited %ld ms, and the audit queue is %d%% full.",
						   now.oldest_ms, aa_queue_percent_full()) :
				 errdetail("The audit writer is not running."),
				 errhint("The statement was refused because its audit records could not be made durable in time; retry, and check the audit writer in the server log.")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
			 errmsg("audit records could not be %s within agentauth.audit_wait_timeout", what),
			 late->oldest_ms >= aa_audit_wait_timeout ?
			 errdetail("The oldest audit record not yet written has waited %ld ms: %s.",
					   late->oldest_ms, writer_state_text(late->state)) :
			 errdetail("The audit writer has not been able to write for %ld ms: %s.",
					   late->unable_ms, writer_state_text(late->state)),
			 errhint("The statement was refused because the audit log is more than agentauth.audit_wait_timeout behind; statements run again once the audit writer writes.  Check the audit writer in the server log.")));
}
