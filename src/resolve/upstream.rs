//! Forwarding to upstream resolvers over UDP (TCP when the answer is truncated), in configured
//! order, skipping an upstream that just failed until its retry time: ids from the CSPRNG,
//! retransmission on each upstream's measured timeout, the next upstream asked beside a slow
//! one, health in `/metrics` and `/health`. Messages are hickory's; the exchange is ours (see
//! `docs/design.md`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::encrypted::Connection;
use crate::config::UpstreamConfig;
use crate::config::upstream::UpstreamServer;

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
    /// As configured; its text labels the upstream's metrics and log lines.
    server: UpstreamServer,
    addr: SocketAddr,
    /// The kept DoT or DoH connection; `None` for plain DNS.
    connection: Option<Connection>,
    /// Milliseconds since `Upstreams::epoch` before which this upstream is skipped.
    skip_until_ms: AtomicU64,
    /// Failed or timed-out exchanges.
    errors: AtomicU64,
    /// Datagrams sent again because no answer came within the retransmission timeout.
    retransmits: AtomicU64,
    /// Smoothed round trip and its variation (RFC 6298), in microseconds; 0 before a sample.
    srtt_us: AtomicU64,
    rttvar_us: AtomicU64,
}

/// Retransmission timeout before any round trip is measured.
const INITIAL_RTO: Duration = Duration::from_millis(250);
/// Shortest retransmission timeout: below it, an upstream's own scheduling noise would cause
/// needless duplicates (unbound's `infra-cache-min-rtt` default is the same).
const MIN_RTO: Duration = Duration::from_millis(50);

impl Upstream {
    /// RFC 6298 §2: SRTT + 4·RTTVAR, at least [`MIN_RTO`], at most `max`.
    fn rto(&self, max: Duration) -> Duration {
        let srtt = self.srtt_us.load(Ordering::Relaxed);
        if srtt == 0 {
            return INITIAL_RTO.min(max);
        }
        let rttvar = self.rttvar_us.load(Ordering::Relaxed);
        Duration::from_micros(srtt + 4 * rttvar).clamp(MIN_RTO, max.max(MIN_RTO))
    }

