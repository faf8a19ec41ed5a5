//! The pages that read: sign-in and password change, overview, hits and a hit's detail,
//! schools, check a name, lists and health, and the audit log. Hit-log queries run on
//! blocking threads through the API's own filter (`admin::api::filter`), pinned to the
//! person's school before any parameter is read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use maud::html;

use super::ui::{self, Ctx, enc, number};
use super::{Incoming, charts, no_users, session};
use crate::access::Role;
use crate::admin::AdminState;
use crate::admin::api::{self, HitReader, Known};
use crate::admin::http::{Request, Response};
use crate::hitlog::query::{self, HitFilter, TopBy, TopRow};
use crate::hitlog::record::HitRecord;
use crate::hitlog::{now_ms, time};

/// Records per hits page.
const PAGE: usize = 50;
const DAY_MS: i64 = 86_400_000;

/// What a page reads the hit log with.
struct Reading {
    reader: HitReader,
    known: Known,
}

fn reading(state: &AdminState) -> Reading {
    let live = state.live.load_full();
    Reading {
        reader: state.reader.following(&live.config.hitlog),
        known: Known::of(&live),
    }
}

/// Runs a hit-log query off the runtime's workers; a failure becomes the page's message.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())?
}

fn opened(reader: &HitReader) -> Result<Option<query::HitDb>, String> {
    api::open(reader).map_err(|e| e.0)
}

/// A filter from `params` (the API's parameter names), pinned to the role's school.
fn filter_of(params: &Request, role: &Role, reading: &Reading) -> Result<HitFilter, String> {
    api::filter(params, role, &reading.reader, &reading.known).map_err(|r| {
        serde_json::from_str::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| r.status.to_string())
    })
}

fn params(pairs: &[(&str, String)]) -> Request {
    Request {
        method: "GET".into(),
        path: "/console".into(),
        query: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        headers: Vec::new(),
    }
}

/// The local midnight that starts today, in ms.
fn today_start(zone: &jiff::tz::TimeZone) -> i64 {
    let now = jiff::Timestamp::now().to_zoned(zone.clone());
    now.start_of_day()
        .map_or(now_ms(), |d| d.timestamp().as_millisecond())
}

// ------------------------------------------------------------------ sign-in and password

