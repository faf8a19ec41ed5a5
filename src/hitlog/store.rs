//! The SQLite file: the writer's connection, its batched inserts and updates, and retention.
//!
//! WAL mode with `synchronous = FULL`: a committed batch is in the write-ahead log and synced,
//! so it survives `kill -9` and power loss, and readers (`schooldns hits`, the HTTP API) never
//! block the writer or each other. The tables are [`super::schema`]'s; the writer keeps their
//! small name tables in memory, so a record's school, category and context become integers
//! without asking the database.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};
use rustc_hash::FxHashMap;

use super::record::HitRecord;
use super::schema::{self, JOINS};

/// `SELECT` of whole records (`WHERE` and the rest to follow), in [`HitRecord`] field order,
/// for [`record_from_row`].
pub fn select_records() -> String {
    format!("SELECT {} FROM records r {JOINS}", schema::record_columns())
}

/// One record by id, if it exists.
pub fn record_by_id(conn: &Connection, id: i64) -> rusqlite::Result<Option<HitRecord>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(&format!("{} WHERE r.id = ?", select_records()))?
        .query_row([id], record_from_row)
        .optional()
}

/// Reads a record from a row of [`select_records`].
pub fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HitRecord> {
    Ok(HitRecord {
        id: row.get(0)?,
        time_ms: row.get(1)?,
        last_seen_ms: row.get(2)?,
        count: row.get(3)?,
        school: row.get(4)?,
        device: row.get(5)?,
        profile: row.get(6)?,
        client: row.get(7)?,
        protocol: row.get(8)?,
        qname: row.get(9)?,
        qtype: row.get(10)?,
        decision: row.get(11)?,
        category: row.get(12)?,
        list: row.get(13)?,
        line: row.get(14)?,
        entry: row.get(15)?,
        cname: row.get(16)?,
        policy_version: row.get(17)?,
        service: row.get(18)?,
        instance: None,
    })
}

/// The writer's connection, and the name tables it has read or written.
pub struct Store {
    conn: Connection,
    schools: FxHashMap<String, i64>,
    categories: FxHashMap<String, i64>,
    contexts: FxHashMap<Context, i64>,
    /// The daily rollup's zone and rebuild progress, once the writer has set the zone.
    rollup: Option<super::rollup::RollupState>,
    /// Retention never deletes the newest record: set when the file is a PostgreSQL spool,
    /// whose local ids must never be handed out twice (SQLite gives the next row the largest
    /// id + 1, so deleting the largest would let ids repeat).
    pub keep_newest: bool,
}

/// The fields of a record that change only with a reload, a profile or a question type: one
/// row of `contexts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Context {
    pub(crate) profile: Option<String>,
    pub(crate) protocol: String,
    pub(crate) qtype: String,
    pub(crate) decision: String,
    pub(crate) list: Option<String>,
    pub(crate) policy_version: String,
    pub(crate) service: Option<String>,
}

impl Context {
    fn of(record: &HitRecord) -> Context {
        Context {
            profile: record.profile.clone(),
            protocol: record.protocol.clone(),
            qtype: record.qtype.clone(),
            decision: record.decision.clone(),
            list: record.list.clone(),
            policy_version: record.policy_version.clone(),
            service: record.service.clone(),
        }
    }

    /// Whether `record` has this context, without building one from it.
    fn matches(&self, record: &HitRecord) -> bool {
        self.policy_version == record.policy_version
            && self.list == record.list
            && self.profile == record.profile
            && self.qtype == record.qtype
            && self.protocol == record.protocol
            && self.decision == record.decision
            && self.service == record.service
    }
}

/// A repeat folded into a stored record: add `count` hits, seen last at `last_seen_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    /// Row id.
    pub id: i64,
    /// Hits to add.
    pub count: i64,
    /// Latest repeat.
    pub last_seen_ms: i64,
}

/// Name-table rows added by the batch being written, forgotten again if it fails.
#[derive(Default)]
struct Added {
    schools: Vec<String>,
    categories: Vec<String>,
    contexts: Vec<Context>,
}

