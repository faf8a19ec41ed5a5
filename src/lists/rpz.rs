//! Response Policy Zone files (the subset blocklists use).
//!
//! Understood: `$ORIGIN`, `$TTL`, SOA (also across parenthesised lines) and NS records, `;`
//! comments, and QNAME triggers with the actions `CNAME .` (NXDOMAIN), `CNAME *.` (NODATA),
//! `CNAME rpz-drop.`, local data (A/AAAA/TXT or a CNAME to a walled garden), all of which block,
//! and `CNAME rpz-passthru.`, which allows. `name` covers only the name itself and `*.name` only
//! the names below it, as in RPZ; lists write both to cover a whole domain. IP, NSDNAME, NSIP and
//! client-IP triggers cannot be decided from a query name and are counted as unsupported.

use super::{Action, LineParser, LineProblem, RawRule, Scope};

/// Parser for RPZ zone files; remembers `$ORIGIN` and open SOA parentheses between lines.
#[derive(Default)]
pub struct RpzParser {
    /// Zone origin without the trailing dot, lower case; empty until `$ORIGIN` is seen.
    origin: String,
    /// Open `(` of a multi-line record.
    open_parens: usize,
}

const IGNORED_TRIGGER_SUFFIXES: &[&str] = &["rpz-ip", "rpz-nsip", "rpz-nsdname", "rpz-client-ip"];

fn strip_comment(line: &str) -> &str {
    match line.find(';') {
        Some(i) => &line[..i],
        None => line,
    }
}

fn is_class(token: &str) -> bool {
    ["IN", "CH", "HS", "CS"]
        .iter()
        .any(|c| token.eq_ignore_ascii_case(c))
}

impl RpzParser {
    /// Turns an owner name into the trigger name: relative names are the trigger itself,
    /// absolute names lose the zone origin.
    fn trigger<'a>(&self, owner: &'a str) -> &'a str {
        match owner.strip_suffix('.') {
            None => owner,
            Some(abs) => {
                if !self.origin.is_empty()
                    && abs.len() > self.origin.len()
                    // Bytes, not a str slice: the cut may fall inside a multi-byte character
                    // of a non-ASCII owner (found by the lists fuzz target).
                    && abs.as_bytes()[abs.len() - self.origin.len()..]
                        .eq_ignore_ascii_case(self.origin.as_bytes())
                    && abs.as_bytes()[abs.len() - self.origin.len() - 1] == b'.'
                {
                    &abs[..abs.len() - self.origin.len() - 1]
                } else {
                    abs
                }
            }
        }
    }
}

impl LineParser for RpzParser {
    fn parse_line<'a>(
        &mut self,
        line: &'a str,
        emit: &mut dyn FnMut(RawRule<'a>),
    ) -> Result<(), LineProblem> {
        let text = strip_comment(line);
        if self.open_parens > 0 {
            self.open_parens += text.matches('(').count();
            self.open_parens = self.open_parens.saturating_sub(text.matches(')').count());
            return Ok(());
        }
        let opens = text.matches('(').count();
        let closes = text.matches(')').count();
        self.open_parens = opens.saturating_sub(closes);
        let starts_blank = text.starts_with([' ', '\t']);
        let tokens: Vec<&'a str> = text.split_whitespace().collect();
        let Some(&first) = tokens.first() else {
            return Ok(());
        };
        if first.eq_ignore_ascii_case("$TTL") {
            return Ok(());
        }
        if first.eq_ignore_ascii_case("$ORIGIN") {
            let origin = tokens
                .get(1)
                .ok_or(LineProblem::Syntax("$ORIGIN without a name"))?;
            self.origin = origin.trim_end_matches('.').to_ascii_lowercase();
            return Ok(());
        }
        if first.starts_with('$') {
            return Err(LineProblem::Unsupported("zone file directive"));
        }
        // Records that inherit the previous owner are SOA/NS continuations in these files.
        let (owner, rest) = if starts_blank {
            ("@", &tokens[..])
        } else {
            (first, &tokens[1..])
        };
        let mut rest = rest
            .iter()
            .copied()
            .skip_while(|t| t.bytes().all(|b| b.is_ascii_digit()) || is_class(t));
        let rtype = rest
            .next()
            .ok_or(LineProblem::Syntax("record without a type"))?;
        let rdata = rest.next();
        if rtype.eq_ignore_ascii_case("SOA") || rtype.eq_ignore_ascii_case("NS") {
            return Ok(());
        }
        if owner == "@" {
            return Err(LineProblem::Unsupported("record at the zone apex"));
        }
        let trigger = self.trigger(owner);
        let last_label = trigger.rsplit('.').next().unwrap_or("");
        if IGNORED_TRIGGER_SUFFIXES
            .iter()
            .any(|s| last_label.eq_ignore_ascii_case(s))
        {
            return Err(LineProblem::Unsupported("IP, NS or client trigger"));
        }
        let action = if rtype.eq_ignore_ascii_case("CNAME") {
            match rdata.map(str::to_ascii_lowercase).as_deref() {
                Some("rpz-passthru.") => Action::Allow,
                Some("rpz-tcp-only.") => {
                    return Err(LineProblem::Unsupported("rpz-tcp-only action"));
                }
                Some(_) => Action::Block,
                None => return Err(LineProblem::Syntax("CNAME without a target")),
            }
        } else if ["A", "AAAA", "TXT"]
            .iter()
            .any(|t| rtype.eq_ignore_ascii_case(t))
        {
            Action::Block
        } else {
            return Err(LineProblem::Unsupported("record type"));
        };
        let (name, scope) = match trigger.strip_prefix("*.") {
            Some(below) => (below, Scope::Below),
            None => (trigger, Scope::Exact),
        };
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

    /// Found by `scripts/fuzz lists`: an absolute owner whose last bytes are inside a
    /// multi-byte character used to panic on a str slice.
    #[test]
    fn non_ascii_owners_never_panic() {
        let parsed = parse_str(
            Format::Rpz,
            "$ORIGIN le\n\u{fffd}.\u{fffd}. CNAME .\nwww.thử.le. CNAME .\n",
        );
        assert!(parsed.report.lines >= 2);
    }

    #[test]
    fn rpz_records_become_rules() {
        let text = "$TTL 3600\n@ SOA localhost. root.localhost. (\n  1 ; serial\n  3600 )\n\
                    \tNS localhost.\n; comment\nbad.example CNAME .\n*.bad.example CNAME .\n\
                    nodata.example 300 IN CNAME *.\nok.example CNAME rpz-passthru.\n\
                    $ORIGIN rpz.local.\nabs.example.rpz.local. CNAME .\n\
                    32.1.2.0.10.rpz-ip CNAME .\nlocal.example A 10.0.0.1\nbroken.example\n";
        let parsed = parse_str(Format::Rpz, text);
        let rules: Vec<_> = parsed
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.action, r.scope))
            .collect();
        assert_eq!(
            rules,
            [
                ("bad.example", Action::Block, Scope::Exact),
                ("bad.example", Action::Block, Scope::Below),
                ("nodata.example", Action::Block, Scope::Exact),
                ("ok.example", Action::Allow, Scope::Exact),
                ("abs.example", Action::Block, Scope::Exact),
                ("local.example", Action::Block, Scope::Exact),
            ]
        );
        assert_eq!(parsed.report.unsupported, 1);
        assert_eq!(parsed.report.rejected, 1);
        assert_eq!(parsed.report.samples[1].line, 15);
    }
}
