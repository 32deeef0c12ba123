# The records of a query that a function runs inside a statement, when the
# statement ends by a cancel or its backend exits (a terminate, a client
# that disconnects) while that query runs.
#
# A function's query (PL/pgSQL, SQL) keeps its counts in executor memory
# that PostgreSQL frees late in abort processing -- after the abort's push
# into the audit queue, and at backend exit after the exit's push.  1.1
# before this test: a terminate lost the counted records; a cancel left
# them in the backend until its next statement.  Each case here has read
# two patients' rows and sleeps on the second when it is stopped; both
# patients' access records must reach the log with no further statement
# of the stopped session.  The top-level statement is the control: its
# memory goes earlier and was always recorded.
#
# And a statement whose records do not fit in the queue while the writer
# is stopped: it fails closed (53000), and its records -- 1.1 before:
# dropped at the abort, with a WARNING -- stay in the session, which
# pushes them before it reads again, or when it ends.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_exit');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_wait_timeout = '3s'
agentauth.audit_queue_size = '256kB'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');

$node->safe_psql('postgres', q{
CREATE ROLE t17_agent LOGIN;
SELECT agentauth.register_agent('t17-agent', 't17_agent', 'Exit AI', '{TREAT}', '{lab:read}');
});
my $secret = $node->safe_psql('postgres',
	"SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 't17-agent'), 'TREAT')");

# one table per case, two patients each, both permitted; the second
# patient's row sleeps (pg_sleep in the query's target list, evaluated
# after the row check has counted the row)
sub setup_case
{
	my ($case) = @_;
	$node->safe_psql('postgres', qq{
CREATE TABLE t17_$case (patient_id text NOT NULL, value text);
INSERT INTO t17_$case VALUES ('T17-$case-1', 'high'), ('T17-$case-2', 'low');
SELECT agentauth.protect_table('t17_$case', 'patient_id', '{"value": "lab"}');
GRANT SELECT ON t17_$case TO t17_agent;
SELECT agentauth.record_consent('T17-$case-1', 'permit', '{TREAT}');
SELECT agentauth.record_consent('T17-$case-2', 'permit', '{TREAT}');
});
}

my $sleep = "pg_sleep(CASE WHEN patient_id LIKE '%-2' THEN 300 ELSE 0 END)";
my %query = (
	# PL/pgSQL: SELECT INTO runs its query through SPI
	plpgsql_term => "SELECT t17_f_plpgsql_term()",
	plpgsql_cancel => "SELECT t17_f_plpgsql_cancel()",
	# the same in a savepoint: the subtransaction's abort pushes them
	plpgsql_sub => "SELECT t17_f_plpgsql_sub()",
	# a cursor declared before the savepoint, its FETCH cancelled inside
	# it (1.1: the FETCH's counts waited for the cursor's end)
	cursor_sub => "FETCH ALL FROM c",
	# a SQL function's query, read a row at a time
	sql_term => "SELECT t17_f_sql_term()",
	# control: the statement's own query
	top_term => "SELECT patient_id, $sleep FROM t17_top_term",
);

for my $case (sort keys %query)
{
	setup_case($case);
	if ($case =~ /^plpgsql/)
	{
		$node->safe_psql('postgres', qq{
CREATE FUNCTION t17_f_$case() RETURNS bigint LANGUAGE plpgsql AS \$f\$
DECLARE n bigint;
BEGIN
    SELECT count(*) INTO n FROM (SELECT patient_id, value, $sleep FROM t17_$case) s;
    RETURN n;
END
\$f\$;
GRANT EXECUTE ON FUNCTION t17_f_$case() TO t17_agent;
});
	}
	elsif ($case =~ /^sql/)
	{
		$node->safe_psql('postgres', qq{
CREATE FUNCTION t17_f_$case() RETURNS SETOF text LANGUAGE sql AS \$f\$
    SELECT value || ${sleep}::text FROM t17_$case
\$f\$;
GRANT EXECUTE ON FUNCTION t17_f_$case() TO t17_agent;
});
	}
}

# the audit records of a case's table, once everything queued is written:
# patient, outcome, rows, and who read them
sub records
{
	my ($case) = @_;
	$node->safe_psql('postgres',
		"SET agentauth.audit_sync = on; SELECT agentauth._audit('t17_drain_$case')");
	return $node->safe_psql('postgres', qq{
SELECT string_agg(patient || ':' || outcome || ':' || row_count || ':' || coalesce(principal_name, '-'),
                  ',' ORDER BY patient)
  FROM agentauth.audit_log
 WHERE event = 'access' AND relation LIKE '%t17_$case'});
}

