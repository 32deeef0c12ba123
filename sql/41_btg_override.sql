-- Break-the-glass: who may start an override, its bad inputs, its life
-- (end, rollback, session end), its audit records and its review.
\set SHOW_CONTEXT never
CREATE ROLE btg1_doc LOGIN;
CREATE ROLE btg1_nurse LOGIN;
CREATE ROLE btg1_agent LOGIN;
CREATE ROLE btg1_agent_nobtg LOGIN;
CREATE ROLE btg1_officer LOGIN IN ROLE agentauth_privacy_officer;
CREATE ROLE btg1_officer_doc LOGIN IN ROLE agentauth_privacy_officer;
GRANT btg1_doc TO btg1_officer;   -- may act as the doctor, so may not review him

SELECT agentauth.register_human('btg1 doc', 'btg1_doc', '{TREAT}', '{lab:read}',
                                can_break_glass => true) AS doc \gset
SELECT agentauth.register_human('btg1 nurse', 'btg1_nurse', '{TREAT}', '{lab:read}') AS nurse \gset
SELECT agentauth.register_human('btg1 officer doc', 'btg1_officer_doc', '{TREAT}', '{lab:read}',
                                can_break_glass => true) AS odoc \gset
SELECT agentauth.register_agent('btg1 agent', 'btg1_agent', 'btg1 team', '{TREAT}',
                                '{lab:read}', can_break_glass => true) AS agent \gset
SELECT agentauth.register_agent('btg1 agent nobtg', 'btg1_agent_nobtg', 'btg1 team',
                                '{TREAT}', '{lab:read}') AS agent2 \gset
SELECT agentauth.issue_token(:'agent', 'TREAT') AS tok_alone \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'btg1 officer doc',
                             patients => '{BTG1-P1}') AS tok \gset
SELECT agentauth.issue_token(:'agent2', 'TREAT', on_behalf_of => 'btg1 doc') AS tok2 \gset

-- a principal without can_break_glass: refused, human or agent
\c - btg1_nurse
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P1', 'collapsed in the corridor');
\c - btg1_agent_nobtg
SELECT agentauth.begin_session(:'tok2') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P1', 'collapsed in the corridor');

-- an agent needs a person to answer for it: on_behalf_of on its token
\c - btg1_agent
SELECT agentauth.begin_session(:'tok_alone') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P1', 'sepsis alert');
-- with on_behalf_of, but only for a patient its token allows
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P2', 'sepsis alert');
-- the record's ttl_seconds whatever the caller's extra_float_digits (1.1,
-- found by review: at -15, 900 was recorded as 1000)
SET extra_float_digits = -15;
SELECT agentauth.break_glass('BTG1-P1', 'sepsis alert, attending paged', '15 minutes') AS bg_agent \gset
RESET extra_float_digits;
SELECT (break_glass = ARRAY[:'bg_agent']::uuid[]) AS whoami_lists_it FROM agentauth.whoami();
SELECT agentauth.end_break_glass(:'bg_agent');
SELECT break_glass FROM agentauth.whoami();

-- a clinician: bad input first, nothing written
\c - btg1_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass(NULL, 'unconscious');
SELECT agentauth.break_glass('', 'unconscious');
SELECT agentauth.break_glass('BTG1 P1', 'unconscious');
SELECT agentauth.break_glass('BTG1-P1', NULL);
SELECT agentauth.break_glass('BTG1-P1', '');
SELECT agentauth.break_glass('BTG1-P1', '   ');
SELECT agentauth.break_glass('BTG1-P1', repeat('r', 4001));
SELECT agentauth.break_glass('BTG1-P1', 'unconscious', NULL);
SELECT agentauth.break_glass('BTG1-P1', 'unconscious', '0');
SELECT agentauth.break_glass('BTG1-P1', 'unconscious', '-1 minute');
SELECT agentauth.break_glass('BTG1-P1', 'unconscious', '24 hours 1 second');
SELECT agentauth.break_glass('BTG1-P1', 'unconscious', '2 days');
SELECT agentauth.break_glass('BTG1-P1', 'unconscious', '1 mon');
-- a month compared as 30 days, added as a calendar month: 436 days (1.1,
-- found by review)
SELECT agentauth.break_glass('BTG1-P1', 'unconscious', '1000 mon -30000 days 1 hour');
SELECT agentauth.break_glass('BTG1-P1', E'unconscious\nDROP TABLE x');
SELECT break_glass FROM agentauth.whoami();

-- the default ttl is an hour
SELECT agentauth.break_glass('BTG1-P1', 'unconscious in ED, no consent on file') AS bg1 \gset
SELECT (break_glass = ARRAY[:'bg1']::uuid[]) AS whoami_lists_it FROM agentauth.whoami();
-- the principal ends it; ending twice is refused
SELECT agentauth.end_break_glass(:'bg1');
SELECT agentauth.end_break_glass(:'bg1');
SELECT break_glass FROM agentauth.whoami();
-- not one's to end: another principal's override
SELECT agentauth.end_break_glass(:'bg_agent');

