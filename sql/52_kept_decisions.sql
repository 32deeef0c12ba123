-- Decisions kept across statements (issue 14 item 3): a patient's decision
-- for a question (the classes a statement touches, the action) is made once
-- and kept by the backend until something it depends on changes.  What must
-- hold: a statement that still holds a kept decision when the cache is
-- reset (a cursor, here) keeps it valid -- the forgotten decisions are
-- retired and freed only when no statement is live -- and what it reads and
-- records afterwards is right.  (The questions themselves: 36_class_mix
-- asks 15 column sets of the same patients in one session; consent, default
-- and break-the-glass changes between statements: 32_consent, 42_btg_access
-- and the consent_withdrawal isolation spec.)
\set SHOW_CONTEXT never
CREATE ROLE reg52_agent LOGIN;
CREATE TABLE reg52_chart (id int PRIMARY KEY, patient_id text NOT NULL, lab text, diag text);
-- 300 patients, two rows each; the cursor below reads them in id order
INSERT INTO reg52_chart
SELECT i, 'R52-' || lpad(((i - 1) % 300 + 1)::text, 3, '0'), 'lab' || i, 'diag' || i
  FROM generate_series(1, 600) i;
SELECT agentauth.protect_table('reg52_chart', 'patient_id',
    '{"id": "non_phi", "lab": "lab", "diag": "diagnosis"}');
