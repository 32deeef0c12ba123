-- The audit log (SPEC 10): append-only protection, the chain head, the two
-- verifiers and retention.  The writer (a background worker) is the only
-- inserter; see src/audit*.c, src/chain.c and src/utility.c.

-- The records of the units (agentauth.audit_record, 01_schema.sql), one
-- row per entry, with the unit's patients (unit_patients).  The view
-- unnests every unit: a query that names a patient finds its units by the
-- GIN index on their patients' hashes first, as _patient_log below does.  A unit's entry i (from 1) has seq
-- seq + i - 1; its kind k says event and outcome (k / 3: 0 access/permit,
-- 1 denied/deny) and purpose (k % 3: 0 the unit's, 1 'BTG', 2 NULL).  A
-- permit by one consent is stored as the consent's id (entry_consents,
-- unit.c) and shown as the authority it is, {"consents": ["<id>"]}: in C
-- for the view and the reports, in SQL for the SQL verifier and the export
-- (_entry_authorities, independent of the C encoder).  Both helpers are
-- functions of their arguments only, executable by everyone as the
-- _canon_* functions are: whoever may read the view or encode a row calls
-- them.
CREATE FUNCTION agentauth._consent_authority(c uuid) RETURNS jsonb
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aa_consent_authority';
-- A unit's authorities as the canonical encoding and the export have them:
-- a's elements, each consent id of c (where not NULL) as its authority; as
-- many elements as the longer array (the verifiers flag arrays that
-- disagree); NULL when a is.
CREATE FUNCTION agentauth._entry_authorities(a jsonb[], c uuid[]) RETURNS jsonb[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN a IS NULL OR c IS NULL THEN a
           ELSE ARRAY(SELECT CASE WHEN y IS NULL THEN x
                                  ELSE ('{"consents": ["' OPERATOR(pg_catalog.||) y::pg_catalog.text
                                        OPERATOR(pg_catalog.||) '"]}')::pg_catalog.jsonb END
                        FROM ROWS FROM (pg_catalog.unnest(a), pg_catalog.unnest(c))
                             WITH ORDINALITY AS t(x, y, o)
                       ORDER BY o) END
$$;

CREATE VIEW agentauth._audit_entries AS
SELECT r.seq OPERATOR(pg_catalog.+) e.ord OPERATOR(pg_catalog.-) 1 AS seq,
       r.logged_at,
       CASE e.kind OPERATOR(pg_catalog./) 3 WHEN 0 THEN 'access' WHEN 1 THEN 'denied' END AS event,
       r.principal, r.principal_name, r.db_role, r.token, r.on_behalf_of,
       r.delegation_chain,
       CASE e.kind OPERATOR(pg_catalog.%) 3 WHEN 0 THEN r.purpose WHEN 1 THEN 'BTG' END AS purpose,
       e.patient, r.relation, r.columns, r.data_classes, r.action,
       e.row_count,
       COALESCE(agentauth._consent_authority(e.consent), e.authority) AS authority,
       CASE e.kind OPERATOR(pg_catalog./) 3 WHEN 0 THEN 'permit' WHEN 1 THEN 'deny' END AS outcome,
       r.statement, r.client, r.detail, r.prev_hash, r.row_hash,
       r.seq AS unit_seq, r.entry_patients AS unit_patients
  FROM agentauth.audit_record r
 CROSS JOIN LATERAL ROWS FROM (pg_catalog.unnest(r.entry_kinds),
                               pg_catalog.unnest(r.entry_patients),
                               pg_catalog.unnest(r.entry_row_counts),
                               pg_catalog.unnest(r.entry_authorities),
                               pg_catalog.unnest(r.entry_consents))
       WITH ORDINALITY AS e(kind, patient, row_count, authority, consent, ord)
 WHERE r.entry_kinds IS NOT NULL;

-- The log as SPEC 10 defines it: one row per record, version 1 records as
-- stored, each entry of a unit as its own record (prev_hash and row_hash
-- are the unit's: the hash covers the unit).
CREATE VIEW agentauth.audit_log AS
SELECT r.seq, r.logged_at, r.event, r.principal, r.principal_name, r.db_role,
       r.token, r.on_behalf_of, r.delegation_chain, r.purpose, r.patient,
       r.relation, r.columns, r.data_classes, r.action, r.row_count,
       r.authority, r.outcome, r.statement, r.client, r.detail, r.prev_hash,
       r.row_hash
  FROM agentauth.audit_record r
 WHERE r.entry_kinds IS NULL
UNION ALL
SELECT e.seq, e.logged_at, e.event, e.principal, e.principal_name, e.db_role,
       e.token, e.on_behalf_of, e.delegation_chain, e.purpose, e.patient,
       e.relation, e.columns, e.data_classes, e.action, e.row_count,
       e.authority, e.outcome, e.statement, e.client, e.detail, e.prev_hash,
       e.row_hash
  FROM agentauth._audit_entries e;

-- A unit's entries of one patient (patient_log.c): their ordinals in
-- storage order (the view's WITH ORDINALITY), and one field of an entry by
-- ordinal, whatever the arrays' bounds or dimensions (a tampered unit is
-- reported as the view shows it, and flagged by the verifiers).
CREATE FUNCTION agentauth._entry_positions(patients text[], p text) RETURNS integer[]
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aa_entry_positions';
REVOKE ALL ON FUNCTION agentauth._entry_positions(text[], text) FROM PUBLIC;
CREATE FUNCTION agentauth._entry_at(a anyarray, ord integer) RETURNS anyelement
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aa_entry_at';
REVOKE ALL ON FUNCTION agentauth._entry_at(anyarray, integer) FROM PUBLIC;

-- One patient's records logged from since to until, found by index: the
-- version 1 records by (patient, logged_at), the units' entries by
-- _patient_entries (patient_log.c), which reads each unit the GIN index on
-- the units' patients finds once -- its time first, then its patients byte
-- for byte, each entry of p as the view shows it.  (Before, SQL: a bitmap
-- scan, a ProjectSet of each unit's ordinals and a call per field of each
-- entry, each reading its array whole again; bench/README.md, "Per-patient
-- reports".)  The version 1 records are found by p compared under the
-- btree's collation, "C": an argument of the column's collation, or of
-- another (a name, a column COLLATE "POSIX"), would keep the btree out of
-- the plan.  Equality is the same under any deterministic collation.
-- SQL, STABLE, one query: the planner inlines it into the reports.
CREATE FUNCTION agentauth._patient_entries(p text, since timestamptz, until timestamptz)
    RETURNS SETOF agentauth.audit_log
    LANGUAGE c STABLE STRICT ROWS 100
    AS 'MODULE_PATHNAME', 'aa_patient_entries';
REVOKE ALL ON FUNCTION agentauth._patient_entries(text, timestamptz, timestamptz) FROM PUBLIC;
CREATE FUNCTION agentauth._patient_log(p text, since timestamptz, until timestamptz)
    RETURNS SETOF agentauth.audit_log
    LANGUAGE sql STABLE
AS $$
SELECT r.seq, r.logged_at, r.event, r.principal, r.principal_name, r.db_role,
       r.token, r.on_behalf_of, r.delegation_chain, r.purpose, r.patient,
       r.relation, r.columns, r.data_classes, r.action, r.row_count,
       r.authority, r.outcome, r.statement, r.client, r.detail, r.prev_hash,
       r.row_hash
  FROM agentauth.audit_record r
 WHERE r.entry_kinds IS NULL AND r.patient OPERATOR(pg_catalog.=) (p COLLATE "C")
   AND r.logged_at OPERATOR(pg_catalog.>=) since
   AND r.logged_at OPERATOR(pg_catalog.<=) until
UNION ALL
SELECT * FROM agentauth._patient_entries(p, since, until)
$$;
REVOKE ALL ON FUNCTION agentauth._patient_log(text, timestamptz, timestamptz) FROM PUBLIC;

-- The records with seq from lo to hi, found by the primary key: the unit
-- holding lo, and the rows up to hi.  The audit feed (tools/aa_feed) reads
-- its next batch so: a window of the log, its cost that of the batch,
-- where _log_from(lo) ... ORDER BY seq LIMIT n read and sorted every
-- record after lo (3.5 s a batch at 10 M records behind).
CREATE FUNCTION agentauth._log_between(lo bigint, hi bigint) RETURNS SETOF agentauth.audit_log
    LANGUAGE sql STABLE
AS $$
SELECT r.seq, r.logged_at, r.event, r.principal, r.principal_name, r.db_role,
       r.token, r.on_behalf_of, r.delegation_chain, r.purpose, r.patient,
       r.relation, r.columns, r.data_classes, r.action, r.row_count,
       r.authority, r.outcome, r.statement, r.client, r.detail, r.prev_hash,
       r.row_hash
  FROM agentauth.audit_record r
 WHERE r.entry_kinds IS NULL
   AND r.seq OPERATOR(pg_catalog.>=) lo AND r.seq OPERATOR(pg_catalog.<=) hi
UNION ALL
SELECT e.seq, e.logged_at, e.event, e.principal, e.principal_name, e.db_role,
       e.token, e.on_behalf_of, e.delegation_chain, e.purpose, e.patient,
       e.relation, e.columns, e.data_classes, e.action, e.row_count,
       e.authority, e.outcome, e.statement, e.client, e.detail, e.prev_hash,
       e.row_hash
  FROM agentauth._audit_entries e
 WHERE e.unit_seq OPERATOR(pg_catalog.>=) (SELECT COALESCE(pg_catalog.max(u.seq), lo)
                                             FROM agentauth.audit_record u
                                            WHERE u.seq OPERATOR(pg_catalog.<=) lo)
   AND e.unit_seq OPERATOR(pg_catalog.<=) hi
   AND e.seq OPERATOR(pg_catalog.>=) lo AND e.seq OPERATOR(pg_catalog.<=) hi
$$;
REVOKE ALL ON FUNCTION agentauth._log_between(bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth._log_between(bigint, bigint) TO agentauth_auditor;

-- The records from seq lo on: the window from lo to the end of the log.
CREATE FUNCTION agentauth._log_from(lo bigint) RETURNS SETOF agentauth.audit_log
    LANGUAGE sql STABLE
AS $$
SELECT l.* FROM agentauth._log_between(lo, 9223372036854775807) l
$$;
REVOKE ALL ON FUNCTION agentauth._log_from(bigint) FROM PUBLIC;
-- for an auditor's own queries (the audit feed reads _log_next)
GRANT EXECUTE ON FUNCTION agentauth._log_from(bigint) TO agentauth_auditor;

-- The feed's next batch: the records of the n seqs from the first one after
-- seq after that the log holds.  That is after + 1 when a stored row (a
-- record, or a unit's entries) covers it; otherwise the next stored row:
-- the log's first after a purge, or the first after a hole that tampering
-- left (verify_audit reports it) -- a feed moves on instead of waiting on an
-- empty window for ever.
CREATE FUNCTION agentauth._log_next(after bigint, n integer) RETURNS SETOF agentauth.audit_log
    LANGUAGE sql STABLE
AS $$
SELECT l.*
  FROM (SELECT CASE WHEN (SELECT (after OPERATOR(pg_catalog.+) 1 OPERATOR(pg_catalog.-) r.seq)
                                 OPERATOR(pg_catalog.<)
                                 COALESCE(GREATEST(pg_catalog.cardinality(r.entry_kinds),
                                                   pg_catalog.cardinality(r.entry_patients),
                                                   pg_catalog.cardinality(r.entry_row_counts),
                                                   pg_catalog.cardinality(r.entry_authorities),
                                                   pg_catalog.cardinality(r.entry_consents)), 1)
                            FROM agentauth.audit_record r
                           WHERE r.seq OPERATOR(pg_catalog.<=) (after OPERATOR(pg_catalog.+) 1)
                           ORDER BY r.seq DESC LIMIT 1)
               THEN after OPERATOR(pg_catalog.+) 1
               ELSE (SELECT pg_catalog.min(r.seq) FROM agentauth.audit_record r
                      WHERE r.seq OPERATOR(pg_catalog.>) after)
          END AS lo) w,
       agentauth._log_between(w.lo, w.lo OPERATOR(pg_catalog.+) n OPERATOR(pg_catalog.-) 1) l
$$;
REVOKE ALL ON FUNCTION agentauth._log_next(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth._log_next(bigint, integer) TO agentauth_auditor;

-- One record by its seq, as the view shows it: a version 1 record by the
-- primary key, or the entry of the unit that holds it (the row with the
-- greatest seq not after s, when s is within its entries), its fields
-- read by ordinal as _patient_log reads them; a unit has as many entries
-- as its longest array, as in the view.  audit_event_fhir (and so the
-- audit feed) reads one record per call: through the view that was every
-- entry of the unit unnested, for one.
CREATE FUNCTION agentauth._log_record(s bigint) RETURNS SETOF agentauth.audit_log
    LANGUAGE sql STABLE
AS $$
SELECT r.seq, r.logged_at, r.event, r.principal, r.principal_name, r.db_role,
       r.token, r.on_behalf_of, r.delegation_chain, r.purpose, r.patient,
       r.relation, r.columns, r.data_classes, r.action, r.row_count,
       r.authority, r.outcome, r.statement, r.client, r.detail, r.prev_hash,
       r.row_hash
  FROM agentauth.audit_record r
 WHERE r.entry_kinds IS NULL AND r.seq OPERATOR(pg_catalog.=) s
UNION ALL
SELECT s, e.logged_at,
       CASE e.e_kind OPERATOR(pg_catalog./) 3 WHEN 0 THEN 'access' WHEN 1 THEN 'denied' END,
       e.principal, e.principal_name, e.db_role, e.token, e.on_behalf_of,
       e.delegation_chain,
       CASE e.e_kind OPERATOR(pg_catalog.%) 3 WHEN 0 THEN e.purpose WHEN 1 THEN 'BTG' END,
       e.e_patient, e.relation, e.columns, e.data_classes, e.action,
       e.e_row_count,
       COALESCE(agentauth._consent_authority(e.e_consent), e.e_authority),
       CASE e.e_kind OPERATOR(pg_catalog./) 3 WHEN 0 THEN 'permit' WHEN 1 THEN 'deny' END,
       e.statement, e.client, e.detail, e.prev_hash, e.row_hash
  FROM (SELECT u.*,
               agentauth._entry_at(u.entry_kinds, u.o) AS e_kind,
               agentauth._entry_at(u.entry_patients, u.o) AS e_patient,
               agentauth._entry_at(u.entry_row_counts, u.o) AS e_row_count,
               agentauth._entry_at(u.entry_authorities, u.o) AS e_authority,
               agentauth._entry_at(u.entry_consents, u.o) AS e_consent
          FROM (SELECT r.*, (s OPERATOR(pg_catalog.-) r.seq OPERATOR(pg_catalog.+) 1)::integer AS o
                  FROM agentauth.audit_record r
                 WHERE r.seq OPERATOR(pg_catalog.=) (SELECT pg_catalog.max(x.seq)
                                                       FROM agentauth.audit_record x
                                                      WHERE x.seq OPERATOR(pg_catalog.<=) s)
                   AND r.entry_kinds IS NOT NULL
                   AND s OPERATOR(pg_catalog.-) r.seq OPERATOR(pg_catalog.<)
                       GREATEST(pg_catalog.cardinality(r.entry_kinds),
                                pg_catalog.cardinality(r.entry_patients),
                                pg_catalog.cardinality(r.entry_row_counts),
                                pg_catalog.cardinality(r.entry_authorities),
                                pg_catalog.cardinality(r.entry_consents))) u
        OFFSET 0) e
$$;
REVOKE ALL ON FUNCTION agentauth._log_record(bigint) FROM PUBLIC;

-- Auditors read the log (SPEC 2); nobody writes it but the audit writer.
GRANT SELECT ON agentauth.audit_log TO agentauth_auditor;
GRANT SELECT ON agentauth.audit_record TO agentauth_auditor;
GRANT SELECT ON agentauth._audit_entries TO agentauth_auditor;

-- Only purge_audit() ever deletes, by seq from the oldest end.
CREATE INDEX audit_log_purged_idx ON agentauth.audit_record (seq)
    WHERE event OPERATOR(pg_catalog.=) 'audit_purged';
-- unregistered_activity (30_protect.sql) reads the unregistered roles'
-- attempts by this index: without it, a scan of the whole log (192 ms at
-- 10 M entries, minutes in a six-year log)
CREATE INDEX audit_log_unregistered_idx ON agentauth.audit_record (seq)
    WHERE event OPERATOR(pg_catalog.=) 'unregistered_access';

-- Append-only, for every role: INSERT, UPDATE, DELETE and TRUNCATE are
-- refused.  ENABLE ALWAYS: session_replication_role = replica does not
-- switch them off.  The utility hook refuses ALTER/DROP of these triggers.
CREATE FUNCTION agentauth._audit_log_guard() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'aa_audit_log_guard';
REVOKE ALL ON FUNCTION agentauth._audit_log_guard() FROM PUBLIC;
CREATE TRIGGER audit_log_append_only
    BEFORE INSERT OR UPDATE OR DELETE ON agentauth.audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION agentauth._audit_log_guard();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON agentauth.audit_record
    FOR EACH STATEMENT EXECUTE FUNCTION agentauth._audit_log_guard();
ALTER TABLE agentauth.audit_record ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE agentauth.audit_record ENABLE ALWAYS TRIGGER audit_log_no_truncate;

-- The chain head: a digest to keep outside the database.
-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth.audit_head(OUT seq bigint, OUT row_hash bytea,
                                     OUT logged_at timestamptz)
    RETURNS record
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    -- the last stored row; a unit's last record is its seq + n - 1
    SELECT l.seq OPERATOR(pg_catalog.+) COALESCE(pg_catalog.cardinality(l.entry_kinds) OPERATOR(pg_catalog.-) 1, 0),
           l.row_hash, l.logged_at INTO seq, row_hash, logged_at
      FROM agentauth.audit_record l ORDER BY l.seq DESC LIMIT 1;
END
$$;
REVOKE ALL ON FUNCTION agentauth.audit_head() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.audit_head() TO agentauth_auditor;

-- The C verifier (chain.c).  Not SECURITY DEFINER: it reads the log below
-- the executor and checks the caller itself.
CREATE FUNCTION agentauth.verify_audit(from_seq bigint DEFAULT 1,
                                       expected_head bytea DEFAULT NULL,
                                       OUT checked bigint, OUT ok boolean,
                                       OUT first_bad_seq bigint, OUT problem text)
    RETURNS record
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'aa_verify_audit';
REVOKE ALL ON FUNCTION agentauth.verify_audit(bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.verify_audit(bigint, bytea) TO agentauth_auditor;

-- The canonical encoding in SQL (docs/DESIGN.md, README "The audit log"),
-- for verify_audit_sql and for anyone who wants to see the bytes.  Not
-- SECURITY DEFINER and fully qualified, without a SET clause, so that the
-- planner can inline them.
CREATE FUNCTION agentauth._canon_text(t text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN t IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('74', 'hex')
                OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.octet_length(pg_catalog.convert_to(t, 'UTF8')))
                OPERATOR(pg_catalog.||) pg_catalog.convert_to(t, 'UTF8') END
$$;

CREATE FUNCTION agentauth._canon_jsonb(j jsonb) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN j IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('6a', 'hex')
                OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.octet_length(pg_catalog.convert_to(j::pg_catalog.text, 'UTF8')))
                OPERATOR(pg_catalog.||) pg_catalog.convert_to(j::pg_catalog.text, 'UTF8') END
$$;

CREATE FUNCTION agentauth._canon_uuid(u uuid) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN u IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('75', 'hex') OPERATOR(pg_catalog.||) pg_catalog.uuid_send(u) END
$$;

CREATE FUNCTION agentauth._canon_int8(i bigint) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN i IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('69', 'hex') OPERATOR(pg_catalog.||) pg_catalog.int8send(i) END
$$;

CREATE FUNCTION agentauth._canon_timestamptz(t timestamptz) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN t IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('54', 'hex') OPERATOR(pg_catalog.||) pg_catalog.timestamptz_send(t) END
$$;

CREATE FUNCTION agentauth._canon_text_array(a text[]) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN a IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('61', 'hex')
                OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.cardinality(a))
                OPERATOR(pg_catalog.||) COALESCE(
                    (SELECT pg_catalog.string_agg(agentauth._canon_text(e), ''::pg_catalog.bytea ORDER BY o)
                       FROM pg_catalog.unnest(a) WITH ORDINALITY AS u(e, o)), ''::pg_catalog.bytea) END
$$;

CREATE FUNCTION agentauth._canon_uuid_array(a uuid[]) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN a IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('61', 'hex')
                OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.cardinality(a))
                OPERATOR(pg_catalog.||) COALESCE(
                    (SELECT pg_catalog.string_agg(agentauth._canon_uuid(e), ''::pg_catalog.bytea ORDER BY o)
                       FROM pg_catalog.unnest(a) WITH ORDINALITY AS u(e, o)), ''::pg_catalog.bytea) END
$$;

-- Version 2's entry arrays: bigint elements (the kinds, cast from
-- smallint) and jsonb elements, each tagged as the fields are.
CREATE FUNCTION agentauth._canon_int8_array(a bigint[]) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN a IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('61', 'hex')
                OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.cardinality(a))
                OPERATOR(pg_catalog.||) COALESCE(
                    (SELECT pg_catalog.string_agg(agentauth._canon_int8(e), ''::pg_catalog.bytea ORDER BY o)
                       FROM pg_catalog.unnest(a) WITH ORDINALITY AS u(e, o)), ''::pg_catalog.bytea) END
$$;

CREATE FUNCTION agentauth._canon_jsonb_array(a jsonb[]) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN a IS NULL THEN pg_catalog.decode('00', 'hex')
           ELSE pg_catalog.decode('61', 'hex')
                OPERATOR(pg_catalog.||) pg_catalog.int4send(pg_catalog.cardinality(a))
                OPERATOR(pg_catalog.||) COALESCE(
                    (SELECT pg_catalog.string_agg(agentauth._canon_jsonb(e), ''::pg_catalog.bytea ORDER BY o)
                       FROM pg_catalog.unnest(a) WITH ORDINALITY AS u(e, o)), ''::pg_catalog.bytea) END
$$;

-- SHA-256: PostgreSQL's own (1.1).  1.0 called pgcrypto's digest() by the
-- name of the schema pgcrypto was installed in -- public, which its owner
-- (the database owner, in PostgreSQL 15) could rename and replace with a
-- schema of its own, so that verify_audit_sql, SECURITY DEFINER, ran the
-- owner's digest() as the extension's superuser.
CREATE FUNCTION agentauth._sha256(b bytea) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$SELECT pg_catalog.sha256(b)$$;
REVOKE ALL ON FUNCTION agentauth._sha256(bytea) FROM PUBLIC;

-- canonical(record): the bytes row_hash is computed over (after prev_hash).
CREATE FUNCTION agentauth.canonical_record(r agentauth.audit_log) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.decode('01', 'hex')
        OPERATOR(pg_catalog.||) agentauth._canon_int8(r.seq)
        OPERATOR(pg_catalog.||) agentauth._canon_timestamptz(r.logged_at)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.event)
        OPERATOR(pg_catalog.||) agentauth._canon_uuid(r.principal)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.principal_name)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.db_role)
        OPERATOR(pg_catalog.||) agentauth._canon_uuid(r.token)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.on_behalf_of)
        OPERATOR(pg_catalog.||) agentauth._canon_uuid_array(r.delegation_chain)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.purpose)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.patient)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.relation)
        OPERATOR(pg_catalog.||) agentauth._canon_text_array(r.columns)
        OPERATOR(pg_catalog.||) agentauth._canon_text_array(r.data_classes)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.action)
        OPERATOR(pg_catalog.||) agentauth._canon_int8(r.row_count)
        OPERATOR(pg_catalog.||) agentauth._canon_jsonb(r.authority)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.outcome)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.statement)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.client)
        OPERATOR(pg_catalog.||) agentauth._canon_jsonb(r.detail)
