//! Third-party clients against the real encrypted listeners: Knot's `kdig` over DoT and DoH,
//! `curl --doh-url` resolving through a family's token, and headless Chromium rendering the
//! setup page. CI installs them and sets `SCHOOLDNS_REQUIRE_CLIENTS=1`, which turns a missing
//! client into a failure; elsewhere a missing client skips its test with a message.

use std::path::Path;
use std::process::Command;

use crate::common::tls::{HOSTNAME, TestPki, https};
use crate::devices::{PRIMARY, REVOKED, STAFF, sni, start};

/// Whether `program` runs; panics instead of skipping when CI requires the clients.
pub fn have(program: &str, version_arg: &str) -> bool {
    let found = Command::new(program).arg(version_arg).output().is_ok();
    if !found {
        assert!(
            std::env::var_os("SCHOOLDNS_REQUIRE_CLIENTS").is_none(),
            "{program} is required here but not installed"
        );
        eprintln!("skipping: {program} is not installed");
    }
    found
}

/// Runs a command off the async runtime; returns (exit code, stdout, stderr).
pub async fn run(program: &'static str, args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(program).args(&args).output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    })
    .await
    .unwrap()
}

pub fn ca(dir: &Path) -> String {
    dir.join("tls/ca.pem").display().to_string()
}

/// kdig's status line for one query.
pub fn status_of(output: &str) -> &str {
    output
        .split("opcode: QUERY; status: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or("none")
}

#[tokio::test]
async fn kdig_and_curl_see_each_familys_profile() {
    if !have("kdig", "--version") || !have("curl", "--version") {
        return;
    }
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let (dot, doh, admin) = (s.dot.unwrap(), s.doh.unwrap(), s.admin.unwrap());
    let ca = ca(s.district.dir.path());

    // kdig +tls: the token travels as the first label of the server name.
    let kdig_dot = |server_name: String, qname: &str| {
        let args = vec![
            "@127.0.0.1".to_string(),
            "-p".into(),
            dot.port().to_string(),
            format!("+tls-ca={ca}"),
            format!("+tls-hostname={server_name}"),
            "+timeout=5".into(),
            "+retry=0".into(),
            qname.to_string(),
            "A".into(),
        ];
        run("kdig", args)
    };
    let (_, out, err) = kdig_dot(sni(PRIMARY), "www.social.example").await;
    assert_eq!(status_of(&out), "NXDOMAIN", "{out}{err}");
    assert!(
        out.contains("EDE: 15 (Blocked)") || out.contains("EDE: 15"),
        "{out}"
    );
    let (_, out, err) = kdig_dot(sni(STAFF), "www.social.example").await;
    assert_eq!(status_of(&out), "NOERROR", "{out}{err}");
    assert!(out.contains("192.0.2.1"), "{out}");
    let (_, out, err) = kdig_dot(sni(REVOKED), "www.social.example").await;
    assert_eq!(status_of(&out), "REFUSED", "{out}{err}");
    let (_, out, err) = kdig_dot(HOSTNAME.to_string(), "www.social.example").await;
    assert_eq!(status_of(&out), "REFUSED", "{out}{err}");

    // kdig +https (HTTP/2, POST and GET): the token is the path.
    let kdig_doh = |token: Option<&str>, get: bool| {
        let path = token.map_or("/dns-query".to_string(), |t| format!("/dns-query/{t}"));
        let mut args = vec![
            "@127.0.0.1".to_string(),
            "-p".into(),
            doh.port().to_string(),
            format!("+tls-ca={ca}"),
            format!("+tls-hostname={HOSTNAME}"),
            format!("+https={path}"),
            "+timeout=5".into(),
            "+retry=0".into(),
            "www.social.example".into(),
            "A".into(),
        ];
        if get {
            args.push("+https-get".into());
        }
        run("kdig", args)
    };
    for get in [false, true] {
        let (_, out, err) = kdig_doh(Some(PRIMARY), get).await;
        assert_eq!(status_of(&out), "NXDOMAIN", "get={get} {out}{err}");
        let (_, out, err) = kdig_doh(Some(STAFF), get).await;
        assert_eq!(status_of(&out), "NOERROR", "get={get} {out}{err}");
        assert!(out.contains("192.0.2.1"), "{out}");
        let (_, out, err) = kdig_doh(None, get).await;
        assert_eq!(status_of(&out), "REFUSED", "get={get} {out}{err}");
    }

    // curl resolves through a family's DoH URL, then connects: the staff family reaches the
    // name (the admin listener's /health, through loopback.social.example → 127.0.0.1), the
    // primary family cannot resolve it.
    let curl_through = |token: &str| {
        let args = vec![
            "-sS".to_string(),
            "--max-time".into(),
            "10".into(),
            "--cacert".into(),
            ca.clone(),
            "--resolve".into(),
            format!("{HOSTNAME}:{}:127.0.0.1", doh.port()),
            "--doh-url".into(),
            format!("https://{HOSTNAME}:{}/dns-query/{token}", doh.port()),
            format!("http://loopback.social.example:{}/health", admin.port()),
        ];
        run("curl", args)
    };
    let (code, out, err) = curl_through(STAFF).await;
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    let (code, out, err) = curl_through(PRIMARY).await;
    assert_eq!(code, 6, "curl: could not resolve host: {out}{err}");
    let (code, _, err) = curl_through(REVOKED).await;
    assert_eq!(code, 6, "{err}");

    // Both HTTP versions are spoken.
    let query = s.district.write(
        "query.bin",
        "", // replaced below with binary content
    );
    std::fs::write(
        &query,
        crate::common::dns::query_message(
            "www.social.example.",
            hickory_proto::rr::RecordType::A,
            false,
        )
        .to_vec()
        .unwrap(),
    )
    .unwrap();
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let args = vec![
            "-sS".to_string(),
            flag.into(),
            "--cacert".into(),
            ca.clone(),
            "--resolve".into(),
            format!("{HOSTNAME}:{}:127.0.0.1", doh.port()),
            "-H".into(),
            "content-type: application/dns-message".into(),
            "--data-binary".into(),
            format!("@{}", query.display()),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code} %{http_version}".into(),
            format!("https://{HOSTNAME}:{}/dns-query/{STAFF}", doh.port()),
        ];
        let (code, out, err) = run("curl", args).await;
        assert_eq!(
            (code, out.as_str()),
            (0, format!("200 {version}").as_str()),
            "{err}"
        );
    }
    s.stop().await;
}

