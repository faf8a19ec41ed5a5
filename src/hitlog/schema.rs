//! The hit log's tables, the `hits` view readers see, and the upgrade from older schemas.
//!
//! Schema 2 keeps a record's repeated strings out of its row: school ids and categories are
//! small integers into `schools` and `categories`, and the fields that change only with a
//! reload or a profile (profile, protocol, type, decision, list file, policy version) are one
//! integer into `contexts`. A row then holds its times, count, client, names and line, and the
//! four indexes key on integers where they can. Against schema 1's text columns that is about
//! a third fewer bytes on disk per record and a quarter less CPU per insert (measured side by
//! side, see the README). Device ids stay in the row, so nothing that names a family outlives
//! its records' retention.
//!
//! `hits` is a view with schema 1's columns, for anyone reading the file with `sqlite3`.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

/// Bumped when the schema changes incompatibly.
pub const VERSION: i64 = 3;

/// Schema 1 as older schooldns versions made it: one table of text columns. Kept to test the
/// upgrade from it.
#[doc(hidden)]
pub const SCHEMA_1: &str = "
CREATE TABLE hits (
    id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
    count INTEGER NOT NULL, school TEXT, device TEXT, profile TEXT, client TEXT,
    protocol TEXT NOT NULL, qname TEXT NOT NULL, qtype TEXT NOT NULL,
    decision TEXT NOT NULL, category TEXT NOT NULL, list TEXT, line INTEGER,
    entry TEXT, cname TEXT, policy_version TEXT NOT NULL);
CREATE INDEX hits_time ON hits (time_ms);
CREATE INDEX hits_school_time ON hits (school, time_ms, category, count);
CREATE INDEX hits_category_time ON hits (category, time_ms);
CREATE INDEX hits_client_time ON hits (client, time_ms);
PRAGMA user_version = 1;";

/// Tables, all `IF NOT EXISTS`.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS schools (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS categories (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS contexts (
    id INTEGER PRIMARY KEY,
    profile TEXT,
    protocol TEXT NOT NULL,
    qtype TEXT NOT NULL,
    decision TEXT NOT NULL,
    list TEXT,
    policy_version TEXT NOT NULL,
    -- The service whose list decided (schema 3).
    service TEXT
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    -- Ids in `schools`, `categories` and `contexts`. Not declared as foreign keys: checking
    -- them would cost every insert three more lookups, and only the writer adds rows.
    school INTEGER,
    category INTEGER NOT NULL,
    context INTEGER NOT NULL,
    device TEXT,
    client TEXT,
    qname TEXT NOT NULL,
    line INTEGER,
    -- '' when the entry is the matched name itself (the CNAME target if any, else the qname).
    entry TEXT,
    cname TEXT
);
";

/// The read side's indexes: by time, by school and time (covering the per-day summary), by
/// category and time, by client and time. Made after a bulk upgrade rather than during it.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS records_time ON records (time_ms);
CREATE INDEX IF NOT EXISTS records_school_time ON records (school, time_ms, category, count);
CREATE INDEX IF NOT EXISTS records_category_time ON records (category, time_ms);
CREATE INDEX IF NOT EXISTS records_client_time ON records (client, time_ms);
";

/// A record's columns in [`crate::hitlog::HitRecord`] field order: the expression over
/// `records r` joined by [`JOINS`], and the name the `hits` view gives it (schema 1's).
const COLUMNS: [(&str, &str); 19] = [
    ("r.id", "id"),
    ("r.time_ms", "time_ms"),
    ("r.last_seen_ms", "last_seen_ms"),
    ("r.count", "count"),
    ("s.name", "school"),
    ("r.device", "device"),
    ("x.profile", "profile"),
    ("r.client", "client"),
    ("x.protocol", "protocol"),
    ("r.qname", "qname"),
    ("x.qtype", "qtype"),
    ("x.decision", "decision"),
    ("c.name", "category"),
    ("x.list", "list"),
    ("r.line", "line"),
    (
        "CASE WHEN r.entry = '' THEN coalesce(r.cname, r.qname) ELSE r.entry END",
        "entry",
    ),
    ("r.cname", "cname"),
    ("x.policy_version", "policy_version"),
    ("x.service", "service"),
];

/// The column list of a `SELECT` of whole records from `records r` joined by [`JOINS`].
pub fn record_columns() -> String {
    COLUMNS.map(|(expr, _)| expr).join(", ")
}

