-- Schemas holding protected tables (issue 12, item 4).  Renaming the schema
-- or giving it to another owner would free a protected table's name for an
-- unprotected table, as renaming or moving the table itself would: refused
-- to anyone but a superuser, like DROP SCHEMA ... CASCADE.
\set SHOW_CONTEXT never
CREATE ROLE reg83_owner LOGIN;
CREATE ROLE reg83_other;
GRANT reg83_other TO reg83_owner;
GRANT CREATE ON DATABASE contrib_regression TO reg83_owner;
CREATE SCHEMA clinic83 AUTHORIZATION reg83_owner;
CREATE TABLE clinic83.observations (patient_id text NOT NULL, code text, value text);
ALTER TABLE clinic83.observations OWNER TO reg83_owner;
SELECT agentauth.protect_table('clinic83.observations', 'patient_id',
    '{"code": "lab", "value": "lab"}');
SET ROLE reg83_owner;
-- the issue's reproducer
ALTER SCHEMA clinic83 RENAME TO clinic83_old;
CREATE TABLE clinic83.observations (patient_id text, code text, value text);
-- the schema's owner
ALTER SCHEMA clinic83 OWNER TO reg83_other;
-- dropping it drops the table
DROP SCHEMA clinic83 CASCADE;
-- the table renamed or moved under another kind of object's name
ALTER TABLE clinic83.observations RENAME TO observations_old;
ALTER INDEX clinic83.observations RENAME TO observations_old;
ALTER VIEW clinic83.observations RENAME TO observations_old;
ALTER SEQUENCE clinic83.observations RENAME TO observations_old;
ALTER FOREIGN TABLE clinic83.observations RENAME TO observations_old;
ALTER TABLE clinic83.observations SET SCHEMA public;
ALTER VIEW clinic83.observations SET SCHEMA public;
-- a schema without protected tables is the owner's business
CREATE SCHEMA reg83_free;
ALTER SCHEMA reg83_free RENAME TO reg83_free2;
ALTER SCHEMA reg83_free2 OWNER TO reg83_other;
RESET ROLE;
SELECT nspname, nspowner::regrole FROM pg_namespace
 WHERE nspname LIKE 'clinic83%' OR nspname LIKE 'reg83%' ORDER BY 1;
SELECT relname FROM pg_class WHERE relnamespace = 'clinic83'::regnamespace ORDER BY 1;
-- a superuser may
ALTER SCHEMA clinic83 RENAME TO clinic83_su;
SELECT 'clinic83_su.observations'::regclass;
ALTER SCHEMA clinic83_su RENAME TO clinic83;
SELECT agentauth.unprotect_table('clinic83.observations', 'reg83: renaming the schema');
-- once unprotected, the owner may
SET ROLE reg83_owner;
ALTER SCHEMA clinic83 RENAME TO clinic83_old;
RESET ROLE;
SET client_min_messages = warning;
DROP SCHEMA clinic83_old CASCADE;
DROP SCHEMA reg83_free2;
RESET client_min_messages;
REVOKE CREATE ON DATABASE contrib_regression FROM reg83_owner;
DROP ROLE reg83_owner;
DROP ROLE reg83_other;
