//! The `schooldns` command line: argument definitions and the commands' output.
//!
//! `check` and `explain` load and compile the policy through exactly the code the server uses
//! (`LoadedConfig::read` + `policy::compile`), so what they print is what the server would do.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod devices;
mod hits;
mod init;
mod timeline;
mod users;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{DEFAULT_CONFIG_PATH, LoadedConfig};
use crate::name::QueryName;
use crate::policy::{self, Explanation, Policy, RuleInfo};

/// schooldns: a filtering DNS resolver for school networks.
#[derive(Debug, Parser)]
#[command(name = "schooldns", version, about)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the DNS server.
    Serve {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Worker threads answering queries (default: one per core, or one per `--cpus` entry).
        #[arg(long)]
        threads: Option<usize>,
        /// Pin the query workers to these CPUs, one worker per CPU in turn (`0`, `0,2`, `0-3`).
        /// Reloads, downloads and the hit-log writer stay free to run on any core.
        #[arg(long)]
        cpus: Option<crate::priority::CpuList>,
    },
    /// Ask the running server to reload its policy now (through `[admin] listen`).
    Reload {
        /// Config file (to find the admin address).
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// Accept categories that shrank beyond `[reload] max_shrink`.
        #[arg(long)]
        force: bool,
    },
    /// Load and compile the config and every list exactly as the server will, and report.
    Check {
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Read the policy-hit log: records, rankings (`--top`) or per-day counts (`--summary`).
    Hits(hits::HitsArgs),
    /// Manage home devices and families (DoT/DoH tokens): `add`, `revoke`, `list`.
    Devices(devices::DevicesArgs),
    /// Manage the web console's people: `add`, `passwd`, `disable`, `list`.
    Users(users::UsersArgs),
    /// Write a starter config for a district from a few answers (flags, or questions on a
    /// terminal): listeners, upstreams, time zone, console, schools.
    Init(init::InitArgs),
    /// Show what the policy decides for names asked by a client address, and why.
    Explain {
        /// Names to explain; `-` reads one name per line from standard input.
        #[arg(required = true)]
        names: Vec<String>,
        /// The client address (selects school and profile).
        #[arg(long, required_unless_present = "device", conflicts_with = "device")]
        client: Option<IpAddr>,
        /// A home device's id instead of an address (its profile, services, rules in time).
        #[arg(long)]
        device: Option<String>,
        /// Decide as at this moment: RFC 3339 (`2026-12-07T08:00:00+07:00`), or a local
        /// `2026-12-07T08:00` in `[hitlog] timezone`. Default: now.
        #[arg(long)]
        at: Option<String>,
        /// Config file.
        #[arg(long, short, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// One JSON object per name and line.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            config,
            threads,
            cpus,
        } => serve(&config, threads, cpus.map(|c| c.0)),
        Command::Check { config } => check(&config),
        Command::Reload { config, force } => reload(&config, force),
        Command::Hits(args) => hits::run(&args),
        Command::Devices(args) => devices::run(&args),
        Command::Users(args) => users::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Explain {
            names,
            client,
            device,
            at,
            config,
            json,
        } => explain(&config, &names, Asker { client, device, at }, json),
    }
}

/// Loads and compiles a config: the path shared by `check`, `explain` and the server.
pub fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let loaded = LoadedConfig::read(path)?;
    Ok(policy::compile(&loaded)?)
}

