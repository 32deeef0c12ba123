-- Everything in the extension's schema keeps its protection against every
-- role, superusers included (issue 12, item 5): its owners, privileges,
-- labels, triggers and policies change only through the extension's own
-- scripts.  COMMENT is allowed.  (This suite runs as a superuser.)
\set SHOW_CONTEXT never
CREATE ROLE reg84_role;
CREATE ROLE reg84_auditor LOGIN;
GRANT agentauth_auditor TO reg84_auditor;
-- the issue's reproducer: a label on the audit log would hold its auditors
-- to the row check, and nothing could remove it
SECURITY LABEL FOR agentauth ON TABLE agentauth.audit_record IS 'patient=patient';
SECURITY LABEL FOR agentauth ON COLUMN agentauth.audit_record.detail IS 'lab';
SECURITY LABEL FOR agentauth ON TABLE agentauth.consent IS 'patient=patient_id';
SECURITY LABEL FOR agentauth ON SCHEMA agentauth IS 'x';
SECURITY LABEL FOR agentauth ON FUNCTION agentauth.whoami() IS 'x';
-- ... nor through protect_table()
SELECT agentauth.protect_table('agentauth.consent', 'patient_id', '{}', 'lab');
SELECT agentauth._set_label('agentauth.audit_record', NULL, 'patient=patient');
SELECT agentauth._set_label('agentauth.audit_record', 'detail', 'lab');
SELECT count(*) AS labels FROM pg_seclabel
 WHERE provider = 'agentauth' AND objoid IN (SELECT oid FROM pg_class
                                             WHERE relnamespace = 'agentauth'::regnamespace);
SET ROLE reg84_auditor;
SELECT count(*) >= 0 AS auditor_reads FROM agentauth.audit_record;
RESET ROLE;
-- the schema
ALTER SCHEMA agentauth OWNER TO reg84_role;
ALTER SCHEMA agentauth RENAME TO x;
GRANT CREATE ON SCHEMA agentauth TO reg84_role;
REVOKE USAGE ON SCHEMA agentauth FROM PUBLIC;
REASSIGN OWNED BY CURRENT_USER TO reg84_role;
-- its tables, views, functions and types: owners
ALTER TABLE agentauth.consent OWNER TO reg84_role;
ALTER TABLE agentauth.audit_record OWNER TO reg84_role;
ALTER VIEW agentauth.consents OWNER TO reg84_role;
ALTER FUNCTION agentauth.whoami() OWNER TO reg84_role;
ALTER FUNCTION agentauth._audit_log_guard() OWNER TO reg84_role;
-- privileges
GRANT SELECT ON agentauth.token TO PUBLIC;
GRANT SELECT (token_hash) ON agentauth.token TO reg84_role;
GRANT SELECT ON agentauth.audit_record TO reg84_role;
REVOKE SELECT ON agentauth.audit_record FROM agentauth_auditor;
REVOKE EXECUTE ON FUNCTION agentauth.whoami() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.purge_audit(timestamptz) TO PUBLIC;
GRANT ALL ON ALL TABLES IN SCHEMA agentauth TO reg84_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA agentauth GRANT SELECT ON TABLES TO reg84_role;
-- renaming, moving, altering
ALTER TABLE agentauth.consent RENAME TO consent_old;
ALTER TABLE agentauth.consent RENAME COLUMN patient_id TO pid;
ALTER TABLE agentauth.consent SET SCHEMA public;
ALTER VIEW agentauth.consents RENAME TO c;
ALTER FUNCTION agentauth.whoami() RENAME TO w;
ALTER FUNCTION agentauth.whoami() SET SCHEMA public;
ALTER FUNCTION agentauth.whoami() SECURITY DEFINER;
ALTER FUNCTION agentauth.whoami() SET search_path = public;
CREATE FUNCTION agentauth.whoami(x int) RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE OR REPLACE FUNCTION agentauth.check_session() RETURNS void LANGUAGE sql AS '';
CREATE TABLE public.reg84_t (a int);
ALTER TABLE public.reg84_t SET SCHEMA agentauth;
DROP TABLE public.reg84_t;
ALTER TABLE agentauth.consent DISABLE TRIGGER consent_generation;
ALTER TABLE agentauth.consent DISABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.consent ADD COLUMN note text;
CREATE TRIGGER reg84 AFTER INSERT ON agentauth.consent
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE RULE reg84 AS ON INSERT TO agentauth.consent DO ALSO NOTIFY reg84;
CREATE POLICY reg84 ON agentauth.consent USING (true);
DROP TRIGGER consent_generation ON agentauth.consent;
-- storage settings and comments are fine
ALTER TABLE agentauth.consent SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE agentauth.consent RESET (autovacuum_vacuum_scale_factor);
SELECT obj_description('agentauth.consent'::regclass, 'pg_class') AS installed_comment \gset
COMMENT ON TABLE agentauth.consent IS 'reg84';
COMMENT ON TABLE agentauth.consent IS :'installed_comment';
-- a foreign key of a user's table to the extension's comes and goes
CREATE TABLE public.reg84_ref (p uuid REFERENCES agentauth.principal);
DROP TABLE public.reg84_ref;
-- nothing changed
SELECT nspname, nspowner = (SELECT extowner FROM pg_extension WHERE extname = 'agentauth') AS owner_kept
  FROM pg_namespace WHERE nspname = 'agentauth';
SELECT count(*) AS reowned FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'agentauth' AND c.relowner <> n.nspowner;
SELECT has_table_privilege('public', 'agentauth.token', 'SELECT') AS public_reads_tokens,
       has_table_privilege('agentauth_auditor', 'agentauth.audit_record', 'SELECT') AS auditor_reads_log;
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'agentauth.consent'::regclass AND NOT tgisinternal ORDER BY 1;
DROP ROLE reg84_role;
DROP ROLE reg84_auditor;
