-- Break-the-glass and approvals: what holds without any session, and who
-- may call what.
\set SHOW_CONTEXT never
CREATE ROLE btg0_clerk LOGIN;
CREATE ROLE btg0_officer LOGIN IN ROLE agentauth_privacy_officer;
CREATE ROLE btg0_auditor LOGIN IN ROLE agentauth_auditor;

-- the functions and views, and their privileges
SELECT p.oid::regprocedure AS function, p.prosecdef AS definer,
       p.proconfig AS settings,
       has_function_privilege('public', p.oid, 'EXECUTE') AS public_exec
  FROM pg_proc p
 WHERE p.pronamespace = 'agentauth'::regnamespace
   AND p.proname IN ('break_glass', 'end_break_glass', 'review_break_glass',
                     'approve_action', '_btg_session', '_btg_changed',
                     '_btg_audit', '_check_patient')
 ORDER BY 1::text;
SELECT c.relname,
       has_table_privilege('btg0_clerk', c.oid, 'SELECT') AS clerk,
       has_table_privilege('btg0_auditor', c.oid, 'SELECT') AS auditor,
       has_table_privilege('btg0_officer', c.oid, 'SELECT') AS officer
  FROM pg_class c
 WHERE c.relnamespace = 'agentauth'::regnamespace
   AND c.relname IN ('break_glass', 'approval', 'break_glass_events',
                     'break_glass_overdue', 'approvals')
 ORDER BY 1;
SELECT attname FROM pg_attribute
 WHERE attrelid = 'agentauth.break_glass_events'::regclass AND attnum > 0
 ORDER BY attnum;

SET ROLE btg0_clerk;
-- outside a session nobody breaks the glass or approves
SELECT agentauth.break_glass('P1', 'cardiac arrest');
SELECT agentauth.approve_action(gen_random_uuid(), 'pg_class', 'P1', 'insert', 'x');
-- the private helpers are private
SELECT agentauth._btg_changed(NULL);
SELECT agentauth._btg_audit('break_glass_start', NULL, NULL, NULL, NULL, NULL, NULL);
SELECT agentauth._btg_accesses(gen_random_uuid(), 'P1', now());
-- reviews: privacy officers only; ending: only the owner or an officer
SELECT agentauth.review_break_glass(gen_random_uuid(), 'justified', 'ok');
SELECT agentauth.end_break_glass('00000000-0000-0000-0000-000000000002');
SELECT agentauth.end_break_glass(NULL);
-- the views are for auditors
SELECT count(*) FROM agentauth.break_glass_events;
SELECT count(*) FROM agentauth.approvals;
RESET ROLE;

SET ROLE btg0_auditor;
SELECT count(*) FROM agentauth.break_glass_events;
SELECT count(*) FROM agentauth.break_glass_overdue;
-- every column, the accesses each override reached among them
SELECT * FROM agentauth.break_glass_events;
SELECT * FROM agentauth.break_glass_overdue;
SELECT count(*) FROM agentauth.approvals;
SELECT agentauth.review_break_glass(gen_random_uuid(), 'justified', 'ok');
RESET ROLE;

-- a privacy officer's bad input, checked before anything is looked up
SET ROLE btg0_officer;
SELECT agentauth.review_break_glass(NULL, 'justified', 'ok');
SELECT agentauth.review_break_glass(gen_random_uuid(), NULL, 'ok');
SELECT agentauth.review_break_glass(gen_random_uuid(), 'fine', 'ok');
SELECT agentauth.review_break_glass(gen_random_uuid(), 'JUSTIFIED', 'ok');
SELECT agentauth.review_break_glass(gen_random_uuid(), 'justified', NULL);
SELECT agentauth.review_break_glass(gen_random_uuid(), 'justified', '   ');
SELECT agentauth.review_break_glass(gen_random_uuid(), 'justified', repeat('x', 4001));
SELECT agentauth.review_break_glass('00000000-0000-0000-0000-000000000001', 'justified', 'ok');
SELECT agentauth.end_break_glass('00000000-0000-0000-0000-000000000001');
RESET ROLE;

-- the patient id format
SELECT p, (SELECT agentauth._check_patient(p)) IS NOT NULL AS ok
  FROM unnest(ARRAY['P1', 'MRN-000123', 'Patient/123', 'urn:oid:1.2.3',
                    repeat('a', 64)]) p;
SELECT agentauth._check_patient(NULL);
SELECT agentauth._check_patient('');
SELECT agentauth._check_patient(' P1');
SELECT agentauth._check_patient('P1; DROP TABLE x');
SELECT agentauth._check_patient('-P1');
SELECT agentauth._check_patient(repeat('a', 65));
SELECT agentauth._check_patient(E'P1\n');

DROP ROLE btg0_clerk, btg0_officer, btg0_auditor;
