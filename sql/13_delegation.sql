-- Delegation (SPEC 4.3): an agent session whose principal can_delegate
-- mints a token for another agent, a subset of its own token in every
-- dimension and within the other agent's registration.  Revoking a token
-- revokes every descendant.

\set SHOW_CONTEXT never

CREATE ROLE del_admin NOLOGIN;
GRANT agentauth_admin TO del_admin;
CREATE ROLE del_issuer NOLOGIN;
GRANT agentauth_issuer TO del_issuer;
CREATE ROLE del_parent LOGIN;
CREATE ROLE del_child LOGIN;
CREATE ROLE del_grandchild LOGIN;
CREATE ROLE del_nodeleg LOGIN;
CREATE ROLE del_payer LOGIN;
CREATE ROLE del_suspended LOGIN;
CREATE ROLE del_human LOGIN;

CREATE FUNCTION del_try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION del_try(text) TO PUBLIC;

SET ROLE del_admin;
SELECT agentauth.register_agent('del-parent', 'del_parent', 'Orchestration team', '{TREAT,TREATDS}',
    '{lab:read,medication:read,vital_signs:read}', '10 minutes', can_delegate => true) AS parent \gset
SELECT agentauth.register_agent('del-child', 'del_child', 'Lab AI team', '{TREAT}',
    '{lab:read,vital_signs:read,lab:write}', '1 hour', can_delegate => true) AS child \gset
SELECT agentauth.register_agent('del-grandchild', 'del_grandchild', 'Lab AI team', '{TREAT}',
    '{lab:read}', '5 minutes') AS grandchild \gset
SELECT agentauth.register_agent('del-nodeleg', 'del_nodeleg', 'Lab AI team', '{TREAT}',
    '{lab:read}') AS nodeleg \gset
SELECT agentauth.register_agent('del-payer', 'del_payer', 'Billing', '{HPAYMT}', '{lab:read}') AS payer \gset
SELECT agentauth.register_agent('del-suspended', 'del_suspended', 'Lab AI team', '{TREAT}', '{lab:read}') AS suspended \gset
SELECT agentauth.set_principal_status(:'suspended', 'suspended', 'test');
SELECT agentauth.register_human('del-dr', 'del_human', '{TREAT}', '{lab:read}') AS human \gset
RESET ROLE;

SET ROLE del_issuer;
SELECT agentauth.issue_token(:'parent', 'TREAT', on_behalf_of => 'dr.who',
    patients => '{P1,P2,P3}') AS parent_secret \gset
SELECT agentauth.issue_token(:'nodeleg', 'TREAT') AS nodeleg_secret \gset
RESET ROLE;
SELECT id AS parent_token FROM agentauth.token
 WHERE secret_hash = sha256(convert_to(:'parent_secret', 'UTF8')) \gset

-- delegation needs an agent session
SELECT agentauth.delegate_token(:'child');
SET SESSION AUTHORIZATION del_human;
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT agentauth.delegate_token(:'child');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- an agent that may not delegate
SET SESSION AUTHORIZATION del_nodeleg;
SELECT agentauth.begin_session(:'nodeleg_secret') IS NOT NULL AS began;
SELECT agentauth.delegate_token(:'grandchild');
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- the parent delegates: by default the child gets the parent's purpose,
-- on_behalf_of and patients, the parent's scopes that the child is
-- registered for, and the shorter of its max_token_ttl and what is left
-- of the parent's
SET SESSION AUTHORIZATION del_parent;
SELECT agentauth.begin_session(:'parent_secret') IS NOT NULL AS began;
SELECT agentauth.delegate_token(:'child') AS child_secret \gset
SELECT agentauth.delegate_token(:'child', 'TREAT', '1 minute', '{lab:read}', '{P1}') AS child_secret2 \gset
SELECT length(:'child_secret') AS length, :'child_secret' <> :'parent_secret' AS new_secret;

