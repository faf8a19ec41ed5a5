//! The PostgreSQL tables: the SQLite file's schema (name tables, `records`, the `hits` view,
//! `rollup_days`, `audit`) with each row naming its instance, `records` partitioned by UTC day
//! so retention drops whole partitions, and `instances` (one row per resolver: heartbeat,
//! versions, spool backlog, how far it has shipped).

use postgres::Client;

use super::PgError;

/// Bumped when the PostgreSQL schema changes incompatibly.
pub const VERSION: i64 = 1;

const DAY_MS: i64 = 86_400_000;

/// Everything, `IF NOT EXISTS`. Run by each shipper at connect under an advisory lock, so
/// several instances starting together make it once.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS schooldns_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    version text,
    policy_version text,
    config_version text,
    started_ms bigint,
    heartbeat_ms bigint,
    queries_per_second double precision,
    spool_backlog bigint NOT NULL DEFAULT 0,
    spool_bytes bigint NOT NULL DEFAULT 0,
    dropped bigint NOT NULL DEFAULT 0,
    -- The spool file's identity and the highest local id of it shipped: the exactly-once key.
    spool_id text,
    shipped_id bigint NOT NULL DEFAULT 0,
    audit_shipped_id bigint NOT NULL DEFAULT 0,
    sync_error text
);
CREATE TABLE IF NOT EXISTS schools (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS categories (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS contexts (
    id serial PRIMARY KEY,
    profile text,
    protocol text NOT NULL,
    qtype text NOT NULL,
    decision text NOT NULL,
    list text,
    policy_version text NOT NULL,
    service text,
    UNIQUE NULLS NOT DISTINCT (profile, protocol, qtype, decision, list, policy_version, service)
);
CREATE SEQUENCE IF NOT EXISTS records_id_seq AS bigint;
CREATE TABLE IF NOT EXISTS records (
    id bigint NOT NULL DEFAULT nextval('records_id_seq'),
    instance integer NOT NULL,
    local_id bigint NOT NULL,
    time_ms bigint NOT NULL,
    last_seen_ms bigint NOT NULL,
    count bigint NOT NULL,
    school integer,
    category integer NOT NULL,
    context integer NOT NULL,
    device text,
    client text,
    qname text NOT NULL,
    line integer,
    entry text,
    cname text,
    PRIMARY KEY (instance, local_id, time_ms)
) PARTITION BY RANGE (time_ms);
CREATE INDEX IF NOT EXISTS records_time ON records (time_ms, id);
CREATE INDEX IF NOT EXISTS records_school_time ON records (school, time_ms, id);
CREATE INDEX IF NOT EXISTS records_category_time ON records (category, time_ms, id);
CREATE INDEX IF NOT EXISTS records_client_time ON records (client, time_ms, id);
CREATE TABLE IF NOT EXISTS rollup_days (
    day integer NOT NULL,
    -- -1 for records without a school, as in the SQLite file.
    school integer NOT NULL,
    category integer NOT NULL,
    hits bigint NOT NULL,
    records bigint NOT NULL,
    PRIMARY KEY (day, school, category)
);
CREATE TABLE IF NOT EXISTS audit (
    instance integer NOT NULL,
    local_id bigint NOT NULL,
    time_ms bigint NOT NULL,
    actor text NOT NULL,
    address text,
    action text NOT NULL,
    detail text NOT NULL,
    PRIMARY KEY (instance, local_id)
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time_ms);
";

/// A record's columns in [`crate::hitlog::HitRecord`] field order over `records r` joined by
/// [`JOINS`], then the instance's name.
pub const RECORD_COLUMNS: &str = "r.id, r.time_ms, r.last_seen_ms, r.count, s.name, r.device, \
     x.profile, r.client, x.protocol, r.qname, x.qtype, x.decision, c.name, x.list, r.line, \
     CASE WHEN r.entry = '' THEN coalesce(r.cname, r.qname) ELSE r.entry END, r.cname, \
     x.policy_version, x.service, i.name";

/// Joins from `records r` to the names its integers stand for.
pub const JOINS: &str = "LEFT JOIN schools s ON s.id = r.school \
     LEFT JOIN categories c ON c.id = r.category LEFT JOIN contexts x ON x.id = r.context \
     LEFT JOIN instances i ON i.id = r.instance";

/// The `hits` view: the SQLite file's columns plus `instance`.
const VIEW: &str = "CREATE OR REPLACE VIEW hits AS SELECT r.id AS id, r.time_ms AS time_ms, \
     r.last_seen_ms AS last_seen_ms, r.count AS count, s.name AS school, r.device AS device, \
     x.profile AS profile, r.client AS client, x.protocol AS protocol, r.qname AS qname, \
     x.qtype AS qtype, x.decision AS decision, c.name AS category, x.list AS list, \
     r.line AS line, CASE WHEN r.entry = '' THEN coalesce(r.cname, r.qname) ELSE r.entry END \
     AS entry, r.cname AS cname, x.policy_version AS policy_version, x.service AS service, \
     i.name AS instance FROM records r";

/// The advisory lock that serialises schema changes and partition creation across instances.
const SCHEMA_LOCK: i64 = 0x5c00_1d45;

/// Creates what is missing (idempotent; safe when several instances start at once).
pub fn prepare(client: &mut Client) -> Result<(), PgError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    tx.batch_execute(TABLES)?;
    let found: Option<String> = tx
        .query_opt(
            "SELECT value FROM schooldns_meta WHERE key = 'schema_version'",
            &[],
        )?
        .map(|row| row.get(0));
    if let Some(version) = found.as_deref().and_then(|v| v.parse::<i64>().ok())
        && version > VERSION
    {
        return Err(newer(version));
    }
    tx.batch_execute(&format!("{VIEW} {JOINS}"))?;
    tx.execute(
        "INSERT INTO schooldns_meta (key, value) VALUES ('schema_version', $1) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&VERSION.to_string()],
    )?;
    tx.commit()?;
    Ok(())
}

/// Checks, for a reader, that the schema is there and not newer than this binary's.
pub fn check(client: &mut Client) -> Result<(), PgError> {
    let row = client.query_opt(
        "SELECT value FROM schooldns_meta WHERE key = 'schema_version'",
        &[],
    );
    let version = match row {
        Ok(Some(row)) => row.get::<_, String>(0).parse::<i64>().unwrap_or(0),
        Ok(None) => 0,
        // No meta table: no shipper has connected yet.
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => return Err(e.into()),
    };
    match version {
        VERSION => Ok(()),
        0 => Err(PgError::Schema(
            "the PostgreSQL hit store has no tables yet: they are made when the first \
             `schooldns serve` with this [hitlog] connects"
                .into(),
        )),
        v if v > VERSION => Err(newer(v)),
        v => Err(PgError::Schema(format!(
            "the PostgreSQL hit store has schema {v}; this schooldns knows {VERSION}"
        ))),
    }
}

fn newer(version: i64) -> PgError {
    PgError::Schema(format!(
        "the PostgreSQL hit store has schema {version}, newer than this schooldns knows \
         ({VERSION}): upgrade schooldns on this instance"
    ))
}

/// The UTC day number of `ms` (partitions are by UTC day).
pub fn utc_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The partition of UTC day `day`: `records_YYYYMMDD`.
pub fn partition_name(day: i64) -> String {
    format!(
        "records_{}",
        super::super::rollup::date_of(day).replace('-', "")
    )
}

/// Makes the partitions of `days` that do not exist yet.
pub fn ensure_partitions(client: &mut Client, days: &[i64]) -> Result<(), PgError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    for &day in days {
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF records FOR VALUES FROM ({}) TO ({})",
            partition_name(day),
            day * DAY_MS,
            (day + 1) * DAY_MS
        ))?;
    }
    tx.commit()?;
    Ok(())
}

