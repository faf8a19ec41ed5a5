//! Blocklist files in every format admins actually have, turned into normalised rules.
//!
//! One pure parser per format ([`hosts`], [`domains`], [`adblock`], [`rpz`]) takes one line of
//! text and emits raw rules; [`ut1`] knows the UT1 folder layout; [`source`] reads files (plain
//! or gzip, BOM, CRLF) and drives a parser line by line, normalising each name and keeping a
//! [`ParseReport`]. A bad line is counted and reported with its line number and never aborts a
//! load. Nothing here knows about categories, profiles, sockets or the running server.

pub mod adblock;
pub mod domains;
pub mod hosts;
pub mod rpz;
pub mod source;
pub mod ut1;

use std::fmt;
use std::path::PathBuf;

pub use source::{ListError, parse_str, read_list};

/// What a rule does to the names it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// The names are blocked (if the category is blocked by the profile).
    Block,
    /// The names are allowed even if another rule blocks them (`@@`, RPZ passthru).
    Allow,
}

/// Which names a rule covers, relative to its entry name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The name and every name below it (`example.com`, `||example.com^`).
    Subtree,
    /// Only names strictly below it (`*.example.com`).
    Below,
    /// Only the name itself (an RPZ owner name without its `*.` twin).
    Exact,
}

impl Scope {
    /// How the entry is written back for people: `*.name` for [`Scope::Below`].
    pub fn render(self, name: &str) -> String {
        match self {
            Scope::Below => format!("*.{name}"),
            Scope::Subtree | Scope::Exact => name.to_string(),
        }
    }
}

/// One rule as a parser emits it, before normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRule<'a> {
    /// The name as written (any case, maybe UTF-8, maybe with a trailing dot).
    pub name: &'a str,
    /// Block or allow.
    pub action: Action,
    /// Which names it covers.
    pub scope: Scope,
}

/// Why a parser could not use a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// The line is not valid for the format (a reason for people).
    Syntax(&'static str),
    /// The line is valid for its format but means something DNS cannot enforce (cosmetic or
    /// URL rules, regexes, RPZ IP triggers). Counted separately from errors.
    Unsupported(&'static str),
    /// The name is not a usable domain name.
    Name(crate::name::NameError),
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineProblem::Syntax(why) => f.write_str(why),
            LineProblem::Unsupported(why) => write!(f, "unsupported: {why}"),
            LineProblem::Name(e) => e.fmt(f),
        }
    }
}

/// A line-oriented parser for one list format.
///
/// `parse_line` gets one line without its line ending (and without a BOM) and calls `emit`
/// for each rule on it; blank and comment lines emit nothing and return `Ok`. A parser may
/// keep state between lines (RPZ's `$ORIGIN`).
pub trait LineParser {
    /// Parses one line.
    fn parse_line<'a>(
        &mut self,
        line: &'a str,
        emit: &mut dyn FnMut(RawRule<'a>),
    ) -> Result<(), LineProblem>;
}

/// The list formats schooldns reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One domain per line; `*.name` for names below only.
    Domains,
    /// Hosts file: an address followed by one or more names.
    Hosts,
    /// AdBlock / AdGuard DNS filter syntax.
    Adblock,
    /// Response Policy Zone master file.
    Rpz,
}

impl Format {
    /// The format's name as shown to admins.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Domains => "domains",
            Format::Hosts => "hosts",
            Format::Adblock => "adblock",
            Format::Rpz => "rpz",
        }
    }

    /// A fresh parser for this format.
    pub fn parser(self) -> Box<dyn LineParser> {
        match self {
            Format::Domains => Box::new(domains::DomainsParser),
            Format::Hosts => Box::new(hosts::HostsParser),
            Format::Adblock => Box::new(adblock::AdblockParser),
            Format::Rpz => Box::new(rpz::RpzParser::default()),
        }
    }

    /// Guesses the format from the first meaningful lines of a file.
    ///
    /// Markers are unambiguous: an `[Adblock` header or `||`/`@@` rules mean AdBlock; `$TTL`,
    /// `$ORIGIN`, an SOA or a `CNAME` record mean RPZ; an IP address followed by a name means a
    /// hosts file. Anything else is read as one domain per line.
    pub fn detect<'a>(lines: impl Iterator<Item = &'a str>) -> Format {
        for line in lines
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .take(200)
        {
            if line.starts_with("[Adblock")
                || line.starts_with("[AdGuard")
                || line.starts_with("||")
                || line.starts_with("@@")
                || line.starts_with('!')
            {
                return Format::Adblock;
            }
            if line.starts_with(';') {
                continue;
            }
            if line.starts_with("$TTL") || line.starts_with("$ORIGIN") {
                return Format::Rpz;
            }
            let mut tokens = line.split_whitespace();
            let first = tokens.next().unwrap_or("");
            let rest: Vec<&str> = tokens.collect();
            if rest
                .iter()
                .any(|t| t.eq_ignore_ascii_case("SOA") || t.eq_ignore_ascii_case("CNAME"))
            {
                return Format::Rpz;
            }
            if !rest.is_empty() && first.parse::<std::net::IpAddr>().is_ok() {
                return Format::Hosts;
            }
            if rest.is_empty() && first.parse::<std::net::IpAddr>().is_err() {
                return Format::Domains;
            }
        }
        Format::Domains
    }
}

