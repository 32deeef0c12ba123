-- No table of the extension holds a token secret in plain text (SPEC 4.1):
-- issue, delegate and use tokens, then look for each secret -- whole, its
-- base64url part, and its 32 raw bytes in hex -- in every column of every
-- table in schema agentauth, cast to text.  The same search finds what is
-- stored (token ids, the SHA-256 of a secret), so it can fail.

\set SHOW_CONTEXT never

CREATE ROLE sec_agent LOGIN;
CREATE ROLE sec_child LOGIN;
SELECT agentauth.register_agent('sec-agent', 'sec_agent', 'Tests', '{TREAT}', '{lab:read}',
    can_delegate => true) AS agent \gset
SELECT agentauth.register_agent('sec-child', 'sec_child', 'Tests', '{TREAT}', '{lab:read}') AS child \gset

-- the secrets, kept in a temporary table of this test only
CREATE TEMP TABLE sec_secrets (secret text);
INSERT INTO sec_secrets SELECT agentauth.issue_token(:'agent', 'TREAT') FROM generate_series(1, 5);
SELECT secret AS secret FROM sec_secrets LIMIT 1 \gset
SET SESSION AUTHORIZATION sec_agent;
SELECT agentauth.begin_session(:'secret') IS NOT NULL AS began;
SELECT agentauth.delegate_token(:'child') AS child_secret \gset
RESET SESSION AUTHORIZATION;
INSERT INTO sec_secrets VALUES (:'child_secret');
SET SESSION AUTHORIZATION sec_child;
SELECT agentauth.begin_session(:'child_secret') IS NOT NULL AS began;
SELECT agentauth.begin_session(:'child_secret' || 'x');   -- a denied attempt
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;
-- revoke one, so the revocation path has written too
SELECT agentauth.revoke_token(id, 'test') FROM agentauth.token
 WHERE secret_hash = sha256(convert_to(:'secret', 'UTF8'));

-- each secret in three spellings
CREATE TEMP TABLE sec_needles AS
SELECT s.secret, n.spelling, n.needle
  FROM sec_secrets s,
       LATERAL (VALUES
         ('secret', s.secret),
         ('base64url part', substr(s.secret, 5)),
         ('raw bytes, hex', encode(decode(translate(substr(s.secret, 5), '-_', '+/') || '=', 'base64'), 'hex'))
       ) n(spelling, needle);
SELECT spelling, count(*) AS needles, min(length(needle)) AS length FROM sec_needles GROUP BY 1 ORDER BY 1;

-- every column of every table of the extension, as text
CREATE FUNCTION sec_find(needle text) RETURNS TABLE (tbl text, col text, hits bigint)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    n bigint;
BEGIN
    FOR c IN
        SELECT a.attrelid::regclass::text AS t, a.attname AS col
          FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid
         WHERE r.relnamespace = 'agentauth'::regnamespace AND r.relkind IN ('r', 'p')
           AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        EXECUTE format('SELECT count(*) FROM %s WHERE strpos(lower(%I::text), lower($1)) > 0', c.t, c.col)
           INTO n USING needle;
        IF n > 0 THEN
            tbl := c.t; col := c.col; hits := n;
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;

SELECT count(*) >= 9 AS every_table_searched
  FROM pg_class WHERE relnamespace = 'agentauth'::regnamespace AND relkind IN ('r', 'p');

-- no secret in any spelling, anywhere
SELECT n.spelling, f.tbl, f.col, f.hits
  FROM sec_needles n, sec_find(n.needle) f;

-- controls: the same search does find what is stored
SELECT f.tbl, bool_or(f.col = 'id') AS in_id, bool_or(f.col = 'chain') AS in_chain
  FROM (SELECT id::text AS needle FROM agentauth.token
         WHERE secret_hash = sha256(convert_to(:'child_secret', 'UTF8'))) t,
       sec_find(t.needle) f
 WHERE f.tbl IN ('agentauth.token', 'agentauth.audit_record')
 GROUP BY 1 ORDER BY 1;
SELECT f.tbl, f.col
  FROM sec_find(encode(sha256(convert_to(:'child_secret', 'UTF8')), 'hex')) f;

-- A statement of nothing but short secrets, past 64 MB: its redacted copy
-- for the log (2.8 times as long) is not made and kept; a placeholder is
-- logged instead (1.0 kept the copy in the backend's top memory context,
-- and a statement of 400 MB failed inside the log hook)
SELECT 'SELECT 1 aat_a' || repeat(' aat_a', 11200000) AS big_statement \gset
:big_statement;
\unset big_statement
SELECT total_bytes < 32 * 1024 * 1024 AS no_copy_kept
  FROM pg_backend_memory_contexts WHERE name = 'TopMemoryContext';
