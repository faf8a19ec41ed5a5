//! The web console for the district, schools and police, served by the admin listener under
//! `/console/`: who may sign in (`users`), their sessions and the sign-in limits (`session`),
//! the two languages (`i18n`), the layout and security headers (`ui`), the pages that read
//! (`pages`) and those that change something (`manage`), services and time (`timetable`), the
//! district's resolvers (`instances`), and the unblock requests' file (`requests`).
//!
//! This module owns the routes and what every request goes through first: the session cookie
//! (else the sign-in page), the first-sign-in password change, and for every `POST` the
//! session's CSRF token plus a same-origin check. Pages read the hit log through the same
//! filter, role pinning and queries as the JSON API (`admin::api`), so a school user's pages
//! can show nothing its API token could not, and every figure a page shows can be scripted.

mod charts;
pub mod i18n;
mod instances;
mod manage;
mod pages;
pub mod requests;
pub mod session;
mod timetable;
pub mod ui;
pub mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use maud::html;

use crate::admin::AdminState;
use crate::admin::http::{Request, Response, peer_of};
use crate::hitlog::audit::AuditEntry;
use i18n::Lang;
use session::{Sessions, SignInLimiter};
use ui::Ctx;

/// Largest form body accepted.
const MAX_FORM: usize = 16 * 1024;

/// The console's own state beside the admin listener's.
#[derive(Debug, Default)]
pub struct Console {
    /// Signed-in sessions.
    pub sessions: Sessions,
    /// Failed sign-ins, per user name and per address.
    pub limiter: SignInLimiter,
    /// The admin listener speaks TLS: cookies are `Secure`.
    pub secure: bool,
    /// The last sample of the query counter, for queries per second.
    rate: std::sync::Mutex<Option<(std::time::Instant, u64, f64)>>,
}

impl Console {
    /// The console of a listener that does (`secure`) or does not speak TLS.
    pub fn new(secure: bool) -> Console {
        Console {
            secure,
            ..Console::default()
        }
    }

    /// Queries per second since the previous sample (samples at most once a second).
    pub fn rate(&self, queries: u64) -> f64 {
        let mut last = self.rate.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match *last {
            Some((at, _, rate)) if now.duration_since(at) < std::time::Duration::from_secs(1) => {
                rate
            }
            Some((at, before, _)) => {
                let rate =
                    queries.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64();
                *last = Some((now, queries, rate));
                rate
            }
            None => {
                *last = Some((now, queries, 0.0));
                0.0
            }
        }
    }
}

/// The console's routes, added to the admin listener's.
pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route("/", get(|| async { ui::redirect("/console/") }))
        .route(
            "/console/static/console.css",
            get(|| async { ui::asset("text/css; charset=utf-8", ui::CSS) }),
        )
        .route(
            "/console/static/console.js",
            get(|| async { ui::asset("text/javascript; charset=utf-8", ui::JS) }),
        )
        .route("/console", get(|| async { ui::redirect("/console/") }))
        .route("/console/signin", get(handle).post(handle))
        .route("/console/signout", get(handle).post(handle))
        .route("/console/password", get(handle).post(handle))
        .route("/console/lang", get(handle))
        .route("/console/{*rest}", get(handle).post(handle))
        .route("/console/", get(handle))
}

/// A request as the console reads it: the head, the client, and a form body.
pub struct Incoming {
    /// Method, path, query, headers.
    pub head: Request,
    /// The client.
    pub peer: Option<SocketAddr>,
    /// Form fields of a `POST` (`application/x-www-form-urlencoded`).
    pub form: Vec<(String, String)>,
}

impl Incoming {
    /// The first value of a form field, trimmed ("" when absent).
    pub fn field(&self, name: &str) -> &str {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    }

