#!/usr/bin/env bash
# Runs every test of agentauth: regression, isolation and TAP suites, each on
# a temporary server of its own with the extension preloaded, then the
# regression and isolation suites again under the sanitizers.  As root it
# installs the dependencies and the extension, and runs the servers and
# suites as the postgres OS user.  Ends with "N passed, N failed".
#
# It respects the host and the checkout: it builds and tests in a copy of
# the source in a temporary directory owned by the test user (the checkout
# is only read), starts only its own servers (and stops them), and removes
# the copy at the end (KEEP=1 keeps it).  A bystander cluster, started
# before the suites, must still be running and unchanged after them.
set -u
cd "$(dirname "$0")/.."
top=$(pwd)
fail() { echo "$*"; echo "0 passed, 1 failed"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    bash scripts/deps.sh || fail "installing dependencies failed"
    as_pg() { runuser -u postgres -- "$@"; }
    owner=postgres
else
    as_pg() { "$@"; }
    owner=$(id -un)
fi
export PGBOUNCER=$(bash scripts/deps.sh --pgbouncer)

work=$(mktemp -d "${TMPDIR:-/tmp}/agentauth-test.XXXXXX")
cleanup() {
    [ -n "${bystander:-}" ] && as_pg "$bindir/pg_ctl" -D "$bystander" -m fast -w stop >/dev/null 2>&1
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
chmod 755 "$work"
src=$work/src
mkdir "$src"
# the tracked files and the untracked ones git does not ignore
if git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
    (git -C "$top" ls-files -z --cached --others --exclude-standard | xargs -0 tar -C "$top" -cf - 2>/dev/null) | tar -C "$src" -xf -
else
    tar -C "$top" --exclude=./tmp_check --exclude=./results -cf - . | tar -C "$src" -xf -
fi
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
cd "$src"
log=$work/test.log
: >"$log"

as_pg make -s clean >/dev/null 2>&1
as_pg make WERROR=1 -j2 >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "build failed"; }
make -s install >>"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "install failed"; }

# the bystander: another cluster on this machine, which nothing of ours may
# stop, restart or change
bindir=$(pg_config --bindir)
bystander=$work/bystander
by_port=$(( 20000 + $$ % 20000 ))
as_pg "$bindir/initdb" -D "$bystander" -A trust >/dev/null 2>&1 || fail "bystander initdb failed"
as_pg "$bindir/pg_ctl" -D "$bystander" -o "-p $by_port -k $work -c listen_addresses=''" \
    -l "$work/bystander.log" -w start >/dev/null || fail "bystander start failed"
by_psql() { as_pg "$bindir/psql" -X -At -h "$work" -p "$by_port" -d postgres "$@"; }
by_psql -c "CREATE TABLE bystander AS SELECT 42 AS answer" >/dev/null
by_pid=$(head -1 "$bystander/postmaster.pid")

status=0
for suite in check-regress check-isolation check-tap; do
    echo "=== $suite" | tee -a "$log"
    as_pg env PGBOUNCER="$PGBOUNCER" make -s "$suite" PROVE_FLAGS=--verbose 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
# the regression and isolation suites again, under AddressSanitizer and
# UndefinedBehaviorSanitizer (a private build and installation)
echo "=== sanitizer" | tee -a "$log"
as_pg bash scripts/sanitize.sh 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "=== bystander" | tee -a "$log"
if [ "$(head -1 "$bystander/postmaster.pid" 2>/dev/null)" = "$by_pid" ] &&
   [ "$(by_psql -c 'SELECT answer FROM bystander' 2>/dev/null)" = 42 ]; then
    echo "bystander cluster still up and unchanged ... ok" | tee -a "$log"
else
    echo "bystander cluster still up and unchanged ... FAILED" | tee -a "$log"
fi

# Count results.  pg_regress/isolation (15: "test x ... ok", 16+: "ok N - x")
# and prove ("ok N - name" lines with -v).
passed=$(grep -Ec '(\.\.\. ok|^ok [0-9]+|^[[:space:]]*ok [0-9]+ )' "$log")
failed=$(grep -Ec '(\.\.\. FAILED|\.\.\. failed|^not ok|^[[:space:]]*not ok |^Dubious|Parse errors)' "$log")
for f in regression.diffs output_iso/regression.diffs; do
    [ -f "$f" ] && { echo "--- $f"; cat "$f"; }
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
