//! The DNS-over-TLS front end (RFC 7858): TLS handshake, device token from the server name,
//! then the same length-prefixed stream loop as TCP. Transport only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::encrypted::Encrypted;
use super::slots::Slot;
use super::stream::{self, Peer, Timeouts};
use super::tls::token_from_server_name;
use crate::query::Protocol;

/// Accepts DoT connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Encrypted>,
    shutdown: watch::Receiver<bool>,
) {
    shared.serve(listener, acceptor, shutdown, connection).await;
}

/// Answers one DoT connection as the device its server name names.
async fn connection(
    tls: Box<TlsStream<TcpStream>>,
    src: SocketAddr,
    shared: Arc<Encrypted>,
    slot: Slot,
    shutdown: watch::Receiver<bool>,
) {
    let hostname = shared.hostname();
    let token = token_from_server_name(tls.get_ref().1.server_name(), &hostname);
    let peer = Peer {
        addr: src,
        protocol: Protocol::Dot,
        token,
    };
    let timeouts = Timeouts {
        idle: Duration::from_secs(shared.idle_secs()),
        write: shared.write_timeout(),
    };
    let pipeline = Arc::clone(&shared.pipeline);
    let _ = stream::serve(tls, peer, pipeline, &slot, timeouts, shutdown).await;
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `make` would return, without making one.
    fn future_size<A, Fut>(_make: impl FnOnce(A) -> Fut) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// An idle connection costs its task's future: it must not hold the TLS stream twice (once
    /// as an argument, once inside the protocol loop), as it did when the stream moved by
    /// value (5.5 KiB for DoT), or room for hyper's HTTP/1.1 state in every HTTP/2 one's
    /// (2.4 KiB for DoH).
    #[test]
    fn connection_futures_stay_small() {
        type Args = (
            Box<TlsStream<TcpStream>>,
            SocketAddr,
            Arc<Encrypted>,
            Slot,
            watch::Receiver<bool>,
        );
        let dot = future_size(|(tls, src, shared, slot, shutdown): Args| {
            connection(tls, src, shared, slot, shutdown)
        });
        let doh = future_size(|(tls, src, shared, slot, shutdown): Args| {
            crate::server::doh::connection(tls, src, shared, slot, shutdown)
        });
        assert!(dot <= 1024, "DoT connection future: {dot} bytes");
        assert!(doh <= 1024, "DoH connection future: {doh} bytes");
    }
}