$$;
REVOKE ALL ON FUNCTION agentauth.canonical_record(agentauth.audit_log) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.canonical_record(agentauth.audit_log) TO agentauth_auditor;

-- canonical(stored row): version 1 for a record, version 2 for a unit --
-- the version byte 0x02, the 21 fields of the unit's row as version 1
-- encodes them, then its four entry arrays.  row_hash covers these bytes.
CREATE FUNCTION agentauth.canonical_stored(r agentauth.audit_record) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN r.entry_kinds IS NULL THEN pg_catalog.decode('01', 'hex')
                ELSE pg_catalog.decode('02', 'hex') END
        OPERATOR(pg_catalog.||) agentauth._canon_int8(r.seq)
        OPERATOR(pg_catalog.||) agentauth._canon_timestamptz(r.logged_at)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.event)
        OPERATOR(pg_catalog.||) agentauth._canon_uuid(r.principal)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.principal_name)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.db_role)
        OPERATOR(pg_catalog.||) agentauth._canon_uuid(r.token)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.on_behalf_of)
        OPERATOR(pg_catalog.||) agentauth._canon_uuid_array(r.delegation_chain)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.purpose)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.patient)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.relation)
        OPERATOR(pg_catalog.||) agentauth._canon_text_array(r.columns)
        OPERATOR(pg_catalog.||) agentauth._canon_text_array(r.data_classes)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.action)
        OPERATOR(pg_catalog.||) agentauth._canon_int8(r.row_count)
        OPERATOR(pg_catalog.||) agentauth._canon_jsonb(r.authority)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.outcome)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.statement)
        OPERATOR(pg_catalog.||) agentauth._canon_text(r.client)
        OPERATOR(pg_catalog.||) agentauth._canon_jsonb(r.detail)
        OPERATOR(pg_catalog.||) CASE WHEN r.entry_kinds IS NULL THEN ''::pg_catalog.bytea ELSE
               agentauth._canon_int8_array(r.entry_kinds::bigint[])
               OPERATOR(pg_catalog.||) agentauth._canon_text_array(r.entry_patients)
               OPERATOR(pg_catalog.||) agentauth._canon_int8_array(r.entry_row_counts)
               OPERATOR(pg_catalog.||) agentauth._canon_jsonb_array(
                   agentauth._entry_authorities(r.entry_authorities, r.entry_consents)) END
