# Behind a transaction-pooling pgbouncer a session begun without
# transaction_only outlives its transaction and is handed to the next client
# of that server backend.  The DBA makes that impossible: per principal
# (agentauth.require_transaction_only(principal), audited) or for every
# principal (the setting agentauth.require_transaction_only, configuration
# file only).  Then begin_session and begin_human_session refuse a
# session-scoped session with 42501, and a session-scoped session that a
# backend already holds is no longer valid at its next check.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use AgentauthPgBouncer;


my $node = PostgreSQL::Test::Cluster->new('pool_required');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE pool_agent LOGIN;
CREATE ROLE pool_human LOGIN;
CREATE TABLE labs (patient_id text, test text, result numeric);
INSERT INTO labs VALUES ('P1', 'glucose', 5.4), ('P2', 'glucose', 7.9);
GRANT SELECT ON labs TO pool_agent, pool_human;
SELECT agentauth.protect_table('labs', 'patient_id',
                               '{"test": "lab", "result": "lab"}');
SELECT agentauth.register_agent('pool-agent', 'pool_agent', 'pooling team',
                                '{TREAT}', '{lab:read}');
SELECT agentauth.register_human('pool-human', 'pool_human', '{TREAT}', '{lab:read}');
SELECT agentauth.record_consent(p, 'permit', '{TREAT}', '{lab}')
  FROM unnest(ARRAY['P1', 'P2']) p;
});
my $agent = $node->safe_psql('postgres',
	q{SELECT id FROM agentauth.principals WHERE name = 'pool-agent'});
my $issue = qq{SELECT agentauth.issue_token('$agent', 'TREAT', '5 minutes')};
my $tok1 = $node->safe_psql('postgres', $issue);
my $tok2 = $node->safe_psql('postgres', $issue);

# pgbouncer in transaction mode, one server connection per user
my $via = AgentauthPgBouncer::start($node, 'pool_agent') . ' user=pool_agent';

sub through_pool
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, connstr => $via);
	return ($ret, $out, $err);
}

sub as_human
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-U', 'pool_human' ]);
	return ($ret, $out, $err);
}

# wait until the pooled backend runs with the setting the file now has
sub reload_setting
{
	my ($value) = @_;
	$node->safe_psql('postgres',
		"ALTER SYSTEM SET agentauth.require_transaction_only = $value; SELECT pg_reload_conf();");
	for (1 .. 100)
	{
		my ($r, $o) = through_pool('SHOW agentauth.require_transaction_only');
		return if $r == 0 && $o eq $value;
		select(undef, undef, undef, 0.1);
	}
	BAIL_OUT("agentauth.require_transaction_only did not become $value");
}

# the hazard: without a requirement, client 1's session-scoped session
# stays on the backend (what 020_pooler.pl avoids with transaction_only)
my ($ret, $out, $err) = through_pool(qq{
SELECT agentauth.begin_session('$tok1') IS NOT NULL;
SELECT pg_backend_pid();
});
is($ret, 0, 'by default a session-scoped session may begin') or diag($err);
my $pid1 = (split /\n/, $out)[1];

# the DBA marks the principal: audited, and the generation moves
($ret, $out, $err) = $node->psql('postgres',
	qq{SELECT agentauth.require_transaction_only('$agent')});
is($ret, 0, 'require_transaction_only() marks the principal') or diag($err);
is($node->safe_psql('postgres',
		q{SELECT transaction_only_required FROM agentauth.principals WHERE name = 'pool-agent'}),
	't', 'the principals view shows the requirement');
is($node->safe_psql('postgres', qq{
SELECT count(*) FROM agentauth.audit_log
 WHERE event = 'principal_status' AND principal = '$agent'
   AND (detail ->> 'transaction_only_required')::boolean
   AND NOT (detail ->> 'was')::boolean}),
	'1', 'the change is audited as principal_status');

