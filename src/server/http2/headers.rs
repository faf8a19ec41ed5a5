//! HTTP/2 header blocks. Requests are decoded with HPACK (RFC 7541, `hpack.rs`) and checked as RFC 9113 §8.2–8.3 asks. Responses are encoded from
//! the static table and plain literals, never indexed: the client's decoder table stays empty,
//! and this side remembers nothing per connection for it.

use http::Method;

use super::hpack::Decoder;

/// The request head of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// `:method`.
    pub method: Method,
    /// `:path` (path and query).
    pub path: String,
    /// `content-type`.
    pub content_type: Option<String>,
}

/// Why a header block was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// HPACK decoding failed: the connection's decoding state is lost (a connection error).
    Compression,
    /// The request is malformed (a stream error): the reason.
    Malformed(&'static str),
}

/// What the pseudo-header fields and fields of one block said.
#[derive(Default)]
struct Fields {
    method: Option<Method>,
    scheme: bool,
    path: Option<String>,
    authority: bool,
    content_type: Option<String>,
    regular_seen: bool,
    size: usize,
    error: Option<&'static str>,
}

impl Fields {
    fn take(&mut self, name: &[u8], value: &[u8], limit: usize) {
        // §6.5.2: the size of a field is its name and value plus 32.
        self.size += name.len() + value.len() + 32;
        if self.size > limit {
            self.fail("header list too large");
            return;
        }
        if name.first() == Some(&b':') {
            if self.regular_seen {
                return self.fail("pseudo-header after a regular header");
            }
            match name {
                b":method" if self.method.is_none() => match Method::from_bytes(value) {
                    Ok(method) => self.method = Some(method),
                    Err(_) => self.fail("bad :method"),
                },
                b":scheme" if !self.scheme => self.scheme = true,
                b":authority" if !self.authority => self.authority = true,
                b":path" if self.path.is_none() => match std::str::from_utf8(value) {
                    Ok(path) if !path.is_empty() => self.path = Some(path.to_string()),
                    _ => self.fail("bad :path"),
                },
                _ => self.fail("unknown or repeated pseudo-header"),
            }
            return;
        }
        self.regular_seen = true;
        if name.iter().any(u8::is_ascii_uppercase) {
            return self.fail("uppercase header name");
        }
        match name {
            // §8.2.2: connection-specific fields have no place in HTTP/2.
            b"connection" | b"keep-alive" | b"proxy-connection" | b"transfer-encoding"
            | b"upgrade" => self.fail("connection-specific header"),
            b"te" if value != b"trailers" => self.fail("te other than trailers"),
            b"content-type" => self.content_type = Some(String::from_utf8_lossy(value).into()),
            _ => {}
        }
    }

    fn fail(&mut self, reason: &'static str) {
        self.error.get_or_insert(reason);
    }
}

/// Decodes a request's header block (all CONTINUATION fragments joined). The whole block is
/// always decoded, even when the request turns out malformed, so the decoder's table stays in
/// step with the client's encoder. `limit` bounds the decoded header list.
pub fn decode_request(
    decoder: &mut Decoder,
    block: &[u8],
    limit: usize,
) -> Result<RequestHead, HeadError> {
    let mut fields = Fields::default();
    decoder
        .decode(block, |name, value| fields.take(name, value, limit))
        .map_err(|_| HeadError::Compression)?;
    if let Some(reason) = fields.error {
        return Err(HeadError::Malformed(reason));
    }
    match (fields.method, fields.path) {
        (Some(method), Some(path)) if fields.scheme => Ok(RequestHead {
            method,
            path,
            content_type: fields.content_type,
        }),
        _ => Err(HeadError::Malformed("missing :method, :scheme or :path")),
    }
}

/// Decodes a trailer block (after a request body): only its validity matters.
pub fn decode_trailers(decoder: &mut Decoder, block: &[u8], limit: usize) -> Result<(), HeadError> {
    let mut size = 0usize;
    let mut pseudo = false;
    decoder
        .decode(block, |name, value| {
            size += name.len() + value.len() + 32;
            pseudo |= name.first() == Some(&b':');
        })
        .map_err(|_| HeadError::Compression)?;
    if pseudo {
        return Err(HeadError::Malformed("pseudo-header in trailers"));
    }
    if size > limit {
        return Err(HeadError::Malformed("trailers too large"));
    }
    Ok(())
}

/// Static-table indices (RFC 7541 Appendix A) of `:status` values and of the header names
/// this server sends.
const STATUS_INDEX: [(u16, u8); 7] = [
    (200, 8),
    (204, 9),
    (206, 10),
    (304, 11),
    (400, 12),
    (404, 13),
    (500, 14),
];
const NAME_INDEX: [(&str, u8); 6] = [
    ("allow", 22),
    ("cache-control", 24),
    ("content-disposition", 25),
    ("content-length", 28),
    ("content-type", 31),
    ("location", 46),
];
const STATUS_NAME_INDEX: u8 = 8;

