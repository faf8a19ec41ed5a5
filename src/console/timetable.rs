//! The console's pages for services and time: which services each profile and school blocks
//! or keeps (with the district's toggles), the schedules and the exam calendar (with forms to
//! add and remove exam days and holidays), and a school's "right now" card and week.
//!
//! Changes are the district's (schools and police read): toggles go to `[console]
//! service_toggles`, calendar entries to `[calendar] file`; both are edited off the runtime's
//! workers, checked as the policy will read them, audited, and followed by a reload.

use std::sync::Arc;

use maud::{Markup, html};

use super::manage::{edit, reload_now};
use super::ui::{self, Ctx, enc};
use super::{Incoming, audit};
use crate::admin::AdminState;
use crate::admin::http::Response;
use crate::policy::time::DAYS;
use crate::policy::{Policy, School};
use crate::services::Target;

/// Only the district changes services and the calendar.
fn refuse_unless_district(ctx: &Ctx) -> Option<Response> {
    let district = ctx.role().may_change() && ctx.role().school().is_none();
    (!district).then(|| {
        ui::problem(
            ctx,
            "403 Forbidden",
            ctx.lang.t(
                "Chỉ Phòng GD&ĐT thay đổi được dịch vụ và lịch.",
                "Only the district changes services and the calendar.",
            ),
        )
    })
}

/// The policy's table index of a service.
fn service_table(policy: &Policy, id: &str) -> Option<u32> {
    policy
        .categories()
        .iter()
        .position(|c| c.service.as_deref() == Some(id))
        .map(|i| i as u32)
}

/// The catalogue's services grouped (social media first, learning last), in catalogue order
/// within a group.
fn by_group(catalog: &crate::services::Catalog) -> Vec<&crate::services::Service> {
    const ORDER: [&str; 6] = ["social", "video", "messaging", "games", "ai", "learning"];
    let rank = |group: &str| {
        ORDER
            .iter()
            .position(|g| *g == group)
            .unwrap_or(ORDER.len())
    };
    let mut services: Vec<&crate::services::Service> = catalog.services.iter().collect();
    services.sort_by_key(|s| rank(&s.group));
    services
}

/// A group's name for people.
fn group_name(ctx: &Ctx, group: &str) -> &'static str {
    let lang = ctx.lang;
    match group {
        "social" => lang.t("Mạng xã hội", "Social media"),
        "video" => lang.t("Video", "Video"),
        "messaging" => lang.t("Nhắn tin", "Messaging"),
        "games" => lang.t("Trò chơi", "Games"),
        "ai" => lang.t("Trí tuệ nhân tạo", "AI"),
        "learning" => lang.t("Học tập", "Learning"),
        _ => lang.t("Khác", "Other"),
    }
}

// ------------------------------------------------------------------ services