-- an override rolled back with its transaction leaves nothing
BEGIN;
SELECT agentauth.break_glass('BTG1-P3', 'rolled back') AS bg_rb \gset
SELECT cardinality(break_glass) AS active_in_transaction FROM agentauth.whoami();
ROLLBACK;
SELECT cardinality(break_glass) AS active_after_rollback FROM agentauth.whoami();
-- and one in a subtransaction that rolls back
BEGIN;
SAVEPOINT s;
SELECT agentauth.break_glass('BTG1-P3', 'rolled back') IS NOT NULL AS started;
ROLLBACK TO SAVEPOINT s;
SELECT cardinality(break_glass) AS active_after_savepoint FROM agentauth.whoami();
COMMIT;

-- an override that stays open until the session ends
SELECT agentauth.break_glass('BTG1-P2', 'anaphylaxis, allergy list needed', '2 hours') AS bg2 \gset
SELECT cardinality(break_glass) AS active FROM agentauth.whoami();
SELECT agentauth.end_session();
-- a new session does not inherit it
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT cardinality(break_glass) AS active FROM agentauth.whoami();
-- a transaction_only session (behind a pooler) keeps its override for
-- that one transaction
SELECT agentauth.end_session();
BEGIN;
SELECT agentauth.begin_human_session('TREAT', transaction_only => true) IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P6', 'pooled connection, one transaction') IS NOT NULL AS started;
SELECT cardinality(break_glass) AS active FROM agentauth.whoami();
COMMIT;
SELECT count(*) AS no_session FROM agentauth.whoami();
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
-- and one left open at disconnect: the backend's exit ends it (1.1: it
-- stayed active until its time ran out, and a standby session with the
-- doctor's principal could use it)
SELECT agentauth.break_glass('BTG1-P4', 'trauma bay', '2 hours') AS bg4 \gset

