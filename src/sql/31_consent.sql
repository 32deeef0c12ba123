-- Consent (SPEC 7): provisions, withdrawal, defaults, and explain_access.

-- A provision written by any path (a superuser editing the table directly,
-- too) reaches every backend's cache: per row, naming its patient, so that
-- backends forget only that patient's consent; TRUNCATE forgets all.
CREATE FUNCTION agentauth._consent_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'aa_consent_trigger';
REVOKE ALL ON FUNCTION agentauth._consent_trigger() FROM PUBLIC;
CREATE TRIGGER consent_generation AFTER INSERT OR UPDATE OR DELETE
    ON agentauth.consent FOR EACH ROW
    EXECUTE FUNCTION agentauth._consent_trigger();
CREATE TRIGGER consent_truncate_generation AFTER TRUNCATE
    ON agentauth.consent FOR EACH STATEMENT
    EXECUTE FUNCTION agentauth._consent_trigger();
CREATE TRIGGER default_decision_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON agentauth.default_decision FOR EACH STATEMENT
    EXECUTE FUNCTION agentauth._generation_trigger();

-- No defaults are installed: with no matching provision and no default the
-- decision is deny (SPEC 7), so a fresh install permits nothing without a
-- patient's consent.  A site that adopts the HIPAA treatment default (a
-- provider may use PHI for treatment without an authorization) says so
-- with one audited call per purpose, e.g.
--   SELECT agentauth.set_default_decision('TREAT', '*', 'permit');
-- '*' never covers a sensitive class, and MLTRAINING can never have a
-- default.  Every row is the site's, and pg_dump carries them all
-- (pg_extension_config_dump in the schema fragment).

-- A patient id given by hand, or 22023 when no patient column of a
-- protected table could hold it as written ('010000148' where every
-- patient column is an integer): it would never match a row
-- (src/patient_id.c).
CREATE FUNCTION agentauth._patient_id(patient text) RETURNS text
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'aa_patient_id';
REVOKE ALL ON FUNCTION agentauth._patient_id(text) FROM PUBLIC;

-- An error whose detail names a patient, or whose statement holds a
-- patient's document: the detail goes to the client only, the statement
-- and context stay out of the server log (src/patient_id.c, redact.c).
CREATE FUNCTION agentauth._raise_naming_patient(sqlstate text, message text,
                                                detail text, hint text DEFAULT NULL)
    RETURNS void
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'aa_raise_naming_patient';
REVOKE ALL ON FUNCTION agentauth._raise_naming_patient(text, text, text, text) FROM PUBLIC;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.record_consent(
    patient       text,
    decision      text,
    purposes      text[]    DEFAULT NULL,
    data_classes  text[]    DEFAULT NULL,
    actions       text[]    DEFAULT '{read}',
    grantee_agent uuid      DEFAULT NULL,
    grantee_owner text      DEFAULT NULL,
    valid         tstzrange DEFAULT pg_catalog.tstzrange(pg_catalog.now(), NULL),
    source        text      DEFAULT NULL
) RETURNS uuid LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x   text;
    id  uuid;
