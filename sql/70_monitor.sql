-- Real-time monitoring (SPEC 15): alert rules, their validation and
-- privileges, the alerts view, disabled rules, and a suspend rule that
-- ends a live session at its next row.  A rule counts statements (issue
-- "Performance" item 2): a cohort query that withholds 12 patients is one
-- event for the README's example rule, which suspends an agent probing
-- patients across statements, not one running a cohort query; a rule with
-- per_patient counts every record.
--
-- Alerts are raised by the audit writer after it has committed the records
-- that raise them, in a transaction of its own: a test waits for them with
-- reg70_wait(condition), which polls (up to 60 s) and returns whether the
-- condition came true.  "Nothing was raised" is checked behind a later
-- always-on alert: the writer raises alerts in the order of the records.
\set SHOW_CONTEXT never

CREATE FUNCTION reg70_wait(cond text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1..1200 LOOP
        EXECUTE 'SELECT ' || cond INTO ok;
        IF ok THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;

CREATE ROLE reg70_admin LOGIN;
GRANT agentauth_admin TO reg70_admin;
CREATE ROLE reg70_auditor LOGIN;
GRANT agentauth_auditor TO reg70_auditor;
CREATE ROLE reg70_officer LOGIN;
GRANT agentauth_privacy_officer TO reg70_officer;
CREATE ROLE reg70_nobody LOGIN;
CREATE ROLE reg70_agent LOGIN;
CREATE ROLE reg70_quiet LOGIN;

-- the seeded rules: they count statements
SELECT id, event, threshold, per, action, enabled, per_patient FROM agentauth.alert_rule ORDER BY id;

-- bad rules are refused with a clear error, whatever the statement
SET ROLE reg70_admin;
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 0, '1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', -3, '1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', NULL, '1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 10001, '1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denyed', 5, '1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('alert', 5, '1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES (NULL, 5, '1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 5, '1 minute', 'kill');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 5, '1 minute', NULL);
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 5, '0', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 5, '-1 minute', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 5, '1 day -2 days', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 5, NULL, 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action) VALUES ('denied', 5, '40 days', 'notify');
INSERT INTO agentauth.alert_rule (event, threshold, per, action, enabled) VALUES ('denied', 5, '1 minute', 'notify', NULL);
INSERT INTO agentauth.alert_rule (event, threshold, per, action, per_patient) VALUES ('denied', 5, '1 minute', 'notify', NULL);
-- the events the README lists are rule events (1.1, found by review: four
-- were refused)
INSERT INTO agentauth.alert_rule (event, threshold, per, action)
SELECT e, 9970, '1 minute', 'notify'
  FROM unnest('{alert_rule_changed,consent_extended,audit_feed_registered,audit_feed_dropped}'::text[]) e
RETURNING event;
DELETE FROM agentauth.alert_rule WHERE threshold = 9970;
UPDATE agentauth.alert_rule SET threshold = 0 WHERE id = 1;
UPDATE agentauth.alert_rule SET per = '0 seconds' WHERE id = 1;
UPDATE agentauth.alert_rule SET action = 'page' WHERE id = 2;
UPDATE agentauth.alert_rule SET event = 'Denied' WHERE id = 2;
-- nothing was written
SELECT id, event, threshold, per, action, enabled FROM agentauth.alert_rule ORDER BY id;

-- a good rule, then a change of it and its removal: each is audited
INSERT INTO agentauth.alert_rule (event, threshold, per, action)
VALUES ('token_issued', 1000, '1 hour', 'notify') RETURNING id AS rule_tmp \gset
UPDATE agentauth.alert_rule SET enabled = false WHERE id = :rule_tmp;
DELETE FROM agentauth.alert_rule WHERE id = :rule_tmp;
RESET ROLE;
SELECT detail->>'operation' AS operation, db_role,
       detail->'old'->>'enabled' AS old_enabled, detail->'new'->>'enabled' AS new_enabled
  FROM agentauth.audit_log
 WHERE event = 'alert_rule_changed' AND (detail->>'rule')::int = :rule_tmp
 ORDER BY seq;

