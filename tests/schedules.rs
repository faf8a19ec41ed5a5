//! Services and rules in time through the real server: the `schooldns` binary started with its
//! clock set to a chosen moment (`SCHOOLDNS_CLOCK_OFFSET_MS`), asked by `dig` and `kdig`, with
//! the shipped services catalogue, a calendar file and an imported iCal calendar.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::clients::{have, run, status_of};
use crate::common::dns::{FakeUpstream, query_message};
use crate::common::tls::{HOSTNAME, TestPki};
use crate::common::{District, free_port, repo_root};

/// A family whose device sleeps by its own clock (New York), twelve hours from the district's.
const NIGHT_OWL: &str = "nightowltoken2345abcdefghijklmno";

/// School `a` (127.0.0.0/29, its staff at 127.0.0.4) and school `b` (127.0.0.8/29), both
/// lower-secondary: TikTok
/// switched off in lessons; `a` sits an exam from 21 to 25 December (calendar file), `b` on
/// the Wednesdays of an imported iCal calendar. 1 January is a holiday for everyone.
fn config(udp: u16, dot: u16, upstream: SocketAddr, root: &str) -> String {
    format!(
        r#"
[server]
udp = ["127.0.0.1:{udp}"]
tcp = ["127.0.0.1:{udp}"]
dot = ["127.0.0.1:{dot}"]
[tls]
cert = "@/tls/cert.pem"
key = "@/tls/key.pem"
hostname = "{HOSTNAME}"
[upstream]
servers = ["{upstream}"]
timeout_ms = 800
[hitlog]
path = "@/hits.sqlite"
timezone = "Asia/Ho_Chi_Minh"
[devices]
file = "@/devices.toml"
[services]
catalog = "{root}/blocklists/services/catalog.toml"
[calendar]
file = "@/calendar.toml"
[categories.education]
lists = ["@/education.txt"]
[schedules.lessons]
days = ["mon", "tue", "wed", "thu", "fri"]
times = ["07:00-11:30", "13:30-17:00"]
[schedules.night]
days = ["sun", "mon", "tue", "wed", "thu"]
times = ["22:00-06:00"]
[profiles.lower-secondary]
allow = ["education"]
allow_services = ["zoom"]
[[profiles.lower-secondary.when]]
schedule = "lessons"
block_services = ["tiktok"]
[profiles.exam]
allow = ["education"]
block_unlisted = true
[profiles.sleep]
allow = ["education"]
block_unlisted = true
[profiles.staff]
[[schools]]
id = "a"
name = "A"
networks = ["127.0.0.0/29"]
profile = "lower-secondary"
subnets = {{ "127.0.0.4/32" = "staff" }}
[[schools]]
id = "b"
name = "B"
networks = ["127.0.0.8/29"]
profile = "lower-secondary"
"#
    )
}

const CALENDAR: &str = r#"
[[exams]]
name = "Kiểm tra cuối học kỳ I"
from = 2026-12-21
to = "2026-12-25"
schools = ["a"]
profile = "exam"

[[holidays]]
name = "Tết Dương lịch"
from = 2027-01-01

[[imports]]
source = "@/exams.ics"
kind = "exam"
profile = "exam"
schools = ["b"]
summary = "kiểm tra"
"#;

/// Weekly on Wednesdays from 9 December, three times, the 16th cancelled; and an event whose
/// summary the import does not take.
const ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Truong B//VI\r\n\
BEGIN:VEVENT\r\nUID:weekly@b\r\nSUMMARY:Kiểm tra giữa kỳ\r\nDTSTART;VALUE=DATE:20261209\r\n\
DTEND;VALUE=DATE:20261210\r\nRRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=3\r\nEXDATE;VALUE=DATE:20261216\r\n\
END:VEVENT\r\nBEGIN:VEVENT\r\nUID:party@b\r\nSUMMARY:Liên hoan\r\nDTSTART;VALUE=DATE:20261211\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

const DEVICES: &str = r#"
[[devices]]
id = "night-owl"
name = "Gia đình Trần (New York)"
token = "nightowltoken2345abcdefghijklmno"
profile = "lower-secondary"
timezone = "America/New_York"
[[devices.when]]
schedule = "night"
profile = "sleep"
"#;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn real_now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The real server, its clock shifted so that it starts at a chosen moment.
struct Clocked {
    child: Child,
    district: District,
    udp: SocketAddr,
    dot: SocketAddr,
    /// Server time minus real time, in milliseconds.
    offset: i64,
    _upstream: FakeUpstream,
}

