//! `Handler`: the query pipeline, and the only place policy, cache and upstreams meet.
//!
//! Bytes come in from a front end with the client's address; bytes (or nothing) go back:
//! 1. drop what is not a query (shorter than a header, or a response: no reflection);
//! 2. FORMERR for what does not decode, NOTIMP for other opcodes, BADVERS for EDNS > 0;
//! 3. load the policy snapshot once and decide for (client address, name);
//! 4. refuse, block (with an Extended DNS Error naming the category), rewrite (CNAME to the safe
//!    endpoint plus its records), or resolve through the cache and upstreams, blocking an
//!    answer whose CNAME chain leads into a blocked name;
//! 5. encode, truncating for UDP when the client cannot take the whole answer.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, HINFO};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::fast;
use super::refusals::{NO_TOKEN_TEXT, RefusalLimit, UNKNOWN_TOKEN_TEXT};
use super::response::{blocked, encode_udp, formerr_from_header, refused, reply_to};
use crate::hitlog::{HitEvent, HitSender};
use crate::metrics::{Metrics, Outcome};
use crate::name::QueryName;
use crate::policy::decision::RuleSource;
use crate::policy::{Decision, Policy, SharedPolicy, Verdict};
use crate::resolve::Resolver;

/// TTL of the CNAME a safe-search rewrite answers with.
const REWRITE_TTL: u32 = 300;

/// The result of [`Handler::handle_now`].
pub enum Handled {
    /// Answered (or deliberately not) without waiting on anything.
    Done(Option<Vec<u8>>),
    /// Needs an upstream: finish it with [`Handler::finish`]. Boxed: it waits for a network
    /// round trip anyway, and the common `Done` stays small.
    Pending(Box<Pending>),
}

/// A query waiting for an upstream answer, with the policy snapshot it was decided under.
pub struct Pending {
    request: Message,
    protocol: Protocol,
    client: IpAddr,
    policy: Arc<Policy>,
    step: Step,
}

enum Step {
    /// Resolve; `decided` is the allow decision, whose profile judges CNAME targets and whose
    /// school and device a CNAME-inspection hit is recorded under.
    Forward {
        decided: Decision,
    },
    Rewrite(&'static str),
}

/// Which transport a query came over (truncation applies to UDP only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Plain DNS over UDP.
    Udp,
    /// Plain DNS over TCP.
    Tcp,
    /// DNS over TLS (RFC 7858).
    Dot,
    /// DNS over HTTPS (RFC 8484).
    Doh,
}

impl Protocol {
    /// `udp`, `tcp`, `dot` or `doh`, as metrics and the hit log spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
            Protocol::Dot => "dot",
            Protocol::Doh => "doh",
        }
    }

    /// Encrypted transports identify the client by device token, not by network.
    pub fn is_encrypted(&self) -> bool {
        matches!(self, Protocol::Dot | Protocol::Doh)
    }
}

/// Who is asking: the source address for plain DNS, the device token for DoT and DoH.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The client's address as seen.
    pub addr: SocketAddr,
    /// The transport.
    pub protocol: Protocol,
    /// The device token (lowercase) the DoT server name or DoH path carried; ignored for
    /// plain DNS, where the network decides.
    pub token: Option<&'a str>,
}

impl Origin<'_> {
    /// A plain-DNS origin.
    pub fn plain(addr: SocketAddr, protocol: Protocol) -> Origin<'static> {
        Origin {
            addr,
            protocol,
            token: None,
        }
    }
}

/// The request handler shared by every front end.
pub struct Handler {
    /// The live policy; loaded once per query so a query sees one consistent policy.
    policy: Arc<SharedPolicy>,
    /// Cache and upstreams.
    resolver: Arc<Resolver>,
    /// Query counters.
    metrics: Arc<Metrics>,
    /// Where blocks are recorded.
    hits: HitSender,
    /// Refusals per source network outside every school.
    refusals: Arc<RefusalLimit>,
}

/// What a query needs from upstream: the policy it was decided with, and the step.
type Upstream = (Arc<Policy>, Step);

/// How a refused query is answered.
enum Refusal {
    /// Not at all: the source network used up its refusals for this second.
    Drop,
    /// REFUSED with EDE 18, with this text (`None`: no text, and only if it fits in the
    /// query's size).
    Answer(Option<&'static str>),
}

impl Handler {
    /// A handler deciding with `policy` and resolving with `resolver`.
    pub fn new(
        policy: Arc<SharedPolicy>,
        resolver: Arc<Resolver>,
        metrics: Arc<Metrics>,
        hits: HitSender,
        refusals: Arc<RefusalLimit>,
    ) -> Handler {
        Handler {
            policy,
            resolver,
            metrics,
            hits,
            refusals,
        }
    }

