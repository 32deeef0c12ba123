# Consents in bulk: a 100,000-consent FHIR Bundle in one call, with its
# 100,000 consent_recorded records -- far more than the audit queue holds;
# and the records of a committed bulk load reach the log exactly once
# even when the server crashes before the spill worker has moved them, or
# after it queued them and before the writer stored them (and none of a
# bulk load that rolled back).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('consent_bulk');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_queue_size = 2048
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE t46_mgr LOGIN IN ROLE agentauth_consent_manager;
});

sub sq { return $node->safe_psql('postgres', $_[0]); }

# Stop the spill worker (SIGSTOP) while it waits for work, never in the
# middle of a chunk (holding a lock the next load would wait for).
sub stop_mover
{
	my ($pid) = @_;
	for my $try (1 .. 100)
	{
		kill 'STOP', $pid;
		return if sq("SELECT state = 'idle' AND wait_event = 'Extension' FROM pg_stat_activity WHERE pid = $pid") eq 't';
		kill 'CONT', $pid;
		select(undef, undef, undef, 0.1);
	}
	die 'the spill worker never went idle';
}

# 5,000 record_consent calls in one transaction, ended by $end (the
# session waits 2 s for the spill worker, which the test stops)
sub bulk_load
{
	my ($prefix, $end) = @_;
	return $node->psql('postgres', qq{
SET agentauth.audit_wait_timeout = '2s';
SET ROLE t46_mgr;
BEGIN;
SELECT count(agentauth.record_consent('$prefix' || i, 'permit', '{TREAT}')) FROM generate_series(1, 5000) i;
$end;
});
}

# the spill table's scans so far (its index was built by one)
my $scans0 = sq(q{SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'agentauth._audit_spill'::regclass});

# the Bundle, built in the server: 100,000 R4 Consents of 100,000 patients
my $n = $ENV{T46_CONSENTS} // 100000;
my ($rc, $out, $err) = $node->psql('postgres', qq{
SET ROLE t46_mgr;
SELECT count(*), sum(cardinality(consents)), max(entry)
  FROM agentauth.import_fhir_consent_bundle(
    (SELECT jsonb_build_object('resourceType', 'Bundle', 'type', 'transaction', 'entry',
            jsonb_agg(jsonb_build_object(
              'request', jsonb_build_object('method', 'PUT', 'url', 'Consent/t46-' || i),
              'resource', jsonb_build_object(
                'resourceType', 'Consent', 'id', 't46-' || i, 'status', 'active',
                'scope', '{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}'::jsonb,
                'patient', jsonb_build_object('reference', 'Patient/T46P' || i),
                'policyRule', '{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}'::jsonb,
                'provision', '{"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}'::jsonb))
              ORDER BY i))
       FROM generate_series(1, $n) i));
});
is($rc, 0, "a Bundle of $n Consents is imported in one call") or diag($err);
is($out, "$n|$n|" . ($n - 1), 'one provision per entry');
unlike($err, qr/WARNING/, 'its records were written before the call returned');
# The mover's work per record does not grow with the backlog: it reads the
# spilled rows in order by the table's index, each about once (before, it
# read and sorted the whole table for every chunk it moved: 350 chunks of
# 90 MB here, slow enough on some machines for the call above to warn).
# The counters are read before anything else scans the table, once both
# the table's and its index's have been flushed (a flush that finds an
# entry locked leaves it for the next one; no index: nothing to wait for).
$node->poll_query_until('postgres', qq{
SELECT n_tup_del >= $n AND coalesce(idx_tup_fetch, $n) >= $n
  FROM pg_stat_user_tables WHERE relid = 'agentauth._audit_spill'::regclass})
  or die 'the deletions of the spilled rows were not counted';
is(sq(qq{SELECT seq_scan - $scans0 || ' ' || (idx_tup_fetch BETWEEN 2 * $n AND 2.2 * $n)
           FROM pg_stat_user_tables WHERE relid = 'agentauth._audit_spill'::regclass}),
	'0 true', 'each spilled row was read about twice, by the index (the mover to queue it, the writer to delete it), with no scan of the table');
