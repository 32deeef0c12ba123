#!/usr/bin/env bash
# agentauth benchmark: every comparison of SPEC 14, side by side, in one run
# on one server.
#
#   bash bench/run.sh            # full run (about 14 minutes on 2 cores)
#   QUICK=1 bash bench/run.sh    # small dataset, short runs (a smoke test)
#   SETUP_ONLY=1 bash bench/run.sh   # build the dataset, leave the server up
#   PGROOT=/var/tmp/agentauth-pgroot/me bash bench/run.sh
#                                # install into (and run from) the private
#                                # copy of PostgreSQL that scripts/dev.sh uses,
#                                # or a relocated prefix whose own pg_config
#                                # names it (PGROOT=/path/to/prefix)
#
# Every pgbench run is measured by TPS, latency, WAL bytes and the server's
# CPU time per transaction (every process of the server: backends, the
# audit writer, walwriter, checkpointer ...).  Then the audit writer and
# verifier, the audit log's bytes per patient entry, and, when
# bench/ehr.sh is there, the EHR example's cohort queries (agent vs
# reference), whose table is included.
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
t_start=$(date +%s.%N)
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
CT=${CT:-$(( T / 2 > 2 ? T / 2 : 2 ))}   # seconds per run of the clients table
CLIENTS=${CLIENTS:-"2 4 8"}      # and its client counts (1 is the point run)
ORIG_PG_CONFIG=${PG_CONFIG:-}
PORT=${PORT:-54331}
PRELOAD=${PRELOAD:-agentauth,pgaudit}

PG_CONFIG=${PG_CONFIG:-pg_config}
ver=$("$PG_CONFIG" --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/deps.sh
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
DEST=
if [ -n "${PGROOT:-}" ]; then
    pgc=$PGROOT/usr/lib/postgresql/$ver/bin/pg_config
    if [ -x "$pgc" ] && [ "$("$pgc" --bindir)" = "$PGROOT/usr/lib/postgresql/$ver/bin" ] &&
       [ -d "$("$pgc" --includedir-server)" ]; then
        # a relocated prefix whose pg_config names its own paths (the
        # a relocated copy): build and install with that pg_config
        PG_CONFIG=$pgc
    else
        # a private copy of the installation (scripts/dev.sh makes the
        # same; its pg_config names the copy, which holds no headers): the
        # system's pg_config, installed under DESTDIR
        if [ ! -x "$PGROOT/usr/lib/postgresql/$ver/bin/postgres" ]; then
            mkdir -p "$PGROOT/usr/lib/postgresql" "$PGROOT/usr/share/postgresql"
            cp -a "/usr/lib/postgresql/$ver" "$PGROOT/usr/lib/postgresql/"
            cp -a "/usr/share/postgresql/$ver" "$PGROOT/usr/share/postgresql/"
        fi
        DEST="DESTDIR=$PGROOT"
    fi
    BIN=$PGROOT/usr/lib/postgresql/$ver/bin
else
    BIN=$("$PG_CONFIG" --bindir)
fi
export PG_CONFIG
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

# The floor variant (plain_rls): obs_plain read through row security whose
# policy calls a C function that decides nothing (aa_bench_row_true, with
# agentauth._row_check's arguments and declaration) -- what PostgreSQL's
# row security itself costs before any consent is looked at.  The policies
# are per role: plain and pgaudit read obs_plain under a policy of true,
# which the planner folds away (their plans are unchanged, results/explain.txt).
as_pg $PSQL >>"$W/setup.log" <<'EOSQL'
CREATE FUNCTION clinic.bench_row_true(relid oid, patient text, cmd text)
    RETURNS boolean LANGUAGE c STABLE PARALLEL RESTRICTED COST 10
    AS '$libdir/aa_bench_driver', 'aa_bench_row_true';
CREATE ROLE bench_floor LOGIN;
GRANT SELECT ON clinic.obs_plain TO bench_floor;
CREATE POLICY unprotected ON clinic.obs_plain FOR SELECT TO bench_plain, bench_pga USING (true);
CREATE POLICY floor ON clinic.obs_plain FOR SELECT TO bench_floor
    USING (clinic.bench_row_true('clinic.obs_plain'::regclass, patient_id, 'read'));
ALTER TABLE clinic.obs_plain ENABLE ROW LEVEL SECURITY;
EOSQL

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
role_of()  { case $1 in plain|plain_dw) echo bench_plain;; plain_rls) echo bench_floor;; hand) echo bench_hand;; pgaudit) echo bench_pga;; aa_async) echo bench_agent_async;; aa_sync) echo bench_agent_sync;; esac; }
table_of() { case $1 in plain|pgaudit|plain_dw|plain_rls) echo obs_plain;; hand) echo obs_hand;; aa_*) echo obs_aa;; esac; }
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
        plain_dw) echo "synchronous_commit on" ;;
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
            plain_dw) echo "BEGIN;" ;;
        esac
        sed "s/@T@/$(table_of "$2")/g" "$B/scripts/$1.sql"
        # plain_dw: the same reads and one durable write in the transaction,
        # what PostgreSQL itself pays to make one record per read durable
        if [ "$2" = plain_dw ]; then printf 'INSERT INTO clinic.durable_write VALUES (1);\nCOMMIT;\n'; fi
    } >"$out"
    echo "$out"
}

