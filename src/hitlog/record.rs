//! One hit as the query path hands it over ([`HitEvent`]) and as it is stored ([`HitRecord`]).
//!
//! The event is cheap to make on the query path: the decision (indices), the policy snapshot
//! it was made under (one reference count) and the name. The writer thread turns it into the
//! owned, printable record with [`Policy::explain`], so names, list files and lines are looked
//! up beside the query path, never on it.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::ClientAddress;
use crate::name::QueryName;
use crate::policy::{Decision, Policy};

/// A blocked query, as the query path reports it.
pub struct HitEvent {
    /// When, in milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    /// The client's address as seen.
    pub client: IpAddr,
    /// `udp`, `tcp`, `dot` or `doh`.
    pub protocol: &'static str,
    /// The question's type.
    pub qtype: u16,
    /// The name asked (normalised).
    pub qname: Box<str>,
    /// For CNAME inspection: the blocked name the answer's chain led to.
    pub cname: Option<Box<str>>,
    /// What the policy decided (its rule refers to `cname` when set, else `qname`).
    pub decision: Decision,
    /// The policy the decision was made under.
    pub policy: Arc<Policy>,
    /// How the client's address is kept (`[hitlog] client_address` of the config the query
    /// was answered under, so a reload's privacy setting holds from its very next query).
    pub client_address: crate::config::ClientAddress,
}

/// A hit as stored: one row of the `hits` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HitRecord {
    /// Row id (0 until stored).
    pub id: i64,
    /// First hit, milliseconds since the Unix epoch (UTC).
    pub time_ms: i64,
    /// Last repeat folded into this record.
    pub last_seen_ms: i64,
    /// Hits folded into this record (1 + repeats).
    pub count: i64,
    /// School id, when the client's network is a school's.
    pub school: Option<String>,
    /// Device or family id, for home devices.
    pub device: Option<String>,
    /// Profile applied.
    pub profile: Option<String>,
    /// Client address as kept by `[hitlog] client_address` (`None` when not kept).
    pub client: Option<String>,
    /// `udp`, `tcp`, `dot` or `doh`.
    pub protocol: String,
    /// The name asked.
    pub qname: String,
    /// The question's type (`A`, `AAAA`, …).
    pub qtype: String,
    /// `block`.
    pub decision: String,
    /// The deciding rule's category (`bypass-protection` for built-in bypass rules).
    pub category: String,
    /// The list file of the deciding rule.
    pub list: Option<String>,
    /// Its 1-based line.
    pub line: Option<u32>,
    /// The entry as written in the list.
    pub entry: Option<String>,
    /// The blocked CNAME target, when CNAME inspection decided.
    pub cname: Option<String>,
    /// Version of the policy that decided (16 hex digits, as `schooldns check` prints).
    pub policy_version: String,
    /// The service whose list decided (`tiktok`), when the category is `services`.
    pub service: Option<String>,
    /// The resolver that saw it, when read from the shared PostgreSQL store (`None` in a
    /// SQLite file, which holds one instance's records).
    pub instance: Option<String>,
}

impl HitRecord {
    /// Explains an event into a record, keeping as much of the client address as configured.
    /// `None` if the names no longer parse (they did when the event was made).
    pub fn from_event(event: &HitEvent, keep: ClientAddress) -> Option<HitRecord> {
        let matched = event.cname.as_deref().unwrap_or(&event.qname);
        let name = QueryName::from_ascii_bytes(matched.as_bytes()).ok()?;
        let explained = event.policy.explain(event.client, &name, &event.decision);
        let rule = explained.rule;
        Some(HitRecord {
            id: 0,
            time_ms: event.at_ms,
            last_seen_ms: event.at_ms,
            count: 1,
            school: explained.school,
            device: explained.device,
            profile: explained.profile,
            client: client_address(event.client, keep),
            protocol: event.protocol.to_string(),
            qname: event.qname.to_string(),
            qtype: hickory_proto::rr::RecordType::from(event.qtype).to_string(),
            decision: explained.decision.to_string(),
            category: rule
                .as_ref()
                .map_or_else(|| "policy".to_string(), |r| r.category.clone()),
            list: rule.as_ref().and_then(|r| r.list.clone()),
            line: rule.as_ref().and_then(|r| r.line),
            entry: rule.map(|r| r.entry),
            cname: event.cname.as_deref().map(str::to_string),
            policy_version: format!("{:016x}", event.policy.version()),
            service: explained.service,
            instance: None,
        })
    }

    /// A key that is equal for two events only when their records' [`HitRecord::repeat_key`]s
    /// are equal, computed without explaining the event: the same policy version, kept client
    /// address, names and decision (indices into that policy) explain to the same school,
    /// device, category and rule. Different events may still share a record under different
    /// quick keys (a reload in between); the writer then falls back to the record's own key.
    pub fn quick_repeat_key(event: &HitEvent, keep: ClientAddress) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        event.policy.version().hash(&mut h);
        kept_client(event.client, keep).hash(&mut h);
        event.qname.hash(&mut h);
        event.cname.hash(&mut h);
        event.decision.hash(&mut h);
        h.finish()
    }

    /// The fields that make two hits "the same" for folding repeats: who, what, and why.
    pub fn repeat_key(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [
            self.school.as_deref(),
            self.device.as_deref(),
            self.client.as_deref(),
            Some(self.qname.as_str()),
            Some(self.decision.as_str()),
            Some(self.category.as_str()),
        ] {
            h.update(part.unwrap_or("\u{0}").as_bytes());
            h.update(b"\xff");
        }
        h.digest()
    }
}

/// The client address as kept: full, masked to IPv4 /24 or IPv6 /56, or not at all.
pub fn client_address(client: IpAddr, keep: ClientAddress) -> Option<String> {
    let (address, prefix) = kept_client(client, keep)?;
    Some(match prefix {
        Some(prefix) => format!("{address}/{prefix}"),
        None => address.to_string(),
    })
}

/// What [`client_address`] keeps, before it is written out: the address, and the prefix
/// length when masked.
fn kept_client(client: IpAddr, keep: ClientAddress) -> Option<(IpAddr, Option<u8>)> {
    let client = match client {
        // An IPv4 client reaching an IPv6 socket is still an IPv4 client.
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    match keep {
        ClientAddress::Full => Some((client, None)),
        ClientAddress::None => None,
        ClientAddress::Masked => {
            let prefix = if client.is_ipv4() { 24 } else { 56 };
            let net = ipnet::IpNet::new(client, prefix).ok()?.trunc();
            Some((net.addr(), Some(prefix)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_the_network_only() {
        let v4: IpAddr = "192.168.17.42".parse().unwrap();
        let v6: IpAddr = "2001:db8:abcd:12ff:1::9".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            client_address(v4, ClientAddress::Full).as_deref(),
            Some("192.168.17.42")
        );
        assert_eq!(
            client_address(v4, ClientAddress::Masked).as_deref(),
            Some("192.168.17.0/24")
        );
        assert_eq!(
            client_address(v6, ClientAddress::Masked).as_deref(),
            Some("2001:db8:abcd:1200::/56")
        );
        assert_eq!(
            client_address(mapped, ClientAddress::Masked).as_deref(),
            Some("10.1.2.0/24")
        );
        assert_eq!(client_address(v4, ClientAddress::None), None);
    }
}
