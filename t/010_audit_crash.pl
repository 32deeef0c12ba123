# The audit path under failure: a reader's ROLLBACK keeps its records;
# kill -9 of a backend and of the audit writer, and an immediate shutdown,
# lose no committed record, and seq continues gaplessly; a stopped writer
# makes audited statements fail closed within agentauth.audit_wait_timeout
# (with audit_sync off too, once the log is that far behind), and they
# recover when it resumes.  The writer leaves the chain head in
# the server log at shutdown.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = PostgreSQL::Test::Cluster->new('audit_crash');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
restart_after_crash = on
agentauth.audit_wait_timeout = '2s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');

sub wait_for_writer
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'")
	  or die "the audit writer did not start";
}

sub verify_both
{
	my ($what) = @_;
	is($node->safe_psql('postgres', 'SELECT ok, problem FROM agentauth.verify_audit()'),
		't|', "$what: verify_audit");
	is($node->safe_psql('postgres', 'SELECT ok, problem FROM agentauth.verify_audit_sql()'),
		't|', "$what: verify_audit_sql");
	is($node->safe_psql('postgres',
		'SELECT min(seq) = 1 AND max(seq) = count(*) FROM agentauth.audit_log'),
		't', "$what: seq gapless from 1");
}

wait_for_writer();

# A protected table.  A superuser reading it is audited as privileged_access;
# an agent in a session as access.
$node->safe_psql('postgres', q{
CREATE ROLE t10_agent LOGIN;
CREATE TABLE t10_labs (patient_id text NOT NULL, value text);
INSERT INTO t10_labs VALUES ('T10-P1', 'high'), ('T10-P2', 'low');
SELECT agentauth.protect_table('t10_labs', 'patient_id', '{"value": "lab"}');
GRANT SELECT ON t10_labs TO t10_agent;
SELECT agentauth.register_agent('t10-agent', 't10_agent', 'Lab AI', '{TREAT}', '{lab:read}');
SELECT agentauth.record_consent('T10-P1', 'permit', '{TREAT}');
});
my $secret = $node->safe_psql('postgres',
	"SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 't10-agent'), 'TREAT')");

# -- BEGIN; audited read; ROLLBACK keeps the read's record -------------
my $n0 = $node->safe_psql('postgres', "SELECT count(*) FROM agentauth.audit_log WHERE event = 'access'");
my $out = $node->safe_psql('postgres', qq{
SET SESSION AUTHORIZATION t10_agent;
SELECT agentauth.begin_session('$secret') IS NOT NULL;
BEGIN;
SELECT patient_id, value FROM t10_labs;
ROLLBACK;
});
like($out, qr/T10-P1\|high/, 'the agent read the row it may read');
is($node->safe_psql('postgres',
	"SELECT count(*) - $n0 FROM agentauth.audit_log WHERE event = 'access' AND patient = 'T10-P1'"),
	'1', 'BEGIN; read; ROLLBACK leaves the access record');

# an error later in the transaction does not erase it either
$n0 = $node->safe_psql('postgres', "SELECT count(*) FROM agentauth.audit_log WHERE event = 'privileged_access'");
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
BEGIN;
SELECT count(*) FROM t10_labs;
SELECT 1 / 0;
COMMIT;
});
like($stderr, qr/division by zero/, 'the transaction failed');
is($node->safe_psql('postgres',
	"SELECT count(*) - $n0 FROM agentauth.audit_log WHERE event = 'privileged_access'"),
	'1', 'a failed transaction keeps the record of its read');

# administrative events: only committed ones
$node->psql('postgres', "BEGIN; SELECT agentauth._audit('t10_admin_rolled_back'); ROLLBACK;");
$node->safe_psql('postgres', "SELECT agentauth._audit('t10_admin_committed')");
is($node->safe_psql('postgres',
	"SELECT string_agg(event, ',') FROM agentauth.audit_log WHERE event LIKE 't10_admin%'"),
	't10_admin_committed', 'administrative events only when committed');

verify_both('before any crash');

# -- kill -9 of a backend ---------------------------------------------------
sub committed_head
{
	return $node->safe_psql('postgres',
		"SELECT seq || ' ' || encode(row_hash, 'hex') FROM agentauth.audit_log ORDER BY seq DESC LIMIT 1");
}

