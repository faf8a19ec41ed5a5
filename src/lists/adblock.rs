//! AdBlock / AdGuard DNS filter syntax.
//!
//! DNS can enforce `||name^` (the name and below), `@@||name^` (an exception), `||*.name^`
//! (below only), bare names and hosts-style lines. Everything that needs a browser or a URL –
//! cosmetic rules (`##`), URL rules (`|http://…`, paths), regular expressions, modifiers other
//! than `$important` – is skipped and counted as unsupported, so an admin sees how much of a
//! list DNS cannot apply. Patterns with `*` inside a name and single-label rules (`||012wcom^`,
//! which would act on a whole top-level domain) are rejected.

use super::{Action, LineParser, LineProblem, RawRule, Scope};

/// Parser for AdBlock-style lists.
pub struct AdblockParser;

/// Modifiers that do not change what a DNS filter does.
const HARMLESS_MODIFIERS: &[&str] = &[
    "important",
    "all",
    "document",
    "doc",
    "third-party",
    "3p",
    "first-party",
    "1p",
    "popup",
];

const COSMETIC_MARKERS: &[&str] = &["##", "#@#", "#?#", "#$#", "#%#", "#@$#", "#@?#", "$$"];

impl LineParser for AdblockParser {
    fn parse_line<'a>(
        &mut self,
        line: &'a str,
        emit: &mut dyn FnMut(RawRule<'a>),
    ) -> Result<(), LineProblem> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('!') || line.starts_with('[') {
            return Ok(());
        }
        if COSMETIC_MARKERS.iter().any(|m| line.contains(m)) {
            return Err(LineProblem::Unsupported("cosmetic rule"));
        }
        if line.starts_with('#') {
            return Ok(());
        }
        let (action, rule) = match line.strip_prefix("@@") {
            Some(rest) => (Action::Allow, rest),
            None => (Action::Block, line),
        };
        if rule.starts_with('/') && rule.len() > 1 && rule.ends_with('/') {
            return Err(LineProblem::Unsupported("regular expression"));
        }
        // Hosts-style lines are allowed in AdGuard DNS lists.
        let mut tokens = rule.split_whitespace();
        if let (Some(addr), Some(_)) = (tokens.next(), tokens.next()) {
            if addr.parse::<std::net::IpAddr>().is_ok() {
                for name in rule.split_whitespace().skip(1) {
                    if name.starts_with('#') {
                        break;
                    }
                    emit(RawRule {
                        name,
                        action,
                        scope: Scope::Subtree,
                    });
                }
                return Ok(());
            }
            return Err(LineProblem::Syntax("unexpected whitespace in rule"));
        }
        let (pattern, modifiers) = match rule.split_once('$') {
            Some((p, m)) => (p, Some(m)),
            None => (rule, None),
        };
        if let Some(mods) = modifiers
            && !mods
                .split(',')
                .all(|m| HARMLESS_MODIFIERS.contains(&m.trim().trim_start_matches('~')))
        {
            return Err(LineProblem::Unsupported(
                "modifier DNS filtering cannot apply",
            ));
        }
        let anchored = pattern.strip_prefix("||");
        if anchored.is_none() && pattern.starts_with('|') {
            return Err(LineProblem::Unsupported("URL rule"));
        }
        let body = anchored.unwrap_or(pattern);
        let body = body.strip_suffix('|').unwrap_or(body);
        let body = body.strip_suffix('^').unwrap_or(body);
        if body.contains('/') || body.contains(':') || body.contains('^') {
            return Err(LineProblem::Unsupported("URL rule with a path or port"));
        }
        let (name, scope) = match body.strip_prefix("*.") {
            Some(rest) => (rest, Scope::Below),
            None => (body, Scope::Subtree),
        };
        if name.contains('*') {
            return Err(LineProblem::Unsupported("wildcard inside a name"));
        }
        if anchored.is_some() && !name.contains('.') {
            return Err(LineProblem::Syntax(
                "single-label rule would match a whole top-level domain",
            ));
        }
        emit(RawRule {
            name,
            action,
            scope,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::lists::{Action, Format, Scope, parse_str};

    #[test]
    fn dns_enforceable_rules_are_kept_and_the_rest_counted() {
        let text = "[Adblock Plus]\n! Title: test\n||ads.example.com^\n@@||good.example.com^\n\
                    ||*.below.example^\n||imp.example^$important\nplain.example\n\
                    example.org##.banner\n|http://x.example/path\n||x.example/path^\n\
                    /ads[0-9]+\\./\n||admicro*.vcmedia.vn^\n||adservice.google.*^\n\
                    ||012wcom^\n||t.example^$dnstype=AAAA\n0.0.0.0 hosts.example\n# comment\n";
        let parsed = parse_str(Format::Adblock, text);
        let rules: Vec<_> = parsed
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.action, r.scope))
            .collect();
        assert_eq!(
            rules,
            [
                ("ads.example.com", Action::Block, Scope::Subtree),
                ("good.example.com", Action::Allow, Scope::Subtree),
                ("below.example", Action::Block, Scope::Below),
                ("imp.example", Action::Block, Scope::Subtree),
                ("plain.example", Action::Block, Scope::Subtree),
                ("hosts.example", Action::Block, Scope::Subtree),
            ]
        );
        // cosmetic, |http, path, regex, two inner wildcards, $dnstype
        assert_eq!(parsed.report.unsupported, 7);
        // the single-label rule
        assert_eq!(parsed.report.rejected, 1);
    }
}
