//! What a refusal says, and how often one source network outside every school gets one.
//!
//! A refusal to an address in no school network is the only answer anyone on the internet can
//! get from schooldns, so it must be useless for reflection: it is never larger than the
//! query (EDE 18 without text, and only when it fits), and each source network (a /24, or a
//! /56 for IPv6) gets at most `[server] refused_per_second` of them over UDP, the one transport
//! where the source can be forged; beyond that, queries are dropped unanswered and counted.
//! Refusals over DoT and DoH go to a device whose token was missing or not recognised, so they
//! say which.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// EDE text for an encrypted query without a device token.
pub const NO_TOKEN_TEXT: &str = "no device token";
/// EDE text for an encrypted query whose token is not (or no longer) in the devices file.
pub const UNKNOWN_TOKEN_TEXT: &str = "device token is unknown or revoked";

/// Buckets of the per-network budget; networks hashing to the same bucket share it, which
/// only ever makes the limit stricter.
const BUCKETS: usize = 4096;

/// Per-source-network refusal budgets, lock-free: each bucket packs (second, count).
pub struct RefusalLimit {
    started: Instant,
    buckets: Box<[AtomicU64]>,
    /// Refusals dropped unanswered since start.
    pub dropped: AtomicU64,
}

impl RefusalLimit {
    /// Empty budgets.
    pub fn new() -> RefusalLimit {
        RefusalLimit::default()
    }
}

impl Default for RefusalLimit {
    fn default() -> RefusalLimit {
        RefusalLimit {
            started: Instant::now(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            dropped: AtomicU64::new(0),
        }
    }
}

impl RefusalLimit {
    /// Whether a refusal to `client` may be sent now within `limit` per second (`[server]
    /// refused_per_second` of the live snapshot; 0: none), and counts it.
    pub fn allow(&self, client: IpAddr, limit: u32) -> bool {
        let second = self.started.elapsed().as_secs() as u32;
        self.allow_at(client, second, limit)
    }

    fn allow_at(&self, client: IpAddr, second: u32, limit: u32) -> bool {
        let bucket = &self.buckets[bucket_of(client)];
        let mut current = bucket.load(Ordering::Relaxed);
        loop {
            let (at, count) = ((current >> 32) as u32, current as u32);
            let count = if at == second { count } else { 0 };
            if count >= limit {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            let next = (u64::from(second) << 32) | u64::from(count + 1);
            match bucket.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

/// The bucket of a client's network: its /24 (IPv4, IPv4-mapped included) or /56 (IPv6).
fn bucket_of(client: IpAddr) -> usize {
    let network: u64 = match client {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u64::from(u32::from(v4) >> 8),
            None => (u128::from(v6) >> 72) as u64 | 1 << 63,
        },
        IpAddr::V4(v4) => u64::from(u32::from(v4) >> 8),
    };
    (xxhash_rust::xxh3::xxh3_64(&network.to_le_bytes()) as usize) % BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_network_gets_its_budget_per_second() {
        let limit = RefusalLimit::new();
        let a: IpAddr = "198.51.100.7".parse().unwrap();
        let same_net: IpAddr = "198.51.100.200".parse().unwrap();
        let other: IpAddr = "203.0.113.9".parse().unwrap();
        assert!((0..3).all(|_| limit.allow_at(a, 5, 3)));
        assert!(!limit.allow_at(same_net, 5, 3));
        assert!(limit.allow_at(other, 5, 3));
        assert!(limit.allow_at(a, 6, 3));
        assert_eq!(limit.dropped.load(Ordering::Relaxed), 1);
        let v6: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6_same: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert!((0..3).all(|_| limit.allow_at(v6, 9, 3)));
        assert!(!limit.allow_at(v6_same, 9, 3));
    }
}
