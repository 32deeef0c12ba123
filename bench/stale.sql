-- Zero stale rows: another session (over dblink) holds an open cursor on a
-- patient's rows; we withdraw that patient's consent (or revoke the token)
-- and commit; every row it fetches afterwards must be withheld (or the
-- fetch refused).  Prints the number of rows returned after the commit.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE FUNCTION public.stale_fetch(conn text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
    SELECT count(*) INTO n FROM dblink(conn, 'FETCH ALL FROM c') AS t(code text);
    RETURN n;
EXCEPTION WHEN others THEN
    RETURN 0;       -- refused (28000 after revocation): no row returned
END $$;

CREATE PROCEDURE public.stale_probe(rounds int, INOUT stale bigint DEFAULT 0)
LANGUAGE plpgsql AS $$
DECLARE
    tok text;
    pid text;
    cid uuid;
    first bigint;
    tid uuid;
    connstr text := format('dbname=bench user=bench_agent_sync host=%s port=%s',
                           current_setting('unix_socket_directories'), current_setting('port'));
BEGIN
    stale := 0;
    FOR r IN 1 .. rounds LOOP
        tok := agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_sync'),
                                     'TREAT', '10 minutes');
        pid := 'P' || lpad((r * 20 + 5)::text, 6, '0');
        COMMIT;
        PERFORM dblink_connect('probe', connstr);
        PERFORM * FROM dblink('probe', format('SELECT agentauth.begin_session(%L)', tok)) AS t(s uuid);
        SELECT t.token INTO tid FROM dblink('probe', 'SELECT token FROM agentauth.whoami()') AS t(token uuid);
        PERFORM dblink_exec('probe', 'BEGIN');
        PERFORM dblink_exec('probe', format(
            'DECLARE c CURSOR FOR SELECT code FROM clinic.obs_aa WHERE patient_id = %L', pid));
        SELECT count(*) INTO first FROM dblink('probe', 'FETCH 1 FROM c') AS t(code text);
        IF first <> 1 THEN
            RAISE EXCEPTION 'probe patient % not visible before the change', pid;
        END IF;
        IF r % 2 = 0 THEN
            -- withdrawal
            SELECT id INTO cid FROM agentauth.consents
             WHERE patient = pid AND decision = 'permit' AND withdrawn_at IS NULL LIMIT 1;
            PERFORM agentauth.withdraw_consent(cid, 'stale probe');
        ELSE
            -- revocation
            PERFORM agentauth.revoke_token(tid, 'stale probe');
        END IF;
        COMMIT;
        stale := stale + public.stale_fetch('probe');
        PERFORM dblink_disconnect('probe');
        IF r % 2 = 0 THEN
            PERFORM agentauth.record_consent(pid, 'permit', '{TREAT}', '{lab}');
        END IF;
        COMMIT;
    END LOOP;
END $$;

CALL public.stale_probe(20);
DROP PROCEDURE public.stale_probe(int, bigint);
DROP FUNCTION public.stale_fetch(text);
