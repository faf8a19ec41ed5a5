//! The TCP front end: accepts connections and hands each to the length-prefixed stream loop
//! (`stream.rs`), closing idle ones. Transport only.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::handler::{Handler, Protocol};
use super::stream::{self, Peer};

/// A connection that sends nothing for this long is closed (RFC 7766 §6.2.3 suggests seconds).
const IDLE: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown`; `connections` bounds how many are open at once.
pub async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    connections: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        let (stream, src) = tokio::select! {
            _ = stop.wait_for(|&s| s) => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!(error = %e, "tcp accept error");
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&connections).acquire_owned().await else {
            return;
        };
        let handler = Arc::clone(&handler);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let peer = Peer {
                addr: src,
                protocol: Protocol::Tcp,
                token: None,
            };
            let _ = stream::serve(stream, peer, handler, IDLE, shutdown).await;
            drop(permit);
        });
    }
}
