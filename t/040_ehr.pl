# The EHR example (examples/ehr), classified through protected schemas
# (issue 13, item 3): an agent in a session reads exactly the consenting
# patients' rows across tables and joins (compared with reference queries a
# superuser runs over the consent list); the derived table rebuilt by DROP
# and CREATE TABLE AS is protected again; no session, no rows.
use strict;
use warnings;
use File::Basename;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $ehr = dirname(__FILE__) . '/../examples/ehr';

my $node = PostgreSQL::Test::Cluster->new('ehr');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');

sub run_file
{
	my ($file, @vars) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', undef,
		extra_params => [ '-v', 'ON_ERROR_STOP=1', @vars, '-f', "$ehr/$file" ]);
	is($ret, 0, "$file runs") or diag($err);
}

run_file('schema.sql');
run_file('generate.sql', '-v', 'patients=200');
run_file('derived.sql');

# ehr.vitals is partitioned by month: protected through its parent
my $vitals = 1;

run_file('classify.sql');

is($node->safe_psql('postgres', q{
	SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_class c
	 WHERE c.relnamespace IN ('ehr'::regnamespace, 'derived'::regnamespace)
	   AND c.relkind IN ('r', 'p')
	   AND agentauth._table_label(c.oid) IS NULL}),
	'', 'every table of ehr and derived is protected');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'ref'::regnamespace
	   AND agentauth._table_label(c.oid) IS NOT NULL}),
	'0', 'ref is not');

# the agent; the derived schema's default privileges reach rebuilt tables
my $agent = $node->safe_psql('postgres', q{
	CREATE ROLE ehr_agent LOGIN;
	CREATE ROLE ehr_other LOGIN;
	GRANT USAGE ON SCHEMA ehr, derived, ref TO ehr_agent, ehr_other;
	GRANT SELECT ON ALL TABLES IN SCHEMA ehr, derived, ref TO ehr_agent, ehr_other;
	ALTER DEFAULT PRIVILEGES IN SCHEMA derived GRANT SELECT ON TABLES TO ehr_agent, ehr_other;
	SELECT agentauth.register_agent('ehr-agent', 'ehr_agent', 'Clinical AI', '{TREATDS}',
		'{demographics:read,identifiers:read,encounter:read,diagnosis:read,lab:read,vital_signs:read,medication:read}');
});
my $tok = $node->safe_psql('postgres',
	"SELECT agentauth.issue_token('$agent', 'TREATDS')");
# every third patient consents; patient 6 withdraws again
$node->safe_psql('postgres', q{
	SELECT agentauth.record_consent(i::text, 'permit', '{TREATDS}') FROM generate_series(3, 200, 3) i;
	SELECT agentauth.withdraw_consent(id, 'changed their mind') FROM agentauth.consent WHERE patient = '6';
	CREATE TABLE public.consenting AS
	SELECT patient::int AS patient_id FROM agentauth.consent
	 WHERE decision = 'permit' AND withdrawn_at IS NULL;
});
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.consenting'), '65', '65 patients consent');

sub as_agent
{
	my ($sql) = @_;
	return $node->safe_psql('postgres',
		"SELECT agentauth.begin_session('$tok') \\g /dev/null\n$sql",
		extra_params => [ '-U', 'ehr_agent' ]);
}

