
-- Reports for auditors (SPEC 12): the audit export for the offline
-- verifier, HIPAA reports, FHIR AuditEvent and Consent.  Everything here is
-- readable by agentauth_auditor (and so by agentauth_privacy_officer, a
-- member) and nobody else; import_fhir_consent is the consent manager's.

-- One record as an export line: every column typed unambiguously.  Built
-- by concatenation (json_build_object resolves the type of each of its 23
-- arguments on every call, which made it 2.5 times slower); no SET clause
-- (everything is schema-qualified) and STABLE like its body, so the planner
-- inlines it into export_audit's query.
CREATE FUNCTION agentauth._export_line(l agentauth.audit_record) RETURNS text
    LANGUAGE sql STABLE
    AS $$
    SELECT '{"seq" : '
        OPERATOR(pg_catalog.||) COALESCE(l.seq::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "logged_at" : '
        OPERATOR(pg_catalog.||) COALESCE((('x' OPERATOR(pg_catalog.||) pg_catalog.encode(pg_catalog.timestamptz_send(l.logged_at), 'hex'))::bit(64)::bigint)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "event" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.event)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "principal" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.principal)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "principal_name" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.principal_name)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "db_role" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.db_role)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "token" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.token)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "on_behalf_of" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.on_behalf_of)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "delegation_chain" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.delegation_chain)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "purpose" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.purpose)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "patient" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.patient)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "relation" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.relation)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "columns" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.columns)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "data_classes" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.data_classes)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "action" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.action)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "row_count" : '
        OPERATOR(pg_catalog.||) COALESCE(l.row_count::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "authority" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.authority::pg_catalog.text)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "outcome" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.outcome)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "statement" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.statement)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "client" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.client)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "detail" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.detail::pg_catalog.text)::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "prev_hash" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(pg_catalog.encode(l.prev_hash, 'hex'))::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) ', "row_hash" : '
        OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(pg_catalog.encode(l.row_hash, 'hex'))::pg_catalog.text, 'null')
        OPERATOR(pg_catalog.||) CASE WHEN l.entry_kinds IS NULL THEN '' ELSE
               ', "entry_kinds" : '
               OPERATOR(pg_catalog.||) pg_catalog.to_json(l.entry_kinds)::pg_catalog.text
               OPERATOR(pg_catalog.||) ', "entry_patients" : '
               OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.entry_patients)::pg_catalog.text, 'null')
               OPERATOR(pg_catalog.||) ', "entry_row_counts" : '
               OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(l.entry_row_counts)::pg_catalog.text, 'null')
               OPERATOR(pg_catalog.||) ', "entry_authorities" : '
               OPERATOR(pg_catalog.||) COALESCE(pg_catalog.to_json(agentauth._entry_authorities(
                   l.entry_authorities, l.entry_consents)::pg_catalog.text[])::pg_catalog.text, 'null')
               END
        -- a row not shaped as the writer writes it (an array of two
        -- dimensions or other bounds, a unit's arrays that do not agree):
        -- a member no record has, so that aa_verify stops at it
        OPERATOR(pg_catalog.||) CASE WHEN agentauth._stored_well_formed(l) THEN '' ELSE ', "malformed" : true' END
        OPERATOR(pg_catalog.||) '}'
$$;
REVOKE ALL ON FUNCTION agentauth._export_line(agentauth.audit_record) FROM PUBLIC;

-- (1.1) Every character beyond ASCII as a \u escape (audit_sql.c): a
-- client passes the lines on as they are (psql dropped some characters of
-- a patient id, and aa_verify failed an intact log).
CREATE FUNCTION agentauth._json_ascii(j text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE
    AS 'MODULE_PATHNAME', 'aa_json_ascii';
REVOKE ALL ON FUNCTION agentauth._json_ascii(text) FROM PUBLIC;

-- export_audit(from_seq): the audit log as lines of JSON for the offline
-- verifier (tools/aa_verify).  The README documents the format:
--   line 1   {"agentauth_export": 1, "first_seq": N, "anchor": "<hex>"}
--   then     one object per record, seq ascending, every column typed
--   last     {"end": true, "records": C, "last_seq": S, "head": "<hex>"}
-- The whole export is read under one snapshot (STABLE), so header, records
-- and end line agree even while the writer appends.
-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
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

    -- from the beginning: from the lowest row there is, so that a row
    -- stored below seq 1 (which no writer stores) reaches the verifier
    IF from_seq OPERATOR(pg_catalog.=) 1 THEN
        from_seq := LEAST(1, (SELECT pg_catalog.min(l.seq) FROM agentauth.audit_record l));
    END IF;

    -- stored rows: records, and units of n records each (exported whole:
    -- from_seq inside a unit starts at the unit)
    SELECT pg_catalog.min(l.seq),
           pg_catalog.max(l.seq OPERATOR(pg_catalog.+) COALESCE(pg_catalog.cardinality(l.entry_kinds) OPERATOR(pg_catalog.-) 1, 0)),
           pg_catalog.sum(COALESCE(pg_catalog.cardinality(l.entry_kinds), 1))
      INTO v_first, v_last, v_count
      FROM agentauth.audit_record l
     WHERE l.seq OPERATOR(pg_catalog.>=) COALESCE(
           (SELECT u.seq FROM agentauth.audit_record u
             WHERE u.seq OPERATOR(pg_catalog.<=) from_seq
               AND u.seq OPERATOR(pg_catalog.+) pg_catalog.cardinality(u.entry_kinds) OPERATOR(pg_catalog.>) from_seq
             ORDER BY u.seq DESC LIMIT 1), from_seq);
    v_count := COALESCE(v_count, 0);

    IF v_count OPERATOR(pg_catalog.=) 0 THEN
        -- nothing at or after from_seq: anchor on the record before it
        SELECT l.seq OPERATOR(pg_catalog.+) COALESCE(pg_catalog.cardinality(l.entry_kinds) OPERATOR(pg_catalog.-) 1, 0),
               l.row_hash INTO v_last, v_anchor
          FROM agentauth.audit_record l
         WHERE l.seq OPERATOR(pg_catalog.<) from_seq
         ORDER BY l.seq DESC LIMIT 1;
        IF NOT FOUND THEN
            v_last := 0;
            v_anchor := pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');
        END IF;
        v_first := v_last OPERATOR(pg_catalog.+) 1;
        v_head := v_anchor;
    ELSE
        SELECT l.prev_hash INTO v_anchor FROM agentauth.audit_record l
         WHERE l.seq OPERATOR(pg_catalog.=) v_first;
        SELECT l.row_hash INTO v_head FROM agentauth.audit_record l
         WHERE l.seq OPERATOR(pg_catalog.<=) v_last ORDER BY l.seq DESC LIMIT 1;
    END IF;

    RETURN NEXT pg_catalog.json_build_object(
        'agentauth_export', 2,
        'first_seq', v_first,
        'anchor', pg_catalog.encode(v_anchor, 'hex'))::text;

    RETURN QUERY
    SELECT agentauth._json_ascii(agentauth._export_line(l))
      FROM agentauth.audit_record l
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

-- Reports look up an agent's accesses by principal and time.
CREATE INDEX audit_log_principal_idx ON agentauth.audit_record (principal, logged_at);

-- The relation of a regclass as the audit log names it: schema-qualified,
-- each part quoted only where SQL needs it, whatever the caller's
-- quote_all_identifiers (1.1, found by review: an auditor's setting made
-- element_access miss every record).
CREATE FUNCTION agentauth._relation_name(tbl regclass) RETURNS text
    LANGUAGE sql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
    SET quote_all_identifiers = off
    AS $$
    SELECT pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname)
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) tbl
$$;
REVOKE ALL ON FUNCTION agentauth._relation_name(regclass) FROM PUBLIC;

