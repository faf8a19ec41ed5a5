//! One config origin for several resolvers (`[sync]`): each instance keeps a copy of the
//! district's files (config, lists, devices, users, exceptions) pulled from a git repository
//! or an HTTPS `.tar.gz` bundle every `interval_secs`, and serves it with its own machine
//! tables on top ([`crate::config::origin`]).
//!
//! A pulled version is checked before it is swapped in: `schooldns check` runs on it in a
//! folder of its own (the same compile a reload does). A version that does not compile is
//! refused, said in the log, `/metrics`, the instances view and the console, and the copy
//! keeps the version being served; the same version is not tried again. A good version
//! replaces the copy's files and a reload follows, with the normal reload rules.
//!
//! With a git origin, changes made on this instance (the console, `schooldns devices`, …)
//! are committed in the copy and pushed to the origin, so the other instances pull them
//! (rebased on the origin first when it moved; a conflict is refused and said). With an HTTPS
//! origin the copy is read-only: changes are made where the bundle is made
//! (`docs/deploy.md`), and a change made here is reported and overwritten by the next bundle.
//!
//! `schooldns` works in the copy's folder (relative paths in the origin's files are relative
//! to it), so the instance's own file names absolute paths.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use arc_swap::ArcSwap;

use crate::config::{Config, SyncConfig, origin::TREE_ENV};
use crate::reload::Trigger;

/// Largest bundle accepted.
const MAX_BUNDLE: u64 = 512 << 20;
/// The file in a bundle copy that records which bundle it holds.
const BUNDLE_MARK: &str = ".schooldns-bundle";

/// Where the origin is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A git repository: URL or path, and the branch (the origin's default when `None`).
    Git {
        /// `git clone`'s argument.
        url: String,
        /// The branch.
        branch: Option<String>,
    },
    /// An HTTPS URL of a `.tar.gz` bundle.
    Bundle {
        /// The URL.
        url: String,
    },
}

impl Origin {
    /// The origin `[sync]` names, if any: a URL ending in `.tar.gz` or `.tgz` is a bundle,
    /// anything else a git repository.
    pub fn of(config: &SyncConfig) -> Option<Origin> {
        let url = config.origin.as_ref()?.get_ref().clone();
        let path = url.split(['?', '#']).next().unwrap_or_default();
        Some(
            if (url.starts_with("https://") || url.starts_with("http://"))
                && (path.ends_with(".tar.gz") || path.ends_with(".tgz"))
            {
                Origin::Bundle { url }
            } else {
                Origin::Git {
                    url,
                    branch: config.branch.clone(),
                }
            },
        )
    }
}

/// What the sync thread has done, for `/metrics`, the heartbeat and the console.
#[derive(Debug, Default)]
pub struct SyncStatus {
    /// The origin, for pages.
    pub origin: String,
    /// The version being served: a git commit or `sha256:` of the bundle (first 16 hex).
    pub version: ArcSwap<Option<String>>,
    /// The newest version seen at the origin.
    pub origin_version: ArcSwap<Option<String>>,
    /// Why the last pull or push failed, or what was refused; `None` once one succeeds.
    pub error: ArcSwap<Option<String>>,
    /// Pulls that brought a new version in.
    pub updates: AtomicU64,
    /// Versions refused because they did not compile.
    pub refused: AtomicU64,
    /// Pulls or pushes that failed (origin unreachable, conflicts).
    pub failures: AtomicU64,
    /// When the origin last answered (ms since the epoch).
    pub last_pull_ms: AtomicI64,
}

impl SyncStatus {
    /// Appends the sync metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, help, value) in [
            (
                "sync_updates_total",
                "New config versions pulled from the origin and swapped in.",
                self.updates.load(Ordering::Relaxed),
            ),
            (
                "sync_refused_total",
                "Config versions from the origin refused because they did not compile.",
                self.refused.load(Ordering::Relaxed),
            ),
            (
                "sync_failures_total",
                "Pulls from or pushes to the config origin that failed.",
                self.failures.load(Ordering::Relaxed),
            ),
        ] {
            let _ = write!(
                out,
                "# HELP schooldns_{name} {help}\n# TYPE schooldns_{name} counter\n\
                 schooldns_{name} {value}\n"
            );
        }
        let behind = self.origin_version.load().as_ref().is_some()
            && **self.origin_version.load() != **self.version.load();
        let _ = write!(
            out,
            "# HELP schooldns_sync_behind 1 when the origin has a version this instance does \
             not serve (refused, or not pulled yet).\n# TYPE schooldns_sync_behind gauge\n\
             schooldns_sync_behind {}\n\
             # HELP schooldns_sync_last_pull_timestamp_seconds When the origin last answered.\n\
             # TYPE schooldns_sync_last_pull_timestamp_seconds gauge\n\
             schooldns_sync_last_pull_timestamp_seconds {}\n",
            u8::from(behind),
            self.last_pull_ms.load(Ordering::Relaxed) / 1000
        );
        if let Some(version) = &**self.version.load() {
            let _ = write!(
                out,
                "# HELP schooldns_sync_version_info The config version being served.\n\
                 # TYPE schooldns_sync_version_info gauge\n\
                 schooldns_sync_version_info{{version=\"{version}\"}} 1\n"
            );
        }
    }

    fn failed(&self, what: &str, err: &anyhow::Error) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let text = format!("{what}: {err:#}");
        if self.error.load().as_deref() != Some(text.as_str()) {
            tracing::error!(origin = %self.origin, error = %format!("{err:#}"), "{what}; the config being served stays");
        }
        self.error.store(Arc::new(Some(text)));
    }
}

