-- audit_event_fhir(seq): audit records as FHIR R4 AuditEvent resources,
-- checked against the R4 AuditEvent structure (elements, cardinalities,
-- required elements, code systems) by a validator written here from the
-- R4 specification (http://hl7.org/fhir/R4/auditevent.html).  The records
-- about a patient's data follow IHE BALP (PatientQuery, PatientCreate /
-- Update / Delete, AuthZconsent); t/105_fhir_balp.pl checks them against
-- the official R4 JSON schema and BALP's required elements.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE ROLE reg61_auditor IN ROLE agentauth_auditor;
CREATE ROLE reg61_nobody;

-- A structural validator for R4 AuditEvent: returns one row per problem.
CREATE FUNCTION pg_temp.fhir_problems(r jsonb) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    instant_re text := '^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))$';
    dcm text := 'http://dicom.nema.org/resources/ontology/DCM';
    k text;
    a jsonb;
    e jsonb;
    c jsonb;
    v jsonb;
    n int;
BEGIN
    IF r->>'resourceType' IS DISTINCT FROM 'AuditEvent' THEN RETURN NEXT 'resourceType'; END IF;
    FOR k IN SELECT jsonb_object_keys(r) LOOP
        IF k <> ALL (ARRAY['resourceType', 'id', 'meta', 'implicitRules', 'language', 'text',
                'contained', 'extension', 'modifierExtension', 'type', 'subtype', 'action',
                'period', 'recorded', 'outcome', 'outcomeDesc', 'purposeOfEvent', 'agent',
                'source', 'entity']) THEN
            RETURN NEXT 'unknown element ' || k;
        END IF;
    END LOOP;
    -- FHIR JSON has no nulls, empty strings, arrays or objects
    FOR v IN SELECT * FROM jsonb_path_query(r, 'strict $.**') LOOP
        IF v = 'null' OR v = '""' OR v = '[]' OR v = '{}' THEN RETURN NEXT 'empty value ' || v::text; END IF;
    END LOOP;
    IF NOT coalesce(r->>'id' ~ '^[A-Za-z0-9\-\.]{1,64}$', true) THEN RETURN NEXT 'id'; END IF;
    -- type 1..1 Coding from the Audit Event ID value set (DICOM or HL7 audit-event-type)
    IF jsonb_typeof(r->'type') IS DISTINCT FROM 'object' OR r->'type'->>'code' IS NULL
       OR coalesce(r->'type'->>'system', '') NOT IN (dcm, 'http://terminology.hl7.org/CodeSystem/audit-event-type') THEN
        RETURN NEXT 'type';
    END IF;
    IF r->'type'->>'system' = dcm AND r->'type'->>'code' NOT IN ('110100', '110101', '110102', '110103',
        '110104', '110105', '110106', '110107', '110108', '110109', '110110', '110111', '110112',
        '110113', '110114') THEN
        RETURN NEXT 'type is not a DICOM audit event id';
    END IF;
    -- subtype 0..* Coding
    IF r ? 'subtype' THEN
        IF jsonb_typeof(r->'subtype') <> 'array' THEN RETURN NEXT 'subtype cardinality'; END IF;
        FOR c IN SELECT * FROM jsonb_array_elements(r->'subtype') LOOP
            IF c->>'code' IS NULL OR c->>'system' NOT IN (dcm, 'http://hl7.org/fhir/restful-interaction',
                    'urn:agentauth:event', 'https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType') THEN
                RETURN NEXT 'subtype ' || c::text;
            END IF;
        END LOOP;
    END IF;
    IF NOT coalesce(r->>'action' IN ('C', 'R', 'U', 'D', 'E'), true) OR jsonb_typeof(r->'action') <> 'string' THEN
        RETURN NEXT 'action';
    END IF;
    IF NOT coalesce(r->>'recorded' ~ instant_re, false) THEN RETURN NEXT 'recorded (required instant)'; END IF;
    IF NOT coalesce(r->>'outcome' IN ('0', '4', '8', '12'), true) THEN RETURN NEXT 'outcome'; END IF;
    -- purposeOfEvent 0..* CodeableConcept
    IF r ? 'purposeOfEvent' THEN
        FOR c IN SELECT * FROM jsonb_array_elements(r->'purposeOfEvent') LOOP
            IF jsonb_typeof(c->'coding') <> 'array' THEN RETURN NEXT 'purposeOfEvent coding'; END IF;
            FOR v IN SELECT * FROM jsonb_array_elements(c->'coding') LOOP
                IF v->>'code' IS NULL OR v->>'system' NOT IN
                    ('http://terminology.hl7.org/CodeSystem/v3-ActReason', 'urn:agentauth:purpose') THEN
                    RETURN NEXT 'purposeOfEvent ' || v::text;
                END IF;
            END LOOP;
        END LOOP;
    END IF;
    -- agent 1..*
    IF jsonb_typeof(r->'agent') IS DISTINCT FROM 'array' OR jsonb_array_length(r->'agent') < 1 THEN
        RETURN NEXT 'agent (1..*)';
    ELSE
        FOR a IN SELECT * FROM jsonb_array_elements(r->'agent') LOOP
            FOR k IN SELECT jsonb_object_keys(a) LOOP
                IF k <> ALL (ARRAY['id', 'extension', 'modifierExtension', 'type', 'role', 'who',
                        'altId', 'name', 'requestor', 'location', 'policy', 'media', 'network',
                        'purposeOfUse']) THEN
                    RETURN NEXT 'unknown agent element ' || k;
                END IF;
            END LOOP;
            IF jsonb_typeof(a->'requestor') IS DISTINCT FROM 'boolean' THEN
                RETURN NEXT 'agent.requestor (required boolean)';
            END IF;
            IF a ? 'type' AND jsonb_typeof(a->'type'->'coding') IS DISTINCT FROM 'array' THEN
                RETURN NEXT 'agent.type is a CodeableConcept';
            END IF;
            IF a ? 'who' AND EXISTS (SELECT FROM jsonb_object_keys(a->'who') x
                                      WHERE x NOT IN ('reference', 'type', 'identifier', 'display')) THEN
                RETURN NEXT 'agent.who is a Reference';
            END IF;
            IF a ? 'policy' AND EXISTS (SELECT FROM jsonb_array_elements(a->'policy') x
                                         WHERE jsonb_typeof(x) <> 'string' OR x->>0 !~ '^[a-z]+:\S+$') THEN
                RETURN NEXT 'agent.policy is uri[]';
            END IF;
            IF a ? 'extension' AND EXISTS (SELECT FROM jsonb_array_elements(a->'extension') x
                                            WHERE x->>'url' IS NULL OR NOT x ? 'valueString') THEN
                RETURN NEXT 'agent.extension';
            END IF;
            IF a ? 'purposeOfUse' AND EXISTS (SELECT FROM jsonb_array_elements(a->'purposeOfUse') x
                                               WHERE jsonb_typeof(x->'coding') <> 'array') THEN
                RETURN NEXT 'agent.purposeOfUse';
            END IF;
        END LOOP;
    END IF;
    -- source 1..1 with observer 1..1
    IF jsonb_typeof(r->'source') IS DISTINCT FROM 'object' OR NOT (r->'source') ? 'observer' THEN
        RETURN NEXT 'source.observer (required)';
    ELSIF EXISTS (SELECT FROM jsonb_object_keys(r->'source') x WHERE x NOT IN ('site', 'observer', 'type'))
          OR EXISTS (SELECT FROM jsonb_array_elements(r->'source'->'type') x
                      WHERE x->>'system' <> 'http://terminology.hl7.org/CodeSystem/security-source-type'
                         OR x->>'code' NOT IN ('1', '2', '3', '4', '5', '6', '7', '8', '9')) THEN
        RETURN NEXT 'source';
    END IF;
    -- entity 0..*
    IF r ? 'entity' THEN
        FOR e IN SELECT * FROM jsonb_array_elements(r->'entity') LOOP
            FOR k IN SELECT jsonb_object_keys(e) LOOP
                IF k <> ALL (ARRAY['id', 'extension', 'modifierExtension', 'what', 'type', 'role',
                        'lifecycle', 'securityLabel', 'name', 'description', 'query', 'detail']) THEN
                    RETURN NEXT 'unknown entity element ' || k;
                END IF;
            END LOOP;
            IF e ? 'name' AND e ? 'query' THEN RETURN NEXT 'sev-1: name and query'; END IF;
            IF e ? 'type' AND e->'type'->>'system' NOT IN ('http://terminology.hl7.org/CodeSystem/audit-entity-type',
                                                           'http://hl7.org/fhir/resource-types') THEN
                RETURN NEXT 'entity.type system';
            END IF;
            IF e ? 'role' AND (e->'role'->>'system' <> 'http://terminology.hl7.org/CodeSystem/object-role'
                               OR (e->'role'->>'code')::int NOT BETWEEN 1 AND 24) THEN
                RETURN NEXT 'entity.role';
            END IF;
            IF e ? 'securityLabel' AND EXISTS (SELECT FROM jsonb_array_elements(e->'securityLabel') x
                   WHERE x->>'system' NOT IN ('http://terminology.hl7.org/CodeSystem/v3-ActCode',
                                              'http://terminology.hl7.org/CodeSystem/v3-Confidentiality')) THEN
                RETURN NEXT 'entity.securityLabel';
            END IF;
            IF e ? 'detail' THEN
                FOR c IN SELECT * FROM jsonb_array_elements(e->'detail') LOOP
                    SELECT count(*) INTO n FROM jsonb_object_keys(c) x WHERE x IN ('valueString', 'valueBase64Binary');
                    IF jsonb_typeof(c->'type') IS DISTINCT FROM 'string' OR n <> 1 THEN
                        RETURN NEXT 'entity.detail ' || c::text;
                    END IF;
                END LOOP;
            END IF;
        END LOOP;
    END IF;
    IF r ? 'meta' AND EXISTS (SELECT FROM jsonb_array_elements(r->'meta'->'security') x
                               WHERE x->>'system' <> 'http://terminology.hl7.org/CodeSystem/v3-ActReason') THEN
        RETURN NEXT 'meta.security';
    END IF;
