-- The benchmark queries on clinic.:t, each under :explain (included by
-- explain.sql once per variant): the point query, LIKE, the 2 % slice, the
-- mixed script's 21-patient range, the full scan.
:explain SELECT code, value, effective FROM clinic.:t WHERE patient_id = :'p';
:explain SELECT code, value FROM clinic.:t WHERE patient_id = :'p' AND code LIKE '%GL%';
:explain SELECT count(*), avg(value) FROM clinic.:t WHERE patient_id BETWEEN 'P000100' AND 'P000300';
:explain SELECT count(*), avg(value) FROM clinic.:t WHERE patient_id BETWEEN 'P000100' AND 'P000120';
:explain SELECT count(*), avg(value) FROM clinic.:t;
