//! The DNS-over-HTTPS front end (RFC 8484), which also serves the setup pages on the hostname
//! parents already use. Transport only: DNS messages go to the same handler as every other
//! front end.
//!
//! Paths: `/dns-query/<token>` (and `/dns-query`, which carries no token and is refused or
//! given `[devices] default_profile`) with `GET ?dns=<base64url>` or `POST` of
//! `application/dns-message`; `/setup/<token>`; `/apple/<token>.mobileconfig`.
//!
//! A client that negotiates `h2` by ALPN (every browser and OS resolver) is served by the lean
//! HTTP/2 connection in `http2/`; anything else by hyper (`http1.rs`). Both hand complete
//! requests to `answer.rs`.

pub mod answer;
pub mod http1;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::encrypted::Encrypted;
use super::http2;
use answer::DohService;

/// Accepts DoH connections until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Encrypted>,
    shutdown: watch::Receiver<bool>,
) {
    shared.serve(listener, acceptor, shutdown, connection).await;
}

/// Serves one connection with the HTTP version its ALPN chose.
pub async fn connection(
    tls: Box<TlsStream<TcpStream>>,
    src: SocketAddr,
    shared: Arc<Encrypted>,
    shutdown: watch::Receiver<bool>,
) {
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        let idle = Duration::from_secs(shared.idle_secs());
        let service = DohService { shared, src };
        let _ = http2::serve(tls, service, http2::Limits::default(), idle, shutdown).await;
    } else {
        // Boxed: hyper's connection state is large, and only the rare HTTP/1.1 client should
        // pay for it, not every idle HTTP/2 connection's task.
        Box::pin(http1::connection(tls, src, shared, shutdown)).await;
    }
}
