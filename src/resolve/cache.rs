//! The answer cache: positive and negative answers (RFC 2308), TTLs counted down, a bound on the
//! number of entries, and serve-stale (RFC 8767).
//!
//! Sixteen shards, each a std mutex around a map and an insertion-order queue: a lookup holds one
//! shard for a hash probe and a clone, never across an await, so queries on other shards never
//! wait and queries on the same shard wait for nanoseconds.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Answer, AnswerSource};

/// TTL of an answer served stale (RFC 8767 §4 recommends 30 s).
pub const STALE_TTL: u32 = 30;
/// Longest time anything is cached, whatever the upstream says (one day).
pub const MAX_TTL: u32 = 86_400;
const SHARDS: usize = 16;

/// A question: the lower-cased name in wire form followed by the type, so that the UDP fast
/// path can look a question up straight from the packet's bytes.
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
}

impl std::borrow::Borrow<[u8]> for CacheKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// An answer's sections encoded once, as they follow a question of the same name: a response
/// is the client's header and question with these bytes appended and their TTLs counted down.
#[derive(Debug, Clone)]
pub struct WireAnswer {
    /// Response code.
    pub rcode: ResponseCode,
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Answer and authority sections; compression pointers assume the question at offset 12.
    pub sections: Vec<u8>,
    /// Offset in `sections` of every record's TTL, with the TTL as received (capped).
    pub ttls: Vec<(u16, u32)>,
}

struct Entry {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authority: Vec<Record>,
    /// Wire form for the fast path; `None` when the answer has a CNAME (the chain must be
    /// inspected against each client's profile) or could not be encoded.
    wire: Option<std::sync::Arc<WireAnswer>>,
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
    /// An unexpired answer.
    Fresh(Answer),
    /// An expired answer still within `stale_max`.
    Stale(Answer),
    /// Nothing usable.
    Miss,
}

