//! The schedule timer: the thread beside the query path that keeps every place's rules in
//! time current, so queries never read the clock or a calendar.
//!
//! It sleeps until the next edge of any schedule or calendar day (never longer than
//! [`TICK`]), then has the live policy recompute which compiled variant applies to each place
//! ([`crate::policy::Policy::refresh_time`]): a switch lands within milliseconds of its edge.
//! A policy swapped in by a reload is refreshed at the next tick. Each tick also stores the
//! time for [`crate::clock::coarse_ms`], which answers use to end their TTL at an edge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::live::Live;

/// The longest sleep: how stale the coarse clock and a freshly reloaded policy's rules in
/// time can be.
pub const TICK: Duration = Duration::from_millis(100);

/// The running timer.
pub struct ScheduleTimer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScheduleTimer {
    /// Starts the thread.
    pub fn spawn(live: Arc<Live>) -> std::io::Result<ScheduleTimer> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("schooldns-schedule".into())
            .spawn(move || run(&live, &stopping))?;
        Ok(ScheduleTimer {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(live: &Live, stop: &AtomicBool) {
    let mut current = live.policy();
    let mut next_edge = current.refresh_time(crate::clock::tick());
    while !stop.load(Ordering::Relaxed) {
        let now = crate::clock::tick();
        let policy = live.policy();
        if !Arc::ptr_eq(&policy, &current) || now >= next_edge {
            let started = std::time::Instant::now();
            next_edge = policy.refresh_time(now);
            tracing::debug!(
                took_us = started.elapsed().as_micros() as u64,
                next_edge_in_ms = next_edge.saturating_sub(now),
                "rules in time refreshed"
            );
            current = policy;
        }
        let until_edge = next_edge.saturating_sub(crate::clock::now_ms()).max(0) as u64;
        std::thread::sleep(TICK.min(Duration::from_millis(until_edge)));
    }
}
