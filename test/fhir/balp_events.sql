-- Real records about patients' data for t/105_fhir_balp.pl: an agent reading for a
-- clinician (permitted, denied by consent), writing (insert, update,
-- delete), an agent without a person, a human, a superuser.
SELECT agentauth.set_default_decision('TREAT', '*', 'deny') IS NULL;
CREATE TABLE public.labs (id serial, patient_id text, code text, value numeric, hiv_status text);
INSERT INTO public.labs (patient_id, code, value, hiv_status) VALUES ('P1', '718-7', 13.5, 'neg'), ('P2', '718-7', 11, 'pos'), ('mrn:77', '2345-7', 98, NULL);
SELECT agentauth.protect_table('public.labs', 'patient_id', '{"id": "non_phi", "code": "lab", "value": "lab", "hiv_status": "hiv"}');
CREATE ROLE t105_bot LOGIN;
CREATE ROLE t105_doc LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.labs TO t105_bot, t105_doc;
GRANT USAGE ON SEQUENCE public.labs_id_seq TO t105_bot;
SELECT agentauth.register_agent('t105-bot', 't105_bot', 'Organization/o1', '{TREAT}', '{lab:read,lab:write,hiv:read,hiv:write}') AS bot \gset
SELECT agentauth.register_human('t105-doc', 't105_doc', '{TREAT}', '{*:read}') IS NOT NULL;
SELECT agentauth.record_consent('P1', 'permit', '{TREAT}', NULL, '{read,insert,update,delete}') IS NOT NULL;
SELECT agentauth.record_consent('mrn:77', 'permit', '{TREAT}') IS NOT NULL;
SELECT agentauth.record_consent('P2', 'deny', NULL, '{hiv}') IS NOT NULL;
SELECT agentauth.issue_token(:'bot', 'TREAT', on_behalf_of => 'Practitioner/dr1') AS tok \gset
SELECT agentauth.issue_token(:'bot', 'TREAT') AS tok2 \gset
\c - t105_bot
SELECT agentauth.begin_session(:'tok') IS NOT NULL;
SELECT patient_id, code, value FROM public.labs ORDER BY id;
SELECT patient_id, hiv_status FROM public.labs WHERE patient_id = 'P2';
INSERT INTO public.labs (patient_id, code, value) VALUES ('P1', '2345-7', 101);
UPDATE public.labs SET value = 14 WHERE patient_id = 'P1' AND code = '718-7';
DELETE FROM public.labs WHERE patient_id = 'P1' AND value = 101;
SELECT agentauth.begin_session(:'tok2') IS NOT NULL;
SELECT patient_id, value FROM public.labs ORDER BY id;
SELECT agentauth.end_session();
-- a token for P1 alone: mrn:77 is denied by the token's list, not by consent
\c - postgres
SELECT agentauth.issue_token(:'bot', 'TREAT', patients => '{P1}') AS tok3 \gset
\c - t105_bot
SELECT agentauth.begin_session(:'tok3') IS NOT NULL;
SELECT patient_id, value FROM public.labs WHERE patient_id IN ('P1', 'mrn:77') ORDER BY id;
SELECT agentauth.end_session();
\c - t105_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL;
SELECT patient_id, value FROM public.labs ORDER BY id;
\c - postgres
SELECT patient_id, value FROM public.labs ORDER BY id;