is(sq(q{SELECT count(*) FROM agentauth.consent WHERE source LIKE 'Consent/t46-%'}), $n,
	"$n consents stored");
is(sq(q{SELECT count(*) || ' ' || count(DISTINCT patient) FROM agentauth.audit_log
         WHERE event = 'consent_recorded' AND patient LIKE 'T46P%'}), "$n $n",
	"$n consent_recorded records, one per consent");
is(sq('SELECT count(*) FROM agentauth._audit_spill'), 0, 'nothing left in the spill table');
is(sq('SELECT ok FROM agentauth.verify_audit()'), 't', 'the chain verifies');

# a crash after the commit, before the spill worker moved the records:
# they are moved once the server is back, exactly once
my $mover = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit spill'});
like($mover, qr/^\d+$/, 'the spill worker runs');

# A snapshot older than the mover's deletions keeps their index entries
# from being marked dead; the mover still reads each row about once: each
# chunk starts after the last row its pass moved, not at the index's start
# (from the start, the 14 chunks of these 5,000 records re-read some
# 35,000 entries; one 10 s poll of the mover adds at most 5,000).
$node->safe_psql('postgres', 'VACUUM agentauth._audit_spill');	# no dead entries left
stop_mover($mover);
($rc, $out, $err) = bulk_load('T46S', 'COMMIT');
is($rc, 0, 'a bulk load committed while the mover was stopped');
my $bg = $node->background_psql('postgres');
$bg->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
$bg->query_safe('SELECT count(*) FROM pg_class');
my $stats = q{SELECT i.idx_tup_read, t.n_tup_del
                FROM pg_stat_user_indexes i JOIN pg_stat_user_tables t USING (relid)
               WHERE i.indexrelname = '_audit_spill_order'};
my ($read0, $del0) = split /\|/, sq($stats);
kill 'CONT', $mover;
$node->poll_query_until('postgres', "SELECT n_tup_del >= $del0 + 5000 FROM ($stats) s")
  or die 'the moved rows were not counted';
my ($read1) = split /\|/, sq($stats);
note('index entries read to move 5,000 records: ' . ($read1 - $read0));
cmp_ok($read1 - $read0, '<', 12500,
	'with an old snapshot open, the mover read about one index entry per record moved');
$bg->quit;
is(sq(q{SELECT count(*) FROM agentauth.audit_log WHERE event = 'consent_recorded' AND patient LIKE 'T46S%'}),
	'5000', 'those records are in the log');

stop_mover($mover);
($rc, $out, $err) = bulk_load('T46C', 'COMMIT');
is($rc, 0, 'the bulk load committed');
like($err, qr/not yet written/, 'with the spill worker stopped, COMMIT warns that the records follow');
is(sq('SELECT count(*) FROM agentauth._audit_spill'), 5000, 'its records wait in the spill table');
# the rollback of another bulk load, spilled too: nothing of it may appear
($rc, $out, $err) = bulk_load('T46R', 'ROLLBACK');
# the server crashes: the spill worker dies (SIGKILL), and the postmaster
# reinitializes everything from the WAL
kill 'KILL', $mover;
$node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM agentauth._audit_spill')
  or die 'the spilled records were not moved';
is(sq(q{SELECT count(*) || ' ' || count(DISTINCT patient) FROM agentauth.audit_log
         WHERE event = 'consent_recorded' AND patient LIKE 'T46C%'}), '5000 5000',
	'after the crash: every record of the committed load, none twice');
is(sq(q{SELECT count(*) FROM agentauth.audit_log WHERE patient LIKE 'T46R%'}), '0',
	'none of the rolled-back load');
is(sq('SELECT ok FROM agentauth.verify_audit()'), 't', 'the chain verifies');
unlike(slurp_file($node->logfile), qr/PANIC/, 'no PANIC');

