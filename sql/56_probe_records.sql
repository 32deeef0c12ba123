-- A probe learns nothing from the log's own activity (1.1, found by
-- review).  Conditions an index answers run before the row check, and a
-- withheld row that matched them is recorded as denied: an agent probing a
-- patient without consent (patient_id = 'P3' AND code = '718-7') saw the
-- audit writer commit, or not -- pg_current_snapshot() in its session,
-- pg_stat_user_tables of the log from a second connection.  Now every
-- statement that ran on a protected table leaves a record (one of no
-- patient and no rows when no row reached its row check), and the
-- functions that show the server's write activity are refused to a
-- principal's login, in a session or not.
\set SHOW_CONTEXT never
CREATE ROLE reg56_agent LOGIN;
CREATE SCHEMA clinic56;
CREATE TABLE clinic56.labs (id int PRIMARY KEY, patient_id text NOT NULL, code text, value numeric);
CREATE TABLE clinic56.ref (code text);
INSERT INTO clinic56.ref VALUES ('718-7');
CREATE INDEX ON clinic56.labs (patient_id, code);
INSERT INTO clinic56.labs VALUES (1, 'R56-P1', '718-7', 13.5), (2, 'R56-P3', '718-7', 11.0);
GRANT USAGE ON SCHEMA clinic56 TO reg56_agent;
GRANT SELECT ON clinic56.labs, clinic56.ref TO reg56_agent;
SELECT agentauth.protect_table('clinic56.labs', 'patient_id',
    '{"id": "non_phi", "code": "lab", "value": "lab"}');