    /// Folds in a round trip measured on a datagram that was not retransmitted (Karn).
    fn sample(&self, rtt: Duration) {
        let r = (rtt.as_micros() as u64).max(1);
        let srtt = self.srtt_us.load(Ordering::Relaxed);
        if srtt == 0 {
            self.srtt_us.store(r, Ordering::Relaxed);
            self.rttvar_us.store(r / 2, Ordering::Relaxed);
        } else {
            let rttvar = self.rttvar_us.load(Ordering::Relaxed);
            let delta = srtt.abs_diff(r);
            self.rttvar_us
                .store((3 * rttvar + delta) / 4, Ordering::Relaxed);
            self.srtt_us.store((7 * srtt + r) / 8, Ordering::Relaxed);
        }
    }
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

/// One upstream's state, as the console shows it.
#[derive(Debug, Clone)]
pub struct UpstreamHealth {
    /// The server as configured.
    pub server: String,
    /// Not being skipped after failures.
    pub healthy: bool,
    /// Smoothed round-trip time (0 before the first answer).
    pub rtt_ms: f64,
    /// Failed or timed-out exchanges.
    pub errors: u64,
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
    /// `[upstream]`'s servers, tried in order, a whole exchange bounded by `timeout_ms`. A
    /// `ca_file` that cannot be read (`schooldns check` reports it first) leaves the built-in
    /// roots only, and is logged.
    pub fn new(config: &UpstreamConfig) -> Upstreams {
        let encrypted = config
            .servers
            .iter()
            .any(|s| !matches!(s, UpstreamServer::Plain(_)));
        let tls = encrypted.then(|| {
            super::encrypted::client_config(config.ca_file.as_deref()).unwrap_or_else(|why| {
                tracing::error!(error = %why, "upstream.ca_file unusable; trusting the built-in roots only");
                super::encrypted::client_config(None).expect("the built-in roots load")
            })
        });
        Upstreams {
            servers: config
                .servers
                .iter()
                .map(|server| Upstream {
                    addr: server.addr(),
                    connection: tls.as_ref().and_then(|tls| Connection::new(server, tls)),
                    server: server.clone(),
                    skip_until_ms: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    retransmits: AtomicU64::new(0),
                    srtt_us: AtomicU64::new(0),
                    rttvar_us: AtomicU64::new(0),
                })
                .collect(),
            latency: Latency::default(),
            timeout: Duration::from_millis(config.timeout_ms),
            retry_after: Duration::from_secs(config.retry_after_secs),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether every upstream is being skipped after failing (`/health` says `degraded`).
    pub fn all_failing(&self) -> bool {
        let now = self.now_ms();
        !self.servers.is_empty()
            && self
                .servers
                .iter()
                .all(|u| u.skip_until_ms.load(Ordering::Relaxed) > now)
    }

    /// Each upstream's state for the console: its address, whether it is answering, its
    /// smoothed round-trip time and its failed exchanges.
    pub fn health(&self) -> Vec<UpstreamHealth> {
        let now = self.now_ms();
        self.servers
            .iter()
            .map(|u| UpstreamHealth {
                server: u.server.to_string(),
                healthy: u.skip_until_ms.load(Ordering::Relaxed) <= now,
                rtt_ms: u.srtt_us.load(Ordering::Relaxed) as f64 / 1000.0,
                errors: u.errors.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Asks the upstreams, healthy ones first in configured order, until one answers or the
    /// deadline passes.
    ///
    /// Each upstream gets the datagram again after its retransmission timeout (RFC 6298, from
    /// its measured round trips), so a lost datagram costs about one round trip, not the whole
    /// deadline; and once the current upstream has exceeded its timeout, the next one is asked
    /// as well, so a slow upstream delays nobody for long. The first answer wins. An upstream
    /// that failed, or had not answered by the deadline, is skipped for `retry_after` (unless
    /// every one is failing).
    pub async fn query(&self, name: &Name, qtype: RecordType) -> Result<Message, UpstreamError> {
        if self.servers.is_empty() {
            return Err(UpstreamError::NoneConfigured);
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
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
        if order.len() == 1 {
            // One upstream: nothing to hedge, no task set to keep.
            let upstream = order[0];
            return match self.ask(upstream, name, qtype, deadline).await {
                Ok(message) => {
                    if upstream.skip_until_ms.swap(0, Ordering::Relaxed) != 0 {
                        tracing::info!(upstream = %upstream.server, "upstream answering again");
                    }
                    Ok(message)
                }
                Err(e) => {
                    let last = format!("{}: {e}", upstream.server);
                    self.failed(upstream, &last);
                    Err(UpstreamError::AllFailed { last })
                }
            };
        }
        let mut asked = vec![false; order.len()];
        let mut running = futures_util::stream::FuturesUnordered::new();
        let ask = |i: usize| {
            let upstream = order[i];
            async move { (i, self.ask(upstream, name, qtype, deadline).await) }
        };
        running.push(ask(0));
        asked[0] = true;
        let mut next = 1;
        let mut last = String::from("deadline passed");
        loop {
            let hedge_after = order[next - 1].rto(self.timeout);
            tokio::select! {
                finished = futures_util::StreamExt::next(&mut running) => {
                    let Some((i, result)) = finished else { break };
                    match result {
                        Ok(message) => {
                            let upstream = order[i];
                            if upstream.skip_until_ms.swap(0, Ordering::Relaxed) != 0 {
                                tracing::info!(upstream = %upstream.server, "upstream answering again");
                            }
                            // Those asked before it and still silent were slower than their
                            // own timeout and this one: skip them for a while.
                            for (k, still) in asked.iter().enumerate() {
                                if *still && k != i {
                                    let why = format!(
                                        "{}: slower than its timeout, {} answered first",
                                        order[k].server, upstream.server
                                    );
                                    self.failed(order[k], &why);
                                }
                            }
                            return Ok(message);
                        }
                        Err(e) => {
                            last = format!("{}: {e}", order[i].server);
                            self.failed(order[i], &last);
                            asked[i] = false;
                            if next < order.len() {
                                running.push(ask(next));
                                asked[next] = true;
                                next += 1;
                            }
                        }
                    }
                }
                _ = tokio::time::sleep(hedge_after), if next < order.len() => {
                    running.push(ask(next));
                    asked[next] = true;
                    next += 1;
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Whoever was still being asked at the deadline failed this exchange.
        for (i, still) in asked.iter().enumerate() {
            if *still {
                last = format!("{}: no answer within {:?}", order[i].server, self.timeout);
                self.failed(order[i], &last);
            }
        }
        Err(UpstreamError::AllFailed { last })
    }

    /// Counts a failure and skips the upstream for `retry_after` (logged when it starts).
    fn failed(&self, upstream: &Upstream, why: &str) {
        upstream.errors.fetch_add(1, Ordering::Relaxed);
        let until = self.now_ms() + self.retry_after.as_millis() as u64;
        if upstream.skip_until_ms.swap(until, Ordering::Relaxed) == 0 {
            tracing::warn!(upstream = %upstream.server, error = %why, "upstream failed; skipping it for {:?}", self.retry_after);
        }
    }

    /// One question to one upstream over UDP, retransmitted after each timeout (doubling, as
    /// RFC 6298 §5 backs off), until an answer or the deadline; TCP when truncated.
    async fn ask(
        &self,
        upstream: &Upstream,
        name: &Name,
        qtype: RecordType,
        deadline: tokio::time::Instant,
    ) -> std::io::Result<Message> {
        let query = query_message(name, qtype)?;
        if let Some(connection) = &upstream.connection {
            let sent = Instant::now();
            let response = connection.ask(&query, deadline).await?;
            if !matches_question(&query, &response) {
                return Err(std::io::Error::other(
                    "the answer does not match the question",
                ));
            }
            upstream.sample(sent.elapsed());
            self.observe(sent.elapsed());
            return Ok(response);
        }
        let bytes = query.to_vec().map_err(std::io::Error::other)?;
        let addr = upstream.addr;
        let bind: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        // Port 0: the kernel picks a random ephemeral port for every exchange.
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(addr).await?;
        let first_sent = Instant::now();
        socket.send(&bytes).await?;
        let mut rto = upstream.rto(self.timeout);
        let mut retransmitted = false;
        let mut buf = vec![0u8; 4096];
        loop {
            let wait = tokio::time::Instant::now() + rto;
            match tokio::time::timeout_at(wait.min(deadline), receive(&socket, &query, &mut buf))
                .await
            {
                Ok(Ok(response)) => {
                    if !retransmitted {
                        upstream.sample(first_sent.elapsed());
                    }
                    self.observe(first_sent.elapsed());
                    if response.truncated() {
                        return exchange_tcp(addr, &bytes, &query).await;
                    }
                    return Ok(response);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                Err(_) => {
                    socket.send(&bytes).await?;
                    upstream.retransmits.fetch_add(1, Ordering::Relaxed);
                    retransmitted = true;
                    rto = (rto * 2).min(self.timeout);
                }
            }
        }
    }
}

/// The next datagram on `socket` that answers `query`; others (spoofed, stale) are ignored.
async fn receive(socket: &UdpSocket, query: &Message, buf: &mut [u8]) -> std::io::Result<Message> {
    loop {
        let n = socket.recv(buf).await?;
        let Ok(response) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if matches(query, &response) {
            return Ok(response);
        }
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
        use crate::metrics::family;
        let each = |value: fn(&Upstream) -> u64| {
            self.servers
                .iter()
                .map(move |u| (u.server.to_string(), value(u)))
        };
        family(
            out,
            "schooldns_upstream_errors_total",
            "counter",
            "Failed or timed-out upstream exchanges.",
            "upstream",
            each(|u| u.errors.load(Ordering::Relaxed)),
        );
        family(
            out,
            "schooldns_upstream_retransmits_total",
            "counter",
            "Datagrams sent again after the upstream's retransmission timeout.",
            "upstream",
            each(|u| u.retransmits.load(Ordering::Relaxed)),
        );
        let now = self.now_ms();
        family(
            out,
            "schooldns_upstream_up",
            "gauge",
            "1 while the upstream is used, 0 while it is skipped after failing.",
            "upstream",
            self.servers.iter().map(|u| {
                (
                    u.server.to_string(),
                    u8::from(u.skip_until_ms.load(Ordering::Relaxed) <= now),
                )
            }),
        );
        family(
            out,
            "schooldns_upstream_rtt_seconds",
            "gauge",
            "Smoothed round trip (RFC 6298 SRTT).",
            "upstream",
            self.servers.iter().map(|u| {
                (
                    u.server.to_string(),
                    u.srtt_us.load(Ordering::Relaxed) as f64 / 1e6,
                )
            }),
        );
    }
}

fn query_message(name: &Name, qtype: RecordType) -> std::io::Result<Message> {
    let mut message = Message::new();
    message
        .set_id(random_id()?)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name.clone(), qtype));
    message
        .extensions_mut()
        .get_or_insert_with(hickory_proto::op::Edns::new)
        .set_max_payload(1232);
    Ok(message)
}

/// A query id from the operating system's CSPRNG, so an off-path attacker cannot guess it.
/// Drawn 256 at a time per thread: one `getrandom` call per query cost about a microsecond of
/// the forwarding path (measured with `benches/load.sh AB_WORKLOAD=misses`).
fn random_id() -> std::io::Result<u16> {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<([u8; 512], usize)> = const { RefCell::new(([0; 512], 512)) };
    }
    POOL.with(|pool| {
        let (bytes, used) = &mut *pool.borrow_mut();
        if *used + 2 > bytes.len() {
            getrandom::fill(bytes).map_err(std::io::Error::other)?;
            *used = 0;
        }
        let id = u16::from_be_bytes([bytes[*used], bytes[*used + 1]]);
        // Each id is handed out once.
        bytes[*used..*used + 2].fill(0);
        *used += 2;
        Ok(id)
    })
}

fn matches(query: &Message, response: &Message) -> bool {
    response.id() == query.id() && matches_question(query, response)
}

/// Whether `response` answers `query`'s question (ids are the transport's business over DoT
/// and DoH, where hickory assigns and matches them).
fn matches_question(query: &Message, response: &Message) -> bool {
    response.message_type() == MessageType::Response
        && response.queries().len() == 1
        // Name equality is case-insensitive (an upstream may randomise case, 0x20).
        && response.queries()[0].name() == query.queries()[0].name()
        && response.queries()[0].query_type() == query.queries()[0].query_type()
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
