//! Shared set-up for the benchmarks: the real lists of `../shared/data`, generated names to
//! reach a target scale, a policy config over them, and query workloads.

#![allow(dead_code)]

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use schooldns::config::LoadedConfig;

/// Names the scale benchmarks aim for (the UT1 `adult` category alone is about 4.6 million).
pub const TARGET_NAMES: usize = 5_000_000;

/// The shared data folder: `$SCHOOLDNS_SHARED_DATA` or `../shared/data` beside the repository.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("SCHOOLDNS_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    dir.join("MANIFEST.tsv").is_file().then_some(dir)
}

/// Every block/allow list of the shared data (per its MANIFEST), excluding popularity lists.
pub fn shared_lists(dir: &Path) -> Vec<PathBuf> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    manifest
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split('\t');
            let path = cols.next()?;
            let format = cols.nth(2)?;
            let is_list = ["plain", "hosts", "adblock", "rpz", "wildcard"].contains(&format);
            (is_list && !path.starts_with("popular/")).then(|| dir.join(path))
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), so every run sees the same names.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "ro", "mi", "lu", "ta", "ne", "so", "vi", "da", "po", "xe", "qui", "bet", "cam", "sex",
    "hot", "win", "vip", "club", "888", "live", "tube", "game", "shop", "news", "app", "cdn",
    "ads", "track", "img", "vn", "zo", "la", "pe", "gi", "ho", "an", "ng", "tr", "th", "ph",
];
const TLDS: &[&str] = &[
    "com", "com", "com", "com", "net", "net", "org", "vn", "com.vn", "ru", "de", "info", "xyz",
    "top", "io", "co", "me", "online", "site", "club", "br", "pl", "uk", "co.uk", "fr", "cn",
];
const SUBS: &[&str] = &[
    "www", "m", "cdn", "api", "img", "static", "go", "play", "live", "s1",
];

/// One generated name of realistic shape: 1–2 labels before the registrable part about a
/// third of the time, 2–5 syllables a label, sometimes a digit or a hyphen.
pub fn generated_name(rng: &mut Rng, out: &mut String) {
    out.clear();
    if rng.below(3) == 0 {
        out.push_str(SUBS[rng.below(SUBS.len())]);
        out.push('.');
    }
    let syllables = 2 + rng.below(4);
    for i in 0..syllables {
        if i > 0 && rng.below(7) == 0 {
            out.push('-');
        }
        out.push_str(SYLLABLES[rng.below(SYLLABLES.len())]);
    }
    if rng.below(4) == 0 {
        out.push_str(&rng.below(1000).to_string());
    }
    out.push('.');
    out.push_str(TLDS[rng.below(TLDS.len())]);
}

/// Writes (once) a plain list of `count` generated names and returns its path.
pub fn generated_list(count: usize) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("generated-{count}.txt"));
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        let mut w = BufWriter::new(std::fs::File::create(&tmp).unwrap());
        let mut rng = Rng::new(0x5c4001d5);
        let mut name = String::new();
        let mut seen = std::collections::HashSet::with_capacity(count);
        while seen.len() < count {
            generated_name(&mut rng, &mut name);
            if seen.insert(xxhash_rust::xxh3::xxh3_64(name.as_bytes())) {
                writeln!(w, "{name}").unwrap();
            }
        }
        w.flush().unwrap();
        drop(w);
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// The list files of the scale benchmark: every shared list plus generated names making up
/// [`TARGET_NAMES`] (about 1.3 million distinct names come from the shared lists).
pub fn scale_lists() -> Vec<PathBuf> {
    let mut lists = shared_data().map(|d| shared_lists(&d)).unwrap_or_default();
    let shared_estimate = if lists.is_empty() { 0 } else { 1_310_000 };
    lists.push(generated_list(TARGET_NAMES - shared_estimate));
    lists
}

