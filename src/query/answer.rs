//! The one writer of answers: every byte schooldns sends to a DNS client, on every transport,
//! is written here.
//!
//! An answer to a well-formed query is the client's header (id, opcode, RD, CD) and question
//! bytes, echoed exactly (so the qname's case comes back as asked), followed by sections and
//! our OPT record when the client sent one. The sections are either synthesised here (blocks,
//! the RFC 8482 ANY answer) or an [`Sections`] value: an upstream answer's records encoded once,
//! when it arrived, with the offset of each TTL so that a cached answer is sent by copying and
//! counting TTLs down. A UDP answer larger than the client takes goes back as header and
//! question with TC set. Queries too broken to echo (several questions, unknown opcodes, EDNS
//! versions above 0) get an error written through hickory's message types.

use std::borrow::Cow;
use std::net::IpAddr;

use hickory_proto::ProtoError;
use hickory_proto::op::message::emit_message_parts;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

use crate::name::QueryName;
use crate::policy::BlockAnswer;

/// EDE info-code 15, "Blocked" (RFC 8914 §4.16).
pub const EDE_BLOCKED: u16 = 15;
/// EDE info-code 18, "Prohibited" (RFC 8914 §4.19): the client may not use this resolver.
pub const EDE_PROHIBITED: u16 = 18;
/// EDE option code (RFC 8914 §2).
pub const EDE_OPTION: u16 = 15;
/// TTL of synthesised block answers: short, so a list change reaches devices quickly.
pub const BLOCK_TTL: u32 = 60;
/// TTL of an answer served stale (RFC 8767 §4 recommends 30 s).
pub const STALE_TTL: u32 = 30;
/// UDP payload size advertised to clients (the 2020 DNS flag day value).
pub const ADVERTISED_PAYLOAD: u16 = 1232;
/// TTL of the RFC 8482 answer to ANY.
const ANY_TTL: u32 = 3600;

const TYPE_A: u16 = 1;
const TYPE_HINFO: u16 = 13;
const TYPE_SOA: u16 = 6;
const TYPE_AAAA: u16 = 28;

/// EDE text of a block: what `dig` shows a teacher asking why.
pub fn blocked_text(category: &str) -> String {
    format!("blocked by schooldns: {category}")
}

/// What an answer echoes of its query, and how large it may be.
#[derive(Clone)]
pub struct Frame<'a> {
    /// Id and the two flag bytes, as received.
    header: [u8; 4],
    /// The question as received (name case included), type and class.
    question: Cow<'a, [u8]>,
    /// The client's EDNS payload size and DO bit, if it sent EDNS(0).
    edns: Option<(u16, bool)>,
    /// Size of the query, which a refusal to a stranger must not exceed.
    query_len: usize,
    /// Over a stream (TCP, DoT, DoH): no UDP size limit applies.
    stream: bool,
}

