-- The plan of each benchmark query, for each variant: the patient index
-- must survive row security.
\set ON_ERROR_STOP 0
SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_sync'),
                             'TREAT', '10 minutes') AS tok \gset
\set p 'P000042'
\set explain 'EXPLAIN (ANALYZE, BUFFERS, COSTS OFF)'
\echo === obs_plain (row security with a policy of true for bench_plain: no filter)
SET SESSION AUTHORIZATION bench_plain;
\set t obs_plain
\ir explain_queries.sql
RESET SESSION AUTHORIZATION;
\echo === obs_plain as bench_floor (plain_rls: a do-nothing C row check on every row)
SET SESSION AUTHORIZATION bench_floor;
\set t obs_plain
\ir explain_queries.sql
RESET SESSION AUTHORIZATION;
\echo === obs_hand (consent written by hand as SQL policies)
SET SESSION AUTHORIZATION bench_hand;
\set t obs_hand
\ir explain_queries.sql
RESET SESSION AUTHORIZATION;
-- In a session EXPLAIN plans without the protected table's statistics
-- (stats.c: estimates would tell of the rows withheld), so the agent's
-- EXPLAIN shows a plan it never runs.  Its statements run instead, under
-- auto_explain, whose plans go to the server log only; run.sh appends them
-- to results/explain.txt.
\echo === obs_aa (agentauth): the plans it ran are at the end of this file (auto_explain)
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = off;
SET SESSION AUTHORIZATION bench_agent_sync;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS session_started;
\set explain ''
\set t obs_aa
\o /dev/null
\ir explain_queries.sql
\o
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
RESET auto_explain.log_min_duration;
