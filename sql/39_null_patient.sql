-- Rows that name no patient (issue 12, item 12).  No consent can permit
-- them: a read withholds them, an UPDATE or DELETE skips them (the session
-- cannot read them), and every path that would write one -- INSERT,
-- INSERT ... SELECT, ON CONFLICT DO UPDATE, UPDATE setting the patient to
-- NULL -- is refused (42501).  Each leaves a `denied` record with patient
-- NULL and the rows counted, as a withheld or refused patient does.  1.0
-- refused such writes without any record, and refused an UPDATE that
-- merely scanned such a row.  COPY FROM is refused by PostgreSQL under row
-- security, whatever the patient.
\set SHOW_CONTEXT never
CREATE ROLE reg39_agent LOGIN;
CREATE TABLE reg39_lab (id int PRIMARY KEY, patient_id text, test text);
-- two orphan rows, loaded before the table was protected
INSERT INTO reg39_lab VALUES (1, 'R39-P1', 'a'), (2, NULL, 'b'), (3, 'R39-P1', 'c'), (4, NULL, 'd');
SELECT agentauth.protect_table('reg39_lab', 'patient_id', '{"id": "non_phi", "test": "lab"}');
GRANT SELECT, INSERT, UPDATE, DELETE ON reg39_lab TO reg39_agent;
SELECT agentauth.register_agent('reg39-agent', 'reg39_agent', 'Orphans', '{TREATDS}', '{lab:read,lab:write}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS tok \gset
SELECT agentauth.record_consent('R39-P1', 'permit', '{TREATDS}', actions => '{read,write}') IS NOT NULL AS consent;
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg39_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- reads: the orphans are withheld
SELECT id, patient_id, test FROM reg39_lab ORDER BY id;
-- UPDATE and DELETE skip them
UPDATE reg39_lab SET test = test || '!' WHERE id IN (2, 3);
DELETE FROM reg39_lab WHERE id = 4;
-- every way of writing one is refused
INSERT INTO reg39_lab VALUES (10, NULL, 'x');
INSERT INTO reg39_lab SELECT 11, NULL, 'y';
INSERT INTO reg39_lab SELECT 12, CASE WHEN g = 2 THEN NULL ELSE 'R39-P1' END, 'z' FROM generate_series(1, 3) g;
UPDATE reg39_lab SET patient_id = NULL WHERE id = 1;
INSERT INTO reg39_lab VALUES (1, 'R39-P1', 'again') ON CONFLICT (id) DO UPDATE SET patient_id = NULL;
INSERT INTO reg39_lab VALUES (13, NULL, 'x') ON CONFLICT (id) DO NOTHING;
COPY reg39_lab FROM stdin;
14	\N	copied
\.
SELECT id, patient_id, test FROM reg39_lab ORDER BY id;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- the records: NULL-patient denials next to the patient's records
SELECT event, patient, action, row_count, outcome, authority->>'reason' AS reason
  FROM agentauth.audit_log
 WHERE seq > :s AND relation = 'public.reg39_lab'
 ORDER BY seq;
SELECT id, patient_id, test FROM reg39_lab ORDER BY id;

-- an id that is empty or only spaces names no patient either: no consent
-- can name it (record_consent refuses it), so a default that permits reads
-- does not reach it (1.0 let a default permit it, and nothing could deny it)
INSERT INTO reg39_lab VALUES (20, '', 'e'), (21, '   ', 's');
SELECT agentauth.set_default_decision('TREATDS', '*', 'permit');
SET SESSION AUTHORIZATION reg39_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT id, test FROM reg39_lab WHERE id >= 20 ORDER BY id;
INSERT INTO reg39_lab VALUES (22, '', 'x');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT agentauth.set_default_decision('TREATDS', '*', 'none');
