-- How a session ends, and what ends with it, on every path a connection
-- takes: DISCARD ALL (also when it fails part way, as a pooler's reset can),
-- the commit of a transaction-only session, the backend's exit.  The
-- break-the-glass overrides of a session end with it: a hot standby matches
-- overrides by token and principal, so one left open served the token's
-- next session there until its time ran out.  Then two ways a client
-- could pass for something else: a principal's login acting as a role
-- that bypasses row security, and an application_name that reads as a
-- standby's tag.
\set SHOW_CONTEXT never
CREATE ROLE se_doc LOGIN;
CREATE ROLE se_agent LOGIN;
CREATE ROLE se_etl NOLOGIN BYPASSRLS;
CREATE SCHEMA se;
CREATE TABLE se.labs (patient_id text, value numeric);
INSERT INTO se.labs VALUES ('SE-P1', 1), ('SE-P2', 2);
SELECT agentauth.protect_table('se.labs', 'patient_id', '{"value": "lab"}');
GRANT USAGE ON SCHEMA se TO se_doc, se_agent, se_etl;
GRANT SELECT ON se.labs TO se_doc, se_agent, se_etl;
SELECT agentauth.register_human('se doc', 'se_doc', '{TREAT}', '{lab:read}',
                                can_break_glass => true) AS doc \gset
SELECT agentauth.register_agent('se agent', 'se_agent', 'se team', '{TREAT}', '{lab:read}',
                                can_break_glass => true) AS agent \gset
SELECT agentauth.record_consent('SE-P2', 'permit', '{TREAT}', '{lab}') IS NOT NULL AS consented;
-- SE-P1 refused: only an override shows its row (whatever defaults the
-- tests before left)
SELECT agentauth.record_consent('SE-P1', 'deny') IS NOT NULL AS refused;
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'se doc') AS tok \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'se doc') AS tok2 \gset

-- 1. A DISCARD ALL that fails part way still ends the session: a pooler
-- logs the failure of its reset and hands the connection to its next
-- client, who must find no session (1.1: it read under this one)
\c - se_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT patient_id FROM se.labs ORDER BY 1;
DO $$ BEGIN FOR i IN 1 .. 500 LOOP EXECUTE format('CREATE TEMP TABLE t%s (a int)', i); END LOOP; END $$;
SET statement_timeout = '1ms';
DISCARD ALL;
RESET statement_timeout;
SELECT count(*) AS sessions FROM agentauth.whoami() WHERE principal IS NOT NULL;
SELECT patient_id FROM se.labs ORDER BY 1;

-- 2. DISCARD ALL ends the session's overrides
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'collapsed at the desk', '1 hour') AS bg_discard \gset
SELECT patient_id FROM se.labs ORDER BY 1;
DISCARD ALL;

-- 3. so does the backend's exit
\c - se_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'seizure in the waiting room', '1 hour') AS bg_exit \gset
\c - postgres
SELECT set_config('se.bg_exit', :'bg_exit', false) IS NOT NULL AS noted;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN EXISTS (SELECT FROM agentauth.break_glass
                           WHERE id = current_setting('se.bg_exit')::uuid
                             AND ended_at IS NOT NULL);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;

-- 4. and the commit of a transaction-only session
\c - se_agent
BEGIN;
SELECT agentauth.begin_session(:'tok', true) IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'sepsis alert', '1 hour') AS bg_txn \gset
SELECT patient_id FROM se.labs ORDER BY 1;
COMMIT;
SELECT count(*) AS sessions FROM agentauth.whoami() WHERE principal IS NOT NULL;

\c - postgres
SELECT e.reason, e.state, e.ended_by
  FROM agentauth.break_glass_events e
 WHERE e.id IN (:'bg_discard', :'bg_exit', :'bg_txn')
 ORDER BY e.started_at;
SELECT a.event, a.patient, a.detail ->> 'ended_by' AS ended_by
  FROM agentauth.audit_log a
 WHERE a.event = 'break_glass_end'
   AND a.detail ->> 'break_glass' IN (:'bg_discard', :'bg_exit', :'bg_txn')
 ORDER BY a.seq;
