-- Security review (attacks that must fail).  Each block is an attack by a
-- role the README's security model names; the expected output shows it
-- failing.
\set SHOW_CONTEXT never
CREATE ROLE reg80_agent LOGIN;
CREATE TABLE reg80_chart (patient_id text NOT NULL, lab text, diag text, hiv text);
INSERT INTO reg80_chart
SELECT 'R80-P' || i, 'lab' || i, 'diag' || i, 'hiv' || i FROM generate_series(1, 4) i;
SELECT agentauth.protect_table('reg80_chart', 'patient_id',
    '{"lab": "lab", "diag": "diagnosis", "hiv": "hiv"}');
GRANT SELECT, INSERT, UPDATE, DELETE ON reg80_chart TO reg80_agent;
SELECT agentauth.register_agent('reg80-agent', 'reg80_agent', 'Security review',
    '{TREAT,TREATDS}', '{lab:read,diagnosis:read,lab:write}',
    can_break_glass => true) AS agent \gset
SELECT agentauth.record_consent('R80-P1', 'permit') IS NOT NULL AS consented;
-- the clinician the agent acts for, who answers for its overrides
CREATE ROLE reg80_review LOGIN;
SELECT agentauth.register_human('dr.review', 'reg80_review', '{TREAT}', '{lab:read}',
                                can_break_glass => true) IS NOT NULL AS registered;
SELECT agentauth.issue_token(:'agent', 'TREATDS', on_behalf_of => 'dr.review') AS tok \gset

-- 1. Type shadowing in pg_temp.  The extension reads its catalogs as the
-- bootstrap superuser inside the agent's backend, where the agent chose
-- search_path.  pg_temp is searched for type names when listed first, so
-- a domain pg_temp.text whose CHECK calls the agent's function would run
-- that function as the superuser if any of those queries resolved "text"
-- through the caller's path.  The function must never run.
SET SESSION AUTHORIZATION reg80_agent;
CREATE FUNCTION pg_temp.reg80_evil(v varchar) RETURNS boolean
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE NOTICE 'attacker function ran as %', current_user;
    RETURN true;
END $$;
CREATE DOMAIN pg_temp.text AS varchar CHECK (pg_temp.reg80_evil(VALUE));
SET search_path = pg_temp, pg_catalog, public;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
-- consent and defaults are loaded for this session here
SELECT patient_id, lab FROM public.reg80_chart ORDER BY 1;
SELECT decision FROM agentauth.explain_access('R80-P2', 'lab');
-- an override (break-the-glass) is loaded, then ended with the session
SELECT agentauth.break_glass('R80-P3', 'security review probe') IS NOT NULL AS broke;
SELECT patient_id, lab FROM public.reg80_chart ORDER BY 1;
SELECT agentauth.end_session();
-- the attacker's type is still there and still works for the attacker
SELECT 'x'::text AS own_domain_still_works;
RESET search_path;
DROP DOMAIN pg_temp.text;
RESET SESSION AUTHORIZATION;

-- 2. A patient id too long for the audit log's patient index.  A record
-- naming it could never be inserted, so the audit writer would retry its
-- batch forever and every PHI statement of every session would fail
-- closed.  The row check refuses such a row (without echoing it), and the
-- audit goes on.
SELECT agentauth.record_consent('R80-P2', 'permit', actions => '{read,insert}') IS NOT NULL AS consented;
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
INSERT INTO reg80_chart (patient_id, lab)
SELECT string_agg(md5(i::text), ''), 'x' FROM generate_series(1, 100) i;
-- 200 characters is the limit everywhere (tokens, consent)
INSERT INTO reg80_chart (patient_id, lab) VALUES (repeat('é', 201), 'x');
INSERT INTO reg80_chart (patient_id, lab) VALUES ('R80-P2', 'lab2b');
SELECT patient_id, lab FROM reg80_chart ORDER BY 1, 2;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- a long id already in the table (put there by its owner): a scan that
-- reaches it fails closed; one that the patient qual keeps away does not
SET row_security = off;
INSERT INTO reg80_chart (patient_id, lab) VALUES (repeat('Q', 3000), 'x');
RESET row_security;
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
SELECT patient_id, lab FROM reg80_chart ORDER BY 1, 2;
SELECT patient_id, lab FROM reg80_chart WHERE patient_id = 'R80-P1';
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- the writer kept writing: the reads above are in the log, chained
SELECT patient, action, row_count, outcome FROM agentauth.audit_log
 WHERE principal = :'agent' AND event IN ('access', 'denied')
 ORDER BY seq DESC LIMIT 3;
SELECT ok FROM agentauth.verify_audit();