    /// How to refuse this query: device refusals say why; network refusals are small and
    /// budgeted per source network over UDP (see `refusals.rs`).
    fn refusal(&self, decision: &Decision, origin: Origin<'_>) -> Refusal {
        let by_device = decision
            .rule
            .is_some_and(|r| r.source == RuleSource::UnknownDevice);
        if by_device {
            return Refusal::Answer(Some(match origin.token {
                None => NO_TOKEN_TEXT,
                Some(_) => UNKNOWN_TOKEN_TEXT,
            }));
        }
        if origin.protocol == Protocol::Udp && !self.refusals.allow(origin.addr.ip()) {
            return Refusal::Drop;
        }
        Refusal::Answer(None)
    }

    /// Handles one plain-DNS message; `None` means send nothing.
    pub async fn handle(
        &self,
        bytes: &[u8],
        src: SocketAddr,
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        self.handle_from(bytes, Origin::plain(src, protocol)).await
    }

    /// Handles one message from any transport; `None` means send nothing.
    pub async fn handle_from(&self, bytes: &[u8], origin: Origin<'_>) -> Option<Vec<u8>> {
        match self.handle_now_from(bytes, origin) {
            Handled::Done(response) => response,
            Handled::Pending(pending) => self.finish(pending).await,
        }
    }

    /// Everything that needs no upstream, done synchronously: refusals, blocks, errors and
    /// cache hits come back as [`Handled::Done`], so a front end can answer them without
    /// spawning a task. The rest comes back as [`Handled::Pending`] for [`Handler::finish`].
    pub fn handle_now(&self, bytes: &[u8], src: SocketAddr, protocol: Protocol) -> Handled {
        self.handle_now_from(bytes, Origin::plain(src, protocol))
    }

    /// [`Handler::handle_now`] for any transport.
    pub fn handle_now_from(&self, bytes: &[u8], origin: Origin<'_>) -> Handled {
        let (src, protocol) = (origin.addr, origin.protocol);
        // A header is 12 bytes; the QR bit marks a response, which we never answer.
        if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
            return Handled::Done(None);
        }
        if let Some(response) = self.fast(bytes, origin) {
            return Handled::Done(response);
        }
        let Ok(request) = Message::from_vec(bytes) else {
            return Handled::Done(formerr_from_header(bytes));
        };
        if request.message_type() != MessageType::Query {
            return Handled::Done(None);
        }
        match self.respond_now(&request, bytes.len(), origin) {
            Ok(Some((response, outcome))) => {
                Handled::Done(self.encode(&request, &response, outcome, protocol))
            }
            Ok(None) => {
                self.metrics
                    .record(protocol, Outcome::Refuse, ResponseCode::Refused);
                Handled::Done(None)
            }
            Err((policy, step)) => Handled::Pending(Box::new(Pending {
                request,
                protocol,
                client: src.ip(),
                policy,
                step,
            })),
        }
    }

    /// The wire-level fast path for the common cases (see `fast.rs`), on every transport:
    /// `Some(answer)` when it decided (`Some(None)`: send nothing), `None` for the general path.
    fn fast(&self, bytes: &[u8], origin: Origin<'_>) -> Option<Option<Vec<u8>>> {
        let (client, protocol) = (origin.addr.ip(), origin.protocol);
        let mut query = fast::WireQuery::parse(bytes)?;
        if protocol != Protocol::Udp {
            query = query.over_stream();
        }
        let policy = self.policy.load();
        let decision = if protocol.is_encrypted() {
            policy.decide_device(origin.token, &query.name)
        } else {
            policy.decide(client, &query.name)
        };
        if matches!(decision.verdict, Verdict::Refuse) {
            let response = match self.refusal(&decision, origin) {
                Refusal::Drop => None,
                Refusal::Answer(text) => Some(query.refused(text)?),
            };
            self.metrics
                .record(protocol, Outcome::Refuse, ResponseCode::Refused);
            return Some(response);
        }
        let (response, outcome) = fast::answer(
            &query,
            &policy,
            decision,
            self.resolver.cache(),
            |decision, category, profile| {
                self.metrics.record_block(category, profile);
                self.record_hit(
                    &policy,
                    decision,
                    client,
                    protocol,
                    query.qtype,
                    query.name.as_str(),
                    None,
                );
            },
        )?;
        let (outcome, rcode) = match outcome {
            fast::FastOutcome::Refuse => (Outcome::Refuse, ResponseCode::Refused),
            fast::FastOutcome::Block => {
                (Outcome::Block, ResponseCode::from_low(response[3] & 0x0f))
            }
            fast::FastOutcome::Allow => {
                (Outcome::Allow, ResponseCode::from_low(response[3] & 0x0f))
            }
        };
        self.metrics.record(protocol, outcome, rcode);
        Some(Some(response))
    }

