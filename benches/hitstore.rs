//! The shared PostgreSQL hit store's figures (issue 23), apart from DNS load (two cores cannot
//! carry a load generator, three resolvers, their writers and PostgreSQL at once):
//!
//! 1. `ship`: three spools pre-filled with `SHIP_RECORDS` records each (default 1,000,000)
//!    shipped by three shippers at once; records and hits per second together.
//! 2. `catchup`: a spool holding a 10-minute outage's backlog at 5,000 hits/s (3,000,000
//!    records, every hit its own record: the worst case) shipped while a writer keeps adding
//!    5,000 records/s; time until the backlog is gone.
//! 3. `read`: `READ_RECORDS` records (default 100,000,000) over 30 days generated in
//!    PostgreSQL, then a week's summary (from the rollup) and filtered hits pages (from the
//!    partitions' indexes) timed as the console and the API run them.
//!
//! Needs a PostgreSQL database: `benches/hitstore.sh` makes a throwaway cluster and runs this
//! with `SCHOOLDNS_PG_URL` and `SCHOOLDNS_PG_PASSWORD_FILE` set. `SECTIONS="ship catchup read"`
//! picks sections. Each section starts from an empty database.

#[allow(dead_code)]
#[path = "support/hits.rs"]
mod hits;
#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use schooldns::config::{HitlogBackend, HitlogConfig};
use schooldns::hitlog::postgres::ship::{InstanceStatus, ShipStats, Shipper};
use schooldns::hitlog::postgres::{connect, read, schema};
use schooldns::hitlog::query::{Cursor, HitFilter};
use schooldns::hitlog::store::Store;
use schooldns::hitlog::{HitRecord, HitStats, now_ms};

const DAY_MS: i64 = 86_400_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn config(instance: &str, spool: &Path) -> HitlogConfig {
    let url =
        std::env::var("SCHOOLDNS_PG_URL").expect("SCHOOLDNS_PG_URL (see benches/hitstore.sh)");
    let text = format!(
        "[hitlog]\nbackend = \"postgres\"\nurl = \"{url}\"\ninstance = \"{instance}\"\n\
         timezone = \"Asia/Ho_Chi_Minh\"\n"
    );
    let loaded =
        schooldns::config::LoadedConfig::parse(Path::new("bench.toml"), text).expect("config");
    let mut config = loaded.config.hitlog;
    config.password_file = std::env::var_os("SCHOOLDNS_PG_PASSWORD_FILE").map(Into::into);
    config.path = spool.to_path_buf();
    assert_eq!(config.backend, HitlogBackend::Postgres);
    config
}

/// Drops everything schooldns made in the database.
fn reset(config: &HitlogConfig) {
    let mut client = connect(config).expect("connect");
    client
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        .expect("reset");
}

/// `n` synthetic records written to a new spool at `path`, first hits spread over the
/// `span_ms` before `end`.
fn fill_spool(path: &Path, n: usize, end: i64, span_ms: i64, seed: u64) -> u64 {
    let mut store = Store::open(path).unwrap();
    let mut rng = support::Rng::new(seed);
    let mut hits = 0u64;
    for start in (0..n).step_by(50_000) {
        let mut records: Vec<HitRecord> = (start..(start + 50_000).min(n))
            .map(|i| {
                let mut r = hits::synthetic(i, n, end, &mut rng);
                r.time_ms = end - span_ms + (i as i64 * span_ms) / n as i64;
                r.last_seen_ms = r.time_ms;
                hits += r.count as u64;
                r
            })
            .collect();
        store.write(&mut records, &[]).unwrap();
    }
    hits
}

fn shipper(config: &HitlogConfig) -> (Shipper, Arc<ShipStats>) {
    let stats = Arc::new(ShipStats::default());
    let shipper = Shipper::spawn(
        config.clone(),
        Arc::new(HitStats::default()),
        Arc::clone(&stats),
        Arc::new(InstanceStatus::default),
    )
    .unwrap();
    (shipper, stats)
}

