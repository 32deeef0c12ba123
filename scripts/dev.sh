#!/usr/bin/env bash
# Developer loop in a private copy of the PostgreSQL installation, so that
# several work trees can build, install and test at the same time without
# overwriting each other's agentauth.so.
#
#   scripts/dev.sh [regress|isolation|tap|all] [make variables...]
#   e.g. scripts/dev.sh regress REGRESS="00_install 10_registry"
#        scripts/dev.sh tap PROVE_TESTS=t/002_audit.pl
#
# Runs as root; the servers and tests run as the postgres OS user.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
name=$(basename "$top")
root=${PGROOT:-/var/tmp/agentauth-pgroot/$name}
ver=$(pg_config --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
if [ ! -x "$root/usr/lib/postgresql/$ver/bin/postgres" ]; then
    mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
    cp -a "/usr/lib/postgresql/$ver" "$root/usr/lib/postgresql/"
    cp -a "/usr/share/postgresql/$ver" "$root/usr/share/postgresql/"
fi
what=${1:-all}; shift || true
make -s WERROR=1 -j2
make -s install DESTDIR="$root" >/dev/null
chown -R postgres: "$top"
bindir="$root/usr/lib/postgresql/$ver/bin"
rc=0
case "$what" in
    regress)   runuser -u postgres -- make -s check-regress bindir="$bindir" "$@" || rc=$? ;;
    isolation) runuser -u postgres -- make -s check-isolation bindir="$bindir" "$@" || rc=$? ;;
    tap)       runuser -u postgres -- make -s check-tap bindir="$bindir" PROVE_FLAGS=--verbose "$@" || rc=$? ;;
    all)
        for s in check-regress check-isolation check-tap; do
            runuser -u postgres -- make -s "$s" bindir="$bindir" PROVE_FLAGS=--verbose "$@" || rc=1
        done ;;
    *) echo "usage: $0 [regress|isolation|tap|all] [make variables...]" >&2; exit 2 ;;
esac
exit $rc
