\set p random(1, :npat)
\set r random(1, 10)
\if :r <= 7
SELECT code, value, effective FROM clinic.@T@ WHERE patient_id = 'P' || lpad(:p::text, 6, '0');
\elif :r <= 9
SELECT code, value FROM clinic.@T@ WHERE patient_id = 'P' || lpad(:p::text, 6, '0') AND code LIKE '%GL%';
\else
SELECT count(*), avg(value) FROM clinic.@T@
 WHERE patient_id BETWEEN 'P' || lpad(:p::text, 6, '0') AND 'P' || lpad((:p + 20)::text, 6, '0');
\endif
