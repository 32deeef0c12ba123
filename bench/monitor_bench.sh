#!/usr/bin/env bash
# Monitoring benchmark (SPEC 15, issue 8): the audit writer's throughput
# with the seeded alert rules against no rules at all, and with a rule that
# counts every record.  Not part of the test suite; prints name=value lines
# and keeps them in bench/monitor_bench.last.
#
#   bench/monitor_bench.sh [records] [rounds]     (default 200000 6)
#
# Like bench/audit_bench.sh: builds and installs the extension and the
# driver (bench/aa_bench_driver.c) into the private PostgreSQL copy of
# scripts/dev.sh, starts a throw-away server, and per round and
# configuration queues `records` access records with audit_sync off, then
# waits until the writer has committed them all.  Configurations, run
# alternately:
#   none      agentauth.alert_rule emptied
#   seeded    the seeded rules (denied, session_denied): each record costs
#             the writer one compare of its event with the few that matter
#   counting  a rule on access itself (threshold 10000 per minute): every
#             record goes through a sliding window; an alert per 10000
# Reported per configuration: the writer's CPU seconds per million records
# (median of the rounds: what the work costs the writer) and records/s
# (median wall clock of the rounds: the machine's other load included), and
# the ratios seeded/none (the issue's target: within 10 %).  The order of
# the configurations rotates from round to round.
# Runs as root; the server runs as the postgres OS user.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
n=${1:-200000}
rounds=${2:-6}
. bench/component_server.sh
start_component_server 512MB 512MB aa_monbench
psql_ -c "CREATE TABLE bench_seeded AS SELECT * FROM agentauth.alert_rule"
hz=$(getconf CLK_TCK)

configure() {
    case $1 in
        none)     psql_ -c "DELETE FROM agentauth.alert_rule" ;;
        seeded)   psql_ -c "DELETE FROM agentauth.alert_rule" \
                        -c "INSERT INTO agentauth.alert_rule SELECT * FROM bench_seeded" ;;
        counting) psql_ -c "DELETE FROM agentauth.alert_rule" \
                        -c "INSERT INTO agentauth.alert_rule SELECT * FROM bench_seeded" \
                        -c "INSERT INTO agentauth.alert_rule (event, threshold, per) VALUES ('access', 10000, '1 minute')" ;;
    esac >/dev/null
    # let the writer reload them (the change's own audit records go first)
    psql_ -c "SELECT bench_emit(1, 1)" >/dev/null
    sleep 0.5
}

# one round: queue n records, wait for all; prints "cpu_seconds wall_seconds"
round() {
    local c0 c1 t0 t1
    c0=$(cpu "$wpid"); t0=$(now)
    psql_ -c "SET agentauth.audit_sync = off" -c "SELECT bench_emit($n, 10000)" >/dev/null
    psql_ -c "SELECT bench_emit(1, 1)" >/dev/null   # audit_sync on: waits for all before it
    t1=$(now); c1=$(cpu "$wpid")
    awk -v a="$c0" -v b="$c1" -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.3f %.3f\n", (b - a) / hz, t1 - t0 }'
}

declare -A cpus walls
configs="none seeded counting"
psql_ -c "SET agentauth.audit_sync = off" -c "SELECT bench_emit($n, 10000)" >/dev/null   # warm-up
log=""
for r in $(seq 1 "$rounds"); do
    # rotate the order, so that no configuration always meets the smallest
    # log (the writer's cost per record grows with the log's indexes)
    case $((r % 3)) in
        1) order="none seeded counting" ;;
        2) order="seeded counting none" ;;
        0) order="counting none seeded" ;;
    esac
    for c in $order; do
        configure "$c"
        read -r cs ws < <(round)
        log+="round=$r config=$c writer_cpu_s=$cs wall_s=$ws"$'\n'
        echo "round=$r config=$c writer_cpu_s=$cs wall_s=$ws" >&2
        cpus[$c]+="$cs "
        walls[$c]+="$ws "
    done
done
# the medians of the writer's CPU seconds (what the work costs it) and of
# the wall clock (what it took, with the machine's other load)
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A best_cpu best_wall
for c in $configs; do
    best_cpu[$c]=$(median "${cpus[$c]}")
    best_wall[$c]=$(median "${walls[$c]}")
done
alerts=$(psql_ -c "SELECT count(*) FROM agentauth.alerts")

{
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpus=$(nproc) load_at_end=$(cut -d' ' -f1 /proc/loadavg)"
    echo "records_per_round=$n rounds=$rounds"
    printf '%s' "$log"
    for c in $configs; do
        awk -v c="$c" -v cs="${best_cpu[$c]}" -v ws="${best_wall[$c]}" -v n="$n" 'BEGIN {
            printf "%s_writer_cpu_s_per_M=%.2f %s_writer_rps=%d\n", c, cs * 1000000 / n, c, n / ws }'
    done
    awk -v a="${best_cpu[seeded]}" -v b="${best_cpu[none]}" 'BEGIN { printf "seeded_vs_none_cpu_ratio=%.3f\n", a / b }'
    awk -v a="${best_wall[none]}" -v b="${best_wall[seeded]}" 'BEGIN { printf "seeded_vs_none_rps_ratio=%.3f\n", a / b }'
    awk -v a="${best_cpu[counting]}" -v b="${best_cpu[none]}" 'BEGIN { printf "counting_vs_none_cpu_ratio=%.3f\n", a / b }'
    echo "alerts_raised=$alerts"
} | tee bench/monitor_bench.last
