//! `schooldns init`: a starter config for a real district from a few answers (flags, or
//! questions on a terminal): the listeners, the upstreams, the time zone, the console's address
//! and the schools with their networks and profiles. Everything else (categories, profiles,
//! services, the lesson schedule) comes from the shipped config, its comments kept, with the
//! paths of an installed system; the demo's schools and API tokens are left out. The result
//! is compiled before it is written.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value, value};

use crate::config::LoadedConfig;

/// The shipped config the starter is made from.
const SHIPPED: &str = include_str!("../../config/schooldns.toml");

/// `schooldns init` arguments.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the config (refused if it exists, unless `--force`).
    #[arg(long, short, default_value = crate::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// A school: `ID,NAME,NETWORK[,PROFILE]` (profile `primary`, `lower-secondary`,
    /// `upper-secondary` or `staff`; default `primary`). Repeat for each school.
    #[arg(long = "school")]
    schools: Vec<String>,
    /// The district's time zone (IANA name).
    #[arg(long)]
    timezone: Option<String>,
    /// Addresses to answer DNS on (UDP and TCP); repeat for several.
    #[arg(long = "listen")]
    listen: Vec<SocketAddr>,
    /// Upstream resolvers (`1.1.1.1:53`, `tls://1.1.1.1@cloudflare-dns.com`); repeat.
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// The web console's address.
    #[arg(long)]
    console: Option<SocketAddr>,
    /// The shipped lists' folder (default `/usr/share/schooldns/blocklists` when installed,
    /// else `blocklists`).
    #[arg(long)]
    lists: Option<PathBuf>,
    /// The state folder for the hit log and downloads (default `/var/lib/schooldns` when the
    /// config goes to `/etc/schooldns`, else `data`).
    #[arg(long)]
    state: Option<PathBuf>,
    /// Overwrite an existing config.
    #[arg(long)]
    force: bool,
}

/// Asks on the terminal, with a default.
fn ask(question: &str, default: &str) -> anyhow::Result<String> {
    let mut out = std::io::stderr().lock();
    write!(out, "{question} [{default}]: ")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let answer = line.trim();
    Ok(if answer.is_empty() { default } else { answer }.to_string())
}

/// One `--school` value.
struct School {
    id: String,
    name: String,
    network: String,
    profile: String,
}

fn parse_school(text: &str) -> anyhow::Result<School> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let (id, name, network, profile) = match parts.as_slice() {
        [id, name, network] => (*id, *name, *network, "primary"),
        [id, name, network, profile] => (*id, *name, *network, *profile),
        _ => bail!("--school {text:?}: write ID,NAME,NETWORK[,PROFILE]"),
    };
    if let Some(problem) = crate::devices::file::id_problem(id) {
        bail!("--school {text:?}: the id: {problem}");
    }
    if network.parse::<ipnet::IpNet>().is_err() && network.parse::<std::net::IpAddr>().is_err() {
        bail!("--school {text:?}: {network:?} is not a network (10.1.0.0/16, 203.0.113.7)");
    }
    Ok(School {
        id: id.to_string(),
        name: name.to_string(),
        network: network.to_string(),
        profile: profile.to_string(),
    })
}

/// Replaces the shipped paths' prefixes in every string of the document.
fn rewrite_paths(item: &mut Item, prefixes: &[(&str, String)]) {
    let fix = |v: &mut Value| {
        if let Some(s) = v.as_str() {
            for (from, to) in prefixes {
                if let Some(rest) = s.strip_prefix(from) {
                    let decor = v.decor().clone();
                    *v = Value::from(format!("{to}/{rest}"));
                    *v.decor_mut() = decor;
                    return;
                }
            }
        }
    };
    match item {
        Item::Value(Value::Array(array)) => array.iter_mut().for_each(fix),
        Item::Value(v) => fix(v),
        Item::Table(table) => table
            .iter_mut()
            .for_each(|(_, item)| rewrite_paths(item, prefixes)),
        Item::ArrayOfTables(tables) => tables.iter_mut().for_each(|t| {
            t.iter_mut()
                .for_each(|(_, item)| rewrite_paths(item, prefixes))
        }),
        Item::None => {}
    }
}

