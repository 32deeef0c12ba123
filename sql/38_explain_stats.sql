-- Plan and statistics outputs (issue 12 item 3): no EXPLAIN, planner
-- estimate, access counter or statistics view tells a role held to the row
-- check what a withheld row contains.  The reproducer: an owner-made index
-- on (patient_id, code), and a patient who denies consent.
\set SHOW_CONTEXT never
CREATE ROLE reg38_agent LOGIN;
CREATE TABLE reg38_obs (
    id          int PRIMARY KEY,
    patient_id  text NOT NULL,
    code        text,
    value       numeric,
    hiv_status  text
);
INSERT INTO reg38_obs
SELECT i, 'R38-P1', CASE WHEN i <= 290 THEN 'HB' ELSE 'NA' END, i, 'negative'
  FROM generate_series(1, 298) i;
INSERT INTO reg38_obs VALUES (299, 'R38-P3', 'CD4', 350, 'positive'),
                             (300, 'R38-P3', 'HB', 12, 'positive');
CREATE INDEX reg38_obs_patient_code ON reg38_obs (patient_id, code);
SELECT agentauth.protect_table('reg38_obs', 'patient_id',
    '{"id": "non_phi", "code": "lab", "value": "lab", "hiv_status": "hiv"}');
ANALYZE reg38_obs;
GRANT SELECT ON reg38_obs TO reg38_agent;
SELECT agentauth.set_default_decision('TREAT', '*', 'permit') IS NOT NULL AS ok;
SELECT agentauth.record_consent('R38-P3', 'deny') IS NOT NULL AS denied;
SELECT agentauth.register_agent('reg38-agent', 'reg38_agent', 'Lab AI team', '{TREAT}',
    '{lab:read,hiv:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', scopes => '{lab:read}') AS secret \gset
-- the estimated rows of a statement's plan
CREATE FUNCTION reg38_rows(q text) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE p json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO p;
    RETURN (p -> 0 -> 'Plan' ->> 'Plan Rows')::numeric;
