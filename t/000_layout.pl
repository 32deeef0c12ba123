# The code map holds (issue "Structure"): no file of src/ over about 800
# lines, and calls between the files of src/ go one way -- the graph of
# which object file uses a symbol another defines (nm) has no cycle.
use strict;
use warnings;
use Test::More;
use File::Basename;

my $top = dirname(__FILE__) . '/..';
my @c = sort glob("$top/src/*.c");
cmp_ok(scalar(@c), '>', 10, 'the sources are there');
for my $f (@c)
{
	open my $fh, '<', $f or die "$f: $!";
	my $n = () = <$fh>;
	cmp_ok($n, '<=', 850, basename($f) . " has $n lines");
}

my @o = grep { -f } map { s/\.c$/.o/r } @c;
plan skip_all => 'not built' unless @o == @c;
my (%owner, %uses);
for my $o (@o)
{
	my $name = basename($o, '.o');
	for (`nm $o`)
	{
		if (/^\S+\s+[TDBR]\s+(\S+)$/) { $owner{$1} = $name; }
		elsif (/^\s+U\s+(\S+)$/) { push @{ $uses{$name} }, $1; }
	}
}
my %edge;
for my $from (keys %uses)
{
	for my $sym (@{ $uses{$from} })
	{
		my $to = $owner{$sym};
		$edge{$from}{$to} = 1 if defined $to && $to ne $from;
	}
}

# a cycle, if any: depth-first search keeping the path
my (%state, @cycle);
sub visit
{
	my ($v, @path) = @_;
	return if @cycle || ($state{$v} // 0) == 2;
	if (($state{$v} // 0) == 1)
	{
		my @p = (@path, $v);
		my ($i) = grep { $p[$_] eq $v } 0 .. $#p;
		@cycle = @p[ $i .. $#p ];
		return;
	}
	$state{$v} = 1;
	visit($_, @path, $v) for sort keys %{ $edge{$v} // {} };
	$state{$v} = 2;
}
visit($_) for sort keys %uses;
is(join(' -> ', @cycle), '', 'no cycle between the files of src/');
done_testing();
