//! What outside testing found could knock the resolver over or flood its operator, each
//! reproduced against the real binary or the real server with real clients on loopback.

use std::time::{Duration, Instant};

use crate::common::RealServer;

/// A query with class CH and a truncated EDNS option (its length says 8 bytes, 5 follow):
/// hickory-proto warns once per such packet while parsing it.
fn ch_query_with_truncated_edns_option(id: u16) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    packet.extend_from_slice(b"\x04test\x07example\x00");
    packet.extend_from_slice(&[0, 1, 0, 3]); // A, CH
    packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 9]);
    packet.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5]);
    packet
}

/// 3,000 such packets used to write 3,000 WARN lines (136 MB in 12 s at full rate); now a
/// few per call site per 10 s reach the log, the rest are counted, and DNS keeps answering.
#[test]
fn remote_triggered_log_lines_are_rate_limited() {
    let mut server = RealServer::start("");
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut buf = [0u8; 1500];
    for id in 0..3000u16 {
        client
            .send_to(&ch_query_with_truncated_edns_option(id), server.dns)
            .unwrap();
        if id % 100 == 0 {
            while client.recv(&mut buf).is_ok() {}
        }
    }
    // Wait until the server has read all of them: the counter says so.
    let deadline = Instant::now() + Duration::from_secs(20);
    let suppressed = loop {
        let metrics = metrics(&server);
        let value = metric(&metrics, "schooldns_log_lines_suppressed_total");
        if value >= 2900 {
            break value;
        }
        assert!(
            Instant::now() < deadline,
            "suppressed lines: {value}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let warnings = server
        .log()
        .lines()
        .filter(|l| l.contains("EDNS options"))
        .count();
    assert!(
        (1..=10).contains(&warnings),
        "{warnings} warning lines, {suppressed} suppressed"
    );
    assert!(server.running());
    assert!(server.answers_udp().is_some());
}

/// `GET /metrics` from the server's admin listener.
pub fn metrics(server: &RealServer) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

/// The value of an unlabelled metric (0 when absent).
pub fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// `schooldns reload` against the running binary: (exit code, standard output).
fn reload(server: &RealServer, force: bool) -> (Option<i32>, String) {
    let config = server.district.path("schooldns.toml");
    let mut args = vec!["reload", "--config", config.to_str().unwrap()];
    if force {
        args.push("--force");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_schooldns"))
        .args(&args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// 2 MB of pseudo-random bytes (a fixed seed), lines and all: what a failed download or a
/// wrong file copied into place looks like.
fn garbage(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A binary file dropped in place of a list used to be accepted with a dozen junk entries,
/// unblocking every real name; now the reload is refused with a reason that names the file,
/// the old policy keeps blocking, and putting the real list back is accepted.
#[test]
fn a_binary_file_in_place_of_a_list_is_refused() {
    use hickory_proto::op::ResponseCode;
    let server = RealServer::start("[reload]\ndebounce_ms = 60000\n");
    let list = server.district.path("adult.txt");
    std::fs::write(&list, garbage(2 << 20)).unwrap();
    let (code, out) = reload(&server, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("not a list") && out.contains("adult.txt"),
        "{out}"
    );
    assert_eq!(server.answers_udp(), Some(ResponseCode::NXDomain));
    // Forcing does not let junk in either: it only skips the shrink check.
    let (code, _) = reload(&server, true);
    assert_eq!(code, Some(1));
    assert_eq!(server.answers_udp(), Some(ResponseCode::NXDomain));

    std::fs::write(&list, "porn.example\nother.example\n").unwrap();
    let (code, out) = reload(&server, false);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(server.answers_udp(), Some(ResponseCode::NXDomain));
}

/// A category that shrank too far is refused with the reason and the command that forces it.
#[test]
fn a_refused_reload_says_why_and_how_to_force_it() {
    let server = RealServer::start_prepared("[reload]\ndebounce_ms = 60000\n", |d| {
        let names: String = (0..100).map(|i| format!("n{i}.porn.example\n")).collect();
        d.write("adult.txt", &format!("porn.example\n{names}"));
    });
    std::fs::write(server.district.path("adult.txt"), "porn.example\n").unwrap();
    let (code, out) = reload(&server, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("category adult shrank from 101 to 1 entries")
            && out.contains("schooldns reload --force"),
        "{out}"
    );
    let (code, out) = reload(&server, true);
    assert_eq!(code, Some(0), "{out}");
}

/// The RDATA of the first answer record of a wire message (question and owner name skipped).
fn first_rdata(wire: &[u8]) -> &[u8] {
    let skip_name = |mut at: usize| loop {
        let len = wire[at] as usize;
        if len == 0 {
            break at + 1;
        }
        if len & 0xc0 == 0xc0 {
            break at + 2;
        }
        at += 1 + len;
    };
    let after_question = skip_name(12) + 4;
    let after_owner = skip_name(after_question);
    let rdlen = u16::from_be_bytes([wire[after_owner + 8], wire[after_owner + 9]]) as usize;
    &wire[after_owner + 10..after_owner + 10 + rdlen]
}

/// RFC 9460 §2.2: an HTTPS record's TargetName is never compressed. hickory compressed it into
/// a pointer to the question (`svc` + pointer) on every re-encoding; strict clients reject
/// that. Fresh and cached answers, over UDP and TCP.
#[tokio::test]
async fn https_target_names_are_never_compressed() {
    use crate::common::dns::{query_message, tcp_raw, udp_raw};
    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, RecordType};
    let server = crate::common::TestServer::start().await;
    let query = query_message("svc.school.test.", RecordType::HTTPS, true)
        .to_vec()
        .unwrap();
    let want_target = b"\x03svc\x06school\x04test\x00";
    for round in ["fresh", "cached"] {
        let udp = udp_raw(server.udp, "127.0.0.1", &query, Duration::from_secs(5))
            .await
            .expect("an answer over UDP");
        let tcp = tcp_raw(server.tcp, &query).await;
        for (transport, wire) in [("udp", &udp), ("tcp", &tcp)] {
            let rdata = first_rdata(wire);
            assert_eq!(
                &rdata[2..2 + want_target.len()],
                want_target,
                "{round} over {transport}: {rdata:02x?}"
            );
            let message = Message::from_vec(wire).unwrap();
            let RData::HTTPS(https) = message.answers()[0].data() else {
                panic!("{message:?}");
            };
            assert_eq!(https.0.target_name().to_ascii(), "svc.school.test.");
        }
    }
    assert_eq!(
        server
            .upstream
            .queries
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    server.stop().await;
}

/// A refusal to an address in no school network never outgrows the query (no amplification):
/// EDE 18 only when it fits, with no text; and each source network gets a bounded number of
/// refusals per second over UDP, while schools keep being answered.
#[tokio::test]
async fn refusals_never_amplify_and_are_budgeted_per_network() {
    use crate::common::dns::{ede, query_message, udp_raw};
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::RecordType;
    use hickory_proto::rr::rdata::opt::EdnsOption;
    let config =
        crate::common::SERVER_CONFIG.replace("[upstream]", "refused_per_second = 5\n[upstream]");
    let server = crate::common::TestServer::start_with(&config).await;
    let stranger = "127.0.0.5";
    let wait = Duration::from_secs(2);
    // Plain EDNS query: OPT with no option; EDE 18 would make the answer 6 bytes larger.
    let plain = query_message("porn.example.", RecordType::A, true)
        .to_vec()
        .unwrap();
    let answer = udp_raw(server.udp, stranger, &plain, wait).await.unwrap();
    assert!(
        answer.len() <= plain.len(),
        "{} > {}",
        answer.len(),
        plain.len()
    );
    let message = Message::from_vec(&answer).unwrap();
    assert_eq!(message.response_code(), ResponseCode::Refused);
    assert_eq!(ede(&message), None);
    // With an 8-byte option in the query, EDE 18 (6 bytes, no text) fits.
    let mut padded = query_message("porn.example.", RecordType::A, true);
    padded
        .extensions_mut()
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(12, vec![0; 4]));
    let padded = padded.to_vec().unwrap();
    let answer = udp_raw(server.udp, stranger, &padded, wait).await.unwrap();
    assert!(answer.len() <= padded.len());
    assert_eq!(
        ede(&Message::from_vec(&answer).unwrap()),
        Some((18, String::new()))
    );
    // A burst of 200 from the stranger's network: at most this second's and the next's
    // budget is answered; a school is answered throughout.
    let socket = tokio::net::UdpSocket::bind(format!("{stranger}:0"))
        .await
        .unwrap();
    for _ in 0..200 {
        socket.send_to(&plain, server.udp).await.unwrap();
    }
    let mut answered = 0;
    let mut buf = [0u8; 512];
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf)).await
    {
        answered += 1;
    }
    assert!((1..=10).contains(&answered), "{answered} refusals answered");
    let school = udp_raw(server.udp, "127.0.0.1", &plain, wait).await;
    assert_eq!(
        Message::from_vec(&school.expect("the school is answered"))
            .unwrap()
            .response_code(),
        ResponseCode::NXDomain
    );
    server.stop().await;
}
