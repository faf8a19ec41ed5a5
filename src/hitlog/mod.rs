//! The policy-hit log: every blocked query becomes a durable record that schools and the
//! district police can query, and nothing else is recorded (this is not a browsing history).
//!
//! - [`record`]: the event the query path hands over and the record stored.
//! - [`writer`]: the dedicated thread that folds repeats, batches inserts into SQLite and
//!   deletes expired records.
//! - [`store`]: the SQLite file: schema, batched writes, retention.
//! - [`query`]: the read side shared by `schooldns hits` and `/api/hits`, `/api/summary`.
//! - [`export`]: table, CSV (for spreadsheets) and JSON output.
//! - [`time`]: `--since 24h` / `2026-11-01` parsing and local-time formatting.
//! - [`jsonlog`]: each hit as one JSON line through `tracing`.
//!
//! - [`queue`]: the wait-free hand-off from query threads to the writer.
//! - [`postgres`]: with `backend = "postgres"`, the shipper that sends the file (then a spool)
//!   to the shared PostgreSQL store, and the reads across every instance.
//!
//! The query path only ever calls [`HitSender::record`], a push into its thread's bounded
//! ring: when the writer falls behind, the hit is counted as dropped (metric and a
//! rate-limited warning), never waited for.

pub mod audit;
pub mod export;
pub mod jsonlog;
pub mod postgres;
pub mod query;
pub mod queue;
pub mod record;
pub mod rollup;
pub mod schema;
#[cfg(target_os = "linux")]
pub mod shm_guard;
pub mod store;
pub mod time;
pub mod writer;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;

pub use record::{HitEvent, HitRecord};

use queue::{Control, HitQueue, Refused};

use crate::config::HitlogConfig;

/// Hit-log counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HitStats {
    /// Hits handed to the writer.
    pub received: AtomicU64,
    /// Hits dropped because the writer's queue or buffer was full.
    pub dropped: AtomicU64,
    /// Records inserted.
    pub records: AtomicU64,
    /// Hits folded into an existing record.
    pub repeats: AtomicU64,
    /// Failed writes (each retried) and failed opens.
    pub write_errors: AtomicU64,
    /// Records deleted by retention.
    pub expired: AtomicU64,
    /// Hits on disk: each written record's `count` and each repeat folded into a stored
    /// record, counted when its batch commits.
    pub stored: AtomicU64,
    /// Hits received but lost in the writer (buffer full while the disk failed, or stopped
    /// before they could be written); also counted in `dropped`.
    pub lost: AtomicU64,
    /// Set by the PostgreSQL shipper while the spool is at `spool_max_mb`: new records are
    /// dropped (counted here and in `lost`) until it has room.
    pub spool_full: AtomicBool,
    /// Hits dropped because the spool was full.
    pub spool_dropped: AtomicU64,
    /// When the last warning about dropped hits was logged (ms since epoch).
    last_drop_warning: AtomicI64,
}

impl HitStats {
    /// Appends the hit-log metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let counters = [
            (
                "hits_total",
                "Blocked queries handed to the hit log.",
                &self.received,
            ),
            (
                "dropped_total",
                "Hits dropped because the hit-log writer fell behind or could not write.",
                &self.dropped,
            ),
            ("records_total", "Hit records written.", &self.records),
            (
                "repeats_total",
                "Hits folded into an existing record (same client, name and decision).",
                &self.repeats,
            ),
            (
                "write_errors_total",
                "Failed hit-log writes or opens (retried).",
                &self.write_errors,
            ),
            (
                "expired_total",
                "Hit records deleted by retention.",
                &self.expired,
            ),
            (
                "spool_dropped_total",
                "Hits dropped because the PostgreSQL spool reached spool_max_mb.",
                &self.spool_dropped,
            ),
        ];
        for (name, help, value) in counters {
            let _ = write!(
                out,
                "# HELP schooldns_hitlog_{name} {help}\n# TYPE schooldns_hitlog_{name} counter\n\
                 schooldns_hitlog_{name} {}\n",
                value.load(Ordering::Relaxed)
            );
        }
        let _ = write!(
            out,
            "# HELP schooldns_hitlog_pending Hits received and not yet on disk.\n\
             # TYPE schooldns_hitlog_pending gauge\nschooldns_hitlog_pending {}\n",
            self.pending()
        );
    }

    /// Hits received and not yet on disk or lost: those in the rings, in the batch being
    /// built, and repeats waiting for their record's update.
    pub fn pending(&self) -> u64 {
        // Read the writer's counters first: a hit is counted received just after its push, so
        // the writer may have stored it a moment before; the subtraction saturates.
        let settled = self.stored.load(Ordering::Relaxed) + self.lost.load(Ordering::Relaxed);
        self.received
            .load(Ordering::Relaxed)
            .saturating_sub(settled)
    }

    /// Counts hits the writer had received and could not write.
    fn count_lost(&self, hits: u64, now_ms: i64) {
        if hits == 0 {
            return;
        }
        self.lost.fetch_add(hits, Ordering::Relaxed);
        self.count_drops(hits, now_ms);
    }

    /// Counts `hits` dropped and warns, at most once per ten seconds.
    fn count_drops(&self, hits: u64, now_ms: i64) {
        self.dropped.fetch_add(hits, Ordering::Relaxed);
        let last = self.last_drop_warning.load(Ordering::Relaxed);
        // One warning per ten seconds at most; the counter has the full tally.
        if now_ms - last >= 10_000
            && self
                .last_drop_warning
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_total = self.dropped.load(Ordering::Relaxed),
                "hit log is behind: dropping hits (see schooldns_hitlog_dropped_total)"
            );
        }
    }
}

