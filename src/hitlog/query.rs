//! The read side, shared by `schooldns hits` and the HTTP API: filtered pages of records
//! (newest first, keyset-paginated so a page never shifts under new inserts), top-N counts,
//! and per-day × category × school summaries.
//!
//! Every query goes through [`HitFilter`]; the caller sets its `school` from the reader's role
//! before anything else, so a school's reader cannot widen it by any other filter or page.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension};

use super::record::{HitRecord, client_address};
use super::store::{record_from_row, select_records};
use crate::config::ClientAddress;

/// Which records a query covers. Every field narrows; a list matches any of its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HitFilter {
    /// School ids.
    pub schools: Vec<String>,
    /// Category names.
    pub categories: Vec<String>,
    /// Service ids (`tiktok`): records whose rule came from one of these services' lists.
    pub services: Vec<String>,
    /// A part of the name asked (case-insensitive substring).
    pub name: Option<String>,
    /// Client address as stored (see [`HitFilter::client_from`]).
    pub client: Option<String>,
    /// Device or family id.
    pub device: Option<String>,
    /// First hit at or after (ms since epoch).
    pub since_ms: Option<i64>,
    /// First hit before (ms since epoch).
    pub until_ms: Option<i64>,
}

impl HitFilter {
    /// The stored form of a client a reader asks about: an address is masked the way the log
    /// masks it, so `--client 10.1.2.3` finds `10.1.2.0/24` under `client_address = "masked"`.
    pub fn client_from(text: &str, keep: ClientAddress) -> String {
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => client_address(ip, keep).unwrap_or_default(),
            Err(_) => text.trim().to_string(),
        }
    }

    /// Splits list arguments as readers write them: repeated, or comma-separated
    /// (`malware,phishing`), blanks dropped.
    pub fn list<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        values
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The filter's conditions, before either database's SQL is written from them.
    pub(crate) fn conditions(&self) -> Vec<Condition<'_>> {
        let mut out = Vec::new();
        for (column, table, names) in [
            ("r.school", "schools", &self.schools),
            ("r.category", "categories", &self.categories),
        ] {
            if !names.is_empty() {
                out.push(Condition::Named {
                    column,
                    table,
                    names,
                });
            }
        }
        if !self.services.is_empty() {
            out.push(Condition::Services(&self.services));
        }
        if let Some(part) = &self.name {
            // Names are stored normalised (lower case); LIKE's wildcards in the part are
            // escaped so that `_` means an underscore.
            let escaped = part
                .to_ascii_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            out.push(Condition::NameLike(format!("%{escaped}%")));
        }
        if let Some(client) = &self.client {
            out.push(Condition::Equals("r.client", client));
        }
        if let Some(device) = &self.device {
            out.push(Condition::Equals("r.device", device));
        }
        if let Some(since) = self.since_ms {
            out.push(Condition::Since(since));
        }
        if let Some(until) = self.until_ms {
            out.push(Condition::Until(until));
        }
        out
    }

    /// The local days `[first, end)` the filter covers, when it asks for whole days of
    /// schools and categories only: what a daily rollup can answer exactly.
    pub(crate) fn whole_days(&self, zone: &jiff::tz::TimeZone) -> Option<(i64, i64)> {
        use super::rollup::{day_of, day_start};
        if self.name.is_some()
            || self.client.is_some()
            || self.device.is_some()
            || !self.services.is_empty()
        {
            return None;
        }
        // A bound that is not a local midnight would cut a day the rollup holds whole.
        let day_bound = |ms: Option<i64>, open: i64| -> Option<i64> {
            match ms {
                None => Some(open),
                Some(ms) => {
                    let day = day_of(ms, zone);
                    (day_start(day, zone) == Some(ms)).then_some(day)
                }
            }
        };
        Some((
            day_bound(self.since_ms, i64::MIN)?,
            day_bound(self.until_ms, i64::MAX)?,
        ))
    }

    /// The `WHERE` clause over `records r` in SQLite, and its values.
    ///
    /// Schools and categories are stored as integers: their ids are looked up first, so the
    /// planner sees `school = 42` (and walks the school's time index newest first) rather than
    /// a subquery whose size it cannot know. A name never stored matches nothing.
    fn sql(&self, conn: &Connection) -> rusqlite::Result<(String, Vec<Value>)> {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        for condition in self.conditions() {
            match condition {
                Condition::Named {
                    column,
                    table,
                    names,
                } => match ids_of(conn, table, names)?.as_slice() {
                    [] => clauses.push("0".into()),
                    [one] => {
                        clauses.push(format!("{column} = ?"));
                        values.push(Value::Integer(*one));
                    }
                    many => {
                        // Several values: `+` keeps the planner on the time order (newest
                        // first, stopping at the page's end) instead of gathering every match
                        // of each value and sorting them.
                        clauses.push(format!(
                            "+{column} IN ({})",
                            vec!["?"; many.len()].join(", ")
                        ));
                        values.extend(many.iter().map(|id| Value::Integer(*id)));
                    }
                },
                Condition::Services(services) => {
                    // Services live in the few rows of `contexts`: the matching ids are
                    // gathered once.
                    clauses.push(format!(
                        "r.context IN (SELECT id FROM contexts WHERE service IN ({}))",
                        vec!["?"; services.len()].join(", ")
                    ));
                    values.extend(services.iter().map(|s| Value::Text(s.clone())));
                }
                Condition::NameLike(pattern) => {
                    clauses.push("r.qname LIKE ? ESCAPE '\\'".into());
                    values.push(Value::Text(pattern));
                }
                Condition::Equals(column, value) => {
                    clauses.push(format!("{column} = ?"));
                    values.push(Value::Text(value.to_string()));
                }
                Condition::Since(ms) => {
                    clauses.push("r.time_ms >= ?".into());
                    values.push(Value::Integer(ms));
                }
                Condition::Until(ms) => {
                    clauses.push("r.time_ms < ?".into());
                    values.push(Value::Integer(ms));
                }
            }
        }
        if clauses.is_empty() {
            clauses.push("1".into());
        }
        Ok((clauses.join(" AND "), values))
    }
}