-- 3. The owner of a protected table (a DBA, not a superuser) is bound by
-- row security too, but could attach code that sees whole rows outside the
-- row check: an expression index or CHECK constraint is evaluated over
-- every existing row at once; a restrictive policy with a cheap function
-- runs before the row check on every row an agent scans; a protected table
-- attached as a partition of an unprotected parent is read through the
-- parent with no row security at all.  All refused.  (A partitioned table
-- is protected as a whole, every partition with it: 49_partitions.)
CREATE ROLE reg80_owner LOGIN;
CREATE SCHEMA reg80_s AUTHORIZATION reg80_owner;
CREATE TABLE reg80_s.notes (patient_id text NOT NULL, lab text, hiv text);
INSERT INTO reg80_s.notes VALUES ('R80-P1', 'lab1', 'hiv1'), ('R80-P2', 'lab2', 'hiv2');
ALTER TABLE reg80_s.notes OWNER TO reg80_owner;
SELECT agentauth.protect_table('reg80_s.notes', 'patient_id', '{"lab": "lab", "hiv": "hiv"}');
SET ROLE reg80_owner;
CREATE FUNCTION reg80_s.grab(VARIADIC v text[]) RETURNS boolean
    LANGUAGE sql IMMUTABLE COST 0.0001 AS $$ SELECT true $$;
SELECT * FROM reg80_s.notes;  -- bound like anyone else
CREATE INDEX ON reg80_s.notes ((reg80_s.grab(patient_id, hiv)));
CREATE INDEX ON reg80_s.notes (lab) WHERE reg80_s.grab(hiv);
CREATE INDEX ON reg80_s.notes (patient_id);   -- plain columns: fine
ALTER TABLE reg80_s.notes ADD CONSTRAINT leak CHECK (reg80_s.grab(hiv));
ALTER TABLE reg80_s.notes ADD CONSTRAINT leak EXCLUDE ((reg80_s.grab(hiv)) WITH =);
ALTER TABLE reg80_s.notes ADD UNIQUE (patient_id, lab);   -- fine
ALTER TABLE reg80_s.notes ADD COLUMN g boolean GENERATED ALWAYS AS (reg80_s.grab(hiv)) STORED;
ALTER TABLE reg80_s.notes ADD COLUMN c text CHECK (reg80_s.grab(hiv, c));
ALTER TABLE reg80_s.notes ADD COLUMN d text DEFAULT 'x';  -- fine (unclassified)
ALTER TABLE reg80_s.notes ALTER COLUMN hiv TYPE varchar USING (hiv || reg80_s.grab(hiv)::text);
ALTER TABLE reg80_s.notes ALTER COLUMN hiv TYPE varchar;  -- fine
CREATE TRIGGER leak BEFORE UPDATE ON reg80_s.notes
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
CREATE RULE leak AS ON UPDATE TO reg80_s.notes DO ALSO NOTIFY reg80;
CREATE POLICY leak ON reg80_s.notes AS RESTRICTIVE USING (reg80_s.grab(patient_id, hiv));
-- a permissive policy is ORed with agentauth's "true" and never evaluated
CREATE POLICY wide ON reg80_s.notes USING (reg80_s.grab(patient_id, hiv));
CREATE STATISTICS reg80_s.st ON (reg80_s.grab(hiv)), patient_id FROM reg80_s.notes;
CREATE STATISTICS reg80_s.st2 ON lab, patient_id FROM reg80_s.notes;  -- fine
CREATE TABLE reg80_s.parent (patient_id text NOT NULL, lab text, hiv text, d text)
    PARTITION BY LIST (patient_id);
ALTER TABLE reg80_s.parent ATTACH PARTITION reg80_s.notes DEFAULT;
SELECT * FROM reg80_s.parent;
RESET ROLE;
-- a superuser (who bypasses row security anyway) may
CREATE TRIGGER ok BEFORE UPDATE ON reg80_s.notes
    FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger();
DROP TRIGGER ok ON reg80_s.notes;
CREATE POLICY narrow ON reg80_s.notes AS RESTRICTIVE USING (lab IS NOT NULL);
-- ... and the owner cannot turn that policy into code of its own
SET ROLE reg80_owner;
ALTER POLICY narrow ON reg80_s.notes USING (reg80_s.grab(patient_id, hiv));
ALTER POLICY wide ON reg80_s.notes USING (reg80_s.grab(hiv));   -- permissive: fine
RESET ROLE;
DROP POLICY narrow ON reg80_s.notes;
SELECT count(*) AS code_objects FROM pg_trigger t WHERE t.tgrelid = 'reg80_s.notes'::regclass
   AND t.tgname NOT LIKE 'agentauth\_replicated\_%'   -- protect_table's own (item 8)