END
$$;

-- the validator itself finds problems
SELECT pg_temp.fhir_problems('{"resourceType": "AuditEvent", "type": {"code": "x"}, "action": "X",
    "recorded": "2026-01-05 10:00", "agent": [{"who": {"display": ""}, "requestor": "yes"}],
    "source": {}, "entity": [{"name": "a", "query": "b", "detail": [{"type": "t"}]}], "outcome": "1",
    "onBehalfOf": []}');

-- only auditors
SET ROLE reg61_nobody;
SELECT agentauth.audit_event_fhir(1);
RESET ROLE;
SET ROLE reg61_auditor;
SELECT agentauth.audit_event_fhir(NULL);
SELECT agentauth.audit_event_fhir(-5);
RESET ROLE;

BEGIN;
INSERT INTO agentauth.principal (id, kind, name, db_role, owner, purposes, scopes,
    max_token_ttl, registered_by) VALUES
  ('61000000-0000-0000-0000-0000000000a1', 'agent', 'reg61-bot', 'reg61_nobody'::regrole,
   'Cardiology', '{TREAT}', '{lab:read}', '5 minutes', 'reg61'),
  ('61000000-0000-0000-0000-0000000000d1', 'human', 'reg61-doc', 'reg61_auditor'::regrole,
   NULL, '{TREAT}', '{*:read}', NULL, 'reg61');
