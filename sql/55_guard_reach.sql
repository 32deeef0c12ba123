-- The DDL guard and statements that reach further than their text names
-- (1.1).  A check that looks only at the names a statement gives misses
-- what PostgreSQL itself adds: the inheritance children and partitions a
-- TRUNCATE empties and the tables its CASCADE reaches through them, the
-- columns a DROP ... CASCADE of a collation or type takes with it; and a
-- client's column list is checked by PostgreSQL only after the hook has
-- read it.
\set SHOW_CONTEXT never
CREATE ROLE reg55_owner LOGIN;
CREATE SCHEMA reg55 AUTHORIZATION reg55_owner;
SET SESSION AUTHORIZATION reg55_owner;
CREATE TYPE reg55.flag AS ENUM ('positive', 'negative');
CREATE TABLE reg55.obs (patient_id text NOT NULL, v int, note text, k int, k2 int, f reg55.flag);
INSERT INTO reg55.obs VALUES ('R55-P1', 1, 'a', 1, 1, 'positive'), ('R55-P2', 2, 'b', 1, 1, 'negative');
-- a table of the owner's that is an extension's member before it is protected
CREATE TABLE reg55.ext_t (patient_id text NOT NULL, v int);
-- an inheritance tree and a partitioned table of the owner's, unprotected
CREATE TABLE reg55.par (id int);
CREATE TABLE reg55.kid (id int PRIMARY KEY) INHERITS (reg55.par);
CREATE TABLE reg55.ppar (id int PRIMARY KEY) PARTITION BY RANGE (id);
CREATE TABLE reg55.ppart PARTITION OF reg55.ppar FOR VALUES FROM (0) TO (100);
INSERT INTO reg55.kid VALUES (1);
INSERT INTO reg55.ppar VALUES (1);
RESET SESSION AUTHORIZATION;
-- the protected table's keys reference the child and the partition
ALTER TABLE reg55.obs ADD FOREIGN KEY (k) REFERENCES reg55.kid,
                      ADD FOREIGN KEY (k2) REFERENCES reg55.ppart;
SELECT agentauth.protect_table('reg55.obs', 'patient_id',
    '{"v": "lab", "note": "clinical_note", "k": "non_phi", "k2": "non_phi", "f": "lab"}') IS NOT NULL AS protected;

-- 1. A COPY column list longer than the table: refused, the backend
-- intact (1.0 wrote past the end of an array as long as the table's
-- columns: any role that could name the table could crash the server)
SELECT format('COPY reg55.obs (%s) TO STDOUT', string_agg('patient_id', ', ')) AS copy_long
  FROM generate_series(1, 2000) \gset
SELECT coalesce(max(seq), 0) AS s FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg55_owner;
:copy_long;
\echo SQLSTATE :SQLSTATE
-- a name that is no column of the table goes into no record
COPY reg55.obs (note, no_such_column, note) TO STDOUT;
\echo SQLSTATE :SQLSTATE
SELECT 1 AS backend_alive;
RESET SESSION AUTHORIZATION;
SELECT event, relation, columns FROM agentauth.audit_log
 WHERE seq > :s AND relation = 'reg55.obs' ORDER BY seq;

-- 2. TRUNCATE ... CASCADE through a child or a partition: the protected
-- table whose key references it would be emptied (1.0 looked only for
-- keys referencing the tables named)
SET SESSION AUTHORIZATION reg55_owner;
TRUNCATE reg55.par CASCADE;
\echo SQLSTATE :SQLSTATE
TRUNCATE reg55.ppar CASCADE;
\echo SQLSTATE :SQLSTATE
-- ONLY the parent: neither the child nor what references it is touched
TRUNCATE ONLY reg55.par CASCADE;
\echo SQLSTATE :SQLSTATE
RESET SESSION AUTHORIZATION;
SELECT (SELECT count(*) FROM reg55.obs) AS obs_rows, (SELECT count(*) FROM reg55.kid) AS kid_rows,
       (SELECT count(*) FROM reg55.ppart) AS part_rows;

