//! The floor for `benches/load.sh`: a UDP "server" that does nothing but echo each query back
//! with the response bit set, with the same batched I/O as schooldns (`poll`, then `recvmmsg`
//! and `sendmmsg` through `schooldns::server::batch`). Its CPU time per query is what the
//! kernel charges for receiving and answering one datagram on loopback, which no resolver
//! using sockets can go below. Linux only; one thread; the address is the first argument.

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;

    use schooldns::server::batch::{self, Batch};

    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5403".into());
    let socket = std::net::UdpSocket::bind(&addr)?;
    socket.set_nonblocking(true)?;
    let fd = socket.as_raw_fd();
    eprintln!("echo floor on {addr}");
    let mut batch = Batch::default();
    let mut answers = Vec::with_capacity(batch::BATCH);
    loop {
        let mut ready = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd that lives on the stack for the duration of the call.
        #[allow(unsafe_code)]
        unsafe {
            libc::poll(&mut ready, 1, -1)
        };
        // Drain what is queued, as the server's loop does, before waiting again.
        loop {
            let received = match batch.recv(fd) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            };
            for i in 0..received {
                let (query, src) = batch.datagram(i);
                let (Some(src), true) = (src, query.len() >= 12) else {
                    continue;
                };
                let mut answer = query.to_vec();
                answer[2] |= 0x80;
                answers.push((answer, src));
            }
            while !answers.is_empty() {
                match batch::send(fd, &mut answers) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        answers.remove(0);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bench_echo needs Linux (recvmmsg/sendmmsg)");
}
