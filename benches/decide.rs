//! Decision latency (issue #2 §5): network lookup + name lookup for names of 3–4 labels, listed
//! and unlisted, with about 5 million names loaded, beside a `HashSet<String>` holding the same
//! names and walked the same way. Run: `cargo bench --bench decide`.

use std::collections::HashSet;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use schooldns::lists::read_list;
use schooldns::name::QueryName;
use schooldns::policy::{Compiler, Verdict};

mod support;

/// The obvious implementation: every listed name in one set, each suffix of the query looked up.
fn baseline_blocked(set: &HashSet<String>, name: &str) -> bool {
    let mut rest = name;
    loop {
        if set.contains(rest) {
            return true;
        }
        match rest.find('.') {
            Some(i) => rest = &rest[i + 1..],
            None => return false,
        }
    }
}

fn bench_decide(c: &mut Criterion) {
    let lists = support::scale_lists();
    let config = support::scale_config(&lists);
    let policy = Compiler::default().compile(&config).expect("policy");
    let client: IpAddr = "10.1.2.3".parse().unwrap();

    let parse = |names: Vec<String>| -> Vec<QueryName> {
        names.iter().map(|n| QueryName::parse(n).unwrap()).collect()
    };
    let listed = parse(support::listed_queries(10_000));
    let unlisted: Vec<QueryName> = parse(support::unlisted_candidates(10_000))
        .into_iter()
        .filter(|q| policy.decide(client, q).verdict == Verdict::Allow)
        .take(10_000)
        .collect();
    assert!(
        listed
            .iter()
            .all(|q| matches!(policy.decide(client, q).verdict, Verdict::Block(_)))
    );
    println!(
        "workload: {} listed, {} unlisted names",
        listed.len(),
        unlisted.len()
    );
    print_latency_percentiles(&policy, client, &listed, &unlisted);

    let mut group = c.benchmark_group("decide");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    for (label, names) in [("listed", &listed), ("unlisted", &unlisted)] {
        let mut i = 0usize;
        group.bench_function(format!("schooldns/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % names.len();
                black_box(policy.decide(black_box(client), &names[i]))
            })
        });
        let texts: Vec<String> = names.iter().map(|q| q.as_str().to_string()).collect();
        let mut i = 0usize;
        group.bench_function(format!("schooldns-parse+decide/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % texts.len();
                let q = QueryName::parse(black_box(&texts[i])).unwrap();
                black_box(policy.decide(client, &q))
            })
        });
    }
    drop(policy);

    let mut set: HashSet<String> = HashSet::new();
    for list in &lists {
        read_list(list, None, &mut |rule| {
            if !set.contains(rule.name) {
                set.insert(rule.name.to_string());
            }
        })
        .unwrap();
    }
    for (label, names) in [("listed", &listed), ("unlisted", &unlisted)] {
        let texts: Vec<String> = names.iter().map(|q| q.as_str().to_string()).collect();
        let mut i = 0usize;
        group.bench_function(format!("hashset-baseline/{label}"), |b| {
            b.iter(|| {
                i = (i + 1) % texts.len();
                black_box(baseline_blocked(&set, black_box(&texts[i])))
            })
        });
    }
    group.finish();
}

/// Per-call latency (not throughput): each decision timed on its own, so the median is what
/// one query waits. The cost of reading the clock is measured the same way and subtracted.
fn print_latency_percentiles(
    policy: &schooldns::policy::Policy,
    client: IpAddr,
    listed: &[QueryName],
    unlisted: &[QueryName],
) {
    use std::time::Instant;
    const ROUNDS: usize = 20;
    let percentiles = |mut v: Vec<u64>| {
        v.sort_unstable();
        let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        (at(0.5), at(0.9), at(0.99))
    };
    let mut clock = Vec::with_capacity(100_000);
    for _ in 0..100_000 {
        let t = Instant::now();
        clock.push(black_box(t.elapsed()).as_nanos() as u64);
    }
    let (clock_p50, _, _) = percentiles(clock);
    println!("per-call latency, clock overhead {clock_p50} ns subtracted (p50 / p90 / p99):");
    for (label, names) in [("listed", listed), ("unlisted", unlisted)] {
        let mut samples = Vec::with_capacity(names.len() * ROUNDS);
        for _ in 0..ROUNDS {
            for q in names {
                let t = Instant::now();
                black_box(policy.decide(client, black_box(q)));
                samples.push((t.elapsed().as_nanos() as u64).saturating_sub(clock_p50));
            }
        }
        let (p50, p90, p99) = percentiles(samples);
        println!("  schooldns decide, {label:<8}  {p50:>5} / {p90:>5} / {p99:>5} ns");
    }
}

fn bench_networks(c: &mut Criterion) {
    let d = tempfile::tempdir().unwrap();
    // A district of 500 schools, each a /16 with a /24 staff subnet and a /48.
    let mut text = String::from("[profiles.student]\n[profiles.staff]\n");
    for i in 0..500u32 {
        text.push_str(&format!(
            "[[schools]]\nid = \"s{i}\"\nname = \"School {i}\"\nnetworks = [\"10.{}.{}.0/24\", \"2001:db8:{i:x}::/48\"]\nprofile = \"student\"\nsubnets = {{ \"10.{}.{}.128/25\" = \"staff\" }}\n",
            i / 256, i % 256, i / 256, i % 256
        ));
    }
    let path = d.path().join("n.toml");
    std::fs::write(&path, &text).unwrap();
    let loaded = schooldns::config::LoadedConfig::read(&path).unwrap();
    let policy = Compiler::default().compile(&loaded).unwrap();
    let q = QueryName::parse("www.example.com").unwrap();
    let clients: Vec<IpAddr> = (0..1000u32)
        .map(|i| {
            format!("10.{}.{}.{}", (i / 256) % 2, i % 256, i % 250)
                .parse()
                .unwrap()
        })
        .collect();
    let mut i = 0usize;
    c.bench_function("decide/500-schools-no-lists", |b| {
        b.iter(|| {
            i = (i + 1) % clients.len();
            black_box(policy.decide(clients[i], &q))
        })
    });
}

criterion_group!(benches, bench_decide, bench_networks);
criterion_main!(benches);
