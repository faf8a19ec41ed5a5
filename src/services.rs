//! The services catalogue: well-known services (TikTok, Roblox, Zoom, …) by id, with their
//! names in English and Vietnamese, a one-line description for the console, a group, and the
//! list file of the names their apps and sites use (`blocklists/services/`).
//!
//! `block_services` and `allow_services` in profiles, schools, subnets, devices and `when`
//! rules name these ids; `policy::compile` turns each named service's file into a table the
//! way it does a category's, and hit records carry the service's id beside the category.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, SourceText};

/// The category that hit records and `explain` give to a service's rules; the service itself
/// is named in their `service` field.
pub const SERVICES_CATEGORY: &str = "services";

/// The catalogue file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    services: Vec<ServiceEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    id: Spanned<String>,
    name: String,
    #[serde(default)]
    name_vi: Option<String>,
    group: String,
    description: String,
    description_vi: String,
    #[serde(default)]
    learning: bool,
    file: Spanned<String>,
}

/// One service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// What configs name it by (`tiktok`).
    pub id: String,
    /// Its name (`TikTok`).
    pub name: String,
    /// Its Vietnamese name, when it differs.
    pub name_vi: Option<String>,
    /// `social`, `video`, `messaging`, `games`, `ai` or `learning`.
    pub group: String,
    /// One line in English.
    pub description: String,
    /// One line in Vietnamese.
    pub description_vi: String,
    /// Lessons depend on it: no other service may share a name with it.
    pub learning: bool,
    /// Its names.
    pub file: PathBuf,
}

impl Service {
    /// The name in the reader's language.
    pub fn display_name(&self, vietnamese: bool) -> &str {
        match (&self.name_vi, vietnamese) {
            (Some(vi), true) => vi,
            _ => &self.name,
        }
    }
}

/// Every service of the catalogue, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The services.
    pub services: Vec<Service>,
    /// The catalogue file.
    pub path: Option<PathBuf>,
}

impl Catalog {
    /// A service by id.
    pub fn get(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    /// The ids, for error messages.
    pub fn ids(&self) -> Vec<&str> {
        self.services.iter().map(|s| s.id.as_str()).collect()
    }
}

/// Reads the catalogue at `path`; list files are relative to its folder. Mistakes (unknown
/// keys, an id used twice, a missing list file) name the catalogue file, line and key.
pub fn read(path: &Path) -> Result<Catalog, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::unreadable(path, "the services catalogue", &e))?;
    let source = SourceText::new(path, text);
    let file: CatalogFile = toml::from_str(&source.text).map_err(|e| source.from_toml(&e))?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut services: Vec<Service> = Vec::with_capacity(file.services.len());
    for (i, entry) in file.services.into_iter().enumerate() {
        let key = |field: &str| format!("services[{i}].{field}");
        let id = entry.id.get_ref();
        let valid = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(source.error_at(
                entry.id.span(),
                &key("id"),
                format!("{id:?} is not an id (lowercase letters, digits and '-')"),
            ));
        }
        if services.iter().any(|s| &s.id == id) {
            return Err(source.error_at(
                entry.id.span(),
                &key("id"),
                format!("service id {id:?} is used twice"),
            ));
        }
        let list = folder.join(entry.file.get_ref());
        if !list.is_file() {
            return Err(source.error_at(
                entry.file.span(),
                &key("file"),
                format!("cannot read list {}", list.display()),
            ));
        }
        services.push(Service {
            id: id.clone(),
            name: entry.name,
            name_vi: entry.name_vi,
            group: entry.group,
            description: entry.description,
            description_vi: entry.description_vi,
            learning: entry.learning,
            file: list,
        });
    }
    Ok(Catalog {
        services,
        path: Some(path.to_path_buf()),
    })
}

