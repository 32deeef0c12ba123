-- Protecting tables: classification in security labels, errors that name
-- the column, row security that DDL cannot switch off.
\set SHOW_CONTEXT never
CREATE ROLE reg30_admin LOGIN;
GRANT agentauth_admin TO reg30_admin;
CREATE ROLE reg30_owner LOGIN;
CREATE TABLE public.reg30_lab (
    id          serial PRIMARY KEY,
    patient_id  text NOT NULL,
    test        text,
    result      numeric,
    hiv_status  text,
    note        text,
    ward        text
);
ALTER TABLE public.reg30_lab OWNER TO reg30_owner;
GRANT ALL ON public.reg30_lab TO PUBLIC;

SET ROLE reg30_admin;
-- a column left unclassified is an error naming it
SELECT agentauth.protect_table('reg30_lab', 'patient_id',
    '{"test": "lab", "result": "lab", "hiv_status": "hiv"}');
-- unknown column, unknown class, malformed JSON, the patient column classified
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '{"nope": "lab"}', 'lab');
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '{"test": "labz"}', 'lab');
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '["test"]', 'lab');
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '{"test": 3}', 'lab');
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '{"patient_id": "identifiers"}', 'lab');
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '{}', 'no_such_class');
SELECT agentauth.protect_table('reg30_lab', 'no_such_col', '{}', 'lab');
SELECT agentauth.protect_table('reg30_lab', 'patient_id', NULL, 'lab');
-- nothing was written by the failures
SELECT count(*) FROM pg_seclabel WHERE provider = 'agentauth';
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'reg30_lab'::regclass;

SELECT agentauth.protect_table('reg30_lab', 'patient_id',
    '{"id": "non_phi", "test": "lab", "result": "lab", "hiv_status": "hiv", "note": "clinical_note", "ward": "non_phi"}');
SELECT relation, column_name, data_class, sensitive, patient_column
  FROM agentauth.protected_columns WHERE relation = 'reg30_lab'::regclass ORDER BY column_name;
SELECT objsubid, label FROM pg_seclabel WHERE objoid = 'reg30_lab'::regclass ORDER BY objsubid;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'reg30_lab'::regclass;

