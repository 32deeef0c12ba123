-- Break-the-glass overrides (SPEC 8) and clinician approvals (SPEC 9).
--
-- Limits chosen here (README "Break-the-glass and clinician approvals"):
--   an override lasts more than 0 and at most 24 hours;
--   an approval is valid for more than 0 and at most 24 hours, for 1 to 100 uses;
--   a patient id is 1 to 64 characters: a letter or digit, then letters,
--   digits and . _ - : /  (MRNs, FHIR ids, 'Patient/123', 'urn:oid:...').

-- Private helpers (C, src/btg.c).  No grant: only our SECURITY DEFINER
-- functions call them.
CREATE FUNCTION agentauth._btg_session(
    OUT session_id uuid, OUT principal uuid, OUT kind text, OUT token uuid,
    OUT on_behalf_of text, OUT patients text[], OUT can_break_glass boolean,
    OUT can_approve boolean, OUT caller_role oid, OUT login_role oid)
    RETURNS record LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_btg_session';
REVOKE ALL ON FUNCTION agentauth._btg_session() FROM PUBLIC;

CREATE FUNCTION agentauth._btg_changed(session uuid) RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_btg_changed';
REVOKE ALL ON FUNCTION agentauth._btg_changed(uuid) FROM PUBLIC;

CREATE FUNCTION agentauth._btg_audit(event text, patient text, relation text,
                                     action text, authority jsonb, detail jsonb,
                                     purpose text)
    RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_btg_audit';
REVOKE ALL ON FUNCTION agentauth._btg_audit(text, text, text, text, jsonb, jsonb, text) FROM PUBLIC;

-- A valid patient id, or an error (22004 / 22023): also one that some
-- protected table's patient column could hold as written (_patient_id).
CREATE FUNCTION agentauth._check_patient(patient text) RETURNS text
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF patient IS NULL THEN
        RAISE EXCEPTION 'patient must not be null' USING ERRCODE = '22004';
    END IF;
    IF patient OPERATOR(pg_catalog.!~) '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$' THEN
        PERFORM agentauth._raise_naming_patient('22023', 'invalid patient id',
            pg_catalog.format('Patient id "%s".', pg_catalog.left(patient, 80)),
            'A patient id is 1 to 64 characters: a letter or digit, then letters, digits, ".", "_", "-", ":" or "/".');
    END IF;
    RETURN agentauth._patient_id(patient);
END
$$;

REVOKE ALL ON FUNCTION agentauth._check_patient(text) FROM PUBLIC;

------------------------------------------------------------------------
-- break_glass(patient, reason, ttl): open consent for one patient, in
-- this session only, until end_break_glass() or ttl.
------------------------------------------------------------------------
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks the caller's session and principal inside.
CREATE FUNCTION agentauth.break_glass(patient text, reason text,
                                      ttl interval DEFAULT '60 minutes')
    RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_patient text := $1;
    v_reason  text := $2;
    v_ttl     interval := $3;
    s         record;
    p         record;
    h         record;
    v_for     uuid;
    v_id      uuid;
    v_start   timestamptz := pg_catalog.clock_timestamp();
    v_ends    timestamptz;
