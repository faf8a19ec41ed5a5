//! Hit-log figures (issue #4 §4), in one run:
//!
//! 1. Writer alone: a million distinct hits (no repeats to fold) pushed through the real
//!    `HitLog` into a real SQLite file as fast as the writer takes them: hits per second on
//!    disk, hits dropped.
//! 2. Reads with 10 million records stored (200 schools, 90 days, 12 categories): the week
//!    summary of one school, and filtered pages of hits (school + category, client, next page),
//!    as `/api/summary` and `/api/hits` run them. The 10-million-record file is generated once
//!    into `target/hitlog-bench/` and reused (`HITLOG_RECORDS` changes the size).
//!
//! `cargo bench --bench hitlog`. The server-level figures (writer under DNS load, p99 during a
//! hit burst) come from `benches/hitlog.sh`.

#[path = "support/hits.rs"]
mod hits;
#[path = "support/mod.rs"]
mod support;

use hits::{DAY_MS, store_with, time_ms};

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use schooldns::config::{HitlogConfig, LoadedConfig};
use schooldns::hitlog::query::{self, Cursor, HitFilter};
use schooldns::hitlog::store;
use schooldns::hitlog::{HitEvent, HitLog, now_ms};
use schooldns::name::QueryName;

fn main() {
    // `cargo test --benches` runs this binary with `--bench`-less arguments; keep that quick.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/hitlog-bench");
    std::fs::create_dir_all(&dir).unwrap();
    writer_throughput(&dir, 1_000_000);
    writer_throughput(&dir, 10_000);
    let records: usize = std::env::var("HITLOG_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    reads(&dir, records);
}

/// A million hits from `distinct` client × name pairs (each new one a record, the rest repeats
/// folded into it), pushed as fast as the writer takes them.
fn writer_throughput(dir: &Path, distinct: usize) {
    const HITS: usize = 1_000_000;
    let path = dir.join("writer.sqlite");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let text = "[categories.adult]\nlists = []\n[profiles.p]\nblock = [\"adult\"]\n\
                [[schools]]\nid = \"bench\"\nname = \"Bench\"\nnetworks = [\"10.0.0.0/8\"]\n\
                profile = \"p\"\n";
    let loaded = LoadedConfig::parse(Path::new("bench.toml"), text.into()).unwrap();
    let policy = Arc::new(schooldns::policy::compile(&loaded).unwrap());
    let config = HitlogConfig {
        path: path.clone(),
        ..HitlogConfig::default()
    };
    let log = HitLog::start(&config).unwrap();
    let sender = log.sender();
    // Events are made up front: the figure is the writer's, not the producer's.
    let events: Vec<HitEvent> = (0..HITS)
        .map(|i| {
            let i = i % distinct;
            let client = std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            let name = QueryName::from_user(&format!("n{i}.blocked-{}.example", i % 1000)).unwrap();
            HitEvent {
                at_ms: now_ms(),
                client,
                protocol: "udp",
                qtype: 1,
                qname: name.as_str().into(),
                cname: None,
                decision: policy.decide(client, &name),
                policy: Arc::clone(&policy),
                client_address: config.client_address,
            }
        })
        .collect();
    let started = Instant::now();
    for event in events {
        // Pace only when the queue is full, so the writer is never idle and nothing drops.
        let stats = sender.stats();
        while stats.received.load(Ordering::Relaxed)
            - stats.records.load(Ordering::Relaxed)
            - stats.repeats.load(Ordering::Relaxed)
            > 60_000
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        sender.record(event);
    }
    log.flush();
    let took = started.elapsed();
    let stats = sender.stats();
    let written = stats.records.load(Ordering::Relaxed);
    let repeats = stats.repeats.load(Ordering::Relaxed);
    println!(
        "writer alone, {distinct} distinct: {} hits ({written} records + {repeats} repeats) on \
         disk in {:.2} s = {:.0} hits/s (dropped {})",
        written + repeats,
        took.as_secs_f64(),
        (written + repeats) as f64 / took.as_secs_f64(),
        stats.dropped.load(Ordering::Relaxed)
    );
    log.stop();
}

fn reads(dir: &Path, n: usize) {
    let (path, now) = store_with(dir, n);
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "store: {n} records, {:.0} MiB ({:.0} B/record)",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / n as f64
    );
    let zone = jiff::tz::TimeZone::get("Asia/Ho_Chi_Minh").unwrap();
    let week = HitFilter {
        schools: vec!["school-042".into()],
        since_ms: Some(now - 7 * DAY_MS),
        ..HitFilter::default()
    };
    let runs = 21;
    // Each measurement opens its own connection, as each API request does.
    let (median, worst, rows) = time_ms(runs, || {
        let conn = store::open_reader(&path).unwrap();
        query::summary(&conn, &week, &zone).unwrap().len()
    });
    println!(
        "week summary, one school: median {median:.1} ms, worst {worst:.1} ms ({rows} day×category rows; target ≤ 200 ms)"
    );
    let page = HitFilter {
        categories: vec!["malware".into()],
        ..week.clone()
    };
    let (median, worst, rows) = time_ms(runs, || {
        let conn = store::open_reader(&path).unwrap();
        query::list(&conn, &page, Some(100), None)
            .unwrap()
            .hits
            .len()
    });
    println!(
        "page of 100 hits, school + category + week: median {median:.1} ms, worst {worst:.1} ms ({rows} rows; target ≤ 50 ms)"
    );
    let conn = store::open_reader(&path).unwrap();
    let first = query::list(&conn, &page, Some(100), None).unwrap();
    let cursor = first.next.unwrap_or(Cursor {
        time_ms: now,
        id: i64::MAX,
    });
    let (median, worst, rows) = time_ms(runs, || {
        let conn = store::open_reader(&path).unwrap();
        query::list(&conn, &page, Some(100), Some(cursor))
            .unwrap()
            .hits
            .len()
    });
    println!("next page (cursor): median {median:.1} ms, worst {worst:.1} ms ({rows} rows)");
    let client = first.hits.first().and_then(|h| h.client.clone());
    let by_client = HitFilter {
        client,
        since_ms: Some(now - 30 * DAY_MS),
        ..HitFilter::default()
    };
    let (median, worst, rows) = time_ms(runs, || {
        let conn = store::open_reader(&path).unwrap();
        query::list(&conn, &by_client, Some(100), None)
            .unwrap()
            .hits
            .len()
    });
    println!(
        "page of hits for one client, 30 days: median {median:.1} ms, worst {worst:.1} ms ({rows} rows)"
    );
    let district = HitFilter {
        since_ms: Some(now - DAY_MS),
        ..HitFilter::default()
    };
    let (median, worst, rows) = time_ms(5, || {
        let conn = store::open_reader(&path).unwrap();
        query::summary(&conn, &district, &zone).unwrap().len()
    });
    println!(
        "district summary, last day (all schools): median {median:.1} ms, worst {worst:.1} ms ({rows} rows)"
    );
    // A CSV export as `/api/hits?format=csv` streams it: rows read one by one and formatted
    // into 64 KiB chunks, the largest allocation one chunk.
    let export = HitFilter::default();
    let schools = schooldns::hitlog::export::SchoolNames::new();
    let conn = store::open_reader(&path).unwrap();
    let started = Instant::now();
    let (mut chunk, mut bytes) = (Vec::with_capacity(1 << 17), 0usize);
    let exported = query::for_each(&conn, &export, |record| {
        let fields = schooldns::hitlog::export::csv_fields(&record, &zone, &schools);
        schooldns::hitlog::export::csv_line(&mut chunk, &fields).unwrap();
        if chunk.len() >= 64 * 1024 {
            bytes += chunk.len();
            chunk.clear();
        }
        true
    })
    .unwrap();
    let took = started.elapsed().as_secs_f64();
    println!(
        "CSV export of every record: {exported} records in {took:.2} s, {:.0} records/s, {:.0} MiB (target ≥ 200,000 records/s)",
        exported as f64 / took,
        (bytes + chunk.len()) as f64 / (1 << 20) as f64
    );
}
