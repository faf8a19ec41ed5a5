//! Reading list files: plain or gzip, BOM, CRLF, format detection, per-line normalisation.
//!
//! [`read_list`] streams a file line by line (a 100 MB list never sits in memory whole), runs
//! the format's [`LineParser`](super::LineParser), normalises every name with [`normalize_entry`] and hands each
//! accepted rule to a sink. Problems are counted in the [`ParseReport`]; only an unreadable file
//! is an error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{Action, Format, LineProblem, ParseReport, RawRule, Scope};
use crate::name::normalize_entry;

/// A list that could not be read at all (bad lines are not errors; see [`ParseReport`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot read list {}: {source}", file.display())]
pub struct ListError {
    /// The file or folder.
    pub file: PathBuf,
    /// The underlying I/O error.
    #[source]
    pub source: io::Error,
}

/// One accepted, normalised rule as handed to a sink.
#[derive(Debug, Clone, Copy)]
pub struct Rule<'a> {
    /// Normalised name (lower case, punycode, no trailing dot).
    pub name: &'a str,
    /// 1-based line number.
    pub line: u32,
    /// Block or allow.
    pub action: Action,
    /// Which names it covers.
    pub scope: Scope,
}

fn open(path: &Path) -> io::Result<Box<dyn Read>> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a folder without UT1 `domains` files",
        ));
    }
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Ok(Box::new(file))
    }
}

/// Lines in a file (plain or gzip), for files that are counted, not parsed (UT1 `urls`).
pub fn count_lines(path: &Path) -> io::Result<u64> {
    let mut reader = BufReader::new(open(path)?);
    let (mut lines, mut raw) = (0u64, Vec::new());
    while reader.read_until(b'\n', &mut raw)? > 0 {
        lines += 1;
        raw.clear();
    }
    Ok(lines)
}

/// Reads one list file, detecting its format unless `format` is given, and calls `sink` for
/// every accepted rule.
pub fn read_list(
    path: &Path,
    format: Option<Format>,
    sink: &mut dyn FnMut(Rule<'_>),
) -> Result<ParseReport, ListError> {
    let err = |source| ListError {
        file: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, open(path).map_err(err)?);
    let format = match format {
        Some(f) => f,
        None => {
            let head = reader.fill_buf().map_err(err)?;
            let head = String::from_utf8_lossy(head);
            Format::detect(head.lines())
        }
    };
    let mut report = ParseReport {
        file: path.to_path_buf(),
        format: Some(format),
        ..ParseReport::default()
    };
    let mut parser = format.parser();
    let mut raw = Vec::with_capacity(256);
    let mut name = String::with_capacity(256);
    loop {
        raw.clear();
        if reader.read_until(b'\n', &mut raw).map_err(err)? == 0 {
            break;
        }
        report.lines += 1;
        let line_no = u32::try_from(report.lines).unwrap_or(u32::MAX);
        match std::str::from_utf8(&raw) {
            Ok(text) => parse_one(&mut *parser, text, line_no, &mut name, &mut report, sink),
            Err(_) => {
                let lossy = String::from_utf8_lossy(&raw).into_owned();
                report.record(
                    line_no,
                    LineProblem::Syntax("not valid UTF-8"),
                    lossy.trim_end(),
                );
            }
        }
    }
    if let Some(why) = report.not_a_list() {
        return Err(err(io::Error::new(io::ErrorKind::InvalidData, why)));
    }
    Ok(report)
}

/// Parses one line (with or without its line ending) into the sink and the report.
fn parse_one(
    parser: &mut dyn super::LineParser,
    text: &str,
    line_no: u32,
    name: &mut String,
    report: &mut ParseReport,
    sink: &mut dyn FnMut(Rule<'_>),
) {
    let mut text = text.strip_suffix('\n').unwrap_or(text);
    text = text.strip_suffix('\r').unwrap_or(text);
    if line_no == 1 {
        text = text.strip_prefix('\u{feff}').unwrap_or(text);
    }
    let mut raw_rules: [Option<RawRule<'_>>; 8] = [None; 8];
    let mut extra: Vec<RawRule<'_>> = Vec::new();
    let mut count = 0usize;
    let outcome = parser.parse_line(text, &mut |rule| {
        if count < raw_rules.len() {
            raw_rules[count] = Some(rule);
        } else {
            extra.push(rule);
        }
        count += 1;
    });
    if let Err(problem) = outcome {
        report.record(line_no, problem, text);
        return;
    }
    for rule in raw_rules.iter().flatten().chain(extra.iter()) {
        match normalize_entry(rule.name, name) {
            Ok(()) => {
                report.accepted += 1;
                sink(Rule {
                    name,
                    line: line_no,
                    action: rule.action,
                    scope: rule.scope,
                });
            }
            Err(e) => report.record(line_no, LineProblem::Name(e), text),
        }
    }
}

/// An owned rule, as collected by [`parse_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRule {
    /// Normalised name.
    pub name: String,
    /// 1-based line number.
    pub line: u32,
    /// Block or allow.
    pub action: Action,
    /// Which names it covers.
    pub scope: Scope,
}

/// The result of parsing a list held in memory.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// Accepted rules in file order.
    pub rules: Vec<OwnedRule>,
    /// Counts and samples of problem lines.
    pub report: ParseReport,
}

/// Parses a whole list held in a string: the pure entry point used by tests and tools.
pub fn parse_str(format: Format, text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    parsed.report.format = Some(format);
    let mut parser = format.parser();
    let mut name = String::new();
    let mut rules = Vec::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        parsed.report.lines += 1;
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        parse_one(
            &mut *parser,
            line,
            line_no,
            &mut name,
            &mut parsed.report,
            &mut |r| {
                rules.push(OwnedRule {
                    name: r.name.to_string(),
                    line: r.line,
                    action: r.action,
                    scope: r.scope,
                })
            },
        );
    }
    parsed.rules = rules;
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bom_crlf_and_gzip_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let text = "\u{feff}Example.COM.\r\nxn--bcher-kva.de\r\n1.2.3.4\r\nbücher.de\r\n";
        let plain = dir.path().join("list.txt");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.path().join("list.txt.gz");
        let mut enc =
            flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        for path in [&plain, &gz] {
            let mut names = Vec::new();
            let report = read_list(path, None, &mut |r| names.push(r.name.to_string())).unwrap();
            assert_eq!(
                names,
                ["example.com", "xn--bcher-kva.de", "xn--bcher-kva.de"]
            );
            assert_eq!((report.lines, report.accepted, report.rejected), (4, 3, 1));
            assert_eq!(report.samples[0].line, 3);
            assert_eq!(report.format, Some(Format::Domains));
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = read_list(Path::new("/nonexistent/list.txt"), None, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/list.txt"), "{err}");
    }
}
