//! Forwarding to upstream resolvers over UDP (TCP when the answer is truncated), in configured
//! order, skipping an upstream that just failed until its retry time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why an upstream exchange failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// No upstream is configured.
    #[error("no upstream servers configured")]
    NoneConfigured,
    /// Every upstream timed out or failed within the deadline.
    #[error("every upstream failed; last: {last}")]
    AllFailed {
        /// The last failure, for the log.
        last: String,
    },
}

struct Upstream {
    addr: SocketAddr,
    /// Milliseconds since `Upstreams::epoch` before which this upstream is skipped.
    skip_until_ms: AtomicU64,
    /// Failed or timed-out exchanges.
    errors: AtomicU64,
}

/// Upper bounds of the latency histogram buckets, in milliseconds.
const LATENCY_BUCKETS_MS: [u64; 11] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/// Latency of successful upstream exchanges.
#[derive(Default)]
struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// The configured upstreams.
pub struct Upstreams {
    servers: Vec<Upstream>,
    latency: Latency,
    timeout: Duration,
    retry_after: Duration,
    epoch: Instant,
}

impl Upstreams {
    /// Upstreams tried in order, a whole exchange bounded by `timeout`.
    pub fn new(servers: &[SocketAddr], timeout: Duration, retry_after: Duration) -> Upstreams {
        Upstreams {
            servers: servers
                .iter()
                .map(|&addr| Upstream {
                    addr,
                    skip_until_ms: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                })
                .collect(),
            latency: Latency::default(),
            timeout,
            retry_after,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Asks the upstreams, healthy ones first in configured order, until one answers or the
    /// deadline passes. A failed upstream is skipped for `retry_after` (unless all are failing).
    pub async fn query(&self, name: &Name, qtype: RecordType) -> Result<Message, UpstreamError> {
        if self.servers.is_empty() {
            return Err(UpstreamError::NoneConfigured);
        }
        let deadline = Instant::now() + self.timeout;
        let now = self.now_ms();
        let mut order: Vec<&Upstream> = self
            .servers
            .iter()
            .filter(|u| u.skip_until_ms.load(Ordering::Relaxed) <= now)
            .collect();
        order.extend(
            self.servers
                .iter()
                .filter(|u| u.skip_until_ms.load(Ordering::Relaxed) > now),
        );
        // Each try gets an equal share of what is left, so one dead upstream cannot use up the
        // whole deadline.
        let mut last = String::from("deadline passed");
        for (i, upstream) in order.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let share = left / (order.len() - i) as u32;
            let started = Instant::now();
            match tokio::time::timeout(share, exchange(upstream.addr, name, qtype)).await {
                Ok(Ok(message)) => {
                    self.observe(started.elapsed());
                    if upstream.skip_until_ms.swap(0, Ordering::Relaxed) != 0 {
                        tracing::info!(upstream = %upstream.addr, "upstream answering again");
                    }
                    return Ok(message);
                }
                Ok(Err(e)) => last = format!("{}: {e}", upstream.addr),
                Err(_) => last = format!("{}: timed out after {share:?}", upstream.addr),
            }
            upstream.errors.fetch_add(1, Ordering::Relaxed);
            let until = self.now_ms() + self.retry_after.as_millis() as u64;
            if upstream.skip_until_ms.swap(until, Ordering::Relaxed) == 0 {
                tracing::warn!(upstream = %upstream.addr, error = %last, "upstream failed; skipping it for {:?}", self.retry_after);
            }
        }
        Err(UpstreamError::AllFailed { last })
    }
}

impl Upstreams {
    fn observe(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        if let Some(i) = LATENCY_BUCKETS_MS.iter().position(|&b| ms < b) {
            self.latency.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.count.fetch_add(1, Ordering::Relaxed);
        self.latency
            .sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Appends upstream latency and errors in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP schooldns_upstream_latency_seconds Successful upstream exchanges.\n");
        out.push_str("# TYPE schooldns_upstream_latency_seconds histogram\n");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += self.latency.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "schooldns_upstream_latency_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1000.0
            );
        }
        let count = self.latency.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "schooldns_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "schooldns_upstream_latency_seconds_sum {sum}");
        let _ = writeln!(out, "schooldns_upstream_latency_seconds_count {count}");
        out.push_str(
            "# HELP schooldns_upstream_errors_total Failed or timed-out upstream exchanges.\n",
        );
        out.push_str("# TYPE schooldns_upstream_errors_total counter\n");
        for u in &self.servers {
            let _ = writeln!(
                out,
                "schooldns_upstream_errors_total{{upstream=\"{}\"}} {}",
                u.addr,
                u.errors.load(Ordering::Relaxed)
            );
        }
    }
}

fn query_message(name: &Name, qtype: RecordType) -> Message {
    let mut message = Message::new();
    message
        .set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), qtype));
    message
        .extensions_mut()
        .get_or_insert_with(hickory_proto::op::Edns::new)
        .set_max_payload(1232);
    message
}

/// A query id that an off-path attacker cannot guess.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u16
}

fn matches(query: &Message, response: &Message) -> bool {
    response.id() == query.id()
        && response.message_type() == MessageType::Response
        && response.queries().len() == 1
        // Name equality is case-insensitive (an upstream may randomise case, 0x20).
        && response.queries()[0].name() == query.queries()[0].name()
        && response.queries()[0].query_type() == query.queries()[0].query_type()
}

/// One UDP exchange with an upstream, retried over TCP when the answer is truncated.
async fn exchange(addr: SocketAddr, name: &Name, qtype: RecordType) -> std::io::Result<Message> {
    let query = query_message(name, qtype);
    let bytes = query.to_vec().map_err(std::io::Error::other)?;
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(addr).await?;
    socket.send(&bytes).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Ignore datagrams that are not the answer to this query (spoofing, stale replies).
        let Ok(response) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if !matches(&query, &response) {
            continue;
        }
        if response.truncated() {
            return exchange_tcp(addr, &bytes, &query).await;
        }
        return Ok(response);
    }
}

async fn exchange_tcp(addr: SocketAddr, bytes: &[u8], query: &Message) -> std::io::Result<Message> {
    let mut stream = TcpStream::connect(addr).await?;
    let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    let response = Message::from_vec(&buf).map_err(std::io::Error::other)?;
    if !matches(query, &response) {
        return Err(std::io::Error::other("TCP answer does not match the query"));
    }
    Ok(response)
}
