# The README's Quick start runs verbatim: its SQL blocks, pasted in order
# into one psql session as a superuser in agentauth.database, do what the
# text says (the statements it marks "fails" fail with the SQLSTATE it
# names, and nothing else fails); then its shell block verifies an export
# with aa_verify.  Keeps the README from drifting.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Basename;

my $readme = slurp_file(dirname(__FILE__) . '/../README.md');
my ($quick) = $readme =~ /<!-- section: quickstart -->(.*?)<!-- section: /s;
ok(defined $quick, 'the README has a Quick start');
my @sql = $quick =~ /```sql\n(.*?)```/gs;
my @sh = $quick =~ /```sh\n(.*?)```/gs;
cmp_ok(scalar(@sql), '>=', 8, 'with its SQL blocks');
my $script = join("\n", @sql);
my @expect = map { /\b(\d{5}|[0-9A-Z]{5})\)?\s*$/ ? $1 : () } grep { /-- fails/ } split /\n/, $script;
cmp_ok(scalar(@expect), '>=', 2, 'and the failures it announces (' . join(', ', @expect) . ')');

my $node = PostgreSQL::Test::Cluster->new('readme');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.database = 'clinical'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE clinical');

my ($ret, $out, $err) = $node->psql('clinical', $script, on_error_stop => 0,
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
my @got = $err =~ /ERROR:  ([0-9A-Z]{5}):/g;
is_deeply(\@got, \@expect, 'only the statements the README marks as failing fail, with its SQLSTATEs')
  or diag($err);
like($out, qr/^P001\|718-7\|13\.5\nP001\|2345-7\|98\nP002\|718-7\|11\.0$/m,
	'the agent reads the consenting patients\' lab rows');
unlike($out, qr/^P003\|718-7/m, '... and not P003\'s');
like($out, qr/^access\|lab-summarizer\|P001\|/m, 'the auditor sees the agent\'s access record');
like($out, qr/^denied\|lab-summarizer\|P003\|/m, '... and the withheld patient');
like($out, qr/\|t\|\|$/m, 'verify_audit says the chain is intact');

# the shell block: export and aa_verify
my $dir = PostgreSQL::Test::Utils::tempdir;
my $conn = '-X -h ' . $node->host . ' -p ' . $node->port;
for my $block (@sh)
{
	next unless $block =~ /aa_verify/;
	(my $cmd = $block) =~ s/\bpsql -d clinical\b/psql $conn -d clinical/g;
	my $rc = system('bash', '-c', "cd '$dir' && { set -e\n$cmd\n} > out.txt 2>&1");
	is($rc, 0, 'the shell block runs') or diag(slurp_file("$dir/out.txt"));
	like(slurp_file("$dir/out.txt"), qr/aa_verify: OK: \d+ records/, 'aa_verify finds the export intact')
	  or diag(slurp_file("$dir/out.txt"));
}
$node->stop;
done_testing();