/// The instance's own file, read for its `[sync]` (other tables are the origin's to check).
fn sync_of(local: &Path) -> anyhow::Result<Option<(SyncConfig, PathBuf)>> {
    let text = std::fs::read_to_string(local)
        .with_context(|| format!("cannot read {}", local.display()))?;
    // A file that does not parse is reported by the normal load.
    let Ok(config) = toml::from_str::<Config>(&text) else {
        return Ok(None);
    };
    if config.sync.origin.is_none() {
        return Ok(None);
    }
    let Some(checkout) = config.sync.checkout.as_ref().map(|c| c.get_ref().clone()) else {
        bail!(
            "{}: [sync] origin needs `checkout`, an absolute folder path",
            local.display()
        );
    };
    if !checkout.is_absolute() {
        bail!(
            "{}: [sync] checkout must be an absolute path",
            local.display()
        );
    }
    Ok(Some((config.sync, checkout)))
}

/// Before `serve` loads its config: with `[sync] origin`, pulls the origin into the copy if
/// it holds nothing yet, and makes the copy the working folder. `None` without an origin.
pub fn prepare(local: &Path) -> anyhow::Result<Option<Arc<SyncStatus>>> {
    let Some((config, checkout)) = sync_of(local)? else {
        return Ok(None);
    };
    let origin = Origin::of(&config).expect("origin is set");
    let status = Arc::new(SyncStatus {
        origin: config
            .origin
            .as_ref()
            .map(|o| o.get_ref().clone())
            .unwrap_or_default(),
        ..SyncStatus::default()
    });
    let copy = Checkout {
        origin,
        checkout,
        local: local.to_path_buf(),
        instance: String::new(),
    };
    if !copy.exists() {
        tracing::info!(origin = %status.origin, checkout = %copy.checkout.display(), "pulling the config origin for the first time");
        copy.first_pull()
            .with_context(|| format!("pulling the config origin {}", status.origin))?;
    }
    status.version.store(Arc::new(copy.version()?));
    status.origin_version.store(status.version.load_full());
    status
        .last_pull_ms
        .store(crate::hitlog::now_ms(), Ordering::Relaxed);
    std::env::set_current_dir(&copy.checkout)
        .with_context(|| format!("cannot work in {}", copy.checkout.display()))?;
    Ok(Some(status))
}

/// This instance's copy of the origin.
struct Checkout {
    origin: Origin,
    checkout: PathBuf,
    /// The instance's own config file (absolute).
    local: PathBuf,
    /// For commit messages.
    instance: String,
}

impl Checkout {
    fn exists(&self) -> bool {
        match self.origin {
            Origin::Git { .. } => self.checkout.join(".git").exists(),
            Origin::Bundle { .. } => self.checkout.join(BUNDLE_MARK).exists(),
        }
    }

    fn first_pull(&self) -> anyhow::Result<()> {
        match &self.origin {
            Origin::Git { url, branch } => {
                if let Some(parent) = self.checkout.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut args = vec!["clone", "--quiet"];
                if let Some(branch) = branch {
                    args.extend(["--branch", branch]);
                }
                git(
                    None,
                    &args,
                    &[url.as_str(), &self.checkout.to_string_lossy()],
                )?;
                Ok(())
            }
            Origin::Bundle { url } => {
                let (bytes, _) = download(url, None)?
                    .context("the origin answered 304 Not Modified to a first request")?;
                let version = bundle_version(&bytes);
                let staged = self.unpack(&bytes)?;
                self.swap_bundle(&staged, &version)
            }
        }
    }

