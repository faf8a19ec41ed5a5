//! Promises the README makes, pinned on the wire before the query pipeline moves: the same
//! answer bytes over every transport, one cache for all of them, the block-page address, UDP
//! answers cut at the client's EDNS size, and stale answers ending after `stale_max`.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::dns::{query_message, tcp_raw, udp_query, udp_raw};
use crate::common::tls::{TestPki, connect, https};
use crate::common::{SERVER_CONFIG, TestServer};
use crate::devices::{PRIMARY, sni, start};

const SCHOOL: &str = "127.0.0.1";

/// One DoT exchange on a fresh connection: the answer's bytes.
async fn dot_raw(pki: &TestPki, addr: std::net::SocketAddr, token: &str, query: &[u8]) -> Vec<u8> {
    let mut tls = connect(pki.client_config(&[b"dot"]), addr, &sni(token))
        .await
        .unwrap();
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    tls.write_all(&framed).await.unwrap();
    let len = tls.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    tls.read_exact(&mut buf).await.unwrap();
    buf
}

/// One DoH POST: the answer's bytes.
async fn doh_raw(pki: &TestPki, addr: std::net::SocketAddr, token: &str, query: &[u8]) -> Vec<u8> {
    let (status, head, body) = https(
        pki,
        addr,
        "POST",
        &format!("/dns-query/{token}"),
        &[("Content-Type", "application/dns-message")],
        query,
    )
    .await;
    assert_eq!(status, 200, "{head}");
    body
}

/// A block and a cache hit (for the same profile: the school network over UDP and TCP, the
/// family token over DoT and DoH) are the same bytes over all four transports; and the
/// cache is one: the answer fetched over UDP is served to DoT and DoH without asking upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_byte_identical_over_every_transport_from_one_cache() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let (dot, doh) = (s.dot.unwrap(), s.doh.unwrap());
    for name in ["www.porn.example.", "cached.example."] {
        let query = query_message(name, RecordType::A, true).to_vec().unwrap();
        // Fill the cache first (the allowed name), then compare within one second, so the
        // counted-down TTL is the same; a round that crosses a second boundary is repeated.
        udp_raw(s.udp, SCHOOL, &query, Duration::from_secs(5)).await;
        let asked = s.upstream.questions.load(Ordering::SeqCst);
        let mut rounds = 0;
        loop {
            let udp = udp_raw(s.udp, SCHOOL, &query, Duration::from_secs(5))
                .await
                .unwrap();
            let tcp = tcp_raw(s.tcp, &query).await;
            let over_dot = dot_raw(&pki, dot, PRIMARY, &query).await;
            let over_doh = doh_raw(&pki, doh, PRIMARY, &query).await;
            if udp == tcp && tcp == over_dot && over_dot == over_doh {
                break;
            }
            rounds += 1;
            assert!(
                rounds < 5,
                "{name}: udp {udp:02x?}\ntcp {tcp:02x?}\ndot {over_dot:02x?}\ndoh {over_doh:02x?}"
            );
        }
        assert_eq!(
            s.upstream.questions.load(Ordering::SeqCst),
            asked,
            "{name}: every transport answered from the one cache"
        );
    }
    // Refusals: the same bytes over UDP and TCP (a stranger's network), and over DoT and DoH
    // (an unknown token).
    let query = query_message("cached.example.", RecordType::A, true)
        .to_vec()
        .unwrap();
    let udp = udp_raw(s.udp, "127.0.0.5", &query, Duration::from_secs(5))
        .await
        .unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.5:0".parse().unwrap()).unwrap();
    let mut tcp = socket.connect(s.tcp).await.unwrap();
    tcp.write_all(&[&(query.len() as u16).to_be_bytes()[..], &query].concat())
        .await
        .unwrap();
    let len = tcp.read_u16().await.unwrap();
    let mut over_tcp = vec![0u8; usize::from(len)];
    tcp.read_exact(&mut over_tcp).await.unwrap();
    assert_eq!(udp, over_tcp);
    let unknown = "nobodytoken2345abcdefghijklmnopq";
    assert_eq!(
        dot_raw(&pki, dot, unknown, &query).await,
        doh_raw(&pki, doh, unknown, &query).await
    );
    s.stop().await;
}