/// Encodes a response head: `:status`, then `headers` (names lowercased), then
/// `content-length`. `table_size_update` first tells the client's decoder that this encoder
/// uses no dynamic table (RFC 7541 §6.3), as it must after the client changed its size.
pub fn encode_response(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    content_length: usize,
    table_size_update: bool,
) {
    if table_size_update {
        integer(out, 0b0010_0000, 5, 0);
    }
    match STATUS_INDEX.iter().find(|(code, _)| *code == status) {
        Some((_, index)) => integer(out, 0x80, 7, usize::from(*index)),
        None => literal(out, Some(STATUS_NAME_INDEX), ":status", &status.to_string()),
    }
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if name == "content-length" {
            continue;
        }
        let index = NAME_INDEX.iter().find(|(n, _)| *n == name).map(|(_, i)| *i);
        literal(out, index, &name, value);
    }
    literal(out, Some(28), "content-length", &content_length.to_string());
}

/// A literal field without indexing (§6.2.2): by static name index, or with a literal name.
fn literal(out: &mut Vec<u8>, name_index: Option<u8>, name: &str, value: &str) {
    match name_index {
        Some(index) => integer(out, 0, 4, usize::from(index)),
        None => {
            out.push(0);
            string(out, name.as_bytes());
        }
    }
    string(out, value.as_bytes());
}

/// A string literal without Huffman coding (§5.2).
fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    integer(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

/// An integer with an N-bit prefix (§5.1); `high` holds the first byte's bits above it.
fn integer(out: &mut Vec<u8>, high: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(high | value as u8);
        return;
    }
    out.push(high | max as u8);
    value -= max;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes with loona-hpack, a decoder independent of ours.
    fn decoded(block: &[u8]) -> Vec<(String, String)> {
        loona_hpack::Decoder::new()
            .decode(block)
            .unwrap()
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect()
    }

    #[test]
    fn integers_follow_rfc_7541_examples() {
        // C.1.1: 10 in a 5-bit prefix; C.1.2: 1337 in a 5-bit prefix.
        let mut out = Vec::new();
        integer(&mut out, 0, 5, 10);
        assert_eq!(out, [0x0a]);
        out.clear();
        integer(&mut out, 0, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn responses_decode_with_an_independent_hpack_decoder() {
        let mut out = Vec::new();
        let long = "x".repeat(300);
        encode_response(
            &mut out,
            200,
            &[
                ("Content-Type", "application/dns-message"),
                ("cache-control", "max-age=300"),
                ("X-Content-Type-Options", "nosniff"),
                ("content-security-policy", &long),
            ],
            42,
            true,
        );
        // The block starts with a size update to 0, which loona-hpack accepts at the start.
        assert_eq!(
            decoded(&out),
            [
                (":status", "200"),
                ("content-type", "application/dns-message"),
                ("cache-control", "max-age=300"),
                ("x-content-type-options", "nosniff"),
                ("content-security-policy", long.as_str()),
                ("content-length", "42"),
            ]
            .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        out.clear();
        encode_response(&mut out, 415, &[], 0, false);
        assert_eq!(
            decoded(&out),
            [(":status", "415"), ("content-length", "0")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    /// RFC 7541 C.4.1: a GET request with Huffman-coded literals, one of them indexed into the
    /// dynamic table, then C.4.2 using that entry.
    #[test]
    fn requests_decode_with_the_dynamic_table() {
        let mut decoder = Decoder::new(4096);
        let first = hex("828684418cf1e3c2e5f23a6ba0ab90f4ff");
        let head = decode_request(&mut decoder, &first, 16_384).unwrap();
        assert_eq!(head.method, Method::GET);
        assert_eq!(head.path, "/");
        let second = hex("828684be5886a8eb10649cbf");
        let head = decode_request(&mut decoder, &second, 16_384).unwrap();
        assert_eq!(head.path, "/");
    }

    #[test]
    fn malformed_requests_are_stream_errors_and_bad_hpack_a_connection_error() {
        let mut decoder = Decoder::new(4096);
        let block = |fields: &[(&str, &str)]| {
            let mut out = Vec::new();
            for (n, v) in fields {
                literal(&mut out, None, n, v);
            }
            out
        };
        let good = [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", "/dns-query"),
        ];
        assert!(decode_request(&mut decoder, &block(&good), 16_384).is_ok());
        for (fields, reason) in [
            (&good[..2], "missing :method, :scheme or :path"),
            (
                &[
                    (":method", "GET"),
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":path", "/"),
                ][..],
                "unknown or repeated pseudo-header",
            ),
            (
                &[
                    (":method", "GET"),
                    ("accept", "*/*"),
                    (":scheme", "https"),
                    (":path", "/"),
                ][..],
                "pseudo-header after a regular header",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":path", "/"),
                    ("Accept", "x"),
                ][..],
                "uppercase header name",
            ),
            (
                &[
                    (":method", "GET"),
                    (":scheme", "https"),
                    (":path", "/"),
                    ("connection", "x"),
                ][..],
                "connection-specific header",
            ),
        ] {
            assert_eq!(
                decode_request(&mut decoder, &block(fields), 16_384),
                Err(HeadError::Malformed(reason))
            );
        }
        assert_eq!(
            decode_request(&mut decoder, &block(&good), 40),
            Err(HeadError::Malformed("header list too large"))
        );
        // Index 70 is in neither table.
        assert_eq!(
            decode_request(&mut decoder, &[0xc6], 16_384),
            Err(HeadError::Compression)
        );
        assert_eq!(
            decode_trailers(&mut decoder, &block(&[(":path", "/")]), 16_384),
            Err(HeadError::Malformed("pseudo-header in trailers"))
        );
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
