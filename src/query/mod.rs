//! The query pipeline: the one path every query takes, from any transport, from bytes in to
//! bytes out.
//!
//! 1. [`request::parse`] reads the packet once: the common shape in place, anything unusual
//!    through hickory; errors (FORMERR, NOTIMP, BADVERS) are answered there, responses ignored.
//! 2. The policy snapshot is loaded once and decides once, by network for plain DNS and by
//!    device token for DoT and DoH, into a `Plan`: refuse, block, answer now (a fresh cache
//!    entry, the RFC 8482 ANY answer, a rewrite whose target is cached), or ask upstream.
//! 3. The cache is looked up once: fresh, stale or miss; a miss (or a stale entry) is asked
//!    upstream, and the stale entry is served only if every upstream fails.
//! 4. An answer's CNAME chain is judged against the asker's profile (an allowed name may lead
//!    into a blocked one) before it is sent.
//! 5. [`answer`] writes the bytes, the same for every transport (UDP answers are cut to the
//!    client's size with TC set).
//! 6. `Pipeline::exit` is the one place that counts the query and records a block in the hit
//!    log.

pub mod answer;
pub mod refusals;
pub mod request;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};

use crate::hitlog::{HitEvent, HitSender};
use crate::live::{Live, Snapshot};
use crate::metrics::{Metrics, Outcome};
use crate::name::QueryName;
use crate::policy::decision::RuleSource;
use crate::policy::{BlockAnswer, Decision, Policy, Verdict};
use crate::resolve::cache::{CacheKey, Lookup};
use crate::resolve::{Answer, AnswerSource, Resolver};
use answer::{BLOCK_TTL, Sections};
use refusals::{NO_TOKEN_TEXT, RefusalLimit, UNKNOWN_TOKEN_TEXT};
use request::{Parsed, Request};

/// TTL of the CNAME a safe-search rewrite answers with.
const REWRITE_TTL: u32 = 300;
/// Type code of ANY, answered per RFC 8482 instead of forwarded.
const TYPE_ANY: u16 = 255;

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

/// The result of [`Pipeline::handle_now`].
pub enum Handled {
    /// Answered (or deliberately not) without waiting on anything.
    Done(Option<Vec<u8>>),
    /// Needs an upstream: finish it with [`Pipeline::finish`]. Boxed: it waits for a network
    /// round trip anyway, and the common `Done` stays small.
    Pending(Box<Pending>),
}

/// A query waiting for an upstream answer, with the live snapshot it was decided under.
pub struct Pending {
    request: Request<'static>,
    protocol: Protocol,
    client: IpAddr,
    snapshot: Arc<Snapshot>,
    step: Step,
}

/// What waits for an upstream.
enum Step {
    /// An allowed name; `decided` is the decision, whose profile judges CNAME targets and
    /// whose school and device a CNAME hit is recorded under.
    Forward { decided: Decision },
    /// A safe-search rewrite: a CNAME to `target`, then the target's records.
    Rewrite { target: Name },
}

/// What the decision made of a query.
enum Plan {
    /// Refused (or dropped, when the source network used up its refusals).
    Refuse(Refusal),
    /// Blocked per the profile's block answer.
    Block(Decision, BlockAnswer),
    /// Allowed, with a usable answer at hand.
    Answer(Decision, Answer),
    /// Allowed ANY: one HINFO record (RFC 8482).
    Any,
    /// Rewritten, with the target's answer at hand.
    Rewrite(Name, Answer),
    /// Needs an upstream.
    Wait(Step),
}

