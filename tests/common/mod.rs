//! Helpers shared by the integration tests: a temporary district with config and lists.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use schooldns::config::LoadedConfig;
use schooldns::name::QueryName;
use schooldns::policy::{Compiler, Explanation, Policy};

/// A temporary folder holding a config file and list files; paths in the config are written
/// relative to it and resolved by making them absolute before compiling.
pub struct District {
    pub dir: tempfile::TempDir,
}

impl District {
    pub fn new() -> District {
        District {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating folders).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes `schooldns.toml`, replacing `@/` with this folder's absolute path.
    pub fn config(&self, text: &str) -> PathBuf {
        let root = format!("{}/", self.dir.path().display());
        self.write("schooldns.toml", &text.replace("@/", &root))
    }

    pub fn load(&self) -> LoadedConfig {
        LoadedConfig::read(&self.path("schooldns.toml")).expect("config parses")
    }

    pub fn compile(&self) -> Policy {
        Compiler::default()
            .compile(&self.load())
            .unwrap_or_else(|e| panic!("compile: {e}"))
    }
}

/// Decides and explains in one call.
pub fn explain(policy: &Policy, client: &str, name: &str) -> Explanation {
    let client: IpAddr = client.parse().unwrap();
    let q = QueryName::from_user(name).unwrap();
    let d = policy.decide(client, &q);
    policy.explain(client, &q, &d)
}

/// The repository root (where `config/` and `blocklists/` are).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture's path.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

pub mod dns;
pub mod pg;
pub mod tls;
pub mod webdriver;

/// A loopback port free for both UDP and TCP right now, for a spawned server to bind: bind,
/// read, release (the server binds it again right away).
///
/// Ports come from below the kernel's ephemeral range (32768 and up), so no socket another test
/// binds to port 0 or connects from can take the port between our release and the server's bind;
/// a per-process counter keeps this process's callers apart from each other.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    loop {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let Ok(_udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts the real `schooldns serve` on `config` with one worker thread.
pub fn spawn_serve(config: &std::path::Path, stderr: std::process::Stdio) -> std::process::Child {
    spawn_serve_with(config, stderr, &["--threads", "1"])
}

/// `schooldns serve --config CONFIG` with these extra arguments.
pub fn spawn_serve_with(
    config: &std::path::Path,
    stderr: std::process::Stdio,
    extra: &[&str],
) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_schooldns"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// One HTTP/1.1 request with extra headers; returns (status line, head, body).
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (
        head.lines().next().unwrap().to_string(),
        head.to_string(),
        body,
    )
}

/// The body of an HTTP/1.1 chunked response (RFC 9112 §7.1), as a client reassembles it.
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

/// A running server on loopback ports with a fake upstream, over a temporary district.
pub struct TestServer {
    pub district: District,
    pub upstream: dns::FakeUpstream,
    pub udp: std::net::SocketAddr,
    pub tcp: std::net::SocketAddr,
    pub admin: Option<std::net::SocketAddr>,
    /// The first DoT and DoH listeners, when configured.
    pub dot: Option<std::net::SocketAddr>,
    pub doh: Option<std::net::SocketAddr>,
    pub reload_stats: std::sync::Arc<schooldns::reload::ReloadStats>,
    /// The hit log's sender (`flush` waits until recorded hits are on disk).
    pub hits: schooldns::hitlog::HitSender,
    /// The live policy.
    pub live: std::sync::Arc<schooldns::live::Live>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The lists and schools every server test uses: 127.0.0.1 is a primary school, 127.0.0.3 its
/// staff subnet, 127.0.0.5 is in no network, 127.0.0.9 is a second school (Kim Đồng).
/// Hit-log readers: `police-token` (district), `loop-token` (school loop), `kimdong-token`
/// (school th-kim-dong).
pub const SERVER_CONFIG: &str = r#"
[server]
udp = ["127.0.0.1:0"]
tcp = ["127.0.0.1:0"]
[upstream]
servers = ["@UPSTREAM"]
timeout_ms = 800
retry_after_secs = 1
[cache]
max_entries = 1000
stale_max = 3600
[reload]
debounce_ms = 100
[admin]
listen = "127.0.0.1:0"
[[admin.tokens]]
sha256 = "cb5d147fe90002419bc04e236ec949fed9be451aba58a12bff5aa1fc72bc4082"
role = "district"
[[admin.tokens]]
sha256 = "65ad3260eb6b1000250ec127034a950a5d94cbafb6279b4e84fb5f4c8193e8b6"
role = "school:loop"
[[admin.tokens]]
sha256 = "22fa62db0f4883ac3ba33c3191bd2942023d465532753378b1050ee55fc4b159"
role = "school:th-kim-dong"
[hitlog]
path = "@/hits.sqlite"
timezone = "Asia/Ho_Chi_Minh"
[categories.adult]
lists = ["@/lists/adult.txt"]
[categories.social]
lists = ["@/lists/social.adblock"]
[categories.education]
lists = ["@/lists/education.txt"]
[profiles.primary]
block = ["adult", "social"]
allow = ["education"]
answer = "nxdomain"
[profiles.staff]
block = ["adult"]
allow = ["education"]
answer = "null"
safe_search = "off"
bypass_protection = false
[[schools]]
id = "loop"
name = "Loopback school"
networks = ["127.0.0.0/30"]
profile = "primary"
subnets = { "127.0.0.3/32" = "staff" }
[[schools]]
id = "th-kim-dong"
name = "Trường Tiểu học Kim Đồng"
networks = ["127.0.0.8/30"]
profile = "primary"
"#;

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(SERVER_CONFIG).await
    }

    pub async fn start_with(config: &str) -> TestServer {
        TestServer::start_prepared(config, |_| {}).await
    }

    /// Like [`TestServer::start_with`], with `prepare` writing more files (devices,
    /// certificates) into the district before the server starts.
    pub async fn start_prepared(config: &str, prepare: impl FnOnce(&District)) -> TestServer {
        let district = District::new();
        prepare(&district);
        district.write("lists/adult.txt", "porn.example\nblocked-target.example\n");
        district.write("lists/social.adblock", "||social.example^\n");
        district.write("lists/education.txt", "wiki.porn.example\n");
        let upstream = dns::FakeUpstream::start().await;
        let config = config.replace("@UPSTREAM", &upstream.addr.to_string());
        let path = district.config(&config);
        let server = schooldns::app::App::bind(&path)
            .await
            .expect("server binds");
        let udp = server.udp_addrs()[0];
        let tcp = server.tcp_addrs()[0];
        let admin = server.admin_addr();
        let dot = server.dot_addrs().first().copied();
        let doh = server.doh_addrs().first().copied();
        let reload_stats = server.reload_stats();
        let hits = server.hits();
        let live = server.live();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(server.run(shutdown));
        TestServer {
            district,
            upstream,
            udp,
            tcp,
            admin,
            dot,
            doh,
            reload_stats,
            hits,
            live,
            stop,
            task,
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.stop_keep_district().await;
    }

    /// Stops the server and hands back its district (config, lists, caches) for a restart.
    pub async fn stop_keep_district(self) -> District {
        let _ = self.stop.send(true);
        tokio::time::timeout(std::time::Duration::from_secs(20), self.task)
            .await
            .expect("server stops within 20 s")
            .unwrap()
            .unwrap();
        self.district
    }
}

