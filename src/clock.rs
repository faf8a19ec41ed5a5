//! Wall-clock time for everything that depends on the date: schedules and the calendar, hit
//! records, exception expiry.
//!
//! [`now_ms`] reads the system clock. Tests start the real server at a chosen moment (a school
//! day at 07:59:57, a holiday) by setting `SCHOOLDNS_CLOCK_OFFSET_MS`: milliseconds added to
//! every reading, so time still flows at its real pace from there. `serve` warns when it is set.
//!
//! [`coarse_ms`] is for the query path, which must not read the clock per query: the schedule
//! timer (`crate::schedule_timer`) stores the time here several times a second, and a query
//! reads one atomic.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

/// The environment variable that shifts the clock (tests only).
pub const OFFSET_VARIABLE: &str = "SCHOOLDNS_CLOCK_OFFSET_MS";

static OFFSET_MS: OnceLock<i64> = OnceLock::new();
static COARSE_MS: AtomicI64 = AtomicI64::new(0);

/// The offset set by [`OFFSET_VARIABLE`], 0 when unset or unreadable.
pub fn offset_ms() -> i64 {
    *OFFSET_MS.get_or_init(|| {
        std::env::var(OFFSET_VARIABLE)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// Milliseconds since the Unix epoch (UTC), shifted by the test offset if one is set.
pub fn now_ms() -> i64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    real + offset_ms()
}

/// The time as last stored by [`tick`] (at most a few hundred milliseconds old while the
/// schedule timer runs); the real time when nothing ticks (the CLI, unit tests).
#[inline]
pub fn coarse_ms() -> i64 {
    match COARSE_MS.load(Ordering::Relaxed) {
        0 => now_ms(),
        ms => ms,
    }
}

/// Stores the time for [`coarse_ms`].
pub fn tick() -> i64 {
    let now = now_ms();
    COARSE_MS.store(now, Ordering::Relaxed);
    now
}
