# The audit writer's life: it waits quietly for agentauth.database to be
# created and for the extension to be installed, notices when the
# extension is dropped (only with agentauth.allow_uninstall) and created
# again, and logs the chain head every agentauth.head_log_interval.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_lifecycle');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.database = 'clinical'
agentauth.head_log_interval = '1s'
});
$node->start;

sub writer_count
{
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'");
}

# the database does not exist yet: one line in the log, no FATAL
$node->wait_for_log(qr/agentauth audit writer is waiting for database "clinical" to be created/);
sleep 3;
my $log = slurp_file($node->logfile);
my @waiting = ($log =~ /waiting for database "clinical"/g);
is(scalar @waiting, 1, 'waiting for the database is logged once');
unlike($log, qr/FATAL/, 'no FATAL while the database does not exist');

# created: the writer connects, and waits for the extension
$node->safe_psql('postgres', 'CREATE DATABASE clinical');
$node->wait_for_log(qr/waiting for the extension to be created in database "clinical"/);
$node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer' AND datname = 'clinical'")
  or die 'the writer did not connect';
pass('the writer connected to the new database');

$node->safe_psql('clinical', 'CREATE EXTENSION agentauth CASCADE');
$node->safe_psql('clinical', "SELECT agentauth._audit('t12_first')");
is($node->safe_psql('clinical', "SELECT seq FROM agentauth.audit_log WHERE event = 't12_first'"),
	'1', 'the first record is seq 1');

# the head goes to the log every head_log_interval when it moved
my $hash = $node->safe_psql('clinical', "SELECT encode(row_hash, 'hex') FROM agentauth.audit_log WHERE seq = 1");
$node->wait_for_log(qr/agentauth audit chain head: seq=1 row_hash=$hash/);
pass('the chain head is in the server log');

# DROP EXTENSION is refused without allow_uninstall
my ($r, $o, $e) = $node->psql('clinical', 'DROP EXTENSION agentauth');
like($e, qr/DROP EXTENSION agentauth is not allowed/, 'DROP EXTENSION refused');
like($e, qr/agentauth.allow_uninstall/, 'with a hint naming the setting');
($r, $o, $e) = $node->psql('clinical', 'SET agentauth.allow_uninstall = on');
like($e, qr/cannot be changed without restarting the server/, 'allow_uninstall cannot be set in a session');

# with allow_uninstall, the extension drops; the writer stays, quietly
$node->append_conf('postgresql.conf', 'agentauth.allow_uninstall = on');
$node->restart;
($r, $o, $e) = $node->psql('clinical', 'DROP EXTENSION agentauth');
is($r, 0, 'DROP EXTENSION allowed with allow_uninstall') or diag($e);
sleep 2;
is(writer_count(), '1', 'the writer survives the drop');

# created again: a new chain from seq 1
$node->safe_psql('clinical', 'CREATE EXTENSION agentauth');
$node->safe_psql('clinical', "SELECT agentauth._audit('t12_again')");
is($node->safe_psql('clinical', "SELECT seq FROM agentauth.audit_log WHERE event = 't12_again'"),
	'1', 'a new log starts at seq 1');
is($node->safe_psql('clinical', 'SELECT ok FROM agentauth.verify_audit()'), 't', 'and verifies');

$log = slurp_file($node->logfile);
unlike($log, qr/(FATAL|PANIC|server process .* was terminated)/, 'no crash, no FATAL in the log');
$node->stop;
done_testing();
