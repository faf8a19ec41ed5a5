//! Safe edits of the files a running server watches (the devices file, the console's users,
//! exceptions and requests files): reading them for an edit with comments kept, an exclusive lock on a sibling `.lock` file so that two admins cannot interleave
//! their edits, and an atomic replace (a temporary file beside it, `fsync`, `rename`, `fsync` of
//! the folder), so the server's watcher never reads a half-written file and a crash leaves
//! either the old file or the new one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Holds an exclusive lock on `<file>.lock` until dropped.
pub fn lock(path: &Path) -> anyhow::Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", PathBuf::from(&lock_path).display()))?;
    lock.lock()
        .with_context(|| format!("locking {}", PathBuf::from(&lock_path).display()))?;
    Ok(lock)
}

/// Replaces `path` with `text` atomically; `mode` sets the new file's permissions (a file of
/// secrets is written `0o600`).
pub fn replace(path: &Path, text: &str, mode: Option<u32>) -> anyhow::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().context("the path has no file name")?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = folder.join(temp_name);
    let result = (|| {
        let mut out = File::create(&temp)?;
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::PermissionsExt;
            out.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&temp, path)?;
        // The rename itself must survive a crash: sync the folder entry.
        File::open(&folder)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Reads a TOML file the server and the CLI edit in place (comments kept): `new_file` when it
/// does not exist yet. `check` parses it first with the file's own checking parser, so a
/// broken file is reported with its line rather than edited.
pub fn read_document(
    path: &Path,
    new_file: &str,
    check: impl FnOnce(&str) -> anyhow::Result<()>,
) -> anyhow::Result<toml_edit::DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_file.to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    check(&text)?;
    text.parse::<toml_edit::DocumentMut>()
        .with_context(|| format!("parsing {}", path.display()))
}

/// The document's `[[key]]` array of tables, created when absent.
pub fn tables<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    key: &str,
) -> anyhow::Result<&'a mut toml_edit::ArrayOfTables> {
    doc.entry(key)
        .or_insert(toml_edit::Item::ArrayOfTables(
            toml_edit::ArrayOfTables::new(),
        ))
        .as_array_of_tables_mut()
        .with_context(|| format!("`{key}` must be an array of [[{key}]] tables"))
}
