//! DoH over HTTP/2 (hyper and h2 underneath) driven by an independent client
//! (the `h2` crate, which hyper uses): many concurrent streams on one connection, answers that
//! wait on the upstream beside ones from the cache, request bodies split over DATA frames, a
//! client window smaller than the answer, and a client that misbehaves while others are served.

use bytes::Bytes;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::TestServer;
use crate::common::dns::query_message;
use crate::common::tls::{HOSTNAME, TestPki, connect};
use crate::devices::{DEVICES, PRIMARY, STAFF, encrypted_config, start};

type Client = h2::client::SendRequest<Bytes>;

/// Opens an HTTP/2 connection (ALPN `h2`) whose streams start with `window` bytes of window.
async fn open(pki: &TestPki, addr: std::net::SocketAddr, window: u32) -> Client {
    let tls = connect(pki.client_config(&[b"h2"]), addr, HOSTNAME)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .handshake::<_, Bytes>(tls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// POSTs `message` to `/dns-query/<token>` in DATA frames of at most `chunk` bytes.
async fn post(client: Client, token: &str, message: &Message, chunk: usize) -> Message {
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("https://{HOSTNAME}/dns-query/{token}"))
        .header("content-type", "application/dns-message")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    let bytes = message.to_vec().unwrap();
    let parts: Vec<&[u8]> = bytes.chunks(chunk).collect();
    for (i, part) in parts.iter().enumerate() {
        body.send_data(Bytes::copy_from_slice(part), i + 1 == parts.len())
            .unwrap();
    }
    read_answer(response).await
}

/// GETs `message` as `?dns=` on `/dns-query/<token>`.
async fn get(client: Client, token: &str, message: &Message) -> Message {
    use base64::Engine;
    let dns = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message.to_vec().unwrap());
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("https://{HOSTNAME}/dns-query/{token}?dns={dns}"))
        .header("accept", "application/dns-message")
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    read_answer(response).await
}

async fn read_answer(response: h2::client::ResponseFuture) -> Message {
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/dns-message"
    );
    let declared: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    assert_eq!(bytes.len(), declared);
    Message::from_vec(&bytes).unwrap()
}

fn query(name: &str, id: u16) -> Message {
    let mut message = query_message(name, RecordType::A, true);
    message.set_id(id);
    message
}

#[tokio::test]
async fn concurrent_streams_on_one_connection_each_get_their_own_answer() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let doh = s.doh.unwrap();
    let client = open(&pki, doh, 65_535).await;
    let mut tasks = tokio::task::JoinSet::new();
    // 80 streams at once: new names wait on the upstream, repeated ones come from the cache,
    // blocked ones are answered by the policy; GET and POST, bodies in 7-byte pieces.
    for i in 0..80u16 {
        let client = client.clone();
        tasks.spawn(async move {
            let (token, name) = match i % 4 {
                0 => (STAFF, format!("n{i}.example.net.")),
                1 => (STAFF, "cached.example.net.".to_string()),
                2 => (PRIMARY, "www.social.example.".to_string()),
                _ => (STAFF, "www.social.example.".to_string()),
            };
            let message = query(&name, 1000 + i);
            let answer = if i % 2 == 0 {
                post(client, token, &message, 7).await
            } else {
                get(client, token, &message).await
            };
            (i, answer)
        });
    }
    let mut seen = 0;
    while let Some(result) = tasks.join_next().await {
        let (i, answer) = result.unwrap();
        assert_eq!(answer.id(), 1000 + i, "each stream gets its own answer");
        let expected = if i % 4 == 2 {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        assert_eq!(answer.response_code(), expected, "stream {i}");
        seen += 1;
    }
    assert_eq!(seen, 80);
}