/// The console's service toggles file (`[console] service_toggles`): services switched off or
/// kept working per profile and per school from the console, on top of the config's own
/// `block_services` and `allow_services`. The console writes it; the policy compiles it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TogglesFile {
    /// By profile name.
    #[serde(default)]
    pub profiles: std::collections::BTreeMap<String, Toggles>,
    /// By school id.
    #[serde(default)]
    pub schools: std::collections::BTreeMap<String, Toggles>,
}

/// One profile's or school's toggles.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toggles {
    /// Services switched off.
    #[serde(default)]
    pub block_services: Vec<Spanned<String>>,
    /// Services kept working (allow wins).
    #[serde(default)]
    pub allow_services: Vec<Spanned<String>>,
    /// Who changed them last, and when (RFC 3339), for admins.
    #[serde(default)]
    pub changed_by: Option<String>,
    /// When.
    #[serde(default)]
    pub changed_at: Option<String>,
}

/// A toggles file with its text, for located errors.
#[derive(Debug, Clone)]
pub struct LoadedToggles {
    /// The toggles.
    pub file: TogglesFile,
    /// Where they came from.
    pub source: SourceText,
}

/// Reads the toggles file; a missing file has no toggles.
pub fn read_toggles(path: &Path) -> Result<LoadedToggles, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(ConfigError::unreadable(
                path,
                "the service toggles file",
                &e,
            ));
        }
    };
    let source = SourceText::new(path, text);
    let file: TogglesFile = toml::from_str(&source.text).map_err(|e| source.from_toml(&e))?;
    Ok(LoadedToggles { file, source })
}

/// Whose toggles: a profile's or a school's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A configured profile, by name.
    Profile(String),
    /// A school, by id.
    School(String),
}

impl Target {
    /// `profile:NAME` or `school:ID`.
    pub fn parse(text: &str) -> Option<Target> {
        match text.split_once(':')? {
            ("profile", name) if !name.is_empty() => Some(Target::Profile(name.to_string())),
            ("school", id) if !id.is_empty() => Some(Target::School(id.to_string())),
            _ => None,
        }
    }

    /// The spelling [`Target::parse`] reads.
    pub fn as_string(&self) -> String {
        match self {
            Target::Profile(name) => format!("profile:{name}"),
            Target::School(id) => format!("school:{id}"),
        }
    }

    fn table(&self) -> (&'static str, &str) {
        match self {
            Target::Profile(name) => ("profiles", name),
            Target::School(id) => ("schools", id),
        }
    }
}

const NEW_TOGGLES: &str = "# Services switched off (block_services) or kept working (allow_services) from the web\n\
# console, per profile and per school, on top of schooldns.toml's own. Written by the console.\n";

/// Sets a profile's or school's toggles (replacing the previous ones), keeping the file's
/// comments; locked against a concurrent edit and replaced atomically.
pub fn set_toggles(
    path: &Path,
    target: &Target,
    block: &[String],
    allow: &[String],
    by: &str,
) -> anyhow::Result<()> {
    let _lock = crate::files::lock(path)?;
    let mut doc = crate::files::read_document(path, NEW_TOGGLES, |text| {
        toml::from_str::<TogglesFile>(text)
            .map(|_| ())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    })?;
    let (table, key) = target.table();
    let outer = doc
        .entry(table)
        .or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        })
        .as_table_mut()
        .ok_or_else(|| anyhow::anyhow!("{}: `{table}` is not a table", path.display()))?;
    let list = |names: &[String]| {
        let mut array = toml_edit::Array::new();
        for name in names {
            array.push(name.as_str());
        }
        toml_edit::value(array)
    };
    let mut entry = toml_edit::Table::new();
    entry["block_services"] = list(block);
    entry["allow_services"] = list(allow);
    entry["changed_by"] = toml_edit::value(by);
    entry["changed_at"] = toml_edit::value(crate::exceptions::timestamp(crate::clock::now_ms()));
    outer.insert(key, toml_edit::Item::Table(entry));
    crate::files::replace(path, &doc.to_string(), None)
}