-- the rule's window is recorded the same whatever the caller's
-- IntervalStyle (1.1: 'sql_standard' wrote '1:00:00')
SET ROLE reg70_admin;
SET IntervalStyle = 'sql_standard';
INSERT INTO agentauth.alert_rule (event, threshold, per, action)
VALUES ('token_issued', 1000, '1 hour', 'notify') RETURNING id AS rule_style \gset
DELETE FROM agentauth.alert_rule WHERE id = :rule_style;
RESET IntervalStyle;
RESET ROLE;
SELECT detail->>'operation' AS operation, detail->'new'->>'per' AS new_per, detail->'old'->>'per' AS old_per
  FROM agentauth.audit_log
 WHERE event = 'alert_rule_changed' AND (detail->>'rule')::int = :rule_style
 ORDER BY seq;

-- who may read and change the rules and the alerts
SET ROLE reg70_auditor;
SELECT count(*) > 0 AS auditor_reads_rules FROM agentauth.alert_rule;
SELECT count(*) >= 0 AS auditor_reads_alerts FROM agentauth.alerts;
INSERT INTO agentauth.alert_rule (event, threshold, per) VALUES ('denied', 5, '1 minute');
UPDATE agentauth.alert_rule SET enabled = false;
RESET ROLE;
SET ROLE reg70_officer;
SELECT count(*) >= 0 AS officer_reads_alerts FROM agentauth.alerts;
RESET ROLE;
SET ROLE reg70_admin;
SELECT count(*) >= 0 AS admin_reads_alerts FROM agentauth.alerts;
RESET ROLE;
SET ROLE reg70_nobody;
SELECT count(*) FROM agentauth.alerts;
SELECT count(*) FROM agentauth.alert_rule;
SELECT count(*) FROM agentauth.alert_log;
DELETE FROM agentauth.alert_rule;
SELECT agentauth._raise_alert(NULL, 'denied', NULL, 'reg70_nobody', 1, NULL, 'notify', NULL, NULL, true);
RESET ROLE;

-- a protected table; the agent may read lab results, but no patient has
-- consented to its purpose (TREATDS has no default): every row it asks
-- for is withheld and recorded as denied, one record per patient
CREATE TABLE reg70_chart (patient_id text NOT NULL, lab text);
INSERT INTO reg70_chart SELECT 'R70P' || i, 'lab' || i FROM generate_series(1, 12) i;
SELECT agentauth.protect_table('reg70_chart', 'patient_id', '{"lab": "lab"}');
GRANT SELECT ON reg70_chart TO reg70_agent, reg70_quiet;
SET ROLE reg70_admin;
SELECT agentauth.register_agent('reg70-agent', 'reg70_agent', 'Monitoring test team',
    '{TREATDS}', '{lab:read}') AS agent \gset
SELECT agentauth.register_agent('reg70-quiet', 'reg70_quiet', 'Monitoring test team',
    '{TREATDS}', '{lab:read}') AS quiet \gset
RESET ROLE;
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS s_agent \gset
SELECT agentauth.issue_token(:'quiet', 'TREATDS') AS s_quiet \gset

-- a disabled rule raises nothing: three statements, 14 denied records
SET ROLE reg70_admin;
INSERT INTO agentauth.alert_rule (event, threshold, per, action, enabled)
VALUES ('denied', 3, '1 hour', 'suspend', false) RETURNING id AS rule_off \gset
RESET ROLE;
SET SESSION AUTHORIZATION reg70_quiet;
SELECT agentauth.begin_session(:'s_quiet') IS NOT NULL AS began;
SELECT patient_id, lab FROM reg70_chart;
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P1';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P2';
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT count(*) AS denied_records FROM agentauth.audit_log
 WHERE event = 'denied' AND principal = :'quiet';
