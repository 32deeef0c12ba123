-- Tamper detection, for real.  A superuser still has a route around the
-- append-only guard: switching the trigger off in its pg_trigger row.  Each
-- tampering below takes that route inside a transaction, shows that both
-- verifiers name the first bad seq, and is rolled back.
\set VERBOSITY terse
SELECT agentauth._audit('reg22_' || i, jsonb_build_object('i', i)) FROM generate_series(1, 6) i;
CREATE TEMP TABLE reg22 AS
  SELECT min(seq) AS s1, max(seq) AS s6 FROM agentauth.audit_record WHERE event LIKE 'reg22\_%';
SELECT s6 - s1 AS span FROM reg22;
CREATE TEMP TABLE reg22_head AS SELECT * FROM agentauth.audit_head();

-- both verifiers, side by side, relative to the first reg22 record
CREATE FUNCTION reg22_verify(from_seq bigint DEFAULT 1, head bytea DEFAULT NULL)
RETURNS TABLE (verifier text, checked_ok boolean, ok boolean, bad bigint, problem text)
LANGUAGE sql AS $$
    SELECT 'C', v.checked = v.first_bad_seq - greatest(from_seq, 1), v.ok,
           v.first_bad_seq - (SELECT s1 FROM reg22), v.problem
      FROM agentauth.verify_audit(from_seq, head) v
    UNION ALL
    SELECT 'SQL', v.checked = v.first_bad_seq - greatest(from_seq, 1), v.ok,
           v.first_bad_seq - (SELECT s1 FROM reg22), v.problem
      FROM agentauth.verify_audit_sql(from_seq, head) v
$$;
SELECT * FROM reg22_verify();

-- switch the guard off (in this transaction only; the pg_class update
-- makes this backend reload the table's triggers)
CREATE FUNCTION reg22_unguard() RETURNS void LANGUAGE sql AS $$
    UPDATE pg_catalog.pg_trigger SET tgenabled = 'D'
     WHERE tgrelid = 'agentauth.audit_record'::regclass;
    -- and its CHECK that seq starts at 1, which the renumberings below
    -- pass through (only catalog surgery removes it)
    DELETE FROM pg_catalog.pg_constraint
     WHERE conrelid = 'agentauth.audit_record'::regclass AND conname = 'audit_record_seq_from_1';
    UPDATE pg_catalog.pg_class SET relhastriggers = true, relchecks = relchecks - 1
     WHERE oid = 'agentauth.audit_record'::regclass;
$$;

-- a changed record: its own hash no longer matches
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record SET detail = '{"i": 99}' WHERE seq = (SELECT s1 + 2 FROM reg22);
SELECT * FROM reg22_verify();
ROLLBACK;

-- a changed record whose row_hash was recomputed: the next one no longer
-- links to it
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record l SET detail = '{"i": 99}' WHERE seq = (SELECT s1 + 2 FROM reg22);
UPDATE agentauth.audit_record l
   SET row_hash = sha256(l.prev_hash || agentauth.canonical_stored(l))
 WHERE seq = (SELECT s1 + 2 FROM reg22);
SELECT * FROM reg22_verify();
ROLLBACK;

-- a record made into a purge anchor that is not one (its cut neither a
-- number nor hex): both verifiers report the break; 1.0's failed the call
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record
   SET event = 'audit_purged', detail = '{"cut_seq": "x", "cut_hash": "zz"}'
 WHERE seq = (SELECT s1 + 3 FROM reg22);
SELECT * FROM reg22_verify();
ROLLBACK;

-- a changed record in a field that is not hashed as text: logged_at
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record SET logged_at = logged_at - interval '1 microsecond'
 WHERE seq = (SELECT s1 + 1 FROM reg22);
SELECT * FROM reg22_verify();
ROLLBACK;

-- NULL versus empty: a changed field that prints the same
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record SET patient = '' WHERE seq = (SELECT s1 + 3 FROM reg22);
SELECT * FROM reg22_verify();
ROLLBACK;

-- a deleted record: a gap at its seq
BEGIN;
SELECT reg22_unguard();
DELETE FROM agentauth.audit_record WHERE seq = (SELECT s1 + 3 FROM reg22);
SELECT * FROM reg22_verify();
ROLLBACK;

-- records deleted in the middle: the audit feed's next window (_log_next)
-- moves on to the record after the hole, instead of coming back empty for
-- ever (and blinding the outside copy that would show the tampering)
BEGIN;
SELECT reg22_unguard();
DELETE FROM agentauth.audit_record
 WHERE seq BETWEEN (SELECT s1 + 1 FROM reg22) AND (SELECT s1 + 3 FROM reg22);
SELECT string_agg((l.seq - r.s1)::text, ',' ORDER BY l.seq) AS feed_after_hole
  FROM reg22 r, agentauth._log_next(r.s1, 2) l;
SELECT string_agg((l.seq - r.s1)::text, ',' ORDER BY l.seq) AS feed_before_hole
  FROM reg22 r, agentauth._log_next(r.s1 - 1, 2) l;
ROLLBACK;

-- a deleted record, the later ones renumbered to close the gap
BEGIN;
SELECT reg22_unguard();
DELETE FROM agentauth.audit_record WHERE seq = (SELECT s1 + 3 FROM reg22);
UPDATE agentauth.audit_record SET seq = -seq WHERE seq > (SELECT s1 + 3 FROM reg22);
UPDATE agentauth.audit_record SET seq = -seq - 1 WHERE seq < 0;
SELECT * FROM reg22_verify();
ROLLBACK;

-- an inserted record (a copy of another one, put after the last)
BEGIN;
SELECT reg22_unguard();
INSERT INTO agentauth.audit_record
  SELECT (SELECT max(seq) + 1 FROM agentauth.audit_record), logged_at, event, principal, principal_name,
         db_role, token, on_behalf_of, delegation_chain, purpose, patient, relation, columns,
         data_classes, action, row_count, authority, outcome, statement, client, detail,
         (SELECT row_hash FROM agentauth.audit_record ORDER BY seq DESC LIMIT 1), row_hash
    FROM agentauth.audit_record WHERE seq = (SELECT s1 FROM reg22);
SELECT verifier, ok, bad - (SELECT s6 - s1 + 1 FROM reg22) AS bad_after_last, problem FROM reg22_verify();
ROLLBACK;

-- an inserted record in the middle, the later ones renumbered
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record SET seq = -seq - 1 WHERE seq > (SELECT s1 + 1 FROM reg22);
UPDATE agentauth.audit_record SET seq = -seq WHERE seq < 0;
INSERT INTO agentauth.audit_record
  SELECT s1 + 2, now(), 'reg22_forged', NULL, NULL, 'postgres', NULL, NULL, NULL, NULL, NULL,
         NULL, NULL, NULL, NULL, NULL, NULL, 'permit', NULL, NULL, NULL,
         (SELECT row_hash FROM agentauth.audit_record WHERE seq = s1 + 1), sha256('forged')
    FROM reg22;
SELECT * FROM reg22_verify();
ROLLBACK;

-- two records swapped
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record SET seq = -1 WHERE seq = (SELECT s1 + 4 FROM reg22);
UPDATE agentauth.audit_record SET seq = (SELECT s1 + 4 FROM reg22) WHERE seq = (SELECT s1 + 3 FROM reg22);
UPDATE agentauth.audit_record SET seq = (SELECT s1 + 3 FROM reg22) WHERE seq = -1;
SELECT * FROM reg22_verify();
ROLLBACK;

-- a record with a seq before the chain starts: with the append-only
-- triggers off, still refused by the log's CHECK (1.1: stored, shown by
-- every report, and left out of export_audit() and so of aa_verify)
BEGIN;
UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'agentauth.audit_record'::regclass;
UPDATE pg_catalog.pg_class SET relhastriggers = true WHERE oid = 'agentauth.audit_record'::regclass;
INSERT INTO agentauth.audit_record (seq, logged_at, event, prev_hash, row_hash)
  VALUES (0, now(), 'reg22_forged', decode(repeat('00', 32), 'hex'), sha256('x'));
