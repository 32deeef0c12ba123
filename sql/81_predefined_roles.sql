-- PostgreSQL's predefined roles and agentauth's own tables and views
-- (1.1, found by review).  pg_read_all_data and pg_write_all_data act as if
-- they held SELECT, INSERT, UPDATE and DELETE on every table and view.  A
-- login given both (an ETL account) took an agent over, minted itself a
-- token, forged consents and read what no consent permits, and nothing was
-- recorded.  Each attack of the review is tried here; each must fail, and
-- the access state must be what it was.
\set SHOW_CONTEXT never
CREATE ROLE reg81_agent LOGIN;
CREATE ROLE reg81_etl LOGIN;
GRANT pg_read_all_data, pg_write_all_data TO reg81_etl;
CREATE TABLE reg81_chart (patient_id text NOT NULL, lab text, hiv text);
INSERT INTO reg81_chart VALUES ('R81-P1', 'lab1', 'hiv1'), ('R81-P2', 'lab2', 'hiv2');
SELECT agentauth.protect_table('reg81_chart', 'patient_id', '{"lab": "lab", "hiv": "hiv"}');
GRANT SELECT ON reg81_chart TO reg81_agent;
SELECT agentauth.register_agent('reg81-agent', 'reg81_agent', 'Review',
    '{TREAT}', '{lab:read}') AS agent \gset
SELECT agentauth.record_consent('R81-P1', 'permit', purposes => '{TREAT}',
    data_classes => '{lab}') IS NOT NULL AS consented;
