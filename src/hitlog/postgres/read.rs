//! Reading the shared hit store: the same filtered pages, rankings and summaries as the SQLite
//! file ([`crate::hitlog::query`]), across every instance, each record naming its instance.
//!
//! Connections are pooled (a few idle ones kept), so a console page or an API call does not
//! pay for a new connection and its authentication each time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use postgres::Client;
use postgres::types::ToSql;

use super::{PgError, schema};
use crate::config::HitlogConfig;
use crate::hitlog::HitRecord;
use crate::hitlog::audit::AuditEntry;
use crate::hitlog::query::{
    Condition, Cursor, HitFilter, Page, SummaryRow, TopBy, TopRow, Tops, summary_rows,
};

/// Idle connections kept for the next reader.
const MAX_IDLE: usize = 4;

/// Readers' connections to the shared store.
#[derive(Clone)]
pub struct Pool {
    config: HitlogConfig,
    idle: Arc<Mutex<Vec<Client>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.config.url.as_ref().map(|u| u.get_ref()))
            .finish()
    }
}

impl Pool {
    /// A pool for `[hitlog]` (connects on first use).
    pub fn new(config: &HitlogConfig) -> Pool {
        Pool {
            config: config.clone(),
            idle: Arc::default(),
        }
    }

    /// An idle connection, or a new one.
    pub fn get(&self) -> Result<Pooled, PgError> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let client = match idle {
            Some(client) if !client.is_closed() => client,
            _ => super::connect_reader(&self.config)?,
        };
        Ok(Pooled {
            client: Some(client),
            pool: Arc::clone(&self.idle),
        })
    }
}

/// A connection borrowed from a [`Pool`]; goes back to it when dropped.
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<Mutex<Vec<Client>>>,
}

impl std::ops::Deref for Pooled {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            let mut idle = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(client);
            }
        }
    }
}

type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(values: &Params) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect()
}

/// The `WHERE` clause over `records r` and its values, numbered from `$1`.
fn clause(client: &mut Client, filter: &HitFilter) -> Result<(String, Params), PgError> {
    let mut clauses = Vec::new();
    let mut values: Params = Vec::new();
    let next = |values: &mut Params, value: Box<dyn ToSql + Sync + Send>| {
        values.push(value);
        format!("${}", values.len())
    };
    for condition in filter.conditions() {
        match condition {
            Condition::Named {
                column,
                table,
                names,
            } => {
                let ids = ids_of(client, table, names)?;
                if ids.is_empty() {
                    clauses.push("false".to_string());
                } else {
                    let mark = next(&mut values, Box::new(ids));
                    clauses.push(format!("{column} = ANY({mark})"));
                }
            }
            Condition::Services(services) => {
                let mark = next(&mut values, Box::new(services.to_vec()));
                clauses.push(format!(
                    "r.context IN (SELECT id FROM contexts WHERE service = ANY({mark}))"
                ));
            }
            Condition::NameLike(pattern) => {
                let mark = next(&mut values, Box::new(pattern));
                clauses.push(format!("r.qname LIKE {mark} ESCAPE '\\'"));
            }
            Condition::Equals(column, value) => {
                let mark = next(&mut values, Box::new(value.to_string()));
                clauses.push(format!("{column} = {mark}"));
            }
            Condition::Since(ms) => {
                let mark = next(&mut values, Box::new(ms));
                clauses.push(format!("r.time_ms >= {mark}"));
            }
            Condition::Until(ms) => {
                let mark = next(&mut values, Box::new(ms));
                clauses.push(format!("r.time_ms < {mark}"));
            }
        }
    }
    if clauses.is_empty() {
        clauses.push("true".into());
    }
    Ok((clauses.join(" AND "), values))
}

