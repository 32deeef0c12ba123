-- Tokens: issue_token, revoke_token, the tokens view (SPEC 4.1, 4.4), and
-- every bad input of them.  Secrets are random: they are captured with
-- \gset and never printed.

\set SHOW_CONTEXT never

CREATE ROLE tok_admin NOLOGIN;
GRANT agentauth_admin TO tok_admin;
CREATE ROLE tok_issuer NOLOGIN;
GRANT agentauth_issuer TO tok_issuer;
CREATE ROLE tok_auditor NOLOGIN;
GRANT agentauth_auditor TO tok_auditor;
CREATE ROLE tok_outsider LOGIN;
CREATE ROLE tok_agent1 LOGIN;
CREATE ROLE tok_agent2 LOGIN;
CREATE ROLE tok_human LOGIN;

CREATE FUNCTION tok_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION tok_try(text) TO PUBLIC;

SET ROLE tok_admin;
SELECT agentauth.register_agent('tok-agent1', 'tok_agent1', 'Lab AI team', '{TREAT,TREATDS}',
    '{*:read,lab:write}', '10 minutes') AS agent1 \gset
SELECT agentauth.register_agent('tok-agent2', 'tok_agent2', 'Ops', '{HOPERAT}', '{billing:read}') AS agent2 \gset
SELECT agentauth.register_human('tok-human', 'tok_human', '{TREAT}', '{lab:read}') AS human \gset
RESET ROLE;

-- issue: the secret is 'aat_' + 43 base64url characters (256 bits)
SET ROLE tok_issuer;
SELECT agentauth.issue_token(:'agent1', 'TREAT', on_behalf_of => 'dr.jones',
    scopes => '{lab:read,medication:read}', patients => '{P2,P1,P2}') AS secret1 \gset
SELECT agentauth.issue_token(:'agent1', 'TREATDS', ttl => '2 minutes') AS secret2 \gset
SELECT length(:'secret1') AS length, :'secret1' ~ '^aat_[A-Za-z0-9_-]{43}$' AS well_formed,
       :'secret1' <> :'secret2' AS distinct_secrets;

-- the tokens view: no secret; scopes NULL = all of the agent's, patients
-- stored distinct and sorted, ttl NULL = the agent's max_token_ttl
SELECT agent = :'agent1' AS for_agent1, parent, purpose, on_behalf_of, scopes, patients,
       expires_at - issued_at AS ttl, issued_by, revoked_at, revoke_reason,
       cardinality(delegation_chain) AS chain, state
  FROM agentauth.tokens WHERE agent = :'agent1' ORDER BY issued_at, purpose;
SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) AS tokens_columns
  FROM information_schema.columns WHERE table_schema = 'agentauth' AND table_name = 'tokens';
SELECT id AS token1 FROM agentauth.tokens WHERE agent = :'agent1' AND purpose = 'TREAT' \gset
SELECT id AS token2 FROM agentauth.tokens WHERE agent = :'agent1' AND purpose = 'TREATDS' \gset
RESET ROLE;

-- only the SHA-256 of the secret's text is stored
SELECT secret_hash = sha256(convert_to(:'secret1', 'UTF8')) AS hash_of_secret
  FROM agentauth.token WHERE id = :'token1';

-- the default ttl of an agent registered without one is 5 minutes
SET ROLE tok_issuer;
SELECT agentauth.issue_token(:'agent2', 'HOPERAT') AS secret3 \gset
SELECT expires_at - issued_at AS default_ttl, scopes FROM agentauth.tokens WHERE agent = :'agent2';
RESET ROLE;

-- who may issue: only agentauth_issuer (an admin is not an issuer)
SET ROLE tok_admin;
SELECT tok_try($$SELECT agentauth.issue_token('$$ || :'agent1' || $$', 'TREAT')$$);
RESET ROLE;
SET ROLE tok_outsider;
SELECT tok_try($$SELECT agentauth.issue_token('$$ || :'agent1' || $$', 'TREAT')$$);
SELECT tok_try($$SELECT agentauth.revoke_token('$$ || :'token1' || $$', 'x')$$);
SELECT tok_try($$SELECT * FROM agentauth.tokens$$);
SELECT tok_try($$SELECT * FROM agentauth.token$$);
RESET ROLE;
SET ROLE tok_auditor;   -- auditors read the view
SELECT count(*) > 0 AS auditor_reads_tokens FROM agentauth.tokens;
RESET ROLE;

