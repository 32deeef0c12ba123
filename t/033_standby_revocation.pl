# Hot standbys (SPEC 6.9, issue 16 "Read replicas"), continued:
#
#  - A revocation committed on the primary stops an open cursor on the
#    standby: after replay, its next FETCH returns no row (28000).  The
#    bound (replay plus the forwarder's poll of replayed invalidations) is
#    measured and printed; only a generous deadline is asserted.
#  - A consent withdrawal on the primary hides the patient's rows on the
#    standby once replayed.
#  - Promotion: the promoted standby's audit writer continues the chain
#    from the replicated log -- no gap, no fork -- and verify_audit passes
#    across the promotion.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_wait_timeout = '5s'
});
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION agentauth CASCADE;
	CREATE TABLE labs (patient_id text NOT NULL, result numeric);
	INSERT INTO labs SELECT 'R1', g FROM generate_series(1, 20) g;
	INSERT INTO labs SELECT 'R2', g FROM generate_series(1, 5) g;
	SELECT agentauth.protect_table('labs', 'patient_id', '{"result": "lab"}');
	CREATE ROLE r_agent LOGIN;
	GRANT SELECT ON labs TO r_agent;
	SELECT agentauth.register_agent('r-agent', 'r_agent', 'Analytics', '{TREAT}', '{lab:read}', max_token_ttl => '2 hours');
	SELECT agentauth.record_consent('R1', 'permit', '{TREAT}');
	CREATE ROLE r_fwd LOGIN;
	GRANT agentauth_forwarder TO r_fwd;
});
my $consent_r2 = $primary->safe_psql('postgres',
	"SELECT agentauth.record_consent('R2', 'permit', '{TREAT}')");
my $issue = "SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'r-agent'), 'TREAT', '1 hour')";
my $secret = $primary->safe_psql('postgres', $issue);
my $secret2 = $primary->safe_psql('postgres', $issue);

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->append_conf('postgresql.conf',
	"agentauth.forward_conninfo = 'host=" . $primary->host . ' port=' . $primary->port
	  . " dbname=postgres user=r_fwd'");
$standby->start;
$primary->wait_for_catchup($standby);
$standby->poll_query_until('postgres',
	"SELECT writer_state = 'running' FROM agentauth.status")
  or die 'the forwarder did not connect';

# a session on the standby, kept open
sub agent_session
{
	my ($s) = @_;
	my $bg = $standby->background_psql('postgres', on_error_stop => 0);
	$bg->set_query_timer_restart();
	$bg->query_safe('\set VERBOSITY verbose');
	$bg->query_safe('SET SESSION AUTHORIZATION r_agent');
	$bg->query_safe("SELECT agentauth.begin_session('$s') IS NOT NULL");
	return $bg;
}
sub run_q
{
	my ($bg, $sql) = @_;
	$bg->{stderr} = '';
	my $o = $bg->query($sql);
	return ($o, $bg->{stderr});
}

# ---- revocation stops an open cursor ------------------------------------
my $cur = agent_session($secret);
my $poller = agent_session($secret);
my ($out, $err);
my ($ret, $o, $e);
run_q($cur, 'BEGIN');
run_q($cur, 'DECLARE c CURSOR FOR SELECT patient_id, result FROM labs WHERE patient_id = \'R1\' ORDER BY result');
($out, $err) = run_q($cur, 'FETCH 2 FROM c');
is($out, "R1|1\nR1|2", 'the cursor on the standby returns rows before the revocation') or diag $err;
($out, $err) = run_q($poller, 'SELECT count(*) FROM labs');
is($out, '25', 'the other session reads too');

my $t0 = time;
$primary->safe_psql('postgres',
	"SELECT agentauth.revoke_token((SELECT token FROM agentauth.audit_log WHERE event = 'session_begin' ORDER BY seq DESC LIMIT 1), 'stolen')");
my $lsn = $primary->lsn('insert');
$primary->wait_for_catchup($standby, 'replay', $lsn);
my $t_replayed = time;
# wait, with a deadline, for the revocation to reach the standby's sessions
my $refused = 0;
while (time < $t0 + 30)
{
	($out, $err) = run_q($poller, 'SELECT count(*) FROM labs');
	if ($err =~ /28000/) { $refused = 1; last; }
	usleep(20_000);
}
my $t_refused = time;
ok($refused, 'after replay the standby refuses the revoked token (28000)');
note(sprintf('revocation to first refusal on the standby: %.3f s (replay %.3f s, then %.3f s)',
	$t_refused - $t0, $t_replayed - $t0, $t_refused - $t_replayed));
