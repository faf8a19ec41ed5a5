//! Connection slots for every stream listener (TCP, DoT, DoH, admin): how many connections may
//! be open, how many from one address, which one gives way when all are taken, and the write
//! deadline every stream gets.
//!
//! Outside testing held every TCP slot with 1,100 silent connections from one refused network,
//! and kept DoH and DoT slots with clients that stopped reading or never finished a request. So:
//! - one address (an IPv6 client: its /64) may hold at most `per_address` slots of a listener
//!   kind; a newcomer beyond that is closed at once;
//! - when every slot is taken, the connection longest without progress (a completed answer,
//!   not merely bytes) is told to close, and the newcomer gets its slot;
//! - a connection's idle time counts from its last progress, so a client that drips bytes or
//!   leaves a request unfinished is closed like a silent one;
//! - every write has a deadline ([`DeadlineIo`], or `tokio::time::timeout` around a write), so
//!   a client that stops reading cannot park a task and its buffers forever.
//!
//! The table is behind a mutex taken on accept and close only; the query path touches just the
//! connection's own atomic progress stamp.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The slots of one listener kind.
pub struct Slots {
    name: &'static str,
    max: usize,
    per_address: usize,
    started: Instant,
    table: Mutex<Table>,
    /// Connections refused because their address held too many.
    pub refused_per_address: AtomicU64,
    /// Connections closed to make room for a newcomer.
    pub evicted: AtomicU64,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Arc<Connection>>,
    per_address: HashMap<AddressKey, usize>,
}

/// An address as the per-address cap counts it: IPv4 whole, IPv6 by its /64 (one host
/// usually has a whole /64 to pick addresses from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct AddressKey(u128);

impl AddressKey {
    fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(u128::from(u32::from(v4))),
                None => AddressKey(u128::from(v6) >> 64 | 1 << 127),
            },
        }
    }
}

/// One open connection's shared state: its progress stamp and its eviction signal.
pub struct Connection {
    key: AddressKey,
    /// Milliseconds since the slots' start at the last progress.
    last_progress: AtomicU64,
    evicted: AtomicBool,
    wake: Notify,
}

/// A held slot; released when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    connection: Arc<Connection>,
}

