-- Partitioned tables (issue 13, item 2): protect_table on a partitioned
-- table protects every partition, at every level, present and future; a
-- query through the parent or a partition is checked and recorded under the
-- relation it names; pruning and the patient index keep working.
\set SHOW_CONTEXT never
CREATE ROLE reg49_owner LOGIN;
CREATE ROLE reg49_agent LOGIN;
CREATE SCHEMA reg49 AUTHORIZATION reg49_owner;
GRANT USAGE ON SCHEMA reg49 TO reg49_agent;
SET ROLE reg49_owner;
CREATE TABLE reg49.obs (id int, patient_id text NOT NULL, site text NOT NULL,
                        value text, note text) PARTITION BY LIST (site);
CREATE TABLE reg49.obs_a PARTITION OF reg49.obs FOR VALUES IN ('A');
-- two levels: site B is partitioned again
CREATE TABLE reg49.obs_b PARTITION OF reg49.obs FOR VALUES IN ('B') PARTITION BY LIST (patient_id);
CREATE TABLE reg49.obs_b1 PARTITION OF reg49.obs_b FOR VALUES IN ('R49-P1');
CREATE TABLE reg49.obs_b2 PARTITION OF reg49.obs_b DEFAULT;
INSERT INTO reg49.obs VALUES (1, 'R49-P1', 'A', 'v1', 'n1'), (2, 'R49-P2', 'A', 'v2', 'n2'),
                             (3, 'R49-P1', 'B', 'v3', 'n3'), (4, 'R49-P2', 'B', 'v4', 'n4');
GRANT SELECT, INSERT, UPDATE, DELETE ON reg49.obs, reg49.obs_a, reg49.obs_b, reg49.obs_b1 TO reg49_agent;
RESET ROLE;

-- a partition alone is refused (1.0 refused the parent as well)
SELECT agentauth.protect_table('reg49.obs_a', 'patient_id', '{"value": "lab", "note": "clinical_note"}', 'non_phi');
SELECT agentauth.protect_table('reg49.obs', 'patient_id', '{"value": "lab", "note": "clinical_note"}', 'non_phi');
SELECT agentauth.protect_table('reg49.obs_b1', 'patient_id', '{}', 'lab');
SELECT agentauth.require_approval('reg49.obs_b', '{insert}');
-- every partition carries the parent's classification, row security and triggers
SELECT relation, string_agg(column_name || '=' || coalesce(data_class, '-'), ', ' ORDER BY column_name) AS classes
  FROM agentauth.protected_columns WHERE relation::text LIKE 'reg49.%' GROUP BY relation ORDER BY relation::text;
SELECT c.oid::regclass AS relation, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT string_agg(g.tgname || ':' || g.tgenabled::text, ',' ORDER BY g.tgname)
          FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname LIKE 'agentauth%') AS triggers
  FROM pg_class c WHERE c.relnamespace = 'reg49'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY c.oid::regclass::text;
SELECT relation, detail FROM agentauth.audit_log
 WHERE event = 'table_protected' AND relation LIKE 'reg49.%' ORDER BY seq;

