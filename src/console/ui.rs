//! What every console page shares: the request's context (who, which language, which time
//! zone), the layout with its navigation and language switch, the security headers, and the
//! small helpers pages format with. Templates are maud's: every value is escaped unless a page
//! says `PreEscaped` (only for SVG the server itself drew).

use maud::{DOCTYPE, Markup, html};

use super::i18n::Lang;
use super::session::Session;
use crate::access::Role;
use crate::admin::http::Response;

/// The console's one stylesheet and script, served from the binary.
pub const CSS: &str = include_str!("../../assets/console.css");
/// See [`CSS`].
pub const JS: &str = include_str!("../../assets/console.js");

/// No inline scripts or styles, nothing from elsewhere, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One request's view: the signed-in person, the page language, the time zone.
pub struct Ctx {
    /// The session.
    pub session: Session,
    /// The page's language.
    pub lang: Lang,
    /// `[hitlog] timezone`.
    pub zone: jiff::tz::TimeZone,
    /// The path and query of this page (the language switch comes back to it).
    pub target: String,
}

impl Ctx {
    /// The role.
    pub fn role(&self) -> &Role {
        &self.session.role
    }

    /// A time in the district's zone, `YYYY-MM-DD HH:MM`.
    pub fn time(&self, ms: i64) -> String {
        local(ms, &self.zone)
    }

    /// The hidden CSRF field every state-changing form carries.
    pub fn csrf(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.session.csrf); }
    }
}

/// A time in `zone`, `YYYY-MM-DD HH:MM`.
pub fn local(ms: i64, zone: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_default()
}

/// A navigation entry: path, Vietnamese, English, who sees it.
type NavEntry = (&'static str, &'static str, &'static str, fn(&Role) -> bool);

/// The navigation.
const NAV: [NavEntry; 12] = [
    ("/console/", "Tổng quan", "Overview", |_| true),
    ("/console/hits", "Lượt chặn", "Hits", |_| true),
    ("/console/schools", "Trường học", "Schools", |_| true),
    ("/console/exceptions", "Ngoại lệ", "Exceptions", |_| {
        true
    }),
    (
        "/console/requests",
        "Yêu cầu mở chặn",
        "Unblock requests",
        |_| true,
    ),
    (
        "/console/check",
        "Kiểm tra tên miền",
        "Check a name",
        |_| true,
    ),
    ("/console/services", "Dịch vụ", "Services", |_| true),
    (
        "/console/time",
        "Lịch học & lịch thi",
        "Schedules & calendar",
        |_| true,
    ),
    ("/console/devices", "Thiết bị", "Devices", |_| true),
    (
        "/console/lists",
        "Danh sách & tình trạng",
        "Lists & health",
        |_| true,
    ),
    ("/console/instances", "Máy chủ DNS", "Resolvers", |r| {
        r.school().is_none()
    }),
    (
        "/console/audit",
        "Nhật ký truy cập",
        "Audit log",
        |r| r.school().is_none(),
    ),
];

/// The full page: header with the person and the language switch, navigation, content.
pub fn layout(ctx: &Ctx, title: &str, active: &str, content: Markup) -> Markup {
    let lang = ctx.lang;
    let other = lang.other();
    let switch = format!(
        "/console/lang?to={}&back={}",
        other.code(),
        form_urlencoded::byte_serialize(ctx.target.as_bytes()).collect::<String>()
    );
    let role = match ctx.role() {
        Role::District => lang.t("Phòng Giáo dục", "District").to_string(),
        Role::Police => lang.t("Công an", "Police").to_string(),
        Role::School(id) => format!("{} {id}", lang.t("Trường", "School")),
    };
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · schooldns" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console/" { "schooldns" }
                    span.who { (ctx.session.display_name) " · " (role) }
                    a href=(switch) hreflang=(other.code()) id="lang-switch" { (other.t("Tiếng Việt", "English")) }
                    form.inline method="post" action="/console/signout" {
                        (ctx.csrf())
                        button.link type="submit" { (lang.t("Đăng xuất", "Sign out")) }
                    }
                }
                nav.main {
                    @for (path, vi, en, shown) in NAV {
                        @if shown(ctx.role()) {
                            a class=[(path == active).then_some("on")] href=(path) { (lang.t(vi, en)) }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// A page without the navigation (sign-in, first password change, printable card).
pub fn bare(lang: Lang, title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · schooldns" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body { main { (content) } }
        }
    }
}

/// The security headers every console response carries.
fn secured(mut response: Response) -> Response {
    response.headers.extend([
        format!("Content-Security-Policy: {CSP}"),
        "X-Frame-Options: DENY".to_string(),
        "Referrer-Policy: no-referrer".to_string(),
        "X-Content-Type-Options: nosniff".to_string(),
    ]);
    response
}

/// An HTML page.
pub fn page(status: &'static str, markup: Markup) -> Response {
    secured(Response {
        content_type: "text/html; charset=utf-8",
        ..Response::text(status, markup.into_string())
    })
}

/// A `303 See Other` to `location` (after a form, or to the sign-in page).
pub fn redirect(location: &str) -> Response {
    let mut response = secured(Response::text("303 See Other", ""));
    response.headers.push(format!("Location: {location}"));
    response
}

/// A static asset, cacheable for a day.
pub fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = secured(Response {
        content_type,
        ..Response::text("200 OK", body)
    });
    response
        .headers
        .push("Cache-Control: public, max-age=86400".into());
    response
}

/// A page saying what went wrong, inside the layout.
pub fn problem(ctx: &Ctx, status: &'static str, message: &str) -> Response {
    let title = ctx.lang.t("Không thực hiện được", "Could not do that");
    page(
        status,
        layout(
            ctx,
            title,
            "",
            html! {
                h1 { (title) }
                p.alert { (message) }
                p { a href="/console/" { (ctx.lang.t("Về trang tổng quan", "Back to the overview")) } }
            },
        ),
    )
}

/// Thousands separated the way the language writes them.
pub fn number(lang: Lang, n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let sep = lang.t(".", ",");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Percent-encodes a query value.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}
