-- Patient ids of non-text columns (issue 13, item 6).  Numbered to run
-- before the suites that leave tables with text patient ids protected:
-- whether an id could be a patient's depends on every protected table.  The row check
-- compares a row's patient as its column's type prints it.  1.0 took
-- patient ids as text only: record_consent(7, ...) failed (42883), and a
-- consent for '07' was accepted and never matched the row of patient 7 --
-- a deny that denied nothing.  Now the calls that take a patient id also
-- take it as a value of the column's type (printed as the type prints
-- it), and an id written as no protected patient column prints any value
-- is refused (22023).  examples/ehr: integer patient ids.
\set SHOW_CONTEXT never
CREATE ROLE reg29_agent LOGIN;
CREATE ROLE reg29_doc LOGIN;
\set ECHO none
SET client_min_messages = warning;
\i examples/ehr/schema.sql
\set patients 12
\i examples/ehr/generate.sql
RESET client_min_messages;
\set ECHO all

-- with no table protected, any id is taken (a table may come later)
SELECT agentauth.record_consent('007', 'permit', '{CAREMGT}', '{lab}') IS NOT NULL AS taken;
SELECT agentauth.protect_table('ehr.lab_results', 'patient_id',
    '{"result_id": "non_phi", "encounter_id": "non_phi", "loinc": "non_phi"}', 'lab');
SELECT agentauth.require_approval('ehr.lab_results', '{update}');
GRANT USAGE ON SCHEMA ehr TO reg29_agent, reg29_doc;
GRANT SELECT, INSERT, UPDATE, DELETE ON ehr.lab_results TO reg29_agent, reg29_doc;

-- every patient column is an integer now: ids as integers, or as the
-- integer prints
SELECT agentauth.record_consent(7, 'permit', '{CAREMGT}', '{lab}', '{read,write}') IS NOT NULL AS int4;
SELECT agentauth.record_consent(8::bigint, 'permit', '{CAREMGT}', '{lab}') IS NOT NULL AS int8;
SELECT agentauth.record_consent(9::smallint, 'permit', '{CAREMGT}', '{lab}') IS NOT NULL AS int2;
SELECT agentauth.record_consent('10', 'permit', '{CAREMGT}', '{lab}') IS NOT NULL AS text;
SELECT agentauth.record_consent(patient => 11, decision => 'deny', purposes => '{CAREMGT}') IS NOT NULL AS named;
-- ids no integer column prints: refused, nothing recorded
SELECT agentauth.record_consent('011', 'deny');
SELECT agentauth.record_consent('+11', 'deny');
SELECT agentauth.record_consent(' 11', 'deny');
SELECT agentauth.record_consent('11 ', 'deny');
SELECT agentauth.record_consent('11.0', 'deny');
SELECT agentauth.record_consent('MRN00000011', 'deny');
SELECT agentauth.record_consent(99999999999, 'deny');
SELECT agentauth.record_consent(11.0, 'deny');
\set VERBOSITY sqlstate
SELECT agentauth.record_consent('011', 'deny');
\set VERBOSITY default
SELECT agentauth.record_consent(NULL, 'deny');
SELECT patient, decision FROM agentauth.consents
 WHERE patient ~ '^[-+ ]?[0-9]' OR patient LIKE 'MRN%' ORDER BY recorded_at, patient;

-- the consents recorded with integers match the rows of those patients;
-- the deny of patient 11 applies
SELECT agentauth.set_default_decision('CAREMGT', 'lab', 'permit');
SELECT agentauth.register_agent('reg29-agent', 'reg29_agent', 'Lab interface', '{CAREMGT}',
    '{lab:read,lab:write}', can_break_glass => true) AS agent \gset
SELECT agentauth.register_human('reg29 doc', 'reg29_doc', '{CAREMGT}', '{lab:read,lab:write}',
                                can_break_glass => true, can_approve => true) AS doc \gset
SELECT agentauth.issue_token(:'agent', 'CAREMGT', on_behalf_of => 'reg29 doc') AS tok \gset
SET SESSION AUTHORIZATION reg29_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT patient_id, count(value) FROM ehr.lab_results WHERE patient_id BETWEEN 6 AND 12
 GROUP BY 1 ORDER BY 1;
