# No complete token secret reaches the server log, whatever the log settings
# and whichever code logs (issue "Guarantees" item 6): a failing
# begin_session under the default log_min_error_statement, log_statement =
# all with a literal, a bind parameter (extended protocol), the parameters of
# a failing portal, log_min_duration_statement, pgaudit, in the stderr,
# csvlog and jsonlog files.  Each way is first shown to log the statement at
# all (the redaction mark is there), so the test cannot pass by logging
# nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Find;

my $node = PostgreSQL::Test::Cluster->new('redact');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pgaudit,agentauth'
logging_collector = on
log_destination = 'stderr,csvlog,jsonlog'
log_directory = 'log'
log_min_error_statement = error
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION agentauth CASCADE;
	CREATE EXTENSION pgaudit;
	CREATE ROLE red_agent LOGIN;
});
my $agent = $node->safe_psql('postgres',
	q{SELECT agentauth.register_agent('red-agent', 'red_agent', 'Tests', '{TREAT}', '{lab:read}')});
sub new_secret
{
	return $node->safe_psql('postgres', qq{SELECT agentauth.issue_token('$agent', 'TREAT')});
}
my @secrets;

# everything the server has logged so far
sub all_logs
{
	my $text = slurp_file($node->logfile);
	find(sub { $text .= slurp_file($_) if -f $_ }, $node->data_dir . '/log');
	return $text;
}

sub check
{
	my ($what, $secret, $mark) = @_;
	# the collector writes asynchronously: wait for the mark to appear
	my $logs;
	for (1 .. 100)
	{
		$logs = all_logs();
		last if $logs =~ $mark;
		select(undef, undef, undef, 0.1);
	}
	like($logs, $mark, "$what: the statement was logged");
	my $body = substr($secret, 4);
	unlike($logs, qr/\Q$body\E/, "$what: without the secret");
	push @secrets, $secret;
}

# 1. default settings: a failing call is logged with its statement
my $s = new_secret();
$node->psql('postgres', qq{SET SESSION AUTHORIZATION red_agent; SELECT agentauth.begin_session('$s', NULL)});
check('a failing begin_session (NULL second argument)', $s,
	qr/STATEMENT:.*begin_session\('aat_\[redacted\]', NULL\)/);
$s = new_secret();
$node->psql('postgres', qq{SET SESSION AUTHORIZATION red_agent; SELECT agentauth.begin_session(E'$s\\n')});
check('a failing begin_session (trailing newline)', $s,
	qr/begin_session\(E'aat_\[redacted\]\\n'\)/);

# 2. log_statement = all, and pgaudit's session log
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET log_statement = 'all';
	ALTER SYSTEM SET pgaudit.log = 'all';
	ALTER SYSTEM SET log_min_duration_statement = 0;
	ALTER SYSTEM SET log_parameter_max_length_on_error = -1;
	SELECT pg_reload_conf()});
$s = new_secret();
$node->safe_psql('postgres', qq{SET SESSION AUTHORIZATION red_agent; SELECT agentauth.begin_session('$s') IS NOT NULL AS marker_literal});
check('log_statement = all, a literal', $s, qr/statement: SELECT agentauth.begin_session\('aat_\[redacted\]'\) IS NOT NULL AS marker_literal/);
check('pgaudit', $s, qr/AUDIT: SESSION.*aat_\[redacted\].*marker_literal/);

# log_min_duration_statement prints the statement when log_statement did not
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET log_statement = 'none';
	SELECT pg_reload_conf()});
$s = new_secret();
$node->safe_psql('postgres', qq{SET SESSION AUTHORIZATION red_agent; SELECT agentauth.begin_session('$s') IS NOT NULL AS marker_duration});
check('log_min_duration_statement', $s, qr/duration: .*statement: .*aat_\[redacted\].*marker_duration/);
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET log_statement = 'all';
	SELECT pg_reload_conf()});

# 3. a bind parameter (extended protocol, through pgbench)
$s = new_secret();
my $script = PostgreSQL::Test::Utils::tempdir . '/bind.sql';
open my $fh, '>', $script or die;
print $fh "SELECT agentauth.begin_session(:secret) IS NOT NULL AS marker_bind;\n";
close $fh;
$node->command_ok([ 'pgbench', '-n', '-M', 'extended', '-t', '1', '-U', 'red_agent',
	'-D', "secret=$s", '-f', $script, '-d', $node->connstr('postgres') ],
	'pgbench begins a session with the secret as a bind parameter');
check('a bind parameter', $s, qr/parameters: \$1 = 'aat_\[redacted\]'/);

# 4. the parameters of a failing portal (log_parameter_max_length_on_error)
$s = new_secret();
open $fh, '>', $script or die;
print $fh "SELECT agentauth.begin_session(:secret || 'x', NULL::boolean) AS marker_portal;\n";
close $fh;
$node->command_fails([ 'pgbench', '-n', '-M', 'extended', '-t', '1', '-U', 'red_agent',
	'-D', "secret=$s", '-f', $script, '-d', $node->connstr('postgres') ],
	'a failing bound call');
