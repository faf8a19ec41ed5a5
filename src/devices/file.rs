//! The devices file (`config/devices.toml`) as admins and `schooldns devices` write it.
//!
//! ```toml
//! [[devices]]
//! id = "lan-phone"
//! name = "Lan's phone"
//! token = "q3v9…"              # 32 base32 characters from `schooldns devices add`
//! profile = "primary"
//! school = "th-kim-dong"       # optional
//! share_with_school = false    # the school sees this device's hits only if true
//! revoked = false              # `schooldns devices revoke ID` sets it (and `revoked_at`)
//! ```
//!
//! Only syntax and field-level checks live here; references to profiles and schools are
//! resolved when the policy is compiled (`policy::devices`), with the same located errors.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigError, SourceText};

/// The whole devices file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesFile {
    /// One entry per device or family.
    #[serde(default)]
    pub devices: Vec<DeviceEntry>,
}

/// One `[[devices]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Stable id, stored in hit records.
    pub id: Spanned<String>,
    /// Shown to admins and on the setup page.
    pub name: String,
    /// The secret the device sends (DoT server name, DoH path).
    pub token: Spanned<String>,
    /// Age profile applied to the device.
    pub profile: Spanned<String>,
    /// The school the student belongs to, if any.
    #[serde(default)]
    pub school: Option<Spanned<String>>,
    /// Whether that school may see this device's hits.
    #[serde(default)]
    pub share_with_school: bool,
    /// A revoked device's token is refused like an unknown one.
    #[serde(default)]
    pub revoked: bool,
    /// When the entry was made (RFC 3339), for admins.
    #[serde(default)]
    pub created: Option<String>,
    /// When it was revoked (RFC 3339), for admins.
    #[serde(default)]
    pub revoked_at: Option<String>,
    /// Services (catalogue ids) blocked on this device.
    #[serde(default)]
    pub block_services: Vec<Spanned<String>>,
    /// Services allowed on this device (allow wins).
    #[serde(default)]
    pub allow_services: Vec<Spanned<String>>,
    /// The device's time zone for its rules in time (IANA name); default its school's, else
    /// `[hitlog] timezone`.
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// The device's rules in time (a bedtime: `schedule = "night"`, `profile = "sleep"`).
    #[serde(default)]
    pub when: Vec<crate::config::WhenConfig>,
}

/// A parsed devices file together with its text, for located errors.
#[derive(Debug, Clone)]
pub struct LoadedDevices {
    /// The entries.
    pub file: DevicesFile,
    /// Where they came from.
    pub source: SourceText,
}

/// Reads and parses the devices file; syntax errors, unknown keys, bad ids and weak tokens
/// come back with file, line and key.
pub fn read(path: &Path) -> Result<LoadedDevices, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::unreadable(path, "the devices file", &e))?;
    parse(path, text)
}

/// Parses devices-file text that claims to come from `path`.
pub fn parse(path: &Path, text: String) -> Result<LoadedDevices, ConfigError> {
    let source = SourceText::new(path, text);
    let file: DevicesFile = toml::from_str(&source.text).map_err(|e| source.from_toml(&e))?;
    for (i, device) in file.devices.iter().enumerate() {
        let key = |field: &str| format!("devices[{i}].{field}");
        if let Some(problem) = id_problem(device.id.get_ref()) {
            return Err(source.error_at(device.id.span(), &key("id"), problem));
        }
        if let Some(problem) = super::token::problem(device.token.get_ref()) {
            return Err(source.error_at(device.token.span(), &key("token"), problem));
        }
        let earlier = &file.devices[..i];
        if let Some(other) = earlier
            .iter()
            .find(|d| d.id.get_ref() == device.id.get_ref())
        {
            return Err(source.error_at(
                device.id.span(),
                &key("id"),
                format!("device id {:?} is used twice", other.id.get_ref()),
            ));
        }
        if let Some(other) = earlier
            .iter()
            .find(|d| d.token.get_ref() == device.token.get_ref())
        {
            return Err(source.error_at(
                device.token.span(),
                &key("token"),
                format!(
                    "this token is already device {:?}'s; every device needs its own",
                    other.id.get_ref()
                ),
            ));
        }
    }
    Ok(LoadedDevices { file, source })
}

/// Why an id is refused, or `None`: ids go into hit records, CSV files and URLs.
pub fn id_problem(id: &str) -> Option<String> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    (!valid).then(|| format!("device id {id:?} must be 1–64 lowercase letters, digits, `-` or `_`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const TOKEN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn entry(id: &str, token: &str) -> String {
        format!("[[devices]]\nid = \"{id}\"\nname = \"N\"\ntoken = \"{token}\"\nprofile = \"p\"\n")
    }

    #[test]
    fn entries_parse_with_defaults() {
        let text = format!(
            "{}{}share_with_school = true\n",
            entry("a", TOKEN_A),
            entry("b", TOKEN_B)
        );
        let loaded = parse(Path::new("d.toml"), text).unwrap();
        assert_eq!(loaded.file.devices.len(), 2);
        assert!(!loaded.file.devices[0].share_with_school);
        assert!(loaded.file.devices[1].share_with_school);
        assert!(!loaded.file.devices[1].revoked);
    }

    #[test]
    fn mistakes_name_file_line_and_key() {
        let err = parse(Path::new("d.toml"), entry("a", "short")).unwrap_err();
        assert_eq!(
            (err.line, err.key.as_str()),
            (4, "devices[0].token"),
            "{err}"
        );
        let err = parse(Path::new("d.toml"), entry("Lan Phone", TOKEN_A)).unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (2, "devices[0].id"), "{err}");
        let twice = format!("{}{}", entry("a", TOKEN_A), entry("b", TOKEN_A));
        let err = parse(Path::new("d.toml"), twice).unwrap_err();
        assert_eq!(
            (err.line, err.key.as_str()),
            (9, "devices[1].token"),
            "{err}"
        );
        let twice = format!("{}{}", entry("a", TOKEN_A), entry("a", TOKEN_B));
        let err = parse(Path::new("d.toml"), twice).unwrap_err();
        assert_eq!(err.key, "devices[1].id", "{err}");
        let err = parse(
            Path::new("d.toml"),
            format!("{}colour = 1\n", entry("a", TOKEN_A)),
        )
        .unwrap_err();
        assert!(err.key.ends_with("colour"), "{err}");
        assert_eq!(err.file, Path::new("d.toml"));
    }
}
