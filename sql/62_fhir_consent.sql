-- import_fhir_consent: FHIR Consent resources mapped onto agentauth consent
-- provisions.  The examples are modelled on the published examples of the
-- FHIR R4 specification (http://hl7.org/fhir/R4/consent-examples.html),
-- written from their descriptions; where an example names a party agentauth
-- cannot resolve, this suite says what it changed.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE ROLE reg62_manager IN ROLE agentauth_consent_manager;
CREATE ROLE reg62_nobody;
CREATE ROLE reg62_agent;
INSERT INTO agentauth.principal (id, kind, name, db_role, owner, purposes, scopes,
    max_token_ttl, registered_by) VALUES
  ('62000000-0000-0000-0000-0000000000a1', 'agent', 'reg62-bot', 'reg62_agent'::regrole,
   'Organization/f001', '{TREAT}', '{lab:read}', '5 minutes', 'reg62');

-- the rules a resource maps to, without storing them
CREATE FUNCTION pg_temp.rules(r jsonb)
    RETURNS TABLE (patient text, source text, path text, decision text, purposes text[],
                   classes text[], actions text[], actors text[], valid tstzrange)
    LANGUAGE sql AS $$
    SELECT x.patient, x.source, u.path, u.decision, u.purposes, u.classes, u.actions, u.actors, u.valid
      FROM agentauth._fhir_consent_rules(r) x, unnest(x.rules) u
$$;

-- consent-example-basic: an opt-in for a period ("Basic Consent")
SELECT * FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "consent-example-basic",
  "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">P. van de Heuvel opts in</div>"},
  "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
  "patient": {"reference": "Patient/f001", "display": "P. van de Heuvel"},
  "dateTime": "2018-12-28",
  "organization": [{"reference": "Organization/f001"}],
  "sourceAttachment": {"title": "The terms of the consent in lawyer speak."},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {"period": {"start": "1964-01-01", "end": "2019-01-01"}}
}');

-- consent-example-notOrg: withhold from Organization f001 (access, correct)
SELECT * FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "consent-example-notOrg", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
  "patient": {"reference": "Patient/example"},
  "dateTime": "2015-11-18",
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {
    "type": "deny",
    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
               "reference": {"reference": "Organization/f001"}}],
    "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]},
               {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "correct"}]}]
  }
}');

-- consent-example-Emergency (modelled): opt out of everything, except
-- emergency treatment.  The deny is cut around its exception.
SELECT * FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "consent-example-Emergency", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
  "provision": {
    "period": {"start": "2026-01-01T00:00:00Z"},
    "provision": [{"type": "permit",
                   "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"},
                               {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ERTREAT"}]}]
  }
}');

-- refused (1.1): a permit at the root of an opt-out, which R4 gives no
-- type (1.0 stored the permit alone: the opt-out was gone), and an opt-in
-- with no provision (1.0 permitted every purpose, class and action)
SELECT * FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-optout-root-permit", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
  "provision": {"type": "permit",
                "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "ETREAT"}]}
}');
SELECT * FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-optin-bare", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}
}');

-- consent-example-smartonfhir (modelled): a patient lets one app (here an
-- agentauth agent, as Device/<principal id>) read observations and
-- medication requests for a year, but never HIV data
SELECT * FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "consent-example-smartonfhir", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {
    "type": "permit",
    "period": {"start": "2026-01-01", "end": "2026-12-31"},
    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
               "reference": {"reference": "Device/62000000-0000-0000-0000-0000000000a1"}}],
    "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
    "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"},
              {"system": "http://hl7.org/fhir/resource-types", "code": "MedicationRequest"}],
    "provision": [{"type": "deny",
                   "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]}]
  }
}');