fn ship(dir: &Path) {
    let n = env_usize("SHIP_RECORDS", 1_000_000);
    let configs: Vec<HitlogConfig> = (1..=3)
        .map(|i| config(&format!("ship{i}"), &dir.join(format!("ship{i}.sqlite"))))
        .collect();
    reset(&configs[0]);
    let end = now_ms() - 3_600_000;
    let mut hits = 0;
    let started = Instant::now();
    for (i, c) in configs.iter().enumerate() {
        let _ = std::fs::remove_file(&c.path);
        hits += fill_spool(&c.path, n, end, 6 * 3_600_000, 10 + i as u64);
    }
    println!(
        "ship: 3 spools of {n} records ({hits} hits) filled in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let running: Vec<_> = configs.iter().map(shipper).collect();
    let total = 3 * n as u64;
    let deadline = started + Duration::from_secs(1800);
    while running
        .iter()
        .map(|(_, s)| s.shipped.load(Ordering::Relaxed))
        .sum::<u64>()
        < total
    {
        assert!(Instant::now() < deadline, "shipping took over 30 minutes");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed().as_secs_f64();
    let shipped_hits: u64 = running
        .iter()
        .map(|(_, s)| s.shipped_hits.load(Ordering::Relaxed))
        .sum();
    for (shipper, _) in running {
        shipper.stop();
    }
    let mut client = connect(&configs[0]).unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM records", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored as u64, total, "every record once");
    println!(
        "ship: {total} records ({shipped_hits} hits) from 3 spools in {took:.1} s: \
         {:.0} records/s, {:.0} hits/s together",
        total as f64 / took,
        shipped_hits as f64 / took
    );
}

fn catchup(dir: &Path) {
    const RATE: usize = 5_000;
    let backlog = env_usize("CATCHUP_RECORDS", 600 * RATE);
    let c = config("catchup", &dir.join("catchup.sqlite"));
    reset(&c);
    let _ = std::fs::remove_file(&c.path);
    let now = now_ms();
    fill_spool(&c.path, backlog, now, 600_000, 77);
    println!("catchup: a 10-minute backlog of {backlog} records in the spool");
    // New hits keep arriving at RATE while it ships.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (c.path.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut store = Store::open(&path).unwrap();
            let mut rng = support::Rng::new(5);
            let mut written = 0usize;
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(900) {
                let due = (started.elapsed().as_secs_f64() * RATE as f64) as usize;
                let mut records: Vec<HitRecord> = (written..due)
                    .map(|i| hits::synthetic(i, 1, now_ms(), &mut rng))
                    .map(|mut r| {
                        r.time_ms = now_ms();
                        r.last_seen_ms = r.time_ms;
                        r
                    })
                    .collect();
                if !records.is_empty() {
                    store.write(&mut records, &[]).unwrap();
                }
                written = due;
                std::thread::sleep(Duration::from_millis(100));
            }
            written
        })
    };
    let started = Instant::now();
    let (shipper, stats) = shipper(&c);
    // Caught up: everything written before this moment has been shipped and the backlog is
    // down to what a tenth of a second of new hits adds.
    let deadline = started + Duration::from_secs(900);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let shipped = stats.shipped.load(Ordering::Relaxed) as usize;
        let backlog_now = stats.backlog.load(Ordering::Relaxed);
        if shipped >= backlog && backlog_now <= RATE as i64 / 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no catch-up within 15 minutes");
    }
    let took = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    shipper.stop();
    println!(
        "catchup: backlog of {backlog} records shipped, with {written} new ones arriving at \
         {RATE}/s meanwhile, in {took:.1} s (target: 300 s)"
    );
}

