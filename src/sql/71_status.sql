-- The audit writer's health in one row (src/status.c): what a monitoring
-- system scrapes.  Read from shared memory only: no table is read, nothing
-- is written, and it answers while the writer is down.  No PHI: auditors,
-- administrators and pg_monitor (the role postgres_exporter runs as) may
-- read it.
CREATE FUNCTION agentauth._status(
    OUT writer_state text,
    OUT writer_pid integer,
    OUT writer_since timestamptz,
    OUT queue_used_bytes bigint,
    OUT queue_capacity_bytes bigint,
    OUT queue_percent numeric,
    OUT oldest_unwritten_age interval,
    OUT records_written bigint,
    OUT records_per_second numeric,
    OUT last_seq bigint,
    OUT last_written_at timestamptz,
    OUT head_seq bigint,
    OUT head_hash text,
    OUT head_logged_at timestamptz,
    OUT failed_closed bigint,
    OUT last_failed_closed_at timestamptz,
    OUT audit_sync boolean,
    OUT audit_wait_timeout interval,
    OUT head_log_interval interval)
    RETURNS record
    LANGUAGE c VOLATILE PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aa_status';
REVOKE ALL ON FUNCTION agentauth._status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth._status() TO agentauth_auditor, agentauth_admin, pg_monitor;

CREATE VIEW agentauth.status AS
SELECT s.writer_state, s.writer_pid, s.writer_since,
       s.queue_used_bytes, s.queue_capacity_bytes, s.queue_percent,
       s.oldest_unwritten_age, s.records_written, s.records_per_second,
       s.last_seq, s.last_written_at,
       s.head_seq, s.head_hash, s.head_logged_at,
       s.failed_closed, s.last_failed_closed_at,
       s.audit_sync, s.audit_wait_timeout, s.head_log_interval
  FROM agentauth._status() s;
GRANT SELECT ON agentauth.status TO agentauth_auditor, agentauth_admin, pg_monitor;
