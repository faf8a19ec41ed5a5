//! The admin HTTP listener (`[admin] listen`): `GET /metrics` (Prometheus text format),
//! `GET /health`, and `POST /reload[?force=true]` (from this machine only; `schooldns reload`
//! uses it). Beside the query path: it reads counters and the current policy, nothing else.
//!
//! HTTP/1.1 with one request per connection is all these two endpoints need, so it is written
//! here on tokio rather than pulled in from a web framework; requests are bounded in size and
//! time.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::metrics::{Metrics, escape};
use crate::policy::SharedPolicy;
use crate::reload::ReloadStats;
use crate::resolve::Resolver;

/// Everything `/metrics` reports on.
pub struct AdminState {
    /// Query counters.
    pub metrics: Arc<Metrics>,
    /// Cache and upstreams.
    pub resolver: Arc<Resolver>,
    /// Reload counters.
    pub reloads: Arc<ReloadStats>,
    /// The live policy (entries per category).
    pub policy: Arc<SharedPolicy>,
    /// Wakes the reload thread for `POST /reload`.
    pub reload: std::sync::Mutex<std::sync::mpsc::Sender<crate::reload::Trigger>>,
}

impl AdminState {
    /// The `/metrics` body.
    pub fn render_metrics(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.metrics.render(&mut out);
        let cache = self.resolver.cache();
        let (hits, misses) = cache.counters();
        let _ = write!(
            out,
            "# HELP schooldns_cache_hits_total Answers served from the cache.\n\
             # TYPE schooldns_cache_hits_total counter\nschooldns_cache_hits_total {hits}\n\
             # HELP schooldns_cache_misses_total Questions the cache could not answer fresh.\n\
             # TYPE schooldns_cache_misses_total counter\nschooldns_cache_misses_total {misses}\n\
             # HELP schooldns_cache_entries Answers held in the cache.\n\
             # TYPE schooldns_cache_entries gauge\nschooldns_cache_entries {}\n",
            cache.len()
        );
        self.resolver.upstreams().render(&mut out);
        let _ = write!(
            out,
            "# HELP schooldns_reloads_total Policy reloads swapped in.\n\
             # TYPE schooldns_reloads_total counter\nschooldns_reloads_total {}\n\
             # HELP schooldns_reload_failures_total Reloads refused (the old policy kept serving).\n\
             # TYPE schooldns_reload_failures_total counter\nschooldns_reload_failures_total {}\n",
            self.reloads.succeeded.load(Ordering::Relaxed),
            self.reloads.failed.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP schooldns_category_entries Distinct names per category in the live policy.\n",
        );
        out.push_str("# TYPE schooldns_category_entries gauge\n");
        for category in self.policy.load().categories() {
            let _ = writeln!(
                out,
                "schooldns_category_entries{{category=\"{}\"}} {}",
                escape(&category.name),
                category.entries()
            );
        }
        out
    }
}

/// Serves the admin endpoints until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.wait_for(|&s| s) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let _ = request(stream, &state).await;
        });
    }
}

/// `POST /reload[?force=true]`: asks for a reload and waits (up to a minute) for its outcome.
/// Only clients on the same machine may ask: the admin listener may face the school network.
async fn reload(state: &AdminState, peer_is_local: bool, force: bool) -> (&'static str, String) {
    if !peer_is_local {
        return (
            "403 Forbidden",
            "reload is only accepted from this machine\n".into(),
        );
    }
    let done =
        |s: &ReloadStats| s.succeeded.load(Ordering::SeqCst) + s.failed.load(Ordering::SeqCst);
    let (before, failed_before) = (
        done(&state.reloads),
        state.reloads.failed.load(Ordering::SeqCst),
    );
    let sent = state
        .reload
        .lock()
        .map(|tx| tx.send(crate::reload::Trigger::Reload { force }).is_ok())
        .unwrap_or(false);
    if !sent {
        return (
            "503 Service Unavailable",
            "the reload thread is not running\n".into(),
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while done(&state.reloads) == before {
        if tokio::time::Instant::now() > deadline {
            return ("504 Gateway Timeout", "reload still running\n".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if state.reloads.failed.load(Ordering::SeqCst) > failed_before {
        (
            "409 Conflict",
            "reload refused; the previous policy keeps serving (see the server log)\n".into(),
        )
    } else {
        let version = state.policy.load().version();
        (
            "200 OK",
            format!("reloaded, policy version {version:016x}\n"),
        )
    }
}

async fn request(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let peer_is_local = stream.peer_addr().is_ok_and(|p| p.ip().is_loopback());
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        // A client gets ten seconds to send its request; a reload may then take longer.
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 || buf.len() > 16 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let force = target.contains("force=true") || target.contains("force=1");
    let (status, content_type, body) = match (method, path) {
        ("POST", "/reload") => {
            let (status, body) = reload(state, peer_is_local, force).await;
            (status, "text/plain", body)
        }
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4",
            state.render_metrics(),
        ),
        ("GET", "/health") => ("200 OK", "text/plain", "ok\n".to_string()),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
