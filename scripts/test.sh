#!/usr/bin/env bash
# Runs every test of agentauth: regression, isolation and TAP suites, each on
# a temporary server of its own with the extension preloaded.  As root it
# installs the dependencies, builds with warnings as errors, installs, and
# runs the suites as the postgres OS user.  Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "$(id -u)" -eq 0 ]; then
    bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }
fi

make clean >/dev/null 2>&1
if ! make WERROR=1 -j2 >build.log 2>&1; then
    cat build.log; echo "0 passed, 1 failed"; exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    make install >>build.log 2>&1 || { cat build.log; echo "0 passed, 1 failed"; exit 1; }
    chown -R postgres: "$top"
    as_pg() { runuser -u postgres -- "$@"; }
else
    make install >>build.log 2>&1 || { cat build.log; echo "0 passed, 1 failed"; exit 1; }
    as_pg() { "$@"; }
fi

log=$top/test.log
: >"$log"
status=0
for suite in check-regress check-isolation check-tap; do
    echo "=== $suite" | tee -a "$log"
    as_pg make -s "$suite" PROVE_FLAGS=--verbose 2>&1 | tee -a "$log" || status=1
done
# the regression and isolation suites again, under AddressSanitizer and
# UndefinedBehaviorSanitizer (a private build and installation)
echo "=== sanitizer" | tee -a "$log"
as_pg bash scripts/sanitize.sh 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

# Count results.  pg_regress/isolation (15: "test x ... ok", 16+: "ok N - x")
# and prove ("ok N - name" lines with -v).
passed=$(grep -Ec '(\.\.\. ok|^ok [0-9]+|^[[:space:]]*ok [0-9]+ )' "$log")
failed=$(grep -Ec '(\.\.\. FAILED|\.\.\. failed|^not ok|^[[:space:]]*not ok |^Dubious|Parse errors)' "$log")
for d in . ; do
    [ -f regression.diffs ] && { echo "--- regression.diffs"; cat regression.diffs; }
    [ -f output_iso/regression.diffs ] && { echo "--- output_iso/regression.diffs"; cat output_iso/regression.diffs; }
done
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