RESET ROLE;
-- the label provider refuses unknown classes, a missing patient column, and
-- removing the table label; a valid relabel works with standard SQL (here as
-- a superuser: SECURITY LABEL needs the table's owner as well)
SECURITY LABEL FOR agentauth ON COLUMN reg30_lab.note IS 'clinical_notes';
SECURITY LABEL FOR agentauth ON COLUMN reg30_lab.patient_id IS 'lab';
SECURITY LABEL FOR agentauth ON TABLE reg30_lab IS 'patient=nobody';
SECURITY LABEL FOR agentauth ON TABLE reg30_lab IS 'patient_id';
SECURITY LABEL FOR agentauth ON TABLE reg30_lab IS 'patient=patient_id;approve=insert,burn';
SECURITY LABEL FOR agentauth ON TABLE reg30_lab IS NULL;
SECURITY LABEL FOR agentauth ON COLUMN reg30_lab.note IS 'mental_health';
SELECT column_name, data_class, sensitive FROM agentauth.protected_columns
 WHERE relation = 'reg30_lab'::regclass AND column_name = 'note';
SELECT event, relation, detail FROM agentauth.audit_log
 WHERE event = 'table_protected' AND detail->>'via' = 'security label'
   AND relation LIKE 'public.reg30%';
-- only an agentauth_admin (or a superuser) sets our labels, not the table owner
SET ROLE reg30_owner;
SECURITY LABEL FOR agentauth ON COLUMN reg30_lab.note IS 'non_phi';
-- row security cannot be switched off, nor the patient column dropped or renamed
ALTER TABLE reg30_lab DISABLE ROW LEVEL SECURITY;
ALTER TABLE reg30_lab NO FORCE ROW LEVEL SECURITY;
ALTER TABLE reg30_lab DROP COLUMN patient_id;
ALTER TABLE reg30_lab RENAME COLUMN patient_id TO pid;
-- dropping user policies changes nothing: there are none to drop, and a
-- permissive policy of the owner's does not widen anything
CREATE POLICY reg30_everything ON reg30_lab USING (true);
-- the owner without a session gets 42501, reading or writing
SELECT test FROM reg30_lab;
\echo SQLSTATE :LAST_ERROR_SQLSTATE
INSERT INTO reg30_lab (patient_id, test) VALUES ('P1', 'hb');
TRUNCATE reg30_lab;
COPY reg30_lab (patient_id, test) TO stdout;
RESET ROLE;
-- an inheritance child would escape the checks
CREATE TABLE reg30_child () INHERITS (reg30_lab);
-- a superuser is let through, and audited as privileged_access
INSERT INTO reg30_lab (patient_id, test, result, hiv_status, note, ward)
VALUES ('P1', 'hb', 13.5, 'neg', 'fine', 'A'), ('P2', 'hb', 11.0, 'pos', 'tired', 'B');
SELECT patient_id, test FROM reg30_lab ORDER BY id;
COPY reg30_lab (patient_id, result) TO stdout;
SELECT event, relation, columns, action, outcome, detail->>'reason' AS reason
  FROM agentauth.audit_log WHERE relation = 'public.reg30_lab' AND event = 'privileged_access'
 ORDER BY seq;

-- a new column is unclassified until classified
ALTER TABLE reg30_lab ADD COLUMN extra text;
SELECT column_name, data_class FROM agentauth.protected_columns
 WHERE relation = 'reg30_lab'::regclass AND data_class IS NULL ORDER BY 1;

-- require_approval stores the requirement in the table label
SET ROLE reg30_admin;
SELECT agentauth.require_approval('reg30_lab', '{update,delete}');
SELECT agentauth.require_approval('reg30_lab', '{insert,fly}');
SELECT label FROM pg_seclabel WHERE objoid = 'reg30_lab'::regclass AND objsubid = 0;
-- reclassifying keeps the approval requirement
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '{"extra": "non_phi"}', 'lab');
SELECT label FROM pg_seclabel WHERE objoid = 'reg30_lab'::regclass AND objsubid = 0;
SELECT agentauth.require_approval('reg30_lab', '{}');
SELECT label FROM pg_seclabel WHERE objoid = 'reg30_lab'::regclass AND objsubid = 0;

-- unprotecting needs a reason, and is audited
SELECT agentauth.unprotect_table('reg30_lab', '');
SELECT agentauth.unprotect_table('reg30_lab', 'table retired');
SELECT agentauth.unprotect_table('reg30_lab', 'again');
SELECT count(*) FROM pg_seclabel WHERE objoid = 'reg30_lab'::regclass;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'reg30_lab'::regclass;
RESET ROLE;
SELECT event, relation, detail - 'column_classes' AS detail FROM agentauth.audit_log
 WHERE event IN ('table_protected', 'table_unprotected') AND relation LIKE '%reg30_lab%' ORDER BY seq;

-- nobody else may protect
SET ROLE reg30_owner;
SELECT agentauth.protect_table('reg30_lab', 'patient_id', '{}', 'lab');
RESET ROLE;

-- a table labelled by hand, with row security never switched on: no role
-- that row security would bind reads it (fail closed)
CREATE TABLE reg30_raw (patient_id text, note text);
INSERT INTO reg30_raw VALUES ('P1', 'x');
SECURITY LABEL FOR agentauth ON TABLE reg30_raw IS 'patient=patient_id';
SECURITY LABEL FOR agentauth ON COLUMN reg30_raw.note IS 'clinical_note';
GRANT SELECT ON reg30_raw TO reg30_owner;
SET ROLE reg30_owner;
SELECT note FROM reg30_raw;
TRUNCATE reg30_raw;
RESET ROLE;
SELECT agentauth.protect_table('reg30_raw', 'patient_id', '{"note": "clinical_note"}');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'reg30_raw'::regclass;
