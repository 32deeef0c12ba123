#!/usr/bin/env bash
# agentauth demo: `make demo` (as root) runs this; `make demo-stop` stops
# the server it started.
#
# Installs what it needs, builds the extension in a temporary copy of the
# source (the checkout is only read) and installs it, starts a private
# PostgreSQL server under $DEMO_DIR (default /var/tmp/agentauth-demo, port
# 54329, owned by the postgres OS user), creates a small clinical schema
# with synthetic patients, and walks through what agentauth does, step by
# step.  Re-running it stops the old demo server and starts again from
# scratch.  It starts and stops only its own server.
#
# Every statement must succeed, except those marked "-- fails" at the end
# of their line, which must fail: anything else stops the demo with a
# non-zero exit status.
#
# Extending the demo: add a step function below and call it from main at
# the place marked for it.  Run SQL as the DBA with `sql`, as the agent
# with `agent_sql` (which begins the agent's session with its token first),
# and as the clinician with `human_sql` (AGENT_ROLE=role agent_sql runs
# as another agent's login).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

PORT=${DEMO_PORT:-54329}
demo=${DEMO_DIR:-/var/tmp/agentauth-demo}
data=$demo/data
ver=$(pg_config --version 2>/dev/null | sed 's/[^0-9]*\([0-9]*\).*/\1/' || true)

# ------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------
step_no=0
step() {
    step_no=$((step_no + 1))
    printf '\n\033[1m== %d. %s\033[0m\n' "$step_no" "$*"
}
say() { printf '   %s\n' "$*"; }
as_pg() { runuser -u postgres -- "$@"; }

# Statements marked "-- fails" must fail; every other one must succeed
# (psql stops at the first error: ON_ERROR_STOP).  A marked statement runs
# with ON_ERROR_STOP off, and the demo stops if it did not fail.
mark_expected_failures() {
    awk '
    /^\\/ && buf == "" { print; next }
    {
        buf = buf $0 "\n"
        if ($0 ~ /-- fails/) f = 1
        if ($0 ~ /(;|\\g[a-z]*( .*)?)[ \t]*(--.*)?$/) {
            if (f)
                printf "\\set ON_ERROR_STOP 0\n%s\\set ON_ERROR_STOP 1\n\\if :ERROR\n\\else\n\\echo demo: the statement above should have failed\nSELECT demo_step_should_have_failed;\n\\endif\n", buf
            else
                printf "%s", buf
            buf = ""; f = 0
        }
    }
    END { printf "%s", buf }'
}
# psql on the demo server: sql [-U role] <<'SQL' ... SQL (echoes each query)
psql_demo() {
    local a
    for a in "$@"; do
        if [ "$a" = -c ]; then
            as_pg psql -X -q -h "$demo" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"
            return
        fi
    done
    mark_expected_failures | as_pg psql -X -q -h "$demo" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"
}
sql() { psql_demo -e "$@"; }
# quiet, one value
sql_value() { psql_demo -At -c "$1"; }

# Run SQL as the agent's login role inside one session that first begins
# an agentauth session with the current token (the secret is passed on
# stdin, never on a command line, and not echoed).
agent_sql() {
    local body
    body=$(cat)
    {
        printf '\\set secret %s\n' "'$TOKEN'"
        printf '\\echo %s\n' "'-- SELECT agentauth.begin_session(<the token>);'"
        printf 'SELECT agentauth.begin_session(:%s) IS NOT NULL AS session_begun;%s\n' "'secret'" \
            "${BEGIN_FAILS:+  -- fails: 28000}"
        printf '\\set ECHO queries\n'
        printf '%s\n' "$body"
    } | psql_demo -U "${AGENT_ROLE:-demo_agent}"
}

# Run SQL as the clinician (demo_clinician) in a human session.
human_sql() {
    local purpose=${1:-TREAT}
    {
        printf '\\set ECHO queries\n'
        printf "SELECT agentauth.begin_human_session('%s') IS NOT NULL AS session_begun;\n" "$purpose"
        cat
    } | psql_demo -U demo_clinician
}

