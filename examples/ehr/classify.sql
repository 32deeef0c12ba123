-- Classify the EHR example through protected schemas (issue "Real clinical
-- schemas", item 3): every table of schemas ehr and derived holds PHI and is
-- protected by its patient column -- the tables there now, and every table
-- made there later (a derived table rebuilt by DROP and CREATE TABLE AS
-- included), in the statement that makes it.  Schema ref (code lists) holds
-- no PHI and stays unprotected.  Run it as a member of agentauth_admin, after
-- schema.sql (and generate.sql, derived.sql):
--   psql -d clinical -v ON_ERROR_STOP=1 -f classify.sql

-- Classes by column name, across the schema's tables; a column named
-- nowhere here is refused (no default class): a new table's columns are
-- classified on purpose, not by accident.
SELECT agentauth.protect_schema('ehr', 'patient_id', '{
    "mrn":             "identifiers",
    "family_name":     "demographics",
    "given_name":      "demographics",
    "birth_date":      "demographics",
    "sex":             "demographics",
    "postal_code":     "demographics",
    "phone":           "contact",
    "encounter_id":    "encounter",
    "kind":            "encounter",
    "department":      "encounter",
    "admitted_at":     "encounter",
    "discharged_at":   "encounter",
    "diagnosis_id":    "diagnosis",
    "icd10":           "diagnosis",
    "recorded_at":     "diagnosis",
    "result_id":       "lab",
    "loinc":           "lab",
    "value":           "lab",
    "taken_at":        "lab",
    "vital_id":        "vital_signs",
    "heart_rate":      "vital_signs",
    "systolic":        "vital_signs",
    "diastolic":       "vital_signs",
    "temperature":     "vital_signs",
    "prescription_id": "medication",
    "drug":            "medication",
    "dose":            "medication",
    "route":           "medication",
    "started_at":      "medication",
    "stopped_at":      "medication",
    "note_id":         "clinical_note",
    "author":          "clinical_note",
    "written_at":      "clinical_note",
    "body":            "clinical_note",
    "test_id":         "hiv",
    "tested_at":       "hiv",
    "result":          "hiv",
    "screening_id":    "mental_health",
    "screened_at":     "mental_health",
    "phq9_score":      "mental_health",
    "claim_id":        "billing",
    "payer":           "billing",
    "amount":          "billing",
    "submitted_at":    "billing"
}');

-- Classify by what a row means, not by a column's name.  A row of
-- lab_results is a lab result, whatever column a statement names: its
-- encounter_id too (with "encounter" there, an agent with encounter in
-- scope counted and linked the lab results of a patient who had refused
-- lab data, and the log recorded it as encounter data -- an outside review
-- of 1.1).  So each table of one kind of data takes that class for every
-- column; the declaration above stays for tables made there later.
-- taken_at is a lab column by name; in the vital signs it is one of them
-- (protect_table reclassifies a protected table, every partition with it).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES ('ehr.diagnoses', 'diagnosis'), ('ehr.lab_results', 'lab'),
                                   ('ehr.vitals', 'vital_signs'), ('ehr.medications', 'medication'),
                                   ('ehr.notes', 'clinical_note'), ('ehr.billing', 'billing')) v(tbl, cls)
    LOOP
        IF to_regclass(t.tbl) IS NOT NULL THEN
            PERFORM agentauth.protect_table(t.tbl::regclass, 'patient_id', '{}', t.cls);
        END IF;
    END LOOP;
END
$$;

-- derived concept tables: whatever derived.sql makes there is lab data
SELECT agentauth.protect_schema('derived', 'patient_id', '{}', 'lab');
