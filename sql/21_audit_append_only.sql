-- The audit log is append-only for every role, superuser included, and
-- session_replication_role = replica does not switch the protection off.
\set VERBOSITY terse
SELECT agentauth._audit('reg21_record', '{"n": 1}');
SELECT current_setting('is_superuser') AS superuser;

-- the guard triggers fire ALWAYS
SELECT tgname, tgenabled, tgtype FROM pg_trigger
 WHERE tgrelid = 'agentauth.audit_record'::regclass ORDER BY tgname;

CREATE FUNCTION reg21_forbidden() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    stmt text;
BEGIN
    FOREACH stmt IN ARRAY ARRAY[
        $s$INSERT INTO agentauth.audit_record (seq, logged_at, event, prev_hash, row_hash) VALUES (-1, now(), 'forged', '', '')$s$,
        $s$UPDATE agentauth.audit_record SET event = 'changed' WHERE seq = (SELECT max(seq) FROM agentauth.audit_record)$s$,
        $s$UPDATE agentauth.audit_record SET event = event WHERE false$s$,
        $s$DELETE FROM agentauth.audit_record WHERE seq = (SELECT max(seq) FROM agentauth.audit_record)$s$,
        $s$DELETE FROM agentauth.audit_record WHERE false$s$,
        $s$WITH d AS (DELETE FROM agentauth.audit_record RETURNING 1) SELECT count(*) FROM d$s$,
        $s$MERGE INTO agentauth.audit_record l USING (SELECT 1 AS seq) s ON l.seq = s.seq WHEN MATCHED THEN DELETE$s$,
        $s$COPY agentauth.audit_record (seq, logged_at, event, prev_hash, row_hash) FROM PROGRAM 'echo'$s$,
        $s$TRUNCATE agentauth.audit_record$s$,
        $s$TRUNCATE agentauth.audit_record, agentauth.purpose CASCADE$s$,
        $s$ALTER TABLE agentauth.audit_record DISABLE TRIGGER audit_log_append_only$s$,
        $s$ALTER TABLE agentauth.audit_record DISABLE TRIGGER ALL$s$,
        $s$ALTER TABLE agentauth.audit_record ENABLE REPLICA TRIGGER audit_log_append_only$s$,
        $s$ALTER TABLE agentauth.audit_record ADD COLUMN note text$s$,
        $s$ALTER TABLE agentauth.audit_record ALTER COLUMN event DROP NOT NULL$s$,
        $s$ALTER TABLE agentauth.audit_record RENAME TO old_log$s$,
        $s$ALTER TABLE agentauth.audit_record RENAME COLUMN event TO what$s$,
        $s$ALTER TABLE agentauth.audit_record SET SCHEMA public$s$,
        $s$ALTER TABLE agentauth.audit_record OWNER TO agentauth_admin$s$,
        $s$ALTER TABLE agentauth.audit_record SET UNLOGGED$s$,
        $s$ALTER INDEX agentauth.audit_record_pkey RENAME TO x$s$,
        $s$ALTER TRIGGER audit_log_append_only ON agentauth.audit_record RENAME TO x$s$,
        $s$CREATE TRIGGER reg21 BEFORE INSERT ON agentauth.audit_record FOR EACH STATEMENT EXECUTE FUNCTION agentauth._audit_log_guard()$s$,
        $s$CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE INSERT ON agentauth.audit_record FOR EACH STATEMENT EXECUTE FUNCTION suppress_redundant_updates_trigger()$s$,
        $s$CREATE RULE reg21 AS ON DELETE TO agentauth.audit_record DO INSTEAD NOTHING$s$,
        $s$CREATE OR REPLACE FUNCTION agentauth._audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'$s$,
        $s$ALTER FUNCTION agentauth._audit_log_guard() RENAME TO x$s$,
        $s$ALTER FUNCTION agentauth._audit_log_guard() SET SCHEMA public$s$,
        $s$DROP TRIGGER audit_log_append_only ON agentauth.audit_record$s$,
        $s$DROP TRIGGER audit_log_no_truncate ON agentauth.audit_record$s$,
        $s$DROP INDEX agentauth.audit_log_patient_idx$s$,
        $s$DROP TABLE agentauth.audit_record$s$,
        $s$DROP FUNCTION agentauth._audit_log_guard() CASCADE$s$,
        $s$ALTER EXTENSION agentauth DROP TABLE agentauth.audit_record$s$,
        $s$ALTER EXTENSION agentauth DROP FUNCTION agentauth._audit_log_guard()$s$,
        $s$DROP SCHEMA agentauth CASCADE$s$,
        $s$ALTER SCHEMA agentauth RENAME TO x$s$,
        $s$DROP EXTENSION agentauth$s$,
        $s$DROP EXTENSION agentauth CASCADE$s$,
        $s$DROP EXTENSION pgcrypto CASCADE$s$,
        -- the view auditors read: redefining or removing it would hide records
        $s$CREATE OR REPLACE VIEW agentauth.audit_log AS SELECT * FROM agentauth.audit_log WHERE false$s$,
        $s$CREATE OR REPLACE VIEW agentauth._audit_entries AS SELECT * FROM agentauth._audit_entries WHERE false$s$,
        $s$DROP VIEW agentauth.audit_log$s$,
        $s$DROP VIEW agentauth._audit_entries CASCADE$s$,
        $s$ALTER VIEW agentauth.audit_log RENAME TO old_log$s$,
        $s$ALTER VIEW agentauth.audit_log SET SCHEMA public$s$,
        $s$ALTER VIEW agentauth.audit_log OWNER TO agentauth_admin$s$,
        $s$CREATE RULE reg21v AS ON SELECT TO agentauth.audit_log DO INSTEAD SELECT * FROM agentauth.audit_log WHERE false$s$,
        $s$DELETE FROM agentauth.audit_log WHERE false$s$,
        $s$UPDATE agentauth.audit_log SET event = event WHERE false$s$]
    LOOP
        BEGIN
            EXECUTE stmt;
            RETURN NEXT 'ALLOWED: ' || stmt;
        EXCEPTION WHEN OTHERS THEN
            RETURN NEXT SQLSTATE || ' ' || SQLERRM;
        END;
    END LOOP;
