//! What the DoT and DoH front ends share: the handler, the connection limit, the idle and
//! handshake timeouts, the public hostname (which tokens are prefixed to) and the setup
//! pages. Settings that a reload may change sit behind atomics and an `ArcSwap`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::handler::Handler;
use crate::config::Config;
use crate::devices::setup::SetupPages;

/// Longest a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by the encrypted listeners.
pub struct Encrypted {
    /// The request handler every front end feeds.
    pub handler: Arc<Handler>,
    /// Setup pages (DoH serves them).
    pub setup: Arc<SetupPages>,
    hostname: ArcSwap<String>,
    idle_secs: AtomicU64,
    connections: Arc<Semaphore>,
    /// Connections open now.
    pub open: AtomicU64,
    /// Handshakes that failed or timed out.
    pub failed_handshakes: AtomicU64,
}

impl Encrypted {
    /// Shared state for `config`'s `[tls]` settings.
    pub fn new(config: &Config, handler: Arc<Handler>, setup: Arc<SetupPages>) -> Encrypted {
        Encrypted {
            handler,
            setup,
            hostname: ArcSwap::from_pointee(hostname_of(config)),
            idle_secs: AtomicU64::new(config.tls.idle_timeout_secs),
            connections: Arc::new(Semaphore::new(config.tls.max_connections)),
            open: AtomicU64::new(0),
            failed_handshakes: AtomicU64::new(0),
        }
    }

    /// Follows a reloaded config (hostname and idle timeout; the connection limit needs a
    /// restart).
    pub fn update(&self, config: &Config) {
        self.hostname.store(Arc::new(hostname_of(config)));
        self.idle_secs
            .store(config.tls.idle_timeout_secs, Ordering::Relaxed);
    }

    /// The public hostname, lowercase.
    pub fn hostname(&self) -> Arc<String> {
        self.hostname.load_full()
    }

    /// The idle timeout in seconds.
    pub fn idle_secs(&self) -> u64 {
        self.idle_secs.load(Ordering::Relaxed)
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
        F: Fn(Box<TlsStream<TcpStream>>, SocketAddr, Arc<Encrypted>, watch::Receiver<bool>) -> Fut
            + Copy
            + Send
            + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut stop = shutdown.clone();
        while let Some((tcp, src, permit)) = self.accept(&listener, &mut stop).await {
            let acceptor = acceptor.clone();
            let shared = Arc::clone(&self);
            let shutdown = shutdown.clone();
            // Memory per idle connection is what 10,000 held-open phones cost. The handshake's
            // state is boxed so the task does not keep room for it once done, and the TLS
            // stream (1.2 KiB) lives once on the heap and moves as a pointer: moved by value
            // through the async calls, each future kept its own copy (5.5 KiB per connection).
            tokio::spawn(async move {
                if let Some(tls) = Box::pin(shared.handshake(&acceptor, tcp)).await {
                    connection(tls, src, Arc::clone(&shared), shutdown).await;
                }
                drop(permit);
            });
        }
    }

    /// Waits for a connection slot and a connection; `None` once `stop` turns true.
    async fn accept(
        self: &Arc<Self>,
        listener: &TcpListener,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<(TcpStream, SocketAddr, Permit)> {
        loop {
            let permit = tokio::select! {
                _ = stop.wait_for(|&s| s) => return None,
                permit = Arc::clone(&self.connections).acquire_owned() => permit.ok()?,
            };
            let accepted = tokio::select! {
                _ = stop.wait_for(|&s| s) => return None,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((tcp, src)) => {
                    let _ = tcp.set_nodelay(true);
                    self.open.fetch_add(1, Ordering::Relaxed);
                    return Some((
                        tcp,
                        src,
                        Permit {
                            _slot: permit,
                            shared: Arc::clone(self),
                        },
                    ));
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

/// A connection slot: released, and the connection counted closed, when dropped.
pub struct Permit {
    _slot: OwnedSemaphorePermit,
    shared: Arc<Encrypted>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
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
