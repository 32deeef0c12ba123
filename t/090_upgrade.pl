# The 1.0 -> 1.1 update: a cluster that installed 1.0 (its install script,
# frozen in test/fixtures from the 1.0 release, against this library), put a
# site's data in it and ran ALTER EXTENSION agentauth UPDATE has exactly what
# a fresh 1.1 install has -- every object, its definition, owner, privileges,
# comment, security labels and extension membership (test/extension_objects.sql)
# and the seeded reference rows -- and the site's data survived: principals,
# tokens, consents, protected tables and the audit chain.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;

my $listing = slurp_file(dirname(__FILE__) . '/../test/extension_objects.sql');
my $version = slurp_file(dirname(__FILE__) . '/../agentauth.control');
($version) = $version =~ /^default_version\s*=\s*'([^']+)'/m;

# the seeded reference rows every install has
my $seeds = q{
	SELECT l FROM (
	SELECT 'purpose ' || code || ' ' || display || ' ' || reserved FROM agentauth.purpose
	UNION ALL SELECT 'class ' || name || ' ' || description || ' ' || sensitive FROM agentauth.data_class
	UNION ALL SELECT 'rule ' || id || ' ' || event || ' ' || threshold || ' ' || per || ' ' || action
	       || ' ' || per_patient
	  FROM agentauth.alert_rule) s(l)
	ORDER BY l COLLATE "C"};

sub node
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
	$node->start;
	return $node;
}

# report the lines only one side has, so a failure says what differs
sub same_lines
{
	my ($got, $want, $what) = @_;
	my %g = map { $_ => 1 } split /\n/, $got;
	my %w = map { $_ => 1 } split /\n/, $want;
	my @only_up = grep { !$w{$_} } sort keys %g;
	my @only_fresh = grep { !$g{$_} } sort keys %w;
	ok(!@only_up && !@only_fresh, $what)
	  or diag(join("\n", (map { "only after the update: $_" } @only_up),
			(map { "only in a fresh install: $_" } @only_fresh)));
}

my $fresh = node('fresh');
$fresh->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');
is($fresh->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'agentauth'"),
	$version, "a fresh install is version $version");

my $up = node('upgraded');
$up->safe_psql('postgres', q{CREATE EXTENSION agentauth VERSION '1.0' CASCADE});
is($up->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'agentauth'"),
	'1.0', 'version 1.0 installs against this library');

# a 1.0 site: a protected table, an agent with a token, a consent, reads
$up->safe_psql('postgres', q{
	CREATE ROLE up_agent LOGIN;
	CREATE TABLE labs (id int PRIMARY KEY, patient_id text NOT NULL, code text, value text);
	INSERT INTO labs SELECT i, 'UP-P' || (i % 4), 'C' || i, 'v' || i FROM generate_series(1, 20) i;
	SELECT agentauth.protect_table('labs', 'patient_id', '{"id": "non_phi", "code": "lab", "value": "lab"}');
	GRANT SELECT ON labs TO up_agent;
	INSERT INTO agentauth.purpose (code, display) VALUES ('SITEQA', 'a code this site added');
	SELECT agentauth.set_default_decision('HOPERAT', 'lab', 'permit');
});
my $agent = $up->safe_psql('postgres', q{
	SELECT agentauth.register_agent('up-agent', 'up_agent', 'Lab team', '{TREATDS}', '{lab:read}')});
my $secret = $up->safe_psql('postgres', qq{SELECT agentauth.issue_token('$agent', 'TREATDS')});
# a principal whose login role 1.0 let be dropped (found by review: its oid,
# dumped and restored, bound the principal to another role)
$up->safe_psql('postgres', q{
	CREATE ROLE up_gone LOGIN;
	SELECT agentauth.register_agent('up-gone', 'up_gone', 'Lab team', '{TREATDS}', '{lab:read}');
	DROP ROLE up_gone;
});
$up->safe_psql('postgres', q{
	SELECT agentauth.record_consent('UP-P1', 'permit', '{TREATDS}');
	SELECT agentauth.record_consent('UP-P2', 'permit', '{TREATDS}')});
