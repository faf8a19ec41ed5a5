//! Home devices end to end: the real server with DoT and DoH listeners on loopback, a test CA
//! made at test time, real TLS clients, the real devices file and the real `schooldns` binary.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::common::dns::{ede, query_message, udp_query};
use crate::common::tls::{
    HOSTNAME, TestPki, connect, doh_get, doh_post, dot_exchange, dot_query, https,
};
use crate::common::{SERVER_CONFIG, TestServer, free_port, http};

/// Primary profile, school Kim Đồng, not shared with the school.
pub const PRIMARY: &str = "nguyenfamilytoken2345abcdefghijk";
/// Staff profile, no school.
pub const STAFF: &str = "teacherlaptoptoken2345abcdefghij";
/// Revoked.
pub const REVOKED: &str = "oldphonetoken2345abcdefghijklmno";
/// Primary profile, school Kim Đồng, shared with the school.
pub const SHARED: &str = "tranfamilytoken2345abcdefghijklm";
/// Well-formed but in no entry.
pub const UNKNOWN: &str = "nobodytoken2345abcdefghijklmnopq";

pub const DEVICES: &str = r#"# test families
[[devices]]
id = "nguyen-family"
name = "Gia đình Nguyễn"
token = "nguyenfamilytoken2345abcdefghijk"
profile = "primary"
school = "th-kim-dong"
share_with_school = false

[[devices]]
id = "teacher-laptop"
name = "Cô Lan's laptop"
token = "teacherlaptoptoken2345abcdefghij"
profile = "staff"

[[devices]]
id = "old-phone"
name = "Old phone"
token = "oldphonetoken2345abcdefghijklmno"
profile = "staff"
revoked = true

[[devices]]
id = "tran-family"
name = "Gia đình Trần"
token = "tranfamilytoken2345abcdefghijklm"
profile = "primary"
school = "th-kim-dong"
share_with_school = true
"#;

/// The shared server config with DoT, DoH, `[tls]` and `[devices]` added; `extra` is appended.
pub fn encrypted_config(extra: &str) -> String {
    // A fixed DoH port, so that `schooldns devices add` prints the same links as the server.
    let config = SERVER_CONFIG.replace(
        "tcp = [\"127.0.0.1:0\"]\n",
        &format!(
            "tcp = [\"127.0.0.1:0\"]\ndot = [\"127.0.0.1:0\"]\ndoh = [\"127.0.0.1:{}\"]\n",
            free_port()
        ),
    );
    format!(
        "{config}\n[tls]\ncert = \"@/tls/cert.pem\"\nkey = \"@/tls/key.pem\"\nhostname = \"{HOSTNAME}\"\n\
         [devices]\nfile = \"@/devices.toml\"\n{extra}"
    )
}

/// A server with the test CA's certificate and the test families.
pub async fn start(pki: &TestPki, extra: &str) -> TestServer {
    TestServer::start_prepared(&encrypted_config(extra), |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", DEVICES);
    })
    .await
}

pub fn sni(token: &str) -> String {
    format!("{token}.{HOSTNAME}")
}

fn a_records(m: &Message) -> Vec<String> {
    m.answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.to_string()),
            _ => None,
        })
        .collect()
}

fn social() -> Message {
    query_message("www.social.example.", RecordType::A, true)
}

