# Revocation and suspension never wait for the principal they stop (1.1,
# found by review).  An agent's open transaction held row locks that
# revoke_token, set_principal_status and an alert rule's suspension waited
# for, and read PHI meanwhile: delegate_token locked its own token and the
# child agent's row FOR SHARE, and begin_session updated the agent's row
# (last_session_at).  Each agent-side path below holds its transaction open
# while an administrator (with a statement_timeout: a wait would fail it)
# revokes or suspends; the agent's next statement in that transaction is
# refused.  Approvals the suspension passes by while an agent uses them
# are not used again; one granted to a suspended agent survives no
# reactivation.  And last_session_at, kept now by the audit writer, counts a
# session begun in a read-only transaction.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('locks');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');

sub sq { return $node->safe_psql('postgres', $_[0]); }

sq(q{
CREATE ROLE lk_a LOGIN;
CREATE ROLE lk_b LOGIN;
CREATE ROLE lk_c LOGIN;
CREATE ROLE lk_w LOGIN;
CREATE ROLE lk_doc LOGIN;
CREATE ROLE lk_r LOGIN;
CREATE TABLE lk_chart (id serial PRIMARY KEY, patient_id text NOT NULL, lab text);
INSERT INTO lk_chart (patient_id, lab) VALUES ('LK1', 'a'), ('LK2', 'b');
GRANT SELECT, INSERT ON lk_chart TO lk_a, lk_b, lk_c, lk_w, lk_doc;
GRANT USAGE ON SEQUENCE lk_chart_id_seq TO lk_w;
SELECT agentauth.protect_table('lk_chart', 'patient_id', '{"id": "non_phi", "lab": "lab"}');
SELECT agentauth.require_approval('lk_chart', '{insert}');
SELECT agentauth.record_consent(p, 'permit', '{TREAT}', '{lab}', '{read,write}')
  FROM unnest(ARRAY['LK1', 'LK2']) p;
});
my $a = sq(q{SELECT agentauth.register_agent('lk-a', 'lk_a', 'team', '{TREAT}', '{lab:read}', can_delegate => true)});
my $b = sq(q{SELECT agentauth.register_agent('lk-b', 'lk_b', 'team', '{TREAT}', '{lab:read}')});
my $c = sq(q{SELECT agentauth.register_agent('lk-c', 'lk_c', 'team', '{TREAT}', '{lab:read}')});
my $w = sq(q{SELECT agentauth.register_agent('lk-w', 'lk_w', 'team', '{TREAT}', '{lab:read,lab:write}')});
my $doc = sq(q{SELECT agentauth.register_human('lk-doc', 'lk_doc', '{TREAT}', '{lab:read,lab:write}', can_approve => true)});

# an administrator's call that must not wait: it fails if it does
sub admin
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "SET statement_timeout = '5s'; $sql");
	return $err eq '' ? 'done' : $err;
}

# the clinician grants lk-w three inserts for the patient
sub approve
{
	my ($patient, $reason) = @_;
	my $d = $node->background_psql('postgres', extra_params => [ '-U', 'lk_doc' ]);
	$d->query_safe("SELECT agentauth.begin_human_session('TREAT')");
	$d->query_safe("SELECT agentauth.approve_action('$w', 'lk_chart', '$patient', 'insert', '$reason', '10 minutes', 3)");
	$d->quit;
}

sub agent_psql
{
	my ($role) = @_;
	return $node->background_psql('postgres', on_error_stop => 0,
		extra_params => [ '-U', $role ]);
}

# 1. delegate_token in an open transaction; the token is revoked
my $secret = sq("SELECT agentauth.issue_token('$a', 'TREAT')");
my $token = sq("SELECT id FROM agentauth.tokens WHERE agent = '$a' ORDER BY issued_at DESC LIMIT 1");
my $s = agent_psql('lk_a');
$s->query_safe("SELECT agentauth.begin_session('$secret')");
$s->query_safe("BEGIN");
$s->query_safe("SELECT length(agentauth.delegate_token('$b')) > 0");
is($s->query_safe("SELECT count(*) FROM lk_chart"), '2', 'the agent reads in its open transaction');
is(admin("SELECT agentauth.revoke_token('$token', 'stop now')"), 'done',
	'revoke_token does not wait for the agent\'s delegation');
$s->query("SELECT count(*) FROM lk_chart");
like($s->{stderr}, qr/agentauth session is no longer valid/,
	'the agent\'s next read in that transaction is refused');
$s->query("ROLLBACK");
$s->quit;

# ... and the agent's own suspension, while it holds the child's row
$secret = sq("SELECT agentauth.issue_token('$a', 'TREAT')");
$s = agent_psql('lk_a');
$s->query_safe("SELECT agentauth.begin_session('$secret')");
$s->query_safe("BEGIN");
$s->query_safe("SELECT length(agentauth.delegate_token('$b')) > 0");
is(admin("SELECT agentauth.set_principal_status('$b', 'suspended', 'the child')"), 'done',
	'the child agent is suspended while its row is held by a delegation');
is(admin("SELECT agentauth.set_principal_status('$a', 'suspended', 'the parent')"), 'done',
	'set_principal_status does not wait for the agent\'s delegation');