-- Argument checks shared by the reports.
CREATE FUNCTION agentauth._report_args(patient text, since timestamptz, until timestamptz)
    RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF patient IS NULL THEN
        RAISE EXCEPTION 'patient must not be null' USING ERRCODE = '22004';
    END IF;
    IF patient OPERATOR(pg_catalog.=) '' OR pg_catalog.length(patient) OPERATOR(pg_catalog.>) 200 THEN
        RAISE EXCEPTION 'patient must be 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    IF since IS NULL OR until IS NULL THEN
        RAISE EXCEPTION 'since and until must not be null' USING ERRCODE = '22004',
            HINT = 'Use ''-infinity'' or ''infinity'' for an open end.';
    END IF;
    IF until OPERATOR(pg_catalog.<) since THEN
        RAISE EXCEPTION 'the period ends before it starts'
            USING ERRCODE = '22023',
                  DETAIL = pg_catalog.format('since %s is after until %s.', since, until);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION agentauth._report_args(text, timestamptz, timestamptz) FROM PUBLIC;

-- The three per-patient reports plan their query once per session
-- (force_generic_plan): the plan is the same for every patient and period
-- (_patient_log's indexes), and a custom plan each call cost more than the
-- query on a warm cache (bench/report_bench.sh).
--
-- access_report: every audit record that names the patient in the period
-- (accesses, denials, privileged and unregistered access, overrides,
-- consent changes), oldest first.
-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth.access_report(
    patient text,
    since timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '30 days'::interval,
    until timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (seq bigint, logged_at timestamptz, event text, outcome text,
                   principal uuid, principal_name text, db_role text,
                   on_behalf_of text, purpose text, relation text, action text,
                   columns text[], data_classes text[], row_count bigint,
                   authority jsonb, token uuid, client text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
    AS $$
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    PERFORM agentauth._report_args(patient, since, until);
    RETURN QUERY
    SELECT l.seq, l.logged_at, l.event, l.outcome, l.principal, l.principal_name,
           l.db_role, l.on_behalf_of, l.purpose, l.relation, l.action, l.columns,
           l.data_classes, l.row_count, l.authority, l.token, l.client
      FROM agentauth._patient_log(access_report.patient, since, until) l
     WHERE l.patient OPERATOR(pg_catalog.=) access_report.patient
       AND l.logged_at OPERATOR(pg_catalog.>=) since
       AND l.logged_at OPERATOR(pg_catalog.<=) until
     ORDER BY l.seq;
END
$$;
REVOKE ALL ON FUNCTION agentauth.access_report(text, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.access_report(text, timestamptz, timestamptz) TO agentauth_auditor;
-- the patient id as a value of a non-text patient column's type
CREATE FUNCTION agentauth.access_report(
    patient anynonarray,
    since timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '30 days'::interval,
    until timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (seq bigint, logged_at timestamptz, event text, outcome text,
                   principal uuid, principal_name text, db_role text,
                   on_behalf_of text, purpose text, relation text, action text,
                   columns text[], data_classes text[], row_count bigint,
                   authority jsonb, token uuid, client text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT * FROM agentauth.access_report(pg_catalog.format('%s', $1), $2, $3) $$;
REVOKE ALL ON FUNCTION agentauth.access_report(anynonarray, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.access_report(anynonarray, timestamptz, timestamptz) TO agentauth_auditor;

-- agent_activity: everything one principal (agent or human) did or was
-- refused in the period, oldest first: what an auditor asks about an agent.
-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth.agent_activity(
    principal uuid,
    since timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '30 days'::interval,
    until timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (seq bigint, logged_at timestamptz, event text, outcome text,
                   patient text, on_behalf_of text, purpose text, relation text, action text,
                   columns text[], data_classes text[], row_count bigint,
                   authority jsonb, token uuid, client text)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    IF agent_activity.principal IS NULL THEN
        RAISE EXCEPTION 'principal must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM agentauth._report_args('-', since, until);
    IF NOT EXISTS (SELECT FROM agentauth.principal p WHERE p.id OPERATOR(pg_catalog.=) agent_activity.principal) THEN
        RAISE EXCEPTION 'unknown principal %', agent_activity.principal
            USING ERRCODE = '22023', HINT = 'See agentauth.principals.';
    END IF;
    RETURN QUERY
    SELECT l.seq, l.logged_at, l.event, l.outcome, l.patient, l.on_behalf_of, l.purpose,
           l.relation, l.action, l.columns, l.data_classes, l.row_count, l.authority,
           l.token, l.client
      FROM agentauth.audit_log l
     WHERE l.principal OPERATOR(pg_catalog.=) agent_activity.principal
       AND l.logged_at OPERATOR(pg_catalog.>=) since
       AND l.logged_at OPERATOR(pg_catalog.<=) until
     ORDER BY l.seq;
END
$$;
REVOKE ALL ON FUNCTION agentauth.agent_activity(uuid, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.agent_activity(uuid, timestamptz, timestamptz) TO agentauth_auditor;

-- element_access: who touched one element (table column) of one patient's
-- record, when, for what purpose, under whose authority -- including the
-- attempts that were denied.
-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth.element_access(
    patient text, tbl regclass, column_name name,
    since timestamptz DEFAULT '-infinity',
    until timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (seq bigint, logged_at timestamptz, event text, outcome text,
                   principal uuid, principal_name text, db_role text,
                   on_behalf_of text, purpose text, action text,
                   data_classes text[], row_count bigint, authority jsonb)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
    AS $$
DECLARE
    v_rel text;
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    PERFORM agentauth._report_args(patient, since, until);
    IF tbl IS NULL OR column_name IS NULL THEN
        RAISE EXCEPTION 'tbl and column_name must not be null' USING ERRCODE = '22004';
    END IF;
    v_rel := agentauth._relation_name(tbl);
    RETURN QUERY
    SELECT l.seq, l.logged_at, l.event, l.outcome, l.principal, l.principal_name,
           l.db_role, l.on_behalf_of, l.purpose, l.action, l.data_classes,
           l.row_count, l.authority
      FROM agentauth._patient_log(element_access.patient, since, until) l
     WHERE l.patient OPERATOR(pg_catalog.=) element_access.patient
       AND l.logged_at OPERATOR(pg_catalog.>=) since
       AND l.logged_at OPERATOR(pg_catalog.<=) until
       AND l.relation OPERATOR(pg_catalog.=) v_rel
       AND (element_access.column_name)::text OPERATOR(pg_catalog.=) ANY (l.columns)
     ORDER BY l.seq;
END
$$;
REVOKE ALL ON FUNCTION agentauth.element_access(text, regclass, name, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.element_access(text, regclass, name, timestamptz, timestamptz) TO agentauth_auditor;
-- the patient id as a value of a non-text patient column's type
CREATE FUNCTION agentauth.element_access(
    patient anynonarray, tbl regclass, column_name name,
    since timestamptz DEFAULT '-infinity',
    until timestamptz DEFAULT pg_catalog.now())
    RETURNS TABLE (seq bigint, logged_at timestamptz, event text, outcome text,
                   principal uuid, principal_name text, db_role text,
                   on_behalf_of text, purpose text, action text,
                   data_classes text[], row_count bigint, authority jsonb)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT * FROM agentauth.element_access(pg_catalog.format('%s', $1), $2, $3, $4, $5) $$;
REVOKE ALL ON FUNCTION agentauth.element_access(anynonarray, regclass, name, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.element_access(anynonarray, regclass, name, timestamptz, timestamptz) TO agentauth_auditor;

-- Purposes under which a use of PHI needs no accounting (45 CFR
-- 164.528(a)(1)): treatment, payment, health care operations, and the
-- patient's own request.  Anything else -- research, public health, model
-- training, break-the-glass, a code a site added -- is accounted for.
-- No SET search_path (the body names nothing unqualified): a function
-- with one is never inlined, and disclosure_accounting called it per
-- record, a fifth of the report's time in GUC save and restore.
CREATE FUNCTION agentauth._accounting_exempt(purpose text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT purpose OPERATOR(pg_catalog.=) ANY (ARRAY['TREAT', 'ETREAT', 'ERTREAT', 'TREATDS',
        'HPAYMT', 'PMTDS', 'HOPERAT', 'CAREMGT', 'PATRQT'])
$$;
REVOKE ALL ON FUNCTION agentauth._accounting_exempt(text) FROM PUBLIC;

-- disclosure_accounting: the HIPAA accounting of disclosures (45 CFR
-- 164.528) of one patient: for each disclosure its date, the recipient,
-- the purpose and a description of the data.  Only permitted uses that
-- reached data count (access and privileged_access with rows); uses for
-- treatment, payment, operations or at the patient's request are left out
-- unless include_exempt.
-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth.disclosure_accounting(
    patient text,
    since timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '6 years'::interval,
    until timestamptz DEFAULT pg_catalog.now(),
    include_exempt boolean DEFAULT false)
    RETURNS TABLE (disclosed_at timestamptz, recipient text, recipient_owner text,
                   on_behalf_of text, purpose text, purpose_display text,
                   description text, relation text, columns text[],
                   data_classes text[], row_count bigint, exempt boolean, seq bigint)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan
    AS $$
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    PERFORM agentauth._report_args(patient, since, until);
    IF include_exempt IS NULL THEN
        RAISE EXCEPTION 'include_exempt must not be null' USING ERRCODE = '22004';
    END IF;
    RETURN QUERY
    SELECT l.logged_at,
           COALESCE(l.principal_name, p.name, l.db_role),
           p.owner,
           l.on_behalf_of,
           l.purpose,
           pu.display,
           pg_catalog.concat_ws(' ',
               COALESCE(pg_catalog.array_to_string(l.data_classes, ', '), 'unclassified data'),
               'from', COALESCE(l.relation, 'an unnamed table'),
               '(' OPERATOR(pg_catalog.||) COALESCE(pg_catalog.array_to_string(l.columns, ', '), '')
                   OPERATOR(pg_catalog.||) ')',
               CASE WHEN l.action IS NULL OR l.action OPERATOR(pg_catalog.=) 'read' THEN NULL
                    ELSE l.action END,
               CASE WHEN l.row_count IS NULL THEN NULL
                    ELSE pg_catalog.format('%s row%s', l.row_count,
                         CASE WHEN l.row_count OPERATOR(pg_catalog.=) 1 THEN '' ELSE 's' END) END,
               CASE WHEN l.event OPERATOR(pg_catalog.=) 'privileged_access'
                    THEN '(privileged role, no agentauth session)' END),
           l.relation, l.columns, l.data_classes, l.row_count,
           COALESCE(agentauth._accounting_exempt(l.purpose), false),
           l.seq
      FROM agentauth._patient_log(disclosure_accounting.patient, since, until) l
      LEFT JOIN agentauth.principal p ON p.id OPERATOR(pg_catalog.=) l.principal
      LEFT JOIN agentauth.purpose pu ON pu.code OPERATOR(pg_catalog.=) l.purpose
     WHERE l.patient OPERATOR(pg_catalog.=) disclosure_accounting.patient
       AND l.logged_at OPERATOR(pg_catalog.>=) since
       AND l.logged_at OPERATOR(pg_catalog.<=) until
       AND l.event OPERATOR(pg_catalog.=) ANY (ARRAY['access', 'privileged_access'])
       AND l.outcome OPERATOR(pg_catalog.=) 'permit'
       AND COALESCE(l.row_count, 1) OPERATOR(pg_catalog.>) 0
       AND (include_exempt OR NOT COALESCE(agentauth._accounting_exempt(l.purpose), false))
     ORDER BY l.seq;
END
$$;
REVOKE ALL ON FUNCTION agentauth.disclosure_accounting(text, timestamptz, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.disclosure_accounting(text, timestamptz, timestamptz, boolean) TO agentauth_auditor;
-- the patient id as a value of a non-text patient column's type
CREATE FUNCTION agentauth.disclosure_accounting(
    patient anynonarray,
    since timestamptz DEFAULT pg_catalog.now() OPERATOR(pg_catalog.-) '6 years'::interval,
    until timestamptz DEFAULT pg_catalog.now(),
    include_exempt boolean DEFAULT false)
    RETURNS TABLE (disclosed_at timestamptz, recipient text, recipient_owner text,
                   on_behalf_of text, purpose text, purpose_display text,
                   description text, relation text, columns text[],
                   data_classes text[], row_count bigint, exempt boolean, seq bigint)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT * FROM agentauth.disclosure_accounting(pg_catalog.format('%s', $1), $2, $3, $4) $$;
REVOKE ALL ON FUNCTION agentauth.disclosure_accounting(anynonarray, timestamptz, timestamptz, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.disclosure_accounting(anynonarray, timestamptz, timestamptz, boolean) TO agentauth_auditor;

-- agent_inventory: every registered agent with its owner, role, status,
-- grants, live tokens, last access and recent denials.  Both counts read
-- the stored rows by (principal, logged_at), a unit's kinds only: through
-- the view, an agent's last access unnested every unit it ever wrote
-- (7 s for two agents of a 10 M-record log), where the newest row with an
-- access is one index probe.  Each row's event as the view derives it.
CREATE VIEW agentauth.agent_inventory AS
SELECT p.id AS agent,
       p.name,
       p.owner,
       p.db_role::regrole::text AS db_role,
       p.status,
       p.scopes,
       p.purposes,
       p.max_token_ttl,
       p.can_break_glass,
       p.can_delegate,
       p.registered_at,
       p.registered_by,
       (SELECT pg_catalog.count(*) FROM agentauth.token t
         WHERE t.agent OPERATOR(pg_catalog.=) p.id
           AND t.revoked_at IS NULL
           AND t.expires_at OPERATOR(pg_catalog.>) pg_catalog.now()) AS live_tokens,
       p.last_session_at,
       (SELECT r.logged_at FROM agentauth.audit_record r
         WHERE r.principal OPERATOR(pg_catalog.=) p.id
           AND CASE WHEN r.entry_kinds IS NULL THEN r.event OPERATOR(pg_catalog.=) 'access'
                    ELSE EXISTS (SELECT FROM pg_catalog.unnest(r.entry_kinds) k
                                  WHERE k OPERATOR(pg_catalog./) 3 OPERATOR(pg_catalog.=) 0) END
         ORDER BY r.logged_at DESC LIMIT 1) AS last_access,
       (SELECT COALESCE(pg_catalog.sum(CASE WHEN r.entry_kinds IS NULL THEN 1::bigint
                    ELSE (SELECT pg_catalog.count(*) FROM pg_catalog.unnest(r.entry_kinds) k
                           WHERE k OPERATOR(pg_catalog./) 3 OPERATOR(pg_catalog.=) 1) END), 0)::bigint
          FROM agentauth.audit_record r
         WHERE r.principal OPERATOR(pg_catalog.=) p.id
           AND (r.entry_kinds IS NOT NULL
                OR r.event OPERATOR(pg_catalog.=) ANY (ARRAY['denied', 'session_denied']))
           AND r.logged_at OPERATOR(pg_catalog.>) (pg_catalog.now() OPERATOR(pg_catalog.-) '24 hours'::interval))
           AS denials_24h
  FROM agentauth.principal p
 WHERE p.kind OPERATOR(pg_catalog.=) 'agent';
REVOKE ALL ON agentauth.agent_inventory FROM PUBLIC;
GRANT SELECT ON agentauth.agent_inventory TO agentauth_auditor;
