//! The shared PostgreSQL hit store (`[hitlog] backend = "postgres"`): several resolvers, one
//! record of hits.
//!
//! Each instance still writes its hits to its own SQLite file first (the spool), exactly as
//! with the SQLite backend, so the query path and the writer do not change and PostgreSQL
//! being slow or down costs DNS nothing. Beside them:
//!
//! - [`schema`]: the tables (the SQLite file's, plus the instance of each record), their daily
//!   partitions and the daily rollup, and retention by dropping partitions.
//! - [`ship`]: the shipper thread: sends the spool's new records with `COPY` in batches, their
//!   later repeats as updates, and this instance's heartbeat; prunes what has been shipped.
//! - [`read`]: `hits`, the API and the console reading across all instances.
//!
//! A record is identified in PostgreSQL by (instance, local id, first-hit time), and the
//! instance's shipped-up-to id is committed in the same transaction as the records, so a
//! retry after any failure never sends a record twice and never skips one.

pub mod read;
pub mod schema;
pub mod ship;

use std::time::Duration;

use crate::config::HitlogConfig;

/// How long a connection attempt may take before it counts as a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection failure or a query error, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The password file could not be read.
    #[error("cannot read the PostgreSQL password file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `[hitlog] url` is missing or invalid (config checks catch this first).
    #[error("[hitlog] url: {0}")]
    Url(String),
    /// PostgreSQL refused or failed.
    #[error("PostgreSQL: {0}")]
    Db(#[from] postgres::Error),
    /// The database holds a newer schema than this binary knows.
    #[error("{0}")]
    Schema(String),
}

impl PgError {
    /// The error as a short line for logs and pages, with PostgreSQL's own message when it
    /// sent one (the `Display` of a driver error alone is often just "db error").
    pub fn detail(&self) -> String {
        match self {
            PgError::Db(e) => match e.as_db_error() {
                Some(db) => format!("PostgreSQL: {}: {}", db.severity(), db.message()),
                None => format!("PostgreSQL: {e}"),
            },
            other => other.to_string(),
        }
    }
}

/// The connection settings of `[hitlog]`: `url`, with the password read from
/// `password_file` (never from the config itself).
pub fn settings(config: &HitlogConfig) -> Result<postgres::Config, PgError> {
    let url = config
        .url
        .as_ref()
        .ok_or_else(|| PgError::Url("missing".into()))?;
    let mut pg: postgres::Config = url
        .get_ref()
        .parse()
        .map_err(|e: postgres::Error| PgError::Url(e.to_string()))?;
    if let Some(path) = &config.password_file {
        let text = std::fs::read_to_string(path).map_err(|source| PgError::PasswordFile {
            path: path.display().to_string(),
            source,
        })?;
        pg.password(text.trim_end_matches(['\n', '\r']));
    }
    if pg.get_application_name().is_none() {
        pg.application_name(&format!("schooldns {}", config.instance_id()));
    }
    pg.connect_timeout(CONNECT_TIMEOUT);
    pg.keepalives(true);
    pg.keepalives_idle(Duration::from_secs(30));
    Ok(pg)
}

/// Connects (plain TCP: the database is on the district's private network or loopback; see
/// `docs/deploy.md`).
pub fn connect(config: &HitlogConfig) -> Result<postgres::Client, PgError> {
    Ok(settings(config)?.connect(postgres::NoTls)?)
}

/// Connects for reading: the schema must exist (the shippers make it).
pub fn connect_reader(config: &HitlogConfig) -> Result<postgres::Client, PgError> {
    let mut client = connect(config)?;
    schema::check(&mut client)?;
    // A reader's query never runs away with the database.
    client.batch_execute("SET statement_timeout = '60s'")?;
    Ok(client)
}
