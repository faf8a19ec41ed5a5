#!/usr/bin/env bash
# Two-core scaling (issue #3 §4): schooldns on the 80/20 mix with the 1-million-name list,
# first with one query worker pinned to CPU 0 (dnsperf on CPU 1), then with two workers pinned
# to CPUs 0 and 1 (`serve --cpus 0-1`, SO_REUSEPORT sockets), in the same run.
#
# A 2-core machine cannot show the rate doubling: with two workers, dnsperf has no core of its
# own and takes its share of both. So this prints, for each run, the answered rate, the
# server's CPU time per query, and the cores dnsperf itself used (what the load generator
# costs: it spins on its sockets, so it takes a whole core whatever the rate), and from them the
# server's capacity (workers × 1 s / CPU per query): with per-query cost unchanged by the
# second worker, capacity doubles. All figures come from a window inside each run.
#
# GENERATOR=client offers the mix with examples/bench_client instead, at a fixed RATE to both
# configurations: it sends and reads 32 datagrams per system call and sleeps between batches,
# so it takes about half a core at 110,000 queries/s where dnsperf takes a whole one, and the
# two workers share their cores with less of it.
#
#   bash benches/scaling.sh   # DURATION=10 NAMES=1000000 ROUNDS=2 GENERATOR=dnsperf RATE=110000
#
# Needs: dnsperf, taskset, python3, dig, curl. Loopback ports 5399, 5400, 5402 only; every dnsperf
# run is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${DURATION:-10}
NAMES=${NAMES:-1000000}
ROUNDS=${ROUNDS:-2}
GENERATOR=${GENERATOR:-dnsperf}
RATE=${RATE:-110000}
WORK=target/load
mkdir -p "$WORK"
for tool in dnsperf taskset python3 dig curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install dnsperf util-linux bind9-dnsutils)" >&2; exit 1; }
done
cargo build --release --quiet --bin schooldns --example bench_upstream --example bench_client
echo "== generating $NAMES blocked names and the query files"
python3 benches/workload.py "$WORK" "$NAMES"
bench_config "$WORK/scaling.toml" "$WORK" false

cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
PIDS=()
trap cleanup EXIT
target/release/examples/bench_upstream 127.0.0.1:5399 2>/dev/null &
PIDS+=($!)

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

queries() { curl -s http://127.0.0.1:5402/metrics | awk '/^schooldns_queries_total/ {n += $2} END {print n + 0}'; }
now() { date +%s.%N; }

run() { # workers cpus client_cpus
    target/release/schooldns --log warn serve --config "$WORK/scaling.toml" \
        --threads "$1" --cpus "$2" &
    local spid=$!
    PIDS+=($spid)
    wait_for 5400
    taskset -c "$3" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/hits.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
    if [ "$GENERATOR" = client ]; then
        # Started directly, not through common.sh's client_load: $! must be the generator's
        # own pid, since its CPU time is read from /proc/$!/stat below.
        taskset -c "$3" target/release/examples/bench_client --server 127.0.0.1:5400 \
            --names "$WORK/mix.txt" --rate "$RATE" --duration "$DURATION" >/dev/null 2>&1 &
    else
        taskset -c "$3" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/mix.txt" -l "$DURATION" \
            -c 8 -q 500 >/dev/null 2>&1 &
    fi
    local cpid=$!
    # Measure inside the run, away from dnsperf's start and its wait for late answers at
    # the end: the window is DURATION - 2 seconds, from 1 s in.
    sleep 1
    local t0 q0 s0 c0 t1 q1 s1 c1
    t0=$(now); q0=$(queries); s0=$(ticks "$spid"); c0=$(ticks "$cpid")
    sleep $((DURATION - 2))
    t1=$(now); q1=$(queries); s1=$(ticks "$spid"); c1=$(ticks "$cpid")
    wait "$cpid" || true
    kill "$spid"; wait "$spid" 2>/dev/null || true
    awk -v w="$1" -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')" -v n=$((q1 - q0)) \
        -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v hz="$hz" 'BEGIN {
        srv = s / hz * 1e6 / n
        printf "%d worker(s) %9.0f qps  server %5.2f µs/query  generator %4.2f cores  capacity %7.0f qps\n", w, n / t, srv, c / hz / t, w * 1e6 / srv
    }' | tee -a "$WORK/scaling-results.txt"
}

: >"$WORK/scaling-results.txt"
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round ($GENERATOR)"
    run 1 0 1
    run 2 0-1 0-1
done
awk '{w=$1; q[w]+=$3; srv[w]+=$6; cli[w]+=$9; cap[w]+=$12; n[w]++}
     END {
        printf "mean: 1 worker %.0f qps, %.2f µs/query, generator %.2f cores; 2 workers %.0f qps, %.2f µs/query, generator %.2f cores\n",
            q[1]/n[1], srv[1]/n[1], cli[1]/n[1], q[2]/n[2], srv[2]/n[2], cli[2]/n[2]
        printf "measured rate 2 workers / 1 worker: %.2f; capacity per core 2 / 1: %.2f\n",
            q[2]/q[1], (cap[2]/n[2]) / (cap[1]/n[1])
     }' "$WORK/scaling-results.txt"