-- 3. The patient column dropped with an object it depends on: refused
-- for every role.  1.0 let the owner change the column's collation to
-- one of its own and drop that with CASCADE; a column of the same name
-- added afterwards became the patient column.
SET SESSION AUTHORIZATION reg55_owner;
CREATE COLLATION reg55.oc FROM "C";
ALTER TABLE reg55.obs ALTER COLUMN patient_id TYPE text COLLATE reg55.oc;
DROP COLLATION reg55.oc CASCADE;
\echo SQLSTATE :SQLSTATE
RESET SESSION AUTHORIZATION;
CREATE DOMAIN reg55.pid AS text;
ALTER TABLE reg55.obs ALTER COLUMN patient_id TYPE reg55.pid;
DROP DOMAIN reg55.pid CASCADE;
\echo SQLSTATE :SQLSTATE
SELECT attname, atttypid::regtype, attcollation::regcollation FROM pg_attribute
 WHERE attrelid = 'reg55.obs'::regclass AND attnum = 1;
-- another column goes with its collation as before
SET SESSION AUTHORIZATION reg55_owner;
CREATE COLLATION reg55.oc2 FROM "C";
ALTER TABLE reg55.obs ALTER COLUMN note TYPE text COLLATE reg55.oc2;
DROP COLLATION reg55.oc2 CASCADE;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS note_columns FROM pg_attribute
 WHERE attrelid = 'reg55.obs'::regclass AND attname = 'note' AND NOT attisdropped;

-- 4. ALTER TYPE ... RENAME ATTRIBUTE naming the table renames its column
-- (PostgreSQL does not check that it is a type): refused for the patient
-- column as ALTER TABLE ... RENAME COLUMN is
SET SESSION AUTHORIZATION reg55_owner;
ALTER TYPE reg55.obs RENAME ATTRIBUTE patient_id TO old_pid;
\echo SQLSTATE :SQLSTATE
-- so is another column's, by either statement (1.1: allowed; the log names
-- columns as they were named when read, so renaming two columns into each
-- other's names made it say that one was read where the other was); a
-- superuser may
ALTER TYPE reg55.obs RENAME ATTRIBUTE v TO v2;
\echo SQLSTATE :SQLSTATE
ALTER TABLE reg55.obs RENAME COLUMN v TO v2;
\echo SQLSTATE :SQLSTATE
RESET SESSION AUTHORIZATION;
ALTER TABLE reg55.obs RENAME COLUMN v TO v2;
ALTER TABLE reg55.obs RENAME COLUMN v2 TO v;
SET SESSION AUTHORIZATION reg55_owner;

-- 5. A value of an enum a protected column uses, renamed: every stored
-- value changes without the row check (refused to a non-superuser); a
-- value added changes none
ALTER TYPE reg55.flag RENAME VALUE 'positive' TO 'negative_';
\echo SQLSTATE :SQLSTATE
ALTER TYPE reg55.flag ADD VALUE 'unknown';
RESET SESSION AUTHORIZATION;
SELECT f, count(*) FROM reg55.obs GROUP BY f ORDER BY f;

