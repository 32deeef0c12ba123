-- Comments: what \df+, \dv+, \dt+ and \du+ show.  Every public function,
-- view, table and privilege role says what it is for and who may use it;
-- every object whose name starts with "_" is an internal of the extension
-- and says so.  sql/90_comments lists any object left without a comment.

COMMENT ON SCHEMA agentauth IS
    'agentauth: AI agent identity, consent row security and the hash-chained PHI audit log';

-- the privilege roles
COMMENT ON ROLE agentauth_admin IS
    'agentauth: registers principals, protects tables, sets defaults and alert rules';
COMMENT ON ROLE agentauth_issuer IS
    'agentauth: issues and revokes agent tokens';
COMMENT ON ROLE agentauth_consent_manager IS
    'agentauth: records and withdraws patient consent, imports FHIR Consents';
COMMENT ON ROLE agentauth_auditor IS
    'agentauth: reads the audit log and reports, verifies the chain';
COMMENT ON ROLE agentauth_privacy_officer IS
    'agentauth: reviews break-the-glass overrides (is also an auditor)';
COMMENT ON ROLE agentauth_forwarder IS
    'agentauth: on a primary, accepts the audit records a hot standby forwards (grant it to the standby''s login)';

-- registry, tokens, sessions
COMMENT ON FUNCTION agentauth.register_agent(text, regrole, text, text[], text[], interval, boolean, boolean, text) IS
    'Register an AI agent: login role, accountable owner, purposes, scopes (agentauth_admin)';
COMMENT ON FUNCTION agentauth.register_human(text, regrole, text[], text[], boolean, boolean) IS
    'Register a clinician or other person as a principal (agentauth_admin)';
COMMENT ON FUNCTION agentauth.set_principal_status(uuid, text, text) IS
    'Suspend, retire or reactivate a principal; revokes its tokens (agentauth_admin)';
COMMENT ON FUNCTION agentauth.issue_token(uuid, text, interval, text, text[], text[]) IS
    'Issue a short-lived token to an agent; returns the secret, shown once (agentauth_issuer)';
COMMENT ON FUNCTION agentauth.revoke_token(uuid, text) IS
    'Revoke a token and its delegations, effective at the next protected row (agentauth_issuer)';
COMMENT ON FUNCTION agentauth.delegate_token(uuid, text, interval, text[], text[]) IS
    'Delegate a narrower token to another agent from the current session';
COMMENT ON FUNCTION agentauth.begin_session(text, boolean) IS
    'Begin an agent session with a token secret (pass it as a bind parameter)';
COMMENT ON FUNCTION agentauth.begin_human_session(text, boolean) IS
    'Begin a session as the registered human principal of this login, for a purpose';
COMMENT ON FUNCTION agentauth.end_session() IS
    'End the current agentauth session';
COMMENT ON FUNCTION agentauth.require_transaction_only(uuid, boolean) IS
    'Allow a principal only transaction_only sessions, for roles behind a pooler (agentauth_admin)';
COMMENT ON FUNCTION agentauth.whoami() IS
    'The current session: principal, token, purpose, scopes, patients, overrides';
COMMENT ON FUNCTION agentauth.check_session() IS
    'true while the session is valid; SQLSTATE 28000 once revoked, expired or suspended';

-- the audit log
COMMENT ON FUNCTION agentauth.audit_head() IS
    'The newest audit record''s seq and row_hash: keep it outside the database (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.verify_audit(bigint, bytea) IS
    'Verify the audit hash chain in C, optionally against an expected head (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.verify_audit_sql(bigint, bytea) IS
    'Verify the audit hash chain in SQL over PostgreSQL''s sha256(): an independent check (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.canonical_record(agentauth.audit_log) IS
    'The canonical bytes of a record in encoding version 1 (a unit''s records: agentauth.canonical_stored)';
COMMENT ON FUNCTION agentauth.purge_audit(timestamptz) IS
    'Delete records older than the retention period, leaving a verifiable anchor (superuser)';
COMMENT ON FUNCTION agentauth.export_audit(bigint) IS
    'The audit log as JSON lines for the offline verifier aa_verify (agentauth_auditor)';