cmp_ok($t_refused - $t0, '<', 30, 'within a generous deadline');
($out, $err) = run_q($cur, 'FETCH 5 FROM c');
is($out, '', 'the open cursor returns zero rows after replay');
like($err, qr/28000/, 'its FETCH fails with 28000');
$cur->quit;
$poller->quit;

# ---- consent withdrawal --------------------------------------------------
my $s2 = agent_session($secret2);
($out, $err) = run_q($s2, "SELECT count(*) FROM labs WHERE patient_id = 'R2'");
is($out, '5', 'R2 is visible on the standby under its consent');
$primary->safe_psql('postgres', "SELECT agentauth.withdraw_consent('$consent_r2', 'patient request')");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $hidden = 0;
$t0 = time;
while (time < $t0 + 30)
{
	($out, $err) = run_q($s2, "SELECT count(*) FROM labs WHERE patient_id = 'R2'");
	if ($out eq '0') { $hidden = 1; last; }
	usleep(20_000);
}
ok($hidden, 'after replay the withdrawn consent hides R2 on the standby');
note(sprintf('replay to hidden: %.3f s', time - $t0));
($out, $err) = run_q($s2, "SELECT count(*) FROM labs WHERE patient_id = 'R1'");
is($out, '20', 'R1 stays visible');
$s2->quit;

# ---- break-the-glass started on the primary --------------------------------
# A clinician breaks the glass for R2 (its consent now withdrawn) on the
# primary; after replay the override takes effect for the clinician's
# session on the standby, and its end is replayed the same way.
$primary->safe_psql('postgres', q{
	CREATE ROLE dr_r LOGIN;
	GRANT SELECT ON labs TO dr_r;
	SELECT agentauth.register_human('dr-r', 'dr_r', '{TREAT}', '{lab:read}', can_break_glass => true);
});
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $doc = $standby->background_psql('postgres', on_error_stop => 0);
$doc->query_safe('SET SESSION AUTHORIZATION dr_r');
$doc->query_safe("SELECT agentauth.begin_human_session('TREAT') IS NOT NULL");
($out, $err) = run_q($doc, "SELECT count(*) FROM labs WHERE patient_id = 'R2'");
is($out, '0', 'the clinician on the standby does not see R2 before breaking the glass') or diag $err;
# (the clinician's session on the primary stays open: its end ends the
# override, below)
my $pdoc = $primary->background_psql('postgres', on_error_stop => 0);
$pdoc->query_safe('SET SESSION AUTHORIZATION dr_r');
$pdoc->query_safe("SELECT agentauth.begin_human_session('TREAT') IS NOT NULL");
my $bg_id = $pdoc->query_safe(
	"SELECT agentauth.break_glass('R2', 'unconscious in the ED, no consent on file')");
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $seen = 0;
$t0 = time;
while (time < $t0 + 30)
{
	($out, $err) = run_q($doc, "SELECT count(*) FROM labs WHERE patient_id = 'R2'");
	if ($out eq '5') { $seen = 1; last; }
	usleep(20_000);
}
ok($seen, 'after replay the override started on the primary shows R2 to the clinician on the standby')
  or diag "$out $err";
note(sprintf('replay to override in effect: %.3f s', time - $t0));
ok($primary->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM agentauth.audit_log
	 WHERE event = 'access' AND patient = 'R2' AND purpose = 'BTG'
	   AND authority ->> 'break_glass' = '$bg_id' AND client LIKE '% standby=standby'}),
	'the standby\'s read under the override is audited on the primary, purpose BTG, with its id');
# the clinician disconnects on the primary: the session's end ends its
# override (1.1: it stayed open, and the standby kept showing R2 to the
# clinician's next session until its time ran out)
$pdoc->quit;
ok($primary->poll_query_until('postgres', qq{
	SELECT ended_by = 'session end' FROM agentauth.break_glass WHERE id = '$bg_id'}),
	'the clinician\'s disconnect on the primary ends the override');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
my $ended = 0;
$t0 = time;
while (time < $t0 + 30)
{
	($out, $err) = run_q($doc, "SELECT count(*) FROM labs WHERE patient_id = 'R2'");
	if ($out eq '0') { $ended = 1; last; }
	usleep(20_000);
}
ok($ended, 'after replay its end hides R2 on the standby again, in the clinician\'s session there');
$doc->quit;

