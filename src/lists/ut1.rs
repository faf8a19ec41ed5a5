//! The UT1 folder layout: `<category>/domains` (plus `urls`, `expressions`, `usage`).
//!
//! A category folder's `domains` file (or its parts `domains.0`, `domains.1`, … and gzip
//! copies) holds one domain per line, each covering its subdomains. `urls` lines block part of
//! a site by path, which a DNS resolver cannot do; they are counted as unsupported so the report
//! is honest about what was not applied. `expressions` and `usage` are squidGuard metadata.

use std::io;
use std::path::{Path, PathBuf};

/// The domain files of a UT1 category folder, sorted by name.
pub fn domain_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if (name == "domains" || name.starts_with("domains.")) && entry.file_type()?.is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "folder has no UT1 `domains` file",
        ));
    }
    Ok(files)
}

/// Counts the URL rules of a UT1 folder (lines of `urls`), which DNS cannot enforce.
pub fn url_rule_count(dir: &Path) -> u64 {
    ["urls", "urls.gz"]
        .iter()
        .filter_map(|f| super::source::count_lines(&dir.join(f)).ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_domain_parts_and_counts_urls() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("domains.1"), "b.example\n").unwrap();
        std::fs::write(dir.path().join("domains.0"), "a.example\n").unwrap();
        std::fs::write(dir.path().join("urls"), "a.example/x\nb.example/y\n").unwrap();
        std::fs::write(dir.path().join("usage"), "black\n").unwrap();
        let files = domain_files(dir.path()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap()).collect();
        assert_eq!(names, ["domains.0", "domains.1"]);
        assert_eq!(url_rule_count(dir.path()), 2);
        let empty = tempfile::tempdir().unwrap();
        assert!(domain_files(empty.path()).is_err());
    }
}
