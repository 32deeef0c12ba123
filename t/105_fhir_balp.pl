# audit_event_fhir, checked from outside: every record of a real workload
# (test/fhir/balp_events.sql) is valid against the official FHIR R4 JSON
# schema (test/fhir/fhir.schema.json.gz), and every record about a
# patient's data follows the IHE BALP pattern it claims (PatientQuery,
# PatientCreate/Update/Delete, AuthZconsent) with every element BALP
# requires (test/fhir/check_auditevent.py).  The patient is a
# Reference(Patient), and a site can replace agentauth.fhir_patient_reference().
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;

my $dir = dirname(__FILE__) . '/../test/fhir';
system('python3', '-c', 'import jsonschema') == 0
  or plan skip_all => 'python3-jsonschema is not installed (scripts/deps.sh installs it)';

my $node = PostgreSQL::Test::Cluster->new('fhir_balp');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');
my ($rc, $out, $err) = $node->psql('postgres', slurp_file("$dir/balp_events.sql"), on_error_stop => 1);
is($rc, 0, 'the workload ran') or diag($err);

sub events
{
	my $lines = $node->safe_psql('postgres', q{
		SELECT json_build_object('seq', seq, 'event', event, 'patient', patient,
		                         'resource', agentauth.audit_event_fhir(seq))
		  FROM agentauth.audit_log ORDER BY seq});
	my $file = $node->basedir . '/events.jsonl';
	open my $fh, '>', $file or die $!;
	print $fh $lines, "\n";
	close $fh;
	my $res = `python3 $dir/check_auditevent.py < $file 2>&1`;
	return ($? >> 8, $res);
}
my ($code, $res) = events();
is($code, 0, 'valid FHIR R4 (official JSON schema) and BALP-conformant') or diag($res);
like($res, qr/checked (\d+), BALP (\d+)/, 'the checker ran');
my ($n, $nbalp) = $res =~ /checked (\d+), BALP (\d+)/;
cmp_ok($nbalp, '>=', 12, "$nbalp records about patients' data checked against BALP (of $n)");

sub ae { return $node->safe_psql('postgres', $_[0]); }
is(ae(q{SELECT string_agg(DISTINCT f->'subtype'->0->>'code' || ' ' || (f->>'action'), ',')
          FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient IS NOT NULL AND l.event IN ('access', 'denied')}),
	'AuthZ-Consent E,create C,delete D,search-type E,update U', 'each pattern is there');
is(ae(q{SELECT f->'entity'->0->'what'->>'reference' FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'P1' AND l.event = 'access' LIMIT 1}), 'Patient/P1', 'the patient is Reference(Patient/P1)');
is(ae(q{SELECT f->'entity'->0->'what'->'identifier'->>'value' FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'mrn:77' AND l.event = 'access' LIMIT 1}), 'mrn:77',
	'a patient id that is no FHIR id: a logical reference by identifier');
# a denial says why: the token's patient list, not "no consent" (1.1,
# found by review: every denial without a consent was exported as "no
# consent or default permits it")
is(ae(q{SELECT (f->'entity'->1->'what'->>'display') || ' | ' || (f->>'outcomeDesc')
          FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'mrn:77' AND l.event = 'denied' LIMIT 1}),
	"patient not in the token's patient list | denied: read public.labs (id, patient_id, value) classes lab (patient not in the token's patient list)",
	'a denial by the token\'s patient list says so');
# an administrative record: the login role acted, the principal was acted
# on (1.1, found by review: one requesting agent merged both, so the
# token's agent seemed to issue its own token)
is(ae(q{SELECT (f->'agent'->0->'who'->'identifier'->>'system') || ' ' || (f->'agent'->0->'who'->>'display') || ' | '
               || (f->'entity'->0->'what'->'identifier'->>'value' = l.principal::text) || ' '
               || (f->'entity'->0->'role'->>'code') || ' | ' || jsonb_array_length(f->'agent')
          FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.event = 'token_issued' ORDER BY l.seq LIMIT 1}),
	'urn:agentauth:db-role postgres | true 11 | 1', 'token_issued: the issuing login is the agent, the token\'s principal an entity');
is(ae(q{SELECT f->'agent'->0->'network'->>'address' FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'P1' AND l.event = 'access' LIMIT 1}), 'localhost', 'the client has a network address');

# the site's mapping from patient id to reference (a setting)
$node->append_conf('postgresql.conf', q{agentauth.fhir_patient_reference = 'https://fhir.example.org/r4/Patient/%s'});
$node->reload;
$node->poll_query_until('postgres', q{SELECT current_setting('agentauth.fhir_patient_reference') LIKE 'https:%'});
is(ae(q{SELECT f->'entity'->0->'what'->>'reference' FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'P1' AND l.event = 'access' LIMIT 1}), 'https://fhir.example.org/r4/Patient/P1',
	'agentauth.fhir_patient_reference names the site\'s FHIR server');