#[tokio::test]
async fn tokens_select_each_familys_profile_over_dot_and_doh() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let (dot, doh) = (s.dot.unwrap(), s.doh.unwrap());

    // DoT: the token is the first label of the server name.
    let primary = dot_query(&pki, dot, &sni(PRIMARY), &social()).await;
    assert_eq!(primary.response_code(), ResponseCode::NXDomain);
    let (code, text) = ede(&primary).expect("blocked answers carry an EDE");
    assert_eq!(code, 15);
    assert!(text.contains("social"), "{text}");
    let staff = dot_query(&pki, dot, &sni(STAFF), &social()).await;
    assert_eq!(staff.response_code(), ResponseCode::NoError);
    assert_eq!(a_records(&staff), ["192.0.2.1"]);
    // The server name may arrive in capitals; the token is still recognised.
    let upper = dot_query(&pki, dot, &sni(STAFF).to_uppercase(), &social()).await;
    assert_eq!(upper.response_code(), ResponseCode::NoError);
    for (name, why) in [
        (sni(REVOKED), "device token is unknown or revoked"),
        (sni(UNKNOWN), "device token is unknown or revoked"),
        (HOSTNAME.to_string(), "no device token"),
    ] {
        let refused = dot_query(&pki, dot, &name, &social()).await;
        assert_eq!(refused.response_code(), ResponseCode::Refused, "{name}");
        assert!(refused.answers().is_empty());
        assert_eq!(ede(&refused), Some((18, why.to_string())), "{name}");
    }

    // DoH: the token is the last path segment; POST and GET.
    let primary = doh_post(&pki, doh, Some(PRIMARY), &social()).await;
    assert_eq!(primary.response_code(), ResponseCode::NXDomain);
    let staff = doh_post(&pki, doh, Some(STAFF), &social()).await;
    assert_eq!(a_records(&staff), ["192.0.2.1"]);
    let (staff_get, head) = doh_get(&pki, doh, STAFF, &social()).await;
    assert_eq!(a_records(&staff_get), ["192.0.2.1"]);
    assert_eq!(staff_get.id(), social().id());
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/dns-message"),
        "{head}"
    );
    let max_age: u32 = head
        .split("cache-control: max-age=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a GET answer says how long it may be cached");
    assert!((1..=300).contains(&max_age), "{max_age}");
    for token in [None, Some(REVOKED), Some(UNKNOWN)] {
        let refused = doh_post(&pki, doh, token, &social()).await;
        assert_eq!(refused.response_code(), ResponseCode::Refused, "{token:?}");
        let why = match token {
            None => "no device token",
            Some(_) => "device token is unknown or revoked",
        };
        assert_eq!(ede(&refused), Some((18, why.to_string())), "{token:?}");
    }

    // Plain DNS is unchanged: the network decides, and strangers are refused.
    let plain = udp_query(s.udp, "127.0.0.1", &social()).await;
    assert_eq!(plain.response_code(), ResponseCode::NXDomain);
    let stranger = udp_query(s.udp, "127.0.0.5", &social()).await;
    assert_eq!(stranger.response_code(), ResponseCode::Refused);

    // Malformed DoH requests get HTTP errors, and the server keeps answering.
    let post = |path: &'static str, media: &'static str, body: Vec<u8>| {
        let pki = &pki;
        async move {
            https(pki, doh, "POST", path, &[("Content-Type", media)], &body)
                .await
                .0
        }
    };
    let path = Box::leak(format!("/dns-query/{STAFF}").into_boxed_str());
    assert_eq!(
        post(path, "text/plain", social().to_vec().unwrap()).await,
        415
    );
    assert_eq!(
        post(path, "application/dns-message", vec![1, 2, 3]).await,
        400
    );
    let (status, _, _) = https(&pki, doh, "GET", path, &[], &[]).await;
    assert_eq!(status, 400, "GET without ?dns=");
    let (status, _, _) = https(&pki, doh, "GET", &format!("{path}?dns=%%%"), &[], &[]).await;
    assert_eq!(status, 400);
    let (status, _, _) = https(&pki, doh, "PUT", path, &[], &[]).await;
    assert_eq!(status, 405);
    let (status, _, _) = https(&pki, doh, "GET", "/elsewhere", &[], &[]).await;
    assert_eq!(status, 404);
    let again = doh_post(&pki, doh, Some(STAFF), &social()).await;
    assert_eq!(a_records(&again), ["192.0.2.1"]);
    s.stop().await;
}

/// A DoT connection carries many queries, and an answer waiting on the upstream does not hold
/// up a cached one sent after it (RFC 7858 §3.3).
#[tokio::test]
async fn dot_answers_pipelined_queries_out_of_order() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let mut tls = connect(pki.client_config(&[b"dot"]), s.dot.unwrap(), &sni(STAFF))
        .await
        .unwrap();
    // Warm the cache, and reuse the connection for it.
    for _ in 0..3 {
        let warm = dot_exchange(
            &mut tls,
            &query_message("fast.example.", RecordType::A, false),
        )
        .await;
        assert_eq!(a_records(&warm), ["192.0.2.1"]);
    }
    let mut slow = query_message("slow.example.", RecordType::A, false);
    slow.set_id(1);
    let mut fast = query_message("fast.example.", RecordType::A, false);
    fast.set_id(2);
    let mut frames = Vec::new();
    for m in [&slow, &fast] {
        let bytes = m.to_vec().unwrap();
        frames.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        frames.extend_from_slice(&bytes);
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(&frames).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let len = tls.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        tls.read_exact(&mut buf).await.unwrap();
        ids.push(Message::from_vec(&buf).unwrap().id());
    }
    assert_eq!(ids, [2, 1], "the cached answer comes first");
    s.stop().await;
}

