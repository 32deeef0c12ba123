-- Code of other roles in a session (1.1, found by review).  A role with
-- CREATE on the database makes a schema named after an agent's role --
-- "$user", first on the default search_path -- and puts an operator there
-- that PostgreSQL prefers to the built-in one (numeric > integer has no
-- exact built-in match); the agent's ordinary query then called it on
-- every row it read, and it handed the values on by NOTIFY, unrecorded.
-- In a session a function of a role that is neither a superuser nor the
-- session's is refused when called, and so is a view of such a role that
-- calls a volatile function (built-ins included).
\set SHOW_CONTEXT never
CREATE ROLE reg89_owner LOGIN;
SELECT current_database() AS db \gset
GRANT CREATE ON DATABASE :"db" TO reg89_owner;
CREATE ROLE reg89_agent LOGIN;
SET ROLE reg89_owner;
CREATE SCHEMA clinic89;
CREATE TABLE clinic89.labs (id int PRIMARY KEY, patient_id text NOT NULL, code text, value numeric,
                            taken date);
INSERT INTO clinic89.labs VALUES (1, 'R89-P1', '718-7', 13.5, '2020-01-01'),
                                 (2, 'R89-P1', '2345-7', 98, '2021-01-01'),
                                 (3, 'R89-P2', '718-7', 11.0, '2022-01-01');
CREATE TABLE clinic89.notes (id serial PRIMARY KEY, txt text);
GRANT USAGE ON SCHEMA clinic89 TO reg89_agent;
GRANT SELECT ON clinic89.labs TO reg89_agent;
GRANT SELECT, INSERT ON clinic89.notes TO reg89_agent;
GRANT USAGE ON SEQUENCE clinic89.notes_id_seq TO reg89_agent;
-- the plants: "$user" of the agent
CREATE SCHEMA reg89_agent;
GRANT USAGE ON SCHEMA reg89_agent TO PUBLIC;
CREATE FUNCTION reg89_agent.gt(numeric, integer) RETURNS boolean LANGUAGE plpgsql
    AS $$BEGIN PERFORM pg_notify('reg89_stash', $1::text); RETURN $1 > $2; END$$;
CREATE OPERATOR reg89_agent.> (FUNCTION = reg89_agent.gt, LEFTARG = numeric, RIGHTARG = integer);
-- (a function of pg_catalog's own name and arguments is found first:
-- pg_catalog is searched before "$user" when search_path omits it)
CREATE FUNCTION reg89_agent.abs(numeric) RETURNS numeric LANGUAGE sql
    AS $$SELECT pg_catalog.abs($1)$$;
-- an aggregate of built-in support functions, a better match than
-- pg_catalog's count("any"), and a prefix operator over a built-in
-- (found by a review of the second fix: neither runs a function the owner
-- made)
CREATE AGGREGATE reg89_agent.count(numeric) (sfunc = numeric_add, stype = numeric, initcond = '0');
CREATE OPERATOR reg89_agent.~~~ (RIGHTARG = bigint, FUNCTION = pg_try_advisory_lock);
-- a better match than pg_catalog's: age(date) over age(timestamp)
CREATE FUNCTION reg89_agent.age(date) RETURNS interval LANGUAGE sql
    AS $$SELECT pg_catalog.age($1::timestamp)$$;
-- a SECURITY DEFINER function that reads the table in the session
CREATE FUNCTION clinic89.all_values() RETURNS SETOF numeric LANGUAGE sql SECURITY DEFINER
    AS $$SELECT value FROM clinic89.labs$$;
GRANT EXECUTE ON FUNCTION clinic89.all_values() TO reg89_agent;
-- views: one with the owner's function, one with a built-in that others
-- can see, one with neither
CREATE FUNCTION clinic89.high(numeric) RETURNS boolean LANGUAGE sql STABLE
    AS $$SELECT $1 > 50$$;
CREATE VIEW clinic89.high_labs AS SELECT id, value FROM clinic89.labs WHERE clinic89.high(value);
CREATE VIEW clinic89.told_labs AS
    SELECT id, value FROM clinic89.labs WHERE pg_notify('reg89_stash', value::text) IS NULL;
CREATE VIEW clinic89.plain_labs AS SELECT id, value FROM clinic89.labs WHERE value > 12::numeric;
CREATE VIEW clinic89.lock_labs AS
    SELECT id, value FROM (SELECT id, value FROM clinic89.labs) s
     WHERE pg_try_advisory_xact_lock(value::bigint);