($code, $res) = events();
is($code, 0, 'still valid and conformant with the site\'s mapping') or diag($res);
# a patient id that is no FHIR id never goes into the reference, whatever
# the template (1.1: under a full-URL template '../Patient/P1' made
# https://.../Patient/../Patient/P1, which a server files under P1)
is(ae(q{SELECT (f->'entity'->0->'what'->>'reference') IS NULL, f->'entity'->0->'what'->'identifier'
          FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'mrn:77' AND l.event = 'access' LIMIT 1}),
	't|{"value": "mrn:77", "system": "urn:agentauth:patient"}',
	'under a full-URL template an id that is no FHIR id is named by identifier');
is(ae(q{SELECT agentauth.fhir_patient_reference(p) FROM unnest(ARRAY['../Patient/P1', 'x y', repeat('a', 65), '..', '.']) p}),
	join("\n", map { qq({"type": "Patient", "identifier": {"value": "$_", "system": "urn:agentauth:patient"}}) }
		('../Patient/P1', 'x y', 'a' x 65, '..', '.')),
	'... and so is a path, a space, an id longer than 64, an id of dots (which a URL resolves as a path)');
# the events that are not BALP's (consent, break-the-glass) name the
# patient by the same Reference (1.1: an identifier with no system)
is(ae(q{SELECT string_agg(DISTINCT l.event || ' ' || (f->'entity'->0->'what'->>'reference'), ', ')
          FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'P1' AND l.event NOT IN ('access', 'denied')}),
	'consent_recorded https://fhir.example.org/r4/Patient/P1',
	'a consent event names the patient by the same Reference');

# and the way back: a Consent may name its patient by that absolute
# reference; another server's Patient of the same id is refused (1.1: it
# was taken as the local patient of that id)
sub consent_patient
{
	my ($reference) = @_;
	return $node->psql('postgres', qq{
SELECT patient FROM agentauth._fhir_consent_rules('{
  "resourceType": "Consent", "id": "t105", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "$reference"},
  "provision": {"type": "permit",
                "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}}')});
}
($rc, $out, $err) = consent_patient('https://fhir.example.org/r4/Patient/P1');
is($out, 'P1', 'a Consent\'s reference in the site\'s form names the local patient') or diag($err);
($rc, $out, $err) = consent_patient('Patient/P1');
is($out, 'P1', 'and a relative one') or diag($err);
($rc, $out, $err) = consent_patient('https://other.example.org/r4/Patient/P1');
like($err, qr/expected a reference to a Patient of this site \(Patient\/<id> or https:\/\/fhir.example.org\/r4\/Patient\/<id>\)/,
	'another server\'s Patient/P1 is refused');
($rc, $out, $err) = consent_patient('https://fhir.example.org/r4/Patient/P1/_history/2');
isnt($rc, 0, 'a versioned reference is refused (its id is not a FHIR id)');

# a Bundle's entries: the site's own server's are imported, another's are
# refused (their relative references name that server's patients)
sub bundle_from
{
	my ($fullurl) = @_;
	return $node->psql('postgres', qq{
BEGIN;
SELECT entry, source FROM agentauth.import_fhir_consent_bundle('{
  "resourceType": "Bundle", "type": "collection",
  "entry": [{"fullUrl": "$fullurl", "resource": {
    "resourceType": "Consent", "id": "t105b", "status": "active",
    "scope": {"coding": [{"code": "patient-privacy"}]},
    "patient": {"reference": "Patient/P1"},
    "provision": {"type": "permit",
                  "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}}}]}');
ROLLBACK;});
}
($rc, $out, $err) = bundle_from('https://fhir.example.org/r4/Consent/t105b');
is($out, '0|Consent/t105b', 'a Bundle entry of the site\'s own server is imported') or diag($err);
($rc, $out, $err) = bundle_from('https://other.example.org/r4/Consent/t105b');
like($err, qr/is a resource of another server/, 'an entry of another server is refused');
# a template without %s, or with another %, is refused when it is set --
# by ALTER SYSTEM and by a reload, which keeps the value before it (1.1:
# taken, and every export of a patient's record then failed, holding up
# the feed)
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET agentauth.fhir_patient_reference = 'Patient'});
like($err, qr/invalid value for parameter "agentauth.fhir_patient_reference": "Patient"/,
	'a template without %s is refused');
($rc, $out, $err) = $node->psql('postgres', q{ALTER SYSTEM SET agentauth.fhir_patient_reference = 'Patient/%s/%d'});
like($err, qr/The template may hold no % but the one in %s/, 'a template with another % is refused');
my $logpos = -s $node->logfile;
$node->append_conf('postgresql.conf', q{agentauth.fhir_patient_reference = 'Patient'});
$node->reload;
ok($node->wait_for_log(qr/invalid value for parameter "agentauth.fhir_patient_reference": "Patient"/, $logpos),
	'a reload says so in the server log');
is(ae(q{SELECT f->'entity'->0->'what'->>'reference' FROM agentauth.audit_log l, agentauth.audit_event_fhir(l.seq) f
         WHERE l.patient = 'P1' AND l.event = 'access' LIMIT 1}), 'https://fhir.example.org/r4/Patient/P1',
	'... and the template before it stays in force');
done_testing();
