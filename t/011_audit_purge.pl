# Retention: purge_audit() removes only records older than
# agentauth.audit_retention, records audit_purged with the chain head at the
# cut, and both verifiers continue from that anchor.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_purge');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_retention = '2s'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE t11_officer IN ROLE agentauth_privacy_officer;
CREATE ROLE t11_auditor IN ROLE agentauth_auditor;
});

sub sq { return $node->safe_psql('postgres', $_[0]); }

sub verify_both
{
	my ($what, $args) = @_;
	$args //= '';
	my $c = sq("SELECT checked, ok, first_bad_seq, problem FROM agentauth.verify_audit($args)");
	my $s = sq("SELECT checked, ok, first_bad_seq, problem FROM agentauth.verify_audit_sql($args)");
	is($c, $s, "$what: both verifiers agree ($c)");
	return $c;
}

sq("SELECT agentauth._audit('t11_old_' || i) FROM generate_series(1, 5) i");
my $old_count = sq('SELECT count(*) FROM agentauth.audit_log');
sleep 3;
my $cut_time = sq('SELECT now()');
sq("SELECT agentauth._audit('t11_new_' || i) FROM generate_series(1, 3) i");
my $head = sq("SELECT encode(row_hash, 'hex') FROM agentauth.audit_log ORDER BY seq DESC LIMIT 1");
my $first_new = sq("SELECT min(seq) FROM agentauth.audit_log WHERE event LIKE 't11_new_%'");
my $hash_before_cut = sq("SELECT encode(row_hash, 'hex') FROM agentauth.audit_log WHERE seq = $first_new - 1");

