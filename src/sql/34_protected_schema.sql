-- (1.1) Protected schemas (issue "Real clinical schemas" item 3): a schema
-- declared as holding PHI.  Every table created in it, or renamed or moved
-- into it, is protected by the statement that makes it, before the
-- statement's transaction commits (src/protected_schema.c calls
-- agentauth._protect_in_schema() after every utility statement that
-- created or altered a relation there); a table that cannot be protected
-- (no patient column, a column no class covers, a materialized view or a
-- foreign table) is refused.  Declared by name: dumped with the extension's
-- configuration.
CREATE TABLE agentauth.protected_schema (
    schema_name     name PRIMARY KEY,
    patient_column  name NOT NULL CHECK (pg_catalog.strpos(patient_column, ';') = 0),
    column_classes  jsonb NOT NULL DEFAULT '{}'
                    CHECK (pg_catalog.jsonb_typeof(column_classes) = 'object'),
    default_class   text,           -- a data_class (checked by protect_schema)
    protected_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    protected_by    text NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('agentauth.protected_schema', '');
CREATE TRIGGER protected_schema_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON agentauth.protected_schema FOR EACH STATEMENT
    EXECUTE FUNCTION agentauth._generation_trigger();

-- (1.1, found by review: a derived table rebuilt by DROP TABLE and CREATE
-- TABLE AS lost the require_approval and the reclassification an
-- administrator had set on it, and agents then wrote it unapproved.)
-- What was set on a protected table of a protected schema beyond the
-- schema's declaration -- require_approval's actions, the classes of
-- columns that differ from what the declaration gives -- is kept by the
-- table's name when the table leaves that name (dropped, renamed, moved
-- out: src/protected_schema.c), and given to the next table that takes
-- the name there (_protect_in_schema), which consumes the row.  Kept by
-- name, so dumped with the extension's configuration.
CREATE TABLE agentauth.protected_schema_kept (
    schema_name      name NOT NULL,
    table_name       name NOT NULL,
    column_classes   jsonb NOT NULL DEFAULT '{}'
                     CHECK (pg_catalog.jsonb_typeof(column_classes) = 'object'),
    require_approval text[] NOT NULL DEFAULT '{}',
    kept_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    kept_by          text NOT NULL,
    PRIMARY KEY (schema_name, table_name)
);
SELECT pg_catalog.pg_extension_config_dump('agentauth.protected_schema_kept', '');

-- Wait for the statements creating relations in a schema to end, and hold
-- new ones off until the calling transaction ends (a lock on the schema).
CREATE FUNCTION agentauth._lock_schema(nsp oid) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'aa_lock_schema';
REVOKE ALL ON FUNCTION agentauth._lock_schema(oid) FROM PUBLIC;