impl Store {
    /// Opens (creating the file and its folder if needed) for writing, and creates or upgrades
    /// the schema.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                rusqlite::Error::ToSqlConversionFailure(
                    format!("cannot create {}: {e}", dir.display()).into(),
                )
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Index pages stay in memory between batches (64 MiB), so a batch writes pages rather
        // than reading them back first.
        conn.pragma_update(None, "cache_size", -65_536)?;
        // A checkpoint leaves the write-ahead log at most this size (64 MiB) instead of as big
        // as its largest transaction ever was (an upgrade's, or a long outage's backlog).
        conn.pragma_update(None, "journal_size_limit", 64 << 20)?;
        schema::prepare(&mut conn, path)?;
        let mut store = Store {
            conn,
            schools: FxHashMap::default(),
            categories: FxHashMap::default(),
            contexts: FxHashMap::default(),
            rollup: None,
            keep_newest: false,
        };
        store.load_names()?;
        Ok(store)
    }

    fn load_names(&mut self) -> rusqlite::Result<()> {
        for (table, map) in [
            ("schools", &mut self.schools),
            ("categories", &mut self.categories),
        ] {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT name, id FROM {table}"))?;
            *map = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
        }
        let mut stmt = self.conn.prepare(
            "SELECT profile, protocol, qtype, decision, list, policy_version, service, id \
             FROM contexts",
        )?;
        self.contexts = stmt
            .query_map([], |r| {
                Ok((
                    Context {
                        profile: r.get(0)?,
                        protocol: r.get(1)?,
                        qtype: r.get(2)?,
                        decision: r.get(3)?,
                        list: r.get(4)?,
                        policy_version: r.get(5)?,
                        service: r.get(6)?,
                    },
                    r.get(7)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    /// Inserts new records (setting their ids) and applies repeats, in one transaction: a batch
    /// is on disk whole or not at all.
    pub fn write<'a>(
        &mut self,
        inserts: impl IntoIterator<Item = &'a mut HitRecord>,
        repeats: &[Repeat],
    ) -> rusqlite::Result<()> {
        let mut added = Added::default();
        let result = self.write_batch(inserts, repeats, &mut added);
        if result.is_err() {
            // The rows those ids stand for were rolled back with the batch.
            for name in added.schools {
                self.schools.remove(&name);
            }
            for name in added.categories {
                self.categories.remove(&name);
            }
            for context in added.contexts {
                self.contexts.remove(&context);
            }
        }
        result
    }

    fn write_batch<'a>(
        &mut self,
        inserts: impl IntoIterator<Item = &'a mut HitRecord>,
        repeats: &[Repeat],
        added: &mut Added,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (time_ms, last_seen_ms, count, school, category, context, \
                 device, client, qname, line, entry, cname) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            // The last record's context, which most of a batch shares.
            let mut last_context: Option<(Context, i64)> = None;
            // What the batch adds to the daily rollup, written with it.
            let mut deltas = super::rollup::Deltas::default();
            for (i, r) in inserts.into_iter().enumerate() {
                crate::priority::yield_now_and_then(i);
                let school = match &r.school {
                    Some(name) => Some(name_id(
                        &tx,
                        "schools",
                        &mut self.schools,
                        name,
                        &mut added.schools,
                    )?),
                    None => None,
                };
                let category = name_id(
                    &tx,
                    "categories",
                    &mut self.categories,
                    &r.category,
                    &mut added.categories,
                )?;
                let context = match &last_context {
                    Some((c, id)) if c.matches(r) => *id,
                    _ => {
                        let c = Context::of(r);
                        let id = context_id(&tx, &mut self.contexts, &c, &mut added.contexts)?;
                        last_context = Some((c, id));
                        id
                    }
                };
                let matched = r.cname.as_deref().unwrap_or(&r.qname);
                let entry = match r.entry.as_deref() {
                    Some(entry) if entry == matched => Some(""),
                    other => other,
                };
                insert.execute(params![
                    r.time_ms,
                    r.last_seen_ms,
                    r.count,
                    school,
                    category,
                    context,
                    r.device,
                    r.client,
                    r.qname,
                    r.line,
                    entry,
                    r.cname,
                ])?;
                r.id = tx.last_insert_rowid();
                if let Some(rollup) = &self.rollup {
                    let day = super::rollup::day_of(r.time_ms, &rollup.zone);
                    let entry = deltas
                        .entry((day, school.unwrap_or(-1), category))
                        .or_default();
                    entry.0 += r.count;
                    entry.1 += 1;
                }
            }
            let mut update = tx.prepare_cached(
                "UPDATE records SET count = count + ?2, last_seen_ms = max(last_seen_ms, ?3) \
                 WHERE id = ?1",
            )?;
            for r in repeats {
                update.execute(params![r.id, r.count, r.last_seen_ms])?;
            }
            if let Some(rollup) = &self.rollup {
                // A repeat of a record the rebuild has not reached yet is counted when it does.
                let mut locate = tx.prepare_cached(
                    "SELECT time_ms, coalesce(school, -1), category FROM records WHERE id = ?1",
                )?;
                for r in repeats.iter().filter(|r| r.id >= rollup.backfill_below) {
                    let (time_ms, school, category): (i64, i64, i64) = locate
                        .query_row([r.id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                    let day = super::rollup::day_of(time_ms, &rollup.zone);
                    deltas.entry((day, school, category)).or_default().0 += r.count;
                }
            }
            super::rollup::add(&tx, &deltas)?;
        }
        tx.commit()
    }

    /// Counts the daily rollup's days in `zone` (rebuilding it in the background, through
    /// [`Store::backfill_rollup`], when it counted them in another zone or did not exist).
    pub fn follow_zone(&mut self, zone: &jiff::tz::TimeZone) -> rusqlite::Result<()> {
        if self.rollup.as_ref().is_some_and(|r| r.zone == *zone) {
            return Ok(());
        }
        self.rollup = Some(super::rollup::follow_zone(&mut self.conn, zone)?);
        Ok(())
    }

    /// Adds up to `budget` old records to a rollup being rebuilt; returns whether more remain.
    pub fn backfill_rollup(&mut self, budget: i64) -> rusqlite::Result<bool> {
        match self.rollup.as_mut() {
            Some(state) => super::rollup::backfill(&mut self.conn, state, budget),
            None => Ok(false),
        }
    }

    /// Appends audit entries (see [`super::audit`]).
    pub fn write_audit(&mut self, entries: &[super::audit::AuditEntry]) -> rusqlite::Result<()> {
        super::audit::insert(&mut self.conn, entries)
    }

    /// Deletes audit entries older than `days`.
    pub fn expire_audit(&self, now_ms: i64, days: u32) -> rusqlite::Result<usize> {
        super::audit::expire(&self.conn, now_ms, days)
    }

    /// Deletes records older than their category's retention (`overrides`, else
    /// `default_days`), in chunks, at most `budget` rows per call so the writer is never held
    /// long. Returns the rows deleted and whether more are due.
    pub fn expire(
        &mut self,
        now_ms: i64,
        default_days: u32,
        overrides: &BTreeMap<String, u32>,
        budget: usize,
    ) -> rusqlite::Result<(usize, bool)> {
        const DAY_MS: i64 = 86_400_000;
        const CHUNK: usize = 10_000;
        let mut passes: Vec<(String, Vec<Box<dyn rusqlite::ToSql>>)> = Vec::new();
        for (category, days) in overrides {
            passes.push((
                "category = (SELECT id FROM categories WHERE name = ?) AND time_ms < ?".into(),
                vec![
                    Box::new(category.clone()),
                    Box::new(now_ms - i64::from(*days) * DAY_MS),
                ],
            ));
        }
        let placeholders = vec!["?"; overrides.len()].join(", ");
        let mut values: Vec<Box<dyn rusqlite::ToSql>> =
            vec![Box::new(now_ms - i64::from(default_days) * DAY_MS)];
        values.extend(
            overrides
                .keys()
                .map(|c| Box::new(c.clone()) as Box<dyn rusqlite::ToSql>),
        );
        passes.push((
            format!(
                "time_ms < ? AND category NOT IN \
                 (SELECT id FROM categories WHERE name IN ({placeholders}))"
            ),
            values,
        ));
        self.expire_rollup(now_ms, default_days, overrides)?;
        let mut deleted = 0;
        let newest = match self.keep_newest {
            true => " AND id < (SELECT max(id) FROM records)",
            false => "",
        };
        for (condition, values) in &passes {
            let sql = format!(
                "DELETE FROM records WHERE id IN \
                 (SELECT id FROM records WHERE {condition}{newest} LIMIT ?)"
            );
            loop {
                let chunk = CHUNK.min(budget - deleted);
                if chunk == 0 {
                    return Ok((deleted, true));
                }
                let mut params: Vec<&dyn rusqlite::ToSql> = values.iter().map(|v| &**v).collect();
                let chunk_sql = chunk as i64;
                params.push(&chunk_sql);
                let n = self.conn.execute(&sql, params.as_slice())?;
                deleted += n;
                if n < chunk {
                    break;
                }
            }
        }
        Ok((deleted, false))
    }
}

impl Store {
    /// Deletes the rollup's days that lie wholly before their category's retention.
    fn expire_rollup(
        &self,
        now_ms: i64,
        default_days: u32,
        overrides: &BTreeMap<String, u32>,
    ) -> rusqlite::Result<()> {
        const DAY_MS: i64 = 86_400_000;
        let Some(rollup) = &self.rollup else {
            return Ok(());
        };
        // The day holding the cutoff keeps its row until the whole day is past.
        let cutoff =
            |days: u32| super::rollup::day_of(now_ms - i64::from(days) * DAY_MS, &rollup.zone);
        for (category, days) in overrides {
            self.conn.execute(
                "DELETE FROM rollup_days WHERE category = (SELECT id FROM categories WHERE name = ?1)                  AND day < ?2",
                params![category, cutoff(*days)],
            )?;
        }
        let names: Vec<&str> = overrides.keys().map(String::as_str).collect();
        let marks = vec!["?"; names.len()].join(", ");
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::new();
        let day = cutoff(default_days);
        values.push(&day);
        for name in &names {
            values.push(name);
        }
        self.conn.execute(
            &format!(
                "DELETE FROM rollup_days WHERE day < ? AND category NOT IN                  (SELECT id FROM categories WHERE name IN ({marks}))"
            ),
            values.as_slice(),
        )?;
        Ok(())
    }
}

/// The id of `name` in `table` (`schools` or `categories`), added to the table if new.
fn name_id(
    tx: &Connection,
    table: &str,
    known: &mut FxHashMap<String, i64>,
    name: &str,
    added: &mut Vec<String>,
) -> rusqlite::Result<i64> {
    if let Some(&id) = known.get(name) {
        return Ok(id);
    }
    // Another process may have added the name since it was loaded (two servers pointed at one
    // file by mistake): take its id rather than fail every batch on the unique name.
    tx.prepare_cached(&format!("INSERT OR IGNORE INTO {table} (name) VALUES (?1)"))?
        .execute([name])?;
    let id: i64 = tx
        .prepare_cached(&format!("SELECT id FROM {table} WHERE name = ?1"))?
        .query_row([name], |r| r.get(0))?;
    known.insert(name.to_string(), id);
    added.push(name.to_string());
    Ok(id)
}

/// The id of `context`, added to `contexts` if new.
fn context_id(
    tx: &Connection,
    known: &mut FxHashMap<Context, i64>,
    context: &Context,
    added: &mut Vec<Context>,
) -> rusqlite::Result<i64> {
    if let Some(&id) = known.get(context) {
        return Ok(id);
    }
    tx.prepare_cached(
        "INSERT INTO contexts (profile, protocol, qtype, decision, list, policy_version, service) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        context.profile,
        context.protocol,
        context.qtype,
        context.decision,
        context.list,
        context.policy_version,
        context.service,
    ])?;
    let id = tx.last_insert_rowid();
    known.insert(context.clone(), id);
    added.push(context.clone());
    Ok(id)
}

impl Store {
    /// Makes the file a PostgreSQL spool: every later change to a record's count is noted in
    /// `spool_changes` (by a trigger, in the writer's own transaction), for the shipper to send.
    pub fn track_repeats(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch(super::postgres::ship::SPOOL_TABLES)
    }

    /// Caps the file at `pages` pages, so writes beyond it fail as on a full disk (tests).
    #[cfg(test)]
    pub fn limit_pages(&self, pages: i64) {
        let _: i64 = self
            .conn
            .pragma_update_and_check(None, "max_page_count", pages, |r| r.get(0))
            .unwrap();
    }
}

/// Opens the file read-only for queries; it must exist.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(time_ms: i64, school: &str, category: &str, qname: &str) -> HitRecord {
        HitRecord {
            id: 0,
            time_ms,
            last_seen_ms: time_ms,
            count: 1,
            school: Some(school.into()),
            device: None,
            profile: Some("primary".into()),
            client: Some("10.0.0.1".into()),
            protocol: "udp".into(),
            qname: qname.into(),
            qtype: "A".into(),
            decision: "block".into(),
            category: category.into(),
            list: Some("blocklists/x.txt".into()),
            line: Some(3),
            entry: Some(qname.into()),
            cname: None,
            policy_version: "0123456789abcdef".into(),
            service: None,
            instance: None,
        }
    }

    /// A name another connection added after this one loaded its tables is taken, not
    /// inserted again (which would fail every batch on the unique name).
    #[test]
    fn names_added_elsewhere_are_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hits.sqlite");
        let mut first = Store::open(&path).unwrap();
        let mut second = Store::open(&path).unwrap();
        let mut rows = [record(1, "a", "adult", "one.example")];
        second.write(&mut rows, &[]).unwrap();
        let mut rows = [record(2, "a", "adult", "two.example")];
        first.write(&mut rows, &[]).unwrap();
        let reader = open_reader(&path).unwrap();
        let stored: Vec<(String, String)> = reader
            .prepare("SELECT school, category FROM hits ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let pair = ("a".to_string(), "adult".to_string());
        assert_eq!(stored, [pair.clone(), pair]);
        let schools: i64 = reader
            .query_row("SELECT count(*) FROM schools", [], |r| r.get(0))
            .unwrap();
        assert_eq!(schools, 1);
    }

    #[test]
    fn writes_repeats_and_expires_by_category() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/hits.sqlite");
        let mut store = Store::open(&path).unwrap();
        let day = 86_400_000;
        let now = 1_000 * day;
        let mut rows = vec![
            record(now - 100 * day, "a", "adult", "old-adult.example"),
            record(now - 100 * day, "a", "malware", "old-malware.example"),
            record(now - 400 * day, "a", "malware", "ancient-malware.example"),
            record(now - 5 * day, "a", "ads", "recent-ad.example"),
            record(now - day, "a", "adult", "new.example"),
        ];
        store.write(&mut rows, &[]).unwrap();
        assert!(rows.iter().all(|r| r.id > 0));
        store
            .write(
                &mut [],
                &[Repeat {
                    id: rows[4].id,
                    count: 4,
                    last_seen_ms: now,
                }],
            )
            .unwrap();
        let overrides = BTreeMap::from([("malware".to_string(), 365), ("ads".to_string(), 3)]);
        assert_eq!(store.expire(now, 90, &overrides, 1).unwrap(), (1, true));
        assert_eq!(store.expire(now, 90, &overrides, 100).unwrap(), (2, false));
        let reader = open_reader(&path).unwrap();
        let mut stmt = reader
            .prepare(&format!("{} ORDER BY r.id", select_records()))
            .unwrap();
        let left: Vec<HitRecord> = stmt
            .query_map([], record_from_row)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let names: Vec<&str> = left.iter().map(|r| r.qname.as_str()).collect();
        assert_eq!(names, ["old-malware.example", "new.example"]);
        assert_eq!((left[1].count, left[1].last_seen_ms), (5, now));
        assert_eq!(
            left[1],
            HitRecord {
                count: 5,
                last_seen_ms: now,
                ..rows[4].clone()
            }
        );
    }
}
