//! "Check that it works": which devices asked, over their own token, for the check name
//! `check.<[tls] hostname>` and when. The setup page sends a parent to
//! `https://check.<hostname>/check/<token>` on the child's device: the browser resolves that
//! name first, so if the device's DNS goes through schooldns with its token, the query arrives
//! here a moment before the page is asked for, and the page can say so. A device whose DNS goes
//! elsewhere resolves the name elsewhere (the district's wildcard for `*.<hostname>`), reaches
//! the same page, and is told that its filter is not on.
//!
//! The query path records with `try_lock` only, and only for the check name: it never waits.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most devices remembered at once (older ones are forgotten first).
const MAX_REMEMBERED: usize = 10_000;

/// When each device last asked for the check name.
#[derive(Debug, Default)]
pub struct DeviceChecks {
    seen: Mutex<HashMap<Box<str>, Instant>>,
}

impl DeviceChecks {
    /// The device with `token` just asked for the check name (skipped if the table is busy).
    pub fn record(&self, token: &str) {
        let Ok(mut seen) = self.seen.try_lock() else {
            return;
        };
        if seen.len() >= MAX_REMEMBERED && !seen.contains_key(token) {
            let oldest = seen
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, _)| t.clone());
            if let Some(oldest) = oldest {
                seen.remove(&oldest);
            }
        }
        seen.insert(token.into(), Instant::now());
    }

    /// How long ago the device with `token` asked, if it did within `within`.
    pub fn seen(&self, token: &str, within: Duration) -> Option<Duration> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(token)
            .map(Instant::elapsed)
            .filter(|ago| *ago <= within)
    }
}
