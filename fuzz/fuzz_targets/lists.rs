//! Any text as a list in each format: bad lines are counted, never a panic, and every accepted
//! entry is a normalised name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schooldns::lists::{Format, parse_str};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for format in [Format::Domains, Format::Hosts, Format::Adblock, Format::Rpz] {
        let parsed = parse_str(format, &text);
        for rule in &parsed.rules {
            assert!(!rule.name.is_empty() && rule.name.len() <= 253, "{rule:?}");
            assert_eq!(rule.name, rule.name.to_ascii_lowercase(), "{rule:?}");
        }
        let _ = Format::detect(text.lines());
    }
});
