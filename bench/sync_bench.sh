#!/usr/bin/env bash
# audit_sync = on, side by side in one run (issue 14 item 4): 8-client point
# query TPS and server CPU per transaction for plain / agent audit_sync off /
# agent audit_sync on, and the all-patients cohort query (scan.sql) as an
# agent with audit_sync on vs off.  Ratios only; never fails on timing.
#   PG_CONFIG=... bash bench/sync_bench.sh      (as root; server as postgres)
# NPAT (5000) NOBS (100000) T (5 s) ROUNDS (2) C (8)
set -eu
cd "$(dirname "$0")/.."
B=$(pwd)/bench
W=${W:-/tmp/aa_sync_bench}
NPAT=${NPAT:-5000}; NOBS=${NOBS:-100000}; T=${T:-5}; ROUNDS=${ROUNDS:-2}; C=${C:-8}
PORT=${PORT:-54341}
BIN=$(${PG_CONFIG:-pg_config} --bindir)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$W"; chmod 777 "$W"
export PGHOST=$W PGPORT=$PORT PGDATABASE=bench
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
stop() { as_pg "$BIN/pg_ctl" -D "$W/data" -m fast stop >/dev/null 2>&1 || true; }
trap stop EXIT
stop; rm -rf "$W/data"
as_pg "$BIN/initdb" -D "$W/data" -A trust >/dev/null
cat >>"$W/data/postgresql.conf" <<EOC
port = $PORT
unix_socket_directories = '$W'
listen_addresses = ''
shared_preload_libraries = 'agentauth'
agentauth.database = 'bench'
shared_buffers = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
max_parallel_workers_per_gather = 0
EOC
as_pg "$BIN/pg_ctl" -D "$W/data" -l "$W/server.log" -w start >/dev/null
as_pg "$BIN/createdb" bench
as_pg $PSQL -v npat="$NPAT" -v nobs="$NOBS" -f "$B/setup.sql" >"$W/setup.log" 2>&1
TOK=$(as_pg $PSQL -At -c "SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_sync'), 'TREAT', '2 hours')")
hz=$(getconf CLK_TCK)
# CPU ticks of every server process: the postmaster with its reaped
# children (cutime, cstime), and the live ones (the writer among them)
srv_cpu() {
    local pm; pm=$(head -1 "$W/data/postmaster.pid")
    { awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
      for p in $(pgrep -P "$pm"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done; } |
        awk '{s += $1} END {print s + 0}'
}
script() {   # tpl variant
    local f=$W/$1.$2.sql
    { case $2 in aa_*) printf '\\if :started = 0\nSELECT 1 AS started FROM agentauth.begin_session(:token) \\gset\n\\endif\n' ;; esac
      case $2 in plain) sed 's/@T@/obs_plain/g' "$B/scripts/$1.sql" ;; *) sed 's/@T@/obs_aa/g' "$B/scripts/$1.sql" ;; esac
    } >"$f"; chmod 644 "$f"; echo "$f"
}
# WAL flushes (pg_stat_wal.wal_sync; the writer reports its own once a
# second, so this is approximate): the clients only read, the audit
# writer's commits flush
xacts() { sleep 1.1; as_pg $PSQL -At -c "SELECT wal_sync FROM pg_stat_wal"; }
declare -A TPS CPU BATCH
run() {   # name tpl clients seconds variant
    local name=$1 tpl=$2 c=$3 t=$4 v=$5 role sync=on out tx c0 c1 f
    case $v in plain) role=bench_plain ;; aa_off) role=bench_agent_sync; sync=off ;; aa_on) role=bench_agent_sync ;; esac
    as_pg $PSQL -c "ALTER SYSTEM SET agentauth.audit_sync = $sync" -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.3
    f=$(script "$tpl" "$v")
    c0=$(srv_cpu); x0=$(xacts)
    out=$(as_pg "$BIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$t" -U "$role" -D token="$TOK" -D started=0 -D npat="$NPAT" -f "$f" bench 2>&1) || { echo "$out" | tail -5 >&2; exit 1; }
    c1=$(srv_cpu); x1=$(xacts)
    tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    BATCH[$name.$v]="${BATCH[$name.$v]:-} $(awk -v a="$x0" -v b="$x1" -v n="$tx" 'BEGIN { printf "%.1f", n / ((b - a) > 0 ? (b - a) : 1) }')"
    TPS[$name.$v]="${TPS[$name.$v]:-} $(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)"
    CPU[$name.$v]="${CPU[$name.$v]:-} $(awk -v a="$c0" -v b="$c1" -v n="$tx" -v hz="$hz" 'BEGIN { printf "%.1f", (b - a) * 1e6 / hz / (n > 0 ? n : 1) }')"
}
mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.2f", NF ? s/NF : 0}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a/b; else print "nan" }'; }
for ((r = 1; r <= ROUNDS; r++)); do
    for v in plain aa_off aa_on; do run point point "$C" "$T" $v; done
    for v in aa_off aa_on; do run cohort scan 1 "$T" $v; done
done
printf '%-8s %-7s %10s %12s %10s\n' test variant tps cpu_us/tx tx/flush
for k in point.plain point.aa_off point.aa_on cohort.aa_off cohort.aa_on; do
    printf '%-8s %-7s %10s %12s %10s\n' "${k%%.*}" "${k#*.}" "$(mean "${TPS[$k]}")" "$(mean "${CPU[$k]}")" "$(mean "${BATCH[$k]}")"
done
for k in point.plain point.aa_off point.aa_on cohort.aa_off cohort.aa_on; do echo "rounds $k tps:${TPS[$k]}"; done
echo "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); $NPAT patients, $NOBS rows; $ROUNDS x ${T}s, $C clients"
echo "tps_sync_ratio=$(ratio "$(mean "${TPS[point.aa_on]}")" "$(mean "${TPS[point.plain]}")")" \
     "tps_async_ratio=$(ratio "$(mean "${TPS[point.aa_off]}")" "$(mean "${TPS[point.plain]}")")" \
     "sync_vs_async=$(ratio "$(mean "${TPS[point.aa_on]}")" "$(mean "${TPS[point.aa_off]}")")" \
     "cpu_sync_ratio=$(ratio "$(mean "${CPU[point.aa_on]}")" "$(mean "${CPU[point.plain]}")")" \
     "cohort_on_vs_off=$(ratio "$(mean "${TPS[cohort.aa_off]}")" "$(mean "${TPS[cohort.aa_on]}")")"
