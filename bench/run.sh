#!/usr/bin/env bash
# agentauth benchmark: every comparison of SPEC 14, side by side, in one run
# on one server.
#
#   bash bench/run.sh            # full run (about 10 minutes on 2 cores)
#   QUICK=1 bash bench/run.sh    # small dataset, short runs (a smoke test)
#
# Runs as root (installs dependencies, builds and installs the extension,
# then runs the server as the postgres OS user) or as a user who can do
# those things.  Prints a table and a last line of name=value ratios, each
# agentauth / baseline as SPEC 14 defines them.  Never fails on timing.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
B=$top/bench
W=$B/results/tmp
mkdir -p "$W"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    NPAT=${NPAT:-1000}; NOBS=${NOBS:-100000}; T=${T:-3}; ROUNDS=${ROUNDS:-1}
else
    NPAT=${NPAT:-10000}; NOBS=${NOBS:-1000000}; T=${T:-8}; ROUNDS=${ROUNDS:-2}
fi
PORT=${PORT:-54331}

if [ "$(id -u)" -eq 0 ]; then
    bash scripts/deps.sh
    make -s -j2 >/dev/null
    make -s install >/dev/null
    chown -R postgres: "$top"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

BIN=$(pg_config --bindir)
export PGHOST=$W PGPORT=$PORT PGDATABASE=bench
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"

stop_server() { as_pg "$BIN/pg_ctl" -D "$W/data" -m fast stop >/dev/null 2>&1 || true; }
trap stop_server EXIT
stop_server
rm -rf "$W/data"
as_pg "$BIN/initdb" -D "$W/data" -A trust >/dev/null
cat >>"$W/data/postgresql.conf" <<EOF
port = $PORT
unix_socket_directories = '$W'
listen_addresses = ''
shared_preload_libraries = 'agentauth,pgaudit'
agentauth.database = 'bench'
shared_buffers = 512MB
max_connections = 60
max_worker_processes = 16
max_parallel_workers_per_gather = 0
logging_collector = on
log_directory = 'log'
pgaudit.log = 'none'
pgaudit.log_catalog = off
EOF
as_pg "$BIN/pg_ctl" -D "$W/data" -l "$W/server.log" -w start >/dev/null
as_pg "$BIN/createdb" bench

echo "== dataset: $NOBS observations over $NPAT patients, three copies"
as_pg $PSQL -v npat="$NPAT" -v nobs="$NOBS" -f "$B/setup.sql" >"$W/setup.log"

# tokens for the two agent roles (a fresh secret per run, never printed)
TOK_ASYNC=$(as_pg $PSQL -At -c "SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_async'), 'TREAT', '2 hours')")
TOK_SYNC=$(as_pg $PSQL -At -c "SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_sync'), 'TREAT', '2 hours')")

# variant -> role, table, token
role_of()  { case $1 in plain) echo bench_plain;; hand) echo bench_hand;; pgaudit) echo bench_pga;; aa_async) echo bench_agent_async;; aa_sync) echo bench_agent_sync;; esac; }
table_of() { case $1 in plain|pgaudit) echo obs_plain;; hand) echo obs_hand;; aa_*) echo obs_aa;; esac; }
token_of() { case $1 in aa_async) echo "$TOK_ASYNC";; aa_sync) echo "$TOK_SYNC";; *) echo none;; esac; }

# Make a pgbench script for a variant from a template: @T@ is the table;
# agent variants begin their agentauth session once per connection.
mkscript() {   # template variant
    local out=$W/$1.$2.sql
    {
        case $2 in
            aa_*) printf '\\if :started = 0\nSELECT 1 AS started FROM agentauth.begin_session(:token) \\gset\n\\endif\n' ;;
        esac
        sed "s/@T@/$(table_of "$2")/g" "$B/scripts/$1.sql"
    } >"$out"
    echo "$out"
}

# run_pgbench template variant clients seconds -> "tps lat_ms wal_bytes_per_tx"
run_pgbench() {
    local tpl=$1 v=$2 c=$3 t=$4 f out lsn0 lsn1 tx
    f=$(mkscript "$tpl" "$v")
    lsn0=$(as_pg $PSQL -At -c "SELECT pg_current_wal_lsn()")
    out=$(as_pg "$BIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$t" -U "$(role_of "$v")" \
        -D token="$(token_of "$v")" -D started=0 -D npat="$NPAT" -f "$f" bench 2>&1) || {
        echo "pgbench failed for $tpl/$v:" >&2; echo "$out" | tail -5 >&2; echo "0 0 0"; return; }
    lsn1=$(as_pg $PSQL -At -c "SELECT pg_current_wal_lsn()")
    tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    local tps lat wal
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    wal=$(as_pg $PSQL -At -c "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / greatest($tx, 1))")
    echo "${tps:-0} ${lat:-0} ${wal:-0}"
}

