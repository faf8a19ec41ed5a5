#!/usr/bin/env bash
# The shared PostgreSQL hit store's figures (benches/hitstore.rs): shipping from three spools,
# catch-up after a 10-minute outage, and reads over 100 million records. Makes a throwaway
# PostgreSQL cluster (Debian's server, as the `postgres` user when run as root) in
# target/hitstore-bench/pg on a loopback port, with the server's default durability (fsync on),
# runs the benchmark against it, and stops it.
#
# The `load` section is the same shipping under DNS load: the real server (one worker on CPU 0,
# `[hitlog] backend = "postgres"`) offered LOAD_RATE distinct blocked names per second by
# examples/bench_client on CPU 1 for DURATION seconds; PostgreSQL and the shipper share the
# machine with them. It prints answered queries/s, hits shipped per second during the load, and
# how long the spool took to drain after it.
#
#   bash benches/hitstore.sh   # SECTIONS="ship catchup read load" SHIP_RECORDS=1000000
#                              # READ_RECORDS=100000000 LOAD_RATE=20000 DURATION=30
#                              # PGPORT=25432 KEEP=0 (1: keep the cluster and its 100 M records)
#
# The read section needs about 40 GB of disk and half an hour the first time. Loopback ports
# PGPORT, 5399, 5400 and 5402 only; every load is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PGPORT=${PGPORT:-25432}
WORK=$PWD/target/hitstore-bench
DATA=$WORK/pg
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$BIN/initdb" ] || { echo "needs PostgreSQL (apt-get install postgresql)" >&2; exit 1; }
mkdir -p "$WORK"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ ! -d "$DATA" ]; then
    mkdir -p "$DATA"
    [ "$(id -u)" = 0 ] && chown postgres "$DATA" "$WORK"
    echo "bench-password" > "$WORK/pw"
    [ "$(id -u)" = 0 ] && chown postgres "$WORK/pw"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$WORK/pw" -E UTF8 --no-instructions >/dev/null
    cat >> "$DATA/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
