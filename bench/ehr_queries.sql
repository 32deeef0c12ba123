-- Cohort queries over examples/ehr for bench/ehr.sh, of the kind clinical
-- studies publish.  bench/ehr.sh runs each as the agent (in its agentauth
-- session, database ehr) and as a superuser over views that keep only the
-- consenting patients' rows (database ehr_ref): the answers must be equal.
--
-- Format: a line "-- name: what it asks" starts a query; the query ends at
-- the first line that ends with ";".  Every answer is deterministic (ORDER
-- BY on every grouped result, ties broken by a key).  A query that names

-- ckd_diabetes: patients with chronic kidney disease (eGFR < 60) and type 2 diabetes
SELECT count(*) AS patients
  FROM ehr.patients p
 WHERE EXISTS (SELECT 1 FROM ehr.lab_results l
                WHERE l.patient_id = p.patient_id AND l.loinc = '33914-3' AND l.value < 60)
   AND EXISTS (SELECT 1 FROM ehr.diagnoses d
                WHERE d.patient_id = p.patient_id AND d.icd10 = 'E11.9');

-- latest_hba1c: each patient's latest HbA1c: patients, mean, above the normal range
SELECT count(*) AS patients, round(avg(latest.value), 3) AS mean_hba1c,
       count(*) FILTER (WHERE latest.value > c.high) AS above_range
  FROM (SELECT DISTINCT ON (patient_id) patient_id, value
          FROM ehr.lab_results
         WHERE loinc = '4548-4'
         ORDER BY patient_id, taken_at DESC, result_id DESC) latest
  JOIN ref.lab_codes c ON c.loinc = '4548-4';

-- inpatient_creatinine: creatinine during inpatient stays, by sex (patients x encounters x lab_results)
SELECT p.sex, count(DISTINCT e.encounter_id) AS stays, count(*) AS results,
       round(avg(l.value), 3) AS mean_creatinine
  FROM ehr.patients p
  JOIN ehr.encounters e ON e.patient_id = p.patient_id
  JOIN ehr.lab_results l ON l.encounter_id = e.encounter_id
 WHERE e.kind = 'inpatient' AND l.loinc = '2160-0'
 GROUP BY p.sex
 ORDER BY p.sex;

-- hypertension_treated: hypertensive patients on lisinopril, by age band at 2025-01-01
SELECT width_bucket(extract(year FROM age(date '2025-01-01', p.birth_date)), 0, 100, 5) AS age_band,
       count(*) AS hypertensive,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM ehr.medications m
                                       WHERE m.patient_id = p.patient_id AND m.drug = 'lisinopril')) AS on_lisinopril
  FROM ehr.patients p
 WHERE EXISTS (SELECT 1 FROM ehr.diagnoses d WHERE d.patient_id = p.patient_id AND d.icd10 = 'I10')
 GROUP BY 1
 ORDER BY 1;

-- readmission_30d: inpatient stays followed by an inpatient or emergency admission within 30 days
SELECT count(*) AS index_stays,
       count(*) FILTER (WHERE next_kind IN ('inpatient', 'emergency')
                          AND next_admit <= discharged_at + interval '30 days') AS readmitted_30d
  FROM (SELECT e.kind, e.discharged_at,
               lead(e.admitted_at) OVER w AS next_admit,
               lead(e.kind) OVER w AS next_kind
          FROM ehr.encounters e
        WINDOW w AS (PARTITION BY e.patient_id ORDER BY e.admitted_at, e.encounter_id)) s
 WHERE kind = 'inpatient';

-- lab_panel: every lab code over all results: count, mean, share out of range (a full scan)
SELECT c.name, count(*) AS results, round(avg(l.value), 3) AS mean,
       round(avg((l.value NOT BETWEEN c.low AND c.high)::int), 4) AS out_of_range
  FROM ehr.lab_results l
  JOIN ref.lab_codes c ON c.loinc = l.loinc
 GROUP BY c.name
 ORDER BY c.name;

-- polypharmacy: patients with four or more distinct drugs, and their diagnoses per patient
SELECT count(*) AS patients, round(avg(dx.n), 3) AS diagnoses_per_patient
  FROM (SELECT patient_id FROM ehr.medications
         GROUP BY patient_id HAVING count(DISTINCT drug) >= 4) poly
  JOIN LATERAL (SELECT count(*) AS n FROM ehr.diagnoses d
                 WHERE d.patient_id = poly.patient_id) dx ON true;

-- kidney_by_sex: the derived concept table joined to demographics
SELECT p.sex, count(*) AS with_kidney_labs,
       count(*) FILTER (WHERE k.egfr_below_60) AS egfr_below_60,
       round(avg(k.max_creatinine), 3) AS mean_max_creatinine
  FROM derived.kidney_function k
  JOIN ehr.patients p ON p.patient_id = k.patient_id
 GROUP BY p.sex
 ORDER BY p.sex;

-- vitals_by_month: mean blood pressure by month from the partitioned vital signs, first quarter
SELECT date_trunc('month', taken_at AT TIME ZONE 'UTC') AS month, count(*) AS readings,
       round(avg(systolic), 2) AS mean_systolic, round(avg(diastolic), 2) AS mean_diastolic
  FROM ehr.vitals
 WHERE taken_at >= '2025-01-01 00:00+00' AND taken_at < '2025-04-01 00:00+00'
 GROUP BY 1
 ORDER BY 1;
