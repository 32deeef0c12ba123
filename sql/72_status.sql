-- The audit writer's status view (agentauth.status): it exists, says what
-- it is, who may read it, and reports a running writer with plausible
-- numbers.  Values that depend on timing are shown as booleans.  The
-- writer stopped, stuck or failing is t/016_status.pl.
\set SHOW_CONTEXT never

-- the columns, in order, with their types
SELECT a.attname AS column, format_type(a.atttypid, a.atttypmod) AS type
  FROM pg_attribute a
 WHERE a.attrelid = 'agentauth.status'::regclass AND a.attnum > 0
 ORDER BY a.attnum;

-- who may read it: auditors, administrators, pg_monitor; not PUBLIC
CREATE ROLE reg72_auditor IN ROLE agentauth_auditor;
CREATE ROLE reg72_admin IN ROLE agentauth_admin;
CREATE ROLE reg72_monitor IN ROLE pg_monitor;
CREATE ROLE reg72_clerk;
SELECT r AS role, has_table_privilege(r, 'agentauth.status', 'SELECT') AS view,
       has_function_privilege(r, 'agentauth._status()', 'EXECUTE') AS function
  FROM unnest(ARRAY['reg72_auditor', 'reg72_admin', 'reg72_monitor', 'reg72_clerk']) r;
SET ROLE reg72_clerk;
SELECT writer_state FROM agentauth.status;
RESET ROLE;

-- a record written synchronously: the writer is running and has written it
SET agentauth.audit_sync = on;
SELECT agentauth._audit('reg72_probe');
SELECT writer_pid = (SELECT pid FROM pg_stat_activity
                      WHERE backend_type = 'agentauth audit writer') AS pid_is_the_writer
  FROM agentauth.status;
SET ROLE reg72_auditor;
SELECT writer_state = 'running' AS running,
       writer_since <= clock_timestamp() AS since_past,
       queue_capacity_bytes > 0 AS has_capacity,
       queue_used_bytes BETWEEN 0 AND queue_capacity_bytes AS used_within,
       queue_percent BETWEEN 0 AND 100 AS percent_within,
       oldest_unwritten_age < audit_wait_timeout AS not_late,
       records_written > 0 AS wrote,
       records_per_second > 0 AS recent_rate,
       last_seq >= (SELECT max(seq) FROM agentauth.audit_log WHERE event = 'reg72_probe') AS last_seq_covers,
       last_written_at <= clock_timestamp() AS written_past,
       head_seq BETWEEN 0 AND last_seq AS head_seq_ok,
       head_hash ~ '^[0-9a-f]{64}$' AS head_hash_hex,
       head_logged_at <= clock_timestamp() AS head_logged_past,
       failed_closed >= 0 AS failed_closed_counted,
       (failed_closed = 0) = (last_failed_closed_at IS NULL) AS failed_at_iff_failed,
       audit_sync, audit_wait_timeout, head_log_interval
  FROM agentauth.status;
RESET ROLE;

-- the head it shows is one the chain has, with that hash
SELECT s.head_seq = 0 OR EXISTS (SELECT 1 FROM agentauth.audit_log l
                                   WHERE l.seq = s.head_seq AND encode(l.row_hash, 'hex') = s.head_hash)
       AS head_in_chain
  FROM agentauth.status s;

-- the settings it shows are this session's
SET agentauth.audit_sync = off;
SELECT audit_sync FROM agentauth.status;
RESET agentauth.audit_sync;

-- comments
SELECT obj_description('agentauth.status'::regclass, 'pg_class') IS NOT NULL AS view_commented,
       obj_description('agentauth._status()'::regprocedure, 'pg_proc') LIKE 'agentauth internal%' AS function_internal;

DROP ROLE reg72_auditor, reg72_admin, reg72_monitor, reg72_clerk;
