//! Answers for allowed names: the cache first, then the upstreams, with concurrent identical
//! misses sent upstream once and expired answers served when every upstream fails.
//!
//! Knows nothing about policy: it is asked a (name, type) question and returns records. The
//! cache key holds only question fields, never a verdict, so a policy reload takes effect on the
//! very next query.

pub mod cache;
pub mod encrypted;
pub mod upstream;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::CacheConfig;
use crate::query::answer::{Sections, upstream_ede};
use cache::{Cache, CacheKey, Lookup, cache_ttl};
use upstream::{UpstreamError, Upstreams};

/// An answer to hand to a client: encoded sections and how to count their TTLs down.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The records, encoded once.
    pub sections: Arc<Sections>,
    /// Seconds the answer has been cached (every TTL is counted down by it).
    pub age: u32,
    /// Where it came from: a stale answer carries `STALE_TTL` on every record.
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
    /// The upstream's answer could not be encoded again (never seen; counted as a failure).
    #[error("the upstream answer could not be encoded")]
    Encode,
}

type Flight = watch::Receiver<Option<Result<Answer, ResolveError>>>;

/// Cache + coalescing of identical in-flight questions; the upstreams and the cache's limits
/// come with each question, from the live snapshot the query was decided under.
#[derive(Default)]
pub struct Resolver {
    cache: Cache,
    /// Questions being asked upstream right now; followers wait on the leader's result. A std
    /// mutex: it is held only to look up or insert, never across an await.
    in_flight: Mutex<HashMap<CacheKey, Flight>>,
}

impl Resolver {
    /// A resolver with an empty cache.
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// The cache: the pipeline's one lookup per query, metrics, tests.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Resolves a question the pipeline's lookup missed (or found only stale) by asking the
    /// upstreams, once for all concurrent askers of the same question.
    pub async fn resolve(
        self: &Arc<Self>,
        key: CacheKey,
        upstreams: &Upstreams,
        limits: &CacheConfig,
    ) -> Result<Answer, ResolveError> {
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
                    return self.ask_upstream(&key, upstreams, limits).await;
                }
            }
        };
        // A leader that finished between the pipeline's lookup and our becoming one.
        let stale_max = Duration::from_secs(limits.stale_max);
        let result = match self.cache.peek(key.as_bytes(), stale_max) {
            Lookup::Fresh(sections, age) => Ok(Answer {
                sections,
                age,
                source: AnswerSource::Cache,
            }),
            _ => self.ask_upstream(&key, upstreams, limits).await,
        };
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
        upstreams: &Upstreams,
        limits: &CacheConfig,
    ) -> Result<Answer, ResolveError> {
        let Some((name, qtype)) = key.question() else {
            return Err(ResolveError::Encode);
        };
        match upstreams.query(&name, qtype).await {
            Ok(response) => {
                let (rcode, answers, authority) = (
                    response.response_code(),
                    response.answers(),
                    response.name_servers(),
                );
                let ttl = cache_ttl(rcode, answers, authority);
                let sections = Sections::encode(
                    &name,
                    qtype,
                    rcode,
                    answers,
                    authority,
                    ttl.unwrap_or(u32::MAX),
                    upstream_ede(&response),
                )
                .ok_or(ResolveError::Encode)?;
                let sections = Arc::new(sections);
                if let Some(ttl) = ttl {
                    self.cache
                        .insert(key.clone(), Arc::clone(&sections), ttl, limits.max_entries);
                }
                Ok(Answer {
                    sections,
                    age: 0,
                    source: AnswerSource::Upstream,
                })
            }
            Err(err) => match self
                .cache
                .peek(key.as_bytes(), Duration::from_secs(limits.stale_max))
            {
                Lookup::Fresh(sections, age) => Ok(Answer {
                    sections,
                    age,
                    source: AnswerSource::Cache,
                }),
                Lookup::Stale(sections) => Ok(Answer {
                    sections,
                    age: 0,
                    source: AnswerSource::Stale,
                }),
                Lookup::Miss => Err(err.into()),
            },
        }
    }
}
