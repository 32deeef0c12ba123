-- Rebuild a derived "concept" table the way clinical concept scripts do:
-- drop it and create it again from the source tables.  Run it as often as
-- the data changes.  Once classify.sql declared schema derived protected,
-- the new table is protected by the CREATE TABLE AS that makes it (with
-- the schema's classes); dropping a protected table takes a superuser (it
-- is recorded as table_unprotected), and so does reading ehr.lab_results
-- outside a session (recorded as privileged_access).
--
-- Nothing but pg_catalog on the search_path: a superuser's statement runs
-- whatever operator its path finds, and "$user" or public may hold one
-- that another role made (l.value < 60 is numeric < integer, for which a
-- role's own operator is a better match than pg_catalog's; README, "No
-- code of other roles in a session").
SET search_path = pg_catalog, pg_temp;
DROP TABLE IF EXISTS derived.kidney_function;
CREATE TABLE derived.kidney_function AS
SELECT l.patient_id,
       max(l.value) FILTER (WHERE l.loinc = '2160-0') AS max_creatinine,
       min(l.value) FILTER (WHERE l.loinc = '33914-3') AS min_egfr,
       bool_or(l.loinc = '33914-3' AND l.value < 60) AS egfr_below_60,
       count(*) AS results
  FROM ehr.lab_results l
 WHERE l.loinc IN ('2160-0', '33914-3')
 GROUP BY l.patient_id;
ALTER TABLE derived.kidney_function ADD PRIMARY KEY (patient_id);
