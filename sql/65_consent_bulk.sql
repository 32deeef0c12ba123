-- Consents in bulk.  (1) 4,000 record_consent calls in one transaction
-- are recorded -- each with its consent_recorded audit record, which no
-- longer has to fit in the audit queue (past a quarter of it they are
-- spilled into agentauth._audit_spill and moved into the log after the
-- commit; t/046_consent_bulk.pl loads far more than the whole queue) -- and
-- still only when the transaction commits: a rollback, or a rolled-back
-- savepoint, leaves none.  (2) A FHIR Bundle of Consents is imported all
-- or nothing, and every error names the entry and the JSON path.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';
CREATE ROLE reg65_mgr IN ROLE agentauth_consent_manager;
CREATE ROLE reg65_nobody;
SELECT coalesce(n_tup_ins, 0) AS spilled_before FROM pg_stat_user_tables
 WHERE relid = 'agentauth._audit_spill'::regclass \gset
SET ROLE reg65_mgr;

-- (1) in one transaction, past the spill threshold: recorded, each
-- audited once
BEGIN;
SELECT count(agentauth.record_consent('b65-' || i, 'permit', '{TREAT}', '{lab}'))
  FROM generate_series(1, 4000) i;
SAVEPOINT s;
SELECT agentauth.record_consent('b65-rolled-back', 'permit') IS NOT NULL AS recorded;
ROLLBACK TO s;
SELECT agentauth.record_consent('b65-kept', 'deny') IS NOT NULL AS recorded;
COMMIT;
RESET ROLE;
-- visible when COMMIT returns (the committing backend waits for the move)
SELECT count(*) AS consent_recorded, count(DISTINCT patient) AS patients,
       count(*) FILTER (WHERE patient = 'b65-rolled-back') AS rolled_back,
       count(*) FILTER (WHERE patient = 'b65-kept') AS kept
  FROM agentauth.audit_log WHERE event = 'consent_recorded' AND patient LIKE 'b65-%';
SELECT count(*) AS consents FROM agentauth.consent WHERE patient LIKE 'b65-%';
SELECT count(*) AS left_in_spill FROM agentauth._audit_spill;
-- (they went through the spill table)
SELECT pg_stat_force_next_flush();
SELECT n_tup_ins - :spilled_before >= 4000 AS spilled FROM pg_stat_user_tables
 WHERE relid = 'agentauth._audit_spill'::regclass;
SELECT ok, problem FROM agentauth.verify_audit();
-- nobody writes the spill table but the extension, a superuser included
-- (1.1: a forged record inserted there was chained by the writer; a
-- committed transaction's records deleted there never reached the log)
INSERT INTO agentauth._audit_spill VALUES (1, 1, '\x00');
UPDATE agentauth._audit_spill SET ord = ord;
DELETE FROM agentauth._audit_spill;
TRUNCATE agentauth._audit_spill;

-- a rolled-back bulk load leaves neither consents nor records
SET ROLE reg65_mgr;
BEGIN;
SELECT count(agentauth.record_consent('c65-' || i, 'permit')) FROM generate_series(1, 4000) i;
ROLLBACK;
RESET ROLE;
SELECT pg_sleep(0.5);
SELECT count(*) AS records_after_rollback FROM agentauth.audit_log WHERE patient LIKE 'c65-%';
SELECT count(*) AS consents_after_rollback FROM agentauth.consent WHERE patient LIKE 'c65-%';
SELECT count(*) AS left_in_spill FROM agentauth._audit_spill;
-- the spill table's index.  After REINDEX CONCURRENTLY (which builds a copy
-- beside it and swaps), with an index a DBA added, and with an invalid copy
-- of it left behind (a failed REINDEX CONCURRENTLY leaves one): every index
-- that takes entries gets them, the mover reads by the valid one.
REINDEX TABLE CONCURRENTLY agentauth._audit_spill;
CREATE INDEX reg65_spill_ord ON agentauth._audit_spill (ord);
CREATE INDEX reg65_spill_copy ON agentauth._audit_spill (txn, ord);
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'agentauth.reg65_spill_copy'::regclass;
SET ROLE reg65_mgr;
BEGIN;
SELECT count(agentauth.record_consent('d65-' || i, 'permit')) FROM generate_series(1, 5000) i;
COMMIT;
RESET ROLE;
SELECT count(*) AS consent_recorded FROM agentauth.audit_log
 WHERE event = 'consent_recorded' AND patient LIKE 'd65-%';
