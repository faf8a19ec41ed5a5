//! The writer thread: receives hits, folds repeats, and commits batches to SQLite.
//!
//! A batch is committed when its oldest new record is [`FLUSH_AFTER`] old, its oldest repeat of
//! a stored record [`REPEAT_FLUSH_AFTER`] old, or it holds [`MAX_BATCH`] records, so a hit is
//! on disk well within a second. Repeats (same school or device, client, name, decision and
//! category within `repeat_window_secs` of the record's first hit) raise the record's `count`
//! and `last_seen` instead of adding rows, whether the record is still in the batch or already
//! stored. A failed write keeps the batch and is retried; while the disk stays
//! unwritable the batch is bounded by [`MAX_PENDING`] and further hits are dropped and counted.
//! Expired records are deleted here too, a bounded number per pass, between batches.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use super::queue::{Control, HitDrain};
use super::record::{HitEvent, HitRecord};
use super::store::{Repeat, Store};
use super::{HitStats, jsonlog, now_ms};
use crate::config::HitlogConfig;
use rustc_hash::FxHashMap;

/// Oldest a new record may get before its batch is committed.
pub const FLUSH_AFTER: Duration = Duration::from_millis(200);
/// Oldest a repeat of an already stored record may get before its batch is committed. Longer
/// than [`FLUSH_AFTER`] because a stored record retried all the time (an app polling a blocked
/// name) costs one `UPDATE` per commit, whatever its repeats: at 500 ms instead of 200 ms,
/// 10,000 names retried ten times a second cost 20,000 updates a second instead of 50,000 (in
/// one side-by-side run of `benches/hitlog.sh`'s repeat load, 376,028 of a million hits were
/// dropped at 200 ms and none at 500 ms). Still well within the one second a hit may wait for
/// the disk.
pub const REPEAT_FLUSH_AFTER: Duration = Duration::from_millis(500);
/// Most records in one transaction.
pub const MAX_BATCH: usize = 20_000;
/// Most records held in memory while writes fail.
pub const MAX_PENDING: usize = 200_000;
/// Most recent records remembered for folding repeats; beyond it the oldest are forgotten
/// early (a later repeat then starts a new record: more rows, nothing lost).
const MAX_REMEMBERED: usize = 1_000_000;
/// Wait after a failed write or open before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Audit entries held while the file cannot be written.
const MAX_AUDIT_HELD: usize = 10_000;
/// Time between retention passes.
const EXPIRE_EVERY: Duration = Duration::from_secs(3600);
/// Most rows one retention pass deletes before letting batches through again.
const EXPIRE_BUDGET: usize = 50_000;
/// Old records added to a daily rollup being rebuilt per pass (a pass every 100 ms until done).
const ROLLUP_BUDGET: i64 = 50_000;
/// Longest nap between looks at an empty queue (the nap doubles from 1 ms while it stays
/// empty), so a hit waits at most this long before the writer sees it.
const MAX_NAP: Duration = Duration::from_millis(64);

/// Starts the writer thread.
pub fn spawn(
    config: HitlogConfig,
    store: Option<Store>,
    control: Receiver<Control>,
    stats: Arc<HitStats>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("schooldns-hitlog".into())
        .spawn(move || {
            crate::priority::idle_priority();
            let mut writer = Writer::new(config, stats);
            writer.store = store;
            writer.run(control)
        })
}

/// Where a remembered record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Row {
    /// In the batch, at this index.
    Pending(usize),
    /// On disk, with this id.
    Stored(i64),
}

