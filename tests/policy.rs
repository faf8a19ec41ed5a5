//! Decision semantics, on real list files in a temporary district.

use std::sync::Arc;

use schooldns::policy::Compiler;

use crate::common::{District, explain};

/// A district with one category per format and two schools.
fn district() -> District {
    let d = District::new();
    d.write(
        "lists/adult.hosts",
        "# adult\n0.0.0.0 porn.example\n0.0.0.0 Adult.Example. other.example\n",
    );
    d.write(
        "lists/gambling.txt",
        "casino.example\n*.bet.example\nbÜcher-wetten.de\n",
    );
    d.write(
        "lists/social.adblock",
        "[Adblock Plus]\n||social.example^\n||video.example^\n@@||kids.video.example^\n",
    );
    d.write(
        "lists/proxy.rpz",
        "$TTL 300\n@ SOA localhost. root.localhost. 1 2 3 4 5\nvpn.example CNAME .\n\
         *.vpn.example CNAME .\nexactonly.example CNAME .\nsafe.vpn.example CNAME rpz-passthru.\n",
    );
    d.write("lists/education.txt", "learn.example\nwiki.porn.example\n");
    d.config(
        r#"
[categories.adult]
lists = ["@/lists/adult.hosts"]
[categories.gambling]
lists = ["@/lists/gambling.txt"]
[categories.social]
lists = ["@/lists/social.adblock"]
[categories.proxy]
lists = ["@/lists/proxy.rpz"]
[categories.education]
lists = ["@/lists/education.txt"]

[profiles.primary]
block = ["adult", "gambling", "social", "proxy"]
allow = ["education"]
safe_search = "strict"
answer = "nxdomain"
[profiles.upper]
block = ["adult", "proxy"]
allow = ["education"]
safe_search = "moderate"
answer = "0.0.0.0"
[profiles.staff]
block = ["adult"]
safe_search = "off"
answer = "null"
bypass_protection = false

[[schools]]
id = "th-kim-dong"
name = "Trường Tiểu học Kim Đồng"
networks = ["10.1.0.0/16", "2001:db8:1::/48"]
profile = "primary"
subnets = { "10.1.9.0/24" = "staff" }
[[schools]]
id = "thpt-chu-van-an"
name = "Trường THPT Chu Văn An"
networks = ["10.3.0.0/16"]
profile = "upper"
"#,
    );
    d
}

const PRIMARY: &str = "10.1.2.3";
const STAFF: &str = "10.1.9.9";
const UPPER: &str = "10.3.0.1";

#[test]
fn an_entry_blocks_the_name_and_everything_below() {
    let d = district();
    let p = d.compile();
    for name in [
        "porn.example",
        "www.porn.example",
        "a.b.c.porn.example",
        "PORN.example.",
    ] {
        let e = explain(&p, PRIMARY, name);
        assert_eq!(e.decision, "block", "{name}");
        let rule = e.rule.unwrap();
        assert_eq!(
            (rule.category.as_str(), rule.entry.as_str()),
            ("adult", "porn.example")
        );
        assert_eq!(rule.line, Some(2));
        assert!(rule.list.unwrap().ends_with("lists/adult.hosts"));
        assert_eq!(e.answer.as_deref(), Some("nxdomain"));
    }
    assert_eq!(explain(&p, PRIMARY, "notporn.example").decision, "allow");
    assert_eq!(explain(&p, PRIMARY, "example").decision, "allow");
    // Second name on a hosts line, listed with a trailing dot and upper case.
    assert_eq!(
        explain(&p, PRIMARY, "adult.example").rule.unwrap().line,
        Some(3)
    );
    assert_eq!(explain(&p, PRIMARY, "other.example").decision, "block");
}

