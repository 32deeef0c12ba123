# An override that a session ends as its backend exits, while the server
# stops or crashes: its end is in the table iff its break_glass_end record
# is in the log.
#
# The exit ends the session's overrides in a transaction of its own.  1.1
# before this test queued their records in shared memory, and the commit
# went on: a writer gone by then (a fast shutdown stops it beside the
# backends; a crash resets the queue) lost them, and the table said the
# override had ended while the log never did (found by review, r41, at
# pg_ctl restart -m fast).  Now the exit's records are spilled into
# agentauth._audit_spill, committed with the change, and the spill mover
# queues them once the writer is back.  The case here is made certain: the
# writer is stopped (SIGSTOP), the session's backend terminated, and the
# writer killed once the override's end has committed (the postmaster
# resets shared memory, queue and all).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('override_exit');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'agentauth'
agentauth.audit_wait_timeout = '60s'
agentauth.audit_sync = off
restart_after_crash = on
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE t19_doc LOGIN;
SELECT agentauth.register_human('t19-doc', 't19_doc', '{TREAT}', '{lab:read}', can_break_glass => true);
});
sub sq { return $node->safe_psql('postgres', $_[0]); }

my $bg = $node->background_psql('postgres');
$bg->query_safe('SET SESSION AUTHORIZATION t19_doc');
$bg->query_safe(q{SELECT agentauth.begin_human_session('TREAT')});
my $id = $bg->query_safe(q{SELECT agentauth.break_glass('T19P1', 'exit test', '1 hour')});
$id =~ s/\s+//g;
like($id, qr/^[0-9a-f-]{36}$/, 'the clinician broke the glass');
my $pid = $bg->query_safe('SELECT pg_backend_pid()');
$pid =~ s/\s+//g;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM agentauth.audit_log WHERE event = 'break_glass_start' AND patient = 'T19P1'"),
	'its start is in the log');

my $writer = sq("SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'");
like($writer, qr/^\d+$/, 'the audit writer runs');
kill 'STOP', $writer;
sq("SELECT pg_terminate_backend($pid)");
my $ended = $node->poll_query_until('postgres',
	"SELECT ended_at IS NOT NULL FROM agentauth.break_glass WHERE id = '$id'");
ok($ended, 'the exit ended the override (committed)');
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
# the queue goes with the writer: the postmaster resets shared memory
kill 'KILL', $writer;
eval { $bg->quit; };
ok($node->poll_query_until('postgres',
	q{SELECT writer_state = 'running' FROM agentauth.status}),
	'the server is back after the crash, its writer running');

ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM agentauth.audit_log WHERE event = 'break_glass_end' AND patient = 'T19P1'"),
	'the override\'s end is in the log, as in the table');
is(sq("SELECT detail->>'break_glass' = '$id' AND detail->>'ended_by' = 'session end'
         FROM agentauth.audit_log WHERE event = 'break_glass_end' AND patient = 'T19P1'"), 't',
	'naming the override and why it ended');
is(sq(q{SELECT count(*) FROM agentauth._audit_spill}), '0', 'nothing is left in the spill');
is(sq('SELECT ok FROM agentauth.verify_audit()'), 't', 'the chain verifies');

$node->stop;
done_testing();