-- A table's columns and their agentauth classes (NULL: unclassified), in
-- column order.
CREATE FUNCTION agentauth._column_labels(tbl regclass)
    RETURNS TABLE (attname name, label text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
SELECT a.attname, s.label
  FROM pg_catalog.pg_attribute a
  LEFT JOIN pg_catalog.pg_seclabel s
    ON s.objoid OPERATOR(pg_catalog.=) a.attrelid
   AND s.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND s.objsubid OPERATOR(pg_catalog.=) a.attnum
   AND s.provider OPERATOR(pg_catalog.=) 'agentauth'
 WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0
   AND NOT a.attisdropped
 ORDER BY a.attnum
$$;
REVOKE ALL ON FUNCTION agentauth._column_labels(regclass) FROM PUBLIC;

-- A protected table of a protected schema leaves its name: keep what an
-- administrator set on it beyond the declaration (NULL: nothing to keep).
-- Called by the library, as the bootstrap superuser, before the drop,
-- rename or move; the drop's record carries what it returns.
CREATE FUNCTION agentauth._keep_table_settings(tbl regclass) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel      record;
    decl     record;
    col      record;
    label    text;
    acts     text[];
    classes  jsonb := '{}'::jsonb;
BEGIN
    SELECT c.relname, n.nspname, c.relispartition INTO rel
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) tbl;
    IF NOT FOUND OR rel.relispartition THEN
        RETURN NULL;                -- a partition has its parent's settings
    END IF;
    SELECT p.* INTO decl FROM agentauth.protected_schema p
     WHERE p.schema_name OPERATOR(pg_catalog.=) rel.nspname;
    label := agentauth._table_label(tbl);
    IF decl.schema_name IS NULL OR label IS NULL THEN
        RETURN NULL;
    END IF;
    acts := pg_catalog.string_to_array(
        NULLIF(pg_catalog.split_part(label, ';approve=', 2), ''), ',');
    FOR col IN SELECT c.attname, c.label
                 FROM agentauth._column_labels(tbl) WITH ORDINALITY AS c(attname, label, n)
                WHERE c.label IS NOT NULL
                ORDER BY c.n LOOP
        IF col.label IS DISTINCT FROM coalesce(decl.column_classes OPERATOR(pg_catalog.->>) col.attname::text,
                                               decl.default_class) THEN
            classes := classes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col.attname, col.label);
        END IF;
    END LOOP;
    IF classes OPERATOR(pg_catalog.=) '{}'::jsonb AND coalesce(pg_catalog.cardinality(acts), 0) OPERATOR(pg_catalog.=) 0 THEN
        RETURN NULL;
    END IF;
    INSERT INTO agentauth.protected_schema_kept AS k
           (schema_name, table_name, column_classes, require_approval, kept_by)
    VALUES (rel.nspname, rel.relname, classes, coalesce(acts, '{}'::text[]), pg_catalog.session_user())
    ON CONFLICT (schema_name, table_name) DO UPDATE
       SET column_classes = excluded.column_classes,
           require_approval = excluded.require_approval,
           kept_at = pg_catalog.now(),
           kept_by = excluded.kept_by;
    RETURN pg_catalog.jsonb_build_object('column_classes', classes,
                                         'require_approval', coalesce(acts, '{}'::text[]));
END
$$;
REVOKE ALL ON FUNCTION agentauth._keep_table_settings(regclass) FROM PUBLIC;

-- A table of a protected schema took a name whose settings were kept: it
-- gets them (the kept row is used up).  Approvals are added to its own; a
-- kept column class replaces the class of a column of that name only
-- where the column still has the declaration's class (a class the
-- statement that made the table gave it, a sensitive source's, stays).
-- False when nothing was kept under the name.
CREATE FUNCTION agentauth._take_kept_settings(tbl regclass, column_classes jsonb,
                                              default_class text)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel      record;
    kept     record;
    col      record;
    tlabel   text;
    old_acts text[];
    acts     text[];
    applied  jsonb := '{}'::jsonb;
