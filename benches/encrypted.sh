#!/usr/bin/env bash
# Encrypted-transport benchmark (issue #5 §5), all in one run on one machine:
#  1. the same cache-hit workload over plain UDP, DoT and DoH (POST and GET), each with
#     connection reuse, against schooldns on one worker thread pinned to CPU 0, dnsperf pinned
#     to CPU 1: queries per second, the ratio to UDP, and server CPU per answered query;
#  2. 10,000 idle connections (half DoT, half DoH) held open: server memory per connection,
#     and the UDP and DoT rates of other clients while they are held, against the same rates
#     without them.
#
#   bash benches/encrypted.sh            # DURATION=10 IDLE=10000 by default
#
# Needs: dnsperf, h2load (nghttp2-client), openssl (for a throwaway certificate), taskset,
# python3, dig. DoH is driven by h2load: dnsperf 2.10's DoH mode leaves Nagle's algorithm on,
# so each of its requests waits about 40 ms for a delayed ACK, which measures the client.
# Uses loopback ports 5399-5404 only; every load run is bounded by DURATION seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${DURATION:-10}
IDLE=${IDLE:-10000}
WORK=target/encrypted
# SCHOOLDNS_BIN: another build to measure with the same workload (e.g. an older commit's).
SCHOOLDNS_BIN=${SCHOOLDNS_BIN:-target/release/schooldns}
mkdir -p "$WORK"
for tool in dnsperf h2load openssl taskset python3 dig curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
# Each process holds IDLE (or MANY) sockets plus a few: raise the soft limit as far as allowed.
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin schooldns --example bench_upstream
python3 benches/workload.py "$WORK" 100000

# A throwaway certificate for dns.bench and *.dns.bench (DoT clients send <token>.dns.bench).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=dns.bench -addext "subjectAltName=DNS:dns.bench,DNS:*.dns.bench" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
TOKEN=benchfamilytoken234567abcdefghij
cat > "$WORK/devices.toml" <<TOML
[[devices]]
id = "bench"
name = "Bench family"
token = "$TOKEN"
profile = "bench"
TOML
bench_config "$WORK/schooldns.toml" "$WORK"
sed -i 's/^tcp = \[\]$/tcp = []\ndot = ["127.0.0.1:5403"]\ndoh = ["127.0.0.1:5404"]/' "$WORK/schooldns.toml"
# Every connection comes from 127.0.0.1: lift the per-address cap above the idle count (builds
# from before the cap existed refuse the key, so it is added only where the binary knows it).
if grep -q max_connections_per_address "$SCHOOLDNS_BIN"; then
    sed -i "s/^tcp = \[\]\$/tcp = []\nmax_connections_per_address = $((IDLE + 1000))/" "$WORK/schooldns.toml"
fi
# dnsperf sends no TLS server name, so its DoT queries carry no token: the default profile
# (the same "bench" profile) answers them. DoH carries the token in the path.
cat >> "$WORK/schooldns.toml" <<TOML
[tls]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
hostname = "dns.bench"
idle_timeout_secs = 600
[devices]
file = "$WORK/devices.toml"
default_profile = "bench"
TOML

cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
PIDS=()
trap cleanup EXIT
taskset -c 1 target/release/examples/bench_upstream 127.0.0.1:5399 2>/dev/null &
PIDS+=($!)
taskset -c 0 "$SCHOOLDNS_BIN" --log warn serve --config "$WORK/schooldns.toml" --threads 1 &
SPID=$!
PIDS+=($SPID)
wait_for 5400
taskset -c 1 dnsperf -s 127.0.0.1 -p 5400 -d "$WORK/hits.txt" -n 1 -c 4 -q 200 >/dev/null 2>&1

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

: >"$WORK/results.txt"
run() { # label dnsperf-args...
    local label=$1; shift
    local before after out answered qps
    before=$(cpu_ticks "$SPID")
    out=$(taskset -c 1 dnsperf -s 127.0.0.1 -d "$WORK/hits.txt" -l "$DURATION" -c 8 -q 200 "$@" 2>&1)
    after=$(cpu_ticks "$SPID")
    answered=$(grep -m1 'Queries completed' <<<"$out" | awk '{print $3}')
    qps=$(grep -m1 'Queries per second' <<<"$out" | awk '{print $4}')
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v n="${answered:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1e6 / n : 0}')
    printf "%-16s %12s %12s %14s\n" "$label" "${qps:-0}" "${answered:-0}" "$cpu_us"
    echo "$label ${qps:-0} $cpu_us" >>"$WORK/results.txt"
}
# h2load: 8 HTTP/2 connections, 32 streams each, one cache-hit query as the POST body or
# the GET ?dns= parameter. Usage: run_h2 label url [h2load-args...]
run_h2() {
    local label=$1 url=$2; shift 2
    local before after out answered qps
    before=$(cpu_ticks "$SPID")
    out=$(taskset -c 1 h2load -D "$DURATION" -c 8 -m 32 "$@" "$url" 2>&1)
    after=$(cpu_ticks "$SPID")
    answered=$(grep -m1 '^requests:' <<<"$out" | awk '{print $8}')
    qps=$(awk -v n="${answered:-0}" -v d="$DURATION" 'BEGIN {printf "%.0f", n / d}')
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v n="${answered:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1e6 / n : 0}')
    printf "%-16s %12s %12s %14s\n" "$label" "${qps:-0}" "${answered:-0}" "$cpu_us"
    echo "$label ${qps:-0} $cpu_us" >>"$WORK/results.txt"
}
header() { printf "%-16s %12s %12s %14s\n" transport qps answered "CPU µs/query"; }

