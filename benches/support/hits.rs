//! The stored hit log the read benchmarks share: 10 million synthetic records (200 schools, 90
//! days, 12 categories) generated once into `target/hitlog-bench/` and reused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use schooldns::hitlog::schema;
use schooldns::hitlog::store::Store;
use schooldns::hitlog::{HitRecord, now_ms};

use super::support;

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;
/// Schools of the synthetic district (`school-000` … `school-199`).
pub const SCHOOLS: usize = 200;
/// Categories of the synthetic records.
pub const CATEGORIES: [&str; 12] = [
    "adult",
    "gambling",
    "violence",
    "drugs",
    "malware",
    "phishing",
    "proxy",
    "social",
    "games",
    "dating",
    "ads",
    "bypass-protection",
];

/// A deterministic stored record number `i` of `n`, spread over 90 days.
pub fn synthetic(i: usize, n: usize, now: i64, rng: &mut support::Rng) -> HitRecord {
    let school = rng.below(SCHOOLS);
    let category = CATEGORIES[rng.below(CATEGORIES.len())];
    let time = now - 90 * DAY_MS + (i as i64 * 90 * DAY_MS) / n as i64;
    let name = format!(
        "site{}.{category}-{}.example",
        rng.below(50_000),
        rng.below(100)
    );
    HitRecord {
        id: 0,
        time_ms: time,
        last_seen_ms: time,
        count: 1 + rng.below(3) as i64,
        school: Some(format!("school-{school:03}")),
        device: None,
        profile: Some("primary".into()),
        client: Some(format!(
            "10.{}.{}.{}",
            school,
            rng.below(256),
            rng.below(256)
        )),
        protocol: "udp".into(),
        qname: name.clone(),
        qtype: "A".into(),
        decision: "block".into(),
        category: category.into(),
        list: Some(format!("blocklists/ut1/{category}/domains")),
        line: Some(rng.below(1_000_000) as u32),
        entry: Some(name),
        cname: None,
        policy_version: "c0050ab96f7bf653".into(),
        service: None,
        instance: None,
    }
}

/// The stored file with `n` records, generated when missing, of another size, or written by an
/// older schema (an upgraded file keeps the old schema's size, so its bytes per record would
/// mislead).
pub fn store_with(dir: &Path, n: usize) -> (PathBuf, i64) {
    let path = dir.join(format!("hits-{n}.sqlite"));
    let stamp = dir.join(format!("hits-{n}.now"));
    if let (Ok(text), true) = (std::fs::read_to_string(&stamp), path.exists())
        && let Ok(now) = text.trim().parse()
        && !schema::needs_upgrade(&path)
    {
        return (path, now);
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("hits-{n}.sqlite{suffix}")));
    }
    let now = now_ms();
    let mut store = Store::open(&path).unwrap();
    let mut rng = support::Rng::new(4);
    let started = Instant::now();
    let batch = 100_000;
    for start in (0..n).step_by(batch) {
        let mut records: Vec<HitRecord> = (start..(start + batch).min(n))
            .map(|i| synthetic(i, n, now, &mut rng))
            .collect();
        store.write(&mut records, &[]).unwrap();
    }
    drop(store);
    println!(
        "generated {n} records in {:.0} s ({:.0} records/s through Store::write)",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    std::fs::write(&stamp, now.to_string()).unwrap();
    (path, now)
}

/// Median and worst of `runs` timings of `f`, in milliseconds.
pub fn time_ms(runs: usize, mut f: impl FnMut() -> usize) -> (f64, f64, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = f();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], times[runs - 1], rows)
}