# ------------------------------------------------------------------------
# steps
# ------------------------------------------------------------------------
install_and_build() {
    step "Install dependencies, build and install agentauth"
    bash scripts/deps.sh
    ver=$(pg_config --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
    build=$(mktemp -d "${TMPDIR:-/tmp}/agentauth-demo-build.XXXXXX")
    trap 'rm -rf "$build"' EXIT
    if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
        (git -C "$top" ls-files -z --cached --others --exclude-standard | xargs -0 tar -C "$top" -cf - 2>/dev/null) | tar -C "$build" -xf -
    else
        tar -C "$top" -cf - . | tar -C "$build" -xf -
    fi
    make -s -C "$build" -j2 >/dev/null
    make -s -C "$build" install >/dev/null
    aa_verify=$(pg_config --bindir)/aa_verify
    say "installed into $(pg_config --pkglibdir) and $(pg_config --sharedir)/extension"
}

stop_server() {
    local bin=/usr/lib/postgresql/$ver/bin
    if [ -f "$data/postmaster.pid" ]; then
        as_pg "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
        say "stopped the demo server in $demo"
    fi
}

start_server() {
    local bin=/usr/lib/postgresql/$ver/bin
    step "Start a private server in ./demo (port $PORT)"
    stop_server
    rm -rf "$demo"
    mkdir -p "$demo"
    chown postgres: "$demo"
    as_pg "$bin/initdb" -D "$data" -A trust -U postgres >/dev/null
    cat >>"$data/postgresql.conf" <<EOF

# agentauth demo
port = $PORT
listen_addresses = ''
unix_socket_directories = '$demo'
shared_preload_libraries = 'agentauth'
agentauth.database = 'postgres'
EOF
    as_pg "$bin/pg_ctl" -D "$data" -l "$demo/server.log" -w start >/dev/null
    say "server running: psql -h $demo -p $PORT -U postgres postgres (log: demo/server.log)"
    say "local connections are trusted: this server is for the demo only"
}

create_extension() {
    step "CREATE EXTENSION agentauth (in agentauth.database = postgres)"
    sql <<'SQL'
CREATE EXTENSION agentauth CASCADE;
SELECT extname, extversion FROM pg_extension WHERE extname = 'agentauth';
SQL
    step "Nothing is permitted without consent until the site decides otherwise"
    say "(this hospital adopts the HIPAA treatment default: one audited call)"
    sql <<'SQL'
SELECT count(*) AS defaults_installed FROM agentauth.default_decisions;
SELECT agentauth.set_default_decision('TREAT', '*', 'permit');
SELECT purpose, data_class, decision FROM agentauth.default_decisions;
SQL
}

create_clinical_schema() {
    step "A small clinical schema with synthetic patients"
    sql <<'SQL'
CREATE SCHEMA clinic;
CREATE TABLE clinic.patients (
    patient_id  text PRIMARY KEY,
    name        text NOT NULL,
    birth_date  date NOT NULL,
    phone       text,
    hiv_status  text
);
CREATE TABLE clinic.observations (
    id          bigserial PRIMARY KEY,
    patient_id  text NOT NULL REFERENCES clinic.patients,
    code        text NOT NULL,      -- LOINC
    display     text NOT NULL,
    value       numeric,
    unit        text,
    taken_at    timestamptz NOT NULL
);
CREATE INDEX ON clinic.observations (patient_id);
-- synthetic, not real people
INSERT INTO clinic.patients VALUES
    ('P001', 'Ada Synthetic',    '1961-03-14', '555-0101', 'negative'),
    ('P002', 'Ben Placeholder',  '1984-11-02', '555-0102', 'positive'),
    ('P003', 'Cleo Testcase',    '1999-07-21', '555-0103', NULL),
    ('P004', 'Dev Fixture',      '1947-01-30', '555-0104', 'negative'),
    ('P005', 'Eve Sample',       '2012-05-09', '555-0105', NULL);
INSERT INTO clinic.observations (patient_id, code, display, value, unit, taken_at)
SELECT p.patient_id, o.code, o.display, o.base + (random() * o.spread)::numeric(6,1), o.unit,
       now() - (d || ' days')::interval
  FROM clinic.patients p,
       (VALUES ('2345-7', 'Glucose',     80, 60, 'mg/dL'),
               ('718-7',  'Hemoglobin',  11,  6, 'g/dL'),
               ('8480-6', 'Systolic BP', 105, 50, 'mmHg')) o(code, display, base, spread, unit),
       generate_series(1, 3) d;
SELECT count(*) AS patients FROM clinic.patients;
SELECT count(*) AS observations FROM clinic.observations;
SQL
}

register_principals() {
    step "Register an agent and a clinician (login roles of their own)"
    sql <<'SQL'
CREATE ROLE demo_agent LOGIN;
CREATE ROLE demo_clinician LOGIN;
GRANT USAGE ON SCHEMA clinic TO demo_agent, demo_clinician;
GRANT SELECT ON ALL TABLES IN SCHEMA clinic TO demo_agent, demo_clinician;
SELECT agentauth.register_agent(
    name          => 'lab-summarizer',
    db_role       => 'demo_agent',
    owner         => 'Cardiology AI team',
    purposes      => '{TREAT,TREATDS}',
    scopes        => '{lab:read,demographics:read}',
    max_token_ttl => '5 minutes',
    description   => 'summarizes recent labs for the care team') AS agent_id;
SELECT agentauth.register_human('Dr. Grey', 'demo_clinician', '{TREAT,ETREAT}',
    '{*:read,medication:write}', can_break_glass => true, can_approve => true) AS clinician_id;
SELECT kind, name, db_role, owner, purposes, scopes, max_token_ttl, capabilities, status
  FROM agentauth.principals ORDER BY kind, name;
SQL
    AGENT_ID=$(sql_value "SELECT id FROM agentauth.principals WHERE name = 'lab-summarizer'")
}

issue_token() {
    step "The orchestrator issues a short-lived token for one task"
    say "SELECT agentauth.issue_token(agent => '$AGENT_ID', purpose => 'TREAT',"
    say "       ttl => '5 minutes', on_behalf_of => 'dr.grey', patients => '{P001,P002,P003}');"
    TOKEN=$(sql_value "SELECT agentauth.issue_token('$AGENT_ID', 'TREAT', '5 minutes', 'dr.grey', NULL, '{P001,P002,P003}')")
    say "-> a secret of ${#TOKEN} characters, aat_... (shown once; only its SHA-256 is stored)"
    sql <<'SQL'
SELECT id, purpose, on_behalf_of, scopes, patients, expires_at - issued_at AS ttl, state
  FROM agentauth.tokens;
SQL
    TOKEN_ID=$(sql_value "SELECT id FROM agentauth.tokens ORDER BY issued_at DESC LIMIT 1")
}

agent_whoami() {
    step "The agent connects as demo_agent and begins its session with the token"
    agent_sql <<'SQL'
SELECT kind, name, purpose, on_behalf_of, scopes, patients,
       expires_at - now() < interval '5 minutes' AS short_lived,
       cardinality(delegation_chain) AS chain
  FROM agentauth.whoami();
SELECT agentauth.check_session();
SQL
    step "The same secret is useless from another login"
    say "(the clinician's role tries the agent's token)"
    {
        printf '\\set secret %s\n' "'$TOKEN'"
        printf '\\echo %s\n' "'-- SELECT agentauth.begin_session(<the token>);'"
        printf 'SELECT agentauth.begin_session(:%s);  -- fails: not the agent login\n' "'secret'"
    } | psql_demo -U demo_clinician
}

# EXTEND: protected tables, consent, break-the-glass, approvals and audit
# steps go here (they run after the agent has a token, before revocation).

protect_tables() {
    step "The DBA protects the clinical tables and classifies every column"
    sql <<'SQL'
SELECT agentauth.protect_table('clinic.patients', 'patient_id',
    '{"name": "demographics", "birth_date": "demographics", "phone": "contact", "hiv_status": "hiv"}');
SELECT agentauth.protect_table('clinic.observations', 'patient_id',
    '{"id": "non_phi"}', default_class => 'lab');
SELECT relation, column_name, data_class, sensitive, patient_column
  FROM agentauth.protected_columns ORDER BY relation::text, column_name;
-- the classification is stored as standard security labels
SELECT objoid::regclass AS relation, objsubid, label FROM pg_seclabel
 WHERE provider = 'agentauth' AND objoid = 'clinic.patients'::regclass ORDER BY objsubid;
SQL
    step "Row security cannot be switched off, not even by the owner"
    sql <<'SQL'
ALTER TABLE clinic.observations DISABLE ROW LEVEL SECURITY;  -- fails
SQL
}

agent_reads_labs() {
    step "The agent (purpose TREAT, token for P001-P003) reads only what it may"
    say "(TREAT reads are permitted by the treatment default the site adopted; the token limits the patients)"
    agent_sql <<'SQL'
SELECT patient_id, display, count(*) AS n, round(avg(value), 1) AS mean
  FROM clinic.observations GROUP BY patient_id, display ORDER BY patient_id, display;
SELECT patient_id, name, birth_date FROM clinic.patients ORDER BY patient_id;
-- minimum necessary: SELECT * names columns outside the token's scopes
SELECT * FROM clinic.patients;  -- fails: 42501
SQL
}

consent_changes_view() {
    step "AI decision support (purpose TREATDS) needs each patient's consent"
    local ds_token old_token=$TOKEN
    ds_token=$(sql_value "SELECT agentauth.issue_token('$AGENT_ID', 'TREATDS', '5 minutes', 'dr.grey')")
    sql <<'SQL'
-- the registration desk records the patients' answers
SELECT agentauth.record_consent('P001', 'permit', '{TREATDS}', '{lab}') IS NOT NULL AS p001;
SELECT agentauth.record_consent('P002', 'permit', '{TREATDS}', '{lab}') IS NOT NULL AS p002;
SELECT agentauth.record_consent('P004', 'deny', '{TREATDS}') IS NOT NULL AS p004_refuses;
SELECT patient, decision, purposes, data_classes, actions, status FROM agentauth.consents ORDER BY patient;
SQL
    TOKEN=$ds_token
    step "P002 withdraws consent while the agent is working: its next query already excludes P002"
    agent_sql <<SQL
SELECT patient_id, count(*) AS observations, max(value) FILTER (WHERE code = '2345-7') AS max_glucose
  FROM clinic.observations GROUP BY patient_id ORDER BY patient_id;
SELECT * FROM agentauth.explain_access('P003', 'lab');
\\echo -- meanwhile the patient portal withdraws the consent of P002 (another connection):
\\! psql -X -q -h $demo -p $PORT -d postgres -c "SELECT agentauth.withdraw_consent(id, 'patient withdrew via portal') FROM agentauth.consents WHERE patient = 'P002' AND status = 'active'"
SELECT patient_id, count(*) AS observations, max(value) FILTER (WHERE code = '2345-7') AS max_glucose
  FROM clinic.observations GROUP BY patient_id ORDER BY patient_id;
SELECT decision, reason FROM agentauth.explain_access('P002', 'lab');
SQL
    TOKEN=$old_token
    step "The audit log: one record per statement x table x patient, with the authority"
    sql <<'SQL'
SELECT seq, event, principal_name, purpose, patient, relation, columns, row_count,
       coalesce(authority->'consents', authority->'defaults', authority->'reason') AS authority
  FROM agentauth.audit_log
 WHERE event IN ('access', 'denied') ORDER BY seq;
SQL
}

break_the_glass() {
    step "Break-the-glass: P004 refuses all sharing; Dr. Grey needs her labs in an emergency"
    sql <<'SQL'
SELECT agentauth.record_consent('P004', 'deny', actions => '{read,write}',
    source => 'patient portal: refuses all sharing') IS NOT NULL AS p004_refuses;
SQL
    human_sql <<'SQL'
-- consent hides P004 from the clinician too
SELECT count(*) AS p004_rows FROM clinic.observations WHERE patient_id = 'P004';
-- the override: one patient, this session, 30 minutes, a reason
SELECT agentauth.break_glass('P004',
    'Unresponsive in the ED, suspected hypoglycaemia; patient cannot be asked',
    '30 minutes') AS override \gset
SELECT break_glass FROM agentauth.whoami();
SELECT display, value, unit, taken_at::date AS taken
  FROM clinic.observations WHERE patient_id = 'P004' ORDER BY taken_at, display;
SELECT decision, reason FROM agentauth.explain_access('P004', 'lab');
-- minimum necessary still holds: '*' never covers the sensitive class hiv
SELECT hiv_status FROM clinic.patients WHERE patient_id = 'P004';  -- fails: 42501
-- done: end it now rather than wait for the 30 minutes
SELECT agentauth.end_break_glass(:'override');
SELECT count(*) AS p004_rows_after FROM clinic.observations WHERE patient_id = 'P004';
-- and nobody reviews their own override (Dr. Grey is no privacy officer anyway)
SELECT agentauth.review_break_glass(:'override', 'justified', 'it was me');  -- fails
SQL
    step "Every override is queued for a privacy officer's review"
    sql <<'SQL'
CREATE ROLE demo_officer LOGIN IN ROLE agentauth_privacy_officer;
SQL
    psql_demo -e -U demo_officer <<'SQL'
SELECT principal_name, patient, reason, ends_at - started_at AS ttl, state,
       accesses, review_status, review_due - started_at AS review_within
  FROM agentauth.break_glass_events;
SQL
    say "(every access under it names it, with purpose BTG)"
    sql <<'SQL'
SELECT seq, event, principal_name, purpose, patient, relation, row_count,
       authority->>'break_glass' AS break_glass
  FROM agentauth.audit_log WHERE authority ? 'break_glass' ORDER BY seq;
SQL
    psql_demo -e -U demo_officer <<'SQL'
SELECT agentauth.review_break_glass(id, 'justified',
    'ED record confirms hypoglycaemic coma; labs needed for treatment; ended after 1 query')
  FROM agentauth.break_glass_events WHERE patient = 'P004' AND review_status = 'pending';
SELECT patient, review_status, reviewer, review_notes FROM agentauth.break_glass_events;
-- a review is final
SELECT agentauth.review_break_glass(id, 'unjustified', 'second thoughts')
  FROM agentauth.break_glass_events WHERE patient = 'P004';  -- fails: 55000
-- nothing is overdue (unreviewed after agentauth.review_deadline)
SELECT current_setting('agentauth.review_deadline') AS review_deadline,
       count(*) AS overdue FROM agentauth.break_glass_overdue;
SQL
}

clinician_approval() {
    step "Clinician in the loop: an agent drafts medication orders, each needs a clinician's approval"
    sql <<'SQL'
CREATE TABLE clinic.medication_orders (
    id          bigserial PRIMARY KEY,
    patient_id  text NOT NULL REFERENCES clinic.patients,
    drug        text NOT NULL,
    dose        text NOT NULL
);
CREATE ROLE demo_orders_agent LOGIN;
GRANT USAGE ON SCHEMA clinic TO demo_orders_agent;
GRANT SELECT, INSERT ON clinic.medication_orders TO demo_orders_agent;
GRANT USAGE ON SEQUENCE clinic.medication_orders_id_seq TO demo_orders_agent;
SELECT agentauth.protect_table('clinic.medication_orders', 'patient_id',
    '{"id": "non_phi"}', default_class => 'medication');
SELECT agentauth.require_approval('clinic.medication_orders', '{insert,update,delete}');
SELECT agentauth.register_agent('order-drafter', 'demo_orders_agent', 'Pharmacy AI team',
    '{TREAT}', '{medication:read,medication:write}') IS NOT NULL AS registered;
SELECT agentauth.record_consent('P001', 'permit', '{TREAT}', '{medication}', '{read,insert}')
    IS NOT NULL AS p001_consents;
SQL
    local orders_id orders_token
    orders_id=$(sql_value "SELECT id FROM agentauth.principals WHERE name = 'order-drafter'")
    orders_token=$(sql_value "SELECT agentauth.issue_token('$orders_id', 'TREAT', '5 minutes', 'Dr. Grey')")
    orders_sql() {
        {
            printf '\\set secret %s\n' "'$orders_token'"
            printf '\\echo %s\n' "'-- SELECT agentauth.begin_session(<the token>);'"
            printf 'SELECT agentauth.begin_session(:%s) IS NOT NULL AS session_begun;\n' "'secret'"
            printf '\\set ECHO queries\n'
            cat
        } | psql_demo -U demo_orders_agent
    }
    say "(the agent tries first, without an approval)"
    orders_sql <<'SQL'
INSERT INTO clinic.medication_orders (patient_id, drug, dose) VALUES ('P001', 'metformin', '500 mg bid');  -- fails: 42501
SQL
    say "(Dr. Grey approves one insert for P001, valid 10 minutes)"
    human_sql <<SQL
SELECT agentauth.approve_action('$orders_id', 'clinic.medication_orders', 'P001', 'insert',
    'start metformin, HbA1c 8.1%', '10 minutes', 1) IS NOT NULL AS approved;
SQL
    orders_sql <<'SQL'
INSERT INTO clinic.medication_orders (patient_id, drug, dose) VALUES ('P001', 'metformin', '500 mg bid');
-- the approval had one use
INSERT INTO clinic.medication_orders (patient_id, drug, dose) VALUES ('P001', 'metformin', '1000 mg bid');  -- fails: 42501
SELECT patient_id, drug, dose FROM clinic.medication_orders;
SQL
    sql <<'SQL'
SELECT agent_name, relation, patient, action, reason, approved_by_name, uses, uses_left, state
  FROM agentauth.approvals;
SELECT seq, event, principal_name, patient, action, row_count, authority
  FROM agentauth.audit_log
 WHERE event = 'approval_granted' OR (event = 'access' AND authority ? 'approval') ORDER BY seq;
SQL
}

revoke_and_refuse() {
    step "Revocation is immediate: the agent's open session fails at its next row"
    agent_sql <<SQL
SELECT name, purpose FROM agentauth.whoami();
BEGIN ISOLATION LEVEL REPEATABLE READ;
DECLARE c CURSOR FOR SELECT i, agentauth.check_session() AS valid FROM generate_series(1, 10) i;
FETCH 2 FROM c;
\\echo -- meanwhile the issuer revokes the token (another connection):
\\! psql -X -q -h $demo -p $PORT -d postgres -c "SELECT agentauth.revoke_token('$TOKEN_ID', 'demo: task cancelled')"
FETCH 2 FROM c;  -- fails: 28000
ROLLBACK;
SELECT * FROM agentauth.whoami();  -- fails: 28000, the session is no longer valid
SQL
    step "A new session with the revoked token is refused (one message for every bad token)"
    BEGIN_FAILS=1 agent_sql <<'SQL'
SQL
    sql <<'SQL'
SELECT state, revoke_reason FROM agentauth.tokens;
SELECT seq, event, principal_name, db_role, outcome, detail->>'reason' AS reason
  FROM agentauth.audit_log ORDER BY seq;
SQL
}

auditor_reports() {
    step "For auditors: who saw P004's record, the HIPAA accounting, the agent inventory"
    sql <<'SQL'
SELECT logged_at::timestamp(0) AS at, event, outcome, principal_name, purpose, columns, row_count
  FROM agentauth.access_report('P004');
SELECT logged_at::timestamp(0) AS at, event, principal_name, purpose, row_count
  FROM agentauth.element_access('P004', 'clinic.observations', 'value');
SELECT disclosed_at::timestamp(0) AS at, recipient, purpose_display, description
  FROM agentauth.disclosure_accounting('P004');
SELECT name, owner, status, live_tokens, last_access::timestamp(0), denials_24h
  FROM agentauth.agent_inventory;
SQL
    step "The override's read of P004 as a FHIR R4 AuditEvent (emergency-override codes)"
    sql <<'SQL'
SELECT jsonb_pretty(agentauth.audit_event_fhir(seq) - 'source')
  FROM agentauth.access_report('P004') WHERE event = 'access' AND purpose = 'BTG' LIMIT 1;
SQL
    step "The offline verifier: export the log, keep the head, check both with no database"
    psql_demo -At -c "SELECT * FROM agentauth.export_audit()" > "$demo/audit.jsonl"
    psql_demo -At -c "SELECT seq || ':' || encode(row_hash, 'hex') FROM agentauth.audit_head()" > "$demo/head.txt"
    say "\$ aa_verify -D head.txt audit.jsonl"
    "$aa_verify" -D "$demo/head.txt" "$demo/audit.jsonl"
    say "(someone edits one record of the export: P004 becomes P005)"
    sed '0,/"patient" : "P004"/s//"patient" : "P005"/' "$demo/audit.jsonl" > "$demo/audit-tampered.jsonl"
    say "\$ aa_verify -D head.txt audit-tampered.jsonl"
    if "$aa_verify" -D "$demo/head.txt" "$demo/audit-tampered.jsonl"; then
        echo "demo: aa_verify accepted a tampered export" >&2
        exit 1
    else
        say "(exit status $?: the tampering is found)"
    fi
}

monitoring_console() {
    step "Real-time monitoring: a security console LISTENs for alerts"
    say "(scripts/console.sh in a second terminal; here it runs in the background)"
    LC_ALL=C setsid bash scripts/console.sh -h "$demo" -p "$PORT" -U postgres postgres >"$demo/console.log" 2>&1 &
    local console_pid=$!
    sleep 1
    sql <<'SQL'
-- the seeded rules notify; the DBA adds one that suspends an agent that
-- keeps probing patients it has no consent for
SELECT id, event, threshold, per, action, enabled FROM agentauth.alert_rule ORDER BY id;
INSERT INTO agentauth.alert_rule (event, threshold, per, action)
VALUES ('denied', 5, '1 minute', 'suspend');
SQL
    step "The agent leaves its workflow: it probes patients it has no consent for"
    local old_token=$TOKEN
    TOKEN=$(sql_value "SELECT agentauth.issue_token('$AGENT_ID', 'TREATDS', '5 minutes', 'dr.grey')")
    agent_sql <<'SQL'
SELECT count(*) FROM clinic.observations WHERE patient_id = 'P003';
SELECT count(*) FROM clinic.observations WHERE patient_id = 'P004';
SELECT count(*) FROM clinic.observations WHERE patient_id = 'P005';
SELECT count(*) FROM clinic.observations WHERE patient_id = 'P002';
SELECT count(*) FROM clinic.observations WHERE patient_id = 'P004';
\echo -- (the audit writer counts the denials as it commits them, and suspends the agent)
SELECT pg_sleep(1);
-- its open session is refused at the next row
SELECT count(*) FROM clinic.observations WHERE patient_id = 'P001';  -- fails: 28000
SQL
    TOKEN=$old_token
    sleep 1
    step "What the console printed"
    sed 's/^/   | /' "$demo/console.log"
    kill -- -"$console_pid" 2>/dev/null || true
    step "The alerts, the suspension and its audit records"
    sql <<'SQL'
SELECT id, raised_at::time(0) AS at, rule, event, principal_name, role, count, per, action, action_taken
  FROM agentauth.alerts ORDER BY id;
SELECT name, status, status_reason FROM agentauth.principals WHERE name = 'lab-summarizer';
SELECT seq, event, principal_name, detail->>'reason' AS reason, detail->>'action_taken' AS action_taken
  FROM agentauth.audit_log WHERE event IN ('principal_status', 'alert') ORDER BY seq;
-- its owner must look into it and reactivate it (a new token is needed too)
SELECT agentauth.set_principal_status(id, 'active', 'owner reviewed the probing with the team')
  FROM agentauth.principals WHERE name = 'lab-summarizer';
SQL
    say "Agents without a session for agentauth.inactive_after ($(sql_value "SHOW agentauth.inactive_after")) are suspended the same way."
}

ehr_example() {
    step "A hospital-shaped schema: examples/ehr (500 synthetic patients)"
    say "(ten ehr tables keyed by an integer patient id, foreign keys, vital signs"
    say " partitioned by month, code lists in schema ref, derived.kidney_function"
    say " rebuilt by DROP + CREATE TABLE AS; see examples/ehr/README.md)"
    { echo 'SET client_min_messages = warning;'
      cat examples/ehr/schema.sql examples/ehr/generate.sql examples/ehr/derived.sql; } |
        as_pg psql -X -q -h "$demo" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -v patients=500
    sql <<'SQL'
SELECT c.oid::regclass AS "table", c.reltuples::bigint AS "rows"
  FROM pg_class c
 WHERE c.relnamespace IN ('ehr'::regnamespace, 'derived'::regnamespace)
   AND c.relkind IN ('r', 'p') AND NOT c.relispartition
 ORDER BY c.oid::regclass::text;
SQL
    step "Classify it through protected schemas: every table of ehr and derived, now and later"
    say "\$ psql -f examples/ehr/classify.sql   (agentauth.protect_schema, classes by column name)"
    as_pg psql -X -q -h "$demo" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -o /dev/null <examples/ehr/classify.sql
    sql <<'SQL'
SELECT schema_name, patient_column, default_class,
       (SELECT count(*) FROM jsonb_object_keys(column_classes)) AS column_classes
  FROM agentauth.protected_schemas ORDER BY schema_name;
SELECT relation, string_agg(DISTINCT data_class, ', ' ORDER BY data_class) AS classes
  FROM agentauth.protected_columns
 WHERE relation::text ~ '^(ehr|derived)\.' AND data_class IS NOT NULL
 GROUP BY relation ORDER BY relation::text;
SQL
    step "A cohort-finding agent (TREATDS) and the patients who consented"
    say "(a cohort query passes over every non-consenting patient, one 'denied' record each:"
    say " the probing rule added above would suspend this agent at its first query, so the"
    say " site switches it off for this workload)"
    sql <<'SQL'
UPDATE agentauth.alert_rule SET enabled = false WHERE action = 'suspend';
CREATE ROLE demo_cohort_agent LOGIN;
GRANT USAGE ON SCHEMA ehr, derived, ref TO demo_cohort_agent;
GRANT SELECT ON ALL TABLES IN SCHEMA ehr, derived, ref TO demo_cohort_agent;
-- derived.sql makes a new table each time: grant it in advance
ALTER DEFAULT PRIVILEGES IN SCHEMA derived GRANT SELECT ON TABLES TO demo_cohort_agent;
SELECT agentauth.register_agent('cohort-finder', 'demo_cohort_agent', 'Clinical research AI team',
    '{TREATDS}', '{demographics:read,encounter:read,diagnosis:read,lab:read}') IS NOT NULL AS registered;
-- every third patient consents to AI decision support (integer ids, as the table has them)
SELECT count(agentauth.record_consent(i, 'permit', '{TREATDS}',
                                      '{demographics,encounter,diagnosis,lab}'))
       AS consents_recorded
  FROM generate_series(3, 500, 3) i;
-- the reference: the consenting patients, as the superuser reads the consent list
CREATE TABLE public.demo_consenting AS
SELECT patient::int AS patient_id FROM agentauth.consents
 WHERE status = 'active' AND decision = 'permit' AND purposes @> '{TREATDS}' AND patient ~ '^[0-9]+$';
SELECT count(*) AS consenting_patients FROM public.demo_consenting;
SQL
    local cohort_id
    cohort_id=$(sql_value "SELECT id FROM agentauth.principals WHERE name = 'cohort-finder'")
    COHORT_TOKEN=$(sql_value "SELECT agentauth.issue_token('$cohort_id', 'TREATDS', '5 minutes', 'dr.grey')")
    step "Published-style cohort queries, as the agent: only the consenting patients count"
    say "(each next to the same query run by the superuser over the consent list: they must match)"
    ehr_cohort "Chronic kidney disease (eGFR < 60) in type 2 diabetes" \
        "SELECT count(*) FROM ehr.patients p
 WHERE EXISTS (SELECT 1 FROM ehr.lab_results l
                WHERE l.patient_id = p.patient_id AND l.loinc = '33914-3' AND l.value < 60)
   AND EXISTS (SELECT 1 FROM ehr.diagnoses d
                WHERE d.patient_id = p.patient_id AND d.icd10 = 'E11.9')"
    ehr_cohort "Latest HbA1c per patient: patients, mean, above the normal range" \
        "SELECT count(*), round(avg(value), 2), count(*) FILTER (WHERE value > 5.6)
  FROM (SELECT DISTINCT ON (patient_id) patient_id, value FROM ehr.lab_results
         WHERE loinc = '4548-4' ORDER BY patient_id, taken_at DESC, result_id DESC) latest"
    ehr_cohort "Creatinine during inpatient stays, by sex (patients x encounters x lab_results)" \
        "SELECT p.sex, count(DISTINCT e.encounter_id), round(avg(l.value), 2)
  FROM ehr.patients p
  JOIN ehr.encounters e ON e.patient_id = p.patient_id
  JOIN ehr.lab_results l ON l.encounter_id = e.encounter_id
 WHERE e.kind = 'inpatient' AND l.loinc = '2160-0'
 GROUP BY p.sex ORDER BY p.sex"
    step "The derived table is rebuilt (DROP + CREATE TABLE AS): it is protected again at once"
    say "\$ psql -f examples/ehr/derived.sql   (as a superuser: the drop and the read are recorded)"
    as_pg psql -X -q -h "$demo" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 <examples/ehr/derived.sql
    sql <<'SQL'
SELECT relrowsecurity AS row_security, relforcerowsecurity AS forced
  FROM pg_class WHERE oid = 'derived.kidney_function'::regclass;
SELECT column_name, data_class, patient_column
  FROM agentauth.protected_columns
 WHERE relation = 'derived.kidney_function'::regclass ORDER BY column_name;
SELECT seq, event, db_role, relation
  FROM agentauth.audit_log
 WHERE event IN ('table_protected', 'table_unprotected') AND relation = 'derived.kidney_function'
 ORDER BY seq;
SQL
    ehr_cohort "The rebuilt derived table: patients with an eGFR below 60" \
        "SELECT count(*) FILTER (WHERE egfr_below_60), count(*) FROM derived.kidney_function"
}

# ehr_cohort title query: runs the query as the cohort agent (in a session
# with its token) and as the superuser with every ehr and derived table
# restricted to public.demo_consenting (each "schema.table [alias]" becomes
# a subquery; keywords in capitals, aliases in lower case); prints both and
# stops the demo if they differ.
ehr_cohort() {
    local title=$1 q=$2 ref agent
    ref=$(perl -pe 's/\b(ehr|derived)\.(\w+)(?: ([a-z]\w*)\b)?/"(SELECT * FROM $1.$2 WHERE patient_id IN (SELECT patient_id FROM public.demo_consenting)) " . ($3 \/\/ $2)/ge' <<<"$q")
    agent=$({
        printf '\\set secret %s\n' "'$COHORT_TOKEN'"
        printf 'SELECT agentauth.begin_session(:%s) \\g /dev/null\n' "'secret'"
        printf '%s;\n' "$q"
    } | as_pg psql -X -q -At -F ' | ' -h "$demo" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -U demo_cohort_agent)
    ref=$(psql_demo -At -F ' | ' -c "$ref")
    printf '\n   \033[1m%s\033[0m\n' "$title"
    sed 's/^/   /' <<<"$q;"
    paste -d '\n' <(sed 's/^/   agent:     /' <<<"$agent") <(sed 's/^/   reference: /' <<<"$ref")
    if [ "$agent" != "$ref" ]; then
        echo "demo: the agent's answer differs from the reference over the consenting patients" >&2
        exit 1
    fi
}

finish() {
    step "Done"
    say "The demo server keeps running: psql -h $demo -p $PORT -U postgres postgres"
    say "Stop it with: make demo-stop"
}

main() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "run as root (make demo): it installs packages and the extension" >&2
        exit 1
    fi
    if [ "${1:-}" = stop ]; then
        stop_server
        exit 0
    fi
    install_and_build
    start_server
    create_extension
    create_clinical_schema
    register_principals
    issue_token
    agent_whoami
    # EXTEND: call further steps here
    protect_tables
    agent_reads_labs
    consent_changes_view
    break_the_glass
    clinician_approval
    revoke_and_refuse
    auditor_reports
    monitoring_console
    ehr_example
    finish
}

main "$@"
