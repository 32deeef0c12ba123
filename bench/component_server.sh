# Sourced by the component benchmarks (audit_bench.sh, monitor_bench.sh):
# builds and installs the extension and bench/aa_bench_driver into the
# private PostgreSQL copy of scripts/dev.sh, and starts a throw-away server
# with a large audit queue.  Sets: bin dir port wpid, and the helpers
# as_pg psql_ cpu now.
#
#   start_component_server SHARED_BUFFERS QUEUE_SIZE TMP_PREFIX
start_component_server() {
    local sb=$1 queue=$2 prefix=$3 name root ver
    name=$(basename "$top")
    root=${PGROOT:-/var/tmp/agentauth-pgroot/$name}
    ver=$(pg_config --version | sed 's/[^0-9]*\([0-9]*\).*/\1/')
    if [ ! -x "$root/usr/lib/postgresql/$ver/bin/postgres" ]; then
        mkdir -p "$root/usr/lib/postgresql" "$root/usr/share/postgresql"
        cp -a "/usr/lib/postgresql/$ver" "$root/usr/lib/postgresql/"
        cp -a "/usr/share/postgresql/$ver" "$root/usr/share/postgresql/"
    fi
    bin="$root/usr/lib/postgresql/$ver/bin"
    make -s -j2 >/dev/null
    make -s install DESTDIR="$root" >/dev/null
    make -s -C bench >/dev/null
    make -s -C bench install DESTDIR="$root" >/dev/null

    dir=$(mktemp -d "/tmp/$prefix.XXXXXX")
    chown postgres "$dir"
    port=$((20000 + RANDOM % 10000))
    trap cleanup EXIT

    as_pg "$bin/initdb" -D "$dir/data" -A trust >/dev/null
    cat >> "$dir/data/postgresql.conf" <<EOC
shared_preload_libraries = 'agentauth'
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
shared_buffers = $sb
max_wal_size = 8GB
min_wal_size = 2GB
checkpoint_timeout = 30min
agentauth.audit_queue_size = $queue
agentauth.audit_wait_timeout = 10min
EOC
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
    psql_ -c "CREATE EXTENSION agentauth CASCADE" 2>/dev/null
    psql_ -c "CREATE FUNCTION bench_emit(bigint, bigint) RETURNS bigint LANGUAGE c AS '\$libdir/aa_bench_driver', 'aa_bench_emit'"
    for _ in $(seq 1 50); do
        [ "$(psql_ -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'")" = 1 ] && break
        sleep 0.2
    done
    wpid=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'agentauth audit writer'")
}
as_pg() { runuser -u postgres -- "$@"; }
psql_() { as_pg "$bin/psql" -X -q -At -h "$dir" -p "$port" -d postgres "$@"; }
cleanup() { as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now() { date +%s.%N; }