impl<'a> Frame<'a> {
    /// A frame echoing `header` (the first four bytes of the query) and `question`.
    pub fn new(
        header: [u8; 4],
        question: Cow<'a, [u8]>,
        edns: Option<(u16, bool)>,
        query_len: usize,
        stream: bool,
    ) -> Frame<'a> {
        Frame {
            header,
            question,
            edns,
            query_len,
            stream,
        }
    }

    /// The same frame owning its question, to outlive the packet (a query waiting upstream).
    pub fn into_owned(self) -> Frame<'static> {
        Frame {
            question: Cow::Owned(self.question.into_owned()),
            ..self
        }
    }

    /// Largest answer the client takes: its UDP payload size, or a whole stream message.
    fn limit(&self) -> usize {
        if self.stream {
            return usize::from(u16::MAX);
        }
        self.edns.map_or(512, |(size, _)| {
            size.clamp(512, ADVERTISED_PAYLOAD) as usize
        })
    }

    /// Header and question: the client's id, opcode, RD and CD, QR and RA set (TC too when
    /// `truncated`).
    fn start(&self, rcode: u8, ancount: u16, nscount: u16, truncated: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.header[..2]);
        out.push(0x80 | (self.header[2] & 0x79) | if truncated { 0x02 } else { 0 });
        out.push(0x80 | (self.header[3] & 0x10) | (rcode & 0x0f));
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&ancount.to_be_bytes());
        out.extend_from_slice(&nscount.to_be_bytes());
        out.extend_from_slice(&[0, u8::from(self.edns.is_some())]);
        out.extend_from_slice(&self.question);
        out
    }

    /// Appends our OPT record (when the client sent one), with an Extended DNS Error if given.
    fn opt(&self, out: &mut Vec<u8>, ede: Option<(u16, &str)>) {
        let Some((_, dnssec_ok)) = self.edns else {
            return;
        };
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

    /// Finishes an answer: the OPT record, then, if the whole is more than a UDP client takes,
    /// header and question only with TC set, and the client retries over TCP (RFC 1035 §4.2.1).
    fn finish(&self, mut out: Vec<u8>, ede: Option<(u16, &str)>) -> Vec<u8> {
        self.opt(&mut out, ede);
        if out.len() <= self.limit() {
            return out;
        }
        let rcode = out[3] & 0x0f;
        let mut cut = self.start(rcode, 0, 0, true);
        self.opt(&mut cut, None);
        cut
    }

    /// REFUSED with EDE 18 and `text`; without text, EDE 18 only if the answer stays no
    /// larger than the query (a refusal to a stranger must never amplify; see `refusals.rs`).
    pub fn refused(&self, text: Option<&str>) -> Vec<u8> {
        let out = self.start(5, 0, 0, false);
        match text {
            Some(text) => self.finish(out, Some((EDE_PROHIBITED, text))),
            None => {
                let with_ede = self.finish(out.clone(), Some((EDE_PROHIBITED, "")));
                if with_ede.len() <= self.query_len {
                    with_ede
                } else {
                    self.finish(out, None)
                }
            }
        }
    }

    /// An answer with no records: SERVFAIL when no upstream answered, for instance.
    pub fn rcode_only(&self, rcode: ResponseCode) -> Vec<u8> {
        self.finish(self.start(u16::from(rcode) as u8, 0, 0, false), None)
    }

    /// A block per the profile's `answer` for a question of type `qtype`, with EDE 15 naming
    /// the category, cacheable for `ttl` seconds ([`BLOCK_TTL`], or less before a schedule's
    /// edge): the address record carries it, and an answer without one (NXDOMAIN, NODATA)
    /// carries an SOA with it, since a device caches a negative answer for the SOA's TTL.
    pub fn blocked(&self, qtype: u16, answer: BlockAnswer, category: &str, ttl: u32) -> Vec<u8> {
        let record: Option<(u16, Vec<u8>)> = match (answer, qtype) {
            (BlockAnswer::Nxdomain, _) => None,
            (BlockAnswer::Null, TYPE_A) => Some((TYPE_A, vec![0; 4])),
            (BlockAnswer::Null, TYPE_AAAA) => Some((TYPE_AAAA, vec![0; 16])),
            (BlockAnswer::Address(IpAddr::V4(ip)), TYPE_A) => Some((TYPE_A, ip.octets().to_vec())),
            (BlockAnswer::Address(IpAddr::V6(ip)), TYPE_AAAA) => {
                Some((TYPE_AAAA, ip.octets().to_vec()))
            }
            // Other types, or the other address family: NODATA.
            _ => None,
        };
        let rcode = if answer == BlockAnswer::Nxdomain {
            3
        } else {
            0
        };
        let mut out = self.start(
            rcode,
            u16::from(record.is_some()),
            u16::from(record.is_none()),
            false,
        );
        match record {
            Some((rtype, data)) => push_record(&mut out, rtype, ttl, &data),
            None => push_record(&mut out, TYPE_SOA, ttl, &negative_soa(ttl)),
        }
        self.finish(out, Some((EDE_BLOCKED, &blocked_text(category))))
    }

    /// RFC 8482: ANY is answered with one synthesised HINFO record instead of everything.
    pub fn minimal_any(&self) -> Vec<u8> {
        let mut out = self.start(0, 1, 0, false);
        // CPU "RFC8482", OS "" (two character-strings).
        push_record(&mut out, TYPE_HINFO, ANY_TTL, b"\x07RFC8482\x00");
        self.finish(out, None)
    }

    /// An upstream answer (fresh, cached or stale): the sections copied after the client's
    /// question with every TTL counted down by `age` seconds, or set to [`STALE_TTL`], and
    /// none above `cap` (the seconds left before a schedule's edge changes the answer).
    pub fn sections(&self, sections: &Sections, age: u32, stale: bool, cap: u32) -> Vec<u8> {
        let rcode = u16::from(sections.rcode);
        // Extended rcodes need the OPT record's high bits; upstream answers to our plain
        // queries never carry one, and one that does is not passed on half-written.
        if rcode > 15 {
            return self.rcode_only(ResponseCode::ServFail);
        }
        let mut out = self.start(rcode as u8, sections.ancount, sections.nscount, false);
        let base = out.len();
        out.extend_from_slice(&sections.bytes);
        for &(at, ttl) in &sections.ttls {
            let at = base + at as usize;
            let ttl = if stale {
                STALE_TTL
            } else {
                ttl.saturating_sub(age)
            }
            .min(cap);
            out[at..at + 4].copy_from_slice(&ttl.to_be_bytes());
        }
        let ede = sections.ede.as_ref().map(|(code, text)| (*code, &**text));
        self.finish(out, ede)
    }
}

