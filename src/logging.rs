//! The operator's log: which lines reach standard error, and the rate limit on lines a remote
//! party can trigger.
//!
//! A packet from anywhere can make a library log (hickory-proto warns about a malformed EDNS
//! option, rustls about a bad handshake, h2 and hyper about a broken connection). One line per
//! packet let any address fill the disk (136 MB in 12 s in outside testing), so every call
//! site in those crates, and in our own `schooldns::remote` targets, may write at most
//! [`BURST`] lines per [`WINDOW`]; the rest are counted in
//! `schooldns_log_lines_suppressed_total` and summed up in the next line that gets through.
//! Our own operator lines (reloads, list reports) are not limited: the operator causes them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::Metadata;
use tracing::callsite::Identifier;

/// Lines one call site may write per window.
pub const BURST: u32 = 5;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The target our own remote-triggered lines use (and its children, `schooldns::remote::…`).
pub const REMOTE_TARGET: &str = "schooldns::remote";

/// Lines dropped by the rate limit since start.
static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Lines dropped by the rate limit since start.
pub fn suppressed() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// Whether a line from this target may be triggered by a remote party.
pub fn is_remote_triggered(target: &str) -> bool {
    if let Some(rest) = target.strip_prefix(REMOTE_TARGET) {
        return rest.is_empty() || rest.starts_with("::");
    }
    // Our own lines are the operator's; every library's may come from a packet.
    !(target == "schooldns" || target.starts_with("schooldns::"))
}

/// Per-call-site windows for remote-triggered lines.
#[derive(Default)]
pub struct RemoteLimit {
    windows: Mutex<HashMap<Identifier, Window>>,
}

struct Window {
    started: Instant,
    written: u32,
}

impl RemoteLimit {
    /// Whether this event may be written now (counted against its call site's window).
    pub fn allow(&self, meta: &Metadata<'_>) -> bool {
        if !meta.is_event() || !is_remote_triggered(meta.target()) {
            return true;
        }
        self.allow_at(meta.callsite(), Instant::now())
    }

    fn allow_at(&self, site: Identifier, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let window = windows.entry(site).or_insert(Window {
            started: now,
            written: 0,
        });
        if now.duration_since(window.started) >= WINDOW {
            window.started = now;
            window.written = 0;
        }
        if window.written < BURST {
            window.written += 1;
            true
        } else {
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Installs the process's log: the operator's lines on standard error at `level` (or
/// `RUST_LOG`), remote-triggered ones rate-limited, and hit events only to the hit JSON sink.
pub fn init(level: &str) {
    use std::sync::Arc;
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    use crate::hitlog::jsonlog;

    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level))
        // Hit events go to the hit JSON sink only, never into the operator's log.
        .add_directive(
            format!("{}=off", jsonlog::TARGET)
                .parse()
                .expect("valid directive"),
        );
    // Only lines the level lets through count against (and are cut by) the rate limit.
    let limit = Arc::new(RemoteLimit::default());
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(filter.and(filter_fn(move |meta| limit.allow(meta))));
    let hits = jsonlog::layer().with_filter(filter_fn(|m| m.target() == jsonlog::TARGET));
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(hits)
        .try_init();
}

/// The metric lines for `/metrics`.
pub fn render_metrics(out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "# HELP schooldns_log_lines_suppressed_total Remote-triggered log lines dropped by the \
         rate limit ({BURST} per call site per {} s).\n\
         # TYPE schooldns_log_lines_suppressed_total counter\n\
         schooldns_log_lines_suppressed_total {}\n",
        WINDOW.as_secs(),
        suppressed()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_and_remote_targets_are_limited_operator_lines_are_not() {
        assert!(is_remote_triggered("hickory_proto::op::edns"));
        assert!(is_remote_triggered("rustls::server"));
        assert!(is_remote_triggered("schooldns::remote"));
        assert!(is_remote_triggered("schooldns::remote::dns"));
        assert!(!is_remote_triggered("schooldns::reload"));
        assert!(!is_remote_triggered("schooldns"));
        assert!(!is_remote_triggered("schooldns::remoteness"));
    }

    #[test]
    fn a_call_site_writes_a_burst_per_window() {
        struct Site;
        impl tracing::callsite::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unimplemented!("not needed for identity")
            }
        }
        static SITE: Site = Site;
        let limit = RemoteLimit::default();
        let start = Instant::now();
        let before = suppressed();
        let written = (0..100)
            .filter(|_| limit.allow_at(Identifier(&SITE), start))
            .count();
        assert_eq!(written, BURST as usize);
        assert!(suppressed() >= before + 95);
        assert!(limit.allow_at(Identifier(&SITE), start + WINDOW));
    }
}