BEGIN
    PERFORM agentauth._require_role('agentauth_consent_manager');
    IF patient IS NULL THEN
        RAISE EXCEPTION 'patient must not be null' USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.btrim(patient) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'patient must not be empty' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.length(patient) OPERATOR(pg_catalog.>) 200 THEN
        RAISE EXCEPTION 'patient is too long' USING ERRCODE = '22001';
    END IF;
    PERFORM agentauth._patient_id(patient);
    IF decision IS NULL THEN
        RAISE EXCEPTION 'decision must not be null' USING ERRCODE = '22004';
    END IF;
    IF decision OPERATOR(pg_catalog.<>) ALL (ARRAY['permit', 'deny']) THEN
        RAISE EXCEPTION 'unknown decision "%"', decision USING ERRCODE = '22023',
            HINT = 'A decision is permit or deny.';
    END IF;
    IF purposes IS NOT NULL THEN
        IF pg_catalog.cardinality(purposes) OPERATOR(pg_catalog.=) 0 THEN
            RAISE EXCEPTION 'purposes must not be empty' USING ERRCODE = '22023',
                HINT = 'Pass NULL for any purpose.';
        END IF;
        IF pg_catalog.cardinality(purposes) OPERATOR(pg_catalog.>) 1000 THEN
            RAISE EXCEPTION 'too many purposes' USING ERRCODE = '22023';
        END IF;
        FOREACH x IN ARRAY purposes LOOP
            IF x IS NULL OR NOT EXISTS (SELECT FROM agentauth.purpose p WHERE p.code OPERATOR(pg_catalog.=) x) THEN
                RAISE EXCEPTION 'unknown purpose "%"', x USING ERRCODE = '22023',
                    HINT = 'The purposes are the rows of agentauth.purpose.';
            END IF;
        END LOOP;
    END IF;
    IF data_classes IS NOT NULL THEN
        IF pg_catalog.cardinality(data_classes) OPERATOR(pg_catalog.=) 0 THEN
            RAISE EXCEPTION 'data_classes must not be empty' USING ERRCODE = '22023',
                HINT = 'Pass NULL for any class.';
        END IF;
        IF pg_catalog.cardinality(data_classes) OPERATOR(pg_catalog.>) 1000 THEN
            RAISE EXCEPTION 'too many data classes' USING ERRCODE = '22023';
        END IF;
        FOREACH x IN ARRAY data_classes LOOP
            IF x IS NULL OR NOT EXISTS (SELECT FROM agentauth.data_class d WHERE d.name OPERATOR(pg_catalog.=) x) THEN
                RAISE EXCEPTION 'unknown data class "%"', x USING ERRCODE = '22023',
                    HINT = 'The classes are the rows of agentauth.data_class.';
            END IF;
        END LOOP;
    END IF;
    IF actions IS NULL OR pg_catalog.cardinality(actions) OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'actions must not be null or empty' USING ERRCODE = '22023',
            HINT = 'Actions are read, write, insert, update and delete.';
    END IF;
    FOREACH x IN ARRAY actions LOOP
        IF x IS NULL OR x OPERATOR(pg_catalog.<>) ALL (ARRAY['read', 'write', 'insert', 'update', 'delete']) THEN
            RAISE EXCEPTION 'unknown action "%"', x USING ERRCODE = '22023',
                HINT = 'Actions are read, write, insert, update and delete.';
        END IF;
    END LOOP;
    IF grantee_agent IS NOT NULL AND NOT EXISTS
        (SELECT FROM agentauth.principal p WHERE p.id OPERATOR(pg_catalog.=) grantee_agent
            AND p.kind OPERATOR(pg_catalog.=) 'agent') THEN
        RAISE EXCEPTION 'grantee_agent is not a registered agent' USING ERRCODE = '22023';
    END IF;
    IF grantee_owner IS NOT NULL AND (pg_catalog.btrim(grantee_owner) OPERATOR(pg_catalog.=) ''
        OR pg_catalog.length(grantee_owner) OPERATOR(pg_catalog.>) 4000) THEN
        RAISE EXCEPTION 'grantee_owner must not be empty or longer than 4000 characters' USING ERRCODE = '22023';
    END IF;
    IF valid IS NULL THEN
        RAISE EXCEPTION 'valid must not be null' USING ERRCODE = '22004',
            HINT = 'Pass tstzrange(now(), NULL) for "from now on".';
    END IF;
    IF pg_catalog.isempty(valid) THEN
        RAISE EXCEPTION 'valid must not be an empty range' USING ERRCODE = '22023';
    END IF;
    IF source IS NOT NULL AND pg_catalog.length(source) OPERATOR(pg_catalog.>) 4000 THEN
        RAISE EXCEPTION 'source is too long' USING ERRCODE = '22001';
    END IF;

    INSERT INTO agentauth.consent (patient, decision, purposes, data_classes, actions,
                                   grantee_agent, grantee_owner, valid, source, recorded_by)
    VALUES (patient, decision, purposes, data_classes, actions,
            grantee_agent, grantee_owner, valid, source, session_user)
    RETURNING consent.id INTO id;

    PERFORM agentauth._audit('consent_recorded',
        pg_catalog.jsonb_build_object('consent', id, 'decision', decision,
            'purposes', purposes, 'data_classes', data_classes, 'actions', actions,
            'grantee_agent', grantee_agent, 'grantee_owner', grantee_owner,
            'valid', agentauth._detail_text(valid), 'source', source),
        NULL, NULL, patient, NULL);
    RETURN id;