-- only this site's patients (1.1: any server's Patient/<id>, and any
-- identifier's value whatever its system, was taken as the local id): a
-- reference to another server's Patient, an identifier of another system
-- or of none, are refused; an identifier of the site's own system is taken
-- once agentauth.fhir_patient_identifier_system names it (a reference in
-- the form of agentauth.fhir_patient_reference: t/105_fhir_balp)
SELECT patient FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-elsewhere", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "http://fhir.example.org/Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
}');
SELECT patient FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-no-system", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"identifier": {"value": "P62"}},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
}');
SELECT patient FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-ssn", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"identifier": {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "P62"}},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
}');
SELECT patient FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-ours", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"identifier": {"system": "urn:agentauth:patient", "value": "P62"}},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
}');
-- the parties too (1.1: another server's Practitioner/123, and an
-- identifier of any system or of none, were taken as this site's owner of
-- that name): refused; an owner by urn:agentauth:owner is taken
SELECT actors FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-actor-elsewhere", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
               "reference": {"reference": "https://other-hospital.example/fhir/Practitioner/123"}}]}
}');
SELECT actors FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-actor-payer", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
               "reference": {"identifier": {"system": "http://payer.example/member", "value": "alice"}}}]}
}');
SELECT actors FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-actor-owner", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
               "reference": {"identifier": {"system": "urn:agentauth:owner", "value": "alice"}}},
              {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
               "reference": {"reference": "Practitioner/123"}}]}
}');
-- a nested permit may name its parent's owner in other letter case and
-- with blanks, as names are compared everywhere (1.1, found by review:
-- refused as lying outside the provision it is nested in)
SELECT path, decision, actors FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-actor-fold", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
               "reference": {"identifier": {"system": "urn:agentauth:owner", "value": "Cardiology AI team"}}}],
    "provision": [{"type": "permit", "class": [{"system": "urn:agentauth:data-class", "code": "lab"}],
      "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                 "reference": {"identifier": {"system": "urn:agentauth:owner", "value": " CARDIOLOGY AI TEAM"}}}]}]}
}');

-- a permit's class, resourceType and securityLabel meet (FHIR: AND; 1.1:
-- their union -- HIV-labelled observations permitted all labs and all HIV
-- data): a permit narrower than any class is refused, one that names a
-- class twice keeps it; a deny takes the union
SELECT classes FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-and", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
    "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]}
}');
SELECT classes FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-and-2", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
    "securityLabel": [{"system": "urn:agentauth:data-class", "code": "lab"}]}
}');
SELECT classes FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-or-deny", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
    "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]}
}');

-- an opt-in and an opt-out in one Consent (1.1: the last coding won), and
-- implicit rules, a modifier (1.1: ignored): refused
SELECT decision FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-both", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"},
                            {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
}');
SELECT decision FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "c62-implicit", "status": "active", "implicitRules": "http://example.org/our-rules",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}]}
}');

SET agentauth.fhir_patient_identifier_system = 'urn:mrn';

-- an opt-out with exceptions by data class: nothing shared but labs and
-- vital signs for treatment
SELECT path, decision, purposes, classes FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "optout-but-labs", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"identifier": {"system": "urn:mrn", "value": "P62"}},
  "provision": {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
    "provision": [{"class": [{"system": "urn:agentauth:data-class", "code": "lab"},
                             {"system": "urn:agentauth:data-class", "code": "vital_signs"}]}]}
}');
RESET agentauth.fhir_patient_identifier_system;

-- the R5 shape: Consent.decision, subject, grantee, provision as an array;
-- nested provisions are exceptions (here: permit, but not mental health)
SELECT * FROM pg_temp.rules('{
  "resourceType": "Consent", "id": "r5-example", "status": "active",
  "subject": {"reference": "Patient/P62"},
  "period": {"start": "2026-02-01", "end": "2026-02"},
  "grantee": [{"reference": "Practitioner/f204"}],
  "decision": "permit",
  "provision": [{"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
                 "provision": [{"securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]}]},
                {"purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}],
                 "resourceType": [{"system": "http://hl7.org/fhir/fhir-types", "code": "Condition"}]}]
}');
-- R5 without provisions: the decision covers everything in the period
SELECT path, decision, valid FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "subject": {"reference": "Patient/P62"}, "decision": "deny",
  "period": {"start": "2026-03-01T08:00:00+01:00", "end": "2026-03-01T09:30:00+01:00"}}');

-- What cannot be mapped is refused with its JSON path
-- consent-example-notTime: withholds data of a time period (dataPeriod)
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "id": "consent-example-notTime", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "patient": {"reference": "Patient/f001"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {"type": "deny", "dataPeriod": {"start": "2015-01-01T05:00:00Z", "end": "2015-01-01T10:00:00Z"}}}');
-- consent-example-notThis: withholds one particular resource (data)
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "id": "consent-example-notThis", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "patient": {"reference": "Patient/f001"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {"type": "deny", "data": [{"meaning": "related", "reference": {"reference": "Task/example3"}}]}}');
-- consent-example-notAuthor: withholds what an author (role CST) wrote
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "id": "consent-example-notAuthor", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "patient": {"reference": "Patient/f001"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
  "provision": {"type": "deny", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "CST"}]},
                                            "reference": {"reference": "Practitioner/xcda-author"}}]}}');
