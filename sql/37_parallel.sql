-- Parallel query (issue 12, item 10): a statement on a protected table in
-- parallel mode -- force_parallel_mode, or a join whose other table is
-- scanned by parallel workers -- gives the same rows and the same audit
-- records as the serial plan.  1.0 failed with "cannot update
-- SecondarySnapshot during a parallel operation" (XX000): the row check
-- runs in the leader, in parallel mode, and revalidates the session and
-- loads consent with a snapshot of its own.  Each run begins a fresh
-- session, so the first rows load everything (more patients than are
-- loaded one by one, defaults for the patients without a provision), and
-- a run after a token change revalidates, one after a withdrawal reloads
-- that patient, inside the parallel statement.
\set SHOW_CONTEXT never
-- force_parallel_mode is debug_parallel_query from PostgreSQL 16 on
SELECT CASE WHEN current_setting('server_version_num')::int >= 160000
            THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END AS fpm \gset
CREATE ROLE reg37_agent LOGIN;
CREATE TABLE reg37_obs (id int PRIMARY KEY, patient_id text, code text, value int);
INSERT INTO reg37_obs
SELECT i, 'R37-P' || lpad((i % 100)::text, 3, '0'), 'C' || (i % 7), i FROM generate_series(1, 3000) i;
SELECT agentauth.protect_table('reg37_obs', 'patient_id', '{"id": "non_phi", "code": "lab", "value": "lab"}');
CREATE TABLE reg37_big (k int, v text);
INSERT INTO reg37_big SELECT i, 'v' || i FROM generate_series(1, 60000) i;
ANALYZE reg37_obs;
ANALYZE reg37_big;
GRANT SELECT ON reg37_obs, reg37_big TO reg37_agent;
SELECT agentauth.register_agent('reg37-agent', 'reg37_agent', 'Parallel team', '{TREATDS}', '{lab:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS tok \gset
-- patients 0-79 permit, 80-89 deny, 90-99 nothing
SELECT count(agentauth.record_consent('R37-P' || lpad(i::text, 3, '0'), CASE WHEN i < 80 THEN 'permit' ELSE 'deny' END,
                                      '{TREATDS}'))
  FROM generate_series(0, 89) i;

-- the node types of a plan (no OIDs), as the agent sees it
CREATE FUNCTION reg37_plan(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE j json; r text;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON, COSTS OFF) ' || q INTO j;
  WITH RECURSIVE n(p, d, o) AS (
    SELECT j->0->'Plan', 0, ''::text
    UNION ALL
    SELECT c, d + 1, o || lpad(i::text, 3) FROM n, json_array_elements(n.p->'Plans') WITH ORDINALITY AS e(c, i))
  SELECT string_agg(repeat('  ', d) || CASE WHEN (p->>'Parallel Aware')::boolean THEN 'Parallel ' ELSE '' END
                    || (p->>'Node Type'), ' | ' ORDER BY o) INTO r FROM n;
  RETURN r;
END $$;

-- the records of the protected table since seq s, under a label
CREATE TABLE reg37_records (run text, event text, patient text, action text, row_count bigint,
                            outcome text, authority jsonb, columns text[]);
CREATE FUNCTION reg37_keep(label text, since bigint) RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO reg37_records
  SELECT label, event, patient, action, row_count, outcome, authority, columns
    FROM agentauth.audit_log
   WHERE seq > since AND relation = 'public.reg37_obs';
  SELECT count(*) FROM reg37_records WHERE run = label;
$$;

-- 1. serial
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg37_agent;
SET max_parallel_workers_per_gather = 0;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT count(*) AS rows, sum(value) AS total, count(DISTINCT patient_id) AS patients FROM reg37_obs;
SELECT count(*) AS rows, sum(o.value) AS total FROM reg37_obs o JOIN reg37_big b ON b.k = o.id;
SELECT patient_id, count(*) FROM reg37_obs WHERE patient_id IN ('R37-P001', 'R37-P085', 'R37-P095') GROUP BY 1 ORDER BY 1;
RESET max_parallel_workers_per_gather;
RESET SESSION AUTHORIZATION;
SELECT reg37_keep('serial', :s) AS serial_records;

-- 2. force_parallel_mode: the whole statement in parallel mode
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg37_agent;
SET :fpm = on;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT count(*) AS rows, sum(value) AS total, count(DISTINCT patient_id) AS patients FROM reg37_obs;
SELECT count(*) AS rows, sum(o.value) AS total FROM reg37_obs o JOIN reg37_big b ON b.k = o.id;
SELECT patient_id, count(*) FROM reg37_obs WHERE patient_id IN ('R37-P001', 'R37-P085', 'R37-P095') GROUP BY 1 ORDER BY 1;
RESET :fpm;
RESET SESSION AUTHORIZATION;
SELECT reg37_keep('force_parallel_mode', :s) AS forced_records;

-- 3. a parallel join: the other table in workers, the protected one in
-- the leader
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg37_agent;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET enable_mergejoin = off;
SET enable_nestloop = off;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT reg37_plan('SELECT count(*), sum(o.value) FROM reg37_obs o JOIN reg37_big b ON b.k = o.id') AS plan;
SELECT count(*) AS rows, sum(value) AS total, count(DISTINCT patient_id) AS patients FROM reg37_obs;
SELECT count(*) AS rows, sum(o.value) AS total FROM reg37_obs o JOIN reg37_big b ON b.k = o.id;
SELECT patient_id, count(*) FROM reg37_obs WHERE patient_id IN ('R37-P001', 'R37-P085', 'R37-P095') GROUP BY 1 ORDER BY 1;
RESET SESSION AUTHORIZATION;
SELECT reg37_keep('parallel join', :s) AS join_records;

-- the same records, in number and content, whatever the plan
SELECT a.run, b.run AS compared_with,
       (SELECT count(*) FROM (SELECT event, patient, action, row_count, outcome, authority, columns
                                FROM reg37_records WHERE run = a.run
                              EXCEPT ALL
                              SELECT event, patient, action, row_count, outcome, authority, columns
                                FROM reg37_records WHERE run = b.run) x) AS missing_there
  FROM (VALUES ('serial'), ('force_parallel_mode'), ('parallel join')) a(run),
       (VALUES ('serial'), ('force_parallel_mode'), ('parallel join')) b(run)
 WHERE a.run <> b.run
 ORDER BY 1, 2;
SELECT event, outcome, count(*) AS records, sum(row_count) AS rows
  FROM reg37_records WHERE run = 'serial' GROUP BY 1, 2 ORDER BY 1, 2;

-- 4. inside a parallel statement: a token change moved the generation
-- (revalidation), a withdrawal of P001 (its consent reloaded), a
-- revocation (28000)
SET SESSION AUTHORIZATION reg37_agent;
SET :fpm = on;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT count(*) AS rows FROM reg37_obs;
RESET SESSION AUTHORIZATION;
SELECT agentauth.issue_token(:'agent', 'TREATDS') IS NOT NULL AS other_token;
SELECT agentauth.withdraw_consent(c.id, 'reg37') FROM agentauth.consent c
 WHERE c.patient = 'R37-P001' AND c.withdrawn_at IS NULL;
SET SESSION AUTHORIZATION reg37_agent;
SELECT count(*) AS rows, count(DISTINCT patient_id) AS patients FROM reg37_obs o JOIN reg37_big b ON b.k = o.id;
RESET SESSION AUTHORIZATION;
SELECT agentauth.revoke_token(t.id, 'reg37') FROM agentauth.token t
  JOIN agentauth.principals p ON p.id = t.agent WHERE p.name = 'reg37-agent' AND t.revoked_at IS NULL;
SET SESSION AUTHORIZATION reg37_agent;
SELECT count(*) AS rows FROM reg37_obs o JOIN reg37_big b ON b.k = o.id;
SELECT agentauth.end_session();
RESET :fpm;
RESET SESSION AUTHORIZATION;

-- 5. a PARALLEL SAFE function that reads the protected table, called by
-- a statement over another table (1.1, found by review: run in a worker,
-- its row check refused, 0A000, by the plan and by which process met
-- which rows): such a statement of a role the row check holds is planned
-- without workers, and answers as the serial plan does -- a SQL function,
-- a PL/pgSQL one, an aggregate whose state function reads the table
CREATE FUNCTION reg37_count(p int) RETURNS bigint LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT count(*) FROM reg37_obs WHERE patient_id = 'R37-P' || lpad(p::text, 3, '0') $$;
CREATE FUNCTION reg37_count_pl(p int) RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$ BEGIN RETURN (SELECT count(*) FROM reg37_obs WHERE patient_id = 'R37-P' || lpad(p::text, 3, '0')); END $$;
CREATE FUNCTION reg37_acc(s bigint, p int) RETURNS bigint LANGUAGE plpgsql STABLE PARALLEL SAFE
    AS $$ BEGIN RETURN s + (SELECT count(*) FROM reg37_obs WHERE patient_id = 'R37-P' || lpad(p::text, 3, '0')); END $$;
CREATE AGGREGATE reg37_sum_counts(int) (SFUNC = reg37_acc, STYPE = bigint, INITCOND = '0',
                                        COMBINEFUNC = int8pl, PARALLEL = SAFE);
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS tok \gset
SET SESSION AUTHORIZATION reg37_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SELECT reg37_plan('SELECT sum(reg37_count((k / 600) % 100)) FROM reg37_big WHERE k % 600 = 0') AS plan;
SELECT reg37_plan('SELECT count(*) FROM reg37_big WHERE k % 600 = 0') AS plan_without_function;
SELECT sum(reg37_count((k / 600) % 100)) AS rows_sql, sum(reg37_count_pl((k / 600) % 100)) AS rows_plpgsql,
       reg37_sum_counts((k / 600) % 100) AS rows_aggregate
  FROM reg37_big WHERE k % 600 = 0;
SET :fpm = on;
SELECT reg37_count(2) AS p002_rows, reg37_count_pl(85) AS p085_rows;
RESET :fpm;
SET max_parallel_workers_per_gather = 0;
SELECT sum(reg37_count((k / 600) % 100)) AS serial_rows FROM reg37_big WHERE k % 600 = 0;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
