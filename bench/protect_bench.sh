#!/usr/bin/env bash
# Benchmark of protected tables (SPEC 14, first three rows), side by side
# in one run, on the same data:
#
#   plain     the table with no row security at all
#   handrls   the same consent rule written by hand as SQL policies
#             (EXISTS over a consent table; no column scope, no audit)
#   agentauth the table protected by agentauth (column scope, consent,
#             per-statement audit)
#
# Measures (a) one patient's rows by index, one client, audit_sync = off:
# mean latency from pgbench; (b) a scan of all rows (1 M over 10 k patients
# by default) under consent with audit on: best of a few runs.  Prints the
# ratios; never fails on timing.
#
#   bench/protect_bench.sh [rows] [patients]      (as root; uses scripts/dev.sh's
#                                                  private installation)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
ROWS=${1:-1000000}
PATIENTS=${2:-10000}
PORT=${BENCH_PORT:-54393}
ver=$(pg_config --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
root=${PGROOT:-/work/pgroot/$(basename "$top")}
bin=$root/usr/lib/postgresql/$ver/bin
dir=$(mktemp -d /tmp/aa_protect_bench.XXXXXX)
chown postgres: "$dir"
as_pg() { runuser -u postgres -- "$@"; }
psqlb() { as_pg "$bin/psql" -X -q -h "$dir" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 "$@"; }

make -s WERROR=1 -j2 >/dev/null
make -s install DESTDIR="$root" >/dev/null

as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
cat >>"$dir/data/postgresql.conf" <<EOF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$dir'
shared_preload_libraries = 'agentauth'
agentauth.database = 'postgres'
shared_buffers = 256MB
max_parallel_workers_per_gather = 0
EOF
as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1; rm -rf "$dir"' EXIT

echo "loading $ROWS rows over $PATIENTS patients ..."
psqlb <<SQL
CREATE EXTENSION agentauth CASCADE;
CREATE ROLE bench_agent LOGIN;
CREATE TABLE plain (id bigint PRIMARY KEY, patient_id text NOT NULL, code text, value numeric, taken_at timestamptz);
INSERT INTO plain
SELECT i, 'P' || (i % $PATIENTS), '2345-7', (i % 97)::numeric, now() - (i % 1000) * interval '1 hour'
  FROM generate_series(1, $ROWS) i;
CREATE INDEX ON plain (patient_id);
CREATE TABLE handrls (LIKE plain INCLUDING ALL);
INSERT INTO handrls SELECT * FROM plain;
CREATE TABLE protected (LIKE plain INCLUDING ALL);
INSERT INTO protected SELECT * FROM plain;
-- nine patients in ten consent to AI decision support on their labs
CREATE TABLE hand_consent (patient text, purpose text, decision text, PRIMARY KEY (patient, purpose));
INSERT INTO hand_consent SELECT 'P' || p, 'TREATDS', 'permit' FROM generate_series(0, $PATIENTS - 1) p WHERE p % 10 <> 0;
ALTER TABLE handrls ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY consent ON handrls USING (EXISTS (
    SELECT 1 FROM hand_consent c
     WHERE c.patient = handrls.patient_id AND c.purpose = 'TREATDS' AND c.decision = 'permit'));
INSERT INTO agentauth.consent (patient, decision, purposes, data_classes, actions, valid, recorded_by)
SELECT patient, 'permit', '{TREATDS}', '{lab}', '{read}', tstzrange(now(), NULL), 'bench' FROM hand_consent;
SELECT agentauth.protect_table('protected', 'patient_id', '{"id": "non_phi"}', 'lab');
GRANT SELECT ON plain, handrls, protected, hand_consent TO bench_agent;
SELECT agentauth.register_agent('bench-agent', 'bench_agent', 'bench', '{TREATDS}', '{lab:read}', '1 hour');
CREATE TABLE bench_secret (secret text);
INSERT INTO bench_secret SELECT agentauth.issue_token(id, 'TREATDS', '1 hour') FROM agentauth.principals WHERE name = 'bench-agent';
GRANT SELECT ON bench_secret TO bench_agent;
VACUUM ANALYZE;
SQL
secret=$(psqlb -At -c "SELECT secret FROM bench_secret")

# (a) point query, one client, audit_sync = off.
# pgbench cannot begin a session per connection, so each transaction calls
# a function that begins one when the connection has none yet; the plain
# run calls it too, so both pay the same round trip.
psqlb <<SQL
CREATE FUNCTION bench_ensure_session() RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM agentauth.whoami()) THEN
        PERFORM agentauth.begin_session((SELECT secret FROM public.bench_secret));
    END IF;
