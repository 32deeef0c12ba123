\set a random(1, :npat - :npat / 50)
SELECT count(*), avg(value) FROM clinic.@T@
 WHERE patient_id BETWEEN 'P' || lpad(:a::text, 6, '0') AND 'P' || lpad((:a + :npat / 50)::text, 6, '0');
