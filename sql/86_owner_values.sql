-- DDL by a protected table's owner that converts its stored values, runs
-- in the agents' sessions, or checks its rows as the owner (1.1, an
-- outside review of a hostile owner): a column's type change through a
-- built-in conversion, a column default that calls code, a foreign key to
-- or referencing a protected table.  Refused (42501) to anyone but a
-- superuser (src/ddl_values.c).
\set SHOW_CONTEXT never
SET client_min_messages = notice;
CREATE ROLE reg86_owner LOGIN;
CREATE SCHEMA clinic86 AUTHORIZATION reg86_owner;
SET ROLE reg86_owner;
CREATE DOMAIN clinic86.code_t AS text;
CREATE TABLE clinic86.labs (id int PRIMARY KEY, patient_id text NOT NULL,
    code clinic86.code_t, value numeric, hiv text, n varchar(10));
INSERT INTO clinic86.labs VALUES (1, 'R86-P1', '718-7', 13.5, 'negative', 'a'),
                                 (2, 'R86-P2', '718-7', 11.0, 'positive', 'b');
CREATE TABLE clinic86.vitals (id int PRIMARY KEY, patient_id int NOT NULL, hr int);
INSERT INTO clinic86.vitals VALUES (1, 7, 60), (2, 8, 70);
CREATE TABLE clinic86.guess (patient_id text, hiv text, PRIMARY KEY (patient_id, hiv));
INSERT INTO clinic86.guess SELECT p, h FROM unnest('{R86-P1,R86-P2}'::text[]) p,
                                            unnest('{positive,negative}'::text[]) h;
CREATE FUNCTION clinic86.grab() RETURNS text LANGUAGE sql AS $$SELECT 'x'$$;
RESET ROLE;
SELECT agentauth.protect_table('clinic86.labs', 'patient_id',
    '{"id": "non_phi", "code": "lab", "value": "lab", "hiv": "hiv", "n": "non_phi"}') IS NOT NULL AS protected;
SELECT agentauth.protect_table('clinic86.vitals', 'patient_id',
    '{"id": "non_phi", "hr": "vital_signs"}') IS NOT NULL AS protected;