SELECT count(*) AS left_in_spill FROM agentauth._audit_spill;
SELECT pg_relation_size('agentauth.reg65_spill_ord') > 16384 AS dba_index_took_entries,
       pg_relation_size('agentauth.reg65_spill_copy') > 16384 AS invalid_copy_took_entries;
-- with no valid index on (txn, ord), a transaction that would spill fails
-- (before its commit), not the move after it
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'agentauth._audit_spill_order'::regclass;
SET ROLE reg65_mgr;
BEGIN;
SELECT count(agentauth.record_consent('e65-' || i, 'permit')) FROM generate_series(1, 5000) i;
ROLLBACK;
RESET ROLE;
UPDATE pg_index SET indisvalid = true WHERE indexrelid = 'agentauth._audit_spill_order'::regclass;
DROP INDEX agentauth.reg65_spill_ord, agentauth.reg65_spill_copy;
SELECT count(*) AS records_of_the_refused_load FROM agentauth.audit_log WHERE patient LIKE 'e65-%';

-- nobody reads or writes the spill table
SET ROLE reg65_mgr;
SELECT count(*) FROM agentauth._audit_spill;
RESET ROLE;

-- A bulk load tells the hot standbys of its consent changes once, in its
-- commit record: one invalidation of the marker (replica.c), not one per
-- consent, each of which was also processed in the loading session at the
-- end of every statement, re-planning and re-reading its statements (1.1:
-- a 100,000-Consent Bundle ran at a quarter of its speed).  A change in a
-- savepoint rolled back is still published (one reload too many on the
-- standby, never one too few).
CREATE EXTENSION pg_walinspect;
SELECT pg_current_wal_insert_lsn() AS wal0 \gset
SET ROLE reg65_mgr;
BEGIN;
SELECT count(agentauth.record_consent('w65-' || i, 'permit')) FROM generate_series(1, 200) i;
SAVEPOINT s;
SELECT agentauth.record_consent('w65-rolled-back', 'deny') IS NOT NULL AS recorded;
ROLLBACK TO s;
RESET ROLE;
SELECT pg_current_xact_id() AS bulk_xid \gset
COMMIT;
BEGIN;
SET LOCAL ROLE reg65_mgr;
SAVEPOINT s;
SELECT agentauth.record_consent('w65-only-rolled-back', 'deny') IS NOT NULL AS recorded;
ROLLBACK TO s;
RESET ROLE;
SELECT pg_current_xact_id() AS rb_xid \gset
COMMIT;
SELECT CASE xid::text::bigint WHEN :bulk_xid THEN 'bulk load' ELSE 'only rolled back' END AS txn,
       regexp_count(description, 'relcache ' || 'agentauth.consent'::regclass::oid || '( |$)') AS consent_invalidations
  FROM pg_get_wal_records_info_till_end_of_wal(:'wal0')
 WHERE record_type = 'COMMIT' AND xid::text::bigint IN (:bulk_xid, :rb_xid)
 ORDER BY xid::text::bigint;
DROP EXTENSION pg_walinspect;

-- (2) a Bundle of Consents
CREATE FUNCTION pg_temp.consent(id text, patient text, purpose text) RETURNS jsonb
    LANGUAGE sql AS $$
    SELECT jsonb_build_object('resourceType', 'Consent', 'id', id, 'status', 'active',
        'scope', '{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}'::jsonb,
        'patient', jsonb_build_object('reference', 'Patient/' || patient),
        'policyRule', '{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}'::jsonb,
        'provision', jsonb_build_object('purpose', jsonb_build_array(jsonb_build_object(
            'system', 'http://terminology.hl7.org/CodeSystem/v3-ActReason', 'code', purpose))))
