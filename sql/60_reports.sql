-- Auditor reports over a scripted history: access_report, element_access,
-- disclosure_accounting and agent_inventory.  The history is written
-- straight into the audit log inside a transaction that is rolled back, so
-- no other suite sees it.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE ROLE reg60_auditor IN ROLE agentauth_auditor;
CREATE ROLE reg60_officer IN ROLE agentauth_privacy_officer;
CREATE ROLE reg60_nobody;
CREATE ROLE reg60_agent LOGIN;
CREATE ROLE reg60_doc LOGIN;
CREATE TABLE reg60_labs (patient_id text, value text, hiv_status text);
GRANT SELECT ON reg60_labs TO PUBLIC;

-- only auditors (and privacy officers, who are auditors) may run reports
SET ROLE reg60_nobody;
SELECT * FROM agentauth.access_report('P60A');
SELECT * FROM agentauth.element_access('P60A', 'reg60_labs', 'value');
SELECT * FROM agentauth.disclosure_accounting('P60A');
SELECT * FROM agentauth.agent_inventory;
SELECT count(*) FROM agentauth.export_audit();
RESET ROLE;
SET ROLE reg60_officer;
SELECT count(*) FROM agentauth.access_report('P60A', '2026-01-01', '2026-02-01');
RESET ROLE;

-- who may execute what: the reports and the export for auditors, the
-- import for consent managers, the helpers for nobody
SELECT p.oid::regprocedure AS function, p.prosecdef AS definer,
       (SELECT string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ',')
          FROM aclexplode(p.proacl) a
         WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner) AS execute_granted_to,
       p.proconfig
  FROM pg_proc p
 WHERE p.pronamespace = 'agentauth'::regnamespace
   AND p.proname IN ('access_report', 'element_access', 'disclosure_accounting', 'agent_activity',
                     'export_audit', 'audit_event_fhir', 'import_fhir_consent', '_export_line',
                     '_report_args', '_relation_name', '_accounting_exempt', '_fhir_consent_rules',
                     '_fhir_tree', '_fhir_node', '_fhir_fail', '_fhir_coding', '_fhir_purpose')
 ORDER BY p.proname;
SELECT grantee::regrole AS view_readable_by FROM aclexplode((SELECT relacl FROM pg_class
  WHERE oid = 'agentauth.agent_inventory'::regclass)) a
 WHERE a.privilege_type = 'SELECT' AND a.grantee <> (SELECT relowner FROM pg_class WHERE oid = 'agentauth.agent_inventory'::regclass);

-- bad arguments
SET ROLE reg60_auditor;
SELECT * FROM agentauth.access_report(NULL);
SELECT * FROM agentauth.access_report('');
SELECT * FROM agentauth.access_report('P60A', '2026-02-01', '2026-01-01');
SELECT * FROM agentauth.access_report('P60A', NULL, '2026-01-01');
SELECT * FROM agentauth.element_access('P60A', NULL, 'value');
SELECT * FROM agentauth.disclosure_accounting('P60A', '2026-01-01', '2026-02-01', NULL);
SELECT * FROM agentauth.export_audit(NULL);
SELECT * FROM agentauth.export_audit(0);
RESET ROLE;

BEGIN;
INSERT INTO agentauth.principal (id, kind, name, db_role, owner, purposes, scopes,
    max_token_ttl, can_break_glass, registered_by, last_session_at) VALUES
  ('60000000-0000-0000-0000-0000000000a1', 'agent', 'reg60-bot', 'reg60_agent'::regrole,
   'Cardiology', '{TREAT,HRESCH}', '{lab:read}', '5 minutes', false, 'reg60', '2026-01-08 09:00+00'),
  ('60000000-0000-0000-0000-0000000000d1', 'human', 'reg60-doc', 'reg60_doc'::regrole,
   NULL, '{TREAT}', '{*:read}', NULL, true, 'reg60', NULL);
INSERT INTO agentauth.token (id, secret_hash, agent, chain, purpose, on_behalf_of, scopes,
    issued_by, expires_at, revoked_at) VALUES
  ('60000000-0000-0000-0000-0000000000b1', sha256('reg60-1'), '60000000-0000-0000-0000-0000000000a1',
   '{60000000-0000-0000-0000-0000000000b1}', 'TREAT', 'dr_house', '{lab:read}', 'reg60', now() + interval '5 minutes', NULL),
  ('60000000-0000-0000-0000-0000000000b2', sha256('reg60-2'), '60000000-0000-0000-0000-0000000000a1',
   '{60000000-0000-0000-0000-0000000000b2}', 'TREAT', NULL, '{lab:read}', 'reg60', now() + interval '5 minutes', now()),
  ('60000000-0000-0000-0000-0000000000b3', sha256('reg60-3'), '60000000-0000-0000-0000-0000000000a1',
   '{60000000-0000-0000-0000-0000000000b3}', 'HRESCH', NULL, '{lab:read}', 'reg60', now() - interval '1 minute', NULL);