async fn api(admin: SocketAddr, token: &str, query: &str) -> serde_json::Value {
    let bearer = format!("Bearer {token}");
    let (status, _, body) = http(
        admin,
        "GET",
        &format!("/api/hits?{query}"),
        &[("Authorization", &bearer)],
    )
    .await;
    assert!(status.contains("200"), "{status} {body}");
    serde_json::from_str(&body).unwrap()
}

fn devices_of(page: &serde_json::Value) -> Vec<(String, Option<String>, String)> {
    let mut rows: Vec<_> = page["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["device"].as_str().unwrap_or("-").to_string(),
                h["school"].as_str().map(str::to_string),
                h["protocol"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

/// Hits from home devices carry the device id; the district sees them all, a school only the
/// devices that share with it.
#[tokio::test]
async fn device_hits_name_the_device_and_schools_see_only_shared_ones() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let porn = query_message("porn.example.", RecordType::A, true);
    let blocked = dot_query(&pki, s.dot.unwrap(), &sni(PRIMARY), &porn).await;
    assert_eq!(blocked.response_code(), ResponseCode::NXDomain);
    let blocked = doh_post(&pki, s.doh.unwrap(), Some(SHARED), &porn).await;
    assert_eq!(blocked.response_code(), ResponseCode::NXDomain);
    // A refused token is not a hit: nothing was decided for a family.
    let refused = dot_query(&pki, s.dot.unwrap(), &sni(REVOKED), &porn).await;
    assert_eq!(refused.response_code(), ResponseCode::Refused);
    s.hits.flush();
    let admin = s.admin.unwrap();

    let district = api(admin, "police-token", "").await;
    assert_eq!(
        devices_of(&district),
        [
            ("nguyen-family".to_string(), None, "dot".to_string()),
            (
                "tran-family".to_string(),
                Some("th-kim-dong".to_string()),
                "doh".to_string()
            ),
        ]
    );
    let by_device = api(admin, "police-token", "device=nguyen-family").await;
    assert_eq!(by_device["hits"].as_array().unwrap().len(), 1);
    assert_eq!(by_device["hits"][0]["category"], "adult");
    assert_eq!(by_device["hits"][0]["profile"], "primary");

    let school = api(admin, "kimdong-token", "").await;
    assert_eq!(
        devices_of(&school),
        [(
            "tran-family".to_string(),
            Some("th-kim-dong".to_string()),
            "doh".to_string()
        )]
    );
    // Asking for the unshared device by id shows nothing to the school.
    let hidden = api(admin, "kimdong-token", "device=nguyen-family").await;
    assert!(hidden["hits"].as_array().unwrap().is_empty(), "{hidden}");
    let other = api(admin, "loop-token", "").await;
    assert!(other["hits"].as_array().unwrap().is_empty(), "{other}");
    s.stop().await;
}

/// Polls `check` every 50 ms until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `schooldns devices add` and `revoke` edit the file; the running server follows.
#[tokio::test]
async fn devices_add_and_revoke_reach_the_running_server() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let config = s.district.path("schooldns.toml");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_schooldns"))
            .arg("devices")
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (ok, out, err) = run(&[
        "add",
        "--profile",
        "staff",
        "--name",
        "Bé Minh's tablet",
        "--school",
        "loop",
    ]);
    assert!(ok, "{out}{err}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .expect("the token is printed")
        .trim()
        .to_string();
    assert_eq!(token.len(), 32);
    let doh_port = s.doh.unwrap().port();
    assert!(
        out.contains(&format!("https://{HOSTNAME}:{doh_port}/setup/{token}")),
        "{out}"
    );
    assert!(out.contains(&format!("{token}.{HOSTNAME}")), "{out}");
    assert!(out.contains("added device be-minhs-tablet"), "{out}");

    let dot = s.dot.unwrap();
    eventually(Duration::from_secs(10), "the new token to work", || {
        let (pki, token) = (&pki, &token);
        async move {
            let answer = dot_query(pki, dot, &sni(token), &social()).await;
            answer.response_code() == ResponseCode::NoError
        }
    })
    .await;

    let (ok, out, err) = run(&["list"]);
    assert!(
        ok && out.contains("be-minhs-tablet") && !out.contains(&token),
        "{out}{err}"
    );
    let (ok, out, err) = run(&["add", "--profile", "nobody", "--name", "x"]);
    assert!(!ok && err.contains("unknown profile"), "{out}{err}");

    let (ok, out, err) = run(&["revoke", "be-minhs-tablet"]);
    assert!(ok, "{out}{err}");
    eventually(
        Duration::from_secs(10),
        "the revoked token to be refused",
        || {
            let (pki, token) = (&pki, &token);
            async move {
                let answer = dot_query(pki, dot, &sni(token), &social()).await;
                answer.response_code() == ResponseCode::Refused
            }
        },
    )
    .await;
    let (ok, _, err) = run(&["revoke", "be-minhs-tablet"]);
    assert!(!ok && err.contains("already revoked"), "{err}");
    s.stop().await;
}

/// A broken devices file is refused like a broken list: the old devices keep working.
#[tokio::test]
async fn a_broken_devices_file_keeps_the_old_devices() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let failed_before = s
        .reload_stats
        .failed
        .load(std::sync::atomic::Ordering::SeqCst);
    s.district.write(
        "devices.toml",
        &DEVICES.replace("profile = \"staff\"\n", "profile = \"staf\"\n"),
    );
    eventually(Duration::from_secs(10), "the reload to be refused", || {
        let stats = std::sync::Arc::clone(&s.reload_stats);
        async move { stats.failed.load(std::sync::atomic::Ordering::SeqCst) > failed_before }
    })
    .await;
    let staff = dot_query(&pki, s.dot.unwrap(), &sni(STAFF), &social()).await;
    assert_eq!(staff.response_code(), ResponseCode::NoError);
    s.stop().await;
}

/// Without a live token, `[devices] default_profile` applies instead of a refusal.
#[tokio::test]
async fn unknown_tokens_get_the_default_profile_when_one_is_set() {
    let pki = TestPki::new();
    let config = encrypted_config("default_profile = \"primary\"\n");
    let s = TestServer::start_prepared(&config, |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", DEVICES);
    })
    .await;
    for name in [HOSTNAME.to_string(), sni(REVOKED), sni(UNKNOWN)] {
        let answer = dot_query(&pki, s.dot.unwrap(), &name, &social()).await;
        assert_eq!(answer.response_code(), ResponseCode::NXDomain, "{name}");
        let allowed = dot_query(
            &pki,
            s.dot.unwrap(),
            &name,
            &query_message("school.example.", RecordType::A, false),
        )
        .await;
        assert_eq!(a_records(&allowed), ["192.0.2.1"], "{name}");
    }
    s.stop().await;
}

