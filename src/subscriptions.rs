//! List subscriptions: a category's `urls` are downloaded into a cache folder, refreshed every
//! `refresh`, and compiled like local list files.
//!
//! Downloads use conditional GET (`If-None-Match` / `If-Modified-Since` from the last good
//! copy) and are written to a temporary file and renamed into place, so the cache only ever
//! holds whole, good copies: a restart without network still has them, and a failed or broken
//! download keeps the old one. The cache folder is watched like any list folder, so a changed
//! copy reloads the policy by itself. Nothing here runs on the query path.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;

/// What a refresh did for one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// A new copy was stored.
    Updated,
    /// The server said 304 Not Modified.
    NotModified,
    /// The download failed; the last good copy (if any) stays.
    Failed(String),
}

/// Where the cached copy of `url` lives in `cache_dir`: a stable file name from the URL.
pub fn cached_path(cache_dir: &Path, url: &str) -> PathBuf {
    let hash = xxhash_rust::xxh3::xxh3_64(url.as_bytes());
    let tail: String = url
        .rsplit('/')
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(40)
        .collect();
    // Keep a `.gz` suffix so compressed lists are read as such.
    cache_dir.join(format!("{hash:016x}-{tail}"))
}

fn meta_path(list: &Path) -> PathBuf {
    let mut name = list.file_name().unwrap_or_default().to_os_string();
    name.push(".meta");
    list.with_file_name(name)
}

/// Downloads one URL into the cache if it changed.
pub fn fetch(agent: &ureq::Agent, cache_dir: &Path, url: &str) -> Fetched {
    match try_fetch(agent, cache_dir, url) {
        Ok(result) => result,
        Err(e) => Fetched::Failed(e.to_string()),
    }
}

