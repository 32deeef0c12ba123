#!/usr/bin/env bash
# Consents in bulk (issue 17 item 3): consents per second of a site's first
# load, in one transaction each, side by side in one run:
#   record_consent   N calls of agentauth.record_consent in one transaction
#   bundle           one agentauth.import_fhir_consent_bundle call with a
#                    Bundle of N R4 Consents (built in the server first, not
#                    timed)
# Each time runs to the COMMIT's return, which waits until every
# consent_recorded record is in the audit log (spilled records moved); the
# COMMIT of the first load is also timed alone (the move).
# Never fails on timing.
#   PG_CONFIG=... bash bench/consent_bulk.sh     (as root; server as postgres)
# N (100000)
set -eu
cd "$(dirname "$0")/.."
W=${W:-/tmp/aa_consent_bench}
N=${N:-100000}
PORT=${PORT:-54342}
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
EOC
as_pg "$BIN/pg_ctl" -D "$W/data" -l "$W/server.log" -w start >/dev/null
as_pg "$BIN/createdb" bench
as_pg $PSQL -c 'CREATE EXTENSION agentauth CASCADE' >/dev/null 2>&1
ms() { date +%s%3N; }

t0=$(ms)
# the COMMIT's own time: the spilled records moved into the log
commit_ms=$(as_pg $PSQL -c '\timing on' -c "BEGIN" -c "SELECT count(agentauth.record_consent('R' || i, 'permit', '{TREAT}')) FROM generate_series(1, $N) i" -c "COMMIT" |
    awk '/^Time:/ { t = $2 } END { printf "%d", t }')
t1=$(ms)
rc_ms=$((t1 - t0))

as_pg $PSQL -c "CREATE TABLE bundle AS SELECT jsonb_build_object('resourceType', 'Bundle', 'type', 'collection', 'entry',
    jsonb_agg(jsonb_build_object('resource', jsonb_build_object(
      'resourceType', 'Consent', 'id', 'b' || i, 'status', 'active',
      'scope', '{\"coding\": [{\"system\": \"http://terminology.hl7.org/CodeSystem/consentscope\", \"code\": \"patient-privacy\"}]}'::jsonb,
      'patient', jsonb_build_object('reference', 'Patient/B' || i),
      'policyRule', '{\"coding\": [{\"system\": \"http://terminology.hl7.org/CodeSystem/v3-ActCode\", \"code\": \"OPTIN\"}]}'::jsonb,
      'provision', '{\"purpose\": [{\"system\": \"http://terminology.hl7.org/CodeSystem/v3-ActReason\", \"code\": \"TREAT\"}]}'::jsonb)))) AS b
  FROM generate_series(1, $N) i" >/dev/null
t0=$(ms)
as_pg $PSQL -c "SELECT count(*) FROM agentauth.import_fhir_consent_bundle((SELECT b FROM bundle))" >/dev/null
t1=$(ms)
b_ms=$((t1 - t0))

recs=$(as_pg $PSQL -At -c "SELECT count(*) FROM agentauth.audit_log WHERE event = 'consent_recorded'")
spill=$(as_pg $PSQL -At -c "SELECT count(*) FROM agentauth._audit_spill")
echo "consents per load: $N; consent_recorded records in the log: $recs; left in the spill table: $spill"
awk -v n="$N" -v a="$rc_ms" -v b="$b_ms" -v c="$commit_ms" 'BEGIN {
    printf "record_consent x %d, one transaction: %7.1f s  %7.0f consents/s\n", n, a / 1000, n * 1000 / a
    printf "  of which its COMMIT (the spilled records moved into the log): %5.1f s  %7.0f records/s\n", c / 1000, n * 1000 / c
    printf "FHIR Bundle of %d Consents, one call: %7.1f s  %7.0f consents/s\n", n, b / 1000, n * 1000 / b }'