CREATE TEMP TABLE hist (n int, logged_at timestamptz, event text, principal uuid,
    principal_name text, db_role text, token uuid, on_behalf_of text, purpose text,
    patient text, relation text, columns text[], data_classes text[], action text,
    row_count bigint, authority jsonb, outcome text);
INSERT INTO hist VALUES
 (1, '2026-01-05 10:00+00', 'access', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot', 'reg60_agent',
  '60000000-0000-0000-0000-0000000000b1', 'dr_house', 'TREAT', 'P60A', 'public.reg60_labs',
  '{patient_id,value}', '{lab}', 'read', 3, '{"consent": ["60000000-0000-0000-0000-0000000000c1"]}', 'permit'),
 (2, '2026-01-05 10:05+00', 'denied', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot', 'reg60_agent',
  '60000000-0000-0000-0000-0000000000b1', 'dr_house', 'TREAT', 'P60A', 'public.reg60_labs',
  '{patient_id,hiv_status}', '{hiv}', 'read', 2, '{"default": "deny"}', 'deny'),
 (3, '2026-01-06 02:00+00', 'break_glass_start', '60000000-0000-0000-0000-0000000000d1', 'reg60-doc', 'reg60_doc',
  NULL, NULL, 'BTG', 'P60A', NULL, NULL, NULL, NULL, NULL,
  '{"break_glass": "60000000-0000-0000-0000-0000000000e1"}', 'permit'),
 (4, '2026-01-06 02:01+00', 'access', '60000000-0000-0000-0000-0000000000d1', 'reg60-doc', 'reg60_doc',
  NULL, NULL, 'BTG', 'P60A', 'public.reg60_labs', '{patient_id,hiv_status}', '{hiv}', 'read', 1,
  '{"break_glass": "60000000-0000-0000-0000-0000000000e1"}', 'permit'),
 (5, '2026-01-07 12:00+00', 'consent_withdrawn', NULL, NULL, 'registrar', NULL, NULL, NULL, 'P60A',
  NULL, NULL, NULL, NULL, NULL, '{"consent": "60000000-0000-0000-0000-0000000000c1"}', 'permit'),
 (6, '2026-01-08 09:00+00', 'access', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot', 'reg60_agent',
  '60000000-0000-0000-0000-0000000000b3', NULL, 'HRESCH', 'P60A', 'public.reg60_labs',
  '{patient_id,value}', '{lab}', 'read', 5, '{"consent": ["60000000-0000-0000-0000-0000000000c2"]}', 'permit'),
 (7, '2026-01-08 09:00+00', 'access', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot', 'reg60_agent',
  '60000000-0000-0000-0000-0000000000b3', NULL, 'HRESCH', 'P60A', 'public.reg60_labs',
  '{value}', '{lab}', 'update', 0, '{"consent": ["60000000-0000-0000-0000-0000000000c2"]}', 'permit'),
 (8, '2026-01-09 17:30+00', 'privileged_access', NULL, NULL, 'postgres', NULL, NULL, NULL, 'P60A',
  'public.reg60_labs', '{patient_id,value,hiv_status}', '{lab,hiv}', 'read', 1, NULL, 'permit'),
 (9, '2026-01-10 08:00+00', 'unregistered_access', NULL, NULL, 'reg60_rogue', NULL, NULL, NULL, 'P60A',
  'public.reg60_labs', '{value}', '{lab}', 'read', NULL, NULL, 'deny'),
 (10, '2026-01-10 09:00+00', 'access', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot', 'reg60_agent',
  '60000000-0000-0000-0000-0000000000b1', 'dr_house', 'PUBHLTH', 'P60B', 'public.reg60_labs',
  '{patient_id,value}', '{lab}', 'read', 1, NULL, 'permit'),
 (11, now() - interval '1 hour', 'denied', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot', 'reg60_agent',
  '60000000-0000-0000-0000-0000000000b1', 'dr_house', 'TREAT', 'P60B', 'public.reg60_labs',
  '{patient_id,hiv_status}', '{hiv}', 'read', 1, NULL, 'deny'),
 (12, now() - interval '30 minutes', 'session_denied', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot',
  'reg60_agent', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'deny'),
 (13, now() - interval '20 minutes', 'access', '60000000-0000-0000-0000-0000000000a1', 'reg60-bot',
  'reg60_agent', '60000000-0000-0000-0000-0000000000b1', 'dr_house', 'TREAT', 'P60B', 'public.reg60_labs',
  '{value}', '{lab}', 'read', 1, NULL, 'permit');