-- 6. Extensions: a protected table made an extension's member (left out of
-- pg_dump, moved and dropped with it), by any role; an extension holding
-- one moved to another schema by its owner
GRANT CREATE ON DATABASE :"DBNAME" TO reg55_owner;
SET SESSION AUTHORIZATION reg55_owner;
CREATE SCHEMA reg55_attic;
CREATE EXTENSION citext SCHEMA reg55;
ALTER EXTENSION citext ADD TABLE reg55.ext_t;
ALTER EXTENSION citext ADD TABLE reg55.obs;
\echo SQLSTATE :SQLSTATE
RESET SESSION AUTHORIZATION;
ALTER EXTENSION citext ADD TABLE reg55.obs;
\echo SQLSTATE :SQLSTATE
-- ... nor an extension's member protected (1.1: it was), nor attached as
-- a partition to a protected table, nor a protected table's partition
SELECT agentauth.protect_table('reg55.ext_t', 'patient_id', '{"v": "lab"}') IS NOT NULL AS protected;
\echo SQLSTATE :SQLSTATE
SELECT agentauth._table_label('reg55.ext_t'::regclass) IS NULL AS ext_t_unprotected;
CREATE TABLE reg55.pt (patient_id text NOT NULL, v text) PARTITION BY LIST (patient_id);
CREATE TABLE reg55.pt_a (patient_id text NOT NULL, v text);
ALTER EXTENSION citext ADD TABLE reg55.pt_a;
ALTER TABLE reg55.pt ATTACH PARTITION reg55.pt_a FOR VALUES IN ('A');
SELECT agentauth.protect_table('reg55.pt', 'patient_id', '{"v": "lab"}') IS NOT NULL AS protected;
\echo SQLSTATE :SQLSTATE
ALTER TABLE reg55.pt DETACH PARTITION reg55.pt_a;
SELECT agentauth.protect_table('reg55.pt', 'patient_id', '{"v": "lab"}') IS NOT NULL AS protected;
ALTER TABLE reg55.pt ATTACH PARTITION reg55.pt_a FOR VALUES IN ('A');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'reg55.pt'::regclass;
-- a schema with a member is not protected (a table an extension's script
-- makes in a protected schema is refused alike)
CREATE SCHEMA reg55_ps;
CREATE TABLE reg55_ps.m (patient_id text NOT NULL, v text);
ALTER EXTENSION citext ADD TABLE reg55_ps.m;
SELECT agentauth.protect_schema('reg55_ps', 'patient_id', '{}', 'lab');
\echo SQLSTATE :SQLSTATE
SELECT count(*) AS protected_schemas FROM agentauth.protected_schemas WHERE schema_name = 'reg55_ps';
ALTER EXTENSION citext DROP TABLE reg55_ps.m;
DROP SCHEMA reg55_ps CASCADE;
-- a protected member as 1.0 let one be made (here by a superuser's
-- catalog edit): its extension is not moved to another schema
INSERT INTO pg_depend
SELECT 'pg_class'::regclass, 'reg55.obs'::regclass, 0,
       'pg_extension'::regclass, (SELECT oid FROM pg_extension WHERE extname = 'citext'), 0, 'e';
SET SESSION AUTHORIZATION reg55_owner;
ALTER EXTENSION citext SET SCHEMA reg55_attic;
\echo SQLSTATE :SQLSTATE
RESET SESSION AUTHORIZATION;
SELECT c.relname, c.relnamespace::regnamespace FROM pg_class c
 WHERE c.relname IN ('obs', 'ext_t') AND c.relnamespace IN ('reg55'::regnamespace, 'reg55_attic'::regnamespace)
 ORDER BY 1;
DELETE FROM pg_depend WHERE objid = 'reg55.obs'::regclass AND deptype = 'e';

-- 7. REASSIGN OWNED gives the schema that holds the table to another
-- role, as ALTER SCHEMA ... OWNER TO would: refused to a non-superuser
CREATE ROLE reg55_heir NOLOGIN;
GRANT reg55_heir TO reg55_owner;
SET SESSION AUTHORIZATION reg55_owner;
REASSIGN OWNED BY reg55_owner TO reg55_heir;
\echo SQLSTATE :SQLSTATE
RESET SESSION AUTHORIZATION;
SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'reg55';

SELECT agentauth.unprotect_table('reg55.obs', 'regression test cleanup') IS NOT NULL AS unprotected;
SELECT agentauth.unprotect_table('reg55.pt', 'regression test cleanup') IS NOT NULL AS unprotected;
DROP SCHEMA reg55, reg55_attic CASCADE;
REVOKE CREATE ON DATABASE :"DBNAME" FROM reg55_owner;
DROP ROLE reg55_heir;
DROP ROLE reg55_owner;
