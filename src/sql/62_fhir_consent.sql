
-- import_fhir_consent(resource): a FHIR Consent (R4, and the R5 shape) as
-- agentauth consent provisions (SPEC 7), all or nothing.  Every part of the
-- resource that could narrow or widen what the patient agreed to is either
-- mapped or refused with an error naming its JSON path; parts that do not
-- change the decision (text, identifier, category, dateTime, performer,
-- organization, source, policy, verification...) are ignored.  The README
-- ("For auditors") gives the mapping table.

-- One provision in the making: its decision and constraints, NULL = any.
-- actors: 'a:<principal uuid>' (grantee_agent) or 'o:<text>' (grantee_owner).
-- open: the dimensions ('purposes', 'classes') whose list is "every one
-- but ...", a deny cut around its exceptions (_fhir_box_minus), or
-- 'sensitive', a deny of restricted data: the list grows with each
-- purpose or class added later (_consent_extend).
CREATE TYPE agentauth._fhir_rule AS (
    path        text,
    decision    text,
    purposes    text[],
    classes     text[],
    actions     text[],
    actors      text[],
    valid       tstzrange,
    open        text[]
);

-- The statement holds a patient's Consent: it stays out of the server log,
-- and so does detail, which names the patient (_raise_naming_patient).
CREATE FUNCTION agentauth._fhir_fail(path text, message text, hint text DEFAULT NULL,
                                     detail text DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT agentauth._raise_naming_patient('22023',
        pg_catalog.format('cannot import FHIR Consent: %s at %s', message, path), detail, hint)
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_fail(text, text, text, text) FROM PUBLIC;

-- a JSON array member (or error)
CREATE FUNCTION agentauth._fhir_array(v jsonb, path text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF v IS NULL THEN
        RETURN '[]';
    END IF;
    IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'array' THEN
        PERFORM agentauth._fhir_fail(path, 'expected an array');
    END IF;
    -- FHIR has no empty arrays; read as "any", an empty purpose, class,
    -- action, actor or grantee list was a permit of everything (1.1)
    IF pg_catalog.jsonb_array_length(v) OPERATOR(pg_catalog.=) 0 THEN
        PERFORM agentauth._fhir_fail(path, 'an empty array names nothing (FHIR allows no empty arrays)');
    END IF;
    RETURN v;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_array(jsonb, text) FROM PUBLIC;

-- a string member (or error); NULL when absent and not required
CREATE FUNCTION agentauth._fhir_string(v jsonb, path text, required boolean DEFAULT false)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF v IS NULL THEN
        IF required THEN
            PERFORM agentauth._fhir_fail(path, 'required element is missing');
        END IF;
        RETURN NULL;
    END IF;
    IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'string'
       OR (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.=) '' THEN
        PERFORM agentauth._fhir_fail(path, 'expected a non-empty string');
    END IF;
    RETURN v OPERATOR(pg_catalog.#>>) '{}';
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_string(jsonb, text, boolean) FROM PUBLIC;

-- A FHIR date or dateTime as a bound.  A date without a time is taken at
-- 00:00 UTC.  As the start of a period it is the first instant; as the end
-- it includes the whole year, month or day (FHIR: "the end value includes
-- any matching date/time"), so the bound is the next one, exclusive.
-- Returns the bound; *inclusive* tells whether an end bound is inclusive.
CREATE FUNCTION agentauth._fhir_time(v jsonb, path text, is_end boolean, OUT t timestamptz, OUT inclusive boolean)
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    s text := agentauth._fhir_string(v, path);
    m text[];
    d date;
BEGIN
    m := pg_catalog.regexp_match(s,
        E'^([0-9]{4})(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$');
    IF m IS NULL THEN
        PERFORM agentauth._fhir_fail(path, pg_catalog.format('"%s" is not a FHIR dateTime', s),
            'Write YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with a zone (Z or +hh:mm).');
    END IF;
    inclusive := false;
    BEGIN
        IF m[6] IS NOT NULL THEN
            t := s::timestamptz;            -- has an explicit zone: no session setting applies
            inclusive := is_end;
        ELSE
            -- a date: its bound at 00:00 UTC, the next day, month or year
            -- counted on the date itself (1.1, found by review: added to a
            -- timestamptz, in the session's time zone, the end of a March
            -- opt-out west of UTC fell on March 28, 23:00 UTC)
            IF m[4] IS NOT NULL THEN
                d := pg_catalog.make_date(m[1]::int, m[3]::int, m[5]::int);
                IF is_end THEN d := d OPERATOR(pg_catalog.+) 1; END IF;
            ELSIF m[2] IS NOT NULL THEN
                d := pg_catalog.make_date(m[1]::int, m[3]::int, 1);
                IF is_end THEN
                    d := (d OPERATOR(pg_catalog.+) '1 month'::pg_catalog.interval)::pg_catalog.date;
                END IF;
            ELSE
                d := pg_catalog.make_date(m[1]::int OPERATOR(pg_catalog.+) is_end::int, 1, 1);
            END IF;
            t := pg_catalog.timezone('UTC', d::pg_catalog.timestamp);
        END IF;
    EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
        PERFORM agentauth._fhir_fail(path, pg_catalog.format('"%s" is not a valid date', s));
    END;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_time(jsonb, text, boolean) FROM PUBLIC;

-- a Period as a tstzrange
CREATE FUNCTION agentauth._fhir_period(v jsonb, path text) RETURNS tstzrange
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k      text;
    lo     timestamptz;
    hi     timestamptz;
    hi_inc boolean := false;
    ignore boolean;
BEGIN
    IF v IS NULL THEN
        RETURN NULL;
    END IF;
    IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'object' THEN
        PERFORM agentauth._fhir_fail(path, 'expected a Period object');
    END IF;
    FOR k IN SELECT pg_catalog.jsonb_object_keys(v) LOOP
        IF k OPERATOR(pg_catalog.<>) ALL (ARRAY['start', 'end', 'id', 'extension']) THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) k,
                                         'unknown element of a Period');
        END IF;
    END LOOP;
    IF v OPERATOR(pg_catalog.?) 'start' THEN
        SELECT x.t, x.inclusive INTO lo, ignore
          FROM agentauth._fhir_time(v OPERATOR(pg_catalog.->) 'start', path OPERATOR(pg_catalog.||) '.start', false) x;
    END IF;
    IF v OPERATOR(pg_catalog.?) 'end' THEN
        SELECT x.t, x.inclusive INTO hi, hi_inc
          FROM agentauth._fhir_time(v OPERATOR(pg_catalog.->) 'end', path OPERATOR(pg_catalog.||) '.end', true) x;
    END IF;
    IF lo IS NOT NULL AND hi IS NOT NULL
       AND (hi OPERATOR(pg_catalog.<) lo OR (hi OPERATOR(pg_catalog.=) lo AND NOT hi_inc)) THEN
        PERFORM agentauth._fhir_fail(path, 'the period ends before it starts');
    END IF;
    RETURN pg_catalog.tstzrange(lo, hi, CASE WHEN hi_inc THEN '[]' ELSE '[)' END);
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_period(jsonb, text) FROM PUBLIC;

-- the codings of a CodeableConcept (or a bare Coding) with their paths
CREATE FUNCTION agentauth._fhir_codings(v jsonb, path text, concept boolean)
    RETURNS TABLE (system text, code text, cpath text)
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    c jsonb;
    i int := 0;
BEGIN
    IF pg_catalog.jsonb_typeof(v) IS DISTINCT FROM 'object' THEN
        PERFORM agentauth._fhir_fail(path, CASE WHEN concept THEN 'expected a CodeableConcept' ELSE 'expected a Coding' END);
    END IF;
    IF NOT concept THEN
        system := agentauth._fhir_string(v OPERATOR(pg_catalog.->) 'system', path OPERATOR(pg_catalog.||) '.system');
        code := agentauth._fhir_string(v OPERATOR(pg_catalog.->) 'code', path OPERATOR(pg_catalog.||) '.code', true);
        cpath := path;
        RETURN NEXT;
        RETURN;
    END IF;
    FOR c IN SELECT * FROM pg_catalog.jsonb_array_elements(
                 agentauth._fhir_array(v OPERATOR(pg_catalog.->) 'coding', path OPERATOR(pg_catalog.||) '.coding')) LOOP
        cpath := pg_catalog.format('%s.coding[%s]', path, i);
        IF pg_catalog.jsonb_typeof(c) OPERATOR(pg_catalog.<>) 'object' THEN
            PERFORM agentauth._fhir_fail(cpath, 'expected a Coding');
        END IF;
        system := agentauth._fhir_string(c OPERATOR(pg_catalog.->) 'system', cpath OPERATOR(pg_catalog.||) '.system');
        code := agentauth._fhir_string(c OPERATOR(pg_catalog.->) 'code', cpath OPERATOR(pg_catalog.||) '.code', true);
        RETURN NEXT;
        i := i OPERATOR(pg_catalog.+) 1;
    END LOOP;
    IF i OPERATOR(pg_catalog.=) 0 THEN
        PERFORM agentauth._fhir_fail(path, 'a CodeableConcept without a coding cannot be mapped',
            'Give a coding with a system and a code.');
    END IF;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_codings(jsonb, text, boolean) FROM PUBLIC;

-- the data classes a class / resourceType / securityLabel coding stands for
CREATE FUNCTION agentauth._fhir_map_class(system text, code text, path text) RETURNS text[]
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r text[];
BEGIN
    IF system OPERATOR(pg_catalog.=) 'urn:agentauth:data-class' THEN
        IF NOT EXISTS (SELECT FROM agentauth.data_class d WHERE d.name OPERATOR(pg_catalog.=) code) THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.code',
                pg_catalog.format('unknown data class "%s"', code));
        END IF;
        RETURN ARRAY[code];
    ELSIF system OPERATOR(pg_catalog.=) ANY (ARRAY['http://hl7.org/fhir/resource-types',
                                                   'http://hl7.org/fhir/fhir-types']) THEN
        r := agentauth._fhir_type_classes(code);
        IF r IS NULL THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.code',
                pg_catalog.format('resource type "%s" has no agentauth data class', code),
                'Use a coding of system urn:agentauth:data-class to name a class directly.');
        END IF;
        RETURN r;
    ELSIF system OPERATOR(pg_catalog.=) 'http://terminology.hl7.org/CodeSystem/v3-ActCode' THEN
        r := CASE code
            WHEN 'HIV' THEN ARRAY['hiv']
            WHEN 'PSY' THEN ARRAY['mental_health']
            WHEN 'PSYTHPN' THEN ARRAY['mental_health']
            WHEN 'ETH' THEN ARRAY['substance_use']
            WHEN 'SUD' THEN ARRAY['substance_use']
            WHEN 'GDIS' THEN ARRAY['genetic']
            WHEN 'SEX' THEN ARRAY['reproductive']
            END;
        IF r IS NULL THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.code',
                pg_catalog.format('sensitivity code "%s" has no agentauth data class', code));
        END IF;
        RETURN r;
    ELSIF system OPERATOR(pg_catalog.=) 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality' THEN
        IF code OPERATOR(pg_catalog.=) ANY (ARRAY['R', 'V']) THEN
            SELECT pg_catalog.array_agg(d.name ORDER BY d.name) INTO r
              FROM agentauth.data_class d WHERE d.sensitive;
            RETURN r;
        END IF;
        PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.code',
            pg_catalog.format('confidentiality code "%s" has no agentauth data class', code),
            'Only R (restricted) and V (very restricted) map: to every sensitive class.');
    END IF;
    PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.system',
        pg_catalog.format('unknown code system "%s" for data', COALESCE(system, '(none)')));
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_map_class(text, text, text) FROM PUBLIC;

