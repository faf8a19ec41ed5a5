//! District scale: several real resolvers (`schooldns serve`) on loopback ports, one throwaway
//! PostgreSQL cluster ([`crate::common::pg`]) as their shared hit store.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use schooldns::access::Role;

use crate::common::pg::Pg;
use crate::common::{District, dns, free_port, spawn_serve};

/// One resolver of the district: its own folder (config, spool, stderr), ports and process.
struct Resolver {
    district: District,
    child: std::process::Child,
    dns: SocketAddr,
    admin: SocketAddr,
    config: std::path::PathBuf,
}

impl Resolver {
    /// Starts instance `name` with `[hitlog]` keys `hitlog` and more tables `extra`, and waits
    /// until it answers.
    fn start(name: &str, hitlog: &str, extra: &str) -> Resolver {
        Resolver::launch(name, |port, admin| {
            format!(
                "[server]\nudp = [\"127.0.0.1:{port}\"]\ntcp = [\"127.0.0.1:{port}\"]\n\
                 [upstream]\nservers = [\"127.0.0.1:9\"]\ntimeout_ms = 300\n\
                 [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
                 [hitlog]\n{hitlog}\n\
                 [categories.adult]\nlists = [\"@/adult.txt\"]\n[profiles.primary]\nblock = [\"adult\"]\n\
                 [[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"127.0.0.0/24\"]\nprofile = \"primary\"\n\
                 {extra}\n"
            )
        })
    }

    /// Starts instance `name` on the config `config(dns port, admin port)` writes.
    fn launch(name: &str, config: impl FnOnce(u16, u16) -> String) -> Resolver {
        let district = District::new();
        district.write("adult.txt", "porn.example\n");
        let users = district.path("users.toml");
        schooldns::console::users::add(&users, "dist", &Role::District, None).unwrap();
        schooldns::console::users::set_password(&users, "dist", DISTRICT_PASSWORD).unwrap();
        let (port, admin) = (free_port(), free_port());
        let config = district.config(&config(port, admin));
        let stderr = std::fs::File::create(district.path("stderr.log")).unwrap();
        let child = spawn_serve(&config, std::process::Stdio::from(stderr));
        let resolver = Resolver {
            district,
            child,
            dns: ([127, 0, 0, 1], port).into(),
            admin: ([127, 0, 0, 1], admin).into(),
            config,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while ask(resolver.dns, &format!("ready.{name}.invalid")).is_none() {
            assert!(
                Instant::now() < deadline,
                "{name} never answered: {}",
                resolver.log()
            );
        }
        resolver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.district.path("stderr.log")).unwrap_or_default()
    }

    fn metrics(&self) -> String {
        let mut stream = std::net::TcpStream::connect(self.admin).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer district-token\r\n\
             Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    /// One metric's value (the first series of that name and labels).
    fn metric(&self, series: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The console password of `dist` (the district) in every resolver's users file.
const DISTRICT_PASSWORD: &str = "district-password";

/// One A query over UDP; the rcode, or `None` without an answer in 500 ms.
fn ask(server: SocketAddr, name: &str) -> Option<ResponseCode> {
    ask_from("127.0.0.1", server, name)
}

/// [`ask`] from the loopback address `from`.
fn ask_from(from: &str, server: SocketAddr, name: &str) -> Option<ResponseCode> {
    let query = dns::query_message(&format!("{name}."), RecordType::A, true)
        .to_vec()
        .unwrap();
    let client = std::net::UdpSocket::bind((from, 0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    client.send_to(&query, server).unwrap();
    let mut buf = [0u8; 1500];
    let n = client.recv(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).ok()?.response_code())
}

/// Signs `dist` in to a resolver's console; the `Cookie` header value.
async fn sign_in(admin: SocketAddr) -> String {
    let origin = format!("http://{admin}");
    let (status, head) = crate::console::post_form(
        admin,
        "/console/signin",
        &[("Origin", &origin)],
        &format!("user=dist&password={DISTRICT_PASSWORD}"),
    )
    .await;
    assert!(status.contains("303"), "{status}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: schooldns_session="))
        .and_then(|v| v.split(';').next())
        .unwrap();
    format!("schooldns_session={cookie}")
}

/// Waits until `check` holds, up to `limit`; false if it never did.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn spool(dir: &Path) -> std::path::PathBuf {
    dir.join("hits.sqlite")
}

/// Three resolvers, one PostgreSQL: blocked queries through each arrive exactly once, with
/// their repeats counted, the rollup agreeing, each record naming its instance; `hits` on one
/// instance reads the others' records; every instance is in each one's `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_resolvers_ship_every_hit_exactly_once() {
    let Some(pg) = Pg::start() else { return };
    let spools = tempfile::tempdir().unwrap();
    let names = ["r1", "r2", "r3"];
    // School b and the read API's tokens: the district's and school a's.
    let extra = format!(
        "[[schools]]\nid = \"b\"\nname = \"B\"\nnetworks = [\"127.0.1.0/24\"]\nprofile = \"primary\"\n\
         [[admin.tokens]]\nsha256 = \"{}\"\nrole = \"district\"\n\
         [[admin.tokens]]\nsha256 = \"{}\"\nrole = \"school:a\"\n\
         [console]\nusers = \"@/users.toml\"\n",
        schooldns::access::sha256_hex("district-token"),
        schooldns::access::sha256_hex("school-a-token")
    );
    let resolvers: Vec<Resolver> = names
        .iter()
        .map(|name| {
            let dir = spools.path().join(name);
            Resolver::start(name, &pg.hitlog_keys(name, &spool(&dir)), &extra)
        })
        .collect();
    // Ten blocked names from school b, through r3.
    for i in 0..10 {
        assert_eq!(
            ask_from(
                "127.0.1.1",
                resolvers[2].dns,
                &format!("b{i}.schoolb.porn.example")
            ),
            Some(ResponseCode::NXDomain)
        );
    }
    const EACH: usize = 200;
    for (name, resolver) in names.iter().zip(&resolvers) {
        for i in 0..EACH {
            let qname = format!("q{i}.{name}.porn.example");
            // Every fifth name is asked three times: one record, count 3.
            let times = if i % 5 == 0 { 3 } else { 1 };
            for _ in 0..times {
                assert_eq!(ask(resolver.dns, &qname), Some(ResponseCode::NXDomain));
            }
        }
    }
    let expected_hits = (EACH + EACH / 5 * 2) as i64;
    let shipped = eventually(Duration::from_secs(30), || {
        pg.count("SELECT count(*) FROM hits WHERE qname LIKE 'q%.porn.example'") == 3 * EACH as i64
            && pg.count(
                "SELECT coalesce(sum(count), 0) FROM hits WHERE qname LIKE 'q%.porn.example'",
            ) == 3 * expected_hits
    });
    assert!(
        shipped,
        "records in PostgreSQL: {}, hits {}; logs: {}",
        pg.psql("SELECT count(*) FROM hits WHERE qname LIKE 'q%.porn.example'"),
        pg.psql("SELECT sum(count) FROM hits WHERE qname LIKE 'q%.porn.example'"),
        resolvers[0].log()
    );
    for name in names {
        assert_eq!(
            pg.count(&format!(
                "SELECT count(DISTINCT qname) FROM hits WHERE instance = '{name}' \
                 AND qname LIKE '%.{name}.porn.example'"
            )),
            EACH as i64,
            "{name}'s names, each once"
        );
    }
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM (SELECT instance, qname FROM hits GROUP BY 1, 2 \
             HAVING count(*) > 1 AND qname LIKE 'q%') d"
        ),
        0,
        "no record twice"
    );
    assert_eq!(
        pg.count("SELECT count(*) FROM hits WHERE qname LIKE 'q0.%' AND count = 3"),
        3,
        "repeats folded and their counts shipped"
    );
    // The rollup agrees with the records.
    assert_eq!(
        pg.count("SELECT sum(hits) FROM rollup_days"),
        pg.count("SELECT sum(count) FROM records")
    );
    // `hits` on r1 reads r3's records from the shared store, naming the instance.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_schooldns"))
        .args(["hits", "--config"])
        .arg(&resolvers[0].config)
        .args(["--name", ".r3.porn", "--format", "json", "--limit", "0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), EACH, "{text}");
    assert!(
        text.lines().all(|l| l.contains("\"instance\":\"r3\"")),
        "{text}"
    );
    // Every instance's heartbeat is in each one's /metrics.
    assert!(eventually(Duration::from_secs(5), || {
        let metrics = resolvers[1].metrics();
        names.iter().all(|n| {
            metrics.contains(&format!(
                "schooldns_instance_heartbeat_age_seconds{{instance=\"{n}\"}}"
            ))
        })
    }));
    assert_eq!(resolvers[2].metric("schooldns_hitlog_postgres_up"), 1.0);
    assert_eq!(resolvers[2].metric("schooldns_hitlog_spool_backlog"), 0.0);
    assert!(eventually(Duration::from_secs(10), || pg
        .count("SELECT count(*) FROM hits WHERE school = 'b'")
        == 10));

    // The read API on r1 answers from every instance's records, with the same role scoping.
    let r1 = resolvers[0].admin;
    let get = |path: &'static str, token: &'static str| async move {
        let auth = format!("Bearer {token}");
        crate::common::http(r1, "GET", path, &[("Authorization", &auth)]).await
    };
    let (status, _, body) = get("/api/hits?name=.r2.porn&limit=1000", "district-token").await;
    assert!(status.contains("200"), "{status} {body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let hits = page["hits"].as_array().unwrap();
    assert_eq!(hits.len(), EACH, "{body}");
    assert!(hits.iter().all(|h| h["instance"] == "r2"), "{body}");
    let (_, _, body) = get("/api/hits?name=schoolb&limit=1000", "district-token").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["hits"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let (_, _, body) = get("/api/hits?name=schoolb&limit=1000", "school-a-token").await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["hits"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "school a's token never sees school b's records: {body}"
    );
    let (status, _, _) = get("/api/hits?school=b", "school-a-token").await;
    assert!(status.contains("403"), "{status}");
    let (status, _, body) = get("/api/top?by=schools", "district-token").await;
    assert!(
        status.contains("200") && body.contains("\"key\":\"b\""),
        "{status} {body}"
    );
    let (status, _, body) = get("/api/summary", "district-token").await;
    assert!(status.contains("200"), "{status} {body}");
    let summary: serde_json::Value = serde_json::from_str(&body).unwrap();
    let summed: i64 = summary["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hits"].as_i64().unwrap())
        .sum();
    assert_eq!(summed, pg.count("SELECT sum(count) FROM records"), "{body}");
    let (status, _, csv) = get("/api/hits?format=csv&name=schoolb", "district-token").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        csv.lines().filter(|l| l.ends_with(",r3")).count(),
        10,
        "{csv}"
    );
    // The reads above were audited on r1 and shipped with its hits (a moment later).
    let mut audit = String::new();
    for _ in 0..50 {
        let (status, _, body) = get("/api/audit", "district-token").await;
        assert!(status.contains("200"), "{status} {body}");
        audit = body;
        if audit.contains("/api/hits") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(audit.contains("/api/hits"), "{audit}");

    // The console on r2 reads the shared store on every page.
    let cookie = sign_in(resolvers[1].admin).await;
    let id = pg.count("SELECT id FROM hits WHERE qname = 'b3.schoolb.porn.example'");
    for (path, expect) in [
        ("/console/".to_string(), "q0.r1.porn.example".to_string()),
        (
            "/console/hits?school=b".to_string(),
            "b3.schoolb.porn.example".to_string(),
        ),
        (format!("/console/hits/{id}"), "r3".to_string()),
        ("/console/schools/b".to_string(), "schoolb".to_string()),
        ("/console/audit".to_string(), "/api/hits".to_string()),
        (
            "/console/instances".to_string(),
            "data-instance=\"r3\"".to_string(),
        ),
    ] {
        let (status, _, page) =
            crate::common::http(resolvers[1].admin, "GET", &path, &[("Cookie", &cookie)]).await;
        assert!(status.contains("200"), "{path}: {status} {page}");
        assert!(page.contains(&expect), "{path} lacks {expect}: {page}");
    }
}

/// PostgreSQL stopped for 60 s under load, then started: DNS answers every query meanwhile,
/// and afterwards PostgreSQL holds every blocked query exactly once.
#[test]
fn postgres_outage_loses_and_duplicates_nothing() {
    let Some(pg) = Pg::start() else { return };
    let spools = tempfile::tempdir().unwrap();
    let resolvers: Vec<Resolver> = ["o1", "o2", "o3"]
        .iter()
        .map(|name| {
            Resolver::start(
                name,
                &pg.hitlog_keys(name, &spool(&spools.path().join(name))),
                "",
            )
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = resolvers
        .iter()
        .enumerate()
        .map(|(r, resolver)| {
            let (server, stop) = (resolver.dns, std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut sent, mut answered) = (0u64, 0u64);
                // Bounded: at most 100 s and 40,000 queries.
                let deadline = Instant::now() + Duration::from_secs(100);
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && Instant::now() < deadline
                    && sent < 40_000
                {
                    let name = format!("load{sent}.o{r}.porn.example");
                    sent += 1;
                    if ask(server, &name) == Some(ResponseCode::NXDomain) {
                        answered += 1;
                    }
                    std::thread::sleep(Duration::from_millis(4));
                }
                (sent, answered)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(5));
    pg.stop();
    std::thread::sleep(Duration::from_secs(30));
    // Meanwhile the backlog grows and is visible.
    assert!(resolvers[0].metric("schooldns_hitlog_spool_backlog") > 0.0);
    assert_eq!(resolvers[0].metric("schooldns_hitlog_postgres_up"), 0.0);
    std::thread::sleep(Duration::from_secs(30));
    pg.restart();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let totals: Vec<(u64, u64)> = load.into_iter().map(|t| t.join().unwrap()).collect();
    for (r, (sent, answered)) in totals.iter().enumerate() {
        assert!(*sent > 1000, "load {r} sent only {sent}");
        assert_eq!(
            sent, answered,
            "resolver {r}: every query answered during the outage"
        );
    }
    let expected: i64 = totals.iter().map(|(sent, _)| *sent as i64).sum();
    let caught_up = eventually(Duration::from_secs(60), || {
        pg.count("SELECT count(*) FROM hits WHERE qname LIKE 'load%'") == expected
    });
    assert!(
        caught_up,
        "PostgreSQL holds {} of {expected}; {}",
        pg.psql("SELECT count(*) FROM hits WHERE qname LIKE 'load%'"),
        resolvers[0].log()
    );
    assert_eq!(
        pg.count("SELECT count(DISTINCT (instance, qname)) FROM hits WHERE qname LIKE 'load%'"),
        expected,
        "nothing twice"
    );
    assert!(resolvers[0].log().contains("DNS keeps answering"));
}

/// A spool that reaches `spool_max_mb` while PostgreSQL is unreachable drops new hits,
/// counts them and says so; DNS keeps answering.
#[test]
fn a_full_spool_drops_counts_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on the port: the shipper never connects.
    let hitlog = format!(
        "backend = \"postgres\"\nurl = \"postgres://schooldns@127.0.0.1:{}/schooldns\"\n\
         instance = \"full\"\nspool_max_mb = 1\npath = \"{}\"\n",
        free_port(),
        spool(dir.path()).display()
    );
    let resolver = Resolver::start("full", &hitlog, "");
    let mut i = 0;
    let dropped = eventually(Duration::from_secs(60), || {
        for _ in 0..500 {
            i += 1;
            assert_eq!(
                ask(
                    resolver.dns,
                    &format!("fill{i}.with-a-long-label-to-fill-pages.porn.example")
                ),
                Some(ResponseCode::NXDomain)
            );
        }
        resolver.metric("schooldns_hitlog_spool_dropped_total") > 0.0
    });
    assert!(dropped, "sent {i}, never dropped; {}", resolver.log());
    assert!(resolver.metric("schooldns_hitlog_dropped_total") > 0.0);
    assert!(
        resolver.log().contains("the spool is full"),
        "{}",
        resolver.log()
    );
    assert!(
        resolver
            .log()
            .contains("cannot connect to the PostgreSQL hit store"),
        "{}",
        resolver.log()
    );
}

/// Runs git in `dir`; panics with what it said.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=district",
            "-c",
            "user.email=it@district.example",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The district's files as its origin holds them: policy, list, console users and
/// exceptions.
const ORIGIN_CONFIG: &str = concat!(
    "[upstream]\nservers = [\"127.0.0.1:9\"]\ntimeout_ms = 300\n\
     [categories.adult]\nlists = [\"lists/adult.txt\"]\n[profiles.primary]\nblock = [\"adult\"]\n\
     [[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"127.0.0.0/24\"]\nprofile = \"primary\"\n",
    "[console]\nusers = \"users.toml\"\nexceptions = \"exceptions.toml\"\n"
);

/// [`ORIGIN_CONFIG`] without the console's files.
fn origin_policy() -> &'static str {
    &ORIGIN_CONFIG[..ORIGIN_CONFIG.find("[console]").unwrap()]
}

/// Commits everything in `work` and pushes it to the origin.
fn publish(work: &Path, message: &str) {
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", message]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
}

/// Three resolvers, one git origin: a list change committed there reaches all three within
/// `interval_secs` + 5 s; a broken commit is refused by all three (the old policy keeps
/// serving, and each says so); a change made in one instance's console is pushed to the
/// origin and reaches the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_resolvers_follow_one_git_origin() {
    if std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("SCHOOLDNS_REQUIRE_CLIENTS").is_none(),
            "git is missing"
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let origin = root.path().join("origin.git");
    let work = root.path().join("work");
    git(
        root.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
    );
    git(
        root.path(),
        &[
            "clone",
            "-q",
            origin.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    git(&work, &["checkout", "-q", "-b", "main"]);
    std::fs::write(work.join("schooldns.toml"), ORIGIN_CONFIG).unwrap();
    std::fs::create_dir_all(work.join("lists")).unwrap();
    std::fs::write(work.join("lists/adult.txt"), "porn.example\n").unwrap();
    let users = work.join("users.toml");
    schooldns::console::users::add(&users, "dist", &schooldns::access::Role::District, None)
        .unwrap();
    schooldns::console::users::set_password(&users, "dist", "district-password").unwrap();
    publish(&work, "The district's first config");

    const INTERVAL: u64 = 2;
    // With PostgreSQL installed (always in CI) the three share the hit store too, as a
    // district runs them; the Resolvers page then lists all three.
    let pg = Pg::start();
    let resolvers: Vec<Resolver> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| {
            let checkout = root.path().join(name).join("origin");
            let origin = origin.clone();
            let hitlog = match &pg {
                Some(pg) => pg.hitlog_keys(name, &root.path().join(name).join("hits.sqlite")),
                None => format!("path = \"@/hits.sqlite\"\ninstance = \"{name}\"\n"),
            };
            Resolver::launch(name, move |port, admin| {
                format!(
                    "[server]\nudp = [\"127.0.0.1:{port}\"]\ntcp = [\"127.0.0.1:{port}\"]\n\
                     [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
                     [hitlog]\n{hitlog}\n\
                     [sync]\norigin = \"{}\"\ninterval_secs = {INTERVAL}\ncheckout = \"{}\"\n",
                    origin.display(),
                    checkout.display()
                )
            })
        })
        .collect();
    let all_say =
        |name: &str, code: ResponseCode| resolvers.iter().all(|r| ask(r.dns, name) == Some(code));
    assert!(all_say("porn.example", ResponseCode::NXDomain));
    assert!(
        all_say("fresh.example", ResponseCode::ServFail),
        "not listed yet"
    );

    // The district signs in to s1's console.
    let admin = resolvers[0].admin;
    let origin_header = format!("http://{admin}");
    let (status, head) = crate::console::post_form(
        admin,
        "/console/signin",
        &[("Origin", &origin_header)],
        "user=dist&password=district-password",
    )
    .await;
    assert!(status.contains("303"), "{status}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: schooldns_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    let cookie = format!("schooldns_session={cookie}");
    // A list change committed to the origin.
    std::fs::write(
        work.join("lists/adult.txt"),
        "porn.example\nfresh.example\n",
    )
    .unwrap();
    publish(&work, "Block fresh.example");
    let pushed = Instant::now();
    assert!(
        eventually(Duration::from_secs(INTERVAL + 5), || all_say(
            "fresh.example",
            ResponseCode::NXDomain
        )),
        "not everywhere within interval + 5 s: {}",
        resolvers[0].log()
    );
    let took = pushed.elapsed();
    eprintln!("a list change reached all three in {} ms", took.as_millis());
    let head = git(&work, &["rev-parse", "HEAD"]);
    for r in &resolvers {
        assert!(
            r.metrics().contains(&format!(
                "schooldns_sync_version_info{{version=\"{head}\"}} 1"
            )),
            "{}",
            r.metrics()
        );
    }

    // A broken commit: refused by all three, the old policy keeps serving.
    std::fs::write(
        work.join("lists/adult.txt"),
        "porn.example\nfresh.example\nbroken.example\n",
    )
    .unwrap();
    let mut config = ORIGIN_CONFIG.to_string();
    config.push_str("[profiles.primary\n");
    std::fs::write(work.join("schooldns.toml"), &config).unwrap();
    publish(&work, "A broken config");
    assert!(
        eventually(Duration::from_secs(INTERVAL + 5), || resolvers
            .iter()
            .all(|r| r.metric("schooldns_sync_refused_total") >= 1.0)),
        "not refused everywhere: {}",
        resolvers[0].log()
    );
    for r in &resolvers {
        assert_eq!(r.metric("schooldns_sync_behind"), 1.0);
        assert!(r.log().contains("refused"), "{}", r.log());
        assert!(
            r.log().contains("schooldns.toml"),
            "the error names the file: {}",
            r.log()
        );
    }
    assert!(
        all_say("fresh.example", ResponseCode::NXDomain),
        "the old policy serves"
    );
    // The console's resolvers page says this instance is behind the origin, and why.
    let (status, _, page) =
        crate::common::http(admin, "GET", "/console/instances", &[("Cookie", &cookie)]).await;
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("data-instance=\"s1\""), "{page}");
    assert!(page.contains("badge behind"), "{page}");
    assert!(page.contains("does not compile"), "{page}");
    if let Some(pg) = &pg {
        // Every resolver's heartbeat says which version it serves and why it is behind.
        let mut page = String::new();
        for _ in 0..50 {
            page = crate::common::http(admin, "GET", "/console/instances", &[("Cookie", &cookie)])
                .await
                .2;
            if page.matches("badge behind").count() == 3 && page.matches("sync-error").count() == 3
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(page.matches("badge behind").count(), 3, "{page}");
        assert_eq!(page.matches("sync-error").count(), 3, "{page}");
        // fresh.example was blocked through each of the three: one shared store saw it.
        assert_eq!(
            pg.count("SELECT count(DISTINCT instance) FROM hits WHERE qname = 'fresh.example'"),
            3
        );
    }
    assert!(
        all_say("broken.example", ResponseCode::ServFail),
        "the broken version is not in"
    );

    // Fixed at the origin: taken again.
    std::fs::write(work.join("schooldns.toml"), ORIGIN_CONFIG).unwrap();
    publish(&work, "Fix the config");
    assert!(eventually(Duration::from_secs(INTERVAL + 5), || all_say(
        "broken.example",
        ResponseCode::NXDomain
    )));

    // The district allows porn.example for school a in s1's console: pushed to the origin,
    // pulled by s2 and s3.
    let (_, _, page) =
        crate::common::http(admin, "GET", "/console/exceptions", &[("Cookie", &cookie)]).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let (status, _) = crate::console::post_form(
        admin,
        "/console/exceptions",
        &[("Cookie", &cookie), ("Origin", &origin_header)],
        &format!("csrf={csrf}&name=porn.example&action=allow&school=a&for=good&reason=lesson"),
    )
    .await;
    assert!(status.contains("303"), "{status}");
    let allowed = tokio::task::block_in_place(|| {
        eventually(Duration::from_secs(INTERVAL * 2 + 5), || {
            all_say("porn.example", ResponseCode::ServFail)
        })
    });
    assert!(
        allowed,
        "s1: {}\ns2: {}",
        resolvers[0].log(),
        resolvers[1].log()
    );
    git(&work, &["pull", "-q", "origin", "main"]);
    assert!(git(&work, &["log", "-1", "--format=%s"]).contains("console on s1"));
    assert!(
        std::fs::read_to_string(work.join("exceptions.toml"))
            .unwrap()
            .contains("porn.example")
    );
}

/// Serves `bundle` at any path over HTTP/1.1 on loopback, with an ETag, until the test ends.
fn serve_bundle(bundle: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let body = bundle.lock().unwrap().clone();
            let etag = format!(
                "\"{}-{}\"",
                body.len(),
                body.iter().map(|b| *b as u64).sum::<u64>()
            );
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let response = if head.contains(&format!("if-none-match: {etag}")) {
                format!("HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
            } else {
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\nETag: {etag}\r\nContent-Type: application/gzip\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(&body);
                r
            };
            let _ = stream.write_all(&response);
        }
    });
    addr
}

/// `tar -czf` of `dir`'s files.
fn tar_gz(dir: &Path) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .args(["-czf", "-", "-C"])
        .arg(dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// An HTTPS-style bundle origin (served over HTTP on loopback here): pulled, a new bundle
/// swapped in within `interval_secs` + 5 s, a broken one refused.
#[test]
fn a_bundle_origin_is_pulled_and_checked() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    std::fs::create_dir_all(tree.join("lists")).unwrap();
    std::fs::write(tree.join("schooldns.toml"), origin_policy()).unwrap();
    std::fs::write(tree.join("lists/adult.txt"), "porn.example\n").unwrap();
    let bundle = std::sync::Arc::new(std::sync::Mutex::new(tar_gz(&tree)));
    let web = serve_bundle(std::sync::Arc::clone(&bundle));
    let checkout = root.path().join("copy");
    let resolver = Resolver::launch("b1", |port, admin| {
        format!(
            "[server]\nudp = [\"127.0.0.1:{port}\"]\ntcp = [\"127.0.0.1:{port}\"]\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [hitlog]\npath = \"@/hits.sqlite\"\n\
             [sync]\norigin = \"http://{web}/district.tar.gz\"\ninterval_secs = 1\ncheckout = \"{}\"\n",
            checkout.display()
        )
    });
    assert_eq!(
        ask(resolver.dns, "porn.example"),
        Some(ResponseCode::NXDomain)
    );
    assert_eq!(
        ask(resolver.dns, "fresh.example"),
        Some(ResponseCode::ServFail)
    );
    std::fs::write(
        tree.join("lists/adult.txt"),
        "porn.example\nfresh.example\n",
    )
    .unwrap();
    *bundle.lock().unwrap() = tar_gz(&tree);
    assert!(
        eventually(Duration::from_secs(6), || ask(
            resolver.dns,
            "fresh.example"
        ) == Some(ResponseCode::NXDomain)),
        "{}",
        resolver.log()
    );
    assert!(
        resolver
            .metrics()
            .contains("schooldns_sync_version_info{version=\"sha256:")
    );
    // A bundle whose config does not compile: refused, the last good one serves.
    std::fs::write(
        tree.join("lists/adult.txt"),
        "porn.example\nfresh.example\nbroken.example\n",
    )
    .unwrap();
    std::fs::write(tree.join("schooldns.toml"), "[profiles.primary\n").unwrap();
    *bundle.lock().unwrap() = tar_gz(&tree);
    assert!(
        eventually(Duration::from_secs(6), || resolver
            .metric("schooldns_sync_refused_total")
            >= 1.0),
        "{}",
        resolver.log()
    );
    assert_eq!(
        ask(resolver.dns, "fresh.example"),
        Some(ResponseCode::NXDomain)
    );
    assert_eq!(
        ask(resolver.dns, "broken.example"),
        Some(ResponseCode::ServFail)
    );
    assert_eq!(
        std::fs::read_to_string(checkout.join("lists/adult.txt")).unwrap(),
        "porn.example\nfresh.example\n",
        "the copy keeps the version being served"
    );
}
