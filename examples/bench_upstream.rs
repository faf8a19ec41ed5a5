//! A minimal authoritative-looking DNS server for load benchmarks (`benches/load.sh`): answers
//! every A question with 192.0.2.1 (TTL 3600) and every other type with an empty NOERROR, over
//! UDP on the address given as the first argument. Deliberately trivial so that the servers
//! under test, not the upstream, are what a benchmark measures.

use std::net::UdpSocket;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5399".into());
    let socket = UdpSocket::bind(&addr)?;
    eprintln!("bench upstream on {addr}");
    let mut buf = [0u8; 1500];
    let mut out = Vec::with_capacity(1500);
    loop {
        let (len, src) = socket.recv_from(&mut buf)?;
        let query = &buf[..len];
        // Header, then one question: skip the name's labels to find type and class.
        if len < 17 || query[2] & 0x80 != 0 {
            continue;
        }
        let mut i = 12;
        while i < len && query[i] != 0 {
            i += 1 + query[i] as usize;
        }
        if i + 5 > len {
            continue;
        }
        let question_end = i + 5;
        let qtype = u16::from_be_bytes([query[i + 1], query[i + 2]]);
        out.clear();
        out.extend_from_slice(&query[..question_end]);
        out[2] = 0x80 | (query[2] & 0x79) | 0x04; // QR, opcode, AA, RD copied
        out[3] = 0x80; // RA, NOERROR
        out[6..12].copy_from_slice(&[0, u8::from(qtype == 1), 0, 0, 0, 0]);
        if qtype == 1 {
            // Name pointer to offset 12, A, IN, TTL 3600, 4 bytes of address.
            out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
        }
        let _ = socket.send_to(&out, src);
    }
}
