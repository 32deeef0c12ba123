-- Principals, tokens and sessions (SPEC 3, 4).
--
-- Administrative functions are SQL (plpgsql) SECURITY DEFINER functions that
-- check their caller with agentauth._require_role(); secrets, sessions and
-- revalidation are C (src/token.c, src/session.c).  Every function that
-- changes a token or a principal moves the generation counter at commit, so
-- that every backend revalidates its session before its next protected row.

-- Lookups for revocation cascades and revalidation.
CREATE INDEX token_chain_idx ON agentauth.token USING gin (chain);

-- A principal's login role cannot be dropped while the principal is not
-- retired: the trigger gives each such login a shared dependency on this
-- table, which DROP ROLE checks in every database (src/principal_login.c;
-- 1.1, found by review: a dropped login's oid, dumped and restored, bound
-- the principal to an unrelated role of the new cluster).
CREATE FUNCTION agentauth._principal_login() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'aa_principal_login_trigger';
REVOKE ALL ON FUNCTION agentauth._principal_login() FROM PUBLIC;
CREATE TRIGGER principal_login AFTER INSERT OR UPDATE OR DELETE ON agentauth.principal
    FOR EACH ROW EXECUTE FUNCTION agentauth._principal_login();
ALTER TABLE agentauth.principal ENABLE ALWAYS TRIGGER principal_login;
-- every non-retired principal's login, again (pg_upgrade and a restore
-- with --disable-triggers do not carry the dependencies); superuser only
CREATE FUNCTION agentauth._bind_logins() RETURNS bigint
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_bind_logins';
REVOKE ALL ON FUNCTION agentauth._bind_logins() FROM PUBLIC;

---------------------------------------------------------------------------
-- C helpers, private to the extension's own functions
---------------------------------------------------------------------------

-- a new secret: 'aat_' + base64url (no padding) of 32 bytes from
-- pg_strong_random(); the caller stores only its hash
CREATE FUNCTION agentauth._new_secret() RETURNS text
    LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'aa_new_secret';
REVOKE ALL ON FUNCTION agentauth._new_secret() FROM PUBLIC;

-- SHA-256 of the secret's text (what agentauth.token.secret_hash holds)
CREATE FUNCTION agentauth._secret_hash(secret text) RETURNS bytea
    LANGUAGE c IMMUTABLE PARALLEL SAFE STRICT AS 'MODULE_PATHNAME', 'aa_secret_hash';
REVOKE ALL ON FUNCTION agentauth._secret_hash(text) FROM PUBLIC;

-- is the calling role (outside SECURITY DEFINER) a member of role?
CREATE FUNCTION agentauth._has_role(role text) RETURNS boolean
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'aa_has_role_sql';
REVOKE ALL ON FUNCTION agentauth._has_role(text) FROM PUBLIC;

-- move the generation counter now and again when this transaction commits
CREATE FUNCTION agentauth._bump_generation() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_bump_generation_sql';
REVOKE ALL ON FUNCTION agentauth._bump_generation() FROM PUBLIC;

-- the token of the current agent session (after revalidation), or 28000
CREATE FUNCTION agentauth._session_token() RETURNS uuid
    LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'aa_session_token_sql';
REVOKE ALL ON FUNCTION agentauth._session_token() FROM PUBLIC;

---------------------------------------------------------------------------
-- Input checks (SPEC 13).  Each raises with an errcode or returns the value
-- normalized (arrays: distinct, sorted).
---------------------------------------------------------------------------

CREATE FUNCTION agentauth._check_text(val text, what text, required boolean, maxlen int)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF val IS NULL THEN
        IF required THEN
            RAISE EXCEPTION '% must not be null', what USING ERRCODE = '22004';
        END IF;
        RETURN NULL;
    END IF;
    IF pg_catalog.btrim(val) = '' THEN
        RAISE EXCEPTION '% must not be empty', what USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.length(val) > maxlen THEN
        RAISE EXCEPTION '% is too long', what USING ERRCODE = '22001',
            DETAIL = pg_catalog.format('It has %s characters; the limit is %s.',
                                       pg_catalog.length(val), maxlen);
    END IF;
    IF val ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION '% must not contain control characters', what USING ERRCODE = '22023';
    END IF;
    RETURN val;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_text(text, text, boolean, int) FROM PUBLIC;

-- a one-dimensional, non-empty array without NULLs of at most 1000 elements
CREATE FUNCTION agentauth._check_array(val text[], what text, required boolean)
RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x text;
BEGIN
    IF val IS NULL THEN
        IF required THEN
            RAISE EXCEPTION '% must not be null', what USING ERRCODE = '22004';
        END IF;
        RETURN NULL;
    END IF;
    IF pg_catalog.cardinality(val) = 0 THEN
        IF required THEN
            RAISE EXCEPTION '% must not be empty', what USING ERRCODE = '22023';
        END IF;
        RAISE EXCEPTION '% must not be empty', what USING ERRCODE = '22023',
            HINT = 'Pass NULL for the default.';
    END IF;
    IF pg_catalog.array_ndims(val) > 1 THEN
        RAISE EXCEPTION '% must be a one-dimensional array', what USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.cardinality(val) > 1000 THEN
        RAISE EXCEPTION '% has too many elements', what USING ERRCODE = '22001',
            DETAIL = pg_catalog.format('It has %s; the limit is 1000.', pg_catalog.cardinality(val));
    END IF;
    FOREACH x IN ARRAY val LOOP
        PERFORM agentauth._check_text(x, what || ' element', true, 200);
    END LOOP;
    RETURN (SELECT pg_catalog.array_agg(DISTINCT e ORDER BY e) FROM pg_catalog.unnest(val) e);
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_array(text[], text, boolean) FROM PUBLIC;