-- far above the writer's next seq, so a record it writes meanwhile cannot collide
CREATE TEMP TABLE base AS SELECT COALESCE(max(seq), 0) + 1000000000 AS b FROM agentauth.audit_log;
-- the log is append-only for every role: a superuser switches its guard off
-- through the catalog, inside this transaction (rolled back below); the
-- pg_class update makes this backend reload the table's triggers
UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 'agentauth.audit_record'::regclass;
UPDATE pg_catalog.pg_class SET relhastriggers = true WHERE oid = 'agentauth.audit_record'::regclass;
GRANT SELECT ON base TO reg61_auditor;
INSERT INTO agentauth.audit_record (seq, logged_at, event, principal, principal_name, db_role, token,
    on_behalf_of, delegation_chain, purpose, patient, relation, columns, data_classes, action,
    row_count, authority, outcome, statement, client, detail, prev_hash, row_hash)
SELECT b + n, t, ev, pr, pn, dr, tk, obo, ch, pu, pa, rel, cols, cls, act, rc, au, oc, st, cl, de, '', ''
  FROM base, (VALUES
 (1, '2026-01-05 10:00:00.123456+00'::timestamptz, 'access', '61000000-0000-0000-0000-0000000000a1'::uuid,
  'reg61-bot', 'reg61_nobody', '61000000-0000-0000-0000-0000000000b2'::uuid, 'dr_house',
  '{61000000-0000-0000-0000-0000000000b1,61000000-0000-0000-0000-0000000000b2}'::uuid[], 'TREAT', 'P61',
  'public.labs', '{patient_id,value}'::text[], '{lab}'::text[], 'read', 3::bigint,
  '{"consent": ["61000000-0000-0000-0000-0000000000c1"]}'::jsonb, 'permit', 'queryid 77 pid 4242',
  '10.0.0.7 triage-app', NULL::jsonb),
 (2, '2026-01-05 10:05+00', 'denied', '61000000-0000-0000-0000-0000000000a1', 'reg61-bot', 'reg61_nobody',
  '61000000-0000-0000-0000-0000000000b2', 'dr_house', NULL, 'TREAT', 'P61', 'public.labs',
  '{patient_id,hiv_status}', '{hiv}', 'read', 2, '{"default": "deny"}', 'deny', NULL, NULL, NULL),
 (3, '2026-01-06 02:00+00', 'break_glass_start', '61000000-0000-0000-0000-0000000000d1', 'reg61-doc',
  'reg61_auditor', NULL, NULL, NULL, 'BTG', 'P61', NULL, NULL, NULL, NULL, NULL,
  '{"break_glass": "61000000-0000-0000-0000-0000000000e1"}', 'permit', NULL, NULL,
  '{"reason": "unconscious patient", "ttl": "01:00:00"}'),
 (4, '2026-01-06 02:01+00', 'access', '61000000-0000-0000-0000-0000000000d1', 'reg61-doc', 'reg61_auditor',
  NULL, NULL, NULL, 'BTG', 'P61', 'public.labs', '{patient_id,hiv_status,value}', '{hiv,lab}', 'read', 1,
  '{"break_glass": "61000000-0000-0000-0000-0000000000e1"}', 'permit', NULL, NULL, NULL),
 (5, '2026-01-06 03:00+00', 'session_begin', '61000000-0000-0000-0000-0000000000a1', 'reg61-bot',
  'reg61_nobody', '61000000-0000-0000-0000-0000000000b2', 'dr_house', NULL, 'TREATDS', NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, 'permit', NULL, NULL, NULL),
 (6, '2026-01-06 03:01+00', 'session_denied', NULL, NULL, 'reg61_nobody', NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, 'deny', NULL, NULL, NULL),
 (7, '2026-01-06 03:02+00', 'unregistered_access', NULL, NULL, 'rogue', NULL, NULL, NULL, NULL, 'P61',
  'public.labs', '{value}', '{lab}', 'read', NULL, NULL, 'deny', NULL, NULL, NULL),
 (8, '2026-01-06 03:03+00', 'consent_recorded', NULL, NULL, 'registrar', NULL, NULL, NULL, NULL, 'P61',
  NULL, NULL, NULL, NULL, NULL, NULL, 'permit', NULL, NULL,
  '{"consent": "61000000-0000-0000-0000-0000000000c1", "decision": "permit"}'),
 (9, '2026-01-06 03:04+00', 'token_issued', '61000000-0000-0000-0000-0000000000a1', NULL, 'issuer',
  '61000000-0000-0000-0000-0000000000b2', NULL, NULL, 'TREAT', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, 'permit', NULL, NULL, NULL),
 (10, '2026-01-06 03:05+00', 'privileged_access', NULL, NULL, 'postgres', NULL, NULL, NULL, NULL, 'P61',
  'public.labs', '{value}', '{lab}', 'update', 1, NULL, 'permit', NULL, NULL, NULL),
 (11, '2026-01-06 03:06+00', 'audit_purged', NULL, NULL, 'postgres', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, 'permit', NULL, NULL, '{"before": "2020-01-01"}'),
 (12, '2026-01-06 03:07+00', 'break_glass_end', '61000000-0000-0000-0000-0000000000d1', 'reg61-doc',
  'reg61_auditor', NULL, NULL, NULL, 'BTG', 'P61', NULL, NULL, NULL, NULL, NULL,
  '{"break_glass": "61000000-0000-0000-0000-0000000000e1"}', 'permit', NULL, NULL, NULL),
 (13, '2026-01-06 03:08+00', 'table_protected', NULL, NULL, 'dba', NULL, NULL, NULL, NULL, NULL, 'public.labs',
  NULL, NULL, NULL, NULL, NULL, 'permit', NULL, NULL, '{"patient_column": "patient_id"}'),
 (14, '2026-01-06 03:09+00', 'access', NULL, NULL, 'x', NULL, NULL, NULL, 'SITEPURP', 'P61', 'public.labs',
  '{value}', '{lab}', 'insert', 1, NULL, 'permit', NULL, NULL, NULL)
 ) AS h(n, t, ev, pr, pn, dr, tk, obo, ch, pu, pa, rel, cols, cls, act, rc, au, oc, st, cl, de);