/// The setup page and the Apple profile, on the DoH listener and on the admin listener.
#[tokio::test]
async fn setup_pages_tell_parents_what_to_enter() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let doh = s.doh.unwrap();
    let origin = format!("https://{HOSTNAME}:{}", doh.port());
    let (status, head, body) =
        https(&pki, doh, "GET", &format!("/setup/{PRIMARY}"), &[], &[]).await;
    assert_eq!(status, 200, "{head}");
    let page = String::from_utf8(body).unwrap();
    assert!(head.to_ascii_lowercase().contains("text/html"), "{head}");
    assert!(page.contains(&format!("{PRIMARY}.{HOSTNAME}")));
    assert!(page.contains(&format!("{origin}/dns-query/{PRIMARY}")));
    assert!(page.contains(&format!("{origin}/apple/{PRIMARY}.mobileconfig")));
    assert!(page.contains("Gia đình Nguyễn"));
    // The DoT port the server actually bound is named (Android only uses 853).
    assert!(
        page.contains(&format!("port {}", s.dot.unwrap().port())),
        "{page}"
    );
    for words in [
        "DNS riêng tư",
        "Private DNS",
        "Windows 11",
        "Firefox",
        "primary",
    ] {
        assert!(page.contains(words), "{words}");
    }

    let (status, head, body) = https(
        &pki,
        doh,
        "GET",
        &format!("/apple/{PRIMARY}.mobileconfig"),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("application/x-apple-aspen-config"), "{head}");
    let profile = plist::Value::from_reader_xml(&body[..]).unwrap();
    let payload = &profile.as_dictionary().unwrap()["PayloadContent"]
        .as_array()
        .unwrap()[0];
    let dns = payload.as_dictionary().unwrap()["DNSSettings"]
        .as_dictionary()
        .unwrap();
    assert_eq!(
        dns["ServerURL"].as_string().unwrap(),
        format!("{origin}/dns-query/{PRIMARY}")
    );

    for path in [
        format!("/setup/{REVOKED}"),
        format!("/setup/{UNKNOWN}"),
        format!("/apple/{REVOKED}.mobileconfig"),
    ] {
        let (status, _, _) = https(&pki, doh, "GET", &path, &[], &[]).await;
        assert_eq!(status, 404, "{path}");
    }

    let (status, _, admin_page) =
        http(s.admin.unwrap(), "GET", &format!("/setup/{PRIMARY}"), &[]).await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(admin_page, page);
    s.stop().await;
}

