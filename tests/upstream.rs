//! Forwarding to upstreams: retransmission on a lost datagram, the next upstream asked beside
//! a silent one, then skipped, health in `/metrics` and `/health`, and DoT and DoH upstreams
//! (another schooldns with a test CA) on kept, verified connections. Real server, real fake
//! upstreams on loopback, a real DNS client.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::common::dns::{FakeUpstream, query_message, udp_query};
use crate::common::{SERVER_CONFIG, TestServer, http};

const SCHOOL: &str = "127.0.0.1";

/// The value of a labelled metric line (`name{labels} value`).
fn metric(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
}

/// A datagram lost on the way to the upstream used to cost the client the whole
/// `timeout_ms` and then SERVFAIL; now it costs one retransmission timeout (the measured round
/// trip, at least 50 ms), well within 3× the round trip + 100 ms of the first answer's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_datagram_costs_a_round_trip_not_the_deadline() {
    let s = TestServer::start().await;
    // Measure the round trip first (loopback: well under a millisecond).
    for i in 0..8 {
        let q = query_message(&format!("warm{i}.example."), RecordType::A, true);
        udp_query(s.udp, SCHOOL, &q).await;
    }
    let started = Instant::now();
    let q = query_message("lossy.example.", RecordType::A, true);
    let answer = udp_query(s.udp, SCHOOL, &q).await;
    let took = started.elapsed();
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(answer.answers().len(), 1);
    // One 50 ms retransmission timeout, plus scheduling on a busy test machine.
    assert!(took < Duration::from_millis(400), "answered after {took:?}");
    let (_, _, metrics) = http(s.admin.unwrap(), "GET", "/metrics", &[]).await;
    let upstream = s.upstream.addr;
    let retransmits = metric(
        &metrics,
        &format!("schooldns_upstream_retransmits_total{{upstream=\"{upstream}\"}}"),
    );
    assert_eq!(retransmits, Some(1.0), "{metrics}");
    s.stop().await;
}

