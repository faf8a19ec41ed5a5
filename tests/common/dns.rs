//! A fake upstream resolver and a small DNS client, both over real loopback sockets.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// An authoritative-looking upstream on 127.0.0.1 with a few special names:
/// - `cname.example.` → CNAME `blocked-target.example.` → A
/// - `big.example.` TXT → about 4 KB of TXT records (truncated over UDP)
/// - `medium.example.` TXT → about 700 bytes of TXT records
/// - `svc.school.test.` HTTPS → `1 svc.school.test. alpn=h2` (its TargetName is the owner)
/// - `nx.example.` → NXDOMAIN with an SOA
/// - `short.example.` → A with TTL 1
/// - `slow.example.` → A after 300 ms
/// - `lossy.*` → the first datagram of each query is dropped (retransmissions are answered)
/// - `loopback.*` → A 127.0.0.1, no AAAA (for clients that go on to connect, such as curl)
/// - anything else → A 192.0.2.1 / AAAA 2001:db8::1, TTL 300
pub struct FakeUpstream {
    pub addr: SocketAddr,
    /// Questions received.
    pub queries: Arc<AtomicUsize>,
    /// When false, queries are read and ignored (a dead upstream).
    pub alive: Arc<AtomicBool>,
    /// Distinct query ids received (retransmissions of one query count once).
    pub questions: Arc<AtomicUsize>,
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

pub fn answer_for(request: &Message) -> Message {
    let q = &request.queries()[0];
    let mut m = Message::new();
    m.set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .set_recursion_available(true)
        .add_query(q.clone());
    let qname = q.name().to_lowercase().to_ascii();
    match (qname.as_str(), q.query_type()) {
        ("cname.example.", _) => {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                300,
                RData::CNAME(CNAME(name("blocked-target.example."))),
            ));
            m.add_answer(Record::from_rdata(
                name("blocked-target.example."),
                300,
                RData::A(A::new(192, 0, 2, 66)),
            ));
        }
        ("medium.example.", RecordType::TXT) => {
            // About 700 bytes: over 512 (cut without EDNS), under 1232 (whole with it).
            for i in 0..6 {
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::TXT(TXT::new(vec![format!("{i:03}-{}", "m".repeat(96))])),
                ));
            }
        }
        ("big.example.", RecordType::TXT) => {
            for i in 0..40 {
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::TXT(TXT::new(vec![format!("{i:03}-{}", "x".repeat(96))])),
                ));
            }
        }
        ("svc.school.test.", RecordType::HTTPS) => {
            use hickory_proto::rr::rdata::svcb::{Alpn, SVCB, SvcParamKey, SvcParamValue};
            let svcb = SVCB::new(
                1,
                name("svc.school.test."),
                vec![(
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".to_string()])),
                )],
            );
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                300,
                RData::HTTPS(hickory_proto::rr::rdata::HTTPS(svcb)),
            ));
        }
        ("nx.example.", _) => {
            m.set_response_code(ResponseCode::NXDomain);
            m.add_name_server(Record::from_rdata(
                name("example."),
                600,
                RData::SOA(SOA::new(
                    name("ns.example."),
                    name("root.example."),
                    1,
                    3600,
                    600,
                    86400,
                    120,
                )),
            ));
        }
        (n, qtype) if n.starts_with("loopback.") => {
            // IPv4 only, so a connecting client does not try an unreachable IPv6 address.
            if qtype == RecordType::A {
                m.add_answer(Record::from_rdata(
                    q.name().clone(),
                    300,
                    RData::A(A::new(127, 0, 0, 1)),
                ));
            }
        }
        (_, RecordType::AAAA) => {
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                300,
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            ));
        }
        (n, _) => {
            let ttl = if n == "short.example." { 1 } else { 300 };
            m.add_answer(Record::from_rdata(
                q.name().clone(),
                ttl,
                RData::A(A::new(192, 0, 2, 1)),
            ));
        }
    }
    m
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        // UDP picks the port; TCP must get the same one, and another test may already hold
        // it for TCP: try again with a fresh port then.
        let (udp, addr, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (Arc::new(udp), addr, tcp);
            }
        };
        let queries = Arc::new(AtomicUsize::new(0));
        let questions = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(AtomicBool::new(true));
        let (q, a, d) = (
            Arc::clone(&queries),
            Arc::clone(&alive),
            Arc::clone(&questions),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut seen = std::collections::HashSet::new();
            loop {
                let Ok((n, src)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                q.fetch_add(1, Ordering::SeqCst);
                if !a.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let first = seen.insert((src, request.id()));
                if first {
                    d.fetch_add(1, Ordering::SeqCst);
                }
                // `lossy.*`: the first datagram of each query is lost on the way.
                let qname = request.queries()[0].name().to_lowercase().to_ascii();
                if first && qname.starts_with("lossy.") {
                    continue;
                }
                let udp = Arc::clone(&udp);
                tokio::spawn(async move {
                    if request.queries()[0].name().to_lowercase().to_ascii() == "slow.example." {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                    let mut response = answer_for(&request);
                    let mut bytes = response.to_vec().unwrap();
                    if bytes.len() > 1232 {
                        bytes = response.truncate().to_vec().unwrap();
                        response.set_truncated(true);
                    }
                    let _ = udp.send_to(&bytes, src).await;
                });
            }
        });
        let a = Arc::clone(&alive);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    return;
                };
                let a = Arc::clone(&a);
                tokio::spawn(async move {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut buf = vec![0u8; len as usize];
                    if stream.read_exact(&mut buf).await.is_err() || !a.load(Ordering::SeqCst) {
                        return;
                    }
                    let bytes = answer_for(&Message::from_vec(&buf).unwrap())
                        .to_vec()
                        .unwrap();
                    let _ = stream.write_all(&(bytes.len() as u16).to_be_bytes()).await;
                    let _ = stream.write_all(&bytes).await;
                });
            }
        });
        FakeUpstream {
            addr,
            queries,
            alive,
            questions,
        }
    }
}

/// A query message with EDNS (payload 1232), id 0x4242 unless set.
pub fn query_message(qname: &str, qtype: RecordType, edns: bool) -> Message {
    let mut m = Message::new();
    m.set_id(0x4242)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(qname).unwrap(), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

/// Sends raw bytes over UDP from `from` (an address on the loopback network) and waits for
/// one datagram back, or `None` after `wait`.
pub async fn udp_raw(
    server: SocketAddr,
    from: &str,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(format!("{from}:0")).await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// One UDP query from `from`; panics if no answer comes within 5 s.
pub async fn udp_query(server: SocketAddr, from: &str, message: &Message) -> Message {
    let bytes = udp_raw(
        server,
        from,
        &message.to_vec().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer over UDP");
    Message::from_vec(&bytes).unwrap()
}

/// One TCP query from 127.0.0.1.
pub async fn tcp_query(server: SocketAddr, message: &Message) -> Message {
    Message::from_vec(&tcp_raw(server, &message.to_vec().unwrap()).await).unwrap()
}

/// One length-prefixed exchange over a new TCP connection from 127.0.0.1: the answer's bytes.
pub async fn tcp_raw(server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(server).await.unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).await.unwrap();
    buf
}

/// The EDE (code, text) of a response, if any.
pub fn ede(message: &Message) -> Option<(u16, String)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let edns = message.extensions().as_ref()?;
    match edns.option(EdnsCode::Unknown(15))? {
        EdnsOption::Unknown(15, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        _ => None,
    }
}
