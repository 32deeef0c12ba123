-- Sessions: begin_session, begin_human_session, end_session, whoami,
-- check_session (SPEC 4.2, 4.4).
--
-- A session is bound to session_user.  pg_regress connects as the
-- bootstrap superuser, which may SET SESSION AUTHORIZATION to any role:
-- that changes session_user exactly as logging in as that role would
-- (SET ROLE would not).  RESET SESSION AUTHORIZATION returns to the
-- superuser to act as issuer or administrator.

\set SHOW_CONTEXT never

CREATE ROLE ses_admin NOLOGIN;
GRANT agentauth_admin TO ses_admin;
CREATE ROLE ses_issuer NOLOGIN;
GRANT agentauth_issuer TO ses_issuer;
CREATE ROLE ses_agent1 LOGIN;
CREATE ROLE ses_agent2 LOGIN;
CREATE ROLE ses_human LOGIN;
CREATE ROLE ses_human2 LOGIN;
CREATE ROLE ses_outsider LOGIN;

SET ROLE ses_admin;
SELECT agentauth.register_agent('ses-agent1', 'ses_agent1', 'Lab AI team', '{TREAT,TREATDS}',
    '{lab:read,medication:read,*:read}', '10 minutes') AS agent1 \gset
SELECT agentauth.register_agent('ses-agent2', 'ses_agent2', 'Ops', '{HOPERAT}', '{billing:read}') AS agent2 \gset
SELECT agentauth.register_human('ses-dr-grey', 'ses_human', '{TREAT,ETREAT}', '{lab:read,hiv:read}',
    can_break_glass => true) AS human \gset
SELECT agentauth.register_human('ses-dr-blue', 'ses_human2', '{TREAT}', '{lab:read}') AS human2 \gset
RESET ROLE;
SET ROLE ses_issuer;
SELECT agentauth.issue_token(:'agent1', 'TREAT', on_behalf_of => 'dr.grey',
    scopes => '{lab:read,medication:read}', patients => '{P2,P1}') AS secret1 \gset
SELECT agentauth.issue_token(:'agent1', 'TREATDS', scopes => '{lab:read}') AS secret2 \gset
SELECT agentauth.issue_token(:'agent1', 'TREAT') AS secret3 \gset
SELECT agentauth.issue_token(:'agent2', 'HOPERAT') AS secret_a2 \gset
RESET ROLE;
SELECT id AS token1 FROM agentauth.token WHERE secret_hash = sha256(convert_to(:'secret1', 'UTF8')) \gset
SELECT id AS token2 FROM agentauth.token WHERE secret_hash = sha256(convert_to(:'secret2', 'UTF8')) \gset
SELECT id AS token3 FROM agentauth.token WHERE secret_hash = sha256(convert_to(:'secret3', 'UTF8')) \gset

-- no session: whoami is empty, the check refuses
SELECT count(*) AS whoami_rows FROM agentauth.whoami();
SELECT agentauth.check_session();

-- begin a session as the agent's login role
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.begin_session(:'secret1') IS NOT NULL AS began;
SELECT principal = :'agent1' AS agent1, kind, name, token = :'token1' AS token1, purpose,
       on_behalf_of, scopes, patients, expires_at > now() AS unexpired,
       delegation_chain = ARRAY[:'token1']::uuid[] AS chain, break_glass
  FROM agentauth.whoami();
SELECT agentauth.check_session();
-- the session outlives the transaction that began it
SELECT token = :'token1' AS still_token1 FROM agentauth.whoami();

-- a second begin_session replaces the first
SELECT agentauth.begin_session(:'secret2') IS NOT NULL AS began;
SELECT token = :'token2' AS token2, purpose, scopes, patients FROM agentauth.whoami();

-- end_session forgets it; a second end_session does nothing
SELECT agentauth.end_session();
SELECT count(*) AS whoami_rows FROM agentauth.whoami();
SELECT agentauth.end_session();
SELECT agentauth.check_session();

-- bad secrets: one message whatever was wrong (the reason is in the server
-- log only), and the current session stays as it was
SELECT agentauth.begin_session(:'secret1') IS NOT NULL AS began;
SELECT agentauth.begin_session(NULL);
SELECT agentauth.begin_session(:'secret1', NULL);
SELECT agentauth.begin_session('');
SELECT agentauth.begin_session('not a token');
SELECT agentauth.begin_session('aat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');   -- unknown
SELECT agentauth.begin_session('aat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB');   -- non-canonical last character
SELECT agentauth.begin_session('AAT_' || substr(:'secret1', 5));                     -- wrong prefix
SELECT agentauth.begin_session(:'secret1' || 'A');                                   -- too long
SELECT agentauth.begin_session(substr(:'secret1', 1, 46));                           -- too short
SELECT agentauth.begin_session(repeat('aat_', 250000));                              -- 1 MB
SELECT agentauth.begin_session(:'secret_a2');                                        -- another agent's token
SELECT token = :'token1' AS unchanged FROM agentauth.whoami();

