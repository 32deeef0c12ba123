-- Smaller breakages of real schemas (issue 13, item 7).
\set SHOW_CONTEXT never

-- 1. ALTER PROCEDURE / ALTER ROUTINE: the audit log's guard looked every
-- routine up as a function, so 1.0 refused them all ("is not a
-- function").  The guard function itself stays unalterable by any name.
CREATE PROCEDURE reg48_proc() LANGUAGE sql AS $$ SELECT 1 $$;
CREATE FUNCTION reg48_func() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
ALTER PROCEDURE reg48_proc() SECURITY DEFINER;
ALTER ROUTINE reg48_proc() SECURITY INVOKER;
ALTER ROUTINE reg48_func() SECURITY DEFINER;
ALTER ROUTINE reg48_proc() RENAME TO reg48_proc2;
ALTER ROUTINE reg48_func() SET SCHEMA public;
SELECT proname, prosecdef FROM pg_proc WHERE proname LIKE 'reg48\_%' ORDER BY 1;
ALTER ROUTINE agentauth._audit_log_guard() SECURITY DEFINER;
ALTER ROUTINE agentauth._audit_log_guard() RENAME TO reg48_guard;
ALTER FUNCTION agentauth._audit_log_guard() SECURITY DEFINER;
DROP PROCEDURE reg48_proc2();
DROP FUNCTION reg48_func();

-- 2. REINDEX TABLE CONCURRENTLY of the audit log: its last step drops the
-- old copies of the indexes, which the guard refused, leaving invalid
-- indexes nobody could drop.  An index that is not valid may go now.
REINDEX TABLE CONCURRENTLY agentauth.audit_record;
REINDEX INDEX CONCURRENTLY agentauth.audit_log_patient_idx;
SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = 'agentauth.audit_record'::regclass ORDER BY 1;
-- a valid index of the log stays undroppable
DROP INDEX agentauth.audit_log_patient_idx;

-- 3. Foreign-key validation over a protected table reads every row of
-- both tables as the role in effect.  Row security binds the tables'
-- owner (a NOLOGIN role an administrator SETs ROLE to): it would see no
-- row outside a session, and only its patients' in one.  1.0 let it run,
-- and refused it half-way with "no agentauth session" naming the login
-- role.  Now it is refused before it starts, naming the role in effect,
-- and so is NOT VALID (1.1: its key checks let the owner choose the
-- columns it reads, row by row: ddl_values.c); a superuser adds the keys,
-- and a superuser's validation is recorded.
CREATE ROLE reg48_owner NOLOGIN;
CREATE ROLE reg48_dba LOGIN IN ROLE reg48_owner;
CREATE TABLE reg48_pat (patient_id text PRIMARY KEY, name text);
CREATE TABLE reg48_lab (id int PRIMARY KEY, patient_id text NOT NULL, value text);
CREATE TABLE reg48_plain (id int, patient_id text);
INSERT INTO reg48_pat VALUES ('R48-P1', 'Ada');
INSERT INTO reg48_lab VALUES (1, 'R48-P1', 'x');
INSERT INTO reg48_plain VALUES (1, 'R48-P1');
ALTER TABLE reg48_pat OWNER TO reg48_owner;
ALTER TABLE reg48_lab OWNER TO reg48_owner;
ALTER TABLE reg48_plain OWNER TO reg48_owner;
SELECT agentauth.protect_table('reg48_pat', 'patient_id', '{"name": "demographics"}');
SELECT agentauth.protect_table('reg48_lab', 'patient_id', '{"id": "non_phi", "value": "lab"}');
SET SESSION AUTHORIZATION reg48_dba;
SET ROLE reg48_owner;
ALTER TABLE reg48_lab ADD FOREIGN KEY (patient_id) REFERENCES reg48_pat;
-- an unprotected table referencing a protected one reads it too
ALTER TABLE reg48_plain ADD FOREIGN KEY (patient_id) REFERENCES reg48_pat;
ALTER TABLE reg48_lab ADD CONSTRAINT reg48_fk FOREIGN KEY (patient_id) REFERENCES reg48_pat NOT VALID;
ALTER TABLE reg48_plain ADD CONSTRAINT reg48_plain_fk FOREIGN KEY (patient_id) REFERENCES reg48_pat NOT VALID;
-- reading the table as its owner: refused, naming the role in effect
SELECT count(*) FROM reg48_lab;
RESET ROLE;
RESET SESSION AUTHORIZATION;
-- keys a superuser added: the owner may not validate them either
ALTER TABLE reg48_lab ADD CONSTRAINT reg48_fk FOREIGN KEY (patient_id) REFERENCES reg48_pat NOT VALID;
ALTER TABLE reg48_plain ADD CONSTRAINT reg48_plain_fk FOREIGN KEY (patient_id) REFERENCES reg48_pat NOT VALID;
SET SESSION AUTHORIZATION reg48_dba;
SET ROLE reg48_owner;
ALTER TABLE reg48_lab VALIDATE CONSTRAINT reg48_fk;
ALTER TABLE reg48_plain VALIDATE CONSTRAINT reg48_plain_fk;
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_record \gset
ALTER TABLE reg48_lab VALIDATE CONSTRAINT reg48_fk;
SELECT event, relation, action, outcome, detail->>'reason' AS reason FROM agentauth.audit_record
 WHERE seq > :s AND relation LIKE 'public.reg48\_%' ORDER BY seq;
SELECT conname, convalidated FROM pg_constraint WHERE conname LIKE 'reg48%' ORDER BY 1;

-- 4. protect_table() takes a regclass: naming the table needs USAGE on its
-- schema (PostgreSQL's lookup, before the function runs).  Its OID needs
-- none (README "Protecting a table").
CREATE ROLE reg48_admin LOGIN IN ROLE agentauth_admin;
CREATE SCHEMA reg48s;
CREATE TABLE reg48s.chart (patient_id text, note text);
SET SESSION AUTHORIZATION reg48_admin;
SELECT agentauth.protect_table('reg48s.chart', 'patient_id', '{}', 'clinical_note');
SELECT c.oid AS chart FROM pg_class c
 WHERE c.relname = 'chart' AND c.relnamespace = 'reg48s'::regnamespace \gset
SELECT agentauth.protect_table(:chart, 'patient_id', '{}', 'clinical_note');
RESET SESSION AUTHORIZATION;
SELECT relation, column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg48s.chart'::regclass ORDER BY 2;

-- 5. Views over protected tables: a view reads as its owner.  One owned
-- by a superuser (who bypasses row security) is refused in a session; one
-- owned by the tables' NOLOGIN owner, or a security_invoker view (checked
-- as the querying role), is checked as the session.
CREATE ROLE reg48_agent LOGIN;
CREATE VIEW reg48_v_super AS SELECT patient_id, value FROM reg48_lab;
CREATE VIEW reg48_v_owner AS SELECT patient_id, value FROM reg48_lab;
ALTER VIEW reg48_v_owner OWNER TO reg48_owner;
CREATE VIEW reg48_v_invoker WITH (security_invoker = true) AS SELECT patient_id, value FROM reg48_lab;
GRANT SELECT ON reg48_lab, reg48_v_super, reg48_v_owner, reg48_v_invoker TO reg48_agent;
SELECT agentauth.register_agent('reg48-agent', 'reg48_agent', 'Views', '{TREAT}', '{lab:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREAT') AS tok \gset
SELECT agentauth.record_consent('R48-P1', 'permit', '{TREAT}', '{lab}') IS NOT NULL AS consent;
SET SESSION AUTHORIZATION reg48_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT * FROM reg48_v_super;
SELECT * FROM reg48_v_owner;
SELECT * FROM reg48_v_invoker;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

SET client_min_messages = warning;
DROP VIEW reg48_v_super, reg48_v_owner, reg48_v_invoker;
DROP TABLE reg48_plain, reg48_lab, reg48_pat;
DROP SCHEMA reg48s CASCADE;
RESET client_min_messages;