/// The cache.
pub struct Cache {
    shards: Vec<Mutex<Shard>>,
    hasher: std::collections::hash_map::RandomState,
    /// Limits a reload may change (`[cache] max_entries`, `stale_max` in seconds).
    max_per_shard: std::sync::atomic::AtomicUsize,
    stale_max_secs: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Cache {
    /// Follows a reloaded `[cache]`: a smaller bound evicts as entries are next inserted.
    pub fn set_limits(&self, max_entries: usize, stale_max: Duration) {
        self.max_per_shard
            .store(max_entries.div_ceil(SHARDS).max(1), Ordering::Relaxed);
        self.stale_max_secs
            .store(stale_max.as_secs(), Ordering::Relaxed);
    }

    /// A cache of at most `max_entries` answers.
    pub fn new(max_entries: usize, stale_max: Duration) -> Cache {
        Cache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_per_shard: std::sync::atomic::AtomicUsize::new(max_entries.div_ceil(SHARDS).max(1)),
            stale_max_secs: AtomicU64::new(stale_max.as_secs()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// The fast path's lookup: a fresh answer's wire form and its age in seconds, by the key
    /// bytes (lower-case wire name + type) taken from a packet.
    pub fn get_wire(&self, key: &[u8]) -> Option<(std::sync::Arc<WireAnswer>, u32)> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.map.get(key)?;
        let wire = entry.wire.as_ref()?;
        let age = u32::try_from(entry.stored.elapsed().as_secs()).unwrap_or(u32::MAX);
        if age >= entry.ttl {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some((std::sync::Arc::clone(wire), age))
    }

    /// Looks a question up, counting TTLs down.
    pub fn get(&self, key: &CacheKey) -> Lookup {
        let shard = self.shard(&key.0).lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = shard.map.get(key) else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss;
        };
        let age = entry.stored.elapsed();
        let age_secs = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        if age_secs < entry.ttl {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Fresh(entry.answer(age_secs, None, AnswerSource::Cache));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stale_max = Duration::from_secs(self.stale_max_secs.load(Ordering::Relaxed));
        if age < Duration::from_secs(u64::from(entry.ttl)) + stale_max {
            Lookup::Stale(entry.answer(age_secs, Some(STALE_TTL), AnswerSource::Stale))
        } else {
            Lookup::Miss
        }
    }

    /// Stores an upstream answer if it may be cached (NOERROR or NXDOMAIN with a TTL).
    pub fn insert(&self, key: CacheKey, answer: &Answer) {
        let Some(ttl) = cache_ttl(answer) else {
            return;
        };
        let wire = wire_answer(&key, answer, ttl).map(std::sync::Arc::new);
        let mut shard = self.shard(&key.0).lock().unwrap_or_else(|e| e.into_inner());
        let entry = Entry {
            rcode: answer.rcode,
            answers: answer.answers.clone(),
            authority: answer.authority.clone(),
            wire,
            stored: Instant::now(),
            ttl,
        };
        if shard.map.insert(key.clone(), entry).is_none() {
            shard.order.push_back(key);
        }
        while shard.map.len() > self.max_per_shard.load(Ordering::Relaxed) {
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

impl Entry {
    fn answer(&self, age: u32, fixed_ttl: Option<u32>, source: AnswerSource) -> Answer {
        let adjust = |records: &[Record]| {
            records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    let ttl =
                        fixed_ttl.unwrap_or_else(|| r.ttl().min(self.ttl).saturating_sub(age));
                    r.set_ttl(ttl);
                    r
                })
                .collect()
        };
        Answer {
            rcode: self.rcode,
            answers: adjust(&self.answers),
            authority: adjust(&self.authority),
            source,
        }
    }
}

/// Encodes an answer's sections as they follow the question `key`, and finds each TTL
/// (capped at the entry's `ttl`).
fn wire_answer(key: &CacheKey, answer: &Answer, ttl: u32) -> Option<WireAnswer> {
    use hickory_proto::op::{Message, Query};
    if answer
        .answers
        .iter()
        .any(|r| r.record_type() == RecordType::CNAME)
    {
        return None;
    }
    let name_len = key.0.len() - 2;
    let name = {
        use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
        Name::read(&mut BinDecoder::new(&key.0[..name_len])).ok()?
    };
    let qtype = RecordType::from(u16::from_be_bytes([key.0[name_len], key.0[name_len + 1]]));
    let mut message = Message::new();
    message.add_query(Query::query(name, qtype));
    message.add_answers(answer.answers.iter().cloned());
    message.add_name_servers(answer.authority.iter().cloned());
    let bytes = crate::server::response::to_wire(&message)?;
    let start = 12 + name_len + 4;
    let sections = bytes.get(start..)?.to_vec();
    // Walk the records: name (labels or a pointer), type, class, TTL, length, data.
    let count = answer.answers.len() + answer.authority.len();
    let mut ttls = Vec::with_capacity(count);
    let mut at = 0usize;
    for _ in 0..count {
        loop {
            let len = *sections.get(at)? as usize;
            if len == 0 {
                at += 1;
                break;
            }
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + len;
        }
        let ttl_at = at + 4;
        let record_ttl = u32::from_be_bytes(sections.get(ttl_at..ttl_at + 4)?.try_into().ok()?);
        // As the general path does: no record outlives the entry (RFC 2308 caps an SOA's TTL
        // at its MINIMUM for negative answers).
        ttls.push((u16::try_from(ttl_at).ok()?, record_ttl.min(ttl)));
        let rdlen = u16::from_be_bytes(sections.get(ttl_at + 4..ttl_at + 6)?.try_into().ok()?);
        at = ttl_at + 6 + rdlen as usize;
    }
    (at == sections.len()).then_some(WireAnswer {
        rcode: answer.rcode,
        ancount: u16::try_from(answer.answers.len()).ok()?,
        nscount: u16::try_from(answer.authority.len()).ok()?,
        sections,
        ttls,
    })
}

/// How long an answer may be cached: the smallest answer TTL for positive answers; for negative
/// ones (NXDOMAIN, NODATA) the SOA's TTL capped by its MINIMUM (RFC 2308 §5), and not at all
/// without an SOA. Errors (SERVFAIL, REFUSED) are never cached.
fn cache_ttl(answer: &Answer) -> Option<u32> {
    let soa_ttl = || {
        answer.authority.iter().find_map(|r| match r.data() {
            RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
            _ => None,
        })
    };
    let ttl = match answer.rcode {
        ResponseCode::NoError if !answer.answers.is_empty() => {
            answer.answers.iter().map(Record::ttl).min()
        }
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

    fn answer(rcode: ResponseCode, answers: Vec<Record>, authority: Vec<Record>) -> Answer {
        Answer {
            rcode,
            answers,
            authority,
            source: AnswerSource::Upstream,
        }
    }

    #[test]
    fn ttls_follow_rfc_2308() {
        let soa = Record::from_rdata(
            Name::from_str("example.").unwrap(),
            600,
            RData::SOA(SOA::new(Name::root(), Name::root(), 1, 2, 3, 4, 60)),
        );
        assert_eq!(
            cache_ttl(&answer(
                ResponseCode::NoError,
                vec![a("x.example.", 300), a("x.example.", 100)],
                vec![]
            )),
            Some(100)
        );
        assert_eq!(
            cache_ttl(&answer(ResponseCode::NXDomain, vec![], vec![soa.clone()])),
            Some(60)
        );
        assert_eq!(
            cache_ttl(&answer(ResponseCode::NoError, vec![], vec![soa])),
            Some(60)
        );
        assert_eq!(
            cache_ttl(&answer(ResponseCode::NXDomain, vec![], vec![])),
            None
        );
        assert_eq!(
            cache_ttl(&answer(ResponseCode::ServFail, vec![], vec![])),
            None
        );
    }

    #[test]
    fn entries_are_bounded_and_oldest_go_first() {
        let cache = Cache::new(SHARDS, Duration::ZERO);
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
                &answer(ResponseCode::NoError, vec![a("n.example.", 300)], vec![]),
            );
        }
        assert!(cache.len() <= SHARDS);
        assert!(matches!(cache.get(&keys[199]), Lookup::Fresh(_)));
    }

    #[test]
    fn names_are_keyed_case_insensitively() {
        let cache = Cache::new(100, Duration::ZERO);
        let upper = CacheKey::new(&Name::from_str("WWW.Example.COM.").unwrap(), RecordType::A);
        let lower = CacheKey::new(&Name::from_str("www.example.com.").unwrap(), RecordType::A);
        cache.insert(
            upper,
            &answer(
                ResponseCode::NoError,
                vec![a("www.example.com.", 300)],
                vec![],
            ),
        );
        assert!(matches!(cache.get(&lower), Lookup::Fresh(_)));
    }
}