impl Slots {
    /// Slots for a listener kind (`name` for logs and metrics).
    pub fn new(name: &'static str, max: usize, per_address: usize) -> Arc<Slots> {
        Arc::new(Slots {
            name,
            max: max.max(1),
            per_address: per_address.max(1),
            started: Instant::now(),
            table: Mutex::new(Table::default()),
            refused_per_address: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    /// The listener kind's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `ip`, or `None` when that address holds its share
    /// already. When every slot is taken, the connection longest without progress is told to
    /// close and gives its slot to this one.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let key = AddressKey::of(ip);
        let mut table = self.lock();
        if table.per_address.get(&key).copied().unwrap_or(0) >= self.per_address {
            self.refused_per_address.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if table.open.len() >= self.max {
            let oldest = table
                .open
                .iter()
                .min_by_key(|(id, c)| (c.last_progress.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            if let Some(id) = oldest
                && let Some(victim) = table.open.remove(&id)
            {
                release_address(&mut table, victim.key);
                victim.evicted.store(true, Ordering::Release);
                victim.wake.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        table.next_id += 1;
        let id = table.next_id;
        let connection = Arc::new(Connection {
            key,
            last_progress: AtomicU64::new(self.now_ms()),
            evicted: AtomicBool::new(false),
            wake: Notify::new(),
        });
        table.open.insert(id, Arc::clone(&connection));
        *table.per_address.entry(key).or_insert(0) += 1;
        Some(Slot {
            slots: Arc::clone(self),
            id,
            connection,
        })
    }
}

/// The slot metrics of these listener kinds.
pub fn render_metrics(out: &mut String, all: &[Arc<Slots>]) {
    use crate::metrics::family;
    family(
        out,
        "schooldns_connections_open",
        "gauge",
        "Stream connections open, by listener kind.",
        "listener",
        all.iter().map(|s| (s.name, s.open() as u64)),
    );
    family(
        out,
        "schooldns_connections_refused_per_address_total",
        "counter",
        "Connections closed at once: their address held its share of slots.",
        "listener",
        all.iter()
            .map(|s| (s.name, s.refused_per_address.load(Ordering::Relaxed))),
    );
    family(
        out,
        "schooldns_connections_evicted_total",
        "counter",
        "Connections closed to make room for a newcomer (the one longest without progress).",
        "listener",
        all.iter()
            .map(|s| (s.name, s.evicted.load(Ordering::Relaxed))),
    );
}

fn release_address(table: &mut Table, key: AddressKey) {
    if let Some(count) = table.per_address.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            table.per_address.remove(&key);
        }
    }
}

impl Slot {
    /// Notes useful progress (an answer completed): the idle clock starts again.
    pub fn progress(&self) {
        self.connection
            .last_progress
            .store(self.slots.now_ms(), Ordering::Relaxed);
    }

    /// How long since the last progress.
    pub fn idle_for(&self) -> Duration {
        let last = self.connection.last_progress.load(Ordering::Relaxed);
        Duration::from_millis(self.slots.now_ms().saturating_sub(last))
    }

    /// A handle that notes progress from elsewhere (a response body, another task).
    pub fn progress_handle(&self) -> Progress {
        Progress {
            slots: Arc::clone(&self.slots),
            connection: Arc::clone(&self.connection),
        }
    }

    /// Resolves when this connection must close: made room for a newcomer, or idle
    /// (no progress) for `idle`.
    pub async fn closing(&self, idle: Duration) {
        loop {
            if self.connection.evicted.load(Ordering::Acquire) {
                return;
            }
            let quiet = self.idle_for();
            if quiet >= idle {
                return;
            }
            tokio::select! {
                _ = self.connection.wake.notified() => {}
                _ = tokio::time::sleep(idle - quiet) => {}
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self.slots.lock();
        // An evicted connection was taken out of the table when it was chosen.
        if table.open.remove(&self.id).is_some() {
            release_address(&mut table, self.connection.key);
        }
    }
}

/// Notes progress for a connection from outside its task.
#[derive(Clone)]
pub struct Progress {
    slots: Arc<Slots>,
    connection: Arc<Connection>,
}

impl Progress {
    /// Notes useful progress now.
    pub fn touch(&self) {
        self.connection
            .last_progress
            .store(self.slots.now_ms(), Ordering::Relaxed);
    }
}

/// How long an HTTP connection told to close (idle, evicted, shutdown) may take to finish.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Drives a hyper connection in `slot` until it ends. On shutdown, after `idle` without
/// progress, or when its slot is taken for a newcomer, it is told to close (`graceful`: GOAWAY,
/// or no more keep-alive); a client that ignores that, or holds a stream open, is cut off after
/// [`CLOSE_GRACE`].
pub async fn drive_http<C: Future>(
    mut connection: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    slot: &Slot,
    idle: Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) {
    let mut closing = false;
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = shutdown.wait_for(|&s| s), if !closing => {
                closing = true;
                graceful(connection.as_mut());
            }
            _ = slot.closing(idle), if !closing => {
                closing = true;
                graceful(connection.as_mut());
            }
            _ = tokio::time::sleep(CLOSE_GRACE), if closing => return,
        }
    }
}

/// A stream whose writes must complete within a deadline: a write that stays blocked (the
/// client stopped reading and the socket buffer is full) for longer fails with `TimedOut`,
/// which ends the connection in whatever protocol loop drives it (hyper's included).
pub struct DeadlineIo<S> {
    inner: S,
    limit: Duration,
    blocked_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> DeadlineIo<S> {
    /// Wraps `inner` with a write deadline of `limit`.
    pub fn new(inner: S, limit: Duration) -> DeadlineIo<S> {
        DeadlineIo {
            inner,
            limit,
            blocked_since: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn on_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        match result {
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .blocked_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "client did not take the answer within the write deadline",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.blocked_since = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeadlineIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, data);
        self.on_write(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_a_full_table_evicts_the_least_active() {
        let slots = Slots::new("test", 3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = slots.admit(a).unwrap();
        let _second = slots.admit(a).unwrap();
        assert!(slots.admit(a).is_none(), "a third from one address");
        std::thread::sleep(Duration::from_millis(5));
        _second.progress();
        let _third = slots.admit(b).unwrap();
        // Full: the one longest without progress (`first`) makes room.
        let _fourth = slots.admit(b).unwrap();
        assert!(first.connection.evicted.load(Ordering::Acquire));
        assert_eq!(slots.open(), 3);
        drop(first);
        assert_eq!(slots.open(), 3);
        // `a` holds one slot now, so it may open another.
        assert!(slots.admit(a).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let slots = Slots::new("test", 10, 1);
        let one: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:0:1::2".parse().unwrap();
        let other_64: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        let _held = slots.admit(one).unwrap();
        assert!(slots.admit(same_64).is_none());
        assert!(slots.admit(other_64).is_some());
    }
}