# The server's CPU time: the postmaster's own and that of the children it
# has reaped (cutime, cstime: the backends of finished connections), plus
# every live child's (backends, the audit writer, walwriter, checkpointer,
# autovacuum ...), in clock ticks; and the audit writer's alone.
PMPID=$(head -1 "$W/data/postmaster.pid")
HZ=$(getconf CLK_TCK)
WPID=$(as_pg $PSQL -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'")
srv_ticks() {   # -> "all_ticks writer_ticks"
    cat /proc/[0-9]*/stat 2>/dev/null | awk -v pm="$PMPID" -v w="${WPID:-0}" '{
        pid = $1; line = $0; sub(/^.*\) /, "", line); split(line, f, " ")
        # f[k] is field k + 2 of proc(5): ppid f[2], utime f[12], stime f[13],
        # cutime f[14], cstime f[15]
        if (pid == pm) t += f[12] + f[13] + f[14] + f[15]
        else if (f[2] == pm) t += f[12] + f[13]
        if (pid == w) wt = f[12] + f[13]
    } END { printf "%d %d\n", t, wt }'
}
# Wait until the benchmark roles' backends have exited (and been reaped)
# and the server's CPU time has stopped moving for 100 ms (the audit writer
# has drained its queue), at most 10 s; then print srv_ticks.
settle() {
    local i prev= cur busy
    for i in $(seq 1 100); do
        busy=$(ps --ppid "$PMPID" -o args= | grep -c 'postgres: bench_' || true)
        cur=$(srv_ticks)
        [ "$busy" = 0 ] && [ "$cur" = "$prev" ] && break
        prev=$cur
        sleep 0.1
    done
    echo "$cur"
}