struct Writer {
    config: HitlogConfig,
    window_ms: i64,
    retention: BTreeMap<String, u32>,
    stats: Arc<HitStats>,
    store: Option<Store>,
    /// When to try opening or writing again after a failure.
    retry_at: Option<Instant>,
    last_error_logged: Option<Instant>,
    /// [`super::shm_guard::damage_count`] when last looked at.
    damage_seen: u64,
    next_expire: Instant,
    /// New records and the repeat key of each.
    inserts: Vec<(HitRecord, u64)>,
    /// Repeats of stored records, by id.
    repeats: FxHashMap<i64, Repeat>,
    /// When the oldest unwritten new record arrived.
    oldest: Option<Instant>,
    /// When the oldest unwritten repeat of a stored record arrived.
    oldest_repeat: Option<Instant>,
    /// Recent records by repeat key, with their first hit time.
    remembered: FxHashMap<u64, (i64, Row)>,
    /// Keys in order of first hit, to forget them once out of the window.
    order: VecDeque<(i64, u64)>,
    /// Record keys by [`HitRecord::quick_repeat_key`], with when each was learnt, so a repeat
    /// is folded without explaining its event again.
    quick: FxHashMap<u64, (i64, u64)>,
    /// Quick keys in the order learnt, to forget them with the records.
    quick_order: VecDeque<(i64, u64)>,
    json: Option<jiff::tz::TimeZone>,
    /// Audit entries not yet written (bounded: the oldest go first past [`MAX_AUDIT_HELD`]).
    audits: Vec<super::audit::AuditEntry>,
}

impl Writer {
    fn new(config: HitlogConfig, stats: Arc<HitStats>) -> Writer {
        let retention = config
            .category_retention_days
            .iter()
            .map(|(c, d)| (c.clone(), *d.get_ref()))
            .collect();
        let json = jsonlog::enabled().then(|| super::time::zone(&config));
        Writer {
            window_ms: (config.repeat_window_secs as i64).saturating_mul(1000),
            retention,
            stats,
            store: None,
            retry_at: None,
            last_error_logged: None,
            damage_seen: super::shm_guard::damage_count(),
            next_expire: Instant::now(),
            inserts: Vec::new(),
            repeats: FxHashMap::default(),
            oldest: None,
            oldest_repeat: None,
            remembered: FxHashMap::default(),
            order: VecDeque::new(),
            quick: FxHashMap::default(),
            quick_order: VecDeque::new(),
            json,
            config,
            audits: Vec::new(),
        }
    }

    /// Follows a reloaded `[hitlog]`: the repeat window, retention (a pass runs at once) and
    /// the JSON log's time zone. (Client addresses are kept as each event says.) The file
    /// stays the one started with.
    fn follow(&mut self, config: HitlogConfig) {
        let path = std::mem::take(&mut self.config.path);
        let next = Writer::new(config, Arc::clone(&self.stats));
        self.window_ms = next.window_ms;
        self.retention = next.retention;
        self.json = next.json;
        self.config = HitlogConfig {
            path,
            ..next.config
        };
        self.next_expire = Instant::now();
        let zone = super::time::zone(&self.config);
        if let Some(store) = self.store.as_mut()
            && let Err(err) = store.follow_zone(&zone)
        {
            tracing::warn!(error = %err, "the hit log's daily rollup could not follow the new time zone");
        }
    }

