-- Writes (SPEC 5, 6.4): write scope on the written columns, write consent
-- for the row's patient, errors (never silent drops) for rows that can be
-- read but not written, and clinician approvals under require_approval.
\set SHOW_CONTEXT never
CREATE ROLE reg33_agent LOGIN;
CREATE ROLE reg33_doc LOGIN;
CREATE TABLE reg33_meds (
    id          int PRIMARY KEY,
    patient_id  text NOT NULL,
    drug        text,
    dose        text,
    note        text
);
INSERT INTO reg33_meds VALUES (1, 'R33-P1', 'aspirin', '100mg', 'x'), (2, 'R33-P2', 'statin', '20mg', 'y'),
                              (3, 'R33-P3', 'insulin', '10u', 'z');
SELECT agentauth.protect_table('reg33_meds', 'patient_id',
    '{"id": "non_phi", "drug": "medication", "dose": "medication", "note": "clinical_note"}');
GRANT SELECT, INSERT, UPDATE, DELETE ON reg33_meds TO reg33_agent;
SELECT agentauth.register_agent('reg33-agent', 'reg33_agent', 'Pharmacy AI', '{TREATDS}',
    '{medication:read,medication:write,clinical_note:read,clinical_note:write}') AS agent \gset
SELECT agentauth.register_human('reg33-dr', 'reg33_doc', '{TREAT,TREATDS}', '{medication:read,medication:write,clinical_note:write}',
    can_approve => true) AS doc \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS', scopes => '{medication:read,medication:write}') AS s_med \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS s_all \gset
-- P1 lets the agent read and write, P2 only read, P3 nothing
SELECT agentauth.record_consent('R33-P1', 'permit', '{TREATDS}', actions => '{read,write}') AS c1 \gset
SELECT agentauth.record_consent('R33-P2', 'permit', '{TREATDS}') AS c2 \gset

SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
SELECT patient_id, drug FROM reg33_meds ORDER BY id;
-- INSERT needs write consent for the new row's patient
INSERT INTO reg33_meds (id, patient_id, drug, dose) VALUES (10, 'R33-P1', 'metformin', '500mg');
INSERT INTO reg33_meds (id, patient_id, drug, dose) VALUES (11, 'R33-P2', 'metformin', '500mg');
INSERT INTO reg33_meds (id, patient_id, drug, dose) VALUES (12, 'R33-P3', 'metformin', '500mg');
INSERT INTO reg33_meds (id, patient_id, drug) VALUES (13, 'R33-P1', 'ibuprofen') RETURNING id, drug;
-- a written column out of scope fails before any row; so does RETURNING one
INSERT INTO reg33_meds (id, patient_id, drug, note) VALUES (14, 'R33-P1', 'x', 'y');
INSERT INTO reg33_meds (id, patient_id, drug) VALUES (14, 'R33-P1', 'x') RETURNING note;
UPDATE reg33_meds SET dose = '1mg' WHERE id = 1 RETURNING note;
DELETE FROM reg33_meds WHERE id = 1 RETURNING note;
-- UPDATE: invisible rows are skipped, visible but unwritable rows refuse
UPDATE reg33_meds SET dose = '200mg' WHERE patient_id = 'R33-P1' AND id = 1;
UPDATE reg33_meds SET dose = '40mg' WHERE patient_id = 'R33-P2';
UPDATE reg33_meds SET dose = '20u' WHERE patient_id = 'R33-P3';
UPDATE reg33_meds SET dose = 'all';
UPDATE reg33_meds SET dose = '300mg' WHERE id = 1 RETURNING patient_id, dose;
-- moving a row to another patient writes every column of it (1.1): it
-- needs write scope for every class, as DELETE does
UPDATE reg33_meds SET patient_id = 'R33-P3' WHERE id = 13;
-- DELETE removes every column: it needs write scope for every class
DELETE FROM reg33_meds WHERE id = 13;
SELECT agentauth.begin_session(:'s_all') IS NOT NULL AS began;
-- moving a row to a patient without write consent refuses
UPDATE reg33_meds SET patient_id = 'R33-P3' WHERE id = 13;
DELETE FROM reg33_meds WHERE id = 13;
DELETE FROM reg33_meds WHERE patient_id = 'R33-P2';
SELECT id, patient_id, drug, dose FROM reg33_meds ORDER BY id;
-- a row moved to another patient moves every class of it: P5 lets the
-- agent write medication only, so its note may not move to P1, whose
-- consent would then show it (1.0 asked P5 about the patient column only)
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
INSERT INTO reg33_meds VALUES (20, 'R33-P5', 'warfarin', '5mg', 'P5 private note');
SELECT agentauth.record_consent('R33-P5', 'permit', '{TREATDS}', '{medication}', '{read,write}') IS NOT NULL AS c5;
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_all') IS NOT NULL AS began;
UPDATE reg33_meds SET patient_id = 'R33-P1' WHERE id = 20;
SELECT id, note FROM reg33_meds WHERE id = 20;
-- its medication columns alone it may still write
UPDATE reg33_meds SET dose = '2.5mg' WHERE id = 20;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT id, patient_id, dose, note FROM reg33_meds WHERE id = 20;
DELETE FROM reg33_meds WHERE id = 20;
SET SESSION AUTHORIZATION reg33_agent;

