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
RESET SESSION AUTHORIZATION;

SELECT agentauth.set_default_decision('TREATDS', 'diagnosis', 'none');
SELECT agentauth.unprotect_table('reg52_chart', 'regression cleanup');
DROP VIEW reg52_kept;
DROP TABLE reg52_chart;
