//! Reading a query, once: the common shape straight from the packet's bytes, anything unusual
//! through hickory's full message parser, both ending in the same [`Request`] (or an error
//! answer, or nothing).
//!
//! The common shape is one question, QR and TC clear, no answer or authority records, and at
//! most one additional record, an EDNS(0) OPT. Other shapes (several questions, other opcodes,
//! other classes, EDNS versions above 0, extra additional records) are decoded by hickory; the
//! ones that can be answered normally become a `Request` like any other, the rest get FORMERR,
//! NOTIMP, BADVERS or REFUSED here.

use std::borrow::Cow;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::serialize::binary::BinEncodable;

use super::answer::{self, Frame};
use crate::metrics::Outcome;
use crate::name::QueryName;

/// One question, ready to be decided and answered.
pub struct Request<'a> {
    /// What the answer echoes.
    pub frame: Frame<'a>,
    /// The normalised name.
    pub name: QueryName,
    /// Question type.
    pub qtype: u16,
    /// The lower-cased wire name followed by the type: the cache key, without allocating.
    key: ([u8; 257], usize),
}

impl Request<'_> {
    /// The cache key bytes.
    pub fn key(&self) -> &[u8] {
        &self.key.0[..self.key.1]
    }

    /// The same request owning its bytes, to wait for an upstream.
    pub fn into_owned(self) -> Request<'static> {
        Request {
            frame: self.frame.into_owned(),
            name: self.name,
            qtype: self.qtype,
            key: self.key,
        }
    }
}

/// What reading a packet gave.
// The large variant is the common one; boxing it would allocate for every query.
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'a> {
    /// A question to decide.
    Query(Request<'a>),
    /// An answer already written (an error, or REFUSED for a name that is no host name; `None`
    /// when not even an error can be written), and how it counts.
    Answered(Option<Vec<u8>>, Outcome),
    /// Not a query (a response, or shorter than a header): nothing is sent, so schooldns can
    /// never be made to answer answers.
    Ignored,
}

/// Reads one message; `stream` when it came over TCP, DoT or DoH (no UDP size limit).
pub fn parse(packet: &[u8], stream: bool) -> Parsed<'_> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return Parsed::Ignored;
    }
    match parse_common(packet, stream) {
        Some(request) => Parsed::Query(request),
        None => parse_unusual(packet, stream),
    }
}

/// The common shape, in place; `None` for anything else.
fn parse_common(packet: &[u8], stream: bool) -> Option<Request<'_>> {
    let header = packet.get(..12)?;
    // Opcode QUERY, TC clear; one question, no answers or authority, at most one additional.
    if header[2] & 0x7a != 0
        || header[4..10] != [0, 1, 0, 0, 0, 0]
        || header[10] != 0
        || header[11] > 1
    {
        return None;
    }
    let (name, name_end) = QueryName::from_wire(packet, 12).ok()?;
    let fixed = packet.get(name_end..name_end + 4)?;
    if fixed[2..4] != [0, 1] {
        return None;
    }
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
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
    let frame = Frame::new(
        [header[0], header[1], header[2], header[3]],
        Cow::Borrowed(&packet[12..question_end]),
        edns,
        packet.len(),
        stream,
    );
    Some(Request {
        frame,
        key: key(&packet[12..name_end], qtype),
        name,
        qtype,
    })
}

/// The cache key of a wire name and type.
fn key(wire_name: &[u8], qtype: u16) -> ([u8; 257], usize) {
    let mut key = ([0u8; 257], wire_name.len() + 2);
    for (dst, src) in key.0.iter_mut().zip(wire_name) {
        *dst = src.to_ascii_lowercase();
    }
    key.0[wire_name.len()..wire_name.len() + 2].copy_from_slice(&qtype.to_be_bytes());
    key
}

/// Every other shape, through hickory.
fn parse_unusual(packet: &[u8], stream: bool) -> Parsed<'_> {
    let Ok(message) = Message::from_vec(packet) else {
        return Parsed::Answered(answer::formerr_from_header(packet), Outcome::Error);
    };
    if message.message_type() != MessageType::Query {
        return Parsed::Ignored;
    }
    let error = |rcode| Parsed::Answered(answer::error_reply(&message, rcode), Outcome::Error);
    if message.op_code() != OpCode::Query {
        return error(ResponseCode::NotImp);
    }
    if message.queries().len() != 1 {
        return error(ResponseCode::FormErr);
    }
    let edns = message.extensions().as_ref();
    if edns.is_some_and(|e| e.version() > 0) {
        return error(ResponseCode::BADVERS);
    }
    let question = &message.queries()[0];
    let Ok(name) = QueryName::from_ascii_bytes(question.name().to_ascii().as_bytes()) else {
        // Not a host name (the root, binary labels): nothing a student device needs, and
        // nothing a list could be matched against, so it is not forwarded.
        return Parsed::Answered(
            answer::error_reply(&message, ResponseCode::Refused),
            Outcome::Refuse,
        );
    };
    let (Ok(question_bytes), Ok(wire_name)) = (question.to_bytes(), question.name().to_bytes())
    else {
        return Parsed::Answered(answer::formerr_from_header(packet), Outcome::Error);
    };
    let qtype = u16::from(question.query_type());
    let frame = Frame::new(
        [packet[0], packet[1], packet[2], packet[3]],
        Cow::Owned(question_bytes),
        edns.map(|e| (e.max_payload(), e.flags().dnssec_ok)),
        packet.len(),
        stream,
    );
    Parsed::Query(Request {
        frame,
        key: key(&wire_name, qtype),
        name,
        qtype,
    })
}
