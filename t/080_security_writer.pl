# The audit writer runs its queries as the bootstrap superuser.  A database
# owner who is not a superuser can ALTER DATABASE ... SET search_path, which
# the writer's connection applies: if any of the writer's queries resolved a
# name through that path (a type, say "text", shadowed by a domain in the
# owner's schema whose CHECK calls the owner's function), the owner's code
# would run as the superuser.  The writer pins search_path at start; this
# test drives its inactivity check (which casts to text) under such a path.
use strict;
use warnings;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('security_writer');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION agentauth CASCADE');

# the database owner, not a superuser, plants a domain "text" and puts its
# schema first in the database's search_path
$node->safe_psql('postgres', q{
CREATE ROLE sec_dbowner LOGIN;
ALTER DATABASE postgres OWNER TO sec_dbowner;
CREATE ROLE sec_idle LOGIN;
});
$node->safe_psql('postgres', q{
SET ROLE sec_dbowner;
CREATE TABLE public.sec_pwned (who text);
CREATE FUNCTION public.sec_trap(v varchar) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.sec_pwned VALUES (current_user::pg_catalog.text);
    RETURN true;
END $$;
CREATE DOMAIN public.text AS varchar CHECK (public.sec_trap(VALUE));
ALTER DATABASE postgres SET search_path = public, pg_catalog;
});

# an agent that will be found inactive; a writer that reads the new path
my $idle = $node->safe_psql('postgres', q{
SELECT agentauth.register_agent('sec-idle', 'sec_idle', 'Security review', '{TREAT}', '{lab:read}')});
$node->safe_psql('postgres', "ALTER SYSTEM SET agentauth.inactive_after = '1s'");
$node->restart;

my $status = '';
foreach my $i (1 .. 600)
{
	$status = $node->safe_psql('postgres',
		"SELECT status FROM agentauth.principals WHERE id = '$idle'");
	last if $status eq 'suspended';
	usleep(100_000);
}
is($status, 'suspended', 'the writer ran its inactivity check');
is($node->safe_psql('postgres', 'SELECT count(*) FROM public.sec_pwned'),
	'0', "the database owner's function never ran in the writer");

$node->stop;
done_testing();