# an opt-out of treatment imported from FHIR (1.0 denied TREAT alone)
$up->safe_psql('postgres', q{
	SELECT agentauth.record_consent('UP-P8', 'permit');
	SELECT agentauth.import_fhir_consent('{"resourceType": "Consent", "id": "up-optout", "status": "active",
	  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
	  "patient": {"reference": "Patient/UP-P8"},
	  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
	  "provision": {"type": "deny",
	    "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}}')});
my $read = qq{
	SET SESSION AUTHORIZATION up_agent;
	SELECT agentauth.begin_session('$secret') IS NOT NULL;
	SELECT string_agg(patient_id || ':' || code, ',' ORDER BY id) FROM labs;};
my $optout_decision = qq{
	SET SESSION AUTHORIZATION up_agent;
	SELECT agentauth.begin_session('$secret') IS NOT NULL AS began \\gset
	SELECT decision FROM agentauth.explain_access('UP-P8', 'lab');};
is($up->safe_psql('postgres', $optout_decision), 'permit',
	'1.0: an opt-out of TREAT imported from FHIR lets a TREATDS agent through');
my $before = $up->safe_psql('postgres', $read);
like($before, qr/UP-P1:C1/, 'the 1.0 agent reads a consenting patient');
unlike($before, qr/UP-P3/, '... and not another');
# two clinicians whose names differ only by case (1.0 let them; 1.1
# compares names so): the update refuses and names them (found by review:
# it kept them, and one's suspension voided the other's tokens), and goes
# through once one has a name of its own
$up->safe_psql('postgres', q{
	CREATE ROLE up_jones LOGIN;
	CREATE ROLE up_jones2 LOGIN;
	SELECT agentauth.register_human('Dr Up Jones', 'up_jones', '{TREAT}', '{lab:read}');
	SELECT agentauth.register_human('dr up jones ', 'up_jones2', '{TREAT}', '{lab:read}')});
my ($clash_ret, $clash_out, $clash_err) = $up->psql('postgres', 'ALTER EXTENSION agentauth UPDATE');
isnt($clash_ret, 0, 'the update refuses principals whose names differ only by case');
like($clash_err, qr/principals 'Dr Up Jones', 'dr up jones ' have names that differ only by case or surrounding blanks/,
	'... and names them');
like($clash_err, qr/HINT:  Give each of them but one a name of its own/, '... with a hint');
is($up->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'agentauth'"),
	'1.0', '... and leaves version 1.0 as it was');
$up->safe_psql('postgres',
	q{UPDATE agentauth.principal SET name = 'Dr Up Jones (cardiology)' WHERE name = 'dr up jones '});
my $site_before = $up->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM agentauth.principal) || ' ' ||
	       (SELECT count(*) FROM agentauth.token) || ' ' ||
	       (SELECT count(*) FROM agentauth.consent) || ' ' ||
	       (SELECT count(*) FROM agentauth.default_decision) || ' ' ||
	       (SELECT count(*) FROM pg_seclabel WHERE provider = 'agentauth' AND objoid = 'labs'::regclass)});
# the records written so far (a disconnect's session_end may still follow)
my $seq_before = $up->safe_psql('postgres', 'SELECT max(seq) FROM agentauth.audit_log');

my ($ret, $out, $err) = $up->psql('postgres', 'ALTER EXTENSION agentauth UPDATE');
is($ret, 0, 'ALTER EXTENSION agentauth UPDATE') or diag($err);
is($up->safe_psql('postgres', "SELECT extversion FROM pg_extension WHERE extname = 'agentauth'"),
	$version, "updated to $version");

my $objects = $fresh->safe_psql('postgres', $listing);
cmp_ok(scalar(split /\n/, $objects), '>', 1000, 'the listing sees the installed objects');
same_lines($up->safe_psql('postgres', $listing), $objects,
	'the updated extension has exactly the objects and properties of a fresh install');
same_lines(
	$up->safe_psql('postgres', $seeds =~ s/FROM agentauth.purpose/FROM agentauth.purpose WHERE code <> 'SITEQA'/r),
	$fresh->safe_psql('postgres', $seeds),
	'the seeded reference rows are those of a fresh install');

# the site's data survived
my $site_after = $up->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM agentauth.principal) || ' ' ||
	       (SELECT count(*) FROM agentauth.token) || ' ' ||
	       (SELECT count(*) FROM agentauth.consent) || ' ' ||
	       (SELECT count(*) FROM agentauth.default_decision) || ' ' ||
	       (SELECT count(*) FROM pg_seclabel WHERE provider = 'agentauth' AND objoid = 'labs'::regclass)});
