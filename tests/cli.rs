//! The real `schooldns` binary: `check` and `explain`, good and bad configs.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::common::{District, free_port, repo_root, spawn_serve, spawn_serve_with};

fn schooldns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_schooldns"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run schooldns")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_reports_schools_profiles_and_categories_of_the_shipped_config() {
    let out = schooldns(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "config/schooldns.toml: OK",
        "th-kim-dong — Trường Tiểu học Kim Đồng",
        "10.1.9.0/24 → staff",
        "lower-secondary",
        "education",
        "(any other network) → refused",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // A skipped line is shown with file:line and reason.
    assert!(
        text.contains("blocklists/ut1/dating/domains:27: IP address, not a domain name"),
        "{text}"
    );
}

fn explain_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["explain", "--json"];
    all.extend_from_slice(args);
    let out = schooldns(&all);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn explain_json_gives_decision_school_profile_category_and_rule() {
    let rows = explain_json(&[
        "--client",
        "10.1.2.3",
        "phishing-test.schooldns.invalid",
        "wikipedia.org",
        "www.google.com",
        "unlisted.example",
    ]);
    assert_eq!(rows.len(), 4);
    let block = &rows[0];
    assert_eq!(block["decision"], "block");
    assert_eq!(block["school"], "th-kim-dong");
    assert_eq!(block["profile"], "primary");
    assert_eq!(block["category"], "phishing");
    assert_eq!(block["rule"]["list"], "blocklists/phishing.txt");
    assert_eq!(block["rule"]["line"], 4);
    assert_eq!(block["rule"]["entry"], "phishing-test.schooldns.invalid");
    assert_eq!(rows[1]["decision"], "allow");
    assert_eq!(rows[1]["category"], "education");
    assert_eq!(rows[2]["decision"], "rewrite");
    assert_eq!(rows[2]["rewrite"], "forcesafesearch.google.com");
    assert_eq!(rows[3]["decision"], "allow");
    assert!(rows[3]["rule"].is_null());

    let refused = explain_json(&["--client", "203.0.113.9", "wikipedia.org"]);
    assert_eq!(refused[0]["decision"], "refuse");
    assert!(refused[0]["school"].is_null());
}

#[test]
fn explain_reads_names_from_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_schooldns"))
        .args(["explain", "-", "--client", "10.1.9.5"])
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"phishing-test.schooldns.invalid\r\n\nwww.fake-login.schooldns.invalid\nfacebook.com\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("decision:  block").count(), 2, "{text}");
    // Staff subnet: social media is not blocked for teachers.
    assert!(
        text.contains("facebook.com\n  client:    10.1.9.5 → school th-kim-dong"),
        "{text}"
    );
    assert!(text.contains("profile staff"), "{text}");
    assert!(text.contains("blocklists/phishing.txt:5"), "{text}");
}

