# A logical replication subscriber writes into a protected table without the
# executor's hooks: the tablesync worker's initial copy and the apply
# worker's INSERT, UPDATE, DELETE and TRUNCATE.  Each leaves its records
# (SPEC 10 guarantee 1): privileged_access, one per transaction x table x
# action x patient, naming the subscription and the worker, written before
# the replicated transaction commits.  The triggers that record them cannot
# be dropped or switched off while the table is protected.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# the publisher: a plain server without agentauth
my $pub = PostgreSQL::Test::Cluster->new('publisher');
$pub->init(allows_streaming => 'logical');
$pub->start;
$pub->safe_psql('postgres', q{
CREATE TABLE labs (id int PRIMARY KEY, patient_id text, test text, result numeric);
INSERT INTO labs VALUES (1, 'P1', 'glucose', 5.4), (2, 'P1', 'hba1c', 6.1),
                        (3, 'P2', 'glucose', 7.9);
CREATE PUBLICATION labs_pub FOR TABLE labs;
});

# the subscriber: agentauth, the same table protected
my $sub = PostgreSQL::Test::Cluster->new('subscriber');
$sub->init;
$sub->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$sub->start;
$sub->safe_psql('postgres', q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE clinic_owner LOGIN;
CREATE TABLE labs (id int PRIMARY KEY, patient_id text, test text, result numeric);
ALTER TABLE labs OWNER TO clinic_owner;
SELECT agentauth.protect_table('labs', 'patient_id',
                               '{"id": "non_phi", "test": "lab", "result": "lab"}');
});

is($sub->safe_psql('postgres', q{
SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname)
  FROM pg_trigger WHERE tgrelid = 'labs'::regclass}),
	'agentauth_replicated_truncate:A,agentauth_replicated_write:A',
	'protect_table() adds the two recording triggers, ENABLE ALWAYS');

# records of the replication, as "action patient rows worker", in order
sub replicated
{
	my ($worker) = @_;
	return $sub->safe_psql('postgres', qq{
SELECT string_agg(action || ' ' || coalesce(patient, '-') || ' ' || coalesce(row_count::text, '-'),
                  ',' ORDER BY seq)
  FROM agentauth.audit_log
 WHERE event = 'privileged_access' AND relation = 'public.labs'
   AND detail ->> 'reason' = 'logical replication'
   AND detail ->> 'subscription' = 'labs_sub'
   AND detail ->> 'worker' = '$worker'});
}

my $pubconn = $pub->connstr . ' dbname=postgres';
$sub->safe_psql('postgres',
	"CREATE SUBSCRIPTION labs_sub CONNECTION '$pubconn' PUBLICATION labs_pub");
$sub->wait_for_subscription_sync($pub, 'labs_sub');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM labs'), '3', 'the initial copy arrived');

is(replicated('tablesync'), 'insert P1 2,insert P2 1',
	'the initial copy is recorded per patient with its row count');
is($sub->safe_psql('postgres', q{
SELECT DISTINCT array_to_string(columns, ',') || ' / ' || array_to_string(data_classes, ',')
  FROM agentauth.audit_log WHERE detail ->> 'reason' = 'logical replication'}),
	'id,patient_id,test,result / lab', 'naming every column and the classes written');

# applied changes: one transaction, then a row moved to another patient
$pub->safe_psql('postgres', q{
BEGIN;
INSERT INTO labs VALUES (4, 'P3', 'ldl', 2.9), (5, 'P3', 'hdl', 1.4);
UPDATE labs SET result = 5.6 WHERE id = 1;
DELETE FROM labs WHERE id = 3;
COMMIT;
UPDATE labs SET patient_id = 'P4' WHERE id = 2;
});
$pub->wait_for_catchup('labs_sub');
is($sub->safe_psql('postgres', 'SELECT string_agg(id || patient_id, \',\' ORDER BY id) FROM labs'),
	'1P1,2P4,4P3,5P3', 'the changes were applied');
is(replicated('apply'),
	'insert P3 2,update P1 1,delete P2 1,update P1 1,update P4 1',
	'applied inserts, updates and deletes are recorded per patient; a moved row under both');

# a replicated TRUNCATE
$pub->safe_psql('postgres', 'TRUNCATE labs');
$pub->wait_for_catchup('labs_sub');
is($sub->safe_psql('postgres', 'SELECT count(*) FROM labs'), '0', 'the truncate was applied');
is($sub->safe_psql('postgres', q{
SELECT count(*) FROM agentauth.audit_log
 WHERE event = 'privileged_access' AND relation = 'public.labs' AND action = 'delete'
   AND detail ->> 'worker' = 'apply' AND (detail ->> 'truncate')::boolean}),
	'1', 'and recorded');

# the same class outside replication: a superuser's COPY FROM and a write
# under session_replication_role = replica are recorded as privileged
# access by the statement hooks, and the triggers add nothing there
my $before = $sub->safe_psql('postgres', q{SELECT max(seq) FROM agentauth.audit_log});
$sub->safe_psql('postgres', q{
SET session_replication_role = replica;
INSERT INTO labs VALUES (10, 'P9', 'glucose', 4.0);
RESET session_replication_role;
COPY labs FROM STDIN;
11	P9	ldl	3.1
\.
});
is($sub->safe_psql('postgres', qq{
SELECT string_agg(action || ' ' || coalesce(detail ->> 'reason', '-'), ',' ORDER BY seq)
  FROM agentauth.audit_log
 WHERE event = 'privileged_access' AND relation = 'public.labs' AND seq > $before}),
	'insert superuser,insert superuser',
	'a superuser write in replica mode and a COPY FROM each leave one record');

