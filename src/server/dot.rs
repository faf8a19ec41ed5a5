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
use super::handler::Protocol;
use super::stream::{self, Peer};
use super::tls::token_from_server_name;

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
    tls: TlsStream<TcpStream>,
    src: SocketAddr,
    shared: Arc<Encrypted>,
    shutdown: watch::Receiver<bool>,
) {
    let hostname = shared.hostname();
    let token = token_from_server_name(tls.get_ref().1.server_name(), &hostname);
    let peer = Peer {
        addr: src,
        protocol: Protocol::Dot,
        token,
    };
    let idle = Duration::from_secs(shared.idle_secs());
    let _ = stream::serve(tls, peer, Arc::clone(&shared.handler), idle, shutdown).await;
}