    /// The version the copy holds.
    fn version(&self) -> anyhow::Result<Option<String>> {
        Ok(match self.origin {
            Origin::Git { .. } => Some(git(Some(&self.checkout), &["rev-parse", "HEAD"], &[])?),
            Origin::Bundle { .. } => std::fs::read_to_string(self.checkout.join(BUNDLE_MARK))
                .ok()
                .map(|v| v.trim().to_string()),
        })
    }

    fn branch(&self) -> anyhow::Result<String> {
        match &self.origin {
            Origin::Git {
                branch: Some(branch),
                ..
            } => Ok(branch.clone()),
            _ => git(
                Some(&self.checkout),
                &["symbolic-ref", "--short", "HEAD"],
                &[],
            ),
        }
    }

    /// Runs `schooldns check` on the files in `tree`, as they would be served; the error is
    /// what check said.
    fn verify(&self, tree: &Path) -> anyhow::Result<()> {
        let exe = std::env::current_exe().context("finding the schooldns binary")?;
        let out = Command::new(exe)
            .args(["check", "--config"])
            .arg(&self.local)
            .env(TREE_ENV, tree)
            .current_dir(tree)
            .output()
            .context("running schooldns check")?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim();
        bail!(
            "{}",
            if said.is_empty() {
                "schooldns check failed".to_string()
            } else {
                said.replace(&*tree.to_string_lossy(), "<origin>")
            }
        )
    }

    /// A folder beside the copy for a version being checked.
    fn staging(&self) -> anyhow::Result<PathBuf> {
        let staged = self.checkout.with_extension("staged");
        if staged.exists() {
            std::fs::remove_dir_all(&staged)?;
        }
        std::fs::create_dir_all(&staged)?;
        Ok(staged)
    }

    fn unpack(&self, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let staged = self.staging()?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        // `unpack` refuses entries that would land outside the folder (`..`, absolute paths).
        archive
            .unpack(&staged)
            .context("unpacking the bundle (a .tar.gz)")?;
        Ok(staged)
    }

    /// Makes the copy hold exactly the staged bundle's files.
    fn swap_bundle(&self, staged: &Path, version: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.checkout)?;
        let mut kept = std::collections::BTreeSet::new();
        for file in walk(staged)? {
            let rel = file.strip_prefix(staged)?.to_path_buf();
            let target = self.checkout.join(&rel);
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::rename(&file, &target)?;
            kept.insert(rel);
        }
        for file in walk(&self.checkout)? {
            let rel = file.strip_prefix(&self.checkout)?.to_path_buf();
            if !kept.contains(&rel) && rel != Path::new(BUNDLE_MARK) {
                std::fs::remove_file(&file)?;
            }
        }
        let mark = self.checkout.join(format!("{BUNDLE_MARK}.new"));
        std::fs::write(&mark, format!("{version}\n"))?;
        std::fs::rename(&mark, self.checkout.join(BUNDLE_MARK))?;
        let _ = std::fs::remove_dir_all(staged);
        Ok(())
    }
}

