//! DoH over HTTP/2 against the server's own HTTP/2 connection, driven by an independent client
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