END \$\$;
GRANT EXECUTE ON FUNCTION bench_ensure_session() TO bench_agent;
SQL
cat >"$dir/point_protected.sql" <<EOF
\set p random(1, $PATIENTS - 1)
SELECT bench_ensure_session();
SELECT count(*), sum(value) FROM protected WHERE patient_id = 'P' || (:p * 10 + 1) % $PATIENTS;
EOF
cat >"$dir/point_plain_s.sql" <<EOF
\set p random(1, $PATIENTS - 1)
SELECT bench_ensure_session();
SELECT count(*), sum(value) FROM plain WHERE patient_id = 'P' || (:p * 10 + 1) % $PATIENTS;
EOF
chown postgres: "$dir"/*.sql
run_pgbench() {
    as_pg "$bin/pgbench" -n -h "$dir" -p "$PORT" -U bench_agent -T "${POINT_SECONDS:-10}" \
        -f "$1" postgres 2>/dev/null | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}
psqlb -c "ALTER SYSTEM SET agentauth.audit_sync = off" -c "SELECT pg_reload_conf()" >/dev/null
echo "point query (1 client, audit_sync = off), mean latency in ms; both scripts also call bench_ensure_session():"
lat_plain=$(run_pgbench "$dir/point_plain_s.sql")
lat_prot=$(run_pgbench "$dir/point_protected.sql")
echo "  plain      $lat_plain"
echo "  agentauth  $lat_prot"

# the same, without the network: one connection runs the query in a loop
psqlb <<'SQL'
CREATE FUNCTION bench_point(tbl text, n int) RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; c bigint; s numeric; np int;
BEGIN
    SELECT count(*) + 1 INTO np FROM public.hand_consent;
    t0 := clock_timestamp();
    FOR i IN 1 .. n LOOP
        EXECUTE format('SELECT count(*), sum(value) FROM %I WHERE patient_id = $1', tbl)
           INTO c, s USING 'P' || ((i * 7919) % np);
    END LOOP;
    RETURN round(extract(epoch FROM clock_timestamp() - t0) * 1000000 / n, 1);
END $$;
GRANT EXECUTE ON FUNCTION bench_point(text, int) TO bench_agent;
SQL
loop() {
    { printf "SELECT agentauth.begin_session((SELECT secret FROM public.bench_secret)) IS NOT NULL;\n"
      printf "SELECT bench_point('%s', %d);\n" "$1" "${LOOP_N:-5000}"; } |
        as_pg "$bin/psql" -X -q -At -h "$dir" -p "$PORT" -U bench_agent -d postgres | tail -1
}
echo "point query in a server-side loop (no network), microseconds per query (after a warm-up):"
loop plain >/dev/null; loop protected >/dev/null
loop_plain=$(loop plain); loop_prot=$(loop protected)
echo "  plain      $loop_plain"
echo "  agentauth  $loop_prot"
psqlb -c "ALTER SYSTEM RESET agentauth.audit_sync" -c "SELECT pg_reload_conf()" >/dev/null

# (b) full scan under consent, audit on: the tables alternate in one
# connection (the machine's load changes less between neighbours), after a
# warm-up of each; the minimum of each counts.
scans=${SCANS:-5}
{ printf "SELECT agentauth.begin_session((SELECT secret FROM public.bench_secret)) IS NOT NULL;\n"
  printf "SELECT count(*), sum(value) FROM %s;\n" plain handrls protected
  printf '\\timing on\n'
  for i in $(seq 1 "$scans"); do
      printf "SELECT count(*), sum(value) FROM %s;\n" plain handrls protected
  done; } > "$dir/scan.sql"
chown postgres: "$dir/scan.sql"
as_pg "$bin/psql" -X -q -h "$dir" -p "$PORT" -U bench_agent -d postgres -f "$dir/scan.sql" 2>&1 |
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' > "$dir/scan.times"
min_of() { awk -v k="$1" 'NR % 3 == k % 3 { if (m == "" || $1 < m) m = $1 } END { print m }' "$dir/scan.times"; }
s_plain=$(min_of 1); s_hand=$(min_of 2); s_prot=$(min_of 3)
echo "full scan of $ROWS rows over $PATIENTS patients (audit_sync = on), minimum of $scans, ms:"
echo "  plain      $s_plain"
echo "  handrls    $s_hand"
echo "  agentauth  $s_prot"
records=$(psqlb -At -c "SELECT count(*) FROM agentauth.audit_log WHERE relation = 'public.protected'")
echo "  (agentauth audit records written for the scans and point queries: $records)"

echo
echo "ratios (SPEC 14 targets in brackets):"
awk -v a="$lat_prot" -v b="$lat_plain" 'BEGIN{printf "  point query, agentauth / no RLS        %.2fx  [<= 1.3x]\n", a/b}'
awk -v a="$loop_prot" -v b="$loop_plain" 'BEGIN{printf "  point query in a loop, agentauth / none %.2fx\n", a/b}'
awk -v a="$s_prot" -v b="$s_plain" 'BEGIN{printf "  full scan, agentauth / no RLS          %.2fx  [<= 2x]\n", a/b}'
awk -v a="$s_prot" -v b="$s_hand" 'BEGIN{printf "  full scan, agentauth / hand-written RLS %.2fx  [<= 1.2x]\n", a/b}'
