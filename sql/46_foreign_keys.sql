-- Foreign keys between protected tables (issue 13, item 1).  PostgreSQL
-- checks a foreign key with a query it runs as the referenced table's
-- owner without row security: SELECT ... FOR KEY SHARE of the parent row
-- (an insert or update of the child), or of the children (NO ACTION /
-- RESTRICT on a delete or update of the parent).  Such a key check
-- writes nothing and tells no more than the constraint's error: it is
-- let through.  1.0 took its lock for a write and refused it as a
-- cascade, so no agent could insert a row whose foreign key referenced a
-- protected table.  A cascading action (CASCADE, SET NULL, SET DEFAULT)
-- that writes a protected row stays refused and recorded.
\set SHOW_CONTEXT never
CREATE ROLE reg46_agent LOGIN;
CREATE ROLE reg46_clerk LOGIN;
CREATE ROLE reg46_owner NOLOGIN;
CREATE TABLE reg46_pat (patient_id text PRIMARY KEY, name text);
CREATE TABLE reg46_enc (enc_id int PRIMARY KEY,
                        patient_id text NOT NULL REFERENCES reg46_pat, kind text);
CREATE TABLE reg46_lab (id int PRIMARY KEY,
                        patient_id text NOT NULL REFERENCES reg46_pat ON DELETE RESTRICT,
                        enc_id int REFERENCES reg46_enc, value text);
CREATE TABLE reg46_note (id int PRIMARY KEY,
                         patient_id text REFERENCES reg46_pat ON DELETE CASCADE, note text);
CREATE TABLE reg46_flag (id int PRIMARY KEY, patient_id text,
                         enc_id int REFERENCES reg46_enc ON DELETE SET NULL, flag text);
INSERT INTO reg46_pat VALUES ('R46-P1', 'Ada'), ('R46-P2', 'Ben'), ('R46-P3', 'Cy'),
                             ('R46-P4', 'Di'), ('R46-P5', 'Ed');
INSERT INTO reg46_enc VALUES (1, 'R46-P1', 'visit'), (2, 'R46-P2', 'visit'),
                             (3, 'R46-P3', 'visit'), (4, 'R46-P4', 'visit');
