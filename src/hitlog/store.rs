//! The SQLite file: schema, the writer's batched inserts and updates, and retention.
//!
//! WAL mode with `synchronous = FULL`: a committed batch is in the write-ahead log and synced,
//! so it survives `kill -9` and power loss, and readers (`schooldns hits`, the HTTP API) never
//! block the writer or each other. Indexes serve the read side: by time, by school and time
//! (covering the per-day summary), by category and time, by client and time.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::record::HitRecord;

/// Bumped when the schema changes incompatibly.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hits (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    school TEXT,
    device TEXT,
    profile TEXT,
    client TEXT,
    protocol TEXT NOT NULL,
    qname TEXT NOT NULL,
    qtype TEXT NOT NULL,
    decision TEXT NOT NULL,
    category TEXT NOT NULL,
    list TEXT,
    line INTEGER,
    entry TEXT,
    cname TEXT,
    policy_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hits_time ON hits (time_ms);
CREATE INDEX IF NOT EXISTS hits_school_time ON hits (school, time_ms, category, count);
CREATE INDEX IF NOT EXISTS hits_category_time ON hits (category, time_ms);
CREATE INDEX IF NOT EXISTS hits_client_time ON hits (client, time_ms);
";

/// Column list in [`HitRecord`] field order, for `SELECT`s that build records.
pub const COLUMNS: &str = "id, time_ms, last_seen_ms, count, school, device, profile, client, \
     protocol, qname, qtype, decision, category, list, line, entry, cname, policy_version";

/// Reads a record from a row selected with [`COLUMNS`].
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
    })
}

/// The writer's connection.
pub struct Store {
    conn: Connection,
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

impl Store {
    /// Opens (creating the file and its folder if needed) for writing.
    pub fn open(path: &Path) -> rusqlite::Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                rusqlite::Error::ToSqlConversionFailure(
                    format!("cannot create {}: {e}", dir.display()).into(),
                )
            })?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Index pages stay in memory between batches (64 MiB), so a batch writes pages rather
        // than reading them back first.
        conn.pragma_update(None, "cache_size", -65_536)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!(
                    "{} has hit-log schema {version}, newer than this schooldns ({SCHEMA_VERSION})",
                    path.display()
                )
                .into(),
            ));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Store { conn })
    }

    /// Inserts new records (setting their ids) and applies repeats, in one transaction: a batch
    /// is on disk whole or not at all.
    pub fn write<'a>(
        &mut self,
        inserts: impl IntoIterator<Item = &'a mut HitRecord>,
        repeats: &[Repeat],
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO hits (time_ms, last_seen_ms, count, school, device, profile, client, \
                 protocol, qname, qtype, decision, category, list, line, entry, cname, \
                 policy_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
                 ?14, ?15, ?16, ?17)",
            )?;
            for (i, r) in inserts.into_iter().enumerate() {
                crate::priority::yield_now_and_then(i);
                insert.execute(params![
                    r.time_ms,
                    r.last_seen_ms,
                    r.count,
                    r.school,
                    r.device,
                    r.profile,
                    r.client,
                    r.protocol,
                    r.qname,
                    r.qtype,
                    r.decision,
                    r.category,
                    r.list,
                    r.line,
                    r.entry,
                    r.cname,
                    r.policy_version,
                ])?;
                r.id = tx.last_insert_rowid();
            }
            let mut update = tx.prepare_cached(
                "UPDATE hits SET count = count + ?2, last_seen_ms = max(last_seen_ms, ?3) \
                 WHERE id = ?1",
            )?;
            for r in repeats {
                update.execute(params![r.id, r.count, r.last_seen_ms])?;
            }
        }
        tx.commit()
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
                "category = ? AND time_ms < ?".into(),
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
            format!("time_ms < ? AND category NOT IN ({placeholders})"),
            values,
        ));
        let mut deleted = 0;
        for (condition, values) in &passes {
            let sql = format!(
                "DELETE FROM hits WHERE id IN (SELECT id FROM hits WHERE {condition} LIMIT ?)"
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

/// Whether the file has the `hits` table yet.
pub fn has_schema(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'hits'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
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
        }
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
            .prepare(&format!("SELECT {COLUMNS} FROM hits ORDER BY id"))
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
