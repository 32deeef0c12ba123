-- agentauth is loaded into every database of the cluster
-- (shared_preload_libraries), and in one without the extension -- every
-- database but agentauth.database, and that one before CREATE EXTENSION --
-- it checks nothing and refuses nothing.  1.1 before (found in this
-- stop): every statement of every role but the bootstrap superuser failed
-- there, "relation agentauth.principal does not exist" (the check of a
-- principal's login acting as a role that bypasses row security asked
-- the extension's table at each statement's start).
\set SHOW_CONTEXT never
CREATE DATABASE reg57_other;
CREATE ROLE reg57_user LOGIN;
CREATE ROLE reg57_rls_free LOGIN BYPASSRLS;
\c reg57_other
GRANT CREATE ON SCHEMA public TO reg57_user;
SET SESSION AUTHORIZATION reg57_user;
SELECT 1 AS one;
CREATE TABLE public.t57 (id int, v text);
INSERT INTO public.t57 VALUES (1, 'a') RETURNING *;
UPDATE public.t57 SET v = 'b' RETURNING *;
CREATE FUNCTION public.f57(int) RETURNS int LANGUAGE sql AS 'SELECT $1 + 1';
SELECT public.f57(id) FROM public.t57;
PREPARE p57 AS SELECT count(*) FROM public.t57;
EXECUTE p57;
DO $$BEGIN PERFORM 1; END$$;
LISTEN agentauth_alerts;
UNLISTEN *;
SELECT count(*) >= 0 AS reads_statistics FROM pg_stat_user_tables;
SELECT pg_current_wal_lsn() IS NOT NULL AS reads_the_wal_position;
SELECT count(*) >= 0 AS reads_pg_stats FROM pg_stats WHERE tablename = 't57';
ANALYZE public.t57;
DROP TABLE public.t57;
DROP FUNCTION public.f57(int);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION reg57_rls_free;
SELECT 1 AS one;
RESET SESSION AUTHORIZATION;
SELECT current_database() = 'reg57_other' AS in_the_other_database;
\c contrib_regression
DROP DATABASE reg57_other;
DROP ROLE reg57_user;
DROP ROLE reg57_rls_free;