-- an actor's reference as 'a:<agent>' or 'o:<owner>'
-- The site's FHIR base: that of agentauth.fhir_patient_reference when it
-- is an absolute <base>Patient/%s; NULL when the site names no base.  A
-- reference or a Bundle entry under it is this site's.
CREATE FUNCTION agentauth._fhir_site_base() RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE WHEN t LIKE E'%Patient/\\%s' AND t ~* E'^[a-z][a-z0-9+.\\-]*:'
                THEN pg_catalog.left(t, pg_catalog.length(t) OPERATOR(pg_catalog.-) 10) END
      FROM pg_catalog.current_setting('agentauth.fhir_patient_reference', true) t
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_site_base() FROM PUBLIC;

CREATE FUNCTION agentauth._fhir_map_actor(ref jsonb, path text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r   text;
    m   text[];
    sys text;
    val text;
    t   text;
BEGIN
    IF pg_catalog.jsonb_typeof(ref) IS DISTINCT FROM 'object' THEN
        PERFORM agentauth._fhir_fail(path, 'expected a Reference');
    END IF;
    r := agentauth._fhir_string(ref OPERATOR(pg_catalog.->) 'reference', path OPERATOR(pg_catalog.||) '.reference');
    IF r IS NOT NULL THEN
        -- this site's parties only (1.1: any server's Practitioner/123 was
        -- taken as this site's): a relative reference, or one under the
        -- site's FHIR base, the base of agentauth.fhir_patient_reference
        IF r ~* E'^[a-z][a-z0-9+.\\-]*:' THEN
            t := agentauth._fhir_site_base();
            IF t IS NULL OR pg_catalog.left(r, pg_catalog.length(t)) OPERATOR(pg_catalog.<>) t THEN
                PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.reference',
                    pg_catalog.format('"%s" is not a party of this site', r),
                    'A reference to another server names a party of another id space.  Use a relative reference (Practitioner/<id>), or set agentauth.fhir_patient_reference to this site''s FHIR base.');
            END IF;
            r := pg_catalog.substr(r, pg_catalog.length(t) OPERATOR(pg_catalog.+) 1);
        END IF;
        m := pg_catalog.regexp_match(r, E'^(Device|Practitioner|PractitionerRole|Organization|CareTeam|RelatedPerson|Group|Patient)/([A-Za-z0-9\\-\\.]{1,64})$');
        IF m IS NULL THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.reference',
                pg_catalog.format('cannot resolve reference "%s"', r));
        END IF;
        IF m[1] OPERATOR(pg_catalog.=) 'Device' THEN
            IF m[2] !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
               OR NOT EXISTS (SELECT FROM agentauth.principal p
                               WHERE p.id OPERATOR(pg_catalog.=) m[2]::uuid
                                 AND p.kind OPERATOR(pg_catalog.=) 'agent') THEN
                PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.reference',
                    pg_catalog.format('"%s" is not a registered agent', r),
                    'A Device reference names an agent by its principal id (Device/<uuid>).');
            END IF;
            RETURN 'a:' OPERATOR(pg_catalog.||) pg_catalog.lower(m[2]);
        ELSIF m[1] OPERATOR(pg_catalog.=) ANY (ARRAY['Patient', 'Group']) THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.reference',
                pg_catalog.format('a %s cannot be a recipient of agentauth access', m[1]));
        END IF;
        RETURN 'o:' OPERATOR(pg_catalog.||) m[1] OPERATOR(pg_catalog.||) '/' OPERATOR(pg_catalog.||) m[2];
    END IF;
    IF ref OPERATOR(pg_catalog.?) 'identifier' THEN
        sys := agentauth._fhir_string(ref OPERATOR(pg_catalog.#>) '{identifier,system}', path OPERATOR(pg_catalog.||) '.identifier.system');
        val := agentauth._fhir_string(ref OPERATOR(pg_catalog.#>) '{identifier,value}', path OPERATOR(pg_catalog.||) '.identifier.value', true);
        IF sys IS NOT DISTINCT FROM 'urn:agentauth:principal' THEN
            IF val !~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
               OR NOT EXISTS (SELECT FROM agentauth.principal p
                               WHERE p.id OPERATOR(pg_catalog.=) val::uuid
                                 AND p.kind OPERATOR(pg_catalog.=) 'agent') THEN
                PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.identifier.value',
                    pg_catalog.format('"%s" is not a registered agent', val));
            END IF;
            RETURN 'a:' OPERATOR(pg_catalog.||) pg_catalog.lower(val);
        END IF;
        -- an owner by the name it is registered under (1.1: an identifier
        -- of any system, or of none, was taken as a local owner's name)
        IF sys IS DISTINCT FROM 'urn:agentauth:owner' THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.identifier.system',
                pg_catalog.format('identifier system "%s" names no party of this site', COALESCE(sys, '(none)')),
                'Name an agent by system urn:agentauth:principal (its principal id), an owner by system urn:agentauth:owner (the name agents'' owner and tokens'' on_behalf_of carry), or use a relative reference.');
        END IF;
        RETURN 'o:' OPERATOR(pg_catalog.||) val;
    END IF;
    PERFORM agentauth._fhir_fail(path, 'an actor needs a reference or an identifier');
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_map_actor(jsonb, text) FROM PUBLIC;

-- intersect two constraint lists (NULL = any); empty means "covers nothing"
-- an owner actor ('o:' and the owner's name) as names are compared
CREATE FUNCTION agentauth._fhir_owner_key(a text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT pg_catalog.lower(pg_catalog.upper(pg_catalog.btrim(pg_catalog.substr(a, 3)))) $$;
REVOKE ALL ON FUNCTION agentauth._fhir_owner_key(text) FROM PUBLIC;
CREATE FUNCTION agentauth._fhir_meet(parent text[], child text[], path text, what text, deny boolean)
    RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r text[];
BEGIN
    IF child IS NULL THEN
        RETURN parent;
    END IF;
    SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO r FROM pg_catalog.unnest(child) x;
    -- a deny may say more than its parent covers: it then denies what it names
    -- (an owner, 'o:' and a name, is the parent's under the fold names
    -- take everywhere, case and surrounding blanks aside: 1.1, found by
    -- review -- a nested permit naming it in capitals was refused)
    IF parent IS NOT NULL AND NOT deny THEN
        SELECT pg_catalog.array_agg(x ORDER BY x) INTO r
          FROM pg_catalog.unnest(r) x
         WHERE x OPERATOR(pg_catalog.=) ANY (parent)
            OR (x OPERATOR(pg_catalog.~~) 'o:%' AND agentauth._fhir_owner_key(x) OPERATOR(pg_catalog.=) ANY
                (SELECT agentauth._fhir_owner_key(y) FROM pg_catalog.unnest(parent) y
                  WHERE y OPERATOR(pg_catalog.~~) 'o:%'));
    END IF;
    IF r IS NULL THEN
        PERFORM agentauth._fhir_fail(path, pg_catalog.format('the %s of this provision lie outside those of the provision it is nested in', what));
    END IF;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_meet(text[], text[], text, text, boolean) FROM PUBLIC;

-- One provision node, its constraints met with its parent's.
CREATE FUNCTION agentauth._fhir_node(node jsonb, path text, parent agentauth._fhir_rule,
                                     r5 boolean, is_root boolean)
    RETURNS agentauth._fhir_rule
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    k     text;
    e     jsonb;
    c     record;
    i     int;
    lst   text[];
    part  text[];
    res   agentauth._fhir_rule;
    v_valid tstzrange;
    known boolean;
    kind  text[];
    restricted boolean := false;
BEGIN
    IF pg_catalog.jsonb_typeof(node) IS DISTINCT FROM 'object' THEN
        PERFORM agentauth._fhir_fail(path, 'expected a provision object');
    END IF;
    FOR k IN SELECT pg_catalog.jsonb_object_keys(node) LOOP
        IF k OPERATOR(pg_catalog.<>) ALL (ARRAY['id', 'extension', 'type', 'period', 'actor', 'action',
                'securityLabel', 'purpose', 'class', 'resourceType', 'data', 'provision']) THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) k,
                CASE k
                    WHEN 'dataPeriod' THEN 'a period of the data cannot be enforced (agentauth decides by the time of access)'
                    WHEN 'code' THEN 'consent by clinical code cannot be enforced; use class or securityLabel'
                    WHEN 'documentType' THEN 'consent by document type cannot be enforced; use class or securityLabel'
                    WHEN 'expression' THEN 'computable expressions are not supported'
                    WHEN 'modifierExtension' THEN 'a modifier extension is not understood'
                    ELSE 'unknown element of a provision' END);
        END IF;
    END LOOP;

    res.path := path;
    -- decision: R4 provision.type; otherwise an exception to the parent
    IF node OPERATOR(pg_catalog.?) 'type' THEN
        IF r5 THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.type',
                'an R5 provision has no type (the decision is Consent.decision)');
        END IF;
        res.decision := agentauth._fhir_string(node OPERATOR(pg_catalog.->) 'type', path OPERATOR(pg_catalog.||) '.type');
        IF res.decision OPERATOR(pg_catalog.<>) ALL (ARRAY['permit', 'deny']) THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.type',
                pg_catalog.format('type "%s" is neither permit nor deny', res.decision));
        END IF;
    ELSIF is_root THEN
        res.decision := parent.decision;
    ELSE
        res.decision := CASE parent.decision WHEN 'permit' THEN 'deny' ELSE 'permit' END;
    END IF;

    -- period
    v_valid := agentauth._fhir_period(node OPERATOR(pg_catalog.->) 'period', path OPERATOR(pg_catalog.||) '.period');
    res.valid := COALESCE(parent.valid, '(,)'::tstzrange);
    IF v_valid IS NOT NULL AND res.decision OPERATOR(pg_catalog.=) 'deny' AND NOT is_root THEN
        res.valid := v_valid;           -- a deny denies what it names
    ELSIF v_valid IS NOT NULL THEN
        res.valid := res.valid OPERATOR(pg_catalog.*) v_valid;
        IF pg_catalog.isempty(res.valid) THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.period',
                'the period lies outside the period of the provision it is nested in');
        END IF;
    END IF;

    -- purpose (Coding[])
    lst := NULL;
    i := 0;
    FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(
                 agentauth._fhir_array(node OPERATOR(pg_catalog.->) 'purpose', path OPERATOR(pg_catalog.||) '.purpose')) LOOP
        SELECT * INTO c FROM agentauth._fhir_codings(e, pg_catalog.format('%s.purpose[%s]', path, i), false);
        IF c.system IS DISTINCT FROM 'http://terminology.hl7.org/CodeSystem/v3-ActReason'
           AND c.system IS DISTINCT FROM 'http://hl7.org/fhir/v3/ActReason'
           AND c.system IS DISTINCT FROM 'urn:agentauth:purpose' THEN
            PERFORM agentauth._fhir_fail(c.cpath OPERATOR(pg_catalog.||) '.system',
                pg_catalog.format('a purpose must be a v3-ActReason code, not of system "%s"', COALESCE(c.system, '(none)')));
        END IF;
        IF NOT EXISTS (SELECT FROM agentauth.purpose p WHERE p.code OPERATOR(pg_catalog.=) c.code) THEN
            PERFORM agentauth._fhir_fail(c.cpath OPERATOR(pg_catalog.||) '.code',
                pg_catalog.format('unknown purpose "%s"', c.code),
                'The purposes are the rows of agentauth.purpose.');
        END IF;
        IF EXISTS (SELECT FROM agentauth.purpose p WHERE p.code OPERATOR(pg_catalog.=) c.code AND p.reserved) THEN
            PERFORM agentauth._fhir_fail(c.cpath OPERATOR(pg_catalog.||) '.code',
                pg_catalog.format('purpose "%s" is reserved (entered only through break_glass)', c.code));
        END IF;
        lst := COALESCE(lst, '{}') OPERATOR(pg_catalog.||) c.code;
        i := i OPERATOR(pg_catalog.+) 1;
    END LOOP;
    -- A deny of a purpose denies its specializations too, as v3-ActReason
    -- orders them (agentauth.purpose.parent: TREAT covers ETREAT, ERTREAT
    -- and TREATDS), and those added below it later (subtree); so does a
    -- deny nested in such a deny.  A permit covers the purposes it names
    -- (what lies below them stays denied); an exception that names none
    -- covers what its deny covers at the import.  An exception is cut out
    -- of the expanded deny.  (1.1, found by review: an opt-out of TREAT let
    -- an ETREAT agent read.)
    res.purposes := agentauth._fhir_meet(parent.purposes, lst, path OPERATOR(pg_catalog.||) '.purpose', 'purposes', res.decision OPERATOR(pg_catalog.=) 'deny');
    IF res.decision OPERATOR(pg_catalog.=) 'deny' AND res.purposes IS NOT NULL
       AND (lst IS NOT NULL OR 'subtree' OPERATOR(pg_catalog.=) ANY (COALESCE(parent.open, '{}'))) THEN
        res.purposes := agentauth._purpose_subtree(res.purposes);
        res.open := ARRAY['subtree'];
    END IF;

    -- class, resourceType (R5), securityLabel: the data classes.  FHIR
    -- combines a provision's elements with AND: a permit covers the
    -- classes every element present names (1.1: their union -- "HIV
    -- observations" permitted all labs and all HIV data); a deny the union
    -- (it denies at least what the resource names)
    lst := NULL;
    FOR k IN SELECT pg_catalog.unnest(ARRAY['class', 'resourceType', 'securityLabel']) LOOP
        i := 0;
        kind := NULL;
        FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(
                     agentauth._fhir_array(node OPERATOR(pg_catalog.->) k, path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) k)) LOOP
            SELECT * INTO c FROM agentauth._fhir_codings(e, pg_catalog.format('%s.%s[%s]', path, k, i), false);
            part := agentauth._fhir_map_class(c.system, c.code, c.cpath);
            kind := COALESCE(kind, '{}') OPERATOR(pg_catalog.||) part;
            restricted := restricted OR (k OPERATOR(pg_catalog.=) 'securityLabel'
                AND c.system IS NOT DISTINCT FROM 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality'
                AND c.code OPERATOR(pg_catalog.=) ANY (ARRAY['R', 'V']));
            i := i OPERATOR(pg_catalog.+) 1;
        END LOOP;
        IF kind IS NULL THEN
            CONTINUE;
        ELSIF lst IS NULL OR res.decision OPERATOR(pg_catalog.=) 'deny' THEN
            lst := COALESCE(lst, '{}') OPERATOR(pg_catalog.||) kind;
        ELSE
            lst := ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(lst) x
                          WHERE x OPERATOR(pg_catalog.=) ANY (kind) ORDER BY x);
            IF lst OPERATOR(pg_catalog.=) '{}' THEN
                PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) k,
                    'the class, resourceType and securityLabel of this permit together name no data class',
                    'agentauth decides by data class: a permit narrower than a class (e.g. HIV-labelled observations) cannot be enforced; permit the class itself.');
            END IF;
        END IF;
    END LOOP;
    -- data: particular resources, denied as the whole of their classes
    IF node OPERATOR(pg_catalog.?) 'data' THEN
        lst := agentauth._fhir_data_classes(node OPERATOR(pg_catalog.->) 'data', path OPERATOR(pg_catalog.||) '.data',
                                            res.decision, lst);
    END IF;
    res.classes := agentauth._fhir_meet(parent.classes, lst, path OPERATOR(pg_catalog.||) '.class', 'data classes', res.decision OPERATOR(pg_catalog.=) 'deny');
    -- a deny of restricted data (v3-Confidentiality R or V) names every
    -- sensitive class there is: it grows with each class added as, or
    -- made, sensitive later (1.1: fixed at the import, and such a class
    -- was readable over the patient's deny)
    IF res.decision OPERATOR(pg_catalog.=) 'deny' AND restricted THEN
        res.open := COALESCE(res.open, '{}') OPERATOR(pg_catalog.||) 'sensitive'::text;
    END IF;

    -- action (CodeableConcept[]): consentaction codes
    lst := NULL;
    i := 0;
    FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(
                 agentauth._fhir_array(node OPERATOR(pg_catalog.->) 'action', path OPERATOR(pg_catalog.||) '.action')) LOOP
        known := false;
        FOR c IN SELECT * FROM agentauth._fhir_codings(e, pg_catalog.format('%s.action[%s]', path, i), true) LOOP
            IF c.system IS NOT DISTINCT FROM 'http://terminology.hl7.org/CodeSystem/consentaction'
               OR c.system IS NOT DISTINCT FROM 'http://hl7.org/fhir/consentaction' THEN
                part := CASE c.code
                    WHEN 'access' THEN ARRAY['read'] WHEN 'use' THEN ARRAY['read']
                    WHEN 'disclose' THEN ARRAY['read'] WHEN 'collect' THEN ARRAY['insert']
                    WHEN 'correct' THEN ARRAY['update'] END;
                IF part IS NULL THEN
                    PERFORM agentauth._fhir_fail(c.cpath OPERATOR(pg_catalog.||) '.code',
                        pg_catalog.format('unknown consent action "%s"', c.code));
                END IF;
                lst := COALESCE(lst, '{}') OPERATOR(pg_catalog.||) part;
                known := true;
            END IF;
        END LOOP;
        IF NOT known THEN
            PERFORM agentauth._fhir_fail(pg_catalog.format('%s.action[%s]', path, i),
                'no coding of system http://terminology.hl7.org/CodeSystem/consentaction');
        END IF;
        i := i OPERATOR(pg_catalog.+) 1;
    END LOOP;
    res.actions := agentauth._fhir_meet(parent.actions, lst, path OPERATOR(pg_catalog.||) '.action', 'actions', res.decision OPERATOR(pg_catalog.=) 'deny');

    -- actor: recipients only
    lst := NULL;
    i := 0;
    FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(
                 agentauth._fhir_array(node OPERATOR(pg_catalog.->) 'actor', path OPERATOR(pg_catalog.||) '.actor')) LOOP
        k := pg_catalog.format('%s.actor[%s]', path, i);
        IF e OPERATOR(pg_catalog.?) 'role' THEN
            known := false;
            FOR c IN SELECT * FROM agentauth._fhir_codings(e OPERATOR(pg_catalog.->) 'role', k OPERATOR(pg_catalog.||) '.role', true) LOOP
                IF c.system IS NOT DISTINCT FROM 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType'
                   AND c.code OPERATOR(pg_catalog.=) ANY (ARRAY['IRCP', 'PRCP']) THEN
                    known := true;
                ELSIF c.system IS NOT DISTINCT FROM 'http://terminology.hl7.org/CodeSystem/v3-RoleCode'
                   AND c.code OPERATOR(pg_catalog.=) 'GRANTEE' THEN
                    known := true;
                END IF;
            END LOOP;
            IF NOT known THEN
                PERFORM agentauth._fhir_fail(k OPERATOR(pg_catalog.||) '.role',
                    'the actor is not a recipient of the data',
                    'agentauth maps actors with role v3-ParticipationType IRCP or PRCP (information recipient) only.');
            END IF;
        ELSIF NOT r5 THEN
            PERFORM agentauth._fhir_fail(k OPERATOR(pg_catalog.||) '.role', 'required element is missing');
        END IF;
        IF NOT e OPERATOR(pg_catalog.?) 'reference' THEN
            PERFORM agentauth._fhir_fail(k OPERATOR(pg_catalog.||) '.reference', 'required element is missing');
        END IF;
        lst := COALESCE(lst, '{}') OPERATOR(pg_catalog.||)
               agentauth._fhir_map_actor(e OPERATOR(pg_catalog.->) 'reference', k OPERATOR(pg_catalog.||) '.reference');
        i := i OPERATOR(pg_catalog.+) 1;
    END LOOP;
    res.actors := agentauth._fhir_meet(parent.actors, lst, path OPERATOR(pg_catalog.||) '.actor', 'actors', res.decision OPERATOR(pg_catalog.=) 'deny');
    RETURN res;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_node(jsonb, text, agentauth._fhir_rule, boolean, boolean) FROM PUBLIC;

-- What the provisions nested in a deny may reach: the deny met with the
-- provisions above it (NULL = any, an empty list or range = nothing).  A
-- deny names what it denies, beyond its parent too; a permit nested in it
-- is an exception to it, and never reaches past a provision above it
-- (1.1: permit -> deny naming a longer period, other classes or other
-- actors -> permit made a permit for that period, those classes, those
-- actors, wider than the consent's own permit).
CREATE FUNCTION agentauth._fhir_bound(me agentauth._fhir_rule, parent agentauth._fhir_rule)
    RETURNS agentauth._fhir_rule
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    dim  text;
    mine text[];
    his  text[];
BEGIN
    FOREACH dim IN ARRAY ARRAY['purposes', 'classes', 'actions', 'actors'] LOOP
        mine := CASE dim WHEN 'purposes' THEN me.purposes WHEN 'classes' THEN me.classes
                         WHEN 'actions' THEN me.actions ELSE me.actors END;
        his := CASE dim WHEN 'purposes' THEN parent.purposes WHEN 'classes' THEN parent.classes
                        WHEN 'actions' THEN parent.actions ELSE parent.actors END;
        CONTINUE WHEN his IS NULL;
        mine := ARRAY(SELECT x FROM pg_catalog.unnest(COALESCE(mine, his)) x
                       WHERE x OPERATOR(pg_catalog.=) ANY (his) ORDER BY x);
        CASE dim WHEN 'purposes' THEN me.purposes := mine; WHEN 'classes' THEN me.classes := mine;
                 WHEN 'actions' THEN me.actions := mine; ELSE me.actors := mine; END CASE;
    END LOOP;
    me.valid := COALESCE(me.valid, '(,)'::tstzrange) OPERATOR(pg_catalog.*) COALESCE(parent.valid, '(,)'::tstzrange);
    RETURN me;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_bound(agentauth._fhir_rule, agentauth._fhir_rule) FROM PUBLIC;

-- A provision and everything nested in it, as rules in document order.
-- A deny with permit exceptions nested in it becomes the part of it its
-- exceptions leave (SPEC 7 gives a matching deny precedence, so it must
-- not overlap them): deny rules cut along purposes, data classes and
-- actions (_fhir_box_minus).  An exception for other actors or another
-- period cannot be cut out and is refused.
CREATE FUNCTION agentauth._fhir_tree(node jsonb, path text, parent agentauth._fhir_rule,
                                     r5 boolean, is_root boolean)
    RETURNS SETOF agentauth._fhir_rule
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    me      agentauth._fhir_rule;
    bound   agentauth._fhir_rule;
    orig    agentauth._fhir_rule;
    boxes   agentauth._fhir_rule[];
    kids    jsonb;
    kid     agentauth._fhir_rule;
    i       int := 0;
    e       jsonb;
BEGIN
    me := agentauth._fhir_node(node, path, parent, r5, is_root);
    orig := me;
    -- what the provisions nested in this one may reach (_fhir_bound): a
    -- permit's own constraints are already met with its parent's
    IF me.decision OPERATOR(pg_catalog.=) 'deny' AND NOT is_root THEN
        bound := agentauth._fhir_bound(me, parent);
    ELSE
        bound := me;
    END IF;
    kids := agentauth._fhir_array(node OPERATOR(pg_catalog.->) 'provision', path OPERATOR(pg_catalog.||) '.provision');

    -- a deny is cut around the permits nested in it (deny overrides
    -- permit in agentauth's decision order): what is left of it, as boxes
    -- of purposes x classes x actions
    boxes := ARRAY[me];
    IF me.decision OPERATOR(pg_catalog.=) 'deny' THEN
        FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(kids) LOOP
            kid := agentauth._fhir_node(e, pg_catalog.format('%s.provision[%s]', path, i), bound, r5, false);
            i := i OPERATOR(pg_catalog.+) 1;
            CONTINUE WHEN kid.decision OPERATOR(pg_catalog.=) 'deny';
            IF kid.purposes OPERATOR(pg_catalog.=) '{}' OR kid.classes OPERATOR(pg_catalog.=) '{}'
               OR kid.actions OPERATOR(pg_catalog.=) '{}' OR kid.actors OPERATOR(pg_catalog.=) '{}'
               OR pg_catalog.isempty(kid.valid) THEN
                PERFORM agentauth._fhir_fail(kid.path,
                    'this permit lies outside the provisions it is nested in',
                    'A permit nested in a deny is an exception to the deny, within every provision above it.');
            END IF;
            IF kid.actors IS DISTINCT FROM me.actors OR kid.valid IS DISTINCT FROM me.valid THEN
                PERFORM agentauth._fhir_fail(kid.path,
                    'a permit nested in a deny can only narrow its purposes, data classes or actions',
                    'agentauth gives a matching deny precedence over any permit (first match: deny, then permit), so the deny must be cut around its exceptions; an exception for other actors or another period cannot be cut out.  Split the consent into provisions that do not overlap.');
            END IF;
            boxes := ARRAY(SELECT x FROM pg_catalog.unnest(boxes) AS b,
                                         agentauth._fhir_box_minus(b, kid) AS x);
        END LOOP;
    END IF;
    FOREACH me IN ARRAY boxes LOOP
        RETURN NEXT me;
    END LOOP;
    -- a nested deny takes what it leaves unnamed from the provision it is
    -- nested in, as that provision names it; a nested permit is met with
    -- every provision above it (bound).  (The decision as _fhir_node
    -- reads it: the type, else the opposite of this one.)
    i := 0;
    FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(kids) LOOP
        RETURN QUERY SELECT * FROM agentauth._fhir_tree(e, pg_catalog.format('%s.provision[%s]', path, i),
            CASE WHEN COALESCE(e OPERATOR(pg_catalog.->>) 'type',
                               CASE orig.decision WHEN 'permit' THEN 'deny' ELSE 'permit' END)
                      OPERATOR(pg_catalog.=) 'deny'
                 THEN orig ELSE bound END, r5, false);
        i := i OPERATOR(pg_catalog.+) 1;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_tree(jsonb, text, agentauth._fhir_rule, boolean, boolean) FROM PUBLIC;

-- the path of the first member named key, depth first, or NULL
CREATE FUNCTION agentauth._fhir_find_key(v jsonb, path text, key text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    e record;
    r text;
BEGIN
    -- one '.' or '[' per level: FHIR never nests 64 deep
    IF pg_catalog.length(path) OPERATOR(pg_catalog.-)
       pg_catalog.length(pg_catalog.translate(path, '.[', '')) OPERATOR(pg_catalog.>) 64 THEN
        PERFORM agentauth._fhir_fail(pg_catalog.left(path, 60) OPERATOR(pg_catalog.||) '...',
                                     'the resource is nested more than 64 levels deep');
    END IF;
    IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'object' THEN
        FOR e IN SELECT * FROM pg_catalog.jsonb_each(v) LOOP
            IF e.key OPERATOR(pg_catalog.=) key THEN
                RETURN path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) e.key;
            END IF;
            r := agentauth._fhir_find_key(e.value, path OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) e.key, key);
            IF r IS NOT NULL THEN
                RETURN r;
            END IF;
        END LOOP;
    ELSIF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'array' THEN
        FOR e IN SELECT x.value, x.o FROM pg_catalog.jsonb_array_elements(v) WITH ORDINALITY AS x(value, o) LOOP
            r := agentauth._fhir_find_key(e.value, pg_catalog.format('%s[%s]', path, e.o OPERATOR(pg_catalog.-) 1), key);
            IF r IS NOT NULL THEN
                RETURN r;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_find_key(jsonb, text, text) FROM PUBLIC;

-- The path of the first modifier extension in v (at path), or NULL; a
-- node nested more than 64 levels (path's included) is refused.  The
-- walk, in PL/pgSQL, runs only where jsonpath finds something for it (a
-- fifth of a bulk load's time saved): it refuses what it refused before,
-- save a key whose own name holds dots or brackets enough to look deep.
CREATE FUNCTION agentauth._fhir_modifier_at(v jsonb, path text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF v OPERATOR(pg_catalog.@?) 'lax $.**.modifierExtension'::pg_catalog.jsonpath
       OR v OPERATOR(pg_catalog.@?) pg_catalog.format('lax $.**{%s to last}',
              GREATEST(0, 65 OPERATOR(pg_catalog.-) (pg_catalog.length(path) OPERATOR(pg_catalog.-)
                  pg_catalog.length(pg_catalog.translate(path, '.[', '')))))::pg_catalog.jsonpath THEN
        RETURN agentauth._fhir_find_key(v, path, 'modifierExtension');
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_modifier_at(jsonb, text) FROM PUBLIC;

-- The patient a Consent names, as a patient id of this site.  Only this
-- site's patients are named (1.1: any server's Patient/<id>, and any
-- identifier's value whatever its system, were taken as the local id -- a
-- consent for another patient space's patient landed on the local patient
-- who happens to have that id):
--   a reference Patient/<id>, or one in the form of the setting
--   agentauth.fhir_patient_reference (e.g. https://fhir.example.org/r4/
--   Patient/%s: audit_event_fhir's own naming);
--   an identifier whose system is agentauth.fhir_patient_identifier_system
--   (the system whose values are the protected tables' patient ids, e.g.
--   the MRN's) or urn:agentauth:patient (audit_event_fhir's).
CREATE FUNCTION agentauth._fhir_patient(ref jsonb, path text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    s       text;
    t       text := pg_catalog.current_setting('agentauth.fhir_patient_reference', true);
    sys     text;
    mine    text := pg_catalog.current_setting('agentauth.fhir_patient_identifier_system', true);
    m       text[];
    pre     text;
    post    text;
BEGIN
    IF pg_catalog.jsonb_typeof(ref) OPERATOR(pg_catalog.<>) 'object' THEN
        PERFORM agentauth._fhir_fail(path, 'expected a Reference');
    END IF;
    IF ref OPERATOR(pg_catalog.?) 'reference' THEN
        s := agentauth._fhir_string(ref OPERATOR(pg_catalog.->) 'reference', path OPERATOR(pg_catalog.||) '.reference');
        m := pg_catalog.regexp_match(s, E'^Patient/([A-Za-z0-9\\-\\.]{1,64})$');
        IF m IS NULL AND pg_catalog.strpos(t, '%s') OPERATOR(pg_catalog.>) 0 THEN
            pre := pg_catalog.split_part(t, '%s', 1);
            post := pg_catalog.substr(t, pg_catalog.strpos(t, '%s') OPERATOR(pg_catalog.+) 2);
            IF pg_catalog.length(s) OPERATOR(pg_catalog.>) (pg_catalog.length(pre) OPERATOR(pg_catalog.+) pg_catalog.length(post))
               AND pg_catalog.left(s, pg_catalog.length(pre)) OPERATOR(pg_catalog.=) pre
               AND pg_catalog.right(s, pg_catalog.length(post)) OPERATOR(pg_catalog.=) post THEN
                m := pg_catalog.regexp_match(
                    pg_catalog.substr(s, pg_catalog.length(pre) OPERATOR(pg_catalog.+) 1,
                                      pg_catalog.length(s) OPERATOR(pg_catalog.-) pg_catalog.length(pre) OPERATOR(pg_catalog.-) pg_catalog.length(post)),
                    E'^([A-Za-z0-9\\-\\.]{1,64})$');
            END IF;
        END IF;
        IF m IS NULL THEN
            PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.reference',
                pg_catalog.format('expected a reference to a Patient of this site (Patient/<id>%s)',
                                  CASE WHEN pg_catalog.strpos(t, '%s') OPERATOR(pg_catalog.>) 0
                                            AND t OPERATOR(pg_catalog.<>) 'Patient/%s'
                                       THEN ' or ' OPERATOR(pg_catalog.||) pg_catalog.replace(t, '%s', '<id>') ELSE '' END),
                'A reference to another server''s Patient names a patient of another id space.  Set agentauth.fhir_patient_reference to this site''s FHIR base (e.g. https://fhir.example.org/r4/Patient/%s) to accept its absolute references.',
                pg_catalog.format('The reference is "%s".', s));
        END IF;
        -- an identifier of this site's patient system beside it must name
        -- the same patient (1.1: it was ignored, and a Consent naming two
        -- patients was taken for the first); another system's is not ours
        -- to compare
        sys := ref OPERATOR(pg_catalog.#>>) '{identifier,system}';
        IF ref OPERATOR(pg_catalog.?) 'identifier' AND
           (sys OPERATOR(pg_catalog.=) 'urn:agentauth:patient' OR sys OPERATOR(pg_catalog.=) NULLIF(mine, '')) THEN
            s := agentauth._fhir_patient(ref OPERATOR(pg_catalog.-) 'reference', path);
            IF s IS DISTINCT FROM m[1] THEN
                PERFORM agentauth._fhir_fail(path,
                    'the reference and the identifier name different patients',
                    'A Consent names one patient: correct the reference or the identifier.',
                    pg_catalog.format('The reference names patient "%s" and the identifier "%s".', m[1], s));
            END IF;
        END IF;
        RETURN m[1];
    END IF;
    sys := agentauth._fhir_string(ref OPERATOR(pg_catalog.#>) '{identifier,system}', path OPERATOR(pg_catalog.||) '.identifier.system', true);
    IF sys OPERATOR(pg_catalog.<>) 'urn:agentauth:patient' AND sys IS DISTINCT FROM NULLIF(mine, '') THEN
        PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.identifier.system',
            pg_catalog.format('identifier system "%s" is not this site''s patient identifier system', sys),
            'Set agentauth.fhir_patient_identifier_system to the system whose values are the patient ids of the protected tables (e.g. the MRN''s).');
    END IF;
    s := agentauth._fhir_string(ref OPERATOR(pg_catalog.#>) '{identifier,value}', path OPERATOR(pg_catalog.||) '.identifier.value', true);
    -- a value is free text: one no patient id is written as (a control or
    -- invisible character, a blank at an end) is refused where it stands
    BEGIN
        PERFORM agentauth._patient_id(s);
    EXCEPTION WHEN invalid_parameter_value THEN
        PERFORM agentauth._fhir_fail(path OPERATOR(pg_catalog.||) '.identifier.value', SQLERRM);
    END;
    RETURN s;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_patient(jsonb, text) FROM PUBLIC;

-- The rules of a Consent resource, checked, without storing anything:
-- (patient, source, rules).  Shared by import_fhir_consent and its tests.
CREATE FUNCTION agentauth._fhir_consent_rules(resource jsonb,
    OUT patient text, OUT source text, OUT rules agentauth._fhir_rule[], OUT active boolean)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    r5     boolean;
    k      text;
    ref    jsonb;
    m      text[];
    base   agentauth._fhir_rule;
    c      record;
    e      jsonb;
    i      int;
    known  boolean;
    v_status text;
BEGIN
    IF resource IS NULL THEN
        RAISE EXCEPTION 'resource must not be null' USING ERRCODE = '22004';
    END IF;
    IF pg_catalog.octet_length(resource::text) OPERATOR(pg_catalog.>) 1048576 THEN
        RAISE EXCEPTION 'FHIR Consent resource is too large'
            USING ERRCODE = '22023', DETAIL = 'The limit is 1 MB.';
    END IF;
    IF pg_catalog.jsonb_typeof(resource) OPERATOR(pg_catalog.<>) 'object' THEN
        PERFORM agentauth._fhir_fail('$', 'expected a JSON object');
    END IF;
    -- a modifier element (1.1: ignored)
    IF resource OPERATOR(pg_catalog.?) 'implicitRules' THEN
        PERFORM agentauth._fhir_fail('$.implicitRules', 'implicit rules modify the consent and are not understood');
    END IF;
    IF agentauth._fhir_string(resource OPERATOR(pg_catalog.->) 'resourceType', '$.resourceType', true)
       OPERATOR(pg_catalog.<>) 'Consent' THEN
        PERFORM agentauth._fhir_fail('$.resourceType', 'the resource is not a Consent');
    END IF;
    k := agentauth._fhir_modifier_at(resource, '$');
    IF k IS NOT NULL THEN
        PERFORM agentauth._fhir_fail(k, 'a modifier extension is not understood');
    END IF;

    r5 := resource OPERATOR(pg_catalog.?|) ARRAY['decision', 'subject', 'grantee', 'grantor', 'controller', 'manager']
          OR pg_catalog.jsonb_typeof(resource OPERATOR(pg_catalog.->) 'provision') IS NOT DISTINCT FROM 'array';

    -- status: an active consent is in force; an inactive, entered in
    -- error, rejected (R4) or not-done (R5) one only ends what an earlier
    -- import of it recorded (1.1: a rejected or not-done one was refused,
    -- and the earlier import's permits stayed in force)
    v_status := agentauth._fhir_string(resource OPERATOR(pg_catalog.->) 'status', '$.status', true);
    IF v_status OPERATOR(pg_catalog.<>) ALL (ARRAY['active', 'inactive', 'entered-in-error', 'rejected', 'not-done']) THEN
        PERFORM agentauth._fhir_fail('$.status', pg_catalog.format('status is "%s"; only an active consent is in force', v_status),
            'A draft or proposed consent grants nothing and cannot be imported.');
    END IF;
    active := v_status OPERATOR(pg_catalog.=) 'active';
    k := agentauth._fhir_string(resource OPERATOR(pg_catalog.->) 'id', '$.id');
    IF k IS NOT NULL AND k !~ E'^[A-Za-z0-9\\-\\.]{1,64}$' THEN
        PERFORM agentauth._fhir_fail('$.id', 'not a FHIR id (1 to 64 of A-Z, a-z, 0-9, "-" and ".")');
    END IF;
    IF k IS NULL AND NOT active THEN
        PERFORM agentauth._fhir_fail('$.id', pg_catalog.format('a consent that is %s needs its id to end an earlier import', v_status));
    END IF;
    source := 'Consent/' OPERATOR(pg_catalog.||) COALESCE(k, '(no id)');
    -- meta.lastUpdated, when given, must be an instant (the import keeps it
    -- to refuse an older version: _fhir_consent_version)
    PERFORM agentauth._fhir_last_updated(resource);

    -- scope (R4): a privacy consent
    IF NOT r5 THEN
        IF NOT resource OPERATOR(pg_catalog.?) 'scope' THEN
            PERFORM agentauth._fhir_fail('$.scope', 'required element is missing');
        END IF;
        known := false;
        FOR c IN SELECT * FROM agentauth._fhir_codings(resource OPERATOR(pg_catalog.->) 'scope', '$.scope', true) LOOP
            IF c.code OPERATOR(pg_catalog.=) 'patient-privacy' THEN
                known := true;
            END IF;
        END LOOP;
        IF NOT known THEN
            PERFORM agentauth._fhir_fail('$.scope', 'only a patient-privacy consent governs access to data',
                'Consents to treatment, research participation or advance directives are not access rules.');
        END IF;
    END IF;

    -- the patient
    k := CASE WHEN r5 THEN 'subject' ELSE 'patient' END;
    ref := resource OPERATOR(pg_catalog.->) k;
    IF ref IS NULL THEN
        PERFORM agentauth._fhir_fail('$.' OPERATOR(pg_catalog.||) k, 'required element is missing');
    END IF;
    patient := agentauth._fhir_patient(ref, '$.' OPERATOR(pg_catalog.||) k);
    IF pg_catalog.length(patient) OPERATOR(pg_catalog.>) 200 THEN
        PERFORM agentauth._fhir_fail('$.' OPERATOR(pg_catalog.||) k, 'the patient id is longer than 200 characters');
    END IF;

    IF NOT active THEN
        rules := '{}';
        RETURN;
    END IF;

    -- the base decision
    IF r5 THEN
        base.decision := agentauth._fhir_string(resource OPERATOR(pg_catalog.->) 'decision', '$.decision', true);
        IF base.decision OPERATOR(pg_catalog.<>) ALL (ARRAY['permit', 'deny']) THEN
            PERFORM agentauth._fhir_fail('$.decision', pg_catalog.format('decision "%s" is neither permit nor deny', base.decision));
        END IF;
        -- R5 grantee: the parties the consent grants to, as actors of every provision
        i := 0;
        FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(
                     agentauth._fhir_array(resource OPERATOR(pg_catalog.->) 'grantee', '$.grantee')) LOOP
            base.actors := COALESCE(base.actors, '{}') OPERATOR(pg_catalog.||)
                agentauth._fhir_map_actor(e, pg_catalog.format('$.grantee[%s]', i));
            i := i OPERATOR(pg_catalog.+) 1;
        END LOOP;
    ELSE
        known := false;
        IF resource OPERATOR(pg_catalog.?) 'policyRule' THEN
            FOR c IN SELECT * FROM agentauth._fhir_codings(resource OPERATOR(pg_catalog.->) 'policyRule', '$.policyRule', true) LOOP
                IF c.system IS NOT DISTINCT FROM 'http://terminology.hl7.org/CodeSystem/v3-ActCode' THEN
                    k := CASE c.code WHEN 'OPTIN' THEN 'permit' WHEN 'OPTINR' THEN 'permit'
                                     WHEN 'OPTOUT' THEN 'deny' WHEN 'OPTOUTE' THEN 'deny' END;
                    -- 1.1: the last coding won
                    IF k IS NOT NULL AND known AND base.decision OPERATOR(pg_catalog.<>) k THEN
                        PERFORM agentauth._fhir_fail('$.policyRule', 'the policy rules contradict each other (an opt-in and an opt-out)');
                    END IF;
                    IF k IS NOT NULL THEN
                        base.decision := k;
                        known := true;
                    END IF;
                END IF;
            END LOOP;
            IF NOT known AND NOT (resource OPERATOR(pg_catalog.#>) '{provision}') OPERATOR(pg_catalog.?) 'type' THEN
                PERFORM agentauth._fhir_fail('$.policyRule', 'the policy rule is neither OPTIN nor OPTOUT (v3-ActCode)',
                    'Give the root provision a type (permit or deny).');
            END IF;
        END IF;
    END IF;

    -- the provisions.  R5: the consent itself is the root rule -- its
    -- decision over everything, in its period, for its grantees -- and
    -- every provision an exception to the rule it is nested in (the
    -- opposite decision); an exception to a deny cuts the deny.
    IF r5 THEN
        rules := ARRAY(SELECT t FROM agentauth._fhir_tree(
            CASE WHEN resource OPERATOR(pg_catalog.?) 'provision'
                THEN pg_catalog.jsonb_build_object('provision',
                    agentauth._fhir_array(resource OPERATOR(pg_catalog.->) 'provision', '$.provision'))
                ELSE '{}'::jsonb END
            OPERATOR(pg_catalog.||) CASE WHEN resource OPERATOR(pg_catalog.?) 'period'
                THEN pg_catalog.jsonb_build_object('period', resource OPERATOR(pg_catalog.->) 'period')
                ELSE '{}'::jsonb END,
            '$', base, true, true) t);
    ELSE
        -- a provision that says nothing ({}, or an id and extensions
        -- only) is no provision: under OPTIN it was a permit of every
        -- purpose, class and action (1.1)
        IF NOT resource OPERATOR(pg_catalog.?) 'provision'
           OR (pg_catalog.jsonb_typeof(resource OPERATOR(pg_catalog.->) 'provision') OPERATOR(pg_catalog.=) 'object'
               AND NOT EXISTS (SELECT FROM pg_catalog.jsonb_object_keys(resource OPERATOR(pg_catalog.->) 'provision') pk(key)
                                WHERE pk.key OPERATOR(pg_catalog.<>) ALL (ARRAY['id', 'extension']))) THEN
            IF base.decision IS NULL THEN
                PERFORM agentauth._fhir_fail('$.provision', 'required: a consent with neither provision nor OPTIN/OPTOUT policy rule says nothing');
            END IF;
            -- (1.1) an opt-in with no provision would permit every purpose,
            -- class and action: what it opts in to is the policy it names,
            -- which is not read here
            IF base.decision OPERATOR(pg_catalog.=) 'permit' THEN
                PERFORM agentauth._fhir_fail('$.provision',
                    'required: an OPTIN consent without provisions would permit every purpose, data class and action',
                    'State what the policy permits in a provision (purpose, class, action).');
            END IF;
            base.path := '$';
            base.valid := '(,)'::tstzrange;
            rules := ARRAY[base];
        ELSE
            IF base.decision IS NULL AND NOT (resource OPERATOR(pg_catalog.->) 'provision') OPERATOR(pg_catalog.?) 'type' THEN
                PERFORM agentauth._fhir_fail('$.provision.type', 'required when the consent has no OPTIN/OPTOUT policy rule');
            END IF;
            -- (1.1) a permit at the root of an opt-out would replace the
            -- opt-out: R4 gives the root provision no type, and an exception
            -- to the policy rule is a provision nested in it
            IF base.decision OPERATOR(pg_catalog.=) 'deny' AND
               (resource OPERATOR(pg_catalog.#>>) '{provision,type}') OPERATOR(pg_catalog.=) 'permit' THEN
                PERFORM agentauth._fhir_fail('$.provision.type',
                    'a permit at the root of an OPTOUT consent would replace the opt-out',
                    'Nest the permitted exception in a root provision without a type.');
            END IF;
            rules := ARRAY(SELECT t FROM agentauth._fhir_tree(
                resource OPERATOR(pg_catalog.->) 'provision', '$.provision', base, false, true) t);
        END IF;
    END IF;
    IF pg_catalog.cardinality(rules) OPERATOR(pg_catalog.=) 0 THEN
        PERFORM agentauth._fhir_fail('$.provision', 'the consent yields no provision');
    END IF;
    -- a rule is recorded once per actor: the cap counts what is recorded
    -- (1.1 counted rules: 3,000 actors on one rule recorded 3,000)
    IF (SELECT pg_catalog.sum(GREATEST(COALESCE(pg_catalog.cardinality(r.actors), 0), 1))
          FROM pg_catalog.unnest(rules) r) OPERATOR(pg_catalog.>) 1000 THEN
        PERFORM agentauth._fhir_fail('$.provision', 'more than 1000 provisions',
            'A rule is recorded once for each of its actors.  Split the consent, or name fewer actors.');
    END IF;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_consent_rules(jsonb) FROM PUBLIC;

-- The version of each FHIR Consent imported, by its id: the patient it
-- named and its meta.lastUpdated (NULL when it had none).  A version older
-- than the one imported -- a message delivered late, a replay -- is
-- refused instead of replacing the newer one: an "inactive" version that
-- withdrew a permit, then the older "active" one again, would bring the
-- permit back (1.1: it did).  A version that names another patient (a
-- Consent filed against the wrong patient, corrected) ends the provisions
-- the earlier one recorded for its patient (1.1: they stayed in force).
-- Dumped with the extension's other catalogs.
CREATE TABLE agentauth.fhir_consent_version (
    source       text PRIMARY KEY,      -- 'Consent/<id>'
    patient      text NOT NULL,         -- the patient of the version imported
    last_updated timestamptz,           -- its meta.lastUpdated
    content      bytea NOT NULL,        -- SHA-256 of the resource less its meta
    active       boolean NOT NULL,      -- its status is active
    undated_withdrawal boolean NOT NULL DEFAULT false, -- since withdrawn by a copy without a time
    imported_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
SELECT pg_catalog.pg_extension_config_dump('agentauth.fhir_consent_version', '');
REVOKE ALL ON agentauth.fhir_consent_version FROM PUBLIC;
GRANT SELECT ON agentauth.fhir_consent_version TO agentauth_consent_manager, agentauth_auditor;

-- A Consent's meta.lastUpdated: an instant (date, time and zone), or NULL
-- when the resource has none.
CREATE FUNCTION agentauth._fhir_last_updated(resource jsonb) RETURNS timestamptz
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    m jsonb := resource OPERATOR(pg_catalog.->) 'meta';
    s text;
    t timestamptz;
BEGIN
    IF m IS NULL THEN
        RETURN NULL;
    END IF;
    IF pg_catalog.jsonb_typeof(m) OPERATOR(pg_catalog.<>) 'object' THEN
        PERFORM agentauth._fhir_fail('$.meta', 'expected a Meta object');
    END IF;
    s := agentauth._fhir_string(m OPERATOR(pg_catalog.->) 'lastUpdated', '$.meta.lastUpdated');
    IF s IS NULL THEN
        RETURN NULL;
    END IF;
    IF s !~ E'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$' THEN
        PERFORM agentauth._fhir_fail('$.meta.lastUpdated', pg_catalog.format('"%s" is not a FHIR instant', s),
            'Write YYYY-MM-DDThh:mm:ss with a zone (Z or +hh:mm).');
    END IF;
    SELECT x.t INTO t
      FROM agentauth._fhir_time(m OPERATOR(pg_catalog.->) 'lastUpdated', '$.meta.lastUpdated', false) x;
    RETURN t;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_last_updated(jsonb) FROM PUBLIC;

-- Take this version of a Consent (source, patient; resource: the Consent)
-- as the one imported -- true: the caller replaces the earlier import --
-- or say it is the version imported, delivered again (false: nothing to
-- do; a permit withdrawn by hand since stays withdrawn), or refuse it
-- (22023, nothing changed):
--   * meta.lastUpdated later than now (5 minutes' allowance for clocks):
--     every real version after it would look older;
--   * older than the version imported;
--   * the same meta.lastUpdated, other content: which is newer cannot be
--     told;
--   * no meta.lastUpdated where the version imported had one: an active
--     copy, or an inactive one that would end a deny in force (an inactive
--     one that ends only permits is taken, failing closed: the caller
--     withdraws its patient's, and the record notes the undated
--     withdrawal);
--   * an active version with meta.lastUpdated after a withdrawal without
--     one (send that withdrawal again with its time).
-- The version on record without a time, delivered again with its time
-- and the same content, only gets the time.
-- When the version imported named another patient (a corrected Consent),
-- that patient's provisions of it still in force are withdrawn (audited);
-- the caller replaces this patient's.  The row is locked to the end of the
-- transaction (a first import's row by its insertion): two imports of one
-- Consent are ordered.  path: the JSON path of the resource, for errors.
CREATE FUNCTION agentauth._fhir_consent_version(v_source text, v_patient text,
                                                resource jsonb, path text)
    RETURNS boolean
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    t         timestamptz := agentauth._fhir_last_updated(resource);
    digest    bytea := pg_catalog.sha256(pg_catalog.convert_to(
                        (resource OPERATOR(pg_catalog.-) 'meta')::text, 'UTF8'));
    is_active boolean := (resource OPERATOR(pg_catalog.->>) 'status') OPERATOR(pg_catalog.=) 'active';
    lu_at     text := path OPERATOR(pg_catalog.||) '.meta.lastUpdated';
    prev      record;
    old       uuid;
BEGIN
    IF v_source OPERATOR(pg_catalog.=) 'Consent/(no id)' THEN
        RETURN true;
    END IF;
    IF t OPERATOR(pg_catalog.>) (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) '5 minutes'::interval) THEN
        PERFORM agentauth._fhir_fail(lu_at,
            pg_catalog.format('%s is in the future', pg_catalog.to_json(t) OPERATOR(pg_catalog.#>>) '{}'),
            'Every later version would look older than it and be refused; check the sending system''s clock.');
    END IF;
    -- the first import of this Consent: its row, inserted (a concurrent
    -- first import waits for this one, then finds the row and compares)
    INSERT INTO agentauth.fhir_consent_version AS f (source, patient, last_updated, content, active)
    VALUES (v_source, v_patient, t, digest, is_active)
    ON CONFLICT (source) DO NOTHING;
    IF FOUND THEN
        RETURN true;
    END IF;
    SELECT f.patient, f.last_updated, f.content, f.active, f.undated_withdrawal INTO prev
      FROM agentauth.fhir_consent_version f
     WHERE f.source OPERATOR(pg_catalog.=) v_source
       FOR UPDATE;
    IF prev.patient OPERATOR(pg_catalog.=) v_patient AND prev.content OPERATOR(pg_catalog.=) digest
       AND (prev.last_updated IS NOT DISTINCT FROM t OR prev.last_updated IS NULL) THEN
        -- the version on record delivered again (with its time, where it
        -- had none: the time is kept)
        UPDATE agentauth.fhir_consent_version f SET last_updated = t
         WHERE f.source OPERATOR(pg_catalog.=) v_source AND f.last_updated IS NULL;
        RETURN false;
    END IF;
    IF t IS NULL AND prev.last_updated IS NOT NULL THEN
        IF is_active OR EXISTS (
               SELECT FROM agentauth.consent c
                WHERE c.patient OPERATOR(pg_catalog.=) v_patient
                  AND c.withdrawn_at IS NULL AND c.decision OPERATOR(pg_catalog.=) 'deny'
                  AND pg_catalog.starts_with(c.source, v_source OPERATOR(pg_catalog.||) ' ')) THEN
            PERFORM agentauth._fhir_fail(lu_at,
                pg_catalog.format('%s was imported as last updated %s; this copy has no meta.lastUpdated, so which is newer cannot be told',
                                  v_source, pg_catalog.to_json(prev.last_updated) OPERATOR(pg_catalog.#>>) '{}'),
                'Send the Consent with its meta.lastUpdated, as its server gives it.');
        END IF;
        -- the inactive version on record, delivered again without its time
        IF prev.content OPERATOR(pg_catalog.=) digest AND NOT prev.active THEN
            RETURN false;
        END IF;
        -- a withdrawal of permits only, of unknown time: taken (the caller
        -- ends its patient's permits); a dated active version after it
        -- cannot be ordered against it
        IF v_patient OPERATOR(pg_catalog.=) prev.patient THEN
            UPDATE agentauth.fhir_consent_version f SET undated_withdrawal = true
             WHERE f.source OPERATOR(pg_catalog.=) v_source;
        END IF;
        RETURN true;
    END IF;
    IF t IS NOT NULL AND is_active AND
       (prev.undated_withdrawal OR (prev.last_updated IS NULL AND NOT prev.active)) THEN
        PERFORM agentauth._fhir_fail(lu_at,
            pg_catalog.format('%s was withdrawn by a copy without meta.lastUpdated, so which is newer cannot be told',
                              v_source),
            'Send that withdrawal again with its meta.lastUpdated, or record the provisions with record_consent.');
    END IF;
    IF t OPERATOR(pg_catalog.<) prev.last_updated THEN
        PERFORM agentauth._fhir_fail(lu_at,
            pg_catalog.format('this version of %s (last updated %s) is older than the one imported (last updated %s)',
                              v_source, pg_catalog.to_json(t) OPERATOR(pg_catalog.#>>) '{}',
                              pg_catalog.to_json(prev.last_updated) OPERATOR(pg_catalog.#>>) '{}'),
            'A version delivered late or sent again would undo the newer one; nothing was changed.');
    ELSIF t OPERATOR(pg_catalog.=) prev.last_updated THEN
        PERFORM agentauth._fhir_fail(lu_at,
            pg_catalog.format('another version of %s was imported with the same meta.lastUpdated (%s)',
                              v_source, pg_catalog.to_json(t) OPERATOR(pg_catalog.#>>) '{}'),
            'Two versions of one instant cannot be ordered; send the newer one with its own meta.lastUpdated.');
    END IF;
    IF prev.patient OPERATOR(pg_catalog.<>) v_patient THEN
        FOREACH old IN ARRAY agentauth._fhir_consent_in_force(v_source, prev.patient) LOOP
            PERFORM agentauth.withdraw_consent(old,
                v_source OPERATOR(pg_catalog.||) ' now names another patient');
        END LOOP;
    END IF;
    UPDATE agentauth.fhir_consent_version f
       SET patient = v_patient, last_updated = t, content = digest,
           active = is_active, undated_withdrawal = false, imported_at = pg_catalog.now()
     WHERE f.source OPERATOR(pg_catalog.=) v_source;
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_consent_version(text, text, jsonb, text) FROM PUBLIC;

-- The period to record a rule for: an open start means "from now"
-- (record_consent's default); NULL when the period has already ended, and
-- the rule records nothing (the version still ends what the earlier import
-- granted; 1.1: an error without its path, and the earlier import's permit
-- stayed in force).
CREATE FUNCTION agentauth._fhir_rule_range(valid tstzrange) RETURNS tstzrange
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE
        WHEN NOT pg_catalog.lower_inf(valid) THEN valid
        WHEN NOT pg_catalog.upper_inf(valid) AND
             (pg_catalog.upper(valid) OPERATOR(pg_catalog.<) pg_catalog.now() OR
              (pg_catalog.upper(valid) OPERATOR(pg_catalog.=) pg_catalog.now() AND NOT pg_catalog.upper_inc(valid)))
        THEN NULL
        ELSE pg_catalog.tstzrange(pg_catalog.now(), pg_catalog.upper(valid),
                 CASE WHEN pg_catalog.upper_inc(valid) THEN '[]' ELSE '[)' END) END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_rule_range(tstzrange) FROM PUBLIC;

-- The provisions of a Consent's import still in force for the patient (a
-- version delivered again returns them).
CREATE FUNCTION agentauth._fhir_consent_in_force(v_source text, v_patient text) RETURNS uuid[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT ARRAY(SELECT c.id FROM agentauth.consent c
                  WHERE c.patient OPERATOR(pg_catalog.=) v_patient
                    AND c.withdrawn_at IS NULL
                    AND pg_catalog.starts_with(c.source, v_source OPERATOR(pg_catalog.||) ' ')
                  ORDER BY c.recorded_at, c.id)
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_consent_in_force(text, text) FROM PUBLIC;

-- import_fhir_consent(resource): store the rules through record_consent,
-- one provision per rule and actor; returns their ids in document order.
-- A Bundle of Consents is imported entry by entry (import_fhir_consent_bundle).
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.import_fhir_consent(resource jsonb) RETURNS uuid[]
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    v     record;
    old   uuid;
    r     agentauth._fhir_rule;
    a     text;
    ids   uuid[] := '{}';
    id    uuid;
    valid tstzrange;
    msg   text;
    det   text;
    hnt   text;
    st    text;
BEGIN
    PERFORM agentauth._require_role('agentauth_consent_manager');
    PERFORM agentauth._fhir_vocabulary_lock();
    -- a Bundle of Consents: every provision of every entry, in order
    IF pg_catalog.jsonb_typeof(resource) IS NOT DISTINCT FROM 'object'
       AND (resource OPERATOR(pg_catalog.->>) 'resourceType') IS NOT DISTINCT FROM 'Bundle' THEN
        RETURN ARRAY(SELECT u.c FROM agentauth.import_fhir_consent_bundle(resource) AS b,
                                     pg_catalog.unnest(b.consents) WITH ORDINALITY AS u(c, o)
                      ORDER BY b.entry, u.o);
    END IF;
    v := agentauth._fhir_consent_rules(resource);
    -- not a version older than the one imported (nor one that cannot be
    -- ordered against it); the one imported, delivered again: its
    -- provisions in force, nothing changed
    IF NOT agentauth._fhir_consent_version(v.source, v.patient, resource, '$') THEN
        RETURN agentauth._fhir_consent_in_force(v.source, v.patient);
    END IF;

    -- an earlier import of the same Consent (same id, same patient) is
    -- replaced: its provisions still in force are withdrawn, audited
    IF v.source OPERATOR(pg_catalog.<>) 'Consent/(no id)' THEN
        FOREACH old IN ARRAY agentauth._fhir_consent_in_force(v.source, v.patient) LOOP
            PERFORM agentauth.withdraw_consent(old,
                CASE WHEN v.active THEN 'replaced by a new import of ' OPERATOR(pg_catalog.||) v.source
                     ELSE v.source OPERATOR(pg_catalog.||) ' is no longer active' END);
        END LOOP;
    END IF;
    FOREACH r IN ARRAY v.rules LOOP
        valid := agentauth._fhir_rule_range(r.valid);
        CONTINUE WHEN valid IS NULL;
        FOREACH a IN ARRAY COALESCE(r.actors, ARRAY[NULL::text]) LOOP
            BEGIN
                id := agentauth.record_consent(
                    patient => v.patient,
                    decision => r.decision,
                    purposes => r.purposes,
                    data_classes => r.classes,
                    actions => COALESCE(r.actions, ARRAY['read', 'insert', 'update', 'delete']),
                    grantee_agent => CASE WHEN a OPERATOR(pg_catalog.~~) 'a:%'
                                          THEN pg_catalog.substr(a, 3)::uuid END,
                    grantee_owner => CASE WHEN a OPERATOR(pg_catalog.~~) 'o:%'
                                          THEN pg_catalog.substr(a, 3) END,
                    valid => valid,
                    source => v.source OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) r.path);
                PERFORM agentauth._consent_open_note(id, r.open);
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                        hnt = PG_EXCEPTION_HINT, st = RETURNED_SQLSTATE;
                PERFORM agentauth._raise_naming_patient(st,
                    pg_catalog.format('cannot import FHIR Consent: %s at %s', msg, r.path),
                    NULLIF(det, ''), NULLIF(hnt, ''));
            END;
            ids := ids OPERATOR(pg_catalog.||) id;
        END LOOP;
    END LOOP;
    RETURN ids;
END
$$;
REVOKE ALL ON FUNCTION agentauth.import_fhir_consent(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.import_fhir_consent(jsonb) TO agentauth_consent_manager;