UNION ALL SELECT count(*) FROM pg_policy WHERE polrelid = 'reg80_s.notes'::regclass AND NOT polpermissive
UNION ALL SELECT count(*) FROM pg_rewrite WHERE ev_class = 'reg80_s.notes'::regclass;

-- 4. Foreign-key cascades.  The action of ON DELETE / ON UPDATE CASCADE
-- (and SET NULL / SET DEFAULT) runs as the protected table's owner with
-- no row security: anyone who may delete from the unprotected parent
-- would delete or rewrite protected rows of any patient, unchecked and
-- unaudited.  A cascade that writes a protected row is refused (and
-- audited); one that finds no protected row goes through.
CREATE ROLE reg80_clerk LOGIN;
CREATE TABLE reg80_enc (enc_id int PRIMARY KEY, patient_id text NOT NULL);
INSERT INTO reg80_enc VALUES (1, 'R80-P1'), (3, 'R80-P3'), (4, 'R80-P4');
CREATE TABLE reg80_encnote (
    enc_id int REFERENCES reg80_enc ON DELETE CASCADE ON UPDATE CASCADE,
    patient_id text NOT NULL, lab text);
INSERT INTO reg80_encnote VALUES (1, 'R80-P1', 'n1'), (3, 'R80-P3', 'n3');
SELECT agentauth.protect_table('reg80_encnote', 'patient_id',
    '{"enc_id": "encounter", "lab": "lab"}');
GRANT SELECT, UPDATE, DELETE ON reg80_enc TO reg80_agent, reg80_clerk;
SELECT coalesce(max(seq), 0) AS seq4 FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
DELETE FROM reg80_enc WHERE enc_id = 3;     -- R80-P3: no consent at all
UPDATE reg80_enc SET enc_id = 30 WHERE enc_id = 3;
DELETE FROM reg80_enc WHERE enc_id = 4;     -- no protected row: fine
SELECT agentauth.end_session();
-- without a session: refused as any statement on the table would be
SET SESSION AUTHORIZATION reg80_clerk;
DELETE FROM reg80_enc WHERE enc_id = 1;
RESET SESSION AUTHORIZATION;
SET row_security = off;
SELECT * FROM reg80_encnote ORDER BY 1;
-- a superuser outside a session may (it bypasses row security anyway): audited
DELETE FROM reg80_enc WHERE enc_id = 3;
RESET row_security;
SELECT event, db_role, relation, action, row_count, outcome, detail
  FROM agentauth.audit_log
 WHERE seq > :seq4 AND relation = 'public.reg80_encnote'
   AND event IN ('denied', 'unregistered_access', 'privileged_access')
 ORDER BY seq;

-- 5. A WITH HOLD cursor is materialized at COMMIT and fetched from that
-- copy afterwards, past any revocation: refused in a session.  An ordinary
-- cursor stays checked at every FETCH (isolation spec revocation).
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok') IS NOT NULL AS began;
BEGIN;
DECLARE reg80_c CURSOR WITH HOLD FOR SELECT patient_id, lab FROM reg80_chart;
ROLLBACK;
BEGIN;
DECLARE reg80_c CURSOR FOR SELECT patient_id, lab FROM reg80_chart WHERE patient_id = 'R80-P1';
FETCH 1 FROM reg80_c;
COMMIT;
-- a held cursor over unprotected data is none of our business
BEGIN;
DECLARE reg80_h CURSOR WITH HOLD FOR SELECT 1 AS one;
COMMIT;
FETCH ALL FROM reg80_h;
CLOSE reg80_h;
-- a loop that commits inside it is held the same way at its first COMMIT
-- (its rest read into a store and fed from there): refused (1.0 let it
-- go on); a loop that does not commit stays checked at every row, and one
-- over unprotected rows may commit
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT patient_id, lab FROM reg80_chart WHERE patient_id = 'R80-P1' LOOP
    COMMIT;
  END LOOP;
END
$$;
DO $$
DECLARE r record; n int := 0;
BEGIN
  FOR r IN SELECT patient_id, lab FROM reg80_chart WHERE patient_id = 'R80-P1' LOOP
    n := n + 1;
  END LOOP;
  RAISE NOTICE 'rows: %', n;
END
$$;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT g FROM generate_series(1, 3) g LOOP
    COMMIT;
  END LOOP;
