-- Principals: register_agent, register_human, set_principal_status, the
-- principals view (SPEC 3), and every bad input of them (SPEC 13).
--
-- The tests run as the bootstrap superuser; SET ROLE makes it act as a
-- member of agentauth_admin (the caller check looks at the outer role,
-- which SET ROLE changes and SECURITY DEFINER does not).

\set SHOW_CONTEXT never

CREATE ROLE reg_admin NOLOGIN;
GRANT agentauth_admin TO reg_admin;
CREATE ROLE reg_issuer NOLOGIN;
GRANT agentauth_issuer TO reg_issuer;
CREATE ROLE reg_outsider LOGIN;
CREATE ROLE reg_agent1 LOGIN;
CREATE ROLE reg_agent2 LOGIN;
CREATE ROLE reg_human1 LOGIN;
CREATE ROLE reg_nologin NOLOGIN;
CREATE ROLE reg_super LOGIN SUPERUSER;
CREATE ROLE reg_bypass LOGIN BYPASSRLS;

-- try(sql): runs sql, shows 'ok' or the SQLSTATE and message of its error
CREATE FUNCTION reg_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION reg_try(text) TO PUBLIC;

-- nobody but an admin may register or change principals
SET ROLE reg_outsider;
SELECT reg_try($$SELECT agentauth.register_agent('x', 'reg_agent1', 'team', '{TREAT}', '{lab:read}')$$);
SELECT reg_try($$SELECT agentauth.register_human('x', 'reg_human1', '{TREAT}', '{lab:read}')$$);
SELECT reg_try($$SELECT agentauth.set_principal_status(gen_random_uuid(), 'suspended', 'x')$$);
SELECT reg_try($$SELECT * FROM agentauth.principals$$);
SELECT reg_try($$SELECT * FROM agentauth.principal$$);
RESET ROLE;
SET ROLE reg_issuer;   -- an issuer reads principals, but registers nothing
SELECT reg_try($$SELECT agentauth.register_agent('x', 'reg_agent1', 'team', '{TREAT}', '{lab:read}')$$);
SELECT count(*) >= 0 AS issuer_reads_principals FROM agentauth.principals;
RESET ROLE;

-- register an agent and a human
SET ROLE reg_admin;
SELECT agentauth.register_agent(
    name => 'reg-summarizer', db_role => 'reg_agent1', owner => 'Cardiology AI team',
    purposes => '{TREAT,TREATDS,TREAT}', scopes => '{medication:read,lab:read,lab:read}',
    max_token_ttl => '10 minutes', can_delegate => true,
    description => 'summarizes recent labs') AS agent1 \gset
SELECT agentauth.register_human('reg-dr-house', 'reg_human1', '{TREAT,ETREAT}', '{*:read,hiv:read}',
    can_break_glass => true, can_approve => true) AS human1 \gset
SELECT :'agent1'::uuid IS NOT NULL AS agent_registered, :'human1'::uuid IS NOT NULL AS human_registered;

-- purposes and scopes are stored distinct and sorted; defaults applied
SELECT kind, name, db_role, owner, purposes, scopes, max_token_ttl, capabilities,
       status, registered_by, description
  FROM agentauth.principals WHERE name LIKE 'reg-%' ORDER BY name;
SELECT kind, max_token_ttl, capabilities FROM agentauth.principals WHERE id = :'human1';

-- the default max_token_ttl is 5 minutes (SMART backend services)
SELECT agentauth.register_agent('reg-default', 'reg_agent2', 'ops', '{HOPERAT}', '{*:read}') AS agent2 \gset
SELECT max_token_ttl, capabilities FROM agentauth.principals WHERE id = :'agent2';

