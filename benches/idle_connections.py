"""Opens and holds idle DoT and DoH connections for benches/encrypted.sh.

usage: python3 benches/idle_connections.py HOST DOT_PORT DOH_PORT COUNT HOLD_SECONDS READY_FILE

Opens COUNT connections, half DoT (ALPN "dot", one query answered first so the connection is
in use, not just handshaken) and half DoH (ALPN "h2", the HTTP/2 preface and SETTINGS sent, as
a browser does on connect). It writes READY_FILE with the number open once all are, holds them
for HOLD_SECONDS, then closes them. Bounded: at most COUNT connections, 200 handshakes at a
time, and HOLD_SECONDS of holding.
"""
import asyncio, os, ssl, struct, sys

host, dot_port, doh_port, count, hold, ready = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])

# A query for "idle.example.net A" with id 1.
QUERY = bytes.fromhex("0001 0100 0001 0000 0000 0000".replace(" ", "")) + \
    b"\x04idle\x07example\x03net\x00" + struct.pack(">HH", 1, 1)
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def context(alpn):
    # No verification (a throwaway certificate), so no CA store to load either.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
    return ctx


CONTEXTS = {"dot": context("dot"), "h2": context("h2")}


async def open_one(kind, limit, writers):
    async with limit:
        if kind == "dot":
            reader, writer = await asyncio.open_connection(
                host, dot_port, ssl=CONTEXTS["dot"], server_hostname="bench.dns.bench")
            writer.write(struct.pack(">H", len(QUERY)) + QUERY)
            await writer.drain()
            length = struct.unpack(">H", await reader.readexactly(2))[0]
            await reader.readexactly(length)
        else:
            reader, writer = await asyncio.open_connection(
                host, doh_port, ssl=CONTEXTS["h2"], server_hostname="dns.bench")
            writer.write(H2_PREFACE)
            await writer.drain()
        writers.append(writer)


async def main():
    limit = asyncio.Semaphore(200)
    writers = []
    only = os.environ.get("IDLE_KIND")  # "dot" or "doh" to open only that kind
    kinds = [only or ("dot" if i % 2 == 0 else "doh") for i in range(count)]
    results = await asyncio.gather(*(open_one(k, limit, writers) for k in kinds),
                                   return_exceptions=True)
    failed = [r for r in results if isinstance(r, Exception)]
    with open(ready, "w") as f:
        f.write(f"{len(writers)} {len(failed)}\n")
    if failed:
        print(f"{len(failed)} connections failed, e.g. {failed[0]!r}", file=sys.stderr)
    await asyncio.sleep(hold)
    for w in writers:
        w.close()


asyncio.run(main())