# A crash after the mover queued a chunk, before the writer stored it: the
# rows are still there, and the records reach the log once the server is
# back, exactly once (found by review, r31: the mover deleted the rows and
# committed, and the crash lost the chunk -- 1,424 of 30,000 records, with
# every verifier passing).  The writer is stopped (SIGSTOP) so that the
# chunks wait in the queue, then killed: the postmaster reinitializes
# shared memory, queue and all.
$mover = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit spill'});
stop_mover($mover);
($rc, $out, $err) = bulk_load('T46W', 'COMMIT');
is($rc, 0, 'a bulk load committed while the mover was stopped');
my $writer = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'});
kill 'STOP', $writer;
kill 'CONT', $mover;
$node->poll_query_until('postgres', 'SELECT queue_used_bytes > 0 FROM agentauth.status')
  or die 'the mover queued nothing';
kill 'KILL', $writer;
$node->poll_query_until('postgres', q{SELECT count(*) = 0 FROM agentauth._audit_spill})
  or die 'the spilled records were not moved after the crash';
is(sq(q{SELECT count(*) || ' ' || count(DISTINCT patient) FROM agentauth.audit_log
         WHERE event = 'consent_recorded' AND patient LIKE 'T46W%'}), '5000 5000',
	'a crash with chunks queued and not stored: every record of the load, none twice');
is(sq('SELECT ok FROM agentauth.verify_audit()'), 't', 'the chain verifies');

# A spilled row whose lengths point past its end (a superuser's hand):
# it stops the mover with an error naming it; the writer never reads it
# (1.1 before: only the body's length was checked, and the writer read
# the jsonb copies at the lengths the row claimed).
$mover = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit spill'});
stop_mover($mover);
($rc, $out, $err) = bulk_load('T46M', 'COMMIT');
is($rc, 0, 'a bulk load committed while the mover was stopped');
my $first = q{(SELECT txn FROM agentauth._audit_spill ORDER BY txn, ord LIMIT 1),
              (SELECT ord FROM agentauth._audit_spill ORDER BY txn, ord LIMIT 1)};
my $orig = sq(qq{SELECT encode(entry, 'hex') FROM agentauth._audit_spill WHERE (txn, ord) = ($first)});
# the table refuses every role's writes (its trigger, ENABLE ALWAYS): the
# test switches it off in the catalog, as only a superuser can, and on again
my $guard = q{UPDATE pg_trigger SET tgenabled = '%s'
               WHERE tgrelid = 'agentauth._audit_spill'::regclass AND tgname = 'audit_spill_append_only'};
# authority_len (bytes 13-16 of the entry's header): 2 GB
sq(sprintf($guard, 'D') . qq{;
   UPDATE agentauth._audit_spill SET entry = overlay(entry PLACING '\\xffffff7f'::bytea FROM 13 FOR 4)
       WHERE (txn, ord) = ($first);} . sprintf($guard, 'A'));
my $logpos = -s $node->logfile;
kill 'CONT', $mover;
ok($node->wait_for_log(qr/_audit_spill holds a malformed record/, $logpos),
	'a spilled row with a length past its end stops the mover, named');
is(sq(q{SELECT count(*) FROM agentauth.audit_log WHERE patient LIKE 'T46M%'}), '0',
	'nothing of that load is written past the bad row');
sq(sprintf($guard, 'D') . qq{;
   UPDATE agentauth._audit_spill SET entry = decode('$orig', 'hex') WHERE (txn, ord) = ($first);}
   . sprintf($guard, 'A'));
$node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM agentauth._audit_spill')
  or die 'the repaired row was not moved';
is(sq(q{SELECT count(*) FROM agentauth.audit_log WHERE patient LIKE 'T46M%'}), '5000',
	'repaired: the whole load is written');
unlike(slurp_file($node->logfile, $logpos), qr/terminated by signal/, 'no process crashed');
is(sq('SELECT ok FROM agentauth.verify_audit()'), 't', 'the chain verifies');
done_testing();
