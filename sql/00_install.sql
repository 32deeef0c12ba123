-- Installing the extension: roles, schema, catalogs, settings.
CREATE EXTENSION agentauth CASCADE;

-- the five privilege roles exist and cannot log in
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname LIKE 'agentauth\_%' ORDER BY rolname;
SELECT pg_has_role('agentauth_privacy_officer', 'agentauth_auditor', 'MEMBER') AS officer_is_auditor;

-- the extension is not relocatable and lives in schema agentauth
SELECT extname, extrelocatable, extnamespace::regnamespace FROM pg_extension WHERE extname = 'agentauth';

-- seeded purposes and data classes
SELECT code, reserved FROM agentauth.purpose ORDER BY code;
SELECT name, sensitive FROM agentauth.data_class ORDER BY sensitive, name;
-- and no default decisions: nothing is permitted without consent until the
-- site decides otherwise (SPEC 7; 32_consent)
SELECT count(*) AS default_decisions FROM agentauth.default_decision;

-- nobody invents agentauth.* settings
SET agentauth.no_such_setting = 'x';
SELECT set_config('agentauth.other', 'x', false);

-- the settings and their contexts
SELECT name, setting, unit, context FROM pg_settings
 WHERE name LIKE 'agentauth.%' ORDER BY name;

-- postmaster settings cannot be changed by a client
SET agentauth.allow_uninstall = on;
SET agentauth.database = 'other';