# a suspension passes by an override whose row another transaction holds
# (here the clinician's own end_break_glass, then rolled back); reactivated,
# the clinician's new session on the standby -- which matches overrides by
# principal -- does not get it back (1.1, found by review)
$pdoc = $primary->background_psql('postgres', on_error_stop => 0);
$pdoc->query_safe('SET SESSION AUTHORIZATION dr_r');
$pdoc->query_safe("SELECT agentauth.begin_human_session('TREAT') IS NOT NULL");
my $bg2 = $pdoc->query_safe("SELECT agentauth.break_glass('R2', 'a second emergency')");
$pdoc->query_safe('BEGIN');
$pdoc->query_safe("SELECT agentauth.end_break_glass('$bg2')");
my $drr = $primary->safe_psql('postgres', "SELECT id FROM agentauth.principals WHERE name = 'dr-r'");
$primary->safe_psql('postgres', qq{SET statement_timeout = '10s';
	SELECT agentauth.set_principal_status('$drr', 'suspended', 'under review');
	SELECT agentauth.set_principal_status('$drr', 'active', 'cleared');});
$pdoc->query('ROLLBACK');
is($primary->safe_psql('postgres', "SELECT ended_at IS NULL FROM agentauth.break_glass WHERE id = '$bg2'"),
	't', 'the suspension passed by the override being ended');
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
$doc = $standby->background_psql('postgres', on_error_stop => 0);
$doc->query_safe('SET SESSION AUTHORIZATION dr_r');
$doc->query_safe("SELECT agentauth.begin_human_session('TREAT') IS NOT NULL");
($out, $err) = run_q($doc, "SELECT count(*) FROM labs WHERE patient_id = 'R2'");
is($out, '0', 'reactivated, the clinician\'s new session on the standby does not get that override back')
  or diag $err;
$doc->quit;
$pdoc->quit;

# ---- a session ends on the standby ----------------------------------------
# end_session() and a replacing begin_session() write nothing a standby
# cannot (found by review, r32: both failed with 25006 after session_end
# was recorded, and the session read on)
($ret, $o, $e) = $standby->psql('postgres', qq{
SET SESSION AUTHORIZATION r_agent;
SELECT agentauth.begin_session('$secret2') IS NOT NULL;
SELECT agentauth.begin_session('$secret2') IS NOT NULL;
SELECT agentauth.end_session();
SELECT 'sessions: ' || count(*) FROM agentauth.whoami() WHERE principal IS NOT NULL;
SELECT count(*) FROM labs;
});
is($ret, 3, 'on the standby, a read after end_session() is refused') or diag $e;
like($o, qr/^sessions: 0$/m, 'end_session() and a replacing begin_session() succeed on the standby')
  or diag $e;
unlike($e, qr/hot standby/, 'nothing was written on the standby');
like($e, qr/no agentauth session/, 'the read refused for want of a session')
  or diag $e;

# ---- promotion -----------------------------------------------------------
$primary->wait_for_catchup($standby);
my $seq_before = $standby->safe_psql('postgres', 'SELECT max(seq) FROM agentauth.audit_log');
my $standby_recs = $standby->safe_psql('postgres',
	"SELECT count(*) FROM agentauth.audit_log WHERE client LIKE '% standby=standby'");
cmp_ok($standby_recs, '>', 0, 'the standby\'s forwarded records replicated back to it');
$primary->stop;
$standby->promote;
$standby->poll_query_until('postgres',
	"SELECT writer_state = 'running' AND NOT pg_is_in_recovery() FROM agentauth.status")
  or die 'the audit writer did not start after promotion';
my $secret3 = $standby->safe_psql('postgres', $issue);
($ret, $o, $e) = $standby->psql('postgres', qq{
SET SESSION AUTHORIZATION r_agent;
SELECT agentauth.begin_session('$secret3') IS NOT NULL;
SELECT count(*) FROM labs;
});
is($ret, 0, 'an agent reads on the promoted server') or diag $e;
like($o, qr/^20$/m, 'under the same checks');
is($standby->safe_psql('postgres', qq{
	SELECT min(seq) = $seq_before + 1 AND count(*) = max(seq) - $seq_before
	  FROM agentauth.audit_log WHERE seq > $seq_before}),
	't', 'the chain continues from the replicated head without a gap');
is($standby->safe_psql('postgres', qq{
	SELECT count(*) FROM agentauth.audit_log
	 WHERE seq > $seq_before AND event = 'token_issued'}),
	'1', 'the promoted server\'s own records are in it');
is($standby->safe_psql('postgres',
	'SELECT ok AND checked = (SELECT max(seq) FROM agentauth.audit_log) FROM agentauth.verify_audit()'),
	't', 'verify_audit passes across the promotion');
is($standby->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'agentauth audit forwarder'"),
	'0', 'the forwarder stopped at promotion');

$standby->stop;
done_testing();