impl Drop for Clocked {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Clocked {
    /// Starts `schooldns serve` reading `at` on its clock now; returns once it answers.
    async fn start(pki: &TestPki, at: &str) -> Clocked {
        let district = District::new();
        pki.write(district.dir.path());
        district.write("education.txt", "wiki.example\n");
        district.write(
            "calendar.toml",
            &CALENDAR.replace("@/", &format!("{}/", district.dir.path().display())),
        );
        district.write("exams.ics", ICS);
        district.write("devices.toml", DEVICES);
        let upstream = FakeUpstream::start().await;
        let (udp, dot) = (free_port(), free_port());
        let path = district.config(&config(
            udp,
            dot,
            upstream.addr,
            &repo_root().display().to_string(),
        ));
        let offset = ms(at) - real_now_ms();
        let stderr = std::fs::File::create(district.path("stderr.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_schooldns"))
            .args([
                "serve",
                "--threads",
                "1",
                "--config",
                path.to_str().unwrap(),
            ])
            .env(schooldns::clock::OFFSET_VARIABLE, offset.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let server = Clocked {
            child,
            district,
            udp: ([127, 0, 0, 1], udp).into(),
            dot: ([127, 0, 0, 1], dot).into(),
            offset,
            _upstream: upstream,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while ask(
            server.udp,
            "127.0.0.1",
            "ready.example",
            1,
            Duration::from_millis(300),
        )
        .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "schooldns never answered: {}",
                std::fs::read_to_string(server.district.path("stderr.log")).unwrap_or_default()
            );
        }
        server
    }