/// The SOA data of a synthesised negative answer: root MNAME and RNAME, and a MINIMUM of
/// `ttl`, so the negative answer is cached no longer than `ttl` (RFC 2308 §5).
fn negative_soa(ttl: u32) -> [u8; 22] {
    let mut data = [0u8; 22];
    // MNAME ".", RNAME ".", then SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
    let fields = [1u32, 1800, 900, 604_800, ttl];
    for (i, field) in fields.iter().enumerate() {
        data[2 + i * 4..6 + i * 4].copy_from_slice(&field.to_be_bytes());
    }
    data
}

/// Appends one record owned by the question's name (a pointer to offset 12).
fn push_record(out: &mut Vec<u8>, rtype: u16, ttl: u32, data: &[u8]) {
    out.extend_from_slice(&[0xc0, 12]);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// An upstream answer's sections, encoded once as they follow a question of the same name (any
/// case: compression pointers only assume the question at offset 12), with what the pipeline
/// needs to judge it without decoding it again.
#[derive(Debug)]
pub struct Sections {
    /// Response code.
    pub rcode: ResponseCode,
    /// Answer records.
    pub ancount: u16,
    /// Authority records.
    pub nscount: u16,
    /// Answer and authority sections.
    bytes: Vec<u8>,
    /// Offset in `bytes` of every record's TTL, with the TTL to count down from.
    ttls: Vec<(u16, u32)>,
    /// Targets of the CNAME records in the answer section, judged against each client's
    /// profile (an allowed name may lead into a blocked one).
    pub cname_targets: Vec<QueryName>,
    /// The upstream's Extended DNS Error, passed on unchanged.
    ede: Option<(u16, Box<str>)>,
}

impl Sections {
    /// The longest TTL of its records (0 when it has none).
    pub fn max_ttl(&self) -> u32 {
        self.ttls.iter().map(|&(_, ttl)| ttl).max().unwrap_or(0)
    }

    /// Encodes `answers` and `authority` as the answer to (`name`, `qtype`), no TTL above
    /// `max_ttl` (a cache entry's lifetime: RFC 2308 caps a negative answer's SOA at its
    /// MINIMUM), keeping the upstream's EDE from `ede`.
    pub fn encode(
        name: &Name,
        qtype: RecordType,
        rcode: ResponseCode,
        answers: &[Record],
        authority: &[Record],
        max_ttl: u32,
        ede: Option<(u16, Box<str>)>,
    ) -> Option<Sections> {
        let mut message = Message::new();
        message.add_query(Query::query(name.clone(), qtype));
        message.add_answers(answers.iter().cloned());
        message.add_name_servers(authority.iter().cloned());
        let bytes = to_wire(&message)?;
        // The question's name is written whole (nothing before it to point to).
        let mut start = 12;
        while *bytes.get(start)? != 0 {
            start += 1 + usize::from(bytes[start]);
        }
        let bytes = bytes.get(start + 5..)?.to_vec();
        // Walk the records: name (labels or a pointer), type, class, TTL, length, data.
        let count = answers.len() + authority.len();
        let mut ttls = Vec::with_capacity(count);
        let mut at = 0usize;
        for _ in 0..count {
            loop {
                let len = *bytes.get(at)? as usize;
                if len == 0 {
                    at += 1;
                    break;
                }
                if len & 0xc0 == 0xc0 {
                    at += 2;
                    break;
                }
                at += 1 + len;
            }
            let ttl_at = at + 4;
            let ttl = u32::from_be_bytes(bytes.get(ttl_at..ttl_at + 4)?.try_into().ok()?);
            ttls.push((u16::try_from(ttl_at).ok()?, ttl.min(max_ttl)));
            let rdlen = u16::from_be_bytes(bytes.get(ttl_at + 4..ttl_at + 6)?.try_into().ok()?);
            at = ttl_at + 6 + rdlen as usize;
        }
        if at != bytes.len() {
            return None;
        }
        let cname_targets = answers
            .iter()
            .filter_map(|r| match r.data() {
                RData::CNAME(target) => {
                    QueryName::from_ascii_bytes(target.0.to_ascii().as_bytes()).ok()
                }
                _ => None,
            })
            .collect();
        Some(Sections {
            rcode,
            ancount: u16::try_from(answers.len()).ok()?,
            nscount: u16::try_from(authority.len()).ok()?,
            bytes,
            ttls,
            cname_targets,
            ede,
        })
    }

    /// The answer records back as hickory records, TTLs counted down by `age` (a safe-search
    /// rewrite puts them behind its CNAME, so they are encoded again for another owner).
    pub fn answer_records(&self, name: &Name, qtype: RecordType, age: u32) -> Option<Vec<Record>> {
        let mut packet = vec![0, 0, 0x80, 0, 0, 1];
        packet.extend_from_slice(&self.ancount.to_be_bytes());
        packet.extend_from_slice(&self.nscount.to_be_bytes());
        packet.extend_from_slice(&[0, 0]);
        packet.extend_from_slice(&name.to_bytes().ok()?);
        packet.extend_from_slice(&u16::from(qtype).to_be_bytes());
        packet.extend_from_slice(&[0, 1]);
        packet.extend_from_slice(&self.bytes);
        let message = Message::from_vec(&packet).ok()?;
        let mut records = message.answers().to_vec();
        for record in &mut records {
            record.set_ttl(record.ttl().saturating_sub(age));
        }
        Some(records)
    }

    /// The CNAME record a safe-search rewrite answers with, then the target's records.
    pub fn rewrite(
        name: &Name,
        qtype: RecordType,
        rcode: ResponseCode,
        target: &Name,
        ttl: u32,
        target_records: Vec<Record>,
    ) -> Option<Sections> {
        let mut answers = vec![Record::from_rdata(
            name.clone(),
            ttl,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(target.clone())),
        )];
        answers.extend(target_records);
        let mut rewritten = Sections::encode(name, qtype, rcode, &answers, &[], u32::MAX, None)?;
        // The CNAME is ours, not an upstream's: its target is the rewrite's, already decided.
        rewritten.cname_targets.clear();
        Some(rewritten)
    }
}

