-- Minimum necessary by column (SPEC 5): every column a statement
-- references on a protected table must be in the session's scopes, in
-- every position where it could leak; otherwise 42501 before any row.
--
-- The site adopts the HIPAA treatment default (README "Consent and
-- defaults"): reads for TREAT need no consent (later suites rely on it)
SELECT agentauth.set_default_decision('TREAT', '*', 'permit');
\set SHOW_CONTEXT never
CREATE ROLE reg31_agent LOGIN;
-- EXPLAIN with the relation's OID masked
CREATE FUNCTION reg31_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        RETURN NEXT regexp_replace(l, '''\d+''::oid', '<relid>', 'g');
    END LOOP;
END $$;
CREATE TABLE reg31_obs (
    id          int PRIMARY KEY,
    patient_id  text NOT NULL,
    lab_value   numeric,
    hiv         text,
    note        text,
    ward        text
);
CREATE INDEX ON reg31_obs (patient_id);
CREATE TABLE reg31_codes (code text, label text);
INSERT INTO reg31_codes VALUES ('pos', 'positive'), ('neg', 'negative');
INSERT INTO reg31_obs VALUES
    (1, 'P1', 13.5, 'neg', 'well', 'A'),
    (2, 'P2', 11.0, 'pos', 'tired', 'B'),
    (3, 'P3', 12.2, 'neg', 'ok', 'A');
SELECT agentauth.protect_table('reg31_obs', 'patient_id',
    '{"id": "non_phi", "lab_value": "lab", "hiv": "hiv", "note": "clinical_note", "ward": "non_phi"}');
GRANT SELECT, INSERT, UPDATE, DELETE ON reg31_obs TO reg31_agent;
GRANT SELECT ON reg31_codes TO reg31_agent;
CREATE TABLE reg31_labs (id int PRIMARY KEY, patient_id text NOT NULL, value numeric);
INSERT INTO reg31_labs VALUES (1, 'P1', 4.2), (2, 'P2', 5.1);
SELECT agentauth.protect_table('reg31_labs', 'patient_id', '{"id": "non_phi", "value": "lab"}');
GRANT SELECT ON reg31_labs TO reg31_agent;
SELECT agentauth.register_agent('reg31-agent', 'reg31_agent', 'Lab AI team', '{TREAT}',
    '{lab:read,clinical_note:read,hiv:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', scopes => '{lab:read}') AS secret \gset

SET SESSION AUTHORIZATION reg31_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;

-- in scope: the lab column, the patient column and non_phi columns
SELECT id, patient_id, lab_value, ward FROM reg31_obs ORDER BY id;
SELECT count(*) FROM reg31_obs;

-- out of scope, in every position
SELECT hiv FROM reg31_obs;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
SELECT lab_value FROM reg31_obs WHERE hiv = 'pos';
SELECT lab_value FROM reg31_obs ORDER BY note;
SELECT count(*) FROM reg31_obs GROUP BY hiv;
SELECT patient_id FROM reg31_obs GROUP BY patient_id HAVING max(hiv) > 'a';
SELECT o.lab_value FROM reg31_obs o JOIN reg31_codes c ON c.code = o.hiv;
SELECT c.label FROM reg31_codes c LEFT JOIN reg31_obs o ON o.note = c.label;
SELECT lab_value FROM reg31_obs WHERE patient_id IN (SELECT patient_id FROM reg31_obs WHERE hiv = 'pos');
SELECT lab_value FROM reg31_obs o WHERE EXISTS (SELECT 1 FROM reg31_codes c WHERE c.code = o.hiv);
SELECT (SELECT max(note) FROM reg31_obs) AS scalar;
WITH h AS (SELECT hiv FROM reg31_obs) SELECT count(*) FROM h;
WITH RECURSIVE r AS (SELECT note FROM reg31_obs UNION SELECT note FROM r) SELECT count(*) FROM r;
SELECT lab_value, rank() OVER (PARTITION BY note ORDER BY lab_value) FROM reg31_obs;
SELECT DISTINCT ON (hiv) lab_value FROM reg31_obs;
SELECT c.code, l.n FROM reg31_codes c, LATERAL (SELECT count(*) AS n FROM reg31_obs o WHERE o.hiv = c.code) l;
SELECT o FROM reg31_obs o;
SELECT row_to_json(o.*) FROM reg31_obs o;
SELECT lab_value FROM reg31_obs o WHERE o IS NOT NULL;
SELECT * FROM reg31_obs;
SELECT lab_value FROM reg31_obs UNION ALL SELECT note::numeric FROM reg31_obs;
COPY (SELECT hiv FROM reg31_obs) TO stdout;
COPY reg31_obs TO stdout;
COPY reg31_obs (patient_id, lab_value) TO stdout;
PREPARE q AS SELECT note FROM reg31_obs WHERE patient_id = $1;
EXECUTE q('P1');
-- writes need write scope on the written columns
INSERT INTO reg31_obs (id, patient_id, lab_value) VALUES (9, 'P1', 1);
UPDATE reg31_obs SET ward = 'C' WHERE id = 1;
DELETE FROM reg31_obs WHERE id = 1;
-- a view over the table is no way around it
RESET SESSION AUTHORIZATION;
CREATE VIEW reg31_obs_view WITH (security_invoker) AS SELECT patient_id, hiv FROM reg31_obs;
GRANT SELECT ON reg31_obs_view TO reg31_agent;
SET SESSION AUTHORIZATION reg31_agent;
SELECT patient_id FROM reg31_obs_view;

-- a leakproof patient qual still drives the index, below the row check
SET enable_seqscan = off;
SELECT * FROM reg31_plan($$SELECT lab_value FROM reg31_obs WHERE patient_id = 'P2'$$);
RESET enable_seqscan;
SELECT lab_value FROM reg31_obs WHERE patient_id = 'P2';

-- a new column is unclassified, so unreadable, until classified; SELECT *
-- then fails until then too
RESET SESSION AUTHORIZATION;
ALTER TABLE reg31_obs ADD COLUMN ldl numeric;
SET SESSION AUTHORIZATION reg31_agent;
SELECT ldl FROM reg31_obs;
SELECT lab_value FROM reg31_obs WHERE id = 1;
RESET SESSION AUTHORIZATION;
SECURITY LABEL FOR agentauth ON COLUMN reg31_obs.ldl IS 'lab';
SET SESSION AUTHORIZATION reg31_agent;
SELECT id, ldl FROM reg31_obs ORDER BY id;

-- a token with no class of the table in scope cannot even name patients
RESET SESSION AUTHORIZATION;
SELECT agentauth.issue_token(:'agent', 'TREAT', scopes => '{clinical_note:read}') AS secret_notes \gset
SET SESSION AUTHORIZATION reg31_agent;
SELECT agentauth.begin_session(:'secret_notes') IS NOT NULL AS began;
SELECT patient_id, note FROM reg31_obs ORDER BY id;
SELECT patient_id, lab_value FROM reg31_obs;
-- nor count its rows, nor read its non_phi columns: refused, one denied
-- record, not 0 rows and a denial for every patient (review r33)
SELECT count(*) FROM reg31_labs;
SELECT id FROM reg31_labs;
SELECT count(*) FROM reg31_labs l JOIN reg31_obs o USING (patient_id);
RESET SESSION AUTHORIZATION;
SELECT event, patient, relation, columns, action, outcome, detail::jsonb->>'out_of_scope' AS why
  FROM agentauth.audit_log WHERE relation = 'public.reg31_labs' ORDER BY seq;
-- a read that names no class (the count(*) above) is recorded with the
-- table's classes in scope, on which its rows were decided, not with none
-- (review r38: an auditor asking who read a patient's lab data missed it)
SELECT patient, columns, data_classes, row_count
  FROM agentauth.audit_log
 WHERE relation = 'public.reg31_obs' AND event = 'access' AND columns = '{}'
 ORDER BY seq;
SET SESSION AUTHORIZATION reg31_agent;
-- sensitive classes need their own scope: '*' does not reach them
RESET SESSION AUTHORIZATION;
CREATE ROLE reg31_star LOGIN;
GRANT SELECT ON reg31_obs TO reg31_star;
SELECT agentauth.register_agent('reg31-star', 'reg31_star', 'Lab AI team', '{TREAT}', '{*:read}') AS star \gset
SELECT agentauth.issue_token(:'star', 'TREAT') AS secret_star \gset
SET SESSION AUTHORIZATION reg31_star;
SELECT agentauth.begin_session(:'secret_star') IS NOT NULL AS began;
SELECT id, lab_value, note FROM reg31_obs ORDER BY id;
SELECT hiv FROM reg31_obs;
RESET SESSION AUTHORIZATION;
-- a class made sensitive while the session runs is out of its '*' from its
-- next statement on (1.0 kept the sensitive classes of the session's
-- beginning for its life)
UPDATE agentauth.data_class SET sensitive = true WHERE name = 'clinical_note';
SET SESSION AUTHORIZATION reg31_star;
SELECT id, note FROM reg31_obs ORDER BY id;
SELECT id, lab_value FROM reg31_obs ORDER BY id;
RESET SESSION AUTHORIZATION;
UPDATE agentauth.data_class SET sensitive = false WHERE name = 'clinical_note';
SET SESSION AUTHORIZATION reg31_star;
SELECT id, note FROM reg31_obs ORDER BY id;
RESET SESSION AUTHORIZATION;