/// The query path's handle: cheap to clone, never blocks.
#[derive(Clone)]
pub struct HitSender {
    queue: Option<HitQueue>,
    stats: Arc<HitStats>,
}

impl HitSender {
    /// A sender that records nothing (`[hitlog] enabled = false`).
    pub fn disabled() -> HitSender {
        HitSender {
            queue: None,
            stats: Arc::new(HitStats::default()),
        }
    }

    /// Whether hits are recorded at all.
    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Hands a hit to the writer without waiting; a full ring drops and counts it.
    pub fn record(&self, event: HitEvent) {
        let Some(queue) = &self.queue else { return };
        let at = event.at_ms;
        match queue.push(event) {
            Ok(()) => {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
            }
            Err(Refused::Full | Refused::Closed) => self.stats.count_drops(1, at),
        }
    }

    /// Hands an audit entry to the writer (written within its next look at the queue; held in
    /// memory, like hits, while the file cannot be written).
    pub fn audit(&self, entry: audit::AuditEntry) {
        if let Some(queue) = &self.queue {
            queue.control(Control::Audit(Box::new(entry)));
        }
    }

    /// Hands a reloaded `[hitlog]` to the writer (see [`queue::Control::Settings`]).
    pub fn follow(&self, config: &HitlogConfig) {
        if let Some(queue) = &self.queue {
            queue.control(Control::Settings(Box::new(config.clone())));
        }
    }

