-- What runs over a protected table's rows before the row check.
-- 1. A statement's own conditions: PostgreSQL lets a cheap leakproof one
--    go first, and some leakproof functions raise errors -- in a CASE,
--    for exactly the withheld rows a question picks (1.1: an exact answer
--    per probe about a patient without consent, and no record of it).
-- 2. A restrictive policy of pg_policy: PostgreSQL runs it before the
--    hook's check, over every row (1.1: an owner's function there read
--    every patient's every column).
-- 3. A session that begins or ends inside a statement reading protected
--    rows (1.1: the rows read before were recorded under the new one).
\set SHOW_CONTEXT never
CREATE ROLE qo_agent LOGIN;
CREATE ROLE qo_owner LOGIN;
CREATE SCHEMA qo AUTHORIZATION qo_owner;
GRANT USAGE ON SCHEMA qo TO qo_agent;
SET ROLE qo_owner;
CREATE TABLE qo.labs (id int PRIMARY KEY, patient_id text NOT NULL, code text, value numeric,
                      hiv_status text, ccode text COLLATE "C");
INSERT INTO qo.labs VALUES (1, 'QO-P1', '718-7', 13.5, 'negative', 'a'),
                           (2, 'QO-P1', '2345-7', 98, 'negative', 'b'),
                           (3, 'QO-P2', '718-7', 11.0, 'positive', 'c'),
                           (4, 'QO-P3', '718-7', 12.2, 'positive', 'd');
GRANT SELECT, UPDATE ON qo.labs TO qo_agent;
CREATE TABLE qo.vitals (id int PRIMARY KEY, patient_id bigint NOT NULL, hr int);
INSERT INTO qo.vitals VALUES (1, 881, 60), (2, 882, 70);
GRANT SELECT, UPDATE ON qo.vitals TO qo_agent;
RESET ROLE;
SELECT agentauth.protect_table('qo.vitals', 'patient_id', '{"id": "non_phi", "hr": "lab"}');
SELECT agentauth.record_consent('881', 'permit', '{TREAT}', '{lab}', '{read,update}') IS NOT NULL AS consented;
SELECT agentauth.record_consent('882', 'permit', '{TREAT}', '{lab}', '{read}') IS NOT NULL AS read_only;
SELECT agentauth.protect_table('qo.labs', 'patient_id',
    '{"id": "non_phi", "code": "lab", "value": "lab", "ccode": "lab", "hiv_status": "hiv"}');
SELECT agentauth.register_agent('qo agent', 'qo_agent', 'qo team', '{TREAT}', '{lab:read,lab:write}') AS agent \gset
SELECT agentauth.record_consent('QO-P1', 'permit', '{TREAT}', '{lab}', '{read,update}') IS NOT NULL AS consented;
SELECT agentauth.record_consent('QO-P2', 'permit', '{TREAT}', '{lab}', '{read}') IS NOT NULL AS read_only;
SELECT agentauth.record_consent('QO-P3', 'deny') IS NOT NULL AS refused;
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'Dr A') AS tok_a \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'Dr B') AS tok_b \gset
SELECT max(seq) AS mark FROM agentauth.audit_log \gset

-- 1. Probes that fail only for the rows they pick: withheld rows never
-- reach them, so they answer nothing
\c - qo_agent
SELECT agentauth.begin_session(:'tok_a') IS NOT NULL AS began;
CREATE COLLATION pg_temp.nd (provider = icu, locale = 'und', deterministic = false);
SELECT count(*) FROM qo.labs WHERE patient_id = 'QO-P3';
-- a leakproof function that fails under a nondeterministic collation
SELECT count(*) FROM qo.labs
 WHERE CASE WHEN patient_id = 'QO-P3' AND code = '718-7'
            THEN starts_with(code COLLATE pg_temp.nd, '') ELSE false END;
SELECT count(*) FROM qo.labs
 WHERE CASE WHEN patient_id = 'QO-P3' AND code < '719'
            THEN starts_with(code COLLATE pg_temp.nd, '') ELSE false END;
-- the same as an operator, with no CASE: it fails on the first row it sees
SELECT count(*) FROM qo.labs WHERE patient_id = 'QO-P3' AND code COLLATE pg_temp.nd ^@ '7';
-- a comparison of two columns of different collations
SELECT count(*) FROM qo.labs WHERE patient_id = 'QO-P3' AND ccode = code;
-- an array of mismatched dimensions, built from the row
SELECT count(*) FROM qo.labs
 WHERE CASE WHEN patient_id = 'QO-P3' THEN ARRAY[ARRAY[1, 2], ARRAY[id]] IS NULL ELSE false END;
-- a sub-plan's value, computed when the first row reaches it
SELECT count(*) FROM qo.labs
 WHERE patient_id = 'QO-P3' AND code = (SELECT x::text FROM generate_series(1, 2) x);
