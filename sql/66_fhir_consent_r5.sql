-- FHIR R5 Consent, hand-written resources: the consent is the root rule
-- (its decision over everything, in its period, for its grantees), and
-- every provision an exception to the rule it is nested in -- the
-- opposite decision.  Each mapping (grantees, actors, purposes, actions,
-- security labels, resource types, data, periods, nesting, a deny cut
-- around its exceptions: deny overrides permit) and each clean refusal.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE ROLE reg66_agent;
INSERT INTO agentauth.principal (id, kind, name, db_role, owner, purposes, scopes,
    max_token_ttl, registered_by) VALUES
  ('66000000-0000-0000-0000-0000000000a1', 'agent', 'reg66-bot', 'reg66_agent'::regrole,
   'Organization/o66', '{TREAT}', '{lab:read}', '5 minutes', 'reg66');

CREATE FUNCTION pg_temp.rules(r jsonb)
    RETURNS TABLE (path text, decision text, purposes text[], classes text[], actions text[],
                   actors text[], valid tstzrange)
    LANGUAGE sql AS $$
    SELECT u.path, u.decision, u.purposes, u.classes, u.actions, u.actors, u.valid
      FROM agentauth._fhir_consent_rules(r) x, unnest(x.rules) u
$$;
-- an R5 Consent of patient P66 with these members
CREATE FUNCTION pg_temp.r5(members text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT ('{"resourceType": "Consent", "id": "r5", "status": "active",
              "subject": {"reference": "Patient/P66"}, ' || members || '}')::jsonb
$$;

-- the decision alone: everything, in the period
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit"'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "deny", "period": {"start": "2026-01-01", "end": "2026-12-31"}'));
-- grantees: every rule is for them (a practitioner, an organization, an
-- agent by Device reference and by principal identifier)
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "grantee": [
    {"reference": "Practitioner/p1"}, {"reference": "Organization/o66"},
    {"reference": "Device/66000000-0000-0000-0000-0000000000A1"},
    {"identifier": {"system": "urn:agentauth:principal", "value": "66000000-0000-0000-0000-0000000000a1"}}]'));
-- a permit with exceptions: each provision denies what it names --
-- a security label, a resource type, a purpose, actions, an actor
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"},
                       {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]},
    {"resourceType": [{"system": "http://hl7.org/fhir/fhir-types", "code": "Observation"}],
     "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}]},
    {"action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "correct"}]}]},
    {"actor": [{"reference": {"reference": "Organization/o-other"}}],
     "period": {"start": "2026-03-01", "end": "2026-03-31"}},
    {"actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"reference": "Practitioner/p-other"}}],
     "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}]'));
-- data: a deny of particular resources is enforced as a deny of their
-- data classes (more is withheld, never less); with a security label in
-- the same provision, of that label's classes only
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"data": [{"meaning": "instance", "reference": {"reference": "Observation/obs-1"}},
              {"meaning": "related", "reference": {"reference": "https://fhir.example.org/r5/DocumentReference/d1/_history/2"}}]},
    {"data": [{"meaning": "dependents", "reference": {"reference": "DiagnosticReport/dr-1"}}],
     "class": [{"system": "urn:agentauth:data-class", "code": "imaging"}]}]'));
-- three levels: permit; except research (deny); except research on
-- diagnoses (permit again): the deny is cut around it
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}],
     "provision": [{"resourceType": [{"system": "http://hl7.org/fhir/fhir-types", "code": "Condition"}]}]}]'));
