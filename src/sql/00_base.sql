-- agentauth install script, built from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION agentauth CASCADE" to load this file. \quit

-- The library must be preloaded, and this must be agentauth.database.
CREATE FUNCTION agentauth._check_install() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'aa_check_install';
SELECT agentauth._check_install();

-- The privilege roles (SPEC 2).  Roles are cluster-wide: reuse them.
-- agentauth_forwarder (1.1): the login a hot standby forwards its audit
-- records as (SPEC 6.9).
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['agentauth_admin', 'agentauth_issuer',
                             'agentauth_consent_manager', 'agentauth_auditor',
                             'agentauth_privacy_officer', 'agentauth_forwarder']
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles
                       WHERE rolname OPERATOR(pg_catalog.=) r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;
GRANT agentauth_auditor TO agentauth_privacy_officer;

GRANT USAGE ON SCHEMA agentauth TO PUBLIC;

CREATE FUNCTION agentauth._require_role(role text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'aa_require_role_sql';
REVOKE ALL ON FUNCTION agentauth._require_role(text) FROM PUBLIC;

-- The SQL door to the one audit entry point, for administrative events
-- written in SQL: recorded iff the calling transaction commits.
CREATE FUNCTION agentauth._audit(event text, detail jsonb DEFAULT NULL,
                                 principal uuid DEFAULT NULL, token uuid DEFAULT NULL,
                                 patient text DEFAULT NULL, relation text DEFAULT NULL)
    RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'aa_audit_sql';
REVOKE ALL ON FUNCTION agentauth._audit(text, jsonb, uuid, uuid, text, text) FROM PUBLIC;

-- A period or a length as a record's detail states it, the same whatever
-- the caller's DateStyle, IntervalStyle, TimeZone and quote_all_identifiers
-- (1.1): ISO dates in UTC, intervals in PostgreSQL's own style, role names
-- quoted only where SQL needs it.  Under DateStyle = 'SQL, DMY' a
-- consent from 7 December was recorded as "07/12/2026", which a reader in
-- MDY takes for 12 July.
CREATE FUNCTION agentauth._detail_text(r tstzrange) RETURNS text
    LANGUAGE sql STABLE
    SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC'
    AS $$ SELECT r::pg_catalog.text $$;
REVOKE ALL ON FUNCTION agentauth._detail_text(tstzrange) FROM PUBLIC;
CREATE FUNCTION agentauth._detail_text(i interval) RETURNS text
    LANGUAGE sql STABLE
    SET IntervalStyle = 'postgres'
    AS $$ SELECT i::pg_catalog.text $$;
REVOKE ALL ON FUNCTION agentauth._detail_text(interval) FROM PUBLIC;
CREATE FUNCTION agentauth._detail_text(r regrole) RETURNS text
    LANGUAGE sql STABLE
    SET quote_all_identifiers = off
    AS $$ SELECT r::pg_catalog.text $$;
REVOKE ALL ON FUNCTION agentauth._detail_text(regrole) FROM PUBLIC;