    /// Completes a query that needs an upstream.
    pub async fn finish(&self, pending: Box<Pending>) -> Option<Vec<u8>> {
        let Pending {
            request,
            protocol,
            client,
            policy,
            step,
        } = *pending;
        let asker = Asker { client, protocol };
        let (response, outcome) = match step {
            Step::Forward { decided } => self.forward(&request, &policy, decided, asker).await,
            Step::Rewrite(target) => self.rewrite(&request, target).await,
        };
        self.encode(&request, &response, outcome, protocol)
    }

    fn encode(
        &self,
        request: &Message,
        response: &Message,
        outcome: Outcome,
        protocol: Protocol,
    ) -> Option<Vec<u8>> {
        self.metrics
            .record(protocol, outcome, response.response_code());
        match protocol {
            Protocol::Udp => encode_udp(request, response),
            Protocol::Tcp | Protocol::Dot | Protocol::Doh => super::response::to_wire(response),
        }
    }

    /// The answer when it needs no upstream (`None`: send nothing), or what to do upstream.
    fn respond_now(
        &self,
        request: &Message,
        request_len: usize,
        origin: Origin<'_>,
    ) -> Result<Option<(Message, Outcome)>, Upstream> {
        let (client, protocol) = (origin.addr.ip(), origin.protocol);
        let error = |rcode| Ok(Some((reply_to(request, rcode), Outcome::Error)));
        if request.op_code() != OpCode::Query {
            return error(ResponseCode::NotImp);
        }
        if request.queries().len() != 1 {
            return error(ResponseCode::FormErr);
        }
        if request
            .extensions()
            .as_ref()
            .is_some_and(|e| e.version() > 0)
        {
            return error(ResponseCode::BADVERS);
        }
        let query = &request.queries()[0];
        let policy = self.policy.load_full();
        let Ok(name) = QueryName::from_ascii_bytes(query.name().to_ascii().as_bytes()) else {
            // Not a host name (the root, binary labels): nothing a student device needs, and
            // nothing a list could be matched against, so it is not forwarded.
            return Ok(Some((
                reply_to(request, ResponseCode::Refused),
                Outcome::Refuse,
            )));
        };
        let decision = if protocol.is_encrypted() {
            policy.decide_device(origin.token, &name)
        } else {
            policy.decide(client, &name)
        };
        let asker = Asker { client, protocol };
        match decision.verdict {
            Verdict::Refuse => Ok(match self.refusal(&decision, origin) {
                Refusal::Drop => None,
                Refusal::Answer(text) => {
                    Some((refused(request, text, request_len), Outcome::Refuse))
                }
            }),
            Verdict::Block(answer) => Ok(Some((
                self.block(request, &policy, &decision, answer, asker, None),
                Outcome::Block,
            ))),
            Verdict::Rewrite(target) => Err((policy, Step::Rewrite(target))),
            Verdict::Allow if query.query_type() == RecordType::ANY => {
                Ok(Some((minimal_any(request), Outcome::Allow)))
            }
            Verdict::Allow => match self.resolver.cached(query.name(), query.query_type()) {
                Some(answer) => Ok(Some(
                    self.answer(request, &policy, &decision, answer, asker),
                )),
                None => Err((policy, Step::Forward { decided: decision })),
            },
        }
    }

    /// Answers a block, counts it and records the hit. `cname` is the blocked name an allowed
    /// name's CNAME chain led to, when CNAME inspection decided.
    fn block(
        &self,
        request: &Message,
        policy: &Arc<Policy>,
        decision: &Decision,
        answer: crate::policy::BlockAnswer,
        asker: Asker,
        cname: Option<&QueryName>,
    ) -> Message {
        let category = decision.rule.map_or("policy", |r| policy.rule_category(&r));
        let profile = decision
            .profile
            .map_or("", |p| policy.profiles()[p as usize].name.as_str());
        self.metrics.record_block(category, profile);
        let query = &request.queries()[0];
        if self.hits.enabled()
            && let Ok(asked) = QueryName::from_ascii_bytes(query.name().to_ascii().as_bytes())
        {
            self.record_hit(
                policy,
                decision,
                asker.client,
                asker.protocol,
                u16::from(query.query_type()),
                asked.as_str(),
                cname.map(QueryName::as_str),
            );
        }
        blocked(request, answer, category)
    }

