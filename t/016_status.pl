# The audit writer's status view, agentauth.status (issue 15): it says
# what the writer is doing when it is not well.
#
#   - running: the head it shows is the one the writer last wrote to the
#     server log, and is in the chain;
#   - stuck (SIGSTOP) with records queued: still "running", but the age of
#     the oldest unwritten record grows past a second, the queue holds
#     bytes; a statement that fails closed meanwhile is counted;
#   - terminated (with the postmaster held, so that it does not restart
#     the writer at once): "stopped", no pid, since when;
#   - failing at every restart (audit_log unreadable; not as root): "failed";
#   - back: "running" again, everything written.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;

my $node = PostgreSQL::Test::Cluster->new('status');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_wait_timeout = '3s'
agentauth.head_log_interval = '1s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');

sub writer_pid
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'")
	  or die "the audit writer did not start";
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'");
}

sub status
{
	my ($cols) = @_;
	return $node->safe_psql('postgres', "SELECT $cols FROM agentauth.status");
}

# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------
my $wpid = writer_pid();
$node->safe_psql('postgres', "SELECT agentauth._audit('t16_first')");
ok($node->poll_query_until('postgres',
		"SELECT writer_state = 'running' FROM agentauth.status"),
	'the writer is running');
is(status('writer_pid'), $wpid, 'with its pid');
is(status("oldest_unwritten_age = '0'::interval AND queue_used_bytes = 0"), 't',
	'nothing unwritten');
is(status('failed_closed'), '0', 'no statement failed closed');

# the head it shows is the one last written to the server log
my $seq = $node->safe_psql('postgres',
	"SELECT max(seq) FROM agentauth.audit_log WHERE event = 't16_first'");
ok($node->poll_query_until('postgres',
		"SELECT head_seq >= $seq FROM agentauth.status"),
	'the head logged reaches the record written (head_log_interval 1 s)');
my ($hseq, $hhash) = split /\|/, status('head_seq, head_hash');
like(slurp_file($node->logfile), qr/chain head: seq=$hseq row_hash=$hhash /,
	'head_seq and head_hash are the head in the server log');
is($node->safe_psql('postgres',
		"SELECT encode(row_hash, 'hex') FROM agentauth.audit_log WHERE seq = $hseq"),
	$hhash, 'and in the chain');

# ---------------------------------------------------------------------------
# stuck: SIGSTOP with records queued
# ---------------------------------------------------------------------------
{
	kill 'STOP', $wpid;
	$node->safe_psql('postgres',
		"SET agentauth.audit_sync = off; SELECT agentauth._audit('t16_queued')");
	ok($node->poll_query_until('postgres',
			"SELECT oldest_unwritten_age > '1 second' FROM agentauth.status"),
		'writer stopped, a record queued: the oldest unwritten age grows beyond a second');
	is(status("writer_state, queue_used_bytes > 0, queue_percent >= 0, oldest_unwritten_age < '1 hour'"),
		'running|t|t|t', 'the writer is still "running" (stuck), the queue holds the record');

	# the log is audit_wait_timeout behind: the next statement fails closed,
	# and is counted
	ok($node->poll_query_until('postgres',
			"SELECT oldest_unwritten_age > audit_wait_timeout FROM agentauth.status"),
		'the oldest unwritten age passes audit_wait_timeout');
	my ($r, $o, $e) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSET agentauth.audit_sync = on; SELECT agentauth._audit('t16_refused')");
	isnt($r, 0, 'a statement waiting for its record fails closed');
	like($e, qr/53000/, 'with 53000');
	is(status("failed_closed >= 1, last_failed_closed_at > now() - interval '1 minute'"), 't|t',
		'failed_closed counts it, with its time');
	my $failed = status('failed_closed');

	kill 'CONT', $wpid;
	ok($node->poll_query_until('postgres',
			"SELECT oldest_unwritten_age = '0'::interval AND queue_used_bytes = 0 FROM agentauth.status"),
		'writer resumed: everything written');
	is(status('writer_state'), 'running', 'running');
	is(status('failed_closed'), $failed, 'failed_closed stays (since the server started)');
	is($node->safe_psql('postgres', "SELECT count(*) FROM agentauth.audit_log WHERE event = 't16_queued'"),
		'1', 'the queued record is in the log');
}