SELECT agentauth.register_agent('reg49-agent', 'reg49_agent', 'Obs AI', '{CAREMGT}',
    '{lab:read,lab:write,clinical_note:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'CAREMGT', scopes => '{lab:read,lab:write}') AS tok \gset
SELECT agentauth.record_consent('R49-P1', 'permit', '{CAREMGT}', actions => '{read,write}') IS NOT NULL AS p1;

SET SESSION AUTHORIZATION reg49_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- through the parent, and directly: the same rows are withheld
SELECT tableoid::regclass, id, patient_id, value FROM reg49.obs ORDER BY id;
SELECT id, patient_id, value FROM reg49.obs_a ORDER BY id;
SELECT id, patient_id, value FROM reg49.obs_b ORDER BY id;
SELECT id, patient_id, value FROM reg49.obs_b1 ORDER BY id;
-- column scope, through either
SELECT note FROM reg49.obs;
SELECT note FROM reg49.obs_a;
-- writes routed to partitions; moved between partitions
INSERT INTO reg49.obs (id, patient_id, site, value) VALUES (5, 'R49-P1', 'A', 'v5') RETURNING tableoid::regclass, id;
INSERT INTO reg49.obs (id, patient_id, site, value) VALUES (6, 'R49-P2', 'A', 'v6');
INSERT INTO reg49.obs_a (id, patient_id, site, value) VALUES (6, 'R49-P2', 'A', 'v6');
UPDATE reg49.obs SET site = 'B' WHERE id = 5 RETURNING tableoid::regclass, id;
UPDATE reg49.obs SET value = 'x' WHERE patient_id = 'R49-P2';
-- DELETE removes every column: note too, out of write scope
DELETE FROM reg49.obs_b1 WHERE id = 5;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- require_approval() on the parent reaches the partitions
SELECT agentauth.require_approval('reg49.obs', '{insert}');
SELECT relation, requires_approval FROM agentauth.protected_columns
 WHERE relation::text LIKE 'reg49.%' AND patient_column ORDER BY relation::text;
SET SESSION AUTHORIZATION reg49_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
INSERT INTO reg49.obs_b1 (id, patient_id, site, value) VALUES (7, 'R49-P1', 'B', 'v7');
INSERT INTO reg49.obs (id, patient_id, site, value) VALUES (7, 'R49-P1', 'B', 'v7');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT agentauth.require_approval('reg49.obs', '{}');
-- records name the relation the statement named: the parent or the partition
SELECT event, relation, patient, action, row_count, outcome FROM agentauth.audit_log
 WHERE principal = :'agent' AND event IN ('access', 'denied') ORDER BY seq;

-- the owner: no session, no rows, through either; the DDL guard of a
-- protected table holds for every partition
SET ROLE reg49_owner;
SELECT count(*) FROM reg49.obs;
SELECT count(*) FROM reg49.obs_b1;
ALTER TABLE reg49.obs_a DISABLE ROW LEVEL SECURITY;
ALTER TABLE reg49.obs_b1 NO FORCE ROW LEVEL SECURITY;
ALTER TABLE reg49.obs_a RENAME TO obs_old;
ALTER TABLE reg49.obs_b1 SET SCHEMA public;
DROP TABLE reg49.obs_b2;
CREATE TRIGGER leak BEFORE INSERT ON reg49.obs_a
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
DROP TRIGGER agentauth_replicated_truncate ON reg49.obs_b1;
-- a new partition is protected at creation, at any level
CREATE TABLE reg49.obs_c PARTITION OF reg49.obs FOR VALUES IN ('C');
CREATE TABLE reg49.obs_b3 PARTITION OF reg49.obs_b FOR VALUES IN ('R49-P3');
-- ... without code of its owner's
CREATE FUNCTION reg49.grab(VARIADIC v text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE TABLE reg49.obs_d PARTITION OF reg49.obs (CHECK (reg49.grab(note))) FOR VALUES IN ('D');
CREATE TABLE reg49.obs_d PARTITION OF reg49.obs FOR VALUES IN ('D') PARTITION BY LIST ((reg49.grab(note)));
-- an attached table is protected too, unless it brings code
CREATE TABLE reg49.obs_e (id int, patient_id text NOT NULL, site text NOT NULL, value text, note text);
INSERT INTO reg49.obs_e VALUES (8, 'R49-P1', 'E', 'v8', 'n8');
ALTER TABLE reg49.obs_e ADD CONSTRAINT leak CHECK (reg49.grab(note));
ALTER TABLE reg49.obs ATTACH PARTITION reg49.obs_e FOR VALUES IN ('E');
ALTER TABLE reg49.obs_e DROP CONSTRAINT leak;
CREATE INDEX ON reg49.obs_e ((reg49.grab(note)));
ALTER TABLE reg49.obs ATTACH PARTITION reg49.obs_e FOR VALUES IN ('E');
DROP INDEX reg49.obs_e_grab_idx;
CREATE TRIGGER leak BEFORE INSERT ON reg49.obs_e
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
ALTER TABLE reg49.obs ATTACH PARTITION reg49.obs_e FOR VALUES IN ('E');
DROP TRIGGER leak ON reg49.obs_e;
ALTER TABLE reg49.obs ATTACH PARTITION reg49.obs_e FOR VALUES IN ('E');
SELECT count(*) FROM reg49.obs_e;
-- a protected table joins only a parent of the same classification
CREATE TABLE reg49.other (id int, patient_id text NOT NULL, site text NOT NULL, value text, note text);
RESET ROLE;
SELECT agentauth.protect_table('reg49.other', 'patient_id', '{}', 'lab');
SET ROLE reg49_owner;
ALTER TABLE reg49.obs ATTACH PARTITION reg49.other FOR VALUES IN ('F');
-- nor an unprotected parent (rows read through it would escape the checks)
CREATE TABLE reg49.loose (id int, patient_id text NOT NULL, site text NOT NULL, value text, note text)
    PARTITION BY LIST (site);
ALTER TABLE reg49.loose ATTACH PARTITION reg49.other FOR VALUES IN ('F');
-- DETACH leaves the partition a protected table of its own, triggers and all
ALTER TABLE reg49.obs DETACH PARTITION reg49.obs_c;
SELECT count(*) FROM reg49.obs_c;
RESET ROLE;
SELECT c.oid::regclass AS relation, c.relispartition, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_seclabel s WHERE s.objoid = c.oid AND s.provider = 'agentauth') AS labels,
       (SELECT string_agg(g.tgname || ':' || g.tgenabled::text, ',' ORDER BY g.tgname)
          FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname LIKE 'agentauth%') AS triggers
  FROM pg_class c WHERE c.relnamespace = 'reg49'::regnamespace AND c.relkind IN ('r', 'p')
 ORDER BY c.oid::regclass::text;
-- and it can come back: its own trigger makes way for the parent's clone
SET ROLE reg49_owner;
ALTER TABLE reg49.obs ATTACH PARTITION reg49.obs_c FOR VALUES IN ('C');
RESET ROLE;
SELECT string_agg(g.tgname || ':' || (g.tgparentid <> 0), ',' ORDER BY g.tgname) AS obs_c_triggers
  FROM pg_trigger g WHERE g.tgrelid = 'reg49.obs_c'::regclass AND g.tgname LIKE 'agentauth%';

-- a partition whose labels went missing (set one by one, or half restored)
-- fails closed: protected, nothing classified; it cannot be detached
SELECT agentauth._set_label('reg49.obs_a', NULL, NULL);
SET SESSION AUTHORIZATION reg49_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT id, value FROM reg49.obs_a;
SELECT id FROM reg49.obs_a;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
ALTER TABLE reg49.obs DETACH PARTITION reg49.obs_a;
-- so does an unprotected partitioned table holding a protected partition
CREATE TABLE reg49.loose_g PARTITION OF reg49.loose FOR VALUES IN ('G');
SECURITY LABEL FOR agentauth ON TABLE reg49.loose_g IS 'patient=patient_id';
SET ROLE reg49_owner;
SELECT count(*) FROM reg49.loose;
RESET ROLE;
SELECT agentauth.protect_table('reg49.obs', 'patient_id', '{"value": "lab", "note": "clinical_note"}', 'non_phi');
SELECT relation, count(data_class) AS classified FROM agentauth.protected_columns
 WHERE relation = 'reg49.obs_a'::regclass GROUP BY relation;

-- unprotect_table: not a partition alone; the parent unprotects the tree
SELECT agentauth.unprotect_table('reg49.obs_a', 'test');
-- (the partitions' records name them as the log does, whatever the
-- caller's quote_all_identifiers: 1.1, found in the class of a review's)
SET quote_all_identifiers = on;
SELECT agentauth.unprotect_table('reg49.obs', 'test');
RESET quote_all_identifiers;
SELECT count(*) AS labels FROM pg_seclabel s JOIN pg_class c ON c.oid = s.objoid
 WHERE c.relnamespace = 'reg49'::regnamespace AND s.provider = 'agentauth'
   AND c.relname NOT IN ('other', 'loose_g');
SELECT count(*) AS with_row_security FROM pg_class c
 WHERE c.relnamespace = 'reg49'::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relrowsecurity AND c.relname NOT IN ('other', 'loose_g');
SELECT count(*) AS triggers FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
 WHERE c.relnamespace = 'reg49'::regnamespace AND g.tgname LIKE 'agentauth%' AND c.relname NOT IN ('other', 'loose_g');
SELECT relation, detail->>'via' AS via FROM agentauth.audit_log
 WHERE event = 'table_unprotected' AND relation LIKE 'reg49.%' ORDER BY seq;

-- examples/ehr: ehr.vitals, partitioned by month
\set patients 40
\set ECHO none
\i examples/ehr/schema.sql
\i examples/ehr/generate.sql
\set ECHO all
SELECT agentauth.protect_table('ehr.vitals', 'patient_id',
    '{"vital_id": "non_phi", "taken_at": "non_phi"}', 'vital_signs');
SELECT count(DISTINCT relation) AS protected_relations FROM agentauth.protected_columns
 WHERE relation::text LIKE 'ehr.vitals%';
CREATE ROLE reg49_nurse LOGIN;
GRANT USAGE ON SCHEMA ehr TO reg49_nurse;
GRANT SELECT, INSERT ON ehr.vitals, ehr.vitals_2025_03 TO reg49_nurse;
SELECT agentauth.register_agent('reg49-nurse', 'reg49_nurse', 'Vitals AI', '{CAREMGT}',
    '{vital_signs:read,vital_signs:write}') AS nurse \gset
SELECT agentauth.issue_token(:'nurse', 'CAREMGT') AS ntok \gset
SELECT agentauth.record_consent('17', 'permit', '{CAREMGT}', actions => '{read,write}') IS NOT NULL AS p17;
SELECT agentauth.record_consent('18', 'permit', '{CAREMGT}') IS NOT NULL AS p18;
-- pruning and the patient index, outside a session (EXPLAIN only): one
-- partition scanned, by the index, the row check on top
CREATE FUNCTION pg_temp.reg49_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
        RETURN NEXT regexp_replace(l, '''\d+''::oid', '<relid>', 'g');
    END LOOP;
END
$$;
SET ROLE reg49_nurse;
SET enable_seqscan = off;
SELECT pg_temp.reg49_plan($$SELECT heart_rate FROM ehr.vitals
 WHERE patient_id = 17 AND taken_at >= '2025-03-01' AND taken_at < '2025-04-01'$$);
RESET enable_seqscan;
RESET ROLE;
SET SESSION AUTHORIZATION reg49_nurse;
SELECT agentauth.begin_session(:'ntok') IS NOT NULL AS began;
SELECT patient_id, count(*) FROM ehr.vitals GROUP BY patient_id ORDER BY patient_id;
SELECT patient_id, count(*) FROM ehr.vitals_2025_03 GROUP BY patient_id ORDER BY patient_id;
SELECT count(*) FROM ehr.vitals WHERE taken_at >= '2025-03-01' AND taken_at < '2025-04-01';
INSERT INTO ehr.vitals (vital_id, patient_id, taken_at, heart_rate)
VALUES (990001, 17, '2025-03-15 08:00+00', 72) RETURNING tableoid::regclass;
INSERT INTO ehr.vitals (vital_id, patient_id, taken_at, heart_rate)
VALUES (990002, 18, '2025-03-15 08:00+00', 72);
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- a month added later is protected; January detached stays protected
CREATE TABLE ehr.vitals_2026_01 PARTITION OF ehr.vitals
    FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
ALTER TABLE ehr.vitals DETACH PARTITION ehr.vitals_2025_01;
SET SESSION AUTHORIZATION reg49_nurse;
SELECT agentauth.begin_session(:'ntok') IS NOT NULL AS began;
INSERT INTO ehr.vitals (vital_id, patient_id, taken_at, heart_rate)
VALUES (990003, 17, '2026-01-10 08:00+00', 70) RETURNING tableoid::regclass;
SELECT count(*) FROM ehr.vitals WHERE taken_at < '2025-02-01';
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT relation, count(*) AS columns FROM agentauth.protected_columns
 WHERE relation::text IN ('ehr.vitals_2026_01', 'ehr.vitals_2025_01') GROUP BY relation ORDER BY relation::text;
SELECT event, relation, patient, action, row_count FROM agentauth.audit_log
 WHERE principal = :'nurse' AND event = 'access' AND patient = '17' ORDER BY seq;
SELECT ok FROM agentauth.verify_audit();

-- a superuser drops the example (recorded as table_unprotected)
SET client_min_messages = warning;
DROP SCHEMA ehr, ref, derived CASCADE;
DROP SCHEMA reg49 CASCADE;
RESET client_min_messages;
