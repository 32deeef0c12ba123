#!/usr/bin/env bash
# agentauth on the EHR example (examples/ehr): published-style cohort
# queries as an agent, against the same queries over the consenting
# patients only, on one server of its own.
#
#   bash bench/ehr.sh              # 2000 patients (NPAT), 5 rounds (ROUNDS)
#   QUICK=1 bash bench/ehr.sh      # 300 patients (a smoke test, a minute)
#   PGROOT=/var/tmp/agentauth-pgroot/me bash bench/ehr.sh
#                                  # install into (and run from) a private
#                                  # copy of PostgreSQL, as bench/run.sh does
#
# Loads the example twice from the same deterministic generator: database
# ehr, classified by examples/ehr/classify.sql (protected schemas), where
# half of the patients (the even ids) consent to TREATDS and an agent with
# a TREATDS token runs every query of bench/ehr_queries.sql in its session;
# and database ehr_ref, without agentauth, where schemas ehr and derived
# are views that keep only the rows of the patients that consented in ehr
# (the list is copied from there), and a superuser runs the same queries.
# The answers must be identical: a difference is printed and the script
# exits non-zero.  Per query it prints the median client time of ROUNDS
# runs (after one warm-up) of each, their ratio, and the audit records the
# agent's runs wrote with the bytes per record (pg_total_relation_size of
# agentauth.audit_log -- heap, indexes, TOAST -- after minus before, over
# the records).  Never fails on timing.  See bench/README.md.
#
# Runs as root (builds and installs the extension, then runs the server as
# the postgres OS user) or as a user who can do those things.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
B=$top/bench
W=$B/results/ehr
mkdir -p "$W"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    NPAT=${NPAT:-300}
else
    NPAT=${NPAT:-2000}
fi
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-54332}

