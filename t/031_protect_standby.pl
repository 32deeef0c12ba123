# Hot standbys (SPEC 6.9, issue 16 "Read replicas"): a primary and a
# streaming standby.
#
#  - Without agentauth.forward_conninfo a protected table fails closed on
#    the standby (for a superuser too); the setting is reloadable and
#    visible to superusers only.
#  - With it, an agent reads on the standby under the same checks, and its
#    records (session_begin, access, denied) are chained on the primary,
#    each naming the standby; with audit_sync = on they are committed on
#    the primary when the standby's statement returns; the chain verifies.
#  - A rolled-back read on the standby is audited; a bad secret there
#    leaves its session_denied on the primary.
#  - Forwarding stopped (the forwarder frozen): fail closed (53000), and
#    recover when it resumes.
#  - The primary stopped: standby reads fail closed (53000) within
#    audit_wait_timeout and return no row; restarted: they recover by
#    themselves, and the records of the failed statements arrive too.
#  - Writes of agentauth's state on the standby fail with a message naming
#    the primary.
#  - Only agentauth_forwarder may call forward_audit on the primary, and a
#    forwarder can only append agent events through the writer.
#
# Revocation, consent and promotion: t/033_standby_revocation.pl.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_wait_timeout = '2s'
});
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION agentauth CASCADE;
	CREATE TABLE labs (patient_id text NOT NULL, result numeric);
	INSERT INTO labs VALUES ('S1', 1.5), ('S2', 2.5);
	SELECT agentauth.protect_table('labs', 'patient_id', '{"result": "lab"}');
	CREATE TABLE plain (x int);
	INSERT INTO plain VALUES (1), (2);
	CREATE ROLE standby_agent LOGIN;
	GRANT SELECT, UPDATE ON labs TO standby_agent;
	SELECT agentauth.register_agent('standby-agent', 'standby_agent', 'Analytics', '{TREAT}', '{lab:read}', max_token_ttl => '2 hours');
	SELECT agentauth.record_consent('S1', 'permit', '{TREAT}');
	CREATE ROLE dr_standby LOGIN;
	SELECT agentauth.register_human('dr-standby', 'dr_standby', '{TREAT}', '{lab:read}', can_break_glass => true);
	-- the login the standby forwards as
	CREATE ROLE standby_fwd LOGIN;
	GRANT agentauth_forwarder TO standby_fwd;
});
my $secret = $primary->safe_psql('postgres',
	"SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'standby-agent'), 'TREAT', '1 hour')");

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

# ---- without agentauth.forward_conninfo: fail closed -------------------
is($standby->safe_psql('postgres', 'SELECT count(*) FROM plain'), '2',
	'an unprotected table is readable on the standby');
my ($ret, $out, $err) = $standby->psql('postgres', 'SELECT result FROM labs');
isnt($ret, 0, 'without forward_conninfo a superuser cannot read a protected table on the standby');
like($err, qr/protected table public\.labs cannot be accessed on a hot standby/,
	'the error says why');
like($err, qr/agentauth\.forward_conninfo is not set/, 'and names the setting');
($ret, $out, $err) = $standby->psql('postgres', 'COPY labs TO stdout');
isnt($ret, 0, 'COPY of a protected table fails on the standby');
unlike($out, qr/S1/, 'and returns no row');

# ---- the setting: reloadable, visible to superusers only ---------------
my $conninfo = 'host=' . $primary->host . ' port=' . $primary->port
  . ' dbname=postgres user=standby_fwd';
$standby->append_conf('postgresql.conf', "agentauth.forward_conninfo = '$conninfo'");
$standby->reload;
$standby->poll_query_until('postgres',
	"SELECT current_setting('agentauth.forward_conninfo') <> ''")
  or die 'reload did not set forward_conninfo';
($ret, $out, $err) = $standby->psql('postgres',
	'SET SESSION AUTHORIZATION standby_agent; SHOW agentauth.forward_conninfo');
isnt($ret, 0, 'a non-superuser cannot SHOW agentauth.forward_conninfo');
is($standby->safe_psql('postgres', q{
	SET SESSION AUTHORIZATION standby_agent;
	SELECT count(*) FROM pg_settings WHERE name = 'agentauth.forward_conninfo'}),
	'0', 'nor see it in pg_settings');
$standby->poll_query_until('postgres',
	"SELECT writer_state = 'running' FROM agentauth.status")
  or die 'the forwarder did not connect';

# ---- agent reads on the standby, records on the primary ----------------
sub agent_read
{
	my ($node, $sql) = @_;
	$sql //= 'SELECT patient_id, result FROM labs ORDER BY 1;';
	return $node->psql('postgres', qq{
\\set VERBOSITY verbose
SET SESSION AUTHORIZATION standby_agent;
SELECT agentauth.begin_session('$secret') IS NOT NULL;
$sql
});
}
# the standby's name is its cluster_name (the test framework sets it to
# the node's name)
my $from_standby = q{client LIKE '% standby=standby'};
sub primary_count
{
	my ($where) = @_;
	return $primary->safe_psql('postgres',
		"SELECT count(*) FROM agentauth.audit_log WHERE $where");
}

