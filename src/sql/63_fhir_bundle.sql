
-- Consents in bulk: a site's existing consents, loaded in one transaction.
--
-- The administrative records of a large transaction (one consent_recorded
-- per provision) no longer have to fit in the audit queue: past a quarter
-- of agentauth.audit_queue_size they are written into _audit_spill by the
-- transaction itself (committed with it, gone with its abort), and the
-- "agentauth audit spill" worker moves them into the queue after the
-- commit, a chunk at a time, and the writer deletes each row in the
-- transaction that stores its record: recorded when, and only when, the
-- transaction commits, exactly once (audit_spill.c).  Nobody reads or writes the table but the
-- extension's C code: no grant.
CREATE TABLE agentauth._audit_spill (
    txn   bigint NOT NULL,      -- the spilling transaction (FullTransactionId)
    ord   bigint NOT NULL,      -- its order within the backend
    entry bytea  NOT NULL       -- the queued record (record.c's queued form)
);
-- the mover reads the rows in this order, a chunk at a time: no sort of
-- the whole table per chunk
CREATE INDEX _audit_spill_order ON agentauth._audit_spill (txn, ord);
REVOKE ALL ON agentauth._audit_spill FROM PUBLIC;
-- Nobody writes it but the extension's C code, below the executor: for
-- every role, superuser included, INSERT, UPDATE, DELETE and TRUNCATE are
-- refused, as on the log (1.1: a superuser could insert a forged record
-- here, or delete a committed transaction's, and the writer chained what
-- it found)
CREATE TRIGGER audit_spill_append_only
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON agentauth._audit_spill
    FOR EACH STATEMENT EXECUTE FUNCTION agentauth._audit_log_guard();
ALTER TABLE agentauth._audit_spill ENABLE ALWAYS TRIGGER audit_spill_append_only;

-- Store the rules of one checked Consent (from _fhir_consent_rules): an
-- earlier import of the same Consent (same id, same patient) is replaced --
-- its provisions still in force are withdrawn, audited -- and each rule
-- and actor becomes one record_consent provision.  No exception block: a
-- bulk load stays at its transaction's top level, where its audit records
-- can be spilled as they come (bounded memory).
CREATE FUNCTION agentauth._fhir_consent_store(v_patient text, v_source text,
                                              v_rules agentauth._fhir_rule[], v_active boolean)
    RETURNS uuid[]
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    old   uuid;
    r     agentauth._fhir_rule;
    a     text;
    ids   uuid[] := '{}';
    id    uuid;
    valid tstzrange;
BEGIN
    IF v_source OPERATOR(pg_catalog.<>) 'Consent/(no id)' THEN
        FOREACH old IN ARRAY agentauth._fhir_consent_in_force(v_source, v_patient) LOOP
            PERFORM agentauth.withdraw_consent(old,
                CASE WHEN v_active THEN 'replaced by a new import of ' OPERATOR(pg_catalog.||) v_source
                     ELSE v_source OPERATOR(pg_catalog.||) ' is no longer active' END);
        END LOOP;
    END IF;
    FOREACH r IN ARRAY v_rules LOOP
        valid := agentauth._fhir_rule_range(r.valid);
        CONTINUE WHEN valid IS NULL;
        FOREACH a IN ARRAY COALESCE(r.actors, ARRAY[NULL::text]) LOOP
            id := agentauth.record_consent(
                patient => v_patient,
                decision => r.decision,
                purposes => r.purposes,
                data_classes => r.classes,
                actions => COALESCE(r.actions, ARRAY['read', 'insert', 'update', 'delete']),
                grantee_agent => CASE WHEN a OPERATOR(pg_catalog.~~) 'a:%'
                                      THEN pg_catalog.substr(a, 3)::uuid END,
                grantee_owner => CASE WHEN a OPERATOR(pg_catalog.~~) 'o:%'
                                      THEN pg_catalog.substr(a, 3) END,
                valid => valid,
                source => v_source OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) r.path);
            PERFORM agentauth._consent_open_note(id, r.open);
            ids := ids OPERATOR(pg_catalog.||) id;
        END LOOP;
    END LOOP;
    RETURN ids;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_consent_store(text, text, agentauth._fhir_rule[], boolean) FROM PUBLIC;

-- The rules of one Bundle entry's Consent, checked as record_consent will
-- check them, with every error's JSON path prefixed by the entry's.
CREATE FUNCTION agentauth._fhir_bundle_entry_rules(resource jsonb, prefix text,
    OUT patient text, OUT source text, OUT rules agentauth._fhir_rule[], OUT active boolean)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v   record;
    r   agentauth._fhir_rule;
    msg text;
    det text;
    hnt text;
    st  text;