-- PurposeOfUse codes: known, and not reserved (BTG is entered only
-- through break_glass)
CREATE FUNCTION agentauth._check_purpose(code text, what text DEFAULT 'purpose')
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    is_reserved boolean;
BEGIN
    PERFORM agentauth._check_text(code, what, true, 200);
    SELECT p.reserved INTO is_reserved FROM agentauth.purpose p WHERE p.code = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown purpose of use "%"', code USING ERRCODE = '22023',
            HINT = 'Purpose codes are listed in agentauth.purpose (HL7 v3 PurposeOfUse), e.g. TREAT.';
    END IF;
    IF is_reserved THEN
        RAISE EXCEPTION 'purpose of use "%" is reserved', code USING ERRCODE = '22023',
            HINT = 'Break-the-glass is entered only through agentauth.break_glass().';
    END IF;
    RETURN code;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_purpose(text, text) FROM PUBLIC;

CREATE FUNCTION agentauth._check_purposes(codes text[])
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x text;
BEGIN
    codes := agentauth._check_array(codes, 'purposes', true);
    FOREACH x IN ARRAY codes LOOP
        PERFORM agentauth._check_purpose(x);
    END LOOP;
    RETURN codes;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_purposes(text[]) FROM PUBLIC;

-- scopes 'class:action': class a row of agentauth.data_class or '*',
-- action read or write
CREATE FUNCTION agentauth._check_scopes(scopes text[], required boolean)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x text;
    cls text;
BEGIN
    scopes := agentauth._check_array(scopes, 'scopes', required);
    IF scopes IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH x IN ARRAY scopes LOOP
        IF x !~ '^[^:]+:[^:]+$' THEN
            RAISE EXCEPTION 'malformed scope "%"', x USING ERRCODE = '22023',
                HINT = 'A scope is class:action, e.g. lab:read; the class may be *.';
        END IF;
        IF pg_catalog.split_part(x, ':', 2) NOT IN ('read', 'write') THEN
            RAISE EXCEPTION 'unknown action in scope "%"', x USING ERRCODE = '22023',
                HINT = 'The action is read or write.';
        END IF;
        cls := pg_catalog.split_part(x, ':', 1);
        IF cls <> '*' AND NOT EXISTS (SELECT FROM agentauth.data_class d WHERE d.name = cls) THEN
            RAISE EXCEPTION 'unknown data class in scope "%"', x USING ERRCODE = '22023',
                HINT = 'Data classes are listed in agentauth.data_class.';
        END IF;
    END LOOP;
    RETURN scopes;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_scopes(text[], boolean) FROM PUBLIC;

-- does a set of scopes cover one scope?  '*:action' covers every class that
-- is not sensitive; a sensitive class must be named.
CREATE FUNCTION agentauth._scope_covered(scope text, have text[])
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT scope = ANY (have)
        OR (pg_catalog.split_part(scope, ':', 1) <> '*'
            AND ('*:' || pg_catalog.split_part(scope, ':', 2)) = ANY (have)
            AND NOT EXISTS (SELECT FROM agentauth.data_class d
                            WHERE d.name = pg_catalog.split_part(scope, ':', 1)
                              AND d.sensitive))
$$;
REVOKE ALL ON FUNCTION agentauth._scope_covered(text, text[]) FROM PUBLIC;

CREATE FUNCTION agentauth._check_role(r regrole)
RETURNS oid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rec record;
    other text;
BEGIN
    IF r IS NULL THEN
        RAISE EXCEPTION 'db_role must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT rolname, rolcanlogin, rolsuper, rolbypassrls INTO rec
      FROM pg_catalog.pg_roles WHERE oid = r::oid;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role with OID % does not exist', r::oid USING ERRCODE = '42704';
    END IF;
    IF rec.rolname LIKE 'pg\_%' OR rec.rolname LIKE 'agentauth\_%' THEN
        RAISE EXCEPTION 'role "%" cannot be a principal', rec.rolname USING ERRCODE = '22023',
            DETAIL = 'Predefined roles and the agentauth privilege roles are not principals.';
    END IF;
    IF rec.rolsuper OR rec.rolbypassrls THEN
        RAISE EXCEPTION 'role "%" bypasses row security', rec.rolname USING ERRCODE = '22023',
            DETAIL = 'A superuser or a role with BYPASSRLS cannot be held to its registration.',
            HINT = 'Register an ordinary login role (NOSUPERUSER NOBYPASSRLS).';
    END IF;
    IF NOT rec.rolcanlogin THEN
        RAISE EXCEPTION 'role "%" cannot log in', rec.rolname USING ERRCODE = '22023',
            HINT = 'A principal connects as its own login role: ALTER ROLE ... LOGIN.';
    END IF;
    -- (1.1, found by review) nor a member of a role that reaches every
    -- table or the server's files: a principal would act with it
    -- (membership granted later: README, Caveats)
    SELECT m.rolname INTO other FROM pg_catalog.pg_roles m
     WHERE m.rolname IN ('pg_read_all_data', 'pg_write_all_data', 'pg_execute_server_program',
                         'pg_read_server_files', 'pg_write_server_files')
       AND pg_catalog.pg_has_role(r::oid, m.oid, 'MEMBER')
     ORDER BY m.rolname LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'role "%" is a member of "%"', rec.rolname, other USING ERRCODE = '22023',
            DETAIL = 'A principal would act with that role''s privileges in its sessions.',
            HINT = 'Register a login role that is a member of none of pg_read_all_data, pg_write_all_data and the server-file roles.';
    END IF;
    SELECT p.name INTO other FROM agentauth.principal p WHERE p.db_role = r::oid;
    IF FOUND THEN
        RAISE EXCEPTION 'role "%" is already the principal "%"', rec.rolname, other
            USING ERRCODE = '23505', HINT = 'One principal per login role.';
    END IF;
    RETURN r::oid;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_role(regrole) FROM PUBLIC;

