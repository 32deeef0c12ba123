-- SPEC 5: a row is visible (or writable) only if consent permits *every*
-- class the statement touches on that table.  Three classes (lab, diagnosis
-- and the sensitive hiv), 27 patients: one for each mix of permit (p), deny
-- (d) and no decision (n) across the three, named R36-<lab><diag><hiv>.
-- Every order of every set of columns, in the select list and in WHERE, for
-- reads and for writes, under consents alone (TREATDS) and with defaults
-- (HOPERAT: lab permitted, diagnosis refused by default, hiv no default).
-- The 1.0 row check showed a row when only the first class it looked at was
-- permitted.
\set SHOW_CONTEXT never
CREATE ROLE reg36_agent LOGIN;
CREATE TABLE reg36_chart (
    id          int PRIMARY KEY,
    patient_id  text NOT NULL,
    lab         text,
    diag        text,
    hiv         text
);
INSERT INTO reg36_chart
SELECT row_number() OVER (ORDER BY l, d, h), 'R36-' || l || d || h, 'lab', 'diag', 'hiv'
  FROM unnest('{p,d,n}'::text[]) l, unnest('{p,d,n}'::text[]) d, unnest('{p,d,n}'::text[]) h;
SELECT agentauth.protect_table('reg36_chart', 'patient_id',
    '{"id": "non_phi", "lab": "lab", "diag": "diagnosis", "hiv": "hiv"}');
GRANT SELECT, INSERT, UPDATE ON reg36_chart TO reg36_agent;
SELECT agentauth.register_agent('reg36-agent', 'reg36_agent', 'Mix team', '{TREATDS,HOPERAT}',
    '{lab:read,lab:write,diagnosis:read,diagnosis:write,hiv:read,hiv:write}') AS agent \gset
SELECT agentauth.issue_token(:'agent', 'TREATDS') AS s_consent \gset
SELECT agentauth.issue_token(:'agent', 'HOPERAT') AS s_default \gset
SELECT agentauth.set_default_decision('HOPERAT', 'lab', 'permit');
SELECT agentauth.set_default_decision('HOPERAT', 'diagnosis', 'deny');
-- one provision per class and patient, for reads and writes, any purpose
SELECT count(agentauth.record_consent(p.patient_id,
           CASE substr(p.patient_id, 4 + c.pos, 1) WHEN 'p' THEN 'permit' ELSE 'deny' END,
           data_classes => ARRAY[c.class], actions => '{read,write}'))
  FROM reg36_chart p,
       (VALUES (1, 'lab'), (2, 'diagnosis'), (3, 'hiv')) c(pos, class)
 WHERE substr(p.patient_id, 4 + c.pos, 1) <> 'n';

