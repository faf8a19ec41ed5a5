//! Any text as `schooldns.toml`: loaded or refused with a located error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("fuzz.toml");
    if let Err(error) = schooldns::config::LoadedConfig::parse(path, text.to_string()) {
        let shown = error.to_string();
        assert!(shown.starts_with("fuzz.toml:"), "{shown}");
    }
});