($ret, $out, $err) = agent_read($standby);
is($ret, 0, 'an agent reads a protected table on the standby') or diag $err;
like($out, qr/S1\|1\.5/, 'the consented patient is visible');
unlike($out, qr/S2/, 'the other is not (same checks as on the primary)');
# audit_sync = on: committed on the primary when the statement returned
is(primary_count("event = 'access' AND patient = 'S1' AND $from_standby"), '1',
	'the access record is on the primary as soon as the standby statement returned (audit_sync = on)');
is(primary_count("event = 'denied' AND patient = 'S2' AND $from_standby"), '1',
	'the withheld patient is recorded as denied');
is(primary_count("event = 'session_begin' AND db_role = 'standby_agent' AND $from_standby"), '1',
	'session_begin is forwarded too');
is(primary_count("$from_standby AND event NOT IN ('access','denied','session_begin','session_end')"), '0',
	'nothing else arrived from the standby');
is($primary->safe_psql('postgres',
	'SELECT ok AND checked = (SELECT max(seq) FROM agentauth.audit_log) FROM agentauth.verify_audit()'),
	't', 'the chain verifies on the primary, forwarded records included');
is($primary->safe_psql('postgres',
	'SELECT count(*) = max(seq) FROM agentauth.audit_log'), 't', 'one gapless order');

# a rolled-back read is audited
($ret, $out, $err) = agent_read($standby,
	"BEGIN; SELECT patient_id, result FROM labs WHERE patient_id = 'S1'; ROLLBACK;");
is($ret, 0, 'a read in a transaction rolled back on the standby') or diag $err;
is(primary_count("event = 'access' AND patient = 'S1' AND $from_standby"), '2',
	'its record is on the primary all the same');

# a bad secret on the standby: session_denied, forwarded
($ret, $out, $err) = $standby->psql('postgres',
	"SET SESSION AUTHORIZATION standby_agent; SELECT agentauth.begin_session('aat_not_a_token')");
like($err, qr/28000|invalid|token/i, 'a bad secret is refused on the standby');
is(primary_count("event = 'session_denied' AND db_role = 'standby_agent' AND $from_standby"), '1',
	'and its session_denied record is on the primary');

# forwarding stopped (the forwarder frozen): fail closed, then recover
my $fwd_pid = $standby->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit forwarder'");
like($fwd_pid, qr/^\d+$/, 'the standby runs the audit forwarder');
kill 'STOP', $fwd_pid;
($ret, $out, $err) = agent_read($standby);
kill 'CONT', $fwd_pid;
isnt($ret, 0, 'with forwarding stopped, a standby statement fails closed');
like($err, qr/53000/, 'SQLSTATE 53000');
unlike($out, qr/S1\|1\.5/, 'no row returned');
($ret, $out, $err) = agent_read($standby);
is($ret, 0, 'forwarding resumed: standby reads succeed again') or diag $err;

# a write the session's scopes refuse is recorded with the action "write",
# which the primary takes (review r41: it refused the whole batch as
# malformed, the forwarder sent it again for ever, and every later
# statement on a protected table of the standby failed closed)
($ret, $out, $err) = agent_read($standby, "UPDATE labs SET result = 0 WHERE patient_id = 'S1';");
isnt($ret, 0, 'an UPDATE outside the token\'s scopes fails on the standby');
like($err, qr/42501/, 'refused by the scopes');
($ret, $out, $err) = agent_read($standby);
is($ret, 0, 'and the standby reads on after it') or diag $err;
is(primary_count("event = 'denied' AND action = 'write' AND $from_standby"), '1',
	'the refusal is recorded on the primary');

# ---- writes go to the primary ------------------------------------------
($ret, $out, $err) = $standby->psql('postgres',
	"SELECT agentauth.record_consent('S2', 'permit', '{TREAT}')");
isnt($ret, 0, 'record_consent fails on the standby');
like($err, qr/agentauth state cannot be changed on a hot standby/, 'with a clear message');
like($err, qr/Connect to the primary server/, 'that says to use the primary');
($ret, $out, $err) = $standby->psql('postgres',
	"SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'standby-agent'), 'TREAT')");
like($err, qr/agentauth state cannot be changed on a hot standby/, 'issue_token too');
($ret, $out, $err) = $standby->psql('postgres',
	"SELECT agentauth.revoke_token((SELECT id FROM agentauth.tokens LIMIT 1), 'x')");
like($err, qr/agentauth state cannot be changed on a hot standby/, 'revoke_token too');
($ret, $out, $err) = $standby->psql('postgres', q{
	SET SESSION AUTHORIZATION dr_standby;
	SELECT agentauth.begin_human_session('TREAT') IS NOT NULL;
	SELECT agentauth.break_glass('S2', 'emergency on the replica');});
like($err, qr/agentauth state cannot be changed on a hot standby/, 'break_glass too');