fn try_fetch(agent: &ureq::Agent, cache_dir: &Path, url: &str) -> std::io::Result<Fetched> {
    std::fs::create_dir_all(cache_dir)?;
    let path = cached_path(cache_dir, url);
    let meta = std::fs::read_to_string(meta_path(&path)).unwrap_or_default();
    let mut request = agent.get(url);
    if path.exists() {
        for line in meta.lines() {
            if let Some(etag) = line.strip_prefix("etag: ") {
                request = request.header("If-None-Match", etag);
            }
            if let Some(modified) = line.strip_prefix("last-modified: ") {
                request = request.header("If-Modified-Since", modified);
            }
        }
    }
    let mut response = request.call().map_err(std::io::Error::other)?;
    match response.status().as_u16() {
        304 => return Ok(Fetched::NotModified),
        200 => {}
        other => return Ok(Fetched::Failed(format!("HTTP status {other}"))),
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let mut new_meta = format!("url: {url}\n");
    if let Some(etag) = header("etag") {
        new_meta.push_str(&format!("etag: {etag}\n"));
    }
    if let Some(modified) = header("last-modified") {
        new_meta.push_str(&format!("last-modified: {modified}\n"));
    }
    // Write beside the final name, then rename: readers see the old copy or the new, whole.
    let tmp = path.with_extension("download");
    let mut body = response.body_mut().as_reader();
    let mut file = std::fs::File::create(&tmp)?;
    let copied = std::io::copy(&mut body.by_ref(), &mut file);
    if let Err(e) = copied.and_then(|_| file.sync_all()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::write(meta_path(&path).with_extension("meta.tmp"), &new_meta)?;
    std::fs::rename(&tmp, &path)?;
    std::fs::rename(
        meta_path(&path).with_extension("meta.tmp"),
        meta_path(&path),
    )?;
    Ok(Fetched::Updated)
}

/// An HTTP agent with a bounded time per download.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Every (category, URL) of a config, and the calendar's iCal URLs (as category `calendar`).
pub fn urls(config: &Config) -> Vec<(String, String)> {
    let mut urls: Vec<(String, String)> = config
        .categories
        .iter()
        .flat_map(|(name, c)| {
            c.urls
                .iter()
                .map(move |u| (name.clone(), u.get_ref().clone()))
        })
        .collect();
    urls.extend(
        crate::calendar::import_urls(config)
            .into_iter()
            .map(|url| ("calendar".to_string(), url)),
    );
    urls
}

/// The refresher's last outcome per URL (ms since the epoch, outcome), for the console.
static LAST_FETCH: std::sync::Mutex<Vec<(String, i64, String)>> = std::sync::Mutex::new(Vec::new());

/// One subscription as the console shows it.
#[derive(Debug, Clone)]
pub struct SubscriptionStatus {
    /// The category it feeds.
    pub category: String,
    /// The URL.
    pub url: String,
    /// When it was last fetched by this process.
    pub fetched_ms: Option<i64>,
    /// `updated`, `not modified` or the error.
    pub result: Option<String>,
    /// Rules the live policy holds from its downloaded copy.
    pub entries: Option<u64>,
}

/// Every subscription of `config`: its last fetch and what the live `policy` holds from it.
pub fn status(config: &Config, policy: &crate::policy::Policy) -> Vec<SubscriptionStatus> {
    let last = LAST_FETCH.lock().map(|l| l.clone()).unwrap_or_default();
    urls(config)
        .into_iter()
        .map(|(category, url)| {
            let path = cached_path(&config.subscriptions.cache_dir, &url);
            let entries = policy
                .categories()
                .iter()
                .flat_map(|c| c.compiled.files.iter())
                .find(|f| f.path == path)
                .map(|f| f.report.accepted);
            let fetched = last.iter().find(|(u, _, _)| *u == url);
            SubscriptionStatus {
                fetched_ms: fetched.map(|(_, at, _)| *at),
                result: fetched.map(|(_, _, r)| r.clone()),
                category,
                url,
                entries,
            }
        })
        .collect()
}

fn remember(url: &str, result: &Fetched) {
    let text = match result {
        Fetched::Updated => "updated".to_string(),
        Fetched::NotModified => "not modified".to_string(),
        Fetched::Failed(error) => error.clone(),
    };
    let mut last = LAST_FETCH.lock().unwrap_or_else(|e| e.into_inner());
    last.retain(|(u, _, _)| u != url);
    last.push((url.to_string(), crate::hitlog::now_ms(), text));
}

/// Refreshes every subscription once, logging each outcome. Returns how many changed.
pub fn refresh_all(config: &Config, agent: &ureq::Agent) -> usize {
    let cache_dir = &config.subscriptions.cache_dir;
    let mut changed = 0;
    for (category, url) in urls(config) {
        let fetched = fetch(agent, cache_dir, &url);
        remember(&url, &fetched);
        match fetched {
            Fetched::Updated => {
                tracing::info!(%category, %url, "subscription updated");
                changed += 1;
            }
            Fetched::NotModified => tracing::debug!(%category, %url, "subscription not modified"),
            Fetched::Failed(error) => {
                let kept = cached_path(cache_dir, &url).exists();
                tracing::warn!(%category, %url, %error, kept_last_good_copy = kept, "subscription download failed");
            }
        }
    }
    changed
}

/// What the refresher thread is told.
pub enum Refresher {
    /// A reloaded config: its URLs are fetched now when the set changed (a URL added while
    /// the server runs is downloaded at once), and at its `refresh_secs` from then on.
    Config(Box<Config>),
    /// Stop the thread.
    Stop,
}

/// The URLs of a config's categories, sorted, for noticing a change.
fn url_set(config: &Config) -> Vec<String> {
    let mut urls: Vec<String> = urls(config).into_iter().map(|(_, u)| u).collect();
    urls.sort();
    urls.dedup();
    urls
}

/// Starts the refresher thread: refreshes every `refresh_secs` (from the latest config it was
/// given) and calls `on_change` when a download stored a new copy. It always runs, so that
/// subscriptions added by a reload are fetched even when none existed at start.
pub fn spawn_refresher(
    config: Config,
    control: std::sync::mpsc::Receiver<Refresher>,
    on_change: Box<dyn Fn() + Send>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("schooldns-subscriptions".into())
        .spawn(move || {
            crate::priority::lower_priority();
            let mut config = config;
            let mut known = url_set(&config);
            let mut agent = agent(Duration::from_secs(config.subscriptions.timeout_secs));
            loop {
                let every = Duration::from_secs(config.subscriptions.refresh_secs.max(1));
                let refresh_now = match control.recv_timeout(every) {
                    Ok(Refresher::Stop) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        return;
                    }
                    Ok(Refresher::Config(new)) => {
                        config = *new;
                        agent = self::agent(Duration::from_secs(config.subscriptions.timeout_secs));
                        let urls = url_set(&config);
                        let changed = urls != known;
                        known = urls;
                        changed
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => true,
                };
                if refresh_now && !known.is_empty() && refresh_all(&config, &agent) > 0 {
                    on_change();
                }
            }
        })
}