fn read_figures() {
    let n = env_usize("READ_RECORDS", 100_000_000) as i64;
    let c = config("reader", Path::new("/nonexistent"));
    let zone = schooldns::hitlog::time::zone(&c);
    let mut client = connect(&c).unwrap();
    let existing: i64 = client
        .query_opt(
            "SELECT value FROM schooldns_meta WHERE key = 'bench_records'",
            &[],
        )
        .ok()
        .flatten()
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0);
    let end = now_ms();
    let days = 30;
    if existing != n {
        reset(&c);
        schema::prepare(&mut client).unwrap();
        client
            .batch_execute(
                "INSERT INTO instances (name) VALUES ('r1'), ('r2'), ('r3');
                 INSERT INTO schools (name) SELECT 'school-' || lpad(g::text, 3, '0') FROM generate_series(0, 199) g;
                 INSERT INTO categories (name) VALUES ('adult'), ('gambling'), ('violence'), ('drugs'),
                   ('malware'), ('phishing'), ('proxy'), ('social'), ('games'), ('dating'), ('ads'),
                   ('bypass-protection');
                 INSERT INTO contexts (profile, protocol, qtype, decision, list, policy_version)
                   SELECT 'primary', p, q, 'block', 'blocklists/ut1/x/domains', 'c0050ab96f7bf653'
                   FROM unnest(ARRAY['udp', 'tcp', 'dot', 'doh']) p, unnest(ARRAY['A', 'AAAA', 'HTTPS']) q;",
            )
            .unwrap();
        let zone_name = schooldns::hitlog::time::zone_name(&zone);
        client
            .execute(
                "INSERT INTO schooldns_meta VALUES ('rollup_zone', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                &[&zone_name],
            )
            .unwrap();
        let per_day = n / days;
        let started = Instant::now();
        let first_day = schema::utc_day(end) - days + 1;
        for d in 0..days {
            let day = first_day + d;
            let name = schema::partition_name(day);
            // Loaded unindexed, then attached: PostgreSQL builds each index in one sorted pass.
            client
                .batch_execute(&format!(
                    "CREATE TABLE {name} (LIKE records INCLUDING DEFAULTS);
                     INSERT INTO {name} (instance, local_id, time_ms, last_seen_ms, count, school,
                        category, context, device, client, qname, line, entry, cname)
                     SELECT 1 + g % 3, g, {start} + ((g - 1)::bigint * {DAY_MS}) / {per_day},
                        {start} + ((g - 1)::bigint * {DAY_MS}) / {per_day}, 1 + (g % 3),
                        1 + (hashint4(g) & 2147483647) % 200, 1 + (hashint4(g + 7) & 2147483647) % 12,
                        1 + g % 12, NULL,
                        '10.' || (g % 200) || '.' || (g % 251) || '.' || (g % 241),
                        'site' || ((hashint4(g + 3) & 2147483647) % 50000) || '.example',
                        g % 100000, '', NULL
                     FROM generate_series(1, {per_day}) g;
                     ALTER TABLE records ATTACH PARTITION {name} FOR VALUES FROM ({start}) TO ({next});",
                    start = day * DAY_MS,
                    next = (day + 1) * DAY_MS,
                ))
                .unwrap();
            println!(
                "read: day {}/{days} loaded ({:.0} s)",
                d + 1,
                started.elapsed().as_secs_f64()
            );
        }
        // The rollup, as the shippers would have kept it: local days of Asia/Ho_Chi_Minh
        // (UTC+7 all year).
        client
            .batch_execute(
                "INSERT INTO rollup_days SELECT ((time_ms + 25200000) / 86400000)::integer,
                    school, category, sum(count)::bigint, count(*) FROM records GROUP BY 1, 2, 3",
            )
            .unwrap();
        client.execute(
            "INSERT INTO schooldns_meta VALUES ('bench_records', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&n.to_string()],
        )
        .unwrap();
        client.batch_execute("VACUUM ANALYZE").unwrap();
        println!(
            "read: {n} records over {days} days generated in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    let records: i64 = client
        .query_one("SELECT count(*) FROM records", &[])
        .unwrap()
        .get(0);
    let today = schooldns::hitlog::rollup::day_of(end, &zone);
    let week_start = schooldns::hitlog::rollup::day_start(today - 6, &zone).unwrap();
    let pool = read::Pool::new(&c);
    let mut db = pool.get().unwrap();
    let week = HitFilter {
        since_ms: Some(week_start),
        ..HitFilter::default()
    };
    let (median, worst, rows) =
        hits::time_ms(7, || read::summary(&mut db, &week, &zone).unwrap().len());
    println!(
        "read: week's summary over {records} records: median {median:.1} ms, worst {worst:.1} ms \
         ({rows} day × school × category rows; target 500 ms)"
    );
    let filters = [
        (
            "one school, one category, last 7 days",
            HitFilter {
                schools: vec!["school-042".into()],
                categories: vec!["adult".into()],
                since_ms: Some(week_start),
                ..HitFilter::default()
            },
        ),
        (
            "one school, last 7 days",
            HitFilter {
                schools: vec!["school-042".into()],
                since_ms: Some(week_start),
                ..HitFilter::default()
            },
        ),
        (
            "one category, all schools",
            HitFilter {
                categories: vec!["malware".into()],
                ..HitFilter::default()
            },
        ),
        ("everything, newest first", HitFilter::default()),
        (
            "a client address, last 30 days",
            HitFilter {
                client: Some("10.0.247.36".into()),
                since_ms: Some(end - 30 * DAY_MS),
                ..HitFilter::default()
            },
        ),
    ];
    for (what, filter) in filters {
        let mut next: Option<Cursor> = None;
        let (median, worst, rows) = hits::time_ms(7, || {
            let page = read::list(&mut db, &filter, Some(100), None).unwrap();
            next = page.next;
            page.hits.len()
        });
        let (median2, worst2, _) = hits::time_ms(7, || {
            read::list(&mut db, &filter, Some(100), next)
                .unwrap()
                .hits
                .len()
        });
        println!(
            "read: hits page ({what}): {rows} records, median {median:.1} ms, worst {worst:.1} ms; \
             next page median {median2:.1} ms, worst {worst2:.1} ms (target 100 ms)"
        );
    }
}

fn main() {
    // `cargo bench` runs every bench target with `--bench`; this one needs its database.
    if std::env::var_os("SCHOOLDNS_PG_URL").is_none() {
        println!("hitstore: set SCHOOLDNS_PG_URL (bash benches/hitstore.sh makes a cluster)");
        return;
    }
    let sections = std::env::var("SECTIONS").unwrap_or_else(|_| "ship catchup read".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hitstore-bench");
    std::fs::create_dir_all(&dir).unwrap();
    for section in sections.split_whitespace() {
        match section {
            "ship" => ship(&dir),
            "catchup" => catchup(&dir),
            "read" => read_figures(),
            other => panic!("unknown section {other}"),
        }
    }
}
