-- Real-time monitoring (SPEC 15): alert rules, the alerts raised, and the
-- private function through which the audit writer raises them.
--
-- The rules are evaluated by the audit writer (src/monitor.c) over the
-- records it commits, in sliding windows kept in its memory: nothing is
-- added to the path of the statement that produced the records.  The writer
-- reloads the rules when the statement trigger below tells it (through a
-- counter in shared memory) that they changed.

-- The audit events a rule may count: SPEC 10's list.
CREATE FUNCTION agentauth._audit_events() RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY['access', 'denied', 'privileged_access', 'unregistered_access',
                 'session_begin', 'session_end', 'session_denied',
                 'token_issued', 'token_revoked', 'principal_registered',
                 'principal_status', 'table_protected', 'table_unprotected',
                 'consent_recorded', 'consent_withdrawn', 'default_changed',
                 'break_glass_start', 'break_glass_end', 'break_glass_review',
                 'approval_granted', 'audit_purged',
                 -- (1.1, found by review: the README listed them as rule
                 -- events; 'alert' itself is left out, a rule on it would
                 -- feed on its own alerts)
                 'alert_rule_changed', 'consent_extended',
                 'audit_feed_registered', 'audit_feed_dropped']::text[]
$$;
-- (harmless and needed by the check trigger, which runs as the editing role)

