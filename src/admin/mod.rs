//! The admin HTTP listener (`[admin] listen`): `GET /metrics` (Prometheus text format),
//! `GET /health`, `POST /reload[?force=true]` (from this machine only; `schooldns reload` uses
//! it), the hit-log read API `GET /api/hits`, `GET /api/summary` (bearer tokens, see
//! `api.rs`), and the parents' setup pages `GET /setup/<token>`, `/apple/<token>.mobileconfig`. Beside the query path: it reads counters, the current policy and the hit log's
//! file, nothing else.

mod api;
pub mod http;

pub use api::HitReader;

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::access::Access;
use crate::devices::setup::SetupPages;
use crate::hitlog::HitStats;
use crate::hitlog::export::SchoolNames;
use crate::metrics::{Metrics, escape};
use crate::policy::SharedPolicy;
use crate::reload::ReloadStats;
use crate::resolve::Resolver;
use crate::server::encrypted::Encrypted;
use crate::server::tls::CertStore;
use http::{Request, Response};

/// Everything `/metrics` reports on.
pub struct AdminState {
    /// Query counters.
    pub metrics: Arc<Metrics>,
    /// Refusals to networks outside every school, answered and dropped.
    pub refusals: Arc<crate::server::refusals::RefusalLimit>,
    /// Cache and upstreams.
    pub resolver: Arc<Resolver>,
    /// Reload counters.
    pub reloads: Arc<ReloadStats>,
    /// The live policy (entries per category).
    pub policy: Arc<SharedPolicy>,
    /// Wakes the reload thread for `POST /reload`.
    pub reload: std::sync::Mutex<std::sync::mpsc::Sender<crate::reload::Trigger>>,
    /// Hit-log counters.
    pub hits: Arc<HitStats>,
    /// Tokens allowed to read the hit log (replaced on reload).
    pub access: Arc<ArcSwap<Access>>,
    /// Where and how the hit log is read.
    pub reader: HitReader,
    /// `/setup/<token>` and `/apple/<token>.mobileconfig`.
    pub setup: Arc<SetupPages>,
    /// The encrypted listeners' counters, when any is configured.
    pub encrypted: Option<Arc<Encrypted>>,
    /// The TLS certificate's reload counters, when any is configured.
    pub certs: Option<Arc<CertStore>>,
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
        self.hits.render(&mut out);
        crate::logging::render_metrics(&mut out);
        let _ = write!(
            out,
            "# HELP schooldns_refusals_dropped_total Refusals not sent: the source network \
             outside every school used up [server] refused_per_second.\n\
             # TYPE schooldns_refusals_dropped_total counter\nschooldns_refusals_dropped_total {}\n",
            self.refusals.dropped.load(Ordering::Relaxed)
        );
        let policy = self.policy.load();
        let devices = policy.devices();
        let _ = write!(
            out,
            "# HELP schooldns_devices Home devices in the devices file, by state.\n\
             # TYPE schooldns_devices gauge\nschooldns_devices{{state=\"live\"}} {}\n\
             schooldns_devices{{state=\"revoked\"}} {}\n",
            devices.live(),
            devices.all().len() - devices.live()
        );
        if let Some(encrypted) = &self.encrypted {
            let _ = write!(
                out,
                "# HELP schooldns_tls_connections DoT and DoH connections open.\n\
                 # TYPE schooldns_tls_connections gauge\nschooldns_tls_connections {}\n\
                 # HELP schooldns_tls_handshake_failures_total TLS handshakes that failed or timed out.\n\
                 # TYPE schooldns_tls_handshake_failures_total counter\n\
                 schooldns_tls_handshake_failures_total {}\n",
                encrypted.open.load(Ordering::Relaxed),
                encrypted.failed_handshakes.load(Ordering::Relaxed)
            );
        }
        if let Some(certs) = &self.certs {
            let _ = write!(
                out,
                "# HELP schooldns_tls_cert_reloads_total Certificates reloaded from changed files.\n\
                 # TYPE schooldns_tls_cert_reloads_total counter\nschooldns_tls_cert_reloads_total {}\n\
                 # HELP schooldns_tls_cert_reload_failures_total Certificate reloads refused (the old one kept serving).\n\
                 # TYPE schooldns_tls_cert_reload_failures_total counter\n\
                 schooldns_tls_cert_reload_failures_total {}\n",
                certs.reloads.load(Ordering::Relaxed),
                certs.failed_reloads.load(Ordering::Relaxed)
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
            let _ = request(stream, state).await;
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
        let why = state
            .reloads
            .last_refusal
            .lock()
            .map(|why| why.clone())
            .unwrap_or_default();
        (
            "409 Conflict",
            format!("reload refused; the previous policy keeps serving: {why}\n"),
        )
    } else {
        let version = state.policy.load().version();
        (
            "200 OK",
            format!("reloaded, policy version {version:016x}\n"),
        )
    }
}

async fn request(mut stream: TcpStream, state: Arc<AdminState>) -> std::io::Result<()> {
    let peer_is_local = stream.peer_addr().is_ok_and(|p| p.ip().is_loopback());
    let Some(request) = http::read_request(&mut stream).await? else {
        return Ok(());
    };
    let response = route(request, peer_is_local, &state).await;
    http::write_response(&mut stream, response).await
}

async fn route(request: Request, peer_is_local: bool, state: &Arc<AdminState>) -> Response {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/reload") => {
            let force = matches!(request.param("force"), Some("true" | "1"));
            let (status, body) = reload(state, peer_is_local, force).await;
            Response::text(status, body)
        }
        ("GET", "/metrics") => Response {
            content_type: "text/plain; version=0.0.4",
            ..Response::text("200 OK", state.render_metrics())
        },
        ("GET", "/health") => Response::text("200 OK", "ok\n"),
        ("GET", "/api/hits" | "/api/summary") => read_api(request, state).await,
        ("GET", path) if path.starts_with("/setup/") || path.starts_with("/apple/") => {
            setup_page(state, path)
        }
        ("GET", _) => Response::text("404 Not Found", "not found\n"),
        _ => Response::text("405 Method Not Allowed", "method not allowed\n"),
    }
}

