# A record appended to the log by hand is not one the writer chains onto.
#
# A superuser can write around the log's append-only guard (its triggers
# switched off in pg_trigger).  1.1 before this test: a record appended
# at the head's next seq made the writer's next batch fail on the
# duplicate seq; the writer restarted, read the hand-made record as the
# chain head and chained every later record onto it -- a record hashed by
# hand then passed verify_audit() (found by review, r40).  Now the writer
# remembers in shared memory the last record it committed, and refuses to
# go on from any other: it fails at each restart (statements fail closed)
# until the record is gone.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('forged_tail');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_wait_timeout = '2s'
});
$node->start;
sub sq { return $node->safe_psql('postgres', $_[0]); }
sq('CREATE EXTENSION agentauth CASCADE');
sq(q{SELECT agentauth._audit('t22_record_' || i) FROM generate_series(1, 3) i});
my $head = sq('SELECT agentauth._log_head()');

# the forgery: a copy of the last record at the next seq
my $guard_off = q{UPDATE pg_catalog.pg_trigger SET tgenabled = 'D'
                   WHERE tgrelid = 'agentauth.audit_record'::regclass};
my $guard_on = q{UPDATE pg_catalog.pg_trigger SET tgenabled = 'O'
                  WHERE tgrelid = 'agentauth.audit_record'::regclass};
sq(qq{BEGIN;
$guard_off;
CREATE TEMP TABLE forged AS SELECT * FROM agentauth.audit_record ORDER BY seq DESC LIMIT 1;
UPDATE forged SET seq = agentauth._log_head() + 1;
INSERT INTO agentauth.audit_record SELECT * FROM forged;
$guard_on;
COMMIT;});
my $forged = $head + 1;
is(sq('SELECT max(seq) FROM agentauth.audit_record'), $forged, 'the hand-made record is the last');

my $log_start = -s $node->logfile;
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT agentauth._audit('t22_after')});
my $refused = 0;
for (my $i = 0; $i < 30 && !$refused; $i++)
{
	$refused = 1 if slurp_file($node->logfile, $log_start) =~
	  /the audit log's last record, seq $forged, is not one the audit writer wrote/;
	sleep 1 unless $refused;
}
ok($refused, 'the writer refuses to go on from the hand-made record');
is(sq("SELECT count(*) FROM agentauth.audit_record WHERE seq > $forged"), '0',
	'and chains nothing onto it');
like(sq('SELECT writer_state FROM agentauth.status'), qr/^(failed|starting)$/,
	'agentauth.status shows the writer failing (and restarted)');

# the record removed, the writer goes on from its own
sq(qq{BEGIN; $guard_off; DELETE FROM agentauth.audit_record WHERE seq = $forged; $guard_on; COMMIT;});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM agentauth.audit_log WHERE event = 't22_after'}),
	'once it is gone the writer stores what waited');
is(sq("SELECT seq FROM agentauth.audit_log WHERE event = 't22_after'"), $forged,
	'at the seq after its own last record');
is(sq('SELECT ok FROM agentauth.verify_audit()'), 't', 'the chain verifies');

$node->stop;
done_testing();