for my $case (sort keys %query)
{
	my $how = $case =~ /(cancel|sub)$/ ? 'cancel' : 'terminate';
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe("SET application_name = 't17_$case'");
	$bg->query_safe("SET SESSION AUTHORIZATION t17_agent");
	$bg->query_safe("SELECT agentauth.begin_session('$secret') IS NOT NULL");
	if ($case eq 'cursor_sub')
	{
		$bg->query_safe("BEGIN; DECLARE c CURSOR FOR SELECT patient_id, $sleep FROM t17_cursor_sub; SAVEPOINT s");
	}
	elsif ($case =~ /sub$/)
	{
		$bg->query_safe("BEGIN; SAVEPOINT s");
	}
	# sent, not waited for: it sleeps on the second patient's row
	$bg->{stdin} .= "$query{$case};\n";
	$bg->{run}->pump_nb;
	ok($node->poll_query_until('postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE application_name = 't17_$case' AND wait_event = 'PgSleep'}),
		"$case: the statement sleeps on the second patient's row");
	# (a SQL function read a row at a time records each run as it ends)
	is(records($case), '', "$case: nothing recorded while it runs")
	  unless $case =~ /^sql/;

	my $pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = 't17_$case'");
	my $mark = $node->safe_psql('postgres', 'SELECT coalesce(max(seq), 0) FROM agentauth.audit_log');
	if ($how eq 'cancel')
	{
		$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
		ok($node->poll_query_until('postgres', qq{
SELECT state LIKE 'idle%' FROM pg_stat_activity WHERE pid = $pid}),
			"$case: the statement was cancelled, the session is idle");
	}
	else
	{
		$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
		ok($node->poll_query_until('postgres',
				"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
			"$case: the backend exited");
	}

	is(records($case), "T17-$case-1:permit:1:t17-agent,T17-$case-2:permit:1:t17-agent",
		"$case ($how): both patients' reads are in the log, the agent's, with no further statement of that session");
	if ($how eq 'terminate')
	{
		# before the session's end (1.1: after it, and with no session)
		is($node->safe_psql('postgres', qq{
SELECT max(a.seq) < min(e.seq)
  FROM agentauth.audit_log a
  JOIN agentauth.audit_log e ON e.event = 'session_end' AND e.token = a.token AND e.seq > $mark
 WHERE a.event = 'access' AND a.relation LIKE '%t17_$case'}), 't',
			"$case: recorded before the session's end");
	}
	eval { $bg->quit; };
}

# ---------------------------------------------------------------------------
# a transaction-only session's end reaches the queue with its COMMIT (1.1:
# emitted after the commit's push, it waited in the backend for the next
# transaction or the exit)
# ---------------------------------------------------------------------------
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe("SET SESSION AUTHORIZATION t17_agent");
	$bg->query_safe("SET application_name = 't17_txonly'");
	my $mark = $node->safe_psql('postgres', 'SELECT coalesce(max(seq), 0) FROM agentauth.audit_log');
	$bg->query_safe("BEGIN; SELECT agentauth.begin_session('$secret', transaction_only => true) IS NOT NULL; COMMIT");
	$node->safe_psql('postgres', "SET agentauth.audit_sync = on; SELECT agentauth._audit('t17_drain_txonly')");
	is($node->safe_psql('postgres', qq{
SELECT string_agg(event, ',' ORDER BY seq) FROM agentauth.audit_log
 WHERE seq > $mark AND event LIKE 'session_%' AND client LIKE '%t17_txonly%'}),
		'session_begin,session_end',
		'a transaction-only session: its end is in the log once COMMIT returned, the session idle');
	$bg->quit;
}

# ---------------------------------------------------------------------------
# the queue full: a statement's records wait in its session, not dropped
# ---------------------------------------------------------------------------
sub writer_pid
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'")
	  or die "the audit writer did not start";
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'");
}

sub bulk_records
{
	my ($table) = @_;
	$node->safe_psql('postgres',
		"SET agentauth.audit_sync = on; SELECT agentauth._audit('t17_drain_$table')");
	return $node->safe_psql('postgres', qq{
SELECT count(DISTINCT patient) || CASE WHEN count(*) > count(DISTINCT patient)
                                       THEN ' (' || count(*) - count(DISTINCT patient) || ' twice)' ELSE '' END
  FROM agentauth.audit_log
 WHERE relation LIKE '%$table' AND patient IS NOT NULL});
}

