//! Every list format on real excerpts (see `tests/fixtures/README.md`).

use std::collections::BTreeSet;

use schooldns::lists::source::OwnedRule;
use schooldns::lists::{Action, Format, LineProblem, Scope, parse_str, read_list};
use schooldns::name::NameError;

use crate::common::fixture;

fn parse_fixture(name: &str) -> (Format, schooldns::lists::source::Parsed) {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let format = Format::detect(text.lines());
    (format, parse_str(format, &text))
}

fn names(rules: &[OwnedRule]) -> BTreeSet<String> {
    rules.iter().map(|r| r.name.clone()).collect()
}

#[test]
fn stevenblack_hosts_preamble_is_not_a_rule() {
    let (format, parsed) = parse_fixture("stevenblack-hosts.txt");
    assert_eq!(format, Format::Hosts);
    let got = names(&parsed.rules);
    assert!(got.contains("ck.getcookiestxt.com"));
    assert!(got.contains("webmail-who-int.000webhostapp.com"));
    for preamble in ["localhost", "broadcasthost", "ip6-allnodes", "local"] {
        assert!(!got.contains(preamble), "{preamble}");
    }
    assert_eq!(parsed.report.rejected, 0, "{:?}", parsed.report.samples);
    let listed = std::fs::read_to_string(fixture("stevenblack-hosts.txt"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("0.0.0.0 ") && *l != "0.0.0.0 0.0.0.0")
        .count();
    assert_eq!(parsed.rules.len(), listed);
}

#[test]
fn stevenblack_windows_section_with_tabs_is_all_comments() {
    let text = std::fs::read_to_string(fixture("stevenblack-windows-section.txt")).unwrap();
    assert!(text.contains('\t'));
    let parsed = parse_str(Format::Hosts, &text);
    assert!(parsed.rules.is_empty(), "{:?}", parsed.rules);
    assert_eq!(parsed.report.rejected, 0);
}

/// HaGeZi publishes one list in several syntaxes: they must cover the same names.
#[test]
fn hagezi_social_is_the_same_list_in_adblock_rpz_and_wildcard_syntax() {
    let (f1, adblock) = parse_fixture("hagezi-social.adblock");
    let (f2, rpz) = parse_fixture("hagezi-social.rpz");
    let (f3, wildcard) = parse_fixture("hagezi-social.wildcard");
    assert_eq!(
        (f1, f2, f3),
        (Format::Adblock, Format::Rpz, Format::Domains)
    );
    for parsed in [&adblock, &rpz, &wildcard] {
        assert_eq!(parsed.report.rejected, 0, "{:?}", parsed.report.samples);
        assert_eq!(parsed.report.unsupported, 0, "{:?}", parsed.report.samples);
    }
    let subtree = names(&adblock.rules);
    assert_eq!(subtree.len(), 898);
    assert!(adblock.rules.iter().all(|r| r.scope == Scope::Subtree));
    // RPZ writes every name twice: the name itself and `*.name`.
    let exact: BTreeSet<_> = rpz
        .rules
        .iter()
        .filter(|r| r.scope == Scope::Exact)
        .map(|r| r.name.clone())
        .collect();
    let below: BTreeSet<_> = rpz
        .rules
        .iter()
        .filter(|r| r.scope == Scope::Below)
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(exact, subtree);
    assert_eq!(below, subtree);
    // The wildcard syntax lists `*.name`: names below only, per our matching semantics.
    assert!(wildcard.rules.iter().all(|r| r.scope == Scope::Below));
    assert_eq!(names(&wildcard.rules), subtree);
}

#[test]
fn hagezi_allowlist_exceptions_are_allow_rules() {
    let (format, parsed) = parse_fixture("hagezi-whitelist-referral.adblock");
    assert_eq!(format, Format::Adblock);
    assert!(parsed.rules.iter().all(|r| r.action == Action::Allow));
    assert!(names(&parsed.rules).contains("1-aclk.net"));
    // `@@||*-go.kelkoogroup.net^`, `@@||*cdn.exponea.com^`, … match inside a label.
    assert!(parsed.report.unsupported >= 3);
    assert!(
        parsed
            .report
            .samples
            .iter()
            .all(|s| matches!(s.problem, LineProblem::Unsupported(_)))
    );
}

#[test]
fn hostsvn_filter_rejects_single_labels_and_counts_inner_wildcards() {
    let (format, parsed) = parse_fixture("hostsvn-filter.adblock");
    assert_eq!(format, Format::Adblock);
    let got = names(&parsed.rules);
    assert!(got.contains("000000.com") && got.contains("013.app"));
    assert!(!got.contains("012wcom"));
    assert_eq!(parsed.report.rejected, 1);
    let single = &parsed
        .report
        .samples
        .iter()
        .find(|s| s.text == "||012wcom^")
        .unwrap();
    assert!(matches!(single.problem, LineProblem::Syntax(_)));
    assert_eq!(parsed.report.unsupported, 5);
}

#[test]
fn hostsvn_threat_utf8_names_become_punycode() {
    let (format, parsed) = parse_fixture("hostsvn-threat.hosts");
    assert_eq!(format, Format::Hosts);
    let got = names(&parsed.rules);
    assert!(got.contains("xn--shopgcaoth-043e.vn"), "{got:?}");
    assert!(got.iter().all(|n| n.is_ascii()));
    assert_eq!(parsed.report.rejected, 0, "{:?}", parsed.report.samples);
}

#[test]
fn ut1_folder_counts_ip_entries_and_url_rules() {
    let dir = fixture("ut1/gambling");
    let files = schooldns::lists::ut1::domain_files(&dir).unwrap();
    assert_eq!(files, [dir.join("domains")]);
    let mut rules = Vec::new();
    let report = read_list(&files[0], None, &mut |r| rules.push(r.name.to_string())).unwrap();
    assert_eq!(report.format, Some(Format::Domains));
    assert_eq!(rules.len() as u64, report.accepted);
    assert_eq!(report.rejected, 1);
    assert_eq!(
        report.samples[0].problem,
        LineProblem::Name(NameError::IpAddress)
    );
    assert_eq!(report.samples[0].line, 43);
    assert_eq!(schooldns::lists::ut1::url_rule_count(&dir), 5);
}
