# Protected tables on a hot standby (SPEC 6.9): no audit record can be
# written during recovery, so every statement on a protected table fails
# closed with a clear error -- for a superuser too -- while other tables
# stay readable.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$primary->start;
$primary->safe_psql('postgres', q{
	CREATE EXTENSION agentauth CASCADE;
	CREATE TABLE labs (patient_id text NOT NULL, result numeric);
	INSERT INTO labs VALUES ('S1', 1.5), ('S2', 2.5);
	SELECT agentauth.protect_table('labs', 'patient_id', '{"result": "lab"}');
	CREATE TABLE plain (x int);
	INSERT INTO plain VALUES (1), (2);
	CREATE ROLE standby_agent LOGIN;
	GRANT SELECT ON labs TO standby_agent;
});

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres', 'SELECT count(*) FROM plain'), '2',
	'an unprotected table is readable on the standby');

my ($ret, $out, $err) = $standby->psql('postgres', 'SELECT result FROM labs');
isnt($ret, 0, 'a superuser cannot read a protected table on the standby');
like($err, qr/protected table public\.labs cannot be accessed on a hot standby/,
	'the error says why');
like($err, qr/No audit record can be written during recovery/, 'with the reason');

($ret, $out, $err) = $standby->psql('postgres', 'SELECT result FROM labs',
	extra_params => [ '-U', 'standby_agent' ]);
isnt($ret, 0, 'nor can any other role');
like($err, qr/cannot be accessed on a hot standby/, 'same error');

($ret, $out, $err) = $standby->psql('postgres', 'COPY labs TO stdout');
isnt($ret, 0, 'COPY of a protected table fails on the standby');
unlike($out, qr/S1/, 'and returns no row');

# the primary is unaffected
is($primary->safe_psql('postgres', 'SELECT count(*) FROM labs'), '2',
	'the primary still serves (audited) reads');

$standby->stop;
$primary->stop;
done_testing();
