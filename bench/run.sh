#!/usr/bin/env bash
# agentauth benchmark: every comparison of SPEC 14, side by side, in one run
# on one server.
#
#   bash bench/run.sh            # full run (about 10 minutes on 2 cores)
#   QUICK=1 bash bench/run.sh    # small dataset, short runs (a smoke test)
#   SETUP_ONLY=1 bash bench/run.sh   # build the dataset, leave the server up
#   PGROOT=/var/tmp/agentauth-pgroot/me bash bench/run.sh
#                                # install into (and run from) the private
#                                # copy of PostgreSQL that scripts/dev.sh uses
#
# Runs as root (installs dependencies, builds and installs the extension and
# the audit driver, then runs the server as the postgres OS user) or as a
# user who can do those things.  Prints a table and a last line of
# name=value ratios, each agentauth / baseline as SPEC 14 defines them.
# Never fails on timing.  See bench/README.md.
#
# bench/ehr.sh is its companion on the EHR example (examples/ehr): cohort
# queries as an agent against the same queries over the consenting patients
# only, with the answers checked equal and the audit records counted.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
B=$top/bench
W=$B/results/tmp
mkdir -p "$W"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    NPAT=${NPAT:-1000}; NOBS=${NOBS:-100000}; T=${T:-3}; ROUNDS=${ROUNDS:-1}; NREC=${NREC:-100000}
else
    NPAT=${NPAT:-10000}; NOBS=${NOBS:-1000000}; T=${T:-8}; ROUNDS=${ROUNDS:-3}; NREC=${NREC:-1000000}
fi
PORT=${PORT:-54331}
PRELOAD=${PRELOAD:-agentauth,pgaudit}

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
make -s -C bench >/dev/null
make -s -C bench install $DEST >/dev/null
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$B/results"

export PGHOST=$W PGPORT=$PORT PGDATABASE=bench
PSQL="$BIN/psql -X -q -v ON_ERROR_STOP=1"
now() { date +%s.%N; }

stop_server() { as_pg "$BIN/pg_ctl" -D "$W/data" -m fast stop >/dev/null 2>&1 || true; }
trap stop_server EXIT
stop_server
rm -rf "$W/data"
as_pg "$BIN/initdb" -D "$W/data" -A trust >/dev/null
cat >>"$W/data/postgresql.conf" <<EOC
port = $PORT
unix_socket_directories = '$W'
listen_addresses = ''
shared_preload_libraries = '$PRELOAD'
agentauth.database = 'bench'
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
max_connections = 60
max_worker_processes = 16
max_parallel_workers_per_gather = 0
logging_collector = on
log_directory = 'log'
pgaudit.log = 'none'
pgaudit.log_catalog = off
EOC
as_pg "$BIN/pg_ctl" -D "$W/data" -l "$W/server.log" -w start >/dev/null
as_pg "$BIN/createdb" bench
case $PRELOAD in *pgaudit*) as_pg $PSQL -c "CREATE EXTENSION pgaudit" ;; esac

t_setup=$(now)
echo "== dataset: $NOBS observations over $NPAT patients, three copies"
as_pg $PSQL -v npat="$NPAT" -v nobs="$NOBS" -f "$B/setup.sql" >"$W/setup.log"
echo "   ($(awk -v a="$t_setup" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s)"

if [ "${SETUP_ONLY:-0}" = 1 ]; then
    # for profiling: leave the server running with the dataset
    trap - EXIT
    echo "server left running: PGHOST=$W PGPORT=$PORT PGDATABASE=bench $BIN/psql"
    exit 0
fi

# tokens for the two agent roles (a fresh secret per run, never printed)
TOK_ASYNC=$(as_pg $PSQL -At -c "SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_async'), 'TREAT', '2 hours')")
TOK_SYNC=$(as_pg $PSQL -At -c "SELECT agentauth.issue_token((SELECT id FROM agentauth.principals WHERE name = 'bench_agent_sync'), 'TREAT', '2 hours')")

# variant -> role, table, token, the audit_sync it must run with
role_of()  { case $1 in plain) echo bench_plain;; hand) echo bench_hand;; pgaudit) echo bench_pga;; aa_async) echo bench_agent_async;; aa_sync) echo bench_agent_sync;; esac; }
table_of() { case $1 in plain|pgaudit) echo obs_plain;; hand) echo obs_hand;; aa_*) echo obs_aa;; esac; }
token_of() { case $1 in aa_async) echo "$TOK_ASYNC";; aa_sync) echo "$TOK_SYNC";; *) echo none;; esac; }

