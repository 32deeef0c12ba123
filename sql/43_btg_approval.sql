-- Clinician in the loop: approve_action, and agent writes to a table under
-- require_approval that consume one use of an approval each.
\set SHOW_CONTEXT never
CREATE ROLE btg3_doc LOGIN;
CREATE ROLE btg3_resident LOGIN;
CREATE ROLE btg3_agent LOGIN;
CREATE ROLE btg3_agent2 LOGIN;
CREATE ROLE btg3_agent_off LOGIN;
CREATE TABLE public.btg3_orders (
    id          serial PRIMARY KEY,
    patient_id  text NOT NULL,
    drug        text,
    dose        text
);
CREATE TABLE public.btg3_notes (id int, patient_id text NOT NULL, note text);
CREATE TABLE public.btg3_unprotected (id int);
GRANT ALL ON public.btg3_orders, public.btg3_notes TO PUBLIC;
GRANT USAGE ON SEQUENCE public.btg3_orders_id_seq TO PUBLIC;
SELECT agentauth.protect_table('btg3_orders', 'patient_id', '{"id": "non_phi"}', 'medication');
SELECT agentauth.require_approval('btg3_orders', '{insert,update}');
SELECT agentauth.protect_table('btg3_notes', 'patient_id', '{}', 'clinical_note');
INSERT INTO btg3_orders (patient_id, drug, dose) VALUES
    ('BTG3-P1', 'heparin', '5000 IU'), ('BTG3-P2', 'insulin', '4 IU');
SELECT count(*) AS recorded FROM (
    SELECT agentauth.record_consent(p, 'permit', '{TREAT}', '{medication}', '{read,write}')
      FROM unnest(ARRAY['BTG3-P1', 'BTG3-P2']) p) c;
SELECT agentauth.register_human('btg3 doc', 'btg3_doc', '{TREAT}', '{medication:read,medication:write}',
                                can_approve => true) AS doc \gset
SELECT agentauth.register_human('btg3 resident', 'btg3_resident', '{TREAT}', '{medication:read}') AS resident \gset
SELECT agentauth.register_agent('btg3 agent', 'btg3_agent', 'pharmacy team', '{TREAT}',
                                '{medication:read,medication:write}') AS agent \gset
SELECT agentauth.register_agent('btg3 agent2', 'btg3_agent2', 'pharmacy team', '{TREAT}',
                                '{medication:read,medication:write}') AS agent2 \gset
SELECT agentauth.register_agent('btg3 agent off', 'btg3_agent_off', 'pharmacy team', '{TREAT}',
                                '{medication:read}') AS agent_off \gset
SELECT agentauth.set_principal_status(:'agent_off', 'suspended', 'under investigation');
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'btg3 doc') AS tok \gset
SELECT agentauth.issue_token(:'agent2', 'TREAT', on_behalf_of => 'btg3 doc') AS tok2 \gset

-- an agent writes without an approval: refused, nothing written
\c - btg3_agent
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
INSERT INTO btg3_orders (patient_id, drug, dose) VALUES ('BTG3-P1', 'vancomycin', '1 g');
-- and agents do not approve
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'self-service');

-- a human without can_approve
\c - btg3_resident
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'looks fine');

\c - btg3_doc
-- outside a session
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'start vancomycin');
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
-- bad input: nothing is granted
SELECT agentauth.approve_action(NULL, 'btg3_orders', 'BTG3-P1', 'insert', 'x');
SELECT agentauth.approve_action('00000000-0000-0000-0000-000000000003', 'btg3_orders', 'BTG3-P1', 'insert', 'x');
SELECT agentauth.approve_action(:'resident', 'btg3_orders', 'BTG3-P1', 'insert', 'x');
SELECT agentauth.approve_action(:'agent_off', 'btg3_orders', 'BTG3-P1', 'insert', 'x');
SELECT agentauth.approve_action(:'agent', NULL, 'BTG3-P1', 'insert', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_unprotected', 'BTG3-P1', 'insert', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_notes', 'BTG3-P1', 'insert', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'delete', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', NULL, 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'read', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'INSERT', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', NULL, 'insert', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3 P1', 'insert', 'x');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', NULL);
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', '');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', NULL);
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', '0');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', '-10 minutes');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', '25 hours');
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', '10 minutes', NULL);
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', '10 minutes', 0);
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', '10 minutes', -1);
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert', 'x', '10 minutes', 101);
-- the approvals
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P1', 'insert',
                                'start vancomycin per sepsis protocol') AS ap_ins \gset