BEGIN
    SELECT c.relname, n.nspname INTO rel
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) tbl;
    DELETE FROM agentauth.protected_schema_kept k
     WHERE k.schema_name OPERATOR(pg_catalog.=) rel.nspname
       AND k.table_name OPERATOR(pg_catalog.=) rel.relname
    RETURNING k.* INTO kept;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    tlabel := agentauth._table_label(tbl);
    IF tlabel IS NULL THEN
        RETURN false;
    END IF;
    FOR col IN SELECT e.key, e.value
                 FROM pg_catalog.jsonb_each_text(kept.column_classes) e
                 JOIN agentauth._column_labels(tbl) WITH ORDINALITY AS c(attname, label, n)
                   ON c.attname OPERATOR(pg_catalog.=) e.key
                WHERE c.attname OPERATOR(pg_catalog.<>) agentauth._label_patient_column(tlabel)
                  AND c.label IS NOT DISTINCT FROM coalesce(_take_kept_settings.column_classes OPERATOR(pg_catalog.->>) e.key,
                                                            _take_kept_settings.default_class)
                  AND c.label IS DISTINCT FROM e.value
                  AND EXISTS (SELECT FROM agentauth.data_class d WHERE d.name OPERATOR(pg_catalog.=) e.value)
                ORDER BY c.n LOOP
        PERFORM agentauth._set_label(tbl, col.key::name, col.value);
        applied := applied OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col.key, col.value);
    END LOOP;
    old_acts := coalesce(pg_catalog.string_to_array(
        NULLIF(pg_catalog.split_part(tlabel, ';approve=', 2), ''), ','), '{}'::text[]);
    SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO acts
      FROM pg_catalog.unnest(old_acts OPERATOR(pg_catalog.||) kept.require_approval) x;
    acts := coalesce(acts, '{}'::text[]);
    IF acts OPERATOR(pg_catalog.<>) old_acts THEN
        PERFORM agentauth._set_label(tbl, NULL,
            'patient=' OPERATOR(pg_catalog.||) agentauth._label_patient_column(tlabel)
            OPERATOR(pg_catalog.||) ';approve=' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(acts, ','));
    END IF;
    IF applied OPERATOR(pg_catalog.=) '{}'::jsonb AND acts OPERATOR(pg_catalog.=) old_acts THEN
        RETURN false;
    END IF;
    PERFORM agentauth._protect_partitions(tbl);
    PERFORM agentauth._audit('table_protected',
        pg_catalog.jsonb_build_object('protected_schema', rel.nspname,
                                      'column_classes', applied,
                                      'require_approval', acts,
                                      'reclassified', true,
                                      'kept', pg_catalog.jsonb_build_object(
                                          'kept_at', kept.kept_at, 'kept_by', kept.kept_by)),
        NULL, NULL, NULL, agentauth._relation_name(tbl));
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION agentauth._take_kept_settings(regclass, jsonb, text) FROM PUBLIC;

-- Protect one relation of a protected schema by the schema's declaration
-- (passed in: the library reads it on the latest snapshot): false when
-- there is nothing to do (not a table, a partition of a protected table,
-- already protected with every column classified).  Called by the library
-- as the bootstrap superuser on behalf of the role that made the table (the
-- record names that role), and by protect_schema().
CREATE FUNCTION agentauth._protect_in_schema(tbl regclass, patient_column name,
                                             column_classes jsonb, default_class text)
    RETURNS boolean
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel      record;
    col      record;
    cls      text;
    label    text;
    patient  text;
    classes  jsonb := '{}'::jsonb;
    added    jsonb := '{}'::jsonb;
    missing  text[] := '{}'::text[];
    held     jsonb := '{}'::jsonb;