-- a revoked token, an expired token, a suspended agent: the same message
RESET SESSION AUTHORIZATION;
SET ROLE ses_issuer;
SELECT agentauth.revoke_token(:'token2', 'test: revoked');
RESET ROLE;
UPDATE agentauth.token SET expires_at = now() - interval '1 second' WHERE id = :'token3';
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.begin_session(:'secret2');                                          -- revoked
SELECT agentauth.begin_session(:'secret3');                                          -- expired
RESET SESSION AUTHORIZATION;
UPDATE agentauth.principal SET status = 'suspended' WHERE id = :'agent2';
SET SESSION AUTHORIZATION ses_agent2;
SELECT agentauth.begin_session(:'secret_a2');                                        -- agent not active
RESET SESSION AUTHORIZATION;
UPDATE agentauth.principal SET status = 'active' WHERE id = :'agent2';
-- a login without the token's role: the secret alone is useless
SET SESSION AUTHORIZATION ses_outsider;
SELECT agentauth.begin_session(:'secret1');
RESET SESSION AUTHORIZATION;

-- staged: a session begun or ended in a transaction that aborts is undone
SET SESSION AUTHORIZATION ses_agent1;
SELECT token = :'token1' AS token1 FROM agentauth.whoami();
BEGIN;
SELECT agentauth.end_session();
SELECT count(*) AS whoami_rows FROM agentauth.whoami();
ROLLBACK;
SELECT token = :'token1' AS restored FROM agentauth.whoami();
BEGIN;
SAVEPOINT s1;
SELECT agentauth.end_session();
ROLLBACK TO SAVEPOINT s1;
SELECT token = :'token1' AS restored_by_savepoint FROM agentauth.whoami();
SAVEPOINT s2;
SELECT agentauth.end_session();
RELEASE SAVEPOINT s2;
SELECT count(*) AS ended_in_released_savepoint FROM agentauth.whoami();
ROLLBACK;
SELECT token = :'token1' AS restored_after_release FROM agentauth.whoami();

-- transaction_only: the session ends with its transaction (commit or abort)
RESET SESSION AUTHORIZATION;
SET ROLE ses_issuer;
SELECT agentauth.issue_token(:'agent1', 'TREAT', scopes => '{medication:read}') AS secret4 \gset
RESET ROLE;
SET SESSION AUTHORIZATION ses_agent1;
BEGIN;
SELECT agentauth.begin_session(:'secret4', transaction_only => true) IS NOT NULL AS began;
SELECT scopes FROM agentauth.whoami();
SELECT agentauth.check_session();
COMMIT;
SELECT count(*) AS after_commit FROM agentauth.whoami();
BEGIN;
SELECT agentauth.begin_session(:'secret4', true) IS NOT NULL AS began;
ROLLBACK;
SELECT count(*) AS after_rollback FROM agentauth.whoami();
SELECT agentauth.begin_session(:'secret4', true) IS NOT NULL AS began_alone;   -- its own transaction
SELECT count(*) AS after_statement FROM agentauth.whoami();

-- revocation takes effect at the next check (other backends: see the
-- isolation spec specs/revocation.spec)
SELECT agentauth.begin_session(:'secret1') IS NOT NULL AS began;
RESET SESSION AUTHORIZATION;
SET ROLE ses_issuer;
SELECT agentauth.revoke_token(:'token1', 'test: revoked while in use');
RESET ROLE;
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.check_session();
SELECT * FROM agentauth.whoami();
SELECT agentauth.end_session();
SELECT count(*) AS whoami_rows FROM agentauth.whoami();

-- expiry: a token that expires while in use (here moved into the past)
RESET SESSION AUTHORIZATION;
SET ROLE ses_issuer;
SELECT agentauth.issue_token(:'agent1', 'TREAT') AS secret5 \gset
RESET ROLE;
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.begin_session(:'secret5') IS NOT NULL AS began;
RESET SESSION AUTHORIZATION;
UPDATE agentauth.token SET expires_at = now() - interval '1 second'
 WHERE secret_hash = sha256(convert_to(:'secret5', 'UTF8'));
SELECT agentauth._bump_generation();
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.check_session();

-- the session belongs to its login: under another session_user it fails
SELECT agentauth.begin_session(:'secret4') IS NOT NULL AS began;
SELECT agentauth.check_session();
RESET SESSION AUTHORIZATION;
SELECT agentauth.check_session();
SELECT agentauth.end_session();

-- human sessions: no token, a purpose of the clinician's registration
SET SESSION AUTHORIZATION ses_human;
SELECT agentauth.begin_human_session('ETREAT') IS NOT NULL AS began;
SELECT principal = :'human' AS human, kind, name, token, purpose, on_behalf_of, scopes,
       patients, expires_at, delegation_chain, break_glass
  FROM agentauth.whoami();
SELECT agentauth.check_session();
SELECT agentauth.begin_human_session(NULL);
SELECT agentauth.begin_human_session('TREAT', NULL);
SELECT agentauth.begin_human_session('');
SELECT agentauth.begin_human_session(repeat('T', 201));
SELECT agentauth.begin_human_session('NOPE');
SELECT agentauth.begin_human_session('BTG');
SELECT agentauth.begin_human_session('HPAYMT');
SELECT agentauth.begin_session(:'secret4');     -- a clinician holds no token
SELECT purpose FROM agentauth.whoami();
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION ses_outsider;
SELECT agentauth.begin_human_session('TREAT');
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.begin_human_session('TREAT');
RESET SESSION AUTHORIZATION;

