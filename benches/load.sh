#!/usr/bin/env bash
# Load benchmark (issue #3 §4): schooldns and Unbound in the same run, each with the same
# 1-million-name blocklist, both forwarding to the same trivial upstream on loopback, each
# driven by dnsperf pinned to the other core. Prints queries per second, latency percentiles
# and server CPU time per answered query for three workloads: cache hits, blocked names, and an
# 80/20 mix.
#
#   bash benches/load.sh                 # DURATION=10 NAMES=1000000 THREADS=1 by default
#
# Needs: unbound, dnsperf, taskset (apt-get install unbound dnsperf util-linux), python3.
# The same run also measures the floor: bench_echo, which only echoes each query back with the
# same batched socket calls, so its CPU per query is what the kernel alone costs.
# Uses loopback ports 5399-5403 only; every dnsperf run is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${DURATION:-10}
NAMES=${NAMES:-1000000}
THREADS=${THREADS:-1}
# Unbound's modules: "iterator" alone is the leanest (the strictest comparison); Unbound's own
# default is "validator iterator".
UNBOUND_MODULES=${UNBOUND_MODULES:-iterator}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
WORK=target/load
mkdir -p "$WORK/out"
for tool in unbound dnsperf taskset python3 curl dig; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install unbound dnsperf util-linux)" >&2; exit 1; }
done
cargo build --release --quiet --bin schooldns --example bench_upstream --example bench_echo

echo "== generating $NAMES blocked names and the query files"
python3 benches/workload.py "$WORK" "$NAMES"

bench_config "$WORK/schooldns.toml" "$WORK"

cat > "$WORK/unbound.conf" <<CONF
server:
  interface: 127.0.0.1
  port: 5401
  num-threads: $THREADS
  do-daemonize: no
  chroot: ""
  username: ""
  pidfile: ""
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "$UNBOUND_MODULES"
  msg-cache-size: 128m
  rrset-cache-size: 256m
  include: "$PWD/$WORK/unbound-block.conf"
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@5399
remote-control:
  control-enable: no
CONF

cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
PIDS=()
trap cleanup EXIT

taskset -c "$CLIENT_CPUS" target/release/examples/bench_upstream 127.0.0.1:5399 2>/dev/null &
PIDS+=($!)

: >"$WORK/results.txt"

# BASELINE=path/to/another/schooldns: instead of the comparison with Unbound, run this build and
# that one alternately (ABBA per round, ROUNDS rounds) on AB_WORKLOAD (default mix) and print
# the ratio of server CPU per answered query, new / baseline, per round and as the median.
if [ -n "${BASELINE:-}" ]; then
    ROUNDS=${ROUNDS:-4}
    AB_WORKLOAD=${AB_WORKLOAD:-mix}
    ab_run() { # label binary
        local label=$1 bin=$2 pid
        rm -rf "$WORK/hitlog"
        taskset -c "$SERVER_CPUS" "$bin" --log warn serve --config "$WORK/schooldns.toml" \
            --threads "$THREADS" &
        pid=$!
        PIDS+=($pid)
        wait_for 5400
        taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/hits.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
        run "$label" 5400 "$pid" "$AB_WORKLOAD"
        kill "$pid"; wait "$pid" 2>/dev/null || true
    }
    echo "== A/B: this build (new) and $BASELINE (base), $AB_WORKLOAD, $ROUNDS rounds ABBA"
    header
    for round in $(seq 1 "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then
            ab_run new target/release/schooldns; ab_run base "$BASELINE"
        else
            ab_run base "$BASELINE"; ab_run new target/release/schooldns
        fi
    done
    awk '$1 == "new" {n[++i]=$NF} $1 == "base" {b[++j]=$NF} END {
        for (k = 1; k <= i; k++) printf "%.3f\n", n[k] / b[k] }' "$WORK/results.txt" >"$WORK/out/ratios"
    awk '{printf "round %d: CPU/query new/base %s\n", NR, $1}' "$WORK/out/ratios"
    sort -n "$WORK/out/ratios" | awk '{r[NR]=$1} END {
        m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
        printf "median ratio %.3f\n", m }'
    exit 0
fi

echo "== schooldns ($THREADS worker thread(s) on CPU $SERVER_CPUS)"
taskset -c "$SERVER_CPUS" target/release/schooldns --log warn serve --config "$WORK/schooldns.toml" \
    --threads "$THREADS" &
SPID=$!
PIDS+=($SPID)
wait_for 5400
# Fill the cache with the hit names before measuring.
taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/hits.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
header
for w in hits blocked mix; do run schooldns 5400 "$SPID" "$w"; done
reloads_before=$(curl -s http://127.0.0.1:5402/metrics | awk '/^schooldns_reloads_total/ {print $2}')
run schooldns 5400 "$SPID" mix reload
reloads_after=$(curl -s http://127.0.0.1:5402/metrics | awk '/^schooldns_reloads_total/ {print $2}')
echo "policy reloads during mix+reload: $((reloads_after - reloads_before))"
kill "$SPID"; wait "$SPID" 2>/dev/null || true

echo "== unbound ($THREADS thread(s) on CPU $SERVER_CPUS)"
taskset -c "$SERVER_CPUS" unbound -d -c "$WORK/unbound.conf" &
UPID=$!
PIDS+=($UPID)
wait_for 5401
taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p 5401 -d "$WORK/hits.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
header
for w in hits blocked mix; do run unbound 5401 "$UPID" "$w"; done

kill "$UPID"; wait "$UPID" 2>/dev/null || true

echo "== echo floor (bench_echo on CPU $SERVER_CPUS: the kernel's cost of one datagram in and out)"
taskset -c "$SERVER_CPUS" target/release/examples/bench_echo 127.0.0.1:5403 2>/dev/null &
EPID=$!
PIDS+=($EPID)
sleep 0.5
header
run echo 5403 "$EPID" mix

echo "== ratios, schooldns / unbound (same run)"
awk '{q[$1" "$2]=$3; p99[$1" "$2]=$5; cpu[$1" "$2]=$9}
     END {for (w in q) {}; split("hits blocked mix", ws, " ");
          for (i=1;i<=3;i++) {w=ws[i];
            printf "%-8s qps %.2f   p99 %.2f   CPU/query %.2f\n", w,
              q["schooldns "w]/q["unbound "w], p99["schooldns "w]/p99["unbound "w],
              cpu["schooldns "w]/cpu["unbound "w]};
          printf "echo floor: CPU/query %.2f of Unbound on the mix; schooldns above the floor: %.2f us/query\n",
            cpu["echo mix"]/cpu["unbound mix"], cpu["schooldns mix"]-cpu["echo mix"]}' "$WORK/results.txt"