-- bad input: each an error, nothing issued
RESET SESSION AUTHORIZATION;
SELECT count(*) AS tokens_before FROM agentauth.token \gset
SET SESSION AUTHORIZATION del_parent;
SELECT del_try(replace(replace(replace(replace(replace(replace(sql,
        'CHILD', :'child'), 'PARENT', :'parent'), 'HUMAN', :'human'),
        'PAYER', :'payer'), 'SUSP', :'suspended'), 'GRAND', :'grandchild'))
  FROM (VALUES
  -- the other agent
  ($$SELECT agentauth.delegate_token(NULL)$$),
  ($$SELECT agentauth.delegate_token('00000000-0000-0000-0000-000000000000')$$),
  ($$SELECT agentauth.delegate_token('HUMAN')$$),
  ($$SELECT agentauth.delegate_token('PARENT')$$),
  ($$SELECT agentauth.delegate_token('SUSP')$$),
  -- purpose: the parent's, and one the child is registered for
  ($$SELECT agentauth.delegate_token('CHILD', 'TREATDS')$$),
  ($$SELECT agentauth.delegate_token('CHILD', 'BTG')$$),
  ($$SELECT agentauth.delegate_token('CHILD', 'NOPE')$$),
  ($$SELECT agentauth.delegate_token('CHILD', '')$$),
  ($$SELECT agentauth.delegate_token('PAYER')$$),
  -- expiry: within the child's max_token_ttl and the parent's expiry
  ($$SELECT agentauth.delegate_token('CHILD', ttl => '0 seconds')$$),
  ($$SELECT agentauth.delegate_token('CHILD', ttl => '-1 minute')$$),
  ($$SELECT agentauth.delegate_token('CHILD', ttl => '2 hours')$$),
  ($$SELECT agentauth.delegate_token('CHILD', ttl => '20 minutes')$$),
  ($$SELECT agentauth.delegate_token('GRAND', ttl => '6 minutes')$$),
  -- scopes: within the parent token and the child's registration
  ($$SELECT agentauth.delegate_token('CHILD', scopes => '{lab:write}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', scopes => '{medication:read}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', scopes => '{*:read}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', scopes => '{hiv:read}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', scopes => '{}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', scopes => '{lab}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', scopes => '{NULL}')$$),
  ($$SELECT agentauth.delegate_token('GRAND', scopes => '{vital_signs:read}')$$),
  -- patients: within the parent's
  ($$SELECT agentauth.delegate_token('CHILD', patients => '{P1,P9}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', patients => '{}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', patients => '{P1,NULL}')$$),
  ($$SELECT agentauth.delegate_token('CHILD', patients => ARRAY[repeat('p', 201)])$$)
) t(sql);
RESET SESSION AUTHORIZATION;
SELECT count(*) = :tokens_before AS nothing_issued FROM agentauth.token;

-- what the child got
SET ROLE del_issuer;
SELECT agent = :'child' AS for_child, parent = :'parent_token' AS parent_is_parent, purpose,
       on_behalf_of, scopes, patients,
       expires_at <= (SELECT expires_at FROM agentauth.tokens WHERE id = :'parent_token') AS within_parent,
       cardinality(delegation_chain) AS chain, issued_by
  FROM agentauth.tokens WHERE parent = :'parent_token' ORDER BY cardinality(patients) DESC;
RESET ROLE;
SELECT id AS child_token FROM agentauth.token
 WHERE secret_hash = sha256(convert_to(:'child_secret', 'UTF8')) \gset

-- the child works under its token; whoami shows the chain from the root
SET SESSION AUTHORIZATION del_child;
SELECT agentauth.begin_session(:'child_secret') IS NOT NULL AS began;
SELECT name, token = :'child_token' AS child_token, purpose, on_behalf_of, scopes, patients,
       delegation_chain = ARRAY[:'parent_token', :'child_token']::uuid[] AS chain_from_root
  FROM agentauth.whoami();
-- and may delegate further, narrower still
SELECT agentauth.delegate_token(:'grandchild', patients => '{P2}') AS grand_secret \gset
SET SESSION AUTHORIZATION del_grandchild;
SELECT agentauth.begin_session(:'grand_secret') IS NOT NULL AS began;
SELECT name, on_behalf_of, scopes, patients, cardinality(delegation_chain) AS chain,
       delegation_chain[1] = :'parent_token' AS root_is_parent
  FROM agentauth.whoami();
SELECT agentauth.check_session();

-- revoking the root revokes every descendant; their sessions fail
RESET SESSION AUTHORIZATION;
SET ROLE del_issuer;
SELECT agentauth.revoke_token(:'parent_token', 'test: task cancelled');
SELECT cardinality(delegation_chain) AS depth, state, revoke_reason
  FROM agentauth.tokens WHERE delegation_chain[1] = :'parent_token' ORDER BY 1, patients;
RESET ROLE;
SET SESSION AUTHORIZATION del_grandchild;
SELECT agentauth.check_session();
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
SELECT detail->>'revoked_with' = :'parent_token' AS cascaded, count(*)
  FROM agentauth.audit_log
 WHERE event = 'token_revoked' AND detail->>'reason' = 'test: task cancelled'
 GROUP BY 1 ORDER BY 1;

-- a revoked parent cannot delegate
SET SESSION AUTHORIZATION del_parent;
SELECT agentauth.begin_session(:'parent_secret');
RESET SESSION AUTHORIZATION;

