-- The extension's own tables and views: written by its functions only, read
-- by the roles they are granted to (1.1, found by review).  PostgreSQL's
-- predefined roles pg_read_all_data and pg_write_all_data act as if they
-- held SELECT, INSERT, UPDATE and DELETE on every table and view; through
-- them a login that is no agentauth role rewrote principals, minted tokens
-- and forged consents, and nothing was recorded.  They do not bypass row
-- security: every table of the extension has it, with a policy only for
-- the roles its grants name, so a role that reaches a table any other way
-- reads and writes no row.  The extension's functions run as the tables'
-- owner, and its C code as the bootstrap superuser, which row security
-- does not bind.  The views read their tables as their owner, so a view
-- that PostgreSQL would let a write pass through refuses every write
-- (_read_only_view); what they show to pg_read_all_data is said in the
-- README ("Security model").
ALTER TABLE agentauth.principal ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.token ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.purpose ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.data_class ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.consent ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.consent_open ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.default_decision ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.protected_schema ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.protected_schema_kept ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.break_glass ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.approval ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.alert_rule ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.alert_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.audit_record ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth._audit_spill ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.audit_feed ENABLE ROW LEVEL SECURITY;
ALTER TABLE agentauth.fhir_consent_version ENABLE ROW LEVEL SECURITY;

-- the grants of the tables, as policies
CREATE POLICY admin_rules ON agentauth.alert_rule TO agentauth_admin
    USING (true) WITH CHECK (true);
CREATE POLICY readers ON agentauth.alert_rule FOR SELECT
    TO agentauth_auditor, agentauth_privacy_officer USING (true);
CREATE POLICY auditors ON agentauth.audit_record FOR SELECT
    TO agentauth_auditor USING (true);
CREATE POLICY readers ON agentauth.fhir_consent_version FOR SELECT
    TO agentauth_consent_manager, agentauth_auditor USING (true);

-- The classes and the purposes: the site's vocabulary, read by everyone
-- (1.1, found by review: no role could list them, though scopes, consents
-- and many hints name their rows)
GRANT SELECT ON agentauth.data_class, agentauth.purpose TO PUBLIC;
CREATE POLICY readers ON agentauth.data_class FOR SELECT USING (true);
CREATE POLICY readers ON agentauth.purpose FOR SELECT USING (true);

CREATE FUNCTION agentauth._read_only_view() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    RAISE EXCEPTION 'agentauth.% is read-only', TG_TABLE_NAME
        USING ERRCODE = '42501',
              HINT = 'Change agentauth''s state through its functions (README "Roles": which role calls which).';
END
$$;
REVOKE ALL ON FUNCTION agentauth._read_only_view() FROM PUBLIC;
COMMENT ON FUNCTION agentauth._read_only_view() IS 'agentauth internal: not part of the interface';
CREATE TRIGGER read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON agentauth.principals
    FOR EACH ROW EXECUTE FUNCTION agentauth._read_only_view();
CREATE TRIGGER read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON agentauth.tokens
    FOR EACH ROW EXECUTE FUNCTION agentauth._read_only_view();
CREATE TRIGGER read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON agentauth.default_decisions
    FOR EACH ROW EXECUTE FUNCTION agentauth._read_only_view();
CREATE TRIGGER read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON agentauth.protected_schemas
    FOR EACH ROW EXECUTE FUNCTION agentauth._read_only_view();
CREATE TRIGGER read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON agentauth.protected_schema_kept_settings
    FOR EACH ROW EXECUTE FUNCTION agentauth._read_only_view();
CREATE TRIGGER read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON agentauth.agent_inventory
    FOR EACH ROW EXECUTE FUNCTION agentauth._read_only_view();
CREATE TRIGGER read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON agentauth.alerts
    FOR EACH ROW EXECUTE FUNCTION agentauth._read_only_view();
