//! Web console figures (issue 21), with 10 million records in the hit log (the file
//! `benches/hitlog.rs` generates, reused): the real server on loopback, a signed-in district
//! user, and the time from request to the last byte of each page (server time: the client is a
//! blocking socket on the same machine), median and worst of 11; then what a first load of each
//! page transfers (HTML, stylesheet and script; nothing else is loaded).
//!
//! `cargo bench --bench console` (`CONSOLE_RECORDS` changes the size).

#[path = "support/hits.rs"]
mod hits;
#[path = "support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use hits::{CATEGORIES, SCHOOLS, store_with, time_ms};
use schooldns::access::Role;

/// One HTTP/1.1 request on a fresh connection: (status line, head, body).
fn request(
    admin: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> (String, String, Vec<u8>) {
    let mut stream = TcpStream::connect(admin).unwrap();
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        text.push_str(&format!("Cookie: schooldns_session={cookie}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.lines().next().unwrap_or("").to_string();
    (status, head, response[split + 4..].to_vec())
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    // The server's warnings (a hit log it cannot open, a rollup it cannot rebuild) on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let records: usize = std::env::var("CONSOLE_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hitlog-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let (hits_path, _) = store_with(&dir, records);

    // A district of the synthetic records' 200 schools around the file.
    let district = tempfile::tempdir().unwrap();
    let root = district.path();
    let mut config = format!(
        "[server]\nudp = [\"127.0.0.1:0\"]\ntcp = [\"127.0.0.1:0\"]\n\
         [upstream]\nservers = [\"127.0.0.1:9\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [hitlog]\npath = \"{}\"\nretention_days = 3650\ntimezone = \"Asia/Ho_Chi_Minh\"\n\
         [console]\nusers = \"{}/users.toml\"\n",
        hits_path.display(),
        root.display()
    );
    let configured: Vec<&str> = CATEGORIES
        .iter()
        .copied()
        .filter(|c| *c != "bypass-protection")
        .collect();
    for category in &configured {
        config.push_str(&format!("[categories.{category}]\nlists = []\n"));
    }
    config.push_str(&format!(
        "[profiles.primary]\nblock = [{}]\n",
        configured
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for school in 0..SCHOOLS {
        config.push_str(&format!(
            "[[schools]]\nid = \"school-{school:03}\"\nname = \"Trường {school}\"\n\
             networks = [\"10.{school}.0.0/16\"]\nprofile = \"primary\"\n"
        ));
    }
    let config_path = root.join("schooldns.toml");
    std::fs::write(&config_path, config).unwrap();
    let users = root.join("users.toml");
    schooldns::console::users::add(&users, "dist", &Role::District, None).unwrap();
    schooldns::console::users::set_password(&users, "dist", "bench-password").unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime
        .block_on(schooldns::app::App::bind(&config_path))
        .unwrap();
    let admin = server.admin_addr().unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = runtime.spawn(server.run(shutdown));

    // A file written before the daily rollup existed gets it rebuilt by the writer, in the
    // background; the overview reads the records until then.
    let started = std::time::Instant::now();
    let zone = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
    let reader = schooldns::hitlog::store::open_reader(&hits_path).unwrap();
    while !schooldns::hitlog::rollup::ready(&reader, &zone) {
        assert!(
            started.elapsed().as_secs() < 900,
            "the rollup was not rebuilt in 15 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    println!(
        "daily rollup ready after {:.1} s (rebuilt from the records in the background when missing)",
        started.elapsed().as_secs_f64()
    );

    let (status, head, _) = request(
        admin,
        "POST",
        "/console/signin",
        "",
        "user=dist&password=bench-password",
    );
    assert!(status.contains("303"), "{status}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("set-cookie: schooldns_session=")
                .map(str::to_string)
        })
        .and_then(|v| v.split(';').next().map(str::to_string))
        .expect("a session cookie");
    let get = |path: &str| {
        let (status, _, body) = request(admin, "GET", path, &cookie, "");
        assert!(status.contains("200"), "{path}: {status}");
        body
    };
    println!(
        "console, {records} records in the hit log ({} schools):",
        SCHOOLS
    );
    let (_, _, css) = request(admin, "GET", "/console/static/console.css", "", "");
    let (_, _, js) = request(admin, "GET", "/console/static/console.js", "", "");
    let first_page =
        String::from_utf8(get("/console/hits?school=school-042&category=malware")).unwrap();
    let cursor = first_page
        .split("cursor=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string();
    let pages = [
        (
            "overview, 7 days (target ≤ 300 ms)",
            "/console/".to_string(),
        ),
        ("overview, 30 days", "/console/?days=30".to_string()),
        (
            "hits, school + category (target ≤ 100 ms)",
            "/console/hits?school=school-042&category=malware".to_string(),
        ),
        (
            "hits, school + category + 7 days",
            "/console/hits?school=school-042&category=malware&since=7d".to_string(),
        ),
        (
            "hits, next page",
            format!("/console/hits?school=school-042&category=malware&cursor={cursor}"),
        ),
        (
            "hits, several categories + 7 days",
            "/console/hits?category=malware,phishing&since=7d".to_string(),
        ),
        ("hits, no filter", "/console/hits".to_string()),
        (
            "hits, name part",
            "/console/hits?name=site4242.&since=30d".to_string(),
        ),
        ("lists & health", "/console/lists".to_string()),
    ];
    for (what, path) in &pages {
        let mut bytes = 0;
        let (median, worst, _) = time_ms(11, || {
            bytes = get(path).len();
            bytes
        });
        let first_load = bytes + css.len() + js.len();
        println!(
            "  {what}: median {median:.1} ms, worst {worst:.1} ms; first load {:.1} KB (page {:.1} KB + css {:.1} KB + js {:.1} KB)",
            first_load as f64 / 1000.0,
            bytes as f64 / 1000.0,
            css.len() as f64 / 1000.0,
            js.len() as f64 / 1000.0
        );
    }
    let _ = stop.send(true);
    let _ = runtime.block_on(task);
}
