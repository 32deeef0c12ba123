-- Security review (attacks that must fail).  Each block is an attack by a
-- role the README's security model names; the expected output shows it
-- failing.
\set SHOW_CONTEXT never
CREATE ROLE reg80_agent LOGIN;
CREATE TABLE reg80_chart (patient_id text NOT NULL, lab text, diag text, hiv text);
INSERT INTO reg80_chart
SELECT 'R80-P' || i, 'lab' || i, 'diag' || i, 'hiv' || i FROM generate_series(1, 4) i;
SELECT agentauth.protect_table('reg80_chart', 'patient_id',
    '{"lab": "lab", "diag": "diagnosis", "hiv": "hiv"}');
GRANT SELECT, INSERT, UPDATE, DELETE ON reg80_chart TO reg80_agent;
SELECT agentauth.register_agent('reg80-agent', 'reg80_agent', 'Security review',
    '{TREAT,TREATDS}', '{lab:read,diagnosis:read,lab:write}',
    can_break_glass => true) AS agent \gset
SELECT agentauth.record_consent('R80-P1', 'permit') IS NOT NULL AS consented;
SELECT agentauth.issue_token(:'agent', 'TREATDS', on_behalf_of => 'dr.review') AS tok \gset

-- 1. Type shadowing in pg_temp.  The extension reads its catalogs as the
-- bootstrap superuser inside the agent's backend, where the agent chose
-- search_path.  pg_temp is searched for type names when listed first, so
-- a domain pg_temp.text whose CHECK calls the agent's function would run
-- that function as the superuser if any of those queries resolved "text"
-- through the caller's path.  The function must never run.
SET SESSION AUTHORIZATION reg80_agent;
CREATE FUNCTION pg_temp.reg80_evil(v varchar) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'attacker function ran as %', current_user;
    RETURN true;
END $$;
CREATE DOMAIN pg_temp.text AS varchar CHECK (pg_temp.reg80_evil(VALUE));
SET search_path = pg_temp, pg_catalog, public;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- consent and defaults are loaded for this session here
SELECT patient_id, lab FROM public.reg80_chart ORDER BY 1;
SELECT decision FROM agentauth.explain_access('R80-P2', 'lab');
-- an override (break-the-glass) is loaded, then ended with the session
SELECT agentauth.break_glass('R80-P3', 'security review probe') IS NOT NULL AS broke;
SELECT patient_id, lab FROM public.reg80_chart ORDER BY 1;
SELECT agentauth.end_session();
-- the attacker's type is still there and still works for the attacker
SELECT 'x'::text AS own_domain_still_works;
RESET search_path;
DROP DOMAIN pg_temp.text;
RESET SESSION AUTHORIZATION;

-- 2. A patient id too long for the audit log's patient index.  A record
-- naming it could never be inserted, so the audit writer would retry its
-- batch forever and every PHI statement of every session would fail
-- closed.  The row check refuses such a row (without echoing it), and the
-- audit goes on.
SELECT agentauth.record_consent('R80-P2', 'permit', actions => '{read,insert}') IS NOT NULL AS consented;
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
INSERT INTO reg80_chart (patient_id, lab)
SELECT string_agg(md5(i::text), ''), 'x' FROM generate_series(1, 100) i;
-- 200 characters is the limit everywhere (tokens, consent)
INSERT INTO reg80_chart (patient_id, lab) VALUES (repeat('é', 201), 'x');
INSERT INTO reg80_chart (patient_id, lab) VALUES ('R80-P2', 'lab2b');
SELECT patient_id, lab FROM reg80_chart ORDER BY 1, 2;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- a long id already in the table (put there by its owner): a scan that
-- reaches it fails closed; one that the patient qual keeps away does not
SET row_security = off;
INSERT INTO reg80_chart (patient_id, lab) VALUES (repeat('Q', 3000), 'x');
RESET row_security;
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT patient_id, lab FROM reg80_chart ORDER BY 1, 2;
SELECT patient_id, lab FROM reg80_chart WHERE patient_id = 'R80-P1';
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- the writer kept writing: the reads above are in the log, chained
SELECT patient, action, row_count, outcome FROM agentauth.audit_log
 WHERE principal = :'agent' AND event IN ('access', 'denied')
 ORDER BY seq DESC LIMIT 3;
SELECT ok FROM agentauth.verify_audit();
