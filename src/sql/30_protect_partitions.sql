-- (1.1) Partitioned tables (src/partition.c): protect_table(),
-- require_approval() and unprotect_table() on a partitioned table act on
-- every partition, at every level; CREATE ... PARTITION OF and ATTACH
-- PARTITION under a protected table call _protect_partitions() for the new
-- ones.  A query through the parent is checked under the parent's row
-- security, a query that names a partition under the partition's: both
-- carry the same classification.

-- Copy the classification of a protected table to one of its partitions
-- (labels by column name), recorded as table_protected.
CREATE FUNCTION agentauth._inherit_classification(parent regclass, part regclass)
    RETURNS void LANGUAGE c AS 'MODULE_PATHNAME', 'aa_inherit_classification';
REVOKE ALL ON FUNCTION agentauth._inherit_classification(regclass, regclass) FROM PUBLIC;

-- Give the partitions of a protected table (all, or those without labels)
-- its classification, row security and replication triggers.  Returns how
-- many it protected.
CREATE FUNCTION agentauth._protect_partitions(tbl regclass, only_unprotected boolean DEFAULT false)
    RETURNS integer LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part    record;
    n       integer := 0;
BEGIN
    SELECT t.relid INTO part FROM pg_catalog.pg_partition_tree(tbl) t
      JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid
     WHERE c.relkind OPERATOR(pg_catalog.=) 'f' LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'partition % of % is a foreign table', part.relid, tbl USING ERRCODE = '42809',
            DETAIL = 'Rows of a foreign table cannot be protected.',
            HINT = 'Detach it before protecting the partitioned table.';
    END IF;
    FOR part IN SELECT t.relid, t.parentrelid FROM pg_catalog.pg_partition_tree(tbl) t
                 WHERE t.level OPERATOR(pg_catalog.>) 0 ORDER BY t.level, t.relid LOOP
        CONTINUE WHEN only_unprotected AND agentauth._table_label(part.relid) IS NOT NULL;
        PERFORM agentauth._replication_triggers(part.relid);
        PERFORM agentauth._inherit_classification(part.parentrelid, part.relid);
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY',
                                  part.relid);
        n := n OPERATOR(pg_catalog.+) 1;
    END LOOP;
    RETURN n;
END
$$;
REVOKE ALL ON FUNCTION agentauth._protect_partitions(regclass, boolean) FROM PUBLIC;

-- Unprotect the partitions of tbl, whose own labels the caller removed:
-- their labels, row security and own triggers (the clones of tbl's
-- replication trigger go with it).  Each recorded as table_unprotected.
CREATE FUNCTION agentauth._unprotect_partitions(tbl regclass, reason text)
    RETURNS void LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part    record;
    col     record;
BEGIN
    -- every label first: while one is left, its relatives count as protected
    FOR part IN SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
                 WHERE t.level OPERATOR(pg_catalog.>) 0 ORDER BY t.level, t.relid LOOP
        CONTINUE WHEN agentauth._table_label(part.relid) IS NULL;
        PERFORM agentauth._set_label(part.relid, NULL, NULL);
        FOR col IN SELECT a.attname FROM pg_catalog.pg_seclabel s
                     JOIN pg_catalog.pg_attribute a
                       ON a.attrelid OPERATOR(pg_catalog.=) s.objoid AND a.attnum OPERATOR(pg_catalog.=) s.objsubid
                    WHERE s.objoid OPERATOR(pg_catalog.=) part.relid
                      AND s.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND s.objsubid OPERATOR(pg_catalog.>) 0
                      AND s.provider OPERATOR(pg_catalog.=) 'agentauth' LOOP
            PERFORM agentauth._set_label(part.relid, col.attname, NULL);
        END LOOP;
        PERFORM agentauth._audit('table_unprotected',
            pg_catalog.jsonb_build_object('reason', reason, 'via', 'partition', 'parent', agentauth._relation_name(tbl)),
            NULL, NULL, NULL, agentauth._relation_name(part.relid));
    END LOOP;
    FOR part IN SELECT t.relid FROM pg_catalog.pg_partition_tree(tbl) t
                 WHERE t.level OPERATOR(pg_catalog.>) 0 ORDER BY t.level, t.relid LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY',
                                  part.relid);
        EXECUTE pg_catalog.format('DROP TRIGGER IF EXISTS agentauth_replicated_truncate ON %s', part.relid);
        IF EXISTS (SELECT FROM pg_catalog.pg_trigger g
                    WHERE g.tgrelid OPERATOR(pg_catalog.=) part.relid
                      AND g.tgname OPERATOR(pg_catalog.=) 'agentauth_replicated_write'
                      AND g.tgparentid OPERATOR(pg_catalog.=) 0) THEN
            EXECUTE pg_catalog.format('DROP TRIGGER agentauth_replicated_write ON %s', part.relid);
        END IF;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION agentauth._unprotect_partitions(regclass, text) FROM PUBLIC;

