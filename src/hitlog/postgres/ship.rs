//! The shipper thread: moves this instance's spool (its SQLite hit log) into PostgreSQL.
//!
//! Each pass, beside the query path and the writer:
//! 1. new records (local id above the instance's `shipped_id`), up to [`BATCH`], in local id
//!    order: `COPY` into `records`, their hits added to `rollup_days`, and `shipped_id` moved,
//!    in one transaction. A failure rolls all of it back and the same records go again.
//! 2. repeats: records already shipped whose `count` grew since (the writer folds repeats
//!    within `repeat_window_secs` of a record's first hit; a trigger notes each such update in
//!    `spool_changes`, in the writer's own transaction) are sent again; the rollup gets the
//!    difference, the record the new count.
//! 3. audit entries, the same way as records.
//! 4. the heartbeat (every second): versions, queries per second, backlog; and a read of every
//!    instance's row for the instances view.
//! 5. pruning: records shipped ten minutes past their repeat window leave the spool; the
//!    newest row always stays so that SQLite never hands out a local id again.
//!
//! While PostgreSQL is down the spool grows; past `spool_max_mb` the writer drops new hits
//! (counted in `schooldns_hitlog_dropped_total` and `schooldns_hitlog_spool_dropped_total`).
//! The instance holds a session advisory lock on its id while connected, so two resolvers
//! configured with the same `instance` cannot both ship (the second says so and waits).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use postgres::Client;
use rusqlite::{Connection, OptionalExtension};
use rustc_hash::FxHashMap;

use super::{PgError, schema};
use crate::config::HitlogConfig;
use crate::hitlog::HitStats;
use crate::hitlog::rollup::day_of;
use crate::hitlog::store::Context;

/// Most records in one shipping transaction.
pub const BATCH: usize = 20_000;
/// Time between heartbeats.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// Time between prunes of the spool.
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// Time between retention passes in PostgreSQL.
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);
/// Nap when there is nothing to ship.
const IDLE: Duration = Duration::from_millis(100);
/// Wait after a failure before connecting again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Most rows one prune deletes per statement (keeps the writer's waits short).
const PRUNE_CHUNK: i64 = 5_000;
/// Shipped records stay in the spool this long past their repeat window, so that a repeat
/// the writer commits late (a slow disk, a starved writer) still finds its record.
const PRUNE_MARGIN_MS: i64 = 600_000;

