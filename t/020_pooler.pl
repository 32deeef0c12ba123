# Behind a transaction-pooling pgbouncer, consecutive transactions of one
# server backend belong to different clients.  A transaction_only session
# ends with its transaction, so the next client on the same backend starts
# with no session: it neither inherits the previous task's token nor reads a
# protected row.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::Bin/lib";
use AgentauthPgBouncer;


my $node = PostgreSQL::Test::Cluster->new('pooled');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE pool_agent LOGIN;
CREATE TABLE labs (patient_id text, test text, result numeric);
INSERT INTO labs VALUES ('P1', 'glucose', 5.4), ('P2', 'glucose', 7.9);
GRANT SELECT ON labs TO pool_agent;
SELECT agentauth.protect_table('labs', 'patient_id',
                               '{"test": "lab", "result": "lab"}');
SELECT agentauth.register_agent('pool-agent', 'pool_agent', 'pooling team',
                                '{TREAT}', '{lab:read}');
SELECT agentauth.record_consent(p, 'permit', '{TREAT}', '{lab}')
  FROM unnest(ARRAY['P1', 'P2']) p;
});

my $issue = q{SELECT agentauth.issue_token(
    (SELECT id FROM agentauth.principals WHERE name = 'pool-agent'), 'TREAT', '5 minutes')};
my $tok1 = $node->safe_psql('postgres', $issue);
my $tok2 = $node->safe_psql('postgres', $issue);
like($tok1, qr/^aat_[A-Za-z0-9_-]{43}$/, 'a token for the first task');

# pgbouncer in transaction mode, one server connection per user
my $via = AgentauthPgBouncer::start($node, 'pool_agent') . ' user=pool_agent';

sub through_pool
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, connstr => $via);
	return ($ret, $out, $err);
}

# client 1: one task in one transaction
my ($ret, $out, $err) = through_pool(qq{
BEGIN;
SELECT agentauth.begin_session('$tok1', transaction_only => true) IS NOT NULL;
SELECT pg_backend_pid();
SELECT count(*) FROM agentauth.whoami();
SELECT string_agg(test || '=' || result, ',' ORDER BY patient_id) FROM labs;
COMMIT;
});
is($ret, 0, 'client 1 runs its task') or diag($err);
my @l1 = split /\n/, $out;
my $pid1 = $l1[1];
is($l1[2], '1', 'client 1 has a session inside its transaction');
is($l1[3], 'glucose=5.4,glucose=7.9', 'client 1 reads the consented rows');

# client 2: same agent role, so the same (only) server backend
($ret, $out, $err) = through_pool(q{
SELECT pg_backend_pid();
SELECT count(*) FROM agentauth.whoami();
});
is($ret, 0, 'client 2 connects') or diag($err);
my @l2 = split /\n/, $out;
is($l2[0], $pid1, 'client 2 runs on the backend client 1 used');
is($l2[1], '0', 'client 2 inherits no session');

($ret, $out, $err) = through_pool('SELECT test FROM labs');
isnt($ret, 0, 'client 2 cannot read the protected table');
like($err, qr/no agentauth session/, 'refused for having no session');

# client 2 with a task of its own gets its own token's identity
($ret, $out, $err) = through_pool(qq{
BEGIN;
SELECT agentauth.begin_session('$tok2', transaction_only => true) IS NOT NULL;
SELECT count(*) FROM labs;
COMMIT;
SELECT count(*) FROM agentauth.whoami();
});
is($ret, 0, 'client 2 runs its own task') or diag($err);
my @l3 = split /\n/, $out;
is($l3[1], '2', 'client 2 reads under its own token');
is($l3[2], '0', 'and its session ended with its transaction');

# the audit log names each task's own token
my $tokens = $node->safe_psql('postgres', q{
SELECT count(DISTINCT token) FROM agentauth.audit_log
 WHERE event = 'access' AND relation = 'public.labs'});
is($tokens, '2', 'each transaction recorded under its own token');

AgentauthPgBouncer::stop($node);
$node->stop;
done_testing();
