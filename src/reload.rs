//! Live reload: file changes and `SIGHUP` become a new policy, compiled beside the query path
//! and swapped in with one `ArcSwap::store`, or refused loudly while the old policy keeps
//! serving.
//!
//! A dedicated thread owns the file watcher (notify) and a [`Reloader`]. Bursts of events are
//! debounced; compiling reuses every category whose files did not change. A reload is refused
//! when the config or a list fails to load (the error names file, line and key) or when a
//! category shrank by more than `[reload] max_shrink` — the signature of a list caught
//! half-written — unless it was forced.
//!
//! Only changes to the files the policy is built from count: the watcher sees every file in
//! their folders, and a busy neighbour (a hit-log database beside the lists, a log file) must
//! neither keep the debounce open forever nor trigger needless recompiles.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use notify::{RecursiveMode, Watcher};

use crate::config::{ConfigError, LoadedConfig};
use crate::live::Live;
use crate::policy::{Compiler, Policy};

/// What wakes the reload thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A watched file or folder changed.
    FileEvent,
    /// An operator asked (`SIGHUP`); `force` skips the shrink check.
    Reload {
        /// Accept lists that shrank beyond `max_shrink`.
        force: bool,
    },
    /// The server is stopping.
    Stop,
}

/// Why a reload was refused; the old policy keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config or a list could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A category lost too many entries at once.
    #[error(
        "category {category} shrank from {before} to {after} entries (more than {max_shrink:.0}% \
         at once); keeping the old policy. If this is intended, run `schooldns reload --force` (or \
         send SIGUSR1)"
    )]
    Shrunk {
        /// The category.
        category: String,
        /// Entries before.
        before: usize,
        /// Entries after.
        after: usize,
        /// The configured limit, in percent.
        max_shrink: f64,
    },
}

/// Reload counters, shared with metrics and tests.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Policies swapped in.
    pub succeeded: AtomicU64,
    /// Reloads refused.
    pub failed: AtomicU64,
    /// Why the last refused reload was refused (for `POST /reload` and `schooldns reload`).
    pub last_refusal: std::sync::Mutex<String>,
    /// Settings the last successful reload changed but could not apply (they need a restart).
    pub needs_restart: std::sync::Mutex<Vec<String>>,
    /// The last reload swapped in: when, its version, what changed.
    pub last: std::sync::Mutex<Option<LastReload>>,
    /// When the last refused reload was refused (ms since the epoch).
    pub last_refusal_ms: AtomicU64,
}

/// What the last successful reload changed, for the console's health page.
#[derive(Debug, Clone)]
pub struct LastReload {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// How long it took.
    pub took: Duration,
    /// The new policy's version.
    pub version: u64,
    /// Categories whose entry count changed: name, before (`None`: new), after.
    pub changed: Vec<(String, Option<usize>, usize)>,
}

/// Compiles new policies and swaps them in.
pub struct Reloader {
    config_path: PathBuf,
    compiler: Compiler,
    live: Arc<Live>,
    max_shrink: f64,
    stats: Arc<ReloadStats>,
    /// Files named by the config besides lists (devices file, TLS certificate and key).
    config_files: Vec<PathBuf>,
}

impl Reloader {
    /// A reloader of the live state, compiling `config_path` with `compiler` (which remembers
    /// the categories of the current policy).
    pub fn new(
        config_path: PathBuf,
        compiler: Compiler,
        live: Arc<Live>,
        max_shrink: f64,
    ) -> Reloader {
        Reloader {
            config_path,
            compiler,
            live,
            max_shrink,
            stats: Arc::new(ReloadStats::default()),
            config_files: Vec::new(),
        }
    }

    /// Also watches these files (the config's devices file, certificate and key); replaced by
    /// each reloaded config's own list.
    pub fn watch_files(&mut self, files: Vec<PathBuf>) {
        self.config_files = files;
    }

    /// When the next exception in force expires: the policy changes by itself then, so the
    /// reload thread reloads at that instant.
    fn next_expiry(&self) -> Option<Duration> {
        let config = &self.live.load().config;
        let path = config.console.exceptions.as_ref()?;
        let now = crate::hitlog::now_ms();
        let until = crate::exceptions::next_expiry(&crate::exceptions::read(path).ok()?, now)?;
        Some(Duration::from_millis((until - now).max(0) as u64 + 1))
    }