#[test]
fn wildcard_entries_block_only_below() {
    let d = district();
    let p = d.compile();
    assert_eq!(explain(&p, PRIMARY, "bet.example").decision, "allow");
    let e = explain(&p, PRIMARY, "www.bet.example");
    assert_eq!(e.decision, "block");
    assert_eq!(e.rule.unwrap().entry, "*.bet.example");
    // RPZ: the owner name alone is exact; with its `*.` twin it covers the subtree.
    assert_eq!(explain(&p, PRIMARY, "exactonly.example").decision, "block");
    assert_eq!(
        explain(&p, PRIMARY, "www.exactonly.example").decision,
        "allow"
    );
    assert_eq!(explain(&p, PRIMARY, "vpn.example").decision, "block");
    assert_eq!(explain(&p, PRIMARY, "x.vpn.example").decision, "block");
}

#[test]
fn allow_wins_over_every_block_for_the_name_and_below() {
    let d = district();
    let p = d.compile();
    // Education (allowed category) overrides adult (blocked) for a listed subdomain.
    let e = explain(&p, PRIMARY, "wiki.porn.example");
    assert_eq!(e.decision, "allow");
    let rule = e.rule.unwrap();
    assert_eq!((rule.kind, rule.category.as_str()), ("allow", "education"));
    let over = e
        .overridden
        .expect("the adult block is reported as overridden");
    assert_eq!(
        (over.category.as_str(), over.entry.as_str()),
        ("adult", "porn.example")
    );
    assert_eq!(
        explain(&p, PRIMARY, "en.wiki.porn.example").decision,
        "allow"
    );
    assert_eq!(explain(&p, PRIMARY, "other.porn.example").decision, "block");
    // `@@` exception inside a blocked category.
    let e = explain(&p, PRIMARY, "kids.video.example");
    assert_eq!(e.decision, "allow");
    assert_eq!(e.rule.unwrap().entry, "kids.video.example");
    assert_eq!(
        explain(&p, PRIMARY, "www.kids.video.example").decision,
        "allow"
    );
    assert_eq!(explain(&p, PRIMARY, "video.example").decision, "block");
    // RPZ passthru.
    assert_eq!(explain(&p, PRIMARY, "safe.vpn.example").decision, "allow");
}

#[test]
fn idn_entries_and_queries_meet_in_punycode() {
    let d = district();
    let p = d.compile();
    for name in [
        "bücher-wetten.de",
        "BÜCHER-wetten.de",
        "xn--bcher-wetten-dlb.de",
    ] {
        assert_eq!(explain(&p, PRIMARY, name).decision, "block", "{name}");
    }
}

#[test]
fn profiles_follow_the_client_network_longest_prefix_first() {
    let d = district();
    let p = d.compile();
    let e = explain(&p, PRIMARY, "casino.example");
    assert_eq!(
        (e.decision, e.profile.as_deref()),
        ("block", Some("primary"))
    );
    assert_eq!(e.school.as_deref(), Some("th-kim-dong"));
    assert_eq!(e.school_name.as_deref(), Some("Trường Tiểu học Kim Đồng"));
    let e = explain(&p, STAFF, "casino.example");
    assert_eq!((e.decision, e.profile.as_deref()), ("allow", Some("staff")));
    let e = explain(&p, STAFF, "porn.example");
    assert_eq!((e.decision, e.answer.as_deref()), ("block", Some("null")));
    let e = explain(&p, UPPER, "porn.example");
    assert_eq!(e.answer.as_deref(), Some("0.0.0.0"));
    assert_eq!(
        explain(&p, "2001:db8:1::42", "casino.example").decision,
        "block"
    );
    assert_eq!(
        explain(&p, "::ffff:10.1.2.3", "casino.example").decision,
        "block"
    );
    for stranger in ["192.0.2.1", "10.2.0.1", "2001:db8:2::1"] {
        let e = explain(&p, stranger, "learn.example");
        assert_eq!(
            (e.decision, e.school, e.profile),
            ("refuse", None, None),
            "{stranger}"
        );
    }
}

#[test]
fn a_default_profile_serves_unknown_networks() {
    let d = district();
    let text = std::fs::read_to_string(d.path("schooldns.toml")).unwrap();
    d.write(
        "schooldns.toml",
        &format!("{text}\n[defaults]\nprofile = \"upper\"\n"),
    );
    let p = d.compile();
    let e = explain(&p, "192.0.2.1", "vpn.example");
    assert_eq!(
        (e.decision, e.school, e.profile.as_deref()),
        ("block", None, Some("upper"))
    );
}