BEGIN
    SELECT c.relkind, c.relispartition, n.nspname,
           pg_catalog.format('%I.%I', n.nspname, c.relname) AS qname
      INTO rel
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
     WHERE c.oid OPERATOR(pg_catalog.=) tbl;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF rel.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['m', 'f']::"char"[]) THEN
        RAISE EXCEPTION '% % cannot be in protected schema %',
            CASE rel.relkind WHEN 'm' THEN 'materialized view' ELSE 'foreign table' END,
            rel.qname, pg_catalog.quote_ident(rel.nspname)
            USING ERRCODE = '42501',
            DETAIL = 'Every relation of a protected schema that holds rows is a protected table; this one cannot be protected.',
            HINT = 'Create a table instead, or use a schema that is not protected.';
    END IF;
    IF rel.relkind OPERATOR(pg_catalog.<>) ALL (ARRAY['r', 'p']::"char"[]) THEN
        RETURN false;
    END IF;
    -- a table an extension's script makes there is the extension's member
    PERFORM agentauth._refuse_extension_member(tbl, 'protect_schema');
    -- a partition of a protected table takes its parent's classification
    IF rel.relispartition AND EXISTS (
            SELECT FROM pg_catalog.pg_inherits i
             WHERE i.inhrelid OPERATOR(pg_catalog.=) tbl
               AND agentauth._table_label(i.inhparent) IS NOT NULL) THEN
        RETURN false;
    END IF;

    label := agentauth._table_label(tbl);
    patient := coalesce(agentauth._label_patient_column(label), _protect_in_schema.patient_column);
    IF label IS NULL AND NOT EXISTS (
            SELECT FROM pg_catalog.pg_attribute a
             WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0
               AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.=) patient) THEN
        RAISE EXCEPTION 'table % has no patient column "%"', rel.qname, patient
            USING ERRCODE = '42501',
            DETAIL = pg_catalog.format('Schema %I is protected: every table in it holds PHI and is protected by its patient column.', rel.nspname),
            HINT = pg_catalog.format('Give the table a column "%s", or create it in a schema that is not protected (agentauth.protected_schemas lists them).', patient);
    END IF;

    FOR col IN SELECT c.attname, c.label
                 FROM agentauth._column_labels(tbl) WITH ORDINALITY AS c(attname, label, n)
                WHERE c.attname OPERATOR(pg_catalog.<>) patient
                ORDER BY c.n LOOP
        cls := coalesce(col.label, _protect_in_schema.column_classes OPERATOR(pg_catalog.->>) col.attname::text,
                        _protect_in_schema.default_class);
        IF cls IS NULL THEN
            missing := missing OPERATOR(pg_catalog.||) col.attname::text;
            CONTINUE;
        END IF;
        classes := classes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col.attname, cls);
        IF col.label IS NULL THEN
            added := added OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col.attname, cls);
        END IF;
    END LOOP;

    IF label IS NULL THEN
        IF pg_catalog.cardinality(missing) OPERATOR(pg_catalog.>) 0 THEN
            RAISE EXCEPTION 'column "%" of table % has no data class', missing[1], rel.qname
                USING ERRCODE = '42501',
                DETAIL = pg_catalog.format('Schema %I is protected, and neither its column classes nor a default class cover this column.', rel.nspname),
                HINT = 'An administrator names the column in the schema''s column_classes or gives it a default_class (agentauth.protect_schema).';
        END IF;
        PERFORM agentauth.protect_table(tbl, patient::name, classes, NULL);
        PERFORM agentauth._take_kept_settings(tbl, _protect_in_schema.column_classes,
                                              _protect_in_schema.default_class);
        RETURN true;
    END IF;

    -- protected already: columns added since get the schema's classes
    -- (a column no class covers stays unclassified, hence unreadable).
    -- One of a class the table holds no column of stays unclassified too,
    -- whoever added it and whatever statement brings us here: the
    -- table's classes decide who sees that a patient has rows at all, and
    -- widening them is an administrator's explicit protect_table() (1.1,
    -- found by review: the owner of ehr.hiv_tests added a column "kind",
    -- of class encounter by the declaration, and an agent with encounter
    -- consent counted a patient's HIV tests; and an administrator's later
    -- unrelated ALTER classified the column held back)
    FOR col IN SELECT e.key, e.value FROM pg_catalog.jsonb_each_text(added) e
                WHERE e.value OPERATOR(pg_catalog.<>) 'non_phi' LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_seclabel s
                        WHERE s.objoid OPERATOR(pg_catalog.=) tbl
                          AND s.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND s.objsubid OPERATOR(pg_catalog.>) 0
                          AND s.provider OPERATOR(pg_catalog.=) 'agentauth'
                          AND s.label OPERATOR(pg_catalog.=) col.value) THEN
            held := held OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col.key, col.value);
            added := added OPERATOR(pg_catalog.-) col.key;
        END IF;
    END LOOP;
    IF held OPERATOR(pg_catalog.<>) '{}'::jsonb THEN
        RAISE WARNING 'column % of protected table % is left unclassified (unreadable in a session): the table has no column of class %',
            (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(e.key), ', ') FROM pg_catalog.jsonb_each_text(held) e),
            rel.qname,
            (SELECT pg_catalog.string_agg(DISTINCT e.value, ', ') FROM pg_catalog.jsonb_each_text(held) e)
            USING HINT = 'An administrator classifies it: agentauth.protect_table() with the table''s column classes (audited).';
    END IF;
    IF added OPERATOR(pg_catalog.=) '{}'::jsonb THEN
        RETURN agentauth._take_kept_settings(tbl, _protect_in_schema.column_classes,
                                             _protect_in_schema.default_class);
    END IF;
    FOR col IN SELECT e.key, e.value FROM pg_catalog.jsonb_each_text(added) e LOOP
        PERFORM agentauth._set_label(tbl, col.key::name, col.value);
    END LOOP;
    PERFORM agentauth._protect_partitions(tbl);     -- a partitioned table's columns
    PERFORM agentauth._audit('table_protected',
        pg_catalog.jsonb_build_object('protected_schema', rel.nspname,
                                      'column_classes', added,
                                      'reclassified', true),
        NULL, NULL, NULL, agentauth._relation_name(tbl));
    PERFORM agentauth._take_kept_settings(tbl, _protect_in_schema.column_classes,
                                          _protect_in_schema.default_class);
    RETURN true;
