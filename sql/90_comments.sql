-- Every object of the extension says what it is for (\df+, \dv+, \dt+,
-- \du+): the objects left without a comment, none expected.  Objects whose
-- name starts with "_" are internal and say so.
SELECT 'function' AS kind, p.oid::regprocedure::text AS object
  FROM pg_proc p
 WHERE p.pronamespace = 'agentauth'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'r' THEN 'table' ELSE c.relkind::text END,
       c.oid::regclass::text
  FROM pg_class c
 WHERE c.relnamespace = 'agentauth'::regnamespace AND c.relkind IN ('r', 'v', 'm')
   AND obj_description(c.oid, 'pg_class') IS NULL
UNION ALL
SELECT 'role', r.rolname FROM pg_roles r
 WHERE r.rolname LIKE 'agentauth\_%' AND shobj_description(r.oid, 'pg_authid') IS NULL
UNION ALL
SELECT 'schema', n.nspname FROM pg_namespace n
 WHERE n.nspname = 'agentauth' AND obj_description(n.oid, 'pg_namespace') IS NULL
ORDER BY 1, 2;
-- internals are marked as such, and no public function is
SELECT count(*) FILTER (WHERE p.proname LIKE '\_%'
                          AND obj_description(p.oid, 'pg_proc') NOT LIKE 'agentauth internal%') AS unmarked_internals,
       count(*) FILTER (WHERE p.proname NOT LIKE '\_%'
                          AND obj_description(p.oid, 'pg_proc') LIKE 'agentauth internal%') AS public_marked_internal
  FROM pg_proc p WHERE p.pronamespace = 'agentauth'::regnamespace;
-- declarations are deliberate (PostgreSQL's opr_sanity checks): nothing
-- IMMUTABLE is PARALLEL UNSAFE, and every SECURITY DEFINER function pins
-- its search_path
SELECT p.oid::regprocedure AS immutable_but_parallel_unsafe
  FROM pg_proc p
 WHERE p.pronamespace = 'agentauth'::regnamespace AND p.provolatile = 'i' AND p.proparallel = 'u';
SELECT p.oid::regprocedure AS security_definer_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'agentauth'::regnamespace AND p.prosecdef
   AND NOT coalesce(p.proconfig::text[] && ARRAY['search_path=pg_catalog, pg_temp'], false);