# agentauth.audit_sync and pgaudit.log are superuser settings: PostgreSQL 15
# applies a role's ALTER ROLE ... SET only for the settings the role itself
# may change, so for a non-superuser client they would be ignored (with a
# warning).  The server-wide value is set for each run instead (ALTER
# SYSTEM and a reload; new connections read it), and checked in a pgbench
# script logged in as the variant's role before every run.
want_of() {   # variant -> "setting value" it must run with
    case $1 in
        aa_async) echo "agentauth.audit_sync off" ;;
        aa_sync) echo "agentauth.audit_sync on" ;;
        pgaudit) echo "pgaudit.log read" ;;
        *) echo "" ;;
    esac
}
configure() {   # variant
    local sync=on pga=none name want i
    case $1 in aa_async) sync=off ;; pgaudit) pga=read ;; esac
    local cmds=(-c "ALTER SYSTEM SET agentauth.audit_sync = $sync")
    [[ $PRELOAD == *pgaudit* ]] && cmds+=(-c "ALTER SYSTEM SET pgaudit.log = $pga")
    as_pg $PSQL "${cmds[@]}" -c "SELECT pg_reload_conf()" >/dev/null
    read -r name want <<<"$(want_of "$1")"
    [ -n "$name" ] || return 0
    echo "SELECT 1 / (current_setting('$name') = '$want')::int AS setting_ok;" >"$W/check.$1.sql"
    for i in $(seq 1 50); do
        as_pg "$BIN/pgbench" -n -t 1 -U "$(role_of "$1")" -f "$W/check.$1.sql" bench >"$W/check.$1.log" 2>&1 && return 0
        sleep 0.1
    done
    echo "$1: $name is not $want for $(role_of "$1"):" >&2
    tail -3 "$W/check.$1.log" >&2
    exit 1
}

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
    lsn0=$(as_pg $PSQL -At -c "SELECT pg_current_wal_insert_lsn()")
    out=$(as_pg "$BIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$t" -U "$(role_of "$v")" \
        -D token="$(token_of "$v")" -D started=0 -D npat="$NPAT" -f "$f" bench 2>&1) || {
        echo "pgbench failed for $tpl/$v:" >&2; echo "$out" | tail -5 >&2; echo "0 0 0"; return; }
    lsn1=$(as_pg $PSQL -At -c "SELECT pg_current_wal_insert_lsn()")
    tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    local tps lat wal
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    wal=$(as_pg $PSQL -At -c "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / greatest(${tx:-0}, 1))")
    echo "${tps:-0} ${lat:-0} ${wal:-0}"
}

declare -A TPS LAT WAL
measure() {   # name template clients seconds variants...
    local name=$1 tpl=$2 c=$3 t=$4; shift 4
    local r v res tps lat wal
    for ((r = 1; r <= ROUNDS; r++)); do
        for v in "$@"; do
            configure "$v"
            res=$(run_pgbench "$tpl" "$v" "$c" "$t")
            read -r tps lat wal <<<"$res"
            TPS[$name.$v]="${TPS[$name.$v]:-} $tps"
            LAT[$name.$v]="${LAT[$name.$v]:-} $lat"
            WAL[$name.$v]="${WAL[$name.$v]:-} $wal"
        done
    done
}
mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.3f", NF ? s/NF : 0}' <<<"$1"; }
meani() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.0f", NF ? s/NF : 0}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a/b; else print "nan" }'; }

echo "== plans (results/explain.txt)"
as_pg $PSQL -v npat="$NPAT" -f "$B/explain.sql" >"$B/results/explain.txt" 2>&1 || true

