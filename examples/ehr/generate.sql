-- Deterministic synthetic data for examples/ehr/schema.sql: the same rows on
-- every run (no random(): every value is a hash of the row's number).
--   psql -v patients=5000 -f generate.sql     (default 5000: ~370,000 rows)
\if :{?patients}
\else
\set patients 5000
\endif

-- a number in [0, 1) from a row number and a salt
CREATE FUNCTION pg_temp.r(i bigint, salt int) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT (hashint8(i * 7919 + salt) & 2147483647)::double precision / 2147483648
$$;
-- an element of an array, picked by r()
CREATE FUNCTION pg_temp.pick(a text[], i bigint, salt int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT a[1 + floor(pg_temp.r(i, salt) * cardinality(a))::int]
$$;

INSERT INTO ref.lab_codes VALUES
    ('718-7',   'Hemoglobin',          'g/dL',     12,   17),
    ('2345-7',  'Glucose',             'mg/dL',    70,   99),
    ('2160-0',  'Creatinine',          'mg/dL',    0.6,  1.3),
    ('2823-3',  'Potassium',           'mmol/L',   3.5,  5.1),
    ('2951-2',  'Sodium',              'mmol/L',   135,  145),
    ('4548-4',  'Hemoglobin A1c',      '%',        4,    5.6),
    ('33914-3', 'eGFR',                'mL/min',   60,   120),
    ('777-3',   'Platelets',           '10*3/uL',  150,  400);
INSERT INTO ref.diagnosis_codes VALUES
    ('E11.9', 'Type 2 diabetes mellitus'), ('I10', 'Essential hypertension'),
    ('N18.3', 'Chronic kidney disease, stage 3'), ('J45.909', 'Asthma'),
    ('J44.9', 'Chronic obstructive pulmonary disease'), ('M54.50', 'Low back pain'),
    ('E78.5', 'Hyperlipidemia'), ('I50.9', 'Heart failure'),
    ('Z00.00', 'General adult examination'), ('K21.9', 'Gastro-esophageal reflux disease');

INSERT INTO ehr.patients
SELECT i, 'MRN' || lpad(i::text, 8, '0'),
       pg_temp.pick('{Smith,Garcia,Nguyen,Okafor,Kowalski,Haddad,Lindqvist,Tanaka,Moreau,Ivanova}', i, 1),
       pg_temp.pick('{Ada,Ben,Chloe,Dev,Eva,Farid,Grace,Hugo,Ines,Jon,Kai,Lena}', i, 2),
       date '1930-01-01' + floor(pg_temp.r(i, 3) * 30000)::int,
       pg_temp.pick('{F,M,F,M,X}', i, 4),
       lpad((10000 + floor(pg_temp.r(i, 5) * 89999))::text, 5, '0'),
       '+1-555-' || lpad(floor(pg_temp.r(i, 6) * 10000)::text, 4, '0')
  FROM generate_series(1, :patients) i;

-- five encounters a patient, in 2025
INSERT INTO ehr.encounters
SELECT p * 10 + k, p,
       pg_temp.pick('{outpatient,outpatient,outpatient,inpatient,emergency}', p * 10 + k, 7),
       pg_temp.pick('{cardiology,nephrology,endocrinology,internal medicine,emergency,psychiatry}', p * 10 + k, 8),
       t, t + (1 + floor(pg_temp.r(p * 10 + k, 10) * 96)) * interval '1 hour'
  FROM generate_series(1, :patients) p, generate_series(1, 5) k,
       LATERAL (SELECT timestamptz '2025-01-01 00:00+00'
                       + floor(pg_temp.r(p * 10 + k, 9) * 360 * 24) * interval '1 hour' AS t) tt;

INSERT INTO ehr.diagnoses
SELECT p * 10 + k, p, p * 10 + 1 + (k % 5),
       pg_temp.pick('{E11.9,I10,N18.3,J45.909,J44.9,M54.50,E78.5,I50.9,Z00.00,K21.9}', p * 10 + k, 11),
       timestamptz '2025-01-01 00:00+00' + floor(pg_temp.r(p * 10 + k, 12) * 360) * interval '1 day'
  FROM generate_series(1, :patients) p, generate_series(1, 6) k;

-- thirty lab results a patient, around each code's normal range
INSERT INTO ehr.lab_results
SELECT p * 100 + k, p, p * 10 + 1 + (k % 5), c.loinc,
       round((c.low + (c.high - c.low) * (pg_temp.r(p * 100 + k, 14) * 1.6 - 0.3))::numeric, 2),
       timestamptz '2025-01-01 00:00+00' + floor(pg_temp.r(p * 100 + k, 15) * 360 * 24) * interval '1 hour'
  FROM generate_series(1, :patients) p, generate_series(1, 30) k,
       LATERAL (SELECT * FROM ref.lab_codes ORDER BY loinc
                 OFFSET floor(pg_temp.r(p * 100 + k, 13) * 8)::int LIMIT 1) c;

-- twenty vital-sign readings a patient, spread over the twelve partitions
INSERT INTO ehr.vitals
SELECT p * 100 + k, p,
       timestamptz '2025-01-01 00:00+00' + floor(pg_temp.r(p * 100 + k, 16) * 364 * 24) * interval '1 hour',
       55 + floor(pg_temp.r(p * 100 + k, 17) * 60)::int,
       100 + floor(pg_temp.r(p * 100 + k, 18) * 70)::int,
       60 + floor(pg_temp.r(p * 100 + k, 19) * 40)::int,
       round((36 + pg_temp.r(p * 100 + k, 20) * 3)::numeric, 1)
  FROM generate_series(1, :patients) p, generate_series(1, 20) k;

INSERT INTO ehr.medications
SELECT p * 10 + k, p, p * 10 + 1 + (k % 5),
       pg_temp.pick('{metformin,lisinopril,atorvastatin,albuterol,sertraline,tenofovir,furosemide,omeprazole}', p * 10 + k, 21),
       pg_temp.pick('{5 mg,10 mg,20 mg,40 mg,500 mg,1 g}', p * 10 + k, 22),
       pg_temp.pick('{oral,oral,oral,inhaled,intravenous}', p * 10 + k, 23),
       timestamptz '2025-01-01 00:00+00' + floor(pg_temp.r(p * 10 + k, 24) * 360) * interval '1 day',
       NULL
  FROM generate_series(1, :patients) p, generate_series(1, 6) k;

INSERT INTO ehr.notes
SELECT p * 10 + k, p, p * 10 + k,
       pg_temp.pick('{dr.grey,dr.house,dr.quinn,np.joy}', p * 10 + k, 25),
       timestamptz '2025-01-01 00:00+00' + floor(pg_temp.r(p * 10 + k, 26) * 360) * interval '1 day',
       'Patient seen for ' || pg_temp.pick('{follow-up,chest pain,shortness of breath,medication review,annual exam}', p * 10 + k, 27)
       || '. Plan: ' || pg_temp.pick('{continue current therapy,adjust dose,order labs,refer to specialist}', p * 10 + k, 28) || '.'
  FROM generate_series(1, :patients) p, generate_series(1, 2) k;

INSERT INTO ehr.hiv_tests
SELECT p, p, timestamptz '2025-01-01 00:00+00' + floor(pg_temp.r(p, 29) * 360) * interval '1 day',
       pg_temp.pick('{negative,negative,negative,negative,negative,negative,negative,negative,positive,indeterminate}', p, 30)
  FROM generate_series(1, :patients) p
 WHERE pg_temp.r(p, 31) < 0.4;

INSERT INTO ehr.mental_health
SELECT p, p, timestamptz '2025-01-01 00:00+00' + floor(pg_temp.r(p, 32) * 360) * interval '1 day',
       floor(pg_temp.r(p, 33) * 28)::int
  FROM generate_series(1, :patients) p
 WHERE pg_temp.r(p, 34) < 0.3;

INSERT INTO ehr.billing
SELECT e.encounter_id, e.patient_id, e.encounter_id,
       pg_temp.pick('{Medicare,Medicaid,BlueCross,Aetna,self-pay}', e.encounter_id, 35),
       round((50 + pg_temp.r(e.encounter_id, 36) * 5000)::numeric, 2),
       e.admitted_at + interval '3 days'
  FROM ehr.encounters e;

ANALYZE;
