//! `schooldns devices add` and `revoke`: safe edits of the devices file.
//!
//! Edits keep the admin's comments and layout (`toml_edit`), hold the file's edit lock, check
//! that the result still parses, and replace the file atomically (`crate::files`), so a running
//! server's watcher never sees a half-written file.

use std::path::Path;

use anyhow::{Context, bail};
use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use super::{file, token};

/// What `devices add` is told.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Id; derived from the name when absent.
    pub id: Option<String>,
    /// Display name.
    pub name: String,
    /// Profile name (checked against the config by the caller).
    pub profile: String,
    /// School id (checked against the config by the caller).
    pub school: Option<String>,
    /// Whether the school may see the device's hits.
    pub share_with_school: bool,
}

/// The device as written.
#[derive(Debug, Clone)]
pub struct Added {
    /// Its id.
    pub id: String,
    /// Its fresh token.
    pub token: String,
}

const NEW_FILE_HEADER: &str = "# schooldns home devices and families: one [[devices]] entry each.\n\
# Edit with `schooldns devices add` / `schooldns devices revoke`; the server reloads this file\n\
# when it changes. Tokens are secrets: they select a child's filtering profile.\n";

/// Adds a device with a fresh token. Creates the file if it does not exist.
pub fn add(path: &Path, new: &NewDevice) -> anyhow::Result<Added> {
    let _lock = crate::files::lock(path)?;
    let mut doc = read_document(path)?;
    let existing = ids(&doc);
    let id = match &new.id {
        Some(id) => {
            if let Some(problem) = file::id_problem(id) {
                bail!("{problem}");
            }
            if existing.contains(id) {
                bail!(
                    "a device with id {id:?} already exists in {}",
                    path.display()
                );
            }
            id.clone()
        }
        None => unique_id(&slug(&new.name), &existing),
    };
    let token = token::generate().context("generating a token")?;
    let mut entry = Table::new();
    entry["id"] = value(&id);
    entry["name"] = value(&new.name);
    entry["token"] = value(&token);
    entry["profile"] = value(&new.profile);
    if let Some(school) = &new.school {
        entry["school"] = value(school);
    }
    entry["share_with_school"] = value(new.share_with_school);
    entry["created"] = value(
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)?
            .to_string(),
    );
    // Comments at the end of the file (all of a new file's header) stay above the new entry.
    let trailing = doc.trailing().as_str().unwrap_or("").to_string();
    doc.set_trailing("");
    let gap = if trailing.is_empty() || trailing.ends_with("\n\n") {
        ""
    } else {
        "\n"
    };
    entry.decor_mut().set_prefix(format!("{trailing}{gap}"));
    devices_array(&mut doc)?.push(entry);
    write_checked(path, &doc)?;
    Ok(Added { id, token })
}

/// Marks a device revoked: its token stops working at the next reload (at once for a running
/// server, which watches the file). The entry stays, so old hit records still name it.
pub fn revoke(path: &Path, id: &str) -> anyhow::Result<()> {
    let _lock = crate::files::lock(path)?;
    let mut doc = read_document(path)?;
    let devices = devices_array(&mut doc)?;
    let Some(entry) = devices
        .iter_mut()
        .find(|t| t.get("id").and_then(Item::as_str) == Some(id))
    else {
        bail!("no device with id {id:?} in {}", path.display());
    };
    if entry.get("revoked").and_then(Item::as_bool) == Some(true) {
        bail!("device {id:?} is already revoked");
    }
    entry["revoked"] = value(true);
    entry["revoked_at"] = value(
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)?
            .to_string(),
    );
    write_checked(path, &doc)
}

fn read_document(path: &Path) -> anyhow::Result<DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => NEW_FILE_HEADER.to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    // Parse with the checking parser first, so a broken file is reported with its line.
    file::parse(path, text.clone())?;
    text.parse::<DocumentMut>()
        .with_context(|| format!("parsing {}", path.display()))
}

fn devices_array(doc: &mut DocumentMut) -> anyhow::Result<&mut ArrayOfTables> {
    let item = doc
        .entry("devices")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut()
        .context("`devices` must be an array of [[devices]] tables")
}

