#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian's packages.
# Does nothing when everything is already there.
set -eu
pkgs="make gcc postgresql-15 postgresql-server-dev-15 postgresql-contrib libipc-run-perl postgresql-15-pgaudit pgbouncer"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends $missing
fi
# Debian starts a cluster when the server package is installed; our tests
# and demo run their own servers, so stop it (and keep the port free).
if [ "$(id -u)" -eq 0 ] && command -v pg_ctlcluster >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r ver name port status rest; do
        [ "$status" = online ] && pg_ctlcluster "$ver" "$name" stop || true
    done
fi
# the pgbouncer package may start its own service; the pooler test runs its own
if [ "$(id -u)" -eq 0 ] && [ -f /run/postgresql/pgbouncer.pid ]; then
    kill "$(cat /run/postgresql/pgbouncer.pid)" 2>/dev/null || true
fi
exit 0
