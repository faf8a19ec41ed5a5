//! The daily rollup: hits and records per local day × school × category, kept by the writer
//! beside the records so that summaries over weeks of a district's records (the console's
//! overview, `/api/summary`) read thousands of rows instead of millions.
//!
//! Days are local days in the hit log's time zone (`[hitlog] timezone`), numbered from
//! 1970-01-01. The writer adds each batch's new records and repeats to their day in the same
//! transaction as the records, so the rollup never disagrees with them. When the rollup is new
//! (a file written before it existed) or the time zone changed, it is rebuilt from the records
//! in the background: records below `backfill_below` are not in it yet, new ones are, and
//! readers use it only once the rebuild has reached the first record. Retention removes a
//! category's days once the whole day is past its retention.

use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;

/// The rollup's tables (created with the rest of the schema).
pub const TABLES: &str = "
CREATE TABLE IF NOT EXISTS rollup_days (
    day INTEGER NOT NULL,
    -- -1 for records without a school (home devices that do not share with one).
    school INTEGER NOT NULL,
    category INTEGER NOT NULL,
    hits INTEGER NOT NULL,
    records INTEGER NOT NULL,
    PRIMARY KEY (day, school, category)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

const DAY_MS: i64 = 86_400_000;

/// The local day of `ms` in `zone`, as days since 1970-01-01.
pub fn day_of(ms: i64, zone: &jiff::tz::TimeZone) -> i64 {
    let Ok(at) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.div_euclid(DAY_MS);
    };
    let date = at.to_zoned(zone.clone()).date();
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map_or(ms.div_euclid(DAY_MS), |midnight| {
            midnight.timestamp().as_millisecond().div_euclid(DAY_MS)
        })
}

/// The calendar date of a day number.
pub fn date_of(day: i64) -> String {
    jiff::Timestamp::from_millisecond(day * DAY_MS)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

/// The first instant (ms) of a local day in `zone`, if the day exists.
pub fn day_start(day: i64, zone: &jiff::tz::TimeZone) -> Option<i64> {
    let date = jiff::Timestamp::from_millisecond(day * DAY_MS)
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    Some(
        date.to_zoned(zone.clone())
            .ok()?
            .timestamp()
            .as_millisecond(),
    )
}

/// Hits and records to add, by (day, school id or -1, category id).
pub type Deltas = FxHashMap<(i64, i64, i64), (i64, i64)>;

/// Adds `deltas` to the rollup (inside the caller's transaction).
pub fn add(conn: &Connection, deltas: &Deltas) -> rusqlite::Result<()> {
    let mut upsert = conn.prepare_cached(
        "INSERT INTO rollup_days (day, school, category, hits, records) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (day, school, category) DO UPDATE SET \
         hits = hits + excluded.hits, records = records + excluded.records",
    )?;
    for (&(day, school, category), &(hits, records)) in deltas {
        upsert.execute(params![day, school, category, hits, records])?;
    }
    Ok(())
}

fn state(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT value FROM rollup_state WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .optional()
}

fn set_state(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO rollup_state (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Where the writer's rollup stands.
#[derive(Debug, Clone)]
pub struct RollupState {
    /// The zone its days are counted in.
    pub zone: jiff::tz::TimeZone,
    /// Records with a smaller id are not in the rollup yet (0: all are).
    pub backfill_below: i64,
}

/// Makes the rollup count days in `zone`: kept as it is when it already does, else emptied
/// and marked for a rebuild from every record there is.
pub fn follow_zone(
    conn: &mut Connection,
    zone: &jiff::tz::TimeZone,
) -> rusqlite::Result<RollupState> {
    let name = super::time::zone_name(zone);
    // Immediate: this reads, then writes; a deferred transaction would fail at once (not wait)
    // if another connection (a PostgreSQL shipper pruning the spool) wrote in between.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let kept = state(&tx, "zone")?.is_some_and(|z| z == name);
    let backfill_below = if kept {
        state(&tx, "backfill_below")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    } else {
        tx.execute("DELETE FROM rollup_days", [])?;
        let next: i64 = tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM records", [], |r| {
            r.get(0)
        })?;
        let below = if next > 1 { next } else { 0 };
        set_state(&tx, "zone", &name)?;
        set_state(&tx, "backfill_below", &below.to_string())?;
        below
    };
    tx.commit()?;
    Ok(RollupState {
        zone: zone.clone(),
        backfill_below,
    })
}

/// Adds up to `budget` of the records not yet in the rollup (the newest first); returns
/// whether more remain.
pub fn backfill(
    conn: &mut Connection,
    state: &mut RollupState,
    budget: i64,
) -> rusqlite::Result<bool> {
    if state.backfill_below <= 0 {
        return Ok(false);
    }
    let from = (state.backfill_below - budget).max(0);
    // Immediate for the same reason as in `follow_zone`.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut deltas = Deltas::default();
    {
        let mut rows = tx.prepare_cached(
            "SELECT time_ms, coalesce(school, -1), category, count FROM records \
             WHERE id >= ?1 AND id < ?2",
        )?;
        let mut rows = rows.query(params![from, state.backfill_below])?;
        while let Some(row) = rows.next()? {
            let day = day_of(row.get(0)?, &state.zone);
            let entry = deltas.entry((day, row.get(1)?, row.get(2)?)).or_default();
            entry.0 += row.get::<_, i64>(3)?;
            entry.1 += 1;
        }
    }
    add(&tx, &deltas)?;
    set_state(&tx, "backfill_below", &from.to_string())?;
    tx.commit()?;
    state.backfill_below = from;
    Ok(from > 0)
}

/// Whether readers may use the rollup for days in `zone`: it counts in that zone and holds
/// every record.
pub fn ready(conn: &Connection, zone: &jiff::tz::TimeZone) -> bool {
    let name = super::time::zone_name(zone);
    let zone_ok = state(conn, "zone")
        .ok()
        .flatten()
        .is_some_and(|z| z == name);
    zone_ok
        && state(conn, "backfill_below")
            .ok()
            .flatten()
            .is_some_and(|v| v == "0")
}