-- 1. Type changes.  A built-in cast over every stored value: text to
-- regclass named each value in its error ("relation "positive" does not
-- exist"); numeric(9,0) rounded the results; an integer patient id as
-- numeric printed "8.0", which no consent recorded for patient 8 matched,
-- so a deny stopped applying.  Refused; a change that converts nothing is
-- let through.
SET ROLE reg86_owner;
ALTER TABLE clinic86.labs ALTER COLUMN hiv TYPE regclass;
ALTER TABLE clinic86.labs ALTER COLUMN value TYPE numeric(9,0);
ALTER TABLE clinic86.labs ALTER COLUMN hiv TYPE "char";
ALTER TABLE clinic86.vitals ALTER COLUMN patient_id TYPE numeric(10,1);
ALTER TABLE clinic86.vitals ALTER COLUMN patient_id TYPE bigint;
ALTER TABLE clinic86.labs ALTER COLUMN n TYPE varchar(20);   -- binary coercible: fine
ALTER TABLE clinic86.labs ALTER COLUMN n TYPE text;          -- fine
-- binary coercible, yet printed another way: an integer as regclass or oid
ALTER TABLE clinic86.vitals ALTER COLUMN patient_id TYPE regclass;
ALTER TABLE clinic86.vitals ALTER COLUMN patient_id TYPE oid;
RESET ROLE;
SELECT attname, atttypid::regtype FROM pg_attribute
 WHERE attrelid IN ('clinic86.labs'::regclass, 'clinic86.vitals'::regclass)
   AND attname IN ('hiv', 'value', 'patient_id', 'n') ORDER BY attrelid, attnum;

-- 2. Column defaults run in the agent's statement that inserts, with its
-- access: one that calls the owner's function, or a built-in that is not
-- immutable (pg_notify could hand on what the agent reads), is refused;
-- constants, nextval() and the clock are fine.
SET ROLE reg86_owner;
ALTER TABLE clinic86.labs ALTER COLUMN code SET DEFAULT clinic86.grab();
ALTER TABLE clinic86.labs ALTER COLUMN code SET DEFAULT
    CASE WHEN pg_notify('reg86', 'x') IS NULL THEN NULL END;
ALTER TABLE clinic86.labs ADD COLUMN g text DEFAULT clinic86.grab();
ALTER TABLE clinic86.labs ALTER COLUMN hiv SET DEFAULT 'unknown';
-- a constant of the owner's domain: that domain's CHECK would run too
ALTER TABLE clinic86.labs ALTER COLUMN code SET DEFAULT 'unknown';
ALTER TABLE clinic86.labs ADD COLUMN taken timestamptz DEFAULT now();
ALTER TABLE clinic86.labs ADD COLUMN k uuid DEFAULT gen_random_uuid();
CREATE SEQUENCE clinic86.s;
ALTER TABLE clinic86.labs ALTER COLUMN id SET DEFAULT nextval('clinic86.s');
ALTER TABLE clinic86.labs ALTER COLUMN value SET DEFAULT 0;
ALTER TABLE clinic86.labs ALTER COLUMN code DROP DEFAULT;   -- fine
-- a domain's CHECK inside the default runs what it calls
CREATE DOMAIN clinic86.dd AS text CHECK (clinic86.grab() IS NOT NULL);
ALTER TABLE clinic86.labs ALTER COLUMN hiv SET DEFAULT ('x'::clinic86.dd)::text;
-- a domain's default runs in the agent's INSERT too: refused on a domain
-- a protected column uses
ALTER DOMAIN clinic86.code_t SET DEFAULT clinic86.grab();
ALTER DOMAIN clinic86.code_t DROP DEFAULT;   -- fine
-- a new partition's own default
CREATE TABLE clinic86.ev (id int, patient_id text NOT NULL, note text) PARTITION BY RANGE (id);
RESET ROLE;
SELECT agentauth.protect_table('clinic86.ev', 'patient_id', '{"id": "non_phi", "note": "clinical_note"}') IS NOT NULL AS protected;
SET ROLE reg86_owner;
CREATE TABLE clinic86.ev1 PARTITION OF clinic86.ev (note DEFAULT clinic86.grab()) FOR VALUES FROM (0) TO (10);
CREATE TABLE clinic86.ev2 PARTITION OF clinic86.ev (note DEFAULT 'n/a') FOR VALUES FROM (10) TO (20);
RESET ROLE;
SELECT a.attrelid::regclass AS rel, a.attname, pg_get_expr(d.adbin, d.adrelid) AS default_expr
  FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
 WHERE d.adrelid IN ('clinic86.labs'::regclass, 'clinic86.ev2'::regclass) ORDER BY 1, 2;
SELECT to_regclass('clinic86.ev1') AS ev1;

-- 3. Foreign keys.  PostgreSQL checks them as the tables' owner, outside
-- the row check, on the columns their maker chose: a key from the
-- protected table to the owner's table of guesses told, guess by guess,
-- which patient had which HIV status; a key from an unprotected table to
-- a unique key of the protected one, which rows it holds.  Refused, NOT
-- VALID included, either way; a new partition's own key too.
SET ROLE reg86_owner;
ALTER TABLE clinic86.labs ADD CONSTRAINT probe FOREIGN KEY (patient_id, hiv)
    REFERENCES clinic86.guess NOT VALID;
ALTER TABLE clinic86.labs ADD COLUMN r text REFERENCES clinic86.guess (patient_id);
CREATE TABLE clinic86.mirror (id int REFERENCES clinic86.labs ON UPDATE CASCADE);
CREATE TABLE clinic86.mirror (id int);
ALTER TABLE clinic86.mirror ADD FOREIGN KEY (id) REFERENCES clinic86.labs NOT VALID;
CREATE TABLE clinic86.ev3 PARTITION OF clinic86.ev (FOREIGN KEY (patient_id) REFERENCES clinic86.guess (patient_id))
    FOR VALUES FROM (20) TO (30);
-- a table attached as a partition, or made in a protected schema, with
-- a key or a default of its own: the same, refused
CREATE TABLE clinic86.ev4 (id int, patient_id text NOT NULL, note text, hiv text,
    FOREIGN KEY (patient_id, hiv) REFERENCES clinic86.guess);
ALTER TABLE clinic86.ev ATTACH PARTITION clinic86.ev4 FOR VALUES FROM (30) TO (40);
CREATE TABLE clinic86.ev5 (id int, patient_id text NOT NULL, note text DEFAULT clinic86.grab());
ALTER TABLE clinic86.ev ATTACH PARTITION clinic86.ev5 FOR VALUES FROM (40) TO (50);
CREATE TABLE clinic86.ev6 (id int, patient_id text NOT NULL, note text DEFAULT 'n/a');
ALTER TABLE clinic86.ev ATTACH PARTITION clinic86.ev6 FOR VALUES FROM (50) TO (60);   -- fine
RESET ROLE;
CREATE SCHEMA phi86 AUTHORIZATION reg86_owner;
SELECT agentauth.protect_schema('phi86', 'patient_id', '{"id": "non_phi"}', 'lab') IS NOT NULL AS protected;
SET ROLE reg86_owner;
CREATE TABLE phi86.t1 (id int, patient_id text NOT NULL, hiv text,
    FOREIGN KEY (patient_id, hiv) REFERENCES clinic86.guess);
CREATE TABLE phi86.t2 (id int, patient_id text NOT NULL, hiv text DEFAULT clinic86.grab());
CREATE TABLE phi86.t3 (id int, patient_id text NOT NULL, hiv text DEFAULT 'unknown');   -- fine
-- moved in: the same
CREATE TABLE clinic86.mv (id int, patient_id text NOT NULL, hiv text,
    FOREIGN KEY (patient_id, hiv) REFERENCES clinic86.guess);
ALTER TABLE clinic86.mv SET SCHEMA phi86;
SELECT to_regclass('phi86.t1') AS t1, to_regclass('phi86.t2') AS t2, to_regclass('phi86.t3') AS t3;
-- keys between the owner's unprotected tables: none of agentauth's business
ALTER TABLE clinic86.mirror ADD PRIMARY KEY (id);
CREATE TABLE clinic86.mirror2 (id int REFERENCES clinic86.mirror);
RESET ROLE;
SELECT conrelid::regclass AS rel, conname FROM pg_constraint
 WHERE contype = 'f' AND connamespace = 'clinic86'::regnamespace ORDER BY 1, 2;

-- 4. A superuser may do each (its own decision, made as itself).
ALTER TABLE clinic86.labs ALTER COLUMN value TYPE numeric(12,2);
ALTER TABLE clinic86.labs ALTER COLUMN code SET DEFAULT clinic86.grab();
ALTER TABLE clinic86.mirror ADD FOREIGN KEY (id) REFERENCES clinic86.labs NOT VALID;
SELECT format_type(atttypid, atttypmod) AS value_type FROM pg_attribute
 WHERE attrelid = 'clinic86.labs'::regclass AND attname = 'value';
SELECT count(*) AS keys_to_labs FROM pg_constraint WHERE confrelid = 'clinic86.labs'::regclass;
-- a default a superuser set on a protected parent: a new partition copies
-- it, and a table attached with the same default matches it -- neither is
-- the owner's code
ALTER TABLE clinic86.ev ALTER COLUMN note SET DEFAULT clinic86.grab();
SET ROLE reg86_owner;
CREATE TABLE clinic86.ev7 PARTITION OF clinic86.ev FOR VALUES FROM (60) TO (70);
CREATE TABLE clinic86.ev8 (id int, patient_id text NOT NULL, note text DEFAULT clinic86.grab());
ALTER TABLE clinic86.ev ATTACH PARTITION clinic86.ev8 FOR VALUES FROM (70) TO (80);
RESET ROLE;
SELECT count(*) AS partitions FROM pg_inherits WHERE inhparent = 'clinic86.ev'::regclass;

RESET client_min_messages;
SET client_min_messages = warning;
SELECT agentauth.unprotect_table('clinic86.labs', 'test over') IS NOT NULL AS unprotected;
SELECT agentauth.unprotect_table('clinic86.vitals', 'test over') IS NOT NULL AS unprotected;
SELECT agentauth.unprotect_table('clinic86.ev', 'test over') IS NOT NULL AS unprotected;
SELECT agentauth.unprotect_table('phi86.t3', 'test over') IS NOT NULL AS unprotected;
SELECT agentauth.unprotect_schema('phi86', 'test over') IS NOT NULL AS unprotected;
DROP SCHEMA phi86 CASCADE;
DROP SCHEMA clinic86 CASCADE;
DROP ROLE reg86_owner;
RESET client_min_messages;