-- a PL/pgSQL variable, fetched when a row reaches it: its type changed
-- since the plan was made, so the fetch fails
DO $$
DECLARE r record; n int; i int; guess text; answers text := '';
BEGIN
  FOREACH guess IN ARRAY ARRAY['2345-7', '718-7', '999-9'] LOOP
    BEGIN
      FOR i IN 1 .. 2 LOOP
        IF i = 1 THEN SELECT 'x'::text AS code INTO r; ELSE SELECT 1 AS code INTO r; END IF;
        SELECT count(*) INTO n FROM qo.labs
         WHERE patient_id = 'QO-P3' AND (code < guess OR code > guess OR code = r.code);
      END LOOP;
      answers := answers || ' ' || n;
    EXCEPTION WHEN datatype_mismatch THEN
      answers := answers || ' error';
    END;
  END LOOP;
  RAISE NOTICE 'answers:%', answers;
END $$;
-- the same through a FOR loop and a cursor: PL/pgSQL copies the variables
-- at the cursor's open, and PostgreSQL checks their types at every row
DO $$
DECLARE r record; x record; c refcursor; i int; guess text; answers text := '';
BEGIN
  FOREACH guess IN ARRAY ARRAY['2345-7', '718-7', '999-9'] LOOP
    BEGIN
      FOR i IN 1 .. 2 LOOP
        IF i = 1 THEN SELECT 'x'::text AS code INTO r; ELSE SELECT 1 AS code INTO r; END IF;
        FOR x IN SELECT id FROM qo.labs
                  WHERE patient_id = 'QO-P3' AND (code < guess OR code > guess OR code = r.code) LOOP
        END LOOP;
        OPEN c FOR SELECT id FROM qo.labs
                    WHERE patient_id = 'QO-P3' AND (code < guess OR code > guess OR code = r.code);
        FETCH c INTO x;
        CLOSE c;
      END LOOP;
      answers := answers || ' none';
    EXCEPTION WHEN datatype_mismatch THEN
      answers := answers || ' error';
    END;
  END LOOP;
  RAISE NOTICE 'answers:%', answers;
END $$;
-- the permitted patient's rows do reach them
SELECT count(*) FROM qo.labs
 WHERE CASE WHEN patient_id = 'QO-P1' AND code = '718-7'
            THEN starts_with(code COLLATE pg_temp.nd, '') ELSE false END;
-- conditions that cannot fail still go first: a point query keeps its
-- patient, an UPDATE of one patient is not refused for another's row it
-- may read but not write (no index on patient_id: a sequential scan)
SELECT id, code FROM qo.labs WHERE patient_id = 'QO-P1' AND code = '718-7';
UPDATE qo.labs SET value = value WHERE patient_id = 'QO-P1' AND value > 0;
UPDATE qo.labs SET value = value WHERE patient_id = 'QO-P2';
-- nor when the patient is compared in a way that could fail (a parameter
-- of a generic plan, an initplan, IS NOT DISTINCT FROM, a function): the
-- row check's half that hides unreadable rows goes before them, whether
-- the row may be written is asked after them
SET plan_cache_mode = force_generic_plan;
PREPARE qo_upd(text) AS UPDATE qo.labs SET value = value WHERE patient_id = $1;
EXECUTE qo_upd('QO-P1');
EXECUTE qo_upd('QO-P2');
-- a PL/pgSQL variable (fetched row by row: after the check's first half)
DO $$
DECLARE v text := 'QO-P1'; n int;
BEGIN
    UPDATE qo.labs SET value = value WHERE patient_id = v;
    GET DIAGNOSTICS n = ROW_COUNT;
    RAISE NOTICE 'updated %', n;
END $$;
RESET plan_cache_mode;
UPDATE qo.labs SET value = value WHERE patient_id = (SELECT 'QO-P1');
UPDATE qo.labs SET value = value WHERE patient_id IS NOT DISTINCT FROM 'QO-P1';
UPDATE qo.labs SET value = value WHERE patient_id = lower('QO-P1') OR patient_id = upper('qo-p1');
SELECT id FROM qo.labs WHERE patient_id IS NOT DISTINCT FROM 'QO-P1' ORDER BY id FOR UPDATE;
-- a bigint patient compared with an integer (a comparison across types)
UPDATE qo.vitals SET hr = hr WHERE patient_id = 881;
-- the plan says so: the row check, then the CASE
DO $$
DECLARE
    line text;
    plan text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) SELECT id FROM qo.labs WHERE patient_id = ''QO-P1'''
        || ' AND CASE WHEN code = ''x'' THEN starts_with(code, '''') ELSE true END' LOOP
        plan := plan || line || E'\n';
    END LOOP;
    RAISE NOTICE 'patient first: %, then the check: %, then the CASE: %',
        position('patient_id = ' IN plan) < position('_row_check' IN plan),
        position('_row_check' IN plan) > 0,
        position('_row_check' IN plan) < position('CASE' IN plan);
END $$;

-- 3. A session does not begin or end inside a statement that reads
-- protected rows
SELECT (SELECT string_agg(patient_id || '=' || value, ',' ORDER BY id) FROM qo.labs) AS read_under_a,
       agentauth.begin_session(:'tok_b') IS NOT NULL AS switched;