SELECT agentauth.approve_action(:'agent', 'public.btg3_orders', 'BTG3-P1', 'update',
                                'dose adjustment after levels', '5 minutes', 2) AS ap_upd \gset
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P2', 'insert',
                                'insulin sliding scale') AS ap_p2 \gset
SELECT agentauth.approve_action(:'agent', 'btg3_orders', 'BTG3-P2', 'update',
                                'lapses before use') AS ap_old \gset

\c - postgres
-- (an approval that has lapsed)
UPDATE agentauth.approval SET expires_at = now() - interval '1 second' WHERE id = :'ap_old';

-- an approval belongs to one agent: another cannot use it
\c - btg3_agent2
SELECT agentauth.begin_session(:'tok2') IS NOT NULL AS began;
INSERT INTO btg3_orders (patient_id, drug, dose) VALUES ('BTG3-P1', 'vancomycin', '1 g');

\c - btg3_agent
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- one use: the first insert passes, the second is refused
INSERT INTO btg3_orders (patient_id, drug, dose) VALUES ('BTG3-P1', 'vancomycin', '1 g');
INSERT INTO btg3_orders (patient_id, drug, dose) VALUES ('BTG3-P1', 'vancomycin', '1 g');
-- a write that rolls back gives its use back
BEGIN;
INSERT INTO btg3_orders (patient_id, drug, dose) VALUES ('BTG3-P2', 'insulin', '2 IU');
ROLLBACK;
INSERT INTO btg3_orders (patient_id, drug, dose) VALUES ('BTG3-P2', 'insulin', '2 IU');
-- an update needs an update approval; its rows of one patient take one use
UPDATE btg3_orders SET dose = '1.25 g' WHERE patient_id = 'BTG3-P1' AND drug = 'vancomycin';
UPDATE btg3_orders SET dose = dose WHERE patient_id = 'BTG3-P1';
UPDATE btg3_orders SET dose = '1.5 g' WHERE patient_id = 'BTG3-P1' AND drug = 'vancomycin';
-- a lapsed approval is no approval
UPDATE btg3_orders SET dose = '6 IU' WHERE patient_id = 'BTG3-P2' AND drug = 'insulin';
-- deletes are not under require_approval here
DELETE FROM btg3_orders WHERE patient_id = 'BTG3-P2' AND dose = '2 IU';
SELECT patient_id, drug, dose FROM btg3_orders ORDER BY id;

\c - postgres
SELECT a.agent_name, a.relation, a.patient, a.action, a.reason, a.approved_by_name,
       CASE WHEN a.state <> 'expired' THEN a.expires_at - a.approved_at END AS valid_for, a.uses, a.uses_left, a.state
  FROM agentauth.approvals a
 WHERE a.id IN (:'ap_ins', :'ap_upd', :'ap_p2', :'ap_old')
 ORDER BY a.approved_at;
-- granting is audited; each write it allowed names it
SELECT l.event, l.principal_name, l.patient, l.relation, l.action,
       l.detail ->> 'agent_name' AS agent, l.detail ->> 'uses' AS uses
  FROM agentauth.audit_log l
 WHERE l.event = 'approval_granted' AND l.relation = 'public.btg3_orders'
 ORDER BY l.seq;
-- (the insert that rolled back is recorded too: a record survives its
-- transaction, the use it took does not)
SELECT l.event, l.principal_name, l.patient, l.action,
       CASE l.authority ->> 'approval'
            WHEN :'ap_ins' THEN 'ap_ins' WHEN :'ap_upd' THEN 'ap_upd'
            WHEN :'ap_p2' THEN 'ap_p2' WHEN :'ap_old' THEN 'ap_old' END AS approval
  FROM agentauth.audit_log l
 WHERE l.event = 'access' AND l.relation = 'public.btg3_orders'
   AND l.authority ? 'approval' AND l.principal_name = 'btg3 agent'
 ORDER BY l.seq;
