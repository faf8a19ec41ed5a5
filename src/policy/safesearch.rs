//! Safe-search rewrites: search and video hostnames → the engines' enforced safe endpoints.
//!
//! These are exact names, not subtrees (`mail.google.com` must keep working). Google lists its
//! search domains at <https://www.google.com/supported_domains>; each is rewritten with and
//! without `www.`. The decision is a rewrite; the server answers a CNAME to the target and the
//! target's own records.

use std::sync::OnceLock;

use rustc_hash::FxHashMap;

use crate::config::SafeSearchLevel;

/// Google's search domains (`google.<suffix>`).
const GOOGLE_SUFFIXES: &[&str] = &[
    "com", "ad", "ae", "com.af", "com.ag", "al", "am", "co.ao", "com.ar", "as", "at", "com.au",
    "az", "ba", "com.bd", "be", "bf", "bg", "com.bh", "bi", "bj", "com.bn", "com.bo", "com.br",
    "bs", "bt", "co.bw", "by", "com.bz", "ca", "cd", "cf", "cg", "ch", "ci", "co.ck", "cl", "cm",
    "cn", "com.co", "co.cr", "com.cu", "cv", "com.cy", "cz", "de", "dj", "dk", "dm", "com.do",
    "dz", "com.ec", "ee", "com.eg", "es", "com.et", "fi", "com.fj", "fm", "fr", "ga", "ge", "gg",
    "com.gh", "com.gi", "gl", "gm", "gr", "com.gt", "gy", "com.hk", "hn", "hr", "ht", "hu",
    "co.id", "ie", "co.il", "im", "co.in", "iq", "is", "it", "je", "com.jm", "jo", "co.jp",
    "co.ke", "com.kh", "ki", "kg", "co.kr", "com.kw", "kz", "la", "com.lb", "li", "lk", "co.ls",
    "lt", "lu", "lv", "com.ly", "co.ma", "md", "me", "mg", "mk", "ml", "com.mm", "mn", "com.mt",
    "mu", "mv", "mw", "com.mx", "com.my", "co.mz", "com.na", "com.ng", "com.ni", "ne", "nl", "no",
    "com.np", "nr", "nu", "co.nz", "com.om", "com.pa", "com.pe", "com.pg", "com.ph", "com.pk",
    "pl", "pn", "com.pr", "ps", "pt", "com.py", "com.qa", "ro", "ru", "rw", "com.sa", "com.sb",
    "sc", "se", "com.sg", "sh", "si", "sk", "com.sl", "sn", "so", "sm", "sr", "st", "com.sv", "td",
    "tg", "co.th", "com.tj", "tl", "tm", "tn", "to", "com.tr", "tt", "com.tw", "co.tz", "com.ua",
    "co.ug", "co.uk", "com.uy", "co.uz", "com.vc", "co.ve", "co.vi", "com.vn", "vu", "ws", "rs",
    "co.za", "co.zm", "co.zw", "cat",
];

const YOUTUBE_NAMES: &[&str] = &[
    "www.youtube.com",
    "m.youtube.com",
    "youtubei.googleapis.com",
    "youtube.googleapis.com",
    "www.youtube-nocookie.com",
];
const BING_NAMES: &[&str] = &["www.bing.com", "bing.com"];
const DUCKDUCKGO_NAMES: &[&str] = &[
    "duckduckgo.com",
    "www.duckduckgo.com",
    "start.duckduckgo.com",
];

/// Google's enforced SafeSearch endpoint.
pub const GOOGLE_TARGET: &str = "forcesafesearch.google.com";
/// YouTube strict restricted mode.
pub const YOUTUBE_STRICT_TARGET: &str = "restrict.youtube.com";
/// YouTube moderate restricted mode.
pub const YOUTUBE_MODERATE_TARGET: &str = "restrictmoderate.youtube.com";
/// Bing strict SafeSearch.
pub const BING_TARGET: &str = "strict.bing.com";
/// DuckDuckGo safe search.
pub const DUCKDUCKGO_TARGET: &str = "safe.duckduckgo.com";

/// Which engine a name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Google,
    YouTube,
    Bing,
    DuckDuckGo,
}

fn table() -> &'static FxHashMap<Box<[u8]>, Engine> {
    static TABLE: OnceLock<FxHashMap<Box<[u8]>, Engine>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map = FxHashMap::default();
        for suffix in GOOGLE_SUFFIXES {
            for prefix in ["", "www."] {
                let name = format!("{prefix}google.{suffix}");
                map.insert(name.into_bytes().into_boxed_slice(), Engine::Google);
            }
        }
        for (names, engine) in [
            (YOUTUBE_NAMES, Engine::YouTube),
            (BING_NAMES, Engine::Bing),
            (DUCKDUCKGO_NAMES, Engine::DuckDuckGo),
        ] {
            for name in names {
                map.insert(name.as_bytes().into(), engine);
            }
        }
        map
    })
}

/// The safe endpoint a normalised name is rewritten to at `level`, if any.
#[inline]
pub fn rewrite_target(name: &[u8], level: SafeSearchLevel) -> Option<&'static str> {
    if level == SafeSearchLevel::Off {
        return None;
    }
    let engine = table().get(name)?;
    Some(match (engine, level) {
        (Engine::Google, _) => GOOGLE_TARGET,
        (Engine::YouTube, SafeSearchLevel::Moderate) => YOUTUBE_MODERATE_TARGET,
        (Engine::YouTube, _) => YOUTUBE_STRICT_TARGET,
        (Engine::Bing, _) => BING_TARGET,
        (Engine::DuckDuckGo, _) => DUCKDUCKGO_TARGET,
    })
}

/// Names that let a device switch filtering off, answered NXDOMAIN when a profile enables
/// bypass protection: Firefox's DoH canary and iCloud Private Relay.
pub const BYPASS_NAMES: &[&str] = &[
    "use-application-dns.net",
    "mask.icloud.com",
    "mask-h2.icloud.com",
];

#[cfg(test)]
mod tests {
    use super::*;
    use SafeSearchLevel::*;

    #[test]
    fn engines_are_rewritten_per_level() {
        let cases: [(&str, SafeSearchLevel, Option<&str>); 10] = [
            ("www.google.com", Strict, Some(GOOGLE_TARGET)),
            ("google.com.vn", Strict, Some(GOOGLE_TARGET)),
            ("www.google.co.uk", Moderate, Some(GOOGLE_TARGET)),
            ("mail.google.com", Strict, None),
            ("www.youtube.com", Strict, Some(YOUTUBE_STRICT_TARGET)),
            ("m.youtube.com", Moderate, Some(YOUTUBE_MODERATE_TARGET)),
            ("www.bing.com", Strict, Some(BING_TARGET)),
            ("duckduckgo.com", Strict, Some(DUCKDUCKGO_TARGET)),
            ("www.google.com", Off, None),
            ("youtube.com", Strict, None),
        ];
        for (name, level, want) in cases {
            assert_eq!(
                rewrite_target(name.as_bytes(), level),
                want,
                "{name} {level:?}"
            );
        }
    }
}