END
$$;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- 6. Its owner cannot drop, rename or move a protected table (another,
-- unprotected, could take its place, and a drop deletes every patient's
-- rows unchecked); a superuser may, and a drop is recorded.
SET ROLE reg80_owner;
ALTER TABLE reg80_s.notes RENAME TO notes_old;
ALTER TABLE reg80_s.notes SET SCHEMA public;
DROP TABLE reg80_s.notes;
DROP SCHEMA reg80_s CASCADE;
DROP OWNED BY reg80_owner;
RESET ROLE;
SELECT count(*) AS still_there FROM pg_class WHERE oid = 'reg80_s.notes'::regclass;
SET client_min_messages = warning;
DROP SCHEMA reg80_s CASCADE;
RESET client_min_messages;
SELECT event, relation, detail FROM agentauth.audit_log
 WHERE relation = 'reg80_s.notes' ORDER BY seq DESC LIMIT 1;

-- 7. TRUNCATE ... CASCADE of an unprotected table also empties the
-- protected tables whose foreign keys reference it: checked like a
-- TRUNCATE of the protected table itself.
CREATE TABLE reg80_tp (id int PRIMARY KEY);
CREATE TABLE reg80_tc (id int REFERENCES reg80_tp, patient_id text NOT NULL, lab text);
INSERT INTO reg80_tp VALUES (1);
INSERT INTO reg80_tc VALUES (1, 'R80-P1', 'x');
SELECT agentauth.protect_table('reg80_tc', 'patient_id', '{"id": "encounter", "lab": "lab"}');
ALTER TABLE reg80_tp OWNER TO reg80_owner;
ALTER TABLE reg80_tc OWNER TO reg80_owner;
SET ROLE reg80_owner;
TRUNCATE reg80_tc;
TRUNCATE reg80_tp CASCADE;
RESET ROLE;
SET row_security = off;
SELECT count(*) AS kept FROM reg80_tc;
RESET row_security;

-- 8. Two tokens of one agent cannot be combined in one statement.  Token
-- A may read lab but only of R80-P1; token B may read any patient but no
-- lab.  Switching to B inside a statement that was checked for A (here on
-- the outer side of a join, before the first protected row) would read
-- lab of every patient B's consent allows.
SELECT agentauth.issue_token(:'agent', 'TREATDS', scopes => '{lab:read}',
    patients => '{R80-P1}') AS tok_a \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS', scopes => '{diagnosis:read}') AS tok_b \gset
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok_a') IS NOT NULL AS began;
SELECT c.patient_id, c.lab
  FROM (SELECT agentauth.begin_session(:'tok_b') OFFSET 0) x
 CROSS JOIN reg80_chart c
 WHERE c.patient_id IN ('R80-P1', 'R80-P2') ORDER BY 1;
-- (the switch was rolled back with the statement)
SELECT scopes, patients FROM agentauth.whoami();
SELECT patient_id, lab FROM reg80_chart WHERE patient_id IN ('R80-P1', 'R80-P2') ORDER BY 1, 2;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- 9. A char(n) patient column.  Its values are padded with blanks; the row
-- check compares the patient as SQL's cast to text gives it, so a consent
-- for 'R80-P3' (here: a deny of lab) applies to 'R80-P3  ' too, and the
-- record names the patient as reports look it up.
SELECT agentauth.record_consent('R80-P3', 'deny', data_classes => '{lab}') IS NOT NULL AS denied;
CREATE DOMAIN reg80_mrn AS char(10);
CREATE TABLE reg80_padded (patient_id char(10) NOT NULL, lab text);
CREATE TABLE reg80_padded2 (patient_id reg80_mrn NOT NULL, lab text);
INSERT INTO reg80_padded VALUES ('R80-P1', 'pad1'), ('R80-P3', 'pad3');
INSERT INTO reg80_padded2 VALUES ('R80-P1', 'pad1'), ('R80-P3', 'pad3');
SELECT agentauth.protect_table('reg80_padded', 'patient_id', '{"lab": "lab"}');
SELECT agentauth.protect_table('reg80_padded2', 'patient_id', '{"lab": "lab"}');
GRANT SELECT ON reg80_padded, reg80_padded2 TO reg80_agent;
SELECT agentauth.issue_token(:'agent', 'TREAT') AS tok_treat \gset
SELECT coalesce(max(seq), 0) AS seq9 FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg80_agent;
SELECT agentauth.begin_session(:'tok_treat') IS NOT NULL AS began;
-- TREAT's default permits lab; R80-P3's deny wins
SELECT patient_id, lab FROM reg80_padded ORDER BY 1;
SELECT patient_id, lab FROM reg80_padded2 ORDER BY 1;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT event, '"' || patient || '"' AS patient, relation FROM agentauth.audit_log
 WHERE seq > :seq9 AND event IN ('access', 'denied') ORDER BY seq;
