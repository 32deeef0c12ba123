# A generated fuzz test (issue "Guarantees", hardening): every function of
# the extension's schema, from pg_proc, called with typical arguments, all
# NULLs, and each argument in turn set to odd values of its type (test/fuzz.sql:
# empty and 1 MB strings, unicode, control characters, deep and wide JSON,
# odd arrays, +-infinity, extreme numbers, OIDs of nothing), as a superuser
# and as an agent in a session.  No call may crash the backend, raise an
# internal error (class XX), or fail without a SQLSTATE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;

my $node = PostgreSQL::Test::Cluster->new('fuzz');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
log_min_messages = log
statement_timeout = '600s'
});
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION agentauth CASCADE;
	CREATE ROLE fz_agent LOGIN;
	CREATE TABLE public.fz_chart (id int PRIMARY KEY, patient_id text NOT NULL, lab text, hiv text);
	INSERT INTO public.fz_chart VALUES (1, 'FZ-P1', 'l1', 'h1'), (2, 'FZ-P2', 'l2', 'h2');
	SELECT agentauth.protect_table('public.fz_chart', 'patient_id', '{"id": "non_phi", "lab": "lab", "hiv": "hiv"}');
	GRANT SELECT, INSERT, UPDATE, DELETE ON public.fz_chart TO fz_agent;
	SELECT agentauth.record_consent('FZ-P1', 'permit', NULL, NULL, '{read,write}');
});
my $agent = $node->safe_psql('postgres', q{
	SELECT agentauth.register_agent('fz agent', 'fz_agent', 'fuzz', '{TREAT}',
		'{lab:read,lab:write,hiv:read}', can_break_glass => true)});
my $secret = $node->safe_psql('postgres', qq{SELECT agentauth.issue_token('$agent', 'TREAT')});
# some history for the functions that read it
$node->safe_psql('postgres', qq{
	SET SESSION AUTHORIZATION fz_agent;
	SELECT agentauth.begin_session('$secret');
	SELECT count(*) FROM public.fz_chart;
	SELECT agentauth.end_session();
});
my ($ret, $out, $err) = $node->psql('postgres', undef,
	extra_params => [ '-f', dirname(__FILE__) . '/../test/fuzz.sql' ], on_error_stop => 1);
is($ret, 0, 'the fuzz driver installs') or diag($err);
$node->safe_psql('postgres', q{GRANT SELECT ON fz_value, fz_calls TO PUBLIC});

my $ncalls = $node->safe_psql('postgres', 'SELECT count(*) FROM fz_calls');
my $nfuncs = $node->safe_psql('postgres', 'SELECT count(DISTINCT fn) FROM fz_calls');
cmp_ok($nfuncs, '>=', 80, "every function of the schema is called ($nfuncs)");
cmp_ok($ncalls, '>=', 1000, "with many arguments each ($ncalls calls)");

for my $as ('a superuser', 'an agent in a session')
{
	my $prefix = $as eq 'a superuser' ? '' : qq{
		SET SESSION AUTHORIZATION fz_agent;
		SELECT agentauth.begin_session('$secret') IS NOT NULL;};
	my ($r, $o, $e) = $node->psql('postgres', qq{$prefix
		SELECT fn || ' | ' || coalesce(sqlstate, '-') || ' | ' || coalesce(message, '-') || ' | ' || call
		  FROM fz_run('$secret')});
	is($r, 0, "as $as: the run completes (no backend crashed)")
	  or diag($e, "\n", last_call());
	my @lines = grep { !/^t$/ } split /\n/, $o;
	my @total = grep { /^total \| / } @lines;
	my @bad = grep { !/^total \| / } @lines;
	like($total[0] // '', qr/^total \| - \| - \| $ncalls$/, "as $as: all $ncalls calls ran");
	is(scalar(@bad), 0, "as $as: no internal error, timeout or error without SQLSTATE")
	  or diag(join("\n", @bad[0 .. ($#bad < 30 ? $#bad : 30)]));
}
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'the server still answers');
unlike(slurp_file($node->logfile), qr/terminated by signal|server process .* was terminated/,
	'no backend died');

sub last_call
{
	my @calls = slurp_file($node->logfile) =~ /LOG:  (fz call: [^\n]*)/g;
	return @calls ? "last call: $calls[-1]" : 'no call logged';
}

$node->stop;
done_testing();
