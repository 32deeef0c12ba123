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
\echo === obs_aa (agentauth)
SET SESSION AUTHORIZATION bench_agent_sync;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS session_started;
\set explain 'EXPLAIN (COSTS OFF)'
\set t obs_aa
\ir explain_queries.sql
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