/// The ids of `names` in `table` (`schools` or `categories`); names never stored match none.
fn ids_of(client: &mut Client, table: &str, names: &[String]) -> Result<Vec<i32>, PgError> {
    let rows = client.query(
        &format!("SELECT id FROM {table} WHERE name = ANY($1)"),
        &[&names],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn record(row: &postgres::Row) -> HitRecord {
    HitRecord {
        id: row.get(0),
        time_ms: row.get(1),
        last_seen_ms: row.get(2),
        count: row.get(3),
        school: row.get(4),
        device: row.get(5),
        profile: row.get(6),
        client: row.get(7),
        protocol: row.get::<_, Option<String>>(8).unwrap_or_default(),
        qname: row.get(9),
        qtype: row.get::<_, Option<String>>(10).unwrap_or_default(),
        decision: row.get::<_, Option<String>>(11).unwrap_or_default(),
        category: row.get::<_, Option<String>>(12).unwrap_or_default(),
        list: row.get(13),
        line: row.get::<_, Option<i32>>(14).map(|l| l.max(0) as u32),
        entry: row.get(15),
        cname: row.get(16),
        policy_version: row.get::<_, Option<String>>(17).unwrap_or_default(),
        service: row.get(18),
        instance: row.get(19),
    }
}

fn select() -> String {
    format!(
        "SELECT {} FROM records r {}",
        schema::RECORD_COLUMNS,
        schema::JOINS
    )
}

/// [`crate::hitlog::query::list`] in the shared store.
pub fn list(
    client: &mut Client,
    filter: &HitFilter,
    limit: Option<usize>,
    after: Option<Cursor>,
) -> Result<Page, PgError> {
    let (mut clause, mut values) = clause(client, filter)?;
    if let Some(c) = after {
        let n = values.len();
        clause.push_str(&format!(
            " AND r.time_ms <= ${} AND (r.time_ms < ${} OR r.id < ${})",
            n + 1,
            n + 1,
            n + 2
        ));
        values.push(Box::new(c.time_ms));
        values.push(Box::new(c.id));
    }
    let fetch: Option<i64> = limit.map(|l| l as i64 + 1);
    values.push(Box::new(fetch));
    let sql = format!(
        "{} WHERE {clause} ORDER BY r.time_ms DESC, r.id DESC LIMIT ${}",
        select(),
        values.len()
    );
    let rows = client.query(&sql, &refs(&values))?;
    Ok(Page::of(rows.iter().map(record).collect(), limit))
}

/// [`crate::hitlog::query::for_each`] in the shared store: rows streamed from the server.
pub fn for_each(
    client: &mut Client,
    filter: &HitFilter,
    each: &mut dyn FnMut(HitRecord) -> bool,
) -> Result<u64, PgError> {
    use postgres::fallible_iterator::FallibleIterator;
    let (clause, values) = clause(client, filter)?;
    let sql = format!(
        "{} WHERE {clause} ORDER BY r.time_ms DESC, r.id DESC",
        select()
    );
    let mut tx = client.transaction()?;
    // A portal fetches a bounded number of rows at a time, so an export of millions never
    // holds them all.
    let portal = tx.bind(sql.as_str(), &refs(&values))?;
    let mut passed = 0;
    'rows: loop {
        let mut rows = tx.query_portal_raw(&portal, 2_000)?;
        let mut any = false;
        while let Some(row) = rows.next()? {
            any = true;
            passed += 1;
            if !each(record(&row)) {
                break 'rows;
            }
        }
        if !any {
            break;
        }
    }
    drop(portal);
    tx.commit()?;
    Ok(passed)
}

/// [`crate::hitlog::query::top`] in the shared store.
pub fn top(
    client: &mut Client,
    filter: &HitFilter,
    by: TopBy,
    limit: usize,
) -> Result<Vec<TopRow>, PgError> {
    let (clause, mut values) = clause(client, filter)?;
    values.push(Box::new(limit as i64));
    let mark = values.len();
    let (column, names) = by.grouped();
    let grouped = format!(
        "SELECT {column} AS key, sum(r.count)::bigint AS hits, count(*) AS records \
         FROM records r WHERE {clause} GROUP BY {column}"
    );
    let sql = match names {
        None => format!("{grouped} ORDER BY hits DESC, key LIMIT ${mark}"),
        Some(table) => format!(
            "SELECT n.name, g.hits, g.records FROM ({grouped}) g \
             LEFT JOIN {table} n ON n.id = g.key ORDER BY g.hits DESC, n.name LIMIT ${mark}"
        ),
    };
    let rows = client.query(&sql, &refs(&values))?;
    Ok(rows
        .iter()
        .map(|r| TopRow {
            key: r.get(0),
            hits: r.get(1),
            records: r.get(2),
        })
        .collect())
}

/// [`crate::hitlog::query::tops`] in the shared store.
pub fn tops(client: &mut Client, filter: &HitFilter, limit: usize) -> Result<Tops, PgError> {
    let mut out = Tops::default();
    for (by, slot) in [
        (TopBy::Names, &mut out.names),
        (TopBy::Clients, &mut out.clients),
        (TopBy::Devices, &mut out.devices),
    ] {
        // The database ranks; rows without the value (no client kept, not a device) are
        // not ranked, as in the SQLite file.
        *slot = top(client, filter, by, limit + 1)?
            .into_iter()
            .filter(|r| r.key.is_some())
            .take(limit)
            .collect();
    }
    Ok(out)
}

/// [`crate::hitlog::query::last_hits`] in the shared store.
pub fn last_hits(
    client: &mut Client,
    schools: &[String],
) -> Result<BTreeMap<String, i64>, PgError> {
    let rows = client.query(
        "SELECT s.name, (SELECT max(r.time_ms) FROM records r WHERE r.school = s.id) \
         FROM schools s WHERE s.name = ANY($1)",
        &[&schools],
    )?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get::<_, String>(0), r.get::<_, Option<i64>>(1)?)))
        .collect())
}