SELECT agentauth.register_agent('reg56-agent', 'reg56_agent', 'Lab AI', '{TREATDS}',
    '{lab:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS secret \gset
SELECT agentauth.record_consent('R56-P1', 'permit', '{TREATDS}', '{lab}') IS NOT NULL AS consented;
SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset

SET SESSION AUTHORIZATION reg56_agent;
SET enable_seqscan = off;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
-- which tables a session's statement scanned is published for none of
-- them, protected or not (a view's scalar subquery chose which of 200
-- tables to scan by a heart rate: found by review)
SELECT count(*) FROM clinic56.ref;
-- the probes: a hit and a miss on the withheld patient, 0 rows each
SELECT count(*) FROM clinic56.labs WHERE patient_id = 'R56-P3' AND code = '718-7';
SELECT count(*) FROM clinic56.labs WHERE patient_id = 'R56-P3' AND code = '2345-7';
-- a miss on the permitted patient, and a plain EXPLAIN (which reads nothing)
SELECT value FROM clinic56.labs WHERE patient_id = 'R56-P1' AND code = 'none';
\o /dev/null
EXPLAIN (COSTS OFF) SELECT value FROM clinic56.labs WHERE patient_id = 'R56-P1';
\o
-- what shows the server's activity: refused in the session
SELECT pg_current_snapshot() IS NOT NULL;
SELECT pg_current_wal_insert_lsn() IS NOT NULL;
SELECT txid_current() > 0;
SELECT pg_total_relation_size('agentauth.audit_record') > 0;
SELECT pg_logical_emit_message(false, 'x', '') IS NOT NULL;
SELECT age('3'::xid) > 0;
SELECT pg_xact_status('3'::xid8) IS NOT NULL;
SELECT age(now()) IS NOT NULL AS age_of_a_time_is_fine;
-- what is evaluated without being planned (a domain's CHECK, a CALL's
-- argument: found by review) is refused where a principal's utility
-- statement names it, and meets the privilege, which the WAL position
-- functions no longer give to PUBLIC (below)
CREATE DOMAIN pg_temp.lsn_peek AS text
    CHECK (set_config('reg56.lsn', pg_current_wal_lsn()::text, false) IS NOT NULL);
SELECT 'x'::pg_temp.lsn_peek;
CREATE PROCEDURE pg_temp.show(t text) LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE '%', t; END$$;
CALL pg_temp.show(pg_current_wal_insert_lsn()::text);
-- EXECUTE's parameters are evaluated unplanned too: the utility statement
-- that names such a function is refused (found by review: wal_bytes of
-- pg_stat_get_wal() told a match from a miss)
PREPARE echo(text) AS SELECT $1;
EXECUTE echo((pg_stat_get_wal()).wal_bytes::text);
EXECUTE echo(PG_CURRENT_SNAPSHOT()::text);
EXECUTE echo('the name of no such function');
-- a name no text search finds (found by review): the privilege holds
EXECUTE echo(U&"pg\005fstat\005fget\005fdb\005fxact\005fcommit"(1)::text);
EXECUTE echo(U&"txid\005fcurrent"()::text);
SELECT count(*) >= 0 FROM pg_replication_slots;
SELECT agentauth.end_session();
-- and to the principal's login outside one
SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'audit_record';
SELECT pg_current_wal_lsn() IS NOT NULL;
SELECT pg_relation_size('agentauth.audit_record') > 0;
SELECT pg_logical_emit_message(false, 'x', '') IS NOT NULL;
SELECT age(xmin) >= 0 FROM pg_class LIMIT 1;
SELECT 1 AS other_functions_work WHERE now() IS NOT NULL;
RESET enable_seqscan;
RESET SESSION AUTHORIZATION;
SELECT pg_stat_force_next_flush();
SELECT seq_scan AS agent_scans_of_ref FROM pg_stat_user_tables WHERE relid = 'clinic56.ref'::regclass;
-- whoever is no principal still may, the WAL position through pg_monitor
SELECT pg_current_wal_lsn() IS NOT NULL AS dba_reads_the_wal_position;
CREATE ROLE reg56_plain LOGIN;
CREATE ROLE reg56_monitor LOGIN IN ROLE pg_monitor;
SET SESSION AUTHORIZATION reg56_plain;
SELECT pg_current_wal_lsn() IS NOT NULL;
SELECT count(*) >= 0 AS reads_statistics FROM pg_stat_user_tables;
SELECT txid_current() > 0;
SET SESSION AUTHORIZATION reg56_monitor;
SELECT pg_current_wal_lsn() IS NOT NULL AS monitor_reads_the_wal_position;
SELECT count(*) >= 0 AS monitor_reads_statistics FROM pg_stat_user_tables;
SELECT txid_current() > 0 AS monitor_reads_the_transaction_counter;
RESET SESSION AUTHORIZATION;
DROP ROLE reg56_plain;
DROP ROLE reg56_monitor;

-- each probe left one record: the hit its denial, the misses one of none
SELECT event, patient, columns, row_count, outcome, count(*) AS records
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation = 'clinic56.labs'
 GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2 NULLS FIRST, 3;
-- the refusals in the session are recorded; those outside it are not PHI
SELECT event, detail->>'reason' AS reason, count(*)
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation IS NULL AND event = 'denied' GROUP BY 1, 2;
-- a record of no patient goes into FHIR as an access of no patient, the
-- reports of a patient do not list it, and both verifiers take it
SELECT min(seq) AS empty_seq FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation = 'clinic56.labs' AND patient IS NULL \gset
SELECT e->'type'->>'code' AS type, e->'subtype'->0->>'code' AS subtype, e->>'outcome' AS outcome,
       (SELECT count(*) FROM jsonb_array_elements(e->'entity') x
         WHERE x->'what'->>'reference' LIKE 'Patient/%') AS patient_entities
  FROM agentauth.audit_event_fhir(:empty_seq) e;
SELECT count(*) AS p3_report_rows FROM agentauth.access_report('R56-P3', '-infinity', 'infinity')
 WHERE relation = 'clinic56.labs';
SELECT ok FROM agentauth.verify_audit();
SELECT ok FROM agentauth.verify_audit_sql();
DROP SCHEMA clinic56 CASCADE;
