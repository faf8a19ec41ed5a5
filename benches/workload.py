"""Query workloads for benches/load.sh and benches/hitlog.sh, deterministic (seeded).

usage: python3 benches/workload.py WORK_DIR NAMES

Writes into WORK_DIR: block.txt (NAMES random blocked names), unbound-block.conf (the same as
Unbound local-zones), and dnsperf files: hits.txt (10,000 allowed names, cache hits once warm),
blocked.txt (10,000 blocked names), mix.txt (80 % hits, 20 % blocked), burst.txt (every blocked
name once, shuffled), mixburst.txt (80 % hits, 20 % distinct blocked names) and misses.txt
(1,000,000 distinct allowed names: every query a cache miss forwarded upstream).
"""
import random, sys
work, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(2026)
letters = "abcdefghijklmnopqrstuvwxyz0123456789"
tlds = ["com", "net", "org", "vn", "com.vn", "info", "xyz", "top", "ru", "de"]
names = set()
while len(names) < n:
    names.add("".join(rng.choice(letters) for _ in range(rng.randint(6, 16))) + "." + rng.choice(tlds))
names = sorted(names)
with open(f"{work}/block.txt", "w") as f:
    f.write("\n".join(names) + "\n")
with open(f"{work}/unbound-block.conf", "w") as f:
    for name in names:
        f.write(f'local-zone: "{name}." always_nxdomain\n')
blocked = [f"www.{name}" for name in rng.sample(names, 10000)]
hits = [f"host{i}.allowed-{i % 97}.example.net" for i in range(10000)]
def write(path, qs):
    with open(path, "w") as f:
        f.write("".join(f"{q} A\n" for q in qs))
write(f"{work}/hits.txt", hits)
write(f"{work}/blocked.txt", blocked)
mix = []
for i in range(10000):
    mix.append(blocked[i] if i % 5 == 0 else hits[i])
write(f"{work}/mix.txt", mix)
# For benches/hitlog.sh: every blocked name once (each query a new hit record), and a mix of
# 80 % cache hits with 20 % distinct blocked names (a hit burst inside ordinary traffic).
burst = [f"www.{name}" for name in names]
rng.shuffle(burst)
write(f"{work}/burst.txt", burst)
mixburst = []
for i in range(500000):
    mixburst.append(burst[i // 5] if i % 5 == 0 else hits[i % len(hits)])
write(f"{work}/mixburst.txt", mixburst)
# For benches/load.sh AB_WORKLOAD=misses: the forwarding path, every query a new question.
write(f"{work}/misses.txt", (f"miss{i}.allowed-{i % 89}.example.org" for i in range(1000000)))