/// `GET /console/services[?target=profile:NAME|school:ID]`: every service against every
/// profile (and a school's own), with the district's form for one target.
pub fn services(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let policy = &live.policy;
    let config = &live.config;
    let catalog = policy.services();
    let title = lang.t("Dịch vụ", "Services");
    let profiles = policy.profiles();
    let time = policy.time_rules();
    // A cell: what a profile does with a service, always and in its rules in time.
    let cell = |profile: usize, table: u32| -> Markup {
        let p = &profiles[profile];
        let timed: Vec<&str> = time.profile_rules[profile]
            .iter()
            .map(|&r| &time.rules[r as usize])
            .filter(|r| r.block.contains(&table))
            .map(|r| time.schedules[r.schedule as usize].name.as_str())
            .collect();
        html! {
            @if p.allow.contains(&table) { span.badge.allow { (lang.t("cho phép", "allowed")) } }
            @else if p.block.contains(&table) { span.badge.block { (lang.t("chặn", "blocked")) } }
            @for schedule in &timed { " " span.badge.timed title=(schedule) { "⏱ " (schedule) } }
        }
    };
    let own_school = ctx.role().school();
    let target = incoming
        .head
        .param("target")
        .and_then(Target::parse)
        .filter(|t| match t {
            Target::Profile(name) => config.profiles.contains_key(name),
            Target::School(id) => config.has_school(id) && ctx.role().covers(id),
        });
    let may_change = ctx.role().may_change() && own_school.is_none();
    let toggles_path = config.console.service_toggles.clone();
    let form = match (&target, may_change) {
        (Some(target), true) => Some(service_form(ctx, &live, target, toggles_path.as_deref())),
        _ => None,
    };
    let content = html! {
        h1 { (title) }
        @if incoming.head.param("saved").is_some() { p.notice #saved { (lang.t("Đã lưu. Có hiệu lực trong vài giây.", "Saved. It takes effect within seconds.")) } }
        @if catalog.services.is_empty() {
            p.alert { (lang.t("Chưa cấu hình [services] catalog.", "[services] catalog is not configured.")) }
        }
        @if let Some(form) = form { (form) }
        div.card {
            h2 { (lang.t("Dịch vụ theo hồ sơ", "Services by profile")) }
            p.muted { (lang.t("⏱: chỉ chặn trong khung giờ đó (ví dụ giờ học).", "⏱: blocked only during that schedule (lessons, for example).")) }
            div.scroll { table.wide #services { thead { tr {
                th { (lang.t("Dịch vụ", "Service")) }
                @for p in profiles {
                    th { @if may_change { a href=(format!("/console/services?target=profile:{}", enc(&p.name))) { (p.name) } } @else { (p.name) } }
                }
            } } tbody {
                @for service in by_group(catalog) {
                    @if let Some(table) = service_table(policy, &service.id) {
                        tr data-service=(service.id) {
                            td { strong { (service.display_name(lang.is_vi())) } br; span.muted { (group_name(ctx, &service.group)) " · " (if lang.is_vi() { &service.description_vi } else { &service.description }) } }
                            @for i in 0..profiles.len() { td { (cell(i, table)) } }
                        }
                    }
                }
            } } }
        }
        div.card {
            h2 { (lang.t("Dịch vụ riêng của trường", "Schools' own services")) }
            table.wide { tbody {
                @for school in policy.schools().iter().filter(|s| ctx.role().covers(&s.id)) {
                    @let slot = &time.slots[school.slot as usize];
                    tr {
                        td { a href=(format!("/console/schools/{}", enc(&school.id))) { (school.name) } }
                        td { @for &t in &slot.block { span.badge.block { (policy.table_name(t)) } " " } }
                        td { @for &t in &slot.allow { span.badge.allow { (policy.table_name(t)) } " " } }
                        td { @if may_change { a href=(format!("/console/services?target=school:{}", enc(&school.id))) { (lang.t("Sửa", "Edit")) } } }
                    }
                }
            } }
        }
    };
    ui::page(
        "200 OK",
        ui::layout(ctx, title, "/console/services", content),
    )
}

