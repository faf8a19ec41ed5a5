# Shared by benches/load.sh, benches/hitlog.sh and benches/scaling.sh (sourced, not run).

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
