-- The reports over a real history: an agent's reads under treatment and
-- research, denials, a consent withdrawn, a clinician's break-the-glass,
-- all written by the audit writer; then what each report says about it.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE ROLE reg64_agent LOGIN;
CREATE ROLE reg64_doc LOGIN;
CREATE ROLE reg64_mgr LOGIN IN ROLE agentauth_consent_manager;
CREATE ROLE reg64_auditor LOGIN IN ROLE agentauth_auditor;
CREATE TABLE public.reg64_lab (
    id          serial PRIMARY KEY,
    patient_id  text NOT NULL,
    test        text,
    result      text,
    hiv_status  text
);
INSERT INTO public.reg64_lab (patient_id, test, result, hiv_status) VALUES
    ('R64-P1', 'glucose', '5.1', 'negative'),
    ('R64-P1', 'sodium', '140', NULL),
    ('R64-P2', 'glucose', '9.9', 'positive');
GRANT SELECT ON public.reg64_lab TO reg64_agent, reg64_doc;
SELECT agentauth.protect_table('public.reg64_lab', 'patient_id',
    '{"id": "non_phi", "test": "lab", "result": "lab", "hiv_status": "hiv"}');
SELECT agentauth.register_agent('reg64 bot', 'reg64_agent', 'Cardiology', '{TREAT,HRESCH}',
    '{lab:read,hiv:read}') AS bot \gset
SELECT agentauth.register_human('reg64 doc', 'reg64_doc', '{TREAT}', '{lab:read,hiv:read}',
    can_break_glass => true) AS doc \gset
SELECT agentauth.issue_token(:'bot', 'TREAT', on_behalf_of => 'dr_house') AS tok_treat \gset
SELECT agentauth.issue_token(:'bot', 'HRESCH') AS tok_resch \gset
SELECT now() AS t0 \gset

\c - reg64_mgr
SELECT agentauth.record_consent('R64-P1', 'permit', '{HRESCH}', '{lab}') AS c1 \gset

\c - reg64_agent
SELECT agentauth.begin_session(:'tok_treat') IS NOT NULL AS began;
-- treatment: labs of both patients (default permit); HIV status: none
SELECT patient_id, test, result FROM public.reg64_lab ORDER BY id;
SELECT patient_id, hiv_status FROM public.reg64_lab WHERE patient_id = 'R64-P1';
-- research: only the patient who consented
SELECT agentauth.begin_session(:'tok_resch') IS NOT NULL AS began;
SELECT patient_id, result FROM public.reg64_lab ORDER BY id;

\c - reg64_mgr
SELECT agentauth.withdraw_consent(:'c1', 'patient asked to stop research use');

\c - reg64_agent
SELECT agentauth.begin_session(:'tok_resch') IS NOT NULL AS began;
SELECT patient_id, result FROM public.reg64_lab WHERE patient_id = 'R64-P1';
SELECT agentauth.end_session();

\c - reg64_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('R64-P1', 'unconscious, HIV status needed for treatment') AS bg \gset
SELECT patient_id, hiv_status FROM public.reg64_lab WHERE patient_id = 'R64-P1' ORDER BY id;
SELECT agentauth.end_break_glass(:'bg');
SELECT agentauth.end_session();

\c - reg64_auditor
SET TimeZone = 'UTC';
-- everything about R64-P1 since the history began (uuids masked)
SELECT row_number() OVER (ORDER BY seq) AS n, event, outcome, principal_name, on_behalf_of, purpose,
       relation, action, columns, data_classes, row_count,
       regexp_replace(authority::text, '[0-9a-f]{8}-[0-9a-f-]{27}', '<uuid>', 'g') AS authority,
       authority->>'break_glass' = :'bg' AS under_bg
  FROM agentauth.access_report('R64-P1', :'t0');
SELECT row_number() OVER (ORDER BY seq) AS n, event, outcome, principal_name, purpose, columns, row_count
  FROM agentauth.access_report('R64-P2', :'t0');
