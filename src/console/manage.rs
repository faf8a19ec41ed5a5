//! The pages that change something: exceptions, unblock requests and home devices. Each
//! change checks the role first (police change nothing; a school acts for itself only), edits
//! its file off the runtime's workers (lock, atomic replace), asks for a reload at once so the
//! policy follows within a second or two, and is written to the audit log.

use std::sync::Arc;

use maud::{PreEscaped, html};

use super::requests::{self, State, UnblockRequest};
use super::ui::{self, Ctx, enc};
use super::{Incoming, audit};
use crate::admin::AdminState;
use crate::admin::http::Response;
use crate::exceptions::{self, Exception, NewException};
use crate::lists::Action;

/// Runs a file edit off the runtime's workers.
pub(super) async fn edit<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(err) => Err(err.to_string()),
    }
}

/// Asks the reload thread to reload now (the file watcher would too, after its debounce).
/// With a config origin, the change is also handed to the sync thread to publish.
pub(super) fn reload_now(state: &AdminState) {
    if let Ok(tx) = state.reload.lock() {
        let _ = tx.send(crate::reload::Trigger::Reload { force: false });
    }
    if let Some(publisher) = &*state.publisher.lock().unwrap_or_else(|e| e.into_inner()) {
        publisher.publish(format!("Changed in the console on {}", state.instance));
    }
}

fn actor(ctx: &Ctx) -> String {
    format!("user:{}", ctx.session.user)
}

fn refuse_police(ctx: &Ctx) -> Option<Response> {
    (!ctx.role().may_change()).then(|| {
        ui::problem(
            ctx,
            "403 Forbidden",
            ctx.lang.t(
                "Tài khoản Công an chỉ được xem, không thay đổi.",
                "Police accounts read; they change nothing.",
            ),
        )
    })
}

/// The school a change is for: a school user's own (asking for another is refused), or the
/// district's choice (`""`: the whole district).
fn scope_of(ctx: &Ctx, state: &AdminState, asked: &str) -> Result<Option<String>, Response> {
    let lang = ctx.lang;
    match ctx.role().school() {
        Some(own) if asked.is_empty() || asked == own => Ok(Some(own.to_string())),
        Some(_) => Err(ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Bạn chỉ thay đổi được trường của mình.",
                "You may only change your own school.",
            ),
        )),
        None if asked.is_empty() => Ok(None),
        None if state.live.load().config.has_school(asked) => Ok(Some(asked.to_string())),
        None => Err(ui::problem(
            ctx,
            "400 Bad Request",
            &format!("{} {asked:?}", lang.t("Không có trường", "No school")),
        )),
    }
}

/// When an exception ends: `for` = `good` | `3h` | `day` (the school day's end, 17:00 local)
/// | `until` (the `until` field, local date and time).
fn until_of(ctx: &Ctx, incoming: &Incoming) -> Result<Option<i64>, String> {
    let lang = ctx.lang;
    let now = jiff::Timestamp::now().to_zoned(ctx.zone.clone());
    match incoming.field("for") {
        "" | "good" => Ok(None),
        "3h" => Ok(Some(now.timestamp().as_millisecond() + 3 * 3_600_000)),
        "day" => {
            let end = now
                .date()
                .at(17, 0, 0, 0)
                .to_zoned(ctx.zone.clone())
                .map_err(|e| e.to_string())?;
            if end.timestamp() <= now.timestamp() {
                return Err(lang
                    .t(
                        "Ngày học đã kết thúc (17:00).",
                        "The school day is over (17:00).",
                    )
                    .into());
            }
            Ok(Some(end.timestamp().as_millisecond()))
        }
        "until" => {
            let text = incoming.field("until");
            let local: jiff::civil::DateTime = text.parse().map_err(|_| {
                format!(
                    "{text:?}: {}",
                    lang.t("không phải ngày giờ", "not a date and time")
                )
            })?;
            let at = local
                .to_zoned(ctx.zone.clone())
                .map_err(|e| e.to_string())?;
            Ok(Some(at.timestamp().as_millisecond()))
        }
        other => Err(format!("for: {other:?}")),
    }
}

fn exceptions_file(state: &AdminState) -> Option<std::path::PathBuf> {
    state.live.load().config.console.exceptions.clone()
}

