//! The policy-hit log end to end: the real server on loopback, real DNS queries, the real
//! SQLite file, real HTTP requests with and without the right token, and the real binary for
//! `schooldns hits`, `kill -9` and `SIGTERM`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rusqlite::Connection;
use serde_json::Value;

use crate::common::dns::{query_message, tcp_query, udp_query};
use crate::common::{District, SERVER_CONFIG, TestServer, free_port, http, spawn_serve};

const LOOP: &str = "127.0.0.1";
const KIM_DONG: &str = "127.0.0.9";
const STRANGER: &str = "127.0.0.5";

/// Every stored record as JSON-ish rows, oldest first.
fn rows(path: &Path) -> Vec<Value> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT time_ms, last_seen_ms, count, school, profile, client, protocol, qname, \
             qtype, decision, category, list, line, entry, cname, policy_version FROM hits ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(serde_json::json!({
            "time_ms": r.get::<_, i64>(0)?, "last_seen_ms": r.get::<_, i64>(1)?,
            "count": r.get::<_, i64>(2)?, "school": r.get::<_, Option<String>>(3)?,
            "profile": r.get::<_, Option<String>>(4)?, "client": r.get::<_, Option<String>>(5)?,
            "protocol": r.get::<_, String>(6)?, "qname": r.get::<_, String>(7)?,
            "qtype": r.get::<_, String>(8)?, "decision": r.get::<_, String>(9)?,
            "category": r.get::<_, String>(10)?, "list": r.get::<_, Option<String>>(11)?,
            "line": r.get::<_, Option<i64>>(12)?, "entry": r.get::<_, Option<String>>(13)?,
            "cname": r.get::<_, Option<String>>(14)?, "policy_version": r.get::<_, String>(15)?,
        }))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

async fn block(s: &TestServer, from: &str, name: &str) {
    let answer = udp_query(s.udp, from, &query_message(name, RecordType::A, true)).await;
    assert_eq!(
        answer.response_code(),
        ResponseCode::NXDomain,
        "{name} from {from}"
    );
}

async fn flush(s: &TestServer) {
    let hits = s.hits.clone();
    tokio::task::spawn_blocking(move || hits.flush())
        .await
        .unwrap();
}