/// What a spool adds to the SQLite file: its identity, and the changes to shipped records'
/// counts, noted by a trigger in the writer's own transactions (so no repeat can be missed,
/// however late the writer commits it).
pub const SPOOL_TABLES: &str = "
CREATE TABLE IF NOT EXISTS spool (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS spool_changes (seq INTEGER PRIMARY KEY, id INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS spool_repeat AFTER UPDATE OF count ON records
BEGIN INSERT INTO spool_changes (id) VALUES (new.id); END;
";

/// What this instance reports in its heartbeat.
#[derive(Debug, Clone, Default)]
pub struct InstanceStatus {
    /// The policy being served (16 hex digits).
    pub policy_version: String,
    /// The config origin's version being served (a git commit or bundle hash), if synced.
    pub config_version: Option<String>,
    /// Queries answered since start (the shipper turns it into a rate).
    pub queries: u64,
    /// The last config-sync failure, if the latest attempt failed.
    pub sync_error: Option<String>,
}

/// Where the heartbeat's figures come from (the app wires its live state and metrics).
pub type StatusSource = Arc<dyn Fn() -> InstanceStatus + Send + Sync>;

/// One resolver as the shared store knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InstanceRow {
    /// `[hitlog] instance`.
    pub name: String,
    /// schooldns version.
    pub version: Option<String>,
    /// Policy being served.
    pub policy_version: Option<String>,
    /// Config origin version being served.
    pub config_version: Option<String>,
    /// When it started (ms).
    pub started_ms: Option<i64>,
    /// Its last heartbeat (ms, the database's clock).
    pub heartbeat_ms: Option<i64>,
    /// Seconds since that heartbeat, by the database's clock when read.
    pub heartbeat_age_s: Option<f64>,
    /// Queries per second over its last heartbeat interval.
    pub queries_per_second: Option<f64>,
    /// Records in its spool not shipped yet.
    pub spool_backlog: i64,
    /// Its spool's size in bytes.
    pub spool_bytes: i64,
    /// Hits it has dropped (hit log behind or spool full).
    pub dropped: i64,
    /// Its last config-sync failure.
    pub sync_error: Option<String>,
}

/// The shipper's counters and what it last read, for `/metrics` and the console.
#[derive(Debug, Default)]
pub struct ShipStats {
    /// Records shipped (new).
    pub shipped: AtomicU64,
    /// Hits shipped: the counts of new records, then what repeats added to them.
    pub shipped_hits: AtomicU64,
    /// Records re-sent because their count grew.
    pub updated: AtomicU64,
    /// Failed connects or passes.
    pub errors: AtomicU64,
    /// Records in the spool not yet shipped, and changes to shipped records' counts not yet
    /// sent.
    pub backlog: AtomicI64,
    /// The spool's size in bytes.
    pub spool_bytes: AtomicI64,
    /// Whether the shipper is connected now.
    pub connected: AtomicBool,
    /// Every instance, as last read (empty until the first heartbeat).
    pub instances: ArcSwap<Vec<InstanceRow>>,
    /// The last error, for the console.
    pub last_error: ArcSwap<Option<String>>,
}

impl ShipStats {
    /// Appends the shipper's and the instances' metrics in Prometheus text format.
    pub fn render(&self, out: &mut String, me: &str) {
        use std::fmt::Write as _;
        for (name, help, value) in [
            (
                "shipped_total",
                "Hit records shipped to PostgreSQL.",
                self.shipped.load(Ordering::Relaxed),
            ),
            (
                "shipped_hits_total",
                "Hits shipped to PostgreSQL (new records' counts and repeats added later).",
                self.shipped_hits.load(Ordering::Relaxed),
            ),
            (
                "ship_updates_total",
                "Shipped records sent again because repeats raised their count.",
                self.updated.load(Ordering::Relaxed),
            ),
            (
                "ship_errors_total",
                "Failed connections or shipping passes to PostgreSQL (retried).",
                self.errors.load(Ordering::Relaxed),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP schooldns_hitlog_{name} {help}\n# TYPE schooldns_hitlog_{name} counter\n\
                 schooldns_hitlog_{name} {value}\n"
            );
        }
        let _ = write!(
            out,
            "# HELP schooldns_hitlog_spool_backlog Records (and repeats of shipped records) in \
             this instance's spool not yet shipped to PostgreSQL.\n# TYPE schooldns_hitlog_spool_backlog gauge\n\
             schooldns_hitlog_spool_backlog {}\n\
             # HELP schooldns_hitlog_spool_bytes Size of this instance's spool.\n\
             # TYPE schooldns_hitlog_spool_bytes gauge\nschooldns_hitlog_spool_bytes {}\n\
             # HELP schooldns_hitlog_postgres_up Whether the shipper is connected to PostgreSQL.\n\
             # TYPE schooldns_hitlog_postgres_up gauge\nschooldns_hitlog_postgres_up {}\n",
            self.backlog.load(Ordering::Relaxed),
            self.spool_bytes.load(Ordering::Relaxed),
            u8::from(self.connected.load(Ordering::Relaxed)),
        );
        let instances = self.instances.load();
        if instances.is_empty() {
            return;
        }
        let mine = instances
            .iter()
            .find(|i| i.name == me)
            .and_then(|i| i.policy_version.clone());
        type Value = fn(&InstanceRow, &Option<String>) -> f64;
        let series: [(&str, &str, &str, Value); 4] = [
            (
                "instance_heartbeat_age_seconds",
                "gauge",
                "Seconds since each resolver's last heartbeat in the shared hit store.",
                |i, _| i.heartbeat_age_s.unwrap_or(f64::INFINITY),
            ),
            (
                "instance_queries_per_second",
                "gauge",
                "Each resolver's queries per second at its last heartbeat.",
                |i, _| i.queries_per_second.unwrap_or(0.0),
            ),
            (
                "instance_spool_backlog",
                "gauge",
                "Records each resolver has not shipped yet.",
                |i, _| i.spool_backlog as f64,
            ),
            (
                "instance_policy_behind",
                "gauge",
                "1 when a resolver serves another policy version than this one.",
                |i, mine| f64::from(u8::from(i.policy_version != *mine)),
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(
                out,
                "# HELP schooldns_{name} {help}\n# TYPE schooldns_{name} {kind}"
            );
            for i in instances.iter() {
                let _ = writeln!(
                    out,
                    "schooldns_{name}{{instance=\"{}\"}} {}",
                    i.name.replace(['"', '\\', '\n'], "_"),
                    value(i, &mine)
                );
            }
        }
    }
}

/// The running shipper.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Shipper {
    /// Starts the shipper for `config`'s spool.
    pub fn spawn(
        config: HitlogConfig,
        hits: Arc<HitStats>,
        stats: Arc<ShipStats>,
        status: StatusSource,
    ) -> std::io::Result<Shipper> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("schooldns-ship".into())
            .spawn(move || {
                crate::priority::idle_priority();
                Run::new(config, hits, stats, status, flag).run()
            })?;
        Ok(Shipper {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread after its current pass.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A connected session: the client and what this instance's row says.
struct Session {
    client: Client,
    instance: i32,
    shipped_id: i64,
    audit_shipped_id: i64,
    /// Name → id caches of the name tables.
    schools: FxHashMap<String, i32>,
    categories: FxHashMap<String, i32>,
    contexts: FxHashMap<Context, i32>,
    /// UTC days known to have a partition.
    partitions: std::collections::BTreeSet<i64>,
}

/// One spool record as shipped.
struct SpoolRow {
    id: i64,
    time_ms: i64,
    last_seen_ms: i64,
    count: i64,
    school: Option<String>,
    category: String,
    context: Context,
    device: Option<String>,
    client: Option<String>,
    qname: String,
    line: Option<i64>,
    entry: Option<String>,
    cname: Option<String>,
}

struct Run {
    config: HitlogConfig,
    name: String,
    zone: jiff::tz::TimeZone,
    window_ms: i64,
    hits: Arc<HitStats>,
    stats: Arc<ShipStats>,
    status: StatusSource,
    stop: Arc<AtomicBool>,
    spool: Option<Connection>,
    spool_id: Option<String>,
    session: Option<Session>,
    next_heartbeat: Instant,
    next_prune: Instant,
    next_expire: Instant,
    last_queries: Option<(Instant, u64)>,
    last_error_logged: Option<Instant>,
    started_ms: i64,
}

impl Run {
    fn new(
        config: HitlogConfig,
        hits: Arc<HitStats>,
        stats: Arc<ShipStats>,
        status: StatusSource,
        stop: Arc<AtomicBool>,
    ) -> Run {
        let now = Instant::now();
        Run {
            name: config.instance_id(),
            zone: crate::hitlog::time::zone(&config),
            window_ms: (config.repeat_window_secs as i64).saturating_mul(1000),
            config,
            hits,
            stats,
            status,
            stop,
            spool: None,
            spool_id: None,
            session: None,
            next_heartbeat: now,
            next_prune: now + PRUNE_EVERY,
            next_expire: now + Duration::from_secs(60),
            last_queries: None,
            last_error_logged: None,
            started_ms: crate::hitlog::now_ms(),
        }
    }

    fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            if self.spool.is_none() {
                match open_spool(&self.config.path) {
                    Ok(Some((conn, id))) => {
                        self.spool = Some(conn);
                        self.spool_id = Some(id);
                    }
                    // The writer has not made the file yet.
                    Ok(None) => {
                        self.nap(IDLE * 2);
                        continue;
                    }
                    Err(e) => {
                        self.failed("cannot open the spool", &e.to_string());
                        self.nap(RETRY_AFTER);
                        continue;
                    }
                }
            }
            if let Err(e) = self.measure_spool() {
                self.failed("cannot read the spool", &e.to_string());
            }
            if self.session.is_none() {
                match self.connect() {
                    Ok(session) => {
                        self.stats.connected.store(true, Ordering::Relaxed);
                        tracing::info!(instance = %self.name, "connected to the PostgreSQL hit store");
                        self.session = Some(session);
                    }
                    Err(e) => {
                        self.failed("cannot connect to the PostgreSQL hit store", &e);
                        self.nap(RETRY_AFTER);
                        continue;
                    }
                }
            }
            match self.pass() {
                Ok(true) => {}
                Ok(false) => self.nap(IDLE),
                Err(e) => {
                    self.session = None;
                    self.stats.connected.store(false, Ordering::Relaxed);
                    self.failed("shipping hits to PostgreSQL failed", &e);
                    self.nap(RETRY_AFTER);
                }
            }
        }
    }

    fn nap(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20).min(d));
        }
    }

    fn failed(&mut self, what: &str, err: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        self.stats
            .last_error
            .store(Arc::new(Some(format!("{what}: {err}"))));
        if self
            .last_error_logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last_error_logged = Some(Instant::now());
            tracing::error!(
                instance = %self.name,
                backlog = self.stats.backlog.load(Ordering::Relaxed),
                error = %err,
                "{what}; DNS keeps answering, hits wait in the spool and are retried"
            );
        }
    }

    /// Spool size and backlog; sets the writer's spool-full flag.
    fn measure_spool(&mut self) -> rusqlite::Result<()> {
        let Some(spool) = &self.spool else {
            return Ok(());
        };
        let pages: i64 = spool.pragma_query_value(None, "page_count", |r| r.get(0))?;
        let free: i64 = spool.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
        let size: i64 = spool.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let bytes = (pages - free) * size;
        self.stats.spool_bytes.store(bytes, Ordering::Relaxed);
        let limit = (self.config.spool_max_mb as i64).saturating_mul(1 << 20);
        let full = bytes >= limit;
        if full != self.hits.spool_full.swap(full, Ordering::Relaxed) {
            if full {
                tracing::warn!(
                    instance = %self.name,
                    bytes,
                    spool_max_mb = self.config.spool_max_mb,
                    "the spool is full: new hits are dropped until PostgreSQL takes the backlog \
                     (see schooldns_hitlog_spool_dropped_total)"
                );
            } else {
                tracing::info!(instance = %self.name, "the spool has room again");
            }
        }
        if let Some(session) = &self.session {
            let max: i64 =
                spool.query_row("SELECT coalesce(max(id), 0) FROM records", [], |r| r.get(0))?;
            // Changes to shipped records' counts waiting too (seq is dense between passes).
            let changes: i64 = spool.query_row(
                "SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM spool_changes",
                [],
                |r| r.get(0),
            )?;
            self.stats.backlog.store(
                (max - session.shipped_id).max(0) + changes,
                Ordering::Relaxed,
            );
        }
        Ok(())
    }

    fn connect(&mut self) -> Result<Session, String> {
        let mut client = super::connect(&self.config).map_err(|e| e.detail())?;
        schema::prepare(&mut client).map_err(|e| e.detail())?;
        let row = client
            .query_one(
                "INSERT INTO instances (name, version, started_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, \
                 started_ms = EXCLUDED.started_ms \
                 RETURNING id, shipped_id, audit_shipped_id, spool_id",
                &[&self.name, &env!("CARGO_PKG_VERSION"), &self.started_ms],
            )
            .map_err(|e| PgError::from(e).detail())?;
        let instance: i32 = row.get(0);
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1)",
                &[&(0x5c00_0000_0000_i64 + i64::from(instance))],
            )
            .map_err(|e| PgError::from(e).detail())?
            .get(0);
        if !locked {
            return Err(format!(
                "another resolver is shipping as instance `{}`: give each resolver its own \
                 [hitlog] instance",
                self.name
            ));
        }
        let mut session = Session {
            client,
            instance,
            shipped_id: row.get(1),
            audit_shipped_id: row.get(2),
            schools: FxHashMap::default(),
            categories: FxHashMap::default(),
            contexts: FxHashMap::default(),
            partitions: Default::default(),
        };
        let stored_spool: Option<String> = row.get(3);
        if stored_spool.as_deref() != self.spool_id.as_deref() {
            if stored_spool.is_some() {
                tracing::warn!(
                    instance = %self.name,
                    "this instance has a new spool file: shipping it from its first record"
                );
            }
            session.shipped_id = 0;
            session.audit_shipped_id = 0;
            session
                .client
                .execute(
                    "UPDATE instances SET spool_id = $2, shipped_id = 0, audit_shipped_id = 0 \
                     WHERE id = $1",
                    &[&instance, &self.spool_id],
                )
                .map_err(|e| PgError::from(e).detail())?;
        }
        session
            .client
            .batch_execute(
                "CREATE TEMP TABLE IF NOT EXISTS ship_updates (local_id bigint, time_ms bigint, \
                 last_seen_ms bigint, count bigint, day integer) ON COMMIT DELETE ROWS",
            )
            .map_err(|e| PgError::from(e).detail())?;
        // Rollup days are counted in the first instance's zone; readers in another zone
        // summarise from the records instead.
        let zone = crate::hitlog::time::zone_name(&self.zone);
        let rollup_zone: String = session
            .client
            .query_one(
                "INSERT INTO schooldns_meta (key, value) VALUES ('rollup_zone', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = schooldns_meta.value RETURNING value",
                &[&zone],
            )
            .map_err(|e| PgError::from(e).detail())?
            .get(0);
        if rollup_zone != zone {
            tracing::warn!(
                instance = %self.name,
                ours = %zone,
                store = %rollup_zone,
                "[hitlog] timezone differs from the shared store's: give every instance the same"
            );
        }
        session.partitions = schema::partition_days(&mut session.client)
            .map_err(|e| e.detail())?
            .into_iter()
            .collect();
        Ok(session)
    }

    /// One pass; true when there may be more to ship at once.
    fn pass(&mut self) -> Result<bool, String> {
        let db = |e: postgres::Error| PgError::from(e).detail();
        let lite = |e: rusqlite::Error| format!("reading the spool: {e}");
        let more = self.ship_new().map_err(|e| e.unwrap_or_else(db, lite))?;
        self.ship_repeats()
            .map_err(|e| e.unwrap_or_else(db, lite))?;
        self.ship_audit().map_err(|e| e.unwrap_or_else(db, lite))?;
        let now = Instant::now();
        if now >= self.next_heartbeat {
            self.next_heartbeat = now + HEARTBEAT_EVERY;
            self.heartbeat().map_err(db)?;
        }
        if now >= self.next_prune {
            self.next_prune = now + PRUNE_EVERY;
            self.prune().map_err(lite)?;
        }
        if now >= self.next_expire {
            self.next_expire = now + EXPIRE_EVERY;
            self.expire()?;
        }
        Ok(more)
    }

    fn ship_new(&mut self) -> Result<bool, Either> {
        let (Some(spool), Some(session)) = (&self.spool, &mut self.session) else {
            return Ok(false);
        };
        let rows = read_new(spool, session.shipped_id, BATCH)?;
        if rows.is_empty() {
            return Ok(false);
        }
        session.resolve_names(&rows)?;
        let days: Vec<i64> = rows
            .iter()
            .map(|r| schema::utc_day(r.time_ms))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|d| !session.partitions.contains(d))
            .collect();
        if !days.is_empty() {
            schema::ensure_partitions(&mut session.client, &days).map_err(|e| match e {
                PgError::Db(e) => Either::Db(e),
                other => Either::Other(other.detail()),
            })?;
            session.partitions.extend(days);
        }
        let mut rollup: BTreeMap<(i32, i32, i32), (i64, i64)> = BTreeMap::new();
        let mut text = Vec::with_capacity(rows.len() * 160);
        let mut hits = 0;
        for row in &rows {
            let school = row.school.as_ref().map(|s| session.schools[s]);
            let category = session.categories[&row.category];
            let context = session.contexts[&row.context];
            let day = day_of(row.time_ms, &self.zone) as i32;
            let cell = rollup
                .entry((day, school.unwrap_or(-1), category))
                .or_default();
            cell.0 += row.count;
            cell.1 += 1;
            hits += row.count;
            copy_row(&mut text, session.instance, row, school, category, context);
        }
        let last = rows.last().map_or(session.shipped_id, |r| r.id);
        let mut tx = session.client.transaction()?;
        let mut writer = tx.copy_in(
            "COPY records (instance, local_id, time_ms, last_seen_ms, count, school, category, \
             context, device, client, qname, line, entry, cname) FROM STDIN",
        )?;
        writer
            .write_all(&text)
            .map_err(|e| Either::Other(format!("COPY: {e}")))?;
        writer.finish()?;
        add_rollup(&mut tx, &rollup)?;
        tx.execute(
            "UPDATE instances SET shipped_id = $2 WHERE id = $1",
            &[&session.instance, &last],
        )?;
        tx.commit()?;
        session.shipped_id = last;
        self.stats
            .shipped
            .fetch_add(rows.len() as u64, Ordering::Relaxed);
        self.stats
            .shipped_hits
            .fetch_add(hits as u64, Ordering::Relaxed);
        Ok(rows.len() == BATCH)
    }

    /// Sends the new counts of shipped records that repeats raised since they were shipped
    /// (noted in `spool_changes`); the notes go once PostgreSQL has the counts.
    fn ship_repeats(&mut self) -> Result<(), Either> {
        let (Some(spool), Some(session)) = (&self.spool, &mut self.session) else {
            return Ok(());
        };
        let Some(upto): Option<i64> =
            spool.query_row("SELECT max(seq) FROM spool_changes", [], |r| r.get(0))?
        else {
            return Ok(());
        };
        let mut stmt = spool.prepare_cached(
            "SELECT r.id, r.time_ms, r.last_seen_ms, r.count FROM records r WHERE r.id IN \
             (SELECT DISTINCT id FROM spool_changes WHERE seq <= ?1 AND id <= ?2)",
        )?;
        let mut text = Vec::new();
        let mut n = 0u64;
        let mut rows = stmt.query(rusqlite::params![upto, session.shipped_id])?;
        while let Some(row) = rows.next()? {
            let (id, time_ms, last_seen, count): (i64, i64, i64, i64) =
                (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
            let day = day_of(time_ms, &self.zone);
            let _ = writeln!(text, "{id}\t{time_ms}\t{last_seen}\t{count}\t{day}");
            n += 1;
        }
        drop(rows);
        let mut repeats_added = 0;
        if n > 0 {
            let mut tx = session.client.transaction()?;
            let mut writer = tx.copy_in("COPY ship_updates FROM STDIN")?;
            writer
                .write_all(&text)
                .map_err(|e| Either::Other(format!("COPY: {e}")))?;
            writer.finish()?;
            tx.execute(
                "INSERT INTO rollup_days (day, school, category, hits, records) \
                 SELECT u.day, coalesce(r.school, -1), r.category, sum(u.count - r.count), 0 \
                 FROM ship_updates u JOIN records r ON r.instance = $1 \
                 AND r.local_id = u.local_id AND r.time_ms = u.time_ms \
                 WHERE u.count > r.count GROUP BY 1, 2, 3 \
                 ON CONFLICT (day, school, category) DO UPDATE \
                 SET hits = rollup_days.hits + EXCLUDED.hits",
                &[&session.instance],
            )?;
            repeats_added = tx
                .query_one(
                    "SELECT coalesce(sum(u.count - r.count), 0)::bigint FROM ship_updates u \
                     JOIN records r ON r.instance = $1 AND r.local_id = u.local_id \
                     AND r.time_ms = u.time_ms WHERE u.count > r.count",
                    &[&session.instance],
                )?
                .get::<_, i64>(0);
            let updated = tx.execute(
                "UPDATE records r SET count = u.count, last_seen_ms = u.last_seen_ms \
                 FROM ship_updates u WHERE r.instance = $1 AND r.local_id = u.local_id \
                 AND r.time_ms = u.time_ms AND u.count > r.count",
                &[&session.instance],
            )?;
            tx.commit()?;
            self.stats.updated.fetch_add(updated, Ordering::Relaxed);
        }
        // Notes of records not shipped yet stay: their record goes with its current count,
        // and the note is sent (harmlessly) once it has.
        spool.execute(
            "DELETE FROM spool_changes WHERE seq <= ?1 AND id <= ?2",
            rusqlite::params![upto, session.shipped_id],
        )?;
        self.stats
            .shipped_hits
            .fetch_add(repeats_added.max(0) as u64, Ordering::Relaxed);
        Ok(())
    }

    fn ship_audit(&mut self) -> Result<(), Either> {
        let (Some(spool), Some(session)) = (&self.spool, &mut self.session) else {
            return Ok(());
        };
        let mut stmt = spool.prepare_cached(
            "SELECT id, time_ms, actor, address, action, detail FROM audit WHERE id > ?1 \
             ORDER BY id LIMIT 5000",
        )?;
        type Audit = (i64, i64, String, Option<String>, String, String);
        let entries: Vec<Audit> = stmt
            .query_map([session.audit_shipped_id], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            })?
            .collect::<Result<_, _>>()?;
        let Some(last) = entries.last().map(|e| e.0) else {
            return Ok(());
        };
        let mut tx = session.client.transaction()?;
        let insert = tx.prepare(
            "INSERT INTO audit (instance, local_id, time_ms, actor, address, action, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )?;
        for (id, time, actor, address, action, detail) in &entries {
            tx.execute(
                &insert,
                &[&session.instance, id, time, actor, address, action, detail],
            )?;
        }
        tx.execute(
            "UPDATE instances SET audit_shipped_id = $2 WHERE id = $1",
            &[&session.instance, &last],
        )?;
        tx.commit()?;
        session.audit_shipped_id = last;
        Ok(())
    }

    fn heartbeat(&mut self) -> Result<(), postgres::Error> {
        let status = (self.status)();
        let now = Instant::now();
        let qps = match self.last_queries {
            Some((at, queries)) if now > at => {
                status.queries.saturating_sub(queries) as f64 / (now - at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last_queries = Some((now, status.queries));
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        session.client.execute(
            "UPDATE instances SET version = $2, policy_version = $3, config_version = $4, \
             heartbeat_ms = (extract(epoch FROM clock_timestamp()) * 1000)::bigint, \
             queries_per_second = $5, spool_backlog = $6, spool_bytes = $7, dropped = $8, \
             sync_error = $9 WHERE id = $1",
            &[
                &session.instance,
                &env!("CARGO_PKG_VERSION"),
                &status.policy_version,
                &status.config_version,
                &qps,
                &self.stats.backlog.load(Ordering::Relaxed),
                &self.stats.spool_bytes.load(Ordering::Relaxed),
                &(self.hits.dropped.load(Ordering::Relaxed) as i64),
                &status.sync_error,
            ],
        )?;
        let rows = read_instances(&mut session.client)?;
        self.stats.instances.store(Arc::new(rows));
        Ok(())
    }

    /// Deletes shipped records whose repeat window has closed, keeping the newest row.
    fn prune(&mut self) -> rusqlite::Result<()> {
        let (Some(spool), Some(session)) = (&self.spool, &self.session) else {
            return Ok(());
        };
        let before = crate::hitlog::now_ms() - self.window_ms - PRUNE_MARGIN_MS;
        loop {
            let n = spool.execute(
                "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE id <= ?1 \
                 AND id < (SELECT max(id) FROM records) AND time_ms < ?2 LIMIT ?3)",
                rusqlite::params![session.shipped_id, before, PRUNE_CHUNK],
            )?;
            if (n as i64) < PRUNE_CHUNK || self.stop.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(())
    }

    fn expire(&mut self) -> Result<(), String> {
        let Some(session) = &mut self.session else {
            return Ok(());
        };
        let overrides: BTreeMap<String, u32> = self
            .config
            .category_retention_days
            .iter()
            .map(|(k, v)| (k.clone(), *v.get_ref()))
            .collect();
        let (dropped, deleted) = schema::expire(
            &mut session.client,
            crate::hitlog::now_ms(),
            self.config.retention_days,
            &overrides,
            self.config.audit_retention_days,
            &self.zone,
            50_000,
        )
        .map_err(|e| e.detail())?;
        if dropped > 0 || deleted > 0 {
            tracing::info!(
                partitions = dropped,
                records = deleted,
                "hit store retention: old days dropped"
            );
        }
        Ok(())
    }
}

/// A PostgreSQL or a spool error.
enum Either {
    Db(postgres::Error),
    Lite(rusqlite::Error),
    Other(String),
}

impl Either {
    fn unwrap_or_else(
        self,
        db: impl Fn(postgres::Error) -> String,
        lite: impl Fn(rusqlite::Error) -> String,
    ) -> String {
        match self {
            Either::Db(e) => db(e),
            Either::Lite(e) => lite(e),
            Either::Other(text) => text,
        }
    }
}

impl From<postgres::Error> for Either {
    fn from(e: postgres::Error) -> Either {
        Either::Db(e)
    }
}

impl From<rusqlite::Error> for Either {
    fn from(e: rusqlite::Error) -> Either {
        Either::Lite(e)
    }
}

impl Session {
    /// Makes sure every school, category and context of `rows` has an id in PostgreSQL.
    fn resolve_names(&mut self, rows: &[SpoolRow]) -> Result<(), postgres::Error> {
        for row in rows {
            if let Some(school) = &row.school
                && !self.schools.contains_key(school)
            {
                let id = name_id(&mut self.client, "schools", school)?;
                self.schools.insert(school.clone(), id);
            }
            if !self.categories.contains_key(&row.category) {
                let id = name_id(&mut self.client, "categories", &row.category)?;
                self.categories.insert(row.category.clone(), id);
            }
            if !self.contexts.contains_key(&row.context) {
                let c = &row.context;
                self.client.execute(
                    "INSERT INTO contexts (profile, protocol, qtype, decision, list, \
                     policy_version, service) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING",
                    &[
                        &c.profile,
                        &c.protocol,
                        &c.qtype,
                        &c.decision,
                        &c.list,
                        &c.policy_version,
                        &c.service,
                    ],
                )?;
                let id: i32 = self
                    .client
                    .query_one(
                        "SELECT id FROM contexts WHERE profile IS NOT DISTINCT FROM $1 \
                         AND protocol = $2 AND qtype = $3 AND decision = $4 \
                         AND list IS NOT DISTINCT FROM $5 AND policy_version = $6 \
                         AND service IS NOT DISTINCT FROM $7",
                        &[
                            &c.profile,
                            &c.protocol,
                            &c.qtype,
                            &c.decision,
                            &c.list,
                            &c.policy_version,
                            &c.service,
                        ],
                    )?
                    .get(0);
                self.contexts.insert(row.context.clone(), id);
            }
        }
        Ok(())
    }
}

/// The id of `name` in `table` (`schools` or `categories`), adding it if new.
fn name_id(client: &mut Client, table: &str, name: &str) -> Result<i32, postgres::Error> {
    client.execute(
        &format!("INSERT INTO {table} (name) VALUES ($1) ON CONFLICT DO NOTHING"),
        &[&name],
    )?;
    Ok(client
        .query_one(&format!("SELECT id FROM {table} WHERE name = $1"), &[&name])?
        .get(0))
}

/// Adds per-day hits and records to the rollup, in one statement.
fn add_rollup(
    tx: &mut postgres::Transaction<'_>,
    rollup: &BTreeMap<(i32, i32, i32), (i64, i64)>,
) -> Result<(), postgres::Error> {
    let (mut days, mut schools, mut categories) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hits, mut records) = (Vec::new(), Vec::new());
    for (&(day, school, category), &(h, r)) in rollup {
        days.push(day);
        schools.push(school);
        categories.push(category);
        hits.push(h);
        records.push(r);
    }
    tx.execute(
        "INSERT INTO rollup_days (day, school, category, hits, records) \
         SELECT * FROM unnest($1::integer[], $2::integer[], $3::integer[], $4::bigint[], \
         $5::bigint[]) ON CONFLICT (day, school, category) DO UPDATE \
         SET hits = rollup_days.hits + EXCLUDED.hits, \
         records = rollup_days.records + EXCLUDED.records",
        &[&days, &schools, &categories, &hits, &records],
    )?;
    Ok(())
}

/// Every instance's row.
pub fn read_instances(client: &mut Client) -> Result<Vec<InstanceRow>, postgres::Error> {
    let rows = client.query(
        "SELECT name, version, policy_version, config_version, started_ms, heartbeat_ms, \
         (extract(epoch FROM clock_timestamp()) * 1000)::bigint - heartbeat_ms, \
         queries_per_second, spool_backlog, spool_bytes, dropped, sync_error \
         FROM instances ORDER BY name",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| InstanceRow {
            name: r.get(0),
            version: r.get(1),
            policy_version: r.get(2),
            config_version: r.get(3),
            started_ms: r.get(4),
            heartbeat_ms: r.get(5),
            heartbeat_age_s: r.get::<_, Option<i64>>(6).map(|ms| ms as f64 / 1000.0),
            queries_per_second: r.get(7),
            spool_backlog: r.get(8),
            spool_bytes: r.get(9),
            dropped: r.get(10),
            sync_error: r.get(11),
        })
        .collect())
}

/// Opens the spool for shipping and pruning, with its identity (made on first open); `None`
/// while the file does not exist.
fn open_spool(path: &Path) -> rusqlite::Result<Option<(Connection, String)>> {
    if !path.exists() {
        return Ok(None);
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    if !crate::hitlog::schema::ready(&conn)? {
        return Ok(None);
    }
    conn.execute_batch(SPOOL_TABLES)?;
    let found: Option<String> = conn
        .query_row("SELECT value FROM spool WHERE key = 'id'", [], |r| r.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| {
                rusqlite::Error::ToSqlConversionFailure(format!("no randomness: {e}").into())
            })?;
            let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            conn.execute(
                "INSERT INTO spool (key, value) VALUES ('id', ?1) ON CONFLICT DO NOTHING",
                [&id],
            )?;
            conn.query_row("SELECT value FROM spool WHERE key = 'id'", [], |r| r.get(0))?
        }
    };
    Ok(Some((conn, id)))
}

/// Up to `limit` records after local id `after`, in id order.
fn read_new(spool: &Connection, after: i64, limit: usize) -> rusqlite::Result<Vec<SpoolRow>> {
    let mut stmt = spool.prepare_cached(&format!(
        "SELECT r.id, r.time_ms, r.last_seen_ms, r.count, s.name, c.name, x.profile, \
         x.protocol, x.qtype, x.decision, x.list, x.policy_version, x.service, r.device, \
         r.client, r.qname, r.line, r.entry, r.cname FROM records r {} \
         WHERE r.id > ?1 ORDER BY r.id LIMIT ?2",
        crate::hitlog::schema::JOINS
    ))?;
    stmt.query_map(rusqlite::params![after, limit as i64], |r| {
        Ok(SpoolRow {
            id: r.get(0)?,
            time_ms: r.get(1)?,
            last_seen_ms: r.get(2)?,
            count: r.get(3)?,
            school: r.get(4)?,
            category: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
            context: Context {
                profile: r.get(6)?,
                protocol: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                qtype: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                decision: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
                list: r.get(10)?,
                policy_version: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                service: r.get(12)?,
            },
            device: r.get(13)?,
            client: r.get(14)?,
            qname: r.get(15)?,
            line: r.get(16)?,
            entry: r.get(17)?,
            cname: r.get(18)?,
        })
    })?
    .collect()
}

/// Appends one record in `COPY`'s text format.
fn copy_row(
    out: &mut Vec<u8>,
    instance: i32,
    row: &SpoolRow,
    school: Option<i32>,
    category: i32,
    context: i32,
) {
    let _ = write!(
        out,
        "{instance}\t{}\t{}\t{}\t{}\t",
        row.id, row.time_ms, row.last_seen_ms, row.count
    );
    match school {
        Some(id) => {
            let _ = write!(out, "{id}");
        }
        None => out.extend_from_slice(b"\\N"),
    }
    let _ = write!(out, "\t{category}\t{context}\t");
    copy_text(out, row.device.as_deref());
    out.push(b'\t');
    copy_text(out, row.client.as_deref());
    out.push(b'\t');
    copy_text(out, Some(&row.qname));
    out.push(b'\t');
    match row.line {
        Some(line) => {
            let _ = write!(out, "{line}");
        }
        None => out.extend_from_slice(b"\\N"),
    }
    out.push(b'\t');
    copy_text(out, row.entry.as_deref());
    out.push(b'\t');
    copy_text(out, row.cname.as_deref());
    out.push(b'\n');
}

/// A text value in `COPY`'s text format: backslash, tab, newline and carriage return escaped;
/// `None` is `\N`.
fn copy_text(out: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &b in value.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_reads_as_syntax() {
        let mut out = Vec::new();
        copy_text(&mut out, Some("a\\b\tc\nd\re"));
        assert_eq!(out, b"a\\\\b\\tc\\nd\\re");
        out.clear();
        copy_text(&mut out, None);
        assert_eq!(out, b"\\N");
    }
}
