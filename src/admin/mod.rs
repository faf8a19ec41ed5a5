//! The admin HTTP listener (`[admin] listen`), on axum (`http.rs`): `GET /metrics` (Prometheus text format),
//! `GET /health`, `POST /reload[?force=true]` (from this machine only; `schooldns reload` uses
//! it), the hit-log read API `GET /api/hits`, `GET /api/summary` (bearer tokens, see
//! `api.rs`), and the parents' setup pages `GET /setup/<token>`, `/apple/<token>.mobileconfig`. Beside the query path: it reads counters, the current policy and the hit log's
//! file, nothing else.

pub mod api;
pub mod http;

pub use api::HitReader;

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::devices::setup::SetupPages;
use crate::hitlog::HitStats;
use crate::live::Live;
use crate::metrics::{Metrics, escape};
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
    pub refusals: Arc<crate::query::refusals::RefusalLimit>,
    /// Connection slots of every stream listener (TCP, TLS, admin).
    pub slots: Vec<Arc<crate::server::slots::Slots>>,
    /// Cache and upstreams.
    pub resolver: Arc<Resolver>,
    /// Reload counters.
    pub reloads: Arc<ReloadStats>,
    /// The live state: the policy (entries per category, devices, schools), the admin tokens
    /// and the upstreams.
    pub live: Arc<Live>,
    /// Wakes the reload thread for `POST /reload`.
    pub reload: std::sync::Mutex<std::sync::mpsc::Sender<crate::reload::Trigger>>,
    /// Hit-log counters.
    pub hits: Arc<HitStats>,
    /// The hit log's writer, which also keeps the audit log of reads and exports.
    pub hit_log: crate::hitlog::HitSender,
    /// Where and how the hit log is read.
    pub reader: HitReader,
    /// `/setup/<token>` and `/apple/<token>.mobileconfig`.
    pub setup: Arc<SetupPages>,
    /// The encrypted listeners' counters, when any is configured.
    pub encrypted: Option<Arc<Encrypted>>,
    /// The TLS certificate's reload counters, when any is configured.
    pub certs: Option<Arc<CertStore>>,
    /// The admin listener's own connection slots.
    pub admin_slots: Arc<crate::server::slots::Slots>,
    /// How long a client may take to read a response.
    pub write_timeout: Duration,
    /// The web console's sessions and sign-in limits.
    pub console: crate::console::Console,
    /// With a PostgreSQL hit store: the shipper's counters and every instance's row.
    pub ship: Option<Arc<crate::hitlog::postgres::ship::ShipStats>>,
    /// This resolver's instance id (`[hitlog] instance`).
    pub instance: String,
    /// With a config origin (`[sync]`): what the sync thread has done.
    pub sync: Option<Arc<crate::sync::SyncStatus>>,
    /// With a config origin: where the console's changes go to be published.
    pub publisher: std::sync::Mutex<Option<crate::sync::Publisher>>,
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
        self.live.load().upstreams.render(&mut out);
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
        for category in self.live.policy().categories() {
            let _ = writeln!(
                out,
                "schooldns_category_entries{{category=\"{}\"}} {}",
                escape(&category.name),
                category.entries()
            );
        }
        self.hits.render(&mut out);
        if let Some(ship) = &self.ship {
            ship.render(&mut out, &self.instance);
        }
        if let Some(sync) = &self.sync {
            sync.render(&mut out);
        }
        crate::logging::render_metrics(&mut out);
        crate::server::slots::render_metrics(&mut out, &self.slots);
        let _ = write!(
            out,
            "# HELP schooldns_refusals_dropped_total Refusals not sent: the source network \
             outside every school used up [server] refused_per_second.\n\
             # TYPE schooldns_refusals_dropped_total counter\nschooldns_refusals_dropped_total {}\n",
            self.refusals.dropped.load(Ordering::Relaxed)
        );
        let policy = self.live.policy();
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
                encrypted.slots.open(),
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

/// How long a client gets for the TLS handshake of the admin listener.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Serves the admin endpoints until `shutdown`, each connection inside the listener's slots;
/// over TLS when `tls` is given (`[admin] tls`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = router(Arc::clone(&state));
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait_for(|&s| s) => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
        };
        // An address over its share is closed at once.
        let Some(slot) = state.admin_slots.admit(peer.ip()) else {
            continue;
        };
        let (router, write_timeout, shutdown) =
            (router.clone(), state.write_timeout, shutdown.clone());
        match &tls {
            None => {
                tokio::spawn(http::connection(
                    stream,
                    peer,
                    router,
                    slot,
                    write_timeout,
                    shutdown,
                ));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    http::connection(stream, peer, router, slot, write_timeout, shutdown).await;
                });
            }
        }
    }
}

