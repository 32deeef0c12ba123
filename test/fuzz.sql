-- The generated fuzz test's calls (t/095_fuzz.pl).  For every function of
-- the extension's schema, as pg_proc lists it: one call with typical
-- arguments, one with every argument NULL, and for each argument in turn
-- each odd value of its type (NULL, empty, 1 MB, unicode, control
-- characters, deep and wide JSON, odd arrays, +-infinity, extreme numbers,
-- OIDs of nothing) with the other arguments typical.  fz_run() runs each
-- call in a subtransaction that is always undone, and returns the calls
-- whose error is internal (class XX), a timeout, or without a SQLSTATE.

CREATE TABLE fz_value (type regtype, typical text, odd text[]);
INSERT INTO fz_value VALUES
('text', NULL, ARRAY['NULL', '''''', 'repeat(''x'', 1048576)', '''é漢字😀 ₂ ﷽''',
    'E''\x01\x02\x7f''', '''   ''', '''aat_'' || repeat(''A'', 43)', '''*''',
    '''x''''); --''', 'repeat(''é'', 300000)']),
('text[]', NULL, ARRAY['NULL', '''{}''', '''{NULL}''', '''{""}''',
    'array_fill(''x''::text, ARRAY[2000])', '''{{a,b},{c,d}}''',
    'ARRAY[repeat(''x'', 1048576)]', '''[5:6]={a,b}''', 'ARRAY[''*:*'', ''lab:write'', ''hiv:read'']']),
('jsonb', '''{}''', ARRAY['NULL', '''null''', '''[]''', '''"s"''', '''0''',
    '(repeat(''['', 5000) || repeat('']'', 5000))::jsonb',
    '(SELECT jsonb_object_agg(i::text, i) FROM generate_series(1, 20000) i)',
    '''{"resourceType": "Consent"}''', '''{"resourceType": "Bundle", "entry": [{}, null, 1]}''',
    '''{"resourceType": "Consent", "status": "active", "patient": {"reference": "Patient/P1"}, "provision": {"provision": [{"type": "deny", "provision": [{}]}]}}''',
    'jsonb_build_object(''resourceType'', ''Consent'', ''id'', repeat(''x'', 1048576))']),
('uuid', 'gen_random_uuid()', ARRAY['NULL', '''00000000-0000-0000-0000-000000000000''']),
('uuid[]', '''{}''', ARRAY['NULL', '''{NULL}''', 'array_fill(gen_random_uuid(), ARRAY[1000])']),
('timestamptz', 'now()', ARRAY['NULL', '''infinity''', '''-infinity''', '''4713-01-01 BC''', '''294276-12-31''']),
('tstzrange', 'tstzrange(now(), NULL)', ARRAY['NULL', '''empty''', '''(,)''', '''[-infinity,infinity]''',
    'tstzrange(now(), now())']),