END
$$;

-- as superuser
SELECT * FROM reg21_forbidden();
-- and with session_replication_role = replica (what pg_restore and
-- logical replication use to skip ordinary triggers)
SET session_replication_role = replica;
SELECT * FROM reg21_forbidden();
RESET session_replication_role;

-- nothing changed: the triggers are there, the chain still verifies
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'agentauth.audit_record'::regclass ORDER BY tgname;
SELECT ok, problem FROM agentauth.verify_audit();
SELECT count(*) FROM agentauth.audit_record WHERE event IN ('forged', 'changed');

-- the guard refuses to run outside a trigger
SELECT agentauth._audit_log_guard();

-- ordinary maintenance of the log is allowed
VACUUM agentauth.audit_record;
ANALYZE agentauth.audit_record;
-- VACUUM FULL would stop the writer while it rewrites the log (a
-- database's owner may vacuum every table of it): refused to anyone but a
-- superuser, named or database-wide (1.1); other tables go on as before
CREATE ROLE reg21_dbowner;
CREATE TABLE reg21_other (x int);
ALTER TABLE reg21_other OWNER TO reg21_dbowner;
SET ROLE reg21_dbowner;
VACUUM FULL agentauth.audit_record;
VACUUM (FULL, ANALYZE) agentauth.audit_record, reg21_other;
VACUUM FULL;
VACUUM FULL reg21_other;
VACUUM agentauth.audit_record;
RESET ROLE;
DROP TABLE reg21_other;
DROP ROLE reg21_dbowner;
SELECT obj_description('agentauth.audit_record'::regclass, 'pg_class') AS installed_comment \gset
COMMENT ON TABLE agentauth.audit_record IS 'the hash-chained audit log';
COMMENT ON TABLE agentauth.audit_record IS :'installed_comment';
DROP FUNCTION reg21_forbidden();
