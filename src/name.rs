//! Domain names as the policy sees them.
//!
//! Owns the one normalisation every part of schooldns agrees on: ASCII lower case, no trailing
//! dot, IDNs converted to punycode, labels of 1–63 bytes, at most 253 bytes in all. List entries
//! go through [`normalize_entry`] once at load time; queries go through [`QueryName::parse`],
//! which keeps the result in a fixed buffer so the query path allocates nothing.

use std::fmt;

/// Longest name in presentation form without the trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a domain name we can match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Nothing left after trimming.
    Empty,
    /// Two dots in a row, or a leading dot.
    EmptyLabel,
    /// A label longer than 63 bytes.
    LabelTooLong,
    /// More than 253 bytes.
    TooLong,
    /// A byte that cannot appear in a host name.
    InvalidChar(char),
    /// An IPv4 or IPv6 address, which DNS filtering cannot match by name.
    IpAddress,
    /// A UTF-8 name that IDNA (UTS #46) rejects.
    BadIdn,
    /// Wire-format bytes that do not form a name (a pointer, or a label running past the end).
    Malformed,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("empty name"),
            NameError::EmptyLabel => f.write_str("empty label"),
            NameError::LabelTooLong => write!(f, "label longer than {MAX_LABEL_LEN} bytes"),
            NameError::TooLong => write!(f, "name longer than {MAX_NAME_LEN} bytes"),
            NameError::InvalidChar(c) => write!(f, "invalid character {c:?}"),
            NameError::IpAddress => f.write_str("IP address, not a domain name"),
            NameError::BadIdn => f.write_str("invalid internationalised name"),
            NameError::Malformed => f.write_str("malformed wire-format name"),
        }
    }
}

impl std::error::Error for NameError {}

/// Bytes allowed in a label. Underscore is real (`_dmarc`, service names, some ad hosts).
fn is_label_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
}

/// Checks label lengths and characters of an already lower-cased ASCII name.
fn validate_ascii(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    for label in name.split(|&b| b == b'.') {
        if label.is_empty() {
            return Err(NameError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong);
        }
        if let Some(&bad) = label.iter().find(|&&b| !is_label_byte(b)) {
            return Err(NameError::InvalidChar(bad as char));
        }
    }
    Ok(())
}

/// True for a dotted-quad IPv4 address. The cheap test (last byte is a digit: no top-level
/// domain is numeric) runs first, since this is called for every list entry.
fn looks_like_ipv4(name: &str) -> bool {
    name.as_bytes().last().is_some_and(u8::is_ascii_digit)
        && name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Normalises one list entry into `out` (cleared first): trims whitespace and one trailing dot,
/// lower-cases, converts UTF-8 to punycode, and validates. IP addresses are rejected so that
/// they can be counted and reported rather than silently matched as names.
pub fn normalize_entry(raw: &str, out: &mut String) -> Result<(), NameError> {
    out.clear();
    let trimmed = raw.trim();
    let trimmed = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Err(NameError::Empty);
    }
    if trimmed.contains(':') && trimmed.parse::<std::net::Ipv6Addr>().is_ok() {
        return Err(NameError::IpAddress);
    }
    if trimmed.is_ascii() {
        out.push_str(trimmed);
        out.make_ascii_lowercase();
    } else {
        let ascii = idna::domain_to_ascii(trimmed).map_err(|_| NameError::BadIdn)?;
        out.push_str(&ascii);
    }
    if looks_like_ipv4(out) {
        return Err(NameError::IpAddress);
    }
    validate_ascii(out.as_bytes())
}

/// A query name normalised once, with the offsets of its labels, in a fixed buffer.
///
/// Every matcher walks the same value: `suffix(0)` is the whole name, `suffix(i)` drops the
/// first `i` labels. Building one never allocates, so it is safe on the query path.
#[derive(Clone)]
pub struct QueryName {
    buf: [u8; MAX_NAME_LEN],
    len: u8,
    /// Start offset of each label, left to right.
    starts: [u8; 128],
    labels: u8,
}

impl QueryName {
    /// Parses a name as it arrives in a query (ASCII, any case, optional trailing dot).
    /// The root name (`.`) and names with characters outside host-name syntax are rejected.
    pub fn parse(name: &str) -> Result<QueryName, NameError> {
        QueryName::from_ascii_bytes(name.as_bytes())
    }

    /// Like [`QueryName::parse`], but also accepts UTF-8 (IDN) input as typed by a person,
    /// converting it to punycode first. Used by the CLI; allocates for non-ASCII input only.
    pub fn from_user(name: &str) -> Result<QueryName, NameError> {
        let name = name.trim();
        if name.is_ascii() {
            return QueryName::parse(name);
        }
        let mut out = String::new();
        normalize_entry(name, &mut out)?;
        QueryName::parse(&out)
    }

    /// Parses presentation-form bytes (lower-casing them).
    pub fn from_ascii_bytes(raw: &[u8]) -> Result<QueryName, NameError> {
        let raw = raw.strip_suffix(b".").unwrap_or(raw);
        if raw.is_empty() {
            return Err(NameError::Empty);
        }
        if raw.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        let mut q = QueryName {
            buf: [0; MAX_NAME_LEN],
            len: raw.len() as u8,
            starts: [0; 128],
            labels: 0,
        };
        let mut label_start = 0usize;
        for (i, &b) in raw.iter().enumerate() {
            let b = b.to_ascii_lowercase();
            if b == b'.' {
                q.push_label(label_start, i)?;
                label_start = i + 1;
            } else if !is_label_byte(b) {
                return Err(NameError::InvalidChar(b as char));
            }
            q.buf[i] = b;
        }
        q.push_label(label_start, raw.len())?;
        Ok(q)
    }

