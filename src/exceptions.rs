//! Exceptions: one name (and its subdomains) allowed or blocked for one school or for the whole
//! district, with a reason, for good or until a time. They live in a text file the server
//! writes (`[console] exceptions`), so a district can keep it in git beside its config:
//!
//! ```toml
//! [[exceptions]]
//! id = "x-1733390000-4f2a"
//! school = "thcs-ngo-si-lien"      # absent: the whole district
//! name = "youtube.com"
//! action = "allow"                 # or "block"
//! reason = "Văn 8A watches a lesson video"
//! until = "2026-12-05T17:00:00+07:00"   # absent: for good
//! created_by = "lan"
//! created_at = "2026-12-05T08:00:00Z"
//! # removed_by / removed_at: removed, kept in the history
//! ```
//!
//! The policy compiles the exceptions in force into one small table per school and one for the
//! district (`policy::compile`); an exception past its `until` stops applying at the next
//! reload, which the reload thread schedules for the earliest `until` ([`next_expiry`]). Edits
//! hold the file's lock and replace it atomically (`crate::files`), like the devices file.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use crate::lists::Action;

/// One exception as the file holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    id: String,
    #[serde(default)]
    school: Option<String>,
    name: toml::Spanned<String>,
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    removed_by: Option<String>,
    #[serde(default)]
    removed_at: Option<String>,
    #[serde(default)]
    request: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionsFile {
    #[serde(default)]
    exceptions: Vec<Stored>,
}

/// One exception, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exception {
    /// Stable id (`x-<unix seconds>-<4 hex>`).
    pub id: String,
    /// The school it applies to; `None`: the whole district.
    pub school: Option<String>,
    /// The name, normalised (lower case, punycode); its subdomains are covered too.
    pub name: String,
    /// Allow or block.
    pub action: Action,
    /// Why, as given.
    pub reason: String,
    /// Stops applying at this instant (ms since the epoch); `None`: for good.
    pub until_ms: Option<i64>,
    /// Who added it (a console user, or `cli`).
    pub created_by: String,
    /// When (ms since the epoch).
    pub created_ms: Option<i64>,
    /// Who removed it, if someone did.
    pub removed_by: Option<String>,
    /// When it was removed.
    pub removed_ms: Option<i64>,
    /// The unblock request it answers, if any.
    pub request: Option<String>,
    /// Its `name` line in the file (for `explain` and hit records: `file:line`).
    pub line: u32,
}

impl Exception {
    /// Whether it applies at `now_ms`: not removed and not expired.
    pub fn in_force(&self, now_ms: i64) -> bool {
        self.removed_ms.is_none() && self.until_ms.is_none_or(|until| until > now_ms)
    }

    /// `allow` or `block`.
    pub fn action_str(&self) -> &'static str {
        match self.action {
            Action::Allow => "allow",
            Action::Block => "block",
        }
    }
}

/// Reads the exceptions file (none yet: no exceptions). Errors name the file and line.
pub fn read(path: &Path) -> anyhow::Result<Vec<Exception>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn line_of(text: &str, offset: usize) -> u32 {
    text[..offset.min(text.len())].matches('\n').count() as u32 + 1
}

pub(crate) fn instant(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// Parses the exceptions file's text; every mistake names `file:line`.
pub fn parse(path: &Path, text: &str) -> anyhow::Result<Vec<Exception>> {
    let file: ExceptionsFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message())
    })?;
    let mut out: Vec<Exception> = Vec::with_capacity(file.exceptions.len());
    for stored in file.exceptions {
        let line = line_of(text, stored.name.span().start);
        let at = |what: &str| {
            format!(
                "{}:{line}: exception {:?}: {what}",
                path.display(),
                stored.id
            )
        };
        let mut name = String::new();
        crate::name::normalize_entry(stored.name.get_ref(), &mut name)
            .map_err(|e| anyhow::anyhow!(at(&format!("name: {e}"))))?;
        let action = match stored.action.as_str() {
            "allow" => Action::Allow,
            "block" => Action::Block,
            other => bail!(at(&format!("action: {other:?} is not allow or block"))),
        };
        let until_ms = match &stored.until {
            None => None,
            Some(text) => Some(
                instant(text)
                    .with_context(|| at(&format!("until: {text:?} is not an RFC 3339 time")))?,
            ),
        };
        if out.iter().any(|o| o.id == stored.id) {
            bail!(at("this id is used twice"));
        }
        out.push(Exception {
            id: stored.id,
            school: stored.school.filter(|s| !s.is_empty()),
            name,
            action,
            reason: stored.reason,
            until_ms,
            created_by: stored.created_by,
            created_ms: stored.created_at.as_deref().and_then(instant),
            removed_by: stored.removed_by,
            removed_ms: stored.removed_at.as_deref().and_then(instant),
            request: stored.request,
            line,
        });
    }
    Ok(out)
}

/// The earliest `until` after `now_ms` among exceptions in force: the next instant the policy
/// changes by itself.
pub fn next_expiry(exceptions: &[Exception], now_ms: i64) -> Option<i64> {
    exceptions
        .iter()
        .filter(|e| e.in_force(now_ms))
        .filter_map(|e| e.until_ms)
        .min()
}

/// A new exception, as the console or the CLI asks for it.
#[derive(Debug, Clone)]
pub struct NewException<'a> {
    /// The school; `None`: the whole district.
    pub school: Option<&'a str>,
    /// The name, as typed (normalised here).
    pub name: &'a str,
    /// Allow or block.
    pub action: Action,
    /// Why.
    pub reason: &'a str,
    /// Stops applying at this instant (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Who asks.
    pub by: &'a str,
    /// The unblock request it answers.
    pub request: Option<&'a str>,
}

