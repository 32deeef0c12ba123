# Dump and restore of protected tables (issue "Real clinical schemas" item
# 5).  pg_dump writes a table's labels in the pre-data section and the
# extension's configuration data -- the classes a site added to
# agentauth.data_class among them -- in the data section, later.  A restore
# keeps every label (site classes too) and the protection, and an agent sees
# the same rows after it as before: with pg_dump -Fc | pg_restore, with
# --schema-only then --data-only, and with a plain-format script through
# psql.  A table whose labels are left out or refused fails closed: no
# session reads it, a superuser's read is recorded as privileged_access.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;

my $ehr = "$FindBin::RealBin/../examples/ehr";

my $src = PostgreSQL::Test::Cluster->new('src');
$src->init;
$src->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$src->start;

$src->safe_psql('postgres', q{
	CREATE EXTENSION agentauth CASCADE;
	-- the site's own classes: one plain, one sensitive
	INSERT INTO agentauth.data_class (name, description, sensitive) VALUES
	    ('wound_photo', 'photographs of wounds', false),
	    ('psychotherapy', 'psychotherapy notes', true);
	INSERT INTO agentauth.purpose (code, display) VALUES ('SITEQA', 'quality review');
	CREATE ROLE dr_agent LOGIN;

	CREATE SCHEMA clinic;
	CREATE TABLE clinic.labs (id int PRIMARY KEY, patient_id text NOT NULL,
	                          code text, value numeric, photo text);
	INSERT INTO clinic.labs VALUES
	    (1, 'P001', '718-7', 13.5, 'p1a'), (2, 'P001', '2345-7', 98, 'p1b'),
	    (3, 'P002', '718-7', 11.0, 'p2'), (4, 'P003', '718-7', 12.2, 'p3');
	GRANT USAGE ON SCHEMA clinic TO dr_agent;
	GRANT SELECT ON clinic.labs TO dr_agent;
});
for my $f ('schema.sql', 'generate.sql')
{
	$src->command_ok(
		[ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', 'patients=100',
		  '-d', $src->connstr('postgres'), '-f', "$ehr/$f" ],
		"examples/ehr/$f loads");
}
$src->safe_psql('postgres', q{
	GRANT USAGE ON SCHEMA ehr TO dr_agent;
	GRANT SELECT ON ALL TABLES IN SCHEMA ehr TO dr_agent;
	SELECT agentauth.protect_table('clinic.labs', 'patient_id',
	    '{"id": "non_phi", "code": "lab", "value": "lab", "photo": "wound_photo"}');
	SELECT agentauth.protect_table('ehr.patients', 'patient_id',
	    '{"mrn": "identifiers", "phone": "contact"}', default_class => 'demographics');
	SELECT agentauth.protect_table('ehr.lab_results', 'patient_id',
	    '{"result_id": "non_phi"}', default_class => 'lab');
	SELECT agentauth.protect_table('ehr.notes', 'patient_id',
	    '{"body": "psychotherapy", "note_id": "non_phi"}', default_class => 'clinical_note');
	SELECT agentauth.protect_table('ehr.hiv_tests', 'patient_id', '{}', default_class => 'hiv');
	SELECT agentauth.require_approval('ehr.lab_results', '{insert}');

	SELECT agentauth.register_agent('dr-agent', 'dr_agent', 'Tests', '{TREAT,SITEQA}',
	    '{lab:read,wound_photo:read,demographics:read,identifiers:read,clinical_note:read,psychotherapy:read}',
	    '1 day');
	-- clinic.labs: consents, and the default below; P003 refuses
	SELECT agentauth.record_consent('P001', 'permit', '{TREAT}', '{lab,wound_photo}');
	SELECT agentauth.record_consent('P002', 'permit', '{TREAT}', '{lab}');
	SELECT agentauth.record_consent('P003', 'deny');
	-- ehr: a default for every class that is not sensitive, two patients
	-- who refuse, and the sensitive site class by consent only
	SELECT agentauth.set_default_decision('TREAT', '*', 'permit');
	SELECT agentauth.record_consent('3', 'deny');
	SELECT agentauth.record_consent('7', 'deny');
	SELECT agentauth.record_consent(i::text, 'permit', '{TREAT}', '{psychotherapy}')
	  FROM generate_series(1, 5) i;
});
my $secret = $src->safe_psql('postgres', q{
	SELECT agentauth.issue_token(id, 'TREAT', ttl => '1 day')
	  FROM agentauth.principals WHERE name = 'dr-agent'});