# run_pgbench template variant clients seconds
#   -> "tps lat_ms wal_bytes_per_tx cpu_us_per_tx writer_us_per_tx"
run_pgbench() {
    local tpl=$1 v=$2 c=$3 t=$4 f out lsn0 lsn1 tx c0 w0 c1 w1
    f=$(mkscript "$tpl" "$v")
    lsn0=$(as_pg $PSQL -At -c "SELECT pg_current_wal_insert_lsn()")
    read -r c0 w0 <<<"$(settle)"
    out=$(as_pg "$BIN/pgbench" -n -M prepared -c "$c" -j 2 -T "$t" -U "$(role_of "$v")" \
        -D token="$(token_of "$v")" -D started=0 -D npat="$NPAT" -f "$f" bench 2>&1) || {
        echo "pgbench failed for $tpl/$v:" >&2; echo "$out" | tail -5 >&2; echo "0 0 0 0 0"; return; }
    # an agent's run leaves keys in the pending list of the log's GIN
    # index, which the writer merges once idle for a second (audit_writer.c,
    # tidy_patient_index) -- during the next run, another variant's.  Once
    # the writer has stored the run's records, merge it here, counted in
    # this run's CPU (one superuser call, as the writer would make it)
    case $v in aa_*)
        settle >/dev/null
        as_pg $PSQL -At -c "SELECT gin_clean_pending_list('agentauth.audit_record_entry_patients_idx')" >/dev/null ;;
    esac
    read -r c1 w1 <<<"$(settle)"
    lsn1=$(as_pg $PSQL -At -c "SELECT pg_current_wal_insert_lsn()")
    tx=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    local tps lat wal cpu wcpu
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    wal=$(as_pg $PSQL -At -c "SELECT round(pg_wal_lsn_diff('$lsn1', '$lsn0') / greatest(${tx:-0}, 1))")
    cpu=$(awk -v a="$c0" -v b="$c1" -v n="${tx:-0}" -v hz="$HZ" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
    wcpu=$(awk -v a="$w0" -v b="$w1" -v n="${tx:-0}" -v hz="$HZ" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) * 1e6 / hz / n : 0) }')
    echo "${tps:-0} ${lat:-0} ${wal:-0} $cpu $wcpu"
}

declare -A TPS LAT WAL CPU WCPU
measure() {   # name template clients seconds variants...
    local name=$1 tpl=$2 c=$3 t=$4; shift 4
    local r v res tps lat wal cpu wcpu
    for ((r = 1; r <= ROUNDS; r++)); do
        for v in "$@"; do
            configure "$v"
            res=$(run_pgbench "$tpl" "$v" "$c" "$t")
            read -r tps lat wal cpu wcpu <<<"$res"
            TPS[$name.$v]="${TPS[$name.$v]:-} $tps"
            LAT[$name.$v]="${LAT[$name.$v]:-} $lat"
            WAL[$name.$v]="${WAL[$name.$v]:-} $wal"
            CPU[$name.$v]="${CPU[$name.$v]:-} $cpu"
            WCPU[$name.$v]="${WCPU[$name.$v]:-} $wcpu"
        done
    done
}
mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.3f", NF ? s/NF : 0}' <<<"$1"; }
mean1() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.1f", NF ? s/NF : 0}' <<<"$1"; }
meani() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.0f", NF ? s/NF : 0}' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a/b; else print "nan" }'; }
# mean of a measure's figure for a variant ("" when not measured)
fig() {   # TPS|LAT|CPU|WCPU name variant
    local -n arr=$1
    local k=$2.$3
    [ -n "${arr[$k]:-}" ] && mean "${arr[$k]}"
    return 0
}
rfig() {   # TPS|LAT|CPU name variant base -> figure(variant) / figure(base)
    local a b
    a=$(fig "$1" "$2" "$3"); b=$(fig "$1" "$2" "$4")
    if [ -n "$a" ] && [ -n "$b" ]; then ratio "$a" "$b"; else echo nan; fi
}

# The audit log's storage: pg_total_relation_size (heap, TOAST, indexes)
# of agentauth.audit_log, or, if it is a view, of the tables it reads (and
# their partitions); with the log's last seq.
AUDIT_SIZE="WITH rel AS (
    SELECT c.oid FROM pg_class c
     WHERE c.oid = 'agentauth.audit_log'::regclass AND c.relkind IN ('r', 'p')
    UNION
    SELECT d.refobjid FROM pg_rewrite r
      JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
      JOIN pg_class c ON c.oid = d.refobjid AND c.relkind IN ('r', 'p')
     WHERE r.ev_class = 'agentauth.audit_log'::regclass AND d.refobjid <> r.ev_class),
  leaf AS (SELECT oid AS relid FROM rel
           UNION SELECT t.relid FROM rel, pg_partition_tree(rel.oid) t)