/// How a refused query is answered.
enum Refusal {
    /// Not at all: the source network used up its refusals for this second.
    Drop,
    /// REFUSED with EDE 18, with this text (`None`: no text, and only if it fits in the
    /// query's size).
    Answer(Option<&'static str>),
}

/// How a query ended, for the one exit.
struct Exit {
    bytes: Option<Vec<u8>>,
    outcome: Outcome,
    /// A block to count by category and record in the hit log: the decision, and the blocked
    /// name the asked name's CNAME chain led to, when that decided.
    block: Option<(Decision, Option<QueryName>)>,
}

impl Exit {
    fn new(bytes: Option<Vec<u8>>, outcome: Outcome) -> Exit {
        Exit {
            bytes,
            outcome,
            block: None,
        }
    }
}

/// The pipeline shared by every front end.
pub struct Pipeline {
    /// The live state; loaded once per query so a query sees one consistent policy, config
    /// and set of upstreams.
    live: Arc<Live>,
    /// Cache and the coalescing of upstream questions.
    resolver: Arc<Resolver>,
    /// Query counters.
    metrics: Arc<Metrics>,
    /// Where blocks are recorded.
    hits: HitSender,
    /// Refusals per source network outside every school.
    refusals: Arc<RefusalLimit>,
    /// Devices that asked for the check name (the setup page's "check that it works").
    checks: Arc<crate::devices::check::DeviceChecks>,
}

impl Pipeline {
    /// A pipeline deciding with the live state and resolving with `resolver`.
    pub fn new(
        live: Arc<Live>,
        resolver: Arc<Resolver>,
        metrics: Arc<Metrics>,
        hits: HitSender,
        refusals: Arc<RefusalLimit>,
        checks: Arc<crate::devices::check::DeviceChecks>,
    ) -> Pipeline {
        Pipeline {
            checks,
            live,
            resolver,
            metrics,
            hits,
            refusals,
        }
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
    /// spawning a task. The rest comes back as [`Handled::Pending`] for [`Pipeline::finish`].
    pub fn handle_now(&self, bytes: &[u8], src: SocketAddr, protocol: Protocol) -> Handled {
        self.handle_now_from(bytes, Origin::plain(src, protocol))
    }

    /// [`Pipeline::handle_now`] for any transport.
    pub fn handle_now_from(&self, bytes: &[u8], origin: Origin<'_>) -> Handled {
        let protocol = origin.protocol;
        let request = match request::parse(bytes, protocol != Protocol::Udp) {
            Parsed::Query(request) => request,
            Parsed::Answered(bytes, outcome) => {
                return Handled::Done(self.exit(None, &origin, None, Exit::new(bytes, outcome)));
            }
            Parsed::Ignored => return Handled::Done(None),
        };
        let snapshot = self.live.load();
        let policy = &snapshot.policy;
        let exit = match self.plan(&request, &snapshot, origin) {
            Plan::Refuse(Refusal::Drop) => Exit::new(None, Outcome::Refuse),
            Plan::Refuse(Refusal::Answer(text)) => {
                Exit::new(Some(request.frame.refused(text)), Outcome::Refuse)
            }
            Plan::Block(decision, block) => self.block(&request, policy, decision, block, None),
            Plan::Answer(decision, answer) => self.answer(&request, policy, &decision, &answer),
            Plan::Any => Exit::new(Some(request.frame.minimal_any()), Outcome::Allow),
            Plan::Rewrite(target, answer) => self.rewrite(&request, &target, &answer),
            Plan::Wait(step) => {
                return Handled::Pending(Box::new(Pending {
                    request: request.into_owned(),
                    protocol,
                    client: origin.addr.ip(),
                    snapshot: arc_swap::Guard::into_inner(snapshot),
                    step,
                }));
            }
        };
        Handled::Done(self.exit(Some(&request), &origin, Some(&snapshot), exit))
    }

    /// Completes a query that needs an upstream.
    pub async fn finish(&self, pending: Box<Pending>) -> Option<Vec<u8>> {
        let Pending {
            request,
            protocol,
            client,
            snapshot,
            step,
        } = *pending;
        let (policy, upstreams, limits) = (
            &snapshot.policy,
            &snapshot.upstreams,
            &snapshot.config.cache,
        );
        let exit = match step {
            Step::Forward { decided } => {
                let key = CacheKey::from_bytes(request.key());
                match self.resolver.resolve(key, upstreams, limits).await {
                    Ok(answer) => self.answer(&request, policy, &decided, &answer),
                    Err(err) => self.servfail(&request, err),
                }
            }
            Step::Rewrite { target } => {
                let key = CacheKey::new(&target, RecordType::from(request.qtype));
                match self.resolver.resolve(key, upstreams, limits).await {
                    Ok(answer) => self.rewrite(&request, &target, &answer),
                    Err(err) => self.servfail(&request, err),
                }
            }
        };
        let origin = Origin::plain(SocketAddr::new(client, 0), protocol);
        self.exit(Some(&request), &origin, Some(&snapshot), exit)
    }

    /// Decides once what to do with a query.
    fn plan(&self, request: &Request<'_>, snapshot: &Snapshot, origin: Origin<'_>) -> Plan {
        let policy = &snapshot.policy;
        let stale_max = snapshot.stale_max();
        let decision = if origin.protocol.is_encrypted() {
            let decision = policy.decide_device(origin.token, &request.name);
            if let Some(token) = origin.token
                && decision.device.is_some()
                && policy.is_check_name(&request.name)
            {
                self.checks.record(token);
            }
            decision
        } else {
            policy.decide(origin.addr.ip(), &request.name)
        };
        match decision.verdict {
            Verdict::Refuse => Plan::Refuse(self.refusal(&decision, origin, snapshot)),
            Verdict::Block(block) => Plan::Block(decision, block),
            Verdict::Allow if request.qtype == TYPE_ANY => Plan::Any,
            Verdict::Allow => match self.resolver.cache().lookup(request.key(), stale_max) {
                Lookup::Fresh(sections, age) => Plan::Answer(
                    decision,
                    Answer {
                        sections,
                        age,
                        source: AnswerSource::Cache,
                    },
                ),
                Lookup::Stale(_) | Lookup::Miss => Plan::Wait(Step::Forward { decided: decision }),
            },
            Verdict::Rewrite(target) => {
                let Ok(target) = Name::from_str(&format!("{target}.")) else {
                    return Plan::Refuse(Refusal::Answer(None));
                };
                let key = CacheKey::new(&target, RecordType::from(request.qtype));
                match self.resolver.cache().lookup(key.as_bytes(), stale_max) {
                    Lookup::Fresh(sections, age) => Plan::Rewrite(
                        target,
                        Answer {
                            sections,
                            age,
                            source: AnswerSource::Cache,
                        },
                    ),
                    Lookup::Stale(_) | Lookup::Miss => Plan::Wait(Step::Rewrite { target }),
                }
            }
        }
    }

    /// How to refuse this query: device refusals say why; network refusals are small and
    /// budgeted per source network over UDP (see `refusals.rs`).
    fn refusal(&self, decision: &Decision, origin: Origin<'_>, snapshot: &Snapshot) -> Refusal {
        let by_device = decision
            .rule
            .is_some_and(|r| r.source == RuleSource::UnknownDevice);
        if by_device {
            return Refusal::Answer(Some(match origin.token {
                None => NO_TOKEN_TEXT,
                Some(_) => UNKNOWN_TOKEN_TEXT,
            }));
        }
        let budget = snapshot.config.server.refused_per_second;
        if origin.protocol == Protocol::Udp && !self.refusals.allow(origin.addr.ip(), budget) {
            return Refusal::Drop;
        }
        Refusal::Answer(None)
    }

    /// A block answer, with the category in its EDE; `cname` is the blocked name an allowed
    /// name's CNAME chain led to, when that decided.
    fn block(
        &self,
        request: &Request<'_>,
        policy: &Policy,
        decision: Decision,
        block: BlockAnswer,
        cname: Option<QueryName>,
    ) -> Exit {
        let category = decision.rule.map_or("policy", |r| policy.rule_category(&r));
        let judged = cname.as_ref().unwrap_or(&request.name);
        let ttl = policy
            .ttl_limit(&decision, judged, crate::clock::coarse_ms(), BLOCK_TTL)
            .unwrap_or(BLOCK_TTL);
        let bytes = request.frame.blocked(request.qtype, block, category, ttl);
        Exit {
            bytes: Some(bytes),
            outcome: Outcome::Block,
            block: Some((decision, cname)),
        }
    }

    /// An allowed name's answer, after judging its CNAME chain against the asker's profile: a
    /// chain that leads into a blocked name is blocked as that name.
    fn answer(
        &self,
        request: &Request<'_>,
        policy: &Policy,
        decided: &Decision,
        answer: &Answer,
    ) -> Exit {
        if let Some(profile) = decided.profile {
            for target in &answer.sections.cname_targets {
                let mut decision = policy.decide_for_profile(profile, target);
                // The target is judged for the asker's profile and recorded under the asker.
                decision.school = decided.school;
                decision.device = decided.device;
                if let Verdict::Block(block) = decision.verdict {
                    return self.block(request, policy, decision, block, Some(target.clone()));
                }
            }
        }
        let stale = answer.source == AnswerSource::Stale;
        let ttl = if stale {
            answer::STALE_TTL
        } else {
            answer.sections.max_ttl().saturating_sub(answer.age)
        };
        // An answer that outlives the next edge of the asker's schedule, and that the edge
        // changes, expires at the edge.
        let cap = policy
            .ttl_limit(decided, &request.name, crate::clock::coarse_ms(), ttl)
            .unwrap_or(u32::MAX);
        let bytes = request
            .frame
            .sections(&answer.sections, answer.age, stale, cap);
        Exit::new(Some(bytes), Outcome::Allow)
    }

    /// A safe-search rewrite: a CNAME from the asked name to `target`, then the target's
    /// records.
    fn rewrite(&self, request: &Request<'_>, target: &Name, answer: &Answer) -> Exit {
        let qtype = RecordType::from(request.qtype);
        let rewritten = CacheKey::from_bytes(request.key())
            .question()
            .and_then(|(name, _)| {
                let records = answer.sections.answer_records(target, qtype, answer.age)?;
                Sections::rewrite(
                    &name,
                    qtype,
                    answer.sections.rcode,
                    target,
                    REWRITE_TTL,
                    records,
                )
            });
        match rewritten {
            Some(sections) => Exit::new(
                Some(request.frame.sections(
                    &sections,
                    0,
                    answer.source == AnswerSource::Stale,
                    u32::MAX,
                )),
                Outcome::Rewrite,
            ),
            None => Exit::new(
                Some(request.frame.rcode_only(ResponseCode::ServFail)),
                Outcome::Error,
            ),
        }
    }

    fn servfail(&self, request: &Request<'_>, err: crate::resolve::ResolveError) -> Exit {
        tracing::debug!(name = %request.name.as_str(), %err, "SERVFAIL");
        Exit::new(
            Some(request.frame.rcode_only(ResponseCode::ServFail)),
            Outcome::Error,
        )
    }

    /// The one exit: counts the query by transport, outcome and rcode, counts a block by
    /// category and profile and hands it to the hit log (a non-blocking send), and returns the
    /// bytes to send.
    fn exit(
        &self,
        request: Option<&Request<'_>>,
        origin: &Origin<'_>,
        snapshot: Option<&Snapshot>,
        exit: Exit,
    ) -> Option<Vec<u8>> {
        let rcode = match &exit.bytes {
            Some(bytes) => ResponseCode::from_low(bytes[3] & 0x0f),
            None => ResponseCode::Refused,
        };
        self.metrics.record(origin.protocol, exit.outcome, rcode);
        if let (Some((decision, cname)), Some(snapshot), Some(request)) =
            (exit.block, snapshot, request)
        {
            let policy = &snapshot.policy;
            let category = decision.rule.map_or("policy", |r| policy.rule_category(&r));
            let profile = decision
                .profile
                .map_or("", |p| policy.profile(p).name.as_str());
            self.metrics.record_block(category, profile);
            // A `block_unlisted` profile blocks every name it does not list: recording those
            // would keep a browsing history, so they are only counted.
            let listed = decision
                .rule
                .is_none_or(|r| r.source != RuleSource::Unlisted);
            if listed && self.hits.enabled() {
                self.hits.record(HitEvent {
                    at_ms: crate::hitlog::now_ms(),
                    client: origin.addr.ip(),
                    protocol: origin.protocol.as_str(),
                    qtype: request.qtype,
                    qname: request.name.as_str().into(),
                    cname: cname.as_ref().map(|c| c.as_str().into()),
                    decision,
                    policy: Arc::clone(policy),
                    client_address: snapshot.config.hitlog.client_address,
                });
            }
        }
        exit.bytes
    }
}