-- suspending an agent revokes the tokens delegated from its tokens too
SET ROLE del_issuer;
SELECT agentauth.issue_token(:'parent', 'TREAT') AS parent_secret2 \gset
RESET ROLE;
SET SESSION AUTHORIZATION del_parent;
SELECT agentauth.begin_session(:'parent_secret2') IS NOT NULL AS began;
SELECT agentauth.delegate_token(:'child') AS child_secret3 \gset
SET SESSION AUTHORIZATION del_child;
SELECT agentauth.begin_session(:'child_secret3') IS NOT NULL AS began;
SELECT agentauth.delegate_token(:'grandchild') AS grand_secret2 \gset
RESET SESSION AUTHORIZATION;
SET ROLE del_admin;
SELECT agentauth.set_principal_status(:'child', 'suspended', 'test: misbehaving');
RESET ROLE;
SELECT id AS parent_token2 FROM agentauth.token
 WHERE secret_hash = sha256(convert_to(:'parent_secret2', 'UTF8')) \gset
SET ROLE del_issuer;
SELECT a.name, t.state, t.revoke_reason
  FROM agentauth.tokens t JOIN agentauth.principals a ON a.id = t.agent
 WHERE t.delegation_chain[1] = :'parent_token2'
 ORDER BY cardinality(t.delegation_chain);
RESET ROLE;

-- gin_fuzzy_search_limit, which anyone may set (a client's PGOPTIONS; the
-- database's owner by ALTER DATABASE, for every session), makes a GIN scan
-- return a random sample of its matches.  A revocation finds a token's
-- descendants by the GIN index on their chains: every one is revoked,
-- whatever the caller's setting (1.1, found by review)
SET ROLE del_issuer;
SELECT agentauth.issue_token(:'parent', 'TREAT') AS parent_secret3 \gset
RESET ROLE;
SET SESSION AUTHORIZATION del_parent;
SELECT agentauth.begin_session(:'parent_secret3') IS NOT NULL AS began;
SELECT count(*) AS delegated FROM (SELECT agentauth.delegate_token(:'grandchild')
                                     FROM generate_series(1, 60)) s;
RESET SESSION AUTHORIZATION;
SELECT id AS parent_token3 FROM agentauth.token
 WHERE secret_hash = sha256(convert_to(:'parent_secret3', 'UTF8')) \gset
SELECT gin_clean_pending_list('agentauth.token_chain_idx') >= 0 AS merged;
SET gin_fuzzy_search_limit = 1;
SET enable_seqscan = off;
SET ROLE del_issuer;
SELECT agentauth.revoke_token(:'parent_token3', 'test: fuzzy search');
RESET ROLE;
RESET gin_fuzzy_search_limit;
RESET enable_seqscan;
SELECT count(*) AS descendants, count(*) FILTER (WHERE revoked_at IS NULL) AS unrevoked
  FROM agentauth.token WHERE chain[1] = :'parent_token3' AND id <> :'parent_token3';

-- A month is compared as 30 days and added as a calendar month: '1000 mon
-- -30000 days 30 seconds' passed as 30 seconds and lasted 436 days, a
-- delegated token outliving its parent (1.1, found by review).  Months
-- and years are refused.
SET ROLE del_issuer;
SELECT del_try(format($$SELECT agentauth.issue_token(%L, 'TREAT', ttl => '1000 mon -30000 days 4 min')$$, :'parent'));
SELECT agentauth.issue_token(:'parent', 'TREAT') AS parent_secret4 \gset
RESET ROLE;
SET SESSION AUTHORIZATION del_parent;
SELECT agentauth.begin_session(:'parent_secret4') IS NOT NULL AS began;
SELECT del_try(format($$SELECT agentauth.delegate_token(%L, ttl => '1000 mon -30000 days 30 seconds')$$, :'grandchild'));
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- Lengths are compared in seconds, a day as 24 hours, and a length in
-- days that the clock would make longer -- a daylight-saving change on
-- the way, here a time zone whose 24-hour change ends within the next
-- day -- is refused: a '1 day' maximum made a 48-hour token (1.1, found
-- by review).  The zone's summer time ends at 00:00 UTC tomorrow (day n
-- of the rule counts from 0); on December 31, when that is next year's
-- first day, it runs across the new year instead, ending at 00:00 UTC on
-- January 1
SELECT CASE WHEN to_char(now() AT TIME ZONE 'UTC', 'MM-DD') = '12-31'
            THEN 'AAA+12BBB-12,363/0,0/12'
            ELSE format('AAA+12BBB-12,0/0,%s/12', extract(doy from now() AT TIME ZONE 'UTC')::int)
       END AS tz \gset
SET ROLE del_issuer;
SET TimeZone = :'tz';
SELECT (now() + interval '1 day') - now() > interval '1 day' AS change_ahead,
       del_try(format($$SELECT agentauth.issue_token(%L, 'TREAT', ttl => '1 day')$$, :'parent')) AS one_day;
RESET TimeZone;
RESET ROLE;