#[tokio::test]
async fn a_client_window_smaller_than_the_answer_still_gets_all_of_it() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let doh = s.doh.unwrap();
    // 10 bytes of window per stream: every answer needs several WINDOW_UPDATEs.
    let client = open(&pki, doh, 10).await;
    let blocked = post(
        client.clone(),
        PRIMARY,
        &query("www.social.example.", 7),
        512,
    )
    .await;
    assert_eq!(blocked.response_code(), ResponseCode::NXDomain);
    assert!(blocked.to_vec().unwrap().len() > 30);
    let allowed = get(client, STAFF, &query("window.example.net.", 8)).await;
    assert_eq!(allowed.answers().len(), 1);
}

#[tokio::test]
async fn a_misbehaving_client_is_cut_off_and_others_are_served() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let doh = s.doh.unwrap();
    let good = open(&pki, doh, 65_535).await;
    // A client that negotiates h2, then opens a stream with an even id.
    let mut bad = connect(pki.client_config(&[b"h2"]), doh, HOSTNAME)
        .await
        .unwrap();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0, 0, 1, 1, 5, 0, 0, 0, 2, 0x82]);
    bad.write_all(&bytes).await.unwrap();
    let mut reply = Vec::new();
    // The server closes the connection (a missing close_notify is fine: the bytes are in).
    let _closed = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        bad.read_to_end(&mut reply),
    )
    .await
    .expect("the server closes the connection");
    // The server's SETTINGS, its ACK of ours, then GOAWAY with PROTOCOL_ERROR (1).
    let goaway = reply
        .windows(9)
        .position(|w| w[..3] == [0, 0, 8] && w[3] == 7)
        .expect("a GOAWAY frame");
    assert_eq!(reply[goaway + 13..goaway + 17], [0, 0, 0, 1]);
    let answer = post(good, STAFF, &query("still.example.net.", 9), 512).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_goaway() {
    let pki = TestPki::new();
    let config = encrypted_config("").replace("hostname = ", "idle_timeout_secs = 1\nhostname = ");
    let s = TestServer::start_prepared(&config, |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", DEVICES);
    })
    .await;
    let doh = s.doh.unwrap();
    let tls = connect(pki.client_config(&[b"h2"]), doh, HOSTNAME)
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    let connection = tokio::spawn(connection);
    // The h2 client closes by itself once every handle is dropped: keep one.
    let answer = post(client.clone(), STAFF, &query("idle.example.net.", 3), 512).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    // The server says GOAWAY (NO_ERROR) after a quiet second and closes; the client's
    // connection then ends cleanly.
    let started = std::time::Instant::now();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(5), connection)
        .await
        .expect("the server closes an idle connection");
    assert!(ended.unwrap().is_ok(), "a graceful close, not an error");
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    drop(client);
}

/// A raw HTTP/2 connection (ALPN `h2`) that has sent the preface and an empty SETTINGS.
async fn raw_h2(
    pki: &TestPki,
    doh: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = connect(pki.client_config(&[b"h2"]), doh, HOSTNAME)
        .await
        .unwrap();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    tls.write_all(&bytes).await.unwrap();
    tls
}

/// A frame header: length, type, flags, stream id.
fn frame(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// Reads until the server closes (or `limit` passes): the bytes, and whether it closed.
async fn read_until_closed<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: std::time::Duration,
) -> (Vec<u8>, bool) {
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (reply, true),
            Ok(Ok(n)) => reply.extend_from_slice(&buf[..n]),
            Err(_) => return (reply, false),
        }
    }
}

/// The error code of the first GOAWAY frame in `bytes`.
fn goaway_code(bytes: &[u8]) -> Option<u32> {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        if bytes[at + 3] == 7 && at + 9 + 8 <= bytes.len() {
            let code = &bytes[at + 9 + 4..at + 9 + 8];
            return Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]]));
        }
        at += 9 + len;
    }
    None
}

