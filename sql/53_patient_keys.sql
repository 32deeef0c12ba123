-- Patient keys (src/patient_key.h), used by the row check's patient table
-- and by the consent cache's patients: a value of up to 16 bytes is
-- compared and hashed as two words loaded from it (its first and last 8
-- bytes, or 4 when it is shorter than 8, or its bytes when shorter than
-- 4); a longer one by its bytes.  Patients whose ids differ in a single
-- byte, at every position of every length from 1 to 20, must stay apart:
-- each is decided by its own consent and counted in its own entry.  The
-- rows alternate between patients, so every row is looked up in the
-- statement's patient table rather than matched with the row before, and
-- the 230 patients grow the consent cache's index past its first size.
\set SHOW_CONTEXT never
CREATE ROLE reg53_agent LOGIN;
CREATE TABLE reg53_obs (id serial PRIMARY KEY, patient_id text NOT NULL, v int);
-- for each length L: the base id (L times 'a', two rows) and its L
-- variants, each with one 'a' changed to 'b' (one row each)
CREATE TABLE reg53_ids AS
SELECT l, k, CASE WHEN k = 0 THEN repeat('a', l)
                  ELSE overlay(repeat('a', l) PLACING 'b' FROM k FOR 1) END AS patient
  FROM generate_series(1, 20) l, generate_series(0, 20) k
 WHERE k <= l;
INSERT INTO reg53_obs (patient_id, v)
SELECT patient, r FROM reg53_ids, generate_series(1, 2) r
 WHERE r = 1 OR k = 0
 ORDER BY r, l, k;
SELECT count(*) AS rows, count(DISTINCT patient_id) AS patients FROM reg53_obs;
SELECT agentauth.protect_table('reg53_obs', 'patient_id', '{"id": "non_phi", "v": "lab"}');
GRANT SELECT ON reg53_obs TO reg53_agent;
SELECT agentauth.register_agent('reg53-agent', 'reg53_agent', 'key test', '{TREAT}',
    '{lab:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREAT') AS secret \gset
-- the base ids permit, every variant refuses
SELECT count(agentauth.record_consent(patient, 'permit', '{TREAT}', '{lab}')) AS permits
  FROM reg53_ids WHERE k = 0;
SELECT count(agentauth.record_consent(patient, 'deny')) AS denies
  FROM reg53_ids WHERE k > 0;
SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg53_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
-- exactly the base ids' rows, two each
SELECT length(patient_id) AS len, count(*) AS rows,
       bool_and(patient_id = repeat('a', length(patient_id))) AS all_base
  FROM reg53_obs GROUP BY 1 ORDER BY 1;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- one entry per patient: 20 permitted with 2 rows each, 210 withheld with
-- 1 row each, every id of the test named once
SELECT event, count(*) AS patients, sum(row_count) AS rows,
       count(DISTINCT patient) AS distinct_patients
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation = 'public.reg53_obs' AND event IN ('access', 'denied')
 GROUP BY event ORDER BY event;
SELECT count(*) AS ids_not_logged_once
  FROM reg53_ids i
 WHERE (SELECT count(*) FROM agentauth.audit_log a
         WHERE a.seq > :seq0 AND a.relation = 'public.reg53_obs'
           AND a.event = CASE WHEN i.k = 0 THEN 'access' ELSE 'denied' END
           AND a.patient = i.patient
           AND a.row_count = CASE WHEN i.k = 0 THEN 2 ELSE 1 END) <> 1;
