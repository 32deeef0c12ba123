-- Owner code over the rows of a protected table (issue 12, item 1).  A
-- table's owner who is not a superuser may not make DDL or maintenance run
-- code of its own -- functions, domains, types, casts -- over the existing
-- rows of a protected table: refused (42501), whatever the statement.  A
-- superuser may; a function of a non-superuser that runs then is recorded
-- as privileged_access.
\set SHOW_CONTEXT never
SET client_min_messages = notice;
CREATE ROLE reg82_owner LOGIN;
CREATE SCHEMA clinic82 AUTHORIZATION reg82_owner;
SET ROLE reg82_owner;
CREATE TYPE clinic82.mood AS ENUM ('calm', 'tense');
CREATE DOMAIN clinic82.code_t AS text;
CREATE TABLE clinic82.orders (patient_id text NOT NULL, drug text, mood clinic82.mood,
    code clinic82.code_t, ref text);
INSERT INTO clinic82.orders VALUES ('R82-P1', 'abacavir', 'calm', 'c1', 'x'),
                                   ('R82-P2', 'tenofovir', 'tense', 'c2', 'x');
-- made before protection: a constraint not yet validated
CREATE FUNCTION clinic82.peek(v text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE
    AS $$BEGIN RAISE NOTICE 'peek: %', v; RETURN true; END$$;
ALTER TABLE clinic82.orders ADD CONSTRAINT pre CHECK (clinic82.peek(drug)) NOT VALID;
CREATE TABLE clinic82.refs (ref text PRIMARY KEY);
INSERT INTO clinic82.refs VALUES ('calm'), ('tense'), ('x');
-- made before protection: a BRIN index on the owner's function
CREATE TABLE clinic82.readings (patient_id text NOT NULL, reading text);
INSERT INTO clinic82.readings VALUES ('R82-P1', 'positive'), ('R82-P2', 'negative');
CREATE FUNCTION clinic82.echo(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE
    AS $$BEGIN RAISE NOTICE 'echo: %', v; RETURN v; END$$;
CREATE INDEX readings_brin ON clinic82.readings USING brin (clinic82.echo(reading))
    WITH (pages_per_range = 1);
CREATE INDEX readings_gin ON clinic82.readings USING gin (to_tsvector('simple', reading));
-- made before protection: two triggers that do not fire
CREATE FUNCTION clinic82.told() RETURNS trigger LANGUAGE plpgsql
    AS $$BEGIN RAISE NOTICE 'told: %', NEW.drug; RETURN NEW; END$$;
CREATE TRIGGER pre_off AFTER UPDATE ON clinic82.orders
    FOR EACH ROW EXECUTE FUNCTION clinic82.told();
ALTER TABLE clinic82.orders DISABLE TRIGGER pre_off;
CREATE TRIGGER pre_replica AFTER UPDATE ON clinic82.orders
    FOR EACH ROW EXECUTE FUNCTION clinic82.told();
ALTER TABLE clinic82.orders ENABLE REPLICA TRIGGER pre_replica;
RESET ROLE;
SELECT agentauth.protect_table('clinic82.orders', 'patient_id',
    '{"drug": "medication", "mood": "mental_health", "code": "lab", "ref": "non_phi"}');

-- a trigger inert when the table was protected stays inert: enabling it
-- attaches its code, as CREATE TRIGGER would (review r37: enabled, it sent
-- on a column the writing agent may not read)
SET ROLE reg82_owner;
ALTER TABLE clinic82.orders ENABLE TRIGGER pre_off;
ALTER TABLE clinic82.orders ENABLE ALWAYS TRIGGER pre_replica;
ALTER TABLE clinic82.orders ENABLE TRIGGER USER;
RESET ROLE;
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'clinic82.orders'::regclass AND tgname LIKE 'pre_%' ORDER BY 1;

-- a BRIN summary by a function call runs the index's code over every row
-- of the range: refused on a protected table, to everyone (review r37: the
-- owner's function saw every row, unrefused and unrecorded), and so is a
-- GIN pending list's cleanup (the operator class over the pending keys);
-- VACUUM does both with the checks of maintenance
SELECT agentauth.protect_table('clinic82.readings', 'patient_id', '{"reading": "hiv"}');
SET ROLE reg82_owner;
SELECT brin_desummarize_range('clinic82.readings_brin', 0);
SELECT brin_summarize_range('clinic82.readings_brin', 0);
SELECT brin_summarize_new_values('clinic82.readings_brin');
SELECT brin_summarize_new_values(c.oid) FROM pg_class c WHERE c.relname = 'readings_brin';
SELECT gin_clean_pending_list('clinic82.readings_gin');
VACUUM clinic82.readings;
RESET ROLE;
SELECT brin_summarize_range('clinic82.readings_brin', 0);
DROP TABLE clinic82.readings;

-- the issue's reproducer: a domain whose CHECK calls the owner's function
SET ROLE reg82_owner;
CREATE TABLE clinic82.stash (v text);
CREATE FUNCTION clinic82.stash_it(v text) RETURNS boolean LANGUAGE sql
  AS $$INSERT INTO clinic82.stash VALUES (v) RETURNING true$$;
CREATE DOMAIN clinic82.stash_text AS text CHECK (clinic82.stash_it(VALUE));
ALTER TABLE clinic82.orders ALTER COLUMN patient_id TYPE clinic82.stash_text,
                            ALTER COLUMN drug TYPE clinic82.stash_text;
-- a domain whose CHECK is built of built-in functions only
CREATE DOMAIN clinic82.copy_text AS text
    CHECK (set_config('reg82.copy', coalesce(current_setting('reg82.copy', true), '') || VALUE, false) IS NOT NULL);
ALTER TABLE clinic82.orders ALTER COLUMN drug TYPE clinic82.copy_text;
-- a domain over it, an array of it, a composite type holding it
CREATE DOMAIN clinic82.copy2 AS clinic82.copy_text;
ALTER TABLE clinic82.orders ALTER COLUMN drug TYPE clinic82.copy2;
ALTER TABLE clinic82.orders ALTER COLUMN drug TYPE clinic82.copy_text[] USING NULL;
CREATE TYPE clinic82.wrap AS (v clinic82.copy_text);
ALTER TABLE clinic82.orders ALTER COLUMN drug TYPE clinic82.wrap;
-- an owner's type with an assignment cast from the column's type: the
-- cast's function would run over every row
CREATE FUNCTION clinic82.mood_text(m clinic82.mood) RETURNS text LANGUAGE plpgsql
    AS $$BEGIN RAISE NOTICE 'cast: %', m; RETURN format('%s', m); END$$;
CREATE CAST (clinic82.mood AS text) WITH FUNCTION clinic82.mood_text(clinic82.mood) AS IMPLICIT;
ALTER TABLE clinic82.orders ALTER COLUMN mood TYPE text;
-- (a foreign key's validation reads the table under row security)
ALTER TABLE clinic82.orders ADD FOREIGN KEY (mood) REFERENCES clinic82.refs;
-- USING, CHECK, generated columns, expression indexes: refused since 1.0
ALTER TABLE clinic82.orders ALTER COLUMN drug TYPE text USING (drug || clinic82.peek(drug)::text);
ALTER TABLE clinic82.orders ADD CONSTRAINT leak CHECK (clinic82.peek(drug));
ALTER TABLE clinic82.orders ADD COLUMN g boolean GENERATED ALWAYS AS (clinic82.peek(drug)) STORED;
CREATE INDEX ON clinic82.orders ((clinic82.peek(drug)));
-- validating a constraint made before protection
ALTER TABLE clinic82.orders VALIDATE CONSTRAINT pre;
-- a new CHECK on a domain that a protected column uses, or validating one
ALTER DOMAIN clinic82.code_t ADD CONSTRAINT leak
    CHECK (set_config('reg82.copy', VALUE, false) IS NOT NULL);
ALTER DOMAIN clinic82.code_t ADD CONSTRAINT leak
    CHECK (clinic82.peek(VALUE)) NOT VALID;
ALTER DOMAIN clinic82.code_t VALIDATE CONSTRAINT leak;
-- nothing ran
SELECT count(*) AS stashed FROM clinic82.stash;
SELECT current_setting('reg82.copy', true) AS copied;
SELECT conname, convalidated FROM pg_constraint
 WHERE conrelid = 'clinic82.orders'::regclass OR contypid = 'clinic82.code_t'::regtype ORDER BY 1;
-- plain indexes, statistics: fine; a type change that converts the values
-- (text to varchar(20): a length check) is refused since 1.1 (sql/86)
ALTER TABLE clinic82.orders ALTER COLUMN ref TYPE varchar(20);
CREATE INDEX orders_ref ON clinic82.orders (ref);
ANALYZE clinic82.orders;
REINDEX TABLE clinic82.orders;
RESET ROLE;

-- Code a superuser attached (or that existed before protection) calls the
-- owner's functions, which the owner may replace at will: every statement
-- that evaluates it over the rows is refused to the owner.
CREATE FUNCTION clinic82.peek_sql(v text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$SELECT lower(v)$$;
ALTER FUNCTION clinic82.peek_sql(text) OWNER TO reg82_owner;
CREATE INDEX orders_peek ON clinic82.orders ((clinic82.peek(drug)));
CREATE INDEX orders_peek_sql ON clinic82.orders ((clinic82.peek_sql(drug)));
SET ROLE reg82_owner;
REINDEX INDEX clinic82.orders_peek;
REINDEX INDEX clinic82.orders_peek_sql;   -- an inlinable SQL function too
REINDEX TABLE clinic82.orders;
REINDEX SCHEMA clinic82;
CLUSTER clinic82.orders USING orders_ref;
VACUUM FULL clinic82.orders;
VACUUM (ANALYZE) clinic82.orders;
ANALYZE clinic82.orders;
-- rewrites rebuild the indexes (a type change is refused before it since
-- 1.1; ADD COLUMN with a volatile default still rewrites)
ALTER TABLE clinic82.orders ALTER COLUMN drug TYPE varchar(100);
ALTER TABLE clinic82.orders ADD COLUMN n int DEFAULT (random() * 0)::int;
-- the same on an unprotected table is none of agentauth's business
CREATE TABLE clinic82.scratch (v text);
INSERT INTO clinic82.scratch VALUES ('a');
CREATE INDEX ON clinic82.scratch ((clinic82.peek(v)));
REINDEX TABLE clinic82.scratch;
ANALYZE clinic82.scratch;
DROP TABLE clinic82.scratch;
RESET ROLE;

-- a superuser may, and the owner's function that ran is recorded
SELECT coalesce(max(seq), 0) AS seq82 FROM agentauth.audit_log \gset
REINDEX INDEX clinic82.orders_peek;
ALTER TABLE clinic82.orders ALTER COLUMN mood TYPE text;
SELECT event, db_role, relation, outcome, detail->>'reason' AS reason,
       detail->>'command' AS command, detail->>'function' AS function,
       detail->>'function_owner' AS function_owner
  FROM agentauth.audit_log
 WHERE seq > :seq82 AND relation = 'clinic82.orders' ORDER BY seq;

SET client_min_messages = warning;
DROP SCHEMA clinic82 CASCADE;
RESET client_min_messages;
DROP ROLE reg82_owner;