/// [`crate::hitlog::query::summary`] in the shared store: from `rollup_days` when the filter
/// allows (whole local days, schools and categories only), else from the records.
pub fn summary(
    client: &mut Client,
    filter: &HitFilter,
    zone: &jiff::tz::TimeZone,
) -> Result<Vec<SummaryRow>, PgError> {
    use crate::hitlog::rollup::date_of;
    if let Some((first, end)) = filter.whole_days(zone)
        && rollup_zone(client)?.as_deref() == Some(&crate::hitlog::time::zone_name(zone))
    {
        let mut clause = String::from("g.day >= $1 AND g.day < $2");
        let mut values: Params = vec![
            Box::new(first.clamp(0, i32::MAX as i64) as i32),
            Box::new(end.clamp(0, i32::MAX as i64) as i32),
        ];
        for (column, table, names) in [
            ("g.school", "schools", &filter.schools),
            ("g.category", "categories", &filter.categories),
        ] {
            if names.is_empty() {
                continue;
            }
            let ids = ids_of(client, table, names)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            values.push(Box::new(ids));
            clause.push_str(&format!(" AND {column} = ANY(${})", values.len()));
        }
        let sql = format!(
            "SELECT g.day, s.name, c.name, sum(g.hits)::bigint, sum(g.records)::bigint \
             FROM rollup_days g LEFT JOIN schools s ON s.id = g.school \
             LEFT JOIN categories c ON c.id = g.category WHERE {clause} \
             GROUP BY g.day, s.name, c.name ORDER BY g.day"
        );
        let rows = client.query(&sql, &refs(&values))?;
        let mut days: BTreeMap<(String, Option<String>, String), (i64, i64)> = BTreeMap::new();
        for r in &rows {
            let entry = days
                .entry((
                    date_of(i64::from(r.get::<_, i32>(0))),
                    r.get(1),
                    r.get::<_, Option<String>>(2).unwrap_or_default(),
                ))
                .or_default();
            entry.0 += r.get::<_, i64>(3);
            entry.1 += r.get::<_, i64>(4);
        }
        return Ok(summary_rows(days));
    }
    const QUARTER_MS: i64 = 900_000;
    let (clause, values) = clause(client, filter)?;
    let sql = format!(
        "SELECT g.quarter, s.name, c.name, g.hits, g.records FROM (\
             SELECT r.time_ms / {QUARTER_MS} AS quarter, r.school, r.category, \
                 sum(r.count)::bigint AS hits, count(*) AS records \
             FROM records r WHERE {clause} GROUP BY 1, 2, 3) g \
         LEFT JOIN schools s ON s.id = g.school LEFT JOIN categories c ON c.id = g.category"
    );
    let mut days: BTreeMap<(String, Option<String>, String), (i64, i64)> = BTreeMap::new();
    for r in client.query(&sql, &refs(&values))? {
        let quarter: i64 = r.get(0);
        let day = crate::hitlog::time::local_date(quarter * QUARTER_MS, zone).to_string();
        let entry = days
            .entry((
                day,
                r.get(1),
                r.get::<_, Option<String>>(2).unwrap_or_default(),
            ))
            .or_default();
        entry.0 += r.get::<_, i64>(3);
        entry.1 += r.get::<_, i64>(4);
    }
    Ok(summary_rows(days))
}

/// The zone the rollup's days are counted in (set by the first shipper).
fn rollup_zone(client: &mut Client) -> Result<Option<String>, PgError> {
    Ok(client
        .query_opt(
            "SELECT value FROM schooldns_meta WHERE key = 'rollup_zone'",
            &[],
        )?
        .map(|r| r.get(0)))
}

/// One record by its id in the shared store.
pub fn record_by_id(client: &mut Client, id: i64) -> Result<Option<HitRecord>, PgError> {
    let row = client.query_opt(&format!("{} WHERE r.id = $1", select()), &[&id])?;
    Ok(row.as_ref().map(record))
}

/// [`crate::hitlog::audit::list`] across every instance.
pub fn audit(
    client: &mut Client,
    since_ms: Option<i64>,
    limit: usize,
) -> Result<Vec<AuditEntry>, PgError> {
    let rows = client.query(
        "SELECT a.time_ms, a.actor, a.address, a.action, a.detail, i.name FROM audit a \
         LEFT JOIN instances i ON i.id = a.instance WHERE a.time_ms >= $1 \
         ORDER BY a.time_ms DESC, a.local_id DESC LIMIT $2",
        &[&since_ms.unwrap_or(i64::MIN), &(limit as i64)],
    )?;
    Ok(rows
        .iter()
        .map(|r| AuditEntry {
            time_ms: r.get(0),
            actor: r.get(1),
            address: r.get(2),
            action: r.get(3),
            detail: r.get(4),
        })
        .collect())
}

/// Every instance's row, read now.
pub fn instances(client: &mut Client) -> Result<Vec<super::ship::InstanceRow>, PgError> {
    Ok(super::ship::read_instances(client)?)
}