/// Two upstreams, the first silent: the second is asked once the first exceeds its timeout, the
/// client is answered long before `timeout_ms`, the silent one is skipped for
/// `retry_after_secs` (the next query goes straight to the live one) and reported down; with
/// both silent, `/health` says degraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_is_hedged_then_skipped_and_health_says_so() {
    let silent = FakeUpstream::start().await;
    silent.alive.store(false, Ordering::SeqCst);
    let live = FakeUpstream::start().await;
    let config = SERVER_CONFIG
        .replace(
            "servers = [\"@UPSTREAM\"]",
            &format!("servers = [\"{}\", \"{}\"]", silent.addr, live.addr),
        )
        .replace("timeout_ms = 800", "timeout_ms = 2000")
        .replace("retry_after_secs = 1", "retry_after_secs = 30");
    let s = TestServer::start_with(&config).await;
    let admin = s.admin.unwrap();
    let started = Instant::now();
    let answer = udp_query(
        s.udp,
        SCHOOL,
        &query_message("first.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    // The silent upstream's initial timeout (250 ms), then the live one's round trip.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    let asked_silent = silent.questions.load(Ordering::SeqCst);
    let started = Instant::now();
    let answer = udp_query(
        s.udp,
        SCHOOL,
        &query_message("second.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(silent.questions.load(Ordering::SeqCst), asked_silent);
    let (_, _, metrics) = http(admin, "GET", "/metrics", &[]).await;
    let up = |addr| {
        metric(
            &metrics,
            &format!("schooldns_upstream_up{{upstream=\"{addr}\"}}"),
        )
    };
    assert_eq!((up(silent.addr), up(live.addr)), (Some(0.0), Some(1.0)));
    let (status, _, body) = http(admin, "GET", "/health", &[]).await;
    assert!(status.contains(" 200 "), "{status} {body}");

    live.alive.store(false, Ordering::SeqCst);
    let failed = udp_query(
        s.udp,
        SCHOOL,
        &query_message("third.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(failed.response_code(), ResponseCode::ServFail);
    let (status, _, body) = http(admin, "GET", "/health", &[]).await;
    assert!(
        status.contains(" 503 ") && body.contains("degraded"),
        "{status} {body}"
    );
    s.stop().await;
}

/// Healthy upstreams are asked in the configured order: the second hears nothing while the
/// first answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_are_asked_in_order() {
    let first = FakeUpstream::start().await;
    let second = FakeUpstream::start().await;
    let config = SERVER_CONFIG.replace(
        "servers = [\"@UPSTREAM\"]",
        &format!("servers = [\"{}\", \"{}\"]", first.addr, second.addr),
    );
    let s = TestServer::start_with(&config).await;
    for i in 0..5 {
        let q = query_message(&format!("n{i}.example."), RecordType::A, true);
        assert_eq!(
            udp_query(s.udp, SCHOOL, &q).await.response_code(),
            ResponseCode::NoError
        );
    }
    assert_eq!(first.questions.load(Ordering::SeqCst), 5);
    assert_eq!(second.queries.load(Ordering::SeqCst), 0);
    s.stop().await;
}

/// A district resolver that forwards to `upstream` (a `tls://` or `https://` server entry),
/// trusting the test CA, with a profile that blocks nothing itself.
async fn forwarding_to(pki: &crate::common::tls::TestPki, upstream: &str) -> TestServer {
    let config = format!(
        "[server]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\n\
         [upstream]\nservers = [\"{upstream}\"]\nca_file = \"@/tls/ca.pem\"\ntimeout_ms = 3000\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[hitlog]\npath = \"@/hits.sqlite\"\n\
         [categories.adult]\nlists = [\"@/lists/adult.txt\"]\n\
         [profiles.open]\nblock = []\n\
         [[schools]]\nid = \"loop\"\nname = \"Loop\"\nnetworks = [\"127.0.0.0/30\"]\nprofile = \"open\"\n"
    );
    TestServer::start_prepared(&config, |district| pki.write(district.dir.path())).await
}

/// DoT and DoH upstreams: answers come through a kept, verified connection, unchanged: the
/// upstream's rcode and Extended DNS Error pass through (here the upstream is another
/// schooldns that blocks `social.example` for the family's token), and many questions share
/// one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_and_doh_upstreams_keep_one_connection_and_pass_answers_through() {
    use crate::devices::{PRIMARY, sni, start};
    let pki = crate::common::tls::TestPki::new();
    let upstream = start(&pki, "").await;
    let (dot, doh) = (upstream.dot.unwrap(), upstream.doh.unwrap());
    for server in [
        format!("tls://{dot}@{}", sni(PRIMARY)),
        format!(
            "https://{doh}@{}/dns-query/{PRIMARY}",
            crate::common::tls::HOSTNAME
        ),
    ] {
        let s = forwarding_to(&pki, &server).await;
        let asked = upstream.upstream.questions.load(Ordering::SeqCst);
        for i in 0..20 {
            let name = format!("n{i}.{}.example.", server.len());
            let answer = udp_query(s.udp, SCHOOL, &query_message(&name, RecordType::A, true)).await;
            assert_eq!(answer.response_code(), ResponseCode::NoError, "{server}");
            assert_eq!(answer.answers().len(), 1, "{server}: {answer:?}");
        }
        assert_eq!(
            upstream.upstream.questions.load(Ordering::SeqCst),
            asked + 20,
            "{server}: each question reached the upstream's upstream once"
        );
        let blocked = udp_query(
            s.udp,
            SCHOOL,
            &query_message("www.social.example.", RecordType::A, true),
        )
        .await;
        assert_eq!(blocked.response_code(), ResponseCode::NXDomain, "{server}");
        assert_eq!(
            crate::common::dns::ede(&blocked),
            Some((15, "blocked by schooldns: social".to_string())),
            "{server}: the upstream's EDE passes through"
        );
        let (_, _, body) = http(upstream.admin.unwrap(), "GET", "/metrics", &[]).await;
        assert_eq!(
            metric(&body, "schooldns_connections_open{listener=\"tls\"}"),
            Some(1.0),
            "{server}: one kept connection\n{body}"
        );
        let (_, _, ours) = http(s.admin.unwrap(), "GET", "/metrics", &[]).await;
        assert_eq!(
            metric(
                &ours,
                &format!("schooldns_upstream_up{{upstream=\"{server}\"}}")
            ),
            Some(1.0),
            "{ours}"
        );
        s.stop().await;
    }
    upstream.stop().await;
}

/// An upstream whose certificate does not name the configured server name is never used: the
/// client gets SERVFAIL, and the failure is counted against that upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_with_the_wrong_name_is_refused() {
    use crate::devices::start;
    let pki = crate::common::tls::TestPki::new();
    let upstream = start(&pki, "").await;
    let server = format!("tls://{}@impostor.example", upstream.dot.unwrap());
    let s = forwarding_to(&pki, &server).await;
    let answer = udp_query(
        s.udp,
        SCHOOL,
        &query_message("wrong-name.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    let (_, _, ours) = http(s.admin.unwrap(), "GET", "/metrics", &[]).await;
    assert!(
        metric(
            &ours,
            &format!("schooldns_upstream_errors_total{{upstream=\"{server}\"}}")
        )
        .is_some_and(|n| n >= 1.0),
        "{ours}"
    );
    s.stop().await;
    upstream.stop().await;
}

/// An encrypted upstream that closes its idle connections (here after 1 s) costs a client
/// nothing: the question that finds the kept connection closed is asked again on a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_kept_connection_is_reopened_without_failing_a_question() {
    use crate::devices::{DEVICES, PRIMARY, encrypted_config, sni};
    let pki = crate::common::tls::TestPki::new();
    let config = encrypted_config("").replace("[tls]\n", "[tls]\nidle_timeout_secs = 1\n");
    let upstream = TestServer::start_prepared(&config, |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", DEVICES);
    })
    .await;
    for server in [
        format!("tls://{}@{}", upstream.dot.unwrap(), sni(PRIMARY)),
        format!(
            "https://{}@{}/dns-query/{PRIMARY}",
            upstream.doh.unwrap(),
            crate::common::tls::HOSTNAME
        ),
    ] {
        let s = forwarding_to(&pki, &server).await;
        for round in 0..2 {
            let name = format!("idle{round}.{}.example.", server.len());
            let answer = udp_query(s.udp, SCHOOL, &query_message(&name, RecordType::A, true)).await;
            assert_eq!(
                answer.response_code(),
                ResponseCode::NoError,
                "{server} round {round}"
            );
            if round == 0 {
                // Past the upstream's idle timeout: it closes the kept connection.
                let (_, _, body) = http(upstream.admin.unwrap(), "GET", "/metrics", &[]).await;
                assert_eq!(
                    metric(&body, "schooldns_connections_open{listener=\"tls\"}"),
                    Some(1.0)
                );
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let (_, _, body) = http(upstream.admin.unwrap(), "GET", "/metrics", &[]).await;
                    if metric(&body, "schooldns_connections_open{listener=\"tls\"}") == Some(0.0) {
                        break;
                    }
                    assert!(Instant::now() < deadline, "the upstream never closed it");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let (_, _, ours) = http(s.admin.unwrap(), "GET", "/metrics", &[]).await;
        assert_eq!(
            metric(
                &ours,
                &format!("schooldns_upstream_errors_total{{upstream=\"{server}\"}}")
            ),
            Some(0.0),
            "{ours}"
        );
        s.stop().await;
    }
    upstream.stop().await;
}
