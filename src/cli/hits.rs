//! `schooldns hits`: the hit log from the command line, read straight from the SQLite file
//! (read-only, so it runs beside a live server). Whoever can read that file sees every school;
//! per-school access goes through the HTTP API's tokens.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::config::LoadedConfig;
use crate::hitlog::export::{self, Format, SchoolNames};
use crate::hitlog::query::{self, HitFilter, TopBy};
use crate::hitlog::{now_ms, schema, store, time};

/// The filters and output choices of `schooldns hits`.
#[derive(Debug, clap::Args)]
pub struct HitsArgs {
    /// Config file (to find the hit log and its time zone).
    #[arg(long, short, default_value = crate::config::DEFAULT_CONFIG_PATH)]
    pub config: std::path::PathBuf,
    /// Only these schools' records (repeat the flag, or separate ids with commas).
    #[arg(long)]
    pub school: Vec<String>,
    /// Only these categories (repeat the flag, or `--category malware,phishing`).
    #[arg(long)]
    pub category: Vec<String>,
    /// Only blocks from these services' lists (`--service tiktok,roblox`).
    #[arg(long)]
    pub service: Vec<String>,
    /// Only names containing this (e.g. `tiktok`).
    #[arg(long)]
    pub name: Option<String>,
    /// Only this client (an address is masked as `[hitlog] client_address` stores it).
    #[arg(long)]
    pub client: Option<String>,
    /// Only this home device or family.
    #[arg(long)]
    pub device: Option<String>,
    /// From: `24h`, `7d`, `2026-11-01` (local midnight), `2026-11-01T08:00`, RFC 3339.
    #[arg(long)]
    pub since: Option<String>,
    /// Until (exclusive), same forms as `--since`.
    #[arg(long)]
    pub until: Option<String>,
    /// Rank instead of listing: `names`, `clients`, `devices`, `categories` or `schools`.
    #[arg(long, value_parser = query::TopBy::ALL)]
    pub top: Option<String>,
    /// Counts per local day × category × school instead of records.
    #[arg(long, conflicts_with = "top")]
    pub summary: bool,
    /// `table`, `csv` (UTF-8 with BOM, for spreadsheets) or `json` (one object per line).
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
    /// Most records or ranked values (default: 50 in a table and for `--top`, all in CSV and
    /// JSON); 0 means all.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Runs `schooldns hits`.
pub fn run(args: &HitsArgs) -> anyhow::Result<ExitCode> {
    let loaded = LoadedConfig::read(&args.config)?;
    let hitlog = &loaded.config.hitlog;
    let zone = time::zone(hitlog);
    let now = now_ms();
    let instant = |flag: &str, text: &Option<String>| -> anyhow::Result<Option<i64>> {
        text.as_deref()
            .map(|t| {
                time::parse_instant(t, &zone, now).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
            })
            .transpose()
    };
    let filter = HitFilter {
        schools: HitFilter::list(args.school.iter().map(String::as_str)),
        categories: HitFilter::list(args.category.iter().map(String::as_str)),
        services: HitFilter::list(args.service.iter().map(String::as_str)),
        name: args.name.clone(),
        client: args
            .client
            .as_deref()
            .map(|c| HitFilter::client_from(c, hitlog.client_address)),
        device: args.device.clone(),
        since_ms: instant("since", &args.since)?,
        until_ms: instant("until", &args.until)?,
    };
    let config = &loaded.config;
    if let Some(unknown) = filter.schools.iter().find(|id| !config.has_school(id)) {
        bail!(
            "--school: no school `{unknown}` in {} (schools: {})",
            args.config.display(),
            config.school_ids().join(", ")
        );
    }
    if let Some(unknown) = filter.categories.iter().find(|c| {
        !config.categories.contains_key(*c)
            && !crate::policy::BUILT_IN_CATEGORIES.contains(&c.as_str())
    }) {
        let names: Vec<&str> = config
            .categories
            .keys()
            .map(String::as_str)
            .chain(crate::policy::BUILT_IN_CATEGORIES)
            .collect();
        bail!(
            "--category: no category `{unknown}` (categories: {})",
            names.join(", ")
        );
    }
    let format = Format::parse(&args.format).context("format")?;
    let mut conn = open_store(hitlog)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let default_limit = match (format, &args.top) {
        (_, Some(_)) | (Format::Table, None) => Some(50),
        _ => None,
    };
    let limit = match args.limit {
        Some(0) => None,
        Some(n) => Some(n),
        None => default_limit,
    };
    if let Some(by) = &args.top {
        let by = TopBy::parse(by).context("--top")?;
        let rows = conn.top(&filter, by, limit.unwrap_or(usize::MAX >> 1))?;
        let what = by.column();
        export::write_top(&mut out, format, what, &rows)?;
    } else if args.summary {
        let rows = conn.summary(&filter, &zone)?;
        export::write_summary(&mut out, format, &rows)?;
    } else {
        let page = conn.list(&filter, limit, None)?;
        let schools: SchoolNames = loaded
            .config
            .schools
            .iter()
            .map(|s| (s.id.get_ref().clone(), s.name.clone()))
            .collect();
        export::write_records(&mut out, format, &page.hits, &zone, &schools)?;
        if page.next.is_some() && format == Format::Table {
            writeln!(
                out,
                "… more records match; narrow the filters or raise --limit (0 for all)"
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The store `hits` reads: the shared PostgreSQL store with `backend = "postgres"` (every
/// instance's records), else the SQLite file.
fn open_store(hitlog: &crate::config::HitlogConfig) -> anyhow::Result<query::HitDb> {
    if hitlog.backend == crate::config::HitlogBackend::Postgres {
        let pool = crate::hitlog::postgres::read::Pool::new(hitlog);
        let conn = pool.get().map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
        return Ok(query::HitDb::Postgres(conn));
    }
    let path = &hitlog.path;
    if !path.exists() {
        bail!(
            "{}: no hit log yet (nothing has been blocked since [hitlog] path was set)",
            path.display()
        );
    }
    let conn = store::open_reader(path).with_context(|| format!("opening {}", path.display()))?;
    if !schema::ready(&conn).with_context(|| format!("reading {}", path.display()))? {
        bail!(
            "{}: no hit log yet (the server has not finished creating it)",
            path.display()
        );
    }
    Ok(query::HitDb::Sqlite(conn))
}