-- Alert rules.  A DBA edits this table directly, as a member of
-- agentauth_admin; the trigger below checks every row with clear errors
-- (the CHECK constraints are a backstop) and audits every change.
CREATE TABLE agentauth.alert_rule (
    id        serial PRIMARY KEY,
    event     text NOT NULL,
    threshold int NOT NULL CHECK (threshold > 0 AND threshold <= 10000),
    per       interval NOT NULL CHECK (per > '0'::interval AND per <= '31 days'::interval),
    action    text NOT NULL DEFAULT 'notify' CHECK (action IN ('notify', 'suspend')),
    enabled   boolean NOT NULL DEFAULT true,
    -- (1.1) false: a statement is one event, however many records
    -- (patients) it wrote; true: every record is one
    per_patient boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE agentauth.alert_rule IS
    'threshold statements with records of event (records, with per_patient) within per, for one principal (or one role when the record has none, and always one role for session_denied), raise an alert: notify, or suspend the principal';

-- The seeded rules (SPEC 15), before the triggers: installing is not a
-- change to audit.  They are not dumped: CREATE EXTENSION creates them
-- again on restore (a change to them is not kept by pg_dump).
INSERT INTO agentauth.alert_rule (id, event, threshold, per, action) VALUES
    (1, 'denied', 20, '1 minute', 'notify'),
    (2, 'session_denied', 5, '1 minute', 'notify');
SELECT pg_catalog.setval('agentauth.alert_rule_id_seq', 100, false);
SELECT pg_catalog.pg_extension_config_dump('agentauth.alert_rule', 'WHERE id > 2');
SELECT pg_catalog.pg_extension_config_dump('agentauth.alert_rule_id_seq', '');

CREATE FUNCTION agentauth._alert_rule_check() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.event IS NULL THEN
        RAISE EXCEPTION 'alert rule event must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT NEW.event OPERATOR(pg_catalog.=) ANY (agentauth._audit_events()) THEN
        RAISE EXCEPTION 'unknown audit event "%" in alert rule', NEW.event USING ERRCODE = '22023',
            HINT = pg_catalog.format('The events are %s.',
                                     pg_catalog.array_to_string(agentauth._audit_events(), ', '));
    END IF;
    IF NEW.threshold IS NULL THEN
        RAISE EXCEPTION 'alert rule threshold must not be null' USING ERRCODE = '22004';
    END IF;
    IF NEW.threshold OPERATOR(pg_catalog.<=) 0 THEN
        RAISE EXCEPTION 'alert rule threshold must be positive' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The threshold given is %s.', NEW.threshold),
            HINT = 'The threshold is how many statements (records, with per_patient) within the window raise the alert.';
    END IF;
    IF NEW.threshold OPERATOR(pg_catalog.>) 10000 THEN
        RAISE EXCEPTION 'alert rule threshold is too large' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The threshold given is %s; the limit is 10000.', NEW.threshold);
    END IF;
    IF NEW.per IS NULL THEN
        RAISE EXCEPTION 'alert rule window must not be null' USING ERRCODE = '22004';
    END IF;
    IF NEW.per OPERATOR(pg_catalog.<=) '0'::interval THEN
        RAISE EXCEPTION 'alert rule window must be positive' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The window given is %s.', NEW.per),
            HINT = 'The window (per) is a positive interval, e.g. ''1 minute''.';
    END IF;
    IF NEW.per OPERATOR(pg_catalog.>) '31 days'::interval THEN
        RAISE EXCEPTION 'alert rule window is too long' USING ERRCODE = '22023',
            DETAIL = pg_catalog.format('The window given is %s; the limit is 31 days.', NEW.per);
    END IF;
    IF NEW.action IS NULL THEN
        RAISE EXCEPTION 'alert rule action must not be null' USING ERRCODE = '22004';
    END IF;
    IF NEW.action NOT IN ('notify', 'suspend') THEN
        RAISE EXCEPTION 'unknown alert rule action "%"', NEW.action USING ERRCODE = '22023',
            HINT = 'The action is notify or suspend.';
    END IF;
    IF NEW.enabled IS NULL THEN
        RAISE EXCEPTION 'alert rule enabled must not be null' USING ERRCODE = '22004';
    END IF;
    IF NEW.per_patient IS NULL THEN
        RAISE EXCEPTION 'alert rule per_patient must not be null' USING ERRCODE = '22004';
    END IF;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION agentauth._alert_rule_check() FROM PUBLIC;

CREATE TRIGGER alert_rule_check BEFORE INSERT OR UPDATE ON agentauth.alert_rule
    FOR EACH ROW EXECUTE FUNCTION agentauth._alert_rule_check();

-- tell the audit writer the rules changed (now, and again at commit)
CREATE FUNCTION agentauth._alert_rules_changed() RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_alert_rules_changed';
REVOKE ALL ON FUNCTION agentauth._alert_rules_changed() FROM PUBLIC;

-- every change of a rule is audited (alert_rule_changed) and reaches the writer
-- SECURITY DEFINER: trigger of agentauth.alert_rule: audits the change and tells the writer.
CREATE FUNCTION agentauth._alert_rule_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET DateStyle = 'ISO, YMD' SET IntervalStyle = 'postgres' SET TimeZone = 'UTC'
AS $$
BEGIN
    PERFORM agentauth._audit('alert_rule_changed',
        pg_catalog.jsonb_build_object(
            'operation', pg_catalog.lower(TG_OP),
            'rule', CASE WHEN TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN OLD.id ELSE NEW.id END,
            'old', CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN pg_catalog.to_jsonb(OLD) END,
            'new', CASE WHEN TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN pg_catalog.to_jsonb(NEW) END));
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agentauth._alert_rule_audit() FROM PUBLIC;

-- SECURITY DEFINER: trigger of agentauth.alert_rule: audits the change and tells the writer.
CREATE FUNCTION agentauth._alert_rule_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' THEN
        PERFORM agentauth._audit('alert_rule_changed',
            pg_catalog.jsonb_build_object('operation', 'truncate'));
    END IF;
    PERFORM agentauth._alert_rules_changed();
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agentauth._alert_rule_changed() FROM PUBLIC;

CREATE TRIGGER alert_rule_audit AFTER INSERT OR UPDATE OR DELETE ON agentauth.alert_rule
    FOR EACH ROW EXECUTE FUNCTION agentauth._alert_rule_audit();
CREATE TRIGGER alert_rule_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON agentauth.alert_rule
    FOR EACH STATEMENT EXECUTE FUNCTION agentauth._alert_rule_changed();

GRANT SELECT, INSERT, UPDATE, DELETE ON agentauth.alert_rule TO agentauth_admin;
GRANT USAGE ON SEQUENCE agentauth.alert_rule_id_seq TO agentauth_admin;
GRANT SELECT ON agentauth.alert_rule TO agentauth_auditor, agentauth_privacy_officer;

-- Every alert raised.  Private: auditors read the view below; only the
-- audit writer inserts (through _raise_alert).
CREATE TABLE agentauth.alert_log (
    id             bigserial PRIMARY KEY,
    raised_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    rule           int,          -- NULL: an always-on alert
    event          text NOT NULL, -- the audit event, or inactive, audit_fail_closed, chain_verification_failed
    principal      uuid,
    principal_name text,
    role           text,
    count          bigint NOT NULL,
    per            interval,
    action         text NOT NULL CHECK (action IN ('notify', 'suspend')),
    action_taken   text NOT NULL,
    audit_seq      bigint,       -- the audit record that raised it
    detail         jsonb
);
CREATE INDEX alert_log_raised_at_idx ON agentauth.alert_log (raised_at);
SELECT pg_catalog.pg_extension_config_dump('agentauth.alert_log', '');
SELECT pg_catalog.pg_extension_config_dump('agentauth.alert_log_id_seq', '');

CREATE VIEW agentauth.alerts AS
SELECT a.id, a.raised_at, a.rule, a.event, a.principal, a.principal_name, a.role,
       a.count, a.per, a.action, a.action_taken, a.audit_seq, a.detail
  FROM agentauth.alert_log a;
GRANT SELECT ON agentauth.alerts TO agentauth_auditor, agentauth_privacy_officer, agentauth_admin;

-- Raise one alert: suspend (for action suspend), record it, audit it (for
-- suspend), and NOTIFY agentauth_alerts.  Called only by the audit writer
-- (a superuser connection): no grant.
--
-- For suspend, the principal is the given one or, without one, the
-- principal whose login role is role.  The suspension is exactly
-- set_principal_status(principal, 'suspended', reason).  If the principal's
-- row is locked by another transaction for longer than lock_timeout, the
-- function returns NULL without doing anything, so that the writer tries
-- again at its next round (for 10 s), unless last_attempt: then the alert is raised
-- saying the suspension failed.
--
-- The NOTIFY payload carries no patient and no free text: any role that
-- can connect may LISTEN.
CREATE FUNCTION agentauth._raise_alert(
    rule int, event text, principal uuid, role text, count bigint, per interval,
    action text, audit_seq bigint, detail jsonb, last_attempt boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '200ms'
AS $$
DECLARE
    p agentauth.principal;
    v_taken text := 'notified';
    v_id bigint;
    v_reason text;
    v_at timestamptz := pg_catalog.clock_timestamp();
BEGIN
    IF principal IS NOT NULL THEN
        SELECT * INTO p FROM agentauth.principal x WHERE x.id OPERATOR(pg_catalog.=) principal;
    ELSIF role IS NOT NULL THEN
        SELECT * INTO p FROM agentauth.principal x
         WHERE x.db_role OPERATOR(pg_catalog.=)
               (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) role);
    END IF;

    IF action OPERATOR(pg_catalog.=) 'suspend' THEN
        IF p.id IS NULL THEN
            v_taken := 'notified; not suspended: no registered principal';
        ELSIF p.status OPERATOR(pg_catalog.<>) 'active' THEN
            v_taken := 'notified; not suspended: principal is already ' OPERATOR(pg_catalog.||) p.status;
        ELSE
            v_reason := CASE
                WHEN rule IS NOT NULL AND COALESCE((SELECT r.per_patient FROM agentauth.alert_rule r
                                                     WHERE r.id OPERATOR(pg_catalog.=) rule), false)
                THEN pg_catalog.format(
                    'alert rule %s: %s %s records within %s', rule, count, event, per)
                WHEN rule IS NOT NULL THEN pg_catalog.format(
                    'alert rule %s: %s statements with %s records within %s', rule, count, event, per)
                WHEN event OPERATOR(pg_catalog.=) 'inactive' THEN pg_catalog.format(
                    'no session for more than %s (agentauth.inactive_after)', per)
                ELSE pg_catalog.format('alert: %s', event) END;
            BEGIN
                PERFORM agentauth.set_principal_status(p.id, 'suspended', v_reason);
                v_taken := 'notified; suspended';
            EXCEPTION
                WHEN lock_not_available THEN
                    IF NOT last_attempt THEN
                        RETURN NULL;
                    END IF;
                    v_taken := 'notified; suspension failed: ' OPERATOR(pg_catalog.||) SQLERRM;
                WHEN OTHERS THEN
                    v_taken := 'notified; suspension failed: ' OPERATOR(pg_catalog.||) SQLERRM;
            END;
        END IF;
    END IF;

    -- (1.1) past the highest id, not the sequence's next value: a restore
    -- writes alert_log's rows before it sets the sequence, and its own
    -- statements on protected tables raise alerts meanwhile; and
    -- pg_write_all_data may move the sequence to its end (found by
    -- review).  Only the audit writer inserts: no race.
    INSERT INTO agentauth.alert_log (id, raised_at, rule, event, principal, principal_name, role,
                                     count, per, action, action_taken, audit_seq, detail)
    VALUES (COALESCE((SELECT pg_catalog.max(a.id) FROM agentauth.alert_log a), 0) OPERATOR(pg_catalog.+) 1,
            v_at, rule, event, p.id, p.name, role, count, per, action, v_taken, audit_seq, detail)
    RETURNING id INTO v_id;

    IF action OPERATOR(pg_catalog.=) 'suspend' THEN
        PERFORM agentauth._audit('alert',
            pg_catalog.jsonb_build_object('alert', v_id, 'rule', rule, 'event', event,
                'role', role, 'count', count,
                'window', pg_catalog.date_part('epoch', per)::pg_catalog.numeric,
                'action', action, 'action_taken', v_taken, 'audit_seq', audit_seq),
            p.id);
    END IF;

    PERFORM pg_catalog.pg_notify('agentauth_alerts', pg_catalog.json_build_object(
        'alert', v_id,
        'raised_at', v_at,
        'rule', rule,
        'event', event,
        'principal', p.id,
        'principal_name', p.name,
        'role', role,
        'count', count,
        'window', pg_catalog.date_part('epoch', per)::pg_catalog.numeric,
        'action', action,
        'action_taken', v_taken,
        'audit_seq', audit_seq)::text);
    RETURN v_id;
END
$$;
REVOKE ALL ON FUNCTION agentauth._raise_alert(int, text, uuid, text, bigint, interval, text, bigint, jsonb, boolean) FROM PUBLIC;

-- A chain verification found a problem: the verifiers call this so that
-- the audit writer raises the always-on alert (it cannot be lost with the
-- verifying transaction).
CREATE FUNCTION agentauth._chain_failure(first_bad_seq bigint, problem text) RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_monitor_chain_failure_sql';
REVOKE ALL ON FUNCTION agentauth._chain_failure(bigint, text) FROM PUBLIC;

-- a writer that saw an earlier installation reloads the rules
SELECT agentauth._alert_rules_changed();