async fn api(admin: SocketAddr, path: &str, token: Option<&str>) -> (String, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let (status, _, body) = http(admin, "GET", path, &headers).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_become_records_with_school_rule_and_policy_version() {
    let s = TestServer::start().await;
    let before = schooldns::hitlog::now_ms();
    // Fast path (UDP, plain query), three times: one record, count 3.
    for _ in 0..3 {
        block(&s, LOOP, "porn.example.").await;
    }
    // General path (TCP), another type and category.
    let social = tcp_query(
        s.tcp,
        &query_message("www.Social.example.", RecordType::AAAA, false),
    )
    .await;
    assert_eq!(social.response_code(), ResponseCode::NXDomain);
    // CNAME inspection: allowed name whose chain leads into the adult list.
    block(&s, LOOP, "cname.example.").await;
    // Another school.
    block(&s, KIM_DONG, "porn.example.").await;
    // Not recorded: an allowed name, and a refused stranger.
    let allowed = udp_query(
        s.udp,
        LOOP,
        &query_message("example.org.", RecordType::A, true),
    )
    .await;
    assert_eq!(allowed.response_code(), ResponseCode::NoError);
    let refused = udp_query(
        s.udp,
        STRANGER,
        &query_message("porn.example.", RecordType::A, true),
    )
    .await;
    assert_eq!(refused.response_code(), ResponseCode::Refused);
    flush(&s).await;
    let after = schooldns::hitlog::now_ms();
    let version = format!("{:016x}", s.live.policy().version());
    let rows = rows(&s.district.path("hits.sqlite"));
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let porn = &rows[0];
    assert_eq!(porn["qname"], "porn.example");
    assert_eq!(porn["count"], 3);
    assert_eq!(porn["school"], "loop");
    assert_eq!(porn["profile"], "primary");
    assert_eq!(porn["client"], LOOP);
    assert_eq!(
        (porn["protocol"].as_str(), porn["qtype"].as_str()),
        (Some("udp"), Some("A"))
    );
    assert_eq!(
        (porn["decision"].as_str(), porn["category"].as_str()),
        (Some("block"), Some("adult"))
    );
    assert!(
        porn["list"].as_str().unwrap().ends_with("lists/adult.txt"),
        "{porn}"
    );
    assert_eq!(
        (porn["line"].as_i64(), porn["entry"].as_str()),
        (Some(1), Some("porn.example"))
    );
    assert_eq!(porn["policy_version"], version.as_str());
    let (t, last) = (
        porn["time_ms"].as_i64().unwrap(),
        porn["last_seen_ms"].as_i64().unwrap(),
    );
    assert!(
        before <= t && t <= last && last <= after,
        "{before} {t} {last} {after}"
    );
    let social = &rows[1];
    assert_eq!(social["qname"], "www.social.example");
    assert_eq!(
        (social["protocol"].as_str(), social["qtype"].as_str()),
        (Some("tcp"), Some("AAAA"))
    );
    assert_eq!(social["category"], "social");
    assert!(
        social["list"]
            .as_str()
            .unwrap()
            .ends_with("lists/social.adblock"),
        "{social}"
    );
    let cname = &rows[2];
    assert_eq!(cname["qname"], "cname.example");
    assert_eq!(cname["cname"], "blocked-target.example");
    // CNAME inspection records the hit under the asker's school, like any other block.
    assert_eq!(cname["school"], "loop");
    assert_eq!(
        (cname["category"].as_str(), cname["line"].as_i64()),
        (Some("adult"), Some(2))
    );
    let kim_dong = &rows[3];
    assert_eq!(
        (kim_dong["school"].as_str(), kim_dong["client"].as_str()),
        (Some("th-kim-dong"), Some(KIM_DONG))
    );
    s.stop().await;
}

/// Repeats fold into the stored record within the window; after it, a new record starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_fold_within_the_window_only() {
    let config = SERVER_CONFIG.replace("[hitlog]\n", "[hitlog]\nrepeat_window_secs = 1\n");
    let s = TestServer::start_with(&config).await;
    let path = s.district.path("hits.sqlite");
    block(&s, LOOP, "porn.example.").await;
    flush(&s).await;
    // Already on disk: the repeat updates the stored row.
    block(&s, LOOP, "porn.example.").await;
    // Another client is another record.
    block(&s, "127.0.0.2", "porn.example.").await;
    flush(&s).await;
    let counts: Vec<i64> = rows(&path)
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [2, 1]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    block(&s, LOOP, "porn.example.").await;
    flush(&s).await;
    let counts: Vec<i64> = rows(&path)
        .iter()
        .map(|r| r["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [2, 1, 1]);
    s.stop().await;
}

/// A school's token sees that school's records only, by any filter or page; the district's
/// token sees all; no token or an unknown one gets 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_only_what_their_role_allows() {
    let s = TestServer::start().await;
    let admin = s.admin.unwrap();
    for i in 0..5 {
        block(&s, LOOP, &format!("n{i}.porn.example.")).await;
    }
    for i in 0..4 {
        block(&s, KIM_DONG, &format!("k{i}.social.example.")).await;
    }
    flush(&s).await;

    for token in [None, Some("wrong-token"), Some("police-token ")] {
        let (status, body) = api(admin, "/api/hits", token.filter(|t| !t.ends_with(' '))).await;
        assert!(status.contains(" 401 "), "{token:?}: {status}");
        assert!(
            body["error"].as_str().unwrap().contains("bearer token"),
            "{body}"
        );
    }
    let (_, head, _) = http(
        admin,
        "GET",
        "/api/hits",
        &[("Authorization", "Basic cG9saWNl")],
    )
    .await;
    assert!(
        head.contains(" 401 ")
            && head
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer"),
        "{head}"
    );

    let (status, all) = api(admin, "/api/hits", Some("police-token")).await;
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(all["hits"].as_array().unwrap().len(), 9);
    assert_eq!(all["timezone"], "Asia/Ho_Chi_Minh");
    let (_, kd) = api(admin, "/api/hits?school=th-kim-dong", Some("police-token")).await;
    let kd = kd["hits"].as_array().unwrap();
    assert_eq!(kd.len(), 4);
    assert_eq!(kd[0]["school_name"], "Trường Tiểu học Kim Đồng");

    // The loop school's token, through every door.
    let (status, body) = api(admin, "/api/hits?school=th-kim-dong", Some("loop-token")).await;
    assert!(status.contains(" 403 "), "{status} {body}");
    for query in [
        "/api/hits",
        "/api/hits?school=loop",
        "/api/hits?category=social",
        "/api/hits?client=127.0.0.9",
        "/api/hits?since=1h&until=now",
        "/api/hits?school=&category=",
    ] {
        let (status, body) = api(admin, query, Some("loop-token")).await;
        assert!(status.contains(" 200 "), "{query}: {status}");
        for hit in body["hits"].as_array().unwrap() {
            assert_eq!(hit["school"], "loop", "{query}: {hit}");
        }
    }
    let (_, social) = api(admin, "/api/hits?category=social", Some("loop-token")).await;
    assert_eq!(social["hits"].as_array().unwrap().len(), 0);
    // Pages of two: every record once, all the school's own.
    let mut seen = Vec::new();
    let mut path = "/api/hits?limit=2".to_string();
    loop {
        let (status, page) = api(admin, &path, Some("loop-token")).await;
        assert!(status.contains(" 200 "), "{status}");
        for hit in page["hits"].as_array().unwrap() {
            assert_eq!(hit["school"], "loop");
            seen.push(hit["id"].as_i64().unwrap());
        }
        match page["next"].as_str() {
            Some(cursor) => path = format!("/api/hits?limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 5, "paging does not end");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    // Another school's cursor position leaks nothing either.
    let (_, page) = api(
        admin,
        "/api/hits?limit=1&cursor=99999999999999-999999",
        Some("kimdong-token"),
    )
    .await;
    assert_eq!(page["hits"][0]["school"], "th-kim-dong");

    // Summaries: the district sees both schools, a school only itself.
    let (_, sum) = api(admin, "/api/summary", Some("police-token")).await;
    let days = sum["days"].as_array().unwrap();
    let total = |school: &str| -> i64 {
        days.iter()
            .filter(|d| d["school"] == school)
            .map(|d| d["hits"].as_i64().unwrap())
            .sum()
    };
    assert_eq!((total("loop"), total("th-kim-dong")), (5, 4), "{sum}");
    let (_, sum) = api(admin, "/api/summary", Some("kimdong-token")).await;
    let days = sum["days"].as_array().unwrap();
    assert!(
        !days.is_empty() && days.iter().all(|d| d["school"] == "th-kim-dong"),
        "{sum}"
    );
    assert_eq!(days[0]["category"], "social");

    // Bad parameters are named.
    let (status, body) = api(admin, "/api/hits?since=yesterday", Some("police-token")).await;
    assert!(
        status.contains(" 400 ") && body["error"].as_str().unwrap().starts_with("since"),
        "{body}"
    );
    let (status, _) = api(admin, "/api/hits?limit=0", Some("police-token")).await;
    assert!(status.contains(" 400 "), "{status}");
    let (status, _) = api(admin, "/api/hits?cursor=abc", Some("police-token")).await;
    assert!(status.contains(" 400 "), "{status}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_addresses_are_masked_or_left_out_as_configured() {
    for (setting, expected) in [("masked", Some("127.0.0.0/24")), ("none", None)] {
        let config = SERVER_CONFIG.replace(
            "[hitlog]\n",
            &format!("[hitlog]\nclient_address = \"{setting}\"\n"),
        );
        let s = TestServer::start_with(&config).await;
        block(&s, LOOP, "porn.example.").await;
        flush(&s).await;
        let rows = rows(&s.district.path("hits.sqlite"));
        assert_eq!(rows[0]["client"].as_str(), expected, "{setting}");
        // A reader asking by address finds the masked record.
        let (_, body) = api(
            s.admin.unwrap(),
            "/api/hits?client=127.0.0.1",
            Some("police-token"),
        )
        .await;
        let found = body["hits"].as_array().unwrap().len();
        assert_eq!(found, usize::from(setting == "masked"), "{setting}: {body}");
        s.stop().await;
    }
}

/// An unwritable hit log is reported (metric, log) while DNS keeps answering; hits wait in
/// memory and are written once the path becomes writable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_hit_log_never_stops_dns_and_recovers() {
    // A file where the hit log's folder should be: nothing can be created under it.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "not a folder").unwrap();
    let path = blocker.join("hits.sqlite");
    let config = SERVER_CONFIG.replace(
        "path = \"@/hits.sqlite\"",
        &format!("path = \"{}\"", path.display()),
    );
    let s = TestServer::start_with(&config).await;
    for i in 0..20 {
        block(&s, LOOP, &format!("u{i}.porn.example.")).await;
    }
    let admin = s.admin.unwrap();
    let metric = |body: &str, name: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = http(admin, "GET", "/metrics", &[]).await;
        // Every hit is held (pending), none dropped, and the failure is counted.
        if metric(&body, "schooldns_hitlog_write_errors_total") > 0
            && metric(&body, "schooldns_hitlog_pending") == 20
        {
            assert_eq!(metric(&body, "schooldns_hitlog_dropped_total"), 0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expected a write error and 20 pending hits:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still answering.
    block(&s, LOOP, "porn.example.").await;
    std::fs::remove_file(&blocker).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // The file may exist a moment before its table does: count 0 until it can be read.
    let stored = |path: &Path| {
        Connection::open(path)
            .and_then(|c| c.query_row("SELECT count(*) FROM hits", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    while stored(&path) < 21 {
        assert!(
            Instant::now() < deadline,
            "hits never written after recovery"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(rows(&path).len(), 21);
    s.stop().await;
}

/// Records past retention are deleted in the background; a category override keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_records_are_deleted_per_category_retention() {
    let store_dir = tempfile::tempdir().unwrap();
    let path = store_dir.path().join("hits.sqlite");
    let day = 86_400_000;
    let now = schooldns::hitlog::now_ms();
    {
        let mut store = schooldns::hitlog::store::Store::open(&path).unwrap();
        let old = |days: i64, category: &str, name: &str| schooldns::hitlog::HitRecord {
            id: 0,
            time_ms: now - days * day,
            last_seen_ms: now - days * day,
            count: 1,
            school: Some("loop".into()),
            device: None,
            profile: Some("primary".into()),
            client: Some(LOOP.into()),
            protocol: "udp".into(),
            qname: name.into(),
            qtype: "A".into(),
            decision: "block".into(),
            category: category.into(),
            list: None,
            line: None,
            entry: None,
            cname: None,
            policy_version: "0".into(),
            service: None,
            instance: None,
        };
        let mut records = vec![
            old(40, "adult", "expired.example"),
            old(20, "adult", "kept.example"),
            old(300, "social", "kept-longer.example"),
            old(400, "social", "expired-social.example"),
        ];
        store.write(&mut records, &[]).unwrap();
    }
    let config = SERVER_CONFIG
        .replace(
            "path = \"@/hits.sqlite\"",
            &format!("path = \"{}\"\nretention_days = 30", path.display()),
        )
        .replace(
            "[admin]\n",
            "[hitlog.category_retention_days]\nsocial = 365\n[admin]\n",
        );
    let s = TestServer::start_with(&config).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = rows(&path)
            .iter()
            .map(|r| r["qname"].as_str().unwrap().to_string())
            .collect();
        if names.len() == 2 {
            assert_eq!(names, ["kept.example", "kept-longer.example"]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired records still there: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

/// A hit log written by an older schooldns (schema 1: one `hits` table of text columns) is
/// upgraded by the server's writer while DNS answers; its records keep their ids and fields and
/// are read back beside the new ones, by SQL and over the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_hit_log_is_upgraded_while_dns_answers() {
    let store_dir = tempfile::tempdir().unwrap();
    let path = store_dir.path().join("hits.sqlite");
    let now = schooldns::hitlog::now_ms();
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(schooldns::hitlog::schema::SCHEMA_1)
            .unwrap();
        let mut insert = old
            .prepare(
                "INSERT INTO hits VALUES (?1, ?2, ?2, ?3, 'loop', NULL, 'primary', '127.0.0.1', \
                 'udp', ?4, 'A', 'block', 'adult', 'blocklists/adult.txt', ?5, ?6, NULL, 'feed')",
            )
            .unwrap();
        insert
            .execute(rusqlite::params![
                40,
                now - 3_600_000,
                5,
                "old.example",
                2,
                "old.example"
            ])
            .unwrap();
        insert
            .execute(rusqlite::params![
                41,
                now - 60_000,
                1,
                "www.older.example",
                3,
                "*.older.example"
            ])
            .unwrap();
    }
    let before = rows(&path);
    let config = SERVER_CONFIG.replace(
        "path = \"@/hits.sqlite\"",
        &format!("path = \"{}\"", path.display()),
    );
    let s = TestServer::start_with(&config).await;
    block(&s, LOOP, "porn.example.").await;
    flush(&s).await;
    let after = rows(&path);
    assert_eq!(after.len(), 3, "{after:#?}");
    assert_eq!(after[..2], before[..]);
    assert_eq!(after[2]["qname"], "porn.example");
    assert_eq!(after[2]["category"], "adult");
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    let (status, body) = api(
        s.admin.unwrap(),
        "/api/hits?school=loop&category=adult&since=2h",
        Some("police-token"),
    )
    .await;
    assert!(status.contains(" 200 "), "{status} {body}");
    let names: Vec<&str> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["qname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["porn.example", "www.older.example", "old.example"]);
    assert_eq!(body["hits"][1]["entry"], "*.older.example");
    assert_eq!(body["hits"][2]["count"], 5);
    s.stop().await;
}

/// A new token in the config works after the live reload; a removed one stops working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_follow_config_reloads() {
    let s = TestServer::start().await;
    let admin = s.admin.unwrap();
    let (status, body) = api(admin, "/api/hits", Some("police-token")).await;
    assert!(status.contains(" 200 "), "{status} {body}");
    let text = std::fs::read_to_string(s.district.path("schooldns.toml")).unwrap();
    let police = schooldns::access::sha256_hex("police-token");
    let fresh = schooldns::access::sha256_hex("new-police-token");
    let reloads = s
        .reload_stats
        .succeeded
        .load(std::sync::atomic::Ordering::SeqCst);
    std::fs::write(
        s.district.path("schooldns.toml"),
        text.replace(&police, &fresh),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s
        .reload_stats
        .succeeded
        .load(std::sync::atomic::Ordering::SeqCst)
        == reloads
    {
        assert!(Instant::now() < deadline, "config change not reloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = api(admin, "/api/hits", Some("new-police-token")).await;
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(
        api(admin, "/api/hits", Some("police-token"))
            .await
            .0
            .contains(" 401 ")
    );
    s.stop().await;
}

/// `schooldns hits` lists, ranks, summarises and exports what the server recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_command_lists_ranks_summarises_and_exports() {
    let s = TestServer::start().await;
    for _ in 0..3 {
        block(&s, LOOP, "porn.example.").await;
    }
    block(&s, LOOP, "social.example.").await;
    block(&s, KIM_DONG, "www.porn.example.").await;
    flush(&s).await;
    let config = s.district.path("schooldns.toml");
    let hits = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_schooldns"))
            .arg("hits")
            .args(["--config", config.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, table, err) = hits(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(table.starts_with("time (Asia/Ho_Chi_Minh)"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.contains("lists/adult.txt:1 porn.example"), "{table}");

    let (_, csv, _) = hits(&["--format", "csv", "--school", "th-kim-dong"]);
    assert!(csv.starts_with('\u{feff}'), "CSV must start with a BOM");
    let lines: Vec<&str> = csv
        .trim_start_matches('\u{feff}')
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].starts_with("time_local (Asia/Ho_Chi_Minh),time_utc,"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(",Trường Tiểu học Kim Đồng,"),
        "{}",
        lines[1]
    );
    // Local time is UTC+7 in Hanoi.
    let fields: Vec<&str> = lines[1].split(',').collect();
    let utc: jiff::Timestamp = fields[1].parse().unwrap();
    let local = utc.to_zoned(jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap());
    assert_eq!(fields[0], local.strftime("%Y-%m-%d %H:%M:%S").to_string());

    let (_, top, _) = hits(&["--top", "names", "--format", "json"]);
    let top: Vec<Value> = top
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(top[0]["qname"], "porn.example");
    assert_eq!(
        (top[0]["hits"].as_i64(), top[0]["records"].as_i64()),
        (Some(3), Some(1))
    );

    let (_, top, _) = hits(&["--top", "schools"]);
    assert!(top.lines().nth(1).unwrap().starts_with("loop "), "{top}");

    let (_, summary, _) = hits(&["--summary", "--format", "json", "--category", "adult"]);
    let summary: Vec<Value> = summary
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let adult: i64 = summary.iter().map(|r| r["hits"].as_i64().unwrap()).sum();
    assert_eq!(adult, 4, "{summary:?}");

    let (_, json, _) = hits(&["--format", "json", "--client", KIM_DONG]);
    let one: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(one["qname"], "www.porn.example");

    let (code, _, err) = hits(&["--since", "last tuesday"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("--since") && err.contains("last tuesday"),
        "{err}"
    );

    // Several categories at once, and a part of the name.
    let (code, json, err) = hits(&["--format", "json", "--category", "adult,social"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(json.lines().count(), 3, "{json}");
    let (_, json, _) = hits(&[
        "--format",
        "json",
        "--category",
        "social",
        "--category",
        "adult",
    ]);
    assert_eq!(json.lines().count(), 3, "{json}");
    let (_, json, _) = hits(&["--format", "json", "--name", "WWW."]);
    assert_eq!(json.lines().count(), 1, "{json}");
    let (_, top, _) = hits(&["--top", "devices", "--format", "json"]);
    assert!(top.lines().all(|l| l.contains("\"device\"")), "{top}");
    // An unknown category or school is an error that names it, never an empty answer.
    for (flag, value) in [("--category", "malwar"), ("--school", "nowhere")] {
        let (code, out, err) = hits(&[flag, value]);
        assert_eq!(code, Some(2), "{flag} {value}: {out}");
        assert!(err.contains(value) && err.contains(flag), "{err}");
    }
    s.stop().await;
}

/// A district for the real binary: one school on loopback, hits in `hits.sqlite`, every hit
/// also as a JSON line in `hits.jsonl`.
fn binary_district() -> (District, std::path::PathBuf, u16) {
    let d = District::new();
    d.write("adult.txt", "porn.example\n");
    let port = free_port();
    let config = format!(
        "[server]\nudp = [\"127.0.0.1:{port}\"]\ntcp = []\n[upstream]\nservers = [\"127.0.0.1:9\"]\n\
         [hitlog]\npath = \"@/hits.sqlite\"\njson = \"@/hits.jsonl\"\n\
         [categories.adult]\nlists = [\"@/adult.txt\"]\n[profiles.primary]\nblock = [\"adult\"]\n\
         [[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"primary\"\n"
    );
    let path = d.config(&config);
    (d, path, port)
}

/// Sends blocked queries `n{from}..n{to}` and checks each is answered NXDOMAIN.
fn send_blocked(port: u16, from: usize, to: usize) {
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in from..to {
        let q = query_message(&format!("n{i}.porn.example."), RecordType::A, true)
            .to_vec()
            .unwrap();
        loop {
            assert!(Instant::now() < deadline, "no answer from schooldns serve");
            client.send_to(&q, ("127.0.0.1", port)).unwrap();
            if let Ok(n) = client.recv(&mut buf) {
                assert_eq!(buf[3] & 0x0f, 3, "NXDOMAIN");
                assert!(n > 12, "a whole answer");
                break;
            }
        }
    }
}

fn wait_exit(child: &mut std::process::Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "schooldns did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kill -9` loses nothing already committed (the writer commits new records within 200 ms; it
/// runs in `SCHED_IDLE`, so a busy test machine may delay it: wait for the commit rather than
/// assume its timing), and never corrupts the store.
#[test]
fn kill_9_keeps_every_committed_hit_and_never_corrupts() {
    let (d, config, port) = binary_district();
    let mut child = spawn_serve(&config, Stdio::null());
    send_blocked(port, 0, 300);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rows(&d.path("hits.sqlite")).len() < 300 {
        assert!(Instant::now() < deadline, "300 hits never committed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep queries coming while the process dies mid-write.
    let sender = std::thread::spawn(move || {
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 300..20_000 {
            let q = query_message(&format!("n{i}.porn.example."), RecordType::A, true)
                .to_vec()
                .unwrap();
            if client.send_to(&q, ("127.0.0.1", port)).is_err() {
                break;
            }
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = wait_exit(&mut child);
    sender.join().unwrap();
    let conn = Connection::open(d.path("hits.sqlite")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let first: i64 = conn
        .query_row("SELECT count(*) FROM hits WHERE CAST(substr(qname, 2, instr(qname, '.') - 2) AS INTEGER) < 300", [], |r| r.get(0))
        .unwrap();
    assert_eq!(first, 300);
}

/// `SIGTERM` writes everything buffered before exiting 0; each hit is also one JSON line.
#[test]
fn sigterm_flushes_every_hit_and_json_lines_are_written() {
    let (d, config, port) = binary_district();
    let mut child = spawn_serve(&config, Stdio::null());
    send_blocked(port, 0, 150);
    // Straight away: most of these are still in the writer's batch.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(wait_exit(&mut child), Some(0));
    let rows = rows(&d.path("hits.sqlite"));
    assert_eq!(rows.len(), 150);
    let jsonl = std::fs::read_to_string(d.path("hits.jsonl")).unwrap();
    let lines: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 150);
    assert_eq!(lines[0]["qname"], "n0.porn.example");
    assert_eq!(
        (lines[0]["school"].as_str(), lines[0]["category"].as_str()),
        (Some("a"), Some("adult"))
    );
}

/// `[hitlog]` settings follow a reload: records made after it leave the client out as the new
/// `client_address` says, and the reload names nothing as needing a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_log_settings_follow_a_reload() {
    let s = TestServer::start().await;
    block(&s, LOOP, "porn.example.").await;
    flush(&s).await;
    let config = std::fs::read_to_string(s.district.path("schooldns.toml")).unwrap();
    std::fs::write(
        s.district.path("schooldns.toml"),
        config.replace(
            "[hitlog]\n",
            "[hitlog]\nclient_address = \"none\"\nrepeat_window_secs = 1\nretention_days = 7\n",
        ),
    )
    .unwrap();
    let (status, _, body) = http(s.admin.unwrap(), "POST", "/reload", &[]).await;
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(!body.contains("restart"), "{body}");
    block(&s, LOOP, "www.porn.example.").await;
    flush(&s).await;
    let rows = rows(&s.district.path("hits.sqlite"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0]["client"].as_str(),
        Some(LOOP),
        "made before the reload"
    );
    assert_eq!(rows[1]["client"].as_str(), None, "made after it: {rows:?}");
    s.stop().await;
}

/// The read API as a police officer scripts it: several categories (repeated or comma
/// separated), a name part, a CSV export of exactly the filtered records, rankings by every
/// column, and a 400 naming any parameter, school or category it does not know, so a
/// misspelt filter never returns every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_takes_lists_names_csv_and_top_and_names_what_it_does_not_know() {
    let s = TestServer::start().await;
    let admin = s.admin.unwrap();
    for i in 0..5 {
        block(&s, LOOP, &format!("n{i}.porn.example.")).await;
    }
    for i in 0..3 {
        block(&s, KIM_DONG, &format!("k{i}.social.example.")).await;
    }
    block(&s, KIM_DONG, "tiktok-clips.porn.example.").await;
    flush(&s).await;
    let police = Some("police-token");
    let count = |body: &Value| body["hits"].as_array().map_or(0, Vec::len);

    for query in [
        "/api/hits?category=adult,social",
        "/api/hits?category=adult&category=social",
        "/api/hits?category=adult,%20social",
    ] {
        let (status, body) = api(admin, query, police).await;
        assert!(status.contains(" 200 "), "{query}: {status} {body}");
        assert_eq!(count(&body), 9, "{query}");
    }
    let (_, body) = api(admin, "/api/hits?category=social", police).await;
    assert_eq!(count(&body), 3);
    let (_, body) = api(admin, "/api/hits?name=TIKTOK", police).await;
    assert_eq!(count(&body), 1, "{body}");
    assert_eq!(body["hits"][0]["qname"], "tiktok-clips.porn.example");
    let (_, body) = api(admin, "/api/hits?name=_", police).await;
    assert_eq!(count(&body), 0, "`_` is an underscore, not a wildcard");
    let (_, body) = api(
        admin,
        "/api/hits?school=loop,th-kim-dong&category=adult",
        police,
    )
    .await;
    assert_eq!(count(&body), 6);

    for (query, named) in [
        ("/api/hits?categroy=adult", "categroy"),
        ("/api/hits?qname=x", "qname"),
        ("/api/hits?format=xml", "xml"),
        ("/api/hits?category=malwar", "malwar"),
        ("/api/hits?school=nowhere", "nowhere"),
        ("/api/hits?name=a&name=b", "name"),
        ("/api/summary?limit=5", "limit"),
        ("/api/top?by=colours", "by"),
        ("/api/top", "by"),
    ] {
        let (status, body) = api(admin, query, police).await;
        assert!(status.contains(" 400 "), "{query}: {status} {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(named), "{query}: {error}");
    }

    // CSV: exactly the filtered records, BOM first, local time beside UTC.
    let (status, head, csv) = http(
        admin,
        "GET",
        "/api/hits?category=adult&format=csv",
        &[("Authorization", "Bearer police-token")],
    )
    .await;
    assert!(status.contains(" 200 "), "{status}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/csv"), "{head}");
    assert!(head.contains("attachment"), "{head}");
    assert!(csv.starts_with('\u{feff}'), "BOM");
    let lines: Vec<&str> = csv.trim_end().lines().collect();
    assert_eq!(lines.len(), 1 + 6, "{csv}");
    assert!(
        lines[0].contains("time_local (Asia/Ho_Chi_Minh)"),
        "{}",
        lines[0]
    );
    assert!(lines[1..].iter().all(|l| l.contains(",adult,")), "{csv}");

    // Rankings, each within the reader's scope.
    let (status, top) = api(admin, "/api/top?by=schools", police).await;
    assert!(status.contains(" 200 "), "{status} {top}");
    assert_eq!(top["top"][0]["key"], "loop");
    assert_eq!(top["top"][0]["hits"], 5);
    assert_eq!(top["top"][1]["key"], "th-kim-dong");
    let (_, top) = api(admin, "/api/top?by=categories&school=th-kim-dong", police).await;
    assert_eq!(top["top"][0]["key"], "social", "{top}");
    let (_, top) = api(admin, "/api/top?by=names&limit=2", police).await;
    assert_eq!(top["top"].as_array().unwrap().len(), 2);
    let (_, top) = api(admin, "/api/top?by=schools", Some("loop-token")).await;
    assert_eq!(top["top"].as_array().unwrap().len(), 1, "{top}");
    assert_eq!(top["top"][0]["key"], "loop");
    let (status, _) = api(
        admin,
        "/api/top?by=names&school=th-kim-dong",
        Some("loop-token"),
    )
    .await;
    assert!(status.contains(" 403 "), "{status}");
    let (status, _) = api(
        admin,
        "/api/hits?school=loop,th-kim-dong",
        Some("loop-token"),
    )
    .await;
    assert!(status.contains(" 403 "), "{status}");
    s.stop().await;
}

/// Who read or exported what is itself recorded: every API read (refusals included) lands in
/// the audit log with the token's role, the reader's address and the filter, an export as
/// `export`; the district reads the log, a school's token may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_exports_are_audited() {
    let s = TestServer::start().await;
    let admin = s.admin.unwrap();
    block(&s, LOOP, "porn.example.").await;
    flush(&s).await;
    let (status, _) = api(admin, "/api/hits?category=adult", Some("police-token")).await;
    assert!(status.contains(" 200 "));
    let (status, _, _) = http(
        admin,
        "GET",
        "/api/hits?format=csv&school=loop",
        &[("Authorization", "Bearer loop-token")],
    )
    .await;
    assert!(status.contains(" 200 "));
    let (status, _) = api(admin, "/api/hits?school=th-kim-dong", Some("loop-token")).await;
    assert!(status.contains(" 403 "));
    flush(&s).await;

    let (status, body) = api(admin, "/api/audit", Some("police-token")).await;
    assert!(status.contains(" 200 "), "{status} {body}");
    let entries = body["audit"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{body}");
    // Newest first.
    let refused = &entries[0];
    assert!(
        refused["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:school:loop:"),
        "{refused}"
    );
    assert_eq!(refused["address"], "127.0.0.1");
    assert_eq!(refused["action"], "read");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("school=th-kim-dong")
            && refused["detail"]
                .as_str()
                .unwrap()
                .ends_with("403 Forbidden"),
        "{refused}"
    );
    assert_eq!(entries[1]["action"], "export");
    assert!(
        entries[1]["detail"]
            .as_str()
            .unwrap()
            .contains("format=csv")
    );
    assert!(
        entries[2]["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:district:")
    );
    assert!(
        entries[2]["detail"]
            .as_str()
            .unwrap()
            .contains("category=adult")
    );
    // The token itself is never written down.
    let bytes: Vec<u8> = ["hits.sqlite", "hits.sqlite-wal"]
        .iter()
        .flat_map(|f| std::fs::read(s.district.path(f)).unwrap_or_default())
        .collect();
    assert!(
        bytes.windows(6).any(|w| w == b"export"),
        "the entries are on disk"
    );
    assert!(!bytes.windows(10).any(|w| w == b"loop-token"));
    let (status, _) = api(admin, "/api/audit", Some("loop-token")).await;
    assert!(status.contains(" 403 "), "{status}");
    s.stop().await;
}

/// The daily rollup answers summaries exactly as the records do: kept by each batch (new
/// records and repeats), rebuilt from the records when it is new or the time zone changed,
/// and used only when it is complete and the filter fits whole days.
#[test]
fn the_daily_rollup_agrees_with_the_records() {
    use schooldns::hitlog::query::{HitFilter, summary, summary_exact};
    use schooldns::hitlog::store::{Repeat, Store};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hits.sqlite");
    let hanoi = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
    let paris = jiff::tz::TimeZone::get("Europe/Paris").unwrap();
    let hour = 3_600_000;
    let now = schooldns::hitlog::now_ms();
    let record = |i: i64, school: Option<&str>, category: &str| schooldns::hitlog::HitRecord {
        id: 0,
        time_ms: now - i * 5 * hour,
        last_seen_ms: now - i * 5 * hour,
        count: 1 + i % 3,
        school: school.map(str::to_string),
        device: None,
        profile: Some("primary".into()),
        client: Some(format!("10.0.0.{}", i % 7)),
        protocol: "udp".into(),
        qname: format!("n{i}.example"),
        qtype: "A".into(),
        decision: "block".into(),
        category: category.into(),
        list: None,
        line: None,
        entry: None,
        cname: None,
        policy_version: "0".into(),
        service: None,
        instance: None,
    };
    let batch = |from: i64| -> Vec<schooldns::hitlog::HitRecord> {
        (from..from + 60)
            .map(|i| {
                let school = [Some("a"), Some("b"), None][(i % 3) as usize];
                record(i, school, ["adult", "malware"][(i % 2) as usize])
            })
            .collect()
    };
    // Records written before the rollup existed.
    {
        let mut store = Store::open(&path).unwrap();
        store.write(&mut batch(0), &[]).unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    store.follow_zone(&hanoi).unwrap();
    let conn = schooldns::hitlog::store::open_reader(&path).unwrap();
    let all = HitFilter::default();
    assert!(
        !schooldns::hitlog::rollup::ready(&conn, &hanoi),
        "not rebuilt yet"
    );
    while store.backfill_rollup(7).unwrap() {}
    assert!(schooldns::hitlog::rollup::ready(&conn, &hanoi));
    // Later batches, with repeats of old and new records, keep it in step.
    let mut more = batch(100);
    store.write(&mut more, &[]).unwrap();
    let repeats = [
        Repeat {
            id: 3,
            count: 5,
            last_seen_ms: now,
        },
        Repeat {
            id: more[0].id,
            count: 2,
            last_seen_ms: now,
        },
    ];
    store.write(&mut batch(200), &repeats).unwrap();
    let total = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        (
            total("SELECT sum(hits) FROM rollup_days"),
            total("SELECT sum(records) FROM rollup_days")
        ),
        (
            total("SELECT sum(count) FROM records"),
            total("SELECT count(*) FROM records")
        ),
        "every record and repeat is in the rollup once"
    );
    let midnight = |days_back: i64| {
        let day = schooldns::hitlog::rollup::day_of(now, &hanoi) - days_back;
        schooldns::hitlog::rollup::day_start(day, &hanoi).unwrap()
    };
    for filter in [
        all.clone(),
        HitFilter {
            schools: vec!["a".into()],
            ..all.clone()
        },
        HitFilter {
            categories: vec!["malware".into()],
            since_ms: Some(midnight(6)),
            ..all.clone()
        },
        HitFilter {
            schools: vec!["b".into(), "zz".into()],
            since_ms: Some(midnight(20)),
            until_ms: Some(midnight(2)),
            ..all.clone()
        },
    ] {
        let exact = summary_exact(&conn, &filter, &hanoi).unwrap();
        assert!(!exact.is_empty());
        assert_eq!(
            summary(&conn, &filter, &hanoi).unwrap(),
            exact,
            "{filter:?}"
        );
    }
    // Another zone: rebuilt, and meanwhile summaries come from the records.
    store.follow_zone(&paris).unwrap();
    assert!(!schooldns::hitlog::rollup::ready(&conn, &paris));
    assert_eq!(
        summary(&conn, &all, &paris).unwrap(),
        summary_exact(&conn, &all, &paris).unwrap()
    );
    while store.backfill_rollup(1000).unwrap() {}
    assert!(schooldns::hitlog::rollup::ready(&conn, &paris));
    assert_eq!(
        summary(&conn, &all, &paris).unwrap(),
        summary_exact(&conn, &all, &paris).unwrap()
    );
}