# each query as the agent, and its reference as a superuser over the consent list
my @checks = (
	[ 'patients',
	  'SELECT count(*), sum(patient_id), min(birth_date), max(mrn) FROM ehr.patients',
	  'SELECT count(*), sum(patient_id), min(birth_date), max(mrn) FROM ehr.patients
	    WHERE patient_id IN (SELECT patient_id FROM public.consenting)' ],
	[ 'labs per patient (join)',
	  'SELECT p.patient_id, p.family_name, count(*), sum(l.value)
	     FROM ehr.patients p JOIN ehr.lab_results l USING (patient_id)
	    GROUP BY 1, 2 ORDER BY 1',
	  'SELECT p.patient_id, p.family_name, count(*), sum(l.value)
	     FROM ehr.patients p JOIN ehr.lab_results l USING (patient_id)
	    WHERE p.patient_id IN (SELECT patient_id FROM public.consenting)
	    GROUP BY 1, 2 ORDER BY 1' ],
	[ 'diagnoses by encounter kind (three tables)',
	  'SELECT e.kind, c.name, count(*) FROM ehr.encounters e
	     JOIN ehr.diagnoses d ON d.encounter_id = e.encounter_id
	     JOIN ref.diagnosis_codes c ON c.icd10 = d.icd10
	    GROUP BY 1, 2 ORDER BY 1, 2',
	  'SELECT e.kind, c.name, count(*) FROM ehr.encounters e
	     JOIN ehr.diagnoses d ON d.encounter_id = e.encounter_id
	     JOIN ref.diagnosis_codes c ON c.icd10 = d.icd10
	    WHERE e.patient_id IN (SELECT patient_id FROM public.consenting)
	      AND d.patient_id IN (SELECT patient_id FROM public.consenting)
	    GROUP BY 1, 2 ORDER BY 1, 2' ],
	[ 'medications',
	  'SELECT drug, count(DISTINCT patient_id), count(*) FROM ehr.medications GROUP BY 1 ORDER BY 1',
	  'SELECT drug, count(DISTINCT patient_id), count(*) FROM ehr.medications
	    WHERE patient_id IN (SELECT patient_id FROM public.consenting) GROUP BY 1 ORDER BY 1' ],
	[ 'derived table',
	  'SELECT count(*), sum(results), sum(max_creatinine) FROM derived.kidney_function',
	  'SELECT count(*), sum(results), sum(max_creatinine) FROM derived.kidney_function
	    WHERE patient_id IN (SELECT patient_id FROM public.consenting)' ]);
push @checks,
  [ 'vitals (partitioned)',
	"SELECT count(*), sum(heart_rate) FROM ehr.vitals WHERE taken_at >= '2025-03-01' AND taken_at < '2025-05-01'",
	"SELECT count(*), sum(heart_rate) FROM ehr.vitals WHERE taken_at >= '2025-03-01' AND taken_at < '2025-05-01'
	    AND patient_id IN (SELECT patient_id FROM public.consenting)" ]
  if $vitals;

for my $c (@checks)
{
	my ($name, $q, $ref) = @$c;
	my $want = $node->safe_psql('postgres', $ref);
	my $all = $node->safe_psql('postgres', $q);
	isnt($want, $all, "$name: the consent list makes a difference");
	is(as_agent($q), $want, "$name: the agent reads exactly the consenting patients");
}

# a sensitive class is not in the agent's scopes
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT agentauth.begin_session('$tok') \\g /dev/null\nSELECT result FROM ehr.hiv_tests",
	extra_params => [ '-U', 'ehr_agent' ]);
like($err, qr/not in scope|scope/, 'hiv_tests.result is refused (sensitive, not in scope)');
($ret, $out, $err) = $node->psql('postgres',
	"SELECT agentauth.begin_session('$tok') \\g /dev/null\nSELECT count(*) FROM ehr.hiv_tests",
	extra_params => [ '-U', 'ehr_agent' ]);
like($err, qr/no class of the table in read scope/,
	'nor are its rows counted: refused, no class of the table in scope (before: 0, and a denial per patient)');

# a row's class is what the row is (an outside review of 1.1): every column
# of a table of one kind of data has that class, its encounter_id too, so
# a patient who refuses lab data but permits encounters shows no lab row
# to a count or an encounter link ...
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT relation::text || '=' || data_class, ',' ORDER BY relation::text || '=' || data_class)
	  FROM agentauth.protected_columns WHERE column_name = 'encounter_id'}),
	'ehr.billing=billing,ehr.diagnoses=diagnosis,ehr.encounters=encounter,ehr.lab_results=lab,'
	  . 'ehr.medications=medication,ehr.notes=clinical_note',
	'encounter_id has the class of its table\'s rows');
$node->safe_psql('postgres', q{
	SELECT agentauth.record_consent(10, 'permit', '{TREATDS}');
	SELECT agentauth.record_consent(10, 'deny', '{TREATDS}', '{lab}');});
is(as_agent('SELECT count(*), count(encounter_id) FROM ehr.lab_results WHERE patient_id = 10'), '0|0',
	'a patient who refused lab data: no lab row counted or linked to an encounter');
is(as_agent('SELECT count(*) > 0 FROM ehr.encounters WHERE patient_id = 10'), 't',
	'... though its encounters are read');
# ... and an agent without lab in scope cannot reach lab_results through it
my $enc_agent = $node->safe_psql('postgres', q{
	CREATE ROLE ehr_sched LOGIN;
	GRANT USAGE ON SCHEMA ehr TO ehr_sched;
	GRANT SELECT ON ALL TABLES IN SCHEMA ehr TO ehr_sched;
	SELECT agentauth.register_agent('ehr-encounters', 'ehr_sched', 'Scheduling AI', '{TREATDS}',
		'{encounter:read}')});
my $enc_tok = $node->safe_psql('postgres', "SELECT agentauth.issue_token('$enc_agent', 'TREATDS')");
($ret, $out, $err) = $node->psql('postgres',
	"SELECT agentauth.begin_session('$enc_tok') \\g /dev/null\nSELECT count(DISTINCT encounter_id) FROM ehr.lab_results",
	extra_params => [ '-U', 'ehr_sched' ]);
like($err, qr/scope/, 'an agent with encounter scope alone cannot list which encounters had labs');
# sensitive facts are kept in tables of their own: the general tables hold
# no HIV or depression diagnosis and no CD4 count (which their classes
# would show to any agent with diagnosis or lab in scope)
is($node->safe_psql('postgres', q{
	SELECT (SELECT count(*) FROM ehr.diagnoses WHERE icd10 ~ '^(B20|F3[2-3]|F1[0-9])')
	     + (SELECT count(*) FROM ehr.lab_results WHERE loinc = '24467-3')}), '0',
	'no sensitive fact in a table classed as ordinary data');
$node->safe_psql('postgres', q{
	DELETE FROM agentauth.consent WHERE patient = '10';});

# the rebuild: DROP and CREATE TABLE AS leave a protected table
my $old_oid = $node->safe_psql('postgres', q{SELECT 'derived.kidney_function'::regclass::oid});
run_file('derived.sql');
my $new_oid = $node->safe_psql('postgres', q{SELECT 'derived.kidney_function'::regclass::oid});
isnt($new_oid, $old_oid, 'derived.sql made a new table');
is($node->safe_psql('postgres', q{
	SELECT agentauth._table_label('derived.kidney_function') || ' '
	       || relrowsecurity || relforcerowsecurity
	  FROM pg_class WHERE oid = 'derived.kidney_function'::regclass}),
	'patient=patient_id truetrue', 'the rebuilt table is protected, row security forced');
is($node->safe_psql('postgres', q{
	SELECT string_agg(column_name || '=' || coalesce(data_class, '-'), ',' ORDER BY column_name)
	  FROM agentauth.protected_columns WHERE relation = 'derived.kidney_function'::regclass}),
	'egfr_below_60=lab,max_creatinine=lab,min_egfr=lab,patient_id=-,results=lab',
	'with the schema\'s classes');
my ($name, $q, $ref) = @{ $checks[4] };
is(as_agent($q), $node->safe_psql('postgres', $ref),
	'the agent reads the rebuilt table for the consenting patients only');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM agentauth.audit_log
	 WHERE event = 'table_protected' AND relation = 'derived.kidney_function'}),
	'2', 'both protections of the derived table are recorded');

# no session: refused, for the agent and for a role that is no principal
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM ehr.patients',
	extra_params => [ '-U', 'ehr_agent' ]);
like($err, qr/no agentauth session/, 'no session: ehr.patients refused');
($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM derived.kidney_function',
	extra_params => [ '-U', 'ehr_other' ]);
like($err, qr/no agentauth session/, 'a non-principal: the rebuilt table refused');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM agentauth.audit_log
	 WHERE event = 'unregistered_access' AND db_role = 'ehr_other'
	   AND relation = 'derived.kidney_function'}),
	'1', 'and recorded');

$node->stop;
done_testing();