INSERT INTO reg46_lab VALUES (1, 'R46-P1', 1, 'x');
INSERT INTO reg46_note VALUES (1, 'R46-P2', 'n');
INSERT INTO reg46_flag VALUES (1, 'R46-P4', 4, 'f');
SELECT agentauth.protect_table('reg46_pat', 'patient_id', '{"name": "demographics"}');
SELECT agentauth.protect_table('reg46_enc', 'patient_id', '{"enc_id": "non_phi", "kind": "encounter"}');
SELECT agentauth.protect_table('reg46_lab', 'patient_id', '{"id": "non_phi", "enc_id": "non_phi", "value": "lab"}');
SELECT agentauth.protect_table('reg46_note', 'patient_id', '{"id": "non_phi", "note": "clinical_note"}');
SELECT agentauth.protect_table('reg46_flag', 'patient_id', '{"id": "non_phi", "enc_id": "non_phi", "flag": "encounter"}');
GRANT SELECT, INSERT, UPDATE, DELETE ON reg46_pat, reg46_enc, reg46_lab, reg46_note, reg46_flag TO reg46_agent;
-- an agent that writes labs, and may delete patients and encounters; it
-- has no scope for notes at all
SELECT agentauth.register_agent('reg46-agent', 'reg46_agent', 'Lab interface', '{CAREMGT}',
    '{lab:read,lab:write,demographics:read,demographics:write,encounter:read,encounter:write}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'CAREMGT') AS tok \gset
-- P1, P2, P4, P5 let it read and write; P3 nothing
SELECT count(agentauth.record_consent(p, 'permit', '{CAREMGT}', actions => '{read,write}')) AS consents
  FROM unnest(ARRAY['R46-P1', 'R46-P2', 'R46-P4', 'R46-P5']) p;
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg46_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- the child's key check reads the parent as its owner: permitted writes work
INSERT INTO reg46_lab VALUES (2, 'R46-P1', 1, 'y');
INSERT INTO reg46_lab (id, patient_id, value) VALUES (3, 'R46-P2', 'z');
UPDATE reg46_lab SET enc_id = 2, patient_id = 'R46-P2' WHERE id = 3;
-- a withheld patient: the row check refuses the row before any key check,
-- whether the patient's row exists (P3) or not (P9): the same error
INSERT INTO reg46_lab VALUES (4, 'R46-P3', NULL, 'w');
INSERT INTO reg46_lab VALUES (4, 'R46-P9', NULL, 'w');
-- a permitted row whose key is missing: the constraint's error, no values
INSERT INTO reg46_lab VALUES (4, 'R46-P5', 99, 'w');
\echo SQLSTATE :SQLSTATE
-- a key of a withheld patient's row (encounter 3 of P3) shows that it
-- exists, as a unique constraint would, and nothing of the row
INSERT INTO reg46_lab VALUES (5, 'R46-P5', 3, 'v');
SELECT id, patient_id, enc_id, value FROM reg46_lab ORDER BY id;
SELECT enc_id, patient_id FROM reg46_enc ORDER BY enc_id;
-- the parent's NO ACTION / RESTRICT checks of its children
DELETE FROM reg46_enc WHERE enc_id = 1;
\echo SQLSTATE :SQLSTATE
DELETE FROM reg46_pat WHERE patient_id = 'R46-P1';
\echo SQLSTATE :SQLSTATE
UPDATE reg46_enc SET enc_id = 10 WHERE enc_id = 1;
-- once its child is gone, the checks find nothing: the delete goes through
DELETE FROM reg46_lab WHERE id = 5;
DELETE FROM reg46_pat WHERE patient_id = 'R46-P5';
-- cascades into protected tables stay refused: ON DELETE CASCADE would
-- delete P2's note (a class the agent may not even read), SET NULL would
-- rewrite P4's flag, both without the row check
DELETE FROM reg46_lab WHERE id = 3;
DELETE FROM reg46_enc WHERE enc_id = 2;
DELETE FROM reg46_pat WHERE patient_id = 'R46-P2';
DELETE FROM reg46_enc WHERE enc_id = 4;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SET row_security = off;
SELECT patient_id FROM reg46_pat ORDER BY 1;
SELECT id, patient_id, note FROM reg46_note;
SELECT id, enc_id FROM reg46_flag;
RESET row_security;

-- outside a session a key check reads only the key too: a role without a
-- session inserts into an unprotected table referencing a protected one
CREATE TABLE reg46_ext (id int, patient_id text REFERENCES reg46_pat);
GRANT INSERT ON reg46_ext TO reg46_clerk;
SET SESSION AUTHORIZATION reg46_clerk;
INSERT INTO reg46_ext VALUES (1, 'R46-P3');
INSERT INTO reg46_ext VALUES (2, 'R46-P9');
-- the protected table itself stays closed to it
SELECT count(*) FROM reg46_pat;
RESET SESSION AUTHORIZATION;

-- the records: accesses and refusals of the agent's statements, the
-- refused cascades; no record of a key check
SELECT event, patient, relation, action, row_count, outcome, detail->>'reason' AS reason
  FROM agentauth.audit_log
 WHERE seq > :s AND relation LIKE 'public.reg46\_%'
   AND event IN ('access', 'denied', 'unregistered_access')
 ORDER BY seq;

-- examples/ehr: ehr.patients <- ehr.encounters <- ehr.lab_results, keyed
-- by an integer patient id, NO ACTION foreign keys (purpose CAREMGT: no
-- default decision of another suite applies)
\set ECHO none
SET client_min_messages = warning;
\i examples/ehr/schema.sql
\set patients 20
\i examples/ehr/generate.sql
RESET client_min_messages;
\set ECHO all
-- the tables belong to a NOLOGIN owner, as the README advises: the key
-- checks run as that owner
ALTER SCHEMA ehr OWNER TO reg46_owner;
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'ehr'::regnamespace
                AND c.relkind IN ('r', 'p') LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO reg46_owner', t);
    END LOOP;
END
$$;
SELECT agentauth.protect_table('ehr.patients', 'patient_id',
    '{"mrn": "identifiers", "phone": "contact", "postal_code": "contact"}', 'demographics');
SELECT agentauth.protect_table('ehr.encounters', 'patient_id', '{"encounter_id": "non_phi"}', 'encounter');
SELECT agentauth.protect_table('ehr.lab_results', 'patient_id',
    '{"result_id": "non_phi", "encounter_id": "non_phi", "loinc": "non_phi"}', 'lab');
GRANT USAGE ON SCHEMA ehr TO reg46_agent;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ehr TO reg46_agent;
-- the lab interface may write labs of patient 7 (integer id), not of 8
SELECT agentauth.record_consent(7, 'permit', '{CAREMGT}', '{lab}', '{read,write}') IS NOT NULL AS consent;
SELECT agentauth.record_consent(8, 'permit', '{CAREMGT}', '{lab}', '{read}') IS NOT NULL AS consent;
SELECT agentauth.issue_token(:'agent', 'CAREMGT', scopes => '{lab:read,lab:write}') AS lab_tok \gset
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg46_agent;
SELECT agentauth.begin_session(:'lab_tok') IS NOT NULL AS began;
-- a result for a consenting patient, in one of its encounters: its keys
-- reference ehr.patients and ehr.encounters, which the token cannot read
INSERT INTO ehr.lab_results VALUES (900001, 7, 71, '2160-0', 1.1, '2025-06-01');
-- a patient whose consent permits only reading, and one with none
INSERT INTO ehr.lab_results VALUES (900002, 8, 81, '2160-0', 1.2, '2025-06-01');
INSERT INTO ehr.lab_results VALUES (900003, 9, 91, '2160-0', 1.3, '2025-06-01');
-- an encounter that does not exist
INSERT INTO ehr.lab_results VALUES (900004, 7, 79, '2160-0', 1.4, '2025-06-01');
SELECT result_id, patient_id, encounter_id, value FROM ehr.lab_results WHERE result_id > 900000;
UPDATE ehr.lab_results SET value = 1.0 WHERE result_id = 900001;
DELETE FROM ehr.lab_results WHERE result_id = 900001;
SELECT patient_id, count(*) AS results FROM ehr.lab_results
 WHERE patient_id IN (7, 8) GROUP BY 1 ORDER BY 1;
-- patients and encounters stay out of this token's scopes
SELECT kind FROM ehr.encounters WHERE patient_id = 7;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT event, patient, relation, action, row_count, outcome
  FROM agentauth.audit_log
 WHERE seq > :s AND relation LIKE 'ehr.%' AND event IN ('access', 'denied')
 ORDER BY seq;

SET client_min_messages = warning;
DROP SCHEMA ehr, ref, derived CASCADE;
DROP TABLE reg46_ext, reg46_flag, reg46_note, reg46_lab, reg46_enc, reg46_pat;
RESET client_min_messages;
DROP ROLE reg46_owner;
