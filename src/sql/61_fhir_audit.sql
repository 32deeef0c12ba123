
-- audit_event_fhir(seq): one audit record as a FHIR R4 AuditEvent.  The
-- records about a patient's data follow IHE BALP (61_fhir_balp.sql); the
-- others are mapped here.
--
-- type/subtype: DICOM (DCM) audit event ids and HL7 codes;
--   PHI accesses: DCM 110110 "Patient Record", subtype restful-interaction
--   read/create/update/delete; sessions: DCM 110114 "User Authentication",
--   110122 Login / 110123 Logout; break-the-glass: DCM 110113 "Security
--   Alert", 110127 / 110138 Emergency Override Started / Stopped; other
--   administrative events: DCM 110113 with the DICOM security-alert
--   subtype that fits.  Every event also carries a subtype in the system
--   urn:agentauth:event naming the agentauth event, so nothing is lost.
-- R4 has no agent.onBehalfOf: the person an agent acts for is a second
--   agent entry, type v3-ParticipationType RESP (responsible party), marked
--   requestor; the software agent itself is then not the requestor.
-- Break-the-glass: purposeOfEvent BTG and ETREAT (v3-ActReason) and the
--   AuditEvent's meta.security carries BTG.

-- the code systems.  These helpers run once or more per record of the
-- FHIR export and the audit feed: SQL, STABLE as their bodies are
-- (jsonb_build_object), no SET clause, every name qualified, so the
-- planner inlines them into their callers (SECURITY DEFINER, search_path
-- pinned).  Declared IMMUTABLE with a SET clause, each call was planned
-- on its own, its body parsed again each time (evaluate_expr folding a
-- call with constant arguments): 80 % of audit_event_fhir's time.
CREATE FUNCTION agentauth._fhir_coding(system text, code text, display text DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'system', CASE system
            WHEN 'DCM' THEN 'http://dicom.nema.org/resources/ontology/DCM'
            WHEN 'ActReason' THEN 'http://terminology.hl7.org/CodeSystem/v3-ActReason'
            WHEN 'ActCode' THEN 'http://terminology.hl7.org/CodeSystem/v3-ActCode'
            WHEN 'Confidentiality' THEN 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality'
            WHEN 'ParticipationType' THEN 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType'
            WHEN 'restful' THEN 'http://hl7.org/fhir/restful-interaction'
            WHEN 'entity-type' THEN 'http://terminology.hl7.org/CodeSystem/audit-entity-type'
            WHEN 'object-role' THEN 'http://terminology.hl7.org/CodeSystem/object-role'
            WHEN 'source-type' THEN 'http://terminology.hl7.org/CodeSystem/security-source-type'
            WHEN 'role-type' THEN 'http://terminology.hl7.org/CodeSystem/extra-security-role-type'
            ELSE system END,
        'code', code,
        -- a FHIR string is never empty (a site's purpose with display '':
        -- 1.1, found by review, made the event invalid R4)
        'display', NULLIF(display, '')))
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_coding(text, text, text) FROM PUBLIC;