check('the parameters of a failing portal', $s, qr/portal with parameters: \$1 = 'aat_\[redacted\]'/);

# 5. the csvlog and jsonlog files have the statements too, redacted
my $csv = '';
find(sub { $csv .= slurp_file($_) if /\.(csv|json)$/ }, $node->data_dir . '/log');
like($csv, qr/aat_\[redacted\]/, 'csvlog and jsonlog have the redacted statements');
for my $secret (@secrets)
{
	my $body = substr($secret, 4);
	unlike($csv, qr/\Q$body\E/, 'no secret in csvlog or jsonlog');
}

# 6. patients (1.1, found by review): agentauth's own refusals named the
# patient in their message, and the failing statement, which names it too,
# was logged with them.  The message is logged (the mark), the patient and
# the statement are not; the client still gets the patient in DETAIL.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET log_statement = 'none';
	ALTER SYSTEM SET pgaudit.log = 'none';
	ALTER SYSTEM SET log_min_duration_statement = -1;
	ALTER SYSTEM SET log_error_verbosity = 'verbose';
	SELECT pg_reload_conf()});
$node->safe_psql('postgres', q{
	CREATE ROLE red_writer LOGIN;
	CREATE ROLE red_writer_d LOGIN;
	CREATE ROLE red_sub LOGIN;
	CREATE TABLE red_lab (patient_id text NOT NULL, result text);
	SELECT agentauth.protect_table('red_lab', 'patient_id', '{"result": "lab"}');
	GRANT SELECT, INSERT ON red_lab TO red_writer;
	SELECT agentauth.record_consent('REDPAT77', 'deny');
});
my $writer = $node->safe_psql('postgres',
	q{SELECT agentauth.register_agent('red-writer', 'red_writer', 'Tests', '{TREAT}', '{lab:read,lab:write}')});
my $wtok = $node->safe_psql('postgres', qq{SELECT agentauth.issue_token('$writer', 'TREAT')});
my ($ret, $out, $err) = $node->psql('postgres', qq{
	SET SESSION AUTHORIZATION red_writer;
	SELECT agentauth.begin_session('$wtok') IS NOT NULL;
	INSERT INTO red_lab VALUES ('REDPAT77', 'marker_refused_write');});
like($err, qr/permission denied to insert rows of a patient in table public.red_lab.*\n.*DETAIL:  Patient "REDPAT77"/,
	'the refused agent is told the patient');
($ret, $out, $err) = $node->psql('postgres', q{SELECT agentauth.record_consent(' REDPAT79', 'deny')});
like($err, qr/DETAIL:  Patient id " REDPAT79"/, 'the consent desk is told the id');
($ret, $out, $err) = $node->psql('postgres', q{SELECT agentauth.import_fhir_consent('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}, "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}], "patient": {"reference": "Group/REDPAT80"}, "provision": {"type": "deny"}}')});
like($err, qr/DETAIL:  The reference is "Group\/REDPAT80"/, 'the importer is told the reference');
# a delegation naming patients outside the delegating token's list
my $deleg = $node->safe_psql('postgres',
	q{SELECT agentauth.register_agent('red-deleg', 'red_writer_d', 'Tests', '{TREAT}', '{lab:read}', can_delegate => true)},
	);
my $sub = $node->safe_psql('postgres',
	q{SELECT agentauth.register_agent('red-sub', 'red_sub', 'Tests', '{TREAT}', '{lab:read}')});
my $dtok = $node->safe_psql('postgres', qq{SELECT agentauth.issue_token('$deleg', 'TREAT', patients => '{REDPAT81}')});
($ret, $out, $err) = $node->psql('postgres', qq{
	SET SESSION AUTHORIZATION red_writer_d;
	SELECT agentauth.begin_session('$dtok') IS NOT NULL;
	SELECT agentauth.delegate_token('$sub', patients => '{REDPAT82}');});
like($err, qr/DETAIL:  Not covered: \{REDPAT82\}/, 'the delegating agent is told the patient');
my $logs;
for (1 .. 100)
{
	$logs = all_logs();
	last if $logs =~ /patients are not within the delegating token/;
	select(undef, undef, undef, 0.1);
}
like($logs, qr/permission denied to insert rows of a patient in table public.red_lab/,
	'the refused write is logged');
like($logs, qr/Decision: .*The patient is named to the client only/,
	'with the decision, not the patient');
like($logs, qr/patient id begins or ends with a blank/, 'the refused id is logged');
like($logs, qr/cannot import FHIR Consent: expected a reference to a Patient/,
	'the refused Consent is logged');
like($logs, qr/patients are not within the delegating token/, 'the refused delegation is logged');
for my $patient ('REDPAT77', 'REDPAT79', 'REDPAT80', 'REDPAT82', 'marker_refused_write')
{
	unlike($logs, qr/$patient/, "no $patient in the server log");
}

$node->stop;
done_testing();
