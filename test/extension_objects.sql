-- Everything agentauth installs, one line per object and property, without
-- OIDs: what the upgrade test (t/090_upgrade.pl) compares between a fresh
-- install and an updated one.  Objects: the extension's members, everything
-- in its schema (member or not), its event triggers and privilege roles.
-- Properties: definition, owner, privileges, comment, security labels,
-- membership, and the extension's configuration tables.
WITH ext AS (
    SELECT e.oid, e.extnamespace FROM pg_extension e WHERE e.extname = 'agentauth'
), members AS (
    SELECT d.classid, d.objid, d.objsubid
      FROM pg_depend d, ext
     WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid
       AND d.deptype = 'e'
), objs AS (
    -- every member, and every object of the schema whether member or not
    SELECT classid, objid, objsubid FROM members
    UNION
    SELECT 'pg_class'::regclass, c.oid, 0 FROM pg_class c, ext
     WHERE c.relnamespace = ext.extnamespace
    UNION
    SELECT 'pg_proc'::regclass, p.oid, 0 FROM pg_proc p, ext
     WHERE p.pronamespace = ext.extnamespace
    UNION
    SELECT 'pg_type'::regclass, t.oid, 0 FROM pg_type t, ext
     WHERE t.typnamespace = ext.extnamespace AND t.typtype <> 'c'
       AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
    UNION
    SELECT 'pg_event_trigger'::regclass, t.oid, 0 FROM pg_event_trigger t
     WHERE t.evtfoid IN (SELECT p.oid FROM pg_proc p, ext WHERE p.pronamespace = ext.extnamespace)
), named AS (
    SELECT o.*, pg_describe_object(o.classid, o.objid, o.objsubid) AS name
      FROM objs o
), lines AS (
    -- membership
    SELECT n.name || ': member = ' ||
           EXISTS (SELECT FROM members m WHERE (m.classid, m.objid, m.objsubid) =
                                               (n.classid, n.objid, n.objsubid)) AS line
      FROM named n
    -- functions: the whole definition, owner, privileges
    UNION ALL
    SELECT n.name || ': ' || x.k || ' = ' || coalesce(x.v, '<null>')
      FROM named n JOIN pg_proc p ON n.classid = 'pg_proc'::regclass AND p.oid = n.objid,
           LATERAL (VALUES
               ('definition', CASE WHEN p.prokind = 'a' THEN 'aggregate'
                                   ELSE replace(pg_get_functiondef(p.oid), E'\n', '\n') END),
               ('owner', p.proowner::regrole::text),
               ('acl', p.proacl::text),
               ('parallel', p.proparallel::text),
               ('leakproof', p.proleakproof::text)) x(k, v)
    -- relations: kind, owner, privileges, options, row security
    UNION ALL
    SELECT n.name || ': ' || x.k || ' = ' || coalesce(x.v, '<null>')
      FROM named n JOIN pg_class c ON n.classid = 'pg_class'::regclass AND c.oid = n.objid,
           LATERAL (VALUES
               ('kind', c.relkind::text),
               ('owner', c.relowner::regrole::text),
               ('acl', c.relacl::text),
               ('options', c.reloptions::text),
               ('persistence', c.relpersistence::text),
               ('row security', c.relrowsecurity::text || '/' || c.relforcerowsecurity::text),
               ('replica identity', c.relreplident::text),
               ('view', CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END),
               ('index', CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) END)) x(k, v)
    -- columns
    UNION ALL
    SELECT n.name || ': column ' || a.attnum || ' ' || a.attname || ' = ' ||
           format_type(a.atttypid, a.atttypmod) ||
           CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ||
           coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '') ||
           CASE WHEN a.attidentity::text <> '' THEN ' identity ' || a.attidentity::text ELSE '' END ||
           CASE WHEN a.attgenerated::text <> '' THEN ' generated ' || a.attgenerated::text ELSE '' END ||
           coalesce(' collate ' || nullif(a.attcollation, t.typcollation)::regcollation::text, '') ||
           coalesce(' storage ' || nullif(a.attstorage, t.typstorage)::text, '') ||
           coalesce(' compression ' || nullif(a.attcompression::text, ''), '') ||
           -- (statistics target: -1 the default before 17, NULL from 17)
           coalesce(' statistics ' || nullif(a.attstattarget::int, -1)::text, '') ||
           coalesce(' acl ' || a.attacl::text, '') ||
           -- (pg_attver: a per-cluster attribute version that 15.x back
           -- branches keep in attoptions, not a property of the object)
           coalesce(' options ' || nullif(array(SELECT o FROM unnest(a.attoptions) o
                                                 WHERE o NOT LIKE 'pg\_attver=%')::text, '{}'), '')
      FROM named n JOIN pg_class c ON n.classid = 'pg_class'::regclass AND c.oid = n.objid
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
    -- constraints, triggers, policies, rules of those relations
    UNION ALL
    SELECT n.name || ': constraint ' || k.conname || ' = ' || pg_get_constraintdef(k.oid)
      FROM named n JOIN pg_constraint k ON n.classid = 'pg_class'::regclass AND k.conrelid = n.objid
    UNION ALL
    SELECT n.name || ': trigger ' || g.tgname || ' = ' || pg_get_triggerdef(g.oid) ||
           ' enabled ' || g.tgenabled::text
      FROM named n JOIN pg_trigger g ON n.classid = 'pg_class'::regclass AND g.tgrelid = n.objid
     WHERE NOT g.tgisinternal
    UNION ALL
    SELECT n.name || ': policy ' || p.polname || ' = ' || p.polcmd::text || ' ' || p.polpermissive ||
           ' ' || p.polroles::regrole[]::text || ' using ' ||
           coalesce(pg_get_expr(p.polqual, p.polrelid), '-') || ' check ' ||
           coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '-')
      FROM named n JOIN pg_policy p ON n.classid = 'pg_class'::regclass AND p.polrelid = n.objid
    UNION ALL
    SELECT n.name || ': rule ' || r.rulename || ' = ' || pg_get_ruledef(r.oid)
      FROM named n JOIN pg_rewrite r ON n.classid = 'pg_class'::regclass AND r.ev_class = n.objid
     WHERE r.rulename <> '_RETURN'
    -- sequences
    UNION ALL
    SELECT n.name || ': sequence = ' || s.seqtypid::regtype || ' ' || s.seqstart || ' ' ||
           s.seqincrement || ' ' || s.seqmax || ' ' || s.seqmin || ' ' || s.seqcache || ' ' || s.seqcycle
      FROM named n JOIN pg_sequence s ON n.classid = 'pg_class'::regclass AND s.seqrelid = n.objid
    -- types: kind, owner, privileges, enum labels, domain constraints
    UNION ALL
    SELECT n.name || ': type = ' || t.typtype::text || ' owner ' || t.typowner::regrole ||
           coalesce(' acl ' || t.typacl::text, '') ||
           coalesce(' base ' || nullif(t.typbasetype, 0)::regtype::text, '') ||
           coalesce(' labels ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                     FROM pg_enum e WHERE e.enumtypid = t.oid), '') ||
           coalesce(' checks ' || (SELECT string_agg(pg_get_constraintdef(k.oid), ' AND ' ORDER BY k.conname)
                                     FROM pg_constraint k WHERE k.contypid = t.oid), '')
      FROM named n JOIN pg_type t ON n.classid = 'pg_type'::regclass AND t.oid = n.objid
    -- event triggers
    UNION ALL
    SELECT n.name || ': event trigger = ' || t.evtevent || ' ' || t.evtfoid::regproc || ' ' ||
           t.evtenabled::text || ' owner ' || t.evtowner::regrole || ' tags ' || coalesce(t.evttags::text, '-')
      FROM named n JOIN pg_event_trigger t ON n.classid = 'pg_event_trigger'::regclass AND t.oid = n.objid
    -- schemas
    UNION ALL
    SELECT n.name || ': schema owner ' || s.nspowner::regrole || ' acl ' || coalesce(s.nspacl::text, '<null>')
      FROM named n JOIN pg_namespace s ON n.classid = 'pg_namespace'::regclass AND s.oid = n.objid
    -- comments on every object and its columns
    UNION ALL
    SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid) || ': comment = ' || d.description
      FROM pg_description d JOIN named n ON d.classoid = n.classid AND d.objoid = n.objid
    -- security labels on every object and its columns
    UNION ALL
    SELECT pg_describe_object(l.classoid, l.objoid, l.objsubid) || ': label ' || l.provider || ' = ' || l.label
      FROM pg_seclabel l JOIN named n ON l.classoid = n.classid AND l.objoid = n.objid
    -- the privilege roles and their memberships
    UNION ALL
    SELECT 'role ' || r.rolname || ': ' || r.rolcanlogin || ' ' || r.rolinherit || ' ' || r.rolsuper ||
           ' member of ' || coalesce((SELECT string_agg(g.rolname, ',' ORDER BY g.rolname)
                                        FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                                       WHERE m.member = r.oid), '-')
      FROM pg_roles r WHERE r.rolname LIKE 'agentauth\_%'
    -- the extension itself: version and configuration tables
    UNION ALL
    SELECT 'extension agentauth: version ' || e.extversion || ' config ' ||
           coalesce((SELECT string_agg(c::regclass::text || ' ' || coalesce(w, '-'), '; ' ORDER BY c::regclass::text)
                       FROM unnest(e.extconfig, e.extcondition) u(c, w)), '-')
      FROM pg_extension e WHERE e.extname = 'agentauth'
)
SELECT line FROM lines ORDER BY line COLLATE "C";
