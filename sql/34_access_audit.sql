-- The audit of PHI access (SPEC 10 granularity): one access record per
-- statement x table x patient x action with columns, classes, rows and
-- authority; one denied record per withheld patient; each FETCH of a
-- cursor is its own run; a rollback or an error keeps what was read.
\set SHOW_CONTEXT never
CREATE ROLE reg34_agent LOGIN;
CREATE FUNCTION reg34_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP RETURN NEXT l; END LOOP;
END $$;
CREATE TABLE reg34_vitals (
    id          int PRIMARY KEY,
    patient_id  text NOT NULL,
    hr          int,
    bp          text,
    note        text
);
INSERT INTO reg34_vitals VALUES
    (1, 'R34-P1', 70, '120/80', 'a'), (2, 'R34-P1', 72, '121/80', 'b'),
    (3, 'R34-P2', 90, '140/90', 'c'), (4, 'R34-P2', 88, '135/85', 'd'), (5, 'R34-P2', 85, '130/85', 'e'),
    (6, 'R34-P3', 60, '110/70', 'f');
SELECT agentauth.protect_table('reg34_vitals', 'patient_id',
    '{"id": "non_phi", "hr": "vital_signs", "bp": "vital_signs", "note": "clinical_note"}');
GRANT SELECT ON reg34_vitals TO reg34_agent;
SELECT agentauth.register_agent('reg34-agent', 'reg34_agent', 'ICU AI', '{TREAT}',
    '{vital_signs:read,clinical_note:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREAT', on_behalf_of => 'dr.who') AS secret \gset
-- P3 refuses everything: deny beats the TREAT default
SELECT agentauth.record_consent('R34-P3', 'deny') AS c3 \gset
-- records of this suite, from here on, as a reader sees them
CREATE VIEW reg34_log AS
SELECT seq, event, patient, columns, data_classes, action, row_count, outcome,
       authority - 'consent' AS authority, purpose, principal_name, on_behalf_of
  FROM agentauth.audit_log
 WHERE relation = 'public.reg34_vitals' AND event IN ('access', 'denied');
SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg34_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
-- one statement: P1 two rows, P2 three rows, P3 withheld
SELECT patient_id, hr FROM reg34_vitals ORDER BY id;
RESET SESSION AUTHORIZATION;
SELECT event, patient, columns, data_classes, action, row_count, outcome, authority,
       purpose, principal_name, on_behalf_of
  FROM reg34_log WHERE seq > :seq0 ORDER BY event, patient;
SELECT max(seq) AS seq1 FROM agentauth.audit_log \gset

-- a leakproof qual on the patient: only that patient is touched
SET SESSION AUTHORIZATION reg34_agent;
SELECT hr FROM reg34_vitals WHERE patient_id = 'R34-P2' ORDER BY id;
-- a self-join counts once per table and patient, columns united
SELECT a.hr, b.bp FROM reg34_vitals a JOIN reg34_vitals b ON a.id = b.id AND a.patient_id = 'R34-P1';
RESET SESSION AUTHORIZATION;
SELECT event, patient, columns, data_classes, row_count FROM reg34_log
 WHERE seq > :seq1 ORDER BY seq;
SELECT max(seq) AS seq2 FROM agentauth.audit_log \gset

-- a cursor: each FETCH is recorded with the rows it touched
SET SESSION AUTHORIZATION reg34_agent;
BEGIN;
DECLARE c CURSOR FOR SELECT id, hr FROM reg34_vitals WHERE patient_id IN ('R34-P1', 'R34-P2') ORDER BY id;
FETCH 3 FROM c;
FETCH 3 FROM c;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT event, patient, row_count FROM reg34_log WHERE seq > :seq2 ORDER BY seq;
SELECT max(seq) AS seq3 FROM agentauth.audit_log \gset

-- ROLLBACK does not erase what was read; neither does an error mid-scan
SET SESSION AUTHORIZATION reg34_agent;
BEGIN;
SELECT count(hr) FROM reg34_vitals WHERE patient_id = 'R34-P1';
ROLLBACK;
SELECT id, 1 / (hr - 88) FROM reg34_vitals WHERE patient_id = 'R34-P2' ORDER BY id;
BEGIN;
SAVEPOINT s;
SELECT id, bp FROM reg34_vitals WHERE patient_id = 'R34-P1' ORDER BY id;
ROLLBACK TO SAVEPOINT s;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT event, patient, columns, row_count FROM reg34_log WHERE seq > :seq3 ORDER BY seq;
SELECT max(seq) AS seq4 FROM agentauth.audit_log \gset

-- a leaky function in WHERE sees no withheld row
CREATE FUNCTION reg34_leak(text, int) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN
    RAISE NOTICE 'leak: % %', $1, $2;
    RETURN true;
END $$;
SET SESSION AUTHORIZATION reg34_agent;
SELECT id FROM reg34_vitals WHERE reg34_leak(patient_id, hr) ORDER BY id;
-- nested queries count into their own statement
CREATE FUNCTION pg_temp.reg34_count(p text) RETURNS bigint LANGUAGE sql
    AS $$ SELECT count(bp) FROM reg34_vitals WHERE patient_id = p $$;
SELECT DISTINCT patient_id, pg_temp.reg34_count(patient_id) FROM reg34_vitals ORDER BY 1;
RESET SESSION AUTHORIZATION;
SELECT event, patient, columns, row_count FROM reg34_log WHERE seq > :seq4 ORDER BY seq;
SELECT max(seq) AS seq5 FROM agentauth.audit_log \gset

-- parallel plans: the protected scan stays in the leader; same rows, same records
SET SESSION AUTHORIZATION reg34_agent;
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET force_parallel_mode = on;
SELECT patient_id, count(*), sum(hr) FROM reg34_vitals GROUP BY patient_id ORDER BY 1;
SELECT regexp_replace(p, '''\d+''::oid', '<relid>') AS plan
  FROM reg34_plan('SELECT patient_id, count(*), sum(hr) FROM reg34_vitals GROUP BY patient_id') p;
RESET force_parallel_mode;
SELECT patient_id, count(*), sum(hr) FROM reg34_vitals GROUP BY patient_id ORDER BY 1;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET SESSION AUTHORIZATION;
SELECT event, patient, columns, row_count FROM reg34_log WHERE seq > :seq5 ORDER BY seq;
