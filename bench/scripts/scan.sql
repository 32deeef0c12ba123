SELECT count(*), avg(value) FROM clinic.@T@;