$s->query("SELECT count(*) FROM lk_chart");
like($s->{stderr}, qr/agentauth session is no longer valid/, 'the suspended agent is refused');
$s->query("COMMIT");
$s->quit;
is(sq("SELECT count(*) FROM agentauth.tokens WHERE agent = '$b' AND state = 'live'"), '0',
	'no delegated token of the suspended child is live');

# 2. begin_session in an open transaction (the first in an hour: 1.0
# updated the agent's row there); the agent is suspended
$secret = sq("SELECT agentauth.issue_token('$c', 'TREAT')");
$s = agent_psql('lk_c');
$s->query_safe("BEGIN");
$s->query_safe("SELECT agentauth.begin_session('$secret') IS NOT NULL");
is($s->query_safe("SELECT count(*) FROM lk_chart"), '2', 'the agent reads');
is(admin("SELECT agentauth.set_principal_status('$c', 'suspended', 'stop it')"), 'done',
	'set_principal_status does not wait for the agent\'s begin_session');
$s->query("SELECT count(*) FROM lk_chart");
like($s->{stderr}, qr/agentauth session is no longer valid/, 'the agent\'s next read is refused');
$s->query("ROLLBACK");
$s->quit;

# 3. an approval in use: the approver is suspended meanwhile; the rest of
# its uses are void
sq("SELECT agentauth.set_principal_status('$c', 'active', 'reviewed')");
approve('LK1', 'new result');
$secret = sq("SELECT agentauth.issue_token('$w', 'TREAT')");
$s = agent_psql('lk_w');
$s->query_safe("SELECT agentauth.begin_session('$secret')");
$s->query_safe("BEGIN");
$s->query_safe("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK1', 'c')");
is(admin("SELECT agentauth.set_principal_status('$doc', 'suspended', 'left')"), 'done',
	'the approver is suspended while an agent\'s transaction uses the approval');
$s->query_safe("COMMIT");
$s->query("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK1', 'd')");
like($s->{stderr}, qr/approval/, 'the approval\'s other uses end with its approver');
$s->quit;
is(sq("SELECT string_agg(lab, ',' ORDER BY id) FROM lk_chart WHERE patient_id = 'LK1'"), 'a,c',
	'one insert, the one made before the suspension');

# ... also in a REPEATABLE READ transaction, whose snapshot still shows
# the approver active (1.1, found by review: it went on using the approval)
sq("SELECT agentauth.set_principal_status('$doc', 'active', 'back')");
approve('LK1', 'new result');
$s = agent_psql('lk_w');
$s->query_safe("BEGIN ISOLATION LEVEL REPEATABLE READ");
$s->query_safe("SELECT agentauth.begin_session('$secret') IS NOT NULL");
$s->query_safe("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK1', 'rr1')");
is(admin("SELECT agentauth.set_principal_status('$doc', 'suspended', 'left again')"), 'done',
	'the approver is suspended while a REPEATABLE READ transaction uses the approval');
$s->query("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK1', 'rr2')");
like($s->{stderr}, qr/approval/, '... whose next write finds no approval');
$s->query("ROLLBACK");
$s->quit;
is(sq("SELECT count(*) FROM lk_chart WHERE lab LIKE 'rr%'"), '0', 'nothing written');

# ... also when the reactivation comes from a transaction that began before
# the approval was granted (1.1, found by review: the reactivation was
# dated at its transaction's start, before the approval, which so came back)
sq("SELECT agentauth.set_principal_status('$doc', 'active', 'back once more')");
my $late = $node->background_psql('postgres');
$late->query_safe("BEGIN");
$late->query_safe("SELECT now()");
sleep 1;
approve('LK1', 'the last one');
$s = agent_psql('lk_w');
$s->query_safe("SELECT agentauth.begin_session('$secret')");
$s->query_safe("BEGIN");
$s->query_safe("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK1', 'late1')");
is(admin("SELECT agentauth.set_principal_status('$doc', 'suspended', 'again')"), 'done',
	'the approver is suspended while the approval is in use');
$s->query("ROLLBACK");
$late->query_safe("SELECT agentauth.set_principal_status('$doc', 'active', 'from an old transaction')");
$late->query_safe("COMMIT");
$late->quit;
$s->query("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK1', 'late2')");
like($s->{stderr}, qr/approval/, 'a reactivation from a transaction older than the approval does not bring it back');
$s->quit;
is(sq("SELECT count(*) FROM lk_chart WHERE lab LIKE 'late%'"), '0', 'nothing written');

# an approval granted to an agent ends with the agent's suspension, and a
# reactivation does not bring it back -- even one the suspension passed by
sq("SELECT agentauth.set_principal_status('$doc', 'active', 'back again')");
approve('LK2', 'new result');
$secret = sq("SELECT agentauth.issue_token('$w', 'TREAT')");
$s = agent_psql('lk_w');
$s->query_safe("SELECT agentauth.begin_session('$secret')");
$s->query_safe("BEGIN");
$s->query_safe("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK2', 'e')");
is(admin("SELECT agentauth.set_principal_status('$w', 'suspended', 'probe')"), 'done',
	'the agent is suspended while its transaction uses an approval');