BEGIN
    SELECT * INTO s FROM agentauth._btg_session();
    IF s.session_id IS NULL THEN
        RAISE EXCEPTION 'no agentauth session' USING ERRCODE = '42501',
            HINT = 'Call agentauth.begin_session() or agentauth.begin_human_session() first.';
    END IF;
    SELECT pr.name, pr.status, pr.can_break_glass INTO p
      FROM agentauth.principal pr WHERE pr.id OPERATOR(pg_catalog.=) s.principal;
    IF NOT FOUND OR p.status OPERATOR(pg_catalog.<>) 'active'
       OR NOT p.can_break_glass OR NOT s.can_break_glass THEN
        RAISE EXCEPTION 'principal "%" may not break the glass', coalesce(p.name, s.principal::text)
            USING ERRCODE = '42501',
                  HINT = 'Only principals registered with can_break_glass may start an override.';
    END IF;
    -- a delegated token carries no more than its delegators may: every
    -- agent it passed through may break the glass, and is active (1.1: an
    -- agent registered with can_break_glass broke the glass on a token
    -- delegated to it by one that may not)
    SELECT pr.name INTO h
      FROM agentauth.token t
      JOIN agentauth.token d ON d.id OPERATOR(pg_catalog.=) ANY (t.chain)
      JOIN agentauth.principal pr ON pr.id OPERATOR(pg_catalog.=) d.agent
     WHERE t.id OPERATOR(pg_catalog.=) s.token
       AND (NOT pr.can_break_glass OR pr.status OPERATOR(pg_catalog.<>) 'active')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'principal "%" may not break the glass', p.name
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('The session''s token was delegated by agent "%s", which may not.', h.name),
                  HINT = 'An override needs a token whose every delegator is registered with can_break_glass.';
    END IF;
    IF s.kind OPERATOR(pg_catalog.=) 'agent' AND coalesce(s.on_behalf_of, '') OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'an agent may break the glass only on behalf of a person'
            USING ERRCODE = '42501',
                  HINT = 'Issue the agent''s token with on_behalf_of naming the clinician who answers for the override.';
    END IF;
    -- the person who answers for an agent's override is a registered human
    -- principal, active, who may break the glass: named as names are
    -- compared everywhere, case and surrounding blanks aside (1.1, found by
    -- review: 'DR QUINN ' was her for her denies and her suspension, and
    -- no one here); principal_name_folded makes it one principal at most
    IF s.kind OPERATOR(pg_catalog.=) 'agent' THEN
        SELECT pr.id, pr.kind, pr.status, pr.can_break_glass INTO h
          FROM agentauth.principal pr
         WHERE pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(pr.name))) OPERATOR(pg_catalog.=)
               pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(s.on_behalf_of)));
        IF NOT FOUND OR h.kind OPERATOR(pg_catalog.<>) 'human'
           OR h.status OPERATOR(pg_catalog.<>) 'active' OR NOT h.can_break_glass THEN
            RAISE EXCEPTION 'an agent may break the glass only on behalf of an active human principal who may break the glass'
                USING ERRCODE = '42501',
                      DETAIL = pg_catalog.format('The token acts on behalf of "%s", %s.',
                          pg_catalog.left(s.on_behalf_of, 200),
                          CASE WHEN NOT FOUND THEN 'which names no registered principal'
                               WHEN h.kind OPERATOR(pg_catalog.<>) 'human' THEN 'which is not a human principal'
                               WHEN h.status OPERATOR(pg_catalog.<>) 'active' THEN 'whose status is ' || h.status
                               ELSE 'who is not registered with can_break_glass' END),
                      HINT = 'Issue the agent''s token with on_behalf_of naming the registered clinician who answers for the override.';
        END IF;
        v_for := h.id;
    END IF;
    PERFORM agentauth._check_patient(v_patient);
    PERFORM agentauth._check_text(v_reason, 'reason', true, 4000);
    PERFORM agentauth._check_ttl(v_ttl, 'ttl', interval '24 hours', '24 hours');
    IF s.patients IS NOT NULL AND NOT (v_patient OPERATOR(pg_catalog.=) ANY (s.patients)) THEN
        PERFORM agentauth._raise_naming_patient('42501', 'the patient is outside this token''s patient list',
            pg_catalog.format('Patient "%s".', v_patient),
            'Breaking the glass opens consent, not the token''s patient list.');
    END IF;
    v_ends := v_start OPERATOR(pg_catalog.+) v_ttl;

    INSERT INTO agentauth.break_glass (principal, token, session_id, on_behalf_of,
                                       patient, reason, started_at, ends_at,
                                       on_behalf_of_principal)
    VALUES (s.principal, s.token, s.session_id,
            CASE WHEN s.kind OPERATOR(pg_catalog.=) 'agent' THEN s.on_behalf_of END,
            v_patient, v_reason, v_start, v_ends,
            v_for)
    RETURNING id INTO v_id;

    PERFORM agentauth._btg_audit('break_glass_start', v_patient, NULL, NULL,
        pg_catalog.jsonb_build_object('break_glass', v_id),
        pg_catalog.jsonb_build_object('break_glass', v_id, 'reason', v_reason,
                                      'ttl_seconds', pg_catalog.date_part('epoch', v_ttl)::pg_catalog.numeric,
                                      'ends_at', v_ends),
        'BTG');
    PERFORM agentauth._btg_changed(s.session_id);
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION agentauth.break_glass(text, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.break_glass(text, text, interval) TO PUBLIC;
-- the patient id as a value of a non-text patient column's type
CREATE FUNCTION agentauth.break_glass(patient anynonarray, reason text,
                                      ttl interval DEFAULT '60 minutes')
    RETURNS uuid LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT agentauth.break_glass(pg_catalog.format('%s', $1), $2, $3) $$;
REVOKE ALL ON FUNCTION agentauth.break_glass(anynonarray, text, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.break_glass(anynonarray, text, interval) TO PUBLIC;

------------------------------------------------------------------------
-- end_break_glass(id): by the principal who started it, or a privacy
-- officer.
------------------------------------------------------------------------
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks the caller's session and principal inside.
-- Who ended or reviewed an override: the login, and the role it had set
-- when that differs (1.1, found by review: a privacy officer who had SET
-- ROLE to a shared group role was recorded as the group).
CREATE FUNCTION agentauth._btg_actor(login oid, caller oid) RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.pg_get_userbyid(login) OPERATOR(pg_catalog.||)
           CASE WHEN caller OPERATOR(pg_catalog.=) login THEN ''
                ELSE ' (as ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_userbyid(caller) OPERATOR(pg_catalog.||) ')' END
$$;
REVOKE ALL ON FUNCTION agentauth._btg_actor(oid, oid) FROM PUBLIC;

CREATE FUNCTION agentauth.end_break_glass(id uuid) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id  uuid := $1;
    s     record;
    b     agentauth.break_glass;
    v_by  text;
BEGIN
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'break-the-glass id must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO s FROM agentauth._btg_session();
    SELECT * INTO b FROM agentauth.break_glass bg
     WHERE bg.id OPERATOR(pg_catalog.=) v_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'break-the-glass override % does not exist', v_id USING ERRCODE = '42704';
    END IF;
    IF s.principal IS DISTINCT FROM b.principal AND NOT agentauth._has_role('agentauth_privacy_officer') THEN
        RAISE EXCEPTION 'permission denied to end this break-the-glass override'
            USING ERRCODE = '42501',
                  HINT = 'Only the principal who started it, in a session, or a privacy officer may end an override.';
    END IF;
    IF b.ended_at IS NOT NULL THEN
        RAISE EXCEPTION 'break-the-glass override has already ended' USING ERRCODE = '55000';
    END IF;
    IF b.ends_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'break-the-glass override has already expired' USING ERRCODE = '55000';
    END IF;
    v_by := agentauth._btg_actor(s.login_role, s.caller_role);
    UPDATE agentauth.break_glass bg SET ended_at = pg_catalog.clock_timestamp(), ended_by = v_by
     WHERE bg.id OPERATOR(pg_catalog.=) v_id;
    PERFORM agentauth._btg_audit('break_glass_end', b.patient, NULL, NULL,
        pg_catalog.jsonb_build_object('break_glass', v_id),
        pg_catalog.jsonb_build_object('break_glass', v_id, 'principal', b.principal,
                                      'ended_by', v_by),
        'BTG');
    PERFORM agentauth._btg_changed(b.session_id);
END
$$;
REVOKE ALL ON FUNCTION agentauth.end_break_glass(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.end_break_glass(uuid) TO PUBLIC;

------------------------------------------------------------------------
-- review_break_glass(id, verdict, notes): a privacy officer's verdict on
-- an override that is over; never on one's own.
------------------------------------------------------------------------
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks the caller's session and principal inside.
CREATE FUNCTION agentauth.review_break_glass(id uuid, verdict text, notes text)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_id      uuid := $1;
    v_verdict text := $2;
    v_notes   text := $3;
    s         record;
    b         agentauth.break_glass;
    p         agentauth.principal;
    v_me      text;
    v_roles   oid[];
    v_names   text[];
    v_ids     uuid[];
BEGIN
    PERFORM agentauth._require_role('agentauth_privacy_officer');
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'break-the-glass id must not be null' USING ERRCODE = '22004';
    END IF;
    IF v_verdict IS NULL THEN
        RAISE EXCEPTION 'verdict must not be null' USING ERRCODE = '22004';
    END IF;
    IF v_verdict OPERATOR(pg_catalog.<>) ALL (ARRAY['justified', 'unjustified']) THEN
        RAISE EXCEPTION 'unknown verdict "%"', pg_catalog.left(v_verdict, 80)
            USING ERRCODE = '22023', HINT = 'The verdict is ''justified'' or ''unjustified''.';
    END IF;
    PERFORM agentauth._check_text(v_notes, 'notes', true, 4000);

    SELECT * INTO s FROM agentauth._btg_session();
    SELECT * INTO b FROM agentauth.break_glass bg
     WHERE bg.id OPERATOR(pg_catalog.=) v_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'break-the-glass override % does not exist', v_id USING ERRCODE = '42704';
    END IF;
    SELECT * INTO p FROM agentauth.principal pr WHERE pr.id OPERATOR(pg_catalog.=) b.principal;

    -- Nobody reviews their own: not from a login or role that is, or is a
    -- member of, the principal's role (superuser status aside), not in the
    -- principal's session, not as the person an agent acted for -- decided
    -- on principals (overrides from 1.1 on record it), and for older
    -- overrides on the name, case and surrounding blanks aside (1.1, found
    -- by review: 'Dr Jones ' reviewed her own).
    WITH RECURSIVE mine(r) AS (
        SELECT s.caller_role UNION SELECT s.login_role
        UNION SELECT am.roleid FROM pg_catalog.pg_auth_members am
                JOIN mine ON am.member OPERATOR(pg_catalog.=) mine.r)
    SELECT pg_catalog.array_agg(r) INTO v_roles FROM mine;
    SELECT pg_catalog.array_agg(pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(pr.name)))), pg_catalog.array_agg(pr.id)
      INTO v_names, v_ids FROM agentauth.principal pr
     WHERE pr.db_role OPERATOR(pg_catalog.=) ANY (v_roles)
        OR pr.id OPERATOR(pg_catalog.=) s.principal;
    IF p.db_role OPERATOR(pg_catalog.=) ANY (v_roles)
       OR s.principal OPERATOR(pg_catalog.=) b.principal
       OR b.on_behalf_of_principal OPERATOR(pg_catalog.=) ANY (v_ids)
       OR pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(b.on_behalf_of))) OPERATOR(pg_catalog.=) ANY (v_names) THEN
        RAISE EXCEPTION 'cannot review one''s own break-the-glass override'
            USING ERRCODE = '42501',
                  HINT = 'Another privacy officer must review it.';
    END IF;
    IF b.review_status OPERATOR(pg_catalog.<>) 'pending' THEN
        RAISE EXCEPTION 'break-the-glass override has already been reviewed'
            USING ERRCODE = '55000',
                  DETAIL = pg_catalog.format('%s found it %s.', b.reviewer, b.review_status);
    END IF;
    IF b.ended_at IS NULL AND b.ends_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp() THEN
        RAISE EXCEPTION 'break-the-glass override is still active'
            USING ERRCODE = '55000',
                  HINT = 'End it with agentauth.end_break_glass(), or review it once it has expired.';
    END IF;

    v_me := agentauth._btg_actor(s.login_role, s.caller_role);
    UPDATE agentauth.break_glass bg
       SET review_status = v_verdict, reviewer = v_me,
           reviewed_at = pg_catalog.clock_timestamp(), review_notes = v_notes
     WHERE bg.id OPERATOR(pg_catalog.=) v_id;
    PERFORM agentauth._btg_audit('break_glass_review', b.patient, NULL, NULL,
        pg_catalog.jsonb_build_object('break_glass', v_id),
        pg_catalog.jsonb_build_object('break_glass', v_id, 'principal', b.principal,
                                      'verdict', v_verdict, 'notes', v_notes,
                                      'reviewer', v_me),
        NULL);
