//! The DNS-over-TLS front end (RFC 7858): TLS handshake, device token from the server name,
//! then the same length-prefixed stream loop as TCP. Transport only.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

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
    let mut stop = shutdown.clone();
    loop {
        let Some((tcp, src, permit)) = shared.accept(&listener, &mut stop).await else {
            return;
        };
        let acceptor = acceptor.clone();
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let Some(tls) = shared.handshake(&acceptor, tcp).await else {
                return;
            };
            let hostname = shared.hostname();
            let token = token_from_server_name(tls.get_ref().1.server_name(), &hostname);
            let peer = Peer {
                addr: src,
                protocol: Protocol::Dot,
                token,
            };
            let idle = Duration::from_secs(shared.idle_secs());
            let _ = stream::serve(tls, peer, Arc::clone(&shared.handler), idle, shutdown).await;
            drop(permit);
        });
    }
}
