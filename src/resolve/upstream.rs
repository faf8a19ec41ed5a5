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
}

/// The configured upstreams.
pub struct Upstreams {
    servers: Vec<Upstream>,
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
                })
                .collect(),
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
            match tokio::time::timeout(share, exchange(upstream.addr, name, qtype)).await {
                Ok(Ok(message)) => {
                    if upstream.skip_until_ms.swap(0, Ordering::Relaxed) != 0 {
                        tracing::info!(upstream = %upstream.addr, "upstream answering again");
                    }
                    return Ok(message);
                }
                Ok(Err(e)) => last = format!("{}: {e}", upstream.addr),
                Err(_) => last = format!("{}: timed out after {share:?}", upstream.addr),
            }
            let until = self.now_ms() + self.retry_after.as_millis() as u64;
            if upstream.skip_until_ms.swap(until, Ordering::Relaxed) == 0 {
                tracing::warn!(upstream = %upstream.addr, error = %last, "upstream failed; skipping it for {:?}", self.retry_after);
            }
        }
        Err(UpstreamError::AllFailed { last })
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