/// The Extended DNS Error an upstream answer carries, if any.
pub fn upstream_ede(response: &Message) -> Option<(u16, Box<str>)> {
    let edns = response.extensions().as_ref()?;
    match edns.option(hickory_proto::rr::rdata::opt::EdnsCode::Unknown(EDE_OPTION))? {
        EdnsOption::Unknown(_, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into(),
        )),
        _ => None,
    }
}

/// The decoded name of a lower-case wire name (a cache key without its type).
pub fn name_from_wire(wire: &[u8]) -> Option<Name> {
    Name::read(&mut BinDecoder::new(wire)).ok()
}

/// An error answer to a message that decoded but cannot be echoed as one question: same id,
/// opcode, RD, CD and questions; EDNS answered when the client used it (BADVERS needs it).
pub fn error_reply(request: &Message, rcode: ResponseCode) -> Option<Vec<u8>> {
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(request.checking_disabled())
        .set_response_code(rcode)
        .add_queries(request.queries().iter().cloned());
    if let Some(client_edns) = request.extensions() {
        let mut edns = Edns::new();
        edns.set_max_payload(ADVERTISED_PAYLOAD);
        edns.set_version(0);
        edns.set_dnssec_ok(client_edns.flags().dnssec_ok);
        response.set_edns(edns);
    }
    to_wire(&response)
}

/// An answer for bytes that did not decode as a query: FORMERR with the id and opcode read from
/// the header, or nothing when not even a header is there.
pub fn formerr_from_header(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let op_code = OpCode::from_u8((bytes[2] >> 3) & 0x0f);
    let mut response = Message::error_msg(id, op_code, ResponseCode::FormErr);
    response.set_recursion_desired(bytes[2] & 0x01 != 0);
    response.set_recursion_available(true);
    response.to_vec().ok()
}

