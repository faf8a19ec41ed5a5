//! What the DoT and DoH front ends share: the pipeline, the connection slots (`slots.rs`), the
//! idle, write and handshake timeouts, the public hostname (which tokens are prefixed to) and
//! the setup pages. Settings that a reload may change are read from the live snapshot.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::live::Live;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::slots::{Slot, Slots};
use crate::config::Config;
use crate::devices::setup::SetupPages;
use crate::query::Pipeline;

/// Longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the encrypted listeners.
pub struct Encrypted {
    /// The request pipeline every front end feeds.
    pub pipeline: Arc<Pipeline>,
    /// Setup pages (DoH serves them).
    pub setup: Arc<SetupPages>,
    /// The live state: hostname, idle and write timeouts follow a reload.
    live: Arc<Live>,
    /// Connection slots, shared by DoT and DoH.
    pub slots: Arc<Slots>,
    /// Handshakes that failed or timed out.
    pub failed_handshakes: AtomicU64,
}

impl Encrypted {
    /// Shared state for `config`'s `[tls]` settings.
    pub fn new(
        config: &Config,
        live: Arc<Live>,
        pipeline: Arc<Pipeline>,
        setup: Arc<SetupPages>,
    ) -> Encrypted {
        Encrypted {
            pipeline,
            setup,
            live,
            slots: Slots::new(
                "tls",
                config.tls.max_connections,
                config.server.max_connections_per_address,
            ),
            failed_handshakes: AtomicU64::new(0),
        }
    }

    /// How long one write may take (`[server] write_timeout_secs`, live).
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.live.load().config.server.write_timeout_secs)
    }

    /// The public hostname, lowercase (`[tls] hostname`, live).
    pub fn hostname(&self) -> String {
        hostname_of(&self.live.load().config)
    }

    /// The idle timeout in seconds (`[tls] idle_timeout_secs`, live).
    pub fn idle_secs(&self) -> u64 {
        self.live.load().config.tls.idle_timeout_secs
    }

    /// Accepts connections on `listener` until `shutdown`, completes each TLS handshake in its
    /// own task, and hands the stream to `connection` (the DoT or DoH protocol loop). The
    /// connection slot is held until `connection` returns.
    pub async fn serve<F, Fut>(
        self: Arc<Self>,
        listener: TcpListener,
        acceptor: TlsAcceptor,
        shutdown: watch::Receiver<bool>,
        connection: F,
    ) where
        F: Fn(
                Box<TlsStream<TcpStream>>,
                SocketAddr,
                Arc<Encrypted>,
                Slot,
                watch::Receiver<bool>,
            ) -> Fut
            + Copy
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut stop = shutdown.clone();
        while let Some((tcp, src, slot)) = self.accept(&listener, &mut stop).await {
            let acceptor = acceptor.clone();
            let shared = Arc::clone(&self);
            let shutdown = shutdown.clone();
            // Memory per idle connection is what 10,000 held-open phones cost. The handshake's
            // state is boxed so the task does not keep room for it once done, and the TLS
            // stream (1.2 KiB) lives once on the heap and moves as a pointer: moved by value
            // through the async calls, each future kept its own copy (5.5 KiB per connection).
            tokio::spawn(async move {
                // The handshake counts against the idle time: a client that never finishes
                // it is closed by the handshake timeout, or sooner for a newcomer.
                let handshake = Box::pin(shared.handshake(&acceptor, tcp));
                let tls = tokio::select! {
                    tls = handshake => tls,
                    _ = slot.closing(HANDSHAKE_TIMEOUT) => None,
                };
                if let Some(tls) = tls {
                    connection(tls, src, Arc::clone(&shared), slot, shutdown).await;
                }
            });
        }
    }

    /// Waits for a connection with a slot; `None` once `stop` turns true. A connection from
    /// an address over its share is closed at once.
    async fn accept(
        self: &Arc<Self>,
        listener: &TcpListener,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<(TcpStream, SocketAddr, Slot)> {
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|&s| s) => return None,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, src)) => {
                    let Some(slot) = self.slots.admit(src.ip()) else {
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    return Some((tcp, src, slot));
                }
                Err(e) => tracing::debug!(error = %e, "encrypted accept error"),
            }
        }
    }

    /// Completes the TLS handshake within the timeout; failures are counted, not logged per
    /// connection (scanners would flood the log).
    async fn handshake(
        &self,
        acceptor: &TlsAcceptor,
        tcp: TcpStream,
    ) -> Option<Box<TlsStream<TcpStream>>> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            _ => {
                self.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

fn hostname_of(config: &Config) -> String {
    config
        .tls
        .hostname
        .as_ref()
        .map(|h| h.get_ref().to_ascii_lowercase())
        .unwrap_or_default()
}