/// The district's form for one profile's or school's toggles.
fn service_form(
    ctx: &Ctx,
    live: &crate::live::Snapshot,
    target: &Target,
    toggles: Option<&std::path::Path>,
) -> Markup {
    let lang = ctx.lang;
    let config = &live.config;
    let Some(path) = toggles else {
        return html! { p.alert { (lang.t("Chưa cấu hình [console] service_toggles: không thể thay đổi từ bảng điều khiển.", "[console] service_toggles is not configured: services cannot be changed from the console.")) } };
    };
    let loaded = crate::services::read_toggles(path);
    let (current, problem) = match &loaded {
        Ok(l) => (
            match target {
                Target::Profile(name) => l.file.profiles.get(name).cloned(),
                Target::School(id) => l.file.schools.get(id).cloned(),
            }
            .unwrap_or_default(),
            None,
        ),
        Err(e) => (Default::default(), Some(e.to_string())),
    };
    let (config_block, config_allow): (Vec<String>, Vec<String>) = match target {
        Target::Profile(name) => config
            .profiles
            .get(name)
            .map(|p| {
                (
                    p.block_services
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect(),
                    p.allow_services
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect(),
                )
            })
            .unwrap_or_default(),
        Target::School(id) => config
            .schools
            .iter()
            .find(|s| s.id.get_ref() == id)
            .map(|s| {
                (
                    s.block_services
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect(),
                    s.allow_services
                        .iter()
                        .map(|s| s.get_ref().clone())
                        .collect(),
                )
            })
            .unwrap_or_default(),
    };
    let chosen = |id: &str| -> &'static str {
        if current.block_services.iter().any(|s| s.get_ref() == id) {
            "block"
        } else if current.allow_services.iter().any(|s| s.get_ref() == id) {
            "allow"
        } else {
            "default"
        }
    };
    let heading = match target {
        Target::Profile(name) => format!("{} {name}", lang.t("Hồ sơ", "Profile")),
        Target::School(id) => format!("{} {id}", lang.t("Trường", "School")),
    };
    let grouped = by_group(live.policy.services());
    html! {
        form.card method="post" action="/console/services" #service-form {
            (ctx.csrf())
            input type="hidden" name="target" value=(target.as_string());
            h2 { (lang.t("Bật/tắt dịch vụ: ", "Switch services: ")) (heading) }
            @if let Some(problem) = problem { p.alert { (problem) } }
            table.wide { tbody {
                @for (i, service) in grouped.iter().enumerate() {
                    @let field = format!("s:{}", service.id);
                    @if i == 0 || grouped[i - 1].group != service.group {
                        tr { th colspan="4" { (group_name(ctx, &service.group)) } }
                    }
                    tr {
                        td { (service.display_name(lang.is_vi())) }
                        @if config_block.contains(&service.id) {
                            td colspan="3" { span.badge.block { (lang.t("chặn", "blocked")) } " " span.muted { (lang.t("(đặt trong schooldns.toml)", "(set in schooldns.toml)")) } }
                        } @else if config_allow.contains(&service.id) {
                            td colspan="3" { span.badge.allow { (lang.t("cho phép", "allowed")) } " " span.muted { (lang.t("(đặt trong schooldns.toml)", "(set in schooldns.toml)")) } }
                        } @else {
                            @for (value, vi, en) in [("default", "theo hồ sơ", "as the profile"), ("block", "chặn", "block"), ("allow", "cho phép", "allow")] {
                                td { label.choice { input type="radio" name=(field) value=(value) checked[chosen(&service.id) == value]; (lang.t(vi, en)) } }
                            }
                        }
                    }
                }
            } }
            button type="submit" { (lang.t("Lưu", "Save")) }
        }
    }
}