-- protect_table(), require_approval() and unprotect_table() take the
-- partitioned table, not one of its partitions (unprotect_table() takes a
-- partition no protected table holds: left over, it can be cleaned up).
CREATE FUNCTION agentauth._refuse_partition(tbl regclass, caller text)
    RETURNS void LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    root regclass;
BEGIN
    IF NOT coalesce((SELECT c.relispartition FROM pg_catalog.pg_class c
                      WHERE c.oid OPERATOR(pg_catalog.=) tbl), false) THEN
        RETURN;
    END IF;
    IF caller OPERATOR(pg_catalog.=) 'unprotect_table' AND NOT EXISTS
        (SELECT FROM pg_catalog.pg_partition_ancestors(tbl) a
          WHERE a.relid OPERATOR(pg_catalog.<>) tbl
            AND agentauth._table_label(a.relid) IS NOT NULL) THEN
        RETURN;
    END IF;
    root := pg_catalog.pg_partition_root(tbl);
    RAISE EXCEPTION 'table % is a partition of %', tbl, root USING ERRCODE = '42809',
        DETAIL = 'A partition takes the classification of its partitioned table: rows read through either are checked alike.',
        HINT = pg_catalog.format('Call agentauth.%s() on %s: it covers every partition, present and future.',
                                 caller, root);
END
$$;
REVOKE ALL ON FUNCTION agentauth._refuse_partition(regclass, text) FROM PUBLIC;

-- A member of an extension is left out of pg_dump (the table and its rows
-- would be missing from every backup) and dropped with DROP EXTENSION,
-- which does not name it: no protected table may be one, nor any of its
-- partitions (1.1; ALTER EXTENSION ... ADD of a protected table is refused
-- by the DDL guard, an attach or a partition made by an extension's script
-- by partition.c).
CREATE FUNCTION agentauth._refuse_extension_member(tbl regclass, caller text)
    RETURNS void LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    member regclass;
    ext    name;
BEGIN
    SELECT t.relid, e.extname INTO member, ext
      FROM (SELECT tbl::pg_catalog.oid AS relid
            UNION SELECT p.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(tbl) p) t
      JOIN pg_catalog.pg_depend d
        ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objid OPERATOR(pg_catalog.=) t.relid AND d.deptype OPERATOR(pg_catalog.=) 'e'
      JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
     LIMIT 1;
    IF member IS NOT NULL THEN
        RAISE EXCEPTION 'table % is a member of extension %', member, ext USING ERRCODE = '42809',
            DETAIL = 'A member of an extension is left out of pg_dump and dropped with its extension.',
            HINT = pg_catalog.format('Remove it from the extension (ALTER EXTENSION %I DROP TABLE %s) before %s().',
                                     ext, member, caller);
    END IF;
END
$$;
REVOKE ALL ON FUNCTION agentauth._refuse_extension_member(regclass, text) FROM PUBLIC;

-- PostgreSQL clones the replication trigger of a partitioned table onto a
-- new partition as the user who creates or attaches it, and checks that
-- user's EXECUTE privilege on the function.  As a trigger it does nothing
-- on a table that is not protected, and no one else attaches triggers to a
-- protected table (ddl.c).
GRANT EXECUTE ON FUNCTION agentauth._replicated_write() TO PUBLIC;