/// Joins from `records r` to the names its integers stand for. `LEFT JOIN` throughout, which
/// SQLite never reorders: `records` stays the outer loop, driven by its own indexes.
pub const JOINS: &str = "LEFT JOIN schools s ON s.id = r.school \
     LEFT JOIN categories c ON c.id = r.category LEFT JOIN contexts x ON x.id = r.context";

/// Creates what is missing and upgrades an older file (logging when it starts and ends), in
/// one immediate transaction so two processes opening the same file never both upgrade it.
pub fn prepare(conn: &mut Connection, path: &Path) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > VERSION {
        return Err(newer(version));
    }
    let started = std::time::Instant::now();
    let upgraded = if version == 1 && table_exists(&tx, "hits")? {
        tracing::info!(
            path = %path.display(),
            "upgrading the hit log to schema {VERSION}; new hits wait in the rings meanwhile"
        );
        Some(upgrade_from_1(&tx)?)
    } else {
        tx.execute_batch(TABLES)?;
        if !column_exists(&tx, "contexts", "service")? {
            // Schema 2 → 3: contexts name the service; the view shows it.
            tx.execute_batch(
                "ALTER TABLE contexts ADD COLUMN service TEXT; DROP VIEW IF EXISTS hits;",
            )?;
        }
        None
    };
    tx.execute_batch(INDEXES)?;
    tx.execute_batch(super::audit::TABLE)?;
    tx.execute_batch(super::rollup::TABLES)?;
    tx.execute_batch(&format!(
        "CREATE VIEW IF NOT EXISTS hits AS SELECT {} FROM records r {JOINS}",
        COLUMNS
            .map(|(expr, name)| format!("{expr} AS {name}"))
            .join(", ")
    ))?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    if let Some(records) = upgraded {
        tracing::info!(
            path = %path.display(),
            records,
            took_s = started.elapsed().as_secs_f64(),
            "hit log upgraded to schema {VERSION}"
        );
    }
    Ok(())
}

/// Whether the file is ready for readers: schema [`VERSION`] in place. An older file is an
/// error naming what to do; a file whose schema is not made yet is `false`.
pub fn ready(conn: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    match version {
        0 => Ok(false),
        VERSION => Ok(true),
        v if v > VERSION => Err(newer(v)),
        v => Err(rusqlite::Error::ToSqlConversionFailure(
            format!(
                "the hit log has schema {v}, from an older schooldns; `schooldns serve` of this \
                 version upgrades it to schema {VERSION} (it is doing so now if it is running)"
            )
            .into(),
        )),
    }
}

/// Whether `path` is a hit log of an older schema that [`prepare`] would upgrade (false when
/// it does not exist or cannot be read; opening it for writing then says why).
pub fn needs_upgrade(path: &Path) -> bool {
    if !path.exists() {
        return false;
    }
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags)
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
        .is_ok_and(|v| (1..VERSION).contains(&v))
}

fn newer(version: i64) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(
        format!("the hit log has schema {version}, newer than this schooldns ({VERSION})").into(),
    )
}