SET ROLE reg61_auditor;
-- every record is a structurally valid R4 AuditEvent
SELECT s - b AS n, p AS problem
  FROM base, generate_series(b + 1, b + 14) s, pg_temp.fhir_problems(agentauth.audit_event_fhir(s)) p;
SELECT count(*) AS checked FROM base, generate_series(b + 1, b + 14) s, agentauth.audit_event_fhir(s) f
 WHERE f->>'resourceType' = 'AuditEvent';

-- the type, subtype, action, outcome and purposes of each
SELECT s - b AS n, f->'subtype'->-1->>'code' AS event, f->'type'->>'code' AS type,
       (SELECT string_agg(st->>'code', ',') FROM jsonb_array_elements(f->'subtype') st) AS subtype,
       f->>'action' AS action, f->>'outcome' AS outcome,
       (SELECT string_agg(c->>'code', ',') FROM jsonb_array_elements(f->'purposeOfEvent') pe,
               jsonb_array_elements(pe->'coding') c) AS purposes,
       f->'meta'->'security'->0->>'code' AS meta_security,
       jsonb_array_length(f->'agent') AS agents, jsonb_array_length(f->'entity') AS entities
  FROM base, generate_series(b + 1, b + 14) s, agentauth.audit_event_fhir(s) f
 ORDER BY s;

