//! The TCP front end: accepts connections into the listener's slots (`slots.rs`) and hands
//! each to the length-prefixed stream loop (`stream.rs`). Transport only.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::slots::Slots;
use super::stream::{self, Peer, Timeouts};
use crate::query::{Pipeline, Protocol};

/// Accepts connections until `shutdown`; `slots` bounds how many are open at once, and from
/// one address.
pub async fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
    slots: Arc<Slots>,
    timeouts: Timeouts,
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
        // An address over its share is closed at once (dropping the stream).
        let Some(slot) = slots.admit(src.ip()) else {
            continue;
        };
        let pipeline = Arc::clone(&pipeline);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let peer = Peer {
                addr: src,
                protocol: Protocol::Tcp,
                token: None,
            };
            let _ = stream::serve(stream, peer, pipeline, &slot, timeouts, shutdown).await;
        });
    }
}