BEGIN
    BEGIN
        v := agentauth._fhir_consent_rules(resource);
        PERFORM agentauth._patient_id(v.patient);
        FOREACH r IN ARRAY v.rules LOOP
            IF pg_catalog.isempty(r.valid) THEN
                PERFORM agentauth._fhir_fail(r.path OPERATOR(pg_catalog.||) '.period', 'the period is empty');
            END IF;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                hnt = PG_EXCEPTION_HINT, st = RETURNED_SQLSTATE;
        IF msg OPERATOR(pg_catalog.~) E' at \\$' THEN
            msg := pg_catalog.regexp_replace(msg, E' at \\$(\\S*)$', ' at ' OPERATOR(pg_catalog.||) prefix OPERATOR(pg_catalog.||) E'\\1');
        ELSE
            msg := 'cannot import FHIR Consent: ' OPERATOR(pg_catalog.||) msg
                   OPERATOR(pg_catalog.||) ' at ' OPERATOR(pg_catalog.||) prefix;
        END IF;
        PERFORM agentauth._raise_naming_patient(st, msg, NULLIF(det, ''), NULLIF(hnt, ''));
    END;
    patient := v.patient;
    source := v.source;
    rules := v.rules;
    active := v.active;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_bundle_entry_rules(jsonb, text) FROM PUBLIC;

-- import_fhir_consent_bundle(bundle): every Consent of a FHIR Bundle
-- (collection, batch, transaction or searchset), all or nothing, in entry
-- order; one row per Consent entry: its index, its source
-- ("Consent/<id>") and the provisions recorded.  An error names the entry
-- and the JSON path ($.entry[i].resource...).
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.import_fhir_consent_bundle(bundle jsonb)
    RETURNS TABLE (entry integer, source text, consents uuid[])
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v_type  text;
    e       jsonb;
    i       int := 0;
    res     jsonb;
    p       text;
    k       text;
    v       record;
    d       record;
    url     text;
    base    text := agentauth._fhir_site_base();