# 20,000 patients, none consented: a record each (withheld), far more
# than the 256 kB queue holds
for my $table ('t17_full_next', 't17_full_exit', 't17_full_timeout', 't17_full_term')
{
	$node->safe_psql('postgres', qq{
CREATE TABLE $table (patient_id text NOT NULL, value text);
INSERT INTO $table SELECT 'T17-F-' || i, 'v' FROM generate_series(1, 20000) i;
SELECT agentauth.protect_table('$table', 'patient_id', '{"value": "lab"}');
GRANT SELECT ON $table TO t17_agent;
});
}

# next: the session reads again; exit: it ends; timeout: the statement is
# cancelled (statement_timeout) while it waits for room, after some of its
# records went into the queue (1.1: those were pushed again: twice)
for my $end ('next', 'exit', 'timeout')
{
	my $table = "t17_full_$end";
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe("SET SESSION AUTHORIZATION t17_agent");
	$bg->query_safe("SELECT agentauth.begin_session('$secret') IS NOT NULL");

	my $wpid = writer_pid();
	kill 'STOP', $wpid;
	$bg->query_safe("SET statement_timeout = '1s'") if $end eq 'timeout';
	my ($out, $err) = $bg->query("SELECT count(*) FROM $table");
	my $stderr = $bg->{stderr};
	$bg->{stderr} = '';
	ok($err, "queue full ($end): the statement fails closed");
	like($stderr, $end eq 'timeout' ? qr/statement timeout/ : qr/audit records could not be (queued|committed)/,
		"queue full ($end): and says why");
	like($stderr, qr/could not be queued yet/, "queue full ($end): its records wait in the session");
	unlike($stderr, qr/are lost/, "queue full ($end): none dropped");

	if ($end ne 'exit')
	{
		# still stopped: the session's next read fails closed before it reads
		($out, $err) = $bg->query("SELECT count(*) FROM t17_plpgsql_term");
		$stderr = $bg->{stderr};
		$bg->{stderr} = '';
		ok($err && $stderr =~ /53000|could not be queued/,
			'queue full: the next read of the session fails closed while they wait');
		kill 'CONT', $wpid;
		$bg->query("RESET statement_timeout");
		$bg->{stderr} = '';
		($out, $err) = $bg->query("SELECT count(*) FROM t17_plpgsql_term");
		is($err, 0, 'writer resumed: the next read succeeds') or diag($bg->{stderr});
		$bg->{stderr} = '';
		is(bulk_records($table), '20000',
			"writer resumed ($end): the failed statement's 20,000 records are in the log, each once (pushed before the next read)");
		$bg->quit;
	}
	else
	{
		kill 'CONT', $wpid;
		$bg->quit;
		ok($node->poll_query_until('postgres',
				"SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 't17_agent'"),
			'queue full: the session ended');
		is(bulk_records($table), '20000',
			'writer resumed: the failed statement\'s 20,000 records are in the log (pushed as the session ended)');
	}
}

# term: the backend is terminated while it waits for room, the writer
# resumed at once: the exit pushes the rest, and what went into the queue
# before is not pushed again (1.1: twice)
{
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	$bg->query_safe("SET SESSION AUTHORIZATION t17_agent");
	$bg->query_safe("SET application_name = 't17_full_term'");
	$bg->query_safe("SELECT agentauth.begin_session('$secret') IS NOT NULL");
	my $wpid = writer_pid();
	kill 'STOP', $wpid;
	$bg->{stdin} .= "SELECT count(*) FROM t17_full_term;\n";
	$bg->{run}->pump_nb;
	my $pid;
	ok($node->poll_query_until('postgres', qq{
SELECT count(*) = 1 FROM pg_stat_activity
 WHERE application_name = 't17_full_term' AND state = 'active' AND wait_event_type = 'Extension'}),
		'queue full (term): the statement waits for room');
	$pid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE application_name = 't17_full_term'");
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	kill 'CONT', $wpid;
	ok($node->poll_query_until('postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
		'queue full (term): the backend exited');
	eval { $bg->quit; };
	is(bulk_records('t17_full_term'), '20000',
		"queue full (term): the statement's 20,000 records are in the log, each once");
}

is($node->safe_psql('postgres', 'SELECT ok, problem FROM agentauth.verify_audit()'),
	't|', 'verify_audit: the chain holds');
is($node->safe_psql('postgres', 'SELECT ok, problem FROM agentauth.verify_audit_sql()'),
	't|', 'verify_audit_sql: the chain holds');

done_testing();
