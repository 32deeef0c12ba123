# A pgbouncer in transaction mode in front of a test node, for the pooler
# tests: one server connection per user, trust authentication, on a free
# port of 127.0.0.1.  The binary comes from $ENV{PGBOUNCER} (scripts/deps.sh
# --pgbouncer prints it) or /usr/sbin/pgbouncer.
package AgentauthPgBouncer;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use Test::More;

# start($node, @users): a connection string for the pooler (append user=),
# after checking that it accepts connections
sub start
{
	my ($node, @users) = @_;
	my $pgbouncer = $ENV{PGBOUNCER} || '/usr/sbin/pgbouncer';
	BAIL_OUT('pgbouncer not found: set PGBOUNCER (scripts/deps.sh --pgbouncer prints it)')
	  unless -x $pgbouncer;
	my $dir = $node->basedir . '/pgbouncer';
	mkdir $dir;
	my $bport = PostgreSQL::Test::Cluster::get_free_port();
	my ($host, $pport) = ($node->host, $node->port);
	open my $fh, '>', "$dir/users.txt" or die;
	print $fh qq{"$_" ""\n} for @users;
	close $fh;
	open $fh, '>', "$dir/pgbouncer.ini" or die;
	print $fh <<"INI";
[databases]
postgres = host=$host port=$pport dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
	close $fh;
	system($pgbouncer, '-d', "$dir/pgbouncer.ini") == 0
	  or BAIL_OUT('pgbouncer did not start');
	my $via = "host=127.0.0.1 port=$bport dbname=postgres";
	my $ready = 0;
	for (1 .. 100)
	{
		my ($r) = $node->psql('postgres', 'SELECT 1', connstr => "$via user=$users[0]");
		if ($r == 0) { $ready = 1; last; }
		select(undef, undef, undef, 0.1);
	}
	ok($ready, 'pgbouncer accepts connections');
	return $via;
}

# stop($node): stop the node's pgbouncer
sub stop
{
	my ($node) = @_;
	if (open my $pf, '<', $node->basedir . '/pgbouncer/pgbouncer.pid')
	{
		my $pid = <$pf>;
		chomp $pid;
		kill 'TERM', $pid if $pid;
	}
}

1;