SELECT (SELECT string_agg(value::text, ',') FROM qo.labs WHERE patient_id = 'QO-P2') AS v,
       agentauth.end_session() IS NULL AS ended;
SELECT on_behalf_of FROM agentauth.whoami();
-- a cursor between two FETCHes is not a running statement: the switch is
-- allowed, and the next FETCH refused
BEGIN;
DECLARE qo_c CURSOR FOR SELECT id FROM qo.labs ORDER BY id;
FETCH 1 FROM qo_c;
SELECT agentauth.begin_session(:'tok_b') IS NOT NULL AS switched;
FETCH 1 FROM qo_c;
ROLLBACK;
SELECT on_behalf_of FROM agentauth.whoami();
SELECT agentauth.end_session();

\c - postgres
-- what the statements above left: the withheld patient's rows counted as
-- denied, none read; every record of the statements of section 3 under
-- Dr A's token (the refused switches left theirs: statements that read no
-- row, each recorded as an access of none)
SELECT a.event, a.patient, a.on_behalf_of, a.row_count, count(*) AS records
  FROM agentauth.audit_log a
 WHERE a.seq > :mark AND a.relation = 'qo.labs'
 GROUP BY 1, 2, 3, 4
 ORDER BY 1, 2, 3, 4;
SELECT count(*) AS records_without_principal
  FROM agentauth.audit_log a
 WHERE a.seq > :mark AND a.relation = 'qo.labs' AND a.principal IS NULL;

-- 2. Restrictive policies of pg_policy
SET ROLE qo_owner;
CREATE TABLE qo.tests (id int PRIMARY KEY, patient_id text NOT NULL, code text, hiv_status text);
INSERT INTO qo.tests VALUES (1, 'QO-P1', '718-7', 'negative'), (2, 'QO-P3', '718-7', 'positive');
CREATE FUNCTION qo.ok(p text, h text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE POLICY rp ON qo.tests AS RESTRICTIVE USING (qo.ok(patient_id, hiv_status));
GRANT SELECT ON qo.tests TO qo_agent;
RESET ROLE;
-- refused: the owner may later make qo.ok() copy what it is given
SELECT agentauth.protect_table('qo.tests', 'patient_id', '{"id": "non_phi", "code": "lab", "hiv_status": "hiv"}');
-- a restrictive policy that sees no row's values is allowed
SET ROLE qo_owner;
DROP POLICY rp ON qo.tests;
CREATE POLICY rp_user ON qo.tests AS RESTRICTIVE USING (current_user IS NOT NULL);
RESET ROLE;
SELECT agentauth.protect_table('qo.tests', 'patient_id', '{"id": "non_phi", "code": "lab", "hiv_status": "hiv"}');
-- one a superuser adds after protection, over the rows, refuses the reads
-- of everyone the row check holds until it is dropped
CREATE POLICY rp_leak ON qo.tests AS RESTRICTIVE FOR SELECT USING (qo.ok(patient_id, hiv_status));
CREATE POLICY rp_sub ON qo.tests AS RESTRICTIVE FOR UPDATE TO qo_owner
    USING (EXISTS (SELECT FROM qo.labs l WHERE l.id = tests.id));
\c - qo_agent
SELECT agentauth.begin_session(:'tok_a') IS NOT NULL AS began;
SELECT patient_id, code FROM qo.tests ORDER BY id;
\c - postgres
DROP POLICY rp_leak ON qo.tests;
\c - qo_agent
SELECT agentauth.begin_session(:'tok_a') IS NOT NULL AS began;
SELECT patient_id, code FROM qo.tests ORDER BY id;
SELECT agentauth.end_session();
\c - postgres
-- a partition's own restrictive policy, for a query of the partition
CREATE TABLE qo.parted (patient_id text NOT NULL, code text) PARTITION BY LIST (code);
CREATE TABLE qo.parted_a PARTITION OF qo.parted FOR VALUES IN ('a');
ALTER TABLE qo.parted_a ENABLE ROW LEVEL SECURITY;
CREATE POLICY rp_part ON qo.parted_a AS RESTRICTIVE USING (qo.ok(patient_id, code));
SELECT agentauth.protect_table('qo.parted', 'patient_id', '{"code": "lab"}');
DROP POLICY rp_part ON qo.parted_a;
SELECT agentauth.protect_table('qo.parted', 'patient_id', '{"code": "lab"}');
CREATE POLICY rp_part ON qo.parted_a AS RESTRICTIVE USING (qo.ok(patient_id, code));
GRANT USAGE ON SCHEMA qo TO qo_agent;
GRANT SELECT ON qo.parted, qo.parted_a TO qo_agent;
\c - qo_agent
SELECT agentauth.begin_session(:'tok_a') IS NOT NULL AS began;
SELECT count(*) FROM qo.parted;
SELECT count(*) FROM qo.parted_a;
SELECT agentauth.end_session();
\c - postgres
DROP POLICY rp_part ON qo.parted_a;
