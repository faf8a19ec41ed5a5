//! The shipped config and every shipped blocklist load, and the demo behaves as documented.

use std::collections::BTreeSet;
use std::path::PathBuf;

use schooldns::config::LoadedConfig;
use schooldns::policy::compile;

use crate::common::{explain, repo_root};

fn shipped_policy() -> schooldns::policy::Policy {
    let root = repo_root();
    let mut loaded = LoadedConfig::read(&root.join("config/schooldns.toml")).unwrap();
    for cat in loaded.config.categories.values_mut() {
        for list in &mut cat.lists {
            *list.get_mut() = root.join(list.get_ref()).display().to_string();
        }
    }
    let config = &mut loaded.config;
    config.services.catalog = config.services.catalog.as_ref().map(|p| root.join(p));
    config.calendar.file = config.calendar.file.as_ref().map(|p| root.join(p));
    compile(&loaded).unwrap()
}

#[test]
fn every_shipped_blocklist_is_used_by_the_shipped_config() {
    let policy = shipped_policy();
    let used: BTreeSet<PathBuf> = policy
        .categories()
        .iter()
        .filter(|c| !c.is_exceptions())
        .flat_map(|c| c.compiled.files.iter())
        .map(|f| f.path.strip_prefix(repo_root()).unwrap().to_path_buf())
        .collect();
    let mut shipped = BTreeSet::new();
    let mut stack = vec![repo_root().join("blocklists")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if !["README.md", "urls", "usage", "catalog.toml"].contains(&name.as_str()) {
                shipped.insert(path.strip_prefix(repo_root()).unwrap().to_path_buf());
            }
        }
    }
    assert_eq!(used, shipped);
    for category in policy.categories() {
        assert!(category.entries() > 0, "{}", category.name);
        for file in &category.compiled.files {
            assert!(file.report.accepted > 0, "{}", file.path.display());
        }
    }
}

#[test]
fn the_demo_district_decides_as_documented() {
    let p = shipped_policy();
    let cases = [
        ("127.0.0.1", "phishing-test.schooldns.invalid", "block"),
        ("10.1.2.3", "www.pornhub.com", "block"),
        ("10.3.0.1", "xvideos.com", "block"),
        ("10.1.9.1", "www.pornhub.com", "block"),
        ("10.1.2.3", "vi.wikipedia.org", "allow"),
        ("10.1.2.3", "www.google.com.vn", "rewrite"),
        ("127.0.0.1", "facebook.com", "block"),
        ("127.0.0.1", "youtubekids.com", "allow"),
        ("127.0.0.1", "dns.google", "block"),
        ("127.0.0.1", "forcesafesearch.google.com", "allow"),
        ("127.0.0.1", "www.google.com", "rewrite"),
        ("127.0.0.1", "vi.wikipedia.org", "allow"),
        ("10.1.9.1", "facebook.com", "allow"),
        ("10.3.0.1", "facebook.com", "allow"),
        ("10.2.0.1", "facebook.com", "block"),
        ("::1", "use-application-dns.net", "block"),
        ("192.0.2.1", "wikipedia.org", "refuse"),
    ];
    for (client, name, want) in cases {
        assert_eq!(explain(&p, client, name).decision, want, "{client} {name}");
    }
}

/// The entries of a plain domain list (comments and blank lines left out).
fn entries(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether one entry covers the other (each covers its name and every name below it).
fn overlap(a: &str, b: &str) -> bool {
    a == b || a.ends_with(&format!(".{b}")) || b.ends_with(&format!(".{a}"))
}

#[test]
fn every_service_parses_and_none_touches_learning() {
    let policy = shipped_policy();
    let catalog = policy.services();
    for id in [
        "tiktok",
        "youtube",
        "facebook",
        "instagram",
        "messenger",
        "zalo",
        "telegram",
        "discord",
        "snapchat",
        "x",
        "reddit",
        "twitch",
        "netflix",
        "roblox",
        "minecraft",
        "steam",
        "epicgames",
        "garena",
        "pubg",
        "genshin",
        "chatgpt",
        "zoom",
        "google-meet",
        "teams",
        "k12online",
        "vnedu",
        "olm",
        "hocmai",
    ] {
        let service = catalog.get(id).unwrap_or_else(|| panic!("no service {id}"));
        assert!(!service.description.is_empty() && !service.description_vi.is_empty());
    }
    for category in policy.categories().iter().filter(|c| c.service.is_some()) {
        let report = category.report();
        assert!(report.accepted > 0, "{}", category.name);
        assert_eq!(
            report.rejected, 0,
            "{}: {:?}",
            category.name, report.samples
        );
    }
    let root = repo_root();
    let mut learning: Vec<(String, String)> = entries(&root.join("blocklists/education.txt"))
        .into_iter()
        .map(|e| ("education".to_string(), e))
        .collect();
    for service in catalog.services.iter().filter(|s| s.learning) {
        learning.extend(
            entries(&service.file)
                .into_iter()
                .map(|e| (service.id.clone(), e)),
        );
    }
    for service in catalog.services.iter().filter(|s| !s.learning) {
        for entry in entries(&service.file) {
            for (owner, name) in &learning {
                assert!(
                    !overlap(&entry, name),
                    "{}'s {entry} overlaps {owner}'s {name}",
                    service.id
                );
            }
        }
    }
}