CREATE FUNCTION agentauth._check_name(name text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM agentauth._check_text(name, 'name', true, 200);
    IF EXISTS (SELECT FROM agentauth.principal p WHERE p.name = $1) THEN
        RAISE EXCEPTION 'a principal named "%" already exists', name USING ERRCODE = '23505';
    END IF;
    RETURN name;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_name(text) FROM PUBLIC;

-- a positive interval, at most max (messages name the argument).  Months
-- and years are refused: an interval comparison counts a month as 30 days,
-- while the callers add the interval to the clock in calendar months, so
-- '1000 mon -30000 days 30 seconds' passed as 30 seconds and lasted 436
-- days (1.1, found by review: a delegated token outlived its parent, an
-- override its 24 hours).  Lengths are compared in seconds, a day as 24
-- hours; and a length in days that the clock, in the session's time zone,
-- would make 23 or 25 hours (a daylight-saving change on the way) is
-- refused too: the callers add it to the clock as given (a review made a
-- '1 day' maximum a 48-hour token with a time zone of its own).
-- VOLATILE: it reads the clock.
CREATE FUNCTION agentauth._check_ttl(ttl interval, what text, max interval, max_what text)
RETURNS interval
LANGUAGE plpgsql VOLATILE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t timestamptz := pg_catalog.clock_timestamp();
    secs numeric;
BEGIN
    IF ttl IS NULL THEN
        RAISE EXCEPTION '% must not be null', what USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.date_part('month', ttl) <> 0 OR pg_catalog.date_part('year', ttl) <> 0 THEN
        RAISE EXCEPTION '% must not count months or years', what USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s was %s; a month''s length depends on the date.', what, ttl),
            HINT = 'Give it in days, hours, minutes or seconds.';
    END IF;
    secs := EXTRACT(epoch FROM ttl);
    IF secs <= 0 THEN
        RAISE EXCEPTION '% must be positive', what USING ERRCODE = '22023';
    END IF;
    IF EXTRACT(epoch FROM t + ttl) - EXTRACT(epoch FROM t) <> secs THEN
        RAISE EXCEPTION '% crosses a daylight-saving change', what USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s was %s, which from now in time zone %s lasts %s.',
                                       what, ttl, pg_catalog.current_setting('TimeZone'), (t + ttl) - t),
            HINT = 'Give it in hours.';
    END IF;
    IF secs > EXTRACT(epoch FROM max) THEN
        RAISE EXCEPTION '% exceeds %', what, max_what USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('%s was %s; the limit is %s.', what, ttl, max);
    END IF;
    RETURN ttl;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_ttl(interval, text, interval, text) FROM PUBLIC;

---------------------------------------------------------------------------
-- Principals (SPEC 3)
---------------------------------------------------------------------------