/// A parent's setup page or Apple profile (the same as the DoH listener serves).
fn setup_page(state: &AdminState, path: &str) -> Response {
    let Some(page) = state.setup.get(path) else {
        return Response::text("404 Not Found", "not found\n");
    };
    let status = match page.status {
        200 => "200 OK",
        404 => "404 Not Found",
        _ => "503 Service Unavailable",
    };
    let headers = page
        .headers()
        .into_iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    Response {
        status,
        content_type: page.content_type,
        headers,
        body: page.body,
    }
}

/// `/api/*`: settles the reader's role from the bearer token, then queries on a blocking
/// thread (SQLite does file I/O; the runtime's workers answer DNS).
async fn read_api(request: Request, state: &Arc<AdminState>) -> Response {
    let access = state.access.load_full();
    let Some(role) = access.authorize(request.header("authorization")).cloned() else {
        let mut response = Response::error(
            "401 Unauthorized",
            "a bearer token from [[admin.tokens]] is required",
        );
        response
            .headers
            .push("WWW-Authenticate: Bearer realm=\"schooldns\"".into());
        return response;
    };
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || {
        if request.path == "/api/summary" {
            api::summary(&request, &role, &state.reader)
        } else {
            let schools: SchoolNames = state
                .policy
                .load()
                .schools()
                .iter()
                .map(|s| (s.id.clone(), s.name.clone()))
                .collect();
            api::hits(&request, &role, &state.reader, &schools)
        }
    })
    .await
    .unwrap_or_else(|_| Response::error("500 Internal Server Error", "query failed"))
}
