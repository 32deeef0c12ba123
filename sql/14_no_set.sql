-- No setting creates or changes a session (SPEC 2, 4.2): the session lives
-- in the backend's C memory.  A client that knows a valid secret and SETs
-- it, or anything else, under every likely name, gets no session; a
-- client with a session cannot change it by SET; no setting holds it.

\set SHOW_CONTEXT never

CREATE ROLE noset_agent LOGIN;
CREATE ROLE noset_other LOGIN;
SELECT agentauth.register_agent('noset-agent', 'noset_agent', 'Tests', '{TREAT}', '{lab:read}') AS agent \gset
SELECT agentauth.register_agent('noset-other', 'noset_other', 'Tests', '{TREAT}', '{lab:read,medication:read}') AS other \gset
SELECT agentauth.issue_token(:'agent', 'TREAT') AS secret \gset
SELECT agentauth.issue_token(:'other', 'TREAT') AS other_secret \gset
SELECT id AS token FROM agentauth.token WHERE secret_hash = sha256(convert_to(:'secret', 'UTF8')) \gset
SELECT id AS other_token FROM agentauth.token WHERE secret_hash = sha256(convert_to(:'other_secret', 'UTF8')) \gset

CREATE FUNCTION noset_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'accepted';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION noset_try(text) TO PUBLIC;

-- every name an attacker might try, with the secret, the token id and the
-- principal id as values, by SET, SET LOCAL and set_config
CREATE TABLE noset_names (name text);
INSERT INTO noset_names VALUES
    ('agentauth.session'), ('agentauth.token'), ('agentauth.secret'),
    ('agentauth.principal'), ('agentauth.agent'), ('agentauth.purpose'),
    ('agentauth.on_behalf_of'), ('agentauth.patients'), ('agentauth.scopes'),
    ('agentauth.break_glass'), ('agentauth.session_id'),
    ('request.jwt.claims'), ('request.jwt.claim.sub'), ('request.jwt.claim.role'),
    ('request.jwt'), ('request.headers'), ('auth.uid'), ('auth.role'), ('app.user'),
    ('app.agent'), ('app.token'), ('app.current_user'), ('myapp.principal'),
    ('jwt.claims.sub'), ('session.token'), ('application_name');
GRANT SELECT ON noset_names TO PUBLIC;

SET SESSION AUTHORIZATION noset_agent;
-- no session yet
SELECT count(*) AS sessions FROM agentauth.whoami();
-- SET name = value, for every name and value; agentauth.* names do not
-- even exist (the prefix is reserved), others are free-form placeholders
SELECT n.name, v.what,
       noset_try(format('SET %s = %L', n.name, v.value)) AS "set",
       noset_try(format('SELECT set_config(%L, %L, false)', n.name, v.value)) AS set_config
  FROM noset_names n,
       (VALUES ('secret', :'secret'), ('token id', :'token'), ('agent id', :'agent')) v(what, value)
 ORDER BY n.name, v.what;
BEGIN;
SELECT count(*) FILTER (WHERE noset_try(format('SET LOCAL %s = %L', name, :'secret')) = 'accepted') AS set_local_accepted
  FROM noset_names;
SELECT count(*) AS sessions_inside FROM agentauth.whoami();
SELECT agentauth.check_session();
ROLLBACK;
-- still nothing
SELECT count(*) AS sessions FROM agentauth.whoami();
SELECT agentauth.check_session();

-- with a session, no SET changes it: set every name to the other agent's
-- token and secret, then ask
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
SELECT count(*) FILTER (WHERE noset_try(format('SET %s = %L', name, :'other_secret')) = 'accepted') AS set_accepted,
       count(*) FILTER (WHERE noset_try(format('SET %s = %L', name, :'other_token')) = 'accepted') AS set_token_accepted
  FROM noset_names;
SET ROLE NONE;
SELECT name, token = :'token' AS own_token, scopes FROM agentauth.whoami();
SELECT agentauth.check_session();
RESET ALL;
SELECT name, token = :'token' AS own_token FROM agentauth.whoami();

-- the agent's role may not SET ROLE to another agent's role
SET ROLE noset_other;
-- and where session_user can change at all (only on a superuser's
-- connection, like this test's), the session fails closed
SET SESSION AUTHORIZATION noset_other;
SELECT name FROM agentauth.whoami();

-- no setting's value holds the session, its token or its principal
RESET SESSION AUTHORIZATION;
SELECT count(*) AS settings_with_session_state
  FROM pg_settings
 WHERE setting LIKE '%' || :'token' || '%' OR setting LIKE '%' || :'agent' || '%'
    OR setting LIKE '%' || substr(:'secret', 5) || '%';
SELECT count(*) AS agentauth_settings_not_in_the_documented_list
  FROM pg_settings
 WHERE name LIKE 'agentauth.%'
   AND name NOT IN ('agentauth.database', 'agentauth.audit_sync', 'agentauth.audit_wait_timeout',
                    'agentauth.audit_queue_size', 'agentauth.head_log_interval',
                    'agentauth.review_deadline', 'agentauth.audit_retention',
                    'agentauth.allow_uninstall', 'agentauth.inactive_after',
                    'agentauth.require_transaction_only', 'agentauth.forward_conninfo',
                    'agentauth.fhir_patient_reference', 'agentauth.fhir_patient_identifier_system');

-- DISCARD ALL (a pooler's reset between clients) ends the session
SET SESSION AUTHORIZATION noset_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
DISCARD ALL;
SELECT count(*) AS sessions_after_discard FROM agentauth.whoami();
RESET SESSION AUTHORIZATION;