#[test]
fn explain_reports_invalid_names_and_exits_non_zero() {
    let out = schooldns(&["explain", "--client", "10.1.2.3", "bad..name", "ok.example"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("bad..name\n  error: not a domain name: empty label"),
        "{text}"
    );
    assert!(text.contains("ok.example\n"), "{text}");
}

/// Runs `check` on a config written into a temporary district and returns stderr.
fn check_fails(d: &District, config: &str) -> String {
    let path = d.config(config);
    let out = schooldns(&["check", "--config", path.to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "expected failure, got:\n{}",
        stdout(&out)
    );
    assert_eq!(out.status.code(), Some(2));
    stderr(&out)
}

const BASE: &str = r#"
[categories.adult]
lists = ["@/adult.txt"]
[profiles.primary]
block = ["adult"]
[[schools]]
id = "a"
name = "School A"
networks = ["10.1.0.0/16"]
profile = "primary"
"#;

#[test]
fn bad_configs_name_file_line_and_key() {
    let d = District::new();
    d.write("adult.txt", "porn.example\n");
    let file = d.path("schooldns.toml").display().to_string();

    let err = check_fails(
        &d,
        &format!("{BASE}\n[hitlog]\npath = \"x\"\nretention = 3\n"),
    );
    assert!(
        err.contains(&format!(
            "{file}:14:1: hitlog.retention: unknown field `retention`"
        )),
        "{err}"
    );

    let err = check_fails(
        &d,
        &BASE.replace("block = [\"adult\"]", "block = [\"adult\", \"gamblin\"]"),
    );
    assert!(
        err.contains(&format!("{file}:5:"))
            && err.contains("profiles.primary.block: unknown category \"gamblin\" (known: adult)"),
        "{err}"
    );

    let two_schools = format!(
        "{BASE}\n[[schools]]\nid = \"b\"\nname = \"School B\"\nnetworks = [\"10.1.0.0/16\"]\nprofile = \"primary\"\n"
    );
    let err = check_fails(&d, &two_schools);
    assert!(
        err.contains(&format!("{file}:15:"))
            && err.contains(
                "schools[1].networks: network 10.1.0.0/16 is already claimed by school \"a\""
            ),
        "{err}"
    );

    let err = check_fails(&d, &BASE.replace("@/adult.txt", "@/missing.txt"));
    assert!(
        err.contains(&format!("{file}:3:"))
            && err.contains("categories.adult.lists: cannot read list")
            && err.contains("missing.txt"),
        "{err}"
    );

    let err = check_fails(
        &d,
        &BASE.replace("profile = \"primary\"", "profile = \"primry\""),
    );
    assert!(
        err.contains("schools[0].profile: unknown profile \"primry\""),
        "{err}"
    );

    let err = check_fails(
        &d,
        &BASE.replace(
            "block = [\"adult\"]",
            "block = [\"adult\"]\nanswer = \"sinkhole\"",
        ),
    );
    assert!(
        err.contains("profiles.primary.answer: \"sinkhole\" is not"),
        "{err}"
    );

    let err = check_fails(&d, &BASE.replace("10.1.0.0/16", "10.1.0.0/33"));
    assert!(
        err.contains("schools[0].networks: \"10.1.0.0/33\" is not a CIDR network"),
        "{err}"
    );

    let err = check_fails(
        &d,
        &format!("{BASE}\nsubnets = {{ \"10.9.0.0/24\" = \"primary\" }}\n"),
    );
    assert!(
        err.contains("subnet 10.9.0.0/24 is not inside any of this school's networks"),
        "{err}"
    );

    let err = check_fails(&d, "[server]\nudp = [\"127.0.0.1\"]\n");
    assert!(
        err.contains(&format!("{file}:2:")) && err.contains("server.udp"),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let out = schooldns(&["check", "--config", "/nonexistent/schooldns.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/schooldns.toml: cannot read config"));
}

/// `schooldns serve` answers on its configured port and exits 0 on SIGTERM.
#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::RecordType;
    use std::time::{Duration, Instant};

    let d = District::new();
    d.write("adult.txt", "porn.example\n");
    let port = free_port();
    let config = format!(
        "[server]\nudp = [\"127.0.0.1:{port}\"]\ntcp = []\n[hitlog]\npath = \"@/hits.sqlite\"\n[upstream]\nservers = [\"127.0.0.1:9\"]\ntimeout_ms = 300\n{BASE}"
    )
    .replace("10.1.0.0/16", "127.0.0.0/8");
    let path = d.config(&config);
    // One worker pinned to CPU 0: the threads beside it (hit-log writer, reload) keep off it
    // when the machine has another core.
    let mut child = spawn_serve_with(&path, Stdio::piped(), &["--threads", "1", "--cpus", "0"]);
    let query = crate::common::dns::query_message("www.porn.example.", RecordType::A, true)
        .to_vec()
        .unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1500];
    let answer = loop {
        assert!(Instant::now() < deadline, "no answer from schooldns serve");
        client.send_to(&query, ("127.0.0.1", port)).unwrap();
        if let Ok(n) = client.recv(&mut buf) {
            break Message::from_vec(&buf[..n]).unwrap();
        }
    };
    assert_eq!(answer.response_code(), ResponseCode::NXDomain);
    let affinity = thread_affinities(child.id());
    let workers: Vec<&String> = affinity
        .iter()
        .filter(|(name, _)| name == "schooldns-worke")
        .map(|(_, cpus)| cpus)
        .collect();
    assert!(workers.contains(&&"0".to_string()), "{affinity:?}");
    let writer = &affinity
        .iter()
        .find(|(name, _)| name == "schooldns-hitlo")
        .expect("the hit-log writer thread")
        .1;
    if std::thread::available_parallelism().unwrap().get() > 1 {
        assert!(
            !crate::common::parse_cpus(writer).contains(&0),
            "writer on the worker's CPU: {affinity:?}"
        );
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "schooldns did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(log.contains("serving") && log.contains("stopped"), "{log}");
}

/// (thread name, `Cpus_allowed_list`) of every thread of a process.
fn thread_affinities(pid: u32) -> Vec<(String, String)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap_or_default();
        threads.push((name.trim().to_string(), cpus.trim().to_string()));
    }
    threads
}

