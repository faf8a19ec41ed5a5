#!/usr/bin/env bash
# Hit-log load figures (issue #4 §4), with the real server, real DNS load and a real SQLite file:
#
# 1. Writer under DNS load: dnsperf offers HIT_RATE queries/s (default 110,000, so that
#    100,000 hits/s can be shown sustained rather than merely offered), every one a
#    blocked name: (a) each a distinct name, so every hit is a new record; (b) 10,000 names
#    asked again and again, so hits are mostly repeats folded into their records, as when
#    devices retry what is blocked. Prints answered queries per second, hits on disk per
#    second (over the load and until `schooldns_hitlog_pending`, which counts hits still in
#    the rings, is 0), new records per second, hits dropped, and the CPU seconds of the load
#    generator, the query worker and the writer. Each workload runs twice: offered by dnsperf,
#    and by examples/bench_client, which sends and reads 32 datagrams per system call and
#    sleeps between batches. dnsperf spins and takes most of a core at this rate, which on a
#    2-core VM is the core the writer needs; bench_client leaves it what clients on other
#    machines would. GENERATORS="dnsperf" (or "client") runs one of them.
# 2. p99 during a hit burst: the same query stream (80 % cache hits, 20 % distinct blocked
#    names) at a fixed RATE against schooldns with the hit log off and on, alternated ROUNDS
#    times in one run; prints p50/p99 of each and the on/off ratio.
# 3. The same burst timed by a separate client: a second dnsperf asks cache-hit names at
#    PROBE_RATE (default 2,000/s) beside it, and only the probe's answers are timed.
#
# The server's one query worker is pinned to SERVER_CPUS with `serve --cpus`; dnsperf and the
# upstream run on CLIENT_CPUS. As in production, the hit-log writer (SCHED_IDLE) keeps off the
# worker's core, so on this 2-core VM it shares CLIENT_CPUS with dnsperf, which saturates it at
# 100,000 queries/s: the writer then gets what dnsperf leaves. SHARE_CORE=1 confines the whole
# server to SERVER_CPUS (taskset) instead, so the writer runs in the worker's idle time on the
# server's core. (Left free, the kernel would not move it there by itself: it pulls a waiting
# thread onto a core only when that core idles longer than the migration cost, 0.5 ms, and a
# busy worker's idle gaps are microseconds.)
#
#   bash benches/hitlog.sh   # DURATION=10 NAMES=1000000 HIT_RATE=110000 RATE=60000 ROUNDS=2 PROBE_RATE=2000
#                            # SECTIONS="1 2 3" HITLOG_DIR=target/load/hitlog SHARE_CORE=0
#                            # GENERATORS="dnsperf client" BURST_GENERATOR=dnsperf BURST_BATCH=4
#                            # PROBE_CPUS=$CLIENT_CPUS (the core the timed probe dnsperf runs on)
#
# Needs: dnsperf, taskset, python3, curl, dig. Loopback ports 5399, 5400, 5402 only; every
# dnsperf run is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${DURATION:-10}
NAMES=${NAMES:-1000000}
RATE=${RATE:-60000}
HIT_RATE=${HIT_RATE:-110000}
ROUNDS=${ROUNDS:-2}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
WORK=target/load
mkdir -p "$WORK/out"
for tool in dnsperf taskset python3 curl dig; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install dnsperf util-linux curl bind9-dnsutils)" >&2; exit 1; }
done
cargo build --release --quiet --bin schooldns --example bench_upstream --example bench_client
echo "== generating $NAMES blocked names and the query files"
python3 benches/workload.py "$WORK" "$NAMES"

# HITLOG_DIR moves the hit log, e.g. to tmpfs (/dev/shm/...) to see what the disk costs.
HITLOG_DIR=${HITLOG_DIR:-$WORK/hitlog}
bench_config "$WORK/hitlog-true.toml" "$WORK" true "$HITLOG_DIR"
bench_config "$WORK/hitlog-false.toml" "$WORK" false "$HITLOG_DIR"

cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
PIDS=()
trap cleanup EXIT
taskset -c "$CLIENT_CPUS" target/release/examples/bench_upstream 127.0.0.1:5399 2>/dev/null &
PIDS+=($!)