echo "== cache hits, one worker thread on CPU 0, dnsperf on CPU 1 (8 connections, reused)"
header
run udp -p 5400
run dot -m dot -p 5403
python3 - "$WORK" <<'PY'
import base64, struct, sys
q = bytes.fromhex("000001000001000000000000") + b"\x05host1\x09allowed-1\x07example\x03net\x00" \
    + struct.pack(">HH", 1, 1)
open(f"{sys.argv[1]}/query.bin", "wb").write(q)
open(f"{sys.argv[1]}/query.b64", "w").write(base64.urlsafe_b64encode(q).decode().rstrip("="))
PY
run_h2 doh-post "https://127.0.0.1:5404/dns-query/$TOKEN" -d "$WORK/query.bin" \
    -H "content-type: application/dns-message"
run_h2 doh-get "https://127.0.0.1:5404/dns-query/$TOKEN?dns=$(cat "$WORK/query.b64")"
awk '{q[$1]=$2; c[$1]=$3} END {
    for (t in q) if (t != "udp") printf "%-9s %.2f of the UDP rate, %.2f× UDP CPU/query\n", t, q[t]/q["udp"], c[t]/c["udp"] }' \
    "$WORK/results.txt" | sort

echo "== $IDLE idle connections (half DoT, half DoH)"
rss_before=$(rss_kib "$SPID")
rm -f "$WORK/ready"
python3 benches/idle_connections.py 127.0.0.1 5403 5404 "$IDLE" $((4 * DURATION + 30)) "$WORK/ready" &
HPID=$!
PIDS+=($HPID)
for _ in $(seq 1 600); do [ -s "$WORK/ready" ] && break; sleep 0.2; done
[ -s "$WORK/ready" ] || { echo "idle connections never opened" >&2; exit 1; }
read -r opened failed <"$WORK/ready"
sleep 2
rss_after=$(rss_kib "$SPID")
open_metric=$(curl -s http://127.0.0.1:5402/metrics | awk '/^schooldns_tls_connections / {print $2}')
echo "opened $opened (failed $failed); server reports $open_metric open"
awk -v a="$rss_before" -v b="$rss_after" -v n="$opened" 'BEGIN {
    printf "server RSS %.1f MiB -> %.1f MiB: +%.1f MiB for %d connections, %.1f KiB each\n",
        a/1024, b/1024, (b-a)/1024, n, (b-a)/n }'
echo "-- other clients while they are held"
header
run udp-with-idle -p 5400
run dot-with-idle -m dot -p 5403
awk '{q[$1]=$2} END {
    printf "udp with idle connections: %.2f of the rate without\n", q["udp-with-idle"]/q["udp"];
    printf "dot with idle connections: %.2f of the rate without\n", q["dot-with-idle"]/q["dot"] }' \
    "$WORK/results.txt"

# Many home devices: MANY connections (default 5,000), each sending one DoH query every 100 ms
# (h2load --rps 10 per connection), for DURATION seconds: answers per second and server CPU
# per answer.
MANY=${MANY:-5000}
# Let the idle connections go first (they count against the per-address cap).
kill "$HPID" 2>/dev/null || true
wait "$HPID" 2>/dev/null || true
sleep 2
echo "== $MANY DoH connections, one query per 100 ms each"
header
run_many() {
    local before after out answered qps cpu_us
    before=$(cpu_ticks "$SPID")
    out=$(taskset -c 1 h2load -D "$DURATION" -c "$MANY" -m 1 --rps 10 -d "$WORK/query.bin" \
        -H "content-type: application/dns-message" "https://127.0.0.1:5404/dns-query/$TOKEN" 2>&1)
    after=$(cpu_ticks "$SPID")
    answered=$(grep -m1 '^requests:' <<<"$out" | awk '{print $8}')
    qps=$(awk -v n="${answered:-0}" -v d="$DURATION" 'BEGIN {printf "%.0f", n / d}')
    cpu_us=$(awk -v t=$((after - before)) -v n="${answered:-0}" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1e6 / n : 0}')
    printf "%-16s %12s %12s %14s\n" "doh-$MANY" "$qps" "${answered:-0}" "$cpu_us"
}
run_many
