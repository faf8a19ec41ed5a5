//! Scale benchmark for the compiled policy (issue #2 §5): compile time, resident memory per
//! listed name, and peak memory while a new policy is compiled beside the old one, each beside
//! a plain `HashSet<String>` baseline. Run: `cargo bench --bench scale`.
//!
//! Also loads every real list of `../shared/data` and prints what each one yielded.

use std::collections::HashSet;
use std::time::Instant;

use schooldns::lists::read_list;
use schooldns::policy::Compiler;

mod support;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let lists = support::scale_lists();
    let config = support::scale_config(&lists);
    println!("scale benchmark: {} list files", lists.len());

    // Warm the page cache so the timing measures parsing and building, not the disk.
    for list in &lists {
        if let Ok(mut file) = std::fs::File::open(list) {
            let _ = std::io::copy(&mut file, &mut std::io::sink());
        }
    }

    let base = support::rss();
    println!("process RSS before any policy: {:.1} MiB", mib(base));
    let before = base;
    let started = Instant::now();
    let mut compiler = Compiler::default();
    let policy = compiler.compile(&config).expect("scale policy compiles");
    let compile_time = started.elapsed();
    let after = support::rss();
    // Reloads with the old policy still held, as the server does until the swap.
    let steady_rss = after;
    println!(
        "\n== reload while the old policy is held (steady process RSS {:.1} MiB, policy {:.1} MiB)",
        mib(steady_rss),
        mib(steady_rss - base)
    );
    let ratio = |peak: usize| (peak - base) as f64 / (steady_rss - base) as f64;
    if support::reset_peak_rss() {
        // The usual reload: an admin edited one small list; the big tables are shared.
        let edited =
            std::env::temp_dir().join(format!("schooldns-scale-{}.txt", std::process::id()));
        std::fs::write(&edited, "edited.example\n").unwrap();
        let mut with_edit = lists.clone();
        with_edit.push(edited.clone());
        let edit_config = support::scale_config(&with_edit);
        let started = Instant::now();
        let incremental = compiler.compile(&edit_config).expect("compile");
        let took = started.elapsed();
        let peak = support::peak_rss();
        println!(
            "one list edited          peak {:>8.1} MiB = {:.2}× steady, {:.2} s",
            mib(peak),
            ratio(peak),
            took.as_secs_f64()
        );
        drop(incremental);
        std::fs::remove_file(edited).ok();

        // Every file changed (e.g. all subscriptions refreshed at once): a full rebuild.
        support::reset_peak_rss();
        let started = Instant::now();
        let full = Compiler::default().compile(&config).expect("compile");
        let took = started.elapsed();
        let peak = support::peak_rss();
        println!(
            "every list changed       peak {:>8.1} MiB = {:.2}× steady, {:.2} s",
            mib(peak),
            ratio(peak),
            took.as_secs_f64()
        );
        drop(full);
    } else {
        println!("(cannot reset peak RSS here; reload peak not measured)");
    }

    let entries: usize = policy.categories().iter().map(|c| c.entries()).sum();
    let distinct: HashSet<u64> = policy
        .categories()
        .iter()
        .flat_map(|c| c.compiled.table.fingerprints())
        .collect();
    let distinct = distinct.len();
    let steady = after.saturating_sub(before);
    println!("\n== schooldns policy");
    println!("distinct names           {distinct:>12}");
    println!(
        "table entries            {entries:>12}  (a name in several categories counts in each)"
    );
    println!(
        "compile, one thread      {:>12.2} s",
        compile_time.as_secs_f64()
    );
    println!("RSS after − before       {:>12.1} MiB", mib(steady));
    println!(
        "bytes per distinct name  {:>12.1}  (matcher heap alone: {:.1})",
        steady as f64 / distinct as f64,
        policy.matcher_bytes() as f64 / distinct as f64
    );

    drop(policy);
    drop(compiler);

    // Baseline: the obvious structure, one HashSet<String> of every name.
    let before = support::rss();
    let started = Instant::now();
    let mut set: HashSet<String> = HashSet::new();
    for list in &lists {
        read_list(list, None, &mut |rule| {
            if !set.contains(rule.name) {
                set.insert(rule.name.to_string());
            }
        })
        .expect("read list");
    }
    let baseline_time = started.elapsed();
    let baseline = support::rss().saturating_sub(before);
    println!("\n== baseline HashSet<String>");
    println!("names                    {:>12}", set.len());
    println!(
        "build, one thread        {:>12.2} s",
        baseline_time.as_secs_f64()
    );
    println!("RSS after − before       {:>12.1} MiB", mib(baseline));
    println!(
        "bytes per name           {:>12.1}",
        baseline as f64 / set.len() as f64
    );
    println!(
        "\nratios (schooldns / HashSet, same run): memory {:.2}, build time {:.2}",
        (steady as f64 / distinct as f64) / (baseline as f64 / set.len() as f64),
        compile_time.as_secs_f64() / baseline_time.as_secs_f64()
    );
    drop(set);

    if let Some(dir) = support::shared_data() {
        println!("\n== every real list in {}", dir.display());
        println!(
            "{:<58} {:>8} {:>9} {:>8} {:>8}",
            "file", "format", "accepted", "rejected", "unsupp."
        );
        for path in support::shared_lists(&dir) {
            let report = read_list(&path, None, &mut |_| {}).expect("read shared list");
            println!(
                "{:<58} {:>8} {:>9} {:>8} {:>8}",
                path.strip_prefix(&dir).unwrap().display(),
                report.format.map_or("?", |f| f.as_str()),
                report.accepted,
                report.rejected,
                report.unsupported
            );
        }
    }
}