-- the decision each patient should get for a set of columns: 'p' when every
-- class is permitted (by its provision, or under HOPERAT by the default)
CREATE FUNCTION reg36_letter(patient text, col text, purpose text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN l <> 'n' THEN l
        WHEN purpose = 'HOPERAT' AND col = 'lab' THEN 'p'
        WHEN purpose = 'HOPERAT' AND col = 'diag' THEN 'd'
        ELSE 'n' END
      FROM substr(patient, 4 + CASE col WHEN 'lab' THEN 1 WHEN 'diag' THEN 2 ELSE 3 END, 1) l
$$;
CREATE FUNCTION reg36_expected(patient text, cols text[], purpose text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT bool_and(reg36_letter(patient, c, purpose) = 'p') FROM unnest(cols) c
$$;
-- every order of every non-empty set of the three columns
CREATE VIEW reg36_orders AS
WITH c(n) AS (VALUES ('lab'), ('diag'), ('hiv'))
SELECT ARRAY[a.n] AS cols FROM c a
UNION ALL SELECT ARRAY[a.n, b.n] FROM c a, c b WHERE a.n <> b.n
UNION ALL SELECT ARRAY[a.n, b.n, x.n] FROM c a, c b, c x
 WHERE a.n <> b.n AND a.n <> x.n AND b.n <> x.n;
GRANT SELECT ON reg36_orders TO reg36_agent;

-- reads: the patients a statement returns, against those it should return;
-- the columns in the select list, or the first there and the rest in WHERE
CREATE FUNCTION reg36_reads(purpose text) RETURNS TABLE (cols text, form text, wrong text)
LANGUAGE plpgsql AS $$
DECLARE
    o record;
    f text;
    q text;
    got text[];
    want text[];
BEGIN
    FOR o IN SELECT * FROM reg36_orders LOOP
        FOREACH f IN ARRAY ARRAY['select', 'where'] LOOP
            IF f = 'select' THEN
                q := format('SELECT patient_id, %s FROM reg36_chart', array_to_string(o.cols, ', '));
            ELSIF cardinality(o.cols) = 1 THEN
                CONTINUE;
            ELSE
                q := format('SELECT patient_id, %s FROM reg36_chart WHERE %s', o.cols[1],
                            (SELECT string_agg(format('%I IS NOT NULL', c), ' AND ')
                               FROM unnest(o.cols[2:]) c));
            END IF;
            EXECUTE format('SELECT coalesce(array_agg(patient_id ORDER BY patient_id), ''{}'') FROM (%s) s', q)
                INTO got;
            SELECT coalesce(array_agg(patient_id ORDER BY patient_id), '{}') INTO want
              FROM (SELECT 'R36-' || l || d || h AS patient_id
                      FROM unnest('{p,d,n}'::text[]) l, unnest('{p,d,n}'::text[]) d,
                           unnest('{p,d,n}'::text[]) h) s
             WHERE reg36_expected(patient_id, o.cols, purpose);
            cols := array_to_string(o.cols, ',');
            form := f;
            wrong := CASE WHEN got = want THEN 'ok'
                          ELSE format('got %s, want %s', got, want) END;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

-- writes: UPDATE and INSERT of each patient with the columns in that order;
-- a write happens only when every written class permits it (writes take no
-- defaults), and is refused with 42501 when the row is visible
CREATE FUNCTION reg36_writes() RETURNS TABLE (cols text, wrong text)
LANGUAGE plpgsql AS $$
DECLARE
    o record;
    p text;
    n int;
    did boolean;
    bad text[];
    next_id int := 1000;
BEGIN
    FOR o IN SELECT * FROM reg36_orders LOOP
        bad := '{}';
        FOR p IN SELECT 'R36-' || l || d || h FROM unnest('{p,d,n}'::text[]) l,
                 unnest('{p,d,n}'::text[]) d, unnest('{p,d,n}'::text[]) h LOOP
            -- UPDATE
            BEGIN
                EXECUTE format('UPDATE reg36_chart SET (%s) = ROW(%s) WHERE patient_id = $1',
                               array_to_string(o.cols, ', '),
                               (SELECT string_agg(quote_literal(c || '-w'), ', ') FROM unnest(o.cols) c))
                    USING p;
                GET DIAGNOSTICS n = ROW_COUNT;
                did := n > 0;
            EXCEPTION WHEN insufficient_privilege THEN
                did := false;
            END;
            IF did IS DISTINCT FROM reg36_expected(p, o.cols, 'TREATDS') THEN
                bad := bad || ('update ' || p);
            END IF;
            -- INSERT
            next_id := next_id + 1;
            BEGIN
                EXECUTE format('INSERT INTO reg36_chart (id, patient_id, %s) VALUES ($1, $2, %s)',
                               array_to_string(o.cols, ', '),
                               (SELECT string_agg(quote_literal(c || '-i'), ', ') FROM unnest(o.cols) c))
                    USING next_id, p;
                did := true;
            EXCEPTION WHEN insufficient_privilege THEN
                did := false;
            END;
            IF did IS DISTINCT FROM reg36_expected(p, o.cols, 'TREATDS') THEN
                bad := bad || ('insert ' || p);
            END IF;
        END LOOP;
        cols := array_to_string(o.cols, ',');
        wrong := CASE WHEN bad = '{}' THEN 'ok' ELSE array_to_string(bad, '; ') END;
        RETURN NEXT;
    END LOOP;
END $$;

SELECT coalesce(max(seq), 0) AS seq0 FROM agentauth.audit_log \gset
SET SESSION AUTHORIZATION reg36_agent;
SELECT agentauth.begin_session(:'s_consent') IS NOT NULL AS began;
-- the reported case: lab permitted for R36-pdd, R36-pnn ..., hiv not
SELECT patient_id, hiv FROM reg36_chart ORDER BY 1;
SELECT patient_id, lab, hiv FROM reg36_chart ORDER BY 1;
SELECT patient_id, hiv, lab FROM reg36_chart ORDER BY 1;
SELECT count(*) AS statements, count(*) FILTER (WHERE wrong <> 'ok') AS wrong,
       string_agg(cols || ' ' || form || ': ' || wrong, E'\n') FILTER (WHERE wrong <> 'ok') AS what
  FROM reg36_reads('TREATDS');
SELECT agentauth.begin_session(:'s_default') IS NOT NULL AS began;
SELECT patient_id, lab, diag FROM reg36_chart ORDER BY 1;
SELECT count(*) AS statements, count(*) FILTER (WHERE wrong <> 'ok') AS wrong,
       string_agg(cols || ' ' || form || ': ' || wrong, E'\n') FILTER (WHERE wrong <> 'ok') AS what
  FROM reg36_reads('HOPERAT');
-- writes, undone afterwards (their records stay)
SELECT agentauth.begin_session(:'s_consent') IS NOT NULL AS began;
BEGIN;
SELECT count(*) AS statements, count(*) FILTER (WHERE wrong <> 'ok') AS wrong,
       string_agg(cols || ': ' || wrong, E'\n') FILTER (WHERE wrong <> 'ok') AS what
  FROM reg36_writes();
RESET SESSION AUTHORIZATION;
-- the rows written are exactly the permitted ones
SELECT count(*) AS rows_written,
       count(*) FILTER (WHERE NOT reg36_expected(patient_id,
           ARRAY(SELECT c FROM unnest('{lab,diag,hiv}'::text[]) c
                  WHERE (c = 'lab' AND lab LIKE '%-_') OR (c = 'diag' AND diag LIKE '%-_')
                     OR (c = 'hiv' AND hiv LIKE '%-_')), 'TREATDS')) AS unpermitted_writes,
       count(*) FILTER (WHERE id > 1000) AS inserted
  FROM reg36_chart
 WHERE lab LIKE '%-_' OR diag LIKE '%-_' OR hiv LIKE '%-_';
ROLLBACK;
SELECT agentauth.end_session();
RESET SESSION AUTHORIZATION;

-- the records agree: an access record of a statement that named columns
-- of classes says permit only for a patient whose every recorded class was
-- permitted; no read of a permitted patient was recorded as denied
SELECT count(*) > 0 AS permits_recorded,
       count(*) FILTER (WHERE NOT reg36_expected(patient,
           ARRAY(SELECT CASE c WHEN 'diagnosis' THEN 'diag' ELSE c END FROM unnest(data_classes) c),
           purpose)) AS wrong_permits
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation = 'public.reg36_chart' AND event = 'access'
   AND outcome = 'permit' AND columns && '{lab,diag,hiv}';
-- one that named none (the key of an UPDATE's WHERE) is recorded with the
-- table's classes in scope, its permit resting on any one of them (review
-- r38: it was recorded with no class)
SELECT count(*) > 0 AS keys_recorded,
       count(*) FILTER (WHERE data_classes = '{}') AS without_classes,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT FROM unnest(data_classes) c
            WHERE reg36_letter(patient, CASE c WHEN 'diagnosis' THEN 'diag' ELSE c END,
                               purpose) = 'p')) AS wrong_permits
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation = 'public.reg36_chart' AND event = 'access'
   AND outcome = 'permit' AND NOT columns && '{lab,diag,hiv}';
SELECT count(*) AS access_records_saying_deny
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation = 'public.reg36_chart' AND event = 'access'
   AND outcome <> 'permit';
SELECT count(*) > 0 AS denials_recorded,
       count(*) FILTER (WHERE reg36_expected(patient,
           ARRAY(SELECT CASE c WHEN 'diagnosis' THEN 'diag' ELSE c END FROM unnest(data_classes) c),
           purpose)) AS permitted_but_denied
  FROM agentauth.audit_log
 WHERE seq > :seq0 AND relation = 'public.reg36_chart' AND event = 'denied'
   AND data_classes <> '{}';