-- a privileged read after them raises its always-on alert ...
SELECT count(*) AS superuser_reads FROM reg70_chart;
SELECT reg70_wait($$EXISTS (SELECT FROM agentauth.alerts a JOIN agentauth.audit_log l ON l.seq = a.audit_seq
                            WHERE a.event = 'privileged_access' AND l.relation = 'public.reg70_chart')$$) AS privileged_alert;
SELECT rule, event, principal, role, count, per, action, action_taken
  FROM agentauth.alerts a
 WHERE a.event = 'privileged_access'
   AND a.audit_seq IN (SELECT seq FROM agentauth.audit_log WHERE relation = 'public.reg70_chart');
-- ... and by then the disabled rule has raised nothing: the agent is active
SELECT count(*) AS alerts_for_quiet FROM agentauth.alerts WHERE principal = :'quiet' OR role = 'reg70_quiet';
SELECT status FROM agentauth.principals WHERE id = :'quiet';
SET SESSION AUTHORIZATION reg70_quiet;
SELECT agentauth.begin_session(:'s_quiet') IS NOT NULL AS still_begins;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- the README's example rule: suspend an agent refused patients in 10
-- statements within 5 minutes
SET ROLE reg70_admin;
UPDATE agentauth.alert_rule SET enabled = true, threshold = 10, per = '5 minutes' WHERE id = :rule_off;
RESET ROLE;
-- a cohort query that withholds 12 patients: 12 denied records, one event
SET SESSION AUTHORIZATION reg70_agent;
SELECT agentauth.begin_session(:'s_agent') IS NOT NULL AS began;
SELECT patient_id, lab FROM reg70_chart;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT count(*) AS cohort_denied_records FROM agentauth.audit_log
 WHERE event = 'denied' AND principal = :'agent';
-- behind a later privileged read's alert: nothing raised, the agent is active
SELECT max(seq) AS mark FROM agentauth.audit_log \gset
SELECT count(*) AS superuser_reads FROM reg70_chart;
SELECT reg70_wait($$EXISTS (SELECT FROM agentauth.alerts a WHERE a.event = 'privileged_access'
                            AND a.audit_seq > $$ || :mark || $$)$$) AS privileged_alert;
SELECT count(*) AS alerts_for_agent FROM agentauth.alerts WHERE principal = :'agent';
SELECT status FROM agentauth.principals WHERE id = :'agent';

-- probing patient after patient, one statement each: the tenth statement
-- crosses the rule, and the agent is refused at its next row, in the
-- session it still has open
SET SESSION AUTHORIZATION reg70_agent;
SELECT agentauth.begin_session(:'s_agent') IS NOT NULL AS began;
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P1';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P2';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P4';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P5';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P6';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P7';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P8';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P9';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P10';
RESET SESSION AUTHORIZATION;
SELECT reg70_wait($$(SELECT status = 'suspended' FROM agentauth.principals WHERE id = '$$ || :'agent' || $$')$$) AS suspended;
SET SESSION AUTHORIZATION reg70_agent;
\set VERBOSITY sqlstate
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P3';
\set VERBOSITY default
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P3';
SELECT agentauth.begin_session(:'s_agent') IS NOT NULL AS began;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- the alert: which rule, whom, how many statements, what was done
SELECT rule = :rule_off AS our_rule, event, principal = :'agent' AS agent, principal_name, role,
       count, per, action, action_taken, audit_seq IS NOT NULL AS has_seq
  FROM agentauth.alerts WHERE principal = :'agent' ORDER BY id;
-- the status change and the alert are both audited, and the tokens revoked
SELECT event, detail->>'to' AS "to", replace(detail->>'reason', :'rule_off', 'N') AS reason,
       detail->>'rule' = :'rule_off' AS alert_rule, detail->>'action_taken' AS action_taken
  FROM agentauth.audit_log
 WHERE principal = :'agent' AND event IN ('principal_status', 'alert')
 ORDER BY seq;
