#!/usr/bin/env bash
# Audit path benchmark (SPEC 14): audit writer throughput and verify_audit
# rate on at least 1 M records.  Not part of the test suite; prints
# name=value lines and keeps them in bench/audit_bench.last.
#
#   bench/audit_bench.sh [records]        (default 1000000)
#
# Builds and installs the extension and the driver (bench/aa_bench_driver.c)
# into the private PostgreSQL copy of scripts/dev.sh, starts a throw-away
# server in a temporary directory, and measures:
#   writer_sync_rps       records/s, one client, audit_sync = on, a wait
#                         every 10000 records (one statement touching
#                         10000 patients), default 8 MB queue
#   writer_drain_rps      records/s the writer stores from a full queue
#                         (audit_sync = off, queue large enough for all)
#   writer_cpu_rps        the same per CPU second of the writer process
#                         (what the writer would do on an idle machine)
#   emit_rps              records/s a backend queues (serialize + push)
#   verify_rps            verify_audit() records/s over the whole log
#   verify_cpu_rps        the same per CPU second of the verifying backend
#   verify_sql_rps        verify_audit_sql() records/s (last 100000 records)
#   aa_verify_rps         tools/aa_verify records/s on an export_audit() file
#                         of the whole log (wall clock, reading the file)
#   aa_verify_cpu_rps     the same per CPU second (user + system)
# Runs as root; the server runs as the postgres OS user.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
n=${1:-1000000}
. bench/component_server.sh
start_component_server 1GB 1GB aa_bench
rate() { awk -v n="$1" -v t="$2" 'BEGIN { if (t > 0) printf "%d", n / t; else print "inf" }'; }

# 1. writer throughput from a full queue: queue everything (audit_sync off),
#    then wait until the writer has committed it all
bytes0=$(psql_ -c "SELECT pg_total_relation_size('agentauth.audit_record')")
seq0=$(psql_ -c "SELECT coalesce(max(seq), 0) FROM agentauth.audit_log")
c0=$(cpu "$wpid"); t0=$(now)
psql_ -c "SET agentauth.audit_sync = off" -c "SELECT bench_emit($n, 10000)" >/dev/null
t1=$(now)
psql_ -c "SELECT bench_emit(1, 1)" >/dev/null   # audit_sync on: waits for all before it
t2=$(now); c1=$(cpu "$wpid")
psql_ -c "CHECKPOINT" >/dev/null
bytes1=$(psql_ -c "SELECT pg_total_relation_size('agentauth.audit_record')")
entries=$(psql_ -c "SELECT count(*) FROM agentauth.audit_log WHERE seq > $seq0 AND patient IS NOT NULL")
rows=$(psql_ -c "SELECT count(*) FROM agentauth.audit_record WHERE seq > $seq0")
hz=$(getconf CLK_TCK)
emit_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
drain_s=$(awk -v a="$t0" -v b="$t2" 'BEGIN { print b - a }')
wcpu_s=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { print (b - a) / hz }')

# 2. synchronous: a statement of 10000 records waits for its commit
ns=$((n / 5))
t3=$(now)
psql_ -c "SELECT bench_emit($ns, 10000)" >/dev/null
t4=$(now)
sync_s=$(awk -v a="$t3" -v b="$t4" 'BEGIN { print b - a }')

# 3. verification
total=$(psql_ -c "SELECT count(*) FROM agentauth.audit_log")
psql_ -c "SELECT count(*) FROM agentauth.audit_log" >/dev/null   # warm the cache
# the verifying backend's CPU time too: on a busy machine wall time says little
t5=$(now)
vout=$(psql_ <<EOV
SELECT pg_backend_pid() AS pid \gset
\setenv AA_PID :pid
\! awk '{print \$14 + \$15}' /proc/\$AA_PID/stat
SELECT checked || ' ' || ok FROM agentauth.verify_audit();
\! awk '{print \$14 + \$15}' /proc/\$AA_PID/stat
EOV
)
t6=$(now)
vres=$(echo "$vout" | sed -n 2p)
vcpu_s=$(echo "$vout" | awk -v hz="$(getconf CLK_TCK)" 'NR == 1 { a = $1 } NR == 3 { print ($1 - a) / hz }')
sqln=100000
t7=$(now)
sres=$(psql_ -c "SELECT checked || ' ' || ok FROM agentauth.verify_audit_sql((SELECT max(seq) - $sqln + 1 FROM agentauth.audit_log))")
t8=$(now)
verify_s=$(awk -v a="$t5" -v b="$t6" 'BEGIN { print b - a }')
verify_sql_s=$(awk -v a="$t7" -v b="$t8" 'BEGIN { print b - a }')

# 4. the offline verifier on an export of the whole log
exp="$dir/export.jsonl"
psql_ -c "SELECT * FROM agentauth.export_audit()" > "$exp"
t9=$(now)
TIMEFORMAT='%U %S'
acpu=$( { time "$top/tools/aa_verify" -q "$exp" >/dev/null && echo ok >&2 || echo broken >&2; } 2>&1 )
t10=$(now)
ares=$(echo "$acpu" | tail -1)
acpu_s=$(echo "$acpu" | head -1 | awk '{ print $1 + $2 }')
averify_s=$(awk -v a="$t9" -v b="$t10" 'BEGIN { print b - a }')
rm -f "$exp"

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpus=$(nproc) load_at_start=$(cut -d' ' -f1 /proc/loadavg)"
    echo "records=$n"
    echo "emit_rps=$(rate "$n" "$emit_s")"
    echo "writer_drain_rps=$(rate "$n" "$drain_s")"
    echo "writer_cpu_seconds=$wcpu_s"
    echo "writer_cpu_rps=$(rate "$n" "$wcpu_s")"
    echo "writer_sync_rps=$(rate "$ns" "$sync_s")"
    echo "stored_rows=$rows"
    echo "bytes_per_entry=$(rate "$((bytes1 - bytes0))" "$entries")"
    echo "log_records=$total"
    echo "verify_result=\"$vres\""
    echo "verify_rps=$(rate "$total" "$verify_s")"
    echo "verify_cpu_seconds=$vcpu_s"
    echo "verify_cpu_rps=$(rate "$total" "$vcpu_s")"
    echo "verify_sql_result=\"$sres\""
    echo "verify_sql_rps=$(rate "$sqln" "$verify_sql_s")"
    echo "aa_verify_result=$ares"
    echo "aa_verify_rps=$(rate "$total" "$averify_s")"
    echo "aa_verify_cpu_seconds=$acpu_s"
    echo "aa_verify_cpu_rps=$(rate "$total" "$acpu_s")"
    echo "log_size=$(psql_ -c "SELECT pg_size_pretty(pg_total_relation_size('agentauth.audit_record'))" | tr -d ' ')"
} | tee bench/audit_bench.last
