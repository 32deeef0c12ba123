# A dump and restore keeps each principal bound to its login role by name
# (principal.db_role is regrole), even when the new cluster gives the roles
# other OIDs; and the restored tokens still work only from their own role.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $old = PostgreSQL::Test::Cluster->new('old');
$old->init;
$old->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$old->start;
$old->safe_psql('postgres', q{
	CREATE EXTENSION agentauth CASCADE;
	INSERT INTO agentauth.purpose (code, display) VALUES ('SITEAUDIT', 'a code this site added');
	CREATE ROLE dump_a LOGIN;
	CREATE ROLE dump_b LOGIN;
	SELECT agentauth.register_human('dump-human', 'dump_a', '{TREAT}', '{lab:read}');
	SELECT agentauth.register_agent('dump-agent', 'dump_b', 'Tests', '{TREAT}', '{lab:read}', '1 hour');
});
my $secret = $old->safe_psql('postgres', q{
	SELECT agentauth.issue_token(id, 'TREAT') FROM agentauth.principals WHERE name = 'dump-agent'});
my $old_oid = $old->safe_psql('postgres', q{SELECT 'dump_b'::regrole::oid});

my $dir = PostgreSQL::Test::Utils::tempdir;
$old->run_log([ 'pg_dumpall', '--roles-only', '-f', "$dir/roles.sql", '-d', $old->connstr('postgres') ]);
$old->run_log([ 'pg_dump', '-f', "$dir/db.sql", '-d', $old->connstr('postgres') ]);
$old->stop;

my $new = PostgreSQL::Test::Cluster->new('new');
$new->init;
$new->append_conf('postgresql.conf', "shared_preload_libraries = 'agentauth'");
$new->start;
# other roles first, so that the restored roles get other OIDs
$new->safe_psql('postgres', 'CREATE ROLE shift1; CREATE ROLE shift2; CREATE ROLE shift3;');
$new->psql('postgres', undef, extra_params => [ '-f', "$dir/roles.sql" ]);
my ($ret, $out, $err) = $new->psql('postgres', undef,
	extra_params => [ '-f', "$dir/db.sql" ], on_error_stop => 1);
is($ret, 0, 'the dump restores') or diag($err);

is($new->safe_psql('postgres', q{SELECT count(*) FROM agentauth.purpose WHERE code IN ('TREAT', 'BTG', 'SITEAUDIT')}),
	'3', 'seeded purposes once, and the site\'s own');

my $new_oid = $new->safe_psql('postgres', q{SELECT 'dump_b'::regrole::oid});
isnt($new_oid, $old_oid, 'the role has another OID in the new cluster');
is($new->safe_psql('postgres',
	q{SELECT string_agg(name || '=' || db_role::text, ',' ORDER BY name) FROM agentauth.principals}),
	'dump-agent=dump_b,dump-human=dump_a', 'principals are bound to their roles by name');

# the restored token works from its own role, and only from it
$out = $new->safe_psql('postgres',
	"SELECT agentauth.begin_session('$secret') IS NOT NULL; SELECT name FROM agentauth.whoami();",
	extra_params => [ '-U', 'dump_b' ]);
is($out, "t\ndump-agent", 'the agent begins a session with its restored token');
($ret, $out, $err) = $new->psql('postgres', "SELECT agentauth.begin_session('$secret')",
	extra_params => [ '-U', 'dump_a' ]);
like($err, qr/invalid or expired token/, 'another role cannot use it');

$new->stop;
done_testing();