    /// Every value of a form field (a multiple select), trimmed.
    pub fn fields(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// The client's address as text (for the audit log and the sign-in limits).
    pub fn address(&self) -> String {
        self.peer.map(|p| p.ip().to_string()).unwrap_or_default()
    }

    fn is_post(&self) -> bool {
        self.head.method == "POST"
    }

    fn lang(&self) -> Lang {
        let cookies = self.head.header("cookie");
        Lang::of(
            session::cookie_value(cookies, i18n::COOKIE),
            self.head.header("accept-language"),
        )
    }
}

/// Records something a person did or tried.
pub fn audit(state: &AdminState, actor: &str, address: &str, action: &str, detail: String) {
    state.hit_log.audit(AuditEntry {
        time_ms: crate::hitlog::now_ms(),
        actor: actor.to_string(),
        address: (!address.is_empty()).then(|| address.to_string()),
        action: action.to_string(),
        detail,
    });
}

/// Whether a `POST` comes from a page of this console: the browser's `Sec-Fetch-Site` must say
/// `same-origin`, or, from a browser that does not send it, an `Origin` must name this host.
/// (Pages send `Referrer-Policy: no-referrer`, under which browsers send `Origin: null`; the
/// CSRF token and the `SameSite=Strict` cookie still stand then.)
fn same_origin(head: &Request) -> bool {
    if let Some(site) = head.header("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match (head.header("origin"), head.header("host")) {
        (None | Some("null"), _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// Every console request: reads the form, settles the session, then routes.
async fn handle(State(state): State<Arc<AdminState>>, request: axum::extract::Request) -> Response {
    let head = Request::of(&request);
    let peer = peer_of(&request);
    let form = if head.method == "POST" {
        match axum::body::to_bytes(request.into_body(), MAX_FORM).await {
            Ok(bytes) => form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            Err(_) => return Response::text("413 Payload Too Large", "form too large\n"),
        }
    } else {
        Vec::new()
    };
    let incoming = Incoming { head, peer, form };
    if incoming.is_post() && !same_origin(&incoming.head) {
        audit(
            &state,
            "anonymous",
            &incoming.address(),
            "refused",
            format!("cross-site POST {}", incoming.head.path),
        );
        return Response::text("403 Forbidden", "cross-site requests are refused\n");
    }
    let path = incoming.head.path.clone();
    match path.as_str() {
        "/console/signin" => return pages::signin(&state, &incoming).await,
        "/console/lang" => return language(&incoming),
        _ => {}
    }
    let ctx = match context(&state, &incoming) {
        Ok(ctx) => ctx,
        Err(response) => return response,
    };
    if incoming.is_post() && !ctx.session.csrf_matches(incoming.field("csrf")) {
        audit(
            &state,
            &format!("user:{}", ctx.session.user),
            &incoming.address(),
            "refused",
            format!("POST {path} without a valid CSRF token"),
        );
        return ui::problem(
            &ctx,
            "403 Forbidden",
            ctx.lang.t(
                "Biểu mẫu đã hết hạn hoặc không đến từ trang này. Hãy tải lại trang và thử lại.",
                "The form expired or did not come from this console. Reload the page and try again.",
            ),
        );
    }
    if path == "/console/signout" {
        return signout(&state, &ctx, &incoming);
    }
    if ctx.session.must_change || path == "/console/password" {
        return pages::password(&state, &ctx, &incoming).await;
    }
    let segments: Vec<&str> = path
        .trim_start_matches("/console/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let post = incoming.is_post();
    match (post, segments.as_slice()) {
        (false, []) => pages::overview(&state, &ctx, &incoming).await,
        (false, ["hits"]) => pages::hits(&state, &ctx, &incoming).await,
        (false, ["hits", id]) => pages::hit(&state, &ctx, id).await,
        (false, ["schools"]) => pages::schools(&state, &ctx),
        (false, ["schools", id]) => pages::school(&state, &ctx, id).await,
        (false, ["check"]) => pages::check(&state, &ctx, &incoming),
        (false, ["lists"]) => pages::lists(&state, &ctx),
        (false, ["audit"]) => pages::audit_log(&state, &ctx).await,
        (false, ["instances"]) => instances::instances(&state, &ctx),
        (false, ["exceptions"]) => manage::exceptions(&state, &ctx, &incoming),
        (true, ["exceptions"]) => manage::add_exception(&state, &ctx, &incoming).await,
        (true, ["exceptions", id, "remove"]) => {
            manage::remove_exception(&state, &ctx, &incoming, id).await
        }
        (false, ["requests"]) => manage::requests(&state, &ctx, &incoming),
        (true, ["requests"]) => manage::ask(&state, &ctx, &incoming).await,
        (true, ["requests", id, "decide"]) => manage::decide(&state, &ctx, &incoming, id).await,
        (false, ["devices"]) => manage::devices(&state, &ctx, &incoming),
        (true, ["devices"]) => manage::add_device(&state, &ctx, &incoming).await,
        (true, ["devices", id, "revoke"]) => {
            manage::revoke_device(&state, &ctx, &incoming, id).await
        }
        (false, ["devices", id, "card"]) => manage::card(&state, &ctx, id),
        (false, ["services"]) => timetable::services(&state, &ctx, &incoming),
        (true, ["services"]) => timetable::set_services(&state, &ctx, &incoming).await,
        (false, ["time"]) => timetable::time(&state, &ctx, &incoming),
        (true, ["time"]) => timetable::add_calendar(&state, &ctx, &incoming).await,
        (true, ["time", table, index, "remove"]) => {
            timetable::remove_calendar(&state, &ctx, &incoming, table, index).await
        }
        _ => ui::problem(
            &ctx,
            "404 Not Found",
            ctx.lang.t("Không có trang này.", "There is no such page."),
        ),
    }
}

/// The signed-in person's context, or a redirect to the sign-in page.
fn context(state: &AdminState, incoming: &Incoming) -> Result<Ctx, Response> {
    let live = state.live.load_full();
    let id = session::cookie_value(incoming.head.header("cookie"), session::COOKIE);
    let Some(session) = id.and_then(|id| state.console.sessions.find(id, &live.users)) else {
        let next = ui::enc(&incoming.head.target());
        return Err(ui::redirect(&format!("/console/signin?next={next}")));
    };
    Ok(Ctx {
        session,
        lang: incoming.lang(),
        zone: crate::hitlog::time::zone(&live.config.hitlog),
        target: incoming.head.target(),
    })
}

/// The session a request's cookie carries, if live (the JSON API takes it as well as tokens).
pub fn session_of(state: &AdminState, cookies: Option<&str>) -> Option<session::Session> {
    let id = session::cookie_value(cookies, session::COOKIE)?;
    state.console.sessions.find(id, &state.live.load().users)
}

fn signout(state: &AdminState, ctx: &Ctx, incoming: &Incoming) -> Response {
    if !incoming.is_post() {
        return ui::redirect("/console/");
    }
    state.console.sessions.close(&ctx.session.id);
    audit(
        state,
        &format!("user:{}", ctx.session.user),
        &incoming.address(),
        "sign-out",
        String::new(),
    );
    let mut response = ui::redirect("/console/signin");
    response.headers.push(format!(
        "Set-Cookie: {}",
        session::cleared_cookie(state.console.secure)
    ));
    response
}

/// `/console/lang?to=en&back=/console/hits`: sets the language cookie and goes back.
fn language(incoming: &Incoming) -> Response {
    let lang = incoming
        .head
        .param("to")
        .and_then(Lang::parse)
        .unwrap_or(Lang::Vi);
    // Only a path of this console: never an open redirect.
    let back = incoming
        .head
        .param("back")
        .filter(|b| b.starts_with("/console/") && !b.starts_with("//"))
        .unwrap_or("/console/");
    let mut response = ui::redirect(back);
    response.headers.push(format!(
        "Set-Cookie: {}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        i18n::COOKIE,
        lang.code()
    ));
    response
}

/// The message of a sign-in page that cannot work: no users file configured.
fn no_users(lang: Lang) -> maud::Markup {
    html! {
        p.alert {
            (lang.t("Chưa có tài khoản nào. Trên máy chủ, chạy:", "No one can sign in yet. On the server, run:"))
        }
        pre { "schooldns users add NAME --role district" }
    }
}