/// The admin endpoints.
fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/reload", post(reload_route))
        .route("/metrics", get(metrics_route))
        .route("/health", get(health_route))
        .route("/api/hits", get(read_api))
        .route("/api/summary", get(read_api))
        .route("/api/top", get(read_api))
        .route("/api/audit", get(read_api))
        .route("/setup/{*rest}", get(setup_route))
        .route("/apple/{*rest}", get(setup_route))
        .route("/check/{*rest}", get(setup_route))
        .merge(crate::console::routes())
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(request: axum::extract::Request) -> Response {
    if request.method() == ::http::Method::GET {
        Response::text("404 Not Found", "not found\n")
    } else {
        Response::text("405 Method Not Allowed", "method not allowed\n")
    }
}

/// `ok`, or `503 degraded` while every upstream is failing (cached answers still flow).
async fn health_route(State(state): State<Arc<AdminState>>) -> Response {
    if state.live.load().upstreams.all_failing() {
        Response::text(
            "503 Service Unavailable",
            "degraded: every upstream is failing\n",
        )
    } else {
        Response::text("200 OK", "ok\n")
    }
}

async fn metrics_route(State(state): State<Arc<AdminState>>) -> Response {
    Response {
        content_type: "text/plain; version=0.0.4",
        ..Response::text("200 OK", state.render_metrics())
    }
}

async fn reload_route(
    State(state): State<Arc<AdminState>>,
    request: axum::extract::Request,
) -> Response {
    let peer_is_local = http::peer_of(&request).is_some_and(|p| p.ip().is_loopback());
    let force = matches!(Request::of(&request).param("force"), Some("true" | "1"));
    let (status, body) = reload(&state, peer_is_local, force).await;
    Response::text(status, body)
}

async fn setup_route(
    State(state): State<Arc<AdminState>>,
    request: axum::extract::Request,
) -> Response {
    setup_page(&state, request.uri().path())
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
        let version = state.live.policy().version();
        let restart = state
            .reloads
            .needs_restart
            .lock()
            .map(|keys| keys.join(", "))
            .unwrap_or_default();
        let mut body = format!("reloaded, policy version {version:016x}\n");
        if !restart.is_empty() {
            body.push_str(&format!(
                "these changed settings take effect only after a restart: {restart}\n"
            ));
        }
        ("200 OK", body)
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
        stream: None,
    }
}

/// An API token as the audit log names it: its role and the first 8 hex digits of its hash
/// (enough to tell a district's tokens apart, useless for guessing one).
fn token_label(role: &crate::access::Role, authorization: Option<&str>) -> String {
    let token = authorization
        .and_then(|h| h.trim().split_once(' '))
        .map_or("", |(_, t)| t.trim());
    let hash = crate::access::sha256_hex(token);
    format!("token:{role}:{}", &hash[..8])
}

/// `/api/*`: settles the reader's role from the bearer token, then queries on a blocking
/// thread (SQLite does file I/O; the runtime's workers answer DNS), and records the read in
/// the audit log.
async fn read_api(
    State(state): State<Arc<AdminState>>,
    axum_request: axum::extract::Request,
) -> Response {
    let request = Request::of(&axum_request);
    let live = state.live.load_full();
    // A bearer token (scripts), or a console session (the console's export links).
    let token_role = live
        .access
        .authorize(request.header("authorization"))
        .cloned();
    let session = match token_role {
        Some(_) => None,
        None => crate::console::session_of(&state, request.header("cookie")),
    };
    let Some(role) = token_role.or_else(|| session.as_ref().map(|s| s.role.clone())) else {
        let mut response = Response::error(
            "401 Unauthorized",
            "a bearer token from [[admin.tokens]] is required",
        );
        response
            .headers
            .push("WWW-Authenticate: Bearer realm=\"schooldns\"".into());
        return response;
    };
    let reader = state.reader.following(&live.config.hitlog);
    let actor = match &session {
        Some(session) => format!("user:{}", session.user),
        None => token_label(&role, request.header("authorization")),
    };
    let address = http::peer_of(&axum_request).map(|p| p.ip().to_string());
    let known = api::Known::of(&live);
    let target = request.target();
    let export = request.param("format") == Some("csv");
    let response = tokio::task::spawn_blocking(move || match request.path.as_str() {
        "/api/summary" => api::summary(&request, &role, &reader, &known),
        "/api/top" => api::top(&request, &role, &reader, &known),
        "/api/audit" => api::audit(&request, &role, &reader),
        _ => api::hits(&request, &role, &reader, &known),
    })
    .await
    .unwrap_or_else(|_| Response::error("500 Internal Server Error", "query failed"));
    // Who read or exported what is itself recorded, refusals included.
    state.hit_log.audit(crate::hitlog::audit::AuditEntry {
        time_ms: crate::hitlog::now_ms(),
        actor,
        address,
        action: if export { "export" } else { "read" }.into(),
        detail: format!("GET {target} -> {}", response.status),
    });
    response
}