    /// The counters.
    pub fn stats(&self) -> Arc<ReloadStats> {
        Arc::clone(&self.stats)
    }

    /// Loads, compiles, checks and swaps. On error nothing changes.
    pub fn reload(&mut self, force: bool) -> Result<Duration, ReloadError> {
        let started = Instant::now();
        let result = self.try_reload(force);
        match &result {
            Ok(policy) => {
                let took = started.elapsed();
                let counts: Vec<String> = policy
                    .categories()
                    .iter()
                    .map(|c| format!("{}={}", c.name, c.entries()))
                    .collect();
                tracing::info!(
                    ms = took.as_millis() as u64,
                    version = format!("{:016x}", policy.version()),
                    categories = counts.join(" "),
                    "policy reloaded"
                );
                if let Some(last) = self
                    .stats
                    .last
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    last.took = took;
                }
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                tracing::error!(error = %err, "reload refused; the previous policy keeps serving");
                // The reason first, then the count: whoever sees the count rise reads it.
                *self
                    .stats
                    .last_refusal
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = err.to_string();
                self.stats
                    .last_refusal_ms
                    .store(crate::hitlog::now_ms() as u64, Ordering::Relaxed);
                self.stats.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        result.map(|_| started.elapsed())
    }

    fn try_reload(&mut self, force: bool) -> Result<Arc<Policy>, ReloadError> {
        let loaded = LoadedConfig::read(&self.config_path)?;
        let policy = self.compiler.compile(&loaded)?;
        if !force {
            let old = self.live.policy();
            for category in policy.categories() {
                let Some(before) = old.categories().iter().find(|c| c.name == category.name) else {
                    continue;
                };
                // Exceptions come and go one at a time; they are not a list that broke.
                if category.is_exceptions() {
                    continue;
                }
                let (before, after) = (before.entries(), category.entries());
                if before > 0 && (after as f64) < before as f64 * (1.0 - self.max_shrink) {
                    return Err(ReloadError::Shrunk {
                        category: category.name.clone(),
                        before,
                        after,
                        max_shrink: self.max_shrink * 100.0,
                    });
                }
            }
        }
        let policy = Arc::new(policy);
        let old = self.live.policy();
        let changed = policy
            .categories()
            .iter()
            .filter_map(|c| {
                let before = old
                    .categories()
                    .iter()
                    .find(|o| o.name == c.name)
                    .map(|o| o.entries());
                (before != Some(c.entries())).then(|| (c.name.clone(), before, c.entries()))
            })
            .collect();
        let needs_restart = self.live.apply(&loaded.config, Arc::clone(&policy));
        *self.stats.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(LastReload {
            at_ms: crate::hitlog::now_ms(),
            took: Duration::ZERO,
            version: policy.version(),
            changed,
        });
        self.config_files = loaded.config.watched_files();
        if !needs_restart.is_empty() {
            tracing::warn!(
                settings = needs_restart.join(", "),
                "reloaded, but these changed settings take effect only after a restart"
            );
        }
        *self
            .stats
            .needs_restart
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = needs_restart;
        Ok(policy)
    }

    /// The files a reload reads: the config file, every list file, the devices, users,
    /// exceptions and calendar files, the imported iCal files, the services catalogue and the
    /// TLS certificate and key.
    fn source_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.config_path.clone()];
        files.extend(self.config_files.iter().cloned());
        let policy = self.live.policy();
        for category in policy.categories() {
            files.extend(category.compiled.files.iter().map(|f| f.path.clone()));
        }
        files.extend(policy.calendar_files().iter().cloned());
        files
    }

    /// What to watch: the folders of [`Self::source_files`] (a file replaced by rename is a
    /// new file in its folder), and the paths within them that count, spelt as the watcher
    /// reports them (its folder's path joined with the file name).
    fn watch_set(&self) -> WatchSet {
        let mut folders = Vec::new();
        let mut files = HashSet::new();
        // The watcher reports paths as the current directory joined with the watched folder
        // (as given, not normalised) and the file name; spell ours the same way.
        let cwd = std::env::current_dir().unwrap_or_default();
        for file in self.source_files() {
            let folder = parent_of(&file);
            let folder = if folder.is_absolute() {
                folder
            } else {
                cwd.join(folder)
            };
            if let Some(name) = file.file_name() {
                files.insert(folder.join(name));
            }
            folders.push(folder);
        }
        folders.sort();
        folders.dedup();
        WatchSet { folders, files }
    }
}

