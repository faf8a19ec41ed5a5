//! The hit-log read API: `GET /api/hits` (JSON pages or a CSV export), `GET /api/top` and
//! `GET /api/summary`, by bearer token. Every path refuses a parameter it does not take, and
//! an unknown school or category, with a 400 that names it: a misspelt filter must never
//! quietly return every record.
//!
//! The reader's role is settled first: a `school:<id>` token's filter is pinned to that school
//! before any parameter is read, and asking for another school is refused (403), so no
//! parameter or page can reach another school's records. Queries run on blocking threads
//! against a read-only SQLite connection (WAL: readers never stall the writer).

use std::path::PathBuf;

use serde_json::{Value, json};

use super::http::{Request, Response};
use crate::access::Role;
use crate::config::{ClientAddress, HitlogConfig};
use crate::hitlog::export::{self, SchoolNames, record_value};
use crate::hitlog::query::{self, Cursor, HitFilter, TopBy};
use crate::hitlog::{now_ms, schema, store, time};

/// Records per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// Most records per page.
const MAX_LIMIT: usize = 1000;
/// Ranked values unless `limit` says otherwise.
const DEFAULT_TOP: usize = 20;
/// `/api/summary` covers this much unless `since` says otherwise.
const DEFAULT_SUMMARY_DAYS: i64 = 7;

/// How the API reads the hit log.
#[derive(Debug, Clone)]
pub struct HitReader {
    path: PathBuf,
    zone: jiff::tz::TimeZone,
    keep: ClientAddress,
    /// With `backend = "postgres"`: the shared store, read instead of the local spool.
    shared: Option<crate::hitlog::postgres::read::Pool>,
}

impl HitReader {
    /// A reader for `[hitlog]`.
    pub fn new(config: &HitlogConfig) -> HitReader {
        HitReader {
            path: config.path.clone(),
            zone: time::zone(config),
            keep: config.client_address,
            shared: (config.backend == crate::config::HitlogBackend::Postgres)
                .then(|| crate::hitlog::postgres::read::Pool::new(config)),
        }
    }

    /// The district's time zone (`[hitlog] timezone`).
    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }

    /// The same file read with a reloaded `[hitlog]`'s time zone and client-address setting.
    pub fn following(&self, config: &HitlogConfig) -> HitReader {
        HitReader {
            path: self.path.clone(),
            shared: self.shared.clone(),
            ..HitReader::new(config)
        }
    }
}

/// What readers may name: the configured schools (id → name) and every category a record can
/// carry (the configured ones and the built-in ones).
pub struct Known {
    /// School ids and names.
    pub schools: SchoolNames,
    /// Category names.
    pub categories: Vec<String>,
}

impl Known {
    /// What the live snapshot knows.
    pub fn of(live: &crate::live::Snapshot) -> Known {
        Known {
            schools: live
                .policy
                .schools()
                .iter()
                .map(|s| (s.id.clone(), s.name.clone()))
                .collect(),
            categories: live
                .policy
                .categories()
                .iter()
                .filter(|c| c.service.is_none())
                .map(|c| c.name.clone())
                .chain(crate::policy::BUILT_IN_CATEGORIES.map(String::from))
                .collect(),
        }
    }
}

/// Parameters every read path takes: the filter.
const FILTER_PARAMS: [&str; 8] = [
    "school", "category", "service", "client", "device", "name", "since", "until",
];

/// A 400 naming what was wrong.
fn bad(message: impl Into<String>) -> Response {
    Response::error("400 Bad Request", message)
}

/// Refuses a parameter the path does not take (a misspelt filter must not widen the answer to
/// every record) and a single-valued one given twice.
fn check_params(request: &Request, own: &[&str]) -> Result<(), Response> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in &request.query {
        let name = name.as_str();
        if !FILTER_PARAMS.contains(&name) && !own.contains(&name) {
            let mut known: Vec<&str> = FILTER_PARAMS.to_vec();
            known.extend(own);
            return Err(bad(format!(
                "unknown parameter `{name}`; {} takes {}",
                request.path,
                known.join(", ")
            )));
        }
        let listed = name == "school" || name == "category";
        if !listed && seen.contains(&name) {
            return Err(bad(format!("`{name}` given twice")));
        }
        seen.push(name);
    }
    Ok(())
}

