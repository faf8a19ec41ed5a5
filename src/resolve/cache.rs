//! The answer cache: positive and negative answers (RFC 2308) kept as encoded [`Sections`], one
//! lookup per query (fresh with its age, stale, or miss), a bound on the number of entries, and
//! serve-stale (RFC 8767).
//!
//! Sixteen shards, each a std mutex around a map and an insertion-order queue: a lookup holds one
//! shard for a hash probe and a clone, never across an await, so queries on other shards never
//! wait and queries on the same shard wait for nanoseconds.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::query::answer::Sections;

/// Longest time anything is cached, whatever the upstream says (one day).
pub const MAX_TTL: u32 = 86_400;
const SHARDS: usize = 16;

/// A question: the lower-cased name in wire form followed by the type, so that a question is
/// looked up straight from the packet's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Vec<u8>);

impl CacheKey {
    /// The key of a question.
    pub fn new(name: &Name, qtype: RecordType) -> CacheKey {
        use hickory_proto::serialize::binary::BinEncodable;
        let mut key = name.to_lowercase().to_bytes().unwrap_or_default();
        key.extend_from_slice(&u16::from(qtype).to_be_bytes());
        CacheKey(key)
    }

    /// A key from its bytes (lower-case wire name, then the type), as a query's parse made them.
    pub fn from_bytes(bytes: &[u8]) -> CacheKey {
        CacheKey(bytes.to_vec())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The question back: its name and type.
    pub fn question(&self) -> Option<(Name, RecordType)> {
        let (name, qtype) = self.0.split_at(self.0.len().checked_sub(2)?);
        let name = crate::query::answer::name_from_wire(name)?;
        Some((
            name,
            RecordType::from(u16::from_be_bytes([qtype[0], qtype[1]])),
        ))
    }
}

impl std::borrow::Borrow<[u8]> for CacheKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

struct Entry {
    sections: Arc<Sections>,
    stored: Instant,
    ttl: u32,
}

#[derive(Default)]
struct Shard {
    map: HashMap<CacheKey, Entry>,
    order: VecDeque<CacheKey>,
}

/// What a lookup found.
pub enum Lookup {
    /// An unexpired answer, and its age in seconds (what every TTL is counted down by).
    Fresh(Arc<Sections>, u32),
    /// An expired answer still within `stale_max`, served only when every upstream fails.
    Stale(Arc<Sections>),
    /// Nothing usable.
    Miss,
}

/// The cache. Its limits (`[cache] max_entries`, `stale_max`) come with each call, from the
/// live snapshot, so a reload changes them for the very next query: a smaller bound evicts as
/// entries are next inserted.
pub struct Cache {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Default for Cache {
    fn default() -> Cache {
        Cache::new()
    }
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// The one lookup of a query: fresh, stale or miss, by the key bytes (lower-case wire name
    /// + type) taken from the packet; counted as one hit or one miss.
    pub fn lookup(&self, key: &[u8], stale_max: Duration) -> Lookup {
        let found = self.peek(key, stale_max);
        let counter = match found {
            Lookup::Fresh(..) => &self.hits,
            _ => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A lookup that counts nothing: the resolver's second look after an upstream failed, or
    /// after it became the one asking.
    pub fn peek(&self, key: &[u8], stale_max: Duration) -> Lookup {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = shard.map.get(key) else {
            return Lookup::Miss;
        };
        let age = entry.stored.elapsed();
        let age_secs = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        if age_secs < entry.ttl {
            return Lookup::Fresh(Arc::clone(&entry.sections), age_secs);
        }
        if age < Duration::from_secs(u64::from(entry.ttl)) + stale_max {
            Lookup::Stale(Arc::clone(&entry.sections))
        } else {
            Lookup::Miss
        }
    }

    /// Stores an upstream answer for `ttl` seconds (see [`cache_ttl`]), keeping at most
    /// `max_entries` (oldest out first).
    pub fn insert(&self, key: CacheKey, sections: Arc<Sections>, ttl: u32, max_entries: usize) {
        let max_per_shard = max_entries.div_ceil(SHARDS).max(1);
        let mut shard = self.shard(&key.0).lock().unwrap_or_else(|e| e.into_inner());
        let entry = Entry {
            sections,
            stored: Instant::now(),
            ttl,
        };
        if shard.map.insert(key.clone(), entry).is_none() {
            shard.order.push_back(key);
        }
        while shard.map.len() > max_per_shard {
            match shard.order.pop_front() {
                Some(oldest) => {
                    shard.map.remove(&oldest);
                }
                None => break,
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) so far.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// How long an answer may be cached: the smallest answer TTL for positive answers; for negative
/// ones (NXDOMAIN, NODATA) the SOA's TTL capped by its MINIMUM (RFC 2308 §5), and not at all
/// without an SOA. Errors (SERVFAIL, REFUSED) are never cached.
pub fn cache_ttl(rcode: ResponseCode, answers: &[Record], authority: &[Record]) -> Option<u32> {
    let soa_ttl = || {
        authority.iter().find_map(|r| match r.data() {
            RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
            _ => None,
        })
    };
    let ttl = match rcode {
        ResponseCode::NoError if !answers.is_empty() => answers.iter().map(Record::ttl).min(),
        ResponseCode::NoError | ResponseCode::NXDomain => soa_ttl(),
        _ => None,
    }?;
    (ttl > 0).then_some(ttl.min(MAX_TTL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use std::str::FromStr;

    fn a(name: &str, ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_str(name).unwrap(),
            ttl,
            RData::A(A::new(192, 0, 2, 1)),
        )
    }

    fn sections(name: &str, answers: &[Record]) -> Arc<Sections> {
        let name = Name::from_str(name).unwrap();
        Arc::new(
            Sections::encode(
                &name,
                RecordType::A,
                ResponseCode::NoError,
                answers,
                &[],
                300,
                None,
            )
            .unwrap(),
        )
    }

    #[test]
    fn ttls_follow_rfc_2308() {
        let soa = Record::from_rdata(
            Name::from_str("example.").unwrap(),
            600,
            RData::SOA(SOA::new(Name::root(), Name::root(), 1, 2, 3, 4, 60)),
        );
        let soa = std::slice::from_ref(&soa);
        assert_eq!(
            cache_ttl(
                ResponseCode::NoError,
                &[a("x.example.", 300), a("x.example.", 100)],
                &[]
            ),
            Some(100)
        );
        assert_eq!(cache_ttl(ResponseCode::NXDomain, &[], soa), Some(60));
        assert_eq!(cache_ttl(ResponseCode::NoError, &[], soa), Some(60));
        assert_eq!(cache_ttl(ResponseCode::NXDomain, &[], &[]), None);
        assert_eq!(cache_ttl(ResponseCode::ServFail, &[], &[]), None);
    }

    #[test]
    fn entries_are_bounded_and_oldest_go_first() {
        let cache = Cache::new();
        let keys: Vec<CacheKey> = (0..200)
            .map(|i| {
                CacheKey::new(
                    &Name::from_str(&format!("n{i}.example.")).unwrap(),
                    RecordType::A,
                )
            })
            .collect();
        for k in &keys {
            cache.insert(
                k.clone(),
                sections("n.example.", &[a("n.example.", 300)]),
                300,
                SHARDS,
            );
        }
        assert!(cache.len() <= SHARDS);
        assert!(matches!(
            cache.lookup(&keys[199].0, Duration::ZERO),
            Lookup::Fresh(..)
        ));
    }

    #[test]
    fn one_lookup_counts_once() {
        let cache = Cache::new();
        let stale_max = Duration::from_secs(60);
        let key = CacheKey::new(&Name::from_str("x.example.").unwrap(), RecordType::A);
        assert!(matches!(cache.lookup(&key.0, stale_max), Lookup::Miss));
        assert!(matches!(cache.peek(&key.0, stale_max), Lookup::Miss));
        assert_eq!(cache.counters(), (0, 1));
        cache.insert(
            key.clone(),
            sections("x.example.", &[a("x.example.", 300)]),
            300,
            100,
        );
        assert!(matches!(
            cache.lookup(&key.0, stale_max),
            Lookup::Fresh(_, 0)
        ));
        assert_eq!(cache.counters(), (1, 1));
    }

    #[test]
    fn names_are_keyed_case_insensitively() {
        let cache = Cache::new();
        let upper = CacheKey::new(&Name::from_str("WWW.Example.COM.").unwrap(), RecordType::A);
        let lower = CacheKey::new(&Name::from_str("www.example.com.").unwrap(), RecordType::A);
        cache.insert(
            upper,
            sections("www.example.com.", &[a("www.example.com.", 300)]),
            300,
            100,
        );
        assert!(matches!(
            cache.lookup(&lower.0, Duration::ZERO),
            Lookup::Fresh(..)
        ));
        assert_eq!(
            lower.question().unwrap(),
            (Name::from_str("www.example.com.").unwrap(), RecordType::A)
        );
    }
}