COMMENT ON VIEW agentauth.audit_log IS
    'Append-only, hash-chained audit log: one record per statement x table x patient (agentauth_auditor)';
COMMENT ON TABLE agentauth.audit_record IS
    'The stored audit log: records (encoding version 1) and units of a statement''s records (version 2); read it through agentauth.audit_log';
COMMENT ON VIEW agentauth._audit_entries IS
    'Internal: the records of the units of agentauth.audit_record, one row each';
COMMENT ON FUNCTION agentauth.canonical_stored(agentauth.audit_record) IS
    'The canonical bytes a stored row''s hash covers: a record (version 1) or a unit (version 2)';

-- protected tables, consent, defaults
COMMENT ON FUNCTION agentauth.protect_table(regclass, name, jsonb, text) IS
    'Protect a table: its patient column and each column''s data class (agentauth_admin)';
COMMENT ON FUNCTION agentauth.unprotect_table(regclass, text) IS
    'Remove a table''s protection, with a reason (agentauth_admin)';
COMMENT ON FUNCTION agentauth.protect_schema(regnamespace, name, jsonb, text) IS
    'Declare a schema as holding PHI: every table made in it is protected by its patient column and classes (agentauth_admin)';
COMMENT ON FUNCTION agentauth.unprotect_schema(regnamespace, text) IS
    'End a schema''s declaration, with a reason; its tables stay protected (agentauth_admin)';
COMMENT ON FUNCTION agentauth.require_approval(regclass, text[]) IS
    'Require a clinician''s approval for agent writes of these actions (agentauth_admin)';
COMMENT ON FUNCTION agentauth.record_consent(text, text, text[], text[], text[], uuid, text, tstzrange, text) IS
    'Record a consent provision: permit or deny, purposes, classes, actions, grantee, period (agentauth_consent_manager)';
COMMENT ON FUNCTION agentauth.withdraw_consent(uuid, text) IS
    'Withdraw a consent provision, effective at the next protected row (agentauth_consent_manager)';
COMMENT ON FUNCTION agentauth.set_default_decision(text, text, text) IS
    'Set or remove the default for a purpose and data class when no provision matches (agentauth_admin)';
COMMENT ON FUNCTION agentauth.explain_access(text, text, text) IS
    'Why the current session may or may not touch a patient''s class for an action';
COMMENT ON FUNCTION agentauth.import_fhir_consent(jsonb) IS
    'Import a FHIR R4 or R5 Consent resource, or a Bundle of them, as provisions (agentauth_consent_manager)';
COMMENT ON FUNCTION agentauth.import_fhir_consent_bundle(jsonb) IS
    'Import every Consent of a FHIR Bundle, all or nothing; one row per entry (agentauth_consent_manager)';

-- break-the-glass and approvals
COMMENT ON FUNCTION agentauth.break_glass(text, text, interval) IS
    'Open consent for one patient in this session, for an emergency; logged and reviewed';
COMMENT ON FUNCTION agentauth.end_break_glass(uuid) IS
    'End a break-the-glass override (its principal, or a privacy officer)';
COMMENT ON FUNCTION agentauth.review_break_glass(uuid, text, text) IS
    'A privacy officer''s verdict on an ended override: justified or unjustified';
COMMENT ON FUNCTION agentauth.approve_action(uuid, regclass, text, text, text, interval, integer) IS
    'A clinician approves an agent''s writes to a table under require_approval, for one patient';

-- reports and FHIR
COMMENT ON FUNCTION agentauth.access_report(text, timestamptz, timestamptz) IS
    'Who touched a patient''s data, when, for what purpose and under whose authority (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.agent_activity(uuid, timestamptz, timestamptz) IS
    'What one agent did, statement by statement (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.element_access(text, regclass, name, timestamptz, timestamptz) IS
    'Who touched one data element (column) of a patient (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.disclosure_accounting(text, timestamptz, timestamptz, boolean) IS
    'HIPAA accounting of disclosures for a patient (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.audit_event_fhir(bigint) IS
    'One audit record as a FHIR R4 AuditEvent, IHE BALP for patient data (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.fhir_patient_reference(text) IS
    'The FHIR Reference(Patient) of a patient id, per the setting agentauth.fhir_patient_reference';