-- (the doctor's backend ends it as it exits)
\c - postgres
SELECT set_config('btg.wait', :'bg4', false) IS NOT NULL AS noted;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN EXISTS (SELECT FROM agentauth.break_glass
                           WHERE id = current_setting('btg.wait')::uuid AND ended_at IS NOT NULL);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;

-- the officer who is also a clinician breaks the glass himself
\c - btg1_officer_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P5', 'cardiac arrest on ward 3', '1 minute') AS bg5 \gset
SELECT agentauth.end_break_glass(:'bg5');

\c - postgres
-- the catalog and the view, as a privacy officer (an auditor) sees them
SET ROLE btg1_officer;
SELECT e.principal_name, e.principal_kind, e.on_behalf_of, e.patient, e.reason,
       e.ends_at - e.started_at AS ttl, e.state, e.ended_by, e.accesses,
       e.review_status, e.review_due - e.started_at AS review_window
  FROM agentauth.break_glass_events e
 WHERE e.id IN (:'bg_agent', :'bg1', :'bg2', :'bg4', :'bg5')
 ORDER BY e.started_at;
RESET ROLE;
SELECT count(*) AS rolled_back_rows FROM agentauth.break_glass WHERE reason = 'rolled back';

-- the audit trail: start, end, purpose BTG, the override named
SELECT a.event, a.principal_name, a.purpose, a.patient,
       a.authority ->> 'break_glass' = e.id::text AS names_override,
       a.detail ->> 'reason' AS reason, a.detail ->> 'ended_by' AS ended_by
  FROM agentauth.audit_log a
  JOIN agentauth.break_glass e ON e.id::text = a.detail ->> 'break_glass'
 WHERE e.id IN (:'bg_agent', :'bg1', :'bg2', :'bg4', :'bg5')
 ORDER BY a.seq;

-- reviews: privacy officers only, never one's own, once, and only when over
\c - btg1_nurse
SELECT agentauth.review_break_glass(:'bg1', 'justified', 'no consent on file, unconscious');
-- an override 1.0 recorded (no on_behalf_of_principal) for an agent
-- acting on his behalf, his name in other letter case and with blanks
-- around it: his own too (1.1, found by review: the name was compared
-- without case but with its blanks, and he reviewed it)
\c - postgres
CREATE TEMP TABLE btg1_old AS SELECT * FROM agentauth.break_glass WHERE id = :'bg_agent';
UPDATE btg1_old SET id = gen_random_uuid(), on_behalf_of_principal = NULL,
                    on_behalf_of = ' ' || upper(on_behalf_of) || ' ';
INSERT INTO agentauth.break_glass SELECT * FROM btg1_old RETURNING id AS bg_old, on_behalf_of \gset
\c - btg1_officer_doc
SELECT agentauth.review_break_glass(:'bg_old', 'justified', 'my agent, spelt otherwise');
-- his own override
SELECT agentauth.review_break_glass(:'bg5', 'justified', 'I was there');
-- the agent acted on his behalf
SELECT agentauth.review_break_glass(:'bg_agent', 'justified', 'my agent');
-- the doctor's is not his
SELECT agentauth.review_break_glass(:'bg1', 'justified', 'unconscious patient, ED; consent could not be asked');
SELECT agentauth.review_break_glass(:'bg1', 'unjustified', 'second thoughts');
-- the one the doctor's disconnect ended (an active one may not be
-- reviewed, and a privacy officer may end another's: specs/btg_expiry)
SELECT agentauth.end_break_glass(:'bg4');
SELECT agentauth.review_break_glass(:'bg4', 'justified', 'multiple trauma, unidentified on arrival');
\c - btg1_officer
-- he may act as btg1_doc: that is the doctor's own
SELECT agentauth.review_break_glass(:'bg2', 'justified', 'anaphylaxis');
SELECT agentauth.review_break_glass(:'bg5', 'unjustified', 'patient was stable; consent could have been asked');
SELECT agentauth.review_break_glass(:'bg_agent', 'justified', 'sepsis protocol');

\c - postgres
SELECT e.patient, e.review_status, e.reviewer, e.review_notes, e.reviewed_at IS NOT NULL AS reviewed
  FROM agentauth.break_glass_events e
 WHERE e.id IN (:'bg_agent', :'bg1', :'bg2', :'bg4', :'bg5')
 ORDER BY e.started_at;
SELECT a.event, a.patient, a.db_role, a.detail ->> 'verdict' AS verdict,
       a.detail ->> 'reviewer' AS reviewer
  FROM agentauth.audit_log a
 WHERE a.event = 'break_glass_review'
   AND a.detail ->> 'break_glass' IN (:'bg_agent', :'bg1', :'bg2', :'bg4', :'bg5')
 ORDER BY a.seq;

-- overdue: pending and older than agentauth.review_deadline
SELECT current_setting('agentauth.review_deadline') AS review_deadline;
UPDATE agentauth.break_glass SET started_at = started_at - interval '73 hours',
       ends_at = ends_at - interval '73 hours'
 WHERE id IN (:'bg1', :'bg2', :'bg4');
SET ROLE btg1_officer;
SELECT o.patient, o.review_status, o.overdue_by > interval '0' AS overdue, o.accesses
  FROM agentauth.break_glass_overdue o
 WHERE o.id IN (:'bg_agent', :'bg1', :'bg2', :'bg4', :'bg5')
 ORDER BY o.patient;
RESET ROLE;

-- a delegated token carries no more than its delegators may: an agent
-- registered with can_break_glass cannot break the glass on a token
-- delegated to it by an agent that may not (1.1: it could), and can on
-- one whose every delegator may
CREATE ROLE btg1_deleg LOGIN;
CREATE ROLE btg1_deleg_btg LOGIN;
SELECT agentauth.register_agent('btg1 deleg', 'btg1_deleg', 'btg1 team', '{TREAT}',
                                '{lab:read}', can_delegate => true) AS deleg \gset
SELECT agentauth.register_agent('btg1 deleg btg', 'btg1_deleg_btg', 'btg1 team', '{TREAT}',
                                '{lab:read}', can_delegate => true, can_break_glass => true) AS deleg_btg \gset
SELECT agentauth.issue_token(:'deleg', 'TREAT', on_behalf_of => 'btg1 doc') AS tok_deleg \gset
SELECT agentauth.issue_token(:'deleg_btg', 'TREAT', on_behalf_of => 'btg1 doc') AS tok_deleg_btg \gset
\c - btg1_deleg
SELECT agentauth.begin_session(:'tok_deleg') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P3', 'delegator itself');
SELECT agentauth.delegate_token(:'agent') AS tok_child \gset
\c - btg1_deleg_btg
SELECT agentauth.begin_session(:'tok_deleg_btg') IS NOT NULL AS began;
SELECT agentauth.delegate_token(:'agent') AS tok_child_btg \gset
\c - btg1_agent
SELECT agentauth.begin_session(:'tok_child') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P3', 'through a delegator that may not');
SELECT break_glass FROM agentauth.whoami();
SELECT agentauth.begin_session(:'tok_child_btg') IS NOT NULL AS began;
SELECT agentauth.break_glass('BTG1-P3', 'through a delegator that may') IS NOT NULL AS broke;
SELECT cardinality(break_glass) AS overrides FROM agentauth.whoami();
SELECT agentauth.end_session();
\c - postgres
SELECT principal_name, on_behalf_of, patient, reason FROM agentauth.break_glass_events
 WHERE patient = 'BTG1-P3' ORDER BY started_at;
-- the 15 minutes above, recorded as 900 seconds under extra_float_digits = -15
SELECT detail->'ttl_seconds' AS ttl_seconds FROM agentauth.audit_log
 WHERE event = 'break_glass_start' AND detail->>'reason' = 'sepsis alert, attending paged';
