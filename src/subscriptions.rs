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

/// Every (category, URL) of a config.
pub fn urls(config: &Config) -> Vec<(String, String)> {
    config
        .categories
        .iter()
        .flat_map(|(name, c)| {
            c.urls
                .iter()
                .map(move |u| (name.clone(), u.get_ref().clone()))
        })
        .collect()
}

/// Refreshes every subscription once, logging each outcome. Returns how many changed.
pub fn refresh_all(config: &Config, agent: &ureq::Agent) -> usize {
    let cache_dir = &config.subscriptions.cache_dir;
    let mut changed = 0;
    for (category, url) in urls(config) {
        match fetch(agent, cache_dir, &url) {
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

/// Starts the refresh thread: every `[subscriptions] refresh_secs` it downloads what changed
/// and calls `on_change` (which asks for a reload). Stops when `stop` receives or is dropped.
pub fn spawn_refresher(
    config: Config,
    stop: std::sync::mpsc::Receiver<()>,
    on_change: Box<dyn Fn() + Send>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let every = Duration::from_secs(config.subscriptions.refresh_secs.max(1));
    let agent = agent(Duration::from_secs(config.subscriptions.timeout_secs));
    std::thread::Builder::new()
        .name("schooldns-subscriptions".into())
        .spawn(move || {
            crate::priority::lower_priority();
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
                if refresh_all(&config, &agent) > 0 {
                    on_change();
                }
            }
        })
}
