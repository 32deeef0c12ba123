-- An EHR-shaped example schema for agentauth (issue "Real clinical
-- schemas"): integer patient ids, foreign keys between the tables that hold
-- PHI, a time-partitioned event table, reference tables without PHI, and a
-- derived "concept" table that a script drops and rebuilds.  Ours: written
-- for this project, with deterministic synthetic data (generate.sql).
--
--   ehr.patients            demographics, identifiers        (one row a patient)
--   ehr.encounters          visits and admissions             -> patients
--   ehr.diagnoses           problem list (ICD-10)             -> patients, encounters
--   ehr.lab_results         laboratory results (LOINC)        -> patients, encounters
--   ehr.vitals              vital signs, partitioned by month -> patients
--   ehr.medications         prescriptions                     -> patients, encounters
--   ehr.notes               free-text clinical notes          -> patients, encounters
--   ehr.hiv_tests           HIV testing (sensitive)           -> patients
--   ehr.mental_health       PHQ-9 screenings (sensitive)      -> patients
--   ehr.billing             claims                            -> patients, encounters
--   ref.lab_codes           LOINC codes used here (no PHI)
--   ref.diagnosis_codes     ICD-10 codes used here (no PHI)
--   derived.kidney_function one row a patient, rebuilt by derived.sql

CREATE SCHEMA ehr;
CREATE SCHEMA ref;
CREATE SCHEMA derived;

CREATE TABLE ref.lab_codes (
    loinc       text PRIMARY KEY,
    name        text NOT NULL,
    unit        text NOT NULL,
    low         numeric NOT NULL,
    high        numeric NOT NULL
);
CREATE TABLE ref.diagnosis_codes (
    icd10       text PRIMARY KEY,
    name        text NOT NULL
);

CREATE TABLE ehr.patients (
    patient_id  integer PRIMARY KEY,
    mrn         text NOT NULL UNIQUE,
    family_name text NOT NULL,
    given_name  text NOT NULL,
    birth_date  date NOT NULL,
    sex         text NOT NULL CHECK (sex IN ('F', 'M', 'X')),
    postal_code text,
    phone       text
);

CREATE TABLE ehr.encounters (
    encounter_id bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    kind         text NOT NULL CHECK (kind IN ('outpatient', 'inpatient', 'emergency')),
    department   text NOT NULL,
    admitted_at  timestamptz NOT NULL,
    discharged_at timestamptz
);
CREATE INDEX ON ehr.encounters (patient_id);

CREATE TABLE ehr.diagnoses (
    diagnosis_id bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    encounter_id bigint REFERENCES ehr.encounters,
    icd10        text NOT NULL REFERENCES ref.diagnosis_codes,
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX ON ehr.diagnoses (patient_id);

CREATE TABLE ehr.lab_results (
    result_id    bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    encounter_id bigint REFERENCES ehr.encounters,
    loinc        text NOT NULL REFERENCES ref.lab_codes,
    value        numeric NOT NULL,
    taken_at     timestamptz NOT NULL
);
CREATE INDEX ON ehr.lab_results (patient_id, loinc);

-- vital signs: the event table, partitioned by month (2025)
CREATE TABLE ehr.vitals (
    vital_id     bigint NOT NULL,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    taken_at     timestamptz NOT NULL,
    heart_rate   integer,
    systolic     integer,
    diastolic    integer,
    temperature  numeric(4, 1),
    PRIMARY KEY (vital_id, taken_at)
) PARTITION BY RANGE (taken_at);
DO $$
BEGIN
    FOR m IN 1..12 LOOP
        EXECUTE format('CREATE TABLE ehr.vitals_2025_%s PARTITION OF ehr.vitals
                            FOR VALUES FROM (%L) TO (%L)',
                       lpad(m::text, 2, '0'),
                       make_date(2025, m, 1),
                       make_date(2025, m, 1) + interval '1 month');
    END LOOP;
END
$$;
CREATE INDEX ON ehr.vitals (patient_id, taken_at);

CREATE TABLE ehr.medications (
    prescription_id bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    encounter_id bigint REFERENCES ehr.encounters,
    drug         text NOT NULL,
    dose         text NOT NULL,
    route        text NOT NULL,
    started_at   timestamptz NOT NULL,
    stopped_at   timestamptz
);
CREATE INDEX ON ehr.medications (patient_id);

CREATE TABLE ehr.notes (
    note_id      bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    encounter_id bigint REFERENCES ehr.encounters,
    author       text NOT NULL,
    written_at   timestamptz NOT NULL,
    body         text NOT NULL
);
CREATE INDEX ON ehr.notes (patient_id);

CREATE TABLE ehr.hiv_tests (
    test_id      bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    tested_at    timestamptz NOT NULL,
    result       text NOT NULL CHECK (result IN ('negative', 'positive', 'indeterminate'))
);
CREATE INDEX ON ehr.hiv_tests (patient_id);

CREATE TABLE ehr.mental_health (
    screening_id bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    screened_at  timestamptz NOT NULL,
    phq9_score   integer NOT NULL CHECK (phq9_score BETWEEN 0 AND 27)
);
CREATE INDEX ON ehr.mental_health (patient_id);

CREATE TABLE ehr.billing (
    claim_id     bigint PRIMARY KEY,
    patient_id   integer NOT NULL REFERENCES ehr.patients,
    encounter_id bigint NOT NULL REFERENCES ehr.encounters,
    payer        text NOT NULL,
    amount       numeric(10, 2) NOT NULL,
    submitted_at timestamptz NOT NULL
);
CREATE INDEX ON ehr.billing (patient_id);