$$;
REVOKE ALL ON FUNCTION agentauth.canonical_stored(agentauth.audit_record) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.canonical_stored(agentauth.audit_record) TO agentauth_auditor;

-- A stored row shaped as the writer writes it (the C verifier's
-- aa_record_well_formed): the encoding covers an array's elements, not its
-- dimensions or bounds, and a unit's entries only as its arrays hold them.
CREATE FUNCTION agentauth._plain_list(a anyarray) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT a IS NULL OR pg_catalog.array_ndims(a) IS NULL
        OR (pg_catalog.array_ndims(a) OPERATOR(pg_catalog.=) 1
            AND pg_catalog.array_lower(a, 1) OPERATOR(pg_catalog.=) 1)
$$;

CREATE FUNCTION agentauth._stored_well_formed(l agentauth.audit_record) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT COALESCE(CASE
        WHEN NOT (agentauth._plain_list(l.delegation_chain) AND agentauth._plain_list(l.columns)
                  AND agentauth._plain_list(l.data_classes)) THEN false
        WHEN l.entry_kinds IS NULL
            THEN l.entry_patients IS NULL AND l.entry_row_counts IS NULL AND l.entry_authorities IS NULL
                 AND l.entry_consents IS NULL
        WHEN NOT (agentauth._plain_list(l.entry_kinds) AND agentauth._plain_list(l.entry_patients)
                  AND agentauth._plain_list(l.entry_row_counts) AND agentauth._plain_list(l.entry_authorities)
                  AND agentauth._plain_list(l.entry_consents))
            THEN false
        -- a consent id only where the entry has no authority of its own
        WHEN l.entry_consents IS NOT NULL
             AND (pg_catalog.cardinality(l.entry_consents) OPERATOR(pg_catalog.<>) pg_catalog.cardinality(l.entry_kinds)
                  OR EXISTS (SELECT FROM ROWS FROM (pg_catalog.unnest(l.entry_authorities),
                                                    pg_catalog.unnest(l.entry_consents)) AS t(x, y)
                              WHERE x IS NOT NULL AND y IS NOT NULL))
            THEN false
        ELSE pg_catalog.cardinality(l.entry_kinds) OPERATOR(pg_catalog.>=) 1
             AND pg_catalog.cardinality(l.entry_patients) OPERATOR(pg_catalog.=) pg_catalog.cardinality(l.entry_kinds)
             AND pg_catalog.cardinality(l.entry_row_counts) OPERATOR(pg_catalog.=) pg_catalog.cardinality(l.entry_kinds)
             AND pg_catalog.cardinality(l.entry_authorities) OPERATOR(pg_catalog.=) pg_catalog.cardinality(l.entry_kinds)
             AND pg_catalog.array_position(l.entry_kinds, NULL) IS NULL
             AND pg_catalog.array_position(l.entry_patients, NULL) IS NULL
             AND pg_catalog.array_position(l.entry_row_counts, NULL) IS NULL
             AND (SELECT pg_catalog.bool_and(k OPERATOR(pg_catalog.>=) 0 AND k OPERATOR(pg_catalog.<=) 5)
                    FROM pg_catalog.unnest(l.entry_kinds) k)
        END, false)