fn serve(
    path: &Path,
    threads: Option<usize>,
    cpus: Option<Vec<usize>>,
) -> anyhow::Result<ExitCode> {
    let workers = threads
        .or(cpus.as_ref().map(Vec::len))
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
        .max(1);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime
        .enable_all()
        .thread_name("schooldns-worker")
        .worker_threads(workers);
    if let Some(cpus) = cpus {
        crate::priority::reserve_for_workers(cpus.iter().copied().take(workers).collect());
        runtime.on_thread_start(pin_workers(cpus, workers));
    }
    let runtime = runtime.build().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = crate::app::App::bind_with(path, workers.max(1)).await?;
        tracing::info!(
            udp = ?server.udp_addrs(),
            tcp = ?server.tcp_addrs(),
            dot = ?server.dot_addrs(),
            doh = ?server.doh_addrs(),
            config = %path.display(),
            "serving"
        );
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        tokio::spawn(signals(stop, server.reload_trigger()));
        server.run(shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The runtime's thread-start hook for `--cpus`: the first `workers` threads it starts are its
/// workers (the runtime starts them as it is built, before any blocking thread), and each is
/// pinned to the next CPU of the list in turn. Later threads (the blocking pool) stay free.
fn pin_workers(cpus: Vec<usize>, workers: usize) -> impl Fn() + Send + Sync + 'static {
    let started = std::sync::atomic::AtomicUsize::new(0);
    move || {
        let index = started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if index >= workers || cpus.is_empty() {
            return;
        }
        let cpu = cpus[index % cpus.len()];
        match crate::priority::pin_to_cpu(cpu) {
            Ok(()) => tracing::info!(worker = index, cpu, "query worker pinned"),
            Err(err) => {
                tracing::warn!(worker = index, cpu, error = %err, "cannot pin query worker")
            }
        }
    }
}

/// SIGTERM/SIGINT stop the server; SIGHUP reloads the policy; SIGUSR1 reloads it even if a
/// category shrank beyond `[reload] max_shrink`.
async fn signals(
    stop: tokio::sync::watch::Sender<bool>,
    reload: std::sync::mpsc::Sender<crate::reload::Trigger>,
) -> anyhow::Result<()> {
    use crate::reload::Trigger;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                let _ = reload.send(Trigger::Reload { force: false });
            }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: reloading, accepting shrunk lists");
                let _ = reload.send(Trigger::Reload { force: true });
            }
        }
    }
    tracing::info!("stopping: finishing queries in flight");
    let _ = stop.send(true);
    Ok(())
}

fn reload(path: &Path, force: bool) -> anyhow::Result<ExitCode> {
    use std::io::Read;
    let loaded = LoadedConfig::read(path)?;
    let Some(addr) = loaded.config.admin.listen else {
        anyhow::bail!(
            "{}: [admin] listen is not set, so there is no server to ask",
            path.display()
        );
    };
    let mut stream = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))
        .with_context(|| format!("connecting to the admin listener {addr}"))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(90)))?;
    let target = if force {
        "/reload?force=true"
    } else {
        "/reload"
    };
    write!(
        stream,
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("");
    print!("{body}");
    Ok(if status.contains(" 200 ") {
        ExitCode::SUCCESS
    } else {
        eprintln!("error: {status}");
        ExitCode::from(1)
    })
}