# who may purge, and only what is old enough
my ($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_auditor; SELECT agentauth.purge_audit('$cut_time')");
like($e, qr/permission denied for function purge_audit/,
	'an auditor cannot purge');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SELECT agentauth.purge_audit(now())");
like($e, qr/audit records younger than agentauth.audit_retention cannot be removed/,
	'records younger than the retention cannot be removed');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SELECT agentauth.purge_audit(NULL)");
like($e, qr/before must not be null/, 'NULL refused');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SELECT agentauth.purge_audit('infinity')");
like($e, qr/audit records younger than agentauth.audit_retention cannot be removed/,
	'infinity refused: every record is younger');
# -infinity is older than every record: nothing to remove, not an error
# (1.1, found by review: refused as if it were too young)
is(sq("SET ROLE t11_officer; SELECT agentauth.purge_audit('-infinity')"), '0',
	'-infinity removes nothing');
is(sq(q{SELECT detail->>'before' || ' ' || (detail->>'removed') FROM agentauth.audit_log
         WHERE event = 'audit_purged' ORDER BY seq DESC LIMIT 1}), '-infinity 0',
	'... on the record, as any purge');
is(sq('SELECT count(*) FROM agentauth.audit_log'), $old_count + 4, 'nothing removed so far (the -infinity purge is on the record)');

# the purge, once the cut is older than the retention
sleep 3;
# (under a DateStyle and TimeZone of its own: the record states the cut in
# ISO 8601, UTC, whatever they are)
is(sq("SET ROLE t11_officer; SET DateStyle = 'SQL, DMY'; SET TimeZone = 'Asia/Kolkata';
       SELECT agentauth.purge_audit('$cut_time')"), $old_count,
	'the records logged before the cut are removed');
is(sq('SELECT min(seq) FROM agentauth.audit_log'), $first_new, 'the log now starts at the cut');
# the audit feed's next batch (_log_next) from a seq the purge removed:
# the first records that are left, not an empty window
is(sq("SET ROLE t11_auditor; SELECT string_agg(seq::text, ',' ORDER BY seq) FROM agentauth._log_next(0, 2)"),
	$first_new . ',' . ($first_new + 1), 'a feed behind the purge gets the first records left');
is(sq("SET ROLE t11_auditor; SELECT string_agg(seq::text, ',' ORDER BY seq) FROM agentauth._log_next($first_new, 2)"),
	($first_new + 1) . ',' . ($first_new + 2), '... and the next ones after them');
is(sq("SELECT (detail->>'cut_seq')::bigint || ' ' || (detail->>'cut_hash') || ' ' || (detail->>'removed')
        FROM agentauth.audit_log WHERE event = 'audit_purged' AND detail->>'before' <> '-infinity'"),
	"$first_new $hash_before_cut $old_count",
	'audit_purged records the cut and the hash of the record before it');
is(sq("SELECT db_role FROM agentauth.audit_log WHERE event = 'audit_purged' AND detail->>'before' <> '-infinity'"), 'postgres',
	'audit_purged names who purged');
my $cut_text = sq("SELECT detail->>'before' FROM agentauth.audit_log WHERE event = 'audit_purged' AND detail->>'before' <> '-infinity'");
like($cut_text, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$/,
	'audit_purged states its cut in ISO 8601, UTC, whatever the caller\'s DateStyle and TimeZone');
is(sq("SELECT '$cut_text'::timestamptz = '$cut_time'::timestamptz"), 't', '... the very instant');

# verification continues from the anchor, whatever from_seq below the cut
my $n = sq('SELECT count(*) FROM agentauth.audit_log');
is(verify_both('after the purge'), "$n|t||", 'the purged log verifies');
is(verify_both('from 3', '3'), "$n|t||", 'from a seq below the cut: from the cut');
is(verify_both('against the earlier head', "1, '\\x$head'"), "$n|t||",
	'an outside digest taken before the purge still verifies');

# the anchor is checked: the first record kept must link to it (tampered
# inside a transaction that is rolled back)
($r, $o, $e) = $node->psql('postgres', qq{BEGIN;
UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'agentauth.audit_record'::regclass;
UPDATE pg_catalog.pg_class SET relhastriggers = true WHERE oid = 'agentauth.audit_record'::regclass;
UPDATE agentauth.audit_record SET prev_hash = sha256('x') WHERE seq = $first_new;
SELECT first_bad_seq, problem FROM agentauth.verify_audit() UNION ALL SELECT first_bad_seq, problem FROM agentauth.verify_audit_sql();
ROLLBACK;});
is($o, "$first_new|prev_hash mismatch\n$first_new|prev_hash mismatch",
	'a first record that does not link to the anchor is reported by both');
($r, $o, $e) = $node->psql('postgres', 'UPDATE agentauth.audit_record SET detail = NULL');
like($e, qr/UPDATE is not allowed/, 'the guard is still on');

# a record left below the cut (or put there) is reported
($r, $o, $e) = $node->psql('postgres', q{BEGIN;
UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'agentauth.audit_record'::regclass;
UPDATE pg_catalog.pg_class SET relhastriggers = true WHERE oid = 'agentauth.audit_record'::regclass;
INSERT INTO agentauth.audit_record (seq, logged_at, event, prev_hash, row_hash)
  VALUES (2, now(), 't11_forged', sha256('a'), sha256('b'));
SELECT first_bad_seq, problem FROM agentauth.verify_audit() UNION ALL SELECT first_bad_seq, problem FROM agentauth.verify_audit_sql();
ROLLBACK;});
is($o, "2|unexpected record\n2|unexpected record", 'a record below the cut is unexpected, for both');

# the chain goes on after a restart, and a second purge moves the anchor;
# the newest record is always kept
$node->restart;
sq("SELECT agentauth._audit('t11_after_restart')");
sleep 3;
sq("SET ROLE t11_officer; SELECT agentauth.purge_audit(now() - interval '2 s')");
$n = sq('SELECT count(*) FROM agentauth.audit_log');
ok($n >= 1, "the newest record is kept ($n left)");
sq("SELECT agentauth._audit('t11_after_second_purge')");
$n = sq('SELECT count(*) FROM agentauth.audit_log');
is(verify_both('after the second purge'), "$n|t||", 'the log verifies after a second purge');
is(sq("SELECT count(*) FROM agentauth.audit_log WHERE event = 'audit_purged'"), '1',
	'the first purge record went with the second purge; the latest anchors the chain');

# a feed to the audit repository holds the purge until it has delivered
# what the purge would remove (1.1: a purge removed records a feed had
# still to send, and the repository never got them); a feed reports its
# position itself (feed_delivered, as the auditor login it reads with)
sq("SELECT agentauth._audit('t11_feed_' || i) FROM generate_series(1, 3) i");
my $lag_at = sq('SELECT max(seq) FROM agentauth.audit_log') - 2;
sq("SET ROLE t11_auditor; SELECT agentauth.feed_delivered('t11 lagging feed', $lag_at)");
sq("SET ROLE t11_auditor; SELECT agentauth.feed_delivered('t11 feed', max(seq)) FROM agentauth.audit_log");
is(sq(q{SELECT string_agg(name || ' ' || behind, ', ' ORDER BY name) FROM agentauth.audit_feeds}),
	"t11 feed 1, t11 lagging feed 4",
	'agentauth.audit_feeds shows how far behind each feed is (its registration is recorded too)');
# every role the README names reads it (review r40: it called a function
# that only a superuser could run)
sq('CREATE ROLE t11_admin IN ROLE agentauth_admin; CREATE ROLE t11_monitor IN ROLE pg_monitor');
for my $role (qw(t11_auditor t11_officer t11_admin t11_monitor))
{
	($r, $o, $e) = $node->psql('postgres',
		"SET ROLE $role; SELECT string_agg(name || ' ' || behind, ', ' ORDER BY name) FROM agentauth.audit_feeds");
	is($o, "t11 feed 1, t11 lagging feed 4", "$role reads agentauth.audit_feeds") or diag $e;
}
sleep 3;
my ($before, $count_before) = split /\|/, sq('SELECT min(seq), count(*) FROM agentauth.audit_log');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SELECT agentauth.purge_audit(now() - interval '2 s')");
like($e, qr/audit records not yet delivered by feed "t11 lagging feed" cannot be removed.*DETAIL:  The feed has delivered up to seq $lag_at; this purge would remove up to seq \d+\./s,
	'a purge past what a feed delivered is refused, naming the feed');
is(sq('SELECT min(seq) || \'|\' || count(*) FROM agentauth.audit_log'), "$before|$count_before",
	'... and removes nothing');
# a purge reads the positions as they are: one at REPEATABLE READ, whose
# snapshot could predate a feed's report, is refused
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT agentauth.purge_audit(now() - interval '2 s'); COMMIT");
like($e, qr/purge_audit runs only at READ COMMITTED/, 'a purge at REPEATABLE READ is refused');
# who may report and drop, and bad input
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SET ROLE NONE; CREATE ROLE t11_nobody; SET ROLE t11_nobody; SELECT agentauth.feed_delivered('x', 1)");
like($e, qr/permission denied for function feed_delivered/, 'only an auditor reports a feed\'s position');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_auditor; SELECT agentauth.feed_delivered('', 1)");
like($e, qr/feed must not be empty|feed/, 'an empty feed name is refused');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_auditor; SELECT agentauth.feed_delivered('t11 feed', -1)");
like($e, qr/seq must be a delivered seq, 0 or more/, 'a negative seq is refused');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_auditor; SELECT agentauth.feed_delivered('t11 feed', NULL)");
like($e, qr/ERROR:  seq must not be null/, 'a null seq is refused as null (22004)');
# a position past the head of the log (a state file of another log, a
# forged report) is refused: a purge would follow it
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_auditor; SELECT agentauth.feed_delivered('t11 lagging feed', max(seq) + 1) FROM agentauth.audit_log");
like($e, qr/seq \d+ is past the head of the audit log/, 'a position past the head of the log is refused');
# a feed's position is its own login's to move (1.1 before: any auditor
# moved any feed's, with no record, and a purge followed)
sq('CREATE ROLE t11_other_auditor LOGIN IN ROLE agentauth_auditor');
($r, $o, $e) = $node->psql('postgres', "SELECT agentauth.feed_delivered('t11 lagging feed', max(seq)) FROM agentauth.audit_log",
	extra_params => [ '-U', 't11_other_auditor' ]);
like($e, qr/audit feed "t11 lagging feed" is reported by login "postgres"/, 'another login cannot move a feed');
is(sq(q{SELECT delivered_seq FROM agentauth.audit_feeds WHERE name = 't11 lagging feed'}), $lag_at,
	'... which stays where its own login put it');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_auditor; SELECT agentauth.drop_audit_feed('t11 lagging feed', 'gone')");
like($e, qr/permission denied for function drop_audit_feed/, 'an auditor cannot drop a feed');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SELECT agentauth.drop_audit_feed('t11 lagging feed', NULL)");
like($e, qr/reason/, 'a drop needs a reason');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SELECT agentauth.drop_audit_feed('no such feed', 'gone')");
like($e, qr/no audit feed "no such feed"/, 'an unknown feed is an error');
($r, $o, $e) = $node->psql('postgres', "SET ROLE t11_officer; SELECT agentauth.drop_audit_feed(NULL, 'gone')");
like($e, qr/ERROR:  feed must not be null/, 'a null feed is refused as null (22004), not as an unknown feed');
# the feed that is gone is dropped, on the record; a feed that has
# delivered everything the purge removes does not hold it
sq("SET ROLE t11_officer; SELECT agentauth.drop_audit_feed('t11 lagging feed', 'decommissioned with the old repository')");
sq("SET ROLE t11_auditor; SELECT agentauth.feed_delivered('t11 feed', max(seq)) FROM agentauth.audit_log");
my $purged = sq("SET ROLE t11_officer; SELECT agentauth.purge_audit(now() - interval '2 s')");
cmp_ok($purged, '>', 0, "then the purge goes on ($purged records), the caught-up feed does not hold it");
is(sq(q{SELECT string_agg(event || ' ' || (detail->>'feed') || coalesce(' ' || (detail->>'reason'), ''), ', ' ORDER BY seq)
          FROM agentauth.audit_log WHERE event LIKE 'audit_feed_%'}),
	'audit_feed_dropped t11 lagging feed decommissioned with the old repository',
	'the drop is recorded with its reason (the registrations went with the purge)');
is(verify_both('after the purge the feeds allowed'), sq('SELECT count(*) FROM agentauth.audit_log') . '|t||',
	'and the log verifies');

$node->stop;
done_testing();