/// The UTC days that have a partition.
pub fn partition_days(client: &mut Client) -> Result<Vec<i64>, PgError> {
    let rows = client.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'records'",
        &[],
    )?;
    let mut days: Vec<i64> = rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            let digits = name.strip_prefix("records_")?;
            let date: jiff::civil::Date = jiff::fmt::strtime::parse("%Y%m%d", digits)
                .ok()?
                .to_date()
                .ok()?;
            let midnight = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?;
            Some(utc_day(midnight.timestamp().as_millisecond()))
        })
        .collect();
    days.sort_unstable();
    Ok(days)
}

/// Retention: drops the partitions wholly older than the longest retention, deletes a
/// category's records older than its own shorter retention (at most `budget` rows), and the
/// rollup days and audit entries past theirs. Returns partitions dropped and rows deleted.
pub fn expire(
    client: &mut Client,
    now_ms: i64,
    default_days: u32,
    overrides: &std::collections::BTreeMap<String, u32>,
    audit_days: u32,
    zone: &jiff::tz::TimeZone,
    budget: i64,
) -> Result<(usize, u64), PgError> {
    let longest = overrides
        .values()
        .copied()
        .chain([default_days])
        .max()
        .unwrap_or(default_days);
    let keep_from = now_ms - i64::from(longest) * DAY_MS;
    let mut dropped = 0;
    for day in partition_days(client)? {
        if (day + 1) * DAY_MS <= keep_from {
            let mut tx = client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", partition_name(day)))?;
            tx.commit()?;
            dropped += 1;
        }
    }
    // Categories kept shorter than the longest, and everything else kept `default_days` when
    // an override keeps some category longer: bounded deletes within live partitions.
    let mut deleted = 0;
    let mut passes: Vec<(String, i64)> = overrides
        .iter()
        .filter(|(_, days)| **days < longest)
        .map(|(category, days)| (category.clone(), now_ms - i64::from(*days) * DAY_MS))
        .collect();
    if default_days < longest {
        passes.push((String::new(), now_ms - i64::from(default_days) * DAY_MS));
    }
    let others: Vec<String> = overrides.keys().cloned().collect();
    for (category, before) in passes {
        let n = if category.is_empty() {
            client.execute(
                "DELETE FROM records WHERE ctid = ANY(ARRAY(SELECT ctid FROM records \
                 WHERE time_ms < $1 AND category NOT IN \
                 (SELECT id FROM categories WHERE name = ANY($2)) LIMIT $3))",
                &[&before, &others, &budget],
            )?
        } else {
            client.execute(
                "DELETE FROM records WHERE (instance, local_id, time_ms) IN (SELECT instance, \
                 local_id, time_ms FROM records WHERE time_ms < $1 AND category = \
                 (SELECT id FROM categories WHERE name = $2) LIMIT $3)",
                &[&before, &category, &budget],
            )?
        };
        deleted += n;
    }
    // Rollup days wholly past their category's retention.
    let day_cut = |days: u32| -> i32 {
        (super::super::rollup::day_of(now_ms - i64::from(days) * DAY_MS, zone) as i32).max(0)
    };
    for (category, days) in overrides {
        client.execute(
            "DELETE FROM rollup_days WHERE day < $1 AND category = \
             (SELECT id FROM categories WHERE name = $2)",
            &[&day_cut(*days), category],
        )?;
    }
    client.execute(
        "DELETE FROM rollup_days WHERE day < $1 AND category NOT IN \
         (SELECT id FROM categories WHERE name = ANY($2))",
        &[&day_cut(default_days), &others],
    )?;
    client.execute(
        "DELETE FROM audit WHERE time_ms < $1",
        &[&(now_ms - i64::from(audit_days) * DAY_MS)],
    )?;
    Ok((dropped, deleted))
}
