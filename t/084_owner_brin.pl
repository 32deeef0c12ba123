# The BRIN summary an index's autosummarize asks of autovacuum: a work
# item, which reports no progress (owner_code.c knew maintenance only from
# a utility statement or a progress report), ran the owner's index
# expression over every row of the range it summarized (found by review,
# r37: a function that logged its argument logged every patient's HIV
# status).  Now autovacuum refuses a non-superuser's function in a work
# item on a protected table's index.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('owner_brin');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
autovacuum_naptime = 1
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE t84_owner LOGIN;
CREATE SCHEMA clinic84 AUTHORIZATION t84_owner;
SET ROLE t84_owner;
CREATE TABLE clinic84.tests (patient_id text NOT NULL, hiv_status text)
    WITH (autovacuum_enabled = off);
CREATE FUNCTION clinic84.f(v text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT v $$;
CREATE INDEX tests_brin ON clinic84.tests USING brin (clinic84.f(hiv_status))
    WITH (pages_per_range = 1, autosummarize = on);
RESET ROLE;
-- the rows of the first range, before protection
INSERT INTO clinic84.tests SELECT 'T84-P' || g, 'old-secret' FROM generate_series(1, 150) g;
SELECT agentauth.protect_table('clinic84.tests', 'patient_id', '{"hiv_status": "hiv"}');
-- the owner replaces the function, reviewed harmless, with one that tells
SET ROLE t84_owner;
CREATE OR REPLACE FUNCTION clinic84.f(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE
    AS $$BEGIN RAISE WARNING 't84 saw %', v; RETURN v; END$$;
RESET ROLE;
});
my $log_start = -s $node->logfile;
# a superuser's rows fill the next ranges: each full range asks for its summary
$node->safe_psql('postgres',
	q{INSERT INTO clinic84.tests SELECT 'T84-Q' || g, 'fresh' FROM generate_series(1, 600) g});
my $refused = 0;
for (my $i = 0; $i < 60 && !$refused; $i++)
{
	sleep 1;
	my $log = slurp_file($node->logfile, $log_start);
	$refused = 1 if $log =~ /autovacuum does not run function clinic84\.f\(text\)/;
}
ok($refused, 'autovacuum refused the owner\'s function in the summary it was asked for');
my $log = slurp_file($node->logfile, $log_start);
# the superuser's own INSERT runs the function over the rows it inserts
# (logged with the client's application_name); autovacuum's summary ran it
# over the range's rows (logged without one)
like($log, qr/084_owner_brin\.pl WARNING:  t84 saw fresh/, 'the superuser\'s insert ran the function on its rows');
unlike($log, qr/\] WARNING:  t84 saw/, 'the summary ran it on no row');
like($log, qr/over the rows of protected table clinic84\.tests/, 'naming the protected table');

$node->stop;
done_testing();