    /// Takes hits from the rings and control messages until stopped. The writer never sleeps
    /// inside a channel (a sender would then have to wake it under the channel's lock, and
    /// this `SCHED_IDLE` thread may be preempted holding it): it looks, and naps while there
    /// is nothing, the nap doubling from 1 ms to [`MAX_NAP`].
    fn run(mut self, control: Receiver<Control>) {
        // A store opened before the writer started counts its rollup's days in our zone too.
        let zone = super::time::zone(&self.config);
        if let Some(store) = self.store.as_mut()
            && let Err(err) = store.follow_zone(&zone)
        {
            tracing::warn!(error = %err, "the hit log's daily rollup could not be prepared; summaries read the records");
        }
        self.open();
        let mut drain = HitDrain::default();
        let mut nap = Duration::from_millis(1);
        loop {
            let taken = self.take(&mut drain, MAX_BATCH);
            loop {
                match control.try_recv() {
                    Ok(Control::Ring(ring)) => drain.add(ring),
                    Ok(Control::Settings(config)) => self.follow(*config),
                    Ok(Control::Audit(entry)) => {
                        if self.audits.len() >= MAX_AUDIT_HELD {
                            self.audits.remove(0);
                            self.stats.count_drops(1, entry.time_ms);
                        }
                        self.audits.push(*entry);
                    }
                    Ok(Control::Flush(ack)) => {
                        // Every hit handed over before the flush is in a ring by now.
                        self.take_waiting(&mut drain);
                        self.write();
                        let _ = ack.send(());
                    }
                    Ok(Control::Stop) | Err(TryRecvError::Disconnected) => {
                        self.take_waiting(&mut drain);
                        return self.finish();
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            let due = self.flush_due().is_some_and(|t| Instant::now() >= t)
                || self.inserts.len() >= MAX_BATCH
                || !self.audits.is_empty();
            if due && self.retry_at.is_none_or(|t| Instant::now() >= t) {
                self.write();
            }
            if Instant::now() >= self.next_expire && self.inserts.is_empty() {
                self.expire();
            }
            if taken > 0 {
                nap = Duration::from_millis(1);
            } else {
                let left = self
                    .next_deadline()
                    .saturating_duration_since(Instant::now());
                std::thread::sleep(nap.min(left).max(Duration::from_micros(100)));
                nap = (nap * 2).min(MAX_NAP);
            }
        }
    }

    /// Takes every hit waiting in the rings now (not those arriving meanwhile, so a flush
    /// ends under any load), committing full batches on the way.
    fn take_waiting(&mut self, drain: &mut HitDrain) {
        let mut left = drain.waiting();
        while left > 0 {
            let taken = self.take(drain, left.min(MAX_BATCH));
            if taken == 0 {
                break;
            }
            left = left.saturating_sub(taken);
            if self.inserts.len() >= MAX_BATCH {
                self.write();
            }
        }
    }

    /// Takes up to `most` hits from the rings, giving the core away now and then.
    fn take(&mut self, drain: &mut HitDrain, most: usize) -> usize {
        let mut step = 0;
        drain.take(most, |event| {
            crate::priority::yield_now_and_then(step);
            step += 1;
            self.accept(&event);
        })
    }

    /// The next moment something is due: a batch, a retry, or a retention pass.
    fn next_deadline(&self) -> Instant {
        let mut deadline = self.next_expire;
        if let Some(due) = self.flush_due() {
            deadline = deadline.min(due.max(self.retry_at.unwrap_or(due)));
        }
        deadline
    }

    /// When the unwritten hits must be committed, if there are any.
    fn flush_due(&self) -> Option<Instant> {
        let records = self.oldest.map(|t| t + FLUSH_AFTER);
        let repeats = self.oldest_repeat.map(|t| t + REPEAT_FLUSH_AFTER);
        records.into_iter().chain(repeats).min()
    }

    fn finish(mut self) {
        self.write();
        if !self.inserts.is_empty() || !self.repeats.is_empty() {
            let hits = self.unwritten_hits();
            tracing::error!(
                records = self.inserts.len(),
                hits,
                path = %self.config.path.display(),
                "stopping with hits that could not be written"
            );
            self.stats.count_lost(hits, now_ms());
        }
    }

    /// Hits in the batch: the new records' counts and the repeats of stored records.
    fn unwritten_hits(&self) -> u64 {
        let records: i64 = self.inserts.iter().map(|(r, _)| r.count).sum();
        let repeats: i64 = self.repeats.values().map(|r| r.count).sum();
        (records + repeats) as u64
    }

    fn open(&mut self) -> bool {
        let damage = super::shm_guard::damage_count();
        if damage != self.damage_seen {
            self.damage_seen = damage;
            if self.store.take().is_some() {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    path = %self.config.path.display(),
                    "the hit log's files were damaged under the server (truncated, or the disk \
                     refused a page); DNS keeps answering, the file is reopened"
                );
            }
        }
        if self.store.is_some() {
            return true;
        }
        match Store::open(&self.config.path).and_then(|mut store| {
            if self.config.backend == crate::config::HitlogBackend::Postgres {
                store.track_repeats()?;
            }
            store.follow_zone(&super::time::zone(&self.config))?;
            Ok(store)
        }) {
            Ok(store) => {
                if self.last_error_logged.is_some() {
                    tracing::info!(path = %self.config.path.display(), "hit log writable again");
                }
                self.store = Some(store);
                self.retry_at = None;
                self.last_error_logged = None;
                true
            }
            Err(err) => {
                self.failed("cannot open the hit log", &err);
                false
            }
        }
    }

    /// Counts a failure, schedules a retry, and logs it (at most every ten seconds).
    fn failed(&mut self, what: &str, err: &rusqlite::Error) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.retry_at = Some(Instant::now() + RETRY_AFTER);
        if self
            .last_error_logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            self.last_error_logged = Some(Instant::now());
            tracing::error!(
                path = %self.config.path.display(),
                error = %err,
                pending = self.inserts.len(),
                "{what}; DNS keeps answering, hits are held in memory and retried"
            );
        }
    }

