//! Decision latency (issue #2 §5): network lookup + name lookup for names of 3–4 labels, listed
//! and unlisted, with about 5 million names loaded, beside a `HashSet<String>` holding the same
//! names and walked the same way; and (issue 22) the same decision with 50 schedules and 20
//! calendar entries in force beside none. Run: `cargo bench --bench decide`.

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

/// Issue 22's figure: the same lists and 50 schools, once as before (no rules in time) and once
/// with 50 schedules (one per school, open all day, each blocking a service through a `when`
/// rule) and 20 calendar entries in force today (10 holidays switching some of them off, 10
/// exam days switching 10 schools to an exam profile); decisions timed side by side.
fn bench_time_rules(c: &mut Criterion) {
    let lists = support::scale_lists();
    let dir = tempfile::tempdir().unwrap();
    let base = support::scale_categories_and_profile(&lists);
    let services: Vec<&str> = vec![
        "tiktok",
        "youtube",
        "facebook",
        "instagram",
        "messenger",
        "zalo",
        "telegram",
        "discord",
        "snapchat",
        "x",
        "reddit",
        "twitch",
        "netflix",
        "roblox",
        "minecraft",
        "steam",
        "epicgames",
        "garena",
        "pubg",
        "genshin",
        "chatgpt",
    ];
    let schools: String = (0..50)
        .map(|i| {
            format!(
                "[[schools]]\nid = \"s{i}\"\nname = \"S{i}\"\nnetworks = [\"10.{i}.0.0/16\"]\nprofile = \"student\"\n"
            )
        })
        .collect();
    let plain = format!("{base}{schools}");
    let today = jiff::Zoned::now().date();
    let (from, to) = (today.yesterday().unwrap(), today.tomorrow().unwrap());
    // The exam profile probes the same lists as the student one, and blocks what they miss.
    let student = &base[base.find("[profiles.student]").unwrap()..];
    let mut timed = format!(
        "{base}{}",
        student.replace(
            "[profiles.student]",
            "[profiles.exam]\nblock_unlisted = true"
        )
    );
    timed.push_str(&format!(
        "[services]\ncatalog = \"{}/blocklists/services/catalog.toml\"\n[calendar]\nfile = \"{}/calendar.toml\"\n",
        env!("CARGO_MANIFEST_DIR"),
        dir.path().display()
    ));
    for i in 0..50 {
        timed.push_str(&format!(
            "[schedules.t{i}]\ndays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]\ntimes = [\"00:00-24:00\"]\n"
        ));
    }
    for i in 0..50 {
        timed.push_str(&format!(
            "[[schools]]\nid = \"s{i}\"\nname = \"S{i}\"\nnetworks = [\"10.{i}.0.0/16\"]\nprofile = \"student\"\n[[schools.when]]\nschedule = \"t{i}\"\nblock_services = [\"{}\"]\n",
            services[i % services.len()]
        ));
    }
    let mut calendar = String::new();
    for i in 0..10 {
        calendar.push_str(&format!(
            "[[holidays]]\nname = \"h{i}\"\nfrom = {from}\nto = {to}\nschools = [\"s{}\"]\nschedules = [\"t{}\"]\n",
            40 + i,
            40 + i
        ));
        calendar.push_str(&format!(
            "[[exams]]\nname = \"e{i}\"\nfrom = {from}\nto = {to}\nschools = [\"s{}\"]\nprofile = \"exam\"\n",
            30 + i
        ));
    }
    std::fs::write(dir.path().join("calendar.toml"), calendar).unwrap();
    let parse = |text: String| {
        schooldns::config::LoadedConfig::parse(std::path::Path::new("bench.toml"), text).unwrap()
    };
    let mut compiler = Compiler::default();
    let before = compiler.compile(&parse(plain)).expect("plain policy");
    let with_time = compiler.compile(&parse(timed)).expect("timed policy");
    assert!(!with_time.time_rules().is_static());
    assert_eq!(with_time.time_rules().schedules.len(), 50);
    assert_eq!(with_time.time_rules().calendar.len(), 20);

    let names: Vec<QueryName> = support::listed_queries(5_000)
        .into_iter()
        .chain(support::unlisted_candidates(5_000))
        .map(|n| QueryName::parse(&n).unwrap())
        .collect();
    // Clients of schools 0-29 (a schedule open), 30-39 (exam day) and 40-49 (holiday).
    let clients: Vec<IpAddr> = (0..names.len())
        .map(|i| {
            format!("10.{}.{}.{}", i % 50, (i / 50) % 250, 1 + i % 200)
                .parse()
                .unwrap()
        })
        .collect();
    let exam = QueryName::parse("unlisted-name.example").unwrap();
    assert!(matches!(
        with_time
            .decide("10.35.0.1".parse().unwrap(), &exam)
            .verdict,
        Verdict::Block(_)
    ));
    assert_eq!(
        before.decide("10.35.0.1".parse().unwrap(), &exam).verdict,
        Verdict::Allow
    );

    // Per-call latency, the two policies interleaved round by round.
    use std::time::Instant;
    let mut samples = [Vec::new(), Vec::new()];
    for _ in 0..10 {
        for (slot, policy) in [&before, &with_time].into_iter().enumerate() {
            for (q, &client) in names.iter().zip(&clients) {
                let t = Instant::now();
                black_box(policy.decide(black_box(client), black_box(q)));
                samples[slot].push(t.elapsed().as_nanos() as u64);
            }
        }
    }
    let stats = |v: &mut Vec<u64>| {
        v.sort_unstable();
        let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        (mean, at(0.5), at(0.99))
    };
    let (mean_a, p50_a, p99_a) = stats(&mut samples[0]);
    let (mean_b, p50_b, p99_b) = stats(&mut samples[1]);
    println!("rules in time, per call (mean / p50 / p99 ns, clock included):");
    println!("  without                           {mean_a:>7.1} / {p50_a:>5} / {p99_a:>5}");
    println!("  50 schedules + 20 calendar entries {mean_b:>7.1} / {p50_b:>5} / {p99_b:>5}");
    println!("  ratio (mean) {:.3}", mean_b / mean_a);
    // What evaluating the rules per query would add: the place's state at the current time
    // (time zone conversion, schedules, calendar) and its variant's lookup.
    let slots = with_time.time_rules().slots.len() as u32;
    let now = schooldns::clock::now_ms();
    let t = Instant::now();
    let rounds = 100_000u32;
    for i in 0..rounds {
        black_box(with_time.variant_at(black_box(i % slots), black_box(now)));
    }
    println!(
        "  evaluating the rules per query instead: {:.0} ns per call",
        t.elapsed().as_nanos() as f64 / f64::from(rounds)
    );

    let mut group = c.benchmark_group("time-rules");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    for (label, policy) in [
        ("without", &before),
        ("50-schedules-20-calendar", &with_time),
    ] {
        let mut i = 0usize;
        group.bench_function(label, |b| {
            b.iter(|| {
                i = (i + 1) % names.len();
                black_box(policy.decide(black_box(clients[i]), &names[i]))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decide, bench_networks, bench_time_rules);
criterion_main!(benches);