#[test]
fn safe_search_rewrites_per_profile_and_survives_allow_lists() {
    let d = district();
    let p = d.compile();
    let e = explain(&p, PRIMARY, "www.google.com.vn");
    assert_eq!(
        (e.decision, e.rewrite),
        ("rewrite", Some("forcesafesearch.google.com"))
    );
    assert_eq!(
        explain(&p, PRIMARY, "www.youtube.com").rewrite,
        Some("restrict.youtube.com")
    );
    assert_eq!(
        explain(&p, UPPER, "m.youtube.com").rewrite,
        Some("restrictmoderate.youtube.com")
    );
    assert_eq!(
        explain(&p, PRIMARY, "www.bing.com").rewrite,
        Some("strict.bing.com")
    );
    assert_eq!(
        explain(&p, PRIMARY, "duckduckgo.com").rewrite,
        Some("safe.duckduckgo.com")
    );
    assert_eq!(explain(&p, STAFF, "www.google.com").decision, "allow");
    assert_eq!(explain(&p, PRIMARY, "mail.google.com").decision, "allow");
    // An allow-list entry for google.com must not switch safe search off.
    d.write("lists/education.txt", "learn.example\ngoogle.com\n");
    let p = d.compile();
    assert_eq!(explain(&p, PRIMARY, "www.google.com").decision, "rewrite");
}

#[test]
fn bypass_protection_is_on_for_students_and_off_where_disabled() {
    let d = district();
    let p = d.compile();
    for name in [
        "use-application-dns.net",
        "mask.icloud.com",
        "mask-h2.icloud.com",
    ] {
        let e = explain(&p, PRIMARY, name);
        assert_eq!(
            (e.decision, e.answer.as_deref()),
            ("block", Some("nxdomain")),
            "{name}"
        );
        assert_eq!(e.category.as_deref(), Some("bypass-protection"));
        assert_eq!(explain(&p, STAFF, name).decision, "allow");
    }
}

#[test]
fn unchanged_categories_are_shared_with_the_next_policy() {
    let d = district();
    let mut compiler = Compiler::default();
    let first = compiler.compile(&d.load()).unwrap();
    // Rewrite one list with new content (length changes, so the stamp does).
    d.write(
        "lists/gambling.txt",
        "casino.example\n*.bet.example\nnewcasino.example\n",
    );
    let second = compiler.compile(&d.load()).unwrap();
    let category = |p: &schooldns::policy::Policy, name: &str| {
        Arc::clone(
            &p.categories()
                .iter()
                .find(|c| c.name == name)
                .unwrap()
                .compiled,
        )
    };
    assert!(Arc::ptr_eq(
        &category(&first, "adult"),
        &category(&second, "adult")
    ));
    assert!(!Arc::ptr_eq(
        &category(&first, "gambling"),
        &category(&second, "gambling")
    ));
    assert_eq!(
        explain(&first, PRIMARY, "newcasino.example").decision,
        "allow"
    );
    assert_eq!(
        explain(&second, PRIMARY, "newcasino.example").decision,
        "block"
    );
    assert_ne!(first.version(), second.version());
}