-- bad input: each is an error with its SQLSTATE, and nothing is written
SELECT count(*) AS principals_before FROM agentauth.principals \gset
SELECT reg_try(sql) FROM (VALUES
  -- NULLs
  ($$SELECT agentauth.register_agent(NULL, 'reg_outsider', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', NULL, 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', NULL, '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', NULL, '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', NULL)$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', NULL)$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', can_break_glass => NULL)$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', can_delegate => NULL)$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT,NULL}', '{lab:read}')$$),
  -- empty
  ($$SELECT agentauth.register_agent('', 'reg_outsider', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', '  ', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', description => '')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{""}', '{lab:read}')$$),
  -- unknown codes, malformed scopes
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREET}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{treat}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{BTG}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{labs:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:delete}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read:write}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{{lab:read},{lab:write}}')$$),
  -- ttl
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', '0 seconds')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', '-5 minutes')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', '25 hours')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', '1 month')$$),
  -- oversize
  ($$SELECT agentauth.register_agent(repeat('n', 201), 'reg_outsider', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', repeat('o', 4001), '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', description => repeat('d', 4001))$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', (SELECT array_agg('lab:read'::text) FROM generate_series(1, 1001)))$$),
  ($$SELECT agentauth.register_agent(E'n\n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_outsider', 'o', '{TREAT}', '{lab:read}', description => E'line\nbreak')$$),
  -- duplicates and unsuitable roles
  ($$SELECT agentauth.register_agent('reg-summarizer', 'reg_outsider', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_agent1', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_human1', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_nologin', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_super', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'reg_bypass', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'agentauth_admin', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'pg_monitor', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 'no_such_role', 'o', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_agent('n', 999999::oid::regrole, 'o', '{TREAT}', '{lab:read}')$$),
  -- register_human
  ($$SELECT agentauth.register_human(NULL, 'reg_outsider', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_human('n', NULL, '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_human('n', 'reg_outsider', NULL, '{lab:read}')$$),
  ($$SELECT agentauth.register_human('n', 'reg_outsider', '{TREAT}', NULL)$$),
  ($$SELECT agentauth.register_human('n', 'reg_outsider', '{BTG}', '{lab:read}')$$),
  ($$SELECT agentauth.register_human('n', 'reg_outsider', '{TREAT}', '{x:read}')$$),
  ($$SELECT agentauth.register_human('n', 'reg_outsider', '{TREAT}', '{lab:read}', NULL)$$),
  ($$SELECT agentauth.register_human('n', 'reg_outsider', '{TREAT}', '{lab:read}', false, NULL)$$),
  ($$SELECT agentauth.register_human('reg-dr-house', 'reg_outsider', '{TREAT}', '{lab:read}')$$),
  ($$SELECT agentauth.register_human('n', 'reg_agent1', '{TREAT}', '{lab:read}')$$)
) t(sql);
SELECT count(*) = :principals_before AS nothing_written FROM agentauth.principals;

-- status changes
SELECT agentauth.set_principal_status(:'agent2', 'suspended', 'under review');
SELECT status, status_reason, status_changed_at IS NOT NULL AS changed
  FROM agentauth.principals WHERE id = :'agent2';
SELECT agentauth.set_principal_status(:'agent2', 'active', 'review passed');
SELECT status, status_reason FROM agentauth.principals WHERE id = :'agent2';
SELECT agentauth.set_principal_status(:'agent2', 'retired', 'decommissioned');
SELECT reg_try(sql) FROM (VALUES
  ($$SELECT agentauth.set_principal_status('$$ || :'agent2' || $$', 'active', 'undo')$$),
  ($$SELECT agentauth.set_principal_status(NULL, 'active', 'r')$$),
  ($$SELECT agentauth.set_principal_status('$$ || :'agent1' || $$', NULL, 'r')$$),
  ($$SELECT agentauth.set_principal_status('$$ || :'agent1' || $$', 'paused', 'r')$$),
  ($$SELECT agentauth.set_principal_status('$$ || :'agent1' || $$', 'suspended', NULL)$$),
  ($$SELECT agentauth.set_principal_status('$$ || :'agent1' || $$', 'suspended', '')$$),
  ($$SELECT agentauth.set_principal_status('$$ || :'agent1' || $$', 'suspended', repeat('r', 4001))$$),
  ($$SELECT agentauth.set_principal_status('00000000-0000-0000-0000-000000000000', 'suspended', 'r')$$)
) t(sql);
SELECT name, status FROM agentauth.principals WHERE name LIKE 'reg-%' ORDER BY name;
RESET ROLE;

-- every registration and status change is audited
SELECT event, principal_name IS NULL AS no_session_name, detail->>'name' AS name,
       detail->>'from' AS "from", detail->>'to' AS "to"
  FROM agentauth.audit_log
 WHERE event IN ('principal_registered', 'principal_status')
   AND detail->>'name' LIKE 'reg-%'
 ORDER BY seq;

-- A registration's record states the role and the token lifetime the same
-- whatever the caller's settings (1.1: IntervalStyle and
-- quote_all_identifiers changed them)
CREATE ROLE reg_style_agent LOGIN;
CREATE ROLE reg_style_human LOGIN;
SET ROLE reg_admin;
SET IntervalStyle = 'iso_8601';
SET quote_all_identifiers = on;
SELECT agentauth.register_agent('reg-style-agent', 'reg_style_agent', 'ops', '{TREAT}', '{lab:read}',
                                max_token_ttl => '90 minutes') IS NOT NULL AS registered;
SELECT agentauth.register_human('reg-style-human', 'reg_style_human', '{TREAT}', '{lab:read}') IS NOT NULL AS registered;
RESET IntervalStyle;
RESET quote_all_identifiers;
-- a name that differs from another's only by case or surrounding blanks is
-- taken (1.1, found by review: tokens' on_behalf_of and consents name a
-- principal so, and a retired one blocked its namesake's tokens for good)
RESET ROLE;
CREATE ROLE reg_style_twin LOGIN;
SET ROLE reg_admin;
SELECT reg_try($$SELECT agentauth.register_human(' REG-STYLE-HUMAN', 'reg_style_twin', '{TREAT}', '{lab:read}')$$);
RESET ROLE;
SELECT detail->>'name' AS name, detail->>'db_role' AS db_role, detail->>'max_token_ttl' AS max_token_ttl
  FROM agentauth.audit_log
 WHERE event = 'principal_registered' AND detail->>'name' LIKE 'reg-style-%'
 ORDER BY seq;