shared_buffers = 2GB
work_mem = 64MB
maintenance_work_mem = 1GB
max_wal_size = 8GB
CONF
fi
as_pg "$BIN/pg_ctl" -D "$DATA" -l "$WORK/pg.log" -w start >/dev/null
trap '[ "${KEEP:-0}" = 1 ] || as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null' EXIT
psql_pg() { as_pg psql -h "$WORK" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
if [ "$(psql_pg -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = 'schooldns'")" != 1 ]; then
    psql_pg -d postgres -c "CREATE ROLE schooldns LOGIN PASSWORD 'bench-password'"
    psql_pg -d postgres -c "CREATE DATABASE schooldns OWNER schooldns"
fi
echo "bench-password" > "$WORK/schooldns.password"
SECTIONS=${SECTIONS:-ship catchup read load}
URL="postgres://schooldns@127.0.0.1:$PGPORT/schooldns"
RUST_SECTIONS=$(tr ' ' '\n' <<<"$SECTIONS" | { grep -v '^load$' || true; } | tr '\n' ' ')
if [ -n "${RUST_SECTIONS// /}" ]; then
    SECTIONS="$RUST_SECTIONS" SCHOOLDNS_PG_URL="$URL" \
    SCHOOLDNS_PG_PASSWORD_FILE="$WORK/schooldns.password" \
        cargo bench --locked --bench hitstore
fi
[[ " $SECTIONS " == *" load "* ]] || exit 0

# --- load: shipping while the server answers DNS
. benches/common.sh
LOAD=target/load
LOAD_RATE=${LOAD_RATE:-20000}
DURATION=${DURATION:-30}
mkdir -p "$LOAD"
cargo build --release --quiet --bin schooldns --example bench_upstream --example bench_client
[ -f "$LOAD/burst.txt" ] || python3 benches/workload.py "$LOAD" 1000000
bench_config "$WORK/load.toml" "$LOAD" true "$WORK/load-spool"
sed -i "s|^\[hitlog\]|[hitlog]\nbackend = \"postgres\"\nurl = \"$URL\"\npassword_file = \"$WORK/schooldns.password\"\ninstance = \"load\"|" "$WORK/load.toml"
rm -rf "$WORK/load-spool"
psql_pg -d schooldns -c "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION schooldns;"
PIDS=()
cleanup_load() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'cleanup_load; [ "${KEEP:-0}" = 1 ] || as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null' EXIT
taskset -c 1 target/release/examples/bench_upstream 127.0.0.1:5399 2>/dev/null &
PIDS+=($!)
# In a district PostgreSQL has a host of its own; here it is kept off the query worker's core
# (PG_CPUS, default 1: the load generator's), and its new connections inherit that.
for pid in $(pgrep -u postgres -f "$DATA" ; pgrep -u postgres -P "$(head -1 "$DATA/postmaster.pid")"); do
    taskset -apc "${PG_CPUS:-1}" "$pid" >/dev/null 2>&1 || true
done
target/release/schooldns --log warn serve --config "$WORK/load.toml" --threads 1 --cpus 0 &
SPID=$!
PIDS+=($SPID)
wait_for 5400
metric() { curl -s http://127.0.0.1:5402/metrics | awk -v m="$1" '$1 == m {print $2}'; }
for _ in $(seq 1 100); do [ "$(metric schooldns_hitlog_postgres_up)" = 1 ] && break; sleep 0.2; done
shipped0=$(metric schooldns_hitlog_shipped_hits_total)
start=$(date +%s.%N)
taskset -c 1 target/release/examples/bench_client --server 127.0.0.1:5400 \
    --names "$LOAD/burst.txt" --rate "$LOAD_RATE" --duration "$DURATION" >"$WORK/load.out" 2>/dev/null
loaded=$(date +%s.%N)
shipped1=$(metric schooldns_hitlog_shipped_hits_total)
deadline=$(( $(date +%s) + 600 ))
while [ "$(metric schooldns_hitlog_pending)" != 0 ] || [ "$(metric schooldns_hitlog_spool_backlog)" != 0 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "the spool did not drain in 10 minutes" >&2; break; }
    sleep 0.2
done
drained=$(date +%s.%N)

shipped2=$(metric schooldns_hitlog_shipped_hits_total)
received=$(metric schooldns_hitlog_hits_total)
in_pg=$(psql_pg -d schooldns -c "SELECT count(*) || ' records, ' || coalesce(sum(count), 0) || ' hits' FROM records")
echo "load: bench_client offered $LOAD_RATE distinct blocked names/s for $DURATION s:"
grep -E 'Queries|Latency' "$WORK/load.out" | sed 's/^/  /'
python3 - "$start" "$loaded" "$drained" "$shipped0" "$shipped1" "$shipped2" "$(metric schooldns_hitlog_dropped_total)" <<'PY'
import sys
start, loaded, drained = map(float, sys.argv[1:4])
s0, s1, s2, dropped = map(float, sys.argv[4:8])
print(f"load: {s1 - s0:.0f} hits shipped during the load ({(s1 - s0) / (loaded - start):.0f}/s), "
      f"{s2 - s0:.0f} in all; spool drained {drained - loaded:.1f} s after the load ended; "
      f"{dropped:.0f} hits dropped")
PY
echo "load: the server received $received hits; PostgreSQL holds $in_pg"

# Side by side, in the same run: the same load with `backend = "sqlite"` (no shipper, no
# PostgreSQL work on the machine).
kill "$SPID"; wait "$SPID" 2>/dev/null || true
bench_config "$WORK/load-sqlite.toml" "$LOAD" true "$WORK/load-sqlite"
rm -rf "$WORK/load-sqlite"
target/release/schooldns --log warn serve --config "$WORK/load-sqlite.toml" --threads 1 --cpus 0 &
SPID=$!
PIDS+=($SPID)
wait_for 5400
taskset -c 1 target/release/examples/bench_client --server 127.0.0.1:5400 \
    --names "$LOAD/burst.txt" --rate "$LOAD_RATE" --duration "$DURATION" >"$WORK/load-sqlite.out" 2>/dev/null
echo "load, side by side: the same load with backend = \"sqlite\":"
grep -E 'Queries|Latency' "$WORK/load-sqlite.out" | sed 's/^/  /'