-- suspending the clinician ends the clinician's session
SET SESSION AUTHORIZATION ses_human;
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
RESET SESSION AUTHORIZATION;
SET ROLE ses_admin;
SELECT agentauth.set_principal_status(:'human', 'suspended', 'test: left the hospital');
RESET ROLE;
SET SESSION AUTHORIZATION ses_human;
SELECT agentauth.check_session();
SELECT agentauth.begin_human_session('TREAT');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- a role made BYPASSRLS (or superuser) after its registration gets no
-- session: row security would not hold it
ALTER ROLE ses_agent2 BYPASSRLS;
SET SESSION AUTHORIZATION ses_agent2;
SELECT agentauth.begin_session(:'secret_a2');                                        -- bypasses RLS
RESET SESSION AUTHORIZATION;
ALTER ROLE ses_agent2 NOBYPASSRLS;
ALTER ROLE ses_human2 SUPERUSER;
SET SESSION AUTHORIZATION ses_human2;
SELECT agentauth.begin_human_session('TREAT');
RESET SESSION AUTHORIZATION;
ALTER ROLE ses_human2 NOSUPERUSER;
SET SESSION AUTHORIZATION ses_agent2;
SELECT agentauth.begin_session(:'secret_a2') IS NOT NULL AS began_again;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- last_session_at is kept for the inactivity rule, by the audit writer from
-- the session_begin records it stores (1.1; begin_session updated the
-- principal's row itself, which a suspension then waited for): wait for it
DO $$
BEGIN
    FOR i IN 1..1200 LOOP
        EXIT WHEN (SELECT count(*) FROM agentauth.principals
                    WHERE name IN ('ses-agent1', 'ses-agent2', 'ses-dr-grey')
                      AND last_session_at IS NOT NULL) = 3;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT name, last_session_at IS NOT NULL AS has_last_session
  FROM agentauth.principals WHERE name LIKE 'ses-%' ORDER BY name;

-- begin and end are audited with the session id; every end has its begin,
-- and every begin its end: a session begun in a transaction that rolled
-- back ends with it, recorded (1.1; before, its session_begin stood alone)
SELECT principal_name, detail->>'kind' AS kind, detail->>'reason' AS reason,
       detail->>'transaction_only' AS txonly, count(*) > 0 AS recorded
  FROM agentauth.audit_log
 WHERE event = 'session_end' AND principal_name LIKE 'ses-%'
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;
SELECT count(*) AS ends_without_begin
  FROM agentauth.audit_log e
 WHERE e.event = 'session_end' AND e.principal_name LIKE 'ses-%'
   AND NOT EXISTS (SELECT FROM agentauth.audit_log b
                    WHERE b.event = 'session_begin'
                      AND b.detail->>'session' = e.detail->>'session');

-- every refusal is audited (session_denied), whatever the transaction did
-- afterwards; the reason is there for the auditor, never in the message
SELECT db_role, detail->>'function' AS function, detail->>'reason' AS reason,
       principal_name, token IS NOT NULL AS has_token, outcome, count(*)
  FROM agentauth.audit_log
 WHERE event = 'session_denied' AND db_role LIKE 'ses\_%'
 GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6;

-- a session that ends with its connection is recorded as ended
SET ROLE ses_issuer;
SELECT agentauth.issue_token(:'agent1', 'TREAT') AS secret6 \gset
RESET ROLE;
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.begin_session(:'secret6') AS disconnect_session \gset
\c -
-- (the writer records it shortly after the old backend exits)
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN EXISTS (SELECT FROM agentauth.audit_log
                           WHERE event = 'session_end' AND detail->>'reason' = 'disconnect'
                             AND principal_name = 'ses-agent1');
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT event, principal_name, detail->>'reason' AS reason
  FROM agentauth.audit_log
 WHERE detail->>'session' = :'disconnect_session'
 ORDER BY seq;

-- the session user changed back before the disconnect: the record names
-- the login by its name (the catalog cannot be read as the backend exits)
SET ROLE ses_issuer;
SELECT agentauth.issue_token(:'agent1', 'TREAT') AS secret7 \gset
RESET ROLE;
SET SESSION AUTHORIZATION ses_agent1;
SELECT agentauth.begin_session(:'secret7') AS reset_session \gset
RESET SESSION AUTHORIZATION;
\c -
SELECT set_config('ses.reset_session', :'reset_session', false) IS NOT NULL AS noted;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN EXISTS (SELECT FROM agentauth.audit_log
                           WHERE event = 'session_end'
                             AND detail->>'session' = current_setting('ses.reset_session'));
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT event, principal_name, detail->>'reason' AS reason,
       db_role = session_user AS names_login
  FROM agentauth.audit_log
 WHERE detail->>'session' = :'reset_session' AND event = 'session_end';
