//! Hosts files: an address, then one or more names, `#` comments anywhere.
//!
//! The address is ignored (a hosts list means "block these names" whatever it maps them to).
//! The standard preamble names (`localhost`, `broadcasthost`, `ip6-*`, …) are not rules and are
//! skipped without counting. A line that is a bare name is accepted too: hand-edited hosts
//! lists often contain a few.

use super::domains::strip_hash_comment;
use super::{Action, LineParser, LineProblem, RawRule, Scope};

/// Parser for hosts files.
pub struct HostsParser;

/// Names every hosts file maps to itself; never blocklist entries.
const PREAMBLE: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

fn is_address(token: &str) -> bool {
    // Link-local addresses carry a zone (`fe80::1%lo0`).
    let token = token.split('%').next().unwrap_or(token);
    token.parse::<std::net::IpAddr>().is_ok()
}

impl LineParser for HostsParser {
    fn parse_line<'a>(
        &mut self,
        line: &'a str,
        emit: &mut dyn FnMut(RawRule<'a>),
    ) -> Result<(), LineProblem> {
        let mut tokens = strip_hash_comment(line).split_whitespace();
        let Some(first) = tokens.next() else {
            return Ok(());
        };
        let names: Vec<&'a str> = if is_address(first) {
            tokens.collect()
        } else {
            let rest: Vec<&str> = tokens.collect();
            if !rest.is_empty() {
                return Err(LineProblem::Syntax(
                    "expected an IP address before the names",
                ));
            }
            vec![first]
        };
        if names.is_empty() && is_address(first) {
            return Err(LineProblem::Syntax("address without a name"));
        }
        for name in names {
            if PREAMBLE.iter().any(|p| name.eq_ignore_ascii_case(p)) {
                continue;
            }
            emit(RawRule {
                name,
                action: Action::Block,
                scope: Scope::Subtree,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::lists::{Format, parse_str};

    #[test]
    fn hosts_lines_with_preamble_comments_and_several_names() {
        let text = "127.0.0.1 localhost\n::1 localhost ip6-localhost\nfe80::1%lo0 localhost\n\
                    0.0.0.0 0.0.0.0\n0.0.0.0 ads.example.com #[WebBug]\n\t# indented comment\n\
                    127.0.0.1\ta.example b.example  \r\n:: v6.example\nbare.example\n\
                    0.0.0.0\nnot an address line\n";
        let parsed = parse_str(Format::Hosts, text);
        let names: Vec<_> = parsed.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ads.example.com",
                "a.example",
                "b.example",
                "v6.example",
                "bare.example"
            ]
        );
        assert_eq!(parsed.report.rejected, 2);
        assert_eq!(parsed.report.samples[0].line, 10);
        assert_eq!(parsed.report.samples[1].line, 11);
    }
}