/// Record types whose RDATA names may be compressed (RFC 1035 §3.3; RFC 3597 §4 forbids it for
/// every later type), plus types whose RDATA holds no name at all.
fn rdata_may_be_compressed(rtype: RecordType) -> bool {
    use RecordType::*;
    matches!(
        rtype,
        A | AAAA | CNAME | MX | NS | PTR | SOA | TXT | OPT | CAA | HINFO | NULL
    )
}

/// A record whose RDATA is written without name compression; its owner name may still be.
struct UncompressedRdata<'a>(&'a Record);

impl BinEncodable for UncompressedRdata<'_> {
    fn emit(&self, encoder: &mut BinEncoder<'_>) -> Result<(), ProtoError> {
        let record = self.0;
        if rdata_may_be_compressed(record.record_type()) {
            return record.emit(encoder);
        }
        record.name().emit(encoder)?;
        record.record_type().emit(encoder)?;
        record.dns_class().emit(encoder)?;
        encoder.emit_u32(record.ttl())?;
        let place = encoder.place::<u16>()?;
        encoder.with_canonical_names(|encoder| record.data().emit(encoder))?;
        let len = encoder.len_since_place(&place);
        place.replace(
            encoder,
            u16::try_from(len).map_err(|_| ProtoError::from("RDATA too long"))?,
        )
    }
}

/// The one encoder of hickory messages schooldns sends or caches. hickory compresses names
/// inside the RDATA of any type (an HTTPS record's TargetName came back as `www` + pointer),
/// which RFC 9460 §2.2 and RFC 3597 §4 forbid and strict clients reject; a message holding such
/// a type is written record by record with its RDATA uncompressed.
pub fn to_wire(message: &Message) -> Option<Vec<u8>> {
    let all = || {
        message
            .answers()
            .iter()
            .chain(message.name_servers())
            .chain(message.additionals())
    };
    if all().all(|r| rdata_may_be_compressed(r.record_type())) {
        return message.to_vec().ok();
    }
    fn wrap(records: &[Record]) -> Vec<UncompressedRdata<'_>> {
        records.iter().map(UncompressedRdata).collect()
    }
    let (answers, authority, additional) = (
        wrap(message.answers()),
        wrap(message.name_servers()),
        wrap(message.additionals()),
    );
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    emit_message_parts(
        message.header(),
        &mut message.queries().iter(),
        &mut answers.iter(),
        &mut authority.iter(),
        &mut additional.iter(),
        message.extensions().as_ref(),
        message.signature(),
        &mut encoder,
    )
    .ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn sections_round_trip_through_records() {
        let name = Name::from_str("www.example.").unwrap();
        let a = Record::from_rdata(
            name.clone(),
            300,
            RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
        );
        let sections = Sections::encode(
            &name,
            RecordType::A,
            ResponseCode::NoError,
            std::slice::from_ref(&a),
            &[],
            100,
            None,
        )
        .unwrap();
        assert_eq!(sections.ttls.len(), 1);
        assert_eq!(sections.ttls[0].1, 100);
        let back = sections.answer_records(&name, RecordType::A, 10).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].data(), a.data());
        assert_eq!(back[0].ttl(), 290);
    }

    #[test]
    fn a_long_udp_answer_is_cut_to_header_and_question_with_tc() {
        let question = b"\x03www\x07example\x00\x00\x01\x00\x01".to_vec();
        let frame = Frame::new(
            [0x12, 0x34, 0x01, 0x00],
            Cow::Owned(question),
            None,
            29,
            false,
        );
        let name = Name::from_str("www.example.").unwrap();
        let txt = Record::from_rdata(
            name.clone(),
            60,
            RData::TXT(hickory_proto::rr::rdata::TXT::new(vec!["x".repeat(200); 3])),
        );
        let sections = Sections::encode(
            &name,
            RecordType::TXT,
            ResponseCode::NoError,
            &[txt],
            &[],
            60,
            None,
        )
        .unwrap();
        let udp = frame.sections(&sections, 0, false, u32::MAX);
        assert_eq!(udp.len(), 12 + 17);
        assert_eq!(udp[2] & 0x02, 0x02, "TC set");
        let stream = Frame {
            stream: true,
            ..frame
        }
        .sections(&sections, 0, false, u32::MAX);
        assert!(stream.len() > 600);
        assert_eq!(stream[2] & 0x02, 0);
    }
}
