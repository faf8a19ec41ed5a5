//! The audit log: who read or exported what, and (with the console) who signed in and what
//! they changed. One table in the hit-log database, written by the hit log's writer thread
//! (entries travel to it beside the hits), kept for `[hitlog] audit_retention_days`, read by
//! the district and the police.

use rusqlite::Connection;

/// How long audit entries are kept unless `[hitlog] audit_retention_days` says otherwise:
/// longer than a school year, so a complaint in June can see September.
pub const DEFAULT_RETENTION_DAYS: u32 = 400;

/// The table, `IF NOT EXISTS` (added to a schema-2 file without an upgrade).
pub const TABLE: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    address TEXT,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time_ms);
";

/// One thing someone did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    /// When (ms since the epoch).
    pub time_ms: i64,
    /// Who: a console user's name, or an API token as `token:<role>:<first 8 hex of its hash>`.
    pub actor: String,
    /// From which address.
    pub address: Option<String>,
    /// What: `read`, `export`, `sign-in`, `sign-in-failed`, `change`, …
    pub action: String,
    /// On what: the path and its filter, or what changed.
    pub detail: String,
}

/// Appends entries in one transaction.
pub fn insert(conn: &mut Connection, entries: &[AuditEntry]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit (time_ms, actor, address, action, detail) VALUES (?, ?, ?, ?, ?)",
        )?;
        for e in entries {
            stmt.execute(rusqlite::params![
                e.time_ms, e.actor, e.address, e.action, e.detail
            ])?;
        }
    }
    tx.commit()
}

/// Deletes entries older than `days`.
pub fn expire(conn: &Connection, now_ms: i64, days: u32) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM audit WHERE time_ms < ?",
        [now_ms - i64::from(days) * 86_400_000],
    )
}

/// The newest entries first, at most `limit`, from `since` on.
pub fn list(
    conn: &Connection,
    since_ms: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<AuditEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT time_ms, actor, address, action, detail FROM audit WHERE time_ms >= ? \
         ORDER BY time_ms DESC, id DESC LIMIT ?",
    )?;
    stmt.query_map(
        rusqlite::params![since_ms.unwrap_or(i64::MIN), limit as i64],
        |row| {
            Ok(AuditEntry {
                time_ms: row.get(0)?,
                actor: row.get(1)?,
                address: row.get(2)?,
                action: row.get(3)?,
                detail: row.get(4)?,
            })
        },
    )?
    .collect()
}
