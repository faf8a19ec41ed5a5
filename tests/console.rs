//! The web console end to end: the real server on loopback with a real hit log, real users,
//! exceptions and requests files, driven by headless Chromium through chromedriver (WebDriver),
//! with `dig` and `kdig` checking that what a page changed reaches DNS. Screenshots of every
//! page at phone and desktop size go to `$SCHOOLDNS_SCREENSHOTS` (the README's are made with
//! `SCHOOLDNS_SCREENSHOTS=docs/screenshots`), else `target/screenshots`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::clients::{ca, have, run, status_of};
use crate::common::dns::{query_message, udp_query};
use crate::common::tls::{HOSTNAME, TestPki};
use crate::common::webdriver::Browser;
use crate::common::{TestServer, http};
use crate::devices::{encrypted_config, sni};
use schooldns::access::Role;
use schooldns::console::users;

const CONSOLE: &str = "[console]\nusers = \"@/users.toml\"\nexceptions = \"@/exceptions.toml\"\nrequests = \"@/requests.toml\"\n";

/// Passwords of the test people (the district's is a one-time password to change).
const KD_PASSWORD: &str = "kim-dong-password";
const POLICE_PASSWORD: &str = "police-password";
const DISTRICT_FIRST: &str = "one-time-password";
const DISTRICT_PASSWORD: &str = "district-password";

/// The console's files, with services and time: the shipped catalogue, a toggles file, a
/// calendar, a lesson schedule all day every day (YouTube off for `primary` in it) and an exam
/// profile.
fn console_config() -> String {
    format!(
        "{CONSOLE}service_toggles = \"@/toggles.toml\"\n\
         [services]\ncatalog = \"{}/blocklists/services/catalog.toml\"\n\
         [calendar]\nfile = \"@/calendar.toml\"\n\
         [schedules.lessons]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\ntimes = [\"00:00-24:00\"]\n\
         [[profiles.primary.when]]\nschedule = \"lessons\"\nblock_services = [\"youtube\"]\n\
         [profiles.exam]\nallow = [\"education\"]\nblock_unlisted = true\n",
        crate::common::repo_root().display()
    )
}

async fn start(pki: &TestPki) -> TestServer {
    let server = TestServer::start_prepared(&encrypted_config(&console_config()), |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", crate::devices::DEVICES);
        let path = district.path("users.toml");
        for (name, role, password, display) in [
            (
                "kd",
                Role::School("th-kim-dong".into()),
                KD_PASSWORD,
                "Cô Hạnh (Kim Đồng)",
            ),
            ("police", Role::Police, POLICE_PASSWORD, "Đại uý Minh"),
            ("dist", Role::District, DISTRICT_FIRST, "Phòng GD&ĐT"),
        ] {
            users::add(&path, name, &role, Some(display)).unwrap();
            users::set_password(&path, name, password).unwrap();
        }
        // The district's password stays a one-time password: the first sign-in changes it.
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text.find("name = \"dist\"").unwrap();
        let (head, tail) = text.split_at(at);
        std::fs::write(&path, format!("{head}must_change = true\n{tail}")).unwrap();
    })
    .await;
    // Blocked queries from both schools: 127.0.0.1 is `loop`, 127.0.0.9 is Kim Đồng.
    for (from, name) in [
        ("127.0.0.1", "porn.example"),
        ("127.0.0.1", "www.social.example"),
        ("127.0.0.9", "porn.example"),
        ("127.0.0.9", "blocked-target.example"),
    ] {
        let answer = udp_query(server.udp, from, &query_message(name, RecordType::A, false)).await;
        assert_eq!(
            answer.response_code(),
            ResponseCode::NXDomain,
            "{name} from {from}"
        );
    }
    server.hits.flush();
    server
}

fn base(server: &TestServer) -> String {
    format!("http://{}", server.admin.unwrap())
}

fn shots() -> PathBuf {
    std::env::var_os("SCHOOLDNS_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"))
}

/// Signs in through the page.
fn sign_in(browser: &Browser, base: &str, user: &str, password: &str) {
    browser.goto(&format!("{base}/console/signin"));
    browser.fill("#user", user);
    browser.fill("#password", password);
    browser.click("button[type=submit]");
}