END
$$;
REVOKE ALL ON FUNCTION agentauth.record_consent(text, text, text[], text[], text[], uuid, text, tstzrange, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.record_consent(text, text, text[], text[], text[], uuid, text, tstzrange, text) TO agentauth_consent_manager;

-- The patient id of a non-text patient column (integer, bigint, uuid ...)
-- as a value of its type: the same call with the id as the type prints it.
CREATE FUNCTION agentauth.record_consent(
    patient       anynonarray,
    decision      text,
    purposes      text[]    DEFAULT NULL,
    data_classes  text[]    DEFAULT NULL,
    actions       text[]    DEFAULT '{read}',
    grantee_agent uuid      DEFAULT NULL,
    grantee_owner text      DEFAULT NULL,
    valid         tstzrange DEFAULT pg_catalog.tstzrange(pg_catalog.now(), NULL),
    source        text      DEFAULT NULL
) RETURNS uuid LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT agentauth.record_consent(pg_catalog.format('%s', $1), $2, $3, $4, $5,
                                    $6, $7, $8, $9)
$$;
REVOKE ALL ON FUNCTION agentauth.record_consent(anynonarray, text, text[], text[], text[], uuid, text, tstzrange, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.record_consent(anynonarray, text, text[], text[], text[], uuid, text, tstzrange, text) TO agentauth_consent_manager;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.withdraw_consent(consent uuid, reason text)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c record;
BEGIN
    PERFORM agentauth._require_role('agentauth_consent_manager');
    IF consent IS NULL THEN
        RAISE EXCEPTION 'consent must not be null' USING ERRCODE = '22004';
    END IF;
    IF reason IS NULL OR pg_catalog.btrim(reason) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a reason is required to withdraw consent' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.length(reason) OPERATOR(pg_catalog.>) 4000 THEN
        RAISE EXCEPTION 'reason is too long' USING ERRCODE = '22001';
    END IF;
    SELECT * INTO c FROM agentauth.consent k WHERE k.id OPERATOR(pg_catalog.=) consent FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consent does not exist' USING ERRCODE = '22023';
    END IF;
    IF c.withdrawn_at IS NOT NULL THEN
        RAISE EXCEPTION 'consent is already withdrawn' USING ERRCODE = '55000';
    END IF;
    UPDATE agentauth.consent k
       SET withdrawn_at = pg_catalog.now(), withdrawn_by = session_user, withdraw_reason = reason
     WHERE k.id OPERATOR(pg_catalog.=) consent;
    PERFORM agentauth._audit('consent_withdrawn',
        pg_catalog.jsonb_build_object('consent', consent, 'reason', reason),
        NULL, NULL, c.patient, NULL);
END
$$;
REVOKE ALL ON FUNCTION agentauth.withdraw_consent(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.withdraw_consent(uuid, text) TO agentauth_consent_manager;

-- decision 'none' removes the default row (then step 5: deny).
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.set_default_decision(purpose text, data_class text, decision text)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old text;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF purpose IS NULL OR data_class IS NULL OR decision IS NULL THEN
        RAISE EXCEPTION 'purpose, data_class and decision must not be null' USING ERRCODE = '22004';
    END IF;
    IF NOT EXISTS (SELECT FROM agentauth.purpose p WHERE p.code OPERATOR(pg_catalog.=) purpose) THEN
        RAISE EXCEPTION 'unknown purpose "%"', purpose USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT FROM agentauth.purpose p WHERE p.code OPERATOR(pg_catalog.=) purpose AND p.reserved) THEN
        RAISE EXCEPTION 'purpose % is reserved and takes no default', purpose USING ERRCODE = '22023';
    END IF;
    IF data_class OPERATOR(pg_catalog.<>) '*' AND NOT EXISTS
        (SELECT FROM agentauth.data_class d WHERE d.name OPERATOR(pg_catalog.=) data_class) THEN
        RAISE EXCEPTION 'unknown data class "%"', data_class USING ERRCODE = '22023';
    END IF;
    IF decision OPERATOR(pg_catalog.<>) ALL (ARRAY['permit', 'deny', 'none']) THEN
        RAISE EXCEPTION 'unknown decision "%"', decision USING ERRCODE = '22023',
            HINT = 'A default is permit, deny, or none (no default).';
    END IF;
    IF purpose OPERATOR(pg_catalog.=) 'MLTRAINING' AND decision OPERATOR(pg_catalog.=) 'permit' THEN
        RAISE EXCEPTION 'model training is never covered by a default' USING ERRCODE = '42501',
            HINT = 'Use for model training needs each patient''s consent.';
    END IF;
    SELECT d.decision INTO old FROM agentauth.default_decision d
     WHERE d.purpose OPERATOR(pg_catalog.=) set_default_decision.purpose
       AND d.data_class OPERATOR(pg_catalog.=) set_default_decision.data_class;
    IF decision OPERATOR(pg_catalog.=) 'none' THEN
        DELETE FROM agentauth.default_decision d
         WHERE d.purpose OPERATOR(pg_catalog.=) set_default_decision.purpose
           AND d.data_class OPERATOR(pg_catalog.=) set_default_decision.data_class;
    ELSE
        INSERT INTO agentauth.default_decision AS d (purpose, data_class, decision, changed_by)
        VALUES (purpose, data_class, decision, session_user)
        ON CONFLICT ON CONSTRAINT default_decision_pkey DO UPDATE
           SET decision = excluded.decision, changed_at = pg_catalog.now(),
               changed_by = excluded.changed_by;
    END IF;
    PERFORM agentauth._audit('default_changed',
        pg_catalog.jsonb_build_object('purpose', purpose, 'data_class', data_class,
                                      'old', old, 'new', decision),
        NULL, NULL, NULL, NULL);
END
$$;
REVOKE ALL ON FUNCTION agentauth.set_default_decision(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.set_default_decision(text, text, text) TO agentauth_admin;

-- Every provision, withdrawn ones too, with who and when.
CREATE VIEW agentauth.consents AS
SELECT c.id, c.patient, c.decision, c.purposes, c.data_classes, c.actions,
       c.grantee_agent, p.name AS grantee_agent_name, c.grantee_owner,
       c.valid, c.source, c.recorded_at, c.recorded_by,
       c.withdrawn_at, c.withdrawn_by, c.withdraw_reason,
       CASE WHEN c.withdrawn_at IS NOT NULL THEN 'withdrawn'
            WHEN pg_catalog.upper(c.valid) OPERATOR(pg_catalog.<=) pg_catalog.now() THEN 'expired'
            WHEN pg_catalog.lower(c.valid) OPERATOR(pg_catalog.>) pg_catalog.now() THEN 'pending'
            ELSE 'active' END AS status
  FROM agentauth.consent c
  LEFT JOIN agentauth.principal p ON p.id OPERATOR(pg_catalog.=) c.grantee_agent;
REVOKE ALL ON agentauth.consents FROM PUBLIC;
GRANT SELECT ON agentauth.consents TO agentauth_consent_manager, agentauth_auditor;

CREATE VIEW agentauth.default_decisions AS
SELECT d.purpose, d.data_class, d.decision, d.changed_at, d.changed_by
  FROM agentauth.default_decision d;
GRANT SELECT ON agentauth.default_decisions TO PUBLIC;

-- The decision for the current session, and why (SPEC 6.7).
CREATE FUNCTION agentauth.explain_access(patient text, data_class text,
                                         action text DEFAULT 'read',
                                         OUT decision text, OUT reason text,
                                         OUT authority jsonb)
    RETURNS record LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'aa_explain_access';
GRANT EXECUTE ON FUNCTION agentauth.explain_access(text, text, text) TO PUBLIC;
CREATE FUNCTION agentauth.explain_access(patient anynonarray, data_class text,
                                         action text DEFAULT 'read',
                                         OUT decision text, OUT reason text,
                                         OUT authority jsonb)
    RETURNS record LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM agentauth.explain_access(pg_catalog.format('%s', $1), $2, $3)
$$;
GRANT EXECUTE ON FUNCTION agentauth.explain_access(anynonarray, text, text) TO PUBLIC;

-- (1.1) A FHIR deny cut around its exceptions lists "every purpose (or
-- data class) but the exceptions'", and a deny of restricted data every
-- sensitive class: the consents whose lists are so made, and which, so
-- that a purpose or class added later is added to them (_consent_extend)
-- -- an opt-out goes on denying it.
-- known_*: the purposes (not reserved) and classes there were when the
-- deny was cut, and those added since: only a purpose or class outside
-- them is new (a restore loads the site's purposes and classes after the
-- consents, and must not add to a deny what it deliberately left out).
-- dims: 'purposes', 'classes' (every one but ...), 'sensitive' (every
-- sensitive class: a deny of restricted data).
-- The purposes given and every purpose below them (agentauth.purpose.parent),
-- reserved ones left out, sorted.  A cycle a site made ends the walk.
CREATE FUNCTION agentauth._purpose_subtree(codes text[]) RETURNS text[]
    LANGUAGE sql STABLE
    AS $$
WITH RECURSIVE t(code) AS (
    SELECT pg_catalog.unnest(codes)
    UNION
    SELECT p.code FROM agentauth.purpose p JOIN t ON p.parent OPERATOR(pg_catalog.=) t.code
     WHERE NOT p.reserved)
SELECT pg_catalog.array_agg(t.code ORDER BY t.code) FROM t
$$;
REVOKE ALL ON FUNCTION agentauth._purpose_subtree(text[]) FROM PUBLIC;

CREATE TABLE agentauth.consent_open (
    consent         uuid PRIMARY KEY REFERENCES agentauth.consent (id) ON DELETE CASCADE,
    -- subtree (1.1): a FHIR deny whose purposes grow with a purpose added
    -- below one of them (agentauth.purpose.parent)
    dims            text[] NOT NULL CHECK (dims <@ '{purposes,classes,sensitive,subtree}' AND dims <> '{}'),
    known_purposes  text[] NOT NULL,
    known_classes   text[] NOT NULL,
    known_sensitive text[] NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('agentauth.consent_open', '');

-- SECURITY DEFINER: writes the extension's private table; callable by agentauth_consent_manager only (import_fhir_consent runs as it), and for a deny only: a list that grows must never widen a permit.
CREATE FUNCTION agentauth._consent_open_note(consent uuid, dims text[]) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM agentauth._require_role('agentauth_consent_manager');
    IF dims IS NULL OR dims OPERATOR(pg_catalog.=) '{}' THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT FROM agentauth.consent c
                    WHERE c.id OPERATOR(pg_catalog.=) consent AND c.decision OPERATOR(pg_catalog.=) 'deny') THEN
        RAISE EXCEPTION 'only a deny provision has a list that grows' USING ERRCODE = '22023';
    END IF;
    -- (the import holds agentauth.purpose and data_class: these are the
    -- lists its cut was made from)
    INSERT INTO agentauth.consent_open (consent, dims, known_purposes, known_classes, known_sensitive)
    VALUES (consent, dims,
            ARRAY(SELECT p.code FROM agentauth.purpose p WHERE NOT p.reserved ORDER BY p.code),
            ARRAY(SELECT d.name FROM agentauth.data_class d ORDER BY d.name),
            ARRAY(SELECT d.name FROM agentauth.data_class d WHERE d.sensitive ORDER BY d.name));
END
$$;
REVOKE ALL ON FUNCTION agentauth._consent_open_note(uuid, text[]) FROM PUBLIC;

-- SECURITY DEFINER: locks the extension's purposes and data classes for the import's transaction; callable by agentauth_consent_manager only.
-- An import cuts denies along the purposes and classes there are: none is
-- added meanwhile (an insert waits for the import, and its trigger then
-- sees the import's denies; one added while an import ran would be
-- missing from its denies).
CREATE FUNCTION agentauth._fhir_vocabulary_lock() RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    PERFORM agentauth._require_role('agentauth_consent_manager');
    -- (the lock comes after a REPEATABLE READ transaction's snapshot,
    -- which could miss a purpose committed before it)
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'FHIR Consents are imported only at READ COMMITTED' USING ERRCODE = '0A000',
            DETAIL = 'The import cuts denies along the purposes and data classes there are; it must see them as they are.';
    END IF;
    LOCK TABLE agentauth.purpose, agentauth.data_class IN SHARE MODE;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_vocabulary_lock() FROM PUBLIC;

-- SECURITY DEFINER: writes the extension's consent provisions and audits the change; a trigger function (PostgreSQL calls it only as a trigger of agentauth.purpose and agentauth.data_class).
CREATE FUNCTION agentauth._consent_extend() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c      record;
    v_dims text[];
    v_dim  text;
    v_code text;
    v_above text[];
    v_below text[];
    v_moved boolean := false;
BEGIN
    -- (at REPEATABLE READ the denies an import committed meanwhile would
    -- not be seen)
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'purposes and data classes are added only at READ COMMITTED' USING ERRCODE = '0A000',
            DETAIL = 'Each is added to the FHIR denies that cover every one but their exceptions''; all of them must be seen.';
    END IF;
    IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'purpose' THEN
        -- (1.1) placed in the hierarchy: added with a parent, or its
        -- parent or code changed, or made an ordinary purpose from a
        -- reserved one (not its display)
        IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
            v_moved := NEW.parent IS NOT NULL;
        ELSE
            v_moved := NEW.parent IS NOT NULL AND (NEW.parent IS DISTINCT FROM OLD.parent
                                                   OR NEW.code OPERATOR(pg_catalog.<>) OLD.code
                                                   OR (OLD.reserved AND NOT NEW.reserved));
        END IF;
    END IF;
    IF v_moved THEN
        -- the purposes above it; a purpose is never below itself
        v_above := ARRAY(WITH RECURSIVE a(code) AS (
                             SELECT NEW.parent
                             UNION
                             SELECT p.parent FROM agentauth.purpose p JOIN a ON p.code OPERATOR(pg_catalog.=) a.code
                              WHERE p.parent IS NOT NULL)
                         SELECT a.code FROM a);
        IF NEW.code OPERATOR(pg_catalog.=) ANY (v_above) THEN
            RAISE EXCEPTION 'purpose "%" cannot be below itself', NEW.code USING ERRCODE = '22023',
                DETAIL = pg_catalog.format('Its parent %s is below it.', NEW.parent);
        END IF;
        -- A FHIR deny of a purpose denies those below it, and those added
        -- later: one added below a purpose the deny covers (or moved
        -- there) joins, with those below itself, every part the deny was
        -- cut into -- also below a purpose an exception named, which
        -- covers that purpose alone
        IF NOT NEW.reserved THEN
            v_below := agentauth._purpose_subtree(ARRAY[NEW.code]);
            FOR c IN UPDATE agentauth.consent x
                        SET purposes = ARRAY(SELECT DISTINCT y FROM pg_catalog.unnest(x.purposes
                                             OPERATOR(pg_catalog.||) v_below) y ORDER BY y)
                       FROM agentauth.consent_open o
                      WHERE o.consent OPERATOR(pg_catalog.=) x.id AND 'subtree' OPERATOR(pg_catalog.=) ANY (o.dims)
                        AND x.decision OPERATOR(pg_catalog.=) 'deny' AND x.withdrawn_at IS NULL
                        AND NOT x.purposes OPERATOR(pg_catalog.@>) v_below
                        AND EXISTS (SELECT FROM agentauth.consent g
                                      JOIN agentauth.consent_open go ON go.consent OPERATOR(pg_catalog.=) g.id
                                     WHERE 'subtree' OPERATOR(pg_catalog.=) ANY (go.dims)
                                       AND g.decision OPERATOR(pg_catalog.=) 'deny' AND g.withdrawn_at IS NULL
                                       AND g.patient OPERATOR(pg_catalog.=) x.patient
                                       AND g.source IS NOT DISTINCT FROM x.source
                                       AND g.purposes OPERATOR(pg_catalog.&&) v_above)
                     RETURNING x.id, x.patient LOOP
                PERFORM agentauth._audit('consent_extended',
                    pg_catalog.jsonb_build_object('consent', c.id, 'purpose', NEW.code, 'below', NEW.parent),
                    patient => c.patient);
            END LOOP;
        END IF;
    END IF;
    -- a purpose or class is new to a deny when it is outside what the deny
    -- knows: added, renamed, a reserved purpose made an ordinary one, a
    -- class made sensitive (for a deny of every sensitive class)
    IF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'purpose' THEN
        IF NEW.reserved THEN
            RETURN NULL;        -- entered only through break_glass
        END IF;
        v_dims := ARRAY['purposes'];
        v_code := NEW.code;
    ELSE
        v_dims := CASE WHEN NEW.sensitive THEN ARRAY['classes', 'sensitive'] ELSE ARRAY['classes'] END;
        v_code := NEW.name;
    END IF;
    FOREACH v_dim IN ARRAY v_dims LOOP
        FOR c IN UPDATE agentauth.consent x
                    SET purposes = CASE WHEN v_dim OPERATOR(pg_catalog.=) 'purposes'
                                        THEN x.purposes OPERATOR(pg_catalog.||) v_code ELSE x.purposes END,
                        data_classes = CASE WHEN v_dim OPERATOR(pg_catalog.<>) 'purposes'
                                            THEN x.data_classes OPERATOR(pg_catalog.||) v_code ELSE x.data_classes END
                   FROM agentauth.consent_open o
                  WHERE o.consent OPERATOR(pg_catalog.=) x.id AND v_dim OPERATOR(pg_catalog.=) ANY (o.dims)
                    AND x.decision OPERATOR(pg_catalog.=) 'deny' AND x.withdrawn_at IS NULL
                    AND NOT v_code OPERATOR(pg_catalog.=) ANY (CASE v_dim WHEN 'purposes' THEN o.known_purposes
                                                                WHEN 'classes' THEN o.known_classes
                                                                ELSE o.known_sensitive END)
                    AND NOT v_code OPERATOR(pg_catalog.=) ANY (CASE WHEN v_dim OPERATOR(pg_catalog.=) 'purposes'
                                                                THEN x.purposes ELSE x.data_classes END)
                 RETURNING x.id, x.patient LOOP
            PERFORM agentauth._audit('consent_extended',
                pg_catalog.jsonb_build_object('consent', c.id,
                    CASE WHEN v_dim OPERATOR(pg_catalog.=) 'purposes' THEN 'purpose' ELSE 'data_class' END, v_code),
                patient => c.patient);
        END LOOP;
        -- every deny that grows so knows it now
        UPDATE agentauth.consent_open o
           SET known_purposes = CASE WHEN v_dim OPERATOR(pg_catalog.=) 'purposes'
                                     THEN o.known_purposes OPERATOR(pg_catalog.||) v_code ELSE o.known_purposes END,
               known_classes = CASE WHEN v_dim OPERATOR(pg_catalog.=) 'classes'
                                    THEN o.known_classes OPERATOR(pg_catalog.||) v_code ELSE o.known_classes END,
               known_sensitive = CASE WHEN v_dim OPERATOR(pg_catalog.=) 'sensitive'
                                      THEN o.known_sensitive OPERATOR(pg_catalog.||) v_code ELSE o.known_sensitive END
         WHERE v_dim OPERATOR(pg_catalog.=) ANY (o.dims)
           AND NOT v_code OPERATOR(pg_catalog.=) ANY (CASE v_dim WHEN 'purposes' THEN o.known_purposes
                                                       WHEN 'classes' THEN o.known_classes
                                                       ELSE o.known_sensitive END);
    END LOOP;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agentauth._consent_extend() FROM PUBLIC;
CREATE TRIGGER consent_extend AFTER INSERT OR UPDATE ON agentauth.purpose
    FOR EACH ROW EXECUTE FUNCTION agentauth._consent_extend();
CREATE TRIGGER consent_extend AFTER INSERT OR UPDATE ON agentauth.data_class
    FOR EACH ROW EXECUTE FUNCTION agentauth._consent_extend();