/// Runs `schooldns init`.
pub fn run(args: &InitArgs) -> anyhow::Result<ExitCode> {
    if args.config.exists() && !args.force {
        bail!(
            "{} exists; `schooldns init --force` overwrites it",
            args.config.display()
        );
    }
    let interactive = std::io::stdin().is_terminal();
    let mut schools: Vec<School> = args
        .schools
        .iter()
        .map(|s| parse_school(s))
        .collect::<anyhow::Result<_>>()?;
    if schools.is_empty() {
        if !interactive {
            bail!("give at least one --school ID,NAME,NETWORK[,PROFILE]");
        }
        eprintln!("Schools: one per line as ID,NAME,NETWORK[,PROFILE]; an empty line ends.");
        loop {
            let line = ask("school", "")?;
            if line.is_empty() {
                break;
            }
            match parse_school(&line) {
                Ok(school) => schools.push(school),
                Err(e) => eprintln!("{e:#}"),
            }
        }
        if schools.is_empty() {
            bail!("no schools: nothing to filter for");
        }
    }
    let pick = |given: Option<String>, question: &str, default: &str| -> anyhow::Result<String> {
        match given {
            Some(v) => Ok(v),
            None if interactive => ask(question, default),
            None => Ok(default.to_string()),
        }
    };
    let timezone = pick(args.timezone.clone(), "time zone", "Asia/Ho_Chi_Minh")?;
    jiff::tz::TimeZone::get(&timezone)
        .with_context(|| format!("{timezone:?} is not a time zone"))?;
    let listen: Vec<String> = if args.listen.is_empty() {
        pick(None, "answer DNS on", "0.0.0.0:53")?
            .split_whitespace()
            .map(str::to_string)
            .collect()
    } else {
        args.listen.iter().map(ToString::to_string).collect()
    };
    let upstreams: Vec<String> = if args.upstreams.is_empty() {
        pick(None, "upstream resolvers", "1.1.1.1:53 9.9.9.9:53")?
            .split_whitespace()
            .map(str::to_string)
            .collect()
    } else {
        args.upstreams.clone()
    };
    let console = pick(
        args.console.map(|c| c.to_string()),
        "web console address",
        "127.0.0.1:8053",
    )?;
    let config_dir = args
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let installed = Path::new("/usr/share/schooldns/blocklists");
    let lists = args.lists.clone().unwrap_or_else(|| {
        if installed.is_dir() {
            installed.to_path_buf()
        } else {
            PathBuf::from("blocklists")
        }
    });
    let state = args.state.clone().unwrap_or_else(|| {
        if config_dir.starts_with("/etc/schooldns") {
            PathBuf::from("/var/lib/schooldns")
        } else {
            PathBuf::from("data")
        }
    });

    let mut doc: DocumentMut = SHIPPED.parse().context("the shipped config")?;
    let strings = |items: &[String]| {
        let mut array = Array::new();
        for item in items {
            array.push(item.as_str());
        }
        value(array)
    };
    doc["server"]["udp"] = strings(&listen);
    doc["server"]["tcp"] = strings(&listen);
    doc["upstream"]["servers"] = strings(&upstreams);
    doc["hitlog"]["timezone"] = value(timezone.as_str());
    doc["admin"]["listen"] = value(console.as_str());
    // The demo's API tokens are public: never in a real config.
    if let Some(admin) = doc["admin"].as_table_mut() {
        admin.remove("tokens");
    }
    let mut tables = ArrayOfTables::new();
    for school in &schools {
        let mut table = Table::new();
        table["id"] = value(school.id.as_str());
        table["name"] = value(school.name.as_str());
        table["networks"] = strings(std::slice::from_ref(&school.network));
        table["profile"] = value(school.profile.as_str());
        tables.push(table);
    }
    doc["schools"] = Item::ArrayOfTables(tables);
    let prefixes = [
        ("blocklists/", lists.display().to_string()),
        ("config/", config_dir.display().to_string()),
        ("data/", state.display().to_string()),
    ];
    for (_, item) in doc.iter_mut() {
        rewrite_paths(item, &prefixes);
    }
    let today = jiff::Zoned::now().date();
    // The shipped file's opening comment (the demo's) gives way to this one.
    let body = doc.to_string();
    let body = body
        .split_once("\n\n")
        .map_or(body.as_str(), |(_, rest)| rest);
    let text = format!(
        "# Written by `schooldns init` on {today}: the shipped district's categories, profiles,\n\
         # services and lesson schedule, with this district's schools. Every key is documented\n\
         # in config/README.md (/usr/share/doc/schooldns/config.md when installed).\n\n{body}"
    );

    // The files the config names and the console writes, empty when absent.
    std::fs::create_dir_all(&config_dir)
        .with_context(|| format!("creating {}", config_dir.display()))?;
    let empty = [
        (
            config_dir.join("calendar.toml"),
            "# Exam days and holidays (config/README.md, \"Rules in time\"); the console adds them too.\n",
        ),
        (
            config_dir.join("devices.toml"),
            "# Home devices and families: `schooldns devices add --profile primary --name \"…\"`.\n",
        ),
    ];
    for (path, text) in &empty {
        if !path.exists() {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let loaded = LoadedConfig::parse(&args.config, text.clone())?;
    crate::policy::compile(&loaded)?;
    crate::files::replace(&args.config, &text, None)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} ({} schools); it compiles.",
        args.config.display(),
        schools.len()
    )?;
    writeln!(
        out,
        "next: `schooldns users add NAME --role district --config {}` for the console, then \
         `schooldns check` and start the server (docs/deploy.md).",
        args.config.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