# the session client 1 left on the backend is no longer valid for client 2
($ret, $out, $err) = through_pool(q{SELECT pg_backend_pid(); SELECT count(*) FROM agentauth.whoami();});
like($out, qr/^$pid1\b/, 'client 2 runs on the backend client 1 used');
isnt($ret, 0, 'the left-over session-scoped session is refused');
like($err, qr/no longer valid.*\n.*requires transaction_only/,
	'because the principal now requires transaction_only sessions');
($ret, $out, $err) = through_pool('SELECT test FROM labs');
isnt($ret, 0, 'client 2 reads no protected row under it');

# a session-scoped begin is refused with 42501 and a hint, and audited
($ret, $out, $err) = through_pool(qq{\\set VERBOSITY verbose
SELECT agentauth.begin_session('$tok2')});
isnt($ret, 0, 'a session-scoped begin_session is refused');
like($err, qr/42501: principal "pool-agent" may begin only transaction_only sessions/,
	'with 42501 naming the principal');
like($err, qr/HINT:.*transaction_only => true/, 'and a hint saying what to do');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM agentauth.audit_log
 WHERE event = 'session_denied'
   AND detail ->> 'reason' = 'the principal requires transaction_only sessions'}),
	'1', 'the refusal is recorded as session_denied');
($ret, $out, $err) = through_pool(qq{
SELECT agentauth.begin_session('$tok2', transaction_only => false)});
like($err, qr/may begin only transaction_only sessions/,
	'so is an explicit transaction_only => false');

# a transaction_only session works, and ends with its transaction
($ret, $out, $err) = through_pool(qq{
BEGIN;
SELECT agentauth.begin_session('$tok2', transaction_only => true) IS NOT NULL;
SELECT count(*) FROM labs;
COMMIT;
SELECT count(*) FROM agentauth.whoami();
});
is($ret, 0, 'a transaction_only session begins') or diag($err);
is((split /\n/, $out)[1], '2', 'and reads the consented rows');
is((split /\n/, $out)[2], '0', 'and is gone after its transaction');

# the setting: every principal, humans included
$node->safe_psql('postgres',
	qq{SELECT agentauth.require_transaction_only('$agent', false)});
reload_setting('on');
($ret, $out, $err) = through_pool(qq{SELECT agentauth.begin_session('$tok2')});
like($err, qr/may begin only transaction_only sessions/,
	'agentauth.require_transaction_only = on refuses an unmarked agent');
($ret, $out, $err) = as_human(q{\set VERBOSITY verbose
SELECT agentauth.begin_human_session('TREAT')});
like($err, qr/42501: principal "pool-human" may begin only transaction_only sessions/,
	'and a human');
($ret, $out, $err) = as_human(q{
BEGIN;
SELECT agentauth.begin_human_session('TREAT', transaction_only => true) IS NOT NULL;
SELECT count(*) FROM labs;
COMMIT;});
is($ret, 0, 'a transaction_only human session begins') or diag($err);
is((split /\n/, $out)[1], '2', 'and reads');
is($node->safe_psql('postgres', q{
SELECT count(*) FROM agentauth.audit_log
 WHERE event = 'session_denied'
   AND detail ->> 'reason' = 'agentauth.require_transaction_only is on'}),
	'2', 'both refusals are recorded');
($ret, $out, $err) = through_pool('SET agentauth.require_transaction_only = off');
like($err, qr/cannot be changed now/, 'a client cannot turn the setting off');

# a session-scoped session begun while the setting was off ends when it is on
reload_setting('off');
($ret, $out, $err) = through_pool(qq{SELECT agentauth.begin_session('$tok2') IS NOT NULL});
is($ret, 0, 'with the setting off, session-scoped sessions begin again') or diag($err);
reload_setting('on');
($ret, $out, $err) = through_pool('SELECT count(*) FROM agentauth.whoami()');
isnt($ret, 0, 'once the setting is on, the left-over session is refused');
like($err, qr/require_transaction_only is now on/, 'saying why');

is($node->safe_psql('postgres', 'SELECT ok FROM agentauth.verify_audit()'),
	't', 'the chain verifies');

AgentauthPgBouncer::stop($node);
$node->stop;
done_testing();