$$;
REVOKE ALL ON FUNCTION agentauth._stored_well_formed(agentauth.audit_record) FROM PUBLIC;

-- The same verification as verify_audit(), in SQL over PostgreSQL's sha256():
-- the chain can be checked without trusting the C code.  Identical answers
-- (see chain.c for the algorithm and the problems reported).
-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth.verify_audit_sql(from_seq bigint DEFAULT 1,
                                           expected_head bytea DEFAULT NULL,
                                           OUT checked bigint, OUT ok boolean,
                                           OUT first_bad_seq bigint, OUT problem text)
    RETURNS record
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cut_seq   bigint;
    cut_hash  bytea;
    start_seq bigint;
    exp_prev  bytea;
    lo        bigint;
    bad       record;
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    IF from_seq IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'null_value_not_allowed',
            MESSAGE = 'from_seq must not be null';
    END IF;
    IF expected_head IS NOT NULL AND pg_catalog.octet_length(expected_head) OPERATOR(pg_catalog.<>) 32 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'expected_head must be 32 bytes',
            HINT = 'Pass the row_hash returned by agentauth.audit_head().';
    END IF;

    -- (1.1) an anchor that is not a number and hex (tampered) is no
    -- anchor: the chain is checked from its start and the break reported,
    -- where the casts failed the whole call; the C verifier reads it alike
    SELECT CASE WHEN (l.detail OPERATOR(pg_catalog.->>) 'cut_seq') OPERATOR(pg_catalog.~) '^[0-9]{1,18}$'
                THEN (l.detail OPERATOR(pg_catalog.->>) 'cut_seq')::bigint END,
           CASE WHEN (l.detail OPERATOR(pg_catalog.->>) 'cut_hash') OPERATOR(pg_catalog.~) '^([0-9a-fA-F]{2})*$'
                THEN pg_catalog.decode(l.detail OPERATOR(pg_catalog.->>) 'cut_hash', 'hex') END
      INTO cut_seq, cut_hash
      FROM agentauth.audit_record l
     WHERE l.event OPERATOR(pg_catalog.=) 'audit_purged'
     ORDER BY l.seq DESC LIMIT 1;

    start_seq := pg_catalog.int8larger(from_seq, 1);
    -- from_seq inside a unit: verification starts at the unit
    IF start_seq OPERATOR(pg_catalog.>) 1 THEN
        SELECT pg_catalog.int8smaller(u.seq, start_seq) INTO start_seq
          FROM (SELECT l.seq, l.entry_kinds FROM agentauth.audit_record l
                 WHERE l.seq OPERATOR(pg_catalog.<=) start_seq
                 ORDER BY l.seq DESC LIMIT 1) u
         WHERE u.entry_kinds IS NOT NULL
           AND u.seq OPERATOR(pg_catalog.+) pg_catalog.cardinality(u.entry_kinds) OPERATOR(pg_catalog.>) start_seq
        UNION ALL SELECT start_seq LIMIT 1;
    END IF;
    lo := CASE WHEN from_seq OPERATOR(pg_catalog.<=) 1 THEN NULL ELSE start_seq END;
    IF cut_seq IS NOT NULL AND cut_hash IS NOT NULL AND start_seq OPERATOR(pg_catalog.<=) cut_seq THEN
        start_seq := cut_seq;
        exp_prev := CASE WHEN pg_catalog.octet_length(cut_hash) OPERATOR(pg_catalog.=) 32
                         THEN cut_hash ELSE pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex') END;
    ELSIF start_seq OPERATOR(pg_catalog.=) 1 THEN
        exp_prev := pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');
    END IF;

    -- each stored row: a record (n = 1) or a unit of n records
    SELECT s.* INTO bad
      FROM (SELECT t.*,
                   pg_catalog.lag(t.seq) OVER w AS pseq,
                   pg_catalog.lag(t.n) OVER w AS pn,
                   pg_catalog.lag(t.row_hash) OVER w AS phash,
                   pg_catalog.row_number() OVER w AS rn,
                   COALESCE(pg_catalog.sum(t.n) OVER (ORDER BY t.seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)::bigint AS before
              FROM (SELECT l.seq, l.prev_hash, l.row_hash,
                           CASE WHEN l.entry_kinds IS NULL THEN 1
                                ELSE pg_catalog.cardinality(l.entry_kinds) END::bigint AS n,
                           (l.prev_hash IS NULL OR l.row_hash IS NULL OR
                            NOT agentauth._stored_well_formed(l) OR
                            l.row_hash IS DISTINCT FROM
                              agentauth._sha256(l.prev_hash OPERATOR(pg_catalog.||) agentauth.canonical_stored(l))) AS self_bad
                      FROM agentauth.audit_record l
                     WHERE lo IS NULL OR l.seq OPERATOR(pg_catalog.>=) lo) t
            WINDOW w AS (ORDER BY t.seq)) s
     WHERE CASE WHEN s.rn OPERATOR(pg_catalog.=) 1
                THEN s.seq OPERATOR(pg_catalog.<>) start_seq
                     OR (exp_prev IS NOT NULL AND s.prev_hash IS DISTINCT FROM exp_prev)
                ELSE s.seq OPERATOR(pg_catalog.<>) (s.pseq OPERATOR(pg_catalog.+) s.pn)
                     OR s.prev_hash IS DISTINCT FROM s.phash END
           OR s.self_bad
     ORDER BY s.seq LIMIT 1;

    IF FOUND THEN
        checked := bad.before;
        ok := false;
        IF bad.rn OPERATOR(pg_catalog.=) 1 AND bad.seq OPERATOR(pg_catalog.<) start_seq THEN
            first_bad_seq := bad.seq;  problem := 'unexpected record';
        ELSIF bad.rn OPERATOR(pg_catalog.=) 1 AND bad.seq OPERATOR(pg_catalog.>) start_seq THEN
            first_bad_seq := start_seq;  problem := 'missing record';
        ELSIF bad.rn OPERATOR(pg_catalog.>) 1 AND bad.seq OPERATOR(pg_catalog.<>) (bad.pseq OPERATOR(pg_catalog.+) bad.pn) THEN
            IF bad.seq OPERATOR(pg_catalog.<) (bad.pseq OPERATOR(pg_catalog.+) bad.pn) THEN
                first_bad_seq := bad.seq;  problem := 'unexpected record';
            ELSE
                first_bad_seq := bad.pseq OPERATOR(pg_catalog.+) bad.pn;  problem := 'missing record';
            END IF;
        ELSIF (bad.rn OPERATOR(pg_catalog.=) 1 AND exp_prev IS NOT NULL AND bad.prev_hash IS DISTINCT FROM exp_prev)
              OR (bad.rn OPERATOR(pg_catalog.>) 1 AND bad.prev_hash IS DISTINCT FROM bad.phash) THEN
            first_bad_seq := bad.seq;  problem := 'prev_hash mismatch';
        ELSE
            first_bad_seq := bad.seq;  problem := 'row_hash mismatch';
        END IF;
        -- the always-on chain verification alert (70_monitor.sql)
        PERFORM agentauth._chain_failure(first_bad_seq, problem);
        RETURN;
    END IF;

    SELECT COALESCE(pg_catalog.sum(CASE WHEN l.entry_kinds IS NULL THEN 1
                                        ELSE pg_catalog.cardinality(l.entry_kinds) END), 0)::bigint
      INTO checked
      FROM agentauth.audit_record l
     WHERE lo IS NULL OR l.seq OPERATOR(pg_catalog.>=) lo;
    ok := true;
    IF expected_head IS NOT NULL
       AND expected_head IS DISTINCT FROM exp_prev
       AND NOT EXISTS (SELECT FROM agentauth.audit_record l
                        WHERE (lo IS NULL OR l.seq OPERATOR(pg_catalog.>=) lo)
                          AND l.row_hash OPERATOR(pg_catalog.=) expected_head) THEN
        ok := false;
        first_bad_seq := start_seq OPERATOR(pg_catalog.+) checked;
        problem := 'expected head not found';
        PERFORM agentauth._chain_failure(first_bad_seq, problem);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION agentauth.verify_audit_sql(bigint, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.verify_audit_sql(bigint, bytea) TO agentauth_auditor;

-- Retention (SPEC 10.9).
CREATE FUNCTION agentauth.purge_audit(before timestamptz) RETURNS bigint
    LANGUAGE c AS 'MODULE_PATHNAME', 'aa_purge_audit';
REVOKE ALL ON FUNCTION agentauth.purge_audit(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.purge_audit(timestamptz) TO agentauth_privacy_officer;

-- The feeds to the audit repository (tools/aa_feed) and how far each has
-- delivered: purge_audit() removes no record a feed still has to send
-- (1.1: a purge removed them, and the repository never got them), and
-- agentauth.audit_feeds shows each feed's backlog.  A feed reports its
-- position itself (feed_delivered, as agentauth_auditor, which is what
-- it logs in as, and only that login moves it afterwards); a privacy
-- officer drops a feed that is gone.  Not dumped: a position belongs to
-- this log's chain, and a restored database starts a chain of its own
-- (its feeds register again, from seq 0).
CREATE TABLE agentauth.audit_feed (
    name          text PRIMARY KEY,
    delivered_seq bigint NOT NULL CHECK (delivered_seq >= 0),
    reported_at   timestamptz NOT NULL,
    registered_at timestamptz NOT NULL,
    registered_by text NOT NULL,
    holder_pid    integer,      -- the connection that reports it (one at a time)
    holder_start  timestamptz
);

-- The last seq of the log (0 when it is empty): a unit's entries end at
-- its seq plus its entries less one.
CREATE FUNCTION agentauth._log_head() RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT COALESCE((SELECT r.seq OPERATOR(pg_catalog.+) COALESCE(pg_catalog.cardinality(r.entry_kinds), 1) OPERATOR(pg_catalog.-) 1
                       FROM agentauth.audit_record r ORDER BY r.seq DESC LIMIT 1), 0)
$$;
REVOKE ALL ON FUNCTION agentauth._log_head() FROM PUBLIC;

-- SECURITY DEFINER: writes the extension's private table of feeds; callable by agentauth_auditor only (the feed's login), which may move only a feed's position.
CREATE FUNCTION agentauth.feed_delivered(feed text, seq bigint) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_name text;
    v_head bigint;
    v_start timestamptz;
    f      agentauth.audit_feed;
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    v_name := agentauth._check_text(feed, 'feed', true, 1000);
    IF seq IS NULL THEN
        RAISE EXCEPTION 'seq must not be null' USING ERRCODE = '22004';
    END IF;
    IF seq OPERATOR(pg_catalog.<) 0 THEN
        RAISE EXCEPTION 'seq must be a delivered seq, 0 or more' USING ERRCODE = '22023';
    END IF;
    -- what was delivered was read from this log: never past its head
    -- (a state file of another chain, --from past the head, a forged
    -- report would let a purge remove what no feed sent)
    v_head := agentauth._log_head();
    IF seq OPERATOR(pg_catalog.>) v_head THEN
        RAISE EXCEPTION 'seq % is past the head of the audit log (%)', seq, v_head
            USING ERRCODE = '22023',
                  HINT = 'A feed reports what it delivered from this log.  After a restore the log starts a chain of its own at seq 1: start the feed again with a new state file.';
    END IF;
    SELECT a.backend_start INTO v_start FROM pg_catalog.pg_stat_activity a
     WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
    SELECT * INTO f FROM agentauth.audit_feed x WHERE x.name OPERATOR(pg_catalog.=) v_name FOR UPDATE;
    IF FOUND THEN
        -- a feed's position is its own login's to move
        IF f.registered_by OPERATOR(pg_catalog.<>) session_user::text THEN
            RAISE EXCEPTION 'audit feed "%" is reported by login "%"', pg_catalog.left(v_name, 200), f.registered_by
                USING ERRCODE = '42501',
                      HINT = 'Give each feed its own name (aa_feed --name), or have a privacy officer drop the old one.';
        END IF;
        -- and by one connection at a time: two feeds of one name would
        -- report each other's positions, and a purge follow the one ahead
        IF f.holder_pid IS NOT NULL
           AND (f.holder_pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid() OR f.holder_start IS DISTINCT FROM v_start)
           AND EXISTS (SELECT FROM pg_catalog.pg_stat_activity a
                        WHERE a.pid OPERATOR(pg_catalog.=) f.holder_pid AND a.backend_start OPERATOR(pg_catalog.=) f.holder_start) THEN
            RAISE EXCEPTION 'audit feed "%" is reported by another connection (pid %)', pg_catalog.left(v_name, 200), f.holder_pid
                USING ERRCODE = '55006',
                      HINT = 'One aa_feed runs per name: give each feed its own name (aa_feed --name).';
        END IF;
        UPDATE agentauth.audit_feed x
           SET delivered_seq = seq, reported_at = pg_catalog.clock_timestamp(),
               holder_pid = pg_catalog.pg_backend_pid(), holder_start = v_start
         WHERE x.name OPERATOR(pg_catalog.=) v_name;
    ELSE
        INSERT INTO agentauth.audit_feed (name, delivered_seq, reported_at, registered_at, registered_by,
                                          holder_pid, holder_start)
        VALUES (v_name, seq, pg_catalog.clock_timestamp(), pg_catalog.clock_timestamp(),
                session_user::text, pg_catalog.pg_backend_pid(), v_start);
        PERFORM agentauth._audit('audit_feed_registered',
            pg_catalog.jsonb_build_object('feed', v_name, 'delivered_seq', seq));
    END IF;
END
$$;
REVOKE ALL ON FUNCTION agentauth.feed_delivered(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.feed_delivered(text, bigint) TO agentauth_auditor;

-- SECURITY DEFINER: writes the extension's private table of feeds and audits the change; callable by agentauth_privacy_officer only (who purges).
CREATE FUNCTION agentauth.drop_audit_feed(feed text, reason text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_seq bigint;
BEGIN
    PERFORM agentauth._require_role('agentauth_privacy_officer');
    IF feed IS NULL THEN
        RAISE EXCEPTION 'feed must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM agentauth._check_text(reason, 'reason', true, 4000);
    DELETE FROM agentauth.audit_feed f WHERE f.name OPERATOR(pg_catalog.=) feed
    RETURNING f.delivered_seq INTO v_seq;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit feed "%"', pg_catalog.left(feed, 200) USING ERRCODE = '42704',
            HINT = 'agentauth.audit_feeds lists them.';
    END IF;
    PERFORM agentauth._audit('audit_feed_dropped',
        pg_catalog.jsonb_build_object('feed', feed, 'delivered_seq', v_seq, 'reason', reason));
END
$$;
REVOKE ALL ON FUNCTION agentauth.drop_audit_feed(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.drop_audit_feed(text, text) TO agentauth_privacy_officer;

-- behind: the records of the log past what the feed delivered (a purge
-- leaves none below its cut).  The log's head is read here, as the view's
-- owner, not through _log_head(), which runs as its caller: only a
-- superuser could read the view (1.1, found by review).
CREATE VIEW agentauth.audit_feeds AS
SELECT f.name, f.delivered_seq,
       GREATEST(h.head OPERATOR(pg_catalog.-) GREATEST(f.delivered_seq, h.first OPERATOR(pg_catalog.-) 1), 0) AS behind,
       f.reported_at, f.registered_at, f.registered_by
  FROM agentauth.audit_feed f,
       LATERAL (SELECT COALESCE((SELECT r.seq OPERATOR(pg_catalog.+) COALESCE(pg_catalog.cardinality(r.entry_kinds), 1) OPERATOR(pg_catalog.-) 1
                                   FROM agentauth.audit_record r ORDER BY r.seq DESC LIMIT 1), 0) AS head,
                       COALESCE((SELECT r.seq FROM agentauth.audit_record r ORDER BY r.seq LIMIT 1), 1) AS first) h;
GRANT SELECT ON agentauth.audit_feeds TO agentauth_auditor, agentauth_privacy_officer, agentauth_admin, pg_monitor;

-- (1.1) The WAL position shows, byte for byte, what the audit writer
-- recorded after a statement -- and so whether a withheld row matched its
-- conditions (a denied record, or a record of none: their sizes differ).
-- agentauth refuses these functions to a principal's login where it plans
-- a statement; a domain's CHECK or a CALL's argument is evaluated without
-- being planned, and only the privilege holds there.  Monitoring keeps
-- them through pg_monitor; pg_logical_emit_message (which returns the
-- position of what it wrote) stays a superuser's.  So do the WAL bytes
-- written (pg_stat_wal) and the replication slots' positions
-- (pg_replication_slots: a streaming standby's slot follows the WAL).
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_current_wal_lsn(), pg_catalog.pg_current_wal_insert_lsn(),
    pg_catalog.pg_current_wal_flush_lsn(), pg_catalog.pg_last_wal_receive_lsn(),
    pg_catalog.pg_last_wal_replay_lsn(), pg_catalog.pg_stat_get_wal(),
    pg_catalog.pg_get_replication_slots(),
    pg_catalog.pg_logical_emit_message(boolean, text, text),
    pg_catalog.pg_logical_emit_message(boolean, text, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_current_wal_lsn(), pg_catalog.pg_current_wal_insert_lsn(),
    pg_catalog.pg_current_wal_flush_lsn(), pg_catalog.pg_last_wal_receive_lsn(),
    pg_catalog.pg_last_wal_replay_lsn(), pg_catalog.pg_stat_get_wal(),
    pg_catalog.pg_get_replication_slots() TO pg_monitor;

-- (1.1) The counters and the transaction counter too: the planner refuses
-- them to a principal's login, but an expression PostgreSQL evaluates
-- unplanned (EXECUTE's parameters, a CALL's arguments, a domain's CHECK)
-- meets only the privilege, and a name can be written so that no text
-- search finds it (U&"pg\005fstat..."; found by review).  Monitoring keeps
-- them through pg_monitor; sizes stay PUBLIC's (a page at a time).
DO $revoke$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace
                AND (p.proname OPERATOR(pg_catalog.~~) E'pg\\_stat\\_get\\_%'
                     OR p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['txid_current', 'txid_current_if_assigned',
                        'txid_current_snapshot', 'pg_current_xact_id', 'pg_current_xact_id_if_assigned',
                        'pg_current_snapshot', 'pg_xact_status', 'txid_status', 'mxid_age',
                        'pg_last_committed_xact', 'pg_xact_commit_timestamp',
                        'pg_xact_commit_timestamp_origin']::name[])
                     OR (p.proname OPERATOR(pg_catalog.=) 'age'
                         AND p.proargtypes OPERATOR(pg_catalog.=) '28'::pg_catalog.oidvector))
              ORDER BY 1 LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO pg_monitor', f);
    END LOOP;
END
$revoke$;