END
$$;
REVOKE ALL ON FUNCTION agentauth._protect_in_schema(regclass, name, jsonb, text) FROM PUBLIC;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.protect_schema(schema regnamespace, patient_column name,
                                         column_classes jsonb DEFAULT '{}',
                                         default_class text DEFAULT NULL)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp     name;
    k       text;
    v       jsonb;
    t       record;
    old     record;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF schema IS NULL THEN
        RAISE EXCEPTION 'schema must not be null' USING ERRCODE = '22004';
    END IF;
    IF patient_column IS NULL THEN
        RAISE EXCEPTION 'patient_column must not be null' USING ERRCODE = '22004';
    END IF;
    IF column_classes IS NULL THEN
        RAISE EXCEPTION 'column_classes must not be null' USING ERRCODE = '22004',
            HINT = 'Pass ''{}'' and a default_class to give every column one class.';
    END IF;
    IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.<>) 'read committed' THEN
        RAISE EXCEPTION 'protect_schema must run in a READ COMMITTED transaction'
            USING ERRCODE = '25001',
            DETAIL = 'It protects the tables other transactions committed in the schema while it waited for them.';
    END IF;
    SELECT n.nspname INTO nsp FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) schema;
    IF nsp OPERATOR(pg_catalog.=) ANY (ARRAY['agentauth', 'pg_catalog', 'information_schema', 'pg_toast']::name[])
       OR nsp OPERATOR(pg_catalog.~) '^pg_(toast_)?temp_' THEN
        RAISE EXCEPTION 'schema % cannot be protected', pg_catalog.quote_ident(nsp) USING ERRCODE = '42809';
    END IF;
    IF pg_catalog.strpos(patient_column, ';') OPERATOR(pg_catalog.>) 0 THEN
        RAISE EXCEPTION 'patient column name "%" must not contain ";"', patient_column
            USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.jsonb_typeof(column_classes) OPERATOR(pg_catalog.<>) 'object' THEN
        RAISE EXCEPTION 'column_classes must be a JSON object' USING ERRCODE = '22023',
            HINT = 'For example {"hiv_status": "hiv", "note": "clinical_note"}.';
    END IF;
    IF default_class IS NOT NULL AND NOT EXISTS
        (SELECT FROM agentauth.data_class d WHERE d.name OPERATOR(pg_catalog.=) default_class) THEN
        RAISE EXCEPTION 'unknown data class "%" for default_class', default_class
            USING ERRCODE = '22023', HINT = 'The classes are the rows of agentauth.data_class.';
    END IF;
    FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(column_classes) e ORDER BY e.key LOOP
        IF k OPERATOR(pg_catalog.=) patient_column THEN
            RAISE EXCEPTION 'column "%" is the patient column and takes no data class', k
                USING ERRCODE = '22023';
        END IF;
        IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'string' THEN
            RAISE EXCEPTION 'the data class of column "%" must be a string', k USING ERRCODE = '22023';
        END IF;
        IF NOT EXISTS (SELECT FROM agentauth.data_class d
                        WHERE d.name OPERATOR(pg_catalog.=) (v OPERATOR(pg_catalog.#>>) '{}')) THEN
            RAISE EXCEPTION 'unknown data class "%" for column "%"', v OPERATOR(pg_catalog.#>>) '{}', k
                USING ERRCODE = '22023', HINT = 'The classes are the rows of agentauth.data_class.';
        END IF;
    END LOOP;

    -- no table is created or moved into the schema until this commits
    PERFORM agentauth._lock_schema(schema::oid);

    SELECT p.* INTO old FROM agentauth.protected_schema p WHERE p.schema_name OPERATOR(pg_catalog.=) nsp;
    INSERT INTO agentauth.protected_schema AS p
           (schema_name, patient_column, column_classes, default_class, protected_by)
    VALUES (nsp, protect_schema.patient_column, protect_schema.column_classes,
            protect_schema.default_class, pg_catalog.session_user())
    ON CONFLICT (schema_name) DO UPDATE
       SET patient_column = excluded.patient_column,
           column_classes = excluded.column_classes,
           default_class = excluded.default_class,
           protected_at = pg_catalog.now(),
           protected_by = excluded.protected_by;
    PERFORM agentauth._audit('table_protected',
        pg_catalog.jsonb_build_object('protected_schema', nsp,
                                      'patient_column', patient_column,
                                      'column_classes', column_classes,
                                      'default_class', default_class,
                                      'reclassified', old.schema_name IS NOT NULL));

    -- the tables already there: protected, or the declaration refused
    FOR t IN SELECT c.oid::pg_catalog.regclass AS rel FROM pg_catalog.pg_class c
              WHERE c.relnamespace OPERATOR(pg_catalog.=) schema
                AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p', 'm', 'f']::"char"[])
              ORDER BY c.relispartition, c.oid LOOP
        PERFORM agentauth._protect_in_schema(t.rel, protect_schema.patient_column,
                                             protect_schema.column_classes,
                                             protect_schema.default_class);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION agentauth.protect_schema(regnamespace, name, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.protect_schema(regnamespace, name, jsonb, text) TO agentauth_admin;

-- The schema's tables stay protected (agentauth.unprotect_table() ends the
-- protection of each); tables made there afterwards are not.
-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.unprotect_schema(schema regnamespace, reason text)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nsp name;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF schema IS NULL THEN
        RAISE EXCEPTION 'schema must not be null' USING ERRCODE = '22004';
    END IF;
    IF reason IS NULL OR pg_catalog.btrim(reason) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a reason is required to unprotect a schema' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.length(reason) OPERATOR(pg_catalog.>) 4000 THEN
        RAISE EXCEPTION 'reason is too long' USING ERRCODE = '22001';
    END IF;
    SELECT n.nspname INTO nsp FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) schema;
    DELETE FROM agentauth.protected_schema p WHERE p.schema_name OPERATOR(pg_catalog.=) nsp;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schema % is not protected', pg_catalog.quote_ident(nsp) USING ERRCODE = '55000';
    END IF;
    DELETE FROM agentauth.protected_schema_kept k WHERE k.schema_name OPERATOR(pg_catalog.=) nsp;
    PERFORM agentauth._audit('table_unprotected',
        pg_catalog.jsonb_build_object('protected_schema', nsp, 'reason', reason));
END
$$;
REVOKE ALL ON FUNCTION agentauth.unprotect_schema(regnamespace, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.unprotect_schema(regnamespace, text) TO agentauth_admin;

-- Readable by everyone, as agentauth.protected_columns is.
CREATE VIEW agentauth.protected_schemas AS
SELECT p.schema_name, p.patient_column, p.column_classes, p.default_class,
       p.protected_at, p.protected_by
  FROM agentauth.protected_schema p;
GRANT SELECT ON agentauth.protected_schemas TO PUBLIC;

-- What is kept under a table name of a protected schema for the next
-- table that takes it; readable by everyone, as protected_schemas is.
CREATE VIEW agentauth.protected_schema_kept_settings AS
SELECT k.schema_name, k.table_name, k.column_classes, k.require_approval,
       k.kept_at, k.kept_by
  FROM agentauth.protected_schema_kept k;
GRANT SELECT ON agentauth.protected_schema_kept_settings TO PUBLIC;
