//! The HPACK decoder (RFC 7541) for request header blocks: integers, string literals (Huffman
//! codes through `httlib-huffman`'s table-driven decoder), the static table and the client's
//! dynamic table with its size limit and eviction.
//!
//! Why not a ready HPACK crate: the ones that are separate from h2 rebuild a Huffman lookup
//! map for every coded string (three quarters of a DoH request's CPU in a profile), and h2's
//! own is private. The dynamic table is the only state kept per connection, and it holds only
//! what the client chose to index.
//!
//! One leniency: the Huffman decoder accepts padding that is not all ones (§5.2 calls it an
//! error); such a string still decodes to the characters the client coded.

use std::collections::VecDeque;

/// RFC 7541 Appendix A.
const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Each entry's overhead in the table size (§4.1).
const ENTRY_OVERHEAD: usize = 32;

/// A decoding failure: the connection's decoding state is lost (COMPRESSION_ERROR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpackError(pub &'static str);

/// One dynamic-table entry: name and value in one allocation.
struct Entry {
    bytes: Box<[u8]>,
    name_len: usize,
}

impl Entry {
    fn name(&self) -> &[u8] {
        &self.bytes[..self.name_len]
    }

    fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }

    fn size(&self) -> usize {
        self.bytes.len() + ENTRY_OVERHEAD
    }
}

/// The decoding state of one connection.
pub struct Decoder {
    /// Newest first (index 62 is the front).
    table: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    /// The bound this side announced (`SETTINGS_HEADER_TABLE_SIZE`).
    allowed: usize,
}

impl Decoder {
    /// A decoder whose table may grow to `allowed` bytes (the default setting is 4,096).
    pub fn new(allowed: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: allowed,
            allowed,
        }
    }

    /// Decodes one complete header block, calling `field` with each name and value in order.
    pub fn decode(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), HpackError> {
        let mut rest = block;
        let mut fields_seen = false;
        while let Some(&first) = rest.first() {
            if first & 0x80 != 0 {
                // §6.1 indexed field.
                let index = integer(&mut rest, 7)?;
                let (name, value) = self.get(index)?;
                field(name, value);
            } else if first & 0x40 != 0 {
                // §6.2.1 literal with incremental indexing.
                let (name, value) = self.literal(&mut rest, 6)?;
                field(&name, &value);
                self.insert(&name, &value);
            } else if first & 0x20 != 0 {
                // §6.3 dynamic table size update: only before the block's first field.
                if fields_seen {
                    return Err(HpackError("table size update after a field"));
                }
                let size = integer(&mut rest, 5)?;
                if size > self.allowed {
                    return Err(HpackError("table size above the announced setting"));
                }
                self.max_size = size;
                self.evict(0);
                continue;
            } else {
                // §6.2.2 without indexing, §6.2.3 never indexed.
                let (name, value) = self.literal(&mut rest, 4)?;
                field(&name, &value);
            }
            fields_seen = true;
        }
        Ok(())
    }

    /// The entry at `index` (1-based over the static then the dynamic table).
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        if index == 0 {
            return Err(HpackError("index 0"));
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok((name.as_bytes(), value.as_bytes()));
        }
        let entry = self
            .table
            .get(index - STATIC_TABLE.len() - 1)
            .ok_or(HpackError("index beyond the tables"))?;
        Ok((entry.name(), entry.value()))
    }

    /// A literal field whose name index has a `prefix`-bit prefix (0: a literal name follows).
    fn literal(&self, rest: &mut &[u8], prefix: u32) -> Result<(Vec<u8>, Vec<u8>), HpackError> {
        let index = integer(rest, prefix)?;
        let name = match index {
            0 => string(rest)?,
            _ => self.get(index)?.0.to_vec(),
        };
        Ok((name, string(rest)?))
    }

    /// Adds an entry at the front, evicting from the back to make room (§4.4).
    fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // An entry larger than the table empties it and is not added.
            self.table.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        let mut bytes = Vec::with_capacity(name.len() + value.len());
        bytes.extend_from_slice(name);
        bytes.extend_from_slice(value);
        self.table.push_front(Entry {
            bytes: bytes.into_boxed_slice(),
            name_len: name.len(),
        });
        self.size += size;
    }

    /// Evicts the oldest entries until `incoming` more bytes fit.
    fn evict(&mut self, incoming: usize) {
        while self.size + incoming > self.max_size {
            let Some(oldest) = self.table.pop_back() else {
                break;
            };
            self.size -= oldest.size();
        }
        if self.table.is_empty() {
            // An emptied table gives its memory back: idle connections are what add up.
            self.table = VecDeque::new();
        }
    }
}

