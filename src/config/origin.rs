//! A config origin's files as an instance serves them (`[sync]`): the district's config from
//! the instance's copy of the origin, followed by the instance's own file, which holds only
//! this machine's tables ([`MACHINE_TABLES`]). Errors name whichever file the line is in.
//!
//! Relative paths in the origin's files are relative to the copy: `schooldns` works in that
//! folder (see [`crate::sync`]), so the instance's own file gives absolute paths.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, MACHINE_TABLES, SourceText, Tail};

/// Set (by the sync thread, for the `schooldns check` it runs on a pulled version before
/// swapping it in) to read the origin's files from this folder instead of `checkout`.
pub const TREE_ENV: &str = "SCHOOLDNS_ORIGIN_TREE";

/// The folder holding the origin's files for a config with `[sync] origin`, checked.
pub fn tree(config: &Config, source: &SourceText) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = std::env::var_os(TREE_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let Some(checkout) = &config.sync.checkout else {
        return Err(source.error(
            "sync.checkout",
            "`origin` needs `checkout`: the absolute path of the folder for this instance's \
             copy (for example /var/lib/schooldns/origin)",
        ));
    };
    if !checkout.get_ref().is_absolute() {
        return Err(source.error_at(checkout.span(), "sync.checkout", "must be an absolute path"));
    }
    Ok(checkout.get_ref().clone())
}

/// With `[sync] origin` in `local_text`: the origin's config followed by it, as one source
/// whose tail is `local`. `None` without an origin (or when the file does not parse: the
/// normal parse reports that).
pub fn overlay(local: &Path, local_text: &str) -> Result<Option<SourceText>, ConfigError> {
    let Ok(config) = toml::from_str::<Config>(local_text) else {
        return Ok(None);
    };
    if config.sync.origin.is_none() {
        return Ok(None);
    }
    let local_source = SourceText::new(local, local_text.to_string());
    let table: toml::Table = toml::from_str(local_text).map_err(|e| local_source.from_toml(&e))?;
    for (key, value) in &table {
        if !MACHINE_TABLES.contains(&key.as_str()) || !value.is_table() {
            let at = local_text.find(&format!("[{key}")).unwrap_or(0);
            return Err(local_source.error_at(
                at..at,
                key,
                format!(
                    "with [sync] origin, this file holds only this machine's tables ({}); \
                     `{key}` belongs in the origin's config",
                    MACHINE_TABLES.join(", ")
                ),
            ));
        }
    }
    let dir = tree(&config, &local_source)?;
    let origin_path = dir.join(&config.sync.config);
    let origin_text = std::fs::read_to_string(&origin_path).map_err(|e| {
        ConfigError::unreadable(&origin_path, "the origin's config (not pulled yet?)", &e)
    })?;
    let origin_source = SourceText::new(&origin_path, origin_text.clone());
    let origin_table: toml::Table =
        toml::from_str(&origin_text).map_err(|e| origin_source.from_toml(&e))?;
    for key in MACHINE_TABLES {
        if origin_table.contains_key(key) {
            let at = origin_text.find(&format!("[{key}")).unwrap_or(0);
            return Err(origin_source.error_at(
                at..at,
                key,
                format!(
                    "[{key}] is each instance's own: it belongs in the file given to --config \
                     on each resolver, not in the origin"
                ),
            ));
        }
    }
    let mut text = origin_text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    let start = text.len();
    let lines_before = text.matches('\n').count();
    text.push_str(local_text);
    let mut source = SourceText::new(&origin_path, text);
    source.tail = Some(Tail {
        start,
        lines_before,
        file: local.to_path_buf(),
    });
    Ok(Some(source))
}

#[cfg(test)]
mod tests {
    /// Errors in either part name their own file and line.
    #[test]
    fn errors_name_the_file_they_are_in() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("schooldns.toml"),
            "[profiles.p]\nbogus = 1\n",
        )
        .unwrap();
        let local = dir.path().join("local.toml");
        let text = format!(
            "[sync]\norigin = \"/srv/origin.git\"\ncheckout = \"{}\"\n[hitlog]\nretention_days = \"x\"\n",
            dir.path().display()
        );
        std::fs::write(&local, &text).unwrap();
        let err = crate::config::LoadedConfig::read(&local).unwrap_err();
        assert_eq!(
            (err.file.as_path(), err.line),
            (local.as_path(), 5),
            "{err}"
        );
        let text = text.replace("\"x\"", "30");
        std::fs::write(&local, &text).unwrap();
        // The origin's profile has a key that does not exist: its file and line.
        let err = crate::config::LoadedConfig::read(&local).unwrap_err();
        assert_eq!(err.file, dir.path().join("schooldns.toml"), "{err}");
        assert_eq!(err.line, 2, "{err}");
        // A machine table in the origin is refused.
        std::fs::write(
            dir.path().join("schooldns.toml"),
            "[profiles.p]\n[server]\n",
        )
        .unwrap();
        let err = crate::config::LoadedConfig::read(&local).unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (2, "server"), "{err}");
        // A policy table in the instance's file is refused.
        std::fs::write(dir.path().join("schooldns.toml"), "[profiles.p]\n").unwrap();
        std::fs::write(&local, format!("{text}[profiles.q]\n")).unwrap();
        let err = crate::config::LoadedConfig::read(&local).unwrap_err();
        assert_eq!(
            (err.file.as_path(), err.key.as_str()),
            (local.as_path(), "profiles"),
            "{err}"
        );
        std::fs::write(&local, &text).unwrap();
        crate::config::LoadedConfig::read(&local).unwrap();
    }
}