/// Every file under `dir`.
fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// `sha256:` and the first 16 hex digits of a bundle.
fn bundle_version(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// GETs a bundle; `None` when the server says it has not changed since `etag`.
fn download(url: &str, etag: Option<&str>) -> anyhow::Result<Option<(Vec<u8>, Option<String>)>> {
    let agent = crate::subscriptions::agent(Duration::from_secs(60));
    let mut request = agent.get(url);
    if let Some(etag) = etag {
        request = request.header("If-None-Match", etag);
    }
    let response = request.call().with_context(|| format!("GET {url}"))?;
    if response.status() == 304 {
        return Ok(None);
    }
    let etag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(MAX_BUNDLE + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BUNDLE {
        bail!("the bundle is larger than {} MiB", MAX_BUNDLE >> 20);
    }
    Ok(Some((bytes, etag)))
}

/// Runs git (in `dir`), returning its trimmed standard output; a failure says what git said.
fn git(dir: Option<&Path>, args: &[&str], more: &[&str]) -> anyhow::Result<String> {
    let mut command = Command::new("git");
    if let Some(dir) = dir {
        command.arg("-C").arg(dir);
    }
    let out = command
        .args([
            "-c",
            "user.name=schooldns",
            "-c",
            "user.email=schooldns@localhost",
        ])
        .args(args)
        .args(more)
        // Never wait for a password on a terminal.
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .context("running git (is it installed? apt-get install git)")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A request to the sync thread.
enum Request {
    /// Something changed in the copy here: commit and push it now.
    Publish(String),
    /// Stop.
    Stop,
}

/// The running sync thread.
pub struct Syncer {
    tx: mpsc::Sender<Request>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Asks the sync thread to publish local changes (cheap to clone; never blocks).
#[derive(Clone)]
pub struct Publisher(mpsc::Sender<Request>);

impl Publisher {
    /// Commits and pushes what changed in the copy, with `message` (a git origin), or says
    /// that the change will not reach the other instances (an HTTPS origin).
    pub fn publish(&self, message: String) {
        let _ = self.0.send(Request::Publish(message));
    }
}

impl Syncer {
    /// Starts the thread for the instance whose own file is `local`.
    pub fn spawn(
        local: &Path,
        instance: String,
        status: Arc<SyncStatus>,
        reload: mpsc::Sender<Trigger>,
    ) -> anyhow::Result<Syncer> {
        let (config, checkout) = sync_of(local)?.context("[sync] origin is not set")?;
        let origin = Origin::of(&config).expect("origin is set");
        let copy = Checkout {
            origin,
            checkout,
            local: local.to_path_buf(),
            instance,
        };
        let interval = Duration::from_secs(config.interval_secs.max(1));
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("schooldns-sync".into())
            .spawn(move || {
                let mut run = Run {
                    copy,
                    status,
                    reload,
                    etag: None,
                    refused: None,
                    unpushed: false,
                };
                loop {
                    match rx.recv_timeout(interval) {
                        Ok(Request::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        Ok(Request::Publish(message)) => run.publish(&message),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                    }
                    run.pull();
                }
            })?;
        Ok(Syncer {
            tx,
            thread: Some(thread),
        })
    }

    /// A handle for the console's changes.
    pub fn publisher(&self) -> Publisher {
        Publisher(self.tx.clone())
    }

    /// Stops the thread.
    pub fn stop(mut self) {
        let _ = self.tx.send(Request::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Run {
    copy: Checkout,
    status: Arc<SyncStatus>,
    reload: mpsc::Sender<Trigger>,
    /// The bundle's ETag, for conditional GETs.
    etag: Option<String>,
    /// The version last refused, not tried again.
    refused: Option<String>,
    /// Local commits a push has not taken yet.
    unpushed: bool,
}

impl Run {
    fn publish(&mut self, message: &str) {
        match &self.copy.origin {
            Origin::Git { .. } => {
                let published = self.commit_local(message).and_then(|committed| {
                    self.unpushed |= committed;
                    match self.unpushed {
                        true => self.push(),
                        false => Ok(()),
                    }
                });
                match published {
                    Ok(()) => self.unpushed = false,
                    Err(err) => self
                        .status
                        .failed("publishing a change to the config origin", &err),
                }
            }
            Origin::Bundle { url } => {
                let err = anyhow::anyhow!(
                    "this instance's config comes from the bundle {url}: a change made here \
                     does not reach the other instances and is replaced by the next bundle; \
                     make it where the bundle is made"
                );
                self.status.failed("a change made on this instance", &err);
            }
        }
    }

    /// Commits whatever changed in the copy; false when nothing had.
    fn commit_local(&self, message: &str) -> anyhow::Result<bool> {
        let dir = &self.copy.checkout;
        if git(Some(dir), &["status", "--porcelain"], &[])?.is_empty() {
            return Ok(false);
        }
        git(Some(dir), &["add", "-A"], &[])?;
        let message = format!(
            "{message}\n\nMade on schooldns instance {}.",
            self.copy.instance
        );
        git(Some(dir), &["commit", "--quiet", "-m"], &[&message])?;
        Ok(true)
    }

    /// Pushes local commits, rebased on the origin's branch first.
    fn push(&self) -> anyhow::Result<()> {
        let dir = &self.copy.checkout;
        let branch = self.copy.branch()?;
        git(Some(dir), &["fetch", "--quiet", "origin"], &[&branch])?;
        let ahead = git(Some(dir), &["rev-list", "--count", "FETCH_HEAD..HEAD"], &[])?;
        if ahead == "0" {
            return Ok(());
        }
        if let Err(err) = git(Some(dir), &["rebase", "--quiet", "FETCH_HEAD"], &[]) {
            let _ = git(Some(dir), &["rebase", "--abort"], &[]);
            return Err(err.context(
                "a change made here conflicts with the origin's; it stays here, unpublished",
            ));
        }
        git(
            Some(dir),
            &["push", "--quiet", "origin"],
            &[&format!("HEAD:{branch}")],
        )?;
        tracing::info!(origin = %self.status.origin, "published a change made on this instance");
        Ok(())
    }

    fn pull(&mut self) {
        let result = match self.copy.origin.clone() {
            Origin::Git { .. } => self.pull_git(),
            Origin::Bundle { url } => self.pull_bundle(&url),
        };
        match result {
            Ok(()) => {
                self.status
                    .last_pull_ms
                    .store(crate::hitlog::now_ms(), Ordering::Relaxed);
                if self.refused.is_none() {
                    self.status.error.store(Arc::new(None));
                }
            }
            Err(err) => self.status.failed("pulling the config origin", &err),
        }
    }

    fn pull_git(&mut self) -> anyhow::Result<()> {
        let dir = self.copy.checkout.clone();
        // Changes made here (and not published yet) go first.
        self.unpushed |= self.commit_local("Changes made on this instance")?;
        if self.unpushed {
            self.push()?;
            self.unpushed = false;
        }
        let branch = self.copy.branch()?;
        git(Some(&dir), &["fetch", "--quiet", "origin"], &[&branch])?;
        let head = git(Some(&dir), &["rev-parse", "HEAD"], &[])?;
        let fetched = git(Some(&dir), &["rev-parse", "FETCH_HEAD"], &[])?;
        self.status
            .origin_version
            .store(Arc::new(Some(fetched.clone())));
        if fetched == head || self.refused.as_deref() == Some(fetched.as_str()) {
            return Ok(());
        }
        let staged = self.copy.staging()?;
        let archive = Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["archive", "--format=tar", &fetched])
            .output()
            .context("running git archive")?;
        if !archive.status.success() {
            bail!(
                "git archive: {}",
                String::from_utf8_lossy(&archive.stderr).trim()
            );
        }
        tar::Archive::new(archive.stdout.as_slice())
            .unpack(&staged)
            .context("unpacking the pulled version")?;
        let verdict = self.copy.verify(&staged);
        let _ = std::fs::remove_dir_all(&staged);
        if let Err(err) = verdict {
            return Err(self.refuse(&fetched, err));
        }
        git(Some(&dir), &["reset", "--hard", "--quiet"], &[&fetched])?;
        self.swapped(fetched);
        Ok(())
    }

    fn pull_bundle(&mut self, url: &str) -> anyhow::Result<()> {
        let Some((bytes, etag)) = download(url, self.etag.as_deref())? else {
            return Ok(());
        };
        let version = bundle_version(&bytes);
        self.status
            .origin_version
            .store(Arc::new(Some(version.clone())));
        self.etag = etag;
        if Some(&version) == self.status.version.load().as_ref().as_ref()
            || self.refused.as_deref() == Some(version.as_str())
        {
            return Ok(());
        }
        let staged = self.copy.unpack(&bytes)?;
        if let Err(err) = self.copy.verify(&staged) {
            let _ = std::fs::remove_dir_all(&staged);
            return Err(self.refuse(&version, err));
        }
        self.copy.swap_bundle(&staged, &version)?;
        self.swapped(version);
        Ok(())
    }

    fn refuse(&mut self, version: &str, err: anyhow::Error) -> anyhow::Error {
        self.refused = Some(version.to_string());
        self.status.refused.fetch_add(1, Ordering::Relaxed);
        let err = err.context(format!(
            "version {} from the origin does not compile: refused; the version being served \
             stays",
            short(version)
        ));
        tracing::error!(origin = %self.status.origin, error = %format!("{err:#}"), "config origin version refused");
        let text = format!("{err:#}");
        self.status.error.store(Arc::new(Some(text.clone())));
        anyhow::anyhow!(text)
    }

    fn swapped(&mut self, version: String) {
        tracing::info!(origin = %self.status.origin, version = %short(&version), "pulled a new config version; reloading");
        self.refused = None;
        self.status.updates.fetch_add(1, Ordering::Relaxed);
        self.status.version.store(Arc::new(Some(version)));
        self.status.error.store(Arc::new(None));
        let _ = self.reload.send(Trigger::Reload { force: false });
    }
}

/// A version as people read it: 12 digits of a commit, a bundle's whole tag.
pub fn short(version: &str) -> &str {
    if version.starts_with("sha256:") {
        version
    } else {
        &version[..version.len().min(12)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_told_apart_by_their_url() {
        let config = |url: &str| SyncConfig {
            origin: Some(toml::Spanned::new(0..0, url.to_string())),
            ..SyncConfig::default()
        };
        assert!(matches!(
            Origin::of(&config("https://district.example/schooldns.tar.gz")),
            Some(Origin::Bundle { .. })
        ));
        assert!(matches!(
            Origin::of(&config("https://git.district.example/schooldns.git")),
            Some(Origin::Git { .. })
        ));
        assert!(matches!(
            Origin::of(&config("/srv/schooldns.git")),
            Some(Origin::Git { .. })
        ));
        assert_eq!(Origin::of(&SyncConfig::default()), None);
    }
}