/// A renewed certificate is picked up by new connections; a broken one is refused and the old
/// one keeps serving.
#[tokio::test]
async fn certificates_reload_and_broken_ones_are_refused() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let dot = s.dot.unwrap();
    let presented = || async {
        let tls = connect(pki.client_config(&[b"dot"]), dot, &sni(STAFF))
            .await
            .unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let original = presented().await;
    let metric = |name: &'static str| {
        let admin = s.admin.unwrap();
        async move {
            let (_, _, body) = http(admin, "GET", "/metrics", &[]).await;
            body.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        }
    };

    s.district
        .write("tls/cert.pem", "-----BEGIN CERTIFICATE-----\nbroken\n");
    eventually(
        Duration::from_secs(10),
        "the broken certificate to be refused",
        || async { metric("schooldns_tls_cert_reload_failures_total ").await >= 1 },
    )
    .await;
    assert_eq!(
        presented().await,
        original,
        "the old certificate keeps serving"
    );

    let (cert, key) = pki.renewed();
    s.district.write("tls/key.pem", &key);
    s.district.write("tls/cert.pem", &cert);
    eventually(
        Duration::from_secs(10),
        "the renewed certificate",
        || async { presented().await != original },
    )
    .await;
    let answer = dot_query(&pki, dot, &sni(STAFF), &social()).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    s.stop().await;
}

/// The parents' setup page names the profile by its description, carries a QR code of its own
/// link, explains the iOS "Not Verified" label, and gives the district's help contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_setup_page_speaks_to_parents() {
    let pki = TestPki::new();
    let config = encrypted_config("help = \"Phòng GD&ĐT · 024 3825 0000\"\n").replace(
        "[profiles.primary]\n",
        "[profiles.primary]\ndescription = \"Tiểu học · Primary school\"\n",
    );
    let s = TestServer::start_prepared(&config, |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", DEVICES);
    })
    .await;
    let (status, _, body) = https(
        &pki,
        s.doh.unwrap(),
        "GET",
        &format!("/setup/{PRIMARY}"),
        &[],
        &[],
    )
    .await;
    assert_eq!(status, 200);
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("<b>Tiểu học · Primary school</b>"),
        "the description, not the id"
    );
    assert!(page.contains("<svg"), "a QR code");
    assert!(page.contains("Not Verified"));
    assert!(page.contains("Phòng GD&amp;ĐT · 024 3825 0000"));
    s.stop().await;

    // Without server addresses, `check` and `devices add` say what the page will lack.
    let d = crate::common::District::new();
    d.write("devices.toml", DEVICES);
    let path = d.config(&format!(
        "[profiles.primary]\n[[schools]]\nid = \"th-kim-dong\"\nname = \"K\"\nnetworks = [\"10.0.0.0/8\"]\n\
         profile = \"primary\"\n[profiles.staff]\n[tls]\nhostname = \"{HOSTNAME}\"\n\
         [devices]\nfile = \"@/devices.toml\"\n"
    ));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_schooldns"))
            .args(args)
            .args(["--config", path.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let check = run(&["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("server_addresses is empty"));
    let add = run(&["devices", "add", "--profile", "primary", "--name", "Lan"]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    assert!(String::from_utf8_lossy(&add.stderr).contains("server_addresses is empty"));
}

/// The setup page's "check that it works" step: the check page says yes only for a device
/// whose DNS just asked schooldns, with its own token, for `check.<hostname>`.
#[tokio::test]
async fn the_check_page_sees_the_devices_own_query() {
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let (dot, admin) = (s.dot.unwrap(), s.admin.unwrap());
    let page = |token: &'static str| async move {
        let (status, _, body) = http(admin, "GET", &format!("/check/{token}"), &[]).await;
        assert!(status.contains("200"), "{status}");
        body
    };
    assert!(
        page(PRIMARY).await.contains("data-working=\"false\""),
        "not asked yet"
    );
    let setup = http(admin, "GET", &format!("/setup/{PRIMARY}"), &[])
        .await
        .2;
    assert!(
        setup.contains(&format!("https://check.{HOSTNAME}"))
            && setup.contains(&format!("/check/{PRIMARY}")),
        "the setup page links the check"
    );
    let question = query_message(&format!("check.{HOSTNAME}"), RecordType::A, false);
    let answer = dot_query(&pki, dot, &sni(PRIMARY), &question).await;
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert!(
        page(PRIMARY).await.contains("data-working=\"true\""),
        "asked through DoT"
    );
    assert!(
        page(STAFF).await.contains("data-working=\"false\""),
        "another device did not"
    );
    let (status, _, _) = http(admin, "GET", &format!("/check/{UNKNOWN}"), &[]).await;
    assert!(status.contains("404"), "{status}");
    s.stop().await;
}