#[test]
fn reload_without_an_admin_listener_says_so() {
    let d = District::new();
    d.write("adult.txt", "porn.example\n");
    let path = d.config(BASE);
    let out = schooldns(&["reload", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[admin] listen is not set"),
        "{}",
        stderr(&out)
    );
}

/// `schooldns reload` asks a running `schooldns serve`; a refused reload exits 1, `--force`
/// gets it through.
#[test]
fn reload_command_talks_to_the_running_server() {
    use std::time::{Duration, Instant};

    let (dns, admin) = (free_port(), free_port());
    let d = District::new();
    d.write("adult.txt", "porn.example\nxxx.example\nmore.example\n");
    let config = format!(
        "[server]\nudp = [\"127.0.0.1:{dns}\"]\ntcp = []\n[hitlog]\npath = \"@/hits.sqlite\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [reload]\ndebounce_ms = 60000\n{BASE}"
    );
    let path = d.config(&config);
    let mut child = spawn_serve(&path, Stdio::null());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", admin)).is_err() {
        assert!(Instant::now() < deadline, "admin listener never came up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let reload = |force: bool| {
        let mut args = vec!["reload", "--config", path.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        schooldns(&args)
    };
    // Nothing changed: reloads fine.
    let out = reload(false);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("reloaded, policy version"),
        "{}",
        stdout(&out)
    );
    // The list lost two thirds of its entries: refused unless forced.
    d.write("adult.txt", "porn.example\n");
    let out = reload(false);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("reload refused"), "{}", stdout(&out));
    let out = reload(true);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Run from the district's folder with relative paths (as a systemd unit with
/// `WorkingDirectory=` does), a list change still reloads: the watcher reports absolute paths.
#[test]
fn relative_paths_reload_when_a_list_changes() {
    use hickory_proto::op::{Message, ResponseCode};
    use hickory_proto::rr::RecordType;
    use std::time::{Duration, Instant};

    let d = District::new();
    d.write("lists/adult.txt", "porn.example\n");
    let port = free_port();
    let config = format!(
        "[server]\nudp = [\"127.0.0.1:{port}\"]\ntcp = []\n[reload]\ndebounce_ms = 100\n\
         [hitlog]\npath = \"lists/hits.sqlite\"\n[upstream]\nservers = [\"127.0.0.1:9\"]\n\
         timeout_ms = 300\n{BASE}"
    )
    .replace("@/adult.txt", "lists/adult.txt")
    .replace("10.1.0.0/16", "127.0.0.0/8");
    d.config(&config);
    let mut child = Command::new(env!("CARGO_BIN_EXE_schooldns"))
        .current_dir(d.dir.path())
        .args(["serve", "--config", "schooldns.toml", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let rcode = |name: &str| {
        let query = crate::common::dns::query_message(name, RecordType::A, true)
            .to_vec()
            .unwrap();
        let mut buf = [0u8; 1500];
        client.send_to(&query, ("127.0.0.1", port)).unwrap();
        client
            .recv(&mut buf)
            .ok()
            .map(|n| Message::from_vec(&buf[..n]).unwrap().response_code())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while rcode("porn.example.") != Some(ResponseCode::NXDomain) {
        assert!(Instant::now() < deadline, "schooldns did not start");
    }
    d.write("lists/adult.txt", "porn.example\nnew.example\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    let reloaded = loop {
        if rcode("new.example.") == Some(ResponseCode::NXDomain) {
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(reloaded, "the list change was not picked up");
}

/// A network covering every address would make schooldns an open resolver: refused unless the
/// school says so; an IPv4-mapped network is the IPv4 one (claimed twice is caught); host bits
/// set are a located warning, not an error.
#[test]
fn school_networks_that_cover_everything_or_repeat_are_refused() {
    let d = District::new();
    d.write("adult.txt", "porn.example\n");
    let file = d.path("schooldns.toml").display().to_string();
    for any in ["0.0.0.0/0", "::/0", "::ffff:0.0.0.0/96"] {
        let err = check_fails(&d, &BASE.replace("10.1.0.0/16", any));
        assert!(
            err.contains(&format!("{file}:9:"))
                && err.contains("schools[0].networks: network")
                && err.contains("covers every address")
                && err.contains("allow_any_network = true"),
            "{any}: {err}"
        );
    }
    let allowed = BASE.replace("10.1.0.0/16", "0.0.0.0/0") + "allow_any_network = true\n";
    let path = d.config(&allowed);
    let out = schooldns(&["check", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mapped = format!(
        "{BASE}\n[[schools]]\nid = \"b\"\nname = \"School B\"\nnetworks = [\"::ffff:10.1.0.0/112\"]\nprofile = \"primary\"\n"
    );
    let err = check_fails(&d, &mapped);
    assert!(
        err.contains("schools[1].networks: network 10.1.0.0/16 is already claimed by school \"a\""),
        "{err}"
    );

    let path = d.config(&BASE.replace("10.1.0.0/16", "10.1.2.3/16"));
    let out = schooldns(&["check", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{file}:9:13: schools[0].networks: 10.1.2.3/16 has host bits set; it is read as 10.1.0.0/16"
        )),
        "{}",
        stderr(&out)
    );
}

/// `schooldns users`: add prints a one-time password stored only as an Argon2id hash, roles
/// are checked against the config's schools, and passwd, disable and list edit the file in
/// place.
#[test]
fn users_are_added_with_one_time_passwords_and_managed_in_place() {
    let d = District::new();
    let config = d.config(
        "[[schools]]\nid = \"kd\"\nname = \"Kim Đồng\"\nnetworks = [\"10.1.0.0/16\"]\n\
         profile = \"p\"\n[profiles.p]\n[console]\nusers = \"@/users.toml\"\n",
    );
    let config = config.to_str().unwrap();
    let users = |args: &[&str]| {
        let mut all = vec!["users", "--config", config];
        all.extend(args);
        schooldns(&all)
    };
    let added = users(&[
        "add",
        "lan",
        "--role",
        "school:kd",
        "--display-name",
        "Nguyễn Thị Lan",
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let out = stdout(&added);
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("one-time password: "))
        .expect("a one-time password is printed")
        .to_string();
    let file = std::fs::read_to_string(d.path("users.toml")).unwrap();
    assert!(
        !file.contains(&password),
        "the password itself is never stored"
    );
    assert!(
        file.contains("$argon2id$") && file.contains("must_change = true"),
        "{file}"
    );
    let stored = schooldns::console::users::read(&d.path("users.toml")).unwrap();
    assert!(stored[0].verify(&password));

    for (args, named) in [
        (vec!["add", "x", "--role", "school:nowhere"], "nowhere"),
        (vec!["add", "x", "--role", "admin"], "admin"),
        (vec!["add", "lan", "--role", "police"], "already exists"),
        (vec!["add", "Bad Name", "--role", "police"], "lowercase"),
        (vec!["passwd", "ghost"], "ghost"),
    ] {
        let out = users(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr(&out).contains(named), "{args:?}: {}", stderr(&out));
    }

    assert!(
        users(&["add", "police1", "--role", "police"])
            .status
            .success()
    );
    assert!(users(&["disable", "police1"]).status.success());
    let list = stdout(&users(&["list"]));
    assert!(
        list.contains("lan") && list.contains("school:kd") && list.contains("new"),
        "{list}"
    );
    assert!(
        list.contains("police1") && list.contains("disabled"),
        "{list}"
    );
    assert!(!list.contains("argon2"), "{list}");
    let reset = users(&["passwd", "police1"]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    let list = stdout(&users(&["list"]));
    assert!(!list.contains("disabled"), "passwd enables again: {list}");
}

/// Port 53 without the capability to bind it: the error says how to fix it. Run as the
/// unprivileged `nobody` through `setpriv` (needs root to switch; CI runs as root).
#[test]
fn port_53_without_the_capability_says_how_to_fix_it() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var_os("SCHOOLDNS_REQUIRE_CLIENTS").is_none(),
            "this test switches to an unprivileged user and needs root in CI"
        );
        eprintln!("skipping: not root, cannot switch to an unprivileged user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[server]\nudp = [\"127.0.0.1:53\"]\ntcp = []\n[hitlog]\nenabled = false\n[profiles.p]\n\
         [[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"127.0.0.0/8\"]\nprofile = \"p\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_schooldns"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("binding UDP 127.0.0.1:53: permission denied")
            && err.contains("CAP_NET_BIND_SERVICE")
            && err.contains("setcap cap_net_bind_service=+ep"),
        "{err}"
    );
}

/// `schooldns init` writes a starter config from flags: the schools given, the shipped
/// categories and profiles with the given paths, no demo tokens; it compiles and serves; a
/// second run without `--force` refuses to overwrite; a bad school is refused with why.
#[test]
fn init_writes_a_starter_config_that_serves() {
    let d = District::new();
    let config = d.path("etc/schooldns.toml");
    let port = free_port();
    let lists = repo_root().join("blocklists");
    let init = |extra: &[&str]| {
        let mut args = vec![
            "init".to_string(),
            "--config".into(),
            config.display().to_string(),
            "--lists".into(),
            lists.display().to_string(),
            "--state".into(),
            d.path("state").display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--console".into(),
            format!("127.0.0.1:{}", free_port()),
            "--timezone".into(),
            "Asia/Ho_Chi_Minh".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(env!("CARGO_BIN_EXE_schooldns"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = init(&["--school", "thcs-a,Trường THCS A,127.0.0.0/8,primary"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("id = \"thcs-a\"") && text.contains("Trường THCS A"));
    assert!(!text.contains("sha256"), "no demo tokens");
    assert!(!text.contains("demo-lab"), "no demo schools");
    assert!(text.contains(&format!("{}/ut1/adult", lists.display())));
    // It serves: a blocked name from the school's network.
    let mut child = spawn_serve(&config, Stdio::null());
    let mut status = String::new();
    for _ in 0..100 {
        let dig = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &port.to_string(),
                "+tries=1",
                "+time=1",
                "www.pornhub.com",
                "A",
            ])
            .output();
        if let Ok(o) = dig
            && let Some(s) = stdout(&o).split("status: ").nth(1)
        {
            status = s.split(',').next().unwrap_or("").to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, "NXDOMAIN");
    // Not twice, and not with a bad school.
    let again = init(&["--school", "x,X,10.0.0.0/8"]);
    assert!(!again.status.success() && stderr(&again).contains("--force"));
    let bad = init(&["--force", "--school", "x,X,not-a-network"]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("not a network"),
        "{}",
        stderr(&bad)
    );
}