/// One condition of a [`HitFilter`] over `records r`, before either database's SQL is written.
pub(crate) enum Condition<'a> {
    /// `column` holds the id of one of `names` in `table`.
    Named {
        column: &'static str,
        table: &'static str,
        names: &'a [String],
    },
    /// The record's context names one of these services.
    Services(&'a [String]),
    /// `r.qname LIKE` this pattern (wildcards escaped with `\`).
    NameLike(String),
    /// `column` equals this text.
    Equals(&'static str, &'a str),
    /// First hit at or after.
    Since(i64),
    /// First hit before.
    Until(i64),
}

/// The ids of the `names` stored in `table` (`schools` or `categories`).
fn ids_of(conn: &Connection, table: &str, names: &[String]) -> rusqlite::Result<Vec<i64>> {
    let mut lookup = conn.prepare_cached(&format!("SELECT id FROM {table} WHERE name = ?1"))?;
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        if let Some(id) = lookup
            .query_row([name], |r| r.get::<_, i64>(0))
            .optional()?
        {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Where a page ends: the next page starts after this record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last record's first-hit time.
    pub time_ms: i64,
    /// The last record's id.
    pub id: i64,
}

impl Cursor {
    /// The opaque text form (`<time_ms>-<id>`).
    pub fn encode(&self) -> String {
        format!("{}-{}", self.time_ms, self.id)
    }

    /// Reads [`Cursor::encode`]'s form.
    pub fn decode(text: &str) -> Option<Cursor> {
        let (time, id) = text.split_once('-')?;
        Some(Cursor {
            time_ms: time.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

/// One page of records.
#[derive(Debug)]
pub struct Page {
    /// Newest first.
    pub hits: Vec<HitRecord>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Records matching `filter`, newest first, at most `limit` (all when `None`), after `after`.
pub fn list(
    conn: &Connection,
    filter: &HitFilter,
    limit: Option<usize>,
    after: Option<Cursor>,
) -> rusqlite::Result<Page> {
    let (mut clause, mut values) = filter.sql(conn)?;
    if let Some(c) = after {
        // The bound on time alone lets the index range start at the cursor; the rest only
        // breaks ties within its millisecond.
        clause.push_str(" AND r.time_ms <= ? AND (r.time_ms < ? OR r.id < ?)");
        values.extend([
            Value::Integer(c.time_ms),
            Value::Integer(c.time_ms),
            Value::Integer(c.id),
        ]);
    }
    // One extra row tells whether there is a next page.
    let fetch = limit.map_or(-1, |l| l as i64 + 1);
    values.push(Value::Integer(fetch));
    let sql = format!(
        "{} WHERE {clause} ORDER BY r.time_ms DESC, r.id DESC LIMIT ?",
        select_records()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let hits: Vec<HitRecord> = stmt
        .query_map(rusqlite::params_from_iter(values), record_from_row)?
        .collect::<Result<_, _>>()?;
    Ok(Page::of(hits, limit))
}

impl Page {
    /// The page of `limit` records from `fetched`, which holds one more when there is a next
    /// page.
    pub(crate) fn of(mut fetched: Vec<HitRecord>, limit: Option<usize>) -> Page {
        let next = match limit {
            Some(limit) if fetched.len() > limit => {
                fetched.truncate(limit);
                fetched.last().map(|r| Cursor {
                    time_ms: r.time_ms,
                    id: r.id,
                })
            }
            _ => None,
        };
        Page {
            hits: fetched,
            next,
        }
    }
}

/// Calls `each` with every record matching `filter`, newest first, row by row, so an export of
/// millions of records never holds them all; stops when `each` returns false. Returns how many
/// records were passed.
pub fn for_each(
    conn: &Connection,
    filter: &HitFilter,
    mut each: impl FnMut(HitRecord) -> bool,
) -> rusqlite::Result<u64> {
    let (clause, values) = filter.sql(conn)?;
    let sql = format!(
        "{} WHERE {clause} ORDER BY r.time_ms DESC, r.id DESC",
        select_records()
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut passed = 0;
    while let Some(row) = rows.next()? {
        passed += 1;
        if !each(record_from_row(row)?) {
            break;
        }
    }
    Ok(passed)
}

/// What `--top` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopBy {
    /// Names asked.
    Names,
    /// Client addresses.
    Clients,
    /// Home devices.
    Devices,
    /// Categories.
    Categories,
    /// Schools.
    Schools,
}

impl TopBy {
    /// Every ranking, as [`TopBy::parse`] reads it.
    pub const ALL: [&'static str; 5] = ["names", "clients", "devices", "categories", "schools"];

    /// Reads `names`, `clients`, `devices`, `categories` or `schools`.
    pub fn parse(text: &str) -> Option<TopBy> {
        Some(match text {
            "names" => TopBy::Names,
            "clients" => TopBy::Clients,
            "devices" => TopBy::Devices,
            "categories" => TopBy::Categories,
            "schools" => TopBy::Schools,
            _ => return None,
        })
    }

    /// What is ranked, as `--top` names it in output.
    pub fn column(&self) -> &'static str {
        match self {
            TopBy::Names => "qname",
            TopBy::Clients => "client",
            TopBy::Devices => "device",
            TopBy::Categories => "category",
            TopBy::Schools => "school",
        }
    }

    /// The `records r` column grouped by, and the name table its integers point into.
    pub(crate) fn grouped(&self) -> (&'static str, Option<&'static str>) {
        match self {
            TopBy::Names => ("r.qname", None),
            TopBy::Clients => ("r.client", None),
            TopBy::Devices => ("r.device", None),
            TopBy::Categories => ("r.category", Some("categories")),
            TopBy::Schools => ("r.school", Some("schools")),
        }
    }
}

/// One ranked value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopRow {
    /// The name, client, category or school (`None` for records without one).
    pub key: Option<String>,
    /// Hits (repeats included).
    pub hits: i64,
    /// Records.
    pub records: i64,
}

/// The `limit` values of `by` with the most hits.
pub fn top(
    conn: &Connection,
    filter: &HitFilter,
    by: TopBy,
    limit: usize,
) -> rusqlite::Result<Vec<TopRow>> {
    let (clause, mut values) = filter.sql(conn)?;
    values.push(Value::Integer(limit as i64));
    let (column, names) = by.grouped();
    let grouped = format!(
        "SELECT {column} AS key, sum(r.count) AS hits, count(*) AS records FROM records r \
         WHERE {clause} GROUP BY {column}"
    );
    // Integers are ranked under their names, ties broken by name as for the text columns.
    let sql = match names {
        None => format!("{grouped} ORDER BY hits DESC, key LIMIT ?"),
        Some(table) => format!(
            "SELECT n.name, g.hits, g.records FROM ({grouped}) g \
             LEFT JOIN {table} n ON n.id = g.key ORDER BY g.hits DESC, n.name LIMIT ?"
        ),
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_map(rusqlite::params_from_iter(values), |row| {
        Ok(TopRow {
            key: row.get(0)?,
            hits: row.get(1)?,
            records: row.get(2)?,
        })
    })?
    .collect()
}

/// When each of `schools` last had a hit (first-hit time of its newest record), by id; one
/// index lookup each.
pub fn last_hits(conn: &Connection, schools: &[String]) -> rusqlite::Result<BTreeMap<String, i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT max(time_ms) FROM records WHERE school = (SELECT id FROM schools WHERE name = ?1)",
    )?;
    let mut out = BTreeMap::new();
    for school in schools {
        if let Some(ms) = stmt.query_row([school], |r| r.get::<_, Option<i64>>(0))? {
            out.insert(school.clone(), ms);
        }
    }
    Ok(out)
}

/// The most-hit names, clients and devices of one filter, from one pass over its records
/// (three `top` queries would read them three times).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tops {
    /// Names asked.
    pub names: Vec<TopRow>,
    /// Client addresses (records that keep one).
    pub clients: Vec<TopRow>,
    /// Home devices (records of devices).
    pub devices: Vec<TopRow>,
}

/// [`Tops`] of `filter`, `limit` of each.
pub fn tops(conn: &Connection, filter: &HitFilter, limit: usize) -> rusqlite::Result<Tops> {
    use rustc_hash::FxHashMap;
    let (clause, values) = filter.sql(conn)?;
    let sql = format!("SELECT r.qname, r.client, r.device, r.count FROM records r WHERE {clause}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    let mut maps: [FxHashMap<String, (i64, i64)>; 3] = Default::default();
    while let Some(row) = rows.next()? {
        let count: i64 = row.get(3)?;
        for (i, map) in maps.iter_mut().enumerate() {
            let key = match row.get_ref(i)? {
                rusqlite::types::ValueRef::Text(text) => text,
                _ => continue,
            };
            let key = std::str::from_utf8(key).unwrap_or_default();
            match map.get_mut(key) {
                Some(entry) => {
                    entry.0 += count;
                    entry.1 += 1;
                }
                None => {
                    map.insert(key.to_string(), (count, 1));
                }
            }
        }
    }
    let ranked = |map: FxHashMap<String, (i64, i64)>| {
        let mut rows: Vec<TopRow> = map
            .into_iter()
            .map(|(key, (hits, records))| TopRow {
                key: Some(key),
                hits,
                records,
            })
            .collect();
        rows.sort_by(|a, b| b.hits.cmp(&a.hits).then_with(|| a.key.cmp(&b.key)));
        rows.truncate(limit);
        rows
    };
    let [names, clients, devices] = maps;
    Ok(Tops {
        names: ranked(names),
        clients: ranked(clients),
        devices: ranked(devices),
    })
}

/// Hits of one local day, category and school.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SummaryRow {
    /// Local date (`[hitlog] timezone`), `YYYY-MM-DD`.
    pub day: String,
    /// School id (`None` for home devices without a school).
    pub school: Option<String>,
    /// Category.
    pub category: String,
    /// Hits (repeats included).
    pub hits: i64,
    /// Records.
    pub records: i64,
}

/// Counts per local day × category × school, oldest day first.
///
/// SQLite groups by quarter hour (every time zone's offset is a multiple of 15 minutes) and the
/// quarters are assigned to local days here, so days follow the zone's rules, DST included,
/// while the database does one indexed range scan.
pub fn summary(
    conn: &Connection,
    filter: &HitFilter,
    zone: &jiff::tz::TimeZone,
) -> rusqlite::Result<Vec<SummaryRow>> {
    match summary_from_rollup(conn, filter, zone)? {
        Some(rows) => Ok(rows),
        None => summary_exact(conn, filter, zone),
    }
}

/// [`summary`] from the records themselves, for any filter.
pub fn summary_exact(
    conn: &Connection,
    filter: &HitFilter,
    zone: &jiff::tz::TimeZone,
) -> rusqlite::Result<Vec<SummaryRow>> {
    const QUARTER_MS: i64 = 900_000;
    let (clause, values) = filter.sql(conn)?;
    let sql = format!(
        "SELECT g.quarter, s.name, c.name, g.hits, g.records FROM (\
             SELECT r.time_ms / {QUARTER_MS} AS quarter, r.school, r.category, \
                 sum(r.count) AS hits, count(*) AS records \
             FROM records r WHERE {clause} GROUP BY quarter, r.school, r.category) g \
         LEFT JOIN schools s ON s.id = g.school LEFT JOIN categories c ON c.id = g.category"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut days: BTreeMap<(String, Option<String>, String), (i64, i64)> = BTreeMap::new();
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(row) = rows.next()? {
        let quarter: i64 = row.get(0)?;
        let day = super::time::local_date(quarter * QUARTER_MS, zone).to_string();
        let entry = days.entry((day, row.get(1)?, row.get(2)?)).or_default();
        entry.0 += row.get::<_, i64>(3)?;
        entry.1 += row.get::<_, i64>(4)?;
    }
    Ok(summary_rows(days))
}

/// Hits and records by (local day, school, category), as rows in that order.
pub(crate) fn summary_rows(
    days: BTreeMap<(String, Option<String>, String), (i64, i64)>,
) -> Vec<SummaryRow> {
    days.into_iter()
        .map(|((day, school, category), (hits, records))| SummaryRow {
            day,
            school,
            category,
            hits,
            records,
        })
        .collect()
}

/// [`summary`] from the daily rollup, when it can answer exactly: it is complete and counts
/// days in `zone`, the filter names only schools, categories and whole local days (the rollup
/// does not keep services).
fn summary_from_rollup(
    conn: &Connection,
    filter: &HitFilter,
    zone: &jiff::tz::TimeZone,
) -> rusqlite::Result<Option<Vec<SummaryRow>>> {
    use super::rollup::date_of;
    let Some((first, end)) = filter.whole_days(zone) else {
        return Ok(None);
    };
    if !super::rollup::ready(conn, zone) {
        return Ok(None);
    }
    let mut clause = String::from("g.day >= ? AND g.day < ?");
    let mut values = vec![Value::Integer(first), Value::Integer(end)];
    for (column, table, names) in [
        ("g.school", "schools", &filter.schools),
        ("g.category", "categories", &filter.categories),
    ] {
        if names.is_empty() {
            continue;
        }
        let ids = ids_of(conn, table, names)?;
        if ids.is_empty() {
            return Ok(Some(Vec::new()));
        }
        clause.push_str(&format!(
            " AND {column} IN ({})",
            vec!["?"; ids.len()].join(", ")
        ));
        values.extend(ids.into_iter().map(Value::Integer));
    }
    let sql = format!(
        "SELECT g.day, s.name, c.name, g.hits, g.records FROM rollup_days g \
         LEFT JOIN schools s ON s.id = g.school LEFT JOIN categories c ON c.id = g.category \
         WHERE {clause}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut days: BTreeMap<(String, Option<String>, String), (i64, i64)> = BTreeMap::new();
    let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
    while let Some(row) = rows.next()? {
        let entry = days
            .entry((
                date_of(row.get(0)?),
                row.get(1)?,
                row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            ))
            .or_default();
        entry.0 += row.get::<_, i64>(3)?;
        entry.1 += row.get::<_, i64>(4)?;
    }
    Ok(Some(summary_rows(days)))
}

/// An open hit store, for reading: this instance's SQLite file, or the shared PostgreSQL
/// store (`[hitlog] backend = "postgres"`) with every instance's records.
pub enum HitDb {
    /// The SQLite file, read-only.
    Sqlite(Connection),
    /// A pooled connection to the shared store.
    Postgres(super::postgres::read::Pooled),
}

/// A read that failed, in either store.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The SQLite file.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The shared store.
    #[error("{}", .0.detail())]
    Postgres(#[from] super::postgres::PgError),
}

impl HitDb {
    /// [`list`].
    pub fn list(
        &mut self,
        filter: &HitFilter,
        limit: Option<usize>,
        after: Option<Cursor>,
    ) -> Result<Page, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => list(c, filter, limit, after)?,
            HitDb::Postgres(c) => super::postgres::read::list(c, filter, limit, after)?,
        })
    }

    /// [`for_each`].
    pub fn for_each(
        &mut self,
        filter: &HitFilter,
        mut each: impl FnMut(HitRecord) -> bool,
    ) -> Result<u64, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => for_each(c, filter, each)?,
            HitDb::Postgres(c) => super::postgres::read::for_each(c, filter, &mut each)?,
        })
    }

    /// [`top`].
    pub fn top(
        &mut self,
        filter: &HitFilter,
        by: TopBy,
        limit: usize,
    ) -> Result<Vec<TopRow>, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => top(c, filter, by, limit)?,
            HitDb::Postgres(c) => super::postgres::read::top(c, filter, by, limit)?,
        })
    }

    /// [`tops`].
    pub fn tops(&mut self, filter: &HitFilter, limit: usize) -> Result<Tops, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => tops(c, filter, limit)?,
            HitDb::Postgres(c) => super::postgres::read::tops(c, filter, limit)?,
        })
    }

    /// [`last_hits`].
    pub fn last_hits(&mut self, schools: &[String]) -> Result<BTreeMap<String, i64>, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => last_hits(c, schools)?,
            HitDb::Postgres(c) => super::postgres::read::last_hits(c, schools)?,
        })
    }

    /// [`summary`].
    pub fn summary(
        &mut self,
        filter: &HitFilter,
        zone: &jiff::tz::TimeZone,
    ) -> Result<Vec<SummaryRow>, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => summary(c, filter, zone)?,
            HitDb::Postgres(c) => super::postgres::read::summary(c, filter, zone)?,
        })
    }

    /// One record by id.
    pub fn record_by_id(&mut self, id: i64) -> Result<Option<HitRecord>, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => super::store::record_by_id(c, id)?,
            HitDb::Postgres(c) => super::postgres::read::record_by_id(c, id)?,
        })
    }

    /// The audit log, newest first (every instance's, in the shared store).
    pub fn audit(
        &mut self,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<super::audit::AuditEntry>, ReadError> {
        Ok(match self {
            HitDb::Sqlite(c) => super::audit::list(c, since_ms, limit)?,
            HitDb::Postgres(c) => super::postgres::read::audit(c, since_ms, limit)?,
        })
    }
}