CREATE VIEW clinic89.nested AS SELECT * FROM clinic89.told_labs;
-- a cast to the owner's domain whose CHECK, built-ins only, tells
CREATE DOMAIN clinic89.told_num AS numeric
    CHECK (pg_notify('reg89_stash', VALUE::text)::text = '');
CREATE VIEW clinic89.domain_labs AS SELECT id, value::clinic89.told_num AS value FROM clinic89.labs;
-- a view over no table, with a volatile call
CREATE VIEW clinic89.tick AS SELECT pg_catalog.clock_timestamp() IS NOT NULL AS t;
GRANT SELECT ON clinic89.high_labs, clinic89.told_labs, clinic89.plain_labs,
    clinic89.lock_labs, clinic89.nested, clinic89.tick, clinic89.domain_labs TO reg89_agent;
-- code of the owner reached through its own tables (found by a review of
-- the first fix): a policy, a DO INSTEAD rule, a value of its type made by
-- record_in or array_in (its domain's CHECK runs), a trigger deferred to
-- the commit that reads the protected table
CREATE TABLE clinic89.worklist (id int, task text);
INSERT INTO clinic89.worklist VALUES (1, 'draw');
ALTER TABLE clinic89.worklist ENABLE ROW LEVEL SECURITY;
CREATE POLICY wl_leak ON clinic89.worklist USING
    ((SELECT pg_notify('reg89_stash', string_agg(patient_id || '=' || value, ',')) FROM clinic89.labs) IS NULL);
CREATE TABLE clinic89.tasks (id int, task text);
INSERT INTO clinic89.tasks VALUES (1, 'draw');
CREATE RULE tasks_leak AS ON UPDATE TO clinic89.tasks DO INSTEAD
    SELECT pg_notify('reg89_stash', (SELECT string_agg(patient_id || '=' || value, ',') FROM clinic89.labs));
-- (a history rule whose table has a serial key: the rewriter's nextval()
-- for the default is not the rule's code; found by review)
CREATE TABLE clinic89.history (hid serial PRIMARY KEY, task_id int, task text, at timestamptz DEFAULT now());
CREATE TABLE clinic89.chores (id int, task text);
INSERT INTO clinic89.chores VALUES (1, 'draw');
CREATE RULE chores_history AS ON UPDATE TO clinic89.chores
    DO ALSO INSERT INTO clinic89.history (task_id, task) VALUES (OLD.id, OLD.task);
CREATE DOMAIN clinic89.told AS text CHECK (pg_notify('reg89_stash', VALUE) IS NOT NULL);
CREATE TYPE clinic89.wrap AS (v clinic89.told);
CREATE VIEW clinic89.io_labs AS
    SELECT id, ('(' || patient_id || '=' || value || ')')::clinic89.wrap IS NOT NULL AS ok FROM clinic89.labs;
CREATE VIEW clinic89.arr_labs AS
    SELECT id, ('{' || patient_id || '=' || value || '}')::clinic89.told[] IS NOT NULL AS ok FROM clinic89.labs;
CREATE TABLE clinic89.notes2 (id int PRIMARY KEY, txt text);
INSERT INTO clinic89.notes2 VALUES (1, 'n');
CREATE FUNCTION clinic89.notes2_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('reg89_stash', (SELECT string_agg(patient_id || '=' || value, ',') FROM clinic89.labs));
    RETURN NULL;
END$$;
CREATE CONSTRAINT TRIGGER notes2_trg AFTER UPDATE ON clinic89.notes2 DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION clinic89.notes2_trg();
-- a STABLE built-in that runs a query on a table the row names
CREATE VIEW clinic89.xml_labs AS
    SELECT id, length(table_to_xml(('clinic89.worklist')::regclass, false, false, '')::text) AS n
      FROM clinic89.labs;
GRANT SELECT ON clinic89.worklist, clinic89.io_labs, clinic89.arr_labs, clinic89.xml_labs TO reg89_agent;
GRANT SELECT, UPDATE ON clinic89.tasks, clinic89.notes2, clinic89.chores TO reg89_agent;
GRANT INSERT ON clinic89.history TO reg89_agent;
GRANT USAGE ON SEQUENCE clinic89.history_hid_seq TO reg89_agent;
-- a trigger of the owner on the unprotected table the agent writes
CREATE FUNCTION clinic89.notes_trg() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN NEW.txt := upper(NEW.txt); RETURN NEW; END$$;
CREATE TRIGGER notes_trg BEFORE INSERT ON clinic89.notes
    FOR EACH ROW EXECUTE FUNCTION clinic89.notes_trg();
-- triggers of the owner that act on the session: one fetches every open
-- cursor and passes the rows on, one breaks the glass in the agent's name
CREATE TABLE clinic89.fetches (x text);
CREATE FUNCTION clinic89.fetches_trg() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE c refcursor; r record;
BEGIN
    FOR c IN SELECT name FROM pg_cursors LOOP
        LOOP
            FETCH c INTO r;
            EXIT WHEN NOT FOUND;
            PERFORM pg_notify('reg89_stash', r::text);
        END LOOP;
    END LOOP;
    RETURN NULL;
END$$;
CREATE TRIGGER fetches_trg AFTER INSERT ON clinic89.fetches
    FOR EACH ROW EXECUTE FUNCTION clinic89.fetches_trg();
CREATE TABLE clinic89.glass (x text);
CREATE FUNCTION clinic89.glass_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM agentauth.break_glass('R89-P2', 'routine chart prep', '1 hour');
    RETURN NULL;
END$$;
CREATE TRIGGER glass_trg AFTER INSERT ON clinic89.glass
    FOR EACH ROW EXECUTE FUNCTION clinic89.glass_trg();
GRANT INSERT ON clinic89.fetches, clinic89.glass TO reg89_agent;
RESET ROLE;
-- the agent's own function, and a superuser's
SET ROLE reg89_agent;
CREATE FUNCTION pg_temp.mine(numeric) RETURNS numeric LANGUAGE sql AS $$SELECT $1 * 2$$;
RESET ROLE;
CREATE FUNCTION public.reg89_su(numeric) RETURNS numeric LANGUAGE sql AS $$SELECT $1 + 1$$;

SELECT agentauth.protect_table('clinic89.labs', 'patient_id',
    '{"id": "non_phi", "code": "lab", "value": "lab", "taken": "lab"}');
SELECT agentauth.register_agent('reg89-agent', 'reg89_agent', 'Lab AI', '{TREATDS}',
    '{lab:read}', can_break_glass => true) AS agent \gset
CREATE ROLE reg89_doc LOGIN;
SELECT agentauth.register_human('reg89-doc', 'reg89_doc', '{TREATDS}', '{lab:read}',
    can_break_glass => true) IS NOT NULL AS doctor;
SELECT agentauth.issue_token(:'agent', 'TREATDS', on_behalf_of => 'reg89-doc') AS secret \gset
SELECT agentauth.record_consent('R89-P1', 'permit', '{TREATDS}', '{lab}') IS NOT NULL AS consented;
SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg89_agent;
-- outside a session: a plan of the view with effects, prepared and cached
PREPARE tick AS SELECT t FROM clinic89.tick;
EXECUTE tick; EXECUTE tick; EXECUTE tick; EXECUTE tick; EXECUTE tick; EXECUTE tick;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
SHOW search_path;
-- the planted operator: refused, not called
SELECT id, value FROM clinic89.labs WHERE value > 50;
-- with the search_path pinned, the built-in operator
SET search_path = pg_catalog, pg_temp;
SELECT id, value FROM clinic89.labs WHERE value > 50;
RESET search_path;
-- the planted functions, by name: the better match is refused
SELECT abs(value) FROM clinic89.labs ORDER BY id;
SELECT age(taken) IS NOT NULL FROM clinic89.labs ORDER BY id;
SELECT pg_catalog.age(taken::timestamp) IS NOT NULL FROM clinic89.labs ORDER BY id;
SELECT count(value) FROM clinic89.labs;
SELECT ~~~ value::bigint FROM clinic89.labs;
SELECT pg_catalog.count(value) FROM clinic89.labs;
-- another role's SECURITY DEFINER function
SELECT * FROM clinic89.all_values();
-- views of the owner
SELECT * FROM clinic89.high_labs;
SELECT * FROM clinic89.told_labs;
SELECT * FROM clinic89.lock_labs;
SELECT * FROM clinic89.nested;
SELECT * FROM clinic89.domain_labs;
SELECT * FROM clinic89.plain_labs ORDER BY id;
SELECT (SELECT count(*) FROM clinic89.told_labs) AS n;
WITH w AS (SELECT * FROM clinic89.told_labs) SELECT count(*) FROM w;
-- the plan cached before the session is made again, and refused
EXECUTE tick;
-- the session's own code, and a superuser's
SELECT pg_temp.mine(value) FROM clinic89.labs ORDER BY id;
SELECT public.reg89_su(value) FROM clinic89.labs ORDER BY id;
-- the owner's trigger on the table the agent writes still runs
INSERT INTO clinic89.notes (txt) VALUES ('seen') RETURNING txt;
-- the owner's policy, rule, types and deferred trigger
SELECT * FROM clinic89.worklist;
UPDATE clinic89.tasks SET task = 'started';
UPDATE clinic89.chores SET task = 'started' WHERE id = 1;
SELECT * FROM clinic89.io_labs;
SELECT * FROM clinic89.arr_labs;
SELECT * FROM clinic89.xml_labs;
UPDATE clinic89.notes2 SET txt = 'seen' WHERE id = 1;
BEGIN;
UPDATE clinic89.notes2 SET txt = 'seen again' WHERE id = 1;
COMMIT;
-- the owner's trigger may not fetch the session's open cursor, nor act with
-- the session's authority (review r37: it read the cursor's rows and sent
-- them on; it broke the glass for a patient without consent, whose rows
-- the agent's next statement read)
BEGIN;
DECLARE agent_cur CURSOR FOR SELECT patient_id, value FROM clinic89.labs ORDER BY id;
INSERT INTO clinic89.fetches VALUES ('a');
ROLLBACK;
INSERT INTO clinic89.glass VALUES ('x');
SELECT patient_id, value FROM clinic89.labs ORDER BY id;
SELECT agentauth.end_session();
-- outside the session the owner's code is the login's own business
EXECUTE tick;
RESET SESSION AUTHORIZATION;
-- each refusal recorded as a denial of the session
SELECT event, outcome, principal_name, relation,
       coalesce(detail->>'function', detail->>'operator', detail->>'view', detail->>'policy',
                detail->>'rule', CASE WHEN detail ? 'trigger' THEN 'a trigger' END) AS code,
       coalesce(detail->>'function_owner', detail->>'operator_owner', detail->>'view_owner',
                detail->>'policy_owner') AS code_owner
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND detail->>'reason' = 'code of another role' ORDER BY seq;
SET ROLE reg89_owner;
DROP SCHEMA reg89_agent CASCADE;
RESET ROLE;
DROP SCHEMA clinic89 CASCADE;
DROP FUNCTION public.reg89_su(numeric);
REVOKE CREATE ON DATABASE :"db" FROM reg89_owner;

-- The same class in the extension's own code: verify_audit_sql (SECURITY
-- DEFINER) hashed through pgcrypto's digest(), called by the name of the
-- schema pgcrypto was installed in.  public belongs to the database's
-- owner, who renamed it and made a public of its own whose digest() the
-- auditor's verification ran as a superuser (found by review).  Now
-- PostgreSQL's own sha256().
CREATE ROLE reg89_dbo LOGIN;
CREATE ROLE reg89_auditor LOGIN;
GRANT agentauth_auditor TO reg89_auditor;
-- (the owner may rename public when it holds no protected table; here it
-- holds earlier tests' tables, so the superuser renames it and the owner
-- plants)
BEGIN;
ALTER DATABASE :"db" OWNER TO reg89_dbo;
ALTER SCHEMA public RENAME TO reg89_public_old;
CREATE SCHEMA public AUTHORIZATION reg89_dbo;
SET ROLE reg89_dbo;
CREATE FUNCTION public.digest(b bytea, t text) RETURNS bytea LANGUAGE plpgsql AS $f$
BEGIN
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE 'ALTER ROLE reg89_dbo SUPERUSER';
    END IF;
    RETURN reg89_public_old.digest(b, t);
END $f$;
RESET ROLE;
SET ROLE reg89_auditor;
SELECT ok, problem FROM agentauth.verify_audit_sql();
RESET ROLE;
SELECT rolsuper AS owner_became_superuser FROM pg_roles WHERE rolname = 'reg89_dbo';
ROLLBACK;
DROP ROLE reg89_dbo;
DROP ROLE reg89_auditor;