-- each write refused for want of an approval is recorded, denied (1.1:
-- nothing was)
SELECT l.event, l.outcome, l.patient, l.action, l.row_count, l.detail ->> 'reason' AS reason
  FROM agentauth.audit_log l
 WHERE l.event = 'denied' AND l.relation = 'public.btg3_orders' AND l.principal_name = 'btg3 agent'
 ORDER BY l.seq;

-- deletes and multi-row writes: one use per statement and patient
CREATE TABLE public.btg3_tasks (id int, patient_id text NOT NULL, task text);
GRANT ALL ON public.btg3_tasks TO PUBLIC;
SELECT agentauth.protect_table('btg3_tasks', 'patient_id', '{"id": "non_phi"}', 'medication');
SELECT agentauth.require_approval('btg3_tasks');
INSERT INTO btg3_tasks VALUES (1, 'BTG3-P1', 'check INR'), (2, 'BTG3-P1', 'order INR'),
                              (3, 'BTG3-P2', 'glucose at 6');
\c - btg3_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg3_tasks', 'BTG3-P1', 'delete', 'INR tasks done') AS ap_del \gset
SELECT agentauth.approve_action(:'agent', 'btg3_tasks', 'BTG3-P2', 'update', 'reschedule') AS ap_p2upd \gset
\c - btg3_agent
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- two rows of one patient: one use
DELETE FROM btg3_tasks WHERE patient_id = 'BTG3-P1';
-- an update of every remaining row: only BTG3-P2's is left, and approved
UPDATE btg3_tasks SET task = 'glucose at 7';
-- its use is spent
UPDATE btg3_tasks SET task = 'glucose at 8';
SELECT id, patient_id, task FROM btg3_tasks ORDER BY id;
\c - postgres
SELECT a.relation, a.patient, a.action, a.uses, a.uses_left
  FROM agentauth.approvals a WHERE a.id IN (:'ap_del', :'ap_p2upd') ORDER BY a.action;

-- an UPDATE that moves a row to another patient writes both patients'
-- rows: it needs an approval for each (1.1: only the new row's patient's
-- was asked for, and an approval for BTG3-P2 let the agent move BTG3-P1's
-- row to BTG3-P2, recorded as a permitted update of BTG3-P1)
INSERT INTO btg3_tasks VALUES (4, 'BTG3-P1', 'weigh daily');
\c - btg3_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg3_tasks', 'BTG3-P2', 'update', 'fix BTG3-P2 task') AS ap_move \gset
\c - btg3_agent
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
UPDATE btg3_tasks SET patient_id = 'BTG3-P2', task = 'moved' WHERE id = 4;
\c - postgres
SELECT id, patient_id, task FROM btg3_tasks WHERE id = 4;
SELECT a.patient, a.action, a.uses_left FROM agentauth.approvals a WHERE a.id = :'ap_move';
SELECT l.event, l.outcome, l.patient, l.action, l.row_count, l.detail ->> 'reason' AS reason
  FROM agentauth.audit_log l
 WHERE l.relation = 'public.btg3_tasks' AND l.principal_name = 'btg3 agent' AND l.action = 'update'
   AND l.seq > (SELECT max(seq) FROM agentauth.audit_log WHERE event = 'approval_granted')
 ORDER BY l.seq;
-- with both approvals the move is made, and takes one use of each
\c - btg3_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.approve_action(:'agent', 'btg3_tasks', 'BTG3-P1', 'update', 'move the task to BTG3-P2') AS ap_move1 \gset
\c - btg3_agent
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
UPDATE btg3_tasks SET patient_id = 'BTG3-P2', task = 'moved' WHERE id = 4;
\c - postgres
SELECT id, patient_id, task FROM btg3_tasks WHERE id = 4;
SELECT a.patient, a.action, a.uses_left FROM agentauth.approvals a
 WHERE a.id IN (:'ap_move', :'ap_move1') ORDER BY a.patient;
