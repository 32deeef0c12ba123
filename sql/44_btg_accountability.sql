-- Accountability names a real person, and approvers need the authority they
-- grant (issue "Guarantees" items 14 and 15).
--  * An agent breaks the glass only on behalf of an active human principal
--    registered with can_break_glass, named as names are compared (case and
--    surrounding blanks aside, 1.1: found by review); the override records
--    that principal, and the no-self-review rule is decided on principals.
--  * An approval covers only what the approver may do: write scope for
--    every class of the table, and agent writes under one of the
--    approver's registered purposes.
\set SHOW_CONTEXT never
CREATE ROLE btg4_agent LOGIN;
CREATE ROLE btg4_grey LOGIN;
CREATE ROLE btg4_nurse LOGIN;
CREATE ROLE btg4_away LOGIN;
CREATE ROLE btg4_bot LOGIN;
CREATE ROLE btg4_officer LOGIN IN ROLE agentauth_privacy_officer;
CREATE ROLE btg4_researcher LOGIN;
CREATE ROLE btg4_pharmacist LOGIN;
-- dr.grey is a privacy officer too: she may review others' overrides
GRANT agentauth_privacy_officer TO btg4_grey;
SELECT agentauth.register_human('dr.grey', 'btg4_grey', '{TREAT}', '{lab:read}',
                                can_break_glass => true) AS grey \gset
SELECT agentauth.register_human('nurse.joy', 'btg4_nurse', '{TREAT}', '{lab:read}') AS nurse \gset
SELECT agentauth.register_human('dr.away', 'btg4_away', '{TREAT}', '{lab:read}',
                                can_break_glass => true) AS away \gset
SELECT agentauth.set_principal_status(:'away', 'suspended', 'on leave');
SELECT agentauth.register_agent('btg4 bot', 'btg4_bot', 'ops', '{TREAT}', '{lab:read}') AS bot \gset
SELECT agentauth.register_agent('btg4 agent', 'btg4_agent', 'ward team', '{TREAT}',
                                '{lab:read,medication:read,medication:write}',
                                can_break_glass => true) AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'nobody-real-#42') AS t_nobody \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'DR.GREY') AS t_upper \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'nurse.joy') AS t_nurse \gset
-- a suspended one: no token acts on its behalf (1.1)
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'dr.away') AS t_away;
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'btg4 bot') AS t_bot \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'dr.grey') AS t_grey \gset
SELECT count(*) AS overrides_before FROM agentauth.break_glass \gset