-- deny overrides: an opt-out with exceptions.  Emergency treatment only
-- (the deny keeps every other purpose) ...
SELECT path, decision, purposes, classes, actions FROM pg_temp.rules(pg_temp.r5('"decision": "deny", "provision": [
    {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"}]}]'));
-- ... reading labs for treatment: the deny is cut in three dimensions
-- (other purposes; TREAT but other classes; TREAT and lab, but writing)
SELECT path, decision, purposes, classes, actions FROM pg_temp.rules(pg_temp.r5('"decision": "deny", "provision": [
    {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
     "class": [{"system": "urn:agentauth:data-class", "code": "lab"}],
     "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}]}]'));
-- ... an exception that covers all of the deny it is nested in: nothing
-- is left of that deny ($.provision[0].provision[0])
SELECT path, decision, purposes, classes FROM pg_temp.rules(pg_temp.r5('"decision": "deny", "provision": [
    {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
     "class": [{"system": "urn:agentauth:data-class", "code": "lab"}],
     "provision": [{"class": [{"system": "urn:agentauth:data-class", "code": "lab"}],
                    "provision": [{"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}]}]}]'));
-- ... for a grantee: its exceptions are for the grantee too
SELECT path, decision, purposes, actors FROM pg_temp.rules(pg_temp.r5('"decision": "deny",
    "grantee": [{"reference": "Organization/o66"}], "provision": [
    {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}]'));

-- imported end to end: the rules become provisions
SELECT cardinality(agentauth.import_fhir_consent(pg_temp.r5('"decision": "permit", "provision": [
    {"securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]}]'))) AS provisions;
SELECT decision, data_classes, source FROM agentauth.consents WHERE patient = 'P66' ORDER BY source;

-- (1.1) a permit nested in a deny is an exception to that deny, and never
-- reaches past a provision above it.  A deny names what it denies, wider
-- than its parent too; before, a permit nested in such a deny was met
-- with the deny only: permit (2020) -> deny (to 2099) -> permit gave a
-- permit to 2099.  Now refused, each with its path -- in R5 ...
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "period": {"start": "2020-01-01", "end": "2020-12-31"},
    "provision": [{"period": {"start": "2020-01-01", "end": "2099-12-31"},
                   "provision": [{"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}]}]'));
-- ... in R4: the period; the data classes (lab -> deny HIV -> permit gave
-- hiv); the grantees (agent B -> deny agent A -> permit gave agent A)
CREATE FUNCTION pg_temp.r4(provision text) RETURNS jsonb LANGUAGE sql AS $$
    SELECT ('{"resourceType": "Consent", "id": "r4", "status": "active",
              "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
              "patient": {"reference": "Patient/P66"}, "provision": ' || provision || '}')::jsonb
$$;
SELECT * FROM pg_temp.rules(pg_temp.r4('{"type": "permit", "period": {"start": "2020-01-01", "end": "2020-12-31"},
    "class": [{"system": "urn:agentauth:data-class", "code": "lab"}],
    "provision": [{"type": "deny", "period": {"start": "2020-01-01", "end": "2099-12-31"},
                   "provision": [{"type": "permit"}]}]}'));
SELECT * FROM pg_temp.rules(pg_temp.r4('{"type": "permit",
    "class": [{"system": "urn:agentauth:data-class", "code": "lab"}],
    "provision": [{"type": "deny",
                   "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}],
                   "provision": [{"type": "permit"}]}]}'));
SELECT * FROM pg_temp.rules(pg_temp.r4('{"type": "permit",
    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
               "reference": {"reference": "Organization/o-b"}}],
    "provision": [{"type": "deny",
                   "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                              "reference": {"reference": "Organization/o66"}}],
                   "provision": [{"type": "permit"}]}]}'));
-- ... and the same nesting within the permit still imports: the deny of
-- HIV data for research is cut around its exception (treatment)
SELECT path, decision, purposes, classes, valid FROM pg_temp.rules(pg_temp.r4('{"type": "permit",
    "period": {"start": "2020-01-01", "end": "2020-12-31"},
    "class": [{"system": "urn:agentauth:data-class", "code": "lab"},
              {"system": "urn:agentauth:data-class", "code": "hiv"}],
    "provision": [{"type": "deny",
                   "class": [{"system": "urn:agentauth:data-class", "code": "hiv"}],
                   "provision": [{"type": "permit",
                                  "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}]}]}'));

-- (1.1) an empty list is no "any": FHIR has no empty arrays, and an empty
-- purpose, class, action, actor or grantee list was read as "every"; an
-- OPTIN whose provision says nothing ({}) is refused as one without a
-- provision (it was a permit of every purpose, class and action)
SELECT * FROM pg_temp.rules(pg_temp.r4('{"type": "permit", "purpose": []}'));
SELECT * FROM pg_temp.rules(pg_temp.r4('{"type": "permit", "class": []}'));
SELECT * FROM pg_temp.rules(pg_temp.r4('{"type": "permit", "action": []}'));
SELECT * FROM pg_temp.rules(pg_temp.r4('{"type": "permit", "actor": []}'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "grantee": []'));
SELECT * FROM pg_temp.rules(('{"resourceType": "Consent", "id": "r4", "status": "active",
    "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
    "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
    "patient": {"reference": "Patient/P66"}, "provision": {}}')::jsonb);
-- (1.1) a deny nested in a deny takes what it leaves unnamed from the deny
-- it is nested in, as that one names it: the HIV deny denies to 2099, as
-- its parent (before: the 2020 of the permit above both, already ended)
SELECT path, decision, classes, valid FROM pg_temp.rules(pg_temp.r4('{"type": "permit",
    "period": {"start": "2020-01-01", "end": "2020-12-31"},
    "class": [{"system": "urn:agentauth:data-class", "code": "lab"}],
    "provision": [{"type": "deny", "period": {"start": "2020-01-01", "end": "2099-12-31"},
                   "provision": [{"type": "deny",
                                  "class": [{"system": "urn:agentauth:data-class", "code": "hiv"}]}]}]}'));

-- refusals, each with its JSON path
SELECT * FROM pg_temp.rules(pg_temp.r5('"provision": []'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "maybe"'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": {"purpose": []}'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [{"type": "deny"}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "deny", "provision": [
    {"data": [{"meaning": "instance", "reference": {"reference": "Observation/obs-1"}}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"data": [{"meaning": "authoredby", "reference": {"reference": "Practitioner/p1"}}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"data": [{"meaning": "related", "reference": {"reference": "Task/t1"}}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"data": [{"meaning": "instance", "reference": {"reference": "#contained"}}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"data": [{"meaning": "instance", "reference": {"reference": "Observation/o1"}}],
     "class": [{"system": "urn:agentauth:data-class", "code": "billing"}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [{"data": []}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"documentType": [{"system": "http://loinc.org", "code": "34133-9"}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"code": [{"coding": [{"system": "http://snomed.info/sct", "code": "123"}]}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"dataPeriod": {"start": "2020-01-01"}}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"expression": {"language": "text/fhirpath", "expression": "true"}}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "deny", "provision": [
    {"actor": [{"reference": {"reference": "Practitioner/p1"}}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "deny", "provision": [
    {"period": {"start": "2026-01-01"}}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "AUT"}]},
                "reference": {"reference": "Practitioner/p1"}}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "grantee": [{"reference": "Patient/P66"}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"provision": [{"modifierExtension": [{"url": "urn:x", "valueBoolean": true}]}]}]'));
SELECT * FROM pg_temp.rules(pg_temp.r5('"decision": "permit", "provision": [
    {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG"}]}]'));
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "not-done", "subject": {"reference": "Patient/P66"}, "decision": "permit"}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "subject": {"reference": "Group/g1"}, "decision": "permit"}');

-- (1.1) an opt-out cut around its exceptions lists every purpose but the
-- exceptions' (and the same for data classes): a purpose or class added
-- later is added to it, on the record, so the opt-out goes on denying it
-- (before, a purpose added after the import was not denied)
SELECT cardinality(agentauth.import_fhir_consent('{"resourceType": "Consent", "id": "optout66",
    "status": "active", "subject": {"reference": "Patient/P66X"}, "decision": "deny",
    "provision": [{"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]},
                  {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"}],
                   "class": [{"system": "urn:agentauth:data-class", "code": "lab"}]}]}')) AS provisions;
SELECT c.decision, 'MKTG66' = ANY (c.purposes) AS has_mktg, 'reg66_class' = ANY (c.data_classes) AS has_class,
       o.dims
  FROM agentauth.consent c LEFT JOIN agentauth.consent_open o ON o.consent = c.id
 WHERE c.patient = 'P66X' ORDER BY c.source, o.dims;
INSERT INTO agentauth.purpose (code, display) VALUES ('MKTG66', 'marketing (test)');
INSERT INTO agentauth.data_class (name, description) VALUES ('reg66_class', 'a class added later (test)');
SELECT c.decision, 'MKTG66' = ANY (c.purposes) AS has_mktg, 'reg66_class' = ANY (c.data_classes) AS has_class,
       o.dims
  FROM agentauth.consent c LEFT JOIN agentauth.consent_open o ON o.consent = c.id
 WHERE c.patient = 'P66X' ORDER BY c.source, o.dims;
SELECT event, patient, (detail ? 'purpose') AS purpose, (detail ? 'data_class') AS data_class
  FROM agentauth.audit_log WHERE event = 'consent_extended' AND patient <> 'P63H' ORDER BY seq;
-- the permit this consent holds (treatment) is not widened; a reserved
-- purpose (entered through break_glass only) is not added; a permit
-- cannot be marked to grow
INSERT INTO agentauth.purpose (code, display, reserved) VALUES ('RES66', 'reserved (test)', true);
SELECT count(*) FILTER (WHERE 'RES66' = ANY (purposes)) AS reserved_added,
       count(*) FILTER (WHERE decision = 'permit' AND consent_open_row) AS permits_growing
  FROM (SELECT c.*, EXISTS (SELECT FROM agentauth.consent_open o WHERE o.consent = c.id) AS consent_open_row
          FROM agentauth.consent c WHERE c.patient = 'P66X') c;
SELECT agentauth._consent_open_note(id, '{purposes}') FROM agentauth.consent WHERE patient = 'P66X' AND decision = 'permit' LIMIT 1;
-- a reserved purpose made an ordinary one, and a purpose renamed, are new
-- to the deny; what the deny knows is not added again: a restore loads
-- the site's classes after the consents, and a site class an exception
-- names (reg66_exc here, deleted and inserted again as a restore would)
-- must stay out of the deny that leaves it out
UPDATE agentauth.purpose SET reserved = false WHERE code = 'RES66';
UPDATE agentauth.purpose SET code = 'MKTG66B' WHERE code = 'MKTG66';
INSERT INTO agentauth.data_class (name, description) VALUES ('reg66_exc', 'a site class (test)');
SELECT cardinality(agentauth.import_fhir_consent('{"resourceType": "Consent", "id": "optout66y",
    "status": "active", "subject": {"reference": "Patient/P66Y"}, "decision": "deny",
    "provision": [{"class": [{"system": "urn:agentauth:data-class", "code": "reg66_exc"}]}]}')) AS provisions;
DELETE FROM agentauth.data_class WHERE name = 'reg66_exc';
INSERT INTO agentauth.data_class (name, description) VALUES ('reg66_exc', 'again, as a restore would');
SELECT c.patient, c.decision, 'reg66_exc' = ANY (c.data_classes) AS has_exc,
       'RES66' = ANY (c.purposes) AS has_res, 'MKTG66B' = ANY (c.purposes) AS has_renamed, o.dims
  FROM agentauth.consent c JOIN agentauth.consent_open o ON o.consent = c.id
 WHERE c.patient IN ('P66X', 'P66Y') ORDER BY c.patient, o.dims;
-- a withdrawn deny does not grow
SELECT agentauth.withdraw_consent(c.id, 'test') IS NULL AS withdrawn FROM agentauth.consent c
 WHERE c.patient = 'P66Y' AND c.decision = 'deny';
INSERT INTO agentauth.data_class (name, description) VALUES ('reg66_late', 'added after the withdrawal (test)');
SELECT c.patient, c.withdrawn_at IS NOT NULL AS withdrawn, 'reg66_late' = ANY (c.data_classes) AS has_late
  FROM agentauth.consent c WHERE c.patient = 'P66Y' AND c.decision = 'deny';
DELETE FROM agentauth.data_class WHERE name = 'reg66_late';
-- an exception that names every purpose there is, one by one, leaves
-- nothing of "every purpose" to deny today but would leave a purpose added
-- later undenied: refused
SELECT * FROM pg_temp.rules(pg_temp.r5(format('"decision": "deny", "provision": [{"purpose": %s,
    "class": [{"system": "urn:agentauth:data-class", "code": "lab"}]}]',
    (SELECT jsonb_agg(jsonb_build_object('system', 'http://terminology.hl7.org/CodeSystem/v3-ActReason', 'code', code) ORDER BY code)
       FROM agentauth.purpose WHERE NOT reserved))));
-- the import and the purposes and classes it cuts along are seen as they
-- are: at REPEATABLE READ neither an import nor a new purpose is taken
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT agentauth.import_fhir_consent(pg_temp.r5('"decision": "deny"'));
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO agentauth.purpose (code, display) VALUES ('RR66', 'at repeatable read (test)');
ROLLBACK;
-- a deny of restricted data (v3-Confidentiality R) covers every sensitive
-- class: one added as sensitive, or made sensitive, later is added to it
-- (before, the list was fixed at the import and such a class was readable
-- over the deny); an ordinary class added later is not
INSERT INTO agentauth.data_class (name, description) VALUES ('reg66_plain', 'ordinary, made sensitive later (test)');
SELECT cardinality(agentauth.import_fhir_consent(pg_temp.r5('"id": "restricted66", "decision": "permit",
    "provision": [{"securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}]'
    ) || '{"subject": {"reference": "Patient/P66Z"}}'::jsonb)) AS provisions;
UPDATE agentauth.data_class SET sensitive = true WHERE name = 'reg66_plain';
INSERT INTO agentauth.data_class (name, description, sensitive) VALUES ('reg66_sens', 'sensitive, added later (test)', true);
INSERT INTO agentauth.data_class (name, description) VALUES ('reg66_ord', 'ordinary, added later (test)');
SELECT c.decision, 'hiv' = ANY (c.data_classes) AS hiv, 'reg66_plain' = ANY (c.data_classes) AS made_sensitive,
       'reg66_sens' = ANY (c.data_classes) AS added_sensitive, 'reg66_ord' = ANY (c.data_classes) AS added_ordinary,
       o.dims
  FROM agentauth.consent c LEFT JOIN agentauth.consent_open o ON o.consent = c.id
 WHERE c.patient = 'P66Z' ORDER BY c.decision;
DELETE FROM agentauth.consent WHERE patient = 'P66Z';
DELETE FROM agentauth.data_class WHERE name IN ('reg66_plain', 'reg66_sens', 'reg66_ord');
DELETE FROM agentauth.consent WHERE patient IN ('P66X', 'P66Y');
DELETE FROM agentauth.data_class WHERE name = 'reg66_exc';
DELETE FROM agentauth.purpose WHERE code IN ('MKTG66B', 'RES66');
DELETE FROM agentauth.data_class WHERE name = 'reg66_class';
DELETE FROM agentauth.consent WHERE patient = 'P66';
DELETE FROM agentauth.principal WHERE name = 'reg66-bot';
DROP ROLE reg66_agent;