fn column_exists(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Moves schema 1's `hits` table into schema 2's tables, keeping every record's id, then
/// drops it (its indexes go with it). The names are collected first, the rows copied in id
/// order, and the indexes built afterwards by the caller, which is faster than growing them.
fn upgrade_from_1(tx: &Connection) -> rusqlite::Result<u64> {
    tx.execute_batch(TABLES)?;
    tx.execute_batch(
        "INSERT OR IGNORE INTO schools (name)
             SELECT DISTINCT school FROM hits WHERE school IS NOT NULL;
         INSERT OR IGNORE INTO categories (name) SELECT DISTINCT category FROM hits;
         INSERT INTO contexts (profile, protocol, qtype, decision, list, policy_version)
             SELECT DISTINCT profile, protocol, qtype, decision, list, policy_version FROM hits;
         CREATE INDEX upgrade_contexts
             ON contexts (policy_version, profile, protocol, qtype, decision, list);",
    )?;
    let moved = tx.execute(
        "INSERT INTO records (id, time_ms, last_seen_ms, count, school, category, context,
             device, client, qname, line, entry, cname)
         SELECT h.id, h.time_ms, h.last_seen_ms, h.count,
             (SELECT id FROM schools WHERE name = h.school),
             (SELECT id FROM categories WHERE name = h.category),
             (SELECT id FROM contexts x WHERE x.policy_version = h.policy_version
                 AND x.profile IS h.profile AND x.protocol = h.protocol AND x.qtype = h.qtype
                 AND x.decision = h.decision AND x.list IS h.list),
             h.device, h.client, h.qname, h.line,
             CASE WHEN h.entry = coalesce(h.cname, h.qname) THEN '' ELSE h.entry END, h.cname
         FROM hits h ORDER BY h.id",
        [],
    )?;
    tx.execute_batch("DROP INDEX upgrade_contexts; DROP TABLE hits;")?;
    Ok(moved as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_hits(conn: &Connection) -> Vec<Vec<rusqlite::types::Value>> {
        let mut stmt = conn.prepare("SELECT * FROM hits ORDER BY id").unwrap();
        let columns = stmt.column_count();
        stmt.query_map([], |r| (0..columns).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// A schema 1 file is upgraded in place: every record keeps its id and reads back through
    /// the `hits` view exactly as before (missing schools, profiles and lists, entries equal to
    /// the name, to the CNAME target, or neither), and readers said how to upgrade before.
    /// A schema 2 file gains the contexts' `service` column and the view shows it.
    #[test]
    fn schema_2_files_gain_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hits.sqlite");
        drop(crate::hitlog::store::Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP VIEW hits; ALTER TABLE contexts DROP COLUMN service; PRAGMA user_version = 2;",
        )
        .unwrap();
        drop(conn);
        assert!(needs_upgrade(&path));
        drop(crate::hitlog::store::Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        assert!(ready(&conn).unwrap());
        assert!(column_exists(&conn, "contexts", "service").unwrap());
        conn.prepare("SELECT service FROM hits").unwrap();
    }

    #[test]
    fn schema_1_files_upgrade_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hits.sqlite");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA_1).unwrap();
        old.execute_batch(
            "INSERT INTO hits VALUES
              (3, 1000, 1500, 2, 'th-kim-dong', NULL, 'primary', '10.0.0.0/24', 'udp',
               'x.example', 'A', 'block', 'adult', 'blocklists/adult.txt', 7, 'x.example',
               NULL, '00000000000000aa'),
              (9, 2000, 2000, 1, NULL, 'fam-1', 'lower-secondary', NULL, 'doh',
               'www.y.example', 'AAAA', 'block', 'gambling', 'blocklists/g.txt', 1,
               '*.y.example', NULL, '00000000000000aa'),
              (10, 3000, 3000, 1, 'th-kim-dong', NULL, 'primary', '10.0.0.0/24', 'udp',
               'cdn.example', 'A', 'block', 'adult', 'blocklists/adult.txt', 9, 'bad.example',
               'bad.example', '00000000000000bb'),
              (11, 4000, 4000, 1, 'thcs-ba-dinh', NULL, NULL, '10.1.0.0/24', 'tcp',
               'proxy.example', 'HTTPS', 'refuse', 'bypass-protection', NULL, NULL,
               'proxy.example', NULL, '00000000000000bb');",
        )
        .unwrap();
        let before = all_hits(&old);
        let err = ready(&old).unwrap_err().to_string();
        assert!(
            err.contains("schema 1") && err.contains("upgrades"),
            "{err}"
        );
        drop(old);
        assert!(needs_upgrade(&path));

        let store = crate::hitlog::store::Store::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        assert!(ready(&conn).unwrap());
        assert!(!needs_upgrade(&path));
        // Schema 3 adds the service after the old columns.
        let after: Vec<Vec<rusqlite::types::Value>> = all_hits(&conn)
            .into_iter()
            .map(|mut row| {
                assert_eq!(row.pop(), Some(rusqlite::types::Value::Null));
                row
            })
            .collect();
        assert_eq!(after, before);
        let entries: Vec<String> = conn
            .prepare("SELECT entry FROM records ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(entries, ["", "*.y.example", "", ""]);
        let indexes: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
                 AND tbl_name = 'records' AND name LIKE 'records_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 4);
        drop(store);
        // Opening again changes nothing.
        crate::hitlog::store::Store::open(&path).unwrap();
        assert_eq!(all_hits(&conn).len(), before.len());
        assert_eq!(all_hits(&conn)[0][..18], before[0][..]);
    }
}
