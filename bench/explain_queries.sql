-- The four benchmark queries on clinic.:t, each under :explain (included by
-- explain.sql once per variant).
:explain SELECT code, value, effective FROM clinic.:t WHERE patient_id = :'p';
:explain SELECT code, value FROM clinic.:t WHERE patient_id = :'p' AND code LIKE '%GL%';
:explain SELECT count(*), avg(value) FROM clinic.:t WHERE patient_id BETWEEN 'P000100' AND 'P000300';
:explain SELECT count(*), avg(value) FROM clinic.:t;
