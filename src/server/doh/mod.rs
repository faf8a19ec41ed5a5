//! The DNS-over-HTTPS front end (RFC 8484), which also serves the setup pages on the hostname
//! parents already use. Transport only: DNS messages go to the same pipeline as every other
//! front end.
//!
//! Paths: `/dns-query/<token>` (and `/dns-query`, which carries no token and is refused or
//! given `[devices] default_profile`) with `GET ?dns=<base64url>` or `POST` of
//! `application/dns-message`; `/setup/<token>`; `/apple/<token>.mobileconfig`.
//!
//! Both HTTP versions run on hyper (`http.rs`), which hands complete requests to `answer.rs`.

pub mod answer;
pub mod http;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::encrypted::Encrypted;
use super::slots::Slot;

/// Accepts DoH connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Encrypted>,
    shutdown: watch::Receiver<bool>,
) {
    shared.serve(listener, acceptor, shutdown, connection).await;
}

/// Serves one connection with the HTTP version the client speaks (ALPN `h2`, or HTTP/1.1).
pub async fn connection(
    tls: Box<TlsStream<TcpStream>>,
    src: SocketAddr,
    shared: Arc<Encrypted>,
    slot: Slot,
    shutdown: watch::Receiver<bool>,
) {
    // Boxed: hyper's connection state is large, and the accept loop's task should not hold
    // room for it while the handshake runs.
    Box::pin(http::connection(tls, src, shared, slot, shutdown)).await;
}
