//! Counters for `/metrics` (Prometheus text format): queries by protocol, decision and rcode,
//! blocks by category and profile. Cache, upstream and reload figures are kept by their owners
//! and gathered when `/metrics` is read.
//!
//! The query path only increments atomics, except for a block, which also bumps a per
//! (category, profile) counter under a std mutex held for one map update; nothing awaits while
//! holding it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;

use crate::query::Protocol;

/// The decision a query ended with, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from cache or upstream.
    Allow,
    /// Blocked by the policy (including CNAME inspection and bypass protection).
    Block,
    /// Safe-search rewrite.
    Rewrite,
    /// Client network unknown.
    Refuse,
    /// Malformed, unsupported, or upstream failure.
    Error,
}

const OUTCOMES: [(Outcome, &str); 5] = [
    (Outcome::Allow, "allow"),
    (Outcome::Block, "block"),
    (Outcome::Rewrite, "rewrite"),
    (Outcome::Refuse, "refuse"),
    (Outcome::Error, "error"),
];
const RCODES: [&str; 7] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER",
];
const PROTOCOLS: [&str; 4] = ["udp", "tcp", "dot", "doh"];

fn rcode_index(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::FormErr => 1,
        ResponseCode::ServFail => 2,
        ResponseCode::NXDomain => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::Refused => 5,
        _ => 6,
    }
}

/// The query counters.
pub struct Metrics {
    /// [protocol][outcome][rcode]
    queries: [[[AtomicU64; 7]; 5]; 4],
    /// category → profile → count; nested so a repeat block is counted without allocating.
    blocks: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            queries: std::array::from_fn(|_| {
                std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0)))
            }),
            blocks: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Metrics {
    /// Counts one answered query.
    pub fn record(&self, protocol: Protocol, outcome: Outcome, rcode: ResponseCode) {
        let p = match protocol {
            Protocol::Udp => 0,
            Protocol::Tcp => 1,
            Protocol::Dot => 2,
            Protocol::Doh => 3,
        };
        let o = OUTCOMES
            .iter()
            .position(|(x, _)| *x == outcome)
            .unwrap_or(4);
        self.queries[p][o][rcode_index(rcode)].fetch_add(1, Ordering::Relaxed);
    }

    /// Every query answered so far.
    pub fn total_queries(&self) -> u64 {
        self.queries
            .iter()
            .flatten()
            .flatten()
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// Counts one block.
    pub fn record_block(&self, category: &str, profile: &str) {
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = blocks.get_mut(category).and_then(|p| p.get_mut(profile)) {
            *n += 1;
            return;
        }
        *blocks
            .entry(category.to_string())
            .or_default()
            .entry(profile.to_string())
            .or_default() += 1;
    }

    /// Appends the query and block families in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP schooldns_queries_total Queries answered, by protocol, decision and rcode.\n",
        );
        out.push_str("# TYPE schooldns_queries_total counter\n");
        for (p, protocol) in PROTOCOLS.iter().enumerate() {
            for (o, (_, outcome)) in OUTCOMES.iter().enumerate() {
                for (r, rcode) in RCODES.iter().enumerate() {
                    let n = self.queries[p][o][r].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "schooldns_queries_total{{protocol=\"{protocol}\",decision=\"{outcome}\",rcode=\"{rcode}\"}} {n}"
                        );
                    }
                }
            }
        }
        out.push_str("# HELP schooldns_blocks_total Blocked queries, by category and profile.\n");
        out.push_str("# TYPE schooldns_blocks_total counter\n");
        let blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        for (category, profiles) in blocks.iter() {
            for (profile, n) in profiles {
                let _ = writeln!(
                    out,
                    "schooldns_blocks_total{{category=\"{}\",profile=\"{}\"}} {n}",
                    escape(category),
                    escape(profile)
                );
            }
        }
    }
}

/// Appends one metric family with a single label: its HELP and TYPE lines, then one line per
/// `(label value, value)` row.
pub fn family<L: std::fmt::Display, V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    label: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) {
    use std::fmt::Write;
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (label_value, value) in rows {
        let _ = writeln!(out, "{name}{{{label}=\"{label_value}\"}} {value}");
    }
}

/// Escapes a Prometheus label value.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
