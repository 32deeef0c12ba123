-- The audit log: the writer chains every record, seq is gapless, and both
-- verifiers (C and SQL over pgcrypto) agree whatever the session settings.
CREATE ROLE reg20_auditor IN ROLE agentauth_auditor;
CREATE ROLE reg20_nobody;
CREATE TEMP TABLE reg20_base AS SELECT COALESCE(max(seq), 0) AS b FROM agentauth.audit_log;

-- administrative events are recorded when, and only when, their
-- transaction commits (agentauth._audit is the SQL door the registry uses)
SELECT agentauth._audit('reg20_committed', '{"n": 1}');
BEGIN;
SELECT agentauth._audit('reg20_rolled_back', '{"n": 2}');
ROLLBACK;
BEGIN;
SELECT agentauth._audit('reg20_outer', '{"n": 3}');
SAVEPOINT s1;
SELECT agentauth._audit('reg20_inner_rolled_back', '{"n": 4}');
ROLLBACK TO s1;
SAVEPOINT s2;
SELECT agentauth._audit('reg20_inner_kept', '{"n": 5}');
RELEASE s2;
COMMIT;
BEGIN;
SELECT agentauth._audit('reg20_failed', '{"n": 6}');
SELECT 1 / 0;
COMMIT;
-- a statement error inside PL/pgSQL rolls back only its block
DO $$
BEGIN
    PERFORM agentauth._audit('reg20_block_kept', '{"n": 7}');
    BEGIN
        PERFORM agentauth._audit('reg20_block_dropped', '{"n": 8}');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN NULL;
    END;
END
$$;
-- the writer runs, as a background worker with its own backend_type
SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer';
-- visible as soon as the committing statement returns, in commit order
SELECT seq - b AS n, event, detail, outcome, db_role
  FROM agentauth.audit_log, reg20_base WHERE seq > b ORDER BY seq;

-- a prepared transaction cannot carry administrative events
BEGIN;
SELECT agentauth._audit('reg20_prepared', NULL);
PREPARE TRANSACTION 'reg20';
SELECT count(*) FROM agentauth.audit_log WHERE event = 'reg20_prepared';

-- non-transactional records survive the statement's error: a refused
-- session is audited as session_denied
SELECT agentauth.begin_session('aat_reg20-not-a-token');
SELECT event, outcome, detail->>'function' AS function
  FROM agentauth.audit_log, reg20_base WHERE seq > b AND event = 'session_denied';
BEGIN;
SELECT agentauth.begin_session('aat_reg20-not-a-token-either');
ROLLBACK;
SELECT count(*) AS denied FROM agentauth.audit_log, reg20_base
 WHERE seq > b AND event = 'session_denied';

-- what the backend fills in: db_role (session_user), client, statement
SELECT db_role, client ~ '^address=\S+ application_name=pg_regress' AS client_ok,
       statement ~ '^pid=\d+ (query_id=-?\d+|statement_hash=[0-9a-f]{16})$' AS statement_ok,
       (statement ~ ('pid=' || pg_backend_pid() || ' ')) AS our_pid
  FROM agentauth.audit_log, reg20_base WHERE seq > b ORDER BY seq LIMIT 1;

-- seq is gapless from 1, every record links to the one before, and
-- logged_at never goes backwards
SELECT min(seq) = 1 AS from_one, count(*) = max(seq) AS gapless
  FROM agentauth.audit_log;
SELECT count(*) AS broken_links FROM (
    SELECT prev_hash, lag(row_hash) OVER (ORDER BY seq) AS before, seq,
           logged_at, lag(logged_at) OVER (ORDER BY seq) AS before_at
      FROM agentauth.audit_log) s
 WHERE (seq = 1 AND prev_hash <> decode(repeat('00', 32), 'hex'))
    OR (seq > 1 AND (prev_hash <> before OR logged_at < before_at));
SELECT count(*) AS bad_lengths FROM agentauth.audit_log
 WHERE length(prev_hash) <> 32 OR length(row_hash) <> 32;

-- both verifiers: the whole chain, and from the middle
SELECT ok, problem, checked = (SELECT count(*) FROM agentauth.audit_log) AS all_checked
  FROM agentauth.verify_audit();
SELECT ok, problem, checked = (SELECT count(*) FROM agentauth.audit_log) AS all_checked
  FROM agentauth.verify_audit_sql();
SELECT (SELECT row(v.*)::text FROM agentauth.verify_audit(b + 2) v) =
       (SELECT row(v.*)::text FROM agentauth.verify_audit_sql(b + 2) v) AS agree,
       (SELECT checked FROM agentauth.verify_audit(b + 2)) =
       (SELECT count(*) FROM agentauth.audit_log WHERE seq >= b + 2) AS from_middle
  FROM reg20_base;
-- past the head: nothing to check, nothing wrong
SELECT * FROM agentauth.verify_audit(1000000000);
SELECT * FROM agentauth.verify_audit_sql(1000000000);

-- the head, and verification against it
SELECT h.seq = (SELECT max(seq) FROM agentauth.audit_log) AS is_last,
       length(h.row_hash) AS hash_len
  FROM agentauth.audit_head() h;
