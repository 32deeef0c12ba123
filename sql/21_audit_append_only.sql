-- The audit log is append-only for every role, superuser included, and
-- session_replication_role = replica does not switch the protection off.
\set VERBOSITY terse
SELECT agentauth._audit('reg21_record', '{"n": 1}');
SELECT current_setting('is_superuser') AS superuser;

-- the guard triggers fire ALWAYS
SELECT tgname, tgenabled, tgtype FROM pg_trigger
 WHERE tgrelid = 'agentauth.audit_log'::regclass ORDER BY tgname;

CREATE FUNCTION reg21_forbidden() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    stmt text;
BEGIN
    FOREACH stmt IN ARRAY ARRAY[
        $s$INSERT INTO agentauth.audit_log (seq, logged_at, event, prev_hash, row_hash) VALUES (-1, now(), 'forged', '', '')$s$,
        $s$UPDATE agentauth.audit_log SET event = 'changed' WHERE seq = (SELECT max(seq) FROM agentauth.audit_log)$s$,
        $s$UPDATE agentauth.audit_log SET event = event WHERE false$s$,
        $s$DELETE FROM agentauth.audit_log WHERE seq = (SELECT max(seq) FROM agentauth.audit_log)$s$,
        $s$DELETE FROM agentauth.audit_log WHERE false$s$,
        $s$WITH d AS (DELETE FROM agentauth.audit_log RETURNING 1) SELECT count(*) FROM d$s$,
        $s$MERGE INTO agentauth.audit_log l USING (SELECT 1 AS seq) s ON l.seq = s.seq WHEN MATCHED THEN DELETE$s$,
        $s$COPY agentauth.audit_log (seq, logged_at, event, prev_hash, row_hash) FROM PROGRAM 'echo'$s$,
        $s$TRUNCATE agentauth.audit_log$s$,
        $s$TRUNCATE agentauth.audit_log, agentauth.purpose CASCADE$s$,
        $s$ALTER TABLE agentauth.audit_log DISABLE TRIGGER audit_log_append_only$s$,
        $s$ALTER TABLE agentauth.audit_log DISABLE TRIGGER ALL$s$,
        $s$ALTER TABLE agentauth.audit_log ENABLE REPLICA TRIGGER audit_log_append_only$s$,
        $s$ALTER TABLE agentauth.audit_log ADD COLUMN note text$s$,
        $s$ALTER TABLE agentauth.audit_log ALTER COLUMN event DROP NOT NULL$s$,
        $s$ALTER TABLE agentauth.audit_log RENAME TO old_log$s$,
        $s$ALTER TABLE agentauth.audit_log RENAME COLUMN event TO what$s$,
        $s$ALTER TABLE agentauth.audit_log SET SCHEMA public$s$,
        $s$ALTER TABLE agentauth.audit_log OWNER TO agentauth_admin$s$,
        $s$ALTER TABLE agentauth.audit_log SET UNLOGGED$s$,
        $s$ALTER INDEX agentauth.audit_log_pkey RENAME TO x$s$,
        $s$ALTER TRIGGER audit_log_append_only ON agentauth.audit_log RENAME TO x$s$,
        $s$CREATE TRIGGER reg21 BEFORE INSERT ON agentauth.audit_log FOR EACH STATEMENT EXECUTE FUNCTION agentauth._audit_log_guard()$s$,
        $s$CREATE OR REPLACE TRIGGER audit_log_append_only BEFORE INSERT ON agentauth.audit_log FOR EACH STATEMENT EXECUTE FUNCTION suppress_redundant_updates_trigger()$s$,
        $s$CREATE RULE reg21 AS ON DELETE TO agentauth.audit_log DO INSTEAD NOTHING$s$,
        $s$CREATE OR REPLACE FUNCTION agentauth._audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'$s$,
        $s$ALTER FUNCTION agentauth._audit_log_guard() RENAME TO x$s$,
        $s$ALTER FUNCTION agentauth._audit_log_guard() SET SCHEMA public$s$,
        $s$DROP TRIGGER audit_log_append_only ON agentauth.audit_log$s$,
        $s$DROP TRIGGER audit_log_no_truncate ON agentauth.audit_log$s$,
        $s$DROP INDEX agentauth.audit_log_patient_idx$s$,
        $s$DROP TABLE agentauth.audit_log$s$,
        $s$DROP FUNCTION agentauth._audit_log_guard() CASCADE$s$,
        $s$ALTER EXTENSION agentauth DROP TABLE agentauth.audit_log$s$,
        $s$ALTER EXTENSION agentauth DROP FUNCTION agentauth._audit_log_guard()$s$,
        $s$DROP SCHEMA agentauth CASCADE$s$,
        $s$ALTER SCHEMA agentauth RENAME TO x$s$,
        $s$DROP EXTENSION agentauth$s$,
        $s$DROP EXTENSION agentauth CASCADE$s$,
        $s$DROP EXTENSION pgcrypto CASCADE$s$]
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
 WHERE tgrelid = 'agentauth.audit_log'::regclass ORDER BY tgname;
SELECT ok, problem FROM agentauth.verify_audit();
SELECT count(*) FROM agentauth.audit_log WHERE event IN ('forged', 'changed');

-- the guard refuses to run outside a trigger
SELECT agentauth._audit_log_guard();

-- ordinary maintenance of the log is allowed
VACUUM agentauth.audit_log;
ANALYZE agentauth.audit_log;
SELECT obj_description('agentauth.audit_log'::regclass, 'pg_class') AS installed_comment \gset
COMMENT ON TABLE agentauth.audit_log IS 'the hash-chained audit log';
COMMENT ON TABLE agentauth.audit_log IS :'installed_comment';
DROP FUNCTION reg21_forbidden();