fn sign_out(browser: &Browser) {
    browser.click("header form button");
    browser.wait_url("/console/signin");
}

/// What `dig` from `from` says about `name`.
async fn dig(server: SocketAddr, from: &str, name: &str) -> String {
    let (_, out, _) = run(
        "dig",
        vec![
            format!("@{}", server.ip()),
            "-p".into(),
            server.port().to_string(),
            "-b".into(),
            from.into(),
            "+tries=1".into(),
            "+time=2".into(),
            name.into(),
            "A".into(),
        ],
    )
    .await;
    out.split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("none")
        .to_string()
}

/// Waits (at most `limit`) until `dig` gives `status`; returns how long it took.
async fn dig_until(
    server: SocketAddr,
    from: &str,
    name: &str,
    status: &str,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let now = dig(server, from, name).await;
        if now == status {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{name} from {from}: still {now}, wanted {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The hits table's names.
fn listed_names(browser: &Browser) -> Vec<String> {
    let value = browser.script(
        "return Array.from(document.querySelectorAll('#hits tbody tr td.name')).map(td => td.textContent)",
    );
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET` with the browser's session cookie: (status line, body).
async fn get_as(admin: SocketAddr, cookie: &str, path: &str) -> (String, String) {
    let cookie = format!("schooldns_session={cookie}");
    let (status, _, body) = http(admin, "GET", path, &[("Cookie", &cookie)]).await;
    (status, body)
}

/// A form `POST` over a raw connection: (status line, head).
pub async fn post_form(
    admin: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).to_string();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    (head.lines().next().unwrap_or("").to_string(), head)
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_in_a_real_browser() {
    if !have("dig", "-v") || !have("kdig", "--version") {
        return;
    }
    let pki = TestPki::new();
    let server = start(&pki).await;
    let (admin, base) = (server.admin.unwrap(), base(&server));
    let Some(browser) = tokio::task::block_in_place(|| Browser::start(1440, 900, "vi-VN")) else {
        return;
    };
    let b = &browser;
    let shot = |name: &str| {
        tokio::task::block_in_place(|| {
            b.screenshot(&shots().join(format!("{name}-desktop.png")));
            b.size(390, 844);
            b.screenshot(&shots().join(format!("{name}-phone.png")));
            b.size(1440, 900);
        })
    };
    let step = |f: &dyn Fn()| tokio::task::block_in_place(f);

    // Sign-in: a wrong password is refused on the page, in Vietnamese by default.
    step(&|| {
        b.goto(&format!("{base}/console/hits"));
        assert!(b.url().contains("/console/signin?next="), "{}", b.url());
        b.fill("#user", "kd");
        b.fill("#password", "wrong password");
        b.click("button[type=submit]");
        assert!(
            b.text("[role=alert]").contains("Sai tên đăng nhập"),
            "{}",
            b.source()
        );
    });
    shot("signin");

    // A school's reader: its own school only, in every page and export.
    step(&|| {
        sign_in(b, &base, "kd", KD_PASSWORD);
        assert!(b.text("h1").contains("Tổng quan"), "{}", b.source());
    });
    shot("overview");
    step(&|| {
        b.goto(&format!("{base}/console/hits"));
        let mut names = listed_names(b);
        names.sort();
        assert_eq!(
            names,
            ["blocked-target.example", "porn.example"],
            "only Kim Đồng's hits"
        );
    });
    shot("hits");
    let kd_cookie =
        tokio::task::block_in_place(|| b.cookie("schooldns_session")).expect("a session cookie");
    let (status, csv) = get_as(
        admin,
        &kd_cookie,
        "/api/hits?format=csv&category=adult&lang=vi",
    )
    .await;
    assert!(status.contains("200"), "{status}");
    let rows: Vec<&str> = csv.lines().skip(1).filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows.iter().all(|r| r.contains("th-kim-dong")), "{csv}");
    let (status, _) = get_as(admin, &kd_cookie, "/api/hits?school=loop").await;
    assert!(
        status.contains("403"),
        "another school over the API: {status}"
    );
    step(&|| {
        b.goto(&format!("{base}/console/schools/loop"));
        assert!(
            b.source().contains("chỉ xem được trường của mình"),
            "{}",
            b.source()
        );
        b.goto(&format!("{base}/console/check?name=porn.example"));
        assert_eq!(b.text("#decision"), "block");
    });
    shot("check");
    // The school asks the district to allow a name.
    step(&|| {
        b.goto(&format!("{base}/console/requests"));
        b.fill("#r-name", "porn.example");
        b.fill("#r-reason", "Bài học về an toàn mạng");
        b.click("#ask button");
        assert!(b.has("#sent"), "{}", b.source());
    });
    // The language switch, on every page: English, then back.
    step(&|| {
        b.click("#lang-switch");
        assert_eq!(b.script("return document.documentElement.lang"), "en");
        assert!(b.text("h1").contains("Unblock requests"));
        b.click("#lang-switch");
        assert_eq!(b.script("return document.documentElement.lang"), "vi");
        sign_out(b);
    });

    // The police read every school and change nothing.
    step(&|| {
        sign_in(b, &base, "police", POLICE_PASSWORD);
        b.goto(&format!("{base}/console/hits?category=adult"));
        let names = listed_names(b);
        assert_eq!(names.len(), 3, "{names:?}");
        b.goto(&format!("{base}/console/exceptions"));
        assert!(!b.has("#add-exception"), "no form for the police");
    });
    let police_cookie = tokio::task::block_in_place(|| b.cookie("schooldns_session")).unwrap();
    let (_, page) = get_as(admin, &police_cookie, "/console/exceptions").await;
    let body = format!(
        "csrf={}&name=porn.example&action=allow&school=loop&for=good&reason=x",
        csrf_of(&page)
    );
    let cookie = format!("schooldns_session={police_cookie}");
    let (status, _) = post_form(admin, "/console/exceptions", &[("Cookie", &cookie)], &body).await;
    assert!(
        status.contains("403"),
        "police may not add exceptions: {status}"
    );
    step(&|| {
        b.goto(&format!("{base}/console/audit"));
        let audit = b.text("#audit");
        assert!(
            audit.contains("user:kd") && audit.contains("sign-in-failed"),
            "{audit}"
        );
        assert!(audit.contains("export"), "{audit}");
    });
    shot("audit");
    step(&|| sign_out(b));

    // The district: first sign-in changes the one-time password.
    step(&|| {
        sign_in(b, &base, "dist", DISTRICT_FIRST);
        assert!(b.url().ends_with("/console/password"), "{}", b.url());
    });
    shot("password");
    step(&|| {
        b.fill("#current", DISTRICT_FIRST);
        b.fill("#new", DISTRICT_PASSWORD);
        b.fill("#repeat", DISTRICT_PASSWORD);
        b.click("button[type=submit]");
        assert!(b.text("h1").contains("Tổng quan"), "{}", b.source());
        b.goto(&format!("{base}/console/requests"));
    });
    shot("requests");
    // Approving Kim Đồng's request allows the name there, and only there, within 3 s.
    step(&|| b.click("#requests form button[value=approve]"));
    let took = dig_until(
        server.udp,
        "127.0.0.9",
        "porn.example",
        "NOERROR",
        Duration::from_secs(3),
    )
    .await;
    eprintln!("approved request reached dig in {took:?}");
    assert_eq!(
        dig(server.udp, "127.0.0.1", "porn.example").await,
        "NXDOMAIN"
    );

    // An exception added in the page: `dig` sees it within 3 s; removing it blocks again.
    step(&|| {
        b.goto(&format!(
            "{base}/console/exceptions?school=loop&name=www.social.example"
        ));
        assert!(b.text("#explain").contains("social"), "what it overrides");
        b.fill("#x-name", "social.example");
        b.choose("#x-school", "loop");
        b.choose("#x-for", "3h");
        b.fill("#x-reason", "Tiết tin học: mạng xã hội");
        b.click("#add-exception button");
        assert!(b.has("#added"), "{}", b.source());
    });
    let took = dig_until(
        server.udp,
        "127.0.0.1",
        "www.social.example",
        "NOERROR",
        Duration::from_secs(3),
    )
    .await;
    eprintln!("exception reached dig in {took:?}");
    shot("exceptions");
    step(&|| {
        b.goto(&format!("{base}/console/exceptions"));
        b.script("window.confirm = () => true; return 0");
        b.click("#exceptions tr[data-name='social.example'] form button");
    });
    dig_until(
        server.udp,
        "127.0.0.1",
        "www.social.example",
        "NXDOMAIN",
        Duration::from_secs(3),
    )
    .await;

    // A family added in the page works with kdig over DoT.
    step(&|| {
        b.goto(&format!("{base}/console/devices"));
        b.fill("#d-name", "Gia đình Lê");
        b.choose("#d-profile", "primary");
        b.choose("#d-school", "loop");
        b.click("#add-device button");
        assert!(b.has("#setup-link"), "{}", b.source());
    });
    shot("devices");
    let link = tokio::task::block_in_place(|| b.text("#setup-link"));
    let token = link.rsplit('/').next().unwrap().to_string();
    assert!(link.contains(HOSTNAME) && token.len() >= 32, "{link}");
    let ca = ca(server.district.dir.path());
    let dot = server.dot.unwrap();
    let kdig = |qname: &'static str| {
        run(
            "kdig",
            vec![
                "@127.0.0.1".into(),
                "-p".into(),
                dot.port().to_string(),
                format!("+tls-ca={ca}"),
                format!("+tls-hostname={}", sni(&token)),
                "+timeout=5".into(),
                "+retry=0".into(),
                qname.into(),
                "A".into(),
            ],
        )
    };
    let (_, out, err) = kdig("porn.example").await;
    assert_eq!(status_of(&out), "NXDOMAIN", "{out}{err}");
    let (_, out, err) = kdig("www.example").await;
    assert_eq!(status_of(&out), "NOERROR", "{out}{err}");
    step(&|| {
        b.click("#added-device a.button");
        assert!(b.text("#card").contains("Gia đình Lê"));
    });
    shot("card");

    // Services: the district switches Roblox off for the primary profile in the page; `dig`
    // sees it. The matrix shows YouTube blocked in lessons.
    step(&|| {
        b.goto(&format!("{base}/console/services?target=profile:primary"));
        b.tick("input[name='s:roblox'][value='block']");
        b.click("#service-form button");
        assert!(b.has("#saved"), "{}", b.source());
        assert!(
            b.text("tr[data-service=youtube]").contains("lessons"),
            "{}",
            b.source()
        );
    });
    shot("services");
    dig_until(
        server.udp,
        "127.0.0.1",
        "www.roblox.com",
        "NXDOMAIN",
        Duration::from_secs(5),
    )
    .await;
    // The calendar: a holiday added in the page switches the lessons off for Kim Đồng today.
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap())
        .date()
        .to_string();
    assert_eq!(
        dig(server.udp, "127.0.0.9", "www.youtube.com").await,
        "NXDOMAIN"
    );
    step(&|| {
        b.goto(&format!("{base}/console/time"));
        b.choose("#c-kind", "holiday");
        b.fill("#c-name", "Nghỉ bù");
        b.script(&format!(
            "document.querySelector('#c-from').value = '{today}'; \
             document.querySelector('#c-schools option[value=th-kim-dong]').selected = true;"
        ));
        b.click("#add-calendar button");
        assert!(b.has("#added"), "{}", b.source());
        assert!(b.text("#calendar").contains("Nghỉ bù"), "{}", b.source());
    });
    shot("calendar");
    dig_until(
        server.udp,
        "127.0.0.9",
        "www.youtube.com",
        "NOERROR",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        dig(server.udp, "127.0.0.1", "www.youtube.com").await,
        "NXDOMAIN"
    );
    step(&|| {
        b.goto(&format!("{base}/console/schools/th-kim-dong"));
        assert!(b.text("#today").contains("Nghỉ bù"), "{}", b.source());
    });

    // Every other page, for the screenshots and a last look at what they show.
    for (name, path, expect) in [
        ("overview-district", "/console/?days=30", "Theo trường"),
        ("schools", "/console/schools", "Trường Tiểu học Kim Đồng"),
        ("school", "/console/schools/th-kim-dong", "Kim Đồng"),
        ("lists", "/console/lists", "adult"),
        (
            "hit",
            "/console/hits?school=th-kim-dong&category=adult",
            "adult.txt",
        ),
    ] {
        step(&|| {
            b.goto(&format!("{base}{path}"));
            if name == "hit" {
                b.click("#hits tbody tr td a");
                assert!(
                    b.text("#hit-detail").contains("lists/adult.txt:"),
                    "{}",
                    b.source()
                );
            }
            assert!(b.source().contains(expect), "{path}: {}", b.source());
        });
        shot(name);
    }
    step(&|| sign_out(b));

    // The school sees the outcome of its request.
    step(&|| {
        sign_in(b, &base, "kd", KD_PASSWORD);
        b.goto(&format!("{base}/console/requests"));
        assert!(b.text("#requests").contains("đã duyệt"), "{}", b.source());
    });
    drop(browser);
    server.stop().await;
}

/// State-changing requests need the session's CSRF token and must come from the console's own
/// pages; failed sign-ins are limited; every page carries the security headers.
#[tokio::test]
async fn posts_need_csrf_and_the_same_origin_and_sign_ins_are_limited() {
    let pki = TestPki::new();
    let server = start(&pki).await;
    let admin = server.admin.unwrap();
    let origin = format!("http://{admin}");
    let sign_in = |password: &'static str| {
        let origin = origin.clone();
        async move {
            post_form(
                admin,
                "/console/signin",
                &[("Origin", &origin)],
                &format!("user=police&password={password}"),
            )
            .await
        }
    };
    let (status, head) = sign_in(POLICE_PASSWORD).await;
    assert!(status.contains("303"), "{status}");
    assert!(
        head.contains("HttpOnly") && head.contains("SameSite=Strict"),
        "{head}"
    );
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: schooldns_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    // The pages' headers: no framing, no referrer, no inline script.
    let (_, head, page) = http(
        admin,
        "GET",
        "/console/devices",
        &[("Cookie", &format!("schooldns_session={cookie}"))],
    )
    .await;
    assert!(head.contains("x-frame-options: DENY"), "{head}");
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{head}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("style=\""),
        "no inline script or style"
    );
    let csrf = csrf_of(&page);
    assert_eq!(csrf.len(), 32);
    let session = format!("schooldns_session={cookie}");
    // Sign out with no token, a wrong token, a cross-site origin: refused, session alive.
    for (headers, body) in [
        (vec![("Cookie", session.as_str())], String::new()),
        (
            vec![("Cookie", session.as_str())],
            "csrf=0123456789abcdef0123456789abcdef".to_string(),
        ),
        (
            vec![
                ("Cookie", session.as_str()),
                ("Origin", "https://evil.example"),
            ],
            format!("csrf={csrf}"),
        ),
        (
            vec![
                ("Cookie", session.as_str()),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            format!("csrf={csrf}"),
        ),
    ] {
        let (status, _) = post_form(admin, "/console/signout", &headers, &body).await;
        assert!(status.contains("403"), "{headers:?} {body}: {status}");
    }
    let (status, _, _) = http(admin, "GET", "/console/", &[("Cookie", &session)]).await;
    assert!(status.contains("200"), "still signed in: {status}");
    let (status, _) = post_form(
        admin,
        "/console/signout",
        &[("Cookie", &session), ("Origin", &origin)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert!(status.contains("303"), "{status}");
    let (status, _, _) = http(admin, "GET", "/console/", &[("Cookie", &session)]).await;
    assert!(status.contains("303"), "signed out: {status}");

    // Five wrong passwords for one name: the sixth try is refused even with the right one.
    for _ in 0..5 {
        let (status, _) = sign_in("wrong").await;
        assert!(status.contains("401"), "{status}");
    }
    let (status, _) = sign_in(POLICE_PASSWORD).await;
    assert!(status.contains("429"), "{status}");
    server.stop().await;
}

/// `[admin] tls = true`: the console is served over HTTPS with the `[tls]` certificate and its
/// session cookie is `Secure`.
#[tokio::test]
async fn the_console_over_tls_sets_secure_cookies() {
    if !have("curl", "--version") {
        return;
    }
    let pki = TestPki::new();
    let config = encrypted_config(CONSOLE).replace(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\ntls = true\n",
    );
    let server = TestServer::start_prepared(&config, |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", crate::devices::DEVICES);
        let path = district.path("users.toml");
        users::add(&path, "police", &Role::Police, None).unwrap();
        users::set_password(&path, "police", POLICE_PASSWORD).unwrap();
    })
    .await;
    let admin = server.admin.unwrap();
    let url = format!("https://{HOSTNAME}:{}/console/signin", admin.port());
    let (code, out, err) = run(
        "curl",
        vec![
            "-sS".into(),
            "-D".into(),
            "-".into(),
            "-o".into(),
            "/dev/null".into(),
            "--cacert".into(),
            ca(server.district.dir.path()),
            "--resolve".into(),
            format!("{HOSTNAME}:{}:127.0.0.1", admin.port()),
            "--data".into(),
            format!("user=police&password={POLICE_PASSWORD}"),
            url,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("HTTP/1.1 303"), "{out}");
    let cookie = out
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: schooldns_session=")
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    // Plain HTTP on the TLS port gets nothing.
    let plain = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
        let _ = stream
            .write_all(b"GET /console/signin HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut back = Vec::new();
        let _ = stream.read_to_end(&mut back).await;
        back
    };
    let back = tokio::time::timeout(Duration::from_secs(15), plain)
        .await
        .unwrap_or_default();
    assert!(
        !back.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&back)
    );
    server.stop().await;
}

/// An exception with an end time stops applying by itself at that time (the reload thread
/// wakes for it) and stays in the file as history.
#[tokio::test]
async fn an_exception_expires_by_itself() {
    let pki = TestPki::new();
    let server = start(&pki).await;
    let path = server.district.path("exceptions.toml");
    let until = schooldns::hitlog::now_ms() + 2_000;
    schooldns::exceptions::add(
        &path,
        &schooldns::exceptions::NewException {
            school: Some("loop"),
            name: "porn.example",
            action: schooldns::lists::Action::Allow,
            reason: "two seconds",
            until_ms: Some(until),
            by: "test",
            request: None,
        },
    )
    .unwrap();
    let question = query_message("porn.example", RecordType::A, false);
    let ask = || udp_query(server.udp, "127.0.0.1", &question);
    let start = Instant::now();
    while ask().await.response_code() != ResponseCode::NoError {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the exception never applied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while ask().await.response_code() != ResponseCode::NXDomain {
        assert!(
            start.elapsed() < Duration::from_secs(6),
            "the exception never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let late = schooldns::hitlog::now_ms() - until;
    assert!(late < 1_500, "expired {late} ms after its end");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("porn.example"),
        "kept as history"
    );
    server.stop().await;
}

/// The overview's attack panel: malware and phishing hits today far above a school's usual
/// level are highlighted, for the school and the police alike, and only for that school.
#[tokio::test]
async fn a_rise_of_malware_hits_is_highlighted() {
    let pki = TestPki::new();
    let server = start(&pki).await;
    let admin = server.admin.unwrap();
    {
        // Twelve malware hits at Kim Đồng today, written beside the server's writer.
        let zone = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
        let mut store =
            schooldns::hitlog::store::Store::open(&server.district.path("hits.sqlite")).unwrap();
        store.follow_zone(&zone).unwrap();
        let now = schooldns::hitlog::now_ms();
        let mut records: Vec<schooldns::hitlog::HitRecord> = (0..12)
            .map(|i| schooldns::hitlog::HitRecord {
                id: 0,
                time_ms: now - i * 1000,
                last_seen_ms: now - i * 1000,
                count: 1,
                school: Some("th-kim-dong".into()),
                device: None,
                profile: Some("primary".into()),
                client: Some("127.0.0.9".into()),
                protocol: "udp".into(),
                qname: format!("c2-{i}.malware.example"),
                qtype: "A".into(),
                decision: "block".into(),
                category: "malware".into(),
                list: None,
                line: None,
                entry: None,
                cname: None,
                policy_version: "0".into(),
                service: None,
                instance: None,
            })
            .collect();
        store.write(&mut records, &[]).unwrap();
    }
    let origin = format!("http://{admin}");
    let session = |user: &'static str, password: &'static str| {
        let origin = origin.clone();
        async move {
            let (_, head) = post_form(
                admin,
                "/console/signin",
                &[("Origin", &origin)],
                &format!("user={user}&password={password}"),
            )
            .await;
            head.lines()
                .find_map(|l| l.strip_prefix("set-cookie: schooldns_session="))
                .and_then(|v| v.split(';').next())
                .expect("a session cookie")
                .to_string()
        }
    };
    let police = session("police", POLICE_PASSWORD).await;
    let (status, page) = get_as(admin, &police, "/console/").await;
    assert!(status.contains("200"), "{status}");
    let alert = page
        .split("role=\"alert\"")
        .nth(1)
        .expect("an attack panel");
    assert!(
        alert.contains("th-kim-dong") && alert.contains("12"),
        "{alert}"
    );
    assert_eq!(
        page.matches("role=\"alert\"").count(),
        1,
        "only Kim Đồng rose"
    );
    server.stop().await;
}

/// Services and the calendar from the console: the district switches TikTok off for a
/// profile and puts one school on an exam day; `dig` sees both within seconds; the school's
/// page says what is blocked right now; a school user may not change either; the audit log
/// records both.
#[tokio::test]
async fn services_and_the_calendar_from_the_console() {
    if !have("dig", "-v") {
        return;
    }
    let extra = format!(
        "{CONSOLE}service_toggles = \"@/toggles.toml\"\n\
         [services]\ncatalog = \"{}/blocklists/services/catalog.toml\"\n\
         [calendar]\nfile = \"@/calendar.toml\"\n\
         [schedules.lessons]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\ntimes = [\"07:00-11:30\"]\n\
         [profiles.exam]\nallow = [\"education\"]\nblock_unlisted = true\n",
        crate::common::repo_root().display()
    );
    let pki = TestPki::new();
    let server = TestServer::start_prepared(&encrypted_config(&extra), |district| {
        pki.write(district.dir.path());
        district.write("devices.toml", crate::devices::DEVICES);
        let path = district.path("users.toml");
        for (name, role, password) in [
            ("boss", Role::District, DISTRICT_PASSWORD),
            ("kd", Role::School("th-kim-dong".into()), KD_PASSWORD),
        ] {
            users::add(&path, name, &role, None).unwrap();
            users::set_password(&path, name, password).unwrap();
        }
    })
    .await;
    let admin = server.admin.unwrap();
    let origin = format!("http://{admin}");
    let session = |user: &'static str, password: &'static str| {
        let origin = origin.clone();
        async move {
            let (status, head) = post_form(
                admin,
                "/console/signin",
                &[("Origin", &origin)],
                &format!("user={user}&password={password}"),
            )
            .await;
            assert!(status.contains("303"), "{user}: {status}");
            head.lines()
                .find_map(|l| l.strip_prefix("set-cookie: schooldns_session="))
                .and_then(|v| v.split(';').next())
                .unwrap()
                .to_string()
        }
    };
    let (boss_id, kd_id) = (
        session("boss", DISTRICT_PASSWORD).await,
        session("kd", KD_PASSWORD).await,
    );
    let (boss, kd) = (
        format!("schooldns_session={boss_id}"),
        format!("schooldns_session={kd_id}"),
    );
    let (status, page) = get_as(admin, &boss_id, "/console/services?target=profile:primary").await;
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("data-service=\"tiktok\"") && page.contains("service-form"));
    let csrf = csrf_of(&page);
    assert_eq!(
        dig(server.udp, "127.0.0.1", "www.tiktok.com").await,
        "NOERROR"
    );

    // The district switches TikTok off for the primary profile.
    let (status, _) = post_form(
        admin,
        "/console/services",
        &[("Cookie", &boss), ("Origin", &origin)],
        &format!("csrf={csrf}&target=profile%3Aprimary&s%3Atiktok=block&s%3Azoom=allow"),
    )
    .await;
    assert!(status.contains("303"), "{status}");
    assert!(
        dig_until(
            server.udp,
            "127.0.0.1",
            "www.tiktok.com",
            "NXDOMAIN",
            Duration::from_secs(5)
        )
        .await
            < Duration::from_secs(5)
    );
    // The hit names its service; the API filters by it and takes the `services` category.
    server.hits.flush();
    let (status, body) = get_as(
        admin,
        &boss_id,
        "/api/hits?service=tiktok&category=services",
    )
    .await;
    assert!(status.contains("200"), "{status} {body}");
    assert!(
        body.contains("\"qname\":\"www.tiktok.com\"") && body.contains("\"service\":\"tiktok\""),
        "{body}"
    );
    let (_, body) = get_as(admin, &boss_id, "/api/hits?service=roblox").await;
    assert!(body.contains("\"hits\":[]"), "{body}");
    let toggles = std::fs::read_to_string(server.district.path("toggles.toml")).unwrap();
    assert!(
        toggles.contains("[profiles.primary]") && toggles.contains("\"tiktok\""),
        "{toggles}"
    );
    // A school user may not.
    let (_, page) = get_as(admin, &kd_id, "/console/services").await;
    let kd_csrf = csrf_of(&page);
    assert!(!page.contains("service-form"));
    let (status, _) = post_form(
        admin,
        "/console/services",
        &[("Cookie", &kd), ("Origin", &origin)],
        &format!("csrf={kd_csrf}&target=profile%3Aprimary&s%3Atiktok=allow"),
    )
    .await;
    assert!(status.contains("403"), "{status}");

    // An exam day today for school `loop` only.
    let (_, page) = get_as(admin, &boss_id, "/console/time").await;
    assert!(
        page.contains("lessons") && page.contains("add-calendar"),
        "{page}"
    );
    let today = jiff::Zoned::now()
        .with_time_zone(jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap())
        .date();
    let (status, _) = post_form(
        admin,
        "/console/time",
        &[("Cookie", &boss), ("Origin", &origin)],
        &format!(
            "csrf={csrf}&kind=exam&name=Thi+th%E1%BB%AD&from={today}&to={today}&schools=loop&profile=exam"
        ),
    )
    .await;
    assert!(status.contains("303"), "{status}");
    assert!(
        dig_until(
            server.udp,
            "127.0.0.1",
            "example.org",
            "NXDOMAIN",
            Duration::from_secs(5)
        )
        .await
            < Duration::from_secs(5)
    );
    assert_eq!(dig(server.udp, "127.0.0.9", "example.org").await, "NOERROR");
    let (_, page) = get_as(admin, &boss_id, "/console/schools/loop").await;
    assert!(page.contains("id=\"right-now\""), "{page}");
    assert!(page.contains("Thi thử"), "the exam is named as the reason");
    // The school user sees its own page but may not remove the exam.
    let (status, _) = post_form(
        admin,
        "/console/time/exams/0/remove",
        &[("Cookie", &kd), ("Origin", &origin)],
        &format!("csrf={kd_csrf}&name=Thi+th%E1%BB%AD"),
    )
    .await;
    assert!(status.contains("403"), "{status}");
    let (status, _) = post_form(
        admin,
        "/console/time/exams/0/remove",
        &[("Cookie", &boss), ("Origin", &origin)],
        &format!("csrf={csrf}&name=Thi+th%E1%BB%AD"),
    )
    .await;
    assert!(status.contains("303"), "{status}");
    assert!(
        dig_until(
            server.udp,
            "127.0.0.1",
            "example.org",
            "NOERROR",
            Duration::from_secs(5)
        )
        .await
            < Duration::from_secs(5)
    );
    server.hits.flush();
    let (_, page) = get_as(admin, &boss_id, "/console/audit").await;
    assert!(
        page.contains("services")
            && page.contains("calendar-add")
            && page.contains("calendar-remove")
    );
    server.stop().await;
}