-- refused: a string that names nobody, a person who may not break the
-- glass, an agent
\c - btg4_agent
SELECT agentauth.begin_session(:'t_nobody') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG4-P1', 'sepsis alert');
SELECT agentauth.begin_session(:'t_nurse') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG4-P1', 'sepsis alert');
SELECT agentauth.begin_session(:'t_bot') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG4-P1', 'sepsis alert');
-- accepted for dr.grey, and recorded as her principal
SELECT agentauth.begin_session(:'t_grey') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG4-P1', 'sepsis alert', '1 minute') AS bg \gset
SELECT agentauth.end_break_glass(:'bg');
-- and for her name in other letter case, which her denies and her
-- suspension take for her too (1.1, found by review: refused, "names no
-- registered principal")
SELECT agentauth.begin_session(:'t_upper') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG4-P1', 'sepsis alert', '1 minute') AS bg_upper \gset
SELECT agentauth.end_break_glass(:'bg_upper');
SELECT agentauth.end_session();
\c - postgres
SELECT count(*) - :overrides_before AS overrides_made FROM agentauth.break_glass;
SELECT on_behalf_of, on_behalf_of_principal = :'grey' AS names_grey
  FROM agentauth.break_glass WHERE id IN (:'bg', :'bg_upper') ORDER BY started_at;

-- dr.grey may not review the override made on her behalf (decided on her
-- principal); another officer may
\c - btg4_grey
SELECT agentauth.review_break_glass(:'bg', 'justified', 'my own call');
\c - btg4_officer
SELECT agentauth.review_break_glass(:'bg', 'justified', 'sepsis confirmed');
\c - postgres
SELECT review_status, reviewer FROM agentauth.break_glass WHERE id = :'bg';
-- an officer who has SET ROLE to the shared group role is still named
-- (1.1, found by review: the group was recorded as the reviewer)
\c - btg4_officer
SET ROLE agentauth_privacy_officer;
SELECT agentauth.review_break_glass(:'bg_upper', 'justified', 'as the group');
RESET ROLE;
\c - postgres
SELECT review_status, reviewer FROM agentauth.break_glass WHERE id = :'bg_upper';

-- approvals
CREATE TABLE public.btg4_meds (id serial PRIMARY KEY, patient_id text NOT NULL,
                               drug text, note text);
GRANT ALL ON public.btg4_meds TO PUBLIC;
GRANT USAGE ON SEQUENCE public.btg4_meds_id_seq TO PUBLIC;
SELECT agentauth.protect_table('btg4_meds', 'patient_id',
    '{"id": "non_phi", "drug": "medication", "note": "clinical_note"}');
SELECT agentauth.require_approval('btg4_meds', '{insert}');
SELECT count(agentauth.record_consent('BTG4-P1', 'permit', NULL, NULL, '{read,write}'));
-- a researcher with lab:read (the reported case), and a pharmacist who may
-- write medication but not clinical notes
SELECT agentauth.register_human('btg4 researcher', 'btg4_researcher', '{HRESCH}', '{lab:read}',
                                can_approve => true) AS researcher \gset
SELECT agentauth.register_human('btg4 pharmacist', 'btg4_pharmacist', '{TREAT}',
                                '{medication:read,medication:write}', can_approve => true) AS pharmacist \gset
\c - btg4_researcher
SELECT agentauth.begin_human_session('HRESCH') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg4_meds', 'BTG4-P1', 'insert', 'go ahead');
\c - btg4_pharmacist
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg4_meds', 'BTG4-P1', 'insert', 'go ahead');
\c - postgres
SELECT count(*) AS approvals FROM agentauth.approval WHERE relation = 'btg4_meds'::regclass;
-- with write scope for every class of the table: granted, for TREAT only
UPDATE agentauth.principal SET scopes = '{medication:read,medication:write,clinical_note:write}'
 WHERE id = :'pharmacist';
UPDATE agentauth.principal SET scopes = '{medication:write,clinical_note:write}', purposes = '{HRESCH}'
 WHERE id = :'researcher';
\c - btg4_researcher
SELECT agentauth.begin_human_session('HRESCH') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg4_meds', 'BTG4-P1', 'insert', 'for the study') IS NOT NULL AS granted;
\c - btg4_agent
-- the agent writes under TREAT: the research approval does not cover it
SELECT agentauth.begin_session(:'t_grey') IS NOT NULL AS began;
INSERT INTO btg4_meds (patient_id, drug) VALUES ('BTG4-P1', 'vancomycin');
\c - btg4_pharmacist
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg4_meds', 'BTG4-P1', 'insert', 'start vancomycin') IS NOT NULL AS granted;
\c - btg4_agent
SELECT agentauth.begin_session(:'t_grey') IS NOT NULL AS began;
INSERT INTO btg4_meds (patient_id, drug) VALUES ('BTG4-P1', 'vancomycin');
SELECT agentauth.end_session();
\c - postgres
SELECT a.purposes, a.uses_left, p.name AS approved_by
  FROM agentauth.approval a JOIN agentauth.principal p ON p.id = a.approved_by
 WHERE a.relation = 'btg4_meds'::regclass ORDER BY p.name;
SELECT count(*) AS rows_written FROM btg4_meds;
DELETE FROM agentauth.approval WHERE relation = 'btg4_meds'::regclass;

-- Suspending a clinician ends the authority that came from her (1.1): the
-- tokens issued on her behalf are revoked, the overrides broken for her
-- end, the approvals she granted end, and no new token acts on her behalf.
-- Before, an override and an approval outlived her suspension, and a token
-- could still be issued for her, opening the consents that name her.
\c - btg4_pharmacist
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg4_meds', 'BTG4-P1', 'insert', 'one more') IS NOT NULL AS granted;
\c - postgres
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'dr.grey') AS t_grey2 \gset
-- (the agent's session stays open in this backend: its end would end the
-- override first)
SET SESSION AUTHORIZATION btg4_agent;
SELECT agentauth.begin_session(:'t_grey2') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG4-P1', 'sepsis again', '1 hour') AS bg2 \gset
RESET SESSION AUTHORIZATION;
SELECT agentauth.set_principal_status(:'grey', 'suspended', 'license review');
SELECT agentauth.set_principal_status(:'pharmacist', 'suspended', 'license review');
SELECT ended_at IS NOT NULL AS ended, ended_by FROM agentauth.break_glass WHERE id = :'bg2';
SELECT approved_by_name, state FROM agentauth.approvals
 WHERE relation = 'btg4_meds'::regclass ORDER BY approved_at;
SELECT count(*) FILTER (WHERE revoked_at IS NULL) AS live_tokens_for_grey
  FROM agentauth.token WHERE on_behalf_of = 'dr.grey';
SELECT detail->'overrides_ended' = jsonb_build_array(:'bg2'::uuid) AS override_listed,
       jsonb_array_length(detail->'tokens_revoked') >= 2 AS tokens_listed
  FROM agentauth.audit_log WHERE event = 'principal_status' AND principal = :'grey'
 ORDER BY seq DESC LIMIT 1;
SELECT jsonb_array_length(detail->'approvals_ended') AS approvals_ended
  FROM agentauth.audit_log WHERE event = 'principal_status' AND principal = :'pharmacist'
 ORDER BY seq DESC LIMIT 1;
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'dr.grey');
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => ' DR.Grey ');
\c - btg4_agent
SELECT agentauth.begin_session(:'t_grey2') IS NOT NULL AS began;
\c - postgres
DELETE FROM agentauth.approval WHERE relation = 'btg4_meds'::regclass;
