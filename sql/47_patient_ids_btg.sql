-- Patient ids of non-text columns (issue 13, item 6), continued from
-- sql/29_patient_ids.sql: break-the-glass and clinician approvals with an
-- integer patient id (1.0: 42883, no function for integer).  Here, after
-- the break-the-glass suites, whose counts these rows would change.
\set SHOW_CONTEXT never
CREATE ROLE reg47_agent LOGIN;
CREATE ROLE reg47_doc LOGIN;
CREATE TABLE reg47_lab (id int PRIMARY KEY, patient_id integer NOT NULL, value text);
INSERT INTO reg47_lab VALUES (1, 7, 'a'), (2, 11, 'b');
SELECT agentauth.protect_table('reg47_lab', 'patient_id', '{"id": "non_phi"}', 'lab');
SELECT agentauth.require_approval('reg47_lab', '{insert}');
GRANT SELECT, INSERT ON reg47_lab TO reg47_agent, reg47_doc;
SELECT agentauth.register_agent('reg47-agent', 'reg47_agent', 'Lab interface', '{CAREMGT}',
    '{lab:read,lab:write}', can_break_glass => true) AS agent \gset
SELECT agentauth.register_human('reg47 doc', 'reg47_doc', '{CAREMGT}', '{lab:read,lab:write}',
                                can_break_glass => true, can_approve => true) AS doc \gset
SELECT agentauth.issue_token(:'agent', 'CAREMGT', on_behalf_of => 'reg47 doc') AS tok \gset
SELECT agentauth.record_consent(7, 'permit', '{CAREMGT}', '{lab}', '{read,write}') IS NOT NULL AS consent;
SELECT agentauth.record_consent(11, 'deny', '{CAREMGT}') IS NOT NULL AS consent;

-- a clinician approves one insert for patient 7, by integer
SET SESSION AUTHORIZATION reg47_doc;
SELECT agentauth.begin_human_session('CAREMGT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'reg47_lab', 7, 'insert', 'new result') IS NOT NULL AS approved;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT patient, action, uses_left FROM agentauth.approvals WHERE agent = :'agent';

SET SESSION AUTHORIZATION reg47_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
INSERT INTO reg47_lab VALUES (3, 7, 'c');
INSERT INTO reg47_lab VALUES (4, 7, 'd');
-- patient 11's consent is a deny: an override, by integer
SELECT patient_id, value FROM reg47_lab ORDER BY id;
SELECT agentauth.break_glass(11, 'deteriorating; the consent on file is a deny') IS NOT NULL AS broke;
SELECT patient_id, value FROM reg47_lab ORDER BY id;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT patient, action, uses_left FROM agentauth.approvals WHERE agent = :'agent';
SELECT patient, reason FROM agentauth.break_glass_events WHERE reason LIKE 'deteriorating;%';

SET client_min_messages = warning;
DROP TABLE reg47_lab;
RESET client_min_messages;