/// The `explain` of `name` for `school` (its first network's first address), or for the
/// district's first school when `None`: what an exception would override.
fn explain_for(
    state: &AdminState,
    school: Option<&str>,
    name: &str,
) -> Option<crate::policy::Explanation> {
    let policy = state.live.policy();
    let query = crate::name::QueryName::from_user(name).ok()?;
    let s = match school {
        Some(id) => policy.schools().iter().find(|s| s.id == id)?,
        None => policy.schools().first()?,
    };
    let (net, _) = s
        .networks
        .iter()
        .find(|(_, p)| *p == s.profile)
        .or(s.networks.first())?;
    let client = net.hosts().next().unwrap_or(net.addr());
    let decision = policy.decide(client, &query);
    Some(policy.explain(client, &query, &decision))
}

fn explanation_card(ctx: &Ctx, e: &crate::policy::Explanation) -> maud::Markup {
    let lang = ctx.lang;
    html! {
        div.card #explain {
            h2 { (lang.t("Hiện tại", "Right now")) ": " (e.name) " → " span class=(format!("badge {}", if e.decision == "block" { "block" } else { "allow" })) { (e.decision) } }
            dl.facts {
                dt { (lang.t("Trường", "School")) } dd { (e.school_name.as_deref().unwrap_or("—")) }
                @if let Some(rule) = &e.rule {
                    dt { (lang.t("Quy tắc", "Rule")) } dd { (rule.kind) " · " (rule.category) " · " code { (rule.list.as_deref().unwrap_or("")) @if let Some(l) = rule.line { ":" (l) } " " (rule.entry) } }
                }
                @if let Some(o) = &e.overridden {
                    dt { (lang.t("Đã ghi đè", "Overrides")) } dd { (o.kind) " · " (o.category) " · " code { (o.list.as_deref().unwrap_or("")) @if let Some(l) = o.line { ":" (l) } " " (o.entry) } }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ exceptions

/// `GET /console/exceptions[?school=…&name=…&added=…]`.
pub fn exceptions(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let title = lang.t("Ngoại lệ", "Exceptions");
    let now = crate::hitlog::now_ms();
    let listed: Result<Vec<Exception>, String> = match &live.config.console.exceptions {
        Some(path) => exceptions::read(path).map_err(|e| format!("{e:#}")),
        None => Err(lang
            .t(
                "Chưa cấu hình [console] exceptions.",
                "[console] exceptions is not configured.",
            )
            .into()),
    };
    let visible = |e: &&Exception| match ctx.role().school() {
        Some(own) => e.school.as_deref().is_none_or(|s| s == own),
        None => true,
    };
    let name = incoming.head.param("name").unwrap_or("");
    let school = ctx
        .role()
        .school()
        .or(incoming.head.param("school"))
        .unwrap_or("");
    let preview = (!name.is_empty())
        .then(|| explain_for(state, (!school.is_empty()).then_some(school), name))
        .flatten();
    let locked: Vec<&str> = live
        .policy
        .categories()
        .iter()
        .filter(|c| c.locked)
        .map(|c| c.name.as_str())
        .collect();
    let content = html! {
        h1 { (title) }
        @if let Some(id) = incoming.head.param("added") { p.notice #added { (lang.t("Đã thêm ngoại lệ", "Exception added")) " " code { (id) } ". " (lang.t("Có hiệu lực trong vài giây.", "It takes effect within seconds.")) } }
        @if incoming.head.param("removed").is_some() { p.notice { (lang.t("Đã gỡ ngoại lệ.", "Exception removed.")) } }
        @if let Some(e) = &preview { (explanation_card(ctx, e)) }
        @if ctx.role().may_change() {
            form.card.filters method="post" action="/console/exceptions" #add-exception {
                (ctx.csrf())
                div { label for="x-name" { (lang.t("Tên miền (cả tên miền con)", "Name (and its subdomains)")) } input #x-name name="name" required value=(name); }
                div { label for="x-action" { (lang.t("Việc", "Action")) }
                    select #x-action name="action" { option value="allow" { (lang.t("Cho phép", "Allow")) } option value="block" { (lang.t("Chặn", "Block")) } } }
                div { label for="x-school" { (lang.t("Áp dụng cho", "Applies to")) }
                    select #x-school name="school" {
                        @if ctx.role().school().is_none() { option value="" { (lang.t("Toàn huyện", "The whole district")) } }
                        @for s in live.policy.schools().iter().filter(|s| ctx.role().covers(&s.id)) {
                            option value=(s.id) selected[s.id == school] { (s.name) }
                        }
                    } }
                div { label for="x-for" { (lang.t("Thời hạn", "For how long")) }
                    select #x-for name="for" {
                        option value="good" { (lang.t("Lâu dài", "For good")) }
                        option value="3h" { (lang.t("3 giờ", "3 hours")) }
                        option value="day" { (lang.t("Đến hết ngày học (17:00)", "Until the end of the school day (17:00)")) }
                        option value="until" { (lang.t("Đến thời điểm…", "Until…")) }
                    } }
                div { label for="x-until" { (lang.t("Thời điểm kết thúc", "Ends at")) } input #x-until name="until" type="datetime-local"; }
                div { label for="x-reason" { (lang.t("Lý do", "Reason")) } input #x-reason name="reason" required; }
                div { button type="submit" { (lang.t("Thêm ngoại lệ", "Add exception")) } }
            }
            @if !locked.is_empty() && ctx.role().school().is_some() {
                p.muted { (lang.t("Ngoại lệ cho phép của trường không mở được các nhóm bị khoá:", "A school's allow exception never unblocks the locked categories:")) " " (locked.join(", ")) }
            }
        }
        @match &listed {
            Err(message) => p.alert { (message) },
            Ok(list) => {
                div.card {
                    h2 { (lang.t("Đang áp dụng", "In force")) }
                    table.wide #exceptions { tbody {
                        @for e in list.iter().filter(visible).filter(|e| e.in_force(now)) {
                            tr data-name=(e.name) {
                                td.name { (e.name) }
                                td { span class=(format!("badge {}", e.action_str())) { (e.action_str()) } }
                                td { (e.school.as_deref().unwrap_or(lang.t("toàn huyện", "district-wide"))) }
                                td.opt { (e.reason) br; span.muted { (e.created_by) " · " (e.created_ms.map(|ms| ctx.time(ms)).unwrap_or_default()) } }
                                td { @match e.until_ms { Some(ms) => { (lang.t("đến ", "until ")) (ctx.time(ms)) }, None => (lang.t("lâu dài", "for good")) } }
                                td {
                                    @if ctx.role().may_change() && e.school.as_deref().is_some_and(|s| ctx.role().covers(s)) || ctx.role().school().is_none() && ctx.role().may_change() {
                                        form.inline method="post" action=(format!("/console/exceptions/{}/remove", enc(&e.id))) data-confirm=(lang.t("Gỡ ngoại lệ này?", "Remove this exception?")) {
                                            (ctx.csrf())
                                            button.secondary type="submit" { (lang.t("Gỡ", "Remove")) }
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
                div.card {
                    h2 { (lang.t("Lịch sử (đã hết hạn hoặc đã gỡ)", "History (expired or removed)")) }
                    table.wide { tbody {
                        @for e in list.iter().filter(visible).filter(|e| !e.in_force(now)).rev().take(50) {
                            tr {
                                td.name { (e.name) }
                                td { span.badge { (e.action_str()) } }
                                td { (e.school.as_deref().unwrap_or(lang.t("toàn huyện", "district-wide"))) }
                                td.opt { (e.reason) }
                                td { @match (&e.removed_by, e.removed_ms) {
                                    (Some(by), Some(ms)) => { (lang.t("gỡ bởi ", "removed by ")) (by) " · " (ctx.time(ms)) },
                                    _ => { (lang.t("hết hạn ", "expired ")) (e.until_ms.map(|ms| ctx.time(ms)).unwrap_or_default()) },
                                } }
                            }
                        }
                    } }
                }
            },
        }
    };
    ui::page(
        "200 OK",
        ui::layout(ctx, title, "/console/exceptions", content),
    )
}

/// An exception the console is asked for.
struct Wanted {
    school: Option<String>,
    name: String,
    action: Action,
    reason: String,
    until_ms: Option<i64>,
    request: Option<String>,
}

/// Adds an exception for `school` (`None`: the district) and asks for a reload.
async fn add_one(
    state: &Arc<AdminState>,
    ctx: &Ctx,
    incoming: &Incoming,
    wanted: Wanted,
) -> Result<Exception, String> {
    let lang = ctx.lang;
    let Wanted {
        school,
        name,
        action,
        reason,
        until_ms,
        request,
    } = wanted;
    let Some(path) = exceptions_file(state) else {
        return Err(lang
            .t(
                "Chưa cấu hình [console] exceptions.",
                "[console] exceptions is not configured.",
            )
            .into());
    };
    let by = ctx.session.user.clone();
    let scope = school.clone();
    let added = edit(move || {
        let mut normal = String::new();
        crate::name::normalize_entry(&name, &mut normal)
            .map_err(|e| anyhow::anyhow!("{name:?}: {e}"))?;
        let now = crate::hitlog::now_ms();
        if let Some(other) = exceptions::read(&path)?
            .iter()
            .find(|e| e.in_force(now) && e.school == scope && e.name == normal)
        {
            anyhow::bail!(
                "{normal} already has an exception here ({}, {}); remove it first",
                other.action_str(),
                other.id
            );
        }
        exceptions::add(
            &path,
            &NewException {
                school: scope.as_deref(),
                name: &normal,
                action,
                reason: &reason,
                until_ms,
                by: &by,
                request: request.as_deref(),
            },
        )
    })
    .await?;
    reload_now(state);
    audit(
        state,
        &actor(ctx),
        &incoming.address(),
        "exception-added",
        format!(
            "{} {} for {} until {} ({})",
            added.action_str(),
            added.name,
            added.school.as_deref().unwrap_or("the district"),
            added
                .until_ms
                .map_or("for good".to_string(), crate::hitlog::time::format_utc),
            added.id
        ),
    );
    Ok(added)
}

/// `POST /console/exceptions`.
pub async fn add_exception(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    if let Some(refused) = refuse_police(ctx) {
        return refused;
    }
    let school = match scope_of(ctx, state, incoming.field("school")) {
        Ok(s) => s,
        Err(response) => return response,
    };
    let action = match incoming.field("action") {
        "block" => Action::Block,
        _ => Action::Allow,
    };
    let until = match until_of(ctx, incoming) {
        Ok(u) => u,
        Err(message) => return ui::problem(ctx, "400 Bad Request", &message),
    };
    let (name, reason) = (
        incoming.field("name").to_string(),
        incoming.field("reason").to_string(),
    );
    let wanted = Wanted {
        school: school.clone(),
        name,
        action,
        reason,
        until_ms: until,
        request: None,
    };
    match add_one(state, ctx, incoming, wanted).await {
        Ok(added) => ui::redirect(&format!(
            "/console/exceptions?added={}&name={}&school={}",
            enc(&added.id),
            enc(&added.name),
            enc(school.as_deref().unwrap_or(""))
        )),
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

/// `POST /console/exceptions/<id>/remove`.
pub async fn remove_exception(
    state: &Arc<AdminState>,
    ctx: &Ctx,
    incoming: &Incoming,
    id: &str,
) -> Response {
    if let Some(refused) = refuse_police(ctx) {
        return refused;
    }
    let Some(path) = exceptions_file(state) else {
        return ui::problem(ctx, "409 Conflict", "[console] exceptions");
    };
    let (own, id, by) = (
        ctx.role().school().map(str::to_string),
        id.to_string(),
        ctx.session.user.clone(),
    );
    let removed = edit(move || {
        let found = exceptions::read(&path)?.into_iter().find(|e| e.id == id);
        match (&own, found) {
            (_, None) => anyhow::bail!("no exception {id:?}"),
            // A school removes only its own school's exceptions.
            (Some(own), Some(e)) if e.school.as_deref() != Some(own.as_str()) => {
                anyhow::bail!("exception {id:?} is not your school's")
            }
            _ => exceptions::remove(&path, &id, &by),
        }
    })
    .await;
    match removed {
        Ok(e) => {
            reload_now(state);
            audit(
                state,
                &actor(ctx),
                &incoming.address(),
                "exception-removed",
                format!(
                    "{} {} for {} ({})",
                    e.action_str(),
                    e.name,
                    e.school.as_deref().unwrap_or("the district"),
                    e.id
                ),
            );
            ui::redirect("/console/exceptions?removed=1")
        }
        Err(message) => ui::problem(ctx, "403 Forbidden", &message),
    }
}

// ------------------------------------------------------------------ unblock requests

/// `GET /console/requests`.
pub fn requests(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let title = lang.t("Yêu cầu mở chặn", "Unblock requests");
    let listed: Result<Vec<UnblockRequest>, String> = match &live.config.console.requests {
        Some(path) => requests::read(path).map_err(|e| format!("{e:#}")),
        None => Err(lang
            .t(
                "Chưa cấu hình [console] requests.",
                "[console] requests is not configured.",
            )
            .into()),
    };
    let state_text = |s: State| match s {
        State::Open => lang.t("đang chờ", "open"),
        State::Approved => lang.t("đã duyệt", "approved"),
        State::Rejected => lang.t("từ chối", "rejected"),
    };
    let district = ctx.role().school().is_none() && ctx.role().may_change();
    let content = html! {
        h1 { (title) }
        @if incoming.head.param("sent").is_some() { p.notice #sent { (lang.t("Đã gửi yêu cầu tới Phòng Giáo dục.", "Your request was sent to the district.")) } }
        @if incoming.head.param("decided").is_some() { p.notice #decided { (lang.t("Đã xử lý yêu cầu.", "The request was settled.")) } }
        @if let Some(own) = ctx.role().school() {
            form.card.filters method="post" action="/console/requests" #ask {
                (ctx.csrf())
                input type="hidden" name="school" value=(own);
                div { label for="r-name" { (lang.t("Tên miền cần mở", "Name to allow")) } input #r-name name="name" required value=(incoming.head.param("name").unwrap_or("")); }
                div { label for="r-reason" { (lang.t("Lý do", "Reason")) } input #r-reason name="reason" required; }
                div { button type="submit" { (lang.t("Gửi yêu cầu", "Send request")) } }
            }
        }
        @match &listed {
            Err(message) => p.alert { (message) },
            Ok(list) => div.card {
                table.wide #requests {
                    thead { tr { th { (lang.t("Tên miền", "Name")) } th { (lang.t("Trường", "School")) } th.opt { (lang.t("Lý do", "Reason")) } th { (lang.t("Tình trạng", "State")) } th { } } }
                    tbody {
                        @for r in list.iter().rev().filter(|r| ctx.role().covers(&r.school)) {
                            tr {
                                td.name { (r.name) }
                                td { (r.school) br; span.muted { (r.asked_by) " · " (r.asked_ms.map(|ms| ctx.time(ms)).unwrap_or_default()) } }
                                td.opt { (r.reason) }
                                td { span class=(format!("badge {}", r.state.as_str())) { (state_text(r.state)) }
                                    @if let Some(reply) = &r.reply { br; span.muted { (reply) } } }
                                td {
                                    @if district && r.state == State::Open {
                                        form.stack method="post" action=(format!("/console/requests/{}/decide", enc(&r.id))) {
                                            (ctx.csrf())
                                            select name="scope" aria-label=(lang.t("Phạm vi", "Scope")) {
                                                option value="school" { (lang.t("Cho trường này", "For this school")) }
                                                option value="district" { (lang.t("Cho toàn huyện", "For the whole district")) }
                                            }
                                            input name="reply" placeholder=(lang.t("Trả lời", "Reply")) aria-label=(lang.t("Trả lời", "Reply"));
                                            div.actions {
                                                button type="submit" name="decision" value="approve" { (lang.t("Duyệt", "Approve")) }
                                                button.danger type="submit" name="decision" value="reject" { (lang.t("Từ chối", "Reject")) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        }
    };
    ui::page(
        "200 OK",
        ui::layout(ctx, title, "/console/requests", content),
    )
}

/// `POST /console/requests`: a school asks.
pub async fn ask(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let Some(own) = ctx.role().school().map(str::to_string) else {
        return ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Chỉ trường gửi yêu cầu; Phòng Giáo dục thêm ngoại lệ trực tiếp.",
                "Schools ask; the district adds exceptions directly.",
            ),
        );
    };
    let Some(path) = state.live.load().config.console.requests.clone() else {
        return ui::problem(ctx, "409 Conflict", "[console] requests");
    };
    let (name, reason, by) = (
        incoming.field("name").to_string(),
        incoming.field("reason").to_string(),
        ctx.session.user.clone(),
    );
    let school = own.clone();
    match edit(move || requests::ask(&path, &school, &name, &reason, &by)).await {
        Ok(asked) => {
            audit(
                state,
                &actor(ctx),
                &incoming.address(),
                "request-sent",
                format!("allow {} for {own} ({})", asked.name, asked.id),
            );
            ui::redirect("/console/requests?sent=1")
        }
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

/// `POST /console/requests/<id>/decide`: the district approves (adding the exception) or
/// rejects.
pub async fn decide(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming, id: &str) -> Response {
    let lang = ctx.lang;
    if ctx.role().school().is_some() || !ctx.role().may_change() {
        return ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Chỉ Phòng Giáo dục xử lý yêu cầu.",
                "Only the district settles requests.",
            ),
        );
    }
    let Some(path) = state.live.load().config.console.requests.clone() else {
        return ui::problem(ctx, "409 Conflict", "[console] requests");
    };
    let asked = match requests::read(&path)
        .map_err(|e| format!("{e:#}"))
        .and_then(|all| {
            all.into_iter()
                .find(|r| r.id == id && r.state == State::Open)
                .ok_or_else(|| format!("no open request {id:?}"))
        }) {
        Ok(r) => r,
        Err(message) => return ui::problem(ctx, "404 Not Found", &message),
    };
    let reply = incoming.field("reply").to_string();
    let approve = incoming.field("decision") == "approve";
    let exception = if approve {
        let school = (incoming.field("scope") != "district").then(|| asked.school.clone());
        let reason = format!("{} ({})", asked.reason, asked.asked_by);
        let wanted = Wanted {
            school,
            name: asked.name.clone(),
            action: Action::Allow,
            reason,
            until_ms: None,
            request: Some(asked.id.clone()),
        };
        match add_one(state, ctx, incoming, wanted).await {
            Ok(e) => Some(e.id),
            Err(message) => return ui::problem(ctx, "400 Bad Request", &message),
        }
    } else {
        None
    };
    let (id, by, settled) = (
        asked.id.clone(),
        ctx.session.user.clone(),
        if approve {
            State::Approved
        } else {
            State::Rejected
        },
    );
    let exception_id = exception.clone();
    match edit(move || requests::decide(&path, &id, settled, &reply, &by, exception_id.as_deref()))
        .await
    {
        Ok(_) => {
            audit(
                state,
                &actor(ctx),
                &incoming.address(),
                if approve {
                    "request-approved"
                } else {
                    "request-rejected"
                },
                format!(
                    "{} for {} ({}){}",
                    asked.name,
                    asked.school,
                    asked.id,
                    exception.map(|e| format!(" -> {e}")).unwrap_or_default()
                ),
            );
            ui::redirect("/console/requests?decided=1")
        }
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

// ------------------------------------------------------------------ devices

/// `GET /console/devices`.
pub fn devices(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let policy = &live.policy;
    let title = lang.t("Thiết bị ở nhà", "Home devices");
    let school_of = |d: &crate::policy::devices::Device| {
        d.school.map(|i| policy.schools()[i as usize].id.clone())
    };
    let added = incoming.head.param("added");
    let endpoints = crate::devices::setup::Endpoints::from_config(&live.config);
    let content = html! {
        h1 { (title) }
        @if let Some(id) = added {
            @if let Some(device) = policy.devices().all().iter().find(|d| d.id == id) {
                div.card #added-device {
                    h2 { (lang.t("Đã thêm", "Added")) ": " (device.name) }
                    @match &endpoints {
                        Some(ep) => {
                            @let link = ep.setup_url(&device.token);
                            p { (lang.t("Gửi đường dẫn này cho phụ huynh:", "Send this link to the parents:")) }
                            p { a #setup-link href=(link) { (link) } }
                            div.qr { (PreEscaped(crate::devices::setup::qr_code(&link).unwrap_or_default())) }
                            p { a.button href=(format!("/console/devices/{}/card", enc(&device.id))) { (lang.t("Thẻ in cho phụ huynh", "Printable card for parents")) } }
                        },
                        None => p.alert { (lang.t("Chưa cấu hình [tls] hostname: chưa có đường dẫn cài đặt.", "[tls] hostname is not set: there is no setup link.")) },
                    }
                }
            } @else {
                p.notice { (lang.t("Đã thêm; trang sẽ hiện đường dẫn sau khi máy chủ nạp lại (vài giây).", "Added; reload this page in a few seconds for the setup link.")) }
            }
        }
        @if ctx.role().may_change() {
            form.card.filters method="post" action="/console/devices" #add-device {
                (ctx.csrf())
                div { label for="d-name" { (lang.t("Tên (gia đình, học sinh)", "Name (family, student)")) } input #d-name name="name" required; }
                div { label for="d-profile" { (lang.t("Hồ sơ lọc", "Filtering profile")) }
                    select #d-profile name="profile" { @for p in policy.profiles() { option value=(p.name) { (p.description.as_deref().unwrap_or(&p.name)) } } } }
                div { label for="d-school" { (lang.t("Trường", "School")) }
                    select #d-school name="school" {
                        @if ctx.role().school().is_none() { option value="" { "—" } }
                        @for s in policy.schools().iter().filter(|s| ctx.role().covers(&s.id)) { option value=(s.id) { (s.name) } }
                    } }
                div { button type="submit" { (lang.t("Thêm gia đình", "Add a family")) } }
            }
        }
        div.card {
            table.wide #devices {
                thead { tr { th { (lang.t("Tên", "Name")) } th { (lang.t("Hồ sơ", "Profile")) } th.opt { (lang.t("Trường", "School")) } th { } } }
                tbody {
                    @for d in policy.devices().all().iter().filter(|d| match ctx.role().school() { Some(own) => school_of(d).as_deref() == Some(own), None => true }) {
                        tr {
                            td { (d.name) br; span.muted { (d.id) } }
                            td { (policy.profile(d.profile).name) }
                            td.opt { (school_of(d).unwrap_or_else(|| "—".into())) }
                            td {
                                @if d.revoked { span.badge.block { (lang.t("đã thu hồi", "revoked")) } }
                                @else {
                                    a href=(format!("/console/devices/{}/card", enc(&d.id))) { (lang.t("Thẻ", "Card")) } " "
                                    @if ctx.role().may_change() {
                                        form.inline method="post" action=(format!("/console/devices/{}/revoke", enc(&d.id))) data-confirm=(lang.t("Thu hồi thiết bị này?", "Revoke this device?")) {
                                            (ctx.csrf())
                                            button.secondary type="submit" { (lang.t("Thu hồi", "Revoke")) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    ui::page(
        "200 OK",
        ui::layout(ctx, title, "/console/devices", content),
    )
}

/// `POST /console/devices`: adds a family; shows its setup link once the reload has it.
pub async fn add_device(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    if let Some(refused) = refuse_police(ctx) {
        return refused;
    }
    let lang = ctx.lang;
    let school = match scope_of(ctx, state, incoming.field("school")) {
        Ok(s) => s,
        Err(response) => return response,
    };
    let live = state.live.load_full();
    let Some(path) = live.config.devices.file.clone() else {
        return ui::problem(
            ctx,
            "409 Conflict",
            lang.t(
                "Chưa cấu hình [devices] file.",
                "[devices] file is not configured.",
            ),
        );
    };
    let profile = incoming.field("profile").to_string();
    if !live.policy.profiles().iter().any(|p| p.name == profile) {
        return ui::problem(
            ctx,
            "400 Bad Request",
            &format!("{} {profile:?}", lang.t("Không có hồ sơ", "No profile")),
        );
    }
    let new = crate::devices::edit::NewDevice {
        id: None,
        name: incoming.field("name").to_string(),
        profile,
        // A school's own devices share their hits with it; that is why the school adds them.
        share_with_school: school.is_some(),
        school: school.clone(),
    };
    if new.name.is_empty() {
        return ui::problem(
            ctx,
            "400 Bad Request",
            lang.t("Cần có tên.", "A name is needed."),
        );
    }
    match edit(move || crate::devices::edit::add(&path, &new)).await {
        Ok(added) => {
            reload_now(state);
            audit(
                state,
                &actor(ctx),
                &incoming.address(),
                "device-added",
                format!(
                    "{} for {}",
                    added.id,
                    school.as_deref().unwrap_or("no school")
                ),
            );
            // Wait (briefly) for the reload, so the page can show the link at once.
            for _ in 0..40 {
                if state
                    .live
                    .policy()
                    .devices()
                    .all()
                    .iter()
                    .any(|d| d.id == added.id)
                {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            ui::redirect(&format!("/console/devices?added={}", enc(&added.id)))
        }
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

/// `POST /console/devices/<id>/revoke`.
pub async fn revoke_device(
    state: &Arc<AdminState>,
    ctx: &Ctx,
    incoming: &Incoming,
    id: &str,
) -> Response {
    if let Some(refused) = refuse_police(ctx) {
        return refused;
    }
    let live = state.live.load_full();
    let policy = &live.policy;
    let Some(device) = policy.devices().all().iter().find(|d| d.id == id) else {
        return ui::problem(ctx, "404 Not Found", id);
    };
    let school = device
        .school
        .map(|i| policy.schools()[i as usize].id.as_str());
    if let Some(own) = ctx.role().school()
        && school != Some(own)
    {
        return ui::problem(
            ctx,
            "403 Forbidden",
            ctx.lang.t(
                "Thiết bị này thuộc trường khác.",
                "This device belongs to another school.",
            ),
        );
    }
    let Some(path) = live.config.devices.file.clone() else {
        return ui::problem(ctx, "409 Conflict", "[devices] file");
    };
    let device_id = id.to_string();
    match edit(move || crate::devices::edit::revoke(&path, &device_id)).await {
        Ok(()) => {
            reload_now(state);
            audit(
                state,
                &actor(ctx),
                &incoming.address(),
                "device-revoked",
                id.to_string(),
            );
            ui::redirect("/console/devices")
        }
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

/// `GET /console/devices/<id>/card`: a one-page card for parents, in Vietnamese and English.
pub fn card(state: &Arc<AdminState>, ctx: &Ctx, id: &str) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let policy = &live.policy;
    let Some(device) = policy
        .devices()
        .all()
        .iter()
        .find(|d| d.id == id && !d.revoked)
    else {
        return ui::problem(ctx, "404 Not Found", id);
    };
    let school = device.school.map(|i| &policy.schools()[i as usize]);
    if let Some(own) = ctx.role().school()
        && school.map(|s| s.id.as_str()) != Some(own)
    {
        return ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Thiết bị này thuộc trường khác.",
                "This device belongs to another school.",
            ),
        );
    }
    let Some(ep) = crate::devices::setup::Endpoints::from_config(&live.config) else {
        return ui::problem(
            ctx,
            "409 Conflict",
            lang.t(
                "Chưa cấu hình [tls] hostname.",
                "[tls] hostname is not set.",
            ),
        );
    };
    let link = ep.setup_url(&device.token);
    let help = live.config.devices.help.clone();
    let content = html! {
        div.card-print #card {
            h1 { "schooldns · " (device.name) }
            @if let Some(s) = school { p.muted { (s.name) } }
            div.qr { (PreEscaped(crate::devices::setup::qr_code(&link).unwrap_or_default())) }
            p { code { (link) } }
            h2 { "Tiếng Việt" }
            ol {
                li { "Trên điện thoại, máy tính bảng hoặc máy tính của con, quét mã QR hoặc mở đường dẫn ở trên." }
                li { "Làm theo hướng dẫn cho thiết bị (iPhone/iPad, Android, Windows, Mac)." }
                li { "Android: Cài đặt → Mạng → DNS riêng tư → " code { (ep.dot_name(&device.token)) } }
                li { "Kiểm tra: trên thiết bị của con, mở " code { (ep.check_url(&device.token)) } " — trang phải hiện “✓ Bộ lọc đang hoạt động”." }
            }
            h2 { "English" }
            ol {
                li { "On your child's phone, tablet or computer, scan the QR code or open the link above." }
                li { "Follow the steps for the device (iPhone/iPad, Android, Windows, Mac)." }
                li { "Android: Settings → Network → Private DNS → " code { (ep.dot_name(&device.token)) } }
                li { "Check: on your child's device, open " code { (ep.check_url(&device.token)) } " — it must say “✓ The filter is on”." }
            }
            @if let Some(help) = &help { p { strong { "Hỗ trợ / Help: " } (help) } }
            p.muted { "Giữ kín thẻ này: đường dẫn là chìa khoá của gia đình. · Keep this card private: the link is your family's key." }
            p.noprint { button type="button" data-print="1" { (lang.t("In", "Print")) } }
        }
    };
    ui::page("200 OK", ui::bare(lang, &device.name, content))
}