-- a purpose code as a Coding: the seeded codes are HL7 v3 ActReason
-- (PurposeOfUse); a code a site added is in the local system
CREATE FUNCTION agentauth._fhir_purpose(code text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT agentauth._fhir_coding(
        CASE WHEN code OPERATOR(pg_catalog.=) ANY (ARRAY['TREAT', 'ETREAT', 'ERTREAT', 'BTG',
                'HPAYMT', 'HOPERAT', 'HRESCH', 'PUBHLTH', 'CAREMGT', 'PATRQT', 'TREATDS',
                'PMTDS', 'MLTRAINING'])
             THEN 'ActReason' ELSE 'urn:agentauth:purpose' END,
        code,
        (SELECT p.display FROM agentauth.purpose p WHERE p.code OPERATOR(pg_catalog.=) _fhir_purpose.code))
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_purpose(text) FROM PUBLIC;

-- the sensitivity label (v3-ActCode) of a sensitive data class
CREATE FUNCTION agentauth._fhir_class_label(data_class text) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE data_class
        WHEN 'hiv' THEN agentauth._fhir_coding('ActCode', 'HIV', 'HIV/AIDS information sensitivity')
        WHEN 'mental_health' THEN agentauth._fhir_coding('ActCode', 'PSY', 'psychiatry information sensitivity')
        WHEN 'substance_use' THEN agentauth._fhir_coding('ActCode', 'ETH', 'substance abuse information sensitivity')
        WHEN 'genetic' THEN agentauth._fhir_coding('ActCode', 'GDIS', 'genetic disease information sensitivity')
        WHEN 'reproductive' THEN agentauth._fhir_coding('ActCode', 'SEX', 'sexuality and reproductive health information sensitivity')
        END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_class_label(text) FROM PUBLIC;

-- SECURITY DEFINER: reads agentauth.audit_log and the catalogs, which are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth.audit_event_fhir(seq bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r        agentauth.audit_log;
    p        agentauth.principal;
    v_btg    boolean;
    v_access boolean;
    v_type   jsonb;
    v_sub    jsonb := '[]';
    v_action text;
    v_outcome text;
    v_desc   text;
    v_purposes jsonb := '[]';
    v_agents jsonb := '[]';
    v_agent  jsonb;
    v_policy jsonb;
    v_ext    jsonb := '[]';
    v_entities jsonb := '[]';
    v_subject boolean;          -- the record's principal is acted on, not acting
    v_detail jsonb := '[]';
    v_labels jsonb;
    v_sysid  text;
    v_res    jsonb;
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    IF audit_event_fhir.seq IS NULL THEN
        RAISE EXCEPTION 'seq must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO r FROM agentauth._log_record(audit_event_fhir.seq) l;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit record with seq %', audit_event_fhir.seq
            USING ERRCODE = '22023', HINT = 'See agentauth.audit_head() for the last seq.';
    END IF;
    IF NOT pg_catalog.isfinite(r.logged_at) THEN
        RAISE EXCEPTION 'audit record % has no finite time', r.seq USING ERRCODE = '22023';
    END IF;
    IF r.principal IS NOT NULL THEN
        SELECT * INTO p FROM agentauth.principal x WHERE x.id OPERATOR(pg_catalog.=) r.principal;
    END IF;

    v_access := r.event OPERATOR(pg_catalog.=) ANY (ARRAY['access', 'denied', 'privileged_access', 'unregistered_access']);
    -- a patient's data: IHE BALP (61_fhir_balp.sql)
    IF v_access AND r.patient IS NOT NULL THEN
        RETURN agentauth._fhir_balp(r, p);
    END IF;
    v_btg := r.purpose IS NOT DISTINCT FROM 'BTG'
             OR r.event OPERATOR(pg_catalog.~~) E'break\\_glass\\_%'
             OR COALESCE(r.authority OPERATOR(pg_catalog.?) 'break_glass', false);

    -- type, subtype, action
    IF v_access THEN
        v_type := agentauth._fhir_coding('DCM', '110110', 'Patient Record');
        v_action := CASE r.action WHEN 'read' THEN 'R' WHEN 'insert' THEN 'C'
                                  WHEN 'update' THEN 'U' WHEN 'delete' THEN 'D' ELSE 'E' END;
        IF r.action IS NOT NULL THEN
            v_sub := v_sub OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
                agentauth._fhir_coding('restful',
                    CASE r.action WHEN 'insert' THEN 'create' ELSE r.action END));
        END IF;
    ELSIF r.event OPERATOR(pg_catalog.=) ANY (ARRAY['session_begin', 'session_end', 'session_denied']) THEN
        v_type := agentauth._fhir_coding('DCM', '110114', 'User Authentication');
        v_action := 'E';
        v_sub := v_sub OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
            CASE WHEN r.event OPERATOR(pg_catalog.=) 'session_end'
                 THEN agentauth._fhir_coding('DCM', '110123', 'Logout')
                 ELSE agentauth._fhir_coding('DCM', '110122', 'Login') END);
    ELSIF r.event OPERATOR(pg_catalog.=) 'audit_purged' THEN
        v_type := agentauth._fhir_coding('DCM', '110101', 'Audit Log Used');
        v_action := 'D';
    ELSIF r.event OPERATOR(pg_catalog.=) ANY (ARRAY['consent_recorded', 'consent_withdrawn']) THEN
        v_type := agentauth._fhir_coding('DCM', '110110', 'Patient Record');
        v_action := CASE r.event WHEN 'consent_recorded' THEN 'C' ELSE 'U' END;
        v_sub := v_sub OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
            agentauth._fhir_coding('restful', CASE r.event WHEN 'consent_recorded' THEN 'create' ELSE 'update' END));
    ELSE
        v_type := agentauth._fhir_coding('DCM', '110113', 'Security Alert');
        v_action := CASE r.event
            WHEN 'token_issued' THEN 'C' WHEN 'principal_registered' THEN 'C'
            WHEN 'approval_granted' THEN 'C'
            WHEN 'break_glass_start' THEN 'E' WHEN 'break_glass_end' THEN 'E'
            ELSE 'U' END;
        v_agent := CASE r.event
            WHEN 'break_glass_start' THEN agentauth._fhir_coding('DCM', '110127', 'Emergency Override Started')
            WHEN 'break_glass_end' THEN agentauth._fhir_coding('DCM', '110138', 'Emergency Override Stopped')
            WHEN 'token_issued' THEN agentauth._fhir_coding('DCM', '110137', 'User Security Attributes Changed')
            WHEN 'token_revoked' THEN agentauth._fhir_coding('DCM', '110137', 'User Security Attributes Changed')
            WHEN 'principal_status' THEN agentauth._fhir_coding('DCM', '110137', 'User Security Attributes Changed')
            WHEN 'principal_registered' THEN agentauth._fhir_coding('DCM', '110136', 'Security Roles Changed')
            WHEN 'approval_granted' THEN agentauth._fhir_coding('DCM', '110137', 'User Security Attributes Changed')
            WHEN 'table_protected' THEN agentauth._fhir_coding('DCM', '110135', 'Object Security Attributes Changed')
            WHEN 'table_unprotected' THEN agentauth._fhir_coding('DCM', '110135', 'Object Security Attributes Changed')
            WHEN 'default_changed' THEN agentauth._fhir_coding('DCM', '110129', 'Security Configuration')
            END;
        IF v_agent IS NOT NULL THEN
            v_sub := v_sub OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(v_agent);
        END IF;
    END IF;
    v_sub := v_sub OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
        agentauth._fhir_coding('urn:agentauth:event', r.event));

    -- outcome: 0 success; 4 minor failure (a denial); 8 serious failure
    -- (an unmanaged login reached a protected table)
    v_outcome := CASE WHEN r.outcome IS NOT DISTINCT FROM 'permit' THEN '0'
                      WHEN r.event OPERATOR(pg_catalog.=) 'unregistered_access' THEN '8'
                      ELSE '4' END;
    v_desc := CASE WHEN v_outcome OPERATOR(pg_catalog.=) '0' THEN NULL
                   WHEN r.event OPERATOR(pg_catalog.=) 'unregistered_access'
                       THEN 'denied: login role is not a registered principal'
                   ELSE 'denied' END;

    -- purposeOfEvent
    IF r.purpose IS NOT NULL THEN
        v_purposes := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('coding',
            pg_catalog.jsonb_build_array(agentauth._fhir_purpose(r.purpose))));
    END IF;
    IF v_btg THEN
        IF r.purpose IS DISTINCT FROM 'BTG' THEN
            v_purposes := v_purposes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                    agentauth._fhir_purpose('BTG'))));
        END IF;
        v_purposes := v_purposes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                agentauth._fhir_purpose('ETREAT'))));
    END IF;

    -- the authority (consents, override, approval) as the agent's policy
    SELECT pg_catalog.jsonb_agg(DISTINCT 'urn:uuid:' OPERATOR(pg_catalog.||) (v.value OPERATOR(pg_catalog.#>>) '{}'))
      INTO v_policy
      FROM pg_catalog.jsonb_path_query(COALESCE(r.authority, '{}'), 'strict $.**') AS v(value)
     WHERE pg_catalog.jsonb_typeof(v.value) OPERATOR(pg_catalog.=) 'string'
       AND (v.value OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.~)
           '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

    -- the token and the delegation chain, as extensions of the agent
    IF r.token IS NOT NULL THEN
        v_ext := v_ext OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'url', 'urn:agentauth:fhir:token', 'valueString', r.token::text));
    END IF;
    IF r.delegation_chain IS NOT NULL AND pg_catalog.cardinality(r.delegation_chain) OPERATOR(pg_catalog.>) 1 THEN
        v_ext := v_ext OPERATOR(pg_catalog.||) (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'url', 'urn:agentauth:fhir:delegation-chain', 'valueString', t::text) ORDER BY o)
              FROM pg_catalog.unnest(r.delegation_chain) WITH ORDINALITY AS u(t, o));
    END IF;

    -- an administrative record names the principal acted on (registered,
    -- its status changed, its token issued or revoked): the one who acted
    -- is the login role, and the principal is an entity (1.1, found by
    -- review: both were merged into one requesting agent, so a SIEM read
    -- an agent issuing its own token or suspending itself)
    v_subject := r.event OPERATOR(pg_catalog.=) ANY (ARRAY['principal_registered', 'principal_status',
                                                           'token_issued', 'token_revoked'])
                 AND r.principal IS NOT NULL;
    IF v_subject THEN
        v_agent := pg_catalog.jsonb_build_object(
            'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                agentauth._fhir_coding('DCM', '110151', 'Application Launcher'))),
            'who', pg_catalog.jsonb_build_object(
                'identifier', pg_catalog.jsonb_build_object('system', 'urn:agentauth:db-role',
                                                            'value', COALESCE(r.db_role, 'unknown')),
                'display', COALESCE(r.db_role, 'unknown')),
            'altId', r.db_role,
            'requestor', true);
        v_entities := pg_catalog.jsonb_build_array(pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'what', pg_catalog.jsonb_build_object(
                'identifier', pg_catalog.jsonb_build_object('system', 'urn:agentauth:principal',
                                                            'value', r.principal::text),
                'display', COALESCE(r.principal_name, r.principal::text)),
            'type', CASE WHEN p.kind IS NOT DISTINCT FROM 'human'
                         THEN agentauth._fhir_coding('entity-type', '1', 'Person')
                         ELSE agentauth._fhir_coding('entity-type', '2', 'System Object') END,
            'role', agentauth._fhir_coding('object-role', '11', 'Security User Entity'),
            'name', r.principal_name,
            'detail', CASE WHEN r.token IS NOT NULL THEN pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('type', 'token', 'valueString', r.token::text)) END)));
        v_ext := '[]';
    END IF;

    -- agent 1: who did it (a registered agent or human, or a bare login role)
    IF NOT v_subject THEN
        v_agent := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'extension', CASE WHEN pg_catalog.jsonb_array_length(v_ext) OPERATOR(pg_catalog.>) 0 THEN v_ext END,
            'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                CASE WHEN p.kind IS NOT DISTINCT FROM 'human'
                     THEN agentauth._fhir_coding('role-type', 'humanuser', 'human user')
                     WHEN p.kind IS NOT DISTINCT FROM 'agent'
                     THEN agentauth._fhir_coding('DCM', '110150', 'Application')
                     ELSE agentauth._fhir_coding('DCM', '110151', 'Application Launcher') END)),
            'who', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                'identifier', CASE WHEN r.principal IS NOT NULL THEN pg_catalog.jsonb_build_object(
                    'system', 'urn:agentauth:principal', 'value', r.principal::text) END,
                'display', COALESCE(r.principal_name, r.db_role, 'unknown'))),
            'altId', r.db_role,
            'name', r.principal_name,
            'requestor', r.on_behalf_of IS NULL,
            'policy', v_policy,
            'purposeOfUse', CASE WHEN r.purpose IS NOT NULL THEN pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                    agentauth._fhir_purpose(r.purpose)))) END));
    END IF;
    v_agents := pg_catalog.jsonb_build_array(v_agent);

    -- agent 2: the person the agent acts for (R4's stand-in for onBehalfOf)
    IF r.on_behalf_of IS NOT NULL AND NOT v_subject THEN
        v_agents := v_agents OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                agentauth._fhir_coding('ParticipationType', 'RESP', 'responsible party'))),
            'who', pg_catalog.jsonb_build_object(
                'identifier', pg_catalog.jsonb_build_object('system', 'urn:agentauth:on-behalf-of',
                                                            'value', r.on_behalf_of),
                'display', r.on_behalf_of),
            'requestor', true));
    END IF;

    -- entity 1: the patient
    IF r.patient IS NOT NULL THEN
        v_entities := v_entities OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            -- the patient's Reference as BALP's records give it, so that a
            -- search by patient finds these events too (1.1: an identifier
            -- without a system)
            'what', agentauth.fhir_patient_reference(r.patient) OPERATOR(pg_catalog.||)
                pg_catalog.jsonb_build_object('display', 'patient ' OPERATOR(pg_catalog.||) r.patient),
            'type', agentauth._fhir_coding('entity-type', '1', 'Person'),
            'role', agentauth._fhir_coding('object-role', '1', 'Patient')));
    END IF;

    -- entity 2: the table and the elements (columns) touched
    IF r.relation IS NOT NULL OR r.columns IS NOT NULL OR r.detail IS NOT NULL
       OR r.authority IS NOT NULL OR r.statement IS NOT NULL OR r.client IS NOT NULL THEN
        SELECT COALESCE(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('type', k, 'valueString', v) ORDER BY o), '[]')
          INTO v_detail
          FROM (SELECT 1 AS o, 'column' AS k, c AS v, cn AS o2
                  FROM pg_catalog.unnest(r.columns) WITH ORDINALITY AS u(c, cn)
                UNION ALL SELECT 2, 'data_class', d, dn
                  FROM pg_catalog.unnest(r.data_classes) WITH ORDINALITY AS u(d, dn)
                UNION ALL SELECT 3, 'row_count', r.row_count::text, 1 WHERE r.row_count IS NOT NULL
                UNION ALL SELECT 4, 'authority', r.authority::text, 1 WHERE r.authority IS NOT NULL
                UNION ALL SELECT 5, 'statement', r.statement, 1 WHERE r.statement IS NOT NULL
                UNION ALL SELECT 6, 'client', r.client, 1 WHERE r.client IS NOT NULL
                UNION ALL SELECT 7, 'detail', r.detail::text, 1 WHERE r.detail IS NOT NULL) AS x
         WHERE x.v IS NOT NULL AND x.v OPERATOR(pg_catalog.<>) '';
        SELECT pg_catalog.jsonb_agg(DISTINCT agentauth._fhir_class_label(d))
          INTO v_labels
          FROM pg_catalog.unnest(r.data_classes) AS d
         WHERE agentauth._fhir_class_label(d) IS NOT NULL;
        IF v_labels IS NOT NULL THEN
            v_labels := pg_catalog.jsonb_build_array(
                agentauth._fhir_coding('Confidentiality', 'R', 'restricted')) OPERATOR(pg_catalog.||) v_labels;
        END IF;
        v_entities := v_entities OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_strip_nulls(
            pg_catalog.jsonb_build_object(
                'what', CASE WHEN r.relation IS NOT NULL
                             THEN pg_catalog.jsonb_build_object('display', r.relation) END,
                'type', agentauth._fhir_coding('entity-type', '2', 'System Object'),
                'role', CASE WHEN r.relation IS NOT NULL
                             THEN agentauth._fhir_coding('object-role', '22', 'Table')
                             ELSE agentauth._fhir_coding('object-role', '13', 'Security Resource') END,
                'name', r.relation,
                'description', CASE WHEN r.columns IS NOT NULL THEN
                    pg_catalog.concat_ws(' ', pg_catalog.array_to_string(r.data_classes, ', '),
                        '(' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(r.columns, ', ')
                            OPERATOR(pg_catalog.||) ')') END,
                'securityLabel', v_labels,
                'detail', CASE WHEN pg_catalog.jsonb_array_length(v_detail) OPERATOR(pg_catalog.>) 0
                               THEN v_detail END)));
    END IF;

    SELECT s.system_identifier::text INTO v_sysid FROM pg_catalog.pg_control_system() s;

    v_res := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'resourceType', 'AuditEvent',
        'id', 'agentauth-' OPERATOR(pg_catalog.||) r.seq::text,
        'meta', CASE WHEN v_btg THEN pg_catalog.jsonb_build_object('security',
            pg_catalog.jsonb_build_array(agentauth._fhir_purpose('BTG'))) END,
        'type', v_type,
        'subtype', v_sub,
        'action', v_action,
        'recorded', pg_catalog.to_char(r.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'outcome', v_outcome,
        'outcomeDesc', v_desc,
        'purposeOfEvent', CASE WHEN pg_catalog.jsonb_array_length(v_purposes) OPERATOR(pg_catalog.>) 0
                               THEN v_purposes END,
        'agent', v_agents,
        'source', pg_catalog.jsonb_build_object(
            'site', pg_catalog.current_database(),
            'observer', pg_catalog.jsonb_build_object(
                'identifier', pg_catalog.jsonb_build_object('system', 'urn:agentauth:system-identifier',
                                                            'value', v_sysid),
                'display', 'agentauth, database ' OPERATOR(pg_catalog.||) pg_catalog.current_database()),
            'type', pg_catalog.jsonb_build_array(agentauth._fhir_coding('source-type', '5', 'Database Server'))),
        'entity', CASE WHEN pg_catalog.jsonb_array_length(v_entities) OPERATOR(pg_catalog.>) 0
                       THEN v_entities END));
    RETURN v_res;
END
$$;
REVOKE ALL ON FUNCTION agentauth.audit_event_fhir(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.audit_event_fhir(bigint) TO agentauth_auditor;