-- A new principal's name must differ from every other's by more than case
-- and surrounding blanks (1.1, found by review): tokens' on_behalf_of and
-- the consent check name a principal so, and a retired "dr jones" made
-- every token on behalf of a new "Dr Jones" refused, for good.  A name
-- spelt the same way is left to the unique index, as before; two
-- registrations at once, to principal_name_folded (01_schema.sql).
CREATE FUNCTION agentauth._check_name_free(v_name text) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    other text;
BEGIN
    SELECT x.name INTO other FROM agentauth.principal x
     WHERE pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(x.name))) OPERATOR(pg_catalog.=) pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(v_name)))
       AND x.name OPERATOR(pg_catalog.<>) v_name
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'a principal named "%" exists', other USING ERRCODE = '23505',
            DETAIL = 'Principal names are compared without case and surrounding blanks.',
            HINT = 'Choose another name (a retired principal keeps its name).';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION agentauth._check_name_free(text) FROM PUBLIC;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.register_agent(
    name            text,
    db_role         regrole,
    owner           text,
    purposes        text[],
    scopes          text[],
    max_token_ttl   interval DEFAULT '5 minutes',
    can_break_glass boolean  DEFAULT false,
    can_delegate    boolean  DEFAULT false,
    description     text     DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid;
    v_role oid;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    PERFORM agentauth._check_name(name);
    PERFORM agentauth._check_name_free($1);
    v_role := agentauth._check_role(db_role);
    -- (1.1, found by review) an agent's login is a member of no agentauth
    -- privilege role: the agent would administer, issue, consent or audit
    -- with it (a clinician may also be an auditor or privacy officer)
    IF EXISTS (SELECT FROM pg_catalog.pg_roles m
                WHERE m.rolname LIKE 'agentauth\_%'
                  AND pg_catalog.pg_has_role(v_role, m.oid, 'MEMBER')) THEN
        RAISE EXCEPTION 'role "%" is a member of an agentauth privilege role', db_role
            USING ERRCODE = '22023',
            DETAIL = 'An agent would act with that role''s privileges in its sessions.',
            HINT = 'Register a login role of the agent''s own.';
    END IF;
    PERFORM agentauth._check_text(owner, 'owner', true, 4000);
    purposes := agentauth._check_purposes(purposes);
    scopes := agentauth._check_scopes(scopes, true);
    PERFORM agentauth._check_ttl(max_token_ttl, 'max_token_ttl', interval '24 hours', '24 hours');
    IF can_break_glass IS NULL THEN
        RAISE EXCEPTION 'can_break_glass must not be null' USING ERRCODE = '22004';
    END IF;
    IF can_delegate IS NULL THEN
        RAISE EXCEPTION 'can_delegate must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM agentauth._check_text(description, 'description', false, 4000);

    INSERT INTO agentauth.principal (kind, name, db_role, owner, purposes, scopes,
                                     max_token_ttl, can_break_glass, can_delegate,
                                     description, registered_by)
    VALUES ('agent', name, v_role, owner, purposes, scopes, max_token_ttl,
            can_break_glass, can_delegate, description, session_user)
    RETURNING id INTO v_id;

    PERFORM agentauth._audit('principal_registered',
        pg_catalog.jsonb_build_object('kind', 'agent', 'name', name,
            'db_role', agentauth._detail_text(db_role), 'owner', owner, 'purposes', purposes,
            'scopes', scopes, 'max_token_ttl', agentauth._detail_text(max_token_ttl),
            'can_break_glass', can_break_glass, 'can_delegate', can_delegate),
        v_id);
    PERFORM agentauth._bump_generation();
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION agentauth.register_agent(text, regrole, text, text[], text[], interval, boolean, boolean, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.register_agent(text, regrole, text, text[], text[], interval, boolean, boolean, text) TO agentauth_admin;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.register_human(
    name text, db_role regrole, purposes text[], scopes text[],
    can_break_glass boolean DEFAULT false,
    can_approve     boolean DEFAULT false)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid;
    v_role oid;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    PERFORM agentauth._check_name(name);
    PERFORM agentauth._check_name_free($1);
    v_role := agentauth._check_role(db_role);
    purposes := agentauth._check_purposes(purposes);
    scopes := agentauth._check_scopes(scopes, true);
    IF can_break_glass IS NULL THEN
        RAISE EXCEPTION 'can_break_glass must not be null' USING ERRCODE = '22004';
    END IF;
    IF can_approve IS NULL THEN
        RAISE EXCEPTION 'can_approve must not be null' USING ERRCODE = '22004';
    END IF;

    INSERT INTO agentauth.principal (kind, name, db_role, purposes, scopes,
                                     can_break_glass, can_approve, registered_by)
    VALUES ('human', name, v_role, purposes, scopes, can_break_glass, can_approve,
            session_user)
    RETURNING id INTO v_id;

    PERFORM agentauth._audit('principal_registered',
        pg_catalog.jsonb_build_object('kind', 'human', 'name', name,
            'db_role', agentauth._detail_text(db_role), 'purposes', purposes, 'scopes', scopes,
            'can_break_glass', can_break_glass, 'can_approve', can_approve),
        v_id);
    PERFORM agentauth._bump_generation();
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION agentauth.register_human(text, regrole, text[], text[], boolean, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.register_human(text, regrole, text[], text[], boolean, boolean) TO agentauth_admin;

-- Revoke every unrevoked token in ids and every descendant of one of them.
-- Called after the roots were locked, in a statement of its own, so that
-- under READ COMMITTED it sees a child delegated by a transaction that held
-- its parent's lock until it committed.  Returns the revoked ids.  The
-- descendants are found by the GIN index on the chains, with
-- gin_fuzzy_search_limit pinned to 0: a caller's setting (anyone may set
-- it, the database's owner for every session) made the scan return a random
-- sample, and a revocation left delegated tokens alive (1.1, found by
-- review).
CREATE FUNCTION agentauth._revoke_tree(ids uuid[], reason text)
RETURNS uuid[]
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
SET gin_fuzzy_search_limit = 0
AS $$
    WITH r AS (
        UPDATE agentauth.token t
           SET revoked_at = pg_catalog.now(), revoke_reason = reason
         WHERE t.revoked_at IS NULL AND t.chain && ids
        RETURNING t.id)
    SELECT coalesce(pg_catalog.array_agg(r.id ORDER BY r.id), '{}') FROM r
$$;
REVOKE ALL ON FUNCTION agentauth._revoke_tree(uuid[], text) FROM PUBLIC;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.set_principal_status(principal uuid, status text, reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p agentauth.principal;
    roots uuid[];
    revoked uuid[] := '{}';
    ended uuid[] := '{}';
    expired uuid[] := '{}';
    b record;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF principal IS NULL THEN
        RAISE EXCEPTION 'principal must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM agentauth._check_text(status, 'status', true, 200);
    IF status NOT IN ('active', 'suspended', 'retired') THEN
        RAISE EXCEPTION 'unknown principal status "%"', status USING ERRCODE = '22023',
            HINT = 'The status is active, suspended or retired.';
    END IF;
    PERFORM agentauth._check_text(reason, 'reason', true, 4000);

    -- (1.1) FOR NO KEY UPDATE, here and below: a FOR KEY SHARE lock an
    -- agent's transaction holds (a token it delegates, a row it inserts
    -- that refers to the principal) must not make a suspension wait; no
    -- agent's transaction takes a stronger lock on these rows
    SELECT * INTO p FROM agentauth.principal x WHERE x.id = $1 FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'principal % does not exist', principal USING ERRCODE = '42704';
    END IF;
    IF p.status = 'retired' AND status <> 'retired' THEN
        RAISE EXCEPTION 'principal "%" is retired', p.name USING ERRCODE = '55000',
            DETAIL = 'Retirement is final.', HINT = 'Register a new principal.';
    END IF;

    UPDATE agentauth.principal x
       -- (1.1) the moment of the change, not its transaction's start: an
       -- approval or override is void when granted before it (btg.c), and
       -- one granted after an administrator's transaction began came back
       -- with a reactivation it made (found by review)
       -- (only a change: a token issued before it, and a clinician's session
       -- begun before it, are void -- session.c)
       SET status = $2, status_reason = $3,
           status_changed_at = CASE WHEN x.status OPERATOR(pg_catalog.=) $2 THEN x.status_changed_at
                                    ELSE pg_catalog.clock_timestamp() END
     WHERE x.id = $1;

    IF status <> 'active' THEN
        -- lock the principal's live tokens and those issued on its behalf
        -- (a clinician's agents: 1.1), then revoke them and their
        -- descendants in a statement of its own (see _revoke_tree)
        SELECT pg_catalog.array_agg(t.id) INTO roots FROM (
            SELECT t.id FROM agentauth.token t
             WHERE (t.agent = $1
                    -- any spelling of its name, as issue_token matches it
                    OR pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(t.on_behalf_of))) OPERATOR(pg_catalog.=)
                       pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(p.name))))
               AND t.revoked_at IS NULL FOR NO KEY UPDATE) t;
        IF roots IS NOT NULL THEN
            revoked := agentauth._revoke_tree(roots, 'principal ' || status || ': ' || reason);
        END IF;
        -- the authority that came from the principal ends with it (1.1):
        -- overrides it broke the glass in or was broken for, the approvals
        -- it granted (as end_break_glass ends an override) and those
        -- granted to it.  A row another transaction holds (the principal
        -- ending its own override, an agent using an approval) is passed
        -- by, not waited for: the override is bound to a session that
        -- ends now, and an approval is used only while its agent and its
        -- approver are active and have been since it was granted (btg.c)
        FOR b IN SELECT bg.id, bg.session_id FROM agentauth.break_glass bg
                  WHERE (bg.principal = $1 OR bg.on_behalf_of_principal = $1)
                    AND bg.ended_at IS NULL
                    AND bg.ends_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()
                  FOR NO KEY UPDATE SKIP LOCKED LOOP
            UPDATE agentauth.break_glass bg
               SET ended_at = pg_catalog.clock_timestamp(), ended_by = 'principal ' || status
             WHERE bg.id = b.id;
            ended := ended || b.id;
            PERFORM agentauth._btg_changed(b.session_id);
        END LOOP;
        WITH x AS (
            UPDATE agentauth.approval ap SET expires_at = pg_catalog.clock_timestamp()
             WHERE ap.id = ANY (ARRAY(
                   SELECT a.id FROM agentauth.approval a
                    WHERE (a.approved_by = $1 OR a.agent = $1) AND a.uses_left OPERATOR(pg_catalog.>) 0
                      AND a.expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()
                      FOR NO KEY UPDATE SKIP LOCKED))
            RETURNING ap.id)
        SELECT coalesce(pg_catalog.array_agg(x.id), '{}') INTO expired FROM x;
    END IF;

    PERFORM agentauth._audit('principal_status',
        pg_catalog.jsonb_build_object('name', p.name, 'from', p.status, 'to', status,
                                      'reason', reason, 'tokens_revoked', revoked,
                                      'overrides_ended', ended, 'approvals_ended', expired),
        p.id);
    PERFORM agentauth._bump_generation();
