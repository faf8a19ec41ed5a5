//! The real server on loopback ports, a real DNS client over UDP and TCP, a fake upstream.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::common::TestServer;
use crate::common::dns::{ede, query_message, tcp_query, udp_query, udp_raw};

const SCHOOL: &str = "127.0.0.1";
const STRANGER: &str = "127.0.0.5";
const STAFF: &str = "127.0.0.3";

fn a_records(m: &Message) -> Vec<Ipv4Addr> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_blocked_refused_over_udp_and_tcp() {
    let s = TestServer::start().await;
    // Allowed: forwarded; id, question and the qname's case echoed.
    let q = query_message("WwW.Allowed.Example.", RecordType::A, true);
    for m in [
        udp_query(s.udp, SCHOOL, &q).await,
        tcp_query(s.tcp, &q).await,
    ] {
        assert_eq!(m.id(), 0x4242);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(m.queries()[0].name().to_ascii(), "WwW.Allowed.Example.");
        assert!(m.recursion_available());
        assert_eq!(a_records(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    }
    // Blocked for the primary profile: NXDOMAIN with EDE 15 naming the category.
    let q = query_message("www.porn.example.", RecordType::A, true);
    let m = udp_query(s.udp, SCHOOL, &q).await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    let (code, text) = ede(&m).expect("an Extended DNS Error");
    assert_eq!(code, 15);
    assert!(text.contains("adult"), "{text}");
    // Social is blocked for students but not for the staff subnet, whose answer is null.
    let q = query_message("social.example.", RecordType::A, true);
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NXDomain
    );
    let staff = udp_query(s.udp, STAFF, &q).await;
    assert_eq!(a_records(&staff), [Ipv4Addr::new(192, 0, 2, 1)]);
    let staff = udp_query(
        s.udp,
        STAFF,
        &query_message("porn.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(staff.response_code(), ResponseCode::NoError);
    assert_eq!(a_records(&staff), [Ipv4Addr::UNSPECIFIED]);
    let staff = udp_query(
        s.udp,
        STAFF,
        &query_message("porn.example.", RecordType::MX, true),
    )
    .await;
    assert!(
        staff.answers().is_empty(),
        "null answers are NODATA for other types"
    );
    // Allow wins.
    let m = udp_query(
        s.udp,
        SCHOOL,
        &query_message("wiki.porn.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(a_records(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    // Refused, without asking upstream.
    let before = s.upstream.queries.load(Ordering::SeqCst);
    let m = udp_query(
        s.udp,
        STRANGER,
        &query_message("anything.example.", RecordType::A, false),
    )
    .await;
    assert_eq!(m.response_code(), ResponseCode::Refused);
    assert_eq!(s.upstream.queries.load(Ordering::SeqCst), before);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_search_rewrite_and_cname_inspection() {
    let s = TestServer::start().await;
    let m = udp_query(
        s.udp,
        SCHOOL,
        &query_message("www.google.com.", RecordType::A, true),
    )
    .await;
    let first = &m.answers()[0];
    match first.data() {
        RData::CNAME(target) => assert_eq!(target.0.to_ascii(), "forcesafesearch.google.com."),
        other => panic!("expected a CNAME, got {other:?}"),
    }
    assert_eq!(a_records(&m), [Ipv4Addr::new(192, 0, 2, 1)]);
    // Staff have safe search off: forwarded as asked.
    let m = udp_query(
        s.udp,
        STAFF,
        &query_message("www.google.com.", RecordType::A, true),
    )
    .await;
    assert!(
        m.answers()
            .iter()
            .all(|r| !matches!(r.data(), RData::CNAME(_)))
    );
    // cname.example is allowed, but its answer leads into blocked-target.example (adult).
    let m = udp_query(
        s.udp,
        SCHOOL,
        &query_message("cname.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(m.response_code(), ResponseCode::NXDomain);
    assert!(ede(&m).unwrap().1.contains("adult"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let s = TestServer::start().await;
    let q = query_message("big.example.", RecordType::TXT, true);
    let udp = udp_query(s.udp, SCHOOL, &q).await;
    assert!(udp.truncated());
    assert!(udp.answers().is_empty());
    assert_eq!(udp.queries()[0].name().to_ascii(), "big.example.");
    let tcp = tcp_query(s.tcp, &q).await;
    assert!(!tcp.truncated());
    assert_eq!(tcp.answers().len(), 40);
    // Without EDNS the limit is 512 bytes.
    let small = udp_query(
        s.udp,
        SCHOOL,
        &query_message("big.example.", RecordType::TXT, false),
    )
    .await;
    assert!(small.truncated());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_hygiene() {
    let s = TestServer::start().await;
    // Garbage after a plausible header: FORMERR with the same id.
    let mut garbage = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xff; 20]);
    let bytes = udp_raw(s.udp, SCHOOL, &garbage, Duration::from_secs(2))
        .await
        .expect("FORMERR");
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!((m.id(), m.response_code()), (0x1234, ResponseCode::FormErr));
    // Shorter than a header: dropped. A response sent to us: dropped (no reflection).
    assert!(
        udp_raw(s.udp, SCHOOL, &[1, 2, 3], Duration::from_millis(300))
            .await
            .is_none()
    );
    let mut response = query_message("x.example.", RecordType::A, false);
    response.set_message_type(hickory_proto::op::MessageType::Response);
    let bytes = response.to_vec().unwrap();
    assert!(
        udp_raw(s.udp, SCHOOL, &bytes, Duration::from_millis(300))
            .await
            .is_none()
    );
    // Unknown opcode: NOTIMP. EDNS version 1: BADVERS.
    let mut status = query_message("x.example.", RecordType::A, false);
    status.set_op_code(OpCode::Status);
    assert_eq!(
        udp_query(s.udp, SCHOOL, &status).await.response_code(),
        ResponseCode::NotImp
    );
    let mut v1 = query_message("x.example.", RecordType::A, true);
    v1.extensions_mut().as_mut().unwrap().set_version(1);
    // BADVERS and BADSIG share the code 16, which decoders may name either way.
    let rcode = udp_query(s.udp, SCHOOL, &v1).await.response_code();
    assert_eq!(u16::from(rcode), 16, "{rcode:?}");
    // ANY is answered minimally (RFC 8482).
    let any = udp_query(
        s.udp,
        SCHOOL,
        &query_message("x.example.", RecordType::ANY, true),
    )
    .await;
    assert_eq!(any.answers().len(), 1);
    assert!(matches!(any.answers()[0].data(), RData::HINFO(_)));
    // And the server still answers everyone else.
    let m = udp_query(
        s.udp,
        SCHOOL,
        &query_message("still.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_coalesces_and_serves_stale_then_servfail() {
    let s = TestServer::start().await;
    // Twenty identical questions at once go upstream once (retransmissions of that one
    // question aside: the upstream takes 300 ms).
    let before = s.upstream.questions.load(Ordering::SeqCst);
    let q = query_message("slow.example.", RecordType::A, true);
    let asks: Vec<_> = (0..20)
        .map(|_| {
            let q = q.clone();
            let addr = s.udp;
            tokio::spawn(async move { udp_query(addr, SCHOOL, &q).await })
        })
        .collect();
    for ask in asks {
        assert_eq!(
            a_records(&ask.await.unwrap()),
            [Ipv4Addr::new(192, 0, 2, 1)]
        );
    }
    assert_eq!(s.upstream.questions.load(Ordering::SeqCst) - before, 1);
    // A cached answer's TTL counts down.
    let q = query_message("short.example.", RecordType::A, true);
    let first = udp_query(s.udp, SCHOOL, &q).await;
    assert_eq!(first.answers()[0].ttl(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The upstream dies: the expired answer is served stale with TTL 30 ...
    s.upstream.alive.store(false, Ordering::SeqCst);
    let stale = udp_query(s.udp, SCHOOL, &q).await;
    assert_eq!(stale.response_code(), ResponseCode::NoError);
    assert_eq!(stale.answers()[0].ttl(), 30);
    // ... and a name never seen gets SERVFAIL within the configured timeout (800 ms).
    let started = Instant::now();
    let m = udp_query(
        s.udp,
        SCHOOL,
        &query_message("never-seen.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(m.response_code(), ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // Negative answers are cached too.
    s.upstream.alive.store(true, Ordering::SeqCst);
    let nx = udp_query(
        s.udp,
        SCHOOL,
        &query_message("nx.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    let before = s.upstream.queries.load(Ordering::SeqCst);
    let nx = udp_query(
        s.udp,
        SCHOOL,
        &query_message("nx.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(nx.response_code(), ResponseCode::NXDomain);
    assert_eq!(s.upstream.queries.load(Ordering::SeqCst), before);
    s.stop().await;
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_reload_live_and_a_broken_reload_keeps_the_old_policy() {
    let s = TestServer::start().await;
    let q = query_message("new.example.", RecordType::A, true);
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NoError
    );
    s.district.write(
        "lists/adult.txt",
        "porn.example\nblocked-target.example\nnew.example\n",
    );
    wait_until("the reload", || {
        s.reload_stats.succeeded.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NXDomain
    );
    // A broken config is refused; the old policy keeps serving.
    let config_path = s.district.path("schooldns.toml");
    let good = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, format!("{good}\nbogus_key = 1\n")).unwrap();
    wait_until("the refused reload", || {
        s.reload_stats.failed.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NXDomain
    );
    // A list that shrinks by more than half at once (caught half-written) is refused too.
    std::fs::write(&config_path, &good).unwrap();
    wait_until("the repaired reload", || {
        s.reload_stats.succeeded.load(Ordering::SeqCst) >= 2
    })
    .await;
    s.district.write("lists/adult.txt", "porn.example\n");
    wait_until("the shrink refusal", || {
        s.reload_stats.failed.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NXDomain
    );
    // An operator asks again: refused again without force, accepted with it.
    let admin = s.admin.unwrap();
    let (status, body) = http_request(admin, "POST", "/reload").await;
    assert_eq!(status, "HTTP/1.1 409 Conflict", "{body}");
    let (status, body) = http_request(admin, "POST", "/reload?force=true").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.starts_with("reloaded, policy version"), "{body}");
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NoError
    );
    s.stop().await;
}

/// Only the files the policy is built from trigger reloads: a file written without pause beside
/// the lists (a hit-log database, a log) neither reloads nor holds back a real change, and a
/// list file that a refused config named is picked up once it appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_policy_files_trigger_reloads() {
    let s = TestServer::start().await;
    let busy = s.district.path("lists/busy.log");
    let until = Instant::now() + Duration::from_millis(1200);
    while Instant::now() < until {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&busy)
            .unwrap();
        writeln!(f, "a line").unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.reload_stats.succeeded.load(Ordering::SeqCst), 0);
    assert_eq!(s.reload_stats.failed.load(Ordering::SeqCst), 0);

    // A real change reloads even while the neighbour keeps writing.
    let q = query_message("new.example.", RecordType::A, true);
    s.district.write(
        "lists/adult.txt",
        "porn.example\nblocked-target.example\nnew.example\n",
    );
    for _ in 0..20 {
        std::fs::write(&busy, "more\n").unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until("the reload", || {
        s.reload_stats.succeeded.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NXDomain
    );

    // The config names a list that does not exist yet: refused; creating it is enough.
    let config_path = s.district.path("schooldns.toml");
    let good = std::fs::read_to_string(&config_path).unwrap();
    let extra = s.district.path("lists/extra.txt");
    let with_extra = good.replace(
        "lists/adult.txt\"]",
        &format!("lists/adult.txt\", \"{}\"]", extra.display()),
    );
    assert_ne!(with_extra, good, "the test config changed shape");
    std::fs::write(&config_path, with_extra).unwrap();
    wait_until("the refused reload", || {
        s.reload_stats.failed.load(Ordering::SeqCst) >= 1
    })
    .await;
    s.district.write("lists/extra.txt", "extra.example\n");
    wait_until("the reload with the new list", || {
        s.reload_stats.succeeded.load(Ordering::SeqCst) >= 2
    })
    .await;
    let q = query_message("extra.example.", RecordType::A, true);
    assert_eq!(
        udp_query(s.udp, SCHOOL, &q).await.response_code(),
        ResponseCode::NXDomain
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_keep_being_answered_while_lists_are_rewritten() {
    let s = TestServer::start().await;
    let addr = s.udp;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_client = std::sync::Arc::clone(&stop);
    // A client asking without pause for a name that flips between blocked and allowed, and
    // for one that is always blocked.
    let client = tokio::spawn(async move {
        let (mut answered, mut inconsistent) = (0usize, 0usize);
        let flip = query_message("flip.example.", RecordType::A, true);
        let fixed = query_message("porn.example.", RecordType::A, true);
        while !stop_client.load(Ordering::SeqCst) {
            let m = udp_query(addr, SCHOOL, &flip).await;
            if !matches!(
                m.response_code(),
                ResponseCode::NoError | ResponseCode::NXDomain
            ) {
                inconsistent += 1;
            }
            let m = udp_query(addr, SCHOOL, &fixed).await;
            if m.response_code() != ResponseCode::NXDomain {
                inconsistent += 1;
            }
            answered += 2;
        }
        (answered, inconsistent)
    });
    for i in 0..20 {
        let extra = if i % 2 == 0 {
            "flip.example\n"
        } else {
            "other.example\n"
        };
        s.district.write(
            "lists/adult.txt",
            &format!("porn.example\nblocked-target.example\n{extra}"),
        );
        let target = i + 1;
        wait_until("a reload", || {
            s.reload_stats.succeeded.load(Ordering::SeqCst)
                + s.reload_stats.failed.load(Ordering::SeqCst)
                >= target
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    // udp_query panics on a lost answer, so reaching here means none was lost.
    let (answered, inconsistent) = client.await.unwrap();
    assert!(answered > 40, "{answered}");
    assert_eq!(inconsistent, 0);
    assert_eq!(s.reload_stats.failed.load(Ordering::SeqCst), 0);
    s.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    http_request(addr, "GET", path).await
}

async fn http_request(addr: std::net::SocketAddr, method: &str, path: &str) -> (String, String) {
    let (status, _, body) = crate::common::http(addr, method, path, &[]).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_on_the_admin_listener() {
    let s = TestServer::start().await;
    let admin = s.admin.expect("admin listener");
    for name in [
        "a.example.",
        "a.example.",
        "porn.example.",
        "social.example.",
    ] {
        udp_query(s.udp, SCHOOL, &query_message(name, RecordType::A, true)).await;
    }
    udp_query(
        s.udp,
        STRANGER,
        &query_message("a.example.", RecordType::A, true),
    )
    .await;
    let (status, body) = http_get(admin, "/health").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );
    let (status, metrics) = http_get(admin, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    for line in [
        "schooldns_queries_total{protocol=\"udp\",decision=\"allow\",rcode=\"NOERROR\"} 2",
        "schooldns_queries_total{protocol=\"udp\",decision=\"block\",rcode=\"NXDOMAIN\"} 2",
        "schooldns_queries_total{protocol=\"udp\",decision=\"refuse\",rcode=\"REFUSED\"} 1",
        "schooldns_blocks_total{category=\"adult\",profile=\"primary\"} 1",
        "schooldns_blocks_total{category=\"social\",profile=\"primary\"} 1",
        "schooldns_cache_hits_total 1",
        "schooldns_upstream_latency_seconds_count 1",
        "schooldns_category_entries{category=\"adult\"} 2",
        "schooldns_reload_failures_total 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in:\n{metrics}"
        );
    }
    assert_eq!(http_get(admin, "/nope").await.0, "HTTP/1.1 404 Not Found");
    s.stop().await;
}

/// A third-party client: BIND's `dig` shows the block and its Extended DNS Error. CI installs
/// dig and sets `SCHOOLDNS_REQUIRE_DIG=1`; elsewhere the test is skipped when dig is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_blocks_with_their_extended_error() {
    let have_dig = std::process::Command::new("dig").arg("-v").output().is_ok();
    if !have_dig {
        assert!(
            std::env::var_os("SCHOOLDNS_REQUIRE_DIG").is_none(),
            "dig is required here but not installed"
        );
        eprintln!("skipping: dig is not installed");
        return;
    }
    let s = TestServer::start().await;
    let port = s.udp.port().to_string();
    let dig = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new("dig")
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
    };
    let base = |name: &str| {
        vec![
            "@127.0.0.1".to_string(),
            "-p".into(),
            port.clone(),
            "-b".into(),
            "127.0.0.1".into(),
            "+tries=1".into(),
            "+time=3".into(),
            name.to_string(),
        ]
    };
    let blocked = dig(base("www.porn.example")).await.unwrap();
    assert!(blocked.contains("status: NXDOMAIN"), "{blocked}");
    assert!(
        blocked.contains("EDE: 15 (Blocked): (blocked by schooldns: adult)"),
        "{blocked}"
    );
    let allowed = dig(base("allowed.example")).await.unwrap();
    assert!(
        allowed.contains("status: NOERROR") && allowed.contains("192.0.2.1"),
        "{allowed}"
    );
    let mut tcp = base("big.example");
    tcp.extend(["TXT".to_string(), "+tcp".to_string()]);
    let mut tcp_args = tcp;
    tcp_args[2] = s.tcp.port().to_string();
    let whole = dig(tcp_args).await.unwrap();
    assert!(whole.contains("ANSWER: 40"), "{whole}");
    s.stop().await;
}

/// The wire fast path (cache hits answered from stored bytes) answers what the general path
/// answered: same records, TTLs counted down, the client's id, flags and qname case echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_from_the_fast_path_match_the_first_answer() {
    let s = TestServer::start().await;
    for (qname, qtype) in [
        ("Fast.Example.", RecordType::A),
        ("fast6.example.", RecordType::AAAA),
        ("nx.example.", RecordType::A),
    ] {
        let mut q = query_message(qname, qtype, true);
        let first = udp_query(s.udp, SCHOOL, &q).await;
        let before = s.upstream.queries.load(Ordering::SeqCst);
        q.set_id(0x0777);
        let second = udp_query(s.udp, SCHOOL, &q).await;
        assert_eq!(
            s.upstream.queries.load(Ordering::SeqCst),
            before,
            "{qname}: answered from the cache"
        );
        assert_eq!(second.id(), 0x0777);
        assert_eq!(second.queries()[0].name().to_ascii(), qname);
        assert_eq!(second.response_code(), first.response_code());
        assert!(second.recursion_available() && second.recursion_desired());
        assert_eq!(second.answers().len(), first.answers().len());
        assert_eq!(second.name_servers().len(), first.name_servers().len());
        for (a, b) in first
            .answers()
            .iter()
            .chain(first.name_servers())
            .zip(second.answers().iter().chain(second.name_servers()))
        {
            assert_eq!(
                (a.name(), a.record_type(), a.data()),
                (b.name(), b.record_type(), b.data())
            );
            assert!(b.ttl() <= a.ttl());
        }
        assert!(second.extensions().is_some());
        for r in second.name_servers() {
            assert!(
                r.ttl() <= 120,
                "negative TTL capped at the SOA minimum: {r:?}"
            );
        }
    }
    // Without EDNS the answer carries no OPT record.
    let plain = udp_query(
        s.udp,
        SCHOOL,
        &query_message("fast.example.", RecordType::A, false),
    )
    .await;
    assert!(plain.extensions().is_none());
    assert_eq!(a_records(&plain), [Ipv4Addr::new(192, 0, 2, 1)]);
    s.stop().await;
}

/// A tiny HTTP server for list subscriptions: serves `body` with an ETag, answers 304 to a
/// matching `If-None-Match`, 500 when `failing`, and counts requests and 304s.
struct ListServer {
    addr: std::net::SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<(String, String, bool)>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    not_modified: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl ListServer {
    fn start(body: &str, etag: &str) -> ListServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = std::sync::Arc::new(std::sync::Mutex::new((
            body.to_string(),
            etag.to_string(),
            false,
        )));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let not_modified = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (st, rq, nm) = (state.clone(), requests.clone(), not_modified.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut if_none_match = None;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("if-none-match: ") {
                        if_none_match = Some(v.trim().to_string());
                    }
                }
                rq.fetch_add(1, Ordering::SeqCst);
                let (body, etag, failing) = st.lock().unwrap().clone();
                let response = if failing {
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                } else if if_none_match.as_deref() == Some(&format!("\"{etag}\"")) {
                    nm.fetch_add(1, Ordering::SeqCst);
                    format!(
                        "HTTP/1.1 304 Not Modified\r\nETag: \"{etag}\"\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nETag: \"{etag}\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = stream.write_all(response.as_bytes());
            }
        });
        ListServer {
            addr,
            state,
            requests,
            not_modified,
        }
    }

    fn set(&self, body: &str, etag: &str, failing: bool) {
        *self.state.lock().unwrap() = (body.to_string(), etag.to_string(), failing);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_download_refresh_and_survive_failures() {
    let http = ListServer::start("sub.example\n", "v1");
    let config = crate::common::SERVER_CONFIG
        .replace(
            "[categories.education]",
            &format!("[categories.subscribed]\nurls = [\"http://{}/list.txt\"]\n[categories.education]", http.addr),
        )
        .replace("block = [\"adult\", \"social\"]", "block = [\"adult\", \"social\", \"subscribed\"]")
        .replace("[reload]", "[subscriptions]\ncache_dir = \"@/cache\"\nrefresh_secs = 1\ntimeout_secs = 5\n[reload]");
    let s = TestServer::start_with(&config).await;
    let blocked = |name: &str| query_message(name, RecordType::A, true);
    // Downloaded at start.
    assert_eq!(
        udp_query(s.udp, SCHOOL, &blocked("sub.example."))
            .await
            .response_code(),
        ResponseCode::NXDomain
    );
    assert_eq!(
        udp_query(s.udp, SCHOOL, &blocked("sub2.example."))
            .await
            .response_code(),
        ResponseCode::NoError
    );
    // Unchanged: conditional requests get 304.
    wait_until("a 304", || http.not_modified.load(Ordering::SeqCst) >= 1).await;
    // Changed upstream: refreshed and reloaded.
    http.set("sub.example\nsub2.example\n", "v2", false);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = udp_query(s.udp, SCHOOL, &blocked("sub2.example.")).await;
        if m.response_code() == ResponseCode::NXDomain {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the refreshed list never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The list server fails: the last good copy keeps serving.
    http.set("", "v3", true);
    let seen = http.requests.load(Ordering::SeqCst);
    wait_until("a failed refresh", || {
        http.requests.load(Ordering::SeqCst) > seen + 1
    })
    .await;
    assert_eq!(
        udp_query(s.udp, SCHOOL, &blocked("sub2.example."))
            .await
            .response_code(),
        ResponseCode::NXDomain
    );
    assert_eq!(s.reload_stats.failed.load(Ordering::SeqCst), 0);
    // A restart with the list server still down starts from the cached copy.
    let district = s.stop_keep_district().await;
    let server = schooldns::app::App::bind(&district.path("schooldns.toml"))
        .await
        .unwrap();
    let udp = server.udp_addrs()[0];
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(server.run(shutdown));
    assert_eq!(
        udp_query(udp, SCHOOL, &blocked("sub2.example."))
            .await
            .response_code(),
        ResponseCode::NXDomain
    );
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}

/// Several sockets share one port (SO_REUSEPORT) for several workers; every client is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuseport_sockets_share_one_port() {
    let district = crate::common::District::new();
    district.write("lists/adult.txt", "porn.example\n");
    district.write("lists/social.adblock", "||social.example^\n");
    district.write("lists/education.txt", "wiki.porn.example\n");
    let upstream = crate::common::dns::FakeUpstream::start().await;
    let path = district
        .config(&crate::common::SERVER_CONFIG.replace("@UPSTREAM", &upstream.addr.to_string()));
    let server = schooldns::app::App::bind_with(&path, 2).await.unwrap();
    let addrs = server.udp_addrs();
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(server.run(shutdown));
    for i in 0..50 {
        let name = if i % 2 == 0 {
            "porn.example."
        } else {
            "ok.example."
        };
        let m = udp_query(addrs[0], SCHOOL, &query_message(name, RecordType::A, true)).await;
        let want = if i % 2 == 0 {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(m.response_code(), want);
    }
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}

/// A reload used to ignore `[upstream]` and `[cache]` silently, and a subscription URL added
/// while the server ran was never downloaded (the refresher only started when URLs existed at
/// start). Now the new upstream is used at once, the new URL is downloaded at once and its
/// names blocked, and a changed setting that needs a restart is named in `POST /reload`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_upstream_and_new_subscriptions_and_names_what_needs_a_restart() {
    let s = TestServer::start().await;
    let admin = s.admin.unwrap();
    let second = crate::common::dns::FakeUpstream::start().await;
    let list = ListServer::start("added.example\n", "v1");
    let config = std::fs::read_to_string(s.district.path("schooldns.toml")).unwrap();
    let changed = config
        .replace(&s.upstream.addr.to_string(), &second.addr.to_string())
        .replace(
            "[categories.education]",
            &format!(
                "[categories.subscribed]\nurls = [\"http://{}/list.txt\"]\n[categories.education]",
                list.addr
            ),
        )
        .replace(
            "block = [\"adult\", \"social\"]",
            "block = [\"adult\", \"social\", \"subscribed\"]",
        )
        .replace(
            "[reload]",
            &format!(
                "[subscriptions]\ncache_dir = \"{}\"\ntimeout_secs = 5\n[reload]",
                s.district.path("cache").display()
            ),
        )
        .replace(
            "timezone = ",
            "queue = 4096\nretention_days = 30\ntimezone = ",
        );
    std::fs::write(s.district.path("schooldns.toml"), changed).unwrap();
    let (status, body) = http_request(admin, "POST", "/reload").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    // The queue is sized once; retention follows a reload and is not named.
    assert!(
        body.contains("take effect only after a restart: hitlog.queue\n"),
        "{body}"
    );
    // The new upstream answers.
    let before = s.upstream.questions.load(Ordering::SeqCst);
    let m = udp_query(
        s.udp,
        SCHOOL,
        &query_message("after-reload.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert_eq!(second.questions.load(Ordering::SeqCst), 1);
    assert_eq!(s.upstream.questions.load(Ordering::SeqCst), before);
    // The added subscription is fetched at once and its names blocked after the reload it
    // triggers.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = udp_query(
            s.udp,
            SCHOOL,
            &query_message("added.example.", RecordType::A, true),
        )
        .await;
        if m.response_code() == ResponseCode::NXDomain {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the added subscription never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

/// An exam calendar published as an iCal URL: downloaded beside the query path like a list
/// subscription; when it lists today, school `loop` switches to its exam profile (and only
/// it); when the publisher moves the exam, the school is back to its own profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ical_url_is_downloaded_and_followed() {
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap())
        .date();
    let ics = |day: jiff::civil::Date| {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//So GD//VI\r\nBEGIN:VEVENT\r\nUID:exam@sogd\r\n\
             SUMMARY:Thi thử\r\nDTSTART;VALUE=DATE:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            day.strftime("%Y%m%d")
        )
    };
    let http = ListServer::start(&ics(today), "v1");
    let config = crate::common::SERVER_CONFIG
        .replace(
            "[reload]",
            "[subscriptions]\ncache_dir = \"@/cache\"\nrefresh_secs = 1\ntimeout_secs = 5\n\
             [calendar]\nfile = \"@/calendar.toml\"\n[reload]",
        )
        .replace(
            "[profiles.staff]",
            "[profiles.exam]\nallow = [\"education\"]\nblock_unlisted = true\n[profiles.staff]",
        );
    let calendar = format!(
        "[[imports]]\nsource = \"http://{}/exams.ics\"\nkind = \"exam\"\nprofile = \"exam\"\nschools = [\"loop\"]\n",
        http.addr
    );
    let s = TestServer::start_prepared(&config, |district| {
        district.write("calendar.toml", &calendar);
    })
    .await;
    let ask = |from: &'static str| {
        let udp = s.udp;
        async move {
            udp_query(
                udp,
                from,
                &query_message("www.example.", RecordType::A, true),
            )
            .await
            .response_code()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(SCHOOL).await != ResponseCode::NXDomain {
        assert!(
            Instant::now() < deadline,
            "the downloaded exam never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Kim Đồng (127.0.0.9) is not in the exam.
    assert_eq!(ask("127.0.0.9").await, ResponseCode::NoError);
    // The publisher moves the exam to next week.
    http.set(
        &ics(today.checked_add(jiff::Span::new().days(7)).unwrap()),
        "v2",
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while ask(SCHOOL).await != ResponseCode::NoError {
        assert!(Instant::now() < deadline, "the moved exam still applies");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}
