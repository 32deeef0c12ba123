#!/usr/bin/env python3
"""Check agentauth's FHIR AuditEvents, one JSON object per input line:
{"seq": n, "event": "...", "patient": "..." or null, "resource": {...}}.

1. Every resource is valid against the official FHIR R4 JSON schema
   (test/fhir/fhir.schema.json.gz, its AuditEvent definition).
2. The records about a patient's data (access, denied, privileged_access,
   unregistered_access with a patient) carry what IHE BALP 1.1
   (https://profiles.ihe.net/ITI/BALP/) requires of the pattern they
   follow: PatientQuery, PatientCreate / PatientUpdate / PatientDelete, or
   AuthZconsent.

Prints one line per problem and "checked N, BALP M" at the end; exits 1 on
any problem.  Needs python3-jsonschema.
"""
import gzip
import json
import os
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
DCM = "http://dicom.nema.org/resources/ontology/DCM"
REST = "http://hl7.org/fhir/restful-interaction"
PT = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENT = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
AUTHZ = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"


def load_validator():
    with gzip.open(os.path.join(HERE, "fhir.schema.json.gz"), "rt") as f:
        schema = json.load(f)
    schema = {k: v for k, v in schema.items() if k not in ("oneOf", "discriminator")}
    schema["$ref"] = "#/definitions/AuditEvent"
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def coding_is(c, system, code):
    return isinstance(c, dict) and c.get("system") == system and c.get("code") == code


def cc_has(cc, system, code):
    return isinstance(cc, dict) and any(coding_is(c, system, code) for c in cc.get("coding", []))


def agents_of(res, system, code):
    return [a for a in res.get("agent", []) if cc_has(a.get("type"), system, code)]


def entities_of(res, system, code):
    return [e for e in res.get("entity", []) if coding_is(e.get("type"), system, code)]


def is_patient_ref(what):
    if not isinstance(what, dict):
        return False
    if "reference" in what:
        return what["reference"].split("/")[-2:-1] == ["Patient"]
    return what.get("type") == "Patient" and "identifier" in what


def balp_problems(res):
    p = []
    subtypes = res.get("subtype", [])
    if coding_is(res.get("type"), DCM, "110113"):
        pattern = "AuthZconsent"
    else:
        codes = [c.get("code") for c in subtypes if c.get("system") == REST]
        pattern = {"search-type": "PatientQuery", "create": "PatientCreate",
                   "update": "PatientUpdate", "delete": "PatientDelete"}.get(codes[0] if codes else None)
    if pattern is None:
        return ["no BALP pattern (type %s, subtype %s)" % (res.get("type"), subtypes)]

    def need(cond, what):
        if not cond:
            p.append("%s: %s" % (pattern, what))

    need(res.get("recorded"), "recorded 1..1")
    patients = entities_of(res, ENT, "1")
    need(len(patients) == 1, "entity[patient] 1..1")
    for e in patients:
        need(coding_is(e.get("role"), ROLE, "1"), "entity[patient].role = object-role#1")
        need(is_patient_ref(e.get("what")), "entity[patient].what only Reference(Patient)")
    if pattern == "AuthZconsent":
        need(any(coding_is(c, AUTHZ, "AuthZ-Consent") for c in subtypes), "subtype AuthZ-Consent")
        need(res.get("action") == "E", "action = E")
        need(res.get("outcome") in ("4", "8"), "outcome: failure when deny")
        for (system, code, name) in ((DCM, "110150", "client"), (PT, "IRCP", "user"),
                                     ("http://terminology.hl7.org/CodeSystem/v3-RoleClass", "PROV", "userorg"),
                                     ("http://terminology.hl7.org/CodeSystem/extra-security-role-type", "authserver", "authorizer")):
            a = agents_of(res, system, code)
            need(len(a) == 1, "agent[%s] 1..1" % name)
            for x in a:
                need("who" in x, "agent[%s].who 1..1" % name)
        for x in agents_of(res, DCM, "110150"):
            need("network" in x, "agent[client].network 1..1")
            need(not any(k in x for k in ("role", "altId", "name", "purposeOfUse")),
                 "agent[client] has no role, altId, name or purposeOfUse")
        for x in agents_of(res, PT, "IRCP"):
            need(x.get("requestor") is True, "agent[user].requestor = true")
        consents = entities_of(res, "http://hl7.org/fhir/resource-types", "Consent")
        need(len(consents) >= 1, "entity[consent] 1..*")
        for e in consents:
            need("what" in e, "entity[consent].what 1..1")
        need(len(res.get("entity", [])) == len(patients) + len(consents),
             "entity slicing is closed (patient, consent)")
        return p

    need(res.get("outcome") == "0", "outcome = 0 (success)")
    need(res.get("action") == {"PatientQuery": "E", "PatientCreate": "C", "PatientUpdate": "U",
                               "PatientDelete": "D"}[pattern], "action")
    need(coding_is(res.get("type"), "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest"),
         "type = audit-event-type#rest")
    clients = agents_of(res, DCM, "110153")
    servers = agents_of(res, DCM, "110152")
    need(len(clients) == 1 and len(servers) == 1, "agent[client] (110153) and agent[server] (110152) 1..1")
    for x in clients + servers:
        need("who" in x and "network" in x, "client and server: who and network 1..1")
        need("media" not in x, "no media")
    users = [a for a in res.get("agent", []) if a not in clients + servers]
    need(len(users) <= 1, "agent[user] 0..1")
    for x in users:
        need(x.get("requestor") is True and "who" in x and "network" not in x,
             "agent[user]: requestor true, who, no network")
    if pattern == "PatientQuery":
        q = entities_of(res, ENT, "2")
        need(len(q) == 1, "entity[query] 1..1 (the only System Object)")
        for e in q:
            need(coding_is(e.get("role"), ROLE, "24"), "entity[query].role = object-role#24")
            need("query" in e and "what" not in e and "detail" not in e and "lifecycle" not in e,
                 "entity[query]: query 1..1, no what, detail or lifecycle")
    else:
        d = entities_of(res, ENT, "2")
        need(len(d) == 1, "entity[data] 1..1")
        for e in d:
            need(e.get("role", {}).get("code") in ("4", "3", "20")
                 and e.get("role", {}).get("system") == ROLE, "entity[data].role from RestObjectRoles")
            need("what" in e, "entity[data].what 1..1")
        for x in users:
            need(any(cc_has(x.get("type"), PT, c) for c in ("AUT", "INF", "CST")),
                 "agent[user].type from DataSources (AUT, INF, CST)")
    return p


def main():
    validator = load_validator()
    bad = 0
    checked = 0
    balp = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        res = rec["resource"]
        checked += 1
        for err in sorted(validator.iter_errors(res), key=lambda e: list(e.path)):
            bad += 1
            print("seq %s %s: schema: %s at %s" % (rec["seq"], rec["event"], err.message[:200],
                                                    "/".join(str(x) for x in err.path)))
        if rec["event"] in ("access", "denied", "privileged_access", "unregistered_access") \
                and rec.get("patient") is not None:
            balp += 1
            for prob in balp_problems(res):
                bad += 1
                print("seq %s %s: BALP %s" % (rec["seq"], rec["event"], prob))
    print("checked %d, BALP %d" % (checked, balp))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