-- require_approval: an agent's insert needs a clinician's approval per patient
RESET SESSION AUTHORIZATION;
SELECT agentauth.require_approval('reg33_meds', '{insert}');
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_all') IS NOT NULL AS began;
INSERT INTO reg33_meds (id, patient_id, drug) VALUES (20, 'R33-P1', 'warfarin');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION reg33_doc;
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'reg33_meds', 'R33-P1', 'insert', 'start warfarin') AS approval \gset
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_all') IS NOT NULL AS began;
-- one statement inserting two rows for P1 uses one approval
INSERT INTO reg33_meds (id, patient_id, drug) VALUES (20, 'R33-P1', 'warfarin'), (21, 'R33-P1', 'vitamin k');
-- the approval is used up
INSERT INTO reg33_meds (id, patient_id, drug) VALUES (22, 'R33-P1', 'heparin');
-- updates need none
UPDATE reg33_meds SET dose = '5mg' WHERE id = 20;
RESET SESSION AUTHORIZATION;
SELECT event, patient, action, row_count, columns, data_classes, outcome,
       authority ? 'approval' AS has_approval,
       (authority->>'approval') = :'approval' AS approval_named,
       authority->'consents' ? :'c1' AS consent_named
  FROM agentauth.audit_log
 WHERE relation = 'public.reg33_meds' AND event IN ('access', 'denied') AND action <> 'read'
 ORDER BY seq;
-- leave no approval behind for other suites
DELETE FROM agentauth.approval WHERE agent = :'agent';
-- COPY FROM cannot be checked row by row: refused in a session, and recorded
SELECT coalesce(max(seq), 0) AS seq_copy FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_all') IS NOT NULL AS began;
COPY reg33_meds (id, patient_id, drug) FROM '/dev/null';
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT event, action, columns, outcome, detail->>'reason' AS reason
  FROM agentauth.audit_log WHERE seq > :seq_copy AND relation = 'public.reg33_meds';

-- a deny of some of the write actions refuses "write", which asks about
-- all three (explain_access; 1.0 matched a deny only when it covered all
-- three, and said permit); the row checks ask about one action at a time
SELECT agentauth.record_consent('R33-P9', 'permit', '{TREATDS}', actions => '{write}') IS NOT NULL AS p9_permit;
SELECT agentauth.record_consent('R33-P9', 'deny', '{TREATDS}', actions => '{delete}') IS NOT NULL AS p9_deny;
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_all') IS NOT NULL AS began;
SELECT decision, reason FROM agentauth.explain_access('R33-P9', 'medication', 'write');
SELECT decision, reason FROM agentauth.explain_access('R33-P9', 'medication', 'update');
SELECT decision, reason FROM agentauth.explain_access('R33-P9', 'medication', 'delete');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- an UPDATE or DELETE through a view reads what the view's WHERE tests:
-- the agent's own view may not test a column out of its scopes (1.0 took
-- the table's permission bits, which an updatable view reduces to UPDATE
-- of the columns set, and the count of rows updated answered the test)
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
CREATE TEMP VIEW reg33_probe AS
  SELECT id, dose FROM reg33_meds WHERE patient_id = 'R33-P1' AND note = 'x';
UPDATE reg33_probe SET dose = '100mg';
DELETE FROM reg33_probe;
-- a view that tests columns in scope is a view like any other
CREATE TEMP VIEW reg33_fine AS
  SELECT id, dose FROM reg33_meds WHERE patient_id = 'R33-P1' AND drug = 'aspirin';
UPDATE reg33_fine SET dose = '100mg';
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- An INSERT through a view writes the view's own column defaults, which
-- the statement does not name: each is an inserted column (1.1, found by
-- review: the agent's view wrote the note, out of its scope, recorded
-- without it).  The table's own defaults are its owner's, not the
-- statement's.
CREATE TABLE reg33_dflt (id int PRIMARY KEY, patient_id text NOT NULL,
                         drug text, dose text DEFAULT '1 tablet', note text);