('interval', '''1 hour''', ARRAY['NULL', '''0''', '''-1 hour''', '''178000000 years''', '''1 microsecond''']),
('bigint', '1', ARRAY['NULL', '0', '-1', '9223372036854775807', '(-9223372036854775807 - 1)']),
('integer', '1', ARRAY['NULL', '0', '-1', '2147483647', '(-2147483647 - 1)']),
('boolean', 'false', ARRAY['NULL', 'true']),
('bytea', '''\x00''', ARRAY['NULL', '''\x''', 'decode(repeat(''ff'', 1048576), ''hex'')']),
('name', '''patient_id''', ARRAY['NULL', '''''', 'repeat(''n'', 100)', '''é漢字''']),
('oid', '''public.fz_chart''::regclass::oid', ARRAY['NULL', '0', '4294967295', '''agentauth.audit_log''::regclass::oid']),
('regclass', '''public.fz_chart''', ARRAY['NULL', '0', '''pg_class''', '''agentauth.audit_log''', '''agentauth.token''']),
('regrole', '''fz_agent''', ARRAY['NULL', '0', '''postgres''', '''agentauth_admin''']),
('agentauth.audit_log', '(SELECT l FROM agentauth.audit_log l ORDER BY seq LIMIT 1)',
    ARRAY['NULL', 'ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)']),
('agentauth._fhir_rule', 'NULL', ARRAY['NULL', 'ROW(NULL, NULL, NULL, NULL, NULL, NULL, NULL)']);

-- a typical text or text[] value, chosen by the argument's name so that a
-- call gets past the first argument checks
CREATE FUNCTION fz_typical(t regtype, argname text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE
        WHEN t = 'text'::regtype THEN CASE
            WHEN argname ~ 'purpose' THEN '''TREAT'''
            WHEN argname ~ 'class' THEN '''lab'''
            WHEN argname ~ 'action' THEN '''read'''
            WHEN argname ~ 'decision' THEN '''permit'''
            WHEN argname ~ 'verdict' THEN '''justified'''
            WHEN argname ~ 'status' THEN '''active'''
            WHEN argname ~ 'patient' THEN '''FZ-P1'''
            WHEN argname ~ 'secret' THEN ':''secret'''
            WHEN argname ~ 'role' THEN '''agentauth_auditor'''
            WHEN argname ~ 'event' THEN '''denied'''
            ELSE '''fuzz''' END
        WHEN t = 'text[]'::regtype THEN CASE
            WHEN argname ~ 'scope' THEN '''{lab:read}'''
            WHEN argname ~ 'purpose' THEN '''{TREAT}'''
            WHEN argname ~ 'class' THEN '''{lab}'''
            WHEN argname ~ 'action' THEN '''{read}'''
            WHEN argname ~ 'patient' THEN '''{FZ-P1}'''
            ELSE '''{fuzz}''' END
        ELSE (SELECT typical FROM fz_value v WHERE v.type = t) END
$$;

CREATE VIEW fz_calls AS
WITH f AS (
    SELECT p.oid, p.oid::regprocedure AS fn, p.proname, p.pronargs,
           p.proargtypes, p.proargnames, p.proargmodes
      FROM pg_proc p
     WHERE p.pronamespace = 'agentauth'::regnamespace AND p.prokind = 'f'
       AND p.prorettype <> 'trigger'::regtype
), arg AS (
    -- input arguments in order, with their names (proargnames also names
    -- OUT arguments when proargmodes is set)
    SELECT f.oid, t.i::int AS i, t.type::regtype AS type,
           coalesce((SELECT n.name
                       FROM unnest(f.proargnames, coalesce(f.proargmodes,
                                   array_fill('i'::"char", ARRAY[cardinality(f.proargnames)])))
                            WITH ORDINALITY n(name, mode, o)
                      WHERE n.mode IN ('i', 'b', 'v')
                      ORDER BY n.o OFFSET t.i - 1 LIMIT 1), '') AS name
      FROM f, unnest(f.proargtypes::oid[]) WITH ORDINALITY t(type, i)
), variant AS (
    -- typical: every argument typical (k = 0); all NULL (k = -1); argument
    -- k with each of its odd values
    SELECT f.oid, 0 AS k, NULL::text AS odd FROM f
    UNION ALL SELECT f.oid, -1, 'NULL' FROM f WHERE f.pronargs > 0
    UNION ALL SELECT a.oid, a.i, o FROM arg a JOIN fz_value v ON v.type = a.type, unnest(v.odd) o
)
SELECT f.fn, format('SELECT %s(%s)', f.fn::oid::regproc,
           coalesce((SELECT string_agg(format('(%s)::%s',
                            CASE WHEN v.k = -1 THEN 'NULL'
                                 WHEN v.k = a.i THEN v.odd
                                 ELSE fz_typical(a.type, a.name) END, a.type), ', ' ORDER BY a.i)
                       FROM arg a WHERE a.oid = f.oid), '')) AS call
  FROM f JOIN variant v ON v.oid = f.oid;

-- run each call, undone whatever happens; report what must not happen
CREATE FUNCTION fz_run(secret text) RETURNS TABLE (fn text, call text, sqlstate text, message text)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
    st text;
    msg text;
    n int := 0;
BEGIN
    FOR c IN SELECT z.fn, z.call FROM fz_calls z ORDER BY z.fn::text, z.call LOOP
        n := n + 1;
        RAISE LOG 'fz call: %', left(c.call, 300);
        BEGIN
            EXECUTE replace(c.call, ':''secret''', quote_literal(secret));
            RAISE EXCEPTION USING ERRCODE = 'FZ000';   -- undo what it did
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
        END;
        IF st IS NULL OR st LIKE 'XX%' OR st IN ('57014', '00000') THEN
            fn := c.fn::text;
            call := left(c.call, 300);
            sqlstate := st;
            message := msg;
            RETURN NEXT;
        END IF;
    END LOOP;
    fn := 'total'; call := n::text; sqlstate := NULL; message := NULL;
    RETURN NEXT;
END
$$;