END $$;
-- the plan, with the relation's OID masked
CREATE FUNCTION reg38_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        RETURN NEXT regexp_replace(l, '''\d+''::oid', '<relid>', 'g');
    END LOOP;
END $$;
CREATE VIEW reg38_denied AS
    SELECT seq, event, relation, columns, detail->>'reason' AS reason
      FROM agentauth.audit_log WHERE event = 'denied';
SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset

-- a DBA outside a session keeps full EXPLAIN: estimates from the table's
-- statistics, and EXPLAIN ANALYZE with the rows the row check would remove
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT reg38_rows($$SELECT id FROM reg38_obs WHERE code = 'CD4'$$)
     < reg38_rows($$SELECT id FROM reg38_obs WHERE code = 'HB'$$) AS dba_sees_statistics;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
    SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4';
SELECT count(*) > 0 AS dba_reads_pg_stats FROM pg_stats WHERE tablename = 'reg38_obs';

-- the same role's counters, before the agent's probes
SELECT pg_stat_force_next_flush();
SELECT idx_tup_read AS base_reads, idx_scan AS base_scans
  FROM pg_stat_user_indexes WHERE indexrelname = 'reg38_obs_patient_code' \gset

-- a plan of statistics prepared outside a session (by the DBA: the
-- agent's login may not read them even outside one, 56_probe_records)
PREPARE reg38_counter AS SELECT pg_stat_get_xact_numscans(0) AS n;
EXECUTE reg38_counter;
SET SESSION AUTHORIZATION reg38_agent;
PREPARE reg38_probe AS SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4';
-- pg_stats shows nothing of a table under row security (PostgreSQL's own rule)
SELECT count(*) AS agent_pg_stats FROM pg_stats WHERE tablename = 'reg38_obs';
SELECT count(*) AS agent_pg_stats_ext FROM pg_stats_ext WHERE tablename = 'reg38_obs';
SELECT count(*) FROM pg_statistic;
-- plain EXPLAIN is planned without the table's statistics: every code the same
SELECT reg38_rows($$SELECT id FROM reg38_obs WHERE code = 'CD4'$$)
     = reg38_rows($$SELECT id FROM reg38_obs WHERE code = 'HB'$$) AS no_statistics;
SELECT reg38_rows($$SELECT id FROM reg38_obs WHERE hiv_status = 'positive'$$)
     = reg38_rows($$SELECT id FROM reg38_obs WHERE hiv_status = 'negative'$$) AS no_statistics;
-- EXPLAIN ANALYZE runs the statement: refused like it
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
    SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4';
-- a cached plan may have been made with the statistics
EXPLAIN EXECUTE reg38_probe;

-- in a session
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4';
-- EXPLAIN ANALYZE (Rows Removed by Filter: 1 told the CD4 test) and BUFFERS
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
    SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
EXPLAIN ANALYZE SELECT 1;
EXPLAIN (BUFFERS, COSTS OFF) SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3';
EXPLAIN EXECUTE reg38_probe;
-- plain EXPLAIN gets the statement's column check
EXPLAIN SELECT id FROM reg38_obs WHERE hiv_status = 'positive';
\echo SQLSTATE :LAST_ERROR_SQLSTATE
EXPLAIN (COSTS OFF) SELECT count(*) FROM reg38_obs GROUP BY hiv_status;
-- in scope, it shows the plan (below the row check), with no statistics
SELECT * FROM reg38_plan($$SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4'$$);
SELECT reg38_rows($$SELECT id FROM reg38_obs WHERE code = 'CD4'$$)
     = reg38_rows($$SELECT id FROM reg38_obs WHERE code = 'HB'$$) AS no_statistics;
-- counters and statistics functions and views
EXECUTE reg38_probe;
SELECT pg_stat_get_xact_tuples_returned('reg38_obs_patient_code'::regclass);
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT pg_stat_get_xact_tuples_fetched('reg38_obs_patient_code'::regclass);
SELECT pg_stat_get_tuples_returned('reg38_obs'::regclass);
SELECT * FROM pg_stat_get_xact_blocks_hit('reg38_obs'::regclass);
SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'reg38_obs_patient_code';
SELECT idx_tup_fetch FROM pg_stat_all_indexes WHERE indexrelname = 'reg38_obs_patient_code';
SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'reg38_obs';
SELECT heap_blks_hit FROM pg_statio_user_tables WHERE relname = 'reg38_obs';
SELECT tup_returned FROM pg_stat_database WHERE datname = current_database();
SELECT (SELECT count(*) FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4'),
       (SELECT pg_stat_get_xact_tuples_returned('reg38_obs_patient_code'::regclass));
-- in a function, planned in the session (its name built at run time: a
-- principal's statement that names one is refused, 56_probe_records)
CREATE FUNCTION pg_temp.reg38_peek() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    EXECUTE 'SELECT pg_' || 'stat_get_xact_tuples_returned($1)' INTO n
        USING 'reg38_obs_patient_code'::regclass;
    RETURN n;
END $$;
SELECT pg_temp.reg38_peek();
-- a plan prepared before the session is made again, and refused
EXECUTE reg38_counter;
-- statistics views without counters show nothing of the table
SELECT count(*) AS session_pg_stats FROM pg_stats WHERE tablename = 'reg38_obs';
-- plan messages (debug_print_plan, auto_explain) stay in the server log
SET client_min_messages = log;
SET debug_print_plan = on;
SELECT count(*) FROM reg38_obs WHERE code = 'HB';
RESET debug_print_plan;
RESET client_min_messages;
-- the index probes again, then the session ends
EXECUTE reg38_probe;
EXECUTE reg38_probe;
SELECT agentauth.end_session();

-- Sessions after the first in one backend: a plan made outside a session
-- is made again only when one calls a statistics function (every other
-- plan already passed the check a session's planning makes).  A plan is
-- made when reg38_planned() says so: the planner folds it, immutable.
RESET SESSION AUTHORIZATION;
CREATE FUNCTION reg38_planned() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RAISE NOTICE 'planned'; RETURN 1; END $$;
SET SESSION AUTHORIZATION reg38_agent;
SET plan_cache_mode = force_generic_plan;
PREPARE reg38_plain AS SELECT reg38_planned() AS one;
EXECUTE reg38_plain;
EXECUTE reg38_plain;
-- a new session: no statistics plan cached, nothing made again
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began_second;
EXECUTE reg38_plain;
SELECT agentauth.end_session();
-- a statistics plan made outside (by the DBA, in the same backend): the
-- next session makes every plan again, and refuses it
EXECUTE reg38_counter;
RESET SESSION AUTHORIZATION;
EXECUTE reg38_counter;
SET SESSION AUTHORIZATION reg38_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began_third;
EXECUTE reg38_plain;
EXECUTE reg38_counter;
SELECT agentauth.end_session();
-- refused by the third session, so never made again: the fourth refuses
-- it too, though nothing was planned outside in between
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began_fourth;
EXECUTE reg38_plain;
EXECUTE reg38_counter;
SELECT agentauth.end_session();
RESET plan_cache_mode;
RESET SESSION AUTHORIZATION;
DEALLOCATE ALL;

-- what the agent's probes touched is published nowhere: idx_tup_read did
-- not move, and neither did idx_scan (which plan ran was chosen from
-- statistics of every row, the withheld ones included)
SELECT pg_stat_force_next_flush();
SELECT idx_tup_read - :base_reads AS agent_reads, idx_scan > :base_scans AS scans_counted
  FROM pg_stat_user_indexes WHERE indexrelname = 'reg38_obs_patient_code';
-- while the DBA's own probe is counted
SELECT value FROM reg38_obs WHERE patient_id = 'R38-P3' AND code = 'CD4';
SELECT pg_stat_force_next_flush();
SELECT idx_tup_read - :base_reads AS dba_reads
  FROM pg_stat_user_indexes WHERE indexrelname = 'reg38_obs_patient_code';
RESET enable_seqscan;
RESET enable_bitmapscan;

-- every refusal is recorded (the empty reasons: rows of the denying patient)
SELECT event, relation, columns, reason FROM reg38_denied WHERE seq > :seq0 ORDER BY seq;