/// `POST /console/services`: the district sets one target's toggles.
pub async fn set_services(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    if let Some(refused) = refuse_unless_district(ctx) {
        return refused;
    }
    let lang = ctx.lang;
    let live = state.live.load_full();
    let Some(path) = live.config.console.service_toggles.clone() else {
        return ui::problem(
            ctx,
            "400 Bad Request",
            lang.t(
                "Chưa cấu hình [console] service_toggles.",
                "[console] service_toggles is not configured.",
            ),
        );
    };
    let target = match Target::parse(incoming.field("target")) {
        Some(t @ Target::Profile(_)) | Some(t @ Target::School(_)) => t,
        None => {
            return ui::problem(
                ctx,
                "400 Bad Request",
                lang.t("Không rõ hồ sơ hay trường.", "Which profile or school?"),
            );
        }
    };
    let (mut block, mut allow) = (Vec::new(), Vec::new());
    for service in &live.policy.services().services {
        match incoming.field(&format!("s:{}", service.id)) {
            "block" => block.push(service.id.clone()),
            "allow" => allow.push(service.id.clone()),
            _ => {}
        }
    }
    let by = format!("user:{}", ctx.session.user);
    let detail = format!(
        "{}: block [{}] allow [{}]",
        target.as_string(),
        block.join(", "),
        allow.join(", ")
    );
    let (t, who) = (target.clone(), by.clone());
    let result = edit(move || crate::services::set_toggles(&path, &t, &block, &allow, &who)).await;
    match result {
        Ok(()) => {
            audit(state, &by, &incoming.address(), "services", detail);
            reload_now(state);
            ui::redirect(&format!(
                "/console/services?target={}&saved=1",
                enc(&target.as_string())
            ))
        }
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

// ------------------------------------------------------------------ schedules and calendar

/// `GET /console/time`: the schedules, the rules that use them, and the calendar.
pub fn time(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    let lang = ctx.lang;
    let live = state.live.load_full();
    let policy = &live.policy;
    let time = policy.time_rules();
    let title = lang.t("Lịch học & lịch thi", "Schedules & calendar");
    let calendar = crate::calendar::read(&live.config);
    let may_change = ctx.role().may_change() && ctx.role().school().is_none();
    let school_name = |id: &str| {
        policy
            .schools()
            .iter()
            .find(|s| s.id == id)
            .map_or(id.to_string(), |s| s.name.clone())
    };
    let days_of = |bits: u8| -> String {
        DAYS.iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, d)| *d)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let window = |(start, end): (u16, u16)| {
        format!(
            "{:02}:{:02}–{:02}:{:02}",
            start / 60,
            start % 60,
            end / 60,
            end % 60
        )
    };
    let content = html! {
        h1 { (title) }
        @if incoming.head.param("added").is_some() { p.notice #added { (lang.t("Đã thêm vào lịch. Có hiệu lực trong vài giây.", "Added to the calendar. It takes effect within seconds.")) } }
        @if incoming.head.param("removed").is_some() { p.notice { (lang.t("Đã xoá khỏi lịch.", "Removed from the calendar.")) } }
        div.card {
            h2 { (lang.t("Khung giờ", "Schedules")) }
            @if time.schedules.is_empty() { p.muted { (lang.t("Chưa có khung giờ nào.", "No schedules.")) } }
            table.wide #schedules { tbody {
                @for (index, schedule) in time.schedules.iter().enumerate() {
                    tr {
                        td { strong { (schedule.name) } }
                        td { (days_of(schedule.days)) }
                        td { @for w in &schedule.windows { (window(*w)) " " } }
                        td.opt { @for rule in time.rules.iter().filter(|r| r.schedule == index as u32) { span.muted { (rule.origin) } br; } }
                    }
                }
            } }
            p.muted { (lang.t("Khung giờ và quy tắc theo giờ được đặt trong schooldns.toml (config/README.md).", "Schedules and rules in time are set in schooldns.toml (config/README.md).")) }
        }
        @if may_change && live.config.calendar.file.is_some() {
            div.card {
            h2 { (lang.t("Thêm ngày thi hoặc ngày nghỉ", "Add exam days or a holiday")) }
            form.filters method="post" action="/console/time" #add-calendar {
                (ctx.csrf())
                div { label for="c-kind" { (lang.t("Loại", "Kind")) }
                    select #c-kind name="kind" { option value="exam" { (lang.t("Ngày thi", "Exam days")) } option value="holiday" { (lang.t("Ngày nghỉ", "Holiday")) } } }
                div { label for="c-name" { (lang.t("Tên", "Name")) } input #c-name name="name" required; }
                div { label for="c-from" { (lang.t("Từ ngày", "From")) } input #c-from name="from" type="date" required; }
                div { label for="c-to" { (lang.t("Đến ngày", "To")) } input #c-to name="to" type="date"; }
                div { label for="c-schools" { (lang.t("Trường (không chọn: tất cả)", "Schools (none: all)")) }
                    select #c-schools name="schools" multiple { @for s in policy.schools() { option value=(s.id) { (s.name) } } } }
                div { label for="c-profile" { (lang.t("Hồ sơ ngày thi", "Exam profile")) }
                    select #c-profile name="profile" { @for p in policy.profiles() { option value=(p.name) selected[p.name == "exam"] { (p.name) } } } }
                div { label for="c-schedules" { (lang.t("Khung giờ tắt (không chọn: tất cả)", "Schedules off (none: all)")) }
                    select #c-schedules name="schedules" multiple { @for s in &time.schedules { option value=(s.name) { (s.name) } } } }
                div { button type="submit" { (lang.t("Thêm", "Add")) } }
            }
            }
        }
        div.card {
            h2 { (lang.t("Lịch thi và ngày nghỉ", "Exam days and holidays")) }
            @match &calendar {
                Err(e) => p.alert { (e.to_string()) },
                Ok(calendar) if calendar.entries.is_empty() => p.muted { (lang.t("Lịch trống.", "The calendar is empty.")) },
                Ok(calendar) => table.wide #calendar { tbody {
                    @for entry in &calendar.entries {
                        tr data-name=(entry.name) {
                            td { strong { (entry.name) } }
                            td { @match &entry.effect {
                                crate::calendar::Effect::Exam { profile } => { span.badge.block { (lang.t("thi", "exam")) } " " (profile) },
                                crate::calendar::Effect::Holiday { schedules } => { span.badge.allow { (lang.t("nghỉ", "holiday")) } " " (schedules.as_ref().map_or(lang.t("mọi khung giờ", "every schedule").to_string(), |s| s.join(", "))) },
                            } }
                            td { @for (i, (first, last)) in entry.days.iter().enumerate().take(6) { @if i > 0 { ", " } (first) @if first != last { " – " (last) } } @if entry.days.len() > 6 { " …" } }
                            td { (entry.schools.as_ref().map_or(lang.t("mọi trường", "every school").to_string(), |ids| ids.iter().map(|id| school_name(id)).collect::<Vec<_>>().join(", "))) }
                            td.opt.muted { (entry.origin) }
                            td { @if let (true, Some((table, index))) = (may_change, entry.place) {
                                form.inline method="post" action=(format!("/console/time/{table}/{index}/remove")) data-confirm=(lang.t("Xoá mục này khỏi lịch?", "Remove this from the calendar?")) {
                                    (ctx.csrf())
                                    input type="hidden" name="name" value=(entry.name);
                                    button.secondary type="submit" { (lang.t("Xoá", "Remove")) }
                                }
                            } }
                        }
                    }
                } },
            }
        }
    };
    ui::page("200 OK", ui::layout(ctx, title, "/console/time", content))
}

/// `POST /console/time`: the district adds exam days or a holiday.
pub async fn add_calendar(state: &Arc<AdminState>, ctx: &Ctx, incoming: &Incoming) -> Response {
    if let Some(refused) = refuse_unless_district(ctx) {
        return refused;
    }
    let lang = ctx.lang;
    let live = state.live.load_full();
    let Some(path) = live.config.calendar.file.clone() else {
        return ui::problem(
            ctx,
            "400 Bad Request",
            lang.t(
                "Chưa cấu hình [calendar] file.",
                "[calendar] file is not configured.",
            ),
        );
    };
    let date = |field: &str| incoming.field(field).parse::<jiff::civil::Date>().ok();
    let Some(from) = date("from") else {
        return ui::problem(
            ctx,
            "400 Bad Request",
            lang.t("Ngày bắt đầu không hợp lệ.", "The first day is not a date."),
        );
    };
    let to = date("to").unwrap_or(from);
    let name = incoming.field("name").to_string();
    if name.is_empty() {
        return ui::problem(
            ctx,
            "400 Bad Request",
            lang.t("Hãy đặt tên.", "Give it a name."),
        );
    }
    let many = |field: &str| -> Option<Vec<String>> {
        let values: Vec<String> = incoming
            .fields(field)
            .into_iter()
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        (!values.is_empty()).then_some(values)
    };
    let effect = match incoming.field("kind") {
        "holiday" => crate::calendar::Effect::Holiday {
            schedules: many("schedules"),
        },
        _ => crate::calendar::Effect::Exam {
            profile: incoming.field("profile").to_string(),
        },
    };
    let new = crate::calendar::NewEntry {
        name,
        from,
        to,
        schools: many("schools"),
        effect,
    };
    let detail = format!("{:?} {} {}–{}", new.effect, new.name, new.from, new.to);
    let config = live.config.as_ref().clone();
    match edit(move || crate::calendar::add_entry(&path, &config, &new)).await {
        Ok(()) => {
            audit(
                state,
                &format!("user:{}", ctx.session.user),
                &incoming.address(),
                "calendar-add",
                detail,
            );
            reload_now(state);
            ui::redirect("/console/time?added=1")
        }
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

/// `POST /console/time/<exams|holidays>/<index>/remove`.
pub async fn remove_calendar(
    state: &Arc<AdminState>,
    ctx: &Ctx,
    incoming: &Incoming,
    table: &str,
    index: &str,
) -> Response {
    if let Some(refused) = refuse_unless_district(ctx) {
        return refused;
    }
    let live = state.live.load_full();
    let (Some(path), Ok(index)) = (live.config.calendar.file.clone(), index.parse::<usize>())
    else {
        return ui::problem(ctx, "400 Bad Request", "no such calendar entry");
    };
    let (table, name) = (table.to_string(), incoming.field("name").to_string());
    let detail = format!("{table}[{index}] {name}");
    let config = live.config.as_ref().clone();
    match edit(move || crate::calendar::remove_entry(&path, &config, &table, index, &name)).await {
        Ok(()) => {
            audit(
                state,
                &format!("user:{}", ctx.session.user),
                &incoming.address(),
                "calendar-remove",
                detail,
            );
            reload_now(state);
            ui::redirect("/console/time?removed=1")
        }
        Err(message) => ui::problem(ctx, "400 Bad Request", &message),
    }
}

// ------------------------------------------------------------------ a school right now

/// What a variant applies, in the reader's language.
fn variant_text(ctx: &Ctx, policy: &Policy, variant: u32) -> Markup {
    let lang = ctx.lang;
    let s = policy.summary(variant);
    html! {
        strong { (s.profile) }
        @if let Some(switched) = &s.switched { " " span.muted { (lang.t("do ", "by ")) (switched) } }
        @if !s.added_blocks.is_empty() {
            " " (lang.t("+ chặn", "+ block")) " "
            @for (t, _) in &s.added_blocks { span.badge.block { (t) } " " }
        }
        @if !s.added_allows.is_empty() {
            " " (lang.t("+ cho phép", "+ allow")) " "
            @for (t, _) in &s.added_allows { span.badge.allow { (t) } " " }
        }
    }
}

/// The school page's card: what is blocked at this moment, why, when it changes next, and
/// the school's week with the calendar applied.
pub fn right_now(ctx: &Ctx, policy: &Policy, school: &School) -> Markup {
    let lang = ctx.lang;
    let now = crate::clock::now_ms();
    let variant = policy.variant_now(school.slot);
    let summary = policy.summary(variant);
    let next = policy.next_change(school.slot);
    let zone =
        &policy.time_rules().zones[policy.time_rules().slots[school.slot as usize].zone as usize];
    let today = crate::policy::time::local(zone, now).date();
    let monday = today
        .checked_sub(jiff::Span::new().days(i64::from(today.weekday().to_monday_zero_offset())))
        .unwrap_or(today);
    let week = policy.week(school.slot, monday);
    let causes: Vec<&String> = summary
        .added_blocks
        .iter()
        .chain(&summary.added_allows)
        .map(|(_, c)| c)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let school_index = policy
        .schools()
        .iter()
        .position(|s| s.id == school.id)
        .map(|i| i as u32);
    let today_entries: Vec<&crate::policy::time::CalendarEntry> = policy
        .time_rules()
        .calendar
        .iter()
        .filter(|e| e.covers(today) && e.applies_to(school_index))
        .collect();
    html! {
        div.card #right-now {
            h2 { (lang.t("Đang chặn lúc này", "Blocked right now")) " " span.muted { (ctx.time(now)) } }
            @for entry in &today_entries {
                p #today { (lang.t("Hôm nay: ", "Today: ")) strong { (entry.name) } " "
                    @match entry.effect {
                        crate::policy::time::CalendarEffect::Exam(_) => span.badge.block { (lang.t("ngày thi", "exam day")) },
                        crate::policy::time::CalendarEffect::Holiday(_) => span.badge.allow { (lang.t("ngày nghỉ", "holiday")) },
                    }
                }
            }
            p { (lang.t("Hồ sơ: ", "Profile: ")) (variant_text(ctx, policy, variant)) }
            @if let Some(switched) = &summary.switched { p.muted { (lang.t("Vì: ", "Because: ")) (switched) } }
            @for cause in &causes { p.muted { (lang.t("Vì: ", "Because: ")) (cause) } }
            p { (lang.t("Chặn: ", "Blocked: ")) @for t in &summary.blocked { span.badge.block { (t) } " " } }
            @if !summary.allowed.is_empty() { p { (lang.t("Luôn cho phép: ", "Always allowed: ")) @for t in &summary.allowed { span.badge.allow { (t) } " " } } }
            @if summary.block_unlisted { p.alert { (lang.t("Mọi tên miền khác đều bị chặn.", "Every other name is blocked.")) } }
            @match next {
                Some((at, after)) => p #next-change { (lang.t("Thay đổi tiếp theo: ", "Next change: ")) (ctx.time(at)) " → " (variant_text(ctx, policy, after)) },
                None => p.muted { (lang.t("Không có quy tắc theo giờ.", "No rules in time.")) },
            }
            @if !policy.time_rules().is_static() {
                h2 { (lang.t("Tuần này", "This week")) }
                table.wide #week { tbody {
                    @for stretch in &week {
                        tr {
                            td { (DAYS[stretch.from.date().weekday().to_monday_zero_offset() as usize]) " " (stretch.from.date()) }
                            td { (format!("{:02}:{:02}", stretch.from.hour(), stretch.from.minute())) }
                            td { @if stretch.variant == u32::MAX { "—" } @else { (variant_text(ctx, policy, stretch.variant)) } }
                        }
                    }
                } }
            }
        }
    }
}
