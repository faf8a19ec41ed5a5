# Shared by benches/load.sh, benches/hitlog.sh, benches/scaling.sh and benches/edge.sh (sourced,
# not run).

# Writes the benchmark district: one school on loopback blocking the generated 1-million-name
# list, forwarding to bench_upstream on 5399, admin on 5402, the hit log in HITLOG_DIR (default
# WORK/hitlog).  Usage: bench_config FILE WORK [HITLOG] [HITLOG_DIR]
bench_config() {
    cat > "$1" <<TOML
[server]
udp = ["127.0.0.1:5400"]
tcp = []
[upstream]
servers = ["127.0.0.1:5399"]
[cache]
max_entries = 1000000
[admin]
listen = "127.0.0.1:5402"
[hitlog]
enabled = ${3:-true}
path = "${4:-$2/hitlog}/hits.sqlite"
[categories.big]
lists = ["$2/block.txt"]
[profiles.bench]
block = ["big"]
safe_search = "off"
bypass_protection = false
[[schools]]
id = "bench"
name = "Bench"
networks = ["127.0.0.0/8"]
profile = "bench"
TOML
}

# Waits until a DNS server answers on 127.0.0.1:PORT.  Usage: wait_for PORT
wait_for() {
    for _ in $(seq 1 300); do
        dig +short +tries=1 +time=1 @127.0.0.1 -p "$1" warmup.example.net A >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "server on port $1 did not start" >&2; return 1
}

# CPU ticks (user + system) of a process.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One dnsperf run against a server, its line in the results table (and in WORK/results.txt).
# Needs WORK, DURATION and CLIENT_CPUS.  Usage: run LABEL PORT PID WORKLOAD [reload]
run() { # label port pid workload [reload]
    local label=$1 port=$2 pid=$3 workload=$4 reload=${5:-}
    local before after out answered
    if [ -n "$reload" ]; then
        # Change the 1-million-name list a third of the way in: the server recompiles that
        # category (and the filter) beside the query path and swaps it in under load.
        (sleep $((DURATION / 3)); echo "reload-under-load.example" >>"$WORK/block.txt") &
    fi
    before=$(cpu_ticks "$pid")
    # dnsperf writes its per-query lines (-v) to a file, not into a pipe read by this shell:
    # a pipe stalls dnsperf whenever the shell, unpinned and competing with the server for a
    # core, falls behind reading it, and those stalls showed up as milliseconds of p99. The
    # file is in its own folder: in $WORK, beside the watched list, each write would wake
    # schooldns's reload watcher and count in its CPU.
    taskset -c "$CLIENT_CPUS" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/$workload.txt" \
        -l "$DURATION" -c 8 -q 500 -v >"$WORK/out/dnsperf.out" 2>/dev/null
    out=$(<"$WORK/out/dnsperf.out")
    after=$(cpu_ticks "$pid")
    [ -n "$reload" ] && workload="$workload+reload"
    answered=$(grep -m1 'Queries completed' <<<"$out" | awk '{print $3}')
    local lost qps
    lost=$(grep -m1 'Queries lost' <<<"$out" | awk '{print $3}')
    qps=$(grep -m1 'Queries per second' <<<"$out" | awk '{print $4}')
    local lat
    lat=$(grep -E '^> ' <<<"$out" | awk '{print $NF * 1e6}' | sort -n | awk '
        {v[NR]=$1} END {if (NR==0) {print "- - -"; exit}
        printf "%.0f %.0f %.0f", v[int(NR*0.5)+1], v[int(NR*0.99)+1], v[int(NR*0.999)+1]}')
    local cpu_us
    cpu_us=$(awk -v t=$((after - before)) -v n="$answered" -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.2f", (n > 0) ? t / hz * 1e6 / n : 0}')
    printf "%-10s %-8s %10s %8s %8s %8s %8s %7s %12s\n" "$label" "$workload" "$qps" \
        $lat "$answered" "${lost:-0}" "$cpu_us"
    echo "$label $workload $qps $lat $answered ${lost:-0} $cpu_us" >>"$WORK/results.txt"
}


header() {
    printf "%-10s %-8s %10s %8s %8s %8s %8s %7s %12s\n" server workload "qps" "p50 µs" "p99 µs" \
        "p99.9 µs" answered lost "CPU µs/query"
}
