//! The UDP fast path: the common query shapes answered straight from the packet's bytes.
//!
//! A plain query (one question, class IN, opcode QUERY, optionally one EDNS(0) OPT record) is
//! parsed in place, decided, and — when it is refused, blocked, or answered by a fresh cache
//! entry without a CNAME — answered by copying the client's header and question and appending
//! the synthesised or cached sections, TTLs counted down. Anything else (other shapes, cache
//! misses, rewrites, answers that would need truncation) returns `None` and takes the general
//! path in `handler.rs`, which produces the same answers through hickory's message types.

use std::net::IpAddr;

use crate::name::QueryName;
use crate::policy::{BlockAnswer, Policy, Verdict};
use crate::resolve::cache::WireAnswer;

use super::response::{
    ADVERTISED_PAYLOAD, BLOCK_TTL, EDE_BLOCKED, EDE_OPTION, EDE_PROHIBITED, blocked_text,
};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const TYPE_ANY: u16 = 255;

/// A query parsed in place.
pub struct WireQuery<'a> {
    packet: &'a [u8],
    /// Offset just past the question.
    question_end: usize,
    /// The normalised name.
    pub name: QueryName,
    /// The lower-cased wire name followed by the type: the cache key.
    pub key: ([u8; 257], usize),
    /// Question type.
    pub qtype: u16,
    /// The client's EDNS payload size and DO bit, if it sent EDNS(0).
    edns: Option<(u16, bool)>,
    /// Came over a stream (TCP, DoT, DoH): no UDP size limit applies.
    stream: bool,
}

impl<'a> WireQuery<'a> {
    /// Parses the shapes the fast path handles; `None` for anything else.
    pub fn parse(packet: &'a [u8]) -> Option<WireQuery<'a>> {
        let header = packet.get(..12)?;
        // QR clear, opcode QUERY, TC clear; one question, no answers or authority, at most
        // one additional (the OPT record).
        if header[2] & 0xfa != 0
            || header[4..10] != [0, 1, 0, 0, 0, 0]
            || header[10] != 0
            || header[11] > 1
        {
            return None;
        }
        let (name, name_end) = QueryName::from_wire(packet, 12).ok()?;
        let fixed = packet.get(name_end..name_end + 4)?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        if fixed[2..4] != [0, 1] || qtype == TYPE_ANY || qtype == TYPE_OPT {
            return None;
        }
        let question_end = name_end + 4;
        let edns = if header[11] == 1 {
            // Root owner, type OPT, class = payload size, TTL = ext-rcode/version/flags.
            let opt = packet.get(question_end..question_end + 11)?;
            if opt[0] != 0 || opt[1..3] != [0, 41] || opt[6] != 0 {
                return None;
            }
            let rdlen = u16::from_be_bytes([opt[9], opt[10]]) as usize;
            if question_end + 11 + rdlen != packet.len() {
                return None;
            }
            Some((u16::from_be_bytes([opt[3], opt[4]]), opt[7] & 0x80 != 0))
        } else if question_end == packet.len() {
            None
        } else {
            return None;
        };
        let wire_name = &packet[12..name_end];
        let mut key = ([0u8; 257], wire_name.len() + 2);
        for (dst, src) in key.0.iter_mut().zip(wire_name) {
            *dst = src.to_ascii_lowercase();
        }
        key.0[wire_name.len()..wire_name.len() + 2].copy_from_slice(&qtype.to_be_bytes());
        Some(WireQuery {
            packet,
            question_end,
            name,
            key,
            qtype,
            edns,
            stream: false,
        })
    }

    /// The cache key bytes.
    pub fn key(&self) -> &[u8] {
        &self.key.0[..self.key.1]
    }

    /// Marks the query as arriving over a stream, where answers up to 65,535 bytes fit.
    pub fn over_stream(mut self) -> WireQuery<'a> {
        self.stream = true;
        self
    }

    /// Largest response the client takes: its UDP payload size, or a whole stream message.
    fn limit(&self) -> usize {
        if self.stream {
            return usize::from(u16::MAX);
        }
        self.edns.map_or(512, |(size, _)| {
            size.clamp(512, ADVERTISED_PAYLOAD) as usize
        })
    }

