#!/usr/bin/env bash
# Per-patient reports, 1.0's storage against 1.1's (issue 14 item 1: "per-
# patient reports as fast as today or faster").  Two servers side by side,
# the same library: one installs the extension as version 1.0 (one row per
# record, a btree on patient; 1.0's report functions), the other as 1.1
# (units, the GIN index on entry_patients).  Each gets bench/setup.sql and the
# same agent workload (pgbench with one client and a fixed random seed: the
# same statements in the same order), then the three per-patient reports are
# timed, interleaved, for random patients, and their answers compared for a
# sample of patients.  Ratios only; never fails on timing.
#   PG_CONFIG=... bash bench/report_bench.sh   (as root; servers as postgres)
#   PGROOT=... bash bench/report_bench.sh   (the private copy run.sh and
#                                           ehr.sh install into)
# NPAT (2000) NOBS (200000) NTX (40000 workload statements) NSCAN (40 full
# scans) NREP (300 calls of each report per round, warm) NCOLD (50 calls,
# cold: below) ROUNDS (2); KEEP=1 leaves
# the servers up (sockets in W, ports 54351 for 1.0 and 54352 for 1.1)
set -eu
cd "$(dirname "$0")/.."
B=$(pwd)/bench
W=${W:-/tmp/aa_report_bench}
NPAT=${NPAT:-2000}; NOBS=${NOBS:-200000}; NTX=${NTX:-40000}; NSCAN=${NSCAN:-40}
NREP=${NREP:-300}; ROUNDS=${ROUNDS:-2}; NCOLD=${NCOLD:-50}
BIN=$(${PG_CONFIG:-pg_config} --bindir)
if [ -n "${PGROOT:-}" ]; then
    # the private copy of the installation that run.sh installed into
    ver=$(${PG_CONFIG:-pg_config} --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
    [ -x "$PGROOT/usr/lib/postgresql/$ver/bin/postgres" ] && BIN=$PGROOT/usr/lib/postgresql/$ver/bin
fi
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$W"; chmod 777 "$W"
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
declare -A PORT=([v10]=54351 [v11]=54352)
stop() { for v in v10 v11; do as_pg "$BIN/pg_ctl" -D "$W/$v" -m fast stop >/dev/null 2>&1 || true; done; }
stop
[ "${KEEP:-0}" = 1 ] || trap stop EXIT    # KEEP=1: leave both servers running
on() { local v=$1; shift; PGHOST=$W PGPORT=${PORT[$v]} PGDATABASE=bench "$@"; }

for v in v10 v11; do
    rm -rf "${W:?}/$v"
    as_pg "$BIN/initdb" -D "$W/$v" -A trust >/dev/null
    cat >>"$W/$v/postgresql.conf" <<EOC
port = ${PORT[$v]}
unix_socket_directories = '$W'
listen_addresses = ''
shared_preload_libraries = 'agentauth'
agentauth.database = 'bench'
agentauth.audit_sync = off
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
max_parallel_workers_per_gather = 0
EOC
    as_pg "$BIN/pg_ctl" -D "$W/$v" -l "$W/$v.log" -w start >/dev/null
    on "$v" as_pg "$BIN/createdb" bench
    if [ "$v" = v10 ]; then
        sed "s/^CREATE EXTENSION agentauth CASCADE;/CREATE EXTENSION agentauth VERSION '1.0' CASCADE;/" \
            "$B/setup.sql" >"$W/setup.$v.sql"
    else
        cp "$B/setup.sql" "$W/setup.$v.sql"
    fi
    chmod a+r "$W/setup.$v.sql"
    on "$v" as_pg $PSQL -v npat="$NPAT" -v nobs="$NOBS" -f "$W/setup.$v.sql" >"$W/setup.$v.log" 2>&1
    on "$v" as_pg $PSQL -c "CREATE ROLE bench_auditor LOGIN IN ROLE agentauth_auditor" \
        -c "GRANT SELECT ON clinic.patient_list TO bench_auditor"
done
echo "installed: v10 $(on v10 as_pg $PSQL -At -c "SELECT extversion FROM pg_extension WHERE extname = 'agentauth'")," \
     "v11 $(on v11 as_pg $PSQL -At -c "SELECT extversion FROM pg_extension WHERE extname = 'agentauth'")"

# the workload: the mixed reads (point, LIKE, 20-patient slice) and full scans
{
    printf '\\if :started = 0\nSELECT 1 AS started FROM agentauth.begin_session(:token) \\gset\n\\endif\n'
    sed "s/@T@/obs_aa/g" "$B/scripts/mixed.sql"
} >"$W/mixed.sql"
{
    printf '\\if :started = 0\nSELECT 1 AS started FROM agentauth.begin_session(:token) \\gset\n\\endif\n'
    sed "s/@T@/obs_aa/g" "$B/scripts/scan.sql"
} >"$W/scan.sql"
chmod a+r "$W"/*.sql
for v in v10 v11; do
    tok=$(on "$v" as_pg $PSQL -At -c "SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_async'), 'TREAT', '2 hours')")
    on "$v" as_pg "$BIN/pgbench" -n -M prepared -c 1 --random-seed=14 -t "$NTX" -U bench_agent_async \
        -D token="$tok" -D started=0 -D npat="$NPAT" -f "$W/mixed.sql" bench >"$W/work.$v.log" 2>&1
    on "$v" as_pg "$BIN/pgbench" -n -M prepared -c 1 -t "$NSCAN" -U bench_agent_async \
        -D token="$tok" -D started=0 -f "$W/scan.sql" bench >>"$W/work.$v.log" 2>&1
done
# the writers drain; then what autovacuum would have done by now
for v in v10 v11; do
    prev=-1
    for i in $(seq 1 300); do
        n=$(on "$v" as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log")
        [ "$n" = "$prev" ] && break
        prev=$n; sleep 1
    done
    on "$v" as_pg $PSQL -c "VACUUM ANALYZE" >/dev/null
done

echo "audit log after the same workload:"
for v in v10 v11; do
    on "$v" as_pg $PSQL -At -F ' ' -c "
        SELECT '$v', count(*) AS records,
               count(*) FILTER (WHERE patient IS NOT NULL) AS patient_records,
               pg_size_pretty(pg_total_relation_size(
                   (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'agentauth' AND c.relname IN ('audit_record', 'audit_log')
                       AND c.relkind = 'r')))
          FROM agentauth.audit_log"
done

# the same answers: each report's rows for patients 1..50, less seq and time
answers() {   # version
    on "$1" as_pg $PSQL -At -U bench_auditor -c "
        SELECT md5(string_agg(x, E'\n' ORDER BY x)) FROM (
          SELECT format('%s|%s|%s|%s|%s|%s|%s|%s', p.patient_id, r.event, r.outcome,
                        r.relation, r.purpose, r.columns, r.row_count,
                        (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(r.authority) k)) AS x
            FROM clinic.patient_list p,
                 agentauth.access_report(p.patient_id, '-infinity', now()) r
           WHERE p.i <= 50
          UNION ALL
          SELECT format('e|%s|%s|%s|%s|%s', p.patient_id, e.event, e.outcome, e.purpose, e.row_count)
            FROM clinic.patient_list p,
                 agentauth.element_access(p.patient_id, 'clinic.obs_aa', 'value') e
           WHERE p.i <= 50
          UNION ALL
          SELECT format('d|%s|%s', p.patient_id, (to_jsonb(d) - 'disclosed_at' - 'seq')::text)
            FROM clinic.patient_list p,
                 agentauth.disclosure_accounting(p.patient_id, '-infinity', now(), true) d
           WHERE p.i <= 50) s"
}
a10=$(answers v10); a11=$(answers v11)
if [ "$a10" = "$a11" ]; then same=yes; else same=NO; fi
echo "same report answers for 50 patients (less seq and times): $same"

cat >"$W/r_access.sql" <<'EOF'
\set p random(1, :npat)
SELECT count(*) FROM agentauth.access_report('P' || lpad(:p::text, 6, '0'), '-infinity', now());
EOF
cat >"$W/r_element.sql" <<'EOF'
\set p random(1, :npat)
SELECT count(*) FROM agentauth.element_access('P' || lpad(:p::text, 6, '0'), 'clinic.obs_aa', 'value');
EOF
cat >"$W/r_disclosure.sql" <<'EOF'
\set p random(1, :npat)
SELECT count(*) FROM agentauth.disclosure_accounting('P' || lpad(:p::text, 6, '0'), '-infinity', now());
EOF
chmod a+r "$W"/r_*.sql
declare -A LAT
for ((r = 1; r <= ROUNDS; r++)); do
    for rep in access element disclosure; do
        for v in v10 v11; do
            l=$(on "$v" as_pg "$BIN/pgbench" -n -M prepared -c 1 -t "$NREP" -U bench_auditor \
                -D npat="$NPAT" -f "$W/r_$rep.sql" bench 2>&1 |
                sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
            LAT[$rep.$v]="${LAT[$rep.$v]:-} $l"
        done
    done
done
# Cold: both servers restarted and the kernel's page cache dropped before
# each server's run (as root, where /proc/sys/vm/drop_caches is writable):
# every index and heap page a report reads comes from disk, as it does in a
# six-year log that memory cannot hold.
cold=no
if [ -w /proc/sys/vm/drop_caches ]; then
    cold=yes
    for ((r = 1; r <= ROUNDS; r++)); do
        for rep in access element disclosure; do
            for v in v10 v11; do
                as_pg "$BIN/pg_ctl" -D "$W/$v" -m fast -w restart -l "$W/$v.log" >/dev/null
                sync; echo 3 >/proc/sys/vm/drop_caches
                l=$(on "$v" as_pg "$BIN/pgbench" -n -M prepared -c 1 -t "$NCOLD" -U bench_auditor \
                    -D npat="$NPAT" -f "$W/r_$rep.sql" bench 2>&1 |
                    sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
                LAT[cold_$rep.$v]="${LAT[cold_$rep.$v]:-} $l"
            done
        done
    done
fi
mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.3f", NF ? s/NF : 0}' <<<"$1"; }
printf '%-12s %10s %10s %8s\n' report v10_ms v11_ms v11/v10
line=
row() {   # key: a row of the table and a name=ratio for the last line
    local a b ratio
    a=$(mean "${LAT[$1.v10]}"); b=$(mean "${LAT[$1.v11]}")
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }')
    printf '%-12s %10s %10s %8s\n' "$1" "$a" "$b" "$ratio"
    line="$line ${1}_report_ratio=$ratio"
}
for rep in access element disclosure; do row "$rep"; done
if [ "$cold" = yes ]; then
    for rep in access element disclosure; do row "cold_$rep"; done
fi
echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $NPAT patients, $NOBS rows; $NTX statements + $NSCAN scans; $ROUNDS x $NREP calls per report"
echo "same_answers=$same$line"