-- far above the writer's next seq, so a record it writes meanwhile cannot collide
CREATE TEMP TABLE base AS SELECT COALESCE(max(seq), 0) + 1000000000 AS b FROM agentauth.audit_log;
-- the log is append-only for every role: a superuser switches its guard off
-- through the catalog, inside this transaction (rolled back below); the
-- pg_class update makes this backend reload the table's triggers
UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'agentauth.audit_record'::regclass;
UPDATE pg_catalog.pg_class SET relhastriggers = true WHERE oid = 'agentauth.audit_record'::regclass;
INSERT INTO agentauth.audit_record (seq, logged_at, event, principal, principal_name, db_role, token,
    on_behalf_of, purpose, patient, relation, columns, data_classes, action, row_count, authority,
    outcome, prev_hash, row_hash)
SELECT b + n, logged_at, event, principal, principal_name, db_role, token, on_behalf_of, purpose,
       patient, relation, columns, data_classes, action, row_count, authority, outcome, '', ''
  FROM hist, base ORDER BY n;
GRANT SELECT ON base TO reg60_auditor;

SET ROLE reg60_auditor;
-- everything that names patient P60A in January, oldest first
SELECT seq - (SELECT b FROM base) AS n, logged_at, event, outcome, principal_name, db_role,
       on_behalf_of, purpose, relation, action, columns, data_classes, row_count, authority
  FROM agentauth.access_report('P60A', '2026-01-01', '2026-02-01');
-- the period bounds are inclusive
SELECT seq - (SELECT b FROM base) AS n, event
  FROM agentauth.access_report('P60A', '2026-01-06 02:01+00', '2026-01-08 09:00+00');
-- the default period (the last 30 days) holds none of January's records
SELECT count(*) FROM agentauth.access_report('P60A');
SELECT seq - (SELECT b FROM base) AS n, event FROM agentauth.access_report('P60B');

-- who touched P60A's hiv_status, and P60A's value
SELECT seq - (SELECT b FROM base) AS n, logged_at, event, outcome, principal_name, db_role,
       on_behalf_of, purpose, action, row_count, authority
  FROM agentauth.element_access('P60A', 'reg60_labs', 'hiv_status');
SELECT seq - (SELECT b FROM base) AS n, event, outcome, principal_name, purpose, action, row_count
  FROM agentauth.element_access('P60A', 'public.reg60_labs'::regclass, 'value');
SELECT seq - (SELECT b FROM base) AS n, event
  FROM agentauth.element_access('P60A', 'reg60_labs', 'value', '2026-01-08', '2026-01-09');
SELECT count(*) FROM agentauth.element_access('P60A', 'reg60_labs', 'no_such_column');

-- HIPAA accounting of disclosures: treatment, payment and operations are
-- exempt; research, break-the-glass and privileged access are accounted;
-- denials and writes that reached no row are not disclosures
SELECT seq - (SELECT b FROM base) AS n, disclosed_at, recipient, recipient_owner, on_behalf_of,
       purpose, purpose_display, description, exempt
  FROM agentauth.disclosure_accounting('P60A', '2026-01-01', '2026-02-01');
SELECT seq - (SELECT b FROM base) AS n, purpose, exempt
  FROM agentauth.disclosure_accounting('P60A', '2026-01-01', '2026-02-01', include_exempt => true);
SELECT seq - (SELECT b FROM base) AS n, recipient, purpose, description
  FROM agentauth.disclosure_accounting('P60B', '2026-01-01', 'infinity');

-- the agent inventory: the human is not listed; one live token (one is
-- revoked, one expired); last access; two denials in the last 24 hours
SELECT name, owner, db_role, status, scopes, purposes, max_token_ttl, can_break_glass,
       can_delegate, live_tokens, last_session_at, last_access = now() - interval '20 minutes' AS last_access_ok,
       denials_24h
  FROM agentauth.agent_inventory WHERE name LIKE 'reg60%';
RESET ROLE;
ROLLBACK;

DROP TABLE reg60_labs;
DROP ROLE reg60_auditor, reg60_officer, reg60_nobody, reg60_agent, reg60_doc;