#[test]
fn bad_list_lines_are_counted_and_never_abort_the_load() {
    let d = district();
    d.write(
        "lists/gambling.txt",
        "casino.example\nnot a domain\n1.2.3.4\nbad..name\nlater.example\n",
    );
    let p = d.compile();
    let cat = p
        .categories()
        .iter()
        .find(|c| c.name == "gambling")
        .unwrap();
    let report = cat.report();
    assert_eq!((report.accepted, report.rejected), (2, 3));
    let lines: Vec<u32> = report.samples.iter().map(|s| s.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    assert_eq!(explain(&p, PRIMARY, "later.example").decision, "block");
}

/// Exceptions: a school's own allow and block beat its lists, never a locked category; the
/// district's apply everywhere and may unblock a locked one; expired and removed ones do not
/// apply; a mistake in the file names its line.
#[test]
fn exceptions_decide_before_the_lists_and_locked_categories_hold() {
    let d = District::new();
    d.write("lists/adult.txt", "porn.example\n");
    d.write("lists/malware.txt", "evil.example\nbad.shared.example\n");
    d.write("lists/education.txt", "learn.example\n");
    let config = r#"
[categories.adult]
lists = ["@/lists/adult.txt"]
[categories.malware]
lists = ["@/lists/malware.txt"]
locked = true
[categories.education]
lists = ["@/lists/education.txt"]
[profiles.primary]
block = ["adult", "malware"]
allow = ["education"]
[console]
exceptions = "@/exceptions.toml"
[[schools]]
id = "a"
name = "A"
networks = ["10.1.0.0/16"]
profile = "primary"
allow = ["porn.example"]
[[schools]]
id = "b"
name = "B"
networks = ["10.2.0.0/16"]
profile = "primary"
"#;
    d.config(config);
    d.write(
        "exceptions.toml",
        r#"
[[exceptions]]
id = "x-1"
school = "a"
name = "shared.example"
action = "allow"
reason = "a school may not unblock malware"

[[exceptions]]
id = "x-2"
school = "b"
name = "learn.example"
action = "block"
reason = "exam"

[[exceptions]]
id = "x-3"
name = "evil.example"
action = "allow"
reason = "the district's false positive"

[[exceptions]]
id = "x-4"
school = "b"
name = "porn.example"
action = "allow"
reason = "expired"
until = "2020-01-01T00:00:00Z"

[[exceptions]]
id = "x-5"
school = "b"
name = "other.porn.example"
action = "allow"
reason = "removed"
removed_by = "minh"
removed_at = "2026-01-01T00:00:00Z"
"#,
    );
    let policy = d.compile();
    // School A's hand-written allow beats its adult list, with the list named as overridden.
    let e = explain(&policy, "10.1.0.1", "www.porn.example");
    assert_eq!(e.decision, "allow");
    let rule = e.rule.unwrap();
    assert_eq!(rule.category, "exception:a");
    assert!(rule.list.unwrap().ends_with("schooldns.toml"));
    assert_eq!(e.overridden.unwrap().category, "adult");
    // Not school B's: expired and removed exceptions do not apply.
    assert_eq!(
        explain(&policy, "10.2.0.1", "porn.example").decision,
        "block"
    );
    assert_eq!(
        explain(&policy, "10.2.0.1", "other.porn.example").decision,
        "block"
    );
    // School A's allow of shared.example does not unblock a locked category below it.
    let e = explain(&policy, "10.1.0.1", "bad.shared.example");
    assert_eq!(
        (e.decision, e.category.as_deref()),
        ("block", Some("malware"))
    );
    // The district's allow does, everywhere.
    for client in ["10.1.0.1", "10.2.0.1"] {
        let e = explain(&policy, client, "evil.example");
        assert_eq!(e.decision, "allow", "{client}");
        let rule = e.rule.unwrap();
        assert_eq!(rule.category, "exception");
        assert!(rule.list.unwrap().ends_with("exceptions.toml"));
        assert_eq!(rule.line, Some(18), "the `name` line of x-3");
    }
    // School B's block beats the education allow-list; school A still learns.
    assert_eq!(
        explain(&policy, "10.2.0.1", "learn.example").decision,
        "block"
    );
    assert_eq!(
        explain(&policy, "10.1.0.1", "learn.example").decision,
        "allow"
    );
    // The schools' copies of the profile keep its name.
    assert_eq!(
        explain(&policy, "10.1.0.1", "learn.example")
            .profile
            .as_deref(),
        Some("primary")
    );
    assert_eq!(policy.profiles().len(), 1);

    // A broken exceptions file is a config error naming its line.
    d.write(
        "exceptions.toml",
        "[[exceptions]]\nid = \"x\"\nname = \"bad name.example\"\naction = \"allow\"\n",
    );
    let err = Compiler::default()
        .compile(&d.load())
        .unwrap_err()
        .to_string();
    assert!(err.contains("exceptions.toml:3"), "{err}");
}
