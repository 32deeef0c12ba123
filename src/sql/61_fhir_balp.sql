
-- audit_event_fhir for the records about a patient's data (access, denied,
-- privileged_access, unregistered_access): IHE Basic Audit Log Patterns
-- (BALP, https://profiles.ihe.net/ITI/BALP/).
--
--   read, permitted       PatientQuery: type rest, subtype search-type,
--                         action E; an SQL statement is a query, and BALP
--                         asks for one AuditEvent per patient of its results
--                         (agentauth records one per statement, table and
--                         patient)
--   insert/update/delete  PatientCreate / PatientUpdate / PatientDelete:
--                         type rest, subtype create/update/delete, action
--                         C/U/D
--   denied                AuthZconsent (the consent authorization
--                         decision): type DCM 110113 Security Alert,
--                         subtype AuthZ-Consent, action E, outcome 4
--
-- Agents: client (the agent's or person's connection, with its network
-- address), server (this database), user (the person: the token's
-- on_behalf_of, or the human principal).  Entities: the patient as a
-- Reference(Patient) -- agentauth.fhir_patient_reference(), configured by
-- the setting of that name -- and the query, the data, or the consents.

-- The Reference(Patient) of a patient id, as the site configures it:
-- agentauth.fhir_patient_reference (sighup), a template where %s stands for
-- the patient id, e.g. 'https://fhir.example.org/r4/Patient/%s'; the
-- default 'Patient/%s' (an id that is no FHIR id then becomes a logical
-- reference by identifier); empty: always by identifier, system
-- urn:agentauth:patient.
CREATE FUNCTION agentauth.fhir_patient_reference(patient text) RETURNS jsonb
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t text := pg_catalog.current_setting('agentauth.fhir_patient_reference');
BEGIN
    IF patient IS NULL THEN
        RETURN NULL;
    END IF;
    -- an id that is no FHIR id is never put into a reference, under any
    -- template: it would make a reference to another resource or patient
    -- ('../Patient/P001' filed under P001) or one a server refuses (1.1:
    -- only the default template fell back to the identifier); nor is one
    -- of dots alone, which a URL resolves as a path ('..': the server base)
    IF t OPERATOR(pg_catalog.=) '' OR patient !~ E'^[A-Za-z0-9\\-\\.]{1,64}$'
       OR patient ~ E'^\\.+$' THEN
        RETURN pg_catalog.jsonb_build_object('type', 'Patient', 'identifier',
            pg_catalog.jsonb_build_object('system', 'urn:agentauth:patient', 'value', patient));
    END IF;
    IF pg_catalog.strpos(t, '%s') OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'agentauth.fhir_patient_reference must contain %%s, where the patient id goes'
            USING ERRCODE = '22023', DETAIL = pg_catalog.format('It is "%s".', t);
    END IF;
    RETURN pg_catalog.jsonb_build_object('reference', pg_catalog.replace(t, '%s', patient), 'type', 'Patient');
END
$$;

-- a network address as an agent.network: an IP address (type 2) or a
-- machine name (type 1)
CREATE FUNCTION agentauth._fhir_network(address text) RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
    SELECT CASE WHEN address IS NULL OR address OPERATOR(pg_catalog.=) 'local'
                THEN '{"address": "localhost", "type": "1"}'::jsonb
                WHEN address OPERATOR(pg_catalog.~) '^[0-9a-fA-F:.]+$'
                THEN pg_catalog.jsonb_build_object('address', address, 'type', '2')
                ELSE pg_catalog.jsonb_build_object('address', address, 'type', '1') END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_network(text) FROM PUBLIC;

-- the BALP AuditEvent of a record about a patient's data; the caller
-- (audit_event_fhir) has checked the role and read the record
CREATE FUNCTION agentauth._fhir_balp(r agentauth.audit_log, p agentauth.principal) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_pattern  text;            -- query, create, update, delete, authz
    v_btg      boolean;
    v_purposes jsonb := '[]';
    v_pou      jsonb;
    v_consents text[];
    v_client   jsonb;
    v_user     jsonb;
    v_agents   jsonb;
    v_entities jsonb;
    v_labels   jsonb;
    v_detail   jsonb;
    v_what     text;
    v_ext      jsonb := '[]';
    v_sysid    text;
    v_server   jsonb;
    v_patient  jsonb;
    v_reason   text;            -- why a denial: the decision's reason
BEGIN
    v_pattern := CASE WHEN r.outcome IS DISTINCT FROM 'permit' THEN 'authz'
                      WHEN r.action OPERATOR(pg_catalog.=) 'insert' THEN 'create'
                      WHEN r.action OPERATOR(pg_catalog.=) ANY (ARRAY['update', 'delete']) THEN r.action
                      ELSE 'query' END;
    v_btg := r.purpose IS NOT DISTINCT FROM 'BTG'
             OR COALESCE(r.authority OPERATOR(pg_catalog.?) 'break_glass', false);
    SELECT s.system_identifier::text INTO v_sysid FROM pg_catalog.pg_control_system() s;

    -- purposeOfEvent (and BTG: ETREAT too), as before
    IF r.purpose IS NOT NULL THEN
        v_pou := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('coding',
            pg_catalog.jsonb_build_array(agentauth._fhir_purpose(r.purpose))));
        v_purposes := v_pou;
    END IF;
    IF v_btg THEN
        IF r.purpose IS DISTINCT FROM 'BTG' THEN
            v_purposes := v_purposes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
                pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(agentauth._fhir_purpose('BTG'))));
        END IF;
        v_purposes := v_purposes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(
            pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(agentauth._fhir_purpose('ETREAT'))));
    END IF;

    -- the consents, override and approval behind the decision
    SELECT pg_catalog.array_agg(DISTINCT v.value OPERATOR(pg_catalog.#>>) '{}')
      INTO v_consents
      FROM pg_catalog.jsonb_path_query(COALESCE(r.authority, '{}'), 'strict $.**') AS v(value)
     WHERE pg_catalog.jsonb_typeof(v.value) OPERATOR(pg_catalog.=) 'string'
       AND (v.value OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.~)
           '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

    -- a denial says why (1.1, found by review: a denial for a patient
    -- outside the token's list, or for want of a clinician's approval, was
    -- exported as "no consent or default permits it")
    IF pg_catalog.jsonb_typeof(r.authority) OPERATOR(pg_catalog.=) 'object' THEN
        v_reason := NULLIF(r.authority OPERATOR(pg_catalog.->>) 'reason', '');
    END IF;
    IF v_reason IS NULL AND pg_catalog.jsonb_typeof(r.detail) OPERATOR(pg_catalog.=) 'object' THEN
        v_reason := NULLIF(r.detail OPERATOR(pg_catalog.->>) 'reason', '');
    END IF;

    -- the token and the delegation chain, as extensions of the client
    IF r.token IS NOT NULL THEN
        v_ext := v_ext OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'url', 'urn:agentauth:fhir:token', 'valueString', r.token::text));
    END IF;
    IF r.delegation_chain IS NOT NULL AND pg_catalog.cardinality(r.delegation_chain) OPERATOR(pg_catalog.>) 1 THEN
        v_ext := v_ext OPERATOR(pg_catalog.||) (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                'url', 'urn:agentauth:fhir:delegation-chain', 'valueString', t::text) ORDER BY o)
              FROM pg_catalog.unnest(r.delegation_chain) WITH ORDINALITY AS u(t, o));
    END IF;

    -- the user: the person the agent acts for, or the human principal
    IF r.on_behalf_of IS NOT NULL OR p.kind IS NOT DISTINCT FROM 'human' THEN
        v_user := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                CASE v_pattern
                    WHEN 'create' THEN agentauth._fhir_coding('ParticipationType', 'AUT', 'author')
                    WHEN 'update' THEN agentauth._fhir_coding('ParticipationType', 'AUT', 'author')
                    WHEN 'delete' THEN agentauth._fhir_coding('ParticipationType', 'CST', 'custodian')
                    ELSE agentauth._fhir_coding('ParticipationType', 'IRCP', 'information recipient') END)),
            'who', CASE WHEN r.on_behalf_of IS NOT NULL
                THEN pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                         'system', 'urn:agentauth:on-behalf-of', 'value', r.on_behalf_of), 'display', r.on_behalf_of)
                ELSE pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                         'system', 'urn:agentauth:principal', 'value', r.principal::text), 'display', r.principal_name) END,
            'name', COALESCE(r.on_behalf_of, r.principal_name),
            'requestor', true,
            'purposeOfUse', v_pou));
    END IF;

    -- AuthZconsent requires a user: without a person, the principal itself
    IF v_user IS NULL AND v_pattern OPERATOR(pg_catalog.=) 'authz' THEN
        v_user := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                agentauth._fhir_coding('ParticipationType', 'IRCP', 'information recipient'))),
            'who', CASE WHEN r.principal IS NOT NULL
                THEN pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                         'system', 'urn:agentauth:principal', 'value', r.principal::text), 'display', r.principal_name)
                ELSE pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                         'system', 'urn:agentauth:db-role', 'value', COALESCE(r.db_role, 'unknown')),
                         'display', COALESCE(r.db_role, 'unknown')) END,
            'name', COALESCE(r.principal_name, r.db_role),
            'requestor', true,
            'purposeOfUse', v_pou));
    END IF;

    -- the client: the agent's (or the person's, or a bare login's) connection
    v_client := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'extension', CASE WHEN pg_catalog.jsonb_array_length(v_ext) OPERATOR(pg_catalog.>) 0 THEN v_ext END,
        'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
            CASE WHEN v_pattern OPERATOR(pg_catalog.=) 'authz'
                 THEN agentauth._fhir_coding('DCM', '110150', 'Application')
                 ELSE agentauth._fhir_coding('DCM', '110153', 'Source Role ID') END)),
        'who', pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
            'identifier', CASE WHEN r.principal IS NOT NULL THEN pg_catalog.jsonb_build_object(
                'system', 'urn:agentauth:principal', 'value', r.principal::text)
                ELSE pg_catalog.jsonb_build_object('system', 'urn:agentauth:db-role', 'value', COALESCE(r.db_role, 'unknown')) END,
            'display', COALESCE(r.principal_name, r.db_role, 'unknown'))),
        -- AuthZconsent has no altId or name for the client
        'altId', CASE WHEN v_pattern OPERATOR(pg_catalog.<>) 'authz' THEN r.db_role END,
        'name', CASE WHEN v_pattern OPERATOR(pg_catalog.<>) 'authz' THEN r.principal_name END,
        'requestor', v_user IS NULL,
        'policy', (SELECT pg_catalog.jsonb_agg('urn:uuid:' OPERATOR(pg_catalog.||) c ORDER BY c)
                     FROM pg_catalog.unnest(v_consents) c),
        'network', agentauth._fhir_network((pg_catalog.regexp_match(r.client, E'^address=(\\S+)'))[1]),
        'purposeOfUse', CASE WHEN v_user IS NULL AND v_pattern OPERATOR(pg_catalog.<>) 'authz' THEN v_pou END));

    -- the server: this database
    v_server := pg_catalog.jsonb_build_object(
        'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
            CASE WHEN v_pattern OPERATOR(pg_catalog.=) 'authz'
                 THEN agentauth._fhir_coding('http://terminology.hl7.org/CodeSystem/extra-security-role-type', 'authserver', 'authorization server')
                 ELSE agentauth._fhir_coding('DCM', '110152', 'Destination Role ID') END)),
        'who', pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                   'system', 'urn:agentauth:system-identifier', 'value', v_sysid),
                 'display', 'agentauth, database ' OPERATOR(pg_catalog.||) pg_catalog.current_database()),
        'requestor', false);
    IF v_pattern OPERATOR(pg_catalog.<>) 'authz' THEN
        v_server := v_server OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('network',
            agentauth._fhir_network(pg_catalog.host(pg_catalog.inet_server_addr())));
    END IF;

    v_agents := pg_catalog.jsonb_build_array(v_client);
    IF v_user IS NOT NULL THEN
        v_agents := v_agents OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(v_user);
    END IF;
    -- AuthZconsent: the user's organization (the agent's accountable owner)
    IF v_pattern OPERATOR(pg_catalog.=) 'authz' THEN
        v_agents := v_agents OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
            'type', pg_catalog.jsonb_build_object('coding', pg_catalog.jsonb_build_array(
                agentauth._fhir_coding('http://terminology.hl7.org/CodeSystem/v3-RoleClass', 'PROV', 'healthcare provider'))),
            'who', CASE WHEN p.owner OPERATOR(pg_catalog.~) E'^(Organization|Practitioner|PractitionerRole|CareTeam)/[A-Za-z0-9\\-\\.]{1,64}$'
                        THEN pg_catalog.jsonb_build_object('reference', p.owner)
                        ELSE pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                                 'system', 'urn:agentauth:owner', 'value', COALESCE(p.owner, 'unknown')),
                             'display', COALESCE(p.owner, 'unknown')) END,
            'requestor', false));
    END IF;
    v_agents := v_agents OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(v_server);

    -- the patient
    v_patient := agentauth.fhir_patient_reference(r.patient);
    v_entities := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
        'what', v_patient OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('display', 'patient ' OPERATOR(pg_catalog.||) r.patient),
        'type', agentauth._fhir_coding('entity-type', '1', 'Person'),
        'role', agentauth._fhir_coding('object-role', '1', 'Patient')));

    -- what was touched: table, columns, classes and the rest of the record
    SELECT pg_catalog.jsonb_agg(DISTINCT agentauth._fhir_class_label(d))
      INTO v_labels FROM pg_catalog.unnest(r.data_classes) AS d
     WHERE agentauth._fhir_class_label(d) IS NOT NULL;
    IF v_labels IS NOT NULL THEN
        v_labels := pg_catalog.jsonb_build_array(agentauth._fhir_coding('Confidentiality', 'R', 'restricted'))
                    OPERATOR(pg_catalog.||) v_labels;
    END IF;
    SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('type', k, 'valueString', v) ORDER BY o, o2)
      INTO v_detail
      FROM (SELECT 1 AS o, 'column' AS k, c AS v, cn AS o2 FROM pg_catalog.unnest(r.columns) WITH ORDINALITY AS u(c, cn)
            UNION ALL SELECT 2, 'data_class', d, dn FROM pg_catalog.unnest(r.data_classes) WITH ORDINALITY AS u(d, dn)
            UNION ALL SELECT 3, 'row_count', r.row_count::text, 1 WHERE r.row_count IS NOT NULL
            UNION ALL SELECT 4, 'authority', r.authority::text, 1 WHERE r.authority IS NOT NULL
            UNION ALL SELECT 5, 'statement', r.statement, 1 WHERE r.statement IS NOT NULL
            UNION ALL SELECT 6, 'client', r.client, 1 WHERE r.client IS NOT NULL
            UNION ALL SELECT 7, 'detail', r.detail::text, 1 WHERE r.detail IS NOT NULL) AS x
     WHERE x.v IS NOT NULL AND x.v OPERATOR(pg_catalog.<>) '';
    v_what := pg_catalog.concat_ws(' ', r.action, COALESCE(r.relation, '(no table)'),
        CASE WHEN r.columns IS NOT NULL THEN
            '(' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(r.columns, ', ') OPERATOR(pg_catalog.||) ')' END,
        CASE WHEN r.data_classes IS NOT NULL THEN
            'classes ' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(r.data_classes, ', ') END);

    IF v_pattern OPERATOR(pg_catalog.=) 'authz' THEN
        -- AuthZconsent: patient, and the consents (closed slicing: nothing
        -- else); a decision no consent made names the rule that did
        v_entities := v_entities OPERATOR(pg_catalog.||) COALESCE(
            (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                 'type', agentauth._fhir_coding('http://hl7.org/fhir/resource-types', 'Consent', 'Consent'),
                 'what', pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                     'system', 'urn:agentauth:consent', 'value', c), 'type', 'Consent')) ORDER BY c)
               FROM pg_catalog.unnest(v_consents) c),
            pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                 'type', agentauth._fhir_coding('http://hl7.org/fhir/resource-types', 'Consent', 'Consent'),
                 'what', pg_catalog.jsonb_build_object('identifier', pg_catalog.jsonb_build_object(
                     'system', 'urn:agentauth:consent', 'value', 'none'),
                     'display', COALESCE(v_reason, 'no consent or default permits it (agentauth denies by default)')))));
    ELSE
        IF v_pattern OPERATOR(pg_catalog.=) 'query' THEN
            -- the query: the statement's identifier (agentauth keeps no
            -- statement text), base64; what it read, in the description
            v_entities := v_entities OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_strip_nulls(
                pg_catalog.jsonb_build_object(
                    'type', agentauth._fhir_coding('entity-type', '2', 'System Object'),
                    'role', agentauth._fhir_coding('object-role', '24', 'Query'),
                    'description', v_what,
                    'securityLabel', v_labels,
                    'query', pg_catalog.translate(pg_catalog.encode(pg_catalog.convert_to(
                        COALESCE(r.statement, 'unknown statement'), 'UTF8'), 'base64'), E'\n', ''))));
        END IF;
        -- the data: the table and the elements (columns); for a query an
        -- "Other" entity (BALP's query slice takes every System Object)
        v_entities := v_entities OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_strip_nulls(
            pg_catalog.jsonb_build_object(
                'what', pg_catalog.jsonb_build_object(
                    'identifier', pg_catalog.jsonb_build_object('system', 'urn:agentauth:relation',
                                                                'value', COALESCE(r.relation, 'unknown')),
                    'display', COALESCE(r.relation, 'unknown')),
                'type', CASE WHEN v_pattern OPERATOR(pg_catalog.=) 'query'
                             THEN agentauth._fhir_coding('entity-type', '4', 'Other')
                             ELSE agentauth._fhir_coding('entity-type', '2', 'System Object') END,
                'role', agentauth._fhir_coding('object-role', '4', 'Domain Resource'),
                'name', r.relation,
                'description', v_what,
                'securityLabel', v_labels,
                'detail', v_detail)));
    END IF;

    RETURN pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'resourceType', 'AuditEvent',
        'id', 'agentauth-' OPERATOR(pg_catalog.||) r.seq::text,
        'meta', CASE WHEN v_btg THEN pg_catalog.jsonb_build_object('security',
            pg_catalog.jsonb_build_array(agentauth._fhir_purpose('BTG'))) END,
        'type', CASE WHEN v_pattern OPERATOR(pg_catalog.=) 'authz'
                     THEN agentauth._fhir_coding('DCM', '110113', 'Security Alert')
                     ELSE agentauth._fhir_coding('http://terminology.hl7.org/CodeSystem/audit-event-type', 'rest', 'Restful Operation') END,
        'subtype', pg_catalog.jsonb_build_array(
            CASE v_pattern
                WHEN 'authz' THEN agentauth._fhir_coding('https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType',
                                                         'AuthZ-Consent', 'Authorization Decision using Roles and Consent')
                WHEN 'query' THEN agentauth._fhir_coding('restful', 'search-type', 'search-type')
                ELSE agentauth._fhir_coding('restful', v_pattern, v_pattern) END,
            agentauth._fhir_coding('urn:agentauth:event', r.event)),
        'action', CASE v_pattern WHEN 'create' THEN 'C' WHEN 'update' THEN 'U' WHEN 'delete' THEN 'D' ELSE 'E' END,
        'recorded', pg_catalog.to_char(r.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'outcome', CASE WHEN r.outcome IS NOT DISTINCT FROM 'permit' THEN '0'
                        WHEN r.event OPERATOR(pg_catalog.=) 'unregistered_access' THEN '8' ELSE '4' END,
        'outcomeDesc', CASE WHEN r.outcome IS DISTINCT FROM 'permit' THEN
            CASE WHEN r.event OPERATOR(pg_catalog.=) 'unregistered_access'
                 THEN 'denied: login role is not a registered principal'
                 ELSE 'denied: ' OPERATOR(pg_catalog.||) v_what OPERATOR(pg_catalog.||)
                      COALESCE(' (' OPERATOR(pg_catalog.||) v_reason OPERATOR(pg_catalog.||) ')', '') END END,
        'purposeOfEvent', CASE WHEN pg_catalog.jsonb_array_length(v_purposes) OPERATOR(pg_catalog.>) 0 THEN v_purposes END,
        'agent', v_agents,
        'source', pg_catalog.jsonb_build_object(
            'site', pg_catalog.current_database(),
            'observer', pg_catalog.jsonb_build_object(
                'identifier', pg_catalog.jsonb_build_object('system', 'urn:agentauth:system-identifier', 'value', v_sysid),
                'display', 'agentauth, database ' OPERATOR(pg_catalog.||) pg_catalog.current_database()),
            'type', pg_catalog.jsonb_build_array(agentauth._fhir_coding('source-type', '5', 'Database Server'))),
        'entity', v_entities));
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_balp(agentauth.audit_log, agentauth.principal) FROM PUBLIC;
