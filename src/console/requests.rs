//! Unblock requests: a school asks for a name to be allowed, with a reason; the district
//! approves (the console then adds an exception for that school or the whole district) or
//! rejects with a reply; the school sees the outcome. They live in `[console] requests`, a
//! TOML file edited under its lock and replaced atomically (`crate::files`).

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::exceptions::{instant, new_id, timestamp};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for the district.
    Open,
    /// Allowed (an exception was added).
    Approved,
    /// Refused, with a reply.
    Rejected,
}

impl State {
    /// `open`, `approved` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Approved => "approved",
            State::Rejected => "rejected",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    id: String,
    school: String,
    name: String,
    #[serde(default)]
    reason: String,
    asked_by: String,
    #[serde(default)]
    asked_at: Option<String>,
    state: String,
    #[serde(default)]
    decided_by: Option<String>,
    #[serde(default)]
    decided_at: Option<String>,
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    exception: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsFile {
    #[serde(default)]
    requests: Vec<Stored>,
}

/// One unblock request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnblockRequest {
    /// Stable id (`r-<unix seconds>-<4 hex>`).
    pub id: String,
    /// The asking school.
    pub school: String,
    /// The name to allow (normalised).
    pub name: String,
    /// Why the school asks.
    pub reason: String,
    /// Who asked.
    pub asked_by: String,
    /// When (ms since the epoch).
    pub asked_ms: Option<i64>,
    /// Where it stands.
    pub state: State,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_ms: Option<i64>,
    /// The district's reply.
    pub reply: Option<String>,
    /// The exception an approval added.
    pub exception: Option<String>,
}

/// Reads the requests file (none yet: no requests). Errors name the file and line.
pub fn read(path: &Path) -> anyhow::Result<Vec<UnblockRequest>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<UnblockRequest>> {
    let file: RequestsFile = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start].matches('\n').count() + 1)
            .unwrap_or(0);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message())
    })?;
    file.requests
        .into_iter()
        .map(|r| {
            let state = match r.state.as_str() {
                "open" => State::Open,
                "approved" => State::Approved,
                "rejected" => State::Rejected,
                other => bail!(
                    "{}: request {:?}: state {other:?} is not open, approved or rejected",
                    path.display(),
                    r.id
                ),
            };
            Ok(UnblockRequest {
                id: r.id,
                school: r.school,
                name: r.name,
                reason: r.reason,
                asked_by: r.asked_by,
                asked_ms: r.asked_at.as_deref().and_then(instant),
                state,
                decided_by: r.decided_by,
                decided_ms: r.decided_at.as_deref().and_then(instant),
                reply: r.reply,
                exception: r.exception,
            })
        })
        .collect()
}

const NEW_FILE_HEADER: &str = "# schooldns unblock requests, written by the web console.\n";

/// Records a school's request; returns it.
pub fn ask(
    path: &Path,
    school: &str,
    name: &str,
    reason: &str,
    by: &str,
) -> anyhow::Result<UnblockRequest> {
    let mut normalised = String::new();
    crate::name::normalize_entry(name, &mut normalised)
        .map_err(|e| anyhow::anyhow!("{name:?}: {e}"))?;
    if reason.trim().is_empty() {
        bail!("a request needs a reason");
    }
    // The file lives with the server's state (`data/`), which may not exist yet.
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    let _lock = crate::files::lock(path)?;
    let mut doc = document(path)?;
    let id = new_id("r")?;
    let mut entry = Table::new();
    entry["id"] = value(&id);
    entry["school"] = value(school);
    entry["name"] = value(&normalised);
    entry["reason"] = value(reason.trim());
    entry["asked_by"] = value(by);
    entry["asked_at"] = value(timestamp(crate::hitlog::now_ms()));
    entry["state"] = value("open");
    array(&mut doc)?.push(entry);
    write(path, &doc)?
        .into_iter()
        .find(|r| r.id == id)
        .context("the new request vanished")
}

/// Settles an open request; returns it as it was asked.
pub fn decide(
    path: &Path,
    id: &str,
    state: State,
    reply: &str,
    by: &str,
    exception: Option<&str>,
) -> anyhow::Result<UnblockRequest> {
    let _lock = crate::files::lock(path)?;
    let asked = read(path)?
        .into_iter()
        .find(|r| r.id == id)
        .with_context(|| format!("no request {id:?}"))?;
    if asked.state != State::Open {
        bail!("request {id:?} is already {}", asked.state.as_str());
    }
    let mut doc = document(path)?;
    let entry = array(&mut doc)?
        .iter_mut()
        .find(|t| t.get("id").and_then(Item::as_str) == Some(id))
        .with_context(|| format!("no request {id:?}"))?;
    entry["state"] = value(state.as_str());
    entry["decided_by"] = value(by);
    entry["decided_at"] = value(timestamp(crate::hitlog::now_ms()));
    if !reply.trim().is_empty() {
        entry["reply"] = value(reply.trim());
    }
    if let Some(exception) = exception {
        entry["exception"] = value(exception);
    }
    write(path, &doc)?;
    Ok(asked)
}

fn document(path: &Path) -> anyhow::Result<DocumentMut> {
    crate::files::read_document(path, NEW_FILE_HEADER, |text| parse(path, text).map(|_| ()))
}

fn array(doc: &mut DocumentMut) -> anyhow::Result<&mut ArrayOfTables> {
    crate::files::tables(doc, "requests")
}

fn write(path: &Path, doc: &DocumentMut) -> anyhow::Result<Vec<UnblockRequest>> {
    let text = doc.to_string();
    let parsed = parse(path, &text).context("the edited requests file would not parse")?;
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    crate::files::replace(path, &text, None)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_asked_then_decided_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/requests.toml");
        let asked = ask(&path, "lab", "Example.COM", "a lesson needs it", "lan").unwrap();
        assert_eq!(
            (asked.name.as_str(), asked.state),
            ("example.com", State::Open)
        );
        decide(&path, &asked.id, State::Approved, "ok", "minh", Some("x-1")).unwrap();
        let now = read(&path).unwrap();
        assert_eq!(now[0].state, State::Approved);
        assert_eq!(now[0].exception.as_deref(), Some("x-1"));
        assert!(decide(&path, &asked.id, State::Rejected, "", "minh", None).is_err());
        assert!(ask(&path, "lab", "example.com", " ", "lan").is_err());
    }
}