$$;
SET ROLE reg65_mgr;
SELECT entry, source, cardinality(consents) AS provisions
  FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'transaction', 'entry', jsonb_build_array(
      jsonb_build_object('fullUrl', 'urn:uuid:1', 'resource', pg_temp.consent('b65-1', 'P65A', 'TREAT'),
                         'request', '{"method": "PUT", "url": "Consent/b65-1"}'::jsonb),
      jsonb_build_object('resource', pg_temp.consent('b65-2', 'P65B', 'HRESCH'),
                         'request', '{"method": "POST", "url": "Consent"}'::jsonb),
      -- R5 shape in the same Bundle: permit, except HIV data
      jsonb_build_object('resource', '{"resourceType": "Consent", "id": "b65-3", "status": "active",
          "subject": {"reference": "Patient/P65C"}, "decision": "permit",
          "provision": [{"securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}]}]}'::jsonb))));
SELECT patient, decision, purposes, data_classes, source FROM agentauth.consents
 WHERE patient LIKE 'P65%' ORDER BY patient, source;
-- import_fhir_consent takes a Bundle too: every provision, in entry order
SELECT cardinality(agentauth.import_fhir_consent(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-4', 'P65D', 'TREAT')),
      jsonb_build_object('resource', pg_temp.consent('b65-5', 'P65E', 'TREAT')))))) AS provisions;
-- a searchset's included resources are skipped, but an included Consent
-- is a consent (1.1: skipped)
SELECT entry, source FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'searchset', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-6', 'P65F', 'TREAT'), 'search', '{"mode": "match"}'::jsonb),
      jsonb_build_object('resource', '{"resourceType": "Patient", "id": "P65F"}'::jsonb, 'search', '{"mode": "include"}'::jsonb),
      jsonb_build_object('resource', pg_temp.consent('b65-6i', 'P65F', 'HRESCH'), 'search', '{"mode": "include"}'::jsonb))));

-- refusals: each names the entry and the JSON path, and nothing is written
RESET ROLE;
SELECT count(*) AS consents_before FROM agentauth.consent WHERE patient LIKE 'P65%' \gset
SET ROLE reg65_mgr;
SELECT * FROM agentauth.import_fhir_consent_bundle(NULL);
SELECT * FROM agentauth.import_fhir_consent_bundle('[]');
SELECT * FROM agentauth.import_fhir_consent_bundle(pg_temp.consent('x', 'P65X', 'TREAT'));
SELECT * FROM agentauth.import_fhir_consent_bundle('{"resourceType": "Bundle", "type": "history", "entry": []}');
SELECT * FROM agentauth.import_fhir_consent_bundle('{"resourceType": "Bundle", "type": "collection", "entry": {}}');
SELECT * FROM agentauth.import_fhir_consent_bundle('{"resourceType": "Bundle", "type": "collection", "entry": [42]}');
SELECT * FROM agentauth.import_fhir_consent_bundle('{"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "x"}]}');
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'batch', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-7', 'P65G', 'TREAT'),
                         'request', '{"method": "DELETE", "url": "Consent/b65-7"}'::jsonb))));
