//! Building responses: errors, blocks with an Extended DNS Error, forwarded answers, and UDP
//! truncation. Every response echoes the client's id, opcode, RD flag and question exactly (the
//! qname's case included).

use std::net::IpAddr;

use hickory_proto::ProtoError;
use hickory_proto::op::message::emit_message_parts;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use crate::policy::BlockAnswer;

/// EDE info-code 15, "Blocked" (RFC 8914 §4.16).
pub const EDE_BLOCKED: u16 = 15;
/// EDE info-code 18, "Prohibited" (RFC 8914 §4.19): the client may not use this resolver.
pub const EDE_PROHIBITED: u16 = 18;
/// EDE option code (RFC 8914 §2).
pub const EDE_OPTION: u16 = 15;

/// EDE text of a block: what `dig` shows a teacher asking why.
pub fn blocked_text(category: &str) -> String {
    format!("blocked by schooldns: {category}")
}
/// TTL of synthesised block answers: short, so a list change reaches devices quickly.
pub const BLOCK_TTL: u32 = 60;
/// UDP payload size advertised to clients (the 2020 DNS flag day value).
pub const ADVERTISED_PAYLOAD: u16 = 1232;

/// A response skeleton for `request`: same id, opcode, RD and question; RA set; EDNS answered
/// when the client used it.
pub fn reply_to(request: &Message, rcode: ResponseCode) -> Message {
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
    response
}

/// Adds an Extended DNS Error (only when the client speaks EDNS, which RFC 8914 requires).
pub fn add_ede(response: &mut Message, code: u16, text: &str) {
    if let Some(edns) = response.extensions_mut().as_mut() {
        let mut data = Vec::with_capacity(2 + text.len());
        data.extend_from_slice(&code.to_be_bytes());
        data.extend_from_slice(text.as_bytes());
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDE_OPTION, data));
    }
}

/// A REFUSED answer with EDE 18 and `text`; without text (a client outside every school
/// network), EDE 18 only while the answer stays no larger than the query's `request_len`
/// bytes, so a refusal never amplifies.
pub fn refused(request: &Message, text: Option<&str>, request_len: usize) -> Message {
    let mut response = reply_to(request, ResponseCode::Refused);
    match text {
        Some(text) => add_ede(&mut response, EDE_PROHIBITED, text),
        None => {
            let mut with_ede = response.clone();
            add_ede(&mut with_ede, EDE_PROHIBITED, "");
            if to_wire(&with_ede).is_some_and(|wire| wire.len() <= request_len) {
                return with_ede;
            }
        }
    }
    response
}

/// A blocked answer for `request` per the profile's `answer`, with EDE 15 naming the category.
pub fn blocked(request: &Message, answer: BlockAnswer, category: &str) -> Message {
    let query = &request.queries()[0];
    let rdata = match (answer, query.query_type()) {
        (BlockAnswer::Nxdomain, _) => None,
        (BlockAnswer::Null, RecordType::A) => Some(RData::A(A::new(0, 0, 0, 0))),
        (BlockAnswer::Null, RecordType::AAAA) => {
            Some(RData::AAAA(AAAA::from(std::net::Ipv6Addr::UNSPECIFIED)))
        }
        (BlockAnswer::Address(IpAddr::V4(ip)), RecordType::A) => Some(RData::A(A::from(ip))),
        (BlockAnswer::Address(IpAddr::V6(ip)), RecordType::AAAA) => {
            Some(RData::AAAA(AAAA::from(ip)))
        }
        // Other types, or the other address family: NODATA.
        _ => None,
    };
    let rcode = if answer == BlockAnswer::Nxdomain {
        ResponseCode::NXDomain
    } else {
        ResponseCode::NoError
    };
    let mut response = reply_to(request, rcode);
    if let Some(rdata) = rdata {
        response.add_answer(Record::from_rdata(query.name().clone(), BLOCK_TTL, rdata));
    }
    add_ede(&mut response, EDE_BLOCKED, &blocked_text(category));
    response
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

/// The one encoder of every message schooldns sends or caches. hickory compresses names
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

/// Encodes a response for UDP: if it is larger than the client can take (its EDNS payload size,
/// or 512 bytes without EDNS), only the header and question go back, with TC set, and the
/// client retries over TCP.
pub fn encode_udp(request: &Message, response: &Message) -> Option<Vec<u8>> {
    let limit = match request.extensions() {
        Some(edns) => edns.max_payload().clamp(512, ADVERTISED_PAYLOAD.max(512)) as usize,
        None => 512,
    };
    let bytes = to_wire(response)?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    response.truncate().to_vec().ok()
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
