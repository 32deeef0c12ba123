
-- Reports for auditors (SPEC 12): the audit export for the offline
-- verifier, HIPAA reports, FHIR AuditEvent and Consent.  Everything here is
-- readable by agentauth_auditor (and so by agentauth_privacy_officer, a
-- member) and nobody else; import_fhir_consent is the consent manager's.

-- A text[] or uuid[] as a JSON array in element order (NULL stays NULL,
-- an empty array is []).
CREATE FUNCTION agentauth._json_array(a anyarray) RETURNS json
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN a IS NULL THEN NULL
           ELSE COALESCE(
                    (SELECT pg_catalog.json_agg(e ORDER BY o)
                       FROM pg_catalog.unnest(a) WITH ORDINALITY AS u(e, o)),
                    '[]'::json)
           END
$$;
REVOKE ALL ON FUNCTION agentauth._json_array(anyarray) FROM PUBLIC;

-- A timestamptz as microseconds since 2000-01-01 00:00:00 UTC: exactly the
-- 8 bytes of timestamptz_send, so nothing depends on TimeZone or DateStyle
-- (infinity is the int64 maximum, -infinity the minimum, as on disk).
CREATE FUNCTION agentauth._ts_micros(t timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT ('x' OPERATOR(pg_catalog.||)
            pg_catalog.encode(pg_catalog.timestamptz_send(t), 'hex'))::bit(64)::bigint
$$;
REVOKE ALL ON FUNCTION agentauth._ts_micros(timestamptz) FROM PUBLIC;

-- export_audit(from_seq): the audit log as lines of JSON for the offline
-- verifier (tools/aa_verify).  The README documents the format:
--   line 1   {"agentauth_export": 1, "first_seq": N, "anchor": "<hex>"}
--   then     one object per record, seq ascending, every column typed
--   last     {"end": true, "records": C, "last_seq": S, "head": "<hex>"}
-- The whole export is read under one snapshot (STABLE), so header, records
-- and end line agree even while the writer appends.
CREATE FUNCTION agentauth.export_audit(from_seq bigint DEFAULT 1)
    RETURNS SETOF text
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_first  bigint;
    v_last   bigint;
    v_count  bigint;
    v_anchor bytea;
    v_head   bytea;
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    IF from_seq IS NULL THEN
        RAISE EXCEPTION 'from_seq must not be null' USING ERRCODE = '22004';
    END IF;
    IF from_seq OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'from_seq must be at least 1'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('from_seq was %s.', from_seq);
    END IF;

    SELECT pg_catalog.min(l.seq), pg_catalog.max(l.seq), pg_catalog.count(*)
      INTO v_first, v_last, v_count
      FROM agentauth.audit_log l
     WHERE l.seq OPERATOR(pg_catalog.>=) from_seq;

    IF v_count OPERATOR(pg_catalog.=) 0 THEN
        -- nothing at or after from_seq: anchor on the record before it
        SELECT l.seq, l.row_hash INTO v_last, v_anchor
          FROM agentauth.audit_log l
         WHERE l.seq OPERATOR(pg_catalog.<) from_seq
         ORDER BY l.seq DESC LIMIT 1;
        IF NOT FOUND THEN
            v_last := 0;
            v_anchor := pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');
        END IF;
        v_first := v_last OPERATOR(pg_catalog.+) 1;
        v_head := v_anchor;
    ELSE
        SELECT l.prev_hash INTO v_anchor FROM agentauth.audit_log l
         WHERE l.seq OPERATOR(pg_catalog.=) v_first;
        SELECT l.row_hash INTO v_head FROM agentauth.audit_log l
         WHERE l.seq OPERATOR(pg_catalog.=) v_last;
    END IF;

    RETURN NEXT pg_catalog.json_build_object(
        'agentauth_export', 1,
        'first_seq', v_first,
        'anchor', pg_catalog.encode(v_anchor, 'hex'))::text;

    RETURN QUERY
    SELECT pg_catalog.json_build_object(
        'seq', l.seq,
        'logged_at', agentauth._ts_micros(l.logged_at),
        'event', l.event,
        'principal', l.principal,
        'principal_name', l.principal_name,
        'db_role', l.db_role,
        'token', l.token,
        'on_behalf_of', l.on_behalf_of,
        'delegation_chain', agentauth._json_array(l.delegation_chain),
        'purpose', l.purpose,
        'patient', l.patient,
        'relation', l.relation,
        'columns', agentauth._json_array(l.columns),
        'data_classes', agentauth._json_array(l.data_classes),
        'action', l.action,
        'row_count', l.row_count,
        'authority', l.authority::text,
        'outcome', l.outcome,
        'statement', l.statement,
        'client', l.client,
        'detail', l.detail::text,
        'prev_hash', pg_catalog.encode(l.prev_hash, 'hex'),
        'row_hash', pg_catalog.encode(l.row_hash, 'hex'))::text
      FROM agentauth.audit_log l
     WHERE l.seq OPERATOR(pg_catalog.>=) v_first
       AND l.seq OPERATOR(pg_catalog.<=) v_last
     ORDER BY l.seq;

    RETURN NEXT pg_catalog.json_build_object(
        'end', true,
        'records', v_count,
        'last_seq', v_last,
        'head', pg_catalog.encode(v_head, 'hex'))::text;
END
$$;
REVOKE ALL ON FUNCTION agentauth.export_audit(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.export_audit(bigint) TO agentauth_auditor;