-- an agent's read on behalf of a clinician, whole
SELECT replace(jsonb_pretty(agentauth.audit_event_fhir(b + 1) - 'source' - 'id'),
               (SELECT system_identifier::text FROM pg_control_system()), '<system identifier>') FROM base;
-- a break-the-glass read, whole
SELECT replace(jsonb_pretty(agentauth.audit_event_fhir(b + 4) - 'source' - 'id'),
               (SELECT system_identifier::text FROM pg_control_system()), '<system identifier>') FROM base;
-- the source names this database
SELECT f->'source'->>'site' = current_database() AS site,
       f->'source'->'observer'->'identifier'->>'value' = (SELECT system_identifier::text FROM pg_control_system()) AS observer,
       f->'source'->'type' AS source_type
  FROM base, agentauth.audit_event_fhir(b + 1) f;
RESET ROLE;
ROLLBACK;

-- a FHIR string is never empty: a site's purpose with an empty display
-- has none in its Coding (1.1, found by review: the event was invalid R4)
BEGIN;
INSERT INTO agentauth.purpose (code, display) VALUES ('REG61EMPTY', '');
SELECT agentauth._fhir_purpose('REG61EMPTY') AS coding;
ROLLBACK;

DROP ROLE reg61_auditor, reg61_nobody;