SELECT agentauth.protect_table('reg33_dflt', 'patient_id',
    '{"id": "non_phi", "drug": "medication", "dose": "medication", "note": "clinical_note"}');
GRANT SELECT, INSERT ON reg33_dflt TO reg33_agent;
SELECT coalesce(max(seq), 0) AS s33d FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
CREATE TEMP VIEW reg33_dv AS SELECT id, patient_id, drug, dose, note FROM reg33_dflt;
ALTER VIEW reg33_dv ALTER COLUMN note SET DEFAULT 'set by the view';
INSERT INTO reg33_dv (id, patient_id, drug) VALUES (40, 'R33-P1', 'x');
-- the table's own default (dose) is not the statement's; a view's
-- default of a class in scope is an inserted column, and recorded
ALTER VIEW reg33_dv ALTER COLUMN note DROP DEFAULT;
INSERT INTO reg33_dv (id, patient_id, drug) VALUES (41, 'R33-P1', 'x');
ALTER VIEW reg33_dv ALTER COLUMN dose SET DEFAULT '5mg';
INSERT INTO reg33_dv (id, patient_id, drug) VALUES (42, 'R33-P1', 'x');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT id, dose, note FROM reg33_dflt ORDER BY id;
SELECT event, action, patient, columns, data_classes FROM agentauth.audit_log
 WHERE seq > :s33d AND relation = 'public.reg33_dflt' ORDER BY seq;

-- a plan made before the session began is marked the same (1.1, found by
-- review: a statement prepared outside the session wrote the view's
-- default in it)
SET SESSION AUTHORIZATION reg33_agent;
CREATE TEMP VIEW reg33_dv2 AS SELECT id, patient_id, drug, dose, note FROM reg33_dflt;
ALTER VIEW reg33_dv2 ALTER COLUMN note SET DEFAULT 'set by the view';
PREPARE reg33_early AS INSERT INTO reg33_dv2 (id, patient_id, drug) VALUES (43, 'R33-P1', 'x');
EXECUTE reg33_early;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
EXECUTE reg33_early;
SELECT agentauth.end_session();
DEALLOCATE reg33_early;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS row_43 FROM reg33_dflt WHERE id = 43;

-- A stored generated column is written from the columns it is computed
-- from: by every INSERT, and by an UPDATE of one of them -- and a
-- generated patient column moves the row to another patient (1.1, found
-- by review: an agent set mrn, the row moved to another patient with only
-- mrn's class checked, and it read the note withheld from the first).
CREATE TABLE reg33_gen (
    id          int PRIMARY KEY,
    mrn         text NOT NULL,
    patient_id  text GENERATED ALWAYS AS (mrn) STORED,
    drug        text,
    note        text,
    note_len    int GENERATED ALWAYS AS (length(note)) STORED
);
INSERT INTO reg33_gen (id, mrn, drug, note) VALUES (1, 'R33-P5', 'aspirin', 'P5 private note'),
                                                   (2, 'R33-P1', 'statin', NULL);
SELECT agentauth.protect_table('reg33_gen', 'patient_id',
    '{"id": "non_phi", "mrn": "medication", "drug": "medication", "note": "clinical_note", "note_len": "clinical_note"}');
GRANT SELECT, INSERT, UPDATE ON reg33_gen TO reg33_agent;
SELECT coalesce(max(seq), 0) AS s33g FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
-- medication scope only: moving a row writes its note too
UPDATE reg33_gen SET mrn = 'R33-P1' WHERE id = 1;
-- an INSERT writes note_len, a clinical_note column, even with no note
INSERT INTO reg33_gen (id, mrn, drug) VALUES (3, 'R33-P1', 'x');
-- an UPDATE of drug recomputes nothing: medication only
UPDATE reg33_gen SET drug = 'asa' WHERE id = 2;
SELECT agentauth.begin_session(:'s_all') IS NOT NULL AS began;
-- every class in scope: P5 lets the agent write medication only
UPDATE reg33_gen SET mrn = 'R33-P1' WHERE id = 1;
-- within P1's consent: an update of the note writes note_len too
UPDATE reg33_gen SET note = 'longer' WHERE id = 2;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT id, mrn, patient_id, note, note_len FROM reg33_gen ORDER BY id;
SELECT event, action, patient, columns, data_classes FROM agentauth.audit_log
 WHERE seq > :s33g AND relation = 'public.reg33_gen' ORDER BY seq;

-- TRUNCATE in a session, and TRUNCATE or COPY as a role that bypasses row
-- security while the backend has a session, are refused -- and recorded,
-- as COPY FROM and a read as such a role are (1.1, found by review: none
-- left a record)
CREATE ROLE reg33_bypass NOLOGIN BYPASSRLS;
GRANT reg33_bypass TO reg33_agent;
GRANT ALL ON reg33_dflt TO reg33_bypass;
SELECT coalesce(max(seq), 0) AS s33t FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
TRUNCATE reg33_dflt;
SET ROLE reg33_bypass;
TRUNCATE reg33_dflt;
COPY reg33_dflt (id, drug) TO STDOUT;
COPY reg33_dflt (id, drug) FROM STDIN;
\.
RESET ROLE;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT count(*) AS rows_left FROM reg33_dflt;
SELECT event, action, columns, outcome, detail->>'reason' AS reason, detail->>'as_role' AS as_role
  FROM agentauth.audit_log
 WHERE seq > :s33t AND relation = 'public.reg33_dflt' AND event = 'denied' ORDER BY seq;

-- A partition's own generated column (its parent's column is a plain one:
-- set up before protection; after it, such a partition is refused) is
-- written by every write of the tree (1.1, found by review: a row routed
-- into the partition stored an HIV value the agent could not write)
CREATE TABLE reg33_part (id int, patient_id text NOT NULL, drug text, note text) PARTITION BY LIST (drug);
CREATE TABLE reg33_part_other PARTITION OF reg33_part DEFAULT;
CREATE TABLE reg33_part_a (id int, patient_id text NOT NULL, drug text,
    note text GENERATED ALWAYS AS (CASE WHEN drug = 'a' THEN 'set by the partition' END) STORED);