-- a modifier on the Bundle, an entry or its request, or the Bundle's
-- implicit rules: refused, as on a Consent, naming where (1.1, found by
-- review: imported as if they said nothing); a key whose name is all dots
-- is no nesting (the walk took 70 dots for 70 levels)
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection',
    'modifierExtension', '[{"url": "http://example.org/only-if-verified", "valueBoolean": true}]'::jsonb,
    'entry', jsonb_build_array(jsonb_build_object('resource', pg_temp.consent('b65-m1', 'P65M', 'TREAT')))));
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-m2', 'P65M', 'TREAT')),
      jsonb_build_object('modifierExtension', '[{"url": "http://example.org/x"}]'::jsonb,
                         'resource', pg_temp.consent('b65-m3', 'P65M', 'TREAT')))));
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'transaction', 'entry', jsonb_build_array(
      jsonb_build_object('request', '{"method": "PUT", "url": "Consent/b65-m4", "modifierExtension": [{"url": "http://example.org/x"}]}'::jsonb,
                         'resource', pg_temp.consent('b65-m4', 'P65M', 'TREAT')))));
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'implicitRules', 'http://example.org/rules',
    'entry', jsonb_build_array(jsonb_build_object('resource', pg_temp.consent('b65-m5', 'P65M', 'TREAT')))));
SELECT agentauth.import_fhir_consent(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection',
    'entry', jsonb_build_array(jsonb_build_object('modifierExtension', '[{"url": "http://example.org/x"}]'::jsonb,
                                                  'resource', pg_temp.consent('b65-m6', 'P65M', 'TREAT')))));
RESET ROLE;
SELECT count(*) AS imported_with_a_modifier FROM agentauth.consent WHERE patient = 'P65M';
SET ROLE reg65_mgr;
SELECT entry, source FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-m7', 'b65-dots', 'TREAT') || jsonb_build_object(repeat('.', 70), 1)))));
-- an entry of another server (its Patient/P65I is that server's patient;
-- 1.1: taken as the local P65I): refused; urn:uuid entries are this load's
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('fullUrl', 'https://other-hospital.example/fhir/Consent/b65-9',
                         'resource', pg_temp.consent('b65-9', 'P65I', 'TREAT')))));
-- a URL's scheme in capitals is the same URL (1.1: taken as this load's)
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('fullUrl', 'HTTPS://other-hospital.example/fhir/Consent/b65-9',
                         'resource', pg_temp.consent('b65-9', 'P65I', 'TREAT')))));
-- one page of a search with more (1.1: imported alone, the other pages'
-- denies unknown): refused
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'searchset',
    'link', '[{"relation": "self", "url": "https://fhir.example.org/Consent?patient=P65H"},
              {"relation": "next", "url": "https://fhir.example.org/Consent?patient=P65H&page=2"}]'::jsonb,
    'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-8', 'P65H', 'TREAT'), 'search', '{"mode": "match"}'::jsonb))));
-- the third entry is bad: the first two are not kept
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-8', 'P65H', 'TREAT')),
      jsonb_build_object('resource', pg_temp.consent('b65-9', 'P65I', 'TREAT')),
      jsonb_build_object('resource', pg_temp.consent('b65-10', 'P65J', 'NOSUCH')))));
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-11', 'P65K', 'TREAT')),
      jsonb_build_object('resource', pg_temp.consent('b65-11', 'P65K', 'HRESCH')))));
SELECT * FROM agentauth.import_fhir_consent_bundle(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-12', 'P65L', 'TREAT')),
      jsonb_build_object('resource', pg_temp.consent('b65-13', 'P65M', 'TREAT') || '{"status": "draft"}'))));
SELECT * FROM agentauth.import_fhir_consent(jsonb_build_object(
    'resourceType', 'Bundle', 'type', 'collection', 'entry', jsonb_build_array(
      jsonb_build_object('resource', pg_temp.consent('b65-14', 'P65N', 'TREAT') #- '{patient}'))));
RESET ROLE;
SELECT count(*) = :consents_before AS nothing_written FROM agentauth.consent WHERE patient LIKE 'P65%';
SET ROLE reg65_nobody;
SELECT * FROM agentauth.import_fhir_consent_bundle('{"resourceType": "Bundle", "type": "collection", "entry": []}');
RESET ROLE;

DELETE FROM agentauth.consent WHERE patient LIKE 'P65%' OR patient LIKE 'b65-%';
DROP ROLE reg65_mgr;
DROP ROLE reg65_nobody;
