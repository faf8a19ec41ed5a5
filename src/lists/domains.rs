//! Plain domain lists: one name per line, `#` comments, `*.name` for names below only.
//!
//! This is also the format of UT1 `domains` files and of HaGeZi's `domains/` and `wildcard/`
//! lists. A leading dot (`.example.com`, dnsmasq style) means the name and everything below.

use super::{Action, LineParser, LineProblem, RawRule, Scope};

/// Parser for the plain domains format.
pub struct DomainsParser;

impl LineParser for DomainsParser {
    fn parse_line<'a>(
        &mut self,
        line: &'a str,
        emit: &mut dyn FnMut(RawRule<'a>),
    ) -> Result<(), LineProblem> {
        let line = strip_hash_comment(line).trim();
        if line.is_empty() {
            return Ok(());
        }
        if line.split_whitespace().nth(1).is_some() {
            return Err(LineProblem::Syntax("more than one name on a line"));
        }
        let (name, scope) = if let Some(rest) = line.strip_prefix("*.") {
            (rest, Scope::Below)
        } else if let Some(rest) = line.strip_prefix('.') {
            (rest, Scope::Subtree)
        } else {
            (line, Scope::Subtree)
        };
        emit(RawRule {
            name,
            action: Action::Block,
            scope,
        });
        Ok(())
    }
}

/// Cuts a `#` comment off a line (names never contain `#`).
pub(crate) fn strip_hash_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lists::{Format, parse_str};

    #[test]
    fn plain_and_wildcard_lines() {
        let text = "# header\n\nexample.com\n*.below.org\n.dot.net  # inline\nfoo bar\n";
        let parsed = parse_str(Format::Domains, text);
        let rules: Vec<_> = parsed
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.scope))
            .collect();
        assert_eq!(
            rules,
            [
                ("example.com", Scope::Subtree),
                ("below.org", Scope::Below),
                ("dot.net", Scope::Subtree)
            ]
        );
        assert_eq!(parsed.report.rejected, 1);
        assert_eq!(parsed.report.samples[0].line, 6);
    }
}