/// Builds the filter from the query parameters, pinned to the role's school: a school's
/// reader asking for any other school is refused (403) before anything else is read.
pub(crate) fn filter(
    request: &Request,
    role: &Role,
    reader: &HitReader,
    known: &Known,
) -> Result<HitFilter, Response> {
    let asked = HitFilter::list(request.params("school"));
    let schools = match role.school() {
        Some(own) => {
            if let Some(other) = asked.iter().find(|s| s.as_str() != own) {
                return Err(Response::error(
                    "403 Forbidden",
                    format!("this token may only read school {own}, not {other}"),
                ));
            }
            vec![own.to_string()]
        }
        None => {
            if let Some(unknown) = asked.iter().find(|s| !known.schools.contains_key(*s)) {
                let ids: Vec<&str> = known.schools.keys().map(String::as_str).collect();
                return Err(bad(format!(
                    "unknown school `{unknown}`; schools: {}",
                    ids.join(", ")
                )));
            }
            asked
        }
    };
    let categories = HitFilter::list(request.params("category"));
    if let Some(unknown) = categories.iter().find(|c| !known.categories.contains(c)) {
        return Err(bad(format!(
            "unknown category `{unknown}`; categories: {}",
            known.categories.join(", ")
        )));
    }
    let now = now_ms();
    let instant = |name: &str| -> Result<Option<i64>, Response> {
        request
            .param(name)
            .map(|text| time::parse_instant(text, &reader.zone, now))
            .transpose()
            .map_err(|e| bad(format!("{name}: {e}")))
    };
    Ok(HitFilter {
        schools,
        categories,
        services: HitFilter::list(request.params("service")),
        name: request.param("name").map(str::to_string),
        client: request
            .param("client")
            .map(|c| HitFilter::client_from(c, reader.keep)),
        device: request.param("device").map(str::to_string),
        since_ms: instant("since")?,
        until_ms: instant("until")?,
    })
}

/// `limit`: `default` when absent, else 1 to `most`.
fn limit(request: &Request, default: usize, most: usize) -> Result<usize, Response> {
    match request.param("limit").map(str::parse::<usize>) {
        None => Ok(default),
        Some(Ok(n)) if (1..=most).contains(&n) => Ok(n),
        Some(_) => Err(bad(format!("limit: expected 1 to {most}"))),
    }
}

/// `GET /api/hits`: `{"hits": [...], "next": cursor|null, "timezone": ...}`, or with
/// `format=csv` every matching record as CSV (UTF-8 with BOM, local time beside UTC; headers
/// in Vietnamese with `lang=vi`).
pub fn hits(request: &Request, role: &Role, reader: &HitReader, known: &Known) -> Response {
    if let Err(response) = check_params(request, &["limit", "cursor", "format", "lang"]) {
        return response;
    }
    let filter = match filter(request, role, reader, known) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let csv = match request.param("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return bad(format!("format: `{other}` is not json or csv")),
    };
    let cursor = match request.param("cursor").map(Cursor::decode) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => return bad("cursor: not a cursor from `next`"),
    };
    if csv {
        if cursor.is_some() {
            return bad("cursor: pages are for JSON; an export is the whole filter");
        }
        let most = match request.param("limit") {
            None => None,
            Some(_) => match limit(request, DEFAULT_LIMIT, usize::MAX) {
                Ok(n) => Some(n),
                Err(response) => return response,
            },
        };
        let vietnamese = match request.param("lang") {
            None | Some("en") => false,
            Some("vi") => true,
            Some(other) => return bad(format!("lang: `{other}` is not vi or en")),
        };
        return export_csv(reader, filter, most, &known.schools, vietnamese);
    }
    let limit = match limit(request, DEFAULT_LIMIT, MAX_LIMIT) {
        Ok(n) => n,
        Err(response) => return response,
    };
    let page = match open(reader) {
        Ok(Some(mut conn)) => match conn.list(&filter, Some(limit), cursor) {
            Ok(page) => page,
            Err(err) => return QueryFailed::from(err).into(),
        },
        Ok(None) => query::Page {
            hits: Vec::new(),
            next: None,
        },
        Err(err) => return err.into(),
    };
    let hits: Vec<Value> = page
        .hits
        .iter()
        .map(|r| record_value(r, &reader.zone, Some(&known.schools)))
        .collect();
    Response::json(
        "200 OK",
        &json!({
            "hits": hits,
            "next": page.next.map(|c| c.encode()),
            "timezone": time::zone_name(&reader.zone),
        }),
    )
}