# ---------------------------------------------------------------------------
# terminated: the postmaster is held (SIGSTOP) so that it cannot restart the
# writer, and a session opened before asks
# ---------------------------------------------------------------------------
{
	my $pmpid = (split /\n/, slurp_file($node->data_dir . '/postmaster.pid'))[0];
	my $bg = $node->background_psql('postgres');
	kill 'STOP', $pmpid;
	my $out = eval {
		$bg->query_safe("SELECT pg_terminate_backend($wpid)");
		$bg->query_safe(q{
DO $$
BEGIN
    FOR i IN 1..600 LOOP
        EXIT WHEN (SELECT writer_state FROM agentauth.status) <> 'running';
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$});
		$bg->query_safe(
			"SELECT writer_state, writer_pid IS NULL, writer_since > now() - interval '1 minute', "
			  . "oldest_unwritten_age = '0'::interval FROM agentauth.status");
	};
	my $err = $@;
	kill 'CONT', $pmpid;
	$bg->quit;
	is($err, '', 'the session asked while the writer was down');
	like($out // '', qr/^stopped\|t\|t\|t$/m,
		'writer terminated: "stopped", no pid, since just now');

	my $new = writer_pid();
	ok($node->poll_query_until('postgres',
			"SELECT writer_state = 'running' AND writer_pid = $new FROM agentauth.status"),
		'restarted: running again, with the new pid');
	isnt($new, $wpid, 'a new writer');
	$wpid = $new;
}

# ---------------------------------------------------------------------------
# failing at every restart
# ---------------------------------------------------------------------------
SKIP:
{
	skip 'file permissions do not bind root', 4 if $> == 0;

	my $file = $node->data_dir . '/'
	  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('agentauth.audit_record')");
	chmod 0000, $file;
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)");
	$node->safe_psql('postgres',
		"SET agentauth.audit_sync = off; SELECT agentauth._audit('t16_unwritable')");
	ok($node->poll_query_until('postgres',
			"SELECT writer_state = 'failed' FROM agentauth.status"),
		'audit_log unreadable: the writer is "failed"');
	my $since = status('writer_since');
	sleep 2;
	ok($node->poll_query_until('postgres',
			"SELECT writer_state = 'failed' FROM agentauth.status"),
		'failed again after its restarts');
	is(status('writer_since'), $since, 'failed since its first failure');

	chmod 0600, $file;
	ok($node->poll_query_until('postgres',
			"SELECT writer_state = 'running' AND queue_used_bytes = 0 FROM agentauth.status"),
		'audit_log readable again: running, everything written');
}

# ---------------------------------------------------------------------------
# the README's queries run, as a pg_monitor member (what postgres_exporter
# connects as)
# ---------------------------------------------------------------------------
{
	my $readme = slurp_file(dirname(__FILE__) . '/../README.md');
	my ($section) = $readme =~ /^### Monitoring the writer: `agentauth.status`\n(.*?)^### /ms;
	ok(defined $section, 'the README has the monitoring section');
	my @sql = ($section // '') =~ /```sql\n(.*?)```/gs;
	my ($yaml) = ($section // '') =~ /```yaml\n(.*?)```/s;
	my ($query) = ($yaml // '') =~ /^  query: \|\n((?:    .*\n)+)/m;
	ok(defined $query, 'with a postgres_exporter query');
	my @metrics = ($yaml // '') =~ /^    - (\w+):$/mg;

	$node->safe_psql('postgres', 'CREATE ROLE t16_exporter LOGIN IN ROLE pg_monitor');
	for my $q (@sql, $query // 'SELECT')
	{
		my ($r, $o, $e) = $node->psql('postgres', $q,
			extra_params => [ '-U', 't16_exporter', '-F', ',', '-P', 'tuples_only=off', '-P', 'footer=off' ]);
		is($r, 0, 'a README query runs as a pg_monitor member') or diag("$q\n$e");
		next unless defined $query && $q eq $query;
		my ($head, $row) = split /\n/, $o;
		is(join(',', sort split(/,/, $head // '')), join(',', sort @metrics),
			'the exporter query returns exactly the metrics the YAML declares');
		like($row // '', qr/^running,1,/, 'and says the writer runs');
	}
	ok($node->poll_query_until('postgres', $sql[1] // 'SELECT', 'f|f|f|t|f'),
		'the README\'s alert checks: only failing_closed fires (a statement failed closed within 5 minutes)');
}

is($node->safe_psql('postgres', 'SELECT ok FROM agentauth.verify_audit()'), 't', 'the chain verifies');
$node->stop;
done_testing();