ROLLBACK;
-- the CHECK removed too: both verifiers report it, and an export from the
-- beginning starts at it, where aa_verify refuses it
BEGIN;
SELECT reg22_unguard();
INSERT INTO agentauth.audit_record (seq, logged_at, event, prev_hash, row_hash)
  VALUES (0, now(), 'reg22_forged', decode(repeat('00', 32), 'hex'), sha256('x'));
SELECT verifier, ok, bad + (SELECT s1 FROM reg22) AS bad, problem FROM reg22_verify();
SELECT (line::json ->> 'first_seq')::bigint AS export_first_seq FROM agentauth.export_audit() line LIMIT 1;
ROLLBACK;

-- the tail removed: only an outside digest (the head kept earlier) shows it
BEGIN;
SELECT reg22_unguard();
DELETE FROM agentauth.audit_record WHERE seq >= (SELECT s1 + 4 FROM reg22);
SELECT * FROM reg22_verify();
SELECT * FROM reg22_verify(1, (SELECT row_hash FROM reg22_head));
ROLLBACK;

-- verification from the middle takes the first record's link on trust but
-- still checks its content
BEGIN;
SELECT reg22_unguard();
UPDATE agentauth.audit_record SET prev_hash = sha256('x') WHERE seq = (SELECT s1 + 2 FROM reg22);
SELECT * FROM reg22_verify((SELECT s1 + 3 FROM reg22));
SELECT * FROM reg22_verify((SELECT s1 + 2 FROM reg22));
SELECT * FROM reg22_verify((SELECT s1 + 1 FROM reg22));
ROLLBACK;

-- all rolled back: the log verifies, the guard is on again
SELECT * FROM reg22_verify(1, (SELECT row_hash FROM reg22_head));
SELECT tgname, tgenabled FROM pg_trigger
 WHERE tgrelid = 'agentauth.audit_record'::regclass ORDER BY tgname;
DROP FUNCTION reg22_verify(bigint, bytea);
DROP FUNCTION reg22_unguard();

-- The extension's doors for administrative records do not take the events
-- it records itself: a superuser calling them made an access the agent
-- never made, or a purge that anchored the chain past deleted records
-- (review r40).  Nothing is recorded.
SELECT coalesce(max(seq), 0) AS before_doors FROM agentauth.audit_log \gset
SELECT agentauth._audit('access', NULL, NULL, NULL, 'R22-P77', 'public.notes');
SELECT agentauth._audit('audit_purged', '{"cut_seq": 1}');
SELECT agentauth._audit('session_begin');
SELECT agentauth._btg_audit('access', 'R22-P77', NULL, NULL, NULL, NULL, NULL);
SELECT agentauth._btg_audit('audit_purged', NULL, NULL, NULL, NULL, NULL, NULL);
SELECT count(*) AS recorded FROM agentauth.audit_log WHERE seq > :before_doors;
