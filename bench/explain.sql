-- The plan of each benchmark query, for each variant: the patient index
-- must survive row security.
\set ON_ERROR_STOP 0
SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_sync'),
                             'TREAT', '10 minutes') AS tok \gset
\set p 'P000042'
\echo === obs_plain (row security with a policy of true for bench_plain: no filter)
SET SESSION AUTHORIZATION bench_plain;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code, value, effective FROM clinic.obs_plain WHERE patient_id = :'p';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code, value FROM clinic.obs_plain WHERE patient_id = :'p' AND code LIKE '%GL%';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_plain WHERE patient_id BETWEEN 'P000100' AND 'P000300';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_plain;
RESET SESSION AUTHORIZATION;
\echo === obs_plain as bench_floor (plain_rls: a do-nothing C row check on every row)
SET SESSION AUTHORIZATION bench_floor;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code, value, effective FROM clinic.obs_plain WHERE patient_id = :'p';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code, value FROM clinic.obs_plain WHERE patient_id = :'p' AND code LIKE '%GL%';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_plain WHERE patient_id BETWEEN 'P000100' AND 'P000300';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_plain;
RESET SESSION AUTHORIZATION;
\echo === obs_hand (consent written by hand as SQL policies)
SET SESSION AUTHORIZATION bench_hand;
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code, value, effective FROM clinic.obs_hand WHERE patient_id = :'p';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT code, value FROM clinic.obs_hand WHERE patient_id = :'p' AND code LIKE '%GL%';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_hand WHERE patient_id BETWEEN 'P000100' AND 'P000300';
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_hand;
RESET SESSION AUTHORIZATION;
\echo === obs_aa (agentauth)
SET SESSION AUTHORIZATION bench_agent_sync;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS session_started;
EXPLAIN (COSTS OFF) SELECT code, value, effective FROM clinic.obs_aa WHERE patient_id = :'p';
EXPLAIN (COSTS OFF) SELECT code, value FROM clinic.obs_aa WHERE patient_id = :'p' AND code LIKE '%GL%';
EXPLAIN (COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_aa WHERE patient_id BETWEEN 'P000100' AND 'P000300';
EXPLAIN (COSTS OFF) SELECT count(*), avg(value) FROM clinic.obs_aa;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