/// A stream left unfinished (headers, no end of stream) and a flow-control window held at
/// zero make no progress: each such connection is closed after the idle timeout plus the
/// close grace, where the hand-written stack kept them 70 s and more.
#[tokio::test]
async fn connections_without_progress_are_closed() {
    let pki = TestPki::new();
    let config = encrypted_config("").replace("hostname = ", "idle_timeout_secs = 1\nhostname = ");
    let s = TestServer::start_prepared(&config, |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", DEVICES);
    })
    .await;
    let doh = s.doh.unwrap();
    let limit = std::time::Duration::from_secs(12);

    // Unfinished: a POST whose body never ends.
    let tls = connect(pki.client_config(&[b"h2"]), doh, HOSTNAME)
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tls).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut ready = client.clone().ready().await.unwrap();
    let request = http::Request::post(format!("https://{HOSTNAME}/dns-query/{STAFF}"))
        .header("content-type", "application/dns-message")
        .body(())
        .unwrap();
    let (_response, _body) = ready.send_request(request, false).unwrap();
    let started = std::time::Instant::now();
    tokio::time::timeout(limit, connection)
        .await
        .expect("an unfinished stream does not hold the connection")
        .ok();
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));

    // Zero window: the answer can never be sent.
    let tls = connect(pki.client_config(&[b"h2"]), doh, HOSTNAME)
        .await
        .unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let held_client = client.clone();
    let held =
        tokio::spawn(async move { get(held_client, STAFF, &query("zero.example.net.", 4)).await });
    tokio::time::timeout(limit, connection)
        .await
        .expect("a zero window does not hold the connection")
        .ok();
    held.abort();
    drop(client);
    s.stop().await;
}

/// Rapid reset (CVE-2023-44487): streams opened and reset at once. The connection is closed
/// with GOAWAY long before the client's 500 streams are through.
#[tokio::test]
async fn rapid_reset_closes_the_connection() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let mut tls = raw_h2(&pki, s.doh.unwrap()).await;
    let mut bytes = Vec::new();
    for i in 0..500u32 {
        let stream = 2 * i + 1;
        // HEADERS: GET https / (static table 2, 7, 4), END_STREAM | END_HEADERS.
        frame(&mut bytes, 3, 1, 5, stream);
        bytes.extend_from_slice(&[0x82, 0x87, 0x84]);
        // RST_STREAM CANCEL.
        frame(&mut bytes, 4, 3, 0, stream);
        bytes.extend_from_slice(&8u32.to_be_bytes());
    }
    let _ = tls.write_all(&bytes).await;
    let (reply, closed) = read_until_closed(&mut tls, std::time::Duration::from_secs(10)).await;
    assert!(closed, "the connection stays open");
    // ENHANCE_YOUR_CALM (11) from the reset limit, or PROTOCOL_ERROR.
    let code = goaway_code(&reply).expect("a GOAWAY frame");
    assert!(code == 11 || code == 1, "GOAWAY code {code}");
    s.stop().await;
}

/// A header block that never ends (empty CONTINUATION frames, CVE-2024-27316): the hand-written
/// stack accepted a billion of them; the connection is now closed.
#[tokio::test]
async fn endless_continuation_frames_close_the_connection() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let mut tls = raw_h2(&pki, s.doh.unwrap()).await;
    let mut head = Vec::new();
    // HEADERS with END_STREAM but not END_HEADERS.
    frame(&mut head, 3, 1, 1, 1);
    head.extend_from_slice(&[0x82, 0x87, 0x84]);
    tls.write_all(&head).await.unwrap();
    let mut flood = Vec::new();
    for _ in 0..10_000 {
        frame(&mut flood, 0, 9, 0, 1);
    }
    let mut sent = 0u64;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10) && sent < 1_000_000 {
        if tls.write_all(&flood).await.is_err() {
            break;
        }
        sent += 10_000;
    }
    let (_, closed) = read_until_closed(&mut tls, std::time::Duration::from_secs(5)).await;
    assert!(
        closed && sent < 1_000_000,
        "{sent} frames sent, closed: {closed}"
    );
    s.stop().await;
}