    /// `dig`'s status for `name` asked from `from`.
    async fn dig(&self, from: &str, name: &str) -> String {
        let args = vec![
            format!("@{}", self.udp.ip()),
            "-p".into(),
            self.udp.port().to_string(),
            "-b".into(),
            from.to_string(),
            "+tries=1".into(),
            "+time=3".into(),
            name.to_string(),
            "A".into(),
        ];
        let (_, out, err) = run("dig", args).await;
        out.split("status: ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .map_or_else(|| format!("no answer: {out}{err}"), str::to_string)
    }
}

/// One query over UDP from `from`; the answer, or `None` after `wait`.
fn ask(server: SocketAddr, from: &str, name: &str, id: u16, wait: Duration) -> Option<Message> {
    let socket = UdpSocket::bind((from, 0)).ok()?;
    socket.set_read_timeout(Some(wait)).ok()?;
    let mut query = query_message(&format!("{name}."), RecordType::A, true);
    query.set_id(id);
    socket.send_to(&query.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

#[tokio::test]
async fn a_service_is_blocked_in_lessons_only_and_not_on_holidays() {
    if !have("dig", "-v") {
        return;
    }
    let pki = TestPki::new();
    // Monday 7 December, 08:00: a lesson.
    let lesson = Clocked::start(&pki, "2026-12-07T08:00:00+07:00").await;
    assert_eq!(lesson.dig("127.0.0.1", "www.tiktok.com").await, "NXDOMAIN");
    assert_eq!(lesson.dig("127.0.0.1", "example.org").await, "NOERROR");
    // A learning service and education stay open.
    assert_eq!(lesson.dig("127.0.0.1", "zoom.us").await, "NOERROR");
    drop(lesson);
    // 12:00: the break.
    let noon = Clocked::start(&pki, "2026-12-07T12:00:00+07:00").await;
    assert_eq!(noon.dig("127.0.0.1", "www.tiktok.com").await, "NOERROR");
    drop(noon);
    // Friday 1 January 2027, 08:00: a school day's time, but a holiday.
    let holiday = Clocked::start(&pki, "2027-01-01T08:00:00+07:00").await;
    assert_eq!(holiday.dig("127.0.0.1", "www.tiktok.com").await, "NOERROR");
    drop(holiday);
}

#[tokio::test]
async fn an_exam_day_switches_only_that_schools_profile() {
    if !have("dig", "-v") {
        return;
    }
    let pki = TestPki::new();
    // Tuesday 22 December, 08:00: school a sits its exam, school b has lessons.
    let s = Clocked::start(&pki, "2026-12-22T08:00:00+07:00").await;
    assert_eq!(s.dig("127.0.0.1", "example.org").await, "NXDOMAIN");
    assert_eq!(s.dig("127.0.0.1", "wiki.example").await, "NOERROR");
    // The staff subnet keeps its own profile on the school's exam day.
    assert_eq!(s.dig("127.0.0.4", "example.org").await, "NOERROR");
    assert_eq!(s.dig("127.0.0.9", "example.org").await, "NOERROR");
    assert_eq!(s.dig("127.0.0.9", "www.tiktok.com").await, "NXDOMAIN");
    // Exam blocks of names no list mentions are not kept in the hit log (a browsing
    // history); the lesson's TikTok block is.
    let log = s.district.path("hits.sqlite");
    let deadline = Instant::now() + Duration::from_secs(10);
    let hits = loop {
        let rows: Vec<(String, Option<String>, String)> = rusqlite::Connection::open(&log)
            .ok()
            .and_then(|c| {
                c.prepare("SELECT qname, service, category FROM hits")
                    .ok()?
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .ok()?
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
            })
            .unwrap_or_default();
        if !rows.is_empty() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        hits,
        vec![(
            "www.tiktok.com".to_string(),
            Some("tiktok".to_string()),
            "services".to_string()
        )]
    );
    drop(s);

    // The imported iCal calendar: school b's Wednesdays, but not the cancelled one.
    let wednesday = Clocked::start(&pki, "2026-12-09T15:00:00+07:00").await;
    assert_eq!(wednesday.dig("127.0.0.9", "example.org").await, "NXDOMAIN");
    assert_eq!(wednesday.dig("127.0.0.1", "example.org").await, "NOERROR");
    drop(wednesday);
    let cancelled = Clocked::start(&pki, "2026-12-16T15:00:00+07:00").await;
    assert_eq!(cancelled.dig("127.0.0.9", "example.org").await, "NOERROR");
    drop(cancelled);
}

#[tokio::test]
async fn a_home_devices_bedtime_follows_its_own_time_zone() {
    if !have("kdig", "--version") {
        return;
    }
    let pki = TestPki::new();
    let kdig = |s: &Clocked, name: &str| {
        let ca = s.district.path("tls/ca.pem").display().to_string();
        let args = vec![
            "@127.0.0.1".to_string(),
            "-p".into(),
            s.dot.port().to_string(),
            format!("+tls-ca={ca}"),
            format!("+tls-hostname={NIGHT_OWL}.{HOSTNAME}"),
            "+timeout=5".into(),
            "+retry=0".into(),
            name.to_string(),
            "A".into(),
        ];
        run("kdig", args)
    };
    // Monday 23:00 in New York is Tuesday 11:00 in Hà Nội: bedtime for this device.
    let night = Clocked::start(&pki, "2026-12-07T23:00:00-05:00").await;
    let (_, out, err) = kdig(&night, "example.org").await;
    assert_eq!(status_of(&out), "NXDOMAIN", "{out}{err}");
    let (_, out, err) = kdig(&night, "wiki.example").await;
    assert_eq!(status_of(&out), "NOERROR", "{out}{err}");
    drop(night);
    // Monday 11:00 in New York is 23:00 in Hà Nội: daytime for this device.
    let day = Clocked::start(&pki, "2026-12-07T11:00:00-05:00").await;
    let (_, out, err) = kdig(&day, "example.org").await;
    assert_eq!(status_of(&out), "NOERROR", "{out}{err}");
    drop(day);
}

/// The lesson starts at 08:00 while one client asks for TikTok as fast as answers come: every
/// query is answered, the switch lands within a second of the edge, and answers given before
/// it expire at the edge.
#[tokio::test]
async fn the_switch_lands_at_the_edge_under_load_and_answers_expire_there() {
    let pki = TestPki::new();
    let edge_at = "2026-12-07T07:00:00+07:00";
    let s = Clocked::start(&pki, "2026-12-07T06:59:55+07:00").await;
    let edge_real = ms(edge_at) - s.offset;
    let server = s.udp;
    let results = tokio::task::spawn_blocking(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let stop_at = edge_real + 2500;
        let mut results = Vec::new();
        let mut buf = [0u8; 1500];
        let mut id: u16 = 0;
        // Bounded: at most 150,000 queries, and until 2.5 s after the edge.
        while real_now_ms() < stop_at && results.len() < 150_000 {
            id = id.wrapping_add(1);
            let mut query = query_message("www.tiktok.com.", RecordType::A, true);
            query.set_id(id);
            let sent = real_now_ms();
            socket.send_to(&query.to_vec().unwrap(), server).unwrap();
            let answer = loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let m = Message::from_vec(&buf[..n]).unwrap();
                        if m.id() == id {
                            break Some(m);
                        }
                    }
                    Err(_) => break None,
                }
            };
            results.push((sent, real_now_ms(), answer));
        }
        results
    })
    .await
    .unwrap();
    assert!(results.len() > 200, "{} queries", results.len());
    let lost = results.iter().filter(|r| r.2.is_none()).count();
    assert_eq!(lost, 0, "{lost} of {} queries unanswered", results.len());
    let mut first_block = None;
    for (sent, received, answer) in &results {
        let answer = answer.as_ref().unwrap();
        let rcode = answer.response_code();
        if *received < edge_real {
            assert_eq!(
                rcode,
                ResponseCode::NoError,
                "blocked {} ms before the edge",
                edge_real - received
            );
            // Cached answers expire at the edge, not 300 s later.
            let ttl = answer.answers().iter().map(|r| r.ttl()).max().unwrap();
            let left = (edge_real - sent + 999) / 1000;
            assert!(
                i64::from(ttl) <= left,
                "TTL {ttl} s with {left} s left before the edge"
            );
        }
        if rcode == ResponseCode::NXDomain && first_block.is_none() {
            first_block = Some(*sent);
        }
        if *sent > edge_real + 1000 {
            assert_eq!(
                rcode,
                ResponseCode::NXDomain,
                "allowed {} ms after the edge",
                sent - edge_real
            );
        }
    }
    let first_block = first_block.expect("the lesson never started");
    let late = first_block - edge_real;
    assert!(
        (-100..1000).contains(&late),
        "switched {late} ms after the edge"
    );
    eprintln!(
        "{} queries, switched {late} ms after the edge, none lost",
        results.len()
    );
}