is($site_after, $site_before, 'principals, tokens, consents, defaults and labels survive');
is($up->safe_psql('postgres', q{SELECT status FROM agentauth.principal WHERE name = 'up-gone'}),
	'retired', 'a principal whose login was dropped under 1.0 is retired by the update');
my ($drop_ret, $drop_out, $drop_err) = $up->psql('postgres', 'DROP ROLE up_agent');
isnt($drop_ret, 0, "the update binds an active principal's login: DROP ROLE is refused");
like($drop_err, qr/privileges for table agentauth.principal/, '... naming the principal table');
is($up->safe_psql('postgres', "SELECT count(*) FROM agentauth.audit_log WHERE seq <= $seq_before"),
	$seq_before, 'every audit record written before the update survives');
is($up->safe_psql('postgres', q{SELECT count(*) FROM agentauth.purpose WHERE code = 'SITEQA'}),
	'1', 'a purpose the site added survives');
# the 1.0 opt-out's deny now covers the purposes below TREAT (less any an
# exception of the same Consent names), grows like a 1.1 import's, and says
# so (1.1, found by review: an upgraded site's opt-outs denied TREAT alone)
is($up->safe_psql('postgres', q{
	SELECT string_agg(c.decision || ' ' || coalesce(c.purposes::text, '*') || ' ' || coalesce(o.dims::text, '-'), '; '
	                  ORDER BY c.decision, c.purposes::text)
	  FROM agentauth.consent c LEFT JOIN agentauth.consent_open o ON o.consent = c.id
	 WHERE c.patient = 'UP-P8' AND c.withdrawn_at IS NULL}),
	'deny {ERTREAT,ETREAT,TREAT,TREATDS} {subtree}; permit * -',
	'an opt-out imported by 1.0 covers the purposes below those it names');
ok($up->poll_query_until('postgres', q{
	SELECT count(*) = 1 FROM agentauth.audit_log WHERE event = 'consent_extended' AND patient = 'UP-P8'}),
	'... and the change is audited');
is($up->safe_psql('postgres', $optout_decision), 'deny',
	'... so the TREATDS agent that 1.0 let through is refused');
is($up->safe_psql('postgres', $read), $before, 'the 1.0 token reads the same rows after the update');
is($up->safe_psql('postgres', q{
	SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname)
	  FROM pg_trigger WHERE tgrelid = 'labs'::regclass}),
	'agentauth_replicated_truncate:A,agentauth_replicated_write:A',
	'a table protected under 1.0 gets the triggers that record replicated writes (item 8)');
is($up->safe_psql('postgres', q{SELECT ok FROM agentauth.verify_audit()}),
	't', 'the audit chain written before and after the update verifies');

# One chain, both encodings (issue "Performance", item 1): the records 1.0
# wrote (version 1, one row each) and the units 1.1 writes (version 2, a
# statement's records of a table in one row), checked by both verifiers and
# by the offline aa_verify, intact and after a change to either kind.
$up->safe_psql('postgres', $read) for 1 .. 2;
$up->safe_psql('postgres', q{SELECT agentauth._audit('up_after', '{}')});
my $stored = $up->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE entry_kinds IS NULL AND patient IS NOT NULL AND seq <= $seq_before) || ' ' ||
	       count(*) FILTER (WHERE entry_kinds IS NOT NULL AND cardinality(entry_kinds) > 1)
	  FROM agentauth.audit_record});
