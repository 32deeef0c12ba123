# Tamper detection against the route no hook can stop: editing the heap
# file of the audit log while the server is stopped.  A changed field and a
# removed record are each found by both verifiers, which name the seq.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('audit_heap');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
ignore_checksum_failure = on
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');
$node->safe_psql('postgres',
	"SELECT agentauth._audit('t14_record_' || i, jsonb_build_object('i', i)) FROM generate_series(1, 6) i");

my $file = $node->data_dir . '/'
  . $node->safe_psql('postgres', "SELECT pg_relation_filepath('agentauth.audit_record')");
my %seq = map { $_ => $node->safe_psql('postgres',
		"SELECT seq FROM agentauth.audit_log WHERE event = 't14_record_$_'") } (3, 5);

sub verify_both
{
	return $node->safe_psql('postgres',
		'SELECT first_bad_seq, problem FROM agentauth.verify_audit() '
		  . 'UNION ALL SELECT first_bad_seq, problem FROM agentauth.verify_audit_sql()');
}

sub edit_heap
{
	my ($edit) = @_;
	$node->safe_psql('postgres', 'CHECKPOINT');
	$node->stop;
	open(my $fh, '+<:raw', $file) or die "open $file: $!";
	local $/;
	my $data = <$fh>;
	$data = $edit->($data);
	seek($fh, 0, 0);
	print $fh $data;
	close $fh;
	$node->start;
}

is(verify_both(), "|\n|", 'intact: both verifiers find nothing');

# 1. change a field in place: record 3's event, same length
edit_heap(sub {
	my ($d) = @_;
	my $n = ($d =~ s/t14_record_3/t14_rekord_3/g);
	die "pattern found $n times" unless $n == 1;
	return $d;
});
is($node->safe_psql('postgres', "SELECT event FROM agentauth.audit_log WHERE seq = $seq{3}"),
	't14_rekord_3', 'the heap edit took effect');
is(verify_both(), "$seq{3}|row_hash mismatch\n$seq{3}|row_hash mismatch",
	'a field changed in the heap: both name its seq');

# put it back
edit_heap(sub { my ($d) = @_; $d =~ s/t14_rekord_3/t14_record_3/g; return $d; });
is(verify_both(), "|\n|", 'restored: intact again');

# 2. remove record 5: mark its line pointer unused
edit_heap(sub {
	my ($d) = @_;
	my $pos = index($d, 't14_record_5');
	die 'record 5 not found' if $pos < 0;
	my $page = int($pos / 8192) * 8192;
	my $lower = unpack('v', substr($d, $page + 12, 2));
	my $done = 0;
	for (my $lp = $page + 24; $lp < $page + $lower; $lp += 4)
	{
		my $w = unpack('V', substr($d, $lp, 4));
		my ($off, $flags, $len) = ($w & 0x7fff, ($w >> 15) & 3, ($w >> 17) & 0x7fff);
		next unless $flags == 1;
		if ($pos >= $page + $off && $pos < $page + $off + $len)
		{
			substr($d, $lp, 4) = pack('V', 0);
			$done = 1;
		}
	}
	die 'line pointer not found' unless $done;
	return $d;
});
is($node->safe_psql('postgres', "SELECT count(*) FROM agentauth.audit_log WHERE seq = $seq{5}"),
	'0', 'the record is gone from the table');
is(verify_both(), "$seq{5}|missing record\n$seq{5}|missing record",
	'a record removed from the heap: both name the missing seq');

$node->stop('immediate');
done_testing();