END
$$;
REVOKE ALL ON FUNCTION agentauth.review_break_glass(uuid, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.review_break_glass(uuid, text, text) TO agentauth_privacy_officer;

------------------------------------------------------------------------
-- Views for auditors and privacy officers.
------------------------------------------------------------------------
-- _btg_accesses: how many accesses an override reached (the view's column).
-- SECURITY DEFINER: reads the log through _patient_log, whose helpers are private to the extension; the caller must hold agentauth_auditor (checked inside).
CREATE FUNCTION agentauth._btg_accesses(override uuid, patient text, since timestamptz)
    RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM agentauth._require_role('agentauth_auditor');
    RETURN (SELECT pg_catalog.count(*) FROM agentauth._patient_log(patient, since, 'infinity') a
             WHERE a.patient OPERATOR(pg_catalog.=) _btg_accesses.patient
               AND a.logged_at OPERATOR(pg_catalog.>=) since
               AND a.event OPERATOR(pg_catalog.=) 'access'
               AND a.authority OPERATOR(pg_catalog.->>) 'break_glass'
                   OPERATOR(pg_catalog.=) override::text);
END
$$;
REVOKE ALL ON FUNCTION agentauth._btg_accesses(uuid, text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth._btg_accesses(uuid, text, timestamptz) TO agentauth_auditor;

CREATE VIEW agentauth.break_glass_events AS
SELECT b.id, b.principal, b.on_behalf_of, b.patient, b.reason,
       b.started_at, b.ends_at, b.ended_at,
       agentauth._btg_accesses(b.id, b.patient, b.started_at) AS accesses,
       b.review_status, b.reviewer, b.reviewed_at,
       pr.name AS principal_name, pr.kind AS principal_kind, b.token,
       CASE WHEN b.ended_at IS NOT NULL THEN 'ended'
            WHEN b.ends_at <= pg_catalog.now() THEN 'expired'
            ELSE 'active' END AS state,
       b.ended_by, b.review_notes,
       b.started_at + pg_catalog.current_setting('agentauth.review_deadline')::interval AS review_due
  FROM agentauth.break_glass b
  JOIN agentauth.principal pr ON pr.id = b.principal;

CREATE VIEW agentauth.break_glass_overdue AS
SELECT e.*, pg_catalog.now() - e.review_due AS overdue_by
  FROM agentauth.break_glass_events e
 WHERE e.review_status = 'pending' AND e.review_due < pg_catalog.now();

REVOKE ALL ON agentauth.break_glass_events, agentauth.break_glass_overdue FROM PUBLIC;
GRANT SELECT ON agentauth.break_glass_events, agentauth.break_glass_overdue TO agentauth_auditor;

------------------------------------------------------------------------
-- approve_action(agent, tbl, patient, action, reason, valid_for, uses):
-- a clinician allows an agent's writes to a table under require_approval.
------------------------------------------------------------------------
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks the caller's session and principal inside.
CREATE FUNCTION agentauth.approve_action(agent uuid, tbl regclass, patient text,
                                         action text, reason text,
                                         valid_for interval DEFAULT '10 minutes',
                                         uses int DEFAULT 1)
    RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_agent   uuid := $1;
    v_tbl     regclass := $2;
    v_patient text := $3;
    v_action  text := $4;
    v_reason  text := $5;
    v_valid   interval := $6;
    v_uses    int := $7;
    s         record;
    me        record;
    a         record;
    v_label   text;
    v_rel     text;
    v_id      uuid;
    v_now     timestamptz;
    v_expires timestamptz;
    v_purposes text[];
    v_scopes  text[];
    v_missing text[];
BEGIN
    SELECT * INTO s FROM agentauth._btg_session();
    IF s.session_id IS NULL THEN
        RAISE EXCEPTION 'no agentauth session' USING ERRCODE = '42501',
            HINT = 'Call agentauth.begin_session() or agentauth.begin_human_session() first.';
    END IF;
    IF s.kind OPERATOR(pg_catalog.<>) 'human' THEN
        RAISE EXCEPTION 'only a clinician in a human session may approve agent actions'
            USING ERRCODE = '42501',
                  HINT = 'Call agentauth.begin_human_session() as a principal registered with can_approve.';
    END IF;
    SELECT pr.name, pr.status, pr.can_approve INTO me
      FROM agentauth.principal pr WHERE pr.id OPERATOR(pg_catalog.=) s.principal;
    IF NOT FOUND OR me.status OPERATOR(pg_catalog.<>) 'active'
       OR NOT me.can_approve OR NOT s.can_approve THEN
        RAISE EXCEPTION 'principal "%" may not approve agent actions', coalesce(me.name, s.principal::text)
            USING ERRCODE = '42501',
                  HINT = 'Only humans registered with can_approve may approve.';
    END IF;

    IF v_agent IS NULL THEN
        RAISE EXCEPTION 'agent must not be null' USING ERRCODE = '22004';
    END IF;
    SELECT pr.name, pr.kind, pr.status INTO a
      FROM agentauth.principal pr WHERE pr.id OPERATOR(pg_catalog.=) v_agent;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'agent % is not registered', v_agent USING ERRCODE = '42704';
    END IF;
    IF a.kind OPERATOR(pg_catalog.<>) 'agent' THEN
        RAISE EXCEPTION 'principal "%" is not an agent', a.name USING ERRCODE = '22023';
    END IF;
    IF a.status OPERATOR(pg_catalog.<>) 'active' THEN
        RAISE EXCEPTION 'agent "%" is not active', a.name USING ERRCODE = '55000',
            DETAIL = pg_catalog.format('Its status is %s.', a.status);
    END IF;

    IF v_tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    IF v_action IS NULL THEN
        RAISE EXCEPTION 'action must not be null' USING ERRCODE = '22004';
    END IF;
    IF v_action OPERATOR(pg_catalog.<>) ALL (ARRAY['insert', 'update', 'delete']) THEN
        RAISE EXCEPTION 'unknown action "%"', pg_catalog.left(v_action, 80)
            USING ERRCODE = '22023', HINT = 'The action is ''insert'', ''update'' or ''delete''.';
    END IF;
    SELECT l.label INTO v_label FROM pg_catalog.pg_seclabel l
     WHERE l.objoid OPERATOR(pg_catalog.=) v_tbl
       AND l.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
       AND l.objsubid OPERATOR(pg_catalog.=) 0
       AND l.provider OPERATOR(pg_catalog.=) 'agentauth';
    IF v_label IS NULL THEN
        RAISE EXCEPTION 'table % is not protected', v_tbl USING ERRCODE = '22023';
    END IF;
    IF NOT coalesce(v_action OPERATOR(pg_catalog.=) ANY (pg_catalog.string_to_array(
                pg_catalog.substring(v_label, 'approve=([a-z,]*)'), ',')), false) THEN
        RAISE EXCEPTION '% on table % does not require approval', v_action, v_tbl
            USING ERRCODE = '22023',
                  HINT = 'An administrator sets this with agentauth.require_approval().';
    END IF;
    -- An approval covers only what the approver may do: write scope (of
    -- this human session) for every class of the table, and the purposes the
    -- approver is registered for, one of which the agent's write must have.
    SELECT w.scopes INTO v_scopes FROM agentauth.whoami() w;
    SELECT pr.purposes INTO v_purposes FROM agentauth.principal pr
     WHERE pr.id OPERATOR(pg_catalog.=) s.principal;
    SELECT pg_catalog.array_agg(DISTINCT l.label ORDER BY l.label) INTO v_missing
      FROM pg_catalog.pg_seclabel l
     WHERE l.objoid OPERATOR(pg_catalog.=) v_tbl
       AND l.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
       AND l.objsubid OPERATOR(pg_catalog.>) 0
       AND l.provider OPERATOR(pg_catalog.=) 'agentauth'
       AND l.label OPERATOR(pg_catalog.<>) 'non_phi'
       AND NOT agentauth._scope_covered(l.label OPERATOR(pg_catalog.||) ':write', v_scopes);
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'principal "%" may not approve writes to table %', me.name, v_tbl
            USING ERRCODE = '42501',
                  DETAIL = pg_catalog.format('An approval covers only what the approver may write; this session has no write scope for %s.',
                                             pg_catalog.array_to_string(v_missing, ', ')),
                  HINT = 'A clinician whose registered scopes include writing these classes must approve.';
    END IF;
    PERFORM agentauth._check_patient(v_patient);
    PERFORM agentauth._check_text(v_reason, 'reason', true, 4000);
    PERFORM agentauth._check_ttl(v_valid, 'valid_for', interval '24 hours', '24 hours');
    IF v_uses IS NULL THEN
        RAISE EXCEPTION 'uses must not be null' USING ERRCODE = '22004';
    END IF;
    IF v_uses OPERATOR(pg_catalog.<) 1 OR v_uses OPERATOR(pg_catalog.>) 100 THEN
        RAISE EXCEPTION 'uses must be between 1 and 100' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('uses is %s.', v_uses);
    END IF;

    v_now := pg_catalog.clock_timestamp();
    v_expires := v_now OPERATOR(pg_catalog.+) v_valid;
    INSERT INTO agentauth.approval (agent, relation, patient, action, reason,
                                    approved_by, approved_at, expires_at, uses, uses_left,
                                    purposes)
    VALUES (v_agent, v_tbl, v_patient, v_action, v_reason, s.principal,
            v_now, v_expires, v_uses, v_uses, v_purposes)
    RETURNING id INTO v_id;

    -- as the log names it, whatever the caller's quote_all_identifiers (1.1)
    v_rel := agentauth._relation_name(v_tbl);
    PERFORM agentauth._btg_audit('approval_granted', v_patient, v_rel, v_action,
        pg_catalog.jsonb_build_object('approval', v_id),
        pg_catalog.jsonb_build_object('approval', v_id, 'agent', v_agent,
                                      'agent_name', a.name, 'reason', v_reason,
                                      'uses', v_uses, 'expires_at', v_expires,
                                      'purposes', v_purposes),
        NULL);
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION agentauth.approve_action(uuid, regclass, text, text, text, interval, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.approve_action(uuid, regclass, text, text, text, interval, int) TO PUBLIC;
-- the patient id as a value of a non-text patient column's type
CREATE FUNCTION agentauth.approve_action(agent uuid, tbl regclass, patient anynonarray,
                                         action text, reason text,
                                         valid_for interval DEFAULT '10 minutes',
                                         uses int DEFAULT 1)
    RETURNS uuid LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT agentauth.approve_action($1, $2, pg_catalog.format('%s', $3), $4, $5, $6, $7)
$$;
REVOKE ALL ON FUNCTION agentauth.approve_action(uuid, regclass, anynonarray, text, text, interval, int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.approve_action(uuid, regclass, anynonarray, text, text, interval, int) TO PUBLIC;

CREATE VIEW agentauth.approvals AS
SELECT ap.id, ap.agent, ag.name AS agent_name,
       ap.relation::regclass AS relation, ap.patient, ap.action, ap.reason,
       ap.approved_by, hu.name AS approved_by_name, ap.approved_at,
       ap.expires_at, ap.uses, ap.uses_left,
       CASE WHEN ap.uses_left = 0 THEN 'used'
            WHEN ap.expires_at <= pg_catalog.now() THEN 'expired'
            ELSE 'active' END AS state
  FROM agentauth.approval ap
  JOIN agentauth.principal ag ON ag.id = ap.agent
  JOIN agentauth.principal hu ON hu.id = ap.approved_by;
REVOKE ALL ON agentauth.approvals FROM PUBLIC;
GRANT SELECT ON agentauth.approvals TO agentauth_auditor;