/// The category a district would file a shared list under, from its path.
pub fn category_of(path: &Path) -> &'static str {
    let p = path.to_string_lossy().to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| p.contains(w));
    if has(&["generated"]) {
        "generated"
    } else if has(&[
        "whitelist",
        "liste_blanche",
        "liste_bu",
        "educational",
        "exceptions",
    ]) {
        "education"
    } else if has(&["adult", "porn", "nsfw", "lingerie", "sexual"]) {
        "adult"
    } else if has(&["gambling", "arjel"]) {
        "gambling"
    } else if has(&["social", "tiktok", "chat", "dating", "forums"]) {
        "social"
    } else if has(&[
        "doh",
        "vpn",
        "redirector",
        "proxy",
        "bypass",
        "remote-control",
    ]) {
        "proxy"
    } else if has(&[
        "malware",
        "phishing",
        "threat",
        "cryptojacking",
        "ddos",
        "stalkerware",
        "hacking",
        "dialer",
    ]) {
        "malware"
    } else if has(&["drug", "drogue", "vaping"]) {
        "drugs"
    } else if has(&["games", "fortnite", "tricheur"]) {
        "games"
    } else if has(&["agressif", "dangerous", "sect"]) {
        "violence"
    } else if has(&["piracy", "warez", "filehosting", "download"]) {
        "piracy"
    } else if has(&[
        "ads",
        "publicite",
        "multi",
        "light",
        "hosts",
        "marketing",
        "shortener",
        "urlshortener",
        "nosafesearch",
    ]) {
        "ads"
    } else {
        "other"
    }
}

/// A district-like config: the lists grouped into about a dozen categories (see
/// [`category_of`]), all blocked for `10.0.0.0/8` except `education`, which is allowed.
pub fn scale_config(lists: &[PathBuf]) -> LoadedConfig {
    let text = format!(
        "{}[[schools]]\nid = \"s\"\nname = \"S\"\nnetworks = [\"10.0.0.0/8\"]\nprofile = \"student\"\n",
        scale_categories_and_profile(lists)
    );
    LoadedConfig::parse(Path::new("bench.toml"), text).expect("bench config")
}

/// The categories of [`scale_config`] and its `student` profile, without schools.
pub fn scale_categories_and_profile(lists: &[PathBuf]) -> String {
    let mut by_category: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for list in lists {
        by_category
            .entry(category_of(list))
            .or_default()
            .push(format!("{:?}", list.display().to_string()));
    }
    let mut text = String::new();
    for (name, files) in &by_category {
        text.push_str(&format!(
            "[categories.{name}]\nlists = [{}]\n",
            files.join(", ")
        ));
    }
    let blocked: Vec<String> = by_category
        .keys()
        .filter(|&&c| c != "education")
        .map(|c| format!("{c:?}"))
        .collect();
    let allowed = if by_category.contains_key("education") {
        "\"education\""
    } else {
        ""
    };
    text.push_str(&format!(
        "[profiles.student]\nblock = [{}]\nallow = [{allowed}]\n",
        blocked.join(", ")
    ));
    text
}

/// Resident set size of this process, in bytes.
pub fn rss() -> usize {
    proc_status_kib("VmRSS:") * 1024
}

/// Peak resident set size since start or the last [`reset_peak_rss`], in bytes.
pub fn peak_rss() -> usize {
    proc_status_kib("VmHWM:") * 1024
}

/// Resets the peak RSS counter (Linux: `echo 5 > /proc/self/clear_refs`).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn proc_status_kib(key: &str) -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Names of 3–4 labels that the scale policy blocks: `www.`/`cdn.` under generated names.
pub fn listed_queries(count: usize) -> Vec<String> {
    let mut rng = Rng::new(0x5c4001d5);
    let mut name = String::new();
    let mut out = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::new();
    let mut i = 0;
    while out.len() < count {
        generated_name(&mut rng, &mut name);
        if !seen.insert(name.clone()) {
            continue;
        }
        i += 1;
        if i % 97 != 0 {
            continue;
        }
        let labels = name.split('.').count();
        let q = match labels {
            2 => format!("www.{name}"),
            3 => format!("cdn.{name}"),
            _ => name.clone(),
        };
        out.push(q);
    }
    out
}

/// Names of 3–4 labels nobody lists: real query names from the Umbrella top list when the
/// shared data is there, otherwise generated with another seed and a TLD nobody generates.
pub fn unlisted_candidates(count: usize) -> Vec<String> {
    if let Some(dir) = shared_data() {
        use std::io::BufRead;
        let file = std::fs::File::open(dir.join("popular/umbrella_top100k.txt.gz")).unwrap();
        let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
        let names: Vec<String> = reader
            .lines()
            .map_while(Result::ok)
            .filter(|n| (3..=4).contains(&n.split('.').count()))
            .take(count * 2)
            .collect();
        if names.len() >= count {
            return names;
        }
    }
    let mut rng = Rng::new(0xfeed);
    let mut name = String::new();
    (0..count * 2)
        .map(|_| {
            generated_name(&mut rng, &mut name);
            format!("www.{name}.example")
        })
        .collect()
}
