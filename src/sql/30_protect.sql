-- Protected tables (SPEC 5, 6): classification in security labels of the
-- provider "agentauth", row checks from the row-security policy hooks,
-- column scope from the executor hooks.

-- Set or remove one of our labels without the provider hook (the callers
-- check and audit themselves).  col NULL: the table's own label.
CREATE FUNCTION agentauth._set_label(tbl regclass, col name, label text)
    RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'aa_set_label';
REVOKE ALL ON FUNCTION agentauth._set_label(regclass, name, text) FROM PUBLIC;

-- The row check the restrictive policy calls.  Not leakproof: a leaky
-- function in WHERE runs after it.  PARALLEL RESTRICTED: a protected scan
-- stays in the leader, so parallel plans give the same rows and records.
CREATE FUNCTION agentauth._row_check(relid oid, patient text, cmd text)
    RETURNS boolean LANGUAGE c STABLE PARALLEL RESTRICTED COST 10
    AS 'MODULE_PATHNAME', 'aa_row_check';
GRANT EXECUTE ON FUNCTION agentauth._row_check(oid, text, text) TO PUBLIC;

-- A statement trigger that moves the generation counter, so a change made
-- by any path reaches every backend's caches.
CREATE FUNCTION agentauth._generation_trigger() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'aa_generation_trigger';
REVOKE ALL ON FUNCTION agentauth._generation_trigger() FROM PUBLIC;
CREATE TRIGGER data_class_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON agentauth.data_class FOR EACH STATEMENT
    EXECUTE FUNCTION agentauth._generation_trigger();

-- (1.1) Writes that no executor hook sees: a logical replication
-- subscriber's initial copy and applied changes (src/replication.c).  Every
-- protected table has two triggers, ENABLE ALWAYS, that record them as
-- privileged_access; outside a replication worker the WHEN clause is false.
CREATE FUNCTION agentauth._replicating() RETURNS boolean
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'aa_replicating';
GRANT EXECUTE ON FUNCTION agentauth._replicating() TO PUBLIC;

CREATE FUNCTION agentauth._replicated_write() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'aa_replicated_write';
REVOKE ALL ON FUNCTION agentauth._replicated_write() FROM PUBLIC;

CREATE FUNCTION agentauth._replication_triggers(tbl regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid OPERATOR(pg_catalog.=) tbl
                      AND g.tgname OPERATOR(pg_catalog.=) 'agentauth_replicated_write') THEN
        EXECUTE pg_catalog.format('CREATE TRIGGER agentauth_replicated_write '
            'AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW '
            'WHEN (agentauth._replicating()) '
            'EXECUTE FUNCTION agentauth._replicated_write()', tbl);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid OPERATOR(pg_catalog.=) tbl
                      AND g.tgname OPERATOR(pg_catalog.=) 'agentauth_replicated_truncate') THEN
        EXECUTE pg_catalog.format('CREATE TRIGGER agentauth_replicated_truncate '
            'AFTER TRUNCATE ON %s FOR EACH STATEMENT '
            'EXECUTE FUNCTION agentauth._replicated_write()', tbl);
    END IF;
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER agentauth_replicated_write, '
        'ENABLE ALWAYS TRIGGER agentauth_replicated_truncate', tbl);
END
$$;
REVOKE ALL ON FUNCTION agentauth._replication_triggers(regclass) FROM PUBLIC;

