//! The hit-log read API: `GET /api/hits` and `GET /api/summary`, by bearer token.
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
use crate::hitlog::export::{SchoolNames, record_value};
use crate::hitlog::query::{self, Cursor, HitFilter};
use crate::hitlog::{now_ms, schema, store, time};

/// Records per page unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// Most records per page.
const MAX_LIMIT: usize = 1000;
/// `/api/summary` covers this much unless `since` says otherwise.
const DEFAULT_SUMMARY_DAYS: i64 = 7;

/// How the API reads the hit log.
#[derive(Debug, Clone)]
pub struct HitReader {
    path: PathBuf,
    zone: jiff::tz::TimeZone,
    keep: ClientAddress,
}

impl HitReader {
    /// A reader for `[hitlog]`.
    pub fn new(config: &HitlogConfig) -> HitReader {
        HitReader {
            path: config.path.clone(),
            zone: time::zone(config),
            keep: config.client_address,
        }
    }

    /// The same file read with a reloaded `[hitlog]`'s time zone and client-address setting.
    pub fn following(&self, config: &HitlogConfig) -> HitReader {
        HitReader {
            path: self.path.clone(),
            ..HitReader::new(config)
        }
    }
}

/// Builds the filter from the query parameters, pinned to the role's school.
fn filter(request: &Request, role: &Role, reader: &HitReader) -> Result<HitFilter, Response> {
    let asked_school = request.param("school");
    let school = match (role.school(), asked_school) {
        (Some(own), Some(asked)) if asked != own => {
            return Err(Response::error(
                "403 Forbidden",
                format!("this token may only read school {own}"),
            ));
        }
        (Some(own), _) => Some(own.to_string()),
        (None, asked) => asked.map(str::to_string),
    };
    let now = now_ms();
    let instant = |name: &str| -> Result<Option<i64>, Response> {
        request
            .param(name)
            .map(|text| time::parse_instant(text, &reader.zone, now))
            .transpose()
            .map_err(|e| Response::error("400 Bad Request", format!("{name}: {e}")))
    };
    Ok(HitFilter {
        school,
        category: request.param("category").map(str::to_string),
        client: request
            .param("client")
            .map(|c| HitFilter::client_from(c, reader.keep)),
        device: request.param("device").map(str::to_string),
        since_ms: instant("since")?,
        until_ms: instant("until")?,
    })
}

/// `GET /api/hits`: `{"hits": [...], "next": cursor|null, "timezone": ...}`.
pub fn hits(request: &Request, role: &Role, reader: &HitReader, schools: &SchoolNames) -> Response {
    let filter = match filter(request, role, reader) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let limit = match request.param("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return Response::error(
                "400 Bad Request",
                format!("limit: expected 1 to {MAX_LIMIT}"),
            );
        }
    };
    let cursor = match request.param("cursor").map(Cursor::decode) {
        None => None,
        Some(Some(c)) => Some(c),
        Some(None) => {
            return Response::error("400 Bad Request", "cursor: not a cursor from `next`");
        }
    };
    let page = match open(reader) {
        Ok(Some(conn)) => match query::list(&conn, &filter, Some(limit), cursor) {
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
        .map(|r| record_value(r, &reader.zone, Some(schools)))
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

/// `GET /api/summary`: hits per local day × category × school (default: the last 7 days).
pub fn summary(request: &Request, role: &Role, reader: &HitReader) -> Response {
    let mut filter = match filter(request, role, reader) {
        Ok(f) => f,
        Err(response) => return response,
    };
    let now = now_ms();
    filter
        .since_ms
        .get_or_insert(now - DEFAULT_SUMMARY_DAYS * 86_400_000);
    let rows = match open(reader) {
        Ok(Some(conn)) => match query::summary(&conn, &filter, &reader.zone) {
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

/// Why a query could not be answered.
struct QueryFailed(String);

impl From<rusqlite::Error> for QueryFailed {
    fn from(err: rusqlite::Error) -> QueryFailed {
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
fn open(reader: &HitReader) -> Result<Option<rusqlite::Connection>, QueryFailed> {
    if !reader.path.exists() {
        return Ok(None);
    }
    let conn = store::open_reader(&reader.path)?;
    // The writer creates the schema just after the file; between the two there is nothing.
    Ok(schema::ready(&conn)?.then_some(conn))
}