declare -A TPS LAT WAL
measure() {   # name template clients seconds variants...
    local name=$1 tpl=$2 c=$3 t=$4; shift 4
    local r v res
    for ((r = 1; r <= ROUNDS; r++)); do
        for v in "$@"; do
            res=$(run_pgbench "$tpl" "$v" "$c" "$t")
            read -r tps lat wal <<<"$res"
            TPS[$name.$v]="${TPS[$name.$v]:-} $tps"
            LAT[$name.$v]="${LAT[$name.$v]:-} $lat"
            WAL[$name.$v]="$wal"
        done
    done
}
mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.3f", NF ? s/NF : 0}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a/b; else print "nan" }'; }

echo "== plans"
as_pg $PSQL -v npat="$NPAT" -f "$B/explain.sql" >"$B/results/explain.txt" 2>&1 || true

echo "== point query, 1 client (audit_sync off for the agent)"
measure point point 1 "$T" plain hand aa_async
echo "== 1-10% slice aggregate, 1 client"
measure slice slice 1 "$T" plain hand aa_async
echo "== non-leakproof LIKE search, 1 client"
measure like like 1 "$T" plain hand aa_async
echo "== full scan of every observation, 1 client (audit on)"
measure scan scan 1 "$((T * 2))" plain hand aa_sync
echo "== mixed reads, 8 clients, with a consent toggler at 5/s"
as_pg "$BIN/pgbench" -n -c 1 -j 1 -R 5 -T "$((T * ROUNDS * 5 + 5))" -D npat="$NPAT" \
    -f "$B/scripts/toggle.sql" bench >"$W/toggle.log" 2>&1 &
toggler=$!
measure mixed mixed 8 "$T" plain pgaudit aa_async aa_sync
kill "$toggler" 2>/dev/null || true; wait "$toggler" 2>/dev/null || true

echo "== revocation / withdrawal: stale rows after commit"
stale=$(as_pg $PSQL -At -f "$B/stale.sql" | tail -1)

echo "== audit writer and verifier"
writer_rate=nan; verify_rate=nan
if [ -f "$B/audit_bench.sh" ]; then
    ab=$(PGHOST=$W PGPORT=$PORT PGDATABASE=bench bash "$B/audit_bench.sh" 2>/dev/null | tail -1)
    writer_rate=$(sed -n 's/.*writer_rate=\([^ ]*\).*/\1/p' <<<"$ab")
    verify_rate=$(sed -n 's/.*verify_rate=\([^ ]*\).*/\1/p' <<<"$ab")
fi

{
printf '\n%-8s %-9s %12s %12s %14s\n' measure variant tps latency_ms wal_bytes/tx
for k in $(printf '%s\n' "${!TPS[@]}" | sort); do
    printf '%-8s %-9s %12s %12s %14s\n' "${k%%.*}" "${k#*.}" "$(mean "${TPS[$k]}")" "$(mean "${LAT[$k]}")" "${WAL[$k]}"
done
} | tee "$B/results/last.txt"

point_ratio=$(ratio "$(mean "${LAT[point.aa_async]}")" "$(mean "${LAT[point.plain]}")")
slice_ratio=$(ratio "$(mean "${LAT[slice.aa_async]}")" "$(mean "${LAT[slice.plain]}")")
like_ratio=$(ratio "$(mean "${LAT[like.aa_async]}")" "$(mean "${LAT[like.plain]}")")
scan_ratio=$(ratio "$(mean "${LAT[scan.aa_sync]}")" "$(mean "${LAT[scan.plain]}")")
handwritten_ratio=$(ratio "$(mean "${LAT[scan.aa_sync]}")" "$(mean "${LAT[scan.hand]}")")
tps_async_ratio=$(ratio "$(mean "${TPS[mixed.aa_async]}")" "$(mean "${TPS[mixed.plain]}")")
tps_sync_ratio=$(ratio "$(mean "${TPS[mixed.aa_sync]}")" "$(mean "${TPS[mixed.plain]}")")
pgaudit_tps_ratio=$(ratio "$(mean "${TPS[mixed.aa_async]}")" "$(mean "${TPS[mixed.pgaudit]}")")

line="point_ratio=$point_ratio scan_ratio=$scan_ratio handwritten_ratio=$handwritten_ratio tps_async_ratio=$tps_async_ratio tps_sync_ratio=$tps_sync_ratio pgaudit_tps_ratio=$pgaudit_tps_ratio slice_ratio=$slice_ratio like_ratio=$like_ratio writer_rate=$writer_rate verify_rate=$verify_rate stale_rows=$stale"
echo
echo "$line" | tee -a "$B/results/last.txt"
