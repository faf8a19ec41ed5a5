//! What the policy says about one query, and why.
//!
//! [`Decision`] is small and `Copy`: indices into the policy plus the offset of the matched
//! suffix in the query name, so producing one allocates nothing. [`Explanation`] is the owned,
//! printable form (category and list names, the entry as written) for the CLI, the hit log and
//! the admin API; build it only off the hot path, or for blocks.

use std::net::IpAddr;

use serde::Serialize;

use crate::lists::Scope;

/// How a blocked name is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockAnswer {
    /// NXDOMAIN.
    Nxdomain,
    /// A 0.0.0.0 / AAAA ::, NODATA for other types.
    Null,
    /// The block page's address (A or AAAA by family), NODATA for other types.
    Address(IpAddr),
}

impl BlockAnswer {
    /// The config spelling.
    pub fn as_string(&self) -> String {
        match self {
            BlockAnswer::Nxdomain => "nxdomain".into(),
            BlockAnswer::Null => "null".into(),
            BlockAnswer::Address(ip) => ip.to_string(),
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Resolve upstream as asked.
    Allow,
    /// Answer with the block answer.
    Block(BlockAnswer),
    /// Answer a CNAME to this target plus the target's records.
    Rewrite(&'static str),
    /// The client is in no known network: answer REFUSED, never resolve.
    Refuse,
}

impl Verdict {
    /// `allow`, `block`, `rewrite` or `refuse`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Block(_) => "block",
            Verdict::Rewrite(_) => "rewrite",
            Verdict::Refuse => "refuse",
        }
    }
}

/// Where a deciding rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleSource {
    /// A line of a list file.
    List {
        /// Index of the category in the policy.
        category: u32,
        /// Index of the list file within the category.
        file: u16,
        /// 1-based line.
        line: u32,
    },
    /// Built-in bypass protection.
    BypassProtection,
    /// Built-in safe-search rewrite.
    SafeSearch,
    /// The client's network is unknown.
    UnknownNetwork,
    /// An encrypted query carried no live device token.
    UnknownDevice,
    /// The profile blocks every name its allowed tables do not list (`block_unlisted`).
    Unlisted,
}

/// The rule that decided (or was overridden).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Where it came from.
    pub source: RuleSource,
    /// Byte offset in the query name where the matched entry starts.
    pub offset: u8,
    /// The entry's scope, to write it back as listed (`*.name` or `name`).
    pub scope: Scope,
    /// Whether the rule allows (an allow category, `@@`, RPZ passthru) rather than blocks.
    pub allows: bool,
}

/// The policy's answer for one client and one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decision {
    /// What to do.
    pub verdict: Verdict,
    /// Index of the client's school, if its network is known.
    pub school: Option<u32>,
    /// Index of the profile applied (a configured profile, or a variant of one that a place
    /// or a rule in time made).
    pub profile: Option<u32>,
    /// The place (network, subnet, device, defaults) whose rules applied.
    pub slot: Option<u32>,
    /// Index of the home device whose token identified the client.
    pub device: Option<u32>,
    /// The rule that decided; `None` for a plain allow (nothing matched).
    pub rule: Option<Rule>,
    /// A block that an allow rule overrode.
    pub overridden: Option<Rule>,
}

/// A rule in printable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleInfo {
    /// `block` or `allow`.
    pub kind: &'static str,
    /// Category name, or `bypass-protection` / `safe-search` for built-in rules.
    pub category: String,
    /// List file, absent for built-in rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// 1-based line in the list file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// The entry as written (`example.com`, `*.example.com`).
    pub entry: String,
}

/// A decision in printable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The normalised name.
    pub name: String,
    /// The client address asked about.
    pub client: IpAddr,
    /// `allow`, `block`, `rewrite` or `refuse`.
    pub decision: &'static str,
    /// School id, if the network is known.
    pub school: Option<String>,
    /// School display name.
    pub school_name: Option<String>,
    /// Home device id, when a device token identified the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Profile name.
    pub profile: Option<String>,
    /// Category of the deciding rule (`services` for a service's).
    pub category: Option<String>,
    /// The service whose list decided (`tiktok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The schedule or calendar entry that decided: the rule in time that added the deciding
    /// table, or the exam or rule that switched the profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// The deciding rule.
    pub rule: Option<RuleInfo>,
    /// A block rule that an allow rule overrode.
    pub overridden: Option<RuleInfo>,
    /// How a block is answered (`nxdomain`, `null`, or an address).
    pub answer: Option<String>,
    /// The rewrite target.
    pub rewrite: Option<&'static str>,
    /// The moment decided for (`explain --at`), local time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}