sub crash_and_check
{
	my ($what, $victim_sql) = @_;

	$node->safe_psql('postgres', "SELECT agentauth._audit('t10_before_$what')");
	my $head = committed_head();
	my ($seq) = split / /, $head;

	# a session in the middle of a transaction with an uncommitted
	# administrative event, and the reads of a reader still running
	my $bg = $node->background_psql('postgres');
	$bg->query_safe("BEGIN");
	$bg->query_safe("SELECT agentauth._audit('t10_uncommitted_$what')");

	my $pid = $node->safe_psql('postgres', $victim_sql);
	ok($pid =~ /^\d+$/, "$what: found the process to kill");
	kill 'KILL', $pid;
	$node->poll_query_until('postgres', 'SELECT true')
	  or die "server did not come back";
	eval { $bg->quit; };
	wait_for_writer();

	like($node->safe_psql('postgres',
		"SELECT seq || ' ' || encode(row_hash, 'hex') FROM agentauth.audit_log WHERE seq = $seq"),
		qr/^\Q$head\E$/, "$what: the committed head survived");
	is($node->safe_psql('postgres',
		"SELECT count(*) FROM agentauth.audit_log WHERE event = 't10_uncommitted_$what'"),
		'0', "$what: the uncommitted transaction's event is absent");
	$node->safe_psql('postgres', "SELECT agentauth._audit('t10_after_$what')");
	is($node->safe_psql('postgres',
		"SELECT seq FROM agentauth.audit_log WHERE event = 't10_after_$what'"),
		$seq + 1, "$what: seq continues after the last committed record");
	verify_both("after $what");
}

crash_and_check('backend_kill',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() LIMIT 1");
crash_and_check('writer_kill',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'");

# -- immediate shutdown and restart -----------------------------------------
{
	$node->safe_psql('postgres', "SELECT agentauth._audit('t10_before_immediate')");
	my $head = committed_head();
	my ($seq) = split / /, $head;
	$node->stop('immediate');
	$node->start;
	wait_for_writer();
	is(committed_head(), $head, 'immediate shutdown: the committed head survived');
	$node->safe_psql('postgres', "SELECT agentauth._audit('t10_after_immediate')");
	is($node->safe_psql('postgres',
		"SELECT seq FROM agentauth.audit_log WHERE event = 't10_after_immediate'"),
		$seq + 1, 'immediate shutdown: seq continues');
	verify_both('after an immediate shutdown');
}

# -- the writer stopped: fail closed within the timeout, recover after ----
{
	my $wpid = $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'");
	kill 'STOP', $wpid;

	my $t0 = time();
	my ($r, $o, $e) = $node->psql('postgres', 'SELECT count(*) FROM t10_labs');
	my $elapsed = time() - $t0;
	isnt($r, 0, 'writer stopped: an audited read fails');
	like($e, qr/audit records could not be committed within agentauth.audit_wait_timeout/,
		'writer stopped: the error says why');
	unlike($o, qr/\d/, 'writer stopped: no row returned unrecorded');
	ok($elapsed >= 1.5 && $elapsed < 10, "writer stopped: failed after the timeout ($elapsed s)");

	# with audit_sync off a statement completes once its records are
	# queued -- but not once the log is audit_wait_timeout behind: the
	# failed read's record has waited longer than that, so it fails too
	# (its own record is queued first, and kept)
	($r, $o, $e) = $node->psql('postgres',
		'SET agentauth.audit_sync = off; SELECT count(*) FROM t10_labs');
	isnt($r, 0, 'writer stopped, audit_sync off: the read fails once the log is the timeout behind');
	like($e, qr/oldest audit record not yet written has waited/,
		'writer stopped, audit_sync off: the error says why');

	kill 'CONT', $wpid;
	($r, $o, $e) = $node->psql('postgres', 'SELECT count(*) FROM t10_labs');
	is($r, 0, 'writer resumed: the audited read works again');
	is($o, '2', 'writer resumed: and returns its rows');
	# the failed statement's record was queued before it failed: it is there
	is($node->safe_psql('postgres',
		"SELECT count(*) >= 3 FROM agentauth.audit_log WHERE event = 'privileged_access' AND seq > (SELECT seq FROM agentauth.audit_log WHERE event = 't10_after_immediate')"),
		't', 'writer resumed: the records of the failed and the unsynchronised reads are there');
	verify_both('after the writer resumed');
}

# -- the chain head in the server log at shutdown ---------------------------
{
	my $head = committed_head();
	my ($seq, $hash) = split / /, $head;
	my $log_offset = -s $node->logfile;
	$node->stop('fast');
	ok($node->log_contains("agentauth audit chain head: seq=$seq row_hash=$hash", $log_offset),
		'the writer logged the chain head at shutdown');
}

done_testing();