SELECT coalesce(sum(pg_total_relation_size(relid)), 0), coalesce(sum(pg_relation_size(relid)), 0),
       coalesce(sum(pg_indexes_size(relid)), 0),
       (SELECT coalesce(max(seq), 0) FROM agentauth.audit_log)
  FROM leaf"
audit_mark() { as_pg $PSQL -At -F ' ' -c "$AUDIT_SIZE"; }
# audit_delta "mark before" "mark after" -> "entries records bytes/entry heap/entry indexes/entry rest/entry"
# (patient entries: the records that name a patient; rest: TOAST and the
# free-space and visibility maps)
audit_delta() {
    local t0 h0 i0 s0 t1 h1 i1 s1 n
    read -r t0 h0 i0 s0 <<<"$1"; read -r t1 h1 i1 s1 <<<"$2"
    n=$(as_pg $PSQL -At -F ' ' -c "SELECT count(*) FILTER (WHERE patient IS NOT NULL), count(*) FROM agentauth.audit_log WHERE seq > $s0 AND seq <= $s1")
    awk -v n="$n" -v t="$((t1 - t0))" -v h="$((h1 - h0))" -v i="$((i1 - i0))" 'BEGIN {
        split(n, a, " "); e = a[1]
        if (e > 0) printf "%d %d %.1f %.1f %.1f %.1f\n", e, a[2], t / e, h / e, i / e, (t - h - i) / e
        else printf "0 %d nan nan nan nan\n", a[2] }'
}