const NEW_FILE_HEADER: &str = "# schooldns exceptions: one [[exceptions]] entry each.\n\
# Written by the web console (and editable by hand); the server reloads this file when it\n\
# changes. Removed and expired exceptions stay as history.\n";

pub(crate) fn timestamp(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.round(jiff::Unit::Second).unwrap_or(t).to_string())
        .unwrap_or_default()
}

/// A fresh id: the time and 16 random bits.
pub(crate) fn new_id(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the system's random source: {e}"))?;
    Ok(format!(
        "{prefix}-{}-{:02x}{:02x}",
        crate::hitlog::now_ms() / 1000,
        bytes[0],
        bytes[1]
    ))
}

/// Adds an exception; returns it as stored.
pub fn add(path: &Path, new: &NewException<'_>) -> anyhow::Result<Exception> {
    let mut name = String::new();
    crate::name::normalize_entry(new.name, &mut name)
        .map_err(|e| anyhow::anyhow!("{:?}: {e}", new.name))?;
    if new.reason.trim().is_empty() {
        bail!("an exception needs a reason");
    }
    let now = crate::hitlog::now_ms();
    if new.until_ms.is_some_and(|until| until <= now) {
        bail!("the end time is already past");
    }
    let _lock = crate::files::lock(path)?;
    let mut doc = read_document(path)?;
    let id = new_id("x")?;
    let mut entry = Table::new();
    entry["id"] = value(&id);
    if let Some(school) = new.school {
        entry["school"] = value(school);
    }
    entry["name"] = value(&name);
    entry["action"] = value(match new.action {
        Action::Allow => "allow",
        Action::Block => "block",
    });
    entry["reason"] = value(new.reason.trim());
    if let Some(until) = new.until_ms {
        entry["until"] = value(timestamp(until));
    }
    entry["created_by"] = value(new.by);
    entry["created_at"] = value(timestamp(now));
    if let Some(request) = new.request {
        entry["request"] = value(request);
    }
    array(&mut doc)?.push(entry);
    let text = doc.to_string();
    let parsed = parse(path, &text).context("the edited exceptions file would not parse")?;
    crate::files::replace(path, &text, None)?;
    parsed
        .into_iter()
        .find(|e| e.id == id)
        .context("the new exception vanished")
}

/// Marks an exception removed (kept as history); returns it as it was.
pub fn remove(path: &Path, id: &str, by: &str) -> anyhow::Result<Exception> {
    let _lock = crate::files::lock(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let found = parse(path, &text)?
        .into_iter()
        .find(|e| e.id == id && e.removed_ms.is_none())
        .with_context(|| format!("no exception {id:?} in force"))?;
    let mut doc = read_document(path)?;
    let entry = array(&mut doc)?
        .iter_mut()
        .find(|t| t.get("id").and_then(Item::as_str) == Some(id))
        .with_context(|| format!("no exception {id:?}"))?;
    entry["removed_by"] = value(by);
    entry["removed_at"] = value(timestamp(crate::hitlog::now_ms()));
    let text = doc.to_string();
    parse(path, &text).context("the edited exceptions file would not parse")?;
    crate::files::replace(path, &text, None)?;
    Ok(found)
}

fn read_document(path: &Path) -> anyhow::Result<DocumentMut> {
    crate::files::read_document(path, NEW_FILE_HEADER, |text| parse(path, text).map(|_| ()))
}

fn array(doc: &mut DocumentMut) -> anyhow::Result<&mut ArrayOfTables> {
    crate::files::tables(doc, "exceptions")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exception_is_added_expires_and_is_removed_as_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exceptions.toml");
        let now = crate::hitlog::now_ms();
        let added = add(
            &path,
            &NewException {
                school: Some("lab"),
                name: "YouTube.com.",
                action: Action::Allow,
                reason: "lesson video",
                until_ms: Some(now + 3_600_000),
                by: "lan",
                request: None,
            },
        )
        .unwrap();
        assert_eq!(added.name, "youtube.com");
        assert!(added.in_force(now) && !added.in_force(added.until_ms.unwrap()));
        assert_eq!(next_expiry(&read(&path).unwrap(), now), added.until_ms);
        let listed = read(&path).unwrap();
        assert_eq!(listed, vec![added.clone()]);
        remove(&path, &added.id, "minh").unwrap();
        let after = read(&path).unwrap();
        assert_eq!(after[0].removed_by.as_deref(), Some("minh"));
        assert!(!after[0].in_force(now));
        assert!(remove(&path, &added.id, "minh").is_err(), "removed twice");
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let text = "[[exceptions]]\nid = \"a\"\nname = \"ok.example\"\naction = \"allow\"\n\n\
                    [[exceptions]]\nid = \"b\"\nname = \"bad name.example\"\naction = \"allow\"\n";
        let err = parse(Path::new("x.toml"), text).unwrap_err().to_string();
        assert!(err.starts_with("x.toml:8: exception \"b\": name"), "{err}");
        let err = parse(
            Path::new("x.toml"),
            "[[exceptions]]\nid = \"a\"\nname = \"a.example\"\naction = \"permit\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("x.toml:3:") && err.contains("permit"), "{err}");
        assert!(
            add(
                Path::new("/nonexistent/x.toml"),
                &NewException {
                    school: None,
                    name: "a.example",
                    action: Action::Block,
                    reason: "",
                    until_ms: None,
                    by: "x",
                    request: None,
                }
            )
            .unwrap_err()
            .to_string()
            .contains("reason")
        );
    }
}