# ---- the forwarding function on the primary -----------------------------
($ret, $out, $err) = $primary->psql('postgres',
	"SET SESSION AUTHORIZATION standby_agent; SELECT agentauth.forward_audit('x', '\\x')");
isnt($ret, 0, 'a non-forwarder cannot call forward_audit');
like($err, qr/permission denied/, 'permission denied');

# one record body, encoded by hand (docs/DESIGN.md, canonical encoding)
sub t_ { my ($s) = @_; return defined $s ? 't' . pack('N', length $s) . $s : "\0"; }
sub body
{
	my (%f) = @_;
	return t_($f{event}) . "\0" . t_(undef) . t_('standby_agent') . "\0"
	  . t_(undef) . "\0" . t_('TREAT') . t_('S9') . t_('public.labs')
	  . "\0" . "\0" . t_('read') . 'i' . pack('q>', 1) . "\0"
	  . t_('permit') . t_('pid=1') . t_('address=local application_name=') . "\0"
	  . ($f{extra} // '');
}
sub batch
{
	my ($b) = @_;
	return '\\x' . unpack('H*', pack('N', length $b) . pack('Q>', 7) . $b);
}
sub forward
{
	my ($b) = @_;
	return $primary->psql('postgres',
		"SET SESSION AUTHORIZATION standby_fwd; SELECT agentauth.forward_audit('rogue', '" . batch($b) . "')");
}
($ret, $out, $err) = forward(body(event => 'access'));
is($out, '1', 'a forwarder appends a well-formed access record') or diag $err;
is(primary_count("patient = 'S9' AND client LIKE '% standby=rogue'"), '1',
	'committed by the writer, naming the standby it claims');
($ret, $out, $err) = forward(body(event => 'token_issued'));
like($err, qr/its event is not one a hot standby records/, 'a forwarder cannot append an administrative event');
($ret, $out, $err) = forward(body(event => 'access', extra => 'i' . pack('q>', 42)));
like($err, qr/bytes are left after its last field/, 'nor carry a seq, or anything after detail');
($ret, $out, $err) = forward(substr(body(event => 'access'), 0, 30));
like($err, qr/malformed/, 'a truncated record is refused');
is(primary_count("patient = 'S9'"), '1', 'nothing of the refused batches was stored');
is($primary->safe_psql('postgres', 'SELECT ok FROM agentauth.verify_audit()'), 't',
	'the chain still verifies');

# ---- the primary stopped: fail closed, then recover ---------------------
$primary->wait_for_catchup($standby);
my $before = primary_count("event = 'access' AND patient = 'S1' AND $from_standby");
my $bg = $standby->background_psql('postgres', on_error_stop => 0);
$bg->set_query_timer_restart();
# one read in the background session: (stdout, stderr)
my $bg_reads = 0;
sub bg_read
{
	$bg_reads++;
	$bg->{stderr} = '';
	my $o = $bg->query('SELECT patient_id, result FROM labs ORDER BY 1');
	return ($o, $bg->{stderr});
}
$bg->query_safe('\set VERBOSITY verbose');
$bg->query_safe('SET SESSION AUTHORIZATION standby_agent');
$bg->query_safe("SELECT agentauth.begin_session('$secret') IS NOT NULL");
$primary->stop('fast');
my $t0 = time;
($out, $err) = bg_read();
my $elapsed = time - $t0;
like($err, qr/53000/, 'with the primary stopped, a standby read fails closed (53000)');
like($err, qr/forwarded to the primary/, 'the error says the records cannot reach the primary');
unlike($out, qr/S1\|1\.5/, 'and returns no row');
note(sprintf('failed closed after %.1f s (audit_wait_timeout = 2s)', $elapsed));
cmp_ok($elapsed, '<', 30, 'within the timeout (generous deadline)');
($out, $err) = bg_read();
like($err, qr/53000/, 'a second read fails closed as well');
($ret, $out, $err) = agent_read($standby);
isnt($ret, 0, 'and so does a new session (session_begin cannot be recorded)');

$primary->start;
my $deadline = time + 60;
my $recovered = 0;
while (time < $deadline)
{
	($out, $err) = bg_read();
	if ($err eq '') { $recovered = 1; last; }
	sleep 1;
}
ok($recovered, 'after the primary restarted, standby reads recover by themselves') or diag $err;
like($out, qr/S1\|1\.5/, 'and return the row');
$bg->quit;
# every read that read rows has its record on the primary: the first (it
# failed at its end), the last; one that began with the log already
# behind was refused before its first row, and read nothing (1.1)
my $arrived = primary_count("event = 'access' AND patient = 'S1' AND $from_standby") - $before;
ok($arrived >= 2 && $arrived <= $bg_reads,
	"the records of the reads that read rows arrived on the primary too ($arrived of $bg_reads reads)");
is($primary->safe_psql('postgres',
	'SELECT ok AND checked = (SELECT max(seq) FROM agentauth.audit_log) FROM agentauth.verify_audit()'),
	't', 'the chain verifies');

$standby->stop;
$primary->stop;
done_testing();