/// A line that could not be used, kept for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIssue {
    /// 1-based line number in the file.
    pub line: u32,
    /// What was wrong.
    pub problem: LineProblem,
    /// The line as written (shortened to 120 bytes).
    pub text: String,
}

/// How many problem lines a report keeps verbatim; all of them are counted.
pub const REPORT_SAMPLES: usize = 5;

/// Fewer invalid lines than this never make a file "not a list": a short hand-written list
/// with two typos is still a list, reported line by line.
pub const MIN_INVALID_FOR_NOT_A_LIST: u64 = 10;

/// What happened while reading one list file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// The file (or UT1 folder file) that was read.
    pub file: PathBuf,
    /// Detected or declared format.
    pub format: Option<Format>,
    /// Lines read, comments and blanks included.
    pub lines: u64,
    /// Rules accepted (a hosts line with three names counts three).
    pub accepted: u64,
    /// Lines rejected as invalid (bad names, bad syntax).
    pub rejected: u64,
    /// Lines skipped as valid but not enforceable by DNS (cosmetic rules, URLs with paths).
    pub unsupported: u64,
    /// Of the rejected lines, those that name an IP address instead of a domain (hosts and
    /// domain lists carry some; they say nothing about whether the file is a list).
    pub ip_addresses: u64,
    /// The first [`REPORT_SAMPLES`] rejected or unsupported lines.
    pub samples: Vec<LineIssue>,
}

impl ParseReport {
    /// Records a problem line: always counted, kept verbatim only while there is room.
    pub fn record(&mut self, line: u32, problem: LineProblem, text: &str) {
        match problem {
            LineProblem::Unsupported(_) => self.unsupported += 1,
            LineProblem::Name(crate::name::NameError::IpAddress) => {
                self.rejected += 1;
                self.ip_addresses += 1;
            }
            _ => self.rejected += 1,
        }
        if self.samples.len() < REPORT_SAMPLES {
            let mut end = text.len().min(120);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.samples.push(LineIssue {
                line,
                problem,
                text: text[..end].to_string(),
            });
        }
    }

    /// Why this file is not a list at all, if it is not: more invalid rule lines than valid
    /// ones (IP-address entries and rules DNS cannot apply do not count either way). A binary
    /// file or a web page dropped in place of a list yields a handful of junk "names" among
    /// thousands of bad lines; accepting it would unblock every name the real list held.
    pub fn not_a_list(&self) -> Option<String> {
        let invalid = self.rejected - self.ip_addresses;
        if invalid < MIN_INVALID_FOR_NOT_A_LIST || invalid <= self.accepted {
            return None;
        }
        let first = self
            .samples
            .iter()
            .find(|s| !matches!(s.problem, LineProblem::Unsupported(_)))
            .map(|s| format!(" (line {}: {})", s.line, s.problem))
            .unwrap_or_default();
        Some(format!(
            "not a list: {invalid} invalid lines against {} valid entries{first}",
            self.accepted
        ))
    }

    /// Adds another file's counts into this one (samples up to the limit).
    pub fn merge(&mut self, other: &ParseReport) {
        self.lines += other.lines;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.ip_addresses += other.ip_addresses;
        self.unsupported += other.unsupported;
        for s in &other.samples {
            if self.samples.len() < REPORT_SAMPLES {
                self.samples.push(s.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_from_content() {
        let cases = [
            ("[Adblock Plus]\n! comment\n||a.com^\n", Format::Adblock),
            ("||a.com^\n", Format::Adblock),
            (
                "$TTL 3600\n@ SOA localhost. root.localhost. 1 2 3 4 5\n",
                Format::Rpz,
            ),
            ("; rpz\na.com CNAME .\n", Format::Rpz),
            (
                "# hosts\n127.0.0.1 localhost\n0.0.0.0 a.com\n",
                Format::Hosts,
            ),
            ("a.com\nb.com\n", Format::Domains),
            ("*.a.com\n", Format::Domains),
            ("1.2.3.4\na.com\n", Format::Domains),
        ];
        for (text, want) in cases {
            assert_eq!(Format::detect(text.lines()), want, "{text:?}");
        }
    }
}