BEGIN
    PERFORM agentauth._require_role('agentauth_consent_manager');
    PERFORM agentauth._fhir_vocabulary_lock();
    IF bundle IS NULL THEN
        RAISE EXCEPTION 'bundle must not be null' USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.jsonb_typeof(bundle) OPERATOR(pg_catalog.<>) 'object' THEN
        PERFORM agentauth._fhir_fail('$', 'expected a JSON object');
    END IF;
    IF agentauth._fhir_string(bundle OPERATOR(pg_catalog.->) 'resourceType', '$.resourceType', true)
       OPERATOR(pg_catalog.<>) 'Bundle' THEN
        PERFORM agentauth._fhir_fail('$.resourceType', 'the resource is not a Bundle',
            'import_fhir_consent takes a single Consent.');
    END IF;
    -- the Bundle's own modifiers, as a Consent's are (1.1, found by review:
    -- only each entry's resource was looked at, and a Bundle, entry or
    -- request that said "only if ..." was imported as if it said nothing)
    IF bundle OPERATOR(pg_catalog.?) 'implicitRules' THEN
        PERFORM agentauth._fhir_fail('$.implicitRules', 'implicit rules modify the Bundle and are not understood');
    END IF;
    k := agentauth._fhir_modifier_at(bundle OPERATOR(pg_catalog.-) 'entry', '$');
    IF k IS NOT NULL THEN
        PERFORM agentauth._fhir_fail(k, 'a modifier extension is not understood');
    END IF;
    v_type := agentauth._fhir_string(bundle OPERATOR(pg_catalog.->) 'type', '$.type', true);
    IF v_type OPERATOR(pg_catalog.<>) ALL (ARRAY['collection', 'batch', 'transaction', 'searchset']) THEN
        PERFORM agentauth._fhir_fail('$.type', pg_catalog.format('a Bundle of type "%s" cannot be imported', v_type),
            'Send a collection, batch, transaction or searchset Bundle of Consents.');
    END IF;
    -- one page of several: the Consents of the others would be missing,
    -- a deny among them unknown (1.1: the page was imported alone)
    IF EXISTS (SELECT FROM pg_catalog.jsonb_array_elements(
                   CASE WHEN pg_catalog.jsonb_typeof(bundle OPERATOR(pg_catalog.->) 'link') OPERATOR(pg_catalog.=) 'array'
                        THEN bundle OPERATOR(pg_catalog.->) 'link' ELSE '[]' END) l
                WHERE (l OPERATOR(pg_catalog.->>) 'relation') OPERATOR(pg_catalog.=) ANY (ARRAY['next', 'previous', 'prev'])) THEN
        PERFORM agentauth._fhir_fail('$.link', 'the Bundle is one page of a search with more',
            'Import the whole search as one Bundle: a collection of every page''s entries.');
    END IF;
    IF pg_catalog.jsonb_array_length(agentauth._fhir_array(bundle OPERATOR(pg_catalog.->) 'entry', '$.entry'))
       OPERATOR(pg_catalog.>) 1000000 THEN
        PERFORM agentauth._fhir_fail('$.entry', 'more than 1000000 entries',
            'Split the load into several Bundles (they may share one transaction).');
    END IF;
    -- one Consent id once: a second copy would silently replace the first
    SELECT x.cid, pg_catalog.min(x.o) AS first, pg_catalog.min(x.o) FILTER (WHERE x.o OPERATOR(pg_catalog.>) x.m) AS dup
      INTO d
      FROM (SELECT y.value OPERATOR(pg_catalog.#>>) '{resource,id}' AS cid, y.o OPERATOR(pg_catalog.-) 1 AS o,
                   pg_catalog.min(y.o OPERATOR(pg_catalog.-) 1) OVER (PARTITION BY y.value OPERATOR(pg_catalog.#>>) '{resource,id}') AS m
              FROM pg_catalog.jsonb_array_elements(bundle OPERATOR(pg_catalog.->) 'entry') WITH ORDINALITY AS y(value, o)
             WHERE pg_catalog.jsonb_typeof(y.value) OPERATOR(pg_catalog.=) 'object'
               AND (y.value OPERATOR(pg_catalog.#>>) '{resource,resourceType}') IS NOT DISTINCT FROM 'Consent'
               AND (y.value OPERATOR(pg_catalog.#>>) '{resource,id}') IS NOT NULL) AS x
     GROUP BY x.cid HAVING pg_catalog.count(*) OPERATOR(pg_catalog.>) 1
     ORDER BY 3 LIMIT 1;
    IF FOUND THEN
        PERFORM agentauth._fhir_fail(pg_catalog.format('$.entry[%s].resource.id', d.dup),
            pg_catalog.format('Consent/%s is also entry %s', d.cid, d.first),
            'A Bundle names each Consent once.');
    END IF;
    FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(agentauth._fhir_array(bundle OPERATOR(pg_catalog.->) 'entry', '$.entry')) LOOP
        p := pg_catalog.format('$.entry[%s]', i);
        IF pg_catalog.jsonb_typeof(e) OPERATOR(pg_catalog.<>) 'object' THEN
            PERFORM agentauth._fhir_fail(p, 'expected a Bundle entry object');
        END IF;
        k := agentauth._fhir_modifier_at(e OPERATOR(pg_catalog.-) 'resource', p);
        IF k IS NOT NULL THEN
            PERFORM agentauth._fhir_fail(k, 'a modifier extension is not understood');
        END IF;
        res := e OPERATOR(pg_catalog.->) 'resource';
        IF res IS NULL THEN
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.resource', 'required element is missing');
        END IF;
        -- an entry of another server: its relative references (Patient/123)
        -- name that server's patients and parties, not this site's (1.1:
        -- taken as local)
        url := e OPERATOR(pg_catalog.->>) 'fullUrl';
        IF url ~* E'^[a-z][a-z0-9+.\\-]*://'
           AND (base IS NULL OR pg_catalog.left(url, pg_catalog.length(base)) OPERATOR(pg_catalog.<>) base) THEN
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.fullUrl',
                pg_catalog.format('"%s" is a resource of another server', url),
                'Its references name that server''s patients and parties.  Set agentauth.fhir_patient_reference to this site''s FHIR base (e.g. https://fhir.example.org/r4/Patient/%s) to import its own Bundles.');
        END IF;
        -- a searchset's included resources (the patients, say) are not
        -- consents; an included Consent is one (1.1: skipped)
        IF v_type OPERATOR(pg_catalog.=) 'searchset'
           AND (e OPERATOR(pg_catalog.#>>) '{search,mode}') IS NOT DISTINCT FROM 'include'
           AND (res OPERATOR(pg_catalog.->>) 'resourceType') IS DISTINCT FROM 'Consent' THEN
            i := i OPERATOR(pg_catalog.+) 1;
            CONTINUE;
        END IF;
        IF e OPERATOR(pg_catalog.?) 'request' THEN
            k := agentauth._fhir_string(e OPERATOR(pg_catalog.#>) '{request,method}', p OPERATOR(pg_catalog.||) '.request.method', true);
            IF k OPERATOR(pg_catalog.<>) ALL (ARRAY['POST', 'PUT']) THEN
                PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.request.method',
                    pg_catalog.format('method "%s" cannot be imported', k),
                    'Only POST and PUT create or replace a consent; withdraw with status "inactive".');
            END IF;
        END IF;
        v := agentauth._fhir_bundle_entry_rules(res, p OPERATOR(pg_catalog.||) '.resource');
        entry := i;
        source := v.source;
        IF agentauth._fhir_consent_version(v.source, v.patient, res, p OPERATOR(pg_catalog.||) '.resource') THEN
            consents := agentauth._fhir_consent_store(v.patient, v.source, v.rules, v.active);
        ELSE
            -- the version imported, delivered again: nothing changed
            consents := agentauth._fhir_consent_in_force(v.source, v.patient);
        END IF;
        RETURN NEXT;
        i := i OPERATOR(pg_catalog.+) 1;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION agentauth.import_fhir_consent_bundle(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.import_fhir_consent_bundle(jsonb) TO agentauth_consent_manager;