/// Overlapping, malformed and dangling schedules and calendars are refused at their line.
#[test]
fn bad_schedules_and_calendars_name_file_line_and_key() {
    let district = District::new();
    district.write("education.txt", "wiki.example\n");
    let base = "[profiles.p]\nallow = [\"education\"]\n[categories.education]\nlists = [\"@/education.txt\"]\n[[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"10.0.0.0/24\"]\nprofile = \"p\"\n";
    let cases: [(&str, &str, &str); 6] = [
        (
            "[schedules.lessons]\ndays = [\"mon\"]\ntimes = [\"07:00-11:30\", \"11:00-12:00\"]\n",
            "schooldns.toml:3",
            "schedules.lessons.times",
        ),
        (
            "[schedules.lessons]\ndays = [\"mon\", \"funday\"]\ntimes = [\"07:00-11:30\"]\n",
            "schooldns.toml:2",
            "schedules.lessons.days",
        ),
        (
            "[schedules.lessons]\ndays = [\"mon\"]\ntimes = [\"7:00-25:00\"]\n",
            "schooldns.toml:3",
            "schedules.lessons.times",
        ),
        (
            "[schedules.lessons]\ndays = [\"mon\"]\ntimes = [\"07:00-08:00\"]\n[[profiles.p.when]]\nschedule = \"lesons\"\nblock = [\"education\"]\n",
            "schooldns.toml:5",
            "profiles.p.when[0].schedule",
        ),
        (
            "[schedules.lessons]\ndays = [\"mon\"]\ntimes = [\"07:00-08:00\"]\n[[profiles.p.when]]\nschedule = \"lessons\"\nblock_services = [\"tiktok\"]\n",
            "schooldns.toml:6",
            "profiles.p.when[0].block_services",
        ),
        (
            "[calendar]\nfile = \"@/calendar.toml\"\n",
            "calendar.toml:3",
            "exams[0].from",
        ),
    ];
    district.write(
        "calendar.toml",
        "[[exams]]\nname = \"x\"\nfrom = \"2026-02-30\"\nprofile = \"p\"\n",
    );
    for (extra, place, key) in cases {
        let path = district.config(&format!("{extra}{base}"));
        let out = Command::new(env!("CARGO_BIN_EXE_schooldns"))
            .args(["check", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra}");
        assert!(err.contains(place) && err.contains(key), "{extra}\n→ {err}");
    }
}

/// Services by name at every level: a profile, a school, a subnet (table form), a device; an
/// allow wins over a block from another level; `explain` names the service.
#[test]
fn services_at_every_level_and_allow_wins() {
    let district = District::new();
    district.write("education.txt", "wiki.example\n");
    district.write(
        "devices.toml",
        "[[devices]]\nid = \"home\"\nname = \"Home\"\ntoken = \"hometoken2345abcdefghijklmnopqrst\"\nprofile = \"p\"\nblock_services = [\"roblox\"]\n",
    );
    district.config(&format!(
        "[services]\ncatalog = \"{}/blocklists/services/catalog.toml\"\n\
         [devices]\nfile = \"@/devices.toml\"\n\
         [categories.education]\nlists = [\"@/education.txt\"]\n\
         [profiles.p]\nallow = [\"education\"]\nblock_services = [\"tiktok\"]\n\
         [profiles.q]\nallow_services = [\"tiktok\"]\n\
         [[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"10.0.0.0/16\"]\nprofile = \"p\"\n\
         block_services = [\"youtube\"]\n\
         subnets = {{ \"10.0.5.0/24\" = {{ profile = \"p\", block_services = [\"zalo\"] }}, \"10.0.9.0/24\" = \"q\" }}\n",
        repo_root().display()
    ));
    let policy = district.compile();
    let e = crate::common::explain(&policy, "10.0.1.1", "www.tiktok.com");
    assert_eq!(e.decision, "block");
    assert_eq!(e.category.as_deref(), Some("services"));
    assert_eq!(e.service.as_deref(), Some("tiktok"));
    assert!(
        e.rule
            .as_ref()
            .unwrap()
            .list
            .as_ref()
            .unwrap()
            .ends_with("tiktok.txt"),
        "{e:?}"
    );
    // The school's own block, for all its networks.
    assert_eq!(
        crate::common::explain(&policy, "10.0.1.1", "m.youtube.com").decision,
        "block"
    );
    // The subnet's own, only there.
    assert_eq!(
        crate::common::explain(&policy, "10.0.5.1", "chat.zalo.me").decision,
        "block"
    );
    assert_eq!(
        crate::common::explain(&policy, "10.0.1.1", "chat.zalo.me").decision,
        "allow"
    );
    // The staff subnet's profile q keeps TikTok working; the school's YouTube block holds on
    // every one of its networks.
    assert_eq!(
        crate::common::explain(&policy, "10.0.9.1", "www.tiktok.com").decision,
        "allow"
    );
    assert_eq!(
        crate::common::explain(&policy, "10.0.9.1", "youtube.com").decision,
        "block"
    );
    // A device's own block.
    let q = schooldns::name::QueryName::from_user("www.roblox.com").unwrap();
    let d = policy.decide_device(Some("hometoken2345abcdefghijklmnopqrst"), &q);
    assert!(matches!(d.verdict, schooldns::policy::Verdict::Block(_)));
    // An unknown service names the key and line.
    district.config(
        "[profiles.p]\nblock_services = [\"tiktokk\"]\n[[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"10.0.0.0/16\"]\nprofile = \"p\"\n",
    );
    let err = schooldns::policy::compile(&district.load()).unwrap_err();
    assert_eq!(
        (err.line, err.key.as_str()),
        (2, "profiles.p.block_services"),
        "{err}"
    );
    assert!(err.message.contains("no [services] catalog"), "{err}");
}

/// `check` prints each school's week and warns about a schedule no rule uses and about two
/// rules that switch one place to different profiles at the same time.
#[test]
fn check_prints_the_week_and_warns_about_conflicts() {
    let district = District::new();
    district.config(
        "[schedules.lessons]\ndays = [\"mon\", \"tue\"]\ntimes = [\"07:00-11:30\"]\n\
         [schedules.club]\ndays = [\"tue\"]\ntimes = [\"10:00-12:00\"]\n\
         [schedules.unused]\ndays = [\"sat\"]\ntimes = [\"08:00-09:00\"]\n\
         [profiles.quiet]\n[profiles.loud]\n\
         [profiles.p]\n[[profiles.p.when]]\nschedule = \"lessons\"\nprofile = \"quiet\"\n\
         [[profiles.p.when]]\nschedule = \"club\"\nprofile = \"loud\"\n\
         [[schools]]\nid = \"a\"\nname = \"A\"\nnetworks = [\"10.0.0.0/16\"]\nprofile = \"p\"\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_schooldns"))
        .args([
            "check",
            "--config",
            district.path("schooldns.toml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("07:00 quiet by schedule \"lessons\""),
        "{text}"
    );
    assert!(text.contains("schedule \"unused\""), "{text}");
    assert!(text.contains("switch to different profiles"), "{text}");
}