echo "== point query, 1 client (audit_sync off for the agent)"
measure point point 1 "$T" plain hand aa_async
echo "== 2% slice aggregate, 1 client"
measure slice slice 1 "$T" plain hand aa_async
echo "== non-leakproof LIKE search, 1 client"
measure like like 1 "$T" plain hand aa_async
echo "== full scan of every observation, 1 client (audit on)"
measure scan scan 1 "$((T * 2))" plain hand aa_sync
echo "== mixed reads, 8 clients, with a consent toggler at 5/s"
toggled0=$(as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log WHERE event = 'consent_withdrawn'")
as_pg "$BIN/pgbench" -n -c 1 -j 1 -R 5 -T "$((T * ROUNDS * 4 + 20))" -D npat="$NPAT" \
    -f "$B/scripts/toggle.sql" bench >"$W/toggle.log" 2>&1 &
toggler=$!
measure mixed mixed 8 "$T" plain pgaudit aa_async aa_sync
kill "$toggler" 2>/dev/null || true; wait "$toggler" 2>/dev/null || true
toggled=$(( $(as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log WHERE event = 'consent_withdrawn'") - toggled0 ))

echo "== revocation / withdrawal: stale rows after commit"
stale=$(as_pg $PSQL -At -f "$B/stale.sql" | tail -1)

echo "== audit writer and verifier ($NREC records)"
# One backend emits NREC access records through aa_audit_emit() (the
# driver bench/aa_bench_driver.c, 10000 records per statement, as a scan of
# 10 k patients makes), with audit_sync off so that the queue, not the
# backend, waits; the last call waits until the writer has committed them
# all.  writer_rate is records per second from the first emit to that
# commit; writer_cpu_rate the same per CPU second of the writer process.
as_pg $PSQL -c "CREATE FUNCTION public.bench_emit(bigint, bigint) RETURNS bigint LANGUAGE c AS '\$libdir/aa_bench_driver', 'aa_bench_emit'"
wpid=$(as_pg $PSQL -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'")
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
as_pg $PSQL -c "SELECT public.bench_emit(1, 1)" >/dev/null
c0=$(cpu "$wpid"); t0=$(now)
as_pg $PSQL -c "SET agentauth.audit_sync = off" -c "SET agentauth.audit_wait_timeout = '10min'" \
    -c "SELECT public.bench_emit($NREC, 10000)" -c "SET agentauth.audit_sync = on" \
    -c "SELECT public.bench_emit(1, 1)" >/dev/null
t1=$(now); c1=$(cpu "$wpid")
writer_rate=$(awk -v n="$NREC" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", n / (b - a) }')
writer_cpu_rate=$(awk -v n="$NREC" -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { if (b > a) printf "%d", n * hz / (b - a); else print "nan" }')
# verify_audit() over the whole log (the benchmark's records and these)
as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log" >/dev/null   # warm the cache
t0=$(now)
vres=$(as_pg $PSQL -At -F ' ' -c "SELECT checked, ok FROM agentauth.verify_audit()")
t1=$(now)
read -r vchecked vok <<<"$vres"
verify_rate=$(awk -v n="$vchecked" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", n / (b - a) }')
[ "$vok" = t ] || verify_rate="$verify_rate(chain_not_ok)"

{
echo
echo "dataset: $NOBS observations over $NPAT patients; $ROUNDS round(s) of ${T}s per variant (scan $((T * 2))s), interleaved; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-9s %10s %12s %13s\n' measure variant tps latency_ms wal_bytes/tx
for m in point slice like scan mixed; do
    for v in plain hand pgaudit aa_async aa_sync; do
        k=$m.$v
        [ -n "${TPS[$k]:-}" ] || continue
        printf '%-8s %-9s %10s %12s %13s\n' "$m" "$v" "$(mean "${TPS[$k]}")" "$(mean "${LAT[$k]}")" "$(meani "${WAL[$k]}")"
    done
done
echo "consent toggles during the mixed run: $toggled"
echo "audit writer: $NREC records, ${writer_rate}/s wall clock, ${writer_cpu_rate}/s per writer CPU second"
echo "verify_audit: $vchecked records, ok=$vok, ${verify_rate}/s"
} | tee "$B/results/last.txt"

point_ratio=$(ratio "$(mean "${LAT[point.aa_async]}")" "$(mean "${LAT[point.plain]}")")
slice_ratio=$(ratio "$(mean "${LAT[slice.aa_async]}")" "$(mean "${LAT[slice.plain]}")")
like_ratio=$(ratio "$(mean "${LAT[like.aa_async]}")" "$(mean "${LAT[like.plain]}")")
scan_ratio=$(ratio "$(mean "${LAT[scan.aa_sync]}")" "$(mean "${LAT[scan.plain]}")")
handwritten_ratio=$(ratio "$(mean "${LAT[scan.aa_sync]}")" "$(mean "${LAT[scan.hand]}")")
tps_async_ratio=$(ratio "$(mean "${TPS[mixed.aa_async]}")" "$(mean "${TPS[mixed.plain]}")")
tps_sync_ratio=$(ratio "$(mean "${TPS[mixed.aa_sync]}")" "$(mean "${TPS[mixed.plain]}")")
pgaudit_tps_ratio=$(ratio "$(mean "${TPS[mixed.aa_async]}")" "$(mean "${TPS[mixed.pgaudit]:-0}")")

line="point_ratio=$point_ratio scan_ratio=$scan_ratio handwritten_ratio=$handwritten_ratio tps_async_ratio=$tps_async_ratio tps_sync_ratio=$tps_sync_ratio pgaudit_tps_ratio=$pgaudit_tps_ratio slice_ratio=$slice_ratio like_ratio=$like_ratio writer_rate=$writer_rate verify_rate=$verify_rate stale_rows=$stale"
echo
echo "$line" | tee -a "$B/results/last.txt"