GRANT SELECT ON reg52_chart TO reg52_agent;
SELECT agentauth.register_agent('reg52-agent', 'reg52_agent', 'Ward 52', '{TREATDS}',
    '{lab:read,diagnosis:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS tok \gset
-- every patient but the multiples of 10 permits lab; none permits diagnosis
SELECT count(agentauth.record_consent('R52-' || lpad(i::text, 3, '0'), 'permit', '{TREATDS}', '{lab}'))
  FROM generate_series(1, 300) i WHERE i % 10 <> 0;
CREATE VIEW reg52_kept AS
SELECT count(*) AS contexts FROM pg_backend_memory_contexts WHERE name = 'agentauth kept decisions';
SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg52_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- the first statement decides for every patient and keeps the decisions
SELECT count(*) AS lab_rows FROM reg52_chart WHERE lab IS NOT NULL;
-- the same question again: the same answer, from the kept decisions
SELECT count(*) AS lab_rows FROM reg52_chart WHERE lab IS NOT NULL;
-- another question of the same patients (lab and diagnosis): none
SELECT count(*) AS lab_diag_rows FROM reg52_chart WHERE lab IS NOT NULL AND diag IS NOT NULL;
BEGIN;
DECLARE c CURSOR FOR SELECT id, patient_id FROM reg52_chart WHERE lab IS NOT NULL ORDER BY id;
-- the cursor holds the decisions of the patients of its rows so far
FETCH 3 FROM c;
-- a change that resets every backend's cache, made in this transaction
RESET SESSION AUTHORIZATION;
SELECT agentauth.set_default_decision('TREATDS', 'diagnosis', 'deny');
SET SESSION AUTHORIZATION reg52_agent;
-- the next FETCH finds the generation moved: the cache is reset, the
-- decisions the cursor holds are retired, not freed
FETCH 3 FROM c;
RESET SESSION AUTHORIZATION;
SELECT contexts AS kept_contexts_while_the_cursor_lives FROM reg52_kept;
SET SESSION AUTHORIZATION reg52_agent;
MOVE FORWARD ALL IN c;
CLOSE c;
COMMIT;
RESET SESSION AUTHORIZATION;
-- no statement holds a retired decision: freed
SELECT contexts AS kept_contexts_after FROM reg52_kept;
-- what the cursor recorded: one access per patient it read, each with the
-- authority of its decision (made before the reset, kept alive until here)
SELECT count(*) AS records, count(DISTINCT patient) AS patients, sum(row_count) AS rows,
       bool_and(jsonb_array_length(authority -> 'consents') = 1) AS each_names_its_consent
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND event = 'access' AND relation = 'public.reg52_chart'
   AND columns = '{id,patient_id,lab}';
-- and the decisions after the reset are the same
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS lab_rows FROM reg52_chart WHERE lab IS NOT NULL;
SELECT count(*) AS lab_diag_rows FROM reg52_chart WHERE lab IS NOT NULL AND diag IS NOT NULL;

-- what a kept decision costs: one arena of exact-size pieces, a few hundred
-- bytes a patient (300 patients, two questions asked since the reset)
RESET SESSION AUTHORIZATION;
SELECT total_bytes - free_bytes < 300 * 2 * 600 AS kept_arena_is_small
  FROM pg_backend_memory_contexts WHERE name = 'agentauth kept decisions';

-- Statements run by a function, each followed by a reset of the cache: each
-- one unpins its decisions when it ends, so the retired arenas do not pile
-- up while the calling statement lives (found by review: they did, until
-- the outermost statement ended)
CREATE FUNCTION reg52_reset() RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT agentauth._bump_generation()
$$;
CREATE FUNCTION reg52_arenas() RETURNS bigint LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'agentauth kept decisions'
$$;
CREATE FUNCTION reg52_loop(n int) RETURNS TABLE (rows_read bigint, most_arenas bigint)
LANGUAGE plpgsql AS $$
DECLARE
    c bigint;
BEGIN
    rows_read := 0;
    most_arenas := 0;
    FOR i IN 1 .. n LOOP
        SELECT count(*) INTO c FROM reg52_chart WHERE lab IS NOT NULL;
        rows_read := rows_read + c;
        PERFORM reg52_reset();
        most_arenas := greatest(most_arenas, reg52_arenas());
    END LOOP;
    RETURN NEXT;
END $$;
GRANT EXECUTE ON FUNCTION reg52_loop(int) TO reg52_agent;
SET SESSION AUTHORIZATION reg52_agent;
SELECT * FROM reg52_loop(5);
RESET SESSION AUTHORIZATION;

-- The statement's patient index compares ids of up to 16 bytes as two
-- words held in the element, longer ones byte by byte: ids that differ
-- only in their last byte, at 15, 16, 17 and 40 bytes, one of each pair
-- permitted, must never share an element (nor its decision)
RESET SESSION AUTHORIZATION;
CREATE TABLE reg52_keys (id int PRIMARY KEY, patient_id text NOT NULL, lab text);
INSERT INTO reg52_keys
SELECT row_number() OVER (), rpad('K', n - 1, 'x') || last, 'lab'
  FROM unnest('{15,16,17,40}'::int[]) n, unnest('{a,b}'::text[]) last, generate_series(1, 2);
SELECT agentauth.protect_table('reg52_keys', 'patient_id', '{"id": "non_phi", "lab": "lab"}');
GRANT SELECT ON reg52_keys TO reg52_agent;
SELECT count(agentauth.record_consent(rpad('K', n - 1, 'x') || 'a', 'permit', '{TREATDS}', '{lab}'))
  FROM unnest('{15,16,17,40}'::int[]) n;
SET SESSION AUTHORIZATION reg52_agent;
SELECT length(patient_id) AS bytes, right(patient_id, 1) AS last, count(*) AS rows
  FROM reg52_keys GROUP BY 1, 2 ORDER BY 1, 2;
RESET SESSION AUTHORIZATION;
SELECT agentauth.unprotect_table('reg52_keys', 'regression cleanup');
DROP TABLE reg52_keys;

-- A change this backend made and rolled back is not kept: it reloaded with
-- the change in sight (its own transaction), so the rollback publishes the
-- change again.  Found by review: in 1.0 too, a rolled-back consent kept
-- permitting this backend's reads (and a rolled-back withdrawal refusing).
-- R52-010 has no consent: a permit recorded and rolled back
BEGIN;
SELECT agentauth.record_consent('R52-010', 'permit', '{TREATDS}', '{lab}') IS NOT NULL AS recorded;
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS in_the_transaction FROM reg52_chart WHERE patient_id = 'R52-010' AND lab IS NOT NULL;
ROLLBACK;
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS after_the_rollback FROM reg52_chart WHERE patient_id = 'R52-010' AND lab IS NOT NULL;
RESET SESSION AUTHORIZATION;
-- the same under a savepoint rolled back, the transaction going on
BEGIN;
SAVEPOINT s;
SELECT agentauth.record_consent('R52-010', 'permit', '{TREATDS}', '{lab}') IS NOT NULL AS recorded;
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS in_the_savepoint FROM reg52_chart WHERE patient_id = 'R52-010' AND lab IS NOT NULL;
RESET SESSION AUTHORIZATION;
ROLLBACK TO SAVEPOINT s;
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS after_rollback_to_savepoint FROM reg52_chart WHERE patient_id = 'R52-010' AND lab IS NOT NULL;
RESET SESSION AUTHORIZATION;
COMMIT;
-- R52-001 permits: a withdrawal rolled back
SELECT id AS c001 FROM agentauth.consent WHERE patient = 'R52-001' AND withdrawn_at IS NULL \gset
BEGIN;
SELECT agentauth.withdraw_consent(:'c001', 'asked, then not');
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS in_the_transaction FROM reg52_chart WHERE patient_id = 'R52-001' AND lab IS NOT NULL;
ROLLBACK;
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS after_the_rollback FROM reg52_chart WHERE patient_id = 'R52-001' AND lab IS NOT NULL;
RESET SESSION AUTHORIZATION;
-- a default (a generation change) rolled back: R52-010 has no consent
BEGIN;
SELECT agentauth.set_default_decision('TREATDS', 'lab', 'permit');
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS in_the_transaction FROM reg52_chart WHERE patient_id = 'R52-010' AND lab IS NOT NULL;
ROLLBACK;
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS after_the_rollback FROM reg52_chart WHERE patient_id = 'R52-010' AND lab IS NOT NULL;
RESET SESSION AUTHORIZATION;

-- A change cannot be prepared for a later COMMIT PREPARED: nothing would
-- publish it then (found by review: a withdrawal by a direct UPDATE,
-- prepared and committed, left every backend that had reloaded meanwhile
-- permitting).  The refusal comes before PostgreSQL's own check.
BEGIN;
UPDATE agentauth.consent SET withdrawn_at = now(), withdrawn_by = 'reg52', withdraw_reason = 'prepared'
 WHERE id = :'c001';
PREPARE TRANSACTION 'reg52';
SET SESSION AUTHORIZATION reg52_agent;
SELECT count(*) AS after_the_refused_prepare FROM reg52_chart WHERE patient_id = 'R52-001' AND lab IS NOT NULL;
RESET SESSION AUTHORIZATION;

SELECT agentauth.set_default_decision('TREATDS', 'diagnosis', 'none');
SELECT agentauth.unprotect_table('reg52_chart', 'regression cleanup');
DROP VIEW reg52_kept;
DROP FUNCTION reg52_loop(int);
DROP FUNCTION reg52_arenas();
DROP FUNCTION reg52_reset();
DROP TABLE reg52_chart;