# what the agent reads, statement by statement
my @queries = (
	'SELECT id, patient_id, code, value FROM clinic.labs ORDER BY id',
	'SELECT id, photo FROM clinic.labs ORDER BY id',
	'SELECT patient_id, count(*), sum(value) FROM ehr.lab_results GROUP BY 1 ORDER BY 1',
	'SELECT patient_id, mrn, family_name FROM ehr.patients ORDER BY 1',
	'SELECT count(*) FROM ehr.patients p JOIN ehr.lab_results l USING (patient_id)',
	'SELECT patient_id, note_id, body FROM ehr.notes ORDER BY note_id',
	'SELECT count(*) FROM ehr.lab_results',
);
sub agent_view
{
	my ($node) = @_;
	my @out;
	for my $q (@queries)
	{
		my ($ret, $out, $err) = $node->psql('postgres',
			"SELECT agentauth.begin_session('$secret') IS NOT NULL; $q",
			extra_params => [ '-U', 'dr_agent' ]);
		push @out, "-- $q\n" . ($ret == 0 ? $out : "ERROR: " . ($err =~ /ERROR:\s+([^\n]*)/ ? $1 : $err));
	}
	return join("\n", @out);
}

my $labels_sql = q{
	SELECT s.objoid::regclass || ':' || s.objsubid || ':' || s.label
	  FROM pg_seclabel s
	 WHERE s.provider = 'agentauth' ORDER BY s.objoid::regclass::text, s.objsubid};
my $protection_sql = q{
	SELECT c.oid::regclass || ':' || c.relrowsecurity || ':' || c.relforcerowsecurity || ':' ||
	       (SELECT string_agg(t.tgname, ',' ORDER BY t.tgname) FROM pg_trigger t
	         WHERE t.tgrelid = c.oid AND t.tgname LIKE 'agentauth%')
	  FROM pg_class c
	 WHERE c.oid IN ('clinic.labs'::regclass, 'ehr.patients'::regclass, 'ehr.lab_results'::regclass,
	                 'ehr.notes'::regclass, 'ehr.hiv_tests'::regclass)
	 ORDER BY 1};
my $columns_sql = q{SELECT * FROM agentauth.protected_columns ORDER BY relation::text, column_name};

# the rows of one statement in an agent_view() output
sub rows_of
{
	my ($view, $q) = @_;
	my ($rows) = $view =~ /^-- \Q$q\E\n(.*?)(?:\n-- |\z)/ms;
	return $rows;
}

my $before = agent_view($src);
my $labels = $src->safe_psql('postgres', $labels_sql);
my $protection = $src->safe_psql('postgres', $protection_sql);
my $columns = $src->safe_psql('postgres', $columns_sql);
is(rows_of($before, $queries[1]), "t\n1|p1a\n2|p1b\n3|p2",
	'the agent reads a site-classed column, not the rows of a patient who refused');
like(rows_of($before, $queries[2]), qr/^t\n1\|30\|/, 'the agent reads EHR rows under the default');
unlike(rows_of($before, $queries[2]), qr/^(3|7)\|/m, 'not those of a patient who refused');
my $notes = rows_of($before, $queries[5]);
ok($notes =~ /^1\|/m && $notes =~ /^5\|/m && $notes !~ /^(3|[6-9]|\d\d+)\|/m,
	'the sensitive site class only by consent (patients 1..5), not by the * default');
like($labels, qr/clinic.labs:5:wound_photo/, 'the site class is a label');

# a superuser's read raises an alert: the dump carries the alert log
$src->safe_psql('postgres', 'SELECT count(*) FROM clinic.labs');
$src->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM agentauth.alert_log WHERE event = 'privileged_access'});
my $src_alerts = $src->safe_psql('postgres', 'SELECT max(id) FROM agentauth.alert_log');

# a feed to the audit repository has a position in this log's chain: it
# is not dumped (the restored database starts a chain of its own; 1.1
# before this: the old position carried over, and a purge followed it)
$src->safe_psql('postgres', q{SELECT agentauth.feed_delivered('t41 feed', max(seq)) FROM agentauth.audit_log});

my $dir = PostgreSQL::Test::Utils::tempdir;
$src->run_log([ 'pg_dumpall', '--roles-only', '-f', "$dir/roles.sql", '-d', $src->connstr('postgres') ]);
$src->run_log([ 'pg_dump', '-Fc', '-f', "$dir/db.dump", '-d', $src->connstr('postgres') ]);
$src->run_log([ 'pg_dump', '-f', "$dir/db.sql", '-d', $src->connstr('postgres') ]);
like($src->safe_psql('postgres', q{
	SELECT count(*) FROM agentauth.audit_log
	 WHERE event = 'privileged_access' AND relation = 'clinic.labs'}),
	qr/^[1-9]/, 'the dump itself read the protected table as privileged_access');

sub new_target
{
	my ($name) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
	$node->start;
	$node->psql('postgres', undef, extra_params => [ '-f', "$dir/roles.sql" ]);
	return $node;
}

