# agentauth.database in an encoding other than UTF-8 (found by review).
#
# LATIN1: the canonical encoding hashes text as UTF-8, and a record can be
# encoded outside a transaction (an abort, the backend's exit), where
# PostgreSQL looks no conversion up.  The record of an agent's refused
# write naming patient 'José', encoded at the abort, raised an error
# there: the backend exited (FATAL), and that record and the session's
# end were lost.  The conversion is now found while in a transaction and
# kept.  The export writes 'é' as \u00e9; all three verifiers agree.
#
# SQL_ASCII: bytes have no characters, and the verifiers hash them as
# they are; the export (1.1: \u escapes for everything beyond ASCII) must
# carry them so -- it failed on a byte 0xFF that an agent had written into
# a record, and exported nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $verify = "$ENV{TESTDIR}/tools/aa_verify";
ok(-x $verify, 'tools/aa_verify is built') or BAIL_OUT("no $verify");

sub fixture
{
	my ($node, $db, $patient_sql, $recorded_sql) = @_;
	$recorded_sql //= $patient_sql;
	$node->safe_psql($db, q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE t18_agent LOGIN;
CREATE SCHEMA clinic;
CREATE TABLE clinic.labs (id int PRIMARY KEY, patient_id text NOT NULL, code text);
INSERT INTO clinic.labs VALUES (1, 'P001', '718-7');
SELECT agentauth.protect_table('clinic.labs', 'patient_id', '{"id": "non_phi", "code": "lab"}');
GRANT USAGE ON SCHEMA clinic TO t18_agent;
GRANT SELECT, INSERT ON clinic.labs TO t18_agent;
SELECT agentauth.register_agent('t18-agent', 't18_agent', 'Encoding AI', '{TREAT}', '{lab:read,lab:write}');
SELECT agentauth.record_consent('P001', 'permit', '{TREAT}', '{lab}');
});
	my $secret = $node->safe_psql($db,
		"SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 't18-agent'), 'TREAT')");
	# the refused write names the patient; the backend goes on
	my ($r, $o, $e) = $node->psql($db, qq{
SET SESSION AUTHORIZATION t18_agent;
SELECT agentauth.begin_session('$secret') IS NOT NULL;
INSERT INTO clinic.labs VALUES (51, $patient_sql, 'x');
SELECT 'alive';
}, on_error_stop => 0);
	like($e, qr/permission denied to insert rows of a patient in table clinic.labs/, "$db: the write is refused");
	like($e, qr/DETAIL:  Patient "/, "$db: ... naming the patient to the client");
	like($o, qr/^alive$/m, "$db: the backend goes on after it");
	unlike($e, qr/FATAL|encoding conversion/, "$db: no error at the abort");
	$node->poll_query_until($db, qq{
SELECT count(*) = 1 FROM agentauth.audit_log WHERE event = 'denied' AND patient = $recorded_sql})
	  or fail("$db: the denied write's record is in the log");
	$node->poll_query_until($db, q{
SELECT count(*) = 1 FROM agentauth.audit_log WHERE event = 'session_end' AND principal_name = 't18-agent'})
	  or fail("$db: the session's end is in the log");
	is($node->safe_psql($db, 'SELECT ok FROM agentauth.verify_audit()'), 't', "$db: verify_audit");
	my $export = $node->safe_psql($db, 'SELECT * FROM agentauth.export_audit()');
	my $path = PostgreSQL::Test::Utils::tempdir() . "/$db.jsonl";
	open my $fh, '>', $path or die;
	print $fh $export, "\n";
	close $fh;
	my ($stdout, $stderr);
	IPC::Run::run([ $verify, $path ], '>', \$stdout, '2>', \$stderr);
	is($? >> 8, 0, "$db: aa_verify passes the export") or diag($stdout . $stderr);
	return $export;
}

# a cluster whose agentauth.database is $db, in $encoding
sub encoding_node
{
	my ($name, $db, $encoding) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.database = '$db'
});
	$node->start;
	$node->safe_psql('postgres',
		"CREATE DATABASE $db ENCODING '$encoding' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
	return $node;
}

# LATIN1
my $lat = encoding_node('enc_latin1', 'lat', 'LATIN1');
my $export = fixture($lat, 'lat', q{'Jos' || chr(233)});
like($export, qr/"patient" : "Jos\\u00e9"/, 'lat: the export writes the patient as \u00e9');
is($lat->safe_psql('lat', 'SELECT ok FROM agentauth.verify_audit_sql()'), 't', 'lat: verify_audit_sql agrees');
$lat->stop;

# SQL_ASCII
my $asc = encoding_node('enc_sql_ascii', 'sqlascii', 'SQL_ASCII');
$export = fixture($asc, 'sqlascii', q{E'P\\xff9'});
like($export, qr/"patient" : "P\xff9"/, 'sqlascii: the export carries the byte as it is');
$asc->stop;

# WIN1252: a byte the encoding has and Unicode has not (0x81) is recorded
# as \x81 (1.1, found by review: the record failed, and was lost)
my $win = encoding_node('enc_win1252', 'win', 'WIN1252');
$export = fixture($win, 'win', q{E'Q\\x81'}, q{'Q\x81'});
like($export, qr/"patient" : "Q\\\\x81"/, 'win: the export has the byte written out');
is($win->safe_psql('win', 'SELECT ok FROM agentauth.verify_audit_sql()'), 't', 'win: verify_audit_sql agrees');
$win->stop;

done_testing();