    /// Reads an uncompressed wire-format name (as in a query's question) starting at `start`,
    /// returning it and the offset just past it. Lower-cases as it copies; never allocates.
    pub fn from_wire(packet: &[u8], start: usize) -> Result<(QueryName, usize), NameError> {
        let mut q = QueryName {
            buf: [0; MAX_NAME_LEN],
            len: 0,
            starts: [0; 128],
            labels: 0,
        };
        let mut at = start;
        let mut out = 0usize;
        loop {
            let len = *packet.get(at).ok_or(NameError::Malformed)? as usize;
            at += 1;
            if len == 0 {
                break;
            }
            if len > MAX_LABEL_LEN {
                return Err(NameError::Malformed);
            }
            let label = packet.get(at..at + len).ok_or(NameError::Malformed)?;
            let dot = usize::from(out > 0);
            if out + dot + len > MAX_NAME_LEN {
                return Err(NameError::TooLong);
            }
            if dot == 1 {
                q.buf[out] = b'.';
                out += 1;
            }
            let label_start = out;
            for &b in label {
                let b = b.to_ascii_lowercase();
                if !is_label_byte(b) {
                    return Err(NameError::InvalidChar(b as char));
                }
                q.buf[out] = b;
                out += 1;
            }
            q.len = out as u8;
            q.push_label(label_start, out)?;
            at += len;
        }
        if q.labels == 0 {
            return Err(NameError::Empty);
        }
        Ok((q, at))
    }

    fn push_label(&mut self, start: usize, end: usize) -> Result<(), NameError> {
        if end == start {
            return Err(NameError::EmptyLabel);
        }
        if end - start > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong);
        }
        // 253 bytes hold at most 127 labels, so the array cannot overflow.
        self.starts[self.labels as usize] = start as u8;
        self.labels += 1;
        Ok(())
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        // Only label bytes (ASCII) and dots are ever written into the buffer.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }

    /// The normalised name as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }

    /// Number of labels.
    pub fn label_count(&self) -> usize {
        self.labels as usize
    }

    /// The name without its first `skip` labels (`skip < label_count()`).
    pub fn suffix(&self, skip: usize) -> &[u8] {
        &self.buf[self.starts[skip] as usize..self.len as usize]
    }

    /// Byte offset where the suffix that drops `skip` labels starts.
    pub fn suffix_offset(&self, skip: usize) -> usize {
        self.starts[skip] as usize
    }
}

impl fmt::Debug for QueryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueryName({})", self.as_str())
    }
}

impl fmt::Display for QueryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> Result<String, NameError> {
        let mut out = String::new();
        normalize_entry(s, &mut out).map(|()| out)
    }

    #[test]
    fn entries_are_normalised() {
        let cases = [
            ("Example.COM", "example.com"),
            ("example.com.", "example.com"),
            ("  tab.example\t", "tab.example"),
            ("_dmarc.example.org", "_dmarc.example.org"),
            ("shopgcaothụ.vn", "xn--shopgcaoth-043e.vn"),
            ("bücher.de", "xn--bcher-kva.de"),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn bad_entries_are_rejected_with_a_reason() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        let cases: [(&str, NameError); 7] = [
            ("", NameError::Empty),
            ("a..b", NameError::EmptyLabel),
            (&long_label, NameError::LabelTooLong),
            (&long_name, NameError::TooLong),
            ("exa mple.com", NameError::InvalidChar(' ')),
            ("1.2.3.4", NameError::IpAddress),
            ("2001:db8::1", NameError::IpAddress),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn query_names_expose_their_suffixes() {
        let q = QueryName::parse("WWW.Example.com.").unwrap();
        assert_eq!(q.as_str(), "www.example.com");
        assert_eq!(q.label_count(), 3);
        assert_eq!(q.suffix(0), b"www.example.com");
        assert_eq!(q.suffix(1), b"example.com");
        assert_eq!(q.suffix(2), b"com");
        assert_eq!(q.suffix_offset(2), 12);
    }

    #[test]
    fn wire_names_are_read_lower_cased() {
        let packet = b"\x03WwW\x07Example\x03COM\x00\x00\x01";
        let (q, end) = QueryName::from_wire(packet, 0).unwrap();
        assert_eq!(
            (q.as_str(), end, q.label_count()),
            ("www.example.com", 17, 3)
        );
        assert_eq!(q.suffix(1), b"example.com");
        assert_eq!(
            QueryName::from_wire(b"\x00", 0).unwrap_err(),
            NameError::Empty
        );
        assert_eq!(
            QueryName::from_wire(b"\xc0\x0c", 0).unwrap_err(),
            NameError::Malformed
        );
        assert_eq!(
            QueryName::from_wire(b"\x05ab", 0).unwrap_err(),
            NameError::Malformed
        );
        assert!(QueryName::from_wire(b"\x03a b\x00", 0).is_err());
    }

    #[test]
    fn query_names_reject_garbage() {
        assert_eq!(QueryName::parse(".").unwrap_err(), NameError::Empty);
        assert_eq!(QueryName::parse("a..b").unwrap_err(), NameError::EmptyLabel);
        assert!(QueryName::parse("a b.com").is_err());
        assert_eq!(
            QueryName::from_user("Bücher.de").unwrap().as_str(),
            "xn--bcher-kva.de"
        );
    }
}