# the triggers stay: not for the owner, not for a superuser
my @attempts = (
	[ 'clinic_owner', 'DROP TRIGGER agentauth_replicated_write ON labs' ],
	[ 'clinic_owner', 'DROP TRIGGER agentauth_replicated_truncate ON public.labs' ],
	[ 'clinic_owner', 'ALTER TABLE labs DISABLE TRIGGER agentauth_replicated_write' ],
	[ 'clinic_owner', 'ALTER TABLE labs DISABLE TRIGGER ALL' ],
	[ 'clinic_owner', 'ALTER TABLE labs DISABLE TRIGGER USER' ],
	[ 'clinic_owner', 'ALTER TABLE labs ENABLE TRIGGER agentauth_replicated_write' ],
	[ 'clinic_owner', 'ALTER TABLE labs ENABLE REPLICA TRIGGER agentauth_replicated_write' ],
	[ 'clinic_owner', 'ALTER TABLE labs ENABLE TRIGGER ALL' ],
	[ 'clinic_owner', 'ALTER TRIGGER agentauth_replicated_write ON labs RENAME TO other' ],
	[ 'postgres_su', 'ALTER TRIGGER agentauth_replicated_write ON labs DEPENDS ON EXTENSION plpgsql' ],
	[ 'postgres_su', 'DROP TRIGGER agentauth_replicated_write ON labs' ],
	[ 'postgres_su', 'ALTER TABLE labs DISABLE TRIGGER ALL' ],
	[ 'postgres_su', q{CREATE OR REPLACE TRIGGER agentauth_replicated_write AFTER INSERT ON labs
	                   FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()} ]);
foreach my $a (@attempts)
{
	my ($role, $sql) = @$a;
	my @as = $role eq 'postgres_su' ? () : (extra_params => [ '-U', $role ]);
	my ($ret, $out, $err) = $sub->psql('postgres', "\\set VERBOSITY verbose\n$sql", @as);
	like($err, qr/42501: cannot .* the agentauth triggers of protected table labs/,
		"refused: $sql ($role)");
}
is($sub->safe_psql('postgres', q{
SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname)
  FROM pg_trigger WHERE tgrelid = 'labs'::regclass}),
	'agentauth_replicated_truncate:A,agentauth_replicated_write:A', 'the triggers are intact');

# the owner cannot publish the protected table (a superuser can)
$sub->safe_psql('postgres', 'GRANT CREATE ON DATABASE postgres TO clinic_owner');
my ($pret, $pout, $perr) = $sub->psql('postgres', "\\set VERBOSITY verbose\nCREATE PUBLICATION leak FOR TABLE labs",
	extra_params => [ '-U', 'clinic_owner' ]);
like($perr, qr/42501: cannot publish protected table labs/, 'the owner cannot publish it');
$sub->safe_psql('postgres', 'CREATE TABLE other (id int)');
$sub->safe_psql('postgres', 'ALTER TABLE other OWNER TO clinic_owner');
$sub->safe_psql('postgres', 'CREATE PUBLICATION side FOR TABLE other', extra_params => [ '-U', 'clinic_owner' ]);
($pret, $pout, $perr) = $sub->psql('postgres', 'ALTER PUBLICATION side ADD TABLE labs',
	extra_params => [ '-U', 'clinic_owner' ]);
like($perr, qr/cannot publish protected table labs/, 'nor add it to a publication');
($pret, $pout, $perr) = $sub->psql('postgres', 'CREATE PUBLICATION su_pub FOR TABLE labs');
is($pret, 0, 'a superuser can') or diag($perr);
$sub->safe_psql('postgres', 'DROP PUBLICATION su_pub; DROP PUBLICATION side');

# they travel with pg_dump: a superuser's restore has them, still ALWAYS
my $dumpdir = PostgreSQL::Test::Utils::tempdir;
$sub->run_log([ 'pg_dump', '-t', 'labs', '-f', "$dumpdir/labs.sql", '-d', $sub->connstr('postgres') ]);
my $copy = PostgreSQL::Test::Cluster->new('restored');
$copy->init;
$copy->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$copy->start;
$copy->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE; CREATE ROLE clinic_owner');
my ($rret, $rout, $rerr) = $copy->psql('postgres', undef,
	extra_params => [ '-f', "$dumpdir/labs.sql" ], on_error_stop => 1);
is($rret, 0, 'a dump of the protected table restores') or diag($rerr);
is($copy->safe_psql('postgres', q{
SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname)
  FROM pg_trigger WHERE tgrelid = 'labs'::regclass}),
	'agentauth_replicated_truncate:A,agentauth_replicated_write:A',
	'with its recording triggers');
$copy->stop;

# protect_table() again keeps them; unprotect_table() removes them
$sub->safe_psql('postgres', q{
SELECT agentauth.protect_table('labs', 'patient_id',
                               '{"id": "non_phi", "test": "lab", "result": "lab"}')});
is($sub->safe_psql('postgres',
	q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'labs'::regclass}), '2',
	'protecting again keeps one pair');
$sub->safe_psql('postgres', q{SELECT agentauth.unprotect_table('labs', 'test over')});
is($sub->safe_psql('postgres',
	q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'labs'::regclass}), '0',
	'unprotect_table() removes them');

is($sub->safe_psql('postgres', 'SELECT ok FROM agentauth.verify_audit()'),
	't', 'the chain verifies');

$sub->stop;
$pub->stop;
done_testing();