-- who touched R64-P1's HIV status: the refused agent and the doctor who broke the glass
SELECT event, outcome, principal_name, on_behalf_of, purpose, action, data_classes, row_count,
       authority->>'break_glass' = :'bg' AS under_bg
  FROM agentauth.element_access('R64-P1', 'public.reg64_lab', 'hiv_status', :'t0');
SELECT event, outcome, principal_name, purpose, row_count
  FROM agentauth.element_access('R64-P1', 'reg64_lab', 'result', :'t0');
-- the accounting of disclosures: the research read and the override; the
-- treatment reads only with include_exempt
SELECT recipient, recipient_owner, on_behalf_of, purpose, purpose_display, description, exempt
  FROM agentauth.disclosure_accounting('R64-P1', :'t0');
SELECT recipient, purpose, description, exempt
  FROM agentauth.disclosure_accounting('R64-P1', :'t0', include_exempt => true);
SELECT count(*) AS p2_disclosures FROM agentauth.disclosure_accounting('R64-P2', :'t0');
-- everything the agent did or was refused, and the errors of the function
SELECT row_number() OVER (ORDER BY seq) AS n, event, outcome, patient, on_behalf_of, purpose,
       columns, row_count
  FROM agentauth.agent_activity(:'bot', :'t0')
 WHERE event NOT LIKE 'session%';  -- a disconnect's session_end is written by the exiting backend, in no fixed order
SELECT count(*) AS session_begins FROM agentauth.agent_activity(:'bot', :'t0') WHERE event = 'session_begin';
SELECT count(*) FROM agentauth.agent_activity(NULL);
SELECT count(*) FROM agentauth.agent_activity('00000000-0000-0000-0000-000000000000');
SELECT count(*) FROM agentauth.agent_activity(:'bot', 'infinity', '-infinity');
-- the inventory: the agent, its two live tokens, its last access, its denials
SELECT name, owner, db_role, status, scopes, purposes, live_tokens,
       last_access >= :'t0' AS accessed_since_t0, denials_24h
  FROM agentauth.agent_inventory WHERE name = 'reg64 bot';
-- the override's read as FHIR: emergency codes, the doctor, the patient, the elements
SELECT f->'type'->>'code' AS type, f->>'action' AS action, f->>'outcome' AS outcome,
       f->'meta'->'security'->0->>'code' AS label,
       (SELECT string_agg(c->>'code', ',') FROM jsonb_array_elements(f->'purposeOfEvent') p,
               jsonb_array_elements(p->'coding') c) AS purposes,
       f->'agent'->0->'who'->>'display' AS who,
       f->'agent'->0->'policy'->>0 = 'urn:uuid:' || :'bg' AS policy_is_bg,
       f->'entity'->0->'what'->>'reference' AS patient,
       (SELECT string_agg(d->>'valueString', ',') FROM jsonb_array_elements(f->'entity'->-1->'detail') d
         WHERE d->>'type' = 'column') AS columns,
       f->'entity'->-1->'securityLabel'->1->>'code' AS sensitivity
  FROM agentauth.access_report('R64-P1', :'t0') r, agentauth.audit_event_fhir(r.seq) f
 WHERE r.event = 'access' AND r.purpose = 'BTG';
-- and the agent's treatment read: the clinician it acted for is the user
-- agent (BALP: information recipient, the requestor)
SELECT f->'agent'->0->>'requestor' AS bot_requestor,
       f->'agent'->1->'who'->>'display' AS on_behalf_of,
       f->'agent'->1->'type'->'coding'->0->>'code' AS role,
       f->'agent'->1->>'requestor' AS requestor
  FROM agentauth.access_report('R64-P1', :'t0') r, agentauth.audit_event_fhir(r.seq) f
 WHERE r.event = 'access' AND r.purpose = 'TREAT';

\c - postgres
DROP TABLE public.reg64_lab;