/// Folders to watch and the files in them whose changes count.
struct WatchSet {
    folders: Vec<PathBuf>,
    files: HashSet<PathBuf>,
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Starts the reload thread. Returns the sender that triggers reloads (and stops the thread).
pub fn spawn(
    mut reloader: Reloader,
    debounce: Duration,
) -> std::io::Result<(mpsc::Sender<Trigger>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let events = tx.clone();
    let set = reloader.watch_set();
    // `None` after a refused reload: until one succeeds, any change in the watched folders
    // counts (the fix may be a file the refused config names and the last good one did not).
    let relevant = Arc::new(ArcSwapOption::from_pointee(set.files));
    let wanted = Arc::clone(&relevant);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        lower_this_thread_once();
        // An error (e.g. the kernel's event queue overflowed) may hide a change: reload.
        let counts = event.map_or(true, |event| {
            !event.kind.is_access() && {
                let wanted = wanted.load();
                wanted
                    .as_ref()
                    .is_none_or(|files| event.paths.iter().any(|p| files.contains(p)))
            }
        });
        if counts {
            let _ = events.send(Trigger::FileEvent);
        }
    })
    .map_err(std::io::Error::other)?;
    // Watch before returning, so that no change made after the server is bound is missed.
    let mut watched = Vec::new();
    rewatch(&mut watcher, &mut watched, set.folders);
    let handle = std::thread::Builder::new()
        .name("schooldns-reload".into())
        .spawn(move || {
            // Compiling takes seconds of CPU: the query workers come first.
            crate::priority::lower_priority();
            loop {
                // An exception that expires changes the policy with no file event: wake then.
                let trigger = match reloader.next_expiry() {
                    Some(wait) => match rx.recv_timeout(wait) {
                        Ok(trigger) => trigger,
                        Err(mpsc::RecvTimeoutError::Timeout) => Trigger::Reload { force: false },
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    },
                    None => match rx.recv() {
                        Ok(trigger) => trigger,
                        Err(_) => return,
                    },
                };
                let mut force = matches!(trigger, Trigger::Reload { force: true });
                if trigger == Trigger::Stop {
                    return;
                }
                // Debounce file events: wait until the files have been quiet for `debounce`. An
                // operator's request runs at once, absorbing whatever is already queued.
                let wait = if trigger == Trigger::FileEvent {
                    debounce
                } else {
                    Duration::ZERO
                };
                loop {
                    match rx.recv_timeout(wait) {
                        Ok(Trigger::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        Ok(Trigger::Reload { force: f }) => {
                            // An operator is waiting: reload now.
                            force |= f;
                            break;
                        }
                        Ok(Trigger::FileEvent) => {}
                        Err(mpsc::RecvTimeoutError::Timeout) => break,
                    }
                }
                if reloader.reload(force).is_ok() {
                    let set = reloader.watch_set();
                    relevant.store(Some(Arc::new(set.files)));
                    rewatch(&mut watcher, &mut watched, set.folders);
                } else {
                    relevant.store(None);
                }
            }
        })?;
    Ok((tx, handle))
}

/// The watcher's own thread runs our callback for every event in the watched folders: give it
/// the same low priority as the reload thread, so a burst of events never delays a query.
fn lower_this_thread_once() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    LOWERED.with(|lowered| {
        if !lowered.replace(true) {
            crate::priority::lower_priority();
        }
    });
}

fn rewatch(
    watcher: &mut notify::RecommendedWatcher,
    watched: &mut Vec<PathBuf>,
    wanted: Vec<PathBuf>,
) {
    for old in watched.iter().filter(|p| !wanted.contains(p)) {
        let _ = watcher.unwatch(old);
    }
    for folder in wanted.iter().filter(|p| !watched.contains(p)) {
        if let Err(e) = watcher.watch(folder, RecursiveMode::NonRecursive) {
            tracing::warn!(folder = %folder.display(), error = %e, "cannot watch folder; reload with SIGHUP");
        }
    }
    *watched = wanted;
}