    /// Hands a block to the hit log (a non-blocking send; see `hitlog`).
    #[allow(clippy::too_many_arguments)]
    fn record_hit(
        &self,
        policy: &Arc<Policy>,
        decision: &Decision,
        client: IpAddr,
        protocol: Protocol,
        qtype: u16,
        qname: &str,
        cname: Option<&str>,
    ) {
        if !self.hits.enabled() {
            return;
        }
        self.hits.record(HitEvent {
            at_ms: crate::hitlog::now_ms(),
            client,
            protocol: protocol.as_str(),
            qtype,
            qname: qname.into(),
            cname: cname.map(Into::into),
            decision: *decision,
            policy: Arc::clone(policy),
        });
    }

    /// Resolves an allowed question through cache and upstreams.
    async fn forward(
        &self,
        request: &Message,
        policy: &Arc<Policy>,
        decided: Decision,
        asker: Asker,
    ) -> (Message, Outcome) {
        let query = &request.queries()[0];
        match self
            .resolver
            .resolve(query.name(), query.query_type())
            .await
        {
            Ok(answer) => self.answer(request, policy, &decided, answer, asker),
            Err(err) => {
                tracing::debug!(name = %query.name(), %err, "SERVFAIL");
                (reply_to(request, ResponseCode::ServFail), Outcome::Error)
            }
        }
    }

    /// Builds the response for a resolved answer after inspecting its CNAME chain against the
    /// client's profile: a chain that leads into a blocked name is blocked as that name.
    fn answer(
        &self,
        request: &Message,
        policy: &Arc<Policy>,
        decided: &Decision,
        answer: crate::resolve::Answer,
        asker: Asker,
    ) -> (Message, Outcome) {
        if let Some(profile) = decided.profile {
            for record in &answer.answers {
                let RData::CNAME(target) = record.data() else {
                    continue;
                };
                let Ok(target) = QueryName::from_ascii_bytes(target.0.to_ascii().as_bytes()) else {
                    continue;
                };
                let mut decision = policy.decide_for_profile(profile, &target);
                // The target is judged for the asker's profile and recorded under the asker.
                decision.school = decided.school;
                decision.device = decided.device;
                if let Verdict::Block(block) = decision.verdict {
                    let response =
                        self.block(request, policy, &decision, block, asker, Some(&target));
                    return (response, Outcome::Block);
                }
            }
        }
        let mut response = reply_to(request, answer.rcode);
        response.add_answers(answer.answers);
        response.add_name_servers(answer.authority);
        (response, Outcome::Allow)
    }

    /// Answers a CNAME to the safe-search endpoint plus the endpoint's own records.
    async fn rewrite(&self, request: &Message, target: &'static str) -> (Message, Outcome) {
        let query = &request.queries()[0];
        let Ok(target_name) = Name::from_str(&format!("{target}.")) else {
            return (reply_to(request, ResponseCode::ServFail), Outcome::Error);
        };
        let answer = match self
            .resolver
            .resolve(&target_name, query.query_type())
            .await
        {
            Ok(answer) => answer,
            Err(_) => return (reply_to(request, ResponseCode::ServFail), Outcome::Error),
        };
        let mut response = reply_to(request, answer.rcode);
        response.add_answer(Record::from_rdata(
            query.name().clone(),
            REWRITE_TTL,
            RData::CNAME(CNAME(target_name)),
        ));
        response.add_answers(answer.answers);
        (response, Outcome::Rewrite)
    }
}

/// Who asked, for the hit log.
#[derive(Debug, Clone, Copy)]
struct Asker {
    client: IpAddr,
    protocol: Protocol,
}

/// RFC 8482: ANY is answered with one synthesised HINFO record instead of everything.
fn minimal_any(request: &Message) -> Message {
    let mut response = reply_to(request, ResponseCode::NoError);
    let name = request.queries()[0].name().clone();
    response.add_answer(Record::from_rdata(
        name,
        3600,
        RData::HINFO(HINFO::new("RFC8482".into(), String::new())),
    ));
    response
}