/// `GET`/`POST /console/signin`.
pub async fn signin(state: &Arc<AdminState>, incoming: &Incoming) -> Response {
    let lang = incoming.lang();
    let live = state.live.load_full();
    let next = incoming
        .head
        .param("next")
        .or(Some(incoming.field("next")))
        .filter(|n| n.starts_with("/console/") && !n.starts_with("//"))
        .unwrap_or("/console/")
        .to_string();
    let form = |message: Option<&str>, name: &str| {
        let title = lang.t("Đăng nhập", "Sign in");
        ui::bare(
            lang,
            title,
            html! {
                div.signin.card.stack {
                    h1 { "schooldns · " (title) }
                    p.muted { (lang.t("Bảng điều khiển lọc DNS cho trường học", "The school DNS filter's console")) }
                    @if live.config.console.users.is_none() || live.users.is_empty() { (no_users(lang)) }
                    @if let Some(message) = message { p.alert role="alert" { (message) } }
                    form.stack method="post" action="/console/signin" {
                        input type="hidden" name="next" value=(next);
                        div { label for="user" { (lang.t("Tên đăng nhập", "User name")) }
                            input #user name="user" autocomplete="username" required value=(name); }
                        div { label for="password" { (lang.t("Mật khẩu", "Password")) }
                            input #password name="password" type="password" autocomplete="current-password" required; }
                        button type="submit" { (title) }
                    }
                    p.muted { a href=(format!("/console/lang?to={}&back=/console/signin", lang.other().code())) { (lang.other().t("Tiếng Việt", "English")) } }
                }
            },
        )
    };
    if incoming.head.method != "POST" {
        return ui::page("200 OK", form(None, ""));
    }
    let (name, password) = (
        incoming.field("user").to_string(),
        incoming.field("password").to_string(),
    );
    let address = incoming.address();
    if let Some(wait) = state.console.limiter.wait(&name, &address) {
        tracing::warn!(user = %name, %address, "sign-in refused: too many failures");
        super::audit(
            state,
            &format!("user:{name}"),
            &address,
            "sign-in-refused",
            "too many failed sign-ins".into(),
        );
        let minutes = wait.as_secs().div_ceil(60);
        let message = format!(
            "{} {minutes} {}",
            lang.t(
                "Quá nhiều lần đăng nhập sai. Hãy thử lại sau",
                "Too many failed sign-ins. Try again in"
            ),
            lang.t("phút.", "minutes.")
        );
        return ui::page("429 Too Many Requests", form(Some(&message), &name));
    }
    let user = live.users.iter().find(|u| u.name == name).cloned();
    let checked = user.clone();
    // Argon2 takes tens of milliseconds: off the runtime's workers. An unknown name costs the
    // same as a known one, so timing does not tell which names exist.
    let verified = tokio::task::spawn_blocking(move || match &checked {
        Some(u) => u.verify(&password),
        None => {
            let _ = super::users::hash(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    let role = user.as_ref().and_then(|u| u.role());
    match (user, role) {
        (Some(user), Some(role)) if verified && !user.disabled => {
            state.console.limiter.succeeded(&name);
            let Some(session) = state.console.sessions.open(&user, role) else {
                return Response::text("503 Service Unavailable", "no randomness for a session\n");
            };
            super::audit(
                state,
                &format!("user:{name}"),
                &address,
                "sign-in",
                String::new(),
            );
            tracing::info!(user = %name, %address, "console sign-in");
            let to = if session.must_change {
                "/console/password"
            } else {
                next.as_str()
            };
            let mut response = ui::redirect(to);
            response.headers.push(format!(
                "Set-Cookie: {}",
                session::cookie(&session.id, state.console.secure)
            ));
            response
        }
        _ => {
            state.console.limiter.failed(&name, &address);
            tracing::warn!(user = %name, %address, "console sign-in failed");
            super::audit(
                state,
                &format!("user:{name}"),
                &address,
                "sign-in-failed",
                String::new(),
            );
            let message = lang.t(
                "Sai tên đăng nhập hoặc mật khẩu.",
                "Wrong user name or password.",
            );
            ui::page("401 Unauthorized", form(Some(message), &name))
        }
    }
}

/// Shortest password a person may choose.
const MIN_PASSWORD: usize = 10;

/// `GET`/`POST /console/password`: change one's own password (required at first sign-in).
pub async fn password(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let form = |message: Option<&str>| {
        let title = lang.t("Đổi mật khẩu", "Change your password");
        ui::bare(
            lang,
            title,
            html! {
                div.signin.card.stack {
                    h1 { (title) }
                    @if ctx.session.must_change {
                        p.notice { (lang.t("Đây là mật khẩu dùng một lần. Hãy chọn mật khẩu của riêng bạn (ít nhất 10 ký tự).",
                            "This was a one-time password. Choose your own (at least 10 characters).")) }
                    }
                    @if let Some(message) = message { p.alert role="alert" { (message) } }
                    form.stack method="post" action="/console/password" {
                        (ctx.csrf())
                        div { label for="current" { (lang.t("Mật khẩu hiện tại", "Current password")) }
                            input #current name="current" type="password" autocomplete="current-password" required; }
                        div { label for="new" { (lang.t("Mật khẩu mới", "New password")) }
                            input #new name="new" type="password" autocomplete="new-password" minlength="10" required; }
                        div { label for="repeat" { (lang.t("Nhập lại mật khẩu mới", "New password again")) }
                            input #repeat name="repeat" type="password" autocomplete="new-password" minlength="10" required; }
                        button type="submit" { (lang.t("Lưu", "Save")) }
                    }
                }
            },
        )
    };
    if incoming.head.method != "POST" {
        return ui::page("200 OK", form(None));
    }
    let live = state.live.load_full();
    let Some(path) = live.config.console.users.clone() else {
        return ui::page("409 Conflict", form(Some("[console] users is not set")));
    };
    let (current, new, repeat) = (
        incoming.field("current").to_string(),
        incoming.field("new").to_string(),
        incoming.field("repeat").to_string(),
    );
    if new.chars().count() < MIN_PASSWORD {
        return ui::page(
            "400 Bad Request",
            form(Some(lang.t(
                "Mật khẩu mới cần ít nhất 10 ký tự.",
                "The new password needs at least 10 characters.",
            ))),
        );
    }
    if new != repeat {
        return ui::page(
            "400 Bad Request",
            form(Some(lang.t(
                "Hai lần nhập mật khẩu mới không giống nhau.",
                "The two new passwords differ.",
            ))),
        );
    }
    if new == current {
        return ui::page(
            "400 Bad Request",
            form(Some(lang.t(
                "Mật khẩu mới phải khác mật khẩu cũ.",
                "The new password must differ from the old one.",
            ))),
        );
    }
    let name = ctx.session.user.clone();
    let user = live.users.iter().find(|u| u.name == name).cloned();
    let changed = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> {
        if !user.is_some_and(|u| u.verify(&current)) {
            return Ok(None);
        }
        super::users::set_password(&path, &name, &new)?;
        let hash = super::users::read(&path)?
            .into_iter()
            .find(|u| u.name == name)
            .map(|u| u.password);
        Ok(hash)
    })
    .await;
    match changed {
        Ok(Ok(Some(hash))) => {
            state
                .console
                .sessions
                .password_changed(&ctx.session.id, &hash);
            super::audit(
                state,
                &format!("user:{}", ctx.session.user),
                &incoming.address(),
                "password-changed",
                String::new(),
            );
            ui::redirect("/console/")
        }
        Ok(Ok(None)) => {
            state
                .console
                .limiter
                .failed(&ctx.session.user, &incoming.address());
            ui::page(
                "400 Bad Request",
                form(Some(lang.t(
                    "Mật khẩu hiện tại không đúng.",
                    "The current password is wrong.",
                ))),
            )
        }
        Ok(Err(err)) => ui::page("500 Internal Server Error", form(Some(&format!("{err:#}")))),
        Err(err) => ui::page("500 Internal Server Error", form(Some(&err.to_string()))),
    }
}

// ------------------------------------------------------------------ overview

/// Categories the police watch: a rise is highlighted.
const ATTACK_CATEGORIES: [&str; 2] = ["malware", "phishing"];

struct OverviewData {
    days: Vec<String>,
    series: BTreeMap<String, Vec<i64>>,
    per_school: BTreeMap<String, (i64, i64)>,
    last_hit: BTreeMap<String, i64>,
    rises: Vec<(String, i64, f64)>,
    top_names: Vec<TopRow>,
    top_clients: Vec<TopRow>,
    top_devices: Vec<TopRow>,
    today: i64,
    week: i64,
}

/// `GET /console/?days=7|30`.
pub async fn overview(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let days_shown: i64 = match incoming.head.param("days") {
        Some("30") => 30,
        _ => 7,
    };
    let reading = reading(state);
    let filter = match filter_of(&params(&[]), ctx.role(), &reading) {
        Ok(f) => f,
        Err(message) => return ui::problem(ctx, "400 Bad Request", &message),
    };
    let zone = ctx.zone.clone();
    let schools: Vec<String> = reading.known.schools.keys().cloned().collect();
    let scope_school = ctx.role().school().map(str::to_string);
    let data = blocking(move || {
        let today = today_start(&zone);
        let Some(mut conn) = opened(&reading.reader)? else {
            return Ok(None);
        };
        let e = |e: query::ReadError| e.to_string();
        // 30 days of day × category × school: the chart, the per-school table and the
        // attack baseline all come from this one query.
        let mut month = filter.clone();
        month.since_ms = Some(today - 29 * DAY_MS);
        let rows = conn.summary(&month, &zone).map_err(e)?;
        let day_names: Vec<String> = (0..days_shown)
            .rev()
            .map(|back| time::local_date(today - back * DAY_MS + DAY_MS / 2, &zone).to_string())
            .collect();
        let today_name = day_names.last().cloned().unwrap_or_default();
        let week_start = time::local_date(today - 6 * DAY_MS + DAY_MS / 2, &zone).to_string();
        let mut series: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        let mut per_school: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        let mut attacks: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        let (mut today_total, mut week_total) = (0, 0);
        for row in &rows {
            if let Some(d) = day_names.iter().position(|day| *day == row.day) {
                series
                    .entry(row.category.clone())
                    .or_insert_with(|| vec![0; day_names.len()])[d] += row.hits;
            }
            let school = row.school.clone().unwrap_or_default();
            let entry = per_school.entry(school.clone()).or_default();
            if row.day == today_name {
                entry.0 += row.hits;
                today_total += row.hits;
            }
            if row.day >= week_start {
                entry.1 += row.hits;
                week_total += row.hits;
            }
            if ATTACK_CATEGORIES.contains(&row.category.as_str()) {
                *attacks
                    .entry(school)
                    .or_default()
                    .entry(row.day.clone())
                    .or_default() += row.hits;
            }
        }
        // A rise: today's malware and phishing above 3× the school's daily mean of the
        // 29 days before (at least 10), the police's "is a school under attack?".
        let mut rises = Vec::new();
        for (school, days) in &attacks {
            let today_hits = days.get(&today_name).copied().unwrap_or(0);
            let before: i64 = days
                .iter()
                .filter(|(d, _)| **d != today_name)
                .map(|(_, h)| h)
                .sum();
            let usual = before as f64 / 29.0;
            if today_hits >= 10 && today_hits as f64 > 3.0 * usual {
                rises.push((school.clone(), today_hits, usual));
            }
        }
        // The tops of the last 24 hours, in one pass over their records.
        let mut day = filter.clone();
        day.since_ms = Some(now_ms() - DAY_MS);
        let tops = conn.tops(&day, 10).map_err(e)?;
        let in_scope: Vec<String> = schools
            .iter()
            .filter(|s| scope_school.as_ref().is_none_or(|own| own == *s))
            .cloned()
            .collect();
        let last_hit = conn.last_hits(&in_scope).map_err(e)?;
        Ok(Some(OverviewData {
            days: day_names,
            series,
            per_school,
            last_hit,
            rises,
            top_names: tops.names,
            top_clients: tops.clients,
            top_devices: tops.devices,
            today: today_total,
            week: week_total,
        }))
    })
    .await;
    let data = match data {
        Ok(data) => data,
        Err(message) => return ui::problem(ctx, "503 Service Unavailable", &message),
    };
    let live = state.live.load_full();
    let policy = &live.policy;
    let devices = policy.devices();
    let schools: Vec<&crate::policy::School> = policy
        .schools()
        .iter()
        .filter(|s| ctx.role().covers(&s.id))
        .collect();
    let device_count = |school: &str| {
        devices
            .all()
            .iter()
            .filter(|d| {
                !d.revoked
                    && d.school
                        .is_some_and(|i| policy.schools()[i as usize].id == school)
            })
            .count()
    };
    let title = lang.t("Tổng quan", "Overview");
    let top_table = |heading: &str, rows: &[TopRow], link: &dyn Fn(&str) -> String| {
        html! {
            div.card {
                h2 { (heading) }
                @if rows.is_empty() { p.muted { (lang.t("Chưa có lượt chặn.", "No blocks yet.")) } }
                @else {
                    table { tbody {
                        @for row in rows {
                            tr {
                                td.name { @match &row.key { Some(k) => a href=(link(k)) { (k) }, None => span.muted { "—" } } }
                                td.num { (number(lang, row.hits)) }
                            }
                        }
                    } }
                }
            }
        }
    };
    let content = html! {
        h1 { (title) }
        @if let Some(data) = &data {
            @for (school, today_hits, usual) in &data.rises {
                div.alert role="alert" {
                    strong { (lang.t("Cảnh báo: ", "Alert: ")) }
                    (format!("{} {} — {} {} {:.1}/{}",
                        lang.t("mã độc và lừa đảo tăng tại", "malware and phishing rising at"),
                        if school.is_empty() { lang.t("thiết bị ở nhà", "home devices") } else { school.as_str() },
                        today_hits,
                        lang.t("lượt hôm nay, thường", "hits today, usually"),
                        usual,
                        lang.t("ngày", "day")))
                    " " a href=(format!("/console/hits?school={}&category=malware,phishing&since=24h", enc(school))) { (lang.t("Xem", "See them")) }
                }
            }
        }
        div.grid {
            div.card { div.muted { (lang.t("Lượt chặn hôm nay", "Blocked today")) } div.stat #blocked-today { (number(lang, data.as_ref().map_or(0, |d| d.today))) } }
            div.card { div.muted { (lang.t("Lượt chặn 7 ngày", "Blocked in 7 days")) } div.stat { (number(lang, data.as_ref().map_or(0, |d| d.week))) } }
            div.card { div.muted { (lang.t("Thiết bị ở nhà", "Home devices")) } div.stat { (devices.live()) } }
        }
        div.card {
            h2 { (lang.t("Lượt chặn theo ngày", "Blocked attempts per day"))
                " " span.muted {
                    @if days_shown == 7 { (lang.t("7 ngày", "7 days")) " · " a href="/console/?days=30" { (lang.t("30 ngày", "30 days")) } }
                    @else { a href="/console/?days=7" { (lang.t("7 ngày", "7 days")) } " · " (lang.t("30 ngày", "30 days")) }
                }
            }
            @match &data {
                Some(d) if !d.series.is_empty() => (charts::stacked_days(&d.days, &d.series, lang.t("Lượt chặn theo ngày và nhóm", "Blocked attempts per day and category"))),
                _ => p.muted { (lang.t("Chưa có lượt chặn nào được ghi lại.", "No blocked attempts recorded yet.")) },
            }
        }
        @if let Some(d) = &data {
            div.grid {
                (top_table(lang.t("Tên miền bị chặn nhiều nhất (24 giờ)", "Top blocked names (24 hours)"), &d.top_names, &|k| format!("/console/hits?name={}", enc(k))))
                (top_table(lang.t("Máy bị chặn nhiều nhất (24 giờ)", "Top clients (24 hours)"), &d.top_clients, &|k| format!("/console/hits?client={}", enc(k))))
                (top_table(lang.t("Thiết bị ở nhà bị chặn nhiều nhất (24 giờ)", "Top home devices (24 hours)"), &d.top_devices, &|k| format!("/console/hits?device={}", enc(k))))
            }
        }
        div.card {
            h2 { (lang.t("Theo trường", "Per school")) }
            table.wide {
                thead { tr {
                    th { (lang.t("Trường", "School")) }
                    th.num { (lang.t("Hôm nay", "Today")) }
                    th.num { (lang.t("7 ngày", "7 days")) }
                    th.num.opt { (lang.t("Thiết bị", "Devices")) }
                    th.opt { (lang.t("Lần chặn gần nhất", "Last hit")) }
                } }
                tbody {
                    @for school in &schools {
                        @let counts = data.as_ref().and_then(|d| d.per_school.get(&school.id)).copied().unwrap_or_default();
                        tr {
                            td { a href=(format!("/console/schools/{}", enc(&school.id))) { (school.name) } br; span.muted { (school.id) } }
                            td.num { (number(lang, counts.0)) }
                            td.num { (number(lang, counts.1)) }
                            td.num.opt { (device_count(&school.id)) }
                            td.opt { @match data.as_ref().and_then(|d| d.last_hit.get(&school.id)) { Some(ms) => (ctx.time(*ms)), None => "—" } }
                        }
                    }
                }
            }
        }
    };
    ui::page("200 OK", ui::layout(ctx, title, "/console/", content))
}

// ------------------------------------------------------------------ hits

/// The filter parameters a hits page keeps in its links (and passes to the exports).
const HIT_PARAMS: [&str; 7] = [
    "school", "category", "name", "client", "device", "since", "until",
];

/// `GET /console/hits?…`: the searchable table, newest first, cursor pages.
pub async fn hits(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let head = &incoming.head;
    let reading = reading(state);
    let filter = filter_of(head, ctx.role(), &reading);
    let cursor = head.param("cursor").and_then(query::Cursor::decode);
    let kept: Vec<(String, String)> = head
        .query
        .iter()
        .filter(|(k, v)| HIT_PARAMS.contains(&k.as_str()) && !v.is_empty())
        .cloned()
        .collect();
    let query_string = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&kept)
        .finish();
    let page = match &filter {
        Ok(f) => {
            let (f, reader) = (f.clone(), reading.reader.clone());
            Some(
                blocking(move || match opened(&reader)? {
                    Some(mut conn) => conn.list(&f, Some(PAGE), cursor).map_err(|e| e.to_string()),
                    None => Ok(query::Page {
                        hits: Vec::new(),
                        next: None,
                    }),
                })
                .await,
            )
        }
        Err(_) => None,
    };
    let selected = |name: &str, value: &str| {
        HitFilter::list(head.params(name))
            .iter()
            .any(|v| v == value)
    };
    let title = lang.t("Lượt chặn", "Hits");
    let live = state.live.load_full();
    let schools: Vec<&crate::policy::School> = live
        .policy
        .schools()
        .iter()
        .filter(|s| ctx.role().covers(&s.id))
        .collect();
    let content = html! {
        h1 { (title) }
        details.card open[!kept.is_empty() || incoming.head.param("open").is_some()] {
        summary { (lang.t("Bộ lọc", "Filters")) @if !kept.is_empty() { " (" (kept.len()) ")" } }
        form.filters method="get" action="/console/hits" {
            div { label for="f-name" { (lang.t("Tên miền chứa", "Name contains")) } input #f-name name="name" value=(head.param("name").unwrap_or("")); }
            @if ctx.role().school().is_none() {
                div { label for="f-school" { (lang.t("Trường", "Schools")) }
                    select #f-school name="school" multiple {
                        @for s in &schools { option value=(s.id) selected[selected("school", &s.id)] { (s.name) } }
                    }
                }
            }
            div { label for="f-category" { (lang.t("Nhóm", "Categories")) }
                select #f-category name="category" multiple {
                    @for c in &reading.known.categories { option value=(c) selected[selected("category", c)] { (c) } }
                }
            }
            div { label for="f-client" { (lang.t("Địa chỉ máy", "Client address")) } input #f-client name="client" value=(head.param("client").unwrap_or("")); }
            div { label for="f-device" { (lang.t("Thiết bị", "Device")) } input #f-device name="device" value=(head.param("device").unwrap_or("")); }
            div { label for="f-since" { (lang.t("Từ (vd. 24h, 7d, 2026-12-01)", "Since (e.g. 24h, 7d, 2026-12-01)")) } input #f-since name="since" value=(head.param("since").unwrap_or("")); }
            div { label for="f-until" { (lang.t("Đến", "Until")) } input #f-until name="until" value=(head.param("until").unwrap_or("")); }
            div { button type="submit" { (lang.t("Tìm", "Search")) } }
        }
        }
        div.actions {
            a.button.secondary #export-csv href=(format!("/api/hits?{query_string}{}format=csv&lang={}", if query_string.is_empty() { "" } else { "&" }, lang.code())) { (lang.t("Xuất CSV", "Export CSV")) }
            a.button.secondary #export-json href=(format!("/api/hits?{query_string}{}limit=1000", if query_string.is_empty() { "" } else { "&" })) { (lang.t("Xuất JSON (1000 dòng/trang)", "Export JSON (1000 per page)")) }
        }
        @match (&filter, &page) {
            (Err(message), _) => p.alert role="alert" { (message) },
            (_, Some(Err(message))) => p.alert role="alert" { (message) },
            (_, Some(Ok(page))) => {
                @if page.hits.is_empty() { p.muted #no-hits { (lang.t("Không có lượt chặn nào khớp.", "No hits match.")) } }
                @else {
                    div.card {
                        table.wide #hits {
                            thead { tr {
                                th { (lang.t("Thời gian", "Time")) }
                                th { (lang.t("Tên miền", "Name")) }
                                th { (lang.t("Nhóm", "Category")) }
                                th.opt { (lang.t("Trường", "School")) }
                                th.opt { (lang.t("Máy / thiết bị", "Client / device")) }
                                th.num { (lang.t("Số lần", "Count")) }
                            } }
                            tbody {
                                @for hit in &page.hits {
                                    tr {
                                        td { a href=(format!("/console/hits/{}", hit.id)) { (ctx.time(hit.time_ms)) } }
                                        td.name { (hit.qname) }
                                        td { span.badge { (hit.category) } @if let Some(service) = &hit.service { " " span.badge.timed { (service) } } }
                                        td.opt { (hit.school.as_deref().unwrap_or("—")) }
                                        td.opt { (hit.device.as_deref().or(hit.client.as_deref()).unwrap_or("—")) }
                                        td.num { (hit.count) }
                                    }
                                }
                            }
                        }
                        div.pager {
                            @if cursor.is_some() { a.button.secondary href=(format!("/console/hits?{query_string}")) { (lang.t("Mới nhất", "Newest")) } }
                            @if let Some(next) = page.next {
                                a.button.secondary #next-page href=(format!("/console/hits?{query_string}{}cursor={}", if query_string.is_empty() { "" } else { "&" }, next.encode())) { (lang.t("Cũ hơn →", "Older →")) }
                            }
                        }
                    }
                }
            },
            _ => {},
        }
    };
    ui::page("200 OK", ui::layout(ctx, title, "/console/hits", content))
}

/// `GET /console/hits/<id>`: one record's detail.
pub async fn hit(state: &Arc<AdminState>, ctx: &Ctx, id: &str) -> Response {
    let lang = ctx.lang;
    let Ok(id) = id.parse::<i64>() else {
        return ui::problem(
            ctx,
            "404 Not Found",
            lang.t("Không có lượt chặn này.", "No such hit."),
        );
    };
    let reading = reading(state);
    let reader = reading.reader.clone();
    let found: Result<Option<HitRecord>, String> = blocking(move || match opened(&reader)? {
        Some(mut conn) => conn.record_by_id(id).map_err(|e| e.to_string()),
        None => Ok(None),
    })
    .await;
    let record = match found {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ui::problem(
                ctx,
                "404 Not Found",
                lang.t("Không có lượt chặn này.", "No such hit."),
            );
        }
        Err(message) => return ui::problem(ctx, "503 Service Unavailable", &message),
    };
    // A school's reader sees only its school's records: another's is as good as absent.
    if let Some(own) = ctx.role().school()
        && record.school.as_deref() != Some(own)
    {
        return ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Lượt chặn này thuộc trường khác.",
                "This hit belongs to another school.",
            ),
        );
    }
    let title = lang.t("Chi tiết lượt chặn", "Hit detail");
    let list = match (&record.list, record.line) {
        (Some(list), Some(line)) => format!("{list}:{line}"),
        (Some(list), None) => list.clone(),
        _ => "—".into(),
    };
    let content = html! {
        h1 { (title) }
        div.card {
            dl.facts #hit-detail {
                dt { (lang.t("Tên miền", "Name")) } dd { (record.qname) " (" (record.qtype) ")" }
                dt { (lang.t("Quyết định", "Decision")) } dd { span.badge.block { (record.decision) } }
                dt { (lang.t("Nhóm", "Category")) } dd { (record.category) }
                @if let Some(service) = &record.service { dt { (lang.t("Dịch vụ", "Service")) } dd { (service) } }
                dt { (lang.t("Danh sách", "List")) } dd { code { (list) } }
                dt { (lang.t("Mục trong danh sách", "Entry as listed")) } dd { code { (record.entry.as_deref().unwrap_or("—")) } }
                dt { (lang.t("Phiên bản chính sách", "Policy version")) } dd { code { (record.policy_version) } }
                @if let Some(instance) = &record.instance { dt { (lang.t("Máy chủ DNS", "Resolver")) } dd #instance { (instance) } }
                dt { (lang.t("Trường", "School")) } dd { (record.school.as_deref().unwrap_or("—")) }
                dt { (lang.t("Hồ sơ", "Profile")) } dd { (record.profile.as_deref().unwrap_or("—")) }
                dt { (lang.t("Máy", "Client")) } dd { (record.client.as_deref().unwrap_or("—")) }
                dt { (lang.t("Thiết bị", "Device")) } dd { (record.device.as_deref().unwrap_or("—")) }
                dt { (lang.t("Giao thức", "Protocol")) } dd { (record.protocol) }
                dt { (lang.t("Số lần lặp lại", "Repeat count")) } dd { (record.count) }
                dt { (lang.t("Lần đầu", "First seen")) } dd { (ctx.time(record.time_ms)) " · " (time::format_utc(record.time_ms)) }
                dt { (lang.t("Lần cuối", "Last seen")) } dd { (ctx.time(record.last_seen_ms)) " · " (time::format_utc(record.last_seen_ms)) }
                @if let Some(cname) = &record.cname { dt { "CNAME" } dd { (cname) } }
            }
        }
        div.actions {
            a.button.secondary href=(format!("/console/check?name={}{}", enc(&record.qname), record.school.as_ref().map(|s| format!("&school={}", enc(s))).unwrap_or_default())) { (lang.t("Kiểm tra tên miền này", "Check this name")) }
            @if let Some(school) = &record.school {
                @if ctx.role().may_change() {
                    a.button.secondary href=(format!("/console/exceptions?school={}&name={}", enc(school), enc(&record.qname))) { (lang.t("Thêm ngoại lệ", "Add an exception")) }
                }
            }
        }
    };
    ui::page("200 OK", ui::layout(ctx, title, "/console/hits", content))
}

// ------------------------------------------------------------------ schools

/// `GET /console/schools`: every school in the person's scope with networks and profiles.
pub fn schools(state: &Arc<AdminState>, ctx: &Ctx) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let policy = &live.policy;
    let title = lang.t("Trường học", "Schools");
    let content = html! {
        h1 { (title) }
        div.card {
            table.wide #schools {
                thead { tr { th { (lang.t("Trường", "School")) } th { (lang.t("Hồ sơ", "Profile")) } th.opt { (lang.t("Mạng và mạng con", "Networks and subnets")) } } }
                tbody {
                    @for school in policy.schools().iter().filter(|s| ctx.role().covers(&s.id)) {
                        tr {
                            td { a href=(format!("/console/schools/{}", enc(&school.id))) { (school.name) } br; span.muted { (school.id) } }
                            td { (policy.profile(school.profile).name) }
                            td.opt { @for (net, profile) in &school.networks { code { (net) } " → " (policy.profile(*profile).name) br; } }
                        }
                    }
                }
            }
        }
    };
    ui::page(
        "200 OK",
        ui::layout(ctx, title, "/console/schools", content),
    )
}

/// `GET /console/schools/<id>`: a school's summary, exceptions, devices, open requests.
pub async fn school(state: &Arc<AdminState>, ctx: &Ctx, id: &str) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let Some(school) = live.policy.schools().iter().find(|s| s.id == id).cloned() else {
        return ui::problem(
            ctx,
            "404 Not Found",
            lang.t("Không có trường này.", "No such school."),
        );
    };
    if !ctx.role().covers(id) {
        return ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Bạn chỉ xem được trường của mình.",
                "You may only see your own school.",
            ),
        );
    }
    let reading = reading(state);
    let filter = filter_of(
        &params(&[("school", id.to_string()), ("since", "7d".into())]),
        ctx.role(),
        &reading,
    );
    let reader = reading.reader.clone();
    let top = match filter {
        Ok(f) => {
            blocking(move || match opened(&reader)? {
                Some(mut conn) => Ok((
                    conn.top(&f, TopBy::Categories, 20)
                        .map_err(|e| e.to_string())?,
                    conn.top(&f, TopBy::Names, 10).map_err(|e| e.to_string())?,
                )),
                None => Ok((Vec::new(), Vec::new())),
            })
            .await
        }
        Err(message) => Err(message),
    };
    let now = now_ms();
    let exceptions: Vec<crate::exceptions::Exception> = live
        .config
        .console
        .exceptions
        .as_deref()
        .and_then(|p| crate::exceptions::read(p).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.in_force(now) && e.school.as_deref().is_none_or(|s| s == id))
        .collect();
    let open_requests: Vec<super::requests::UnblockRequest> = live
        .config
        .console
        .requests
        .as_deref()
        .and_then(|p| super::requests::read(p).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.school == id && r.state == super::requests::State::Open)
        .collect();
    let policy = &live.policy;
    let devices: Vec<&crate::policy::devices::Device> = policy
        .devices()
        .all()
        .iter()
        .filter(|d| {
            !d.revoked
                && d.school
                    .is_some_and(|i| policy.schools()[i as usize].id == id)
        })
        .collect();
    let content = html! {
        h1 { (school.name) " " span.muted { (school.id) } }
        div.grid {
            div.card {
                h2 { (lang.t("Lượt chặn 7 ngày theo nhóm", "Blocks in 7 days by category")) }
                @match &top {
                    Ok((categories, _)) if !categories.is_empty() => table { tbody { @for row in categories { tr { td { a href=(format!("/console/hits?school={}&category={}&since=7d", enc(id), enc(row.key.as_deref().unwrap_or("")))) { (row.key.as_deref().unwrap_or("—")) } } td.num { (number(lang, row.hits)) } } } } },
                    Ok(_) => p.muted { (lang.t("Chưa có lượt chặn.", "No blocks yet.")) },
                    Err(message) => p.alert { (message) },
                }
            }
            div.card {
                h2 { (lang.t("Tên miền bị chặn nhiều nhất", "Top blocked names")) }
                @if let Ok((_, names)) = &top { table { tbody { @for row in names { tr { td.name { (row.key.as_deref().unwrap_or("—")) } td.num { (number(lang, row.hits)) } } } } } }
            }
            div.card {
                h2 { (lang.t("Mạng", "Networks")) }
                @for (net, profile) in &school.networks { code { (net) } " → " (policy.profile(*profile).name) br; }
            }
        }
        (super::timetable::right_now(ctx, policy, &school))
        div.card {
            h2 { (lang.t("Ngoại lệ đang áp dụng", "Exceptions in force")) " " a href=(format!("/console/exceptions?school={}", enc(id))) { (lang.t("Quản lý", "Manage")) } }
            @if exceptions.is_empty() { p.muted { (lang.t("Không có.", "None.")) } }
            @else { table { tbody { @for e in &exceptions { tr { td.name { (e.name) } td { span class=(format!("badge {}", e.action_str())) { (e.action_str()) } } td { (e.school.as_deref().unwrap_or(lang.t("toàn huyện", "district-wide"))) } td { (e.reason) } } } } } }
        }
        div.card {
            h2 { (lang.t("Yêu cầu mở chặn đang chờ", "Open unblock requests")) }
            @if open_requests.is_empty() { p.muted { (lang.t("Không có.", "None.")) } }
            @else { table { tbody { @for r in &open_requests { tr { td.name { (r.name) } td { (r.reason) } td { (r.asked_by) } } } } } }
        }
        div.card {
            h2 { (lang.t("Thiết bị ở nhà của trường", "The school's home devices")) " " a href="/console/devices" { (lang.t("Quản lý", "Manage")) } }
            @if devices.is_empty() { p.muted { (lang.t("Không có.", "None.")) } }
            @else { table { tbody { @for d in &devices { tr { td { (d.name) } td.muted { (d.id) } td { (policy.profile(d.profile).name) } } } } } }
        }
    };
    ui::page(
        "200 OK",
        ui::layout(ctx, &school.name, "/console/schools", content),
    )
}

// ------------------------------------------------------------------ check a name

/// `GET /console/check?name=…&school=…|client=…|device=…[&at=…]`: the policy's `explain`, now
/// or at a local date and time (a lesson, an exam day).
pub fn check(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let head = &incoming.head;
    let live = state.live.load_full();
    let policy = &live.policy;
    let name = head.param("name").unwrap_or("").trim().to_string();
    let own_school = ctx.role().school().map(str::to_string);
    let school = own_school
        .clone()
        .or_else(|| head.param("school").map(str::to_string));
    let title = lang.t("Kiểm tra tên miền", "Check a name");
    let at_text = head.param("at").unwrap_or("").trim().to_string();
    let mut result: Option<Result<crate::policy::Explanation, String>> = None;
    if !name.is_empty() {
        result = Some((|| {
            let query =
                crate::name::QueryName::from_user(&name).map_err(|e| format!("{name:?}: {e}"))?;
            let now = crate::clock::now_ms();
            let at = match at_text.as_str() {
                "" => now,
                text => crate::hitlog::time::parse_instant(text, &ctx.zone, now)
                    .map_err(|e| format!("{text:?}: {e}"))?,
            };
            // Who asks: a device, a client address, or a school (its first network's first address).
            if let Some(device) = head.param("device").filter(|_| own_school.is_none()) {
                let d = policy
                    .devices()
                    .all()
                    .iter()
                    .find(|d| d.id == device && !d.revoked)
                    .ok_or_else(|| {
                        format!("{} {device:?}", lang.t("không có thiết bị", "no device"))
                    })?;
                let decision = policy.decide_device_at(Some(&d.token), &query, at);
                return Ok(policy.explain(std::net::IpAddr::from([0, 0, 0, 0]), &query, &decision));
            }
            let client = match head.param("client").filter(|_| own_school.is_none()) {
                Some(text) => text.parse::<std::net::IpAddr>().map_err(|_| {
                    format!(
                        "{text:?}: {}",
                        lang.t("không phải địa chỉ IP", "not an IP address")
                    )
                })?,
                None => {
                    let id = school.as_deref().ok_or_else(|| {
                        lang.t(
                            "Chọn một trường, một địa chỉ hoặc một thiết bị.",
                            "Choose a school, an address or a device.",
                        )
                        .to_string()
                    })?;
                    let s = policy
                        .schools()
                        .iter()
                        .find(|s| s.id == id)
                        .ok_or_else(|| {
                            format!("{} {id:?}", lang.t("không có trường", "no school"))
                        })?;
                    let (net, _) = s
                        .networks
                        .iter()
                        .find(|(_, p)| *p == s.profile)
                        .or(s.networks.first())
                        .ok_or_else(|| {
                            lang.t("Trường này không có mạng.", "This school has no network.")
                                .to_string()
                        })?;
                    match net.hosts().next() {
                        Some(ip) => ip,
                        None => net.addr(),
                    }
                }
            };
            let decision = policy.decide_at(client, &query, at);
            let explanation = policy.explain(client, &query, &decision);
            if let Some(own) = &own_school
                && explanation.school.as_deref() != Some(own)
            {
                return Err(lang
                    .t(
                        "Địa chỉ này không thuộc trường của bạn.",
                        "This address is not in your school.",
                    )
                    .to_string());
            }
            Ok(explanation)
        })());
    }
    let content = html! {
        h1 { (title) }
        form.filters.card method="get" action="/console/check" {
            div { label for="c-name" { (lang.t("Tên miền", "Name")) } input #c-name name="name" required value=(name); }
            div { label for="c-school" { (lang.t("Trường", "School")) }
                select #c-school name="school" {
                    @for s in policy.schools().iter().filter(|s| ctx.role().covers(&s.id)) {
                        option value=(s.id) selected[school.as_deref() == Some(s.id.as_str())] { (s.name) }
                    }
                }
            }
            @if own_school.is_none() {
                div { label for="c-client" { (lang.t("hoặc địa chỉ máy", "or a client address")) } input #c-client name="client" value=(head.param("client").unwrap_or("")); }
                div { label for="c-device" { (lang.t("hoặc thiết bị", "or a device")) } input #c-device name="device" value=(head.param("device").unwrap_or("")); }
            }
            div { label for="c-at" { (lang.t("Vào lúc (để trống: bây giờ)", "At (empty: now)")) } input #c-at name="at" type="datetime-local" value=(at_text); }
            div { button type="submit" { (lang.t("Kiểm tra", "Check")) } }
        }
        @match &result {
            Some(Ok(e)) => div.card #check-result {
                h2 { (e.name) " → " span class=(format!("badge {}", if e.decision == "block" || e.decision == "refuse" { "block" } else { "allow" })) #decision { (e.decision) } }
                dl.facts {
                    dt { (lang.t("Trường", "School")) } dd { (e.school_name.as_deref().unwrap_or("—")) }
                    dt { (lang.t("Hồ sơ", "Profile")) } dd { (e.profile.as_deref().unwrap_or("—")) }
                    @if let Some(rule) = &e.rule {
                        dt { (lang.t("Quy tắc", "Rule")) } dd { (rule.kind) " · " (rule.category) }
                        dt { (lang.t("Danh sách", "List")) } dd { code { (rule.list.as_deref().unwrap_or("—")) @if let Some(line) = rule.line { ":" (line) } } }
                        dt { (lang.t("Mục", "Entry")) } dd { code { (rule.entry) } }
                    } @else {
                        dt { (lang.t("Quy tắc", "Rule")) } dd { (lang.t("không có quy tắc nào khớp: được phép", "no rule matched: allowed")) }
                    }
                    @if let Some(o) = &e.overridden {
                        dt { (lang.t("Đã ghi đè", "Overrides")) } dd { (o.kind) " · " (o.category) " · " code { (o.list.as_deref().unwrap_or("")) @if let Some(line) = o.line { ":" (line) } " " (o.entry) } }
                    }
                    @if let Some(service) = &e.service { dt { (lang.t("Dịch vụ", "Service")) } dd { (service) } }
                    @if let Some(when) = &e.when { dt { (lang.t("Vì", "Because")) } dd #because { (when) } }
                    @if let Some(answer) = &e.answer { dt { (lang.t("Trả lời", "Answer")) } dd { (answer) } }
                    @if let Some(target) = e.rewrite { dt { (lang.t("Chuyển hướng", "Rewritten to")) } dd { (target) } }
                }
            },
            Some(Err(message)) => p.alert role="alert" { (message) },
            None => {},
        }
    };
    ui::page("200 OK", ui::layout(ctx, title, "/console/check", content))
}

// ------------------------------------------------------------------ lists and health

/// `GET /console/lists`: categories, the last reload and refusal, subscriptions, upstreams,
/// queries per second and the cache's hit ratio.
pub fn lists(state: &Arc<AdminState>, ctx: &Ctx) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let policy = &live.policy;
    let title = lang.t("Danh sách & tình trạng", "Lists & health");
    let last = state.reloads.last.lock().map(|l| l.clone()).unwrap_or(None);
    let refusal = state
        .reloads
        .last_refusal
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let refusal_ms = state.reloads.last_refusal_ms.load(Ordering::Relaxed) as i64;
    let (hits, misses) = state.resolver.cache().counters();
    let ratio = if hits + misses > 0 {
        100.0 * hits as f64 / (hits + misses) as f64
    } else {
        0.0
    };
    let queries = state.metrics.total_queries();
    let rate = state.console.rate(queries);
    let subscriptions = crate::subscriptions::status(&live.config, policy);
    let content = html! {
        h1 { (title) }
        div.grid {
            div.card { div.muted { (lang.t("Truy vấn mỗi giây", "Queries per second")) } div.stat #qps { (format!("{rate:.1}")) } div.muted { (number(lang, queries as i64)) " " (lang.t("truy vấn từ khi khởi động", "queries since start")) } }
            div.card { div.muted { (lang.t("Tỉ lệ trúng bộ nhớ đệm", "Cache hit ratio")) } div.stat { (format!("{ratio:.1} %")) } }
            div.card { div.muted { (lang.t("Phiên bản chính sách", "Policy version")) } div { code #policy-version { (format!("{:016x}", policy.version())) } } }
        }
        div.card {
            h2 { (lang.t("Lần nạp lại gần nhất", "Last reload")) }
            @match &last {
                Some(l) => {
                    p { (ctx.time(l.at_ms)) " · " (format!("{:016x}", l.version)) " · " (l.took.as_millis()) " ms" }
                    @if l.changed.is_empty() { p.muted { (lang.t("Không nhóm nào thay đổi.", "No category changed.")) } }
                    @else { table { tbody { @for (name, before, after) in &l.changed { tr { td { (name) } td.num { (before.map_or("—".to_string(), |b| number(lang, b as i64))) " → " (number(lang, *after as i64)) } } } } } }
                },
                None => p.muted { (lang.t("Chưa nạp lại lần nào từ khi khởi động.", "No reload since the start.")) },
            }
            @if !refusal.is_empty() {
                h2 { (lang.t("Lần nạp lại bị từ chối gần nhất", "Last refused reload")) }
                p.alert { (ctx.time(refusal_ms)) ": " (refusal) }
            }
        }
        div.card {
            h2 { (lang.t("Nhóm và danh sách", "Categories and lists")) }
            table.wide #categories {
                thead { tr { th { (lang.t("Nhóm", "Category")) } th.num { (lang.t("Mục", "Entries")) } th.opt { (lang.t("Nguồn", "Sources")) } th.num.opt { (lang.t("Dòng bỏ qua", "Skipped lines")) } } }
                tbody {
                    @for c in policy.categories() {
                        @let report = c.report();
                        tr {
                            td { (c.name) @if c.locked { " " span.badge { (lang.t("khoá", "locked")) } } br; span.muted { (c.description.as_deref().unwrap_or("")) } }
                            td.num { (number(lang, c.entries() as i64)) }
                            td.opt { @for f in &c.compiled.files { code { (f.path.display()) } br; } }
                            td.num.opt { (report.rejected + report.unsupported) }
                        }
                    }
                }
            }
        }
        @if !subscriptions.is_empty() {
            div.card {
                h2 { (lang.t("Danh sách tải về", "Subscriptions")) }
                table { tbody { @for s in &subscriptions { tr { td.name { (s.url) } td { (s.category) } td { (s.fetched_ms.map_or("—".to_string(), |ms| ctx.time(ms))) " " span.muted { (s.result.as_deref().unwrap_or("")) } } td.num { (s.entries.map_or("—".to_string(), |n| number(lang, n as i64))) } } } } }
            }
        }
        div.card {
            h2 { (lang.t("Máy chủ DNS phía trên", "Upstream resolvers")) }
            table { tbody { @for u in live.upstreams.health() { tr { td { code { (u.server) } } td { span class=(format!("badge {}", if u.healthy { "allow" } else { "block" })) { (if u.healthy { lang.t("tốt", "healthy") } else { lang.t("lỗi", "failing") }) } } td.num { (format!("{:.1} ms", u.rtt_ms)) } } } } }
        }
    };
    ui::page("200 OK", ui::layout(ctx, title, "/console/lists", content))
}

// ------------------------------------------------------------------ audit

/// `GET /console/audit`: the latest 200 entries (district and police).
pub async fn audit_log(state: &Arc<AdminState>, ctx: &Ctx) -> Response {
    let lang = ctx.lang;
    if ctx.role().school().is_some() {
        return ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Nhật ký truy cập dành cho Phòng Giáo dục và Công an.",
                "The audit log is for the district and the police.",
            ),
        );
    }
    let reader = reading(state).reader;
    let entries = blocking(move || match opened(&reader)? {
        Some(mut conn) => conn.audit(None, 200).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    })
    .await;
    let title = lang.t("Nhật ký truy cập", "Audit log");
    let content = html! {
        h1 { (title) }
        p.muted { (lang.t("Ai đã đăng nhập, đọc, xuất hoặc thay đổi gì, từ địa chỉ nào.", "Who signed in, read, exported or changed what, from which address.")) }
        @match &entries {
            Ok(entries) => div.card { table.wide #audit {
                thead { tr { th { (lang.t("Thời gian", "Time")) } th { (lang.t("Ai", "Who")) } th { (lang.t("Việc", "Action")) } th.opt { (lang.t("Địa chỉ", "Address")) } th { (lang.t("Chi tiết", "Detail")) } } }
                tbody { @for e in entries { tr { td { (ctx.time(e.time_ms)) } td { (e.actor) } td { span.badge { (e.action) } } td.opt { (e.address.as_deref().unwrap_or("—")) } td.name { (e.detail) } } } }
            } },
            Err(message) => p.alert { (message) },
        }
    };
    ui::page("200 OK", ui::layout(ctx, title, "/console/audit", content))
}