    /// Waits until every hit sent before this call is on disk (or failed to be written).
    /// Blocks: for tests, benchmarks and shutdown, never the query path.
    pub fn flush(&self) {
        if let Some(queue) = &self.queue {
            let (ack, done) = mpsc::channel();
            if queue.control(Control::Flush(ack)) {
                let _ = done.recv();
            }
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<HitStats> {
        &self.stats
    }
}

/// The running hit log: the writer thread and the way to reach it.
pub struct HitLog {
    sender: HitSender,
    thread: Option<std::thread::JoinHandle<()>>,
    /// With `backend = "postgres"`: the thread shipping the spool.
    shipper: Option<postgres::ship::Shipper>,
    ship_stats: Option<Arc<postgres::ship::ShipStats>>,
}

impl HitLog {
    /// Starts the writer thread for `config` (or a disabled log). An unwritable file does not
    /// stop the start: the writer reports it loudly and keeps retrying, and DNS keeps answering.
    pub fn start(config: &HitlogConfig) -> std::io::Result<HitLog> {
        HitLog::start_with(config, Arc::new(postgres::ship::InstanceStatus::default))
    }

    /// [`HitLog::start`], with where a PostgreSQL shipper's heartbeat reads this instance's
    /// policy version and query count.
    pub fn start_with(
        config: &HitlogConfig,
        status: postgres::ship::StatusSource,
    ) -> std::io::Result<HitLog> {
        if !config.enabled {
            return Ok(HitLog {
                sender: HitSender::disabled(),
                thread: None,
                shipper: None,
                ship_stats: None,
            });
        }
        if let Some(target) = &config.json
            && let Err(err) = jsonlog::install(target)
        {
            tracing::error!(target = %target, error = %err, "cannot open the hit JSON log; hits still go to the database");
        }
        // Before any mapping of the file exists: a damaged file must not kill DNS.
        #[cfg(target_os = "linux")]
        shm_guard::install(&config.path);
        let (queue, control) = queue::queue(config.queue);
        let stats = Arc::new(HitStats::default());
        // Opened here, before the first query, so readers find the schema from the start; a
        // failure is the writer's to report and retry. A file of an older schema is left to
        // the writer to upgrade, so DNS is not held back while its records move.
        let store = match schema::needs_upgrade(&config.path) {
            true => None,
            false => store::Store::open(&config.path).ok().filter(|store| {
                // Before any hit: the shipper must see every repeat from the first.
                config.backend != crate::config::HitlogBackend::Postgres
                    || store.track_repeats().is_ok()
            }),
        };
        let thread = writer::spawn(config.clone(), store, control, Arc::clone(&stats))?;
        let (shipper, ship_stats) = match config.backend {
            crate::config::HitlogBackend::Sqlite => (None, None),
            crate::config::HitlogBackend::Postgres => {
                let ship_stats = Arc::new(postgres::ship::ShipStats::default());
                let shipper = postgres::ship::Shipper::spawn(
                    config.clone(),
                    Arc::clone(&stats),
                    Arc::clone(&ship_stats),
                    status,
                )?;
                (Some(shipper), Some(ship_stats))
            }
        };
        Ok(HitLog {
            sender: HitSender {
                queue: Some(queue),
                stats,
            },
            thread: Some(thread),
            shipper,
            ship_stats,
        })
    }

    /// The PostgreSQL shipper's counters and its view of every instance (`None` with the
    /// SQLite backend).
    pub fn ship_stats(&self) -> Option<Arc<postgres::ship::ShipStats>> {
        self.ship_stats.clone()
    }

    /// The query path's handle.
    pub fn sender(&self) -> HitSender {
        self.sender.clone()
    }

    /// Waits until every hit sent before this call is on disk (or failed to be written).
    pub fn flush(&self) {
        self.sender.flush();
    }

    /// Writes everything buffered and stops the writer.
    pub fn stop(mut self) {
        if let Some(queue) = &self.sender.queue {
            queue.control(Control::Stop);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(shipper) = self.shipper.take() {
            shipper.stop();
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    crate::clock::now_ms()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::LoadedConfig;
    use crate::name::QueryName;

    pub(crate) fn event(policy: &Arc<crate::policy::Policy>, i: usize) -> HitEvent {
        event_from(policy, "10.0.0.1", &format!("n{i}.example"))
    }

    /// A hit now from `client` for `name`, decided by `policy`.
    pub(crate) fn event_from(
        policy: &Arc<crate::policy::Policy>,
        client: &str,
        name: &str,
    ) -> HitEvent {
        let client: std::net::IpAddr = client.parse().unwrap();
        let name = QueryName::from_user(name).unwrap();
        HitEvent {
            at_ms: now_ms(),
            client,
            protocol: "udp",
            qtype: 1,
            qname: name.as_str().into(),
            cname: None,
            decision: policy.decide(client, &name),
            policy: Arc::clone(policy),
            client_address: crate::config::ClientAddress::Full,
        }
    }

    /// A policy with one school on 10.0.0.0/8 and nothing listed.
    pub(crate) fn policy() -> Arc<crate::policy::Policy> {
        let text = "[profiles.p]\n[[schools]]\nid = \"a\"\nname = \"A\"\n\
                    networks = [\"10.0.0.0/8\"]\nprofile = \"p\"\n";
        let loaded = LoadedConfig::parse(std::path::Path::new("c.toml"), text.into()).unwrap();
        Arc::new(crate::policy::compile(&loaded).unwrap())
    }

    /// With the writer stuck, the query path's send neither waits nor loses count.
    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let policy = policy();
        let (queue, control) = queue::queue(4);
        let sender = HitSender {
            queue: Some(queue),
            stats: Arc::new(HitStats::default()),
        };
        let started = std::time::Instant::now();
        for i in 0..1000 {
            sender.record(event(&policy, i));
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(sender.stats.received.load(Ordering::Relaxed), 4);
        assert_eq!(sender.stats.dropped.load(Ordering::Relaxed), 996);
        assert_eq!(sender.stats.pending(), 4, "hits in the ring are pending");
        drop(control);
        sender.record(event(&policy, 0));
        assert_eq!(sender.stats.dropped.load(Ordering::Relaxed), 997);
    }

    /// `pending` counts every hit received and not yet on disk, repeats included, and falls
    /// to zero once they are committed.
    #[test]
    fn pending_counts_hits_until_they_are_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let config = HitlogConfig {
            path: dir.path().join("hits.sqlite"),
            ..HitlogConfig::default()
        };
        let log = HitLog::start(&config).unwrap();
        let sender = log.sender();
        let policy = policy();
        for i in [0, 1, 0, 0] {
            sender.record(event(&policy, i));
        }
        let stats = Arc::clone(sender.stats());
        assert!(stats.pending() <= 4);
        log.flush();
        assert_eq!(stats.pending(), 0);
        assert_eq!(stats.records.load(Ordering::Relaxed), 2);
        assert_eq!(stats.stored.load(Ordering::Relaxed), 4);
        // A repeat of a stored record is pending until its update commits.
        sender.record(event(&policy, 1));
        log.flush();
        assert_eq!(stats.stored.load(Ordering::Relaxed), 5);
        assert_eq!(stats.pending(), 0);
        log.stop();
    }
}
