#!/usr/bin/env bash
# A schedule's edge under full load (issue 22), measured the way load.sh measures a reload
# under load: schooldns with the 1-million-name list and a rule in time that, from 07:00,
# blocks every name of the hit workload (80 % of the mix flips from allowed to blocked at the
# edge). Its clock is shifted (SCHOOLDNS_CLOCK_OFFSET_MS) so that 07:00 comes 40 s after it
# starts. In the same process, dnsperf first runs the mix with no edge, then again with the edge
# in the middle of the run; the two lines are the comparison (p99, queries lost).
#
#   bash benches/edge.sh                 # DURATION=10 NAMES=1000000 THREADS=1 by default
#
# Needs: dnsperf, taskset, python3, dig. Uses loopback ports 5399-5402 only; every dnsperf run
# is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${DURATION:-10}
NAMES=${NAMES:-1000000}
THREADS=${THREADS:-1}
SERVER_CPUS=${SERVER_CPUS:-0}
CLIENT_CPUS=${CLIENT_CPUS:-1}
WORK=target/edge
LEAD_MS=40000
mkdir -p "$WORK/out"
for tool in dnsperf taskset python3 dig; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install dnsperf util-linux)" >&2; exit 1; }
done
cargo build --release --quiet --bin schooldns --example bench_upstream

echo "== generating $NAMES blocked names and the query files"
python3 benches/workload.py "$WORK" "$NAMES"
# The hit workload's domains (host*.allowed-N.example.net): blocked from 07:00.
python3 -c 'print("\n".join(f"allowed-{i}.example.net" for i in range(97)))' >"$WORK/lessons.txt"
bench_config "$WORK/schooldns.toml" "$WORK"
sed -i 's/^\[hitlog\]$/[hitlog]\ntimezone = "UTC"/' "$WORK/schooldns.toml"
cat >>"$WORK/schooldns.toml" <<TOML
[categories.lessons]
lists = ["$WORK/lessons.txt"]
[schedules.day]
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
times = ["07:00-24:00"]
[[profiles.bench.when]]
schedule = "day"
block = ["lessons"]
TOML

cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
PIDS=()
trap cleanup EXIT
taskset -c "$CLIENT_CPUS" target/release/examples/bench_upstream 127.0.0.1:5399 2>/dev/null &
PIDS+=($!)

# Today's 07:00 UTC on the server's clock comes LEAD_MS after this moment, in real time.
now_ms=$(date +%s%3N)
edge_ms=$(( $(date -u -d "$(date -u +%F) 07:00" +%s) * 1000 ))
offset=$(( edge_ms - now_ms - LEAD_MS ))
edge_real=$(( now_ms + LEAD_MS ))
echo "== schooldns ($THREADS worker thread(s) on CPU $SERVER_CPUS), 07:00 in $((LEAD_MS / 1000)) s"
SCHOOLDNS_CLOCK_OFFSET_MS=$offset taskset -c "$SERVER_CPUS" target/release/schooldns --log warn \
    serve --config "$WORK/schooldns.toml" --threads "$THREADS" &
SPID=$!
PIDS+=($SPID)
wait_for 5400
taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/hits.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1
status() { dig +tries=1 +time=1 @127.0.0.1 -p 5400 host1.allowed-1.example.net A | awk '/status:/ {print $6}' | tr -d ,; }
echo "before the edge, a hit name answers: $(status)"
: >"$WORK/results.txt"
header
left=$(( edge_real - $(date +%s%3N) - DURATION * 1000 - 2000 ))
[ "$left" -gt 0 ] || { echo "startup took too long for the no-edge run; raise LEAD_MS" >&2; exit 1; }
run schooldns 5400 "$SPID" mix
# The edge run: dnsperf starts half a run before 07:00.
wait_ms=$(( edge_real - $(date +%s%3N) - DURATION * 500 ))
[ "$wait_ms" -gt 0 ] && sleep "$(awk -v m="$wait_ms" 'BEGIN {print m / 1000}')"
run schooldns 5400 "$SPID" mix
echo "after the edge, a hit name answers: $(status)"
awk 'NR == 1 {p = $5; l = $8} NR == 2 {printf "edge run / no-edge run: p99 %.2f×, lost %d vs %d\n", $5 / p, $8, l}' \
    "$WORK/results.txt"