    fn accept(&mut self, event: &HitEvent) {
        let at = event.at_ms;
        // JSON lines carry every hit whole, so the shortcut serves only when they are off.
        let quick = self
            .json
            .is_none()
            .then(|| HitRecord::quick_repeat_key(event, event.client_address));
        if let Some(quick) = quick
            && let Some(&(_, key)) = self.quick.get(&quick)
            && self.fold(key, at)
        {
            return;
        }
        let Some(record) = HitRecord::from_event(event, event.client_address) else {
            self.stats.count_lost(1, at);
            return;
        };
        if let Some(zone) = &self.json {
            jsonlog::emit(&super::export::record_json(&record, zone, None));
        }
        let key = record.repeat_key();
        if let Some(quick) = quick {
            self.quick.insert(quick, (at, key));
            self.quick_order.push_back((at, quick));
        }
        if self.fold(key, at) {
            return;
        }
        if self.inserts.len() >= MAX_PENDING {
            self.stats.count_lost(1, at);
            return;
        }
        if self.stats.spool_full.load(Ordering::Relaxed) {
            // PostgreSQL has been away long enough to fill `spool_max_mb`: repeats still fold
            // into stored records above, new records wait for room.
            self.stats.spool_dropped.fetch_add(1, Ordering::Relaxed);
            self.stats.count_lost(1, at);
            return;
        }
        self.remembered
            .insert(key, (at, Row::Pending(self.inserts.len())));
        self.order.push_back((at, key));
        self.inserts.push((record, key));
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Folds a hit at `at` into the remembered record `key` if that record's window is still
    /// open; false when it is not (the hit then starts a new record).
    fn fold(&mut self, key: u64, at: i64) -> bool {
        let Some(&(first, row)) = self.remembered.get(&key) else {
            return false;
        };
        if at - first >= self.window_ms {
            return false;
        }
        self.stats.repeats.fetch_add(1, Ordering::Relaxed);
        match row {
            Row::Pending(i) => {
                let pending = &mut self.inserts[i].0;
                pending.count += 1;
                pending.last_seen_ms = pending.last_seen_ms.max(at);
            }
            Row::Stored(id) => {
                let repeat = self.repeats.entry(id).or_insert(Repeat {
                    id,
                    count: 0,
                    last_seen_ms: at,
                });
                repeat.count += 1;
                repeat.last_seen_ms = repeat.last_seen_ms.max(at);
                self.oldest_repeat.get_or_insert_with(Instant::now);
            }
        }
        true
    }

    /// Writes waiting audit entries; on failure keeps them for a retry.
    fn write_audit(&mut self) {
        if self.audits.is_empty() || !self.open() {
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        match store.write_audit(&self.audits) {
            Ok(()) => self.audits.clear(),
            Err(err) => self.failed("cannot write the audit log", &err),
        }
    }

    /// Commits the batch; on failure keeps it for a retry.
    fn write(&mut self) {
        self.write_audit();
        if self.inserts.is_empty() && self.repeats.is_empty() {
            self.oldest = None;
            self.oldest_repeat = None;
            return;
        }
        if !self.open() {
            return;
        }
        let hits = self.unwritten_hits();
        let Some(store) = self.store.as_mut() else {
            return;
        };
        let repeats: Vec<Repeat> = self.repeats.values().copied().collect();
        match store.write(self.inserts.iter_mut().map(|(r, _)| r), &repeats) {
            Ok(()) => {
                for (i, (record, key)) in self.inserts.iter().enumerate() {
                    if let Some(slot) = self.remembered.get_mut(key)
                        && slot.1 == Row::Pending(i)
                    {
                        slot.1 = Row::Stored(record.id);
                    }
                }
                let written = self.inserts.len() as u64;
                self.stats.records.fetch_add(written, Ordering::Relaxed);
                if self.json.is_some() {
                    jsonlog::flush();
                }
                self.stats.stored.fetch_add(hits, Ordering::Relaxed);
                self.inserts.clear();
                self.repeats.clear();
                self.oldest = None;
                self.oldest_repeat = None;
                self.retry_at = None;
                if self.last_error_logged.take().is_some() {
                    tracing::info!(path = %self.config.path.display(), "hit log writable again");
                }
                self.forget_old();
            }
            Err(err) => {
                self.failed("cannot write the hit log", &err);
                // A broken connection (file deleted, disk replaced) is reopened on retry.
                if !matches!(err, rusqlite::Error::SqliteFailure(ref e, _)
                    if e.code == rusqlite::ErrorCode::DiskFull)
                {
                    self.store = None;
                }
            }
        }
    }

    /// Forgets records whose repeat window has passed (and the oldest beyond the bound).
    fn forget_old(&mut self) {
        let horizon = now_ms() - self.window_ms;
        while let Some(&(first, key)) = self.order.front() {
            if first >= horizon && self.order.len() <= MAX_REMEMBERED {
                break;
            }
            self.order.pop_front();
            if self.remembered.get(&key).is_some_and(|&(f, _)| f == first) {
                self.remembered.remove(&key);
            }
        }
        while let Some(&(learnt, quick)) = self.quick_order.front() {
            if learnt >= horizon && self.quick_order.len() <= MAX_REMEMBERED {
                break;
            }
            self.quick_order.pop_front();
            if self.quick.get(&quick).is_some_and(|&(l, _)| l == learnt) {
                self.quick.remove(&quick);
            }
        }
    }

    fn expire(&mut self) {
        if !self.open() {
            self.next_expire = Instant::now() + RETRY_AFTER;
            return;
        }
        let Some(store) = self.store.as_mut() else {
            return;
        };
        store.keep_newest = self.config.backend == crate::config::HitlogBackend::Postgres;
        match store.expire(
            now_ms(),
            self.config.retention_days,
            &self.retention,
            EXPIRE_BUDGET,
        ) {
            Ok((deleted, more)) => {
                if deleted > 0 {
                    tracing::info!(deleted, "expired hit records deleted");
                }
                // A rollup being rebuilt takes a slice of old records per pass.
                let more = match store.backfill_rollup(ROLLUP_BUDGET) {
                    Ok(rebuilding) => more || rebuilding,
                    Err(err) => {
                        tracing::warn!(error = %err, "rebuilding the daily rollup failed; retried next pass");
                        more
                    }
                };
                if let Err(err) = store.expire_audit(now_ms(), self.config.audit_retention_days) {
                    tracing::warn!(error = %err, "expiring old audit entries failed; retried next pass");
                }
                self.stats
                    .expired
                    .fetch_add(deleted as u64, Ordering::Relaxed);
                // More to delete: come back soon, after the next batch has had its turn.
                self.next_expire = Instant::now()
                    + if more {
                        Duration::from_millis(100)
                    } else {
                        EXPIRE_EVERY
                    };
            }
            Err(err) => {
                self.failed("cannot delete expired hit records", &err);
                self.next_expire = Instant::now() + RETRY_AFTER;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hitlog::tests::{event, event_from, policy};

    /// Repeats fold by the quick key without explaining the event again, across masked
    /// clients of one network, and still into the same record after a reload changes the
    /// policy version (the quick key differs, the record's key does not).
    #[test]
    fn repeats_fold_by_quick_key_and_across_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let config = HitlogConfig {
            path: dir.path().join("hits.sqlite"),
            ..HitlogConfig::default()
        };
        let stats = Arc::new(HitStats::default());
        let mut writer = Writer::new(config.clone(), Arc::clone(&stats));
        writer.store = Some(Store::open(&config.path).unwrap());
        let before = policy();
        let text = "[profiles.p]\n[[schools]]\nid = \"a\"\nname = \"A\"\n\
                    networks = [\"10.0.0.0/8\"]\nprofile = \"p\"\n# reloaded\n";
        let loaded =
            crate::config::LoadedConfig::parse(std::path::Path::new("c.toml"), text.into())
                .unwrap();
        let after = Arc::new(crate::policy::compile(&loaded).unwrap());
        assert_ne!(before.version(), after.version());
        let masked = |policy, client, name| HitEvent {
            client_address: crate::config::ClientAddress::Masked,
            ..event_from(policy, client, name)
        };
        writer.accept(&masked(&before, "10.0.0.1", "x.example"));
        writer.accept(&masked(&before, "10.0.0.2", "x.example"));
        writer.accept(&masked(&after, "10.0.0.1", "x.example"));
        writer.accept(&masked(&before, "10.0.0.1", "y.example"));
        writer.accept(&masked(&before, "10.0.1.1", "x.example"));
        let counts: Vec<(&str, i64)> = writer
            .inserts
            .iter()
            .map(|(r, _)| (r.qname.as_str(), r.count))
            .collect();
        assert_eq!(
            counts,
            [("x.example", 3), ("y.example", 1), ("x.example", 1)]
        );
        assert_eq!(
            writer.quick.len(),
            4,
            "one quick key per policy × client net × name"
        );
        assert_eq!(stats.repeats.load(Ordering::Relaxed), 2);
        writer.write();
        // Once stored, a repeat becomes an update of the stored row.
        writer.accept(&masked(&after, "10.0.0.9", "x.example"));
        assert!(writer.inserts.is_empty());
        writer.write();
        let rows: Vec<(String, i64)> = rusqlite::Connection::open(&config.path)
            .unwrap()
            .prepare("SELECT qname || ' ' || client, count FROM hits ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            rows,
            [
                ("x.example 10.0.0.0/24".to_string(), 4),
                ("y.example 10.0.0.0/24".to_string(), 1),
                ("x.example 10.0.1.0/24".to_string(), 1),
            ]
        );
    }

    /// A full disk (SQLITE_FULL) keeps the batch, counts the error, and the batch is written
    /// once there is room again.
    #[test]
    fn a_full_disk_keeps_hits_until_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let config = HitlogConfig {
            path: dir.path().join("hits.sqlite"),
            ..HitlogConfig::default()
        };
        let stats = Arc::new(HitStats::default());
        let mut writer = Writer::new(config.clone(), Arc::clone(&stats));
        let store = Store::open(&config.path).unwrap();
        let pages: i64 = rusqlite::Connection::open(&config.path)
            .unwrap()
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        store.limit_pages(pages + 2);
        writer.store = Some(store);
        let policy = policy();
        for i in 0..2000 {
            writer.accept(&event(&policy, i));
        }
        writer.write();
        assert_eq!(stats.write_errors.load(Ordering::Relaxed), 1);
        assert_eq!(writer.inserts.len(), 2000, "the batch is kept");
        assert_eq!(stats.records.load(Ordering::Relaxed), 0);
        writer.store.as_ref().unwrap().limit_pages(1 << 30);
        writer.write();
        assert_eq!(stats.records.load(Ordering::Relaxed), 2000);
        assert!(writer.inserts.is_empty());
        // The failed batch's school, category and context rows were rolled back with it; the
        // retry must have written them again, not pointed at the lost ids.
        let (stored, named): (i64, i64) = rusqlite::Connection::open(&config.path)
            .unwrap()
            .query_row(
                "SELECT count(*), count(category) + count(policy_version) FROM hits",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((stored, named), (2000, 4000));
    }
}