/// The setup page renders in headless Chromium (a screenshot is kept in
/// `target/screenshots/`), and every link on it works.
#[tokio::test]
async fn setup_page_renders_in_headless_chromium() {
    if !have("chromium", "--version") {
        return;
    }
    let pki = TestPki::new();
    let s = start(&pki, "").await;
    let admin = s.admin.unwrap();
    let url = format!("http://{admin}/setup/{PRIMARY}");
    let profile_dir = tempfile::tempdir().unwrap();
    let chromium = |extra: Vec<String>| {
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile_dir.path().display()),
            "--window-size=412,1400".into(),
        ];
        args.extend(extra);
        args.push(url.clone());
        run("chromium", args)
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("setup-page.png");
    let _ = std::fs::remove_file(&shot);
    let (_, out, err) = chromium(vec![format!("--screenshot={}", shot.display())]).await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}): {out}{err}"));
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A rendered page of text compresses far less than a blank one (about 2 KB).
    assert!(png.len() > 20_000, "screenshot is {} bytes", png.len());

    let (_, dom, err) = chromium(vec!["--dump-dom".into()]).await;
    assert!(dom.contains("Safe browsing"), "{dom}{err}");
    assert!(dom.contains(&format!("{PRIMARY}.{HOSTNAME}")));
    let links: Vec<&str> = dom
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(links.len() >= 5, "{links:?}");
    let doh = s.doh.unwrap();
    let origin = format!("https://{HOSTNAME}:{}", doh.port());
    // The check step's host is the service's own check name (the certificate covers it).
    let check_origin = format!("https://check.{HOSTNAME}:{}", doh.port());
    for link in links {
        if let Some(anchor) = link.strip_prefix('#') {
            assert!(dom.contains(&format!("id=\"{anchor}\"")), "dangling {link}");
        } else {
            let path = link
                .replace("&amp;", "&")
                .strip_prefix(&origin)
                .or_else(|| link.strip_prefix(&check_origin))
                .unwrap_or_else(|| panic!("link leaves the service: {link}"))
                .to_string();
            let (status, head, _) = https(&pki, doh, "GET", &path, &[], &[]).await;
            assert_eq!(status, 200, "{link}: {head}");
        }
    }
    s.stop().await;
}
