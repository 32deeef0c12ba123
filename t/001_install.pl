# Loading rules: the library refuses to load outside shared_preload_libraries,
# and the extension installs only in agentauth.database.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;

# not preloaded: a clear error, no crash
my ($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION agentauth CASCADE');
isnt($ret, 0, 'CREATE EXTENSION fails when not preloaded');
like($err, qr/agentauth must be loaded via shared_preload_libraries/,
	'error names shared_preload_libraries');

$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$node->restart;

$node->safe_psql('postgres', 'CREATE DATABASE other');
($ret, $out, $err) = $node->psql('other', 'CREATE EXTENSION agentauth CASCADE');
isnt($ret, 0, 'CREATE EXTENSION refused outside agentauth.database');
like($err, qr/agentauth can only be installed in database "postgres"/,
	'error names the configured database');
like($err, qr/HINT:  Set agentauth.database/, 'with a hint');

($ret, $out, $err) = $node->psql('postgres', 'CREATE EXTENSION agentauth CASCADE');
is($ret, 0, 'CREATE EXTENSION works in agentauth.database') or diag($err);

is($node->safe_psql('postgres', "SELECT count(*) FROM agentauth.purpose WHERE code = 'TREAT'"),
	'1', 'catalogs are there');

$node->stop;
done_testing();