my ($v1_patient_rows, $units) = split / /, $stored;
cmp_ok($v1_patient_rows, '>', 1, 'the 1.0 per-patient records are kept as version 1 rows');
cmp_ok($units, '>', 0, 'reads after the update are stored as units of several entries');
is($up->safe_psql('postgres', q{
	SELECT count(*) = max(seq) AND count(*) = (SELECT checked FROM agentauth.verify_audit())
	  FROM agentauth.audit_log}), 't', 'the view shows every record of both encodings, seq 1..n without a gap');

my $aa_verify = "$ENV{TESTDIR}/tools/aa_verify";
my $tmp = PostgreSQL::Test::Utils::tempdir;
# both verifiers and aa_verify on the same state: ok and the first bad seq
sub three_verdicts
{
	my ($sql_before) = @_;
	my $sql = ($sql_before // '') . q{
		SELECT c.ok || ' ' || coalesce(c.first_bad_seq::text, '-') || ' ' || coalesce(c.problem, '-') || ' | ' ||
		       s.ok || ' ' || coalesce(s.first_bad_seq::text, '-') || ' ' || coalesce(s.problem, '-')
		  FROM agentauth.verify_audit() c, agentauth.verify_audit_sql() s;
		SELECT * FROM agentauth.export_audit();
		ROLLBACK;};
	my ($v, @export) = split /\n/, $up->safe_psql('postgres', "BEGIN;\n$sql");
	open my $fh, '>', "$tmp/export.jsonl" or die;
	print $fh join("\n", @export), "\n";
	close $fh;
	my ($stdout, $stderr);
	IPC::Run::run([ $aa_verify, "$tmp/export.jsonl" ], '>', \$stdout, '2>', \$stderr);
	return ($v, $? >> 8, $stdout . $stderr);
}
my ($v, $rc);
($v, $rc, $out) = three_verdicts();
is($v, 'true - - | true - -', 'both verifiers pass the mixed chain');
is($rc, 0, 'aa_verify passes the export of the mixed chain') or diag($out);
like($out, qr/OK: \d+ records, seq 1\.\./, 'aa_verify counts every record of the units');

my $unguard = q{
	UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'agentauth.audit_record'::regclass;
	UPDATE pg_catalog.pg_class SET relhastriggers = true WHERE oid = 'agentauth.audit_record'::regclass;};
my $unit_seq = $up->safe_psql('postgres', q{
	SELECT min(seq) FROM agentauth.audit_record WHERE cardinality(entry_kinds) > 1});
my $v1_seq = $up->safe_psql('postgres', qq{
	SELECT max(seq) FROM agentauth.audit_record WHERE patient IS NOT NULL AND seq <= $seq_before});
for my $case (
	[ "a version 1 record's row count", $v1_seq, "UPDATE agentauth.audit_record SET row_count = row_count + 1 WHERE seq = $v1_seq;" ],
	[ "a unit's patient", $unit_seq, "UPDATE agentauth.audit_record SET entry_patients[1] = 'UP-P9' WHERE seq = $unit_seq;" ],
	[ "a unit's entry removed", $unit_seq, "UPDATE agentauth.audit_record SET entry_kinds = entry_kinds[2:], entry_patients = entry_patients[2:], entry_row_counts = entry_row_counts[2:], entry_authorities = entry_authorities[2:] WHERE seq = $unit_seq;" ])
{
	my ($what, $bad, $change) = @$case;
	($v, $rc, $out) = three_verdicts($unguard . $change);
	is($v, "false $bad row_hash mismatch | false $bad row_hash mismatch", "$what: both verifiers name seq $bad");
	is($rc, 1, "$what: aa_verify fails");
	like($out, qr/seq $bad\b/, "$what: aa_verify names seq $bad") or diag($out);
}

$fresh->stop;
$up->stop;
done_testing();
