-- Protected schemas (issue 13, item 3): a schema declared as holding PHI
-- protects every table created in it, or renamed or moved into it, in the
-- statement that makes it; a table that cannot be protected is refused.
-- Rebuilding a derived table (DROP; CREATE TABLE AS) stays protected.
\set SHOW_CONTEXT never
CREATE ROLE reg50_admin LOGIN;
GRANT agentauth_admin TO reg50_admin;
CREATE ROLE reg50_etl LOGIN;
CREATE ROLE reg50_agent LOGIN;
CREATE ROLE reg50_reader LOGIN;
CREATE SCHEMA reg50_phi;
CREATE SCHEMA reg50_other;
GRANT USAGE, CREATE ON SCHEMA reg50_phi, reg50_other TO reg50_etl;
GRANT USAGE ON SCHEMA reg50_phi, reg50_other TO reg50_agent, reg50_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE reg50_etl IN SCHEMA reg50_phi
    GRANT SELECT ON TABLES TO reg50_agent, reg50_reader;
CREATE TABLE reg50_phi.labs (patient_id int NOT NULL, loinc text, value numeric, note text);
INSERT INTO reg50_phi.labs VALUES (1, '2160-0', 1.1, 'a'), (2, '2160-0', 2.2, 'b'), (3, '33914-3', 55, 'c');
GRANT SELECT ON reg50_phi.labs TO reg50_agent, reg50_reader;
SELECT agentauth.register_agent('reg50-agent', 'reg50_agent', 'Kidney AI', '{TREATDS}',
    '{lab:read,clinical_note:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS tok \gset
SELECT agentauth.record_consent('1', 'permit', '{TREATDS}') IS NOT NULL AS c1;
SELECT agentauth.record_consent('3', 'permit', '{TREATDS}') IS NOT NULL AS c3;

-- only an administrator declares a schema; the arguments are checked
SET ROLE reg50_etl;
SELECT agentauth.protect_schema('reg50_phi', 'patient_id', '{}', 'lab');
RESET ROLE;
SET ROLE reg50_admin;
SELECT agentauth.protect_schema('reg50_phi', 'patient_id', '{"note": "nope"}', 'lab');
SELECT agentauth.protect_schema('reg50_phi', 'patient_id', '[]', 'lab');
SELECT agentauth.protect_schema('reg50_phi', 'patient_id', '{}', 'nope');
SELECT agentauth.protect_schema('reg50_phi', 'patient_id', '{"patient_id": "lab"}', 'lab');
SELECT agentauth.protect_schema('agentauth', 'patient_id', '{}', 'lab');
-- the table already there is protected by the declaration
SELECT agentauth.protect_schema('reg50_phi', 'patient_id', '{"note": "clinical_note", "loinc": "non_phi"}', 'lab');
RESET ROLE;
SELECT schema_name, patient_column, column_classes, default_class FROM agentauth.protected_schemas;
SELECT relation, column_name, data_class, patient_column FROM agentauth.protected_columns
 WHERE relation::text LIKE 'reg50%' ORDER BY relation::text, column_name;

-- CREATE TABLE, CREATE TABLE AS, SELECT INTO, CREATE TABLE LIKE: protected
-- in the statement that makes them, whoever makes them
SET SESSION AUTHORIZATION reg50_etl;
CREATE TABLE reg50_phi.made (patient_id int, score int, note text);
CREATE TABLE reg50_phi.copied AS SELECT 7 AS patient_id, 'x'::text AS note;
SELECT 8 AS patient_id, 1.5 AS value INTO reg50_phi.selected;
CREATE TABLE reg50_phi.liked (LIKE reg50_phi.made);
RESET SESSION AUTHORIZATION;
SELECT relation, column_name, data_class FROM agentauth.protected_columns
 WHERE relation::text IN ('reg50_phi.made', 'reg50_phi.copied', 'reg50_phi.selected', 'reg50_phi.liked')
 ORDER BY relation::text, column_name;
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
 WHERE c.relnamespace = 'reg50_phi'::regnamespace AND c.relkind = 'r' ORDER BY 1;
-- in one transaction too: protected before the transaction ends
BEGIN;
SET LOCAL ROLE reg50_etl;
CREATE TABLE reg50_phi.in_tx (patient_id int, v text);
SELECT agentauth._table_label('reg50_phi.in_tx') AS label_in_tx;
COMMIT;
-- a function or DO block that makes a table
SET ROLE reg50_etl;
DO $$ BEGIN EXECUTE 'CREATE TABLE reg50_phi.from_do (patient_id int, v text)'; END $$;
RESET ROLE;
SELECT agentauth._table_label('reg50_phi.from_do') AS label_from_do;

-- a table that cannot be protected is refused (42501)
SET ROLE reg50_etl;
CREATE TABLE reg50_phi.codes (code text, name text);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE reg50_phi.codes2 AS SELECT 'x'::text AS code;
CREATE MATERIALIZED VIEW reg50_phi.mv AS SELECT 1 AS patient_id;
\echo :LAST_ERROR_SQLSTATE
CREATE VIEW reg50_phi.v AS SELECT 1 AS patient_id;   -- a view holds no rows: allowed
SELECT to_regclass('reg50_phi.codes') IS NULL AS codes_refused, to_regclass('reg50_phi.mv') IS NULL AS mv_refused;
-- renamed or moved into the schema
CREATE TABLE reg50_other.moved (patient_id int, v text);
CREATE TABLE reg50_other.nopatient (v text);
ALTER TABLE reg50_other.moved SET SCHEMA reg50_phi;
ALTER TABLE reg50_other.nopatient SET SCHEMA reg50_phi;
RESET ROLE;
SELECT agentauth._table_label('reg50_phi.moved') AS label_moved,
       to_regclass('reg50_other.nopatient') IS NOT NULL AS nopatient_stayed;
-- a column added later gets the schema's class (a column no class covers
-- stays unclassified: unreadable)
ALTER TABLE reg50_phi.made ADD COLUMN value numeric, ADD COLUMN loinc text;
SELECT column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg50_phi.made'::regclass ORDER BY 1;
-- by the table's owner, a column of a class the table holds no column of
-- stays unclassified (unreadable), with a warning: the table's classes
-- decide who learns that a patient has rows at all (1.1, found by review:
-- a column "kind" added to HIV tests, of class encounter by the
-- declaration, let an agent with encounter consent count a patient's HIV
-- tests); one of a class it holds, or non_phi, is classified
SET ROLE reg50_etl;
ALTER TABLE reg50_phi.copied ADD COLUMN value numeric, ADD COLUMN loinc text;
ALTER TABLE reg50_phi.made ADD COLUMN result numeric;
RESET ROLE;
SELECT relation, column_name, data_class FROM agentauth.protected_columns
 WHERE relation::text IN ('reg50_phi.copied', 'reg50_phi.made')
   AND column_name IN ('value', 'loinc', 'result') ORDER BY 1, 2;
