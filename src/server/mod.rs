//! The DNS front ends: UDP, TCP, DoT and DoH listeners, their connections, slots, deadlines and
//! TLS. Transport only: every message goes to the one pipeline (`crate::query`), and
//! `crate::app` binds and wires them.

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod batch;
pub mod doh;
pub mod dot;
pub mod encrypted;
pub mod scratch;
pub mod slots;
pub mod stream;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod web;

use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// A non-blocking UDP socket, optionally sharing its port (`SO_REUSEPORT`). The kernel's
/// default buffers are kept on purpose: deeper queues turn overload into latency for everyone
/// (measured with `benches/load.sh`: p99 2.5× worse), while a full buffer drops the excess.
pub fn bind_udp(addr: SocketAddr, reuse_port: bool) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(unix)]
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