-- the same calls with a patient id of a non-text column's type (integer,
-- bigint, uuid ...): the id as the type prints it
COMMENT ON FUNCTION agentauth.record_consent(anynonarray, text, text[], text[], text[], uuid, text, tstzrange, text) IS
    'record_consent with the patient id as a value of its column''s type (agentauth_consent_manager)';
COMMENT ON FUNCTION agentauth.explain_access(anynonarray, text, text) IS
    'explain_access with the patient id as a value of its column''s type';
COMMENT ON FUNCTION agentauth.break_glass(anynonarray, text, interval) IS
    'break_glass with the patient id as a value of its column''s type';
COMMENT ON FUNCTION agentauth.approve_action(uuid, regclass, anynonarray, text, text, interval, integer) IS
    'approve_action with the patient id as a value of its column''s type';
COMMENT ON FUNCTION agentauth.access_report(anynonarray, timestamptz, timestamptz) IS
    'access_report with the patient id as a value of its column''s type (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.element_access(anynonarray, regclass, name, timestamptz, timestamptz) IS
    'element_access with the patient id as a value of its column''s type (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.disclosure_accounting(anynonarray, timestamptz, timestamptz, boolean) IS
    'disclosure_accounting with the patient id as a value of its column''s type (agentauth_auditor)';

-- views
COMMENT ON VIEW agentauth.principals IS 'Registered agents and humans (agentauth_admin, agentauth_auditor)';
COMMENT ON VIEW agentauth.tokens IS 'Issued tokens, without secrets or their hashes (agentauth_admin, agentauth_issuer, agentauth_auditor)';
COMMENT ON VIEW agentauth.consents IS 'Consent provisions (agentauth_consent_manager, agentauth_auditor)';
COMMENT ON VIEW agentauth.default_decisions IS 'Defaults per purpose and data class (readable by everyone)';
COMMENT ON VIEW agentauth.protected_columns IS 'Protected tables: patient column and each column''s data class';
COMMENT ON VIEW agentauth.protected_schemas IS 'Protected schemas: the patient column and classes every table made there gets';
COMMENT ON VIEW agentauth.protected_schema_kept_settings IS 'Settings of a dropped or renamed table of a protected schema, kept by name for the next table that takes it';
COMMENT ON VIEW agentauth.agent_inventory IS 'Every agent, its owner, scopes, tokens and last activity (agentauth_auditor)';
COMMENT ON VIEW agentauth.break_glass_events IS 'Break-the-glass overrides, their accesses and reviews (agentauth_auditor)';
COMMENT ON VIEW agentauth.break_glass_overdue IS 'Overrides whose review is overdue (agentauth_auditor)';
COMMENT ON VIEW agentauth.approvals IS 'Clinician approvals of agent writes and their use (agentauth_auditor)';
COMMENT ON VIEW agentauth.alerts IS 'Alerts raised by the monitoring rules (agentauth_auditor)';
COMMENT ON VIEW agentauth.unregistered_activity IS 'Access to protected tables by roles that are not principals (agentauth_auditor)';
COMMENT ON VIEW agentauth.status IS 'The audit writer''s health in one row: running, queue fill, oldest unwritten record, rate, last head logged, statements failed closed (agentauth_auditor, agentauth_admin, pg_monitor)';
COMMENT ON TABLE agentauth.consent_open IS
    'Deny provisions imported from FHIR whose purposes or data classes are "every one but ...": a purpose or class added later is added to them';
COMMENT ON TABLE agentauth.audit_feed IS
    'The feeds to the audit repository and the last seq each delivered (read it through agentauth.audit_feeds)';
COMMENT ON FUNCTION agentauth.feed_delivered(text, bigint) IS
    'A feed to the audit repository reports the last seq it delivered; registers it on first call (agentauth_auditor)';
COMMENT ON FUNCTION agentauth.drop_audit_feed(text, text) IS
    'Drop a feed that is gone, with a reason, so that purge_audit no longer waits for it (agentauth_privacy_officer)';