/// Bytes an export gathers before handing them to the connection.
const EXPORT_CHUNK: usize = 64 * 1024;

/// `format=csv`: every record of the filter (or the first `most`), streamed as the database
/// yields them, so an export of millions of records holds one chunk at a time. A reader that
/// stops reading ends the export (the write deadline closes the connection, the channel
/// closes, the query stops).
fn export_csv(
    reader: &HitReader,
    filter: HitFilter,
    most: Option<usize>,
    schools: &SchoolNames,
    vietnamese: bool,
) -> Response {
    let conn = match open(reader) {
        Ok(conn) => conn,
        Err(err) => return err.into(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let (zone, schools) = (reader.zone.clone(), schools.clone());
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK + 4096);
        chunk.extend_from_slice(export::BOM.as_bytes());
        let _ = export::csv_line(&mut chunk, &export::csv_header_in(&zone, vietnamese));
        let mut open = true;
        let mut left = most.unwrap_or(usize::MAX);
        if let Some(mut conn) = conn {
            let walked = conn.for_each(&filter, |record| {
                let _ = export::csv_line(&mut chunk, &export::csv_fields(&record, &zone, &schools));
                if chunk.len() >= EXPORT_CHUNK {
                    let full =
                        std::mem::replace(&mut chunk, Vec::with_capacity(EXPORT_CHUNK + 4096));
                    open = tx.blocking_send(Ok(full.into())).is_ok();
                }
                left -= 1;
                open && left > 0
            });
            if let Err(err) = walked {
                tracing::warn!(error = %err, "hit-log export failed part way");
                let _ = tx.blocking_send(Err(std::io::Error::other(err.to_string())));
                return;
            }
        }
        if open && !chunk.is_empty() {
            let _ = tx.blocking_send(Ok(chunk.into()));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    let mut response = Response::streamed(
        "200 OK",
        "text/csv; charset=utf-8",
        axum::body::Body::from_stream(stream),
    );
    response
        .headers
        .push("Content-Disposition: attachment; filename=\"schooldns-hits.csv\"".into());
    response
}

/// `GET /api/top?by=names|clients|devices|categories|schools`: the values with the most hits
/// under the filter, `{"by": ..., "top": [{"key", "hits", "records"}]}`.
pub fn top(request: &Request, role: &Role, reader: &HitReader, known: &Known) -> Response {
    if let Err(response) = check_params(request, &["by", "limit"]) {
        return response;
    }
    let filter = match filter(request, role, reader, known) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let Some(by) = request.param("by").and_then(TopBy::parse) else {
        return bad(format!("by: expected one of {}", TopBy::ALL.join(", ")));
    };
    let limit = match limit(request, DEFAULT_TOP, MAX_LIMIT) {
        Ok(n) => n,
        Err(response) => return response,
    };
    let rows = match open(reader) {
        Ok(Some(mut conn)) => match conn.top(&filter, by, limit) {
            Ok(rows) => rows,
            Err(err) => return QueryFailed::from(err).into(),
        },
        Ok(None) => Vec::new(),
        Err(err) => return err.into(),
    };
    Response::json("200 OK", &json!({ "by": by.column(), "top": rows }))
}

/// `GET /api/summary`: hits per local day × category × school (default: the last 7 days).
pub fn summary(request: &Request, role: &Role, reader: &HitReader, known: &Known) -> Response {
    if let Err(response) = check_params(request, &[]) {
        return response;
    }
    let mut filter = match filter(request, role, reader, known) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let now = now_ms();
    filter
        .since_ms
        .get_or_insert(now - DEFAULT_SUMMARY_DAYS * 86_400_000);
    let rows = match open(reader) {
        Ok(Some(mut conn)) => match conn.summary(&filter, &reader.zone) {
            Ok(rows) => rows,
            Err(err) => return QueryFailed::from(err).into(),
        },
        Ok(None) => Vec::new(),
        Err(err) => return err.into(),
    };
    Response::json(
        "200 OK",
        &json!({
            "timezone": time::zone_name(&reader.zone),
            "since": filter.since_ms.map(time::format_utc),
            "until": time::format_utc(filter.until_ms.unwrap_or(now)),
            "days": rows,
        }),
    )
}

/// `GET /api/audit`: who read, exported or changed what, newest first (`since`, `limit`);
/// the district's tokens only.
pub fn audit(request: &Request, role: &Role, reader: &HitReader) -> Response {
    if role.school().is_some() {
        return Response::error("403 Forbidden", "the audit log is the district's to read");
    }
    for (name, _) in &request.query {
        if name != "since" && name != "limit" {
            return bad(format!(
                "unknown parameter `{name}`; /api/audit takes since, limit"
            ));
        }
    }
    let since = match request
        .param("since")
        .map(|text| time::parse_instant(text, &reader.zone, now_ms()))
        .transpose()
    {
        Ok(since) => since,
        Err(e) => return bad(format!("since: {e}")),
    };
    let limit = match limit(request, DEFAULT_LIMIT, MAX_LIMIT) {
        Ok(n) => n,
        Err(response) => return response,
    };
    let entries = match open(reader) {
        Ok(Some(mut conn)) => match conn.audit(since, limit) {
            Ok(entries) => entries,
            Err(err) => return QueryFailed::from(err).into(),
        },
        Ok(None) => Vec::new(),
        Err(err) => return err.into(),
    };
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "time": time::format_utc(e.time_ms),
                "time_local": time::format_local(e.time_ms, &reader.zone),
                "actor": e.actor,
                "address": e.address,
                "action": e.action,
                "detail": e.detail,
            })
        })
        .collect();
    Response::json("200 OK", &json!({ "audit": entries }))
}

