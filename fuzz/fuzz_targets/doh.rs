//! DoH request meaning over any path and query string: the token in `/dns-query/<token>` and
//! the `?dns=` parameter (hyper has parsed the HTTP already). Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schooldns::server::doh::answer::{dns_query_token, parse_get_message};

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if let Some(Some(token)) = dns_query_token(path) {
        assert!(!token.contains('/'));
    }
    if let Ok(message) = parse_get_message(query) {
        assert!(message.len() <= 65_535);
    }
});