SELECT decision, reason FROM agentauth.explain_access(11, 'lab');
SELECT decision, reason FROM agentauth.explain_access(7::bigint, 'lab', 'write');
SELECT decision, reason FROM agentauth.explain_access('7', 'lab', 'write');
SELECT decision, reason FROM agentauth.explain_access('07', 'lab');
-- a write by the integer consent
INSERT INTO ehr.lab_results VALUES (900001, 7, 71, '2160-0', 1.1, '2025-06-01');
-- an override or an approval for an id no column prints is refused
-- before anything is written (by integer: sql/47_patient_ids_btg.sql)
SELECT agentauth.break_glass('011', 'typo');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION reg29_doc;
SELECT agentauth.begin_human_session('CAREMGT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'ehr.lab_results', '07', 'update', 'typo');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT count(*) AS overrides FROM agentauth.break_glass_events WHERE patient = '011';
SELECT count(*) AS approvals FROM agentauth.approvals WHERE agent = :'agent';

-- the reports, by integer: the same records as by text
SELECT (SELECT count(*) FROM agentauth.access_report(7)) =
       (SELECT count(*) FROM agentauth.access_report('7')) AS same,
       (SELECT count(*) FROM agentauth.access_report(7)) > 0 AS some;
SELECT event, action, row_count FROM agentauth.access_report(11) WHERE relation = 'ehr.lab_results';
SELECT count(*) > 0 AS some FROM agentauth.element_access(7, 'ehr.lab_results', 'value');
SELECT count(*) AS disclosures FROM agentauth.disclosure_accounting(7::bigint, include_exempt => true);

-- a text patient column protected too: any id could be one of its values
CREATE TABLE reg29_text (mrn text, note text);
SELECT agentauth.protect_table('reg29_text', 'mrn', '{}', 'clinical_note');
SELECT agentauth.record_consent('011', 'deny') IS NOT NULL AS taken;
SELECT agentauth.unprotect_table('reg29_text', 'test over');
-- uuid: printed in lower case
CREATE TABLE reg29_uuid (pid uuid, note text);
SELECT agentauth.protect_table('reg29_uuid', 'pid', '{}', 'clinical_note');
SELECT agentauth.record_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'permit');
SELECT agentauth.record_consent('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'permit') IS NOT NULL AS lower;
SELECT agentauth.record_consent('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid, 'permit') IS NOT NULL AS typed;
SELECT patient FROM agentauth.consents WHERE patient LIKE 'a0ee%';

-- A patient column whose text form follows the session's settings
-- (bytea_output, TimeZone, DateStyle, extra_float_digits, lc_monetary):
-- an agent could print a denied patient's id another way, so that the deny
-- matched nothing and the read was recorded under an id the patient's
-- reports never name (1.1).  protect_table refuses such a type; a domain
-- or enum of a type that prints alike everywhere is taken.
CREATE TABLE reg29_bytea (pid bytea, note text);
SELECT agentauth.protect_table('reg29_bytea', 'pid', '{}', 'clinical_note');
CREATE TABLE reg29_ts (pid timestamptz, note text);
SELECT agentauth.protect_table('reg29_ts', 'pid', '{}', 'clinical_note');
CREATE TABLE reg29_float (pid float8, note text);
SELECT agentauth.protect_table('reg29_float', 'pid', '{}', 'clinical_note');
CREATE DOMAIN reg29_mrn AS varchar(12);
CREATE TABLE reg29_dom (pid reg29_mrn, note text);
SELECT agentauth.protect_table('reg29_dom', 'pid', '{}', 'clinical_note');
SELECT agentauth.unprotect_table('reg29_dom', 'test over');
-- a table protected with such a type before 1.1 (its label set by hand
-- here): the row check fails closed, with the reason
SECURITY LABEL FOR agentauth ON TABLE reg29_bytea IS 'patient=pid';
SECURITY LABEL FOR agentauth ON COLUMN reg29_bytea.note IS 'clinical_note';
ALTER TABLE reg29_bytea ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
INSERT INTO reg29_bytea VALUES ('\x0102', 'n');
CREATE ROLE reg29_nobody LOGIN;
GRANT SELECT ON reg29_bytea TO reg29_nobody;
SET SESSION AUTHORIZATION reg29_nobody;
SELECT note FROM reg29_bytea;
RESET SESSION AUTHORIZATION;
SET client_min_messages = warning;
SELECT agentauth.unprotect_table('reg29_bytea', 'test over');
RESET client_min_messages;
REVOKE ALL ON reg29_bytea FROM reg29_nobody;
DROP ROLE reg29_nobody;

-- The patient columns' types are kept between calls (a bulk load checks
-- every consent's id) and read again after any change: a table protected
-- in a transaction rolled back, a patient column's type changed
SELECT agentauth.unprotect_table('reg29_uuid', 'test over');
BEGIN;
SELECT agentauth.protect_table('reg29_text', 'mrn', '{}', 'clinical_note');
SELECT agentauth.record_consent('012', 'deny') IS NOT NULL AS taken_while_text_protected;
ROLLBACK;
SELECT agentauth.record_consent('012', 'deny');
CREATE TABLE reg29_int (pid int, note text);
SELECT agentauth.protect_table('reg29_int', 'pid', '{}', 'clinical_note');
SELECT agentauth.record_consent('013', 'deny');
ALTER TABLE reg29_int ALTER pid TYPE text;
SELECT agentauth.record_consent('013', 'deny') IS NOT NULL AS taken_once_text;
ALTER TABLE reg29_int ALTER pid TYPE bigint USING pid::bigint;
SELECT agentauth.record_consent('013', 'deny');
SELECT agentauth.unprotect_table('reg29_int', 'test over');
DELETE FROM agentauth.consent WHERE patient IN ('012', '013');

SELECT agentauth.set_default_decision('CAREMGT', 'lab', 'none');
SET client_min_messages = warning;
DROP TABLE reg29_int, reg29_text, reg29_uuid, reg29_bytea, reg29_ts, reg29_float, reg29_dom;
DROP DOMAIN reg29_mrn;
DROP SCHEMA ehr, ref, derived CASCADE;
RESET client_min_messages;