ALTER TABLE reg33_part ATTACH PARTITION reg33_part_a FOR VALUES IN ('a');
SELECT agentauth.protect_table('reg33_part', 'patient_id',
    '{"id": "non_phi", "drug": "medication", "note": "clinical_note"}');
GRANT SELECT, INSERT, UPDATE ON reg33_part TO reg33_agent;
SET SESSION AUTHORIZATION reg33_agent;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
INSERT INTO reg33_part (id, patient_id, drug) VALUES (1, 'R33-P1', 'a');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT count(*) AS part_rows FROM reg33_part;

-- A privileged write's record names the columns it set unnamed: a view's
-- default, and the generated columns COPY FROM writes (1.1, found by
-- review)
SELECT coalesce(max(seq), 0) AS s33p FROM agentauth.audit_log \gset
CREATE VIEW reg33_pv AS SELECT * FROM reg33_gen;
ALTER VIEW reg33_pv ALTER COLUMN note SET DEFAULT 'by the view';
INSERT INTO reg33_pv (id, mrn, drug) VALUES (10, 'R33-P1', 'x');
COPY reg33_gen (id, mrn, drug) FROM STDIN WITH (FORMAT csv);
11,R33-P1,y
\.
SELECT event, action, columns FROM agentauth.audit_log
 WHERE seq > :s33p AND relation = 'public.reg33_gen' AND action <> 'read' ORDER BY seq;

-- The log names a relation the same whatever the session's
-- quote_all_identifiers, and element_access finds it whatever the
-- auditor's (1.1, found by review: "public"."reg33_dflt", which the
-- reports never matched)
SELECT coalesce(max(seq), 0) AS s33q FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg33_agent;
SET quote_all_identifiers = on;
SELECT agentauth.begin_session(:'s_med') IS NOT NULL AS began;
SELECT count(*) FROM reg33_dflt WHERE drug IS NOT NULL;
SELECT agentauth.end_session();
RESET quote_all_identifiers;
RESET SESSION AUTHORIZATION;
SELECT DISTINCT relation FROM agentauth.audit_log WHERE seq > :s33q AND relation IS NOT NULL;
SET ROLE agentauth_auditor;
SET quote_all_identifiers = on;
SELECT count(*) AS element_reads
  FROM agentauth.element_access('R33-P1', 'reg33_dflt', 'drug', '-infinity', 'infinity')
 WHERE seq > :s33q;
RESET quote_all_identifiers;
RESET ROLE;
-- and the administrative records: a table protected by an admin whose
-- session has quote_all_identifiers on (1.1)
SET quote_all_identifiers = on;
CREATE TABLE reg33_q (id int PRIMARY KEY, patient_id text NOT NULL);
SELECT agentauth.protect_table('reg33_q', 'patient_id', '{"id": "non_phi"}');
RESET quote_all_identifiers;
SELECT event, relation FROM agentauth.audit_log WHERE event = 'table_protected' AND relation LIKE '%reg33_q%';