ver=$(pg_config --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/deps.sh
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
if [ -n "${PGROOT:-}" ]; then
    # a private copy of the installation (scripts/dev.sh makes the same)
    if [ ! -x "$PGROOT/usr/lib/postgresql/$ver/bin/postgres" ]; then
        mkdir -p "$PGROOT/usr/lib/postgresql" "$PGROOT/usr/share/postgresql"
        cp -a "/usr/lib/postgresql/$ver" "$PGROOT/usr/lib/postgresql/"
        cp -a "/usr/share/postgresql/$ver" "$PGROOT/usr/share/postgresql/"
    fi
    BIN=$PGROOT/usr/lib/postgresql/$ver/bin
    DEST="DESTDIR=$PGROOT"
else
    BIN=$(pg_config --bindir)
    DEST=
fi
make -s -j2 >/dev/null
make -s install $DEST >/dev/null
rm -rf "$W"/q "$W"/*.out "$W"/*.audit?
mkdir -p "$W/q"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$W"

export PGHOST=$W PGPORT=$PORT
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"

stop_server() { as_pg "$BIN/pg_ctl" -D "$W/data" -m fast stop >/dev/null 2>&1 || true; }
trap stop_server EXIT
stop_server
rm -rf "$W/data"
as_pg "$BIN/initdb" -D "$W/data" -A trust -U postgres >/dev/null
cat >>"$W/data/postgresql.conf" <<EOC
port = $PORT
unix_socket_directories = '$W'
listen_addresses = ''
shared_preload_libraries = 'agentauth'
agentauth.database = 'ehr'
shared_buffers = 256MB
max_parallel_workers_per_gather = 0
EOC
as_pg "$BIN/pg_ctl" -D "$W/data" -l "$W/server.log" -w start >/dev/null
as_pg "$BIN/createdb" -U postgres ehr
as_pg "$BIN/createdb" -U postgres ehr_ref
# the checkout may not be readable by the postgres OS user: files on stdin
ehr_files() {   # database file...
    local db=$1; shift
    { echo 'SET client_min_messages = warning;'; cat "$@"; } |
        as_pg $PSQL -U postgres -d "$db" -v patients="$NPAT" -o /dev/null
}

t0=$(date +%s)
echo "== examples/ehr with $NPAT patients, twice (ehr, ehr_ref)"
as_pg $PSQL -U postgres -d ehr -c "SET client_min_messages = warning" -c "CREATE EXTENSION agentauth CASCADE"
for db in ehr ehr_ref; do
    ehr_files "$db" examples/ehr/schema.sql examples/ehr/generate.sql examples/ehr/derived.sql
done

echo "== classify (examples/ehr/classify.sql), an agent, consents of the even patients"
ehr_files ehr examples/ehr/classify.sql
TOKEN=$(as_pg $PSQL -U postgres -d ehr -At <<SQL
CREATE ROLE bench_ehr_agent LOGIN;
GRANT USAGE ON SCHEMA ehr, derived, ref TO bench_ehr_agent;
GRANT SELECT ON ALL TABLES IN SCHEMA ehr, derived, ref TO bench_ehr_agent;
SELECT agentauth.register_agent('bench-cohorts', 'bench_ehr_agent', 'benchmark', '{TREATDS}',
    '{demographics:read,identifiers:read,encounter:read,diagnosis:read,lab:read,vital_signs:read,medication:read}',
    max_token_ttl => '2 hours') \\g /dev/null
SELECT count(agentauth.record_consent(i, 'permit', '{TREATDS}')) FROM generate_series(2, $NPAT, 2) i \\g /dev/null
SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench-cohorts'),
                             'TREATDS', '2 hours');
SQL
)

# the reference: the consent list, and views over the renamed schemas
as_pg $PSQL -U postgres -d ehr -c "COPY (SELECT patient::int FROM agentauth.consents
    WHERE status = 'active' AND decision = 'permit' AND purposes @> '{TREATDS}') TO STDOUT" >"$W/consenting.txt"
as_pg $PSQL -U postgres -d ehr_ref <<SQL >/dev/null
CREATE TABLE public.consenting (patient_id int PRIMARY KEY);
\\copy public.consenting FROM '$W/consenting.txt'
ANALYZE public.consenting;
ALTER SCHEMA ehr RENAME TO ehr_all;
ALTER SCHEMA derived RENAME TO derived_all;
CREATE SCHEMA ehr;
CREATE SCHEMA derived;
SELECT format('CREATE VIEW %I.%I AS SELECT * FROM %I.%I WHERE patient_id IN (SELECT patient_id FROM public.consenting)',
              replace(n.nspname, '_all', ''), c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('ehr_all', 'derived_all') AND c.relkind IN ('r', 'p') AND NOT c.relispartition
\\gexec
SQL
nconsent=$(wc -l <"$W/consenting.txt")
echo "   ($nconsent of $NPAT patients consent; $(( $(date +%s) - t0 )) s)"

# one file per query
awk -v dir="$W/q" '
    /^-- [a-z][a-z0-9_]*: / { name = substr($2, 1, length($2) - 1); n++;
                             f = sprintf("%s/%02d_%s.sql", dir, n, name); next }
    f != "" && /^[ \t]*$/ && !open { next }
    f != "" { print > f; open = 1; if ($0 ~ /;[ \t]*$/) { close(f); f = ""; open = 0 } }
' "$B/ehr_queries.sql"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$W"

# run_query db file out [-U role ...]: a warm-up and ROUNDS timed runs in one
# session (the agent's begins its agentauth session first, and notes the
# audit log before and after its timed runs); prints the client times
run_query() {
    local db=$1 qf=$2 out=$3 i
    shift 3
    {
        if [ "$db" = ehr ]; then
            printf '\\set secret %s\n' "'$TOKEN'"
            printf 'SELECT agentauth.begin_session(:%s) \\g /dev/null\n' "'secret'"
        fi
        printf '\\timing on\n\\o %s\n' "$out"
        cat "$qf"
        for ((i = 1; i <= ROUNDS; i++)); do
            if [ "$db" = ehr ] && [ "$i" = 1 ]; then
                printf '\\! %s -U postgres -d ehr -At -F " " -c "%s" >%s\n' "$PSQL" "$AUDIT_NOW" "$out.audit0"
            fi
            printf '\\o %s\n' "$out"
            cat "$qf"
        done
        if [ "$db" = ehr ]; then
            printf '\\! %s -U postgres -d ehr -At -F " " -c "%s" >%s\n' "$PSQL" "$AUDIT_NOW" "$out.audit1"
        fi
    } | as_pg $PSQL -d "$db" -At -F '|' "$@" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n +2
}
AUDIT_NOW="SELECT coalesce(max(seq), 0), pg_total_relation_size('agentauth.audit_record') FROM agentauth.audit_log"
median() { tr ' ' '\n' | grep . | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "== $(ls "$W/q" | wc -l) queries (bench/ehr_queries.sql), $ROUNDS timed runs each after a warm-up"
fail=0
rows=()
for qf in "$W"/q/*.sql; do
    name=$(basename "$qf" .sql); name=${name#*_}
    at=$(run_query ehr "$qf" "$W/$name.agent.out" -U bench_ehr_agent)
    rt=$(run_query ehr_ref "$qf" "$W/$name.ref.out" -U postgres)
    if ! cmp -s "$W/$name.agent.out" "$W/$name.ref.out"; then
        echo "MISMATCH in $name: the agent's answer (<) differs from the reference over the consenting patients (>):" >&2
        diff "$W/$name.agent.out" "$W/$name.ref.out" | head -20 >&2 || true
        fail=1
    fi
    read -r seq0 size0 <"$W/$name.agent.out.audit0"
    read -r seq1 size1 <"$W/$name.agent.out.audit1"
    recs=$((seq1 - seq0))
    am=$(median <<<"$at"); rm_=$(median <<<"$rt")
    rows+=("$(awk -v n="$name" -v r="$(wc -l <"$W/$name.ref.out")" -v a="$am" -v b="$rm_" \
        -v rec="$recs" -v by="$((size1 - size0))" -v R="$ROUNDS" 'BEGIN {
        printf "%-22s %5d %10.2f %10.2f %7s %13.1f %10s", n, r, a, b,
            (b > 0 ? sprintf("%.2f", a / b) : "nan"), rec / R,
            (rec > 0 ? sprintf("%.0f", by / rec) : "-") }')")
done

{
echo
echo "examples/ehr: $NPAT patients, $nconsent consenting (TREATDS); median of $ROUNDS runs; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-22s %5s %10s %10s %7s %13s %10s\n' query rows agent_ms ref_ms ratio audit_rec/run bytes/rec
printf '%s\n' "${rows[@]}"
} | tee "$W/last.txt"
if [ "$fail" != 0 ]; then
    echo "bench/ehr.sh: the agent's answers differ from the reference (above)" >&2
    exit 1
fi