-- the agent's next session, with another token of the same principal,
-- sees no override (a standby matched them by principal)
\c - se_agent
SELECT agentauth.begin_session(:'tok2') IS NOT NULL AS began;
SELECT patient_id FROM se.labs ORDER BY 1;
SELECT cardinality(break_glass) AS overrides FROM agentauth.whoami();
SELECT agentauth.end_session();

-- 5. A principal's login acting as a role that bypasses row security
-- reads nothing without a session (1.1: every row, recorded as privileged
-- access), the grant made after it was registered
\c - postgres
GRANT se_etl TO se_agent;
\c - se_agent
SET ROLE se_etl;
SELECT patient_id FROM se.labs ORDER BY 1;
COPY se.labs TO STDOUT;
RESET ROLE;
\c - postgres
SELECT a.event, a.outcome, a.db_role, a.relation, a.detail ->> 'reason' AS reason
  FROM agentauth.audit_log a
 WHERE a.relation = 'se.labs' AND a.db_role = 'se_agent'
   AND a.event IN ('denied', 'privileged_access') AND a.patient IS NULL
 ORDER BY a.seq;
-- nor does it read the planner's statistics of the table's values, or
-- plan with them (1.1: pg_stats showed the refusing patient's values)
ANALYZE se.labs;
\c - se_agent
SET ROLE se_etl;
SELECT count(*) FROM pg_stats WHERE schemaname = 'se' AND tablename = 'labs';
RESET ROLE;
-- nor through a plan made before the SET ROLE: a prepared statement, a
-- cursor fetched after it
PREPARE se_stats AS SELECT count(*) FROM pg_stats WHERE schemaname = 'se' AND tablename = 'labs';
EXECUTE se_stats;
SET ROLE se_etl;
EXECUTE se_stats;
RESET ROLE;
BEGIN;
DECLARE se_c CURSOR FOR SELECT attname FROM pg_stats WHERE schemaname = 'se' AND tablename = 'labs';
SET LOCAL ROLE se_etl;
FETCH ALL FROM se_c;
ROLLBACK;
\c - postgres
-- a role that is no principal's keeps its privileged access, recorded
SET ROLE se_etl;
SELECT patient_id FROM se.labs ORDER BY 1;
SELECT count(*) > 0 AS stats_shown FROM pg_stats WHERE schemaname = 'se' AND tablename = 'labs';
RESET ROLE;
REVOKE se_etl FROM se_agent;

-- 5b. The ways a session ends that its client chooses end its overrides
-- too: an end_session() or a replacing begin_* in a transaction the
-- disconnect leaves unfinished (its abort brings the session back: 1.1
-- left its override open), a client that made its transactions read-only,
-- and DISCARD ALL run from a function (refused: it ends nothing)
\c - se_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'unfinished end', '1 hour') AS bg_unfinished \gset
BEGIN;
SELECT agentauth.end_session();
\c - se_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'unfinished replace', '1 hour') AS bg_replaced \gset
BEGIN;
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began_again;
\c - se_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'read-only client', '1 hour') AS bg_readonly \gset
SET default_transaction_read_only = on;
\c - se_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'read-only reset', '1 hour') AS bg_readonly_discard \gset
SET default_transaction_read_only = on;
DISCARD ALL;
SHOW default_transaction_read_only;
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'discard in a function', '1 hour') AS bg_do \gset
DO $$ BEGIN EXECUTE 'DISCARD ALL'; END $$;
SELECT cardinality(break_glass) AS overrides FROM agentauth.whoami();
SELECT agentauth.end_session();
\c - postgres
SELECT set_config('se.waited', :'bg_readonly', false) IS NOT NULL AS noted;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN (SELECT count(*) FROM agentauth.break_glass
                    WHERE reason IN ('unfinished end', 'unfinished replace', 'read-only client')
                      AND ended_at IS NOT NULL) = 3;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT e.reason, e.state, e.ended_by
  FROM agentauth.break_glass_events e
 WHERE e.id IN (:'bg_unfinished', :'bg_replaced', :'bg_readonly', :'bg_readonly_discard', :'bg_do')
 ORDER BY e.started_at;

