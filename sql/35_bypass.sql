-- No laundering (SPEC 6.2, 6.3, 6.5, 6.8): views, SECURITY DEFINER
-- functions and policies cannot widen a session's access; roles outside
-- any session are refused and audited.
\set SHOW_CONTEXT never
CREATE ROLE reg35_agent LOGIN;
CREATE ROLE reg35_owner LOGIN;
CREATE ROLE reg35_stranger LOGIN;
CREATE TABLE reg35_dx (patient_id text NOT NULL, dx text);
ALTER TABLE reg35_dx OWNER TO reg35_owner;
INSERT INTO reg35_dx VALUES ('R35-P1', 'asthma'), ('R35-P2', 'flu'), ('R35-P3', 'gout');
SELECT agentauth.protect_table('reg35_dx', 'patient_id', '{"dx": "diagnosis"}');
GRANT SELECT ON reg35_dx TO reg35_agent, reg35_stranger;
CREATE ROLE reg35_reader LOGIN;
GRANT SELECT ON reg35_dx TO reg35_reader;
SELECT agentauth.register_agent('reg35-agent', 'reg35_agent', 'Triage AI', '{TREATDS}',
    '{diagnosis:read}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS secret \gset
SELECT agentauth.record_consent('R35-P1', 'permit', '{TREATDS}') AS c1 \gset
SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset

-- a view owned by a superuser would read as the superuser: refused
CREATE VIEW reg35_su_view AS SELECT patient_id, dx FROM reg35_dx;
GRANT SELECT ON reg35_su_view TO reg35_agent;
-- a SECURITY DEFINER function owned by a superuser: refused
CREATE FUNCTION reg35_su_func() RETURNS SETOF reg35_dx LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT patient_id, dx FROM public.reg35_dx $$;
GRANT EXECUTE ON FUNCTION reg35_su_func() TO reg35_agent;
-- a view owned by the table's owner (no bypass): checked as the session
CREATE VIEW reg35_owner_view AS SELECT patient_id, dx FROM reg35_dx;
ALTER VIEW reg35_owner_view OWNER TO reg35_owner;
GRANT SELECT ON reg35_owner_view TO reg35_agent;
-- the owner's own permissive policy widens nothing; a restrictive one narrows
CREATE POLICY reg35_all ON reg35_dx USING (true);
CREATE POLICY reg35_not_p2 ON reg35_dx AS RESTRICTIVE USING (patient_id <> 'R35-P2');

SET SESSION AUTHORIZATION reg35_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
SELECT patient_id, dx FROM reg35_dx ORDER BY 1;
SELECT patient_id, dx FROM reg35_su_view ORDER BY 1;
SELECT * FROM reg35_su_func();
SELECT patient_id, dx FROM reg35_owner_view ORDER BY 1;
RESET SESSION AUTHORIZATION;
DROP POLICY reg35_all ON reg35_dx;
DROP POLICY reg35_not_p2 ON reg35_dx;
SET SESSION AUTHORIZATION reg35_agent;
-- dropping every policy changes nothing
SELECT patient_id, dx FROM reg35_dx ORDER BY 1;
SELECT agentauth.end_session();
-- a principal's role without a session
SELECT dx FROM reg35_dx;
RESET SESSION AUTHORIZATION;
-- a login role that is no principal: refused and audited with its client
SET SESSION AUTHORIZATION reg35_stranger;
SET application_name = 'rogue-agent';
SELECT dx FROM reg35_dx;
RESET application_name;
RESET SESSION AUTHORIZATION;
SELECT event, db_role, patient, columns, action, outcome, detail->>'reason' AS reason,
       detail->>'application_name' AS app
  FROM agentauth.audit_log
 WHERE relation = 'public.reg35_dx' AND event IN ('denied', 'unregistered_access') AND seq > :seq0
 ORDER BY seq;
SELECT kind, role, relation, attempts, last_application_name
  FROM agentauth.unregistered_activity WHERE relation = 'public.reg35_dx' AND kind = 'attempt';
SELECT kind, role, relation, privileges, bypasses_rls
  FROM agentauth.unregistered_activity
 WHERE relation = 'public.reg35_dx' AND kind = 'privileged role' AND role LIKE 'reg35%' ORDER BY role;
-- the attempts are read by their own partial index, not a scan of the log
CREATE FUNCTION reg35_explain(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
    FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP RETURN NEXT l; END LOOP;
END $$;
SET enable_seqscan = off;
SELECT count(*) FILTER (WHERE p LIKE '%audit_log_unregistered_idx%') AS by_the_index,
       count(*) FILTER (WHERE p LIKE '%Seq Scan on audit_record%') AS log_scans
  FROM reg35_explain('SELECT * FROM agentauth.unregistered_activity WHERE kind = ''attempt''') p;
RESET enable_seqscan;

-- Maintenance that reads every row of a protected table (1.1, found by
-- review: none of it was recorded, and a failing statement wrote other
-- patients' values to the server log): a superuser's index builds,
-- ALTER TABLE rewrites and validations, CLUSTER, VACUUM FULL and ANALYZE
-- are privileged_access, recorded before the statement runs (a failing
-- one too).  The owner, whom row security binds, runs the same
-- maintenance unrecorded: PostgreSQL leaves the key out of its errors.
SELECT coalesce(max(seq), 0) AS seq35m FROM agentauth.audit_log \gset
CREATE INDEX reg35_dx_dx ON reg35_dx (dx);
CREATE UNIQUE INDEX reg35_dx_bad ON reg35_dx ((left(dx, 0)));
REINDEX INDEX reg35_dx_dx;
REINDEX TABLE reg35_dx;
CLUSTER reg35_dx USING reg35_dx_dx;
VACUUM FULL reg35_dx;
ANALYZE reg35_dx;
VACUUM (ANALYZE) reg35_dx;
ALTER TABLE reg35_dx ADD CONSTRAINT reg35_dx_len CHECK (length(dx) < 100);
ALTER TABLE reg35_dx ALTER COLUMN dx TYPE varchar(3);
VACUUM reg35_dx;
ALTER TABLE reg35_dx OWNER TO reg35_owner;
SET SESSION AUTHORIZATION reg35_owner;
REINDEX TABLE reg35_dx;
ANALYZE reg35_dx;
RESET SESSION AUTHORIZATION;
SELECT db_role, detail->>'command' AS command, detail->>'reason' AS reason, action, outcome
  FROM agentauth.audit_log
 WHERE relation = 'public.reg35_dx' AND event = 'privileged_access' AND seq > :seq35m
 ORDER BY seq;