metric() { curl -s http://127.0.0.1:5402/metrics | awk -v m="$1" '$1 == m {print $2}'; }
start() { # enabled
    rm -f "$HITLOG_DIR"/hits.sqlite*
    local confine=()
    [ "${SHARE_CORE:-0}" = 1 ] && confine=(taskset -c "$SERVER_CPUS")
    "${confine[@]}" target/release/schooldns --log warn serve \
        --config "$WORK/hitlog-$1.toml" --threads 1 --cpus "$SERVER_CPUS" &
    SPID=$!
    PIDS+=($SPID)
    wait_for 5400
    taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/hits.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
}
stop() { kill "$SPID"; wait "$SPID" 2>/dev/null || true; }
dnsperf_run() { # workload rate [-v]
    # Per-query lines (-v) go to a file first, in a folder of their own (see load.sh): read
    # from a pipe by this shell, they would stall dnsperf whenever the shell fell behind.
    taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/$1.txt" -l "$DURATION" \
        -c 8 -q 500 -Q "$2" ${3:-} >"$WORK/out/dnsperf.out" 2>/dev/null
    cat "$WORK/out/dnsperf.out"
}
percentiles() { # dnsperf output → "p50 p99" in µs
    grep -E '^> ' <<<"$1" | awk '{print $NF * 1e6}' | sort -n | awk '
        {v[NR]=$1} END {if (NR==0) {print "- -"; exit}
        printf "%.0f %.0f", v[int(NR*0.5)+1], v[int(NR*0.99)+1]}'
}

# CPU ticks so far of process $1's threads named $2 (all of them added).
thread_ticks() { # pid comm
    local t=0 task
    for task in /proc/"$1"/task/*; do
        [ "$(<"$task/comm")" = "$2" ] && t=$((t + $(awk '{print $14 + $15}' "$task/stat")))
    done
    echo "$t"
}

# Offers FILE's queries to the server on 127.0.0.1:5400 at RATE per second for DURATION seconds
# with examples/bench_client on CPUS; further bench_client flags follow.
# Usage: client_load CPUS FILE RATE [--batch N ...]
client_load() {
    local cpus=$1 file=$2 rate=$3
    shift 3
    taskset -c "$cpus" target/release/examples/bench_client --server 127.0.0.1:5400 \
        --names "$file" --rate "$rate" --duration "$DURATION" "$@"
}
load_run() { # generator workload rate: the run's summary, dnsperf's lines either way
    if [ "$1" = client ]; then
        client_load "$CLIENT_CPUS" "$WORK/$2.txt" "$3" >"$WORK/out/dnsperf.out" 2>/dev/null
        cat "$WORK/out/dnsperf.out"
    else
        dnsperf_run "$2" "$3"
    fi
}
writer_load() { # workload generator description query-file
    echo "== 1$1 ($2). writer under DNS load: $HIT_RATE queries/s offered by $2, $3 (1 worker on CPU $SERVER_CPUS)"
    start true
    local records_before repeats_before t1 t2 out hz worker0 writer0 gen
    hz=$(getconf CLK_TCK)
    records_before=$(metric schooldns_hitlog_records_total)
    repeats_before=$(metric schooldns_hitlog_repeats_total)
    worker0=$(thread_ticks "$SPID" schooldns-worke)
    writer0=$(thread_ticks "$SPID" schooldns-hitlo)
    # The generator's own CPU time (user + system), from bash's time keyword.
    gen=$( { TIMEFORMAT='%U %S'; time load_run "$2" "$4" "$HIT_RATE" >"$WORK/out/load.out"; } 2>&1 | tail -n 1)
    out=$(<"$WORK/out/load.out")
    t1=$(date +%s.%N)
    for _ in $(seq 1 300); do
        [ "$(metric schooldns_hitlog_pending)" = "0" ] && break
        sleep 0.1
    done
    t2=$(date +%s.%N)
    local records repeats worker writer
    records=$(( $(metric schooldns_hitlog_records_total) - records_before ))
    repeats=$(( $(metric schooldns_hitlog_repeats_total) - repeats_before ))
    worker=$(( $(thread_ticks "$SPID" schooldns-worke) - worker0 ))
    writer=$(( $(thread_ticks "$SPID" schooldns-hitlo) - writer0 ))
    awk -v q="$(grep -m1 'Queries per second' <<<"$out" | awk '{print $4}')" \
        -v n="$(grep -m1 'Queries completed' <<<"$out" | awk '{print $3}')" \
        -v lost="$(grep -m1 'Queries lost' <<<"$out" | awk '{print $3}')" \
        -v r="$records" -v rep="$repeats" -v hz="$hz" -v gen="$gen" -v wk="$worker" -v wr="$writer" \
        -v d="$(metric schooldns_hitlog_dropped_total)" -v b="$t1" -v c="$t2" \
        -v run="$(grep -m1 'Run time (s)' <<<"$out" | awk '{print $4}')" 'BEGIN {
        printf "answered %d queries at %.0f qps (lost %d); all on disk %.2f s after the load stopped\n", n, q, lost, c - b
        # Over the load and the drain after it: what the writer sustained.
        t = run + (c - b)
        printf "hits on disk per second: %.0f (%d new records + %d repeats folded into them); dropped %d\n", (r + rep) / t, r, rep, d
        printf "new records written per second: %.0f\n", r / t
        split(gen, g, " ")
        printf "CPU seconds: load generator %.2f, query worker %.2f, hit-log writer %.2f (%.1f us per hit on disk)\n",
            g[1] + g[2], wk / hz, wr / hz, (r + rep > 0) ? wr / hz * 1e6 / (r + rep) : 0
    }'
    stop
}
# SECTIONS picks which of the three to run (default all), e.g. SECTIONS=3.
SECTIONS=${SECTIONS:-1 2 3}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
if want 1; then
# Each workload with both load generators: dnsperf, and bench_client, which costs its core far
# less (see examples/bench_client.rs), leaving the writer what clients on other machines would.
for generator in ${GENERATORS:-dnsperf client}; do
    writer_load a "$generator" "every one a distinct blocked name (each hit a new record)" burst
    writer_load b "$generator" "10,000 blocked names asked again and again (repeats fold into their records)" blocked
done

fi

if want 2; then
echo "== 2. p99 with a hit burst in the traffic, hit log off vs on, ${RATE} queries/s, $ROUNDS rounds"
: >"$WORK/hitlog-results.txt"
for round in $(seq 1 "$ROUNDS"); do
    for enabled in false true; do
        start "$enabled"
        out=$(dnsperf_run mixburst "$RATE" -v)
        read -r p50 p99 <<<"$(percentiles "$out")"
        qps=$(grep -m1 'Queries per second' <<<"$out" | awk '{print $4}')
        lost=$(grep -m1 'Queries lost' <<<"$out" | awk '{print $3}')
        printf "round %d  hit log %-5s  %8.0f qps  p50 %5s µs  p99 %5s µs  lost %s  records %s\n" \
            "$round" "$enabled" "$qps" "$p50" "$p99" "$lost" "$(metric schooldns_hitlog_records_total)"
        echo "$enabled $p50 $p99" >>"$WORK/hitlog-results.txt"
        stop
    done
done
awk '{n[$1]++; p50[$1]+=$2; p99[$1]+=$3}
     END {printf "mean over rounds: off p50 %.0f p99 %.0f µs; on p50 %.0f p99 %.0f µs; p99 on/off %.2f\n",
          p50["false"]/n["false"], p99["false"]/n["false"], p50["true"]/n["true"], p99["true"]/n["true"],
          (p99["true"]/n["true"]) / (p99["false"]/n["false"])}' "$WORK/hitlog-results.txt"

fi

# The same comparison seen by a separate client: dnsperf drives the burst without per-query
# output (-v costs dnsperf enough CPU at 60,000 queries/s to saturate its core, and its own
# delays then enter the figures above), while a second dnsperf asks cache-hit names at
# PROBE_RATE with -v and only its answers are timed, as a student device would see them.
# BURST_GENERATOR=client offers the burst with examples/bench_client instead of dnsperf, so
# the burst's generator does not spin on the core the writer and the probe share; it sends
# BURST_BATCH queries per call (a probe query can wait behind that many).
PROBE_RATE=${PROBE_RATE:-2000}
BURST_GENERATOR=${BURST_GENERATOR:-dnsperf}
BURST_BATCH=${BURST_BATCH:-4}
PROBE_CPUS=${PROBE_CPUS:-$CLIENT_CPUS}
if want 3; then
burst_by=dnsperf
[ "$BURST_GENERATOR" = client ] && burst_by="bench_client, $BURST_BATCH per call"
echo "== 3. p99 of a ${PROBE_RATE} queries/s probe beside the same burst (offered by $burst_by), hit log off vs on, $ROUNDS rounds"
: >"$WORK/hitlog-probe.txt"
rm -f "$WORK"/out/probe-latencies-*.txt
for round in $(seq 1 "$ROUNDS"); do
    # ABBA order (off, on, then on, off): a drift of the machine's speed during the run
    # falls on both sides alike.
    order="false true"
    [ $((round % 2)) = 0 ] && order="true false"
    for enabled in $order; do
        start "$enabled"
        if [ "$BURST_GENERATOR" = client ]; then
            client_load "$CLIENT_CPUS" "$WORK/mixburst.txt" "$RATE" --batch "$BURST_BATCH" \
                >"$WORK/out/burst.out" 2>/dev/null &
        else
            taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/mixburst.txt" \
                -l "$DURATION" -c 8 -q 500 -Q "$RATE" >"$WORK/out/burst.out" 2>/dev/null &
        fi
        LOAD=$!
        sleep 0.5
        taskset -c "$PROBE_CPUS" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/hits.txt" \
            -l "$((DURATION - 1))" -c 1 -q 10 -Q "$PROBE_RATE" -v >"$WORK/out/probe.out" 2>/dev/null
        wait "$LOAD"
        read -r p50 p99 <<<"$(percentiles "$(<"$WORK/out/probe.out")")"
        grep -E '^> ' "$WORK/out/probe.out" | awk '{print $NF * 1e6}' >>"$WORK/out/probe-latencies-$enabled.txt"
        qps=$(grep -m1 'Queries per second' "$WORK/out/burst.out" | awk '{print $4}')
        printf "round %d  hit log %-5s  burst %8.0f qps  probe p50 %5s µs  p99 %5s µs  records %s\n" \
            "$round" "$enabled" "$qps" "$p50" "$p99" "$(metric schooldns_hitlog_records_total)"
        echo "$enabled $p50 $p99" >>"$WORK/hitlog-probe.txt"
        stop
    done
done
sort -k1,1 -k3,3n "$WORK/hitlog-probe.txt" | awk '
    {n[$1]++; sum[$1]+=$3; v[$1, n[$1]]=$3}
    END {for (k in n) med[k] = v[k, int((n[k] + 1) / 2)]
         printf "probe p99 over rounds: off mean %.0f median %.0f µs; on mean %.0f median %.0f µs; on/off mean %.2f median %.2f\n",
             sum["false"]/n["false"], med["false"], sum["true"]/n["true"], med["true"],
             (sum["true"]/n["true"]) / (sum["false"]/n["false"]), med["true"] / med["false"]}'
# Every probe answer of all rounds pooled per side: the p99 over the whole time each side ran,
# which one noisy round moves less than it moves a mean of per-round p99s.
pooled() { sort -n "$WORK/out/probe-latencies-$1.txt" | awk '{v[NR]=$1} END {
    printf "%d %.0f %.0f", NR, v[int(NR*0.5)+1], v[int(NR*0.99)+1]}'; }
read -r n_off p50_off p99_off <<<"$(pooled false)"
read -r n_on p50_on p99_on <<<"$(pooled true)"
awk -v a="$p99_on" -v b="$p99_off" -v n="$n_off" -v m="$n_on" -v c="$p50_off" -v d="$p50_on" 'BEGIN {
    printf "probe pooled over rounds: off %d answers p50 %d p99 %d µs; on %d answers p50 %d p99 %d µs; p99 on/off %.2f\n",
        n, c, b, m, d, a, a / b}'
fi
