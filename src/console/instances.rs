//! `GET /console/instances`: every resolver of the district (district and police): its
//! version, the policy and config version it serves, its last heartbeat, queries per second,
//! hits waiting in its spool, and whether it is behind the config origin. With the shared
//! PostgreSQL hit store the rows are every instance's heartbeats (as this instance's shipper
//! last read them); without it, this instance alone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use maud::html;

use super::ui::{self, Ctx, number};
use crate::admin::AdminState;
use crate::admin::http::Response;
use crate::hitlog::postgres::ship::InstanceRow;

/// A heartbeat older than this is shown as silent.
const SILENT_AFTER_S: f64 = 15.0;

/// The page.
pub fn instances(state: &Arc<AdminState>, ctx: &Ctx) -> Response {
    let lang = ctx.lang;
    if ctx.role().school().is_some() {
        return ui::problem(
            ctx,
            "403 Forbidden",
            lang.t(
                "Trang máy chủ DNS dành cho Phòng Giáo dục và Công an.",
                "The resolvers page is for the district and the police.",
            ),
        );
    }
    let policy = format!("{:016x}", state.live.policy().version());
    let origin_version = state
        .sync
        .as_ref()
        .and_then(|s| (*s.origin_version.load_full()).clone());
    let rows: Vec<InstanceRow> = match &state.ship {
        Some(ship) if !ship.instances.load().is_empty() => (**ship.instances.load()).clone(),
        _ => vec![InstanceRow {
            name: state.instance.clone(),
            version: Some(env!("CARGO_PKG_VERSION").into()),
            policy_version: Some(policy.clone()),
            config_version: state
                .sync
                .as_ref()
                .and_then(|s| (*s.version.load_full()).clone()),
            started_ms: None,
            heartbeat_ms: None,
            heartbeat_age_s: Some(0.0),
            queries_per_second: Some(state.console.rate(state.metrics.total_queries())),
            spool_backlog: 0,
            spool_bytes: 0,
            dropped: state.hits.dropped.load(Ordering::Relaxed) as i64,
            sync_error: state
                .sync
                .as_ref()
                .and_then(|s| (*s.error.load_full()).clone()),
        }],
    };
    // Behind: not serving the origin's newest version (with a config origin), else another
    // policy than this instance's.
    let behind = |row: &InstanceRow| match &origin_version {
        Some(newest) => row.config_version.as_ref() != Some(newest),
        None => row.policy_version.as_ref() != Some(&policy),
    };
    let short = |v: &Option<String>| {
        v.as_deref()
            .map(|v| crate::sync::short(v).to_string())
            .unwrap_or_else(|| "—".into())
    };
    let title = lang.t("Máy chủ DNS", "Resolvers");
    let shared = state.ship.is_some();
    let ship_error = state
        .ship
        .as_ref()
        .and_then(|s| (*s.last_error.load_full()).clone())
        .filter(|_| {
            state
                .ship
                .as_ref()
                .is_some_and(|s| !s.connected.load(Ordering::Relaxed))
        });
    let content = html! {
        h1 { (title) }
        p.muted {
            @if shared {
                (lang.t("Mọi máy chủ DNS ghi vào kho nhật ký chung (PostgreSQL); mỗi máy gửi nhịp tim mỗi giây.", "Every resolver writing to the shared hit store (PostgreSQL); each sends a heartbeat every second."))
            } @else {
                (lang.t("Máy chủ này ghi nhật ký vào tệp riêng; các máy khác không hiện ở đây.", "This resolver keeps its own hit log; other resolvers do not show here."))
            }
            @if let Some(sync) = &state.sync {
                " " (lang.t("Cấu hình lấy từ", "Config from")) " " code { (sync.origin) }
                @if let Some(newest) = &origin_version { " (" (lang.t("mới nhất", "newest")) " " code #origin-version { (crate::sync::short(newest)) } ")" }
            }
        }
        @if let Some(err) = &ship_error { p.alert { (err) } }
        div.card { table.wide #instances {
            thead { tr {
                th { (lang.t("Máy", "Instance")) }
                th.opt { (lang.t("Phiên bản", "Version")) }
                th { (lang.t("Chính sách", "Policy")) }
                th.opt { (lang.t("Cấu hình", "Config")) }
                th { (lang.t("Nhịp tim", "Heartbeat")) }
                th.num { (lang.t("Truy vấn/giây", "Queries/s")) }
                th.num.opt { (lang.t("Chờ gửi", "Spool backlog")) }
                th.num.opt { (lang.t("Bỏ", "Dropped")) }
            } }
            tbody { @for row in &rows {
                @let silent = row.heartbeat_age_s.is_none_or(|age| age > SILENT_AFTER_S);
                tr data-instance=(row.name) {
                    td { strong { (row.name) } @if row.name == state.instance { " " span.badge { (lang.t("máy này", "this one")) } }
                        @if let Some(err) = &row.sync_error { br; span.alert.sync-error { (err) } } }
                    td.opt { (row.version.as_deref().unwrap_or("—")) }
                    td { code { (short(&row.policy_version)) } }
                    td.opt { code { (short(&row.config_version)) }
                        @if behind(row) { " " span.badge.behind { (lang.t("chậm", "behind")) } } }
                    td { @if silent { span.badge.silent { (lang.t("im lặng", "silent")) } " " }
                        (row.heartbeat_age_s.map_or("—".into(), |age| format!("{age:.0} s"))) }
                    td.num { (format!("{:.1}", row.queries_per_second.unwrap_or(0.0))) }
                    td.num.opt { (number(lang, row.spool_backlog)) }
                    td.num.opt { (number(lang, row.dropped)) }
                }
            } }
        } }
    };
    ui::page(
        "200 OK",
        ui::layout(ctx, title, "/console/instances", content),
    )
}