CREATE TEMP TABLE reg20_head AS SELECT * FROM agentauth.audit_head();
SELECT agentauth._audit('reg20_after_head', NULL);
SELECT ok, problem FROM agentauth.verify_audit(1, (SELECT row_hash FROM reg20_head));
SELECT ok, problem FROM agentauth.verify_audit_sql(1, (SELECT row_hash FROM reg20_head));
-- a head that is not in the chain (lost tail, or another chain) is reported
-- one past the last record
SELECT ok, problem, first_bad_seq = (SELECT max(seq) + 1 FROM agentauth.audit_log) AS one_past_end
  FROM agentauth.verify_audit(1, sha256('reg20 not a head'));
SELECT ok, problem, first_bad_seq = (SELECT max(seq) + 1 FROM agentauth.audit_log) AS one_past_end
  FROM agentauth.verify_audit_sql(1, sha256('reg20 not a head'));
-- a head before from_seq is not found either: verify from before it
SELECT ok, problem FROM agentauth.verify_audit((SELECT seq + 1 FROM reg20_head), (SELECT row_hash FROM reg20_head));

-- bad arguments
SELECT * FROM agentauth.verify_audit(NULL);
SELECT * FROM agentauth.verify_audit_sql(NULL);
SELECT * FROM agentauth.verify_audit(1, '\x0102'::bytea);
SELECT * FROM agentauth.verify_audit_sql(1, '\x0102'::bytea);

-- independent of every session setting: both verifiers give the same
-- answer, and the same bytes, under odd settings
CREATE TEMP TABLE reg20_canon AS
  SELECT seq, agentauth.canonical_record(l) AS bytes FROM agentauth.audit_log l;
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Pacific/Chatham';
SET extra_float_digits = -15;
SET bytea_output = 'escape';
SET IntervalStyle = 'sql_standard';
SET standard_conforming_strings = off;
SET lc_monetary = 'C';
SELECT ok, problem FROM agentauth.verify_audit();
SELECT ok, problem FROM agentauth.verify_audit_sql();
SELECT count(*) AS differing FROM agentauth.audit_log l JOIN reg20_canon c USING (seq)
 WHERE agentauth.canonical_record(l) <> c.bytes;
RESET ALL;

-- the encoding, byte by byte (the README's worked example)
SELECT encode(agentauth.canonical_record(ROW(
    7, '2026-01-05 10:00:00+00', 'access',
    '6e0f3a52-4d7b-4a39-9d2e-0d1f2a3b4c5d', 'sepsis-bot', 'agent_sepsis',
    NULL, 'dr_house', '{}', 'TREAT', 'P001', 'public.labs',
    '{patient_id,lactate}', '{lab}', 'read', 3, '{"consent": ["c1"]}', 'permit',
    NULL, '', NULL, NULL, NULL)::agentauth.audit_log), 'hex') AS canonical;
SELECT encode(sha256(decode(repeat('00', 32), 'hex') || agentauth.canonical_record(ROW(
    7, '2026-01-05 10:00:00+00', 'access',
    '6e0f3a52-4d7b-4a39-9d2e-0d1f2a3b4c5d', 'sepsis-bot', 'agent_sepsis',
    NULL, 'dr_house', '{}', 'TREAT', 'P001', 'public.labs',
    '{patient_id,lactate}', '{lab}', 'read', 3, '{"consent": ["c1"]}', 'permit',
    NULL, '', NULL, NULL, NULL)::agentauth.audit_log)), 'hex') AS row_hash_after_zero_prev;
-- NULL, empty string and empty array encode differently
SELECT encode(agentauth._canon_text(NULL), 'hex') AS null_text,
       encode(agentauth._canon_text(''), 'hex') AS empty_text,
       encode(agentauth._canon_text_array('{}'), 'hex') AS empty_array,
       encode(agentauth._canon_text_array('{NULL,""}'), 'hex') AS null_and_empty,
       encode(agentauth._canon_text('é'), 'hex') AS utf8;

-- only auditors verify and see the head
SET ROLE reg20_nobody;
SELECT * FROM agentauth.verify_audit();
SELECT * FROM agentauth.verify_audit_sql();
SELECT * FROM agentauth.audit_head();
SELECT agentauth._audit('reg20_forged', NULL);
RESET ROLE;
SET ROLE reg20_auditor;
SELECT ok FROM agentauth.verify_audit();
SELECT ok FROM agentauth.verify_audit_sql();
SELECT seq > 0 AS has_head FROM agentauth.audit_head();
SELECT count(*) > 0 AS can_read FROM agentauth.audit_log;
RESET ROLE;

DROP ROLE reg20_auditor, reg20_nobody;

-- a patient id too long for the log's index is refused where it is
-- produced (a record the writer cannot store would stop it)
SELECT agentauth._audit('reg20_long_patient', NULL, NULL, NULL, repeat('p', 1001));
SELECT agentauth._audit('reg20_long_patient', NULL, NULL, NULL, repeat('p', 1000));
SELECT length(patient) FROM agentauth.audit_log WHERE event = 'reg20_long_patient';