SELECT count(*) AS live_tokens FROM agentauth.tokens WHERE agent = :'agent' AND revoked_at IS NULL;
-- the owner reactivates it; it needs a new token
SELECT agentauth.set_principal_status(:'agent', 'active', 'reviewed with the owner');
SELECT status FROM agentauth.principals WHERE id = :'agent';
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS s_agent \gset

-- per_patient: every record counts, so the same cohort query is 12 events
-- and crosses the rule at its tenth patient
SET ROLE reg70_admin;
UPDATE agentauth.alert_rule SET per_patient = true WHERE id = :rule_off;
RESET ROLE;
SET SESSION AUTHORIZATION reg70_agent;
SELECT agentauth.begin_session(:'s_agent') IS NOT NULL AS began;
SELECT patient_id, lab FROM reg70_chart;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT reg70_wait($$(SELECT status = 'suspended' FROM agentauth.principals WHERE id = '$$ || :'agent' || $$')$$) AS suspended;
SELECT rule = :rule_off AS our_rule, event, count, per, action, action_taken
  FROM agentauth.alerts WHERE principal = :'agent' ORDER BY id;
SELECT replace(detail->>'reason', :'rule_off', 'N') AS reason
  FROM agentauth.audit_log
 WHERE principal = :'agent' AND event = 'principal_status' AND detail->>'to' = 'suspended'
 ORDER BY seq;
SELECT agentauth.set_principal_status(:'agent', 'active', 'reviewed with the owner');

-- suspend for a role that is no principal: the alert says so
SELECT agentauth._raise_alert(:rule_off, 'denied', NULL, 'reg70_nobody', 6, '1 hour', 'suspend', NULL, NULL, true) AS nobody_alert \gset
SELECT event, role, principal, count, action, action_taken FROM agentauth.alerts WHERE id = :nobody_alert;

-- one alert a window while the threshold stays crossed: six statements
-- refused patients against a rule of two an hour raise one alert (1.1:
-- three, one for every two more)
SET ROLE reg70_admin;
UPDATE agentauth.alert_rule SET threshold = 2, per = '1 hour', action = 'notify',
       per_patient = false WHERE id = :rule_off;
RESET ROLE;
SELECT agentauth.issue_token(:'quiet', 'TREATDS') AS s_quiet2 \gset
SET SESSION AUTHORIZATION reg70_quiet;
SELECT agentauth.begin_session(:'s_quiet2') IS NOT NULL AS began;
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P1';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P2';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P3';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P4';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P5';
SELECT patient_id, lab FROM reg70_chart WHERE patient_id = 'R70P6';
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT max(seq) AS mark FROM agentauth.audit_log \gset
SELECT count(*) AS superuser_reads FROM reg70_chart;
SELECT reg70_wait($$EXISTS (SELECT FROM agentauth.alerts a WHERE a.event = 'privileged_access'
                            AND a.audit_seq > $$ || :mark || $$)$$) AS privileged_alert;
SELECT rule = :rule_off AS our_rule, event, count, per, action
  FROM agentauth.alerts WHERE principal = :'quiet' ORDER BY id;

-- clean up: rules of this suite go
SET ROLE reg70_admin;
DELETE FROM agentauth.alert_rule WHERE id = :rule_off;
RESET ROLE;
SELECT id, event, threshold, per, action, enabled, per_patient FROM agentauth.alert_rule ORDER BY id;

-- a principal's login may not listen for alerts: an alert of the denied
-- rule follows a statement that was refused rows, and told an agent that
-- probed a withheld patient with conditions whether any row matched
-- (found by review); whoever is no principal may
SET SESSION AUTHORIZATION reg70_agent;
LISTEN agentauth_alerts;
LISTEN other_channel;
UNLISTEN *;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION reg70_nobody;
LISTEN agentauth_alerts;
UNLISTEN *;
RESET SESSION AUTHORIZATION;
