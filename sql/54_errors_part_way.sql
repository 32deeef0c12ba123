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

-- 3. Code its maker attached to a table of a protected schema before the
-- table was protected.  The DDL guard refuses a non-superuser's trigger,
-- rule, CHECK ... on a protected table; a table protected at the end of
-- the statement that makes it could carry them already -- inline, or
-- attached by a statement run inside the one making it (which now protects
-- only its own tables) -- and run them over every later row.  Refused for
-- a non-superuser; a superuser may.
CREATE ROLE reg54_dev LOGIN;
CREATE SCHEMA reg54_devs AUTHORIZATION reg54_dev;
GRANT USAGE, CREATE ON SCHEMA reg54_phi TO reg54_dev;
CREATE TABLE reg54_leak (patient_id text, v int);
GRANT INSERT, SELECT ON reg54_leak TO PUBLIC;
SET SESSION AUTHORIZATION reg54_dev;
CREATE FUNCTION reg54_devs.copy_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.reg54_leak VALUES (NEW.patient_id, NEW.v);
  RETURN NEW;
END
$$;
CREATE FUNCTION reg54_devs.attach(what text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF what = 'trigger' THEN
    EXECUTE 'CREATE TRIGGER copy AFTER INSERT ON reg54_phi.w1 FOR EACH ROW EXECUTE FUNCTION reg54_devs.copy_row()';
  ELSE
    EXECUTE 'CREATE RULE copy AS ON INSERT TO reg54_phi.w1 DO ALSO INSERT INTO public.reg54_leak VALUES (NEW.patient_id, NEW.v)';
  END IF;
  RETURN 1;
END
$$;
CREATE FUNCTION reg54_devs.keep(p text, v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.reg54_leak VALUES (p, v);
  RETURN true;
END
$$;
-- attached while the outer statement makes the table: refused
CREATE TABLE reg54_phi.w1 AS SELECT 'reg54-p1'::text AS patient_id, reg54_devs.attach('trigger') AS v;
CREATE TABLE reg54_phi.w1 AS SELECT 'reg54-p1'::text AS patient_id, reg54_devs.attach('rule') AS v;
-- inline: refused
CREATE TABLE reg54_phi.w2 (patient_id text, v int CHECK (reg54_devs.keep(patient_id, v)));
CREATE TABLE reg54_phi.w2 (patient_id text, v int CHECK (v > 0));
CREATE TABLE reg54_phi.w2 (patient_id text, v int, w int GENERATED ALWAYS AS (v * 2) STORED);
CREATE TABLE reg54_phi.w2 (patient_id text, v int);
CREATE INDEX ON reg54_phi.w2 ((v + 1));
-- a column of a domain its maker made (its CHECK runs on every value)
CREATE DOMAIN reg54_devs.kept_int AS int CHECK (reg54_devs.keep('domain', VALUE));
CREATE TABLE reg54_phi.w6 (patient_id text, v reg54_devs.kept_int);
-- moved in with a trigger: refused
CREATE TABLE reg54_devs.w3 (patient_id text, v int);
CREATE TRIGGER copy AFTER INSERT ON reg54_devs.w3 FOR EACH ROW EXECUTE FUNCTION reg54_devs.copy_row();
ALTER TABLE reg54_devs.w3 SET SCHEMA reg54_phi;
-- a permissive policy and plain indexes, keys and defaults are no code
CREATE TABLE reg54_phi.w4 (patient_id text PRIMARY KEY, v int DEFAULT 1 NOT NULL);
CREATE POLICY mine ON reg54_phi.w4 USING (true);
RESET SESSION AUTHORIZATION;
SELECT c.relname, agentauth._table_label(c.oid) IS NOT NULL AS labelled
  FROM pg_class c WHERE c.relnamespace = 'reg54_phi'::regnamespace AND c.relkind = 'r'
   AND c.relname LIKE 'w%' ORDER BY 1;
-- nothing was copied
SELECT count(*) AS leaked FROM reg54_leak;
-- a superuser may
CREATE TABLE reg54_phi.w5 (patient_id text, v int CHECK (v > 0));
SELECT agentauth._table_label('reg54_phi.w5') IS NOT NULL AS labelled;

-- 4. The DDL guard's other ways in, found with the above.
SET SESSION AUTHORIZATION reg54_dev;
-- a function in a partition bound runs after the partition exists, and
-- attached a trigger to it before it was protected (any protected
-- partitioned table a non-superuser owns)
CREATE TABLE reg54_phi.par (patient_id text, v int) PARTITION BY LIST (patient_id);
CREATE FUNCTION reg54_devs.bound(rel text, val text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TRIGGER copy AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION reg54_devs.copy_row()', rel);
  RETURN val;
END
$$;
CREATE TABLE reg54_devs.p1 PARTITION OF reg54_phi.par FOR VALUES IN (reg54_devs.bound('reg54_devs.p1', 'reg54-p1'));
CREATE TABLE reg54_devs.p1 PARTITION OF reg54_phi.par FOR VALUES IN ('reg54-p1');
-- the parent's own code, cloned onto a new partition, is not its maker's
RESET SESSION AUTHORIZATION;
CREATE INDEX par_partial ON reg54_phi.par (v) WHERE v > 0;
SET SESSION AUTHORIZATION reg54_dev;
CREATE TABLE reg54_devs.p2 PARTITION OF reg54_phi.par FOR VALUES IN ('reg54-p2');
-- ALTER TYPE ... CASCADE changes a typed table's columns without naming it
CREATE TYPE reg54_devs.comp AS (patient_id text, v int);
CREATE TABLE reg54_phi.typed OF reg54_devs.comp;
ALTER TYPE reg54_devs.comp ALTER ATTRIBUTE v TYPE reg54_devs.kept_int CASCADE;
ALTER TYPE reg54_devs.comp ADD ATTRIBUTE w int CASCADE;
ALTER TYPE reg54_devs.comp RENAME ATTRIBUTE patient_id TO pid CASCADE;
-- a column added of a domain its maker made (a type change was refused already)
ALTER TABLE reg54_phi.w4 ADD COLUMN w reg54_devs.kept_int;
ALTER TABLE reg54_phi.w4 ADD COLUMN w int;
RESET SESSION AUTHORIZATION;
SELECT c.relname, agentauth._table_label(c.oid) IS NOT NULL AS labelled,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'copy') AS copy_triggers
  FROM pg_class c WHERE c.oid IN ('reg54_devs.p1'::regclass, 'reg54_phi.typed'::regclass)
 ORDER BY 1;
-- a declared schema dropped and made again is protected again, in a
-- backend that read the declarations before (they were cached by OID)
CREATE SCHEMA reg54_again;
SET ROLE reg54_admin;
SELECT agentauth.protect_schema('reg54_again', 'patient_id', '{}', 'lab') IS NOT NULL AS declared;
RESET ROLE;
CREATE TABLE reg54_warm (x int);
DROP SCHEMA reg54_again;
CREATE SCHEMA reg54_again;
CREATE TABLE reg54_again.t (patient_id text, v int);
SELECT agentauth._table_label('reg54_again.t') IS NOT NULL AS labelled;
-- a schema may not take a declared name: its tables would sit there unprotected
DROP TABLE reg54_again.t;
DROP SCHEMA reg54_again;
CREATE SCHEMA reg54_squat;
CREATE TABLE reg54_squat.t (patient_id text, v int);
ALTER SCHEMA reg54_squat RENAME TO reg54_again;
