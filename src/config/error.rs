//! `ConfigError`: every configuration problem names the file, the line and the key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A configuration problem, located for the admin who has to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, 0 when the problem is not tied to a line (an unreadable file).
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// Dotted key path, e.g. `profiles.primary.block`; empty when unknown.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// A file that cannot be read: `cannot read WHAT: why`, tied to no line.
    pub fn unreadable(file: &Path, what: &str, err: &std::io::Error) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read {what}: {err}"),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The text of a config file, kept to turn byte spans into lines and keys.
#[derive(Debug, Clone)]
pub struct SourceText {
    /// Path as given.
    pub file: PathBuf,
    /// Whole file contents.
    pub text: String,
    /// With a config origin (`[sync]`): the text is the origin's config followed by the
    /// instance's own file, which starts at this byte and is reported as its own file.
    pub tail: Option<Tail>,
}

/// The instance's own file appended to an origin's config (see [`SourceText::tail`]).
#[derive(Debug, Clone)]
pub struct Tail {
    /// Byte offset where it starts.
    pub start: usize,
    /// Lines before it (the origin's).
    pub lines_before: usize,
    /// Its path.
    pub file: PathBuf,
}

/// Tables that belong to each instance's own file, not to the shared origin.
pub const MACHINE_TABLES: [&str; 5] = ["server", "admin", "hitlog", "tls", "sync"];

impl SourceText {
    /// Wraps a file's text.
    pub fn new(file: &Path, text: String) -> SourceText {
        SourceText {
            file: file.to_path_buf(),
            text,
            tail: None,
        }
    }

    /// 1-based line and column of a byte offset.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// An error at a span, under an explicit key path.
    pub fn error_at(
        &self,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let (file, line, column) = self.place(span.start);
        ConfigError {
            file,
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// The file, line and column of a byte offset (the instance's own file past [`Tail`]).
    fn place(&self, offset: usize) -> (PathBuf, usize, usize) {
        let (line, column) = self.locate(offset);
        match &self.tail {
            Some(tail) if offset >= tail.start => {
                (tail.file.clone(), line - tail.lines_before, column)
            }
            _ => (self.file.clone(), line, column),
        }
    }

    /// An error not tied to a place in the file.
    pub fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let machine = MACHINE_TABLES.contains(&key.split('.').next().unwrap_or_default());
        ConfigError {
            file: match &self.tail {
                Some(tail) if machine => tail.file.clone(),
                _ => self.file.clone(),
            },
            line: 0,
            column: 0,
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Converts a TOML error, working out the key path from the table header above the error
    /// and the key on its line (the toml crate reports a span and a message, not a path).
    pub fn from_toml(&self, err: &toml::de::Error) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let (file, line, column) = self.place(span.start);
        ConfigError {
            file,
            line,
            column,
            key: self.key_at(span.start),
            message: err.message().trim().to_string(),
        }
    }

    fn key_at(&self, offset: usize) -> String {
        let offset = offset.min(self.text.len());
        let line_start = self.text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[offset..]
            .find('\n')
            .map_or(self.text.len(), |i| offset + i);
        let line = self.text[line_start..line_end].trim();
        let header_of = |l: &str| {
            let l = l.trim();
            l.starts_with('[')
                .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        };
        if let Some(header) = header_of(line) {
            return header;
        }
        let table = self.text[..line_start]
            .lines()
            .rev()
            .find_map(header_of)
            .unwrap_or_default();
        let key = line
            .split_once('=')
            .map(|(k, _)| k.trim().trim_matches('"').to_string())
            .unwrap_or_default();
        match (table.is_empty(), key.is_empty()) {
            (_, true) => table,
            (true, false) => key,
            (false, false) => format!("{table}.{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_errors_name_line_and_key() {
        let text = "[server]\nudp = []\n\n[profiles.primary]\nblock = []\nbogus = 1\n";
        let src = SourceText::new(Path::new("x.toml"), text.to_string());
        let err = toml::from_str::<toml::Table>("a = ").unwrap_err();
        let _ = src.from_toml(&err);
        assert_eq!(
            src.key_at(text.find("bogus").unwrap()),
            "profiles.primary.bogus"
        );
        assert_eq!(src.key_at(text.find("udp").unwrap()), "server.udp");
        assert_eq!(src.key_at(1), "server");
        assert_eq!(src.locate(text.find("bogus").unwrap()), (6, 1));
    }
}
