#!/usr/bin/env bash
# The regression and isolation suites once more, against a build of the
# extension with AddressSanitizer and UndefinedBehaviorSanitizer.  The build
# goes into a private copy of the PostgreSQL installation under a temporary
# directory (the host's installation is not touched), and the test servers
# run with libasan preloaded.  Any sanitizer report fails: the instrumented
# code aborts on the first error, and the report files are checked too.
# Run by scripts/test.sh as the postgres OS user (or any non-root user).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
pg_config=${PG_CONFIG:-pg_config}
work=$(mktemp -d "${TMPDIR:-/tmp}/agentauth-sanitize.XXXXXX")
trap 'rm -rf "$work"' EXIT

# a private PostgreSQL: binaries, share and headers keep their relative
# layout, so the copy finds its own share directory and PGXS
for d in "$($pg_config --bindir)/.." "$($pg_config --sharedir)" "$($pg_config --includedir-server)/../.."; do
    d=$(cd "$d" && pwd)
    mkdir -p "$work/pg$(dirname "$d")"
    cp -a "$d" "$work/pg$(dirname "$d")/"
done
export PG_CONFIG="$work/pg$(cd "$($pg_config --bindir)" && pwd)/pg_config"

# the source, without this checkout's build products
mkdir "$work/src"
(cd "$top" && tar cf - --exclude=./tmp_check --exclude=./tmp_check_iso --exclude=./results \
    --exclude=./output_iso --exclude='*.o' --exclude='*.so' --exclude='*.bc' .) | (cd "$work/src" && tar xf -)
cd "$work/src"
flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
if ! make -s clean >/dev/null 2>&1 || ! make -s -j2 PROFILE="$flags" >"$work/build.log" 2>&1 \
        || ! make -s install >>"$work/build.log" 2>&1; then
    cat "$work/build.log"
    echo "sanitizer build ... FAILED"
    exit 1
fi

# Preloading libasan into PostgreSQL's stock binaries trips over glibc's
# locale locks: p11-kit's constructor (pulled in through libldap and
# gnutls) leaves __libc_setlocale_lock and the message-catalog lock
# corrupted, and the first setlocale() or bindtextdomain() then waits
# forever, before any of our code runs.  The suites need neither PKCS#11
# tokens nor translated messages (lc_messages = C), so they run with two
# stand-ins: a libp11-kit whose functions do nothing, found first through
# LD_LIBRARY_PATH, and a preloaded library that binds no message catalog.
mkdir "$work/stub"
p11=$(ldconfig -p | awk '/libp11-kit\.so\.0 /{print $NF; exit}')
if [ -n "$p11" ]; then
    nm -D --defined-only "$p11" | awk '$2 == "T" { sub(/@.*/, "", $3); print "void *" $3 "(void) { return 0; }" }' >"$work/stub/p11.c"
    echo 'LIBP11_KIT_1.0 { global: *; };' >"$work/stub/p11.map"
    gcc -shared -fPIC -o "$work/stub/libp11-kit.so.0" "$work/stub/p11.c" \
        -Wl,--version-script="$work/stub/p11.map" -Wl,-soname,libp11-kit.so.0 \
        || { echo "sanitizer build ... FAILED"; exit 1; }
fi
cat >"$work/stub/nonls.c" <<'SHIM'
char *bindtextdomain(const char *domain, const char *dir) { (void) domain; return (char *) dir; }
char *bind_textdomain_codeset(const char *domain, const char *codeset) { (void) domain; return (char *) codeset; }
char *textdomain(const char *domain) { return (char *) domain; }
SHIM
gcc -shared -fPIC -O2 -o "$work/stub/nonls.so" "$work/stub/nonls.c" || { echo "sanitizer build ... FAILED"; exit 1; }

mkdir "$work/reports"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $work/stub/nonls.so"
export LD_LIBRARY_PATH="$work/stub${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:disable_coredump=1:log_path=$work/reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$work/reports/ubsan"
status=0
echo "=== sanitizer: check-regress"
make -s check-regress || status=1
echo "=== sanitizer: check-isolation"
make -s check-isolation || status=1
unset LD_PRELOAD LD_LIBRARY_PATH
for f in regression.diffs output_iso/regression.diffs; do
    [ -f "$f" ] && { echo "--- sanitizer $f"; cat "$f"; }
done
# reports go to their own files, or to the server logs when a process
# could not open them
found=$(grep -lE "ERROR: AddressSanitizer|runtime error:" "$work"/reports/* \
        tmp_check/log/* output_iso/log/* log/* 2>/dev/null)
if [ -n "$found" ]; then
    echo "--- sanitizer reports"
    grep -hE -A30 "ERROR: AddressSanitizer|runtime error:" $found | head -200
    echo "sanitizer reports ... FAILED"
    status=1
else
    echo "sanitizer reports ... ok"
fi
[ "$status" -eq 0 ] || echo "sanitizer suites ... FAILED"
exit $status