echo "== plans (results/explain.txt)"
logf=$(ls -t "$W"/data/log/* | head -1); logoff=$(stat -c %s "$logf")
as_pg $PSQL -v npat="$NPAT" -f "$B/explain.sql" >"$B/results/explain.txt" 2>&1 || true
# the agent's plans, as they ran (auto_explain, in the server log)
tail -c +"$((logoff + 1))" "$logf" | awk '
    function flush() { if (buf ~ /clinic\.obs_aa/) print buf "\n"; buf = "" }
    /LOG:  duration: .* plan:/ { flush(); buf = $0; keep = 1; next }
    /^\t/ && keep { buf = buf "\n" $0; next }
    { flush(); keep = 0 }
    END { flush() }' >>"$B/results/explain.txt"

mark0=$(audit_mark)
echo "== point query, 1 client (audit_sync off for aa_async)"
measure point point 1 "$T" plain hand plain_rls aa_async aa_sync
echo "== 2% slice aggregate, 1 client"
measure slice slice 1 "$T" plain hand aa_async
echo "== non-leakproof LIKE search, 1 client"
measure like like 1 "$T" plain hand aa_async
echo "== full scan of every observation, 1 client (audit on)"
measure scan scan 1 "$((T * 3 / 2))" plain hand aa_sync
for c in $CLIENTS; do
    echo "== point query, $c clients (${CT}s runs)"
    measure "point$c" point "$c" "$CT" plain hand aa_async aa_sync plain_dw
done
echo "== mixed reads, 8 clients, with a consent toggler at 5/s"
toggled0=$(as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log WHERE event = 'consent_withdrawn'")
as_pg "$BIN/pgbench" -n -c 1 -j 1 -R 5 -T "$((T * ROUNDS * 4 + 20))" -D npat="$NPAT" \
    -f "$B/scripts/toggle.sql" bench >"$W/toggle.log" 2>&1 &
toggler=$!
measure mixed mixed 8 "$T" plain pgaudit plain_rls aa_async aa_sync plain_dw
kill "$toggler" 2>/dev/null || true; wait "$toggler" 2>/dev/null || true
toggled=$(( $(as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log WHERE event = 'consent_withdrawn'") - toggled0 ))
mark1=$(audit_mark)

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
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
as_pg $PSQL -c "SELECT public.bench_emit(1, 1)" >/dev/null
mark2=$(audit_mark)
c0=$(cpu "$WPID"); t0=$(now)
as_pg $PSQL -c "SET agentauth.audit_sync = off" -c "SET agentauth.audit_wait_timeout = '10min'" \
    -c "SELECT public.bench_emit($NREC, 10000)" -c "SET agentauth.audit_sync = on" \
    -c "SELECT public.bench_emit(1, 1)" >/dev/null
t1=$(now)
# and the writer's merge of the GIN pending list those records left (once
# idle for a second, tidy_patient_index): deferred work of this run, counted
# in its CPU (before the merge was built, whatever the run left in the list
# was merged by a later insert, and never counted here)
for _ in $(seq 1 100); do
    [ "$(as_pg $PSQL -At -c "SELECT pending_pages FROM pgstatginindex('agentauth.audit_record_entry_patients_idx')")" = 0 ] && break
    sleep 0.1
done
c1=$(cpu "$WPID")
mark3=$(audit_mark)
writer_rate=$(awk -v n="$NREC" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", n / (b - a) }')
writer_cpu_rate=$(awk -v n="$NREC" -v a="$c0" -v b="$c1" -v hz="$HZ" 'BEGIN { if (b > a) printf "%d", n * hz / (b - a); else print "nan" }')
# verify_audit() over the whole log (the benchmark's records and these)
as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log" >/dev/null   # warm the cache
t0=$(now)
vres=$(as_pg $PSQL -At -F ' ' -c "SELECT checked, ok FROM agentauth.verify_audit()")
t1=$(now)
read -r vchecked vok <<<"$vres"
verify_rate=$(awk -v n="$vchecked" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", n / (b - a) }')
[ "$vok" = t ] || verify_rate="$verify_rate(chain_not_ok)"
read -r wl_entries wl_records wl_bpe wl_heap wl_idx wl_rest <<<"$(audit_delta "$mark0" "$mark1")"
read -r em_entries em_records em_bpe em_heap em_idx em_rest <<<"$(audit_delta "$mark2" "$mark3")"
stop_server

{
echo
echo "dataset: $NOBS observations over $NPAT patients; $ROUNDS round(s) of ${T}s per variant (scan $((T * 3 / 2))s, clients table ${CT}s), interleaved; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cpu_us/tx: server CPU (all its processes) per transaction; writer_us/tx: the audit writer's part of it; x_plain: this variant / plain"
printf '%-8s %-9s %10s %8s %11s %8s %10s %8s %10s %12s\n' measure variant tps x_plain latency_ms x_plain cpu_us/tx x_plain writer_us wal_bytes/tx
for m in point slice like scan mixed; do
    for v in plain hand pgaudit plain_rls aa_async aa_sync plain_dw; do
        k=$m.$v
        [ -n "${TPS[$k]:-}" ] || continue
        printf '%-8s %-9s %10s %8s %11s %8s %10s %8s %10s %12s\n' "$m" "$v" \
            "$(mean "${TPS[$k]}")" "$(rfig TPS "$m" "$v" plain)" \
            "$(mean "${LAT[$k]}")" "$(rfig LAT "$m" "$v" plain)" \
            "$(mean1 "${CPU[$k]}")" "$(rfig CPU "$m" "$v" plain)" \
            "$(mean1 "${WCPU[$k]}")" "$(meani "${WAL[$k]}")"
    done
done
echo
echo "point query by clients (1: the point runs above; x_plain: this variant / plain at the same clients)"
printf '%-7s %-9s %10s %8s %10s %8s %10s\n' clients variant tps x_plain cpu_us/tx x_plain writer_us
for c in 1 $CLIENTS; do
    m=point$c; [ "$c" = 1 ] && m=point
    for v in plain hand plain_rls aa_async aa_sync plain_dw; do
        k=$m.$v
        [ -n "${TPS[$k]:-}" ] || continue
        printf '%-7s %-9s %10s %8s %10s %8s %10s\n' "$c" "$v" \
            "$(mean "${TPS[$k]}")" "$(rfig TPS "$m" "$v" plain)" \
            "$(mean1 "${CPU[$k]}")" "$(rfig CPU "$m" "$v" plain)" "$(mean1 "${WCPU[$k]}")"
    done
done
echo
echo "consent toggles during the mixed run: $toggled"
echo "audit storage, the workload above: $wl_entries patient entries ($wl_records records), $wl_bpe bytes/entry (heap $wl_heap, indexes $wl_idx, TOAST and maps $wl_rest)"
echo "audit storage, the writer run (10000 entries per statement): $em_entries patient entries ($em_records records), $em_bpe bytes/entry (heap $em_heap, indexes $em_idx, TOAST and maps $em_rest)"
echo "audit writer: $NREC records, ${writer_rate}/s wall clock, ${writer_cpu_rate}/s per writer CPU second"
echo "verify_audit: $vchecked records, ok=$vok, ${verify_rate}/s"
} | tee "$B/results/last.txt"

# the EHR example's cohort queries, agent vs reference (bench/ehr.sh, on a
# server of its own, when that script is there)
ehr_ratio=absent
if [ -f "$B/ehr.sh" ]; then
    echo
    echo "== EHR cohort queries (bench/ehr.sh)"
    rm -f "$B/results/ehr/last.txt"
    ehr_rc=0
    t_ehr=$(now)
    if [ -n "$ORIG_PG_CONFIG" ]; then
        PG_CONFIG=$ORIG_PG_CONFIG QUICK=$QUICK bash "$B/ehr.sh" >"$W/ehr.out" 2>&1 || ehr_rc=$?
    else
        env -u PG_CONFIG QUICK=$QUICK bash "$B/ehr.sh" >"$W/ehr.out" 2>&1 || ehr_rc=$?
    fi
    if [ "$ehr_rc" = 0 ] && [ -f "$B/results/ehr/last.txt" ]; then
        # total: the sum of the agent's and of the reference's median times
        ehr_ratio=$(awk 'NF >= 5 && $3 ~ /^[0-9.]+$/ && $4 ~ /^[0-9.]+$/ { a += $3; b += $4 }
            END { if (b > 0) printf "%.3f", a / b; else print "nan" }' "$B/results/ehr/last.txt")
        { echo; sed '/^$/d' "$B/results/ehr/last.txt"
          echo "ehr total: agent / reference $ehr_ratio (sums of the median times); bench/ehr.sh took $(awk -v a="$t_ehr" -v b="$(now)" 'BEGIN { printf "%d", b - a }') s"; } >"$W/ehr.table"
    else
        ehr_ratio=failed
        { echo; echo "bench/ehr.sh exited $ehr_rc; the end of its output ($W/ehr.out):"
          tail -15 "$W/ehr.out"; } >"$W/ehr.table"
    fi
    tee -a "$B/results/last.txt" <"$W/ehr.table"
fi

# per-patient reports over 1.0's storage and 1.1's, the same workload
# (bench/report_bench.sh, two servers of its own, about a minute)
report_line="report_bench=absent"
if [ -f "$B/report_bench.sh" ]; then
    echo
    echo "== per-patient reports, 1.0 storage against 1.1 (bench/report_bench.sh)"
    rargs=(ROUNDS=1 NREP=200 NCOLD=30)
    [ "$QUICK" = 1 ] && rargs=(ROUNDS=1 NTX=8000 NSCAN=10 NREP=100 NCOLD=20)
    report_rc=0
    if [ -n "$ORIG_PG_CONFIG" ]; then
        env PG_CONFIG="$ORIG_PG_CONFIG" "${rargs[@]}" bash "$B/report_bench.sh" >"$W/report.out" 2>&1 || report_rc=$?
    else
        env -u PG_CONFIG "${rargs[@]}" bash "$B/report_bench.sh" >"$W/report.out" 2>&1 || report_rc=$?
    fi
    if [ "$report_rc" = 0 ]; then
        report_line=$(tail -1 "$W/report.out")
        { echo; sed -n '/^audit log after/,$p' "$W/report.out" | sed '$d'; } | tee -a "$B/results/last.txt"
    else
        report_line="report_bench=failed"
        { echo; echo "bench/report_bench.sh exited $report_rc:"; tail -8 "$W/report.out"; } | tee -a "$B/results/last.txt"
    fi
fi

point_ratio=$(rfig LAT point aa_async plain)
slice_ratio=$(rfig LAT slice aa_async plain)
like_ratio=$(rfig LAT like aa_async plain)
scan_ratio=$(rfig LAT scan aa_sync plain)
handwritten_ratio=$(rfig LAT scan aa_sync hand)
hand_point_ratio=$(rfig LAT point aa_async hand)
tps_async_ratio=$(rfig TPS mixed aa_async plain)
tps_sync_ratio=$(rfig TPS mixed aa_sync plain)
pgaudit_tps_ratio=$(rfig TPS mixed aa_async pgaudit)
cpu_point_ratio=$(rfig CPU point aa_async plain)
cmax=$(echo "$CLIENTS" | tr ' ' '\n' | grep . | sort -n | tail -1)
cpu_point_max_ratio=$(rfig CPU "point$cmax" aa_async plain)
tps_point_max_ratio=$(rfig TPS "point$cmax" aa_async plain)
tps_point_max_sync_ratio=$(rfig TPS "point$cmax" aa_sync plain)
# the limit of audit_sync = on: PostgreSQL's own reads plus one durable
# write per transaction, against plain reads; and audit_sync = on against it
sync_limit_ratio=$(rfig TPS mixed plain_dw plain)
sync_vs_limit_ratio=$(rfig TPS mixed aa_sync plain_dw)
point_sync_limit_ratio=$(rfig TPS "point$cmax" plain_dw plain)
cpu_mixed_ratio=$(rfig CPU mixed aa_async plain)
# the floor of row security: a policy that calls a do-nothing C function on
# every row, against plain; and agentauth against that floor
rls_floor_ratio=$(rfig TPS mixed plain_rls plain)
tps_async_floor_ratio=$(rfig TPS mixed aa_async plain_rls)
cpu_point_floor_ratio=$(rfig CPU point plain_rls plain)
cpu_point_vs_floor_ratio=$(rfig CPU point aa_async plain_rls)

elapsed=$(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%d min %02d s", (b - a) / 60, (b - a) % 60 }')
echo "run time: $elapsed" | tee -a "$B/results/last.txt"
line="point_ratio=$point_ratio scan_ratio=$scan_ratio handwritten_ratio=$handwritten_ratio hand_point_ratio=$hand_point_ratio tps_async_ratio=$tps_async_ratio tps_sync_ratio=$tps_sync_ratio pgaudit_tps_ratio=$pgaudit_tps_ratio cpu_point_ratio=$cpu_point_ratio cpu_point${cmax}_ratio=$cpu_point_max_ratio tps_point${cmax}_ratio=$tps_point_max_ratio tps_point${cmax}_sync_ratio=$tps_point_max_sync_ratio sync_limit_ratio=$sync_limit_ratio sync_vs_limit_ratio=$sync_vs_limit_ratio point${cmax}_sync_limit_ratio=$point_sync_limit_ratio cpu_mixed_ratio=$cpu_mixed_ratio rls_floor_ratio=$rls_floor_ratio tps_async_floor_ratio=$tps_async_floor_ratio cpu_point_floor_ratio=$cpu_point_floor_ratio cpu_point_vs_floor_ratio=$cpu_point_vs_floor_ratio slice_ratio=$slice_ratio like_ratio=$like_ratio audit_bytes_per_entry=$wl_bpe emit_bytes_per_entry=$em_bpe writer_rate=$writer_rate writer_cpu_rate=$writer_cpu_rate verify_rate=$verify_rate ehr_ratio=${ehr_ratio:-nan} stale_rows=$stale $report_line"
echo
echo "$line" | tee -a "$B/results/last.txt"