/// Why a query could not be answered.
pub(crate) struct QueryFailed(pub String);

impl From<rusqlite::Error> for QueryFailed {
    fn from(err: rusqlite::Error) -> QueryFailed {
        QueryFailed(err.to_string())
    }
}

impl From<query::ReadError> for QueryFailed {
    fn from(err: query::ReadError) -> QueryFailed {
        QueryFailed(err.to_string())
    }
}

impl From<QueryFailed> for Response {
    fn from(err: QueryFailed) -> Response {
        tracing::warn!(error = %err.0, "hit-log query failed");
        Response::error(
            "503 Service Unavailable",
            format!("hit log unavailable: {}", err.0),
        )
    }
}

/// A read-only connection; `None` while the file does not exist yet (nothing recorded).
pub(crate) fn open(reader: &HitReader) -> Result<Option<query::HitDb>, QueryFailed> {
    if let Some(pool) = &reader.shared {
        return match pool.get() {
            Ok(conn) => Ok(Some(query::HitDb::Postgres(conn))),
            Err(err) => Err(QueryFailed(err.detail())),
        };
    }
    if !reader.path.exists() {
        return Ok(None);
    }
    let conn = store::open_reader(&reader.path)?;
    // The writer creates the schema just after the file; between the two there is nothing.
    Ok(schema::ready(&conn)?.then_some(query::HitDb::Sqlite(conn)))
}
