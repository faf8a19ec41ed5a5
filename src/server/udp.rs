//! The UDP front end: datagrams in, handler, datagrams out. Transport only.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{Semaphore, watch};

use super::handler::{Handled, Handler, Protocol};

/// Largest query accepted over UDP (EDNS payloads above this are not needed for questions).
const MAX_QUERY: usize = 4096;

/// Serves one UDP socket until `shutdown` turns true. Each query runs as its own task so a slow
/// upstream answer never delays the next client; `in_flight` bounds how many run at once and
/// lets shutdown wait for them.
pub async fn serve(
    socket: Arc<UdpSocket>,
    handler: Arc<Handler>,
    in_flight: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_QUERY];
    loop {
        let (len, src) = tokio::select! {
            _ = shutdown.wait_for(|&stop| stop) => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            },
        };
        // Blocks, refusals and cache hits are answered right here; only questions that need
        // an upstream become tasks.
        let pending = match handler.handle_now(&buf[..len], src, Protocol::Udp) {
            Handled::Done(Some(response)) => {
                let _ = socket.send_to(&response, src).await;
                continue;
            }
            Handled::Done(None) => continue,
            Handled::Pending(pending) => pending,
        };
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let socket = Arc::clone(&socket);
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            if let Some(response) = handler.finish(pending).await {
                let _ = socket.send_to(&response, src).await;
            }
            drop(permit);
        });
    }
}