-- 6. A client's application_name cannot read as a standby's tag: its
-- blanks, '=' and backslashes are escaped in the record's client
\c - se_doc
SET application_name = 'psql standby=replica1 x\y';
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT patient_id FROM se.labs ORDER BY 1;
SELECT agentauth.end_session();
\c - postgres
SELECT a.event, substring(a.client from 'application_name=(.*)$') AS application_name,
       a.client LIKE '% standby=replica1%' AS reads_as_standby
  FROM agentauth.audit_log a
 WHERE a.principal_name = 'se doc' AND a.event = 'access' AND a.patient = 'SE-P2'
 ORDER BY a.seq DESC LIMIT 1;

-- 7. A session change rolled back is recorded as undone (found by review:
-- an end_session() whose wait for its record failed left session_end in
-- the log while the session read on; a rolled-back begin left its
-- session_begin while the session before it read on)
SELECT max(seq) AS se7 FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION se_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began_t1;
BEGIN;
SELECT agentauth.end_session();
ROLLBACK;
SELECT patient_id FROM se.labs ORDER BY 1;
BEGIN;
SELECT agentauth.begin_session(:'tok2') IS NOT NULL AS began_t2;
ROLLBACK;
SELECT patient_id FROM se.labs ORDER BY 1;
BEGIN;
SAVEPOINT s;
SELECT agentauth.begin_session(:'tok2') IS NOT NULL AS began_t2;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT agentauth.end_session();
-- a transaction-only session whose commit fails after its end was recorded
-- (PREPARE TRANSACTION under a name another prepared transaction holds) has
-- one session_end, not a second at the abort (found by review)
RESET SESSION AUTHORIZATION;
BEGIN;
PREPARE TRANSACTION 'reg87';
SET SESSION AUTHORIZATION se_agent;
BEGIN;
SELECT agentauth.begin_session(:'tok2', true) IS NOT NULL AS began_t2_txonly;
SELECT patient_id FROM se.labs ORDER BY 1;
PREPARE TRANSACTION 'reg87';
SELECT count(*) AS sessions FROM agentauth.whoami();
RESET SESSION AUTHORIZATION;
ROLLBACK PREPARED 'reg87';
SELECT a.token AS t1 FROM agentauth.audit_log a
 WHERE a.seq > :se7 AND a.event = 'session_begin' ORDER BY a.seq LIMIT 1 \gset
SELECT a.event, CASE WHEN a.token = :'t1' THEN 'T1' ELSE 'T2' END AS token,
       a.detail->>'reason' AS reason, a.patient
  FROM agentauth.audit_log a
 WHERE a.seq > :se7 AND a.principal_name = 'se agent'
 ORDER BY a.seq;
SELECT ok FROM agentauth.verify_audit();

-- 8. An end that fails ending the session's overrides records no end: the
-- session and its override go on, and the log says so (found by review,
-- r32: session_end was recorded first, then the overrides' UPDATE failed
-- -- a lock timeout, a read-only transaction, any end_session() on a hot
-- standby -- and the session read on under a record that it had ended)
SELECT max(seq) AS se8 FROM agentauth.audit_log \gset
\c - se_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.break_glass('SE-P1', 'end refused', '1 hour') AS bg_refused \gset
BEGIN READ ONLY;
SELECT agentauth.end_session();
ROLLBACK;
BEGIN READ ONLY;
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS replaced;
ROLLBACK;
SELECT cardinality(break_glass) AS overrides FROM agentauth.whoami();
SELECT patient_id FROM se.labs ORDER BY 1;
SELECT agentauth.end_session();
SELECT count(*) AS sessions FROM agentauth.whoami() WHERE principal IS NOT NULL;
\c - postgres
SELECT a.event, a.detail->>'reason' AS reason, a.patient
  FROM agentauth.audit_log a
 WHERE a.seq > :se8 AND a.principal_name = 'se doc'
 ORDER BY a.seq;
SELECT e.reason, e.state, e.ended_by
  FROM agentauth.break_glass_events e WHERE e.id = :'bg_refused';
