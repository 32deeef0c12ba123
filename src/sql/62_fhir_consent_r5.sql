
-- FHIR R5 Consent, the parts beyond R4 (used by 62_fhir_consent.sql):
-- provision.data, and the cut of a deny around its permit exceptions.

-- the data classes of a FHIR resource type, or NULL
CREATE FUNCTION agentauth._fhir_type_classes(code text) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT CASE code
        WHEN 'Patient' THEN ARRAY['demographics', 'contact', 'identifiers']
        WHEN 'RelatedPerson' THEN ARRAY['contact']
        WHEN 'Encounter' THEN ARRAY['encounter']
        WHEN 'EpisodeOfCare' THEN ARRAY['encounter']
        WHEN 'Procedure' THEN ARRAY['encounter']
        WHEN 'Condition' THEN ARRAY['diagnosis']
        WHEN 'AllergyIntolerance' THEN ARRAY['diagnosis']
        WHEN 'Observation' THEN ARRAY['lab', 'vital_signs']
        WHEN 'DiagnosticReport' THEN ARRAY['lab', 'imaging']
        WHEN 'Specimen' THEN ARRAY['lab']
        WHEN 'Medication' THEN ARRAY['medication']
        WHEN 'MedicationRequest' THEN ARRAY['medication']
        WHEN 'MedicationStatement' THEN ARRAY['medication']
        WHEN 'MedicationAdministration' THEN ARRAY['medication']
        WHEN 'MedicationDispense' THEN ARRAY['medication']
        WHEN 'Immunization' THEN ARRAY['medication']
        WHEN 'ImagingStudy' THEN ARRAY['imaging']
        WHEN 'Media' THEN ARRAY['imaging']
        WHEN 'DocumentReference' THEN ARRAY['clinical_note']
        WHEN 'Composition' THEN ARRAY['clinical_note']
        WHEN 'ClinicalImpression' THEN ARRAY['clinical_note']
        WHEN 'Claim' THEN ARRAY['billing']
        WHEN 'ClaimResponse' THEN ARRAY['billing']
        WHEN 'ExplanationOfBenefit' THEN ARRAY['billing']
        WHEN 'Coverage' THEN ARRAY['billing']
        WHEN 'Account' THEN ARRAY['billing']
        WHEN 'Invoice' THEN ARRAY['billing']
        END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_type_classes(text) FROM PUBLIC;

-- provision.data (R4 and R5): particular resources.  agentauth decides by
-- patient, class, purpose and action, not by resource, so a deny of
-- particular data is widened to the whole of the classes of their types
-- (fail closed: more is withheld, never less); a permit of particular data
-- would grant the whole class and is refused.  With class, resourceType or
-- securityLabel in the same provision (classes, NULL when none), the
-- provision covers the data of those classes only.
CREATE FUNCTION agentauth._fhir_data_classes(data jsonb, path text, decision text, classes text[])
    RETURNS text[]
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    e       jsonb;
    i       int := 0;
    p       text;
    meaning text;
    ref     text;
    m       text[];
    part    text[];
    r       text[] := '{}';