COMMENT ON VIEW agentauth.audit_feeds IS 'The feeds to the audit repository: how far each has delivered and how far behind it is (agentauth_auditor, agentauth_privacy_officer, agentauth_admin, pg_monitor)';

-- tables: private to the extension (audit_record, fhir_consent_version and
-- alert_rule are granted for reading or editing); read them through the views
COMMENT ON TABLE agentauth.principal IS 'agentauth catalog: principals (read agentauth.principals)';
COMMENT ON TABLE agentauth.token IS 'agentauth catalog: tokens, secrets as SHA-256 only (read agentauth.tokens)';
COMMENT ON TABLE agentauth.consent IS 'agentauth catalog: consent provisions (read agentauth.consents)';
COMMENT ON TABLE agentauth.default_decision IS 'agentauth catalog: defaults (read agentauth.default_decisions)';
COMMENT ON TABLE agentauth.purpose IS 'agentauth catalog: purpose of use codes (HL7 v3 PurposeOfUse and AI purposes)';
COMMENT ON TABLE agentauth.data_class IS 'agentauth catalog: data classes; sensitive ones are never covered by ''*''';
COMMENT ON TABLE agentauth.break_glass IS 'agentauth catalog: break-the-glass overrides (read agentauth.break_glass_events)';
COMMENT ON TABLE agentauth.approval IS 'agentauth catalog: clinician approvals (read agentauth.approvals)';
COMMENT ON TABLE agentauth.alert_rule IS 'agentauth catalog: monitoring rules, evaluated by the audit writer (agentauth_admin)';
COMMENT ON TABLE agentauth.alert_log IS 'agentauth catalog: alerts raised (read agentauth.alerts)';
COMMENT ON TABLE agentauth.protected_schema IS 'agentauth catalog: protected schemas (read agentauth.protected_schemas)';
COMMENT ON TABLE agentauth.protected_schema_kept IS 'agentauth catalog: settings kept by table name in protected schemas (read agentauth.protected_schema_kept_settings)';
COMMENT ON TABLE agentauth._audit_spill IS 'agentauth internal: administrative audit records of large committed transactions on their way to the log';
COMMENT ON TABLE agentauth.fhir_consent_version IS 'agentauth catalog: the version (meta.lastUpdated) of each FHIR Consent imported; an older one is refused';

-- internal, but granted: what the status view reads
COMMENT ON FUNCTION agentauth._status() IS
    'agentauth internal: the shared state behind the view agentauth.status (read the view)';

-- everything whose name starts with "_" is internal
DO $$
DECLARE
    o record;
BEGIN
    FOR o IN SELECT p.oid::pg_catalog.regprocedure AS f FROM pg_catalog.pg_proc p
              WHERE p.pronamespace OPERATOR(pg_catalog.=) 'agentauth'::pg_catalog.regnamespace
                AND p.proname OPERATOR(pg_catalog.~~) E'\\_%'
                AND pg_catalog.obj_description(p.oid, 'pg_proc') IS NULL LOOP
        EXECUTE pg_catalog.format('COMMENT ON FUNCTION %s IS %L', o.f,
                                  'agentauth internal: not part of the interface');
    END LOOP;
    FOR o IN SELECT t.oid::pg_catalog.regtype AS t FROM pg_catalog.pg_type t
              WHERE t.typnamespace OPERATOR(pg_catalog.=) 'agentauth'::pg_catalog.regnamespace
                AND t.typname OPERATOR(pg_catalog.~~) E'\\_%' AND t.typtype OPERATOR(pg_catalog.=) 'c'
                AND pg_catalog.obj_description(t.oid, 'pg_type') IS NULL LOOP
        EXECUTE pg_catalog.format('COMMENT ON TYPE %s IS %L', o.t,
                                  'agentauth internal: not part of the interface');
    END LOOP;
END
$$;

-- hot standbys
COMMENT ON FUNCTION agentauth.forward_audit(text, bytea) IS
    'Append audit records forwarded by a hot standby through the writer; returns once committed (agentauth_forwarder)';