/// An integer with a `prefix`-bit prefix (§5.1), consumed from the front of `rest`.
fn integer(rest: &mut &[u8], prefix: u32) -> Result<usize, HpackError> {
    let (&first, mut tail) = rest.split_first().ok_or(HpackError("truncated integer"))?;
    let mask = (1usize << prefix) - 1;
    let mut value = usize::from(first) & mask;
    if value == mask {
        let mut shift = 0;
        loop {
            let (&byte, next) = tail.split_first().ok_or(HpackError("truncated integer"))?;
            tail = next;
            // Four continuation bytes reach 2^28, far above any size this server accepts.
            if shift > 21 {
                return Err(HpackError("integer too large"));
            }
            value += usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte & 0x80 == 0 {
                break;
            }
        }
    }
    *rest = tail;
    Ok(value)
}

/// A string literal (§5.2), Huffman-coded or not, consumed from the front of `rest`.
fn string(rest: &mut &[u8]) -> Result<Vec<u8>, HpackError> {
    let huffman = rest.first().is_some_and(|b| b & 0x80 != 0);
    let len = integer(rest, 7)?;
    if rest.len() < len {
        return Err(HpackError("truncated string"));
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    if !huffman {
        return Ok(bytes.to_vec());
    }
    let mut decoded = Vec::with_capacity(len * 8 / 5 + 1);
    httlib_huffman::decode(bytes, &mut decoded, httlib_huffman::DecoderSpeed::FiveBits)
        .map_err(|_| HpackError("bad Huffman code"))?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        let text: String = text.split_whitespace().collect();
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn fields(decoder: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        decoder
            .decode(block, |n, v| {
                out.push((
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                ))
            })
            .unwrap();
        out
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    /// RFC 7541 C.4: three requests with Huffman coding sharing one dynamic table.
    #[test]
    fn rfc_7541_c4_requests_with_huffman_coding() {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            fields(
                &mut decoder,
                &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")
            ),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ])
        );
        assert_eq!(decoder.size, 57);
        assert_eq!(
            fields(&mut decoder, &hex("8286 84be 5886 a8eb 1064 9cbf")),
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ])
        );
        assert_eq!(decoder.size, 110);
        assert_eq!(
            fields(
                &mut decoder,
                &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")
            ),
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ])
        );
        assert_eq!(decoder.size, 164);
        assert_eq!(decoder.table.len(), 3);
    }

    /// RFC 7541 C.5: responses with a 256-byte table, so entries are evicted.
    #[test]
    fn rfc_7541_c5_responses_evict_the_oldest_entries() {
        let mut decoder = Decoder::new(256);
        let first = hex(
            "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
             2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
             6c65 2e63 6f6d",
        );
        assert_eq!(
            fields(&mut decoder, &first)[0],
            pairs(&[(":status", "302")])[0]
        );
        assert_eq!(decoder.size, 222);
        let second = hex("4803 3330 37c1 c0bf");
        assert_eq!(
            fields(&mut decoder, &second),
            pairs(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
                ("location", "https://www.example.com"),
            ])
        );
        // ":status: 302" was evicted to make room for ":status: 307".
        assert_eq!(decoder.size, 222);
        assert_eq!(decoder.table.len(), 4);
        assert_eq!(decoder.get(62).unwrap().1, b"307");
    }

    #[test]
    fn bad_blocks_are_errors_not_panics() {
        let mut decoder = Decoder::new(4096);
        for (block, why) in [
            (&[0x80][..], "index 0"),
            (&[0xc0 | 62][..], "index beyond the tables"),
            (&[0xff][..], "truncated integer"),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f][..],
                "integer too large",
            ),
            (&[0x40, 0x05, b'a'][..], "truncated string"),
            (
                &[0x3f, 0xe2, 0x1f][..],
                "table size above the announced setting",
            ),
            (&[0x82, 0x20][..], "table size update after a field"),
            // 32 one-bits: the EOS code (30 ones) inside a string is invalid (§5.2).
            (
                &[0x00, 0x84, 0xff, 0xff, 0xff, 0xff, 0x00][..],
                "bad Huffman code",
            ),
        ] {
            assert_eq!(decoder.decode(block, |_, _| {}), Err(HpackError(why)));
        }
    }

    #[test]
    fn an_entry_larger_than_the_table_empties_it() {
        let mut decoder = Decoder::new(64);
        decoder.decode(&hex("4001 6101 62"), |_, _| {}).unwrap();
        assert_eq!(decoder.table.len(), 1);
        let mut block = vec![0x40, 0x01, b'c', 0x40];
        block.extend_from_slice(&[b'x'; 64]);
        decoder.decode(&block, |_, _| {}).unwrap();
        assert!(decoder.table.is_empty());
        assert_eq!(decoder.size, 0);
    }
}