-- The patient column named by a table label 'patient=<column>[;approve=...]'.
CREATE FUNCTION agentauth._label_patient_column(label text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT pg_catalog.split_part(pg_catalog.substr(label, 9), ';', 1) $$;

CREATE FUNCTION agentauth._table_label(tbl regclass) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
    SELECT s.label FROM pg_catalog.pg_seclabel s
     WHERE s.objoid OPERATOR(pg_catalog.=) tbl
       AND s.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND s.objsubid OPERATOR(pg_catalog.=) 0
       AND s.provider OPERATOR(pg_catalog.=) 'agentauth'
    $$;

-- Is a patient column's text form the same in every session (patient_id.c)?
-- bytea, the date and time types, float and money print as the session's
-- settings say: protect_table refuses them, and the row check fails closed.
CREATE FUNCTION agentauth._patient_type_ok(t regtype) RETURNS boolean
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'aa_patient_type_ok';
REVOKE ALL ON FUNCTION agentauth._patient_type_ok(regtype) FROM PUBLIC;

-- A stored policy expression (pg_policy.polqual, polwithcheck) could see
-- the values of the rows it is evaluated on: a function of a column that is
-- not leakproof, or a sub-select (policy.c).  protect_table() refuses a
-- table with such a restrictive policy; the row check refuses its reads.
CREATE FUNCTION agentauth._policy_sees_rows(expr pg_node_tree) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'aa_policy_sees_rows';
REVOKE ALL ON FUNCTION agentauth._policy_sees_rows(pg_node_tree) FROM PUBLIC;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.protect_table(tbl regclass, patient_column name,
                                        column_classes jsonb,
                                        default_class text DEFAULT NULL)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rel         record;
    col         record;
    k           text;
    v           jsonb;
    cls         text;
    old_label   text;
    approve     text := '';
    pol         record;
    classes     jsonb := '{}'::jsonb;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    IF patient_column IS NULL THEN
        RAISE EXCEPTION 'patient_column must not be null' USING ERRCODE = '22004';
    END IF;
    IF column_classes IS NULL THEN
        RAISE EXCEPTION 'column_classes must not be null' USING ERRCODE = '22004',
            HINT = 'Pass ''{}'' and a default_class to give every column one class.';
    END IF;
    SELECT c.oid, c.relkind, c.relnamespace::regnamespace::text AS nsp
      INTO rel FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) tbl;
    IF rel.relkind OPERATOR(pg_catalog.<>) ALL (ARRAY['r', 'p']::"char"[]) THEN
        RAISE EXCEPTION '% is not an ordinary table', tbl USING ERRCODE = '42809',
            HINT = 'Only ordinary and partitioned tables can be protected.';
    END IF;
    PERFORM agentauth._refuse_partition(tbl, 'protect_table');
    IF rel.nsp OPERATOR(pg_catalog.=) 'agentauth' THEN
        RAISE EXCEPTION 'tables of the agentauth schema cannot be protected' USING ERRCODE = '42809';
    END IF;
    PERFORM agentauth._refuse_extension_member(tbl, 'protect_table');
    IF rel.relkind OPERATOR(pg_catalog.=) 'r' AND EXISTS (SELECT FROM pg_catalog.pg_inherits i
                WHERE i.inhrelid OPERATOR(pg_catalog.=) tbl
                   OR i.inhparent OPERATOR(pg_catalog.=) tbl) THEN
        RAISE EXCEPTION 'table % takes part in inheritance', tbl USING ERRCODE = '42809',
            HINT = 'Rows reached through a parent or child table would escape the checks.';
    END IF;
    -- PostgreSQL runs a table's own restrictive policies before the row
    -- check, over every row: one whose expression could see the rows'
    -- values would read every patient's every column (policy.c)
    SELECT p.polname, p.polrelid::pg_catalog.regclass AS rel INTO pol
      FROM pg_catalog.pg_policy p
     WHERE NOT p.polpermissive
       AND p.polrelid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT tbl::pg_catalog.oid UNION
                     SELECT t.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(tbl) t))
       AND (agentauth._policy_sees_rows(p.polqual) OR agentauth._policy_sees_rows(p.polwithcheck))
     ORDER BY 2, 1 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'table % has restrictive policy "%", whose expression runs code over its rows', pol.rel, pol.polname
            USING ERRCODE = '42501',
                  DETAIL = 'PostgreSQL evaluates it before agentauth''s row check, over the rows of every patient and every column.',
                  HINT = 'Drop the policy: agentauth decides who reads a protected table.';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                    WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0
                      AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.=) patient_column) THEN
        RAISE EXCEPTION 'patient column "%" does not exist in table %', patient_column, tbl
            USING ERRCODE = '42703';
    END IF;
    IF NOT agentauth._patient_type_ok((SELECT a.atttypid FROM pg_catalog.pg_attribute a
                WHERE a.attrelid OPERATOR(pg_catalog.=) tbl
                  AND a.attname OPERATOR(pg_catalog.=) patient_column)) THEN
        RAISE EXCEPTION 'the patient column "%" of table % has type %, whose text form depends on the session''s settings',
            patient_column, tbl,
            (SELECT a.atttypid::regtype FROM pg_catalog.pg_attribute a
              WHERE a.attrelid OPERATOR(pg_catalog.=) tbl
                AND a.attname OPERATOR(pg_catalog.=) patient_column)
            USING ERRCODE = '0A000',
                  DETAIL = 'Consents and records name a patient by that text: an agent could print a patient''s id another way.',
                  HINT = 'Keep patient ids as text, an integer, numeric or uuid.';
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
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0
                          AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.=) k) THEN
            RAISE EXCEPTION 'column "%" does not exist in table %', k, tbl USING ERRCODE = '42703';
        END IF;
        IF k OPERATOR(pg_catalog.=) patient_column THEN
            RAISE EXCEPTION 'column "%" is the patient column and takes no data class', k
                USING ERRCODE = '22023',
                HINT = 'Any session that may use some class of the table may reference the patient column.';
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

    -- every column but the patient column gets a class
    FOR col IN SELECT a.attname FROM pg_catalog.pg_attribute a
                WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.>) 0
                  AND NOT a.attisdropped AND a.attname OPERATOR(pg_catalog.<>) patient_column
                ORDER BY a.attnum LOOP
        cls := coalesce(column_classes OPERATOR(pg_catalog.->>) col.attname::text, default_class);
        IF cls IS NULL THEN
            RAISE EXCEPTION 'column "%" of table % is not classified', col.attname, tbl
                USING ERRCODE = '22023',
                HINT = 'Give it a class in column_classes, or pass default_class.';
        END IF;
        classes := classes OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(col.attname, cls);
    END LOOP;

    PERFORM agentauth._replication_triggers(tbl);
    old_label := agentauth._table_label(tbl);
    IF old_label IS NOT NULL AND pg_catalog.strpos(old_label, ';') OPERATOR(pg_catalog.>) 0 THEN
        approve := pg_catalog.substr(old_label, pg_catalog.strpos(old_label, ';'));
    END IF;
    PERFORM agentauth._set_label(tbl, NULL, 'patient=' OPERATOR(pg_catalog.||) patient_column OPERATOR(pg_catalog.||) approve);
    PERFORM agentauth._set_label(tbl, patient_column, NULL);
    FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(classes) e LOOP
        PERFORM agentauth._set_label(tbl, k::name, v OPERATOR(pg_catalog.#>>) '{}');
    END LOOP;
    EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', tbl);
    PERFORM agentauth._protect_partitions(tbl);

    PERFORM agentauth._audit('table_protected',
        pg_catalog.jsonb_build_object('patient_column', patient_column,
                                      'column_classes', classes,
                                      'reclassified', old_label IS NOT NULL),
        NULL, NULL, NULL, agentauth._relation_name(tbl));
END
$$;
REVOKE ALL ON FUNCTION agentauth.protect_table(regclass, name, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.protect_table(regclass, name, jsonb, text) TO agentauth_admin;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.unprotect_table(tbl regclass, reason text)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col record;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    IF reason IS NULL OR pg_catalog.btrim(reason) OPERATOR(pg_catalog.=) '' THEN
        RAISE EXCEPTION 'a reason is required to unprotect a table' USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.length(reason) OPERATOR(pg_catalog.>) 4000 THEN
        RAISE EXCEPTION 'reason is too long' USING ERRCODE = '22001';
    END IF;
    PERFORM agentauth._refuse_partition(tbl, 'unprotect_table');
    -- (1.1) a table whose classification a restore left incomplete (no
    -- table label, yet column labels or our triggers) is protected too
    IF agentauth._table_label(tbl) IS NULL
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_seclabel s
                        WHERE s.objoid OPERATOR(pg_catalog.=) tbl
                          AND s.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                          AND s.provider OPERATOR(pg_catalog.=) 'agentauth')
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_trigger g
                        WHERE g.tgrelid OPERATOR(pg_catalog.=) tbl
                          AND g.tgparentid OPERATOR(pg_catalog.=) 0
                          AND g.tgname OPERATOR(pg_catalog.=) ANY (ARRAY['agentauth_replicated_write', 'agentauth_replicated_truncate'])) THEN
        RAISE EXCEPTION 'table % is not protected', tbl USING ERRCODE = '55000';
    END IF;
    PERFORM agentauth._set_label(tbl, NULL, NULL);
    FOR col IN SELECT a.attname FROM pg_catalog.pg_seclabel s
                 JOIN pg_catalog.pg_attribute a
                   ON a.attrelid OPERATOR(pg_catalog.=) s.objoid AND a.attnum OPERATOR(pg_catalog.=) s.objsubid
                WHERE s.objoid OPERATOR(pg_catalog.=) tbl
                  AND s.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                  AND s.objsubid OPERATOR(pg_catalog.>) 0
                  AND s.provider OPERATOR(pg_catalog.=) 'agentauth' LOOP
        PERFORM agentauth._set_label(tbl, col.attname, NULL);
    END LOOP;
    PERFORM agentauth._unprotect_partitions(tbl, reason);
    EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY', tbl);
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS agentauth_replicated_write ON %s', tbl);
    EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS agentauth_replicated_truncate ON %s', tbl);
    PERFORM agentauth._audit('table_unprotected',
        pg_catalog.jsonb_build_object('reason', reason), NULL, NULL, NULL, agentauth._relation_name(tbl));
END
$$;
REVOKE ALL ON FUNCTION agentauth.unprotect_table(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.unprotect_table(regclass, text) TO agentauth_admin;

-- SECURITY DEFINER: writes the extension's private tables and audits the change; checks its caller's privilege role inside.
CREATE FUNCTION agentauth.require_approval(tbl regclass,
                                           actions text[] DEFAULT '{insert,update,delete}')
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_label text;
    acts      text[];
    a         text;
BEGIN
    PERFORM agentauth._require_role('agentauth_admin');
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'table must not be null' USING ERRCODE = '22004';
    END IF;
    IF actions IS NULL THEN
        RAISE EXCEPTION 'actions must not be null' USING ERRCODE = '22004',
            HINT = 'Pass ''{}'' to stop requiring approvals.';
    END IF;
    PERFORM agentauth._refuse_partition(tbl, 'require_approval');
    old_label := agentauth._table_label(tbl);
    IF old_label IS NULL THEN
        RAISE EXCEPTION 'table % is not protected', tbl USING ERRCODE = '55000',
            HINT = 'Protect it first with agentauth.protect_table().';
    END IF;
    FOREACH a IN ARRAY actions LOOP
        IF a IS NULL OR a OPERATOR(pg_catalog.<>) ALL (ARRAY['insert', 'update', 'delete']) THEN
            RAISE EXCEPTION 'unknown action "%" for require_approval', a USING ERRCODE = '22023',
                HINT = 'Approvals cover insert, update and delete.';
        END IF;
    END LOOP;
    SELECT pg_catalog.array_agg(DISTINCT x ORDER BY x) INTO acts FROM pg_catalog.unnest(actions) x;
    PERFORM agentauth._set_label(tbl, NULL,
        'patient=' OPERATOR(pg_catalog.||) agentauth._label_patient_column(old_label)
        OPERATOR(pg_catalog.||) CASE WHEN acts IS NULL THEN ''
             ELSE ';approve=' OPERATOR(pg_catalog.||) pg_catalog.array_to_string(acts, ',') END);
    PERFORM agentauth._protect_partitions(tbl);
    PERFORM agentauth._audit('table_protected',
        pg_catalog.jsonb_build_object('require_approval', coalesce(acts, '{}'::text[])),
        NULL, NULL, NULL, agentauth._relation_name(tbl));
END
$$;
REVOKE ALL ON FUNCTION agentauth.require_approval(regclass, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION agentauth.require_approval(regclass, text[]) TO agentauth_admin;

-- Every column of every protected table, with its class (NULL: not
-- classified, hence unreadable; the patient column takes no class).
CREATE VIEW agentauth.protected_columns AS
SELECT t.objoid::pg_catalog.regclass AS relation,
       a.attname AS column_name,
       c.label AS data_class,
       d.sensitive,
       a.attname OPERATOR(pg_catalog.=) agentauth._label_patient_column(t.label) AS patient_column,
       pg_catalog.split_part(t.label, ';approve=', 2) AS requires_approval
  FROM pg_catalog.pg_seclabel t
  JOIN pg_catalog.pg_attribute a
    ON a.attrelid OPERATOR(pg_catalog.=) t.objoid
   AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_seclabel c
    ON c.objoid OPERATOR(pg_catalog.=) t.objoid
   AND c.classoid OPERATOR(pg_catalog.=) t.classoid
   AND c.objsubid OPERATOR(pg_catalog.=) a.attnum
   AND c.provider OPERATOR(pg_catalog.=) 'agentauth'
  LEFT JOIN agentauth.data_class d ON d.name OPERATOR(pg_catalog.=) c.label
 WHERE t.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND t.objsubid OPERATOR(pg_catalog.=) 0
   AND t.provider OPERATOR(pg_catalog.=) 'agentauth';
GRANT SELECT ON agentauth.protected_columns TO PUBLIC;

-- Unmanaged access (SPEC 6.5, 12): login roles that are not principals and
-- tried a protected table, and those that hold privileges on one.
CREATE VIEW agentauth.unregistered_activity AS
SELECT 'attempt'::text AS kind,
       l.db_role AS role,
       l.relation,
       pg_catalog.count(*) AS attempts,
       pg_catalog.min(l.logged_at) AS first_seen,
       pg_catalog.max(l.logged_at) AS last_seen,
       (pg_catalog.array_agg(l.detail OPERATOR(pg_catalog.->>) 'client_addr' ORDER BY l.seq DESC))[1] AS last_client_addr,
       (pg_catalog.array_agg(l.detail OPERATOR(pg_catalog.->>) 'application_name' ORDER BY l.seq DESC))[1] AS last_application_name,
       NULL::text[] AS privileges,
       NULL::boolean AS bypasses_rls
  FROM agentauth.audit_record l
 WHERE l.event OPERATOR(pg_catalog.=) 'unregistered_access'
 GROUP BY l.db_role, l.relation
UNION ALL
SELECT 'privileged role', r.rolname::text,
       pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname),
       NULL, NULL, NULL, NULL, NULL,
       ARRAY(SELECT p FROM pg_catalog.unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) p
              WHERE EXISTS (SELECT FROM pg_catalog.unnest(r.becomes) g
                             WHERE pg_catalog.has_table_privilege(g, t.objoid, p))),
       r.bypasses
  FROM pg_catalog.pg_seclabel t
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.objoid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  -- (1.1, found by review) each login with the roles it can SET ROLE to,
  -- NOINHERIT or not: what it may do as any of them (a member of a
  -- BYPASSRLS group, of pg_read_all_data)
  CROSS JOIN LATERAL (
       SELECT l.rolname,
              ARRAY(SELECT g.oid FROM pg_catalog.pg_roles g
                     WHERE pg_catalog.pg_has_role(l.oid, g.oid, 'MEMBER')) AS becomes,
              EXISTS (SELECT FROM pg_catalog.pg_roles g
                       WHERE (g.rolsuper OR g.rolbypassrls)
                         AND pg_catalog.pg_has_role(l.oid, g.oid, 'MEMBER')) AS bypasses
         FROM pg_catalog.pg_roles l
        WHERE l.rolcanlogin
          AND NOT EXISTS (SELECT FROM agentauth.principal p WHERE p.db_role OPERATOR(pg_catalog.=) l.oid)
       OFFSET 0) r
 WHERE t.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND t.objsubid OPERATOR(pg_catalog.=) 0
   AND t.provider OPERATOR(pg_catalog.=) 'agentauth'
   AND EXISTS (SELECT FROM pg_catalog.unnest(r.becomes) g
                WHERE pg_catalog.has_table_privilege(g, t.objoid, 'SELECT')
                   OR pg_catalog.has_table_privilege(g, t.objoid, 'INSERT')
                   OR pg_catalog.has_table_privilege(g, t.objoid, 'UPDATE')
                   OR pg_catalog.has_table_privilege(g, t.objoid, 'DELETE')
                   OR pg_catalog.has_table_privilege(g, t.objoid, 'TRUNCATE'));
REVOKE ALL ON agentauth.unregistered_activity FROM PUBLIC;
GRANT SELECT ON agentauth.unregistered_activity TO agentauth_auditor;