-- ... and stays so when the table is altered later, by anyone (found by
-- review: an administrator's unrelated ADD COLUMN classified it); an
-- administrator classifies it with protect_table
ALTER TABLE reg50_phi.copied ADD COLUMN note_more text;
SELECT column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg50_phi.copied'::regclass AND column_name IN ('value', 'note_more') ORDER BY 1;
ALTER TABLE reg50_phi.copied DROP COLUMN note_more;
-- the schema keeps its name
ALTER SCHEMA reg50_phi RENAME TO reg50_renamed;

-- the derived-table rebuild (DROP; CREATE TABLE AS) stays protected
CREATE TABLE reg50_phi.kidney AS
SELECT patient_id, max(value) AS max_value FROM reg50_phi.labs GROUP BY patient_id;
DROP TABLE reg50_phi.kidney;
CREATE TABLE reg50_phi.kidney AS
SELECT patient_id, max(value) AS max_value FROM reg50_phi.labs GROUP BY patient_id;
GRANT SELECT ON reg50_phi.kidney TO reg50_agent, reg50_reader;
SELECT agentauth._table_label('reg50_phi.kidney') AS label_kidney;
-- a non-principal reads nothing, with a record; the agent reads only its
-- patients, and needs a session
SET ROLE reg50_reader;
SELECT * FROM reg50_phi.kidney;
RESET ROLE;
SET SESSION AUTHORIZATION reg50_agent;
SELECT * FROM reg50_phi.kidney;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT patient_id, max_value FROM reg50_phi.kidney ORDER BY 1;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- every protection is recorded; the table protections name the role that
-- made the table
SELECT event, relation, CASE WHEN db_role = session_user THEN 'superuser' ELSE db_role END AS db_role,
       detail ? 'protected_schema' AS schema_record
  FROM agentauth.audit_log
 WHERE event IN ('table_protected', 'table_unprotected')
   AND (relation LIKE 'reg50%' OR detail->>'protected_schema' = 'reg50_phi')
 ORDER BY seq;

-- unprotect_schema: needs a reason; tables already protected stay so, new
-- ones are not
SET ROLE reg50_admin;
SELECT agentauth.unprotect_schema('reg50_phi', '');
SELECT agentauth.unprotect_schema('reg50_other', 'not protected');
SELECT agentauth.unprotect_schema('reg50_phi', 'moving to a new layout');
RESET ROLE;
CREATE TABLE reg50_phi.after (v text);
SELECT agentauth._table_label('reg50_phi.made') IS NOT NULL AS made_still_protected,
       agentauth._table_label('reg50_phi.after') IS NULL AS after_not_protected;
SELECT event, detail->>'reason' AS reason FROM agentauth.audit_log
 WHERE event = 'table_unprotected' AND detail->>'protected_schema' = 'reg50_phi';
-- a schema whose tables lack the patient column cannot be declared
SET ROLE reg50_admin;
SELECT agentauth.protect_schema('reg50_phi', 'patient_id', '{}', 'lab');
RESET ROLE;
SELECT count(*) AS declared FROM agentauth.protected_schemas WHERE schema_name = 'reg50_phi';

-- A copy keeps the sensitivity of its source: a table a statement makes in
-- a protected schema from a sensitive class must give one of its columns
-- that class (1.1: the declaration labelled HIV results "lab")
CREATE SCHEMA reg50_src;
CREATE TABLE reg50_src.hiv (patient_id text, result text, tested date);
SELECT agentauth.protect_table('reg50_src.hiv', 'patient_id', '{"result": "hiv", "tested": "lab"}');
INSERT INTO reg50_src.hiv VALUES ('R50-P1', 'positive', '2026-01-02'), ('R50-P2', 'negative', '2026-01-03');
CREATE SCHEMA reg50_concepts;
SELECT agentauth.protect_schema('reg50_concepts', 'patient_id', '{"hiv_positive": "hiv"}', 'lab');
-- the value read
CREATE TABLE reg50_concepts.positive AS
    SELECT patient_id, result = 'positive' AS positive FROM reg50_src.hiv;
-- or only filtered on: the rows are the information
CREATE TABLE reg50_concepts.positive AS
    SELECT patient_id FROM reg50_src.hiv WHERE result = 'positive';
SELECT patient_id INTO reg50_concepts.positive2 FROM reg50_src.hiv WHERE result = 'positive';
-- one column of the class is not enough: every row of the copy is HIV
-- data, whichever column a value lands in (a decoy column of the class)
CREATE TABLE reg50_concepts.decoy AS
    SELECT patient_id, result AS lab_value, NULL::boolean AS hiv_positive FROM reg50_src.hiv;
-- two sensitive classes read: classified by hand
CREATE TABLE reg50_src.mh (patient_id text, phq9 int);
SELECT agentauth.protect_table('reg50_src.mh', 'patient_id', '{"phq9": "mental_health"}');
CREATE TABLE reg50_concepts.both AS
    SELECT h.patient_id, bool_or(h.result = 'positive') AS hiv_positive
      FROM reg50_src.hiv h JOIN reg50_src.mh m USING (patient_id) WHERE m.phq9 > 10 GROUP BY 1;
-- every column the declaration classes hiv carries it
CREATE TABLE reg50_concepts.hiv_concept AS
    SELECT patient_id, bool_or(result = 'positive') AS hiv_positive FROM reg50_src.hiv GROUP BY 1;
SELECT column_name, data_class, sensitive FROM agentauth.protected_columns
 WHERE relation = 'reg50_concepts.hiv_concept'::regclass ORDER BY 1;
-- a non-sensitive class read goes where the declaration puts it
CREATE TABLE reg50_concepts.tested AS SELECT patient_id, tested FROM reg50_src.hiv;
SELECT column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg50_concepts.tested'::regclass ORDER BY 1;
-- a table whose every row is sensitive (every column but the patient's
-- and a non_phi key of the class): reading its rows is reading the class,
-- whatever the statement names -- count(*), EXISTS, the patient column
-- (1.1's first cut noted only the columns named)
CREATE TABLE reg50_src.hiv_tests (test_id int, patient_id text, result text);
SELECT agentauth.protect_table('reg50_src.hiv_tests', 'patient_id', '{"test_id": "non_phi", "result": "hiv"}');
INSERT INTO reg50_src.hiv_tests VALUES (1, 'R50-P1', 'positive');
CREATE TABLE reg50_concepts.hiv_tested AS SELECT patient_id, count(*) AS n FROM reg50_src.hiv_tests GROUP BY 1;
-- a column added since, unclassified (read by nobody), changes nothing
-- (1.1, found by review: it made the table no longer "every column
-- sensitive", and the copy was allowed)
ALTER TABLE reg50_src.hiv_tests ADD COLUMN kind text;
CREATE TABLE reg50_concepts.hiv_tested AS SELECT patient_id, count(*) AS n FROM reg50_src.hiv_tests GROUP BY 1;
ALTER TABLE reg50_src.hiv_tests DROP COLUMN kind;
CREATE TABLE reg50_concepts.labs_of_tested AS SELECT h.patient_id, h.tested AS taken FROM reg50_src.hiv h
 WHERE EXISTS (SELECT FROM reg50_src.hiv_tests t WHERE t.patient_id = h.patient_id) AND h.result IS NULL;
-- carried through an earlier statement of the same client statement
DO $$
DECLARE ids text[];
BEGIN
    SELECT array_agg(patient_id) INTO ids FROM reg50_src.hiv_tests;
    EXECUTE 'CREATE TABLE reg50_concepts.carried AS SELECT patient_id, tested AS on_date FROM reg50_src.hiv WHERE patient_id = ANY ($1)' USING ids;
END $$;
-- ... and across a procedure's COMMITs (1.1's second cut forgot them
-- with each transaction)
CREATE PROCEDURE reg50_rebuild() LANGUAGE plpgsql AS $$
DECLARE ids text[];
BEGIN
    SELECT array_agg(patient_id) INTO ids FROM reg50_src.hiv_tests;
    COMMIT;
    EXECUTE 'CREATE TABLE reg50_concepts.carried2 AS SELECT unnest($1) AS patient_id, ''x''::text AS note' USING ids;
END $$;
CALL reg50_rebuild();
DROP PROCEDURE reg50_rebuild();
-- one statement of a query string does not count for the next: the
-- concept reads no sensitive column itself
SELECT count(*) AS tests FROM reg50_src.hiv_tests \; CREATE TABLE reg50_concepts.tested_on AS SELECT patient_id, tested FROM reg50_src.hiv;
-- a partition of a table partitioned by a sensitive column holds the rows
-- of its bound's values: read alone, it tells them
CREATE TABLE reg50_src.labs_by_hiv (patient_id text NOT NULL, value numeric, hiv_status text)
    PARTITION BY LIST (hiv_status);
CREATE TABLE reg50_src.labs_hiv_pos PARTITION OF reg50_src.labs_by_hiv FOR VALUES IN ('positive');
CREATE TABLE reg50_src.labs_hiv_neg PARTITION OF reg50_src.labs_by_hiv FOR VALUES IN ('negative');
SELECT agentauth.protect_table('reg50_src.labs_by_hiv', 'patient_id', '{"value": "lab", "hiv_status": "hiv"}');
INSERT INTO reg50_src.labs_by_hiv VALUES ('R50-P1', 11, 'positive'), ('R50-P2', 13, 'negative');
CREATE TABLE reg50_concepts.pos_labs AS SELECT patient_id, value FROM reg50_src.labs_hiv_pos;
CREATE TABLE reg50_concepts.all_labs AS SELECT patient_id, value FROM reg50_src.labs_by_hiv;
-- (the whole parent is all values: allowed); filtered by tableoid, which
-- names each row's partition, it is read as the class
CREATE TABLE reg50_concepts.pos_labs AS SELECT patient_id, value FROM reg50_src.labs_by_hiv
 WHERE tableoid = 'reg50_src.labs_hiv_pos'::regclass;
-- an earlier statement of the session, sent on its own, does not count
-- for a table a later one makes (the first cut of the client-statement
-- rule: a function making it after an unrelated read was refused)
CREATE FUNCTION pg_temp.reg50_mk() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CREATE TABLE reg50_concepts.tested_later AS SELECT patient_id, tested FROM reg50_src.hiv;
END $$;
SELECT count(*) AS tests FROM reg50_src.hiv_tests;
SELECT pg_temp.reg50_mk();
-- a non_phi key beside the class's columns is fine
CREATE SCHEMA reg50_hivc;
SELECT agentauth.protect_schema('reg50_hivc', 'patient_id', '{"test_id": "non_phi"}', 'hiv');
CREATE TABLE reg50_hivc.positives AS SELECT test_id, patient_id, result FROM reg50_src.hiv_tests WHERE result = 'positive';
SELECT column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg50_hivc.positives'::regclass ORDER BY 1;
SELECT count(*) AS refused_tables FROM pg_class
 WHERE relnamespace = 'reg50_concepts'::regnamespace
   AND relname IN ('positive', 'positive2', 'decoy', 'both', 'hiv_tested', 'labs_of_tested', 'carried',
                   'carried2', 'pos_labs');
-- copies outside a protected schema, one after another in one connection
-- (1.1, the first cut of this check: the second crashed the server on the
-- first's freed list)
CREATE TABLE public.reg50_copy1 AS SELECT patient_id FROM reg50_src.hiv WHERE result = 'positive';
CREATE TABLE public.reg50_copy2 AS SELECT patient_id FROM reg50_src.hiv WHERE result = 'positive';
CREATE TABLE public.reg50_copy3 AS SELECT patient_id FROM reg50_src.hiv WHERE result = 'positive';
SELECT count(*) AS copies FROM pg_class WHERE relname LIKE 'reg50\_copy_';
DROP TABLE public.reg50_copy1, public.reg50_copy2, public.reg50_copy3;

-- A table rebuilt under its name keeps what an administrator set on it
-- (1.1, found by review: DROP TABLE and CREATE TABLE AS lost the
-- require_approval and the reclassification, silently, and agents then
-- wrote the rebuilt table without a clinician's approval)
CREATE SCHEMA reg50_rb;
GRANT USAGE ON SCHEMA reg50_rb TO reg50_admin;
SET ROLE reg50_admin;
SELECT agentauth.protect_schema('reg50_rb', 'patient_id', '{"note": "clinical_note"}', 'lab');
RESET ROLE;
CREATE TABLE reg50_rb.kidney AS SELECT patient_id, value, note FROM reg50_phi.labs;
CREATE TABLE reg50_rb.plain AS SELECT patient_id, value FROM reg50_phi.labs;
SET ROLE reg50_admin;
SELECT agentauth.require_approval('reg50_rb.kidney', '{update,delete}');
SELECT agentauth.protect_table('reg50_rb.kidney', 'patient_id', '{"value": "lab", "note": "mental_health"}');
RESET ROLE;
-- 1. DROP and CREATE TABLE AS (a table with nothing beyond the
--    declaration keeps nothing)
DROP TABLE reg50_rb.kidney, reg50_rb.plain;
SELECT schema_name, table_name, column_classes, require_approval FROM agentauth.protected_schema_kept_settings
 WHERE schema_name = 'reg50_rb';
CREATE TABLE reg50_rb.kidney AS SELECT patient_id, value, note, 1 AS added FROM reg50_phi.labs;
CREATE TABLE reg50_rb.plain AS SELECT patient_id, value FROM reg50_phi.labs;
SELECT relation, column_name, data_class, requires_approval FROM agentauth.protected_columns
 WHERE relation::text LIKE 'reg50_rb.%' AND NOT patient_column ORDER BY 1, 2;
SELECT count(*) AS kept_left FROM agentauth.protected_schema_kept_settings WHERE schema_name = 'reg50_rb';
-- 2. made beside it, the old one dropped, the new one renamed in; and
--    the old one renamed away first, then the new one renamed in
CREATE TABLE reg50_rb.kidney_new AS SELECT patient_id, value, note FROM reg50_phi.labs;
DROP TABLE reg50_rb.kidney;
ALTER TABLE reg50_rb.kidney_new RENAME TO kidney;
SELECT column_name, data_class, requires_approval FROM agentauth.protected_columns
 WHERE relation = 'reg50_rb.kidney'::regclass AND NOT patient_column ORDER BY 1;
CREATE TABLE reg50_rb.kidney_new AS SELECT patient_id, value, note FROM reg50_phi.labs;
ALTER TABLE reg50_rb.kidney RENAME TO kidney_old;
ALTER TABLE reg50_rb.kidney_new RENAME TO kidney;
DROP TABLE reg50_rb.kidney_old;
SELECT column_name, data_class, requires_approval FROM agentauth.protected_columns
 WHERE relation = 'reg50_rb.kidney'::regclass AND NOT patient_column ORDER BY 1;
-- 3. a class the new table was given itself stays (value: hiv); a column
--    still of the declaration's class takes the kept one (note)
CREATE TABLE reg50_rb.kidney_new AS SELECT patient_id, value, note FROM reg50_phi.labs;
SET ROLE reg50_admin;
SELECT agentauth.protect_table('reg50_rb.kidney_new', 'patient_id', '{"value": "hiv", "note": "clinical_note"}');
RESET ROLE;
DROP TABLE reg50_rb.kidney;
ALTER TABLE reg50_rb.kidney_new RENAME TO kidney;
SELECT column_name, data_class, requires_approval FROM agentauth.protected_columns
 WHERE relation = 'reg50_rb.kidney'::regclass AND NOT patient_column ORDER BY 1;
-- 4. an administrator's '{}' and the declaration's classes: nothing kept
--    for kidney (kidney_old's, dropped, and kidney_new's, renamed away
--    with its own hiv, wait for a table of their names)
SET ROLE reg50_admin;
SELECT agentauth.require_approval('reg50_rb.kidney', '{}');
SELECT agentauth.protect_table('reg50_rb.kidney', 'patient_id', '{"value": "lab", "note": "clinical_note"}');
RESET ROLE;
DROP TABLE reg50_rb.kidney;
SELECT table_name, column_classes, require_approval FROM agentauth.protected_schema_kept_settings
 WHERE schema_name = 'reg50_rb' ORDER BY 1;
-- 5. moved out of the schema: kept too
SET ROLE reg50_admin;
SELECT agentauth.protect_table('reg50_rb.plain', 'patient_id', '{"value": "mental_health"}');
RESET ROLE;
ALTER TABLE reg50_rb.plain SET SCHEMA reg50_other;
CREATE TABLE reg50_rb.plain (patient_id int, value numeric);
SELECT column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg50_rb.plain'::regclass AND NOT patient_column;
DROP TABLE reg50_other.plain;
-- 6. ALTER INDEX ... RENAME, which PostgreSQL takes for a table too (the
--    first cut missed that spelling: the settings went with the name)
ALTER INDEX reg50_rb.plain RENAME TO plain_idx_spelling;
SELECT table_name, column_classes FROM agentauth.protected_schema_kept_settings
 WHERE schema_name = 'reg50_rb' AND table_name = 'plain';
CREATE TABLE reg50_rb.plain (patient_id int, value numeric);
SELECT column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg50_rb.plain'::regclass AND NOT patient_column;
DROP TABLE reg50_rb.plain_idx_spelling;
-- every step is recorded: the drop names what it kept, the new table
-- what it took, a rename or a move what it kept
SELECT event, relation, detail->>'via' AS via, detail->'kept'->'require_approval' AS kept_approvals,
       detail->'kept'->'column_classes' AS kept_classes,
       detail->'require_approval' AS took_approvals, detail->'column_classes' AS took_classes
  FROM agentauth.audit_log
 WHERE relation LIKE 'reg50_rb.%' AND (event = 'table_unprotected' OR detail ? 'kept')
 ORDER BY seq;
-- unprotect_schema forgets what was kept there
SET ROLE reg50_admin;
SELECT agentauth.require_approval('reg50_rb.plain');
RESET ROLE;
DROP TABLE reg50_rb.plain;
SELECT count(*) AS kept FROM agentauth.protected_schema_kept_settings WHERE schema_name = 'reg50_rb';
SET ROLE reg50_admin;
SELECT agentauth.unprotect_schema('reg50_rb', 'test over');
RESET ROLE;
SELECT count(*) AS kept FROM agentauth.protected_schema_kept_settings WHERE schema_name = 'reg50_rb';
DROP SCHEMA reg50_rb;
