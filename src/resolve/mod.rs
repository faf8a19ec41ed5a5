//! Answers for allowed names: the cache first, then the upstreams, with concurrent identical
//! misses sent upstream once and expired answers served when every upstream fails.
//!
//! Knows nothing about policy: it is asked a (name, type) question and returns records. The
//! cache key holds only question fields, never a verdict, so a policy reload takes effect on the
//! very next query.

pub mod cache;
pub mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use tokio::sync::watch;

use cache::{Cache, CacheKey, Lookup};
use upstream::{UpstreamError, Upstreams};

/// An answer to hand to a client: records with TTLs already counted down.
#[derive(Debug, Clone)]
pub struct Answer {
    /// NOERROR, NXDOMAIN, …
    pub rcode: ResponseCode,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section (the SOA of a negative answer).
    pub authority: Vec<Record>,
    /// Where it came from, for metrics and tests.
    pub source: AnswerSource,
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerSource {
    /// A fresh cache entry.
    Cache,
    /// An upstream, just now.
    Upstream,
    /// An expired cache entry, because every upstream failed (RFC 8767).
    Stale,
}

/// Why no answer could be had; the client gets SERVFAIL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// Every upstream failed or timed out, and nothing stale was left.
    #[error("no upstream answered: {0}")]
    Upstream(#[from] UpstreamError),
}

type Flight = watch::Receiver<Option<Result<Answer, ResolveError>>>;

/// Cache + upstreams + coalescing of identical in-flight questions.
pub struct Resolver {
    cache: Cache,
    /// Replaced whole when a reload changes `[upstream]`.
    upstreams: arc_swap::ArcSwap<Upstreams>,
    /// Questions being asked upstream right now; followers wait on the leader's result. A std
    /// mutex: it is held only to look up or insert, never across an await.
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
}

impl Resolver {
    /// A resolver over `upstreams` with a cache of at most `max_entries` answers that may serve
    /// answers up to `stale_max` past their expiry when every upstream fails.
    pub fn new(upstreams: Upstreams, max_entries: usize, stale_max: Duration) -> Resolver {
        Resolver {
            cache: Cache::new(max_entries, stale_max),
            upstreams: arc_swap::ArcSwap::from_pointee(upstreams),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// The cache, for metrics and tests.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The upstreams now, for metrics and health.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.load_full()
    }

    /// Follows a reloaded `[upstream]` (new upstreams start without round-trip history).
    pub fn set_upstreams(&self, upstreams: Upstreams) {
        self.upstreams.store(Arc::new(upstreams));
    }

    /// A fresh cached answer, without waiting on anything.
    pub fn cached(&self, name: &Name, qtype: RecordType) -> Option<Answer> {
        match self.cache.get(&CacheKey::new(name, qtype)) {
            Lookup::Fresh(answer) => Some(answer),
            _ => None,
        }
    }

    /// Resolves a question (the name is matched case-insensitively).
    pub async fn resolve(
        self: &Arc<Self>,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Answer, ResolveError> {
        let key = CacheKey::new(name, qtype);
        if let Lookup::Fresh(answer) = self.cache.get(&key) {
            return Ok(answer);
        }
        let (leader, mut flight) = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match in_flight.get(&key) {
                Some(flight) => (None, flight.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    in_flight.insert(key.clone(), rx.clone());
                    (Some(tx), rx)
                }
            }
        };
        let Some(tx) = leader else {
            // Another task is asking the same question: wait for its result.
            loop {
                if let Some(result) = flight.borrow_and_update().clone() {
                    return result;
                }
                if flight.changed().await.is_err() {
                    // The leader was cancelled; ask on our own.
                    return self.ask_upstream(&key, name, qtype).await;
                }
            }
        };
        let result = self.ask_upstream(&key, name, qtype).await;
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        let _ = tx.send(Some(result.clone()));
        result
    }

    async fn ask_upstream(
        &self,
        key: &CacheKey,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Answer, ResolveError> {
        let upstreams = self.upstreams.load_full();
        match upstreams.query(name, qtype).await {
            Ok(response) => {
                let answer = Answer {
                    rcode: response.response_code(),
                    answers: response.answers().to_vec(),
                    authority: response.name_servers().to_vec(),
                    source: AnswerSource::Upstream,
                };
                self.cache.insert(key.clone(), &answer);
                Ok(answer)
            }
            Err(err) => match self.cache.get(key) {
                Lookup::Fresh(answer) => Ok(answer),
                Lookup::Stale(answer) => Ok(answer),
                Lookup::Miss => Err(err.into()),
            },
        }
    }
}
