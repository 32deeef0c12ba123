#!/usr/bin/env bash
# Installs what building, testing and the demo need, from Debian's packages.
# Does nothing when everything is already there.
#
# It respects the host: it starts, stops and enables no service.  Packages
# are installed with service start-up refused (a policy-rc.d of our own,
# only while apt-get runs, and only when the host has none), so installing
# PostgreSQL starts no cluster.  pgbouncer, which the pooler tests run as a
# program of their own, is not installed as a package (that would register
# its service): its .deb is unpacked into a cache directory instead, and
# `scripts/deps.sh --pgbouncer` prints the binary's path.
set -eu
pkgs="make gcc binutils postgresql-15 postgresql-server-dev-15 postgresql-contrib libipc-run-perl postgresql-15-pgaudit libevent-2.1-7 libc-ares2 python3 python3-jsonschema openssl"
cache=${AGENTAUTH_DEPS_CACHE:-/var/tmp/agentauth-deps}

pgbouncer_path() {
    if command -v pgbouncer >/dev/null 2>&1; then
        command -v pgbouncer
    elif [ -x /usr/sbin/pgbouncer ]; then
        echo /usr/sbin/pgbouncer
    else
        echo "$cache/pgbouncer/usr/sbin/pgbouncer"
    fi
}
if [ "${1:-}" = "--pgbouncer" ]; then
    pgbouncer_path
    exit 0
fi

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
need_pgbouncer=false
[ -x "$(pgbouncer_path)" ] || need_pgbouncer=true

if [ -n "$missing" ] || $need_pgbouncer; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing packages:$missing$($need_pgbouncer && echo ' (and pgbouncer)') (run as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
fi
if [ -n "$missing" ]; then
    policy=/usr/sbin/policy-rc.d
    ours=false
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# agentauth scripts/deps.sh: no service starts while it installs\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        ours=true
    fi
    rc=0
    apt-get install -y --no-install-recommends $missing || rc=$?
    $ours && rm -f "$policy"
    [ "$rc" -eq 0 ] || exit "$rc"
fi
if $need_pgbouncer; then
    rm -rf "$cache/pgbouncer" "$cache/deb"
    mkdir -p "$cache/deb"
    (cd "$cache/deb" && apt-get download pgbouncer)
    dpkg-deb -x "$cache"/deb/pgbouncer_*.deb "$cache/pgbouncer"
    chmod -R a+rX "$cache"
    [ -x "$(pgbouncer_path)" ] || { echo "could not unpack pgbouncer" >&2; exit 1; }
fi
exit 0