BEGIN
    IF decision OPERATOR(pg_catalog.=) 'permit' THEN
        PERFORM agentauth._fhir_fail(path,
            'a permit of particular resources cannot be enforced: it would grant every resource of their data classes',
            'agentauth decides by patient, data class, purpose and action.  Permit a class (class, resourceType or securityLabel) instead.');
    END IF;
    FOR e IN SELECT * FROM pg_catalog.jsonb_array_elements(agentauth._fhir_array(data, path)) LOOP
        p := pg_catalog.format('%s[%s]', path, i);
        IF pg_catalog.jsonb_typeof(e) OPERATOR(pg_catalog.<>) 'object' THEN
            PERFORM agentauth._fhir_fail(p, 'expected a data object (meaning and reference)');
        END IF;
        meaning := agentauth._fhir_string(e OPERATOR(pg_catalog.->) 'meaning', p OPERATOR(pg_catalog.||) '.meaning', true);
        IF meaning OPERATOR(pg_catalog.=) 'authoredby' THEN
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.meaning',
                'data authored by a party cannot be told apart (agentauth does not know who wrote a row)');
        ELSIF meaning OPERATOR(pg_catalog.=) ANY (ARRAY['related', 'dependents']) THEN
            -- the resources it refers to, or that refer to it, are of any
            -- class (1.1: denied as the referenced resource's class alone)
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.meaning',
                pg_catalog.format('data "%s" to a resource cannot be told apart by data class', meaning),
                'Deny the data classes themselves (class, resourceType or securityLabel).');
        ELSIF meaning OPERATOR(pg_catalog.<>) 'instance' THEN
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.meaning',
                pg_catalog.format('unknown meaning "%s" (instance, related, dependents, authoredby)', meaning));
        END IF;
        IF pg_catalog.jsonb_typeof(e OPERATOR(pg_catalog.->) 'reference') IS DISTINCT FROM 'object' THEN
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.reference', 'expected a Reference');
        END IF;
        ref := agentauth._fhir_string(e OPERATOR(pg_catalog.#>) '{reference,reference}', p OPERATOR(pg_catalog.||) '.reference.reference', true);
        m := pg_catalog.regexp_match(ref, E'^(?:.*/)?([A-Z][A-Za-z]{1,63})/[A-Za-z0-9\\-\\.]{1,64}(?:/_history/[A-Za-z0-9\\-\\.]{1,64})?$');
        IF m IS NULL THEN
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.reference.reference',
                pg_catalog.format('"%s" is not a reference to a resource (Type/id)', ref));
        END IF;
        part := agentauth._fhir_type_classes(m[1]);
        IF part IS NULL THEN
            PERFORM agentauth._fhir_fail(p OPERATOR(pg_catalog.||) '.reference.reference',
                pg_catalog.format('resource type "%s" has no agentauth data class', m[1]),
                'A deny of particular data is enforced as a deny of their data class.');
        END IF;
        r := r OPERATOR(pg_catalog.||) part;
        i := i OPERATOR(pg_catalog.+) 1;
    END LOOP;
    IF i OPERATOR(pg_catalog.=) 0 THEN
        PERFORM agentauth._fhir_fail(path, 'an empty data list names nothing');
    END IF;
    IF classes IS NOT NULL THEN
        SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO r
          FROM pg_catalog.unnest(r) x WHERE x OPERATOR(pg_catalog.=) ANY (classes);
        IF r IS NULL THEN
            PERFORM agentauth._fhir_fail(path, 'the data of this provision lie outside its classes, resource types and security labels');
        END IF;
    END IF;
    SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO r FROM pg_catalog.unnest(r) x;
    RETURN r;
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_data_classes(jsonb, text, text, text[]) FROM PUBLIC;

-- b minus e, for a deny b and a permit e nested in it (same actors and
-- period): the parts of b outside e, as boxes of purposes x data classes x
-- actions.  NULL is "any": expanded to the rows of agentauth.purpose (not
-- reserved), agentauth.data_class, or the four actions, only where e
-- narrows that dimension.  A purpose or class list so made, "every one
-- but e's", is marked open: it grows with each purpose or class a site
-- adds later (1.1: an opt-out cut around its exceptions did not deny a
-- purpose added after the import).
CREATE FUNCTION agentauth._fhir_box_minus(b agentauth._fhir_rule, e agentauth._fhir_rule)
    RETURNS SETOF agentauth._fhir_rule
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    dim    text;
    bl     text[];
    el     text[];
    inside text[];
    outside text[];
    rest   agentauth._fhir_rule := b;
    part   agentauth._fhir_rule;
    open   boolean;
BEGIN
    -- no overlap in some dimension: b stays whole
    IF (b.purposes IS NOT NULL AND e.purposes IS NOT NULL AND NOT b.purposes OPERATOR(pg_catalog.&&) e.purposes)
       OR (b.classes IS NOT NULL AND e.classes IS NOT NULL AND NOT b.classes OPERATOR(pg_catalog.&&) e.classes)
       OR (b.actions IS NOT NULL AND e.actions IS NOT NULL AND NOT b.actions OPERATOR(pg_catalog.&&) e.actions) THEN
        RETURN NEXT b;
        RETURN;
    END IF;
    FOREACH dim IN ARRAY ARRAY['purposes', 'classes', 'actions'] LOOP
        el := CASE dim WHEN 'purposes' THEN e.purposes WHEN 'classes' THEN e.classes ELSE e.actions END;
        CONTINUE WHEN el IS NULL;       -- e covers all of it
        bl := CASE dim WHEN 'purposes' THEN rest.purposes WHEN 'classes' THEN rest.classes ELSE rest.actions END;
        open := dim OPERATOR(pg_catalog.<>) 'actions'
                AND (bl IS NULL OR dim OPERATOR(pg_catalog.=) ANY (COALESCE(rest.open, '{}')));
        IF bl IS NULL THEN
            bl := CASE dim
                WHEN 'purposes' THEN (SELECT pg_catalog.array_agg(p.code ORDER BY p.code) FROM agentauth.purpose p WHERE NOT p.reserved)
                WHEN 'classes' THEN (SELECT pg_catalog.array_agg(d.name ORDER BY d.name) FROM agentauth.data_class d)
                ELSE ARRAY['delete', 'insert', 'read', 'update'] END;
        END IF;
        SELECT pg_catalog.array_agg(x ORDER BY x) FILTER (WHERE x OPERATOR(pg_catalog.<>) ALL (el)),
               pg_catalog.array_agg(x ORDER BY x) FILTER (WHERE x OPERATOR(pg_catalog.=) ANY (el))
          INTO outside, inside
          FROM pg_catalog.unnest(bl) x;
        -- an exception that names every purpose (or class) there is, one
        -- by one, leaves of "every one" nothing today but whatever is added
        -- later: a deny of nothing yet cannot be stored (1.1: the rest was
        -- kept as today's list, and a purpose added later was not denied)
        IF (open OR (dim OPERATOR(pg_catalog.=) 'classes' AND 'sensitive' OPERATOR(pg_catalog.=) ANY (COALESCE(rest.open, '{}'))))
           AND outside IS NULL THEN
            PERFORM agentauth._fhir_fail(e.path,
                pg_catalog.format('this exception names every %s there is, one by one', CASE dim WHEN 'purposes' THEN 'purpose' ELSE 'data class' END),
                'Leave the element out to mean every one (then it covers those added later too), or name fewer.');
        END IF;
        IF outside IS NOT NULL THEN
            part := rest;
            CASE dim WHEN 'purposes' THEN part.purposes := outside;
                     WHEN 'classes' THEN part.classes := outside;
                     ELSE part.actions := outside; END CASE;
            IF open THEN
                part.open := ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(COALESCE(rest.open, '{}') OPERATOR(pg_catalog.||) dim) x ORDER BY x);
            END IF;
            RETURN NEXT part;
        END IF;
        CASE dim WHEN 'purposes' THEN rest.purposes := inside;
                 WHEN 'classes' THEN rest.classes := inside;
                 ELSE rest.actions := inside; END CASE;
        -- (what lies inside e's list is a list of its own)
        rest.open := pg_catalog.array_remove(rest.open, dim);
        IF dim OPERATOR(pg_catalog.=) 'classes' THEN
            rest.open := pg_catalog.array_remove(rest.open, 'sensitive');
        END IF;
    END LOOP;
    -- what is left of rest lies inside e: permitted
END
$$;
REVOKE ALL ON FUNCTION agentauth._fhir_box_minus(agentauth._fhir_rule, agentauth._fhir_rule) FROM PUBLIC;