fn check(path: &Path) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let loaded = LoadedConfig::read(path)?;
    let policy = policy::compile(&loaded)?;
    let elapsed = started.elapsed();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: OK, compiled in {} ms (policy version {:016x})",
        path.display(),
        elapsed.as_millis(),
        policy.version()
    )?;
    writeln!(out, "\nschools ({}):", policy.schools().len())?;
    for school in policy.schools() {
        writeln!(out, "  {} — {}", school.id, school.name)?;
        for (net, profile) in &school.networks {
            writeln!(out, "      {net} → {}", policy.profile(*profile).name)?;
        }
    }
    match policy.default_profile() {
        Some(p) => writeln!(out, "  (any other network) → {}", p.name)?,
        None => writeln!(out, "  (any other network) → refused")?,
    }
    writeln!(out, "\nprofiles ({}):", policy.profiles().len())?;
    let category_names = |ids: &[u32]| {
        ids.iter()
            .map(|&c| policy.categories()[c as usize].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for p in policy.profiles() {
        writeln!(out, "  {}", p.name)?;
        writeln!(out, "      block: {}", category_names(&p.block))?;
        writeln!(out, "      allow: {}", category_names(&p.allow))?;
        writeln!(
            out,
            "      safe_search: {:?}, answer: {}, bypass protection: {}",
            p.safe_search,
            p.answer.as_string(),
            if p.bypass_protection { "on" } else { "off" }
        )?;
    }
    writeln!(out, "\ncategories ({}):", policy.categories().len())?;
    for c in policy.categories() {
        let report = c.report();
        writeln!(
            out,
            "  {:<22} {:>9} entries  {:>6} skipped  {:>6} unsupported  ({} files)",
            c.name,
            c.entries(),
            report.rejected,
            report.unsupported + c.url_rules,
            c.compiled.files.len()
        )?;
        for file in &c.compiled.files {
            for s in &file.report.samples {
                writeln!(
                    out,
                    "      {}:{}: {}: {}",
                    file.path.display(),
                    s.line,
                    s.problem,
                    s.text
                )?;
            }
        }
        if c.url_rules > 0 {
            writeln!(
                out,
                "      {} UT1 URL rules (site paths) are not enforceable by DNS",
                c.url_rules
            )?;
        }
    }
    let zone = crate::hitlog::time::zone(&loaded.config.hitlog);
    let today = crate::policy::time::local(&zone, crate::clock::now_ms()).date();
    let monday = today
        .checked_sub(jiff::Span::new().days(i64::from(today.weekday().to_monday_zero_offset())))
        .unwrap_or(today);
    timeline::write_weeks(&mut out, &policy, monday)?;
    for warning in timeline::warnings(&policy) {
        writeln!(out, "warning: {warning}")?;
    }
    if let Some(calendar) = &loaded.config.calendar.file
        && !calendar.exists()
    {
        writeln!(
            out,
            "warning: the calendar file {} does not exist yet (an empty calendar; the console makes it)",
            calendar.display()
        )?;
    }
    let devices = policy.devices();
    writeln!(
        out,
        "\nhome devices: {} live, {} revoked",
        devices.live(),
        devices.all().len() - devices.live()
    )?;
    let config = &loaded.config;
    if let Some(warning) = config.admin.plaintext_warning() {
        writeln!(out, "warning: {warning}")?;
    }
    if let Some(warning) = devices::server_addresses_warning(config) {
        writeln!(out, "warning: {warning}")?;
    }
    if let Some(users_file) = &config.console.users {
        let people = crate::console::users::read(users_file)?;
        for user in &people {
            if let Some(crate::console::users::ConsoleRole::School(id)) = user.role()
                && !config.has_school(&id)
            {
                anyhow::bail!(
                    "{}: user {:?} has role school:{id}, but there is no school {id:?}",
                    users_file.display(),
                    user.name
                );
            }
        }
        writeln!(
            out,
            "console users: {} ({} disabled)",
            people.len(),
            people.iter().filter(|u| u.disabled).count()
        )?;
    }
    writeln!(
        out,
        "matcher memory: {:.1} MiB",
        policy.matcher_bytes() as f64 / (1024.0 * 1024.0)
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Who asks, and when, for `explain`.
struct Asker {
    client: Option<IpAddr>,
    device: Option<String>,
    at: Option<String>,
}

fn explain(path: &Path, names: &[String], asker: Asker, json: bool) -> anyhow::Result<ExitCode> {
    let loaded = LoadedConfig::read(path)?;
    let policy = policy::compile(&loaded)?;
    let zone = crate::hitlog::time::zone(&loaded.config.hitlog);
    let now = crate::clock::now_ms();
    let at_ms = match &asker.at {
        Some(text) => crate::hitlog::time::parse_instant(text, &zone, now)
            .map_err(|e| anyhow::anyhow!("--at {text:?}: {e}"))?,
        None => now,
    };
    let token = match &asker.device {
        Some(id) => Some(
            policy
                .devices()
                .all()
                .iter()
                .find(|d| &d.id == id)
                .map(|d| d.token.clone())
                .ok_or_else(|| anyhow::anyhow!("no device {id:?} in the devices file"))?,
        ),
        None => None,
    };
    let client = asker.client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let at_text = asker
        .at
        .as_ref()
        .map(|_| crate::hitlog::time::format_local(at_ms, &zone));
    let mut out = std::io::stdout().lock();
    let mut all_valid = true;
    let mut one = |name: &str, out: &mut dyn Write| -> anyhow::Result<()> {
        let name = name.trim();
        if name.is_empty() || name.starts_with('#') {
            return Ok(());
        }
        match QueryName::from_user(name) {
            Ok(q) => {
                let decision = match &token {
                    Some(token) => policy.decide_device_at(Some(token), &q, at_ms),
                    None => policy.decide_at(client, &q, at_ms),
                };
                let mut explanation = policy.explain(client, &q, &decision);
                explanation.at.clone_from(&at_text);
                if json {
                    writeln!(out, "{}", serde_json::to_string(&explanation)?)?;
                } else {
                    write_explanation(out, &explanation)?;
                }
            }
            Err(e) => {
                all_valid = false;
                if json {
                    let obj = serde_json::json!({ "name": name, "error": e.to_string() });
                    writeln!(out, "{obj}")?;
                } else {
                    writeln!(out, "{name}\n  error: not a domain name: {e}\n")?;
                }
            }
        }
        Ok(())
    };
    for name in names {
        if name == "-" {
            for line in std::io::stdin().lock().lines() {
                one(
                    &line.context("reading names from standard input")?,
                    &mut out,
                )?;
            }
        } else {
            one(name, &mut out)?;
        }
    }
    Ok(if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn describe_rule(rule: &RuleInfo) -> String {
    if rule.category == crate::policy::UNLISTED_CATEGORY {
        return "block: the profile blocks every name its allowed lists do not list".into();
    }
    match (&rule.list, rule.line) {
        (Some(list), Some(line)) => format!(
            "{} by category {}: {list}:{line}, entry {}",
            rule.kind, rule.category, rule.entry
        ),
        _ => format!("{} {} (built-in {})", rule.kind, rule.entry, rule.category),
    }
}

fn write_explanation(out: &mut dyn Write, e: &Explanation) -> std::io::Result<()> {
    writeln!(out, "{}", e.name)?;
    let who = match (&e.school, &e.school_name, &e.profile) {
        (Some(id), Some(name), Some(profile)) => {
            format!("school {id} ({name}), profile {profile}")
        }
        (None, _, Some(profile)) => format!("no school network, default profile {profile}"),
        _ => "no school network, no default profile".to_string(),
    };
    writeln!(out, "  client:    {} → {who}", e.client)?;
    let detail = match (e.answer.as_deref(), e.rewrite) {
        (Some(answer), _) => format!(" (answer {answer})"),
        (_, Some(target)) => format!(" → CNAME {target}"),
        _ => String::new(),
    };
    writeln!(out, "  decision:  {}{detail}", e.decision)?;
    match &e.rule {
        Some(rule) => writeln!(out, "  rule:      {}", describe_rule(rule))?,
        None if e.decision == "refuse" => {
            writeln!(out, "  rule:      client address is in no school network")?
        }
        None => writeln!(out, "  rule:      no list mentions this name")?,
    }
    if let Some(rule) = &e.overridden {
        writeln!(out, "  overrides: {}", describe_rule(rule))?;
    }
    if let Some(service) = &e.service {
        writeln!(out, "  service:   {service}")?;
    }
    if let Some(when) = &e.when {
        writeln!(out, "  because:   {when}")?;
    }
    if let Some(at) = &e.at {
        writeln!(out, "  at:        {at}")?;
    }
    writeln!(out)
}