sub privileged_reads
{
	my ($node) = @_;
	return $node->safe_psql('postgres', q{
		SELECT count(*) FROM agentauth.audit_log
		 WHERE event = 'privileged_access' AND relation = 'clinic.labs'
		   AND action = 'read' AND detail->>'reason' = 'superuser'});
}

# the restored database says and does what the old one did
sub check_restored
{
	my ($node, $how) = @_;
	is($node->safe_psql('postgres', $labels_sql), $labels, "$how: every label restored");
	is($node->safe_psql('postgres', $protection_sql), $protection,
		"$how: row security enabled and forced, the triggers there");
	is($node->safe_psql('postgres', $columns_sql), $columns,
		"$how: the classification, site classes and their sensitivity included");
	is(agent_view($node), $before, "$how: the agent sees the same rows as before");
	my $n = privileged_reads($node);
	is($node->safe_psql('postgres', 'SELECT count(*) FROM clinic.labs'), '4',
		"$how: a superuser reads the table");
	is(privileged_reads($node), $n + 1, "$how: recorded as privileged_access");
	my ($ret, $out, $err) = $node->psql('postgres', 'SELECT count(*) FROM clinic.labs',
		extra_params => [ '-U', 'dr_agent' ]);
	like($err, qr/no agentauth session/, "$how: no session, no rows");
	# the restore's own statements on protected tables raised alerts, past
	# the restored ones
	is($node->safe_psql('postgres', "SELECT count(*) FROM agentauth.alert_log WHERE id <= $src_alerts"),
		$src_alerts, "$how: the alert log restored");
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) > 0 FROM agentauth.alert_log
		 WHERE event = 'privileged_access' AND id > $src_alerts}),
		"$how: the restore's statements raised alerts of their own");
	unlike(slurp_file($node->logfile), qr/could not raise alerts/, "$how: no alert lost");
}

# pg_dump -Fc | pg_restore
{
	my $node = new_target('fc');
	$node->command_ok([ 'pg_restore', '-d', $node->connstr('postgres'), "$dir/db.dump" ],
		'-Fc: pg_restore succeeds');
	check_restored($node, '-Fc');
	is($node->safe_psql('postgres', 'SELECT count(*) FROM agentauth.audit_feeds'), '0',
		'-Fc: no feed position of the old log is restored');
	# the restored principals' logins are bound again (1.1, found by
	# review: a login dropped in the new cluster left an oid that a later
	# restore gave to another role)
	my ($dr, $do, $de) = $node->psql('postgres', 'DROP ROLE dr_agent');
	isnt($dr, 0, '-Fc: the restored principal\'s login cannot be dropped');
	like($de, qr/privileges for table agentauth.principal/, '-Fc: ... naming the principal table');
	# a label naming no row of data_class (as in a restore before the
	# data): the column is unclassified, never covered by the * default
	$node->safe_psql('postgres', q{DELETE FROM agentauth.data_class WHERE name = 'psychotherapy'});
	like(rows_of(agent_view($node), $queries[5]),
		qr/^ERROR: permission denied to read columns of protected table ehr.notes/,
		'a class that is no row of data_class: its column is unclassified');
	$node->safe_psql('postgres', q{
		INSERT INTO agentauth.data_class VALUES ('psychotherapy', 'psychotherapy notes', true)});
	is(agent_view($node), $before, 'the class back: the same rows as before');
	$node->stop;
}

# --schema-only: the labels name a class that is not there yet; the
# table is protected all the same
{
	my $node = new_target('schema');
	$node->command_ok([ 'pg_restore', '--schema-only', '-d', $node->connstr('postgres'), "$dir/db.dump" ],
		'--schema-only restores');
	is($node->safe_psql('postgres', $labels_sql), $labels,
		'--schema-only: every label, also those naming a class not there yet');
	is($node->safe_psql('postgres', q{SELECT count(*) FROM agentauth.data_class WHERE name = 'wound_photo'}),
		'0', '--schema-only: the class is not there');
	is($node->safe_psql('postgres', $protection_sql), $protection, '--schema-only: the protection');
	my $n = privileged_reads($node);
	$node->safe_psql('postgres', 'SELECT count(*) FROM clinic.labs');
	is(privileged_reads($node), $n + 1, '--schema-only: a superuser read is recorded');
	$node->stop;
}

# the schema, then the data, then indexes and constraints (--data-only
# alone cannot order the tables by their foreign keys)
{
	my $node = new_target('split');
	for my $section ('pre-data', 'data', 'post-data')
	{
		$node->command_ok([ 'pg_restore', "--section=$section", '-d', $node->connstr('postgres'), "$dir/db.dump" ],
			"--section=$section restores");
		if ($section eq 'pre-data')
		{
			is($node->safe_psql('postgres', $labels_sql), $labels,
				'pre-data: every label, site classes included');
		}
	}
	check_restored($node, 'in sections');
	$node->stop;
}