/// A profile whose `answer` is a block-page address answers A with it (TTL 60) and NODATA for
/// AAAA, with EDE 15.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_block_page_address_is_the_answer() {
    let config = SERVER_CONFIG.replace(
        "allow = [\"education\"]\nanswer = \"nxdomain\"",
        "allow = [\"education\"]\nanswer = \"10.0.0.80\"",
    );
    let s = TestServer::start_with(&config).await;
    let a = udp_query(
        s.udp,
        SCHOOL,
        &query_message("www.porn.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(a.response_code(), ResponseCode::NoError);
    assert_eq!(a.answers().len(), 1);
    assert_eq!(a.answers()[0].ttl(), 60);
    let RData::A(address) = a.answers()[0].data() else {
        panic!("{a:?}");
    };
    assert_eq!(address.to_string(), "10.0.0.80");
    assert_eq!(crate::common::dns::ede(&a).map(|e| e.0), Some(15));
    let aaaa = udp_query(
        s.udp,
        SCHOOL,
        &query_message("www.porn.example.", RecordType::AAAA, true),
    )
    .await;
    assert_eq!(aaaa.response_code(), ResponseCode::NoError);
    assert!(aaaa.answers().is_empty());
    s.stop().await;
}

/// A 700-byte answer: cut with TC for a client without EDNS (512 bytes), whole for one with
/// EDNS 1232, whole over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_answers_are_cut_at_the_clients_edns_size() {
    let s = TestServer::start().await;
    let plain = query_message("medium.example.", RecordType::TXT, false);
    let cut = udp_query(s.udp, SCHOOL, &plain).await;
    assert!(cut.truncated());
    assert!(cut.answers().is_empty());
    let edns = query_message("medium.example.", RecordType::TXT, true);
    let whole = udp_raw(
        s.udp,
        SCHOOL,
        &edns.to_vec().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!((600..=1232).contains(&whole.len()), "{}", whole.len());
    let whole = Message::from_vec(&whole).unwrap();
    assert!(!whole.truncated());
    assert_eq!(whole.answers().len(), 6);
    let over_tcp = Message::from_vec(&tcp_raw(s.tcp, &plain.to_vec().unwrap()).await).unwrap();
    assert_eq!(over_tcp.answers().len(), 6);
    s.stop().await;
}

/// An expired answer is served stale (TTL 30) while every upstream fails, but only for
/// `stale_max` seconds past its expiry; then the client gets SERVFAIL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answers_end_after_stale_max() {
    let config = SERVER_CONFIG.replace("stale_max = 3600", "stale_max = 2");
    let s = TestServer::start_with(&config).await;
    let q = query_message("short.example.", RecordType::A, true);
    assert_eq!(udp_query(s.udp, SCHOOL, &q).await.answers()[0].ttl(), 1);
    s.upstream.alive.store(false, Ordering::SeqCst);
    // Expired (TTL 1) but within stale_max: served stale.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stale = udp_query(s.udp, SCHOOL, &q).await;
    assert_eq!(stale.response_code(), ResponseCode::NoError);
    assert_eq!(stale.answers()[0].ttl(), 30);
    // Past TTL + stale_max: SERVFAIL. Wait for it rather than assume the clock.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = udp_query(s.udp, SCHOOL, &q).await;
        if answer.response_code() == ResponseCode::ServFail {
            break;
        }
        assert_eq!(answer.answers()[0].ttl(), 30);
        assert!(Instant::now() < deadline, "stale answers never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.stop().await;
}

/// One query reads the cache once: an uncached name counts one miss and one upstream question,
/// the same name asked again counts one hit and asks nothing; over TCP as over UDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_query_is_one_cache_lookup() {
    let s = TestServer::start().await;
    let admin = s.admin.unwrap();
    let counters = || async move {
        let (_, _, body) = crate::common::http(admin, "GET", "/metrics", &[]).await;
        let value = |name: &str| -> u64 {
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
                .unwrap_or(u64::MAX)
        };
        (
            value("schooldns_cache_hits_total"),
            value("schooldns_cache_misses_total"),
        )
    };
    let (hits, misses) = counters().await;
    let asked = s.upstream.questions.load(Ordering::SeqCst);
    let query = query_message("once.example.", RecordType::A, true);
    let answer = udp_query(s.udp, SCHOOL, &query).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(
        counters().await,
        (hits, misses + 1),
        "one miss for one uncached query"
    );
    assert_eq!(s.upstream.questions.load(Ordering::SeqCst), asked + 1);
    let again = udp_query(s.udp, SCHOOL, &query).await;
    assert_eq!(again.answers(), answer.answers());
    let over_tcp = crate::common::dns::tcp_query(s.tcp, &query).await;
    assert_eq!(over_tcp.answers().len(), answer.answers().len());
    assert_eq!(counters().await, (hits + 2, misses + 1), "then hits only");
    assert_eq!(s.upstream.questions.load(Ordering::SeqCst), asked + 1);
    s.stop().await;
}