$s->query("COMMIT");
$s->quit;
sq("SELECT agentauth.set_principal_status('$w', 'active', 'reviewed')");
$secret = sq("SELECT agentauth.issue_token('$w', 'TREAT')");
$s = agent_psql('lk_w');
$s->query_safe("SELECT agentauth.begin_session('$secret')");
$s->query("INSERT INTO lk_chart (patient_id, lab) VALUES ('LK2', 'f')");
like($s->{stderr}, qr/approval/, 'a reactivated agent finds no approval from before its suspension');
$s->quit;
is(sq("SELECT count(*) FROM lk_chart WHERE patient_id = 'LK2' AND lab = 'f'"), '0', 'nothing written');
my $in_use = sq("SELECT id FROM agentauth.approval WHERE patient = 'LK2'");
is(sq("SELECT (detail->'approvals_ended') ? '$in_use' FROM agentauth.audit_log
          WHERE event = 'principal_status' AND principal = '$w' AND detail->>'to' = 'suspended'"),
	'f', 'the suspension passed by the approval in use, and its record does not name it');

# 5. a token issued while its agent is being suspended -- the suspension
# cannot see it to revoke it -- and a clinician's session that sat idle
# through a suspension: neither works after the reactivation (1.1, found by
# review: both did)
my $iss = $node->background_psql('postgres');
$iss->query_safe("BEGIN");
my $racing = $iss->query_safe("SELECT agentauth.issue_token('$c', 'TREAT')");
is(admin("SELECT agentauth.set_principal_status('$c', 'suspended', 'while a token is issued')"), 'done',
	'the agent is suspended while a token for it is being issued');
$iss->query_safe("COMMIT");
$iss->quit;
sq("SELECT agentauth.set_principal_status('$c', 'active', 'cleared')");
my ($rret, $rout, $rerr) = $node->psql('postgres', "SELECT agentauth.begin_session('$racing')",
	extra_params => [ '-U', 'lk_c' ]);
like($rerr, qr/invalid or expired token/, 'that token does not work after the reactivation');
my $d = $node->background_psql('postgres', on_error_stop => 0, extra_params => [ '-U', 'lk_doc' ]);
$d->query_safe("SELECT agentauth.begin_human_session('TREAT')");
is($d->query_safe("SELECT count(*) FROM lk_chart WHERE patient_id = 'LK1'") > 0 ? 'reads' : 'none', 'reads',
	'the clinician reads');
sq("SELECT agentauth.set_principal_status('$doc', 'suspended', 'a moment')");
sq("SELECT agentauth.set_principal_status('$doc', 'active', 'back')");
$d->query("SELECT count(*) FROM lk_chart");
like($d->{stderr}, qr/agentauth session is no longer valid/,
	'a clinician\'s session idle through a suspension and a reactivation is refused');
$d->quit;

# ... nor do the tokens delegated from such a token (1.1, found by review:
# the child read while its parent's agent was suspended, and after)
sq("SELECT agentauth.set_principal_status('$b', 'active', 'back')");
sq("SELECT agentauth.set_principal_status('$a', 'active', 'back')");
my $held = $node->background_psql('postgres');
$held->query_safe("BEGIN");
$held->query_safe("SELECT agentauth.set_principal_status('$a', 'suspended', 'held open')");
my $ta = sq("SELECT agentauth.issue_token('$a', 'TREAT')");
$s = agent_psql('lk_a');
$s->query_safe("SELECT agentauth.begin_session('$ta')");
my $tb = $s->query_safe("SELECT agentauth.delegate_token('$b')");
$s->quit;
$held->query_safe("COMMIT");
$held->quit;
($rret, $rout, $rerr) = $node->psql('postgres', "SELECT agentauth.begin_session('$tb')",
	extra_params => [ '-U', 'lk_b' ]);
like($rerr, qr/invalid or expired token/, 'a token delegated from it is refused while its parent\'s agent is suspended');
sq("SELECT agentauth.set_principal_status('$a', 'active', 'cleared again')");
($rret, $rout, $rerr) = $node->psql('postgres', "SELECT agentauth.begin_session('$tb')",
	extra_params => [ '-U', 'lk_b' ]);
like($rerr, qr/invalid or expired token/, '... and after its reactivation');

# 4. last_session_at: kept by the audit writer, also for a session begun in
# a read-only transaction (1.0 skipped it there)
my $r = sq(q{SELECT agentauth.register_agent('lk-r', 'lk_r', 'team', '{TREAT}', '{lab:read}')});
$secret = sq("SELECT agentauth.issue_token('$r', 'TREAT')");
$s = agent_psql('lk_r');
$s->query_safe("BEGIN READ ONLY");
$s->query_safe("SELECT agentauth.begin_session('$secret', transaction_only => true) IS NOT NULL");
$s->query_safe("COMMIT");
$s->quit;
ok($node->poll_query_until('postgres',
		"SELECT last_session_at IS NOT NULL FROM agentauth.principals WHERE id = '$r'"),
	'last_session_at is set for a session begun in a read-only transaction');

$node->stop;
done_testing();