    /// Header and question of a response: the client's id, opcode, RD, CD and question bytes
    /// (so the qname's case is echoed), QR and RA set.
    fn start(&self, rcode: u8, ancount: u16, nscount: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.packet[..2]);
        out.push(0x80 | (self.packet[2] & 0x79));
        out.push(0x80 | (self.packet[3] & 0x10) | (rcode & 0x0f));
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&ancount.to_be_bytes());
        out.extend_from_slice(&nscount.to_be_bytes());
        out.extend_from_slice(&[0, u8::from(self.edns.is_some())]);
        out.extend_from_slice(&self.packet[12..self.question_end]);
        out
    }

    /// Appends our OPT record (when the client sent one), with an Extended DNS Error if given.
    fn finish(&self, mut out: Vec<u8>, ede: Option<(u16, &str)>) -> Option<Vec<u8>> {
        if let Some((_, dnssec_ok)) = self.edns {
            out.extend_from_slice(&[0, 0, 41]);
            out.extend_from_slice(&ADVERTISED_PAYLOAD.to_be_bytes());
            out.extend_from_slice(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0]);
            match ede {
                Some((code, text)) => {
                    let len = 2 + text.len();
                    out.extend_from_slice(&((4 + len) as u16).to_be_bytes());
                    out.extend_from_slice(&EDE_OPTION.to_be_bytes());
                    out.extend_from_slice(&(len as u16).to_be_bytes());
                    out.extend_from_slice(&code.to_be_bytes());
                    out.extend_from_slice(text.as_bytes());
                }
                None => out.extend_from_slice(&[0, 0]),
            }
        }
        (out.len() <= self.limit()).then_some(out)
    }

    /// REFUSED with EDE 18 and `text`; without text, EDE 18 only if the answer stays no
    /// larger than the query (a refusal must never amplify; see `refusals.rs`).
    pub fn refused(&self, text: Option<&str>) -> Option<Vec<u8>> {
        let out = self.start(5, 0, 0);
        match text {
            Some(text) => self.finish(out, Some((EDE_PROHIBITED, text))),
            None => match self.finish(out.clone(), Some((EDE_PROHIBITED, ""))) {
                Some(with_ede) if with_ede.len() <= self.packet.len() => Some(with_ede),
                _ => self.finish(out, None),
            },
        }
    }

    /// A block per the profile's answer, with EDE 15 naming the category.
    pub fn blocked(&self, answer: BlockAnswer, category: &str) -> Option<Vec<u8>> {
        let record: Option<(u16, Vec<u8>)> = match (answer, self.qtype) {
            (BlockAnswer::Nxdomain, _) => None,
            (BlockAnswer::Null, TYPE_A) => Some((TYPE_A, vec![0; 4])),
            (BlockAnswer::Null, TYPE_AAAA) => Some((TYPE_AAAA, vec![0; 16])),
            (BlockAnswer::Address(IpAddr::V4(ip)), TYPE_A) => Some((TYPE_A, ip.octets().to_vec())),
            (BlockAnswer::Address(IpAddr::V6(ip)), TYPE_AAAA) => {
                Some((TYPE_AAAA, ip.octets().to_vec()))
            }
            _ => None,
        };
        let rcode = if answer == BlockAnswer::Nxdomain {
            3
        } else {
            0
        };
        let mut out = self.start(rcode, u16::from(record.is_some()), 0);
        if let Some((rtype, data)) = record {
            out.extend_from_slice(&[0xc0, 12]);
            out.extend_from_slice(&rtype.to_be_bytes());
            out.extend_from_slice(&[0, 1]);
            out.extend_from_slice(&BLOCK_TTL.to_be_bytes());
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(&data);
        }
        self.finish(out, Some((EDE_BLOCKED, &blocked_text(category))))
    }

    /// A cached answer, TTLs counted down by `age` seconds.
    pub fn cached(&self, wire: &WireAnswer, age: u32) -> Option<Vec<u8>> {
        let rcode = u16::from(wire.rcode) as u8;
        if u16::from(wire.rcode) > 15 {
            return None;
        }
        let mut out = self.start(rcode, wire.ancount, wire.nscount);
        let base = out.len();
        out.extend_from_slice(&wire.sections);
        for &(at, ttl) in &wire.ttls {
            let at = base + at as usize;
            out[at..at + 4].copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
        }
        self.finish(out, None)
    }
}

/// What the fast path decided, for metrics.
pub enum FastOutcome {
    /// Refused.
    Refuse,
    /// Blocked, with the category and profile names.
    Block,
    /// Answered from the cache.
    Allow,
}

/// Answers a parsed query with `decision` (made by the caller: by network for plain DNS, by
/// device token for DoT and DoH); returns the answer bytes, or `None` to take the general path.
pub fn answer(
    query: &WireQuery<'_>,
    policy: &Policy,
    decision: crate::policy::Decision,
    cache: &crate::resolve::cache::Cache,
    on_block: impl FnOnce(&crate::policy::Decision, &str, &str),
) -> Option<(Vec<u8>, FastOutcome)> {
    match decision.verdict {
        Verdict::Block(block) => {
            let category = decision.rule.map_or("policy", |r| policy.rule_category(&r));
            let profile = decision
                .profile
                .map_or("", |p| policy.profiles()[p as usize].name.as_str());
            let bytes = query.blocked(block, category)?;
            on_block(&decision, category, profile);
            Some((bytes, FastOutcome::Block))
        }
        Verdict::Allow => {
            let (wire, age) = cache.get_wire(query.key())?;
            query.cached(&wire, age).map(|b| (b, FastOutcome::Allow))
        }
        // Refusals are the handler's (what they say depends on the transport and budget).
        Verdict::Rewrite(_) | Verdict::Refuse => None,
    }
}
