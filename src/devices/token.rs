//! Device tokens: how they are made and what a valid one looks like.
//!
//! A token is 160 random bits written in lowercase RFC 4648 base32 without padding (32
//! characters of `a–z` and `2–7`). That alphabet is safe everywhere the token travels: as a
//! DNS label (where case is not preserved, so only one case is used), in a URL path, and in a
//! TLS server name. Tokens written by hand must be as strong: at least 26 such characters
//! (128 bits).

/// Characters of a generated token.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// Random bytes per generated token (160 bits).
const TOKEN_BYTES: usize = 20;
/// Shortest token accepted from the devices file: 26 base32 characters carry 130 bits.
pub const MIN_TOKEN_LEN: usize = 26;
/// Longest token accepted: it must fit in one DNS label.
pub const MAX_TOKEN_LEN: usize = 63;

/// A fresh random token from the operating system's generator.
pub fn generate() -> std::io::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(base32(&bytes))
}

/// Lowercase base32 without padding.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Why a token from the devices file is refused, or `None` if it is fine.
pub fn problem(token: &str) -> Option<String> {
    if token.len() < MIN_TOKEN_LEN {
        return Some(format!(
            "token is too short to be unguessable: {} characters, at least {MIN_TOKEN_LEN} \
             needed (use `schooldns devices add`, which makes 32)",
            token.len()
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Some(format!(
            "token is longer than one DNS label ({MAX_TOKEN_LEN} characters)"
        ));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Some(
            "token may only contain lowercase letters and digits (it travels as a DNS label \
             and in URLs)"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors() {
        // RFC 4648 §10, lowercased and unpadded.
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "my");
        assert_eq!(base32(b"fo"), "mzxq");
        assert_eq!(base32(b"foob"), "mzxw6yq");
        assert_eq!(base32(b"foobar"), "mzxw6ytboi");
    }

    #[test]
    fn generated_tokens_are_valid_and_distinct() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(problem(&a), None);
        assert_ne!(a, b);
    }

    #[test]
    fn weak_or_unsafe_tokens_are_refused() {
        assert!(problem("q3v9").unwrap().contains("too short"));
        assert!(problem(&"A".repeat(32)).unwrap().contains("lowercase"));
        assert!(problem(&"a/".repeat(16)).unwrap().contains("lowercase"));
        assert!(problem(&"a".repeat(64)).unwrap().contains("DNS label"));
    }
}