/// CPU numbers of a `Cpus_allowed_list` (`0-1,4`).
pub fn parse_cpus(list: &str) -> Vec<usize> {
    list.split(',')
        .filter(|p| !p.is_empty())
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).collect::<Vec<usize>>(),
            None => vec![part.parse().unwrap()],
        })
        .collect()
}

/// The real `schooldns serve` binary on a district of its own, its standard error kept in a
/// file (readable while it runs); killed when dropped.
pub struct RealServer {
    pub district: District,
    pub child: std::process::Child,
    /// UDP and TCP share this address.
    pub dns: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
}

/// Config lines for [`RealServer`]: more `[server]` keys, more `[admin]` keys, and whole
/// tables at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Keys<'a> {
    pub server: &'a str,
    pub admin: &'a str,
    pub extra: &'a str,
}

/// A district served by [`RealServer`]: `127.0.0.0/24` is school "a" (profile primary, which
/// blocks `porn.example`), the upstream is a closed port.
pub fn real_server_config(udp: u16, admin: u16, keys: &Keys<'_>) -> String {
    let Keys {
        server,
        admin: admin_keys,
        extra,
    } = keys;
    format!(
        "[server]\nudp = [\"127.0.0.1:{udp}\"]\ntcp = [\"127.0.0.1:{udp}\"]\n{server}\n\
         [upstream]\nservers = [\"127.0.0.1:9\"]\ntimeout_ms = 300\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n{admin_keys}\n\
         [hitlog]\npath = \"@/hitlog/hits.sqlite\"\n\
         [categories.adult]\nlists = [\"@/adult.txt\"]\n[profiles.primary]\nblock = [\"adult\"]\n\
         [[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"127.0.0.0/24\"]\nprofile = \"primary\"\n\
         {extra}\n"
    )
}

impl RealServer {
    /// Starts the binary on [`real_server_config`] with `extra` appended; returns once it
    /// answers a blocked name over UDP.
    pub fn start(extra: &str) -> RealServer {
        RealServer::start_keys(
            Keys {
                extra,
                ..Keys::default()
            },
            |_| {},
        )
    }

    /// Like [`RealServer::start`], with `prepare` writing files first.
    pub fn start_prepared(extra: &str, prepare: impl FnOnce(&District)) -> RealServer {
        RealServer::start_keys(
            Keys {
                extra,
                ..Keys::default()
            },
            prepare,
        )
    }

    /// Like [`RealServer::start`], with keys in any section.
    pub fn with(keys: Keys<'_>) -> RealServer {
        RealServer::start_keys(keys, |_| {})
    }

    /// Like [`RealServer::start`], with keys in any section and `prepare` writing files first.
    pub fn start_keys(keys: Keys<'_>, prepare: impl FnOnce(&District)) -> RealServer {
        let district = District::new();
        district.write("adult.txt", "porn.example\n");
        std::fs::create_dir_all(district.path("hitlog")).unwrap();
        prepare(&district);
        let (port, admin) = (free_port(), free_port());
        let path = district.config(&real_server_config(port, admin, &keys));
        let stderr = std::fs::File::create(district.path("stderr.log")).unwrap();
        let child = spawn_serve(&path, std::process::Stdio::from(stderr));
        let server = RealServer {
            district,
            child,
            dns: ([127, 0, 0, 1], port).into(),
            admin: ([127, 0, 0, 1], admin).into(),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while server.answers_udp().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "schooldns never answered: {}",
                server.log()
            );
        }
        server
    }

    /// The rcode of one blocked-name query over UDP, `None` without an answer in 300 ms.
    pub fn answers_udp(&self) -> Option<hickory_proto::op::ResponseCode> {
        let query = dns::query_message("www.porn.example.", hickory_proto::rr::RecordType::A, true)
            .to_vec()
            .unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        client.send_to(&query, self.dns).unwrap();
        let mut buf = [0u8; 1500];
        let n = client.recv(&mut buf).ok()?;
        Some(
            hickory_proto::op::Message::from_vec(&buf[..n])
                .ok()?
                .response_code(),
        )
    }

    /// What the server wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.district.path("stderr.log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
