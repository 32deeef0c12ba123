-- An error part way through agentauth's own work -- caught by a savepoint
-- or an EXCEPTION block, or ending the transaction -- must leave nothing
-- half made that a later statement trusts (1.1).  Two paths that ordinary
-- errors reach, each of which let a later statement read or keep what it
-- should not; the others of the class are described in docs/DESIGN.md
-- ("Errors part way").
\set SHOW_CONTEXT never
CREATE ROLE reg54_agent LOGIN;
CREATE TABLE reg54_obs (id serial PRIMARY KEY, patient_id text NOT NULL, v int);
INSERT INTO reg54_obs (patient_id, v) VALUES ('reg54-p1', 1), ('reg54-p2', 2);
SELECT agentauth.protect_table('reg54_obs', 'patient_id', '{"id": "non_phi", "v": "lab"}');
GRANT SELECT ON reg54_obs TO reg54_agent;
SELECT agentauth.register_agent('reg54-agent', 'reg54_agent', 'errors part way', '{TREAT}',
    '{lab:read}') AS agent \gset
SELECT count(agentauth.record_consent(p, 'permit', '{TREAT}', '{lab}')) AS permits
  FROM unnest(ARRAY['reg54-p1', 'reg54-p2']) p;

-- 1. A token expires after an error rolled back to a savepoint.  The error
-- disabled every timeout, the token's expiry among them, and a rolled-back
-- savepoint did not arm it again: the session read on past its token's
-- end (a client that uses savepoints, as many drivers and ORMs do, hits
-- this at its first failed statement).
SELECT agentauth.issue_token(:'agent', 'TREAT', '3 seconds') AS secret \gset
SET SESSION AUTHORIZATION reg54_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
SELECT expires_at AS expires FROM agentauth.whoami() \gset
BEGIN;
SAVEPOINT s;
SELECT 1 / 0;
ROLLBACK TO SAVEPOINT s;
SELECT count(*) AS rows_before_expiry FROM reg54_obs;
COMMIT;
SELECT pg_sleep_until(:'expires'::timestamptz + interval '0.2 seconds') IS NOT NULL AS slept_past_expiry;
SELECT count(*) AS rows_after_expiry FROM reg54_obs;
-- the same after an error caught by an EXCEPTION block
RESET SESSION AUTHORIZATION;
SELECT agentauth.issue_token(:'agent', 'TREAT', '3 seconds') AS secret \gset
SET SESSION AUTHORIZATION reg54_agent;
SELECT agentauth.end_session() IS NOT NULL AS ended;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
SELECT expires_at AS expires FROM agentauth.whoami() \gset
DO $$
BEGIN
  BEGIN
    PERFORM 1 / 0;
  EXCEPTION WHEN division_by_zero THEN NULL;
  END;
END
$$;
SELECT pg_sleep_until(:'expires'::timestamptz + interval '0.2 seconds') IS NOT NULL AS slept_past_expiry;
SELECT count(*) AS rows_after_expiry FROM reg54_obs;
SELECT agentauth.end_session() IS NOT NULL AS ended;
RESET SESSION AUTHORIZATION;

-- 2. A protected schema's table made by a statement that runs another
-- inside it.  The outer CREATE TABLE AS makes its table first; a function
-- it calls makes a second in a block that then fails.  The inner
-- statement took both tables as its own and protected both inside the
-- block's subtransaction; the rollback undid that, and the outer
-- statement, finding nothing left to do, left its table unprotected.
CREATE ROLE reg54_admin LOGIN;
GRANT agentauth_admin TO reg54_admin;
CREATE SCHEMA reg54_phi;
SET ROLE reg54_admin;
SELECT agentauth.protect_schema('reg54_phi', 'patient_id', '{}', 'lab') IS NOT NULL AS declared;
RESET ROLE;
CREATE FUNCTION reg54_inner() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    EXECUTE 'CREATE TABLE reg54_phi.inner_made (patient_id text, v int)';
    RAISE EXCEPTION 'the block fails after its CREATE TABLE';
  EXCEPTION WHEN others THEN NULL;
  END;
  RETURN 1;
END
$$;
CREATE TABLE reg54_phi.outer_made AS SELECT 'reg54-p1'::text AS patient_id, reg54_inner() AS v;
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       agentauth._table_label(c.oid) IS NOT NULL AS labelled
  FROM pg_class c WHERE c.relnamespace = 'reg54_phi'::regnamespace AND c.relkind = 'r'
 ORDER BY 1;
-- a block that keeps its CREATE TABLE: both protected
CREATE OR REPLACE FUNCTION reg54_inner() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE 'CREATE TABLE reg54_phi.inner_kept (patient_id text, v int)';
  RETURN 1;
END
$$;
CREATE TABLE reg54_phi.outer_kept AS SELECT 'reg54-p1'::text AS patient_id, reg54_inner() AS v;
SELECT c.relname, c.relrowsecurity, agentauth._table_label(c.oid) IS NOT NULL AS labelled
  FROM pg_class c WHERE c.relnamespace = 'reg54_phi'::regnamespace AND c.relkind = 'r'
   AND c.relname LIKE '%kept' ORDER BY 1;