# plain format through psql
{
	my $node = new_target('plain');
	my ($ret, $out, $err) = $node->psql('postgres', undef,
		extra_params => [ '-f', "$dir/db.sql" ], on_error_stop => 1);
	is($ret, 0, 'plain: the script runs without an error') or diag($err);
	check_restored($node, 'plain');
	$node->stop;
}

# Labels left out: the tables are protected with an incomplete
# classification until protect_table() classifies them again.
{
	my $node = new_target('nolabels');
	$node->command_ok([ 'pg_restore', '--no-security-labels', '-d', $node->connstr('postgres'), "$dir/db.dump" ],
		'--no-security-labels restores');
	is($node->safe_psql('postgres', $labels_sql), '', 'no labels');
	my $view = agent_view($node);
	like($view, qr/SELECT id, patient_id, code, value FROM clinic.labs ORDER BY id\nERROR: permission denied to read columns of protected table clinic.labs/,
		'no labels: the agent reads no column');
	like(rows_of($view, $queries[4]), qr/^ERROR: permission denied/, 'no labels: not even the patient column');
	like(rows_of($view, $queries[6]), qr/^ERROR: permission denied/,
		'no labels: nor counts its rows (refused: no class of the table in scope)');
	my $n = privileged_reads($node);
	is($node->safe_psql('postgres', 'SELECT count(*) FROM clinic.labs'), '4',
		'no labels: a superuser reads the table');
	is(privileged_reads($node), $n + 1, 'no labels: recorded as privileged_access');
	my ($ret, $out, $err) = $node->psql('postgres', 'ALTER TABLE clinic.labs NO FORCE ROW LEVEL SECURITY');
	like($err, qr/cannot stop forcing row level security on protected table clinic.labs/,
		'no labels: the DDL guard holds, for a superuser too');
	# an incomplete table can be unprotected too
	$node->safe_psql('postgres', q{SELECT agentauth.unprotect_table('ehr.hiv_tests', 'test')});
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM pg_trigger WHERE tgrelid = 'ehr.hiv_tests'::regclass AND tgname LIKE 'agentauth%'}),
		'0', 'unprotect_table() ends the protection of an incomplete table');
	# the admin classifies again: the same rows as before
	$node->safe_psql('postgres', q{
		SELECT agentauth.protect_table('clinic.labs', 'patient_id',
		    '{"id": "non_phi", "code": "lab", "value": "lab", "photo": "wound_photo"}');
		SELECT agentauth.protect_table('ehr.patients', 'patient_id',
		    '{"mrn": "identifiers", "phone": "contact"}', default_class => 'demographics');
		SELECT agentauth.protect_table('ehr.lab_results', 'patient_id',
		    '{"result_id": "non_phi"}', default_class => 'lab');
		SELECT agentauth.protect_table('ehr.notes', 'patient_id',
		    '{"body": "psychotherapy", "note_id": "non_phi"}', default_class => 'clinical_note');
		SELECT agentauth.protect_table('ehr.hiv_tests', 'patient_id', '{}', default_class => 'hiv');
		SELECT agentauth.require_approval('ehr.lab_results', '{insert}');
	});
	is($node->safe_psql('postgres', $labels_sql), $labels, 'protect_table() again: the labels');
	is(agent_view($node), $before, 'protect_table() again: the agent sees the same rows');
	$node->stop;
}

# A label refused (here: the restore asks for row security on, so the
# provider does not wait for the site's classes): the table's labels go as
# one command, all refused; the table fails closed, the others restore.
{
	my $node = new_target('rowsec');
	$node->run_log([ 'pg_restore', '--enable-row-security', '-d', $node->connstr('postgres'), "$dir/db.dump" ]);
	my $got = $node->safe_psql('postgres', $labels_sql);
	unlike($got, qr/clinic.labs/, 'refused: no label of the site-classed table');
	like($got, qr/ehr.lab_results:0:patient=patient_id;approve=insert/, 'the other tables keep theirs');
	my $view = agent_view($node);
	like($view, qr/FROM clinic.labs ORDER BY id\nERROR: permission denied to read columns of protected table clinic.labs/,
		'refused: the agent reads nothing of it');
	is(rows_of($view, $queries[2]), rows_of($before, $queries[2]), 'and the other tables as before');
	my $n = privileged_reads($node);
	$node->safe_psql('postgres', 'SELECT count(*) FROM clinic.labs');
	is(privileged_reads($node), $n + 1, 'refused: a superuser read is recorded');
	$node->stop;
}

$src->stop;
done_testing();
