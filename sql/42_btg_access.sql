-- Break-the-glass at work on a protected table: consent opened for one
-- patient and one session, minimum necessary kept, every access audited
-- under purpose BTG and the override's id.
\set SHOW_CONTEXT never
CREATE ROLE btg2_doc LOGIN;
CREATE ROLE btg2_colleague LOGIN;
CREATE TABLE public.btg2_lab (
    id          serial PRIMARY KEY,
    patient_id  text NOT NULL,
    test        text,
    result      numeric,
    hiv_status  text
);
GRANT ALL ON public.btg2_lab TO PUBLIC;
GRANT USAGE ON SEQUENCE public.btg2_lab_id_seq TO PUBLIC;
SELECT agentauth.protect_table('btg2_lab', 'patient_id',
                               '{"hiv_status": "hiv", "id": "non_phi"}', 'lab');
INSERT INTO btg2_lab (patient_id, test, result, hiv_status) VALUES
    ('BTG2-P1', 'hb', 13.5, 'neg'), ('BTG2-P1', 'k', 4.1, 'neg'),
    ('BTG2-P2', 'hb', 12.0, 'pos');
-- BTG2-P1 refused all sharing; BTG2-P2 permits lab results for treatment
SELECT agentauth.record_consent('BTG2-P1', 'deny', actions => '{read,write}') IS NOT NULL AS recorded;
SELECT agentauth.record_consent('BTG2-P2', 'permit', '{TREAT}', '{lab}', '{read}') IS NOT NULL AS recorded;
SELECT agentauth.register_human('btg2 doc', 'btg2_doc', '{TREAT}', '{lab:read,lab:write}',
                                can_break_glass => true) IS NOT NULL AS registered;
SELECT agentauth.register_human('btg2 colleague', 'btg2_colleague', '{TREAT}', '{lab:read}',
                                can_break_glass => true) IS NOT NULL AS registered;

\c - btg2_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
-- consent rules: only BTG2-P2
SELECT patient_id, test, result FROM btg2_lab ORDER BY id;
SELECT agentauth.break_glass('BTG2-P1', 'found unconscious; deny on file, life-threatening hyperkalaemia suspected',
                             '30 minutes') AS bg \gset
-- now BTG2-P1 too, in this session
SELECT patient_id, test, result FROM btg2_lab ORDER BY id;
SELECT decision, reason FROM agentauth.explain_access('BTG2-P1', 'lab');
-- minimum necessary is not suspended: hiv is not in this session's scope
SELECT hiv_status FROM btg2_lab WHERE patient_id = 'BTG2-P1';
-- writes for BTG2-P1 are opened too (within the write scope), not for others
INSERT INTO btg2_lab (patient_id, test, result) VALUES ('BTG2-P1', 'na', 139);
INSERT INTO btg2_lab (patient_id, test, result) VALUES ('BTG2-P2', 'na', 141);
SELECT test, result FROM btg2_lab WHERE patient_id = 'BTG2-P1' ORDER BY id;

-- another session, even of a clinician who may break the glass: nothing
\c - btg2_colleague
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT patient_id, test FROM btg2_lab ORDER BY id;

-- ended: consent rules again
\c - btg2_doc
SELECT agentauth.begin_human_session('TREAT') IS NOT NULL AS began;
SELECT patient_id FROM btg2_lab ORDER BY id;
SELECT agentauth.break_glass('BTG2-P1', 'second look at the potassium', '5 minutes') AS bg2 \gset
SELECT count(*) AS p1_rows FROM btg2_lab WHERE patient_id = 'BTG2-P1';
SELECT agentauth.end_break_glass(:'bg2');
SELECT count(*) AS p1_rows_after_end FROM btg2_lab WHERE patient_id = 'BTG2-P1';
-- a cursor opened under the override sees no more rows once it ends
SELECT agentauth.break_glass('BTG2-P1', 'third look', '5 minutes') AS bg3 \gset
BEGIN;
DECLARE c CURSOR FOR SELECT test FROM btg2_lab WHERE patient_id = 'BTG2-P1' ORDER BY id;
FETCH 1 FROM c;
SELECT agentauth.end_break_glass(:'bg3');
FETCH ALL FROM c;
COMMIT;

\c - postgres
-- (the doctor's first backend ended its override as it exited)
SELECT set_config('btg.wait', :'bg', false) IS NOT NULL AS noted;
DO $$
BEGIN
    FOR i IN 1 .. 300 LOOP
        EXIT WHEN EXISTS (SELECT FROM agentauth.break_glass
                           WHERE id = current_setting('btg.wait')::uuid AND ended_at IS NOT NULL);
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
-- the audit: every access under the override names it, with purpose BTG
SELECT a.event, a.principal_name, a.purpose, a.patient, a.action, a.row_count,
       a.columns, a.authority ->> 'break_glass' = :'bg' AS names_bg,
       a.authority ->> 'break_glass' = :'bg2' AS names_bg2,
       a.authority ->> 'break_glass' = :'bg3' AS names_bg3
  FROM agentauth.audit_log a
 WHERE a.relation = 'public.btg2_lab' AND a.principal_name = 'btg2 doc'
 ORDER BY a.seq;
SELECT e.patient, e.state, e.accesses
  FROM agentauth.break_glass_events e
 WHERE e.id IN (:'bg', :'bg2', :'bg3')
 ORDER BY e.started_at;