-- bad input: each an error, nothing issued
SELECT count(*) AS tokens_before FROM agentauth.token \gset
SET ROLE tok_issuer;
SELECT tok_try(replace(replace(replace(sql, 'A1', :'agent1'), 'A2', :'agent2'), 'H1', :'human')) FROM (VALUES
  -- agent
  ($$SELECT agentauth.issue_token(NULL, 'TREAT')$$),
  ($$SELECT agentauth.issue_token('00000000-0000-0000-0000-000000000000', 'TREAT')$$),
  ($$SELECT agentauth.issue_token('H1', 'TREAT')$$),
  -- purpose
  ($$SELECT agentauth.issue_token('A1', NULL)$$),
  ($$SELECT agentauth.issue_token('A1', '')$$),
  ($$SELECT agentauth.issue_token('A1', 'NOPE')$$),
  ($$SELECT agentauth.issue_token('A1', 'BTG')$$),
  ($$SELECT agentauth.issue_token('A1', 'HPAYMT')$$),
  ($$SELECT agentauth.issue_token('A1', 'MLTRAINING')$$),
  -- ttl
  ($$SELECT agentauth.issue_token('A1', 'TREAT', '0 seconds')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', '-1 minute')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', '10 minutes 1 second')$$),
  ($$SELECT agentauth.issue_token('A2', 'HOPERAT', '1 hour')$$),
  -- on_behalf_of
  ($$SELECT agentauth.issue_token('A1', 'TREAT', on_behalf_of => '')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', on_behalf_of => repeat('x', 201))$$),
  -- scopes
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{NULL}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{lab:erase}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{lab}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{nope:read}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{medication:write}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{*:write}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', scopes => '{hiv:read}')$$),
  ($$SELECT agentauth.issue_token('A2', 'HOPERAT', scopes => '{*:read}')$$),
  -- patients
  ($$SELECT agentauth.issue_token('A1', 'TREAT', patients => '{}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', patients => '{P1,NULL}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', patients => '{""}')$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', patients => ARRAY[repeat('p', 201)])$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', patients => (SELECT array_agg('P' || i) FROM generate_series(1, 1001) i))$$),
  ($$SELECT agentauth.issue_token('A1', 'TREAT', patients => '{{P1},{P2}}')$$)
) t(sql);
RESET ROLE;
SELECT count(*) = :tokens_before AS nothing_issued FROM agentauth.token;

-- '*:read' covers every class that is not sensitive; a sensitive class
-- (genetic, hiv, ...) must be registered by name
SET ROLE tok_issuer;
SELECT tok_try($$SELECT agentauth.issue_token('$$ || :'agent1' || $$', 'TREAT', scopes => '{lab:write,genetic:read}')$$);
SELECT agentauth.issue_token(:'agent1', 'TREAT', scopes => '{lab:write,vital_signs:read}') IS NOT NULL AS subset_issued;
SELECT scopes FROM agentauth.tokens WHERE agent = :'agent1' AND 'lab:write' = ANY (scopes);
RESET ROLE;

-- revoke: by an issuer, with a reason; twice is a notice
SET ROLE tok_issuer;
SELECT agentauth.revoke_token(:'token2', 'task finished');
SELECT purpose, state, revoke_reason, revoked_at IS NOT NULL AS revoked
  FROM agentauth.tokens WHERE id = :'token2';
\set VERBOSITY terse
SELECT agentauth.revoke_token(:'token2', 'again');
\set VERBOSITY default
SELECT revoke_reason FROM agentauth.tokens WHERE id = :'token2';
SELECT tok_try(sql) FROM (VALUES
  ($$SELECT agentauth.revoke_token(NULL, 'r')$$),
  ($$SELECT agentauth.revoke_token('00000000-0000-0000-0000-000000000000', 'r')$$),
  ($$SELECT agentauth.revoke_token('$$ || :'token1' || $$', NULL)$$),
  ($$SELECT agentauth.revoke_token('$$ || :'token1' || $$', ' ')$$),
  ($$SELECT agentauth.revoke_token('$$ || :'token1' || $$', repeat('r', 4001))$$)
) t(sql);
SELECT state FROM agentauth.tokens WHERE id = :'token1';
RESET ROLE;

-- an admin may revoke too
SET ROLE tok_issuer;
SELECT agentauth.issue_token(:'agent2', 'HOPERAT') AS secret4 \gset
RESET ROLE;
SELECT id AS token4 FROM agentauth.token WHERE secret_hash = sha256(convert_to(:'secret4', 'UTF8')) \gset
SET ROLE tok_admin;
SELECT agentauth.revoke_token(:'token4', 'revoked by the administrator');
SELECT state FROM agentauth.tokens WHERE id = :'token4';
RESET ROLE;

-- suspending an agent revokes its live tokens; an inactive agent gets none;
-- reactivating it does not bring old tokens back
SET ROLE tok_admin;
SELECT agentauth.set_principal_status(:'agent1', 'suspended', 'anomalous queries');
SELECT purpose, state, revoke_reason FROM agentauth.tokens
 WHERE agent = :'agent1' ORDER BY issued_at, purpose;
RESET ROLE;
SET ROLE tok_issuer;
SELECT tok_try($$SELECT agentauth.issue_token('$$ || :'agent1' || $$', 'TREAT')$$);
RESET ROLE;
SET ROLE tok_admin;
SELECT agentauth.set_principal_status(:'agent1', 'active', 'cleared');
RESET ROLE;
SET ROLE tok_issuer;
SELECT agentauth.issue_token(:'agent1', 'TREAT') IS NOT NULL AS issued_again;
SELECT state, count(*) FROM agentauth.tokens WHERE agent = :'agent1' GROUP BY 1 ORDER BY 1;
RESET ROLE;

-- audited: issue and revocation, with the token's id
SELECT event, principal = :'agent1' AS agent1, token IS NOT NULL AS has_token,
       detail->>'purpose' AS purpose, detail->>'reason' AS reason
  FROM agentauth.audit_log
 WHERE event IN ('token_issued', 'token_revoked') AND principal IN (:'agent1', :'agent2')
 ORDER BY seq;