-- an unknown purpose two levels down
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "provision": [
     {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}]},
     {"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "FOO"}]}]}}');
-- a permit cannot reach beyond the provision it is nested in (a deny may:
-- it denies what it names)
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
     "provision": [{"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}]}]}}');
SELECT path, decision, purposes, valid FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
     "period": {"start": "2026-01-01", "end": "2026-06-30"},
     "provision": [{"type": "deny", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HRESCH"}],
                    "period": {"start": "2025"}}]}}');
-- a permit exception to a deny that narrows by actor (not representable)
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
  "provision": {"provision": [{"actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
                                          "reference": {"reference": "Practitioner/f204"}}]}]}}');
-- the BTG purpose cannot be consented to; the period must not run backwards
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG"}]}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "period": {"start": "2026-02-01", "end": "2026-01-31"}}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "period": {"start": "2026-02-30"}}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "period": {"start": "2026-02-01T10:00:00"}}}');
-- classes: an unmapped resource type; an unknown sensitivity code
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"},
                                            {"system": "http://hl7.org/fhir/resource-types", "code": "Basic"}]}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "deny", "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "XYZ"}]}}');
-- actions, actors
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "action": [{"coding": [{"system": "http://example.org/acts", "code": "peek"}]}]}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active",
  "scope": {"coding": [{"code": "patient-privacy"}]}, "patient": {"reference": "Patient/P62"},
  "provision": {"type": "permit", "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}]},
                "reference": {"reference": "Device/62000000-0000-0000-0000-000000000999"}}]}}');
-- the resource itself
SELECT * FROM pg_temp.rules(NULL);
SELECT * FROM pg_temp.rules('[]');
SELECT * FROM pg_temp.rules('{"resourceType": "Patient"}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "draft"}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "inactive"}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "id": "a b", "status": "active"}');
-- an inactive consent maps to no rules (importing it ends an earlier import)
SELECT x.patient, x.source, x.active, cardinality(x.rules) FROM agentauth._fhir_consent_rules('{
  "resourceType": "Consent", "id": "c-1", "status": "inactive", "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"}, "provision": {"type": "permit"}}') x;
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "research"}]}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "Practitioner/x"}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"}, "provision": {"type": "permit", "provision": [{"type": "maybe"}]}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"}, "provision": {"type": "permit", "provision": [{"type": "deny",
  "class": [{"system": "urn:agentauth:data-class", "code": "lab", "modifierExtension": [{"url": "urn:x", "valueBoolean": true}]}]}]}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "scope": {"coding": [{"code": "patient-privacy"}]},
  "patient": {"reference": "Patient/P62"}, "provision": {"type": "permit", "purpose": {"code": "TREAT"}}}');
SELECT * FROM pg_temp.rules('{"resourceType": "Consent", "status": "active", "subject": {"reference": "Patient/P62"},
  "provision": [{"type": "permit"}]}');

-- absurd nesting is refused with a path, not a stack overflow
SELECT * FROM pg_temp.rules(('{"resourceType": "Consent", "status": "active", "x": '
    || repeat('[', 3000) || repeat(']', 3000) || '}')::jsonb);

-- only consent managers import
SET ROLE reg62_nobody;
SELECT agentauth.import_fhir_consent('{"resourceType": "Consent"}');
RESET ROLE;

DELETE FROM agentauth.principal WHERE name = 'reg62-bot';
DROP ROLE reg62_manager, reg62_nobody, reg62_agent;
