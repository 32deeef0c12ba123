\set p random(1, :npat)
SELECT code, value FROM clinic.@T@ WHERE patient_id = 'P' || lpad(:p::text, 6, '0') AND code LIKE '%GL%';