CREATE ROLE reg81_mon LOGIN IN ROLE pg_monitor;
-- reads each view of the extension's schema as the caller
CREATE FUNCTION reg81_read_views() RETURNS TABLE (view_name name, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = 'agentauth'::regnamespace AND c.relkind = 'v'
              ORDER BY 1
    LOOP
        view_name := v.relname;
        BEGIN
            EXECUTE format('SELECT count(*) FROM agentauth.%I', v.relname);
            outcome := 'read';
        EXCEPTION WHEN insufficient_privilege THEN
            outcome := 'refused';
        END;
        RETURN NEXT;
    END LOOP;
END $$;
CREATE SCHEMA reg81_etl_schema AUTHORIZATION reg81_etl;
SET ROLE reg81_etl;
CREATE VIEW reg81_etl_schema.peek AS SELECT * FROM agentauth.audit_log;
RESET ROLE;
SELECT count(*) AS records_before FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg81_etl;
-- the protected table: row security binds the role (as before)
SELECT count(*) AS chart_rows FROM reg81_chart;
-- 1. the agent taken over: its login and scopes rewritten
UPDATE agentauth.principal SET db_role = 'reg81_etl'::regrole, scopes = '{lab:read,hiv:read}'
 WHERE name = 'reg81-agent';
-- 2. a token minted (its secret's hash written by hand)
INSERT INTO agentauth.token (secret_hash, agent, chain, purpose, scopes, issued_by, expires_at)
SELECT sha256(convert_to('aat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'UTF8')), id, '{}',
       'TREAT', '{lab:read,hiv:read}', 'reg81_etl', now() + interval '1 hour'
  FROM agentauth.principal WHERE name = 'reg81-agent';
-- 3. a consent forged
INSERT INTO agentauth.consent (patient, decision, purposes, data_classes, actions, valid, recorded_by)
VALUES ('R81-P2', 'permit', '{TREAT}', '{lab,hiv}', '{read}', tstzrange(now() - interval '1 day', NULL), 'desk');
-- 4. a class made ordinary, a default opened, a withdrawal undone
UPDATE agentauth.data_class SET sensitive = false WHERE name = 'hiv';
INSERT INTO agentauth.default_decision (purpose, data_class, decision, changed_by) VALUES ('TREAT', '*', 'permit', 'x');
UPDATE agentauth.consent SET withdrawn_at = NULL;
DELETE FROM agentauth.consent;
-- 5. through the views that PostgreSQL would let a write pass
UPDATE agentauth.principals SET status = 'suspended' WHERE name = 'reg81-agent';
INSERT INTO agentauth.default_decisions (purpose, data_class, decision) VALUES ('TREAT', '*', 'permit');
DELETE FROM agentauth.agent_inventory WHERE name = 'reg81-agent';
-- an UPDATE with no WHERE needs no SELECT, and would still run the view's
-- query: whether it has rows (1.1, found by review)
UPDATE agentauth.tokens SET purpose = 'x';
-- 6. the log, the consents and the registry read directly: no row
SELECT (SELECT count(*) FROM agentauth.audit_record) AS log_rows,
       (SELECT count(*) FROM agentauth.consent) AS consent_rows,
       (SELECT count(*) FROM agentauth.principal) AS principal_rows,
       (SELECT count(*) FROM agentauth.token) AS token_rows;
-- 7. the minted secret opens nothing
SELECT agentauth.begin_session('aat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
-- 8. the alert sequence moved to its end: alerts are still raised (their
-- id is the log's highest plus one)
SELECT setval('agentauth.alert_log_id_seq', 9223372036854775807) > 0 AS moved;
-- 9. the views (run as their owner, above the tables' row security): each
-- one not granted to PUBLIC is refused, and so is one of the role's own
-- views over them
SELECT * FROM reg81_read_views();
SELECT count(*) FROM reg81_etl_schema.peek;
RESET SESSION AUTHORIZATION;
SELECT agentauth._raise_alert(NULL, 'denied', NULL, 'reg81_etl', 1, NULL, 'notify', NULL, NULL, true) > 0
       AS alert_raised;
-- a member of pg_monitor reads what it is granted (status, audit_feeds) and
-- nothing else; an auditor reads the views inside views
SET SESSION AUTHORIZATION reg81_mon;
SELECT * FROM reg81_read_views() WHERE outcome = 'read';
RESET SESSION AUTHORIZATION;

-- nothing changed
SELECT name, db_role, scopes, status FROM agentauth.principals WHERE name = 'reg81-agent';
SELECT count(*) AS tokens FROM agentauth.token t JOIN agentauth.principal p ON p.id = t.agent
 WHERE p.name = 'reg81-agent';
SELECT patient, decision, data_classes, withdrawn_at IS NULL AS active
  FROM agentauth.consent WHERE patient LIKE 'R81-%' ORDER BY patient;
SELECT sensitive FROM agentauth.data_class WHERE name = 'hiv';
SELECT count(*) AS forged_defaults FROM agentauth.default_decision WHERE changed_by = 'x';
-- the one record the attempts left: begin_session's refusal
SELECT event, outcome FROM agentauth.audit_log WHERE seq > :records_before ORDER BY seq;

-- the roles the grants name still do their work: an admin's alert rule, an
-- auditor's read of the log's table, a consent manager's FHIR versions
CREATE ROLE reg81_admin LOGIN IN ROLE agentauth_admin;
CREATE ROLE reg81_auditor LOGIN IN ROLE agentauth_auditor;
CREATE ROLE reg81_desk LOGIN IN ROLE agentauth_consent_manager;
INSERT INTO agentauth.fhir_consent_version (source, patient, content, active)
VALUES ('Consent/reg81', 'R81-P1', '\x00', true);
SET SESSION AUTHORIZATION reg81_admin;
INSERT INTO agentauth.alert_rule (event, threshold, per, action)
VALUES ('denied', 9981, '1 minute', 'notify') RETURNING event, threshold;
DELETE FROM agentauth.alert_rule WHERE threshold = 9981 RETURNING event, threshold;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION reg81_auditor;
SELECT count(*) > 0 AS auditor_reads_log FROM agentauth.audit_record;
-- the vocabulary is read by every role (1.1, found by review: no role could)
SELECT count(*) > 0 AS auditor_reads_classes FROM agentauth.data_class;
SELECT count(*) > 0 AS auditor_reads_purposes FROM agentauth.purpose;
SELECT count(*) > 0 AS auditor_reads_view FROM agentauth.audit_log;
SELECT count(*) >= 0 AS auditor_reads_view_in_view FROM agentauth.break_glass_overdue;
SELECT count(*) > 0 AS auditor_reads_rules FROM agentauth.alert_rule;
SELECT source AS auditor_reads_versions FROM agentauth.fhir_consent_version WHERE source = 'Consent/reg81';
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION reg81_desk;
SELECT source AS manager_reads_versions FROM agentauth.fhir_consent_version WHERE source = 'Consent/reg81';
RESET SESSION AUTHORIZATION;
DELETE FROM agentauth.fhir_consent_version WHERE source = 'Consent/reg81';

-- every table of the extension has row security, and every view refuses
-- writes (a new table or view must join them)
SELECT c.relname AS table_without_row_security FROM pg_class c
 WHERE c.relnamespace = 'agentauth'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT c.relrowsecurity;
SELECT c.relname AS writable_view FROM pg_class c
 WHERE c.relnamespace = 'agentauth'::regnamespace AND c.relkind = 'v'
   AND pg_relation_is_updatable(c.oid, false) <> 0
   AND NOT EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'read_only');


-- A login renamed while its backend runs, and a new role made under the old
-- name (1.1, found by review): the backend's records kept the name it had
-- first read, so they named the new role, while their own detail named the
-- old one by its new name.  Each record names the role as it is called
-- when the record is made.
SELECT coalesce(max(seq), 0) AS seq81r FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg81_etl;
SELECT count(*) FROM reg81_chart;
RESET SESSION AUTHORIZATION;
ALTER ROLE reg81_etl RENAME TO reg81_etl_old;
CREATE ROLE reg81_etl;
SET SESSION AUTHORIZATION reg81_etl_old;
SELECT count(*) FROM reg81_chart;
RESET SESSION AUTHORIZATION;
SELECT event, db_role, detail->>'role' AS detail_role FROM agentauth.audit_log
 WHERE relation = 'public.reg81_chart' AND seq > :seq81r ORDER BY seq;

-- A principal's login that already holds such a role, or an agent's that
-- is an agentauth privilege role's member (1.1, found by review: both
-- were registered without a word; a clinician may also be an auditor)
CREATE ROLE reg81_copier LOGIN IN ROLE pg_write_server_files;
SELECT agentauth.register_agent('reg81-etl', 'reg81_etl_old', 'Review', '{TREAT}', '{lab:read}');
SELECT agentauth.register_human('reg81 copier', 'reg81_copier', '{TREAT}', '{lab:read}');
CREATE ROLE reg81_auditor_bot LOGIN IN ROLE reg81_auditor;
SELECT agentauth.register_agent('reg81-audit-bot', 'reg81_auditor_bot', 'Review', '{TREAT}', '{lab:read}');
CREATE ROLE reg81_clinician LOGIN IN ROLE agentauth_privacy_officer;
SELECT agentauth.register_human('reg81 clinician', 'reg81_clinician', '{TREAT}', '{lab:read}') IS NOT NULL AS clinician_registered;

-- unregistered_activity's privileged roles: a login that can SET ROLE to a
-- BYPASSRLS group reads every row, inheriting or not (1.1, found by review:
-- one was listed as not bypassing, the NOINHERIT one not at all)
CREATE ROLE reg81_bypassers NOLOGIN BYPASSRLS;
GRANT SELECT ON reg81_chart TO reg81_bypassers;
CREATE ROLE reg81_x LOGIN IN ROLE reg81_bypassers;
CREATE ROLE reg81_y LOGIN NOINHERIT IN ROLE reg81_bypassers;
SET ROLE agentauth_auditor;
SELECT role, privileges, bypasses_rls FROM agentauth.unregistered_activity
 WHERE kind = 'privileged role' AND relation = 'public.reg81_chart' AND role LIKE 'reg81%' ORDER BY role;
RESET ROLE;

-- A principal's login cannot be dropped while the principal is not retired,
-- from any database (1.1, found by review: a dropped login's oid, dumped
-- and restored, bound the principal to an unrelated role of the new
-- cluster, which began its sessions)
CREATE ROLE reg81_leaver LOGIN;
SELECT agentauth.register_agent('reg81-leaver', 'reg81_leaver', 'Review', '{TREAT}', '{lab:read}') AS leaver \gset
SELECT current_database() AS db81 \gset
DROP ROLE reg81_leaver;
\c postgres
DROP ROLE reg81_leaver;
\c :db81
SELECT agentauth.set_principal_status(:'leaver', 'suspended', 'on leave');
DROP ROLE reg81_leaver;
SELECT agentauth.set_principal_status(:'leaver', 'retired', 'left');
DROP ROLE reg81_leaver;
SELECT name, status FROM agentauth.principals WHERE name = 'reg81-leaver';