END
$$;
REVOKE ALL ON FUNCTION agentauth.set_principal_status(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.set_principal_status(uuid, text, text) TO agentauth_admin;

-- (1.1) Behind a transaction-pooling pooler (pgbouncer pool_mode =
-- transaction) consecutive transactions of one backend belong to different
-- clients: a session that outlives its transaction is handed to the next
-- client.  required = true: the principal's sessions must be begun with
-- transaction_only => true (begin_session and begin_human_session refuse
-- otherwise, with 42501), and a session-scoped session it already has ends
-- at its next check.  agentauth.require_transaction_only = on (the
-- configuration file) requires it of every principal.
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.require_transaction_only(principal uuid, required boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p agentauth.principal;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF principal IS NULL THEN
        RAISE EXCEPTION 'principal must not be null' USING ERRCODE = '22004';
    END IF;
    IF required IS NULL THEN
        RAISE EXCEPTION 'required must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO p FROM agentauth.principal x WHERE x.id = $1 FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'principal % does not exist', principal USING ERRCODE = '42704';
    END IF;
    UPDATE agentauth.principal x SET transaction_only_required = $2 WHERE x.id = $1;
    PERFORM agentauth._audit('principal_status',
        pg_catalog.jsonb_build_object('name', p.name, 'status', p.status,
                                      'transaction_only_required', required,
                                      'was', p.transaction_only_required),
        p.id);
    PERFORM agentauth._bump_generation();
END
$$;
REVOKE ALL ON FUNCTION agentauth.require_transaction_only(uuid, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.require_transaction_only(uuid, boolean) TO agentauth_admin;

CREATE VIEW agentauth.principals AS
SELECT p.id, p.kind, p.name, p.db_role::regrole AS db_role, p.owner,
       p.purposes, p.scopes, p.max_token_ttl,
       -- (a view runs functions as the caller: keep private ones out)
       ARRAY(SELECT c.cap FROM (VALUES (1, 'break_glass', p.can_break_glass),
                                       (2, 'delegate', p.can_delegate),
                                       (3, 'approve', p.can_approve)) c(o, cap, held)
              WHERE c.held ORDER BY c.o) AS capabilities,
       p.status, p.registered_at, p.registered_by,
       p.description, p.status_reason, p.status_changed_at, p.last_session_at,
       p.transaction_only_required
  FROM agentauth.principal p;
GRANT SELECT ON agentauth.principals TO agentauth_admin, agentauth_issuer, agentauth_auditor;

---------------------------------------------------------------------------
-- Tokens (SPEC 4.1, 4.3, 4.4)
---------------------------------------------------------------------------

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.issue_token(
    agent        uuid,
    purpose      text,
    ttl          interval DEFAULT NULL,
    on_behalf_of text     DEFAULT NULL,
    scopes       text[]   DEFAULT NULL,
    patients     text[]   DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p agentauth.principal;
    x text;
    v_id uuid := pg_catalog.gen_random_uuid();
    v_secret text;
    v_now timestamptz;
    v_expires timestamptz;
BEGIN
    PERFORM agentauth._require_role('agentauth_issuer');
    IF agent IS NULL THEN
        RAISE EXCEPTION 'agent must not be null' USING ERRCODE = '22004';
    END IF;
    -- (1.1) FOR KEY SHARE: enough to keep the row (a token's validity
    -- is checked against its agent's status at every use), and it never
    -- makes a suspension wait (set_principal_status)
    SELECT * INTO p FROM agentauth.principal pr WHERE pr.id = $1 FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent % does not exist', agent USING ERRCODE = '42704';
    END IF;
    IF p.kind <> 'agent' THEN
        RAISE EXCEPTION 'principal "%" is not an agent', p.name USING ERRCODE = '22023',
            HINT = 'Humans begin sessions with agentauth.begin_human_session().';
    END IF;
    IF p.status <> 'active' THEN
        RAISE EXCEPTION 'agent "%" is %', p.name, p.status USING ERRCODE = '55000';
    END IF;

    PERFORM agentauth._check_purpose(purpose);
    IF NOT purpose = ANY (p.purposes) THEN
        RAISE EXCEPTION 'agent "%" is not registered for purpose "%"', p.name, purpose
            USING ERRCODE = '42501',
            DETAIL = pg_catalog.format('Its purposes are %s.', p.purposes);
    END IF;

    IF ttl IS NULL THEN
        ttl := p.max_token_ttl;
    END IF;
    PERFORM agentauth._check_ttl(ttl, 'ttl', p.max_token_ttl, 'the agent''s max_token_ttl');
    -- the clock, not the transaction's start: a token issued late in a
    -- long transaction still lives its whole ttl
    v_now := pg_catalog.clock_timestamp();
    v_expires := v_now + ttl;

    PERFORM agentauth._check_text(on_behalf_of, 'on_behalf_of', false, 200);
    -- a suspended or retired clinician's authority ends with it (1.1): no
    -- new token acts on its behalf (set_principal_status revoked the old)
    -- (any spelling of its name: case and surrounding blanks aside)
    IF EXISTS (SELECT FROM agentauth.principal h
                WHERE pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(h.name))) OPERATOR(pg_catalog.=)
                      pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(on_behalf_of)))
                  AND h.status OPERATOR(pg_catalog.<>) 'active') THEN
        RAISE EXCEPTION 'principal "%", on whose behalf the token would act, is not active', on_behalf_of
            USING ERRCODE = '55000';
    END IF;

    scopes := agentauth._check_scopes(scopes, false);
    IF scopes IS NULL THEN
        scopes := p.scopes;
    ELSE
        FOREACH x IN ARRAY scopes LOOP
            IF NOT agentauth._scope_covered(x, p.scopes) THEN
                RAISE EXCEPTION 'agent "%" is not registered for scope "%"', p.name, x
                    USING ERRCODE = '42501',
                    DETAIL = pg_catalog.format('Its scopes are %s.', p.scopes);
            END IF;
        END LOOP;
    END IF;

    patients := agentauth._check_array(patients, 'patients', false);

    v_secret := agentauth._new_secret();
    INSERT INTO agentauth.token (id, secret_hash, agent, parent, chain, purpose,
                                 on_behalf_of, scopes, patients, issued_at, issued_by, expires_at)
    VALUES (v_id, agentauth._secret_hash(v_secret), p.id, NULL, ARRAY[v_id], purpose,
            on_behalf_of, scopes, patients, v_now, session_user, v_expires);

    PERFORM agentauth._audit('token_issued',
        pg_catalog.jsonb_build_object('purpose', purpose, 'expires_at', v_expires,
            'on_behalf_of', on_behalf_of, 'scopes', scopes, 'patients', patients),
        p.id, v_id);
    -- (1.1) no move of the generation: a new token changes no decision a
    -- backend keeps (a session's own token is read again only when it may
    -- have changed: revoked, its agent suspended), and every backend
    -- dropped its consent and decision caches at each token issued
    RETURN v_secret;
END
$$;
REVOKE ALL ON FUNCTION agentauth.issue_token(uuid, text, interval, text, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.issue_token(uuid, text, interval, text, text[], text[]) TO agentauth_issuer;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.revoke_token(token uuid, reason text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t agentauth.token;
    revoked uuid[];
    r uuid;
BEGIN
    IF NOT (agentauth._has_role('agentauth_issuer') OR agentauth._has_role('agentauth_admin')) THEN
        PERFORM agentauth._require_role('agentauth_issuer');
    END IF;
    IF token IS NULL THEN
        RAISE EXCEPTION 'token must not be null' USING ERRCODE = '22004';
    END IF;
    PERFORM agentauth._check_text(reason, 'reason', true, 4000);

    SELECT * INTO t FROM agentauth.token x WHERE x.id = $1 FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'token % does not exist', token USING ERRCODE = '42704';
    END IF;
    -- a second revocation only sweeps up descendants (none can be live)
    revoked := agentauth._revoke_tree(ARRAY[t.id], reason);
    IF t.revoked_at IS NOT NULL AND revoked = '{}' THEN
        RAISE NOTICE 'token was already revoked'
            USING DETAIL = pg_catalog.format('Token %s was revoked at %s.', t.id, t.revoked_at);
        RETURN;
    END IF;

    FOREACH r IN ARRAY revoked LOOP
        PERFORM agentauth._audit('token_revoked',
            pg_catalog.jsonb_build_object('reason', reason,
                'revoked_with', CASE WHEN r = t.id THEN NULL ELSE t.id END),
            (SELECT x.agent FROM agentauth.token x WHERE x.id = r), r);
    END LOOP;
    PERFORM agentauth._bump_generation();
END
$$;
REVOKE ALL ON FUNCTION agentauth.revoke_token(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.revoke_token(uuid, text) TO agentauth_issuer, agentauth_admin;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.delegate_token(
    agent    uuid,
    purpose  text     DEFAULT NULL,
    ttl      interval DEFAULT NULL,
    scopes   text[]   DEFAULT NULL,
    patients text[]   DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    parent agentauth.token;
    me agentauth.principal;
    child agentauth.principal;
    x text;
    v_id uuid := pg_catalog.gen_random_uuid();
    v_secret text;
    v_now timestamptz;
    v_expires timestamptz;
BEGIN
    -- the caller's own, revalidated session token (28000 without one)
    -- (1.1) FOR KEY SHARE, and the child agent's row below too: a
    -- stronger lock, held while the agent kept its transaction open, made
    -- its own revocation and suspension wait (found by review).  A token
    -- is refused at every use while any token of its chain is revoked or
    -- its agent is not active, so a revocation that commits meanwhile
    -- still reaches the child
    SELECT * INTO parent FROM agentauth.token t
     WHERE t.id = agentauth._session_token() FOR KEY SHARE;
    v_now := pg_catalog.clock_timestamp();
    IF NOT FOUND OR parent.revoked_at IS NOT NULL OR parent.expires_at <= v_now THEN
        RAISE EXCEPTION 'agentauth session is no longer valid' USING ERRCODE = '28000';
    END IF;
    SELECT * INTO me FROM agentauth.principal p WHERE p.id = parent.agent;
    IF NOT me.can_delegate THEN
        RAISE EXCEPTION 'agent "%" may not delegate', me.name USING ERRCODE = '42501',
            HINT = 'Register the agent with can_delegate => true.';
    END IF;
    IF pg_catalog.cardinality(parent.chain) >= 8 THEN
        RAISE EXCEPTION 'delegation chain is too long' USING ERRCODE = '54000',
            DETAIL = 'A token can be delegated at most 7 times from its root.';
    END IF;

    IF agent IS NULL THEN
        RAISE EXCEPTION 'agent must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO child FROM agentauth.principal p WHERE p.id = $1 FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent % does not exist', agent USING ERRCODE = '42704';
    END IF;
    IF child.kind <> 'agent' THEN
        RAISE EXCEPTION 'principal "%" is not an agent', child.name USING ERRCODE = '22023';
    END IF;
    IF child.id = me.id THEN
        RAISE EXCEPTION 'an agent cannot delegate to itself' USING ERRCODE = '22023';
    END IF;
    IF child.status <> 'active' THEN
        RAISE EXCEPTION 'agent "%" is %', child.name, child.status USING ERRCODE = '55000';
    END IF;

    -- purpose: the parent's, which the child must be registered for
    IF purpose IS NULL THEN
        purpose := parent.purpose;
    END IF;
    PERFORM agentauth._check_purpose(purpose);
    IF purpose <> parent.purpose THEN
        RAISE EXCEPTION 'purpose "%" is not the purpose of the delegating token', purpose
            USING ERRCODE = '42501',
            DETAIL = pg_catalog.format('The delegating token is for %s.', parent.purpose);
    END IF;
    IF NOT purpose = ANY (child.purposes) THEN
        RAISE EXCEPTION 'agent "%" is not registered for purpose "%"', child.name, purpose
            USING ERRCODE = '42501';
    END IF;

    -- expiry: within the child's max_token_ttl and no later than the
    -- parent's, instants compared (1.1: intervals counted a month as 30
    -- days and a day as 24 hours; _check_ttl)
    IF ttl IS NULL THEN
        PERFORM agentauth._check_ttl(child.max_token_ttl, 'the agent''s max_token_ttl',
                                     interval '24 hours', '24 hours');
        v_expires := LEAST(v_now + child.max_token_ttl, parent.expires_at);
    ELSE
        PERFORM agentauth._check_ttl(ttl, 'ttl', child.max_token_ttl, 'the agent''s max_token_ttl');
        v_expires := v_now + ttl;
        IF v_expires > parent.expires_at THEN
            RAISE EXCEPTION 'ttl outlives the delegating token' USING ERRCODE = '42501',
                DETAIL = pg_catalog.format('The delegating token expires at %s.', parent.expires_at);
        END IF;
    END IF;

    -- scopes: within the parent token's and the child's registration
    scopes := agentauth._check_scopes(scopes, false);
    IF scopes IS NULL THEN
        scopes := ARRAY(SELECT s FROM pg_catalog.unnest(parent.scopes) s
                         WHERE agentauth._scope_covered(s, child.scopes) ORDER BY s);
        IF scopes = '{}' THEN
            RAISE EXCEPTION 'agent "%" is registered for none of the delegating token''s scopes',
                child.name USING ERRCODE = '42501';
        END IF;
    ELSE
        FOREACH x IN ARRAY scopes LOOP
            IF NOT agentauth._scope_covered(x, parent.scopes) THEN
                RAISE EXCEPTION 'scope "%" is not within the delegating token', x
                    USING ERRCODE = '42501',
                    DETAIL = pg_catalog.format('The delegating token has %s.', parent.scopes);
            END IF;
            IF NOT agentauth._scope_covered(x, child.scopes) THEN
                RAISE EXCEPTION 'agent "%" is not registered for scope "%"', child.name, x
                    USING ERRCODE = '42501';
            END IF;
        END LOOP;
    END IF;

    -- patients: within the parent's list (NULL: the parent's)
    patients := agentauth._check_array(patients, 'patients', false);
    IF patients IS NULL THEN
        patients := parent.patients;
    ELSIF parent.patients IS NOT NULL AND NOT patients <@ parent.patients THEN
        PERFORM agentauth._raise_naming_patient('42501', 'patients are not within the delegating token',
            pg_catalog.format('Not covered: %s.',
                ARRAY(SELECT e FROM pg_catalog.unnest(patients) e
                       WHERE NOT e = ANY (parent.patients) ORDER BY e)));
    END IF;

    v_secret := agentauth._new_secret();
    INSERT INTO agentauth.token (id, secret_hash, agent, parent, chain, purpose,
                                 on_behalf_of, scopes, patients, issued_at, issued_by, expires_at)
    VALUES (v_id, agentauth._secret_hash(v_secret), child.id, parent.id,
            parent.chain || v_id, purpose, parent.on_behalf_of, scopes, patients,
            v_now, session_user, v_expires);

    PERFORM agentauth._audit('token_issued',
        pg_catalog.jsonb_build_object('purpose', purpose, 'expires_at', v_expires,
            'on_behalf_of', parent.on_behalf_of, 'scopes', scopes, 'patients', patients,
            'delegated_by', me.id, 'parent', parent.id),
        child.id, v_id);
    -- (1.1) no move of the generation: a new token changes no decision a
    -- backend keeps (a session's own token is read again only when it may
    -- have changed: revoked, its agent suspended), and every backend
    -- dropped its consent and decision caches at each token issued
    RETURN v_secret;
END
$$;
REVOKE ALL ON FUNCTION agentauth.delegate_token(uuid, text, interval, text[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.delegate_token(uuid, text, interval, text[], text[]) TO PUBLIC;

CREATE VIEW agentauth.tokens AS
SELECT t.id, t.agent, t.parent, t.purpose, t.on_behalf_of, t.scopes, t.patients,
       t.issued_at, t.issued_by, t.expires_at, t.revoked_at, t.revoke_reason,
       t.chain AS delegation_chain,
       CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
            WHEN t.expires_at <= pg_catalog.now() THEN 'expired'
            ELSE 'live' END AS state
  FROM agentauth.token t;
GRANT SELECT ON agentauth.tokens TO agentauth_admin, agentauth_issuer, agentauth_auditor;

---------------------------------------------------------------------------
-- Sessions (SPEC 4.2), in C: state lives in the backend's memory.  PUBLIC
-- may call them: each checks session_user against the principal's role.
---------------------------------------------------------------------------

-- SECURITY DEFINER: reads the token and principal tables (private to the extension) for the backend's own session; no privilege role needed.
CREATE FUNCTION agentauth.begin_session(secret text, transaction_only boolean DEFAULT false)
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'aa_begin_session';
REVOKE ALL ON FUNCTION agentauth.begin_session(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.begin_session(text, boolean) TO PUBLIC;

-- SECURITY DEFINER: reads the token and principal tables (private to the extension) for the backend's own session; no privilege role needed.
CREATE FUNCTION agentauth.begin_human_session(purpose text, transaction_only boolean DEFAULT false)
RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'aa_begin_human_session';
REVOKE ALL ON FUNCTION agentauth.begin_human_session(text, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.begin_human_session(text, boolean) TO PUBLIC;

-- SECURITY DEFINER: reads the token and principal tables (private to the extension) for the backend's own session; no privilege role needed.
CREATE FUNCTION agentauth.end_session()
RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'aa_end_session';
REVOKE ALL ON FUNCTION agentauth.end_session() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.end_session() TO PUBLIC;

-- SECURITY DEFINER: reads the token and principal tables (private to the extension) for the backend's own session; no privilege role needed.
CREATE FUNCTION agentauth.whoami()
RETURNS TABLE (principal uuid, kind text, name text, token uuid,
               purpose text, on_behalf_of text, scopes text[], patients text[],
               expires_at timestamptz, delegation_chain uuid[], break_glass uuid[])
LANGUAGE c VOLATILE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'aa_whoami';
REVOKE ALL ON FUNCTION agentauth.whoami() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.whoami() TO PUBLIC;

-- The per-row validity check the row security check runs, exposed for
-- tests and for clients that want to know: true, or SQLSTATE 28000.
-- Not SECURITY DEFINER and no SET clause: it must stay as cheap as the
-- row check itself.
CREATE FUNCTION agentauth.check_session()
RETURNS boolean
LANGUAGE c VOLATILE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'aa_check_session';
REVOKE ALL ON FUNCTION agentauth.check_session() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.check_session() TO PUBLIC;