fn ids(doc: &DocumentMut) -> Vec<String> {
    doc.get("devices")
        .and_then(Item::as_array_of_tables)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("id").and_then(Item::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks that the edited text parses, then replaces the file atomically.
fn write_checked(path: &Path, doc: &DocumentMut) -> anyhow::Result<()> {
    let text = doc.to_string();
    file::parse(path, text.clone()).context("the edited devices file would not parse")?;
    crate::files::replace(path, &text, None)
}

/// An id from a display name: lowercase ASCII, Vietnamese letters without their marks,
/// everything else a `-` ("Điện thoại của Lan" → "dien-thoai-cua-lan").
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = fold_vietnamese(c);
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if c != '\'' && c != '’' && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(48).collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        "device".into()
    } else {
        trimmed.into()
    }
}

/// `base`, or `base-2`, `base-3`… if taken.
fn unique_id(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .expect("some suffix is free")
}

/// The base letter of a lowercase Vietnamese letter (tone and vowel marks removed).
fn fold_vietnamese(c: char) -> char {
    const GROUPS: [(&str, char); 7] = [
        ("àáảãạăằắẳẵặâầấẩẫậ", 'a'),
        ("èéẻẽẹêềếểễệ", 'e'),
        ("ìíỉĩị", 'i'),
        ("òóỏõọôồốổỗộơờớởỡợ", 'o'),
        ("ùúủũụưừứửữự", 'u'),
        ("ỳýỷỹỵ", 'y'),
        ("đ", 'd'),
    ];
    GROUPS
        .iter()
        .find(|(letters, _)| letters.contains(c))
        .map_or(c, |(_, base)| *base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str) -> NewDevice {
        NewDevice {
            id: None,
            name: name.into(),
            profile: "primary".into(),
            school: Some("th-kim-dong".into()),
            share_with_school: false,
        }
    }

    #[test]
    fn slugs_are_readable_ids() {
        assert_eq!(slug("Lan's phone"), "lans-phone");
        assert_eq!(slug("Điện thoại của Lan"), "dien-thoai-cua-lan");
        assert_eq!(slug("  ***  "), "device");
        assert_eq!(unique_id("a", &["a".into(), "a-2".into()]), "a-3");
    }

    #[test]
    fn add_then_revoke_keeps_comments_and_parses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        std::fs::write(&path, "# the Nguyen family\n").unwrap();
        let first = add(&path, &new("Lan's phone")).unwrap();
        let second = add(&path, &new("Lan's phone")).unwrap();
        assert_eq!(first.id, "lans-phone");
        assert_eq!(second.id, "lans-phone-2");
        assert_ne!(first.token, second.token);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# the Nguyen family\n"), "{text}");
        let loaded = file::parse(&path, text).unwrap();
        assert_eq!(loaded.file.devices.len(), 2);
        assert_eq!(loaded.file.devices[0].token.get_ref(), &first.token);

        revoke(&path, "lans-phone").unwrap();
        let loaded = file::read(&path).unwrap();
        assert!(loaded.file.devices[0].revoked);
        assert!(!loaded.file.devices[1].revoked);
        assert!(revoke(&path, "lans-phone").is_err());
        assert!(
            revoke(&path, "nobody")
                .unwrap_err()
                .to_string()
                .contains("no device")
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn add_creates_the_file_and_refuses_bad_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        let mut device = new("Minh");
        device.id = Some("Minh Tablet".into());
        assert!(add(&path, &device).is_err());
        device.id = Some("minh-tablet".into());
        add(&path, &device).unwrap();
        assert!(
            add(&path, &device)
                .unwrap_err()
                .to_string()
                .contains("already exists")
        );
        assert_eq!(file::read(&path).unwrap().file.devices.len(), 1);
    }

    #[test]
    fn a_broken_file_is_not_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.toml");
        std::fs::write(&path, "[[devices]]\nid = \n").unwrap();
        let err = add(&path, &new("Lan")).unwrap_err();
        assert!(format!("{err:#}").contains("devices.toml"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[[devices]]\nid = \n"
        );
    }
}
