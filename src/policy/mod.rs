//! The compiled policy: one immutable value answering "for this client and this name, what
//! happens, and why?".
//!
//! A [`Policy`] holds one name table per category, the network table, the profiles and bloom
//! filters over all listed names. It is built by [`compile()`] off the hot path and sits in the
//! live snapshot (`crate::live`); a query loads it once and sees one consistent policy. [`Policy::decide`] takes no lock, does no I/O and allocates nothing.
//!
//! Precedence for a client whose network (or the default profile) selects a profile:
//! 1. an allow rule for the name or any parent (an allowed category, `@@`, RPZ passthru) wins
//!    over every block, but not over safe search;
//! 2. otherwise the most specific block rule of a blocked category blocks;
//! 3. otherwise bypass names (DoH canary, iCloud Private Relay) get NXDOMAIN;
//! 4. otherwise safe-search names are rewritten;
//! 5. otherwise the name is allowed.
//!
//! This module must not use tokio, sockets or hickory types: it is tested and benchmarked alone.

pub mod bloom;
pub mod compile;
pub mod decision;
pub mod devices;
mod hugepages;
pub mod matcher;
pub mod networks;
pub mod profiles;
pub mod safesearch;
pub mod time;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::lists::{Action, ParseReport};
use crate::name::QueryName;

pub use compile::{CompileError, Compiler, compile};
pub use decision::{BlockAnswer, Decision, Explanation, Rule, RuleInfo, RuleSource, Verdict};

use bloom::NameFilter;
use devices::Devices;
use matcher::{DomainTable, name_hash};
use networks::{NetworkTarget, Networks};
use profiles::{Profile, Role};
use time::{Active, TimeRules, VariantKey};

/// One list file as read into a category.
#[derive(Debug)]
pub struct CompiledFile {
    /// The file.
    pub path: PathBuf,
    /// What parsing it found.
    pub report: ParseReport,
    /// Size, modification time and inode when read.
    pub stamp: compile::FileStamp,
}

/// A category's names, compiled from all of its files into one table. Shared (by `Arc`)
/// between a policy and its successor when none of its files changed, so a reload only pays
/// for the categories that changed.
#[derive(Debug)]
pub struct CompiledCategory {
    /// Its files, in config order; rules refer to them by index.
    pub files: Vec<CompiledFile>,
    /// Every name of every file.
    pub table: DomainTable,
}

/// A category in compiled form.
#[derive(Debug)]
pub struct Category {
    /// Config name.
    pub name: String,
    /// Description from the config.
    pub description: Option<String>,
    /// URL rules of UT1 folders, which DNS cannot apply (reported, not used).
    pub url_rules: u64,
    /// A school's allow exception never unblocks its names.
    pub locked: bool,
    /// The catalogue id when this is a service's table (named `service:<id>`).
    pub service: Option<String>,
    /// Its names.
    pub compiled: Arc<CompiledCategory>,
}

impl Category {
    /// Distinct names in the category.
    pub fn entries(&self) -> usize {
        self.compiled.table.len()
    }

    /// Whether this is a table of exceptions (the district's or a school's), not a
    /// configured category.
    pub fn is_exceptions(&self) -> bool {
        self.name == compile::EXCEPTIONS_CATEGORY
            || self
                .name
                .strip_prefix(compile::EXCEPTIONS_CATEGORY)
                .is_some_and(|rest| rest.starts_with(':'))
    }

    /// Merged parse report of the category's files.
    pub fn report(&self) -> ParseReport {
        let mut report = ParseReport::default();
        for file in &self.compiled.files {
            report.merge(&file.report);
        }
        report
    }
}

/// The category of a `block_unlisted` profile's blocks (names no allowed table lists).
pub const UNLISTED_CATEGORY: &str = "unlisted";

/// What a variant applies, by name: its profile, what switched it, what open rules added, and
/// every table it blocks and allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantSummary {
    /// The profile's name.
    pub profile: String,
    /// The exam or rule that switched to it.
    pub switched: Option<String>,
    /// Tables (categories, services) open rules block, with the rule.
    pub added_blocks: Vec<(String, String)>,
    /// Tables open rules allow, with the rule.
    pub added_allows: Vec<(String, String)>,
    /// Every table blocked.
    pub blocked: Vec<String>,
    /// Every table allowed.
    pub allowed: Vec<String>,
    /// Whether every name no allowed table lists is blocked.
    pub block_unlisted: bool,
}

/// Prefix of a service table's name: `service:tiktok`.
pub const SERVICE_PREFIX: &str = "service:";

/// A school in compiled form.
#[derive(Debug, Clone)]
pub struct School {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Default (configured) profile index.
    pub profile: u32,
    /// Its networks' place in the time rules.
    pub slot: u32,
    /// Its networks and subnets (for display), with the profile index of each.
    pub networks: Vec<(ipnet::IpNet, u32)>,
}

/// Categories hit records carry besides the configured ones: the rules built into every policy,
/// and `services` for a named service's list (the service is in the record's `service`).
pub const BUILT_IN_CATEGORIES: [&str; 3] = ["bypass-protection", "safe-search", "services"];

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    categories: Vec<Category>,
    /// The configured profiles, then the copies schools with exceptions use.
    profiles: Vec<Profile>,
    /// How many of `profiles` are configured.
    configured_profiles: usize,
    schools: Vec<School>,
    networks: Networks,
    /// The place of unknown networks (`[defaults] profile`); `None`: refused.
    default_slot: Option<u32>,
    /// Home devices by token.
    devices: Devices,
    /// The place of encrypted queries without a live token; `None`: refused.
    device_default_slot: Option<u32>,
    /// Schedules, rules in time, the calendar and the places they apply to.
    time: TimeRules,
    /// The profile (index) compiled for each state a place can be in.
    variants: HashMap<VariantKey, u32>,
    /// Per place, the variant in force now; the schedule timer keeps it current.
    active: Active,
    /// The services catalogue.
    services: crate::services::Catalog,
    /// The iCal files the calendar imported (a reload follows their changes).
    calendar_files: Vec<PathBuf>,
    filter: NameFilter,
    /// Identifies this policy's rules: a hash over the config text and every file's stamp.
    version: u64,
    /// `check.<[tls] hostname>`: the name a device's "check that it works" page resolves.
    check_name: Option<Box<[u8]>>,
}

impl Policy {
    /// Decides for a client address: the network selects school and profile, then the name is
    /// judged by that profile. Unknown networks are refused unless a default profile is set.
    #[inline]
    pub fn decide(&self, client: IpAddr, name: &QueryName) -> Decision {
        let (school, slot) = match self.networks.lookup(client) {
            Some(NetworkTarget { school, slot }) => (Some(school), slot),
            None => match self.default_slot {
                Some(slot) => (None, slot),
                None => {
                    return Decision {
                        verdict: Verdict::Refuse,
                        school: None,
                        profile: None,
                        slot: None,
                        device: None,
                        rule: Some(Rule {
                            source: RuleSource::UnknownNetwork,
                            offset: 0,
                            scope: crate::lists::Scope::Exact,
                            allows: false,
                        }),
                        overridden: None,
                    };
                }
            },
        };
        let mut decision = self.decide_for_profile(self.active.variant(slot), name);
        decision.school = school;
        decision.slot = Some(slot);
        decision
    }

    /// Decides for a home device identified by the token its DoT server name or DoH path
    /// carried (lowercase). A missing, unknown or revoked token gets `[devices]
    /// default_profile`, or is refused; it never goes unfiltered. The decision names the
    /// device, and its school only when the device shares its hits with the school.
    #[inline]
    pub fn decide_device(&self, token: Option<&str>, name: &QueryName) -> Decision {
        match token.and_then(|t| self.devices.by_token(t)) {
            Some(index) => {
                let device = &self.devices.all()[index as usize];
                let mut decision = self.decide_for_profile(self.active.variant(device.slot), name);
                decision.device = Some(index);
                decision.slot = Some(device.slot);
                decision.school = device.school.filter(|_| device.share_with_school);
                decision
            }
            None => match self.device_default_slot {
                Some(slot) => {
                    let mut decision = self.decide_for_profile(self.active.variant(slot), name);
                    decision.slot = Some(slot);
                    decision
                }
                None => Decision {
                    verdict: Verdict::Refuse,
                    school: None,
                    profile: None,
                    slot: None,
                    device: None,
                    rule: Some(Rule {
                        source: RuleSource::UnknownDevice,
                        offset: 0,
                        scope: crate::lists::Scope::Exact,
                        allows: false,
                    }),
                    overridden: None,
                },
            },
        }
    }

    /// Whether `name` is the check name (`check.<[tls] hostname>`).
    #[inline]
    pub fn is_check_name(&self, name: &QueryName) -> bool {
        self.check_name
            .as_deref()
            .is_some_and(|check| check == name.as_bytes())
    }

    /// The home devices.
    pub fn devices(&self) -> &Devices {
        &self.devices
    }

    /// Judges a name for a profile (by index), for callers that identify the profile
    /// another way (a family token): the profile's exceptions first, then its lists.
    #[inline]
    pub fn decide_for_profile(&self, profile_index: u32, name: &QueryName) -> Decision {
        let profile = &self.profiles[profile_index as usize];
        if !profile.exceptions.is_empty() {
            return self.decide_with_exceptions(profile_index, profile, name);
        }
        self.decide_by_lists(profile_index, profile, name)
    }

    /// The most specific exception matching the name decides (a school's before the
    /// district's at the same name; block before allow): a block blocks; an allow lets the
    /// name through over the lists, except over a `locked` category unless the exception is
    /// the district's. Safe search still rewrites an allowed search engine.
    #[cold]
    fn decide_with_exceptions(
        &self,
        profile_index: u32,
        profile: &Profile,
        name: &QueryName,
    ) -> Decision {
        let mut found = None;
        'suffixes: for skip in 0..name.label_count() {
            let hash = name_hash(name.suffix(skip));
            for probe in &profile.exceptions {
                let table = &self.categories[probe.category as usize].compiled.table;
                let Some(meta) = table.get(hash) else {
                    continue;
                };
                let below = skip > 0;
                let action = if meta.applies(Action::Block, below) {
                    Action::Block
                } else if meta.applies(Action::Allow, below) {
                    Action::Allow
                } else {
                    continue;
                };
                let rule = Rule {
                    source: RuleSource::List {
                        category: probe.category,
                        file: meta.file(),
                        line: meta.line(),
                    },
                    offset: name.suffix_offset(skip) as u8,
                    scope: meta.scope(action),
                    allows: action == Action::Allow,
                };
                found = Some((action, rule, probe.district));
                break 'suffixes;
            }
        }
        let by_lists = self.decide_by_lists(profile_index, profile, name);
        let Some((action, rule, district)) = found else {
            return by_lists;
        };
        if action == Action::Block {
            return Decision {
                verdict: Verdict::Block(profile.answer),
                rule: Some(rule),
                overridden: None,
                ..by_lists
            };
        }
        match (by_lists.verdict, by_lists.rule) {
            (Verdict::Block(_), Some(block)) => {
                let locked = match block.source {
                    RuleSource::List { category, .. } => self.categories[category as usize].locked,
                    _ => false,
                };
                if locked && !district {
                    return by_lists;
                }
                Decision {
                    verdict: Verdict::Allow,
                    rule: Some(rule),
                    overridden: Some(block),
                    ..by_lists
                }
            }
            (Verdict::Allow, _) => Decision {
                rule: Some(rule),
                ..by_lists
            },
            // A safe-search rewrite (or a refusal) stands.
            _ => by_lists,
        }
    }

    /// Judges a name by the profile's lists, safe search and bypass protection.
    fn decide_by_lists(&self, profile_index: u32, profile: &Profile, name: &QueryName) -> Decision {
        let mut allow: Option<Rule> = None;
        let mut block: Option<Rule> = None;
        // First pass: hash every suffix and ask the filter. The iterations do not depend on
        // each other, so the CPU overlaps their cache misses instead of paying them in turn.
        let labels = name.label_count();
        let mut hashes = [0u64; 128];
        let mut maybe = [false; 128];
        for (skip, slot) in hashes.iter_mut().enumerate().take(labels) {
            *slot = name_hash(name.suffix(skip));
            self.filter.prefetch(*slot);
        }
        for skip in 0..labels {
            maybe[skip] = self.filter.may_contain(hashes[skip]);
        }
        for skip in (0..labels).filter(|&skip| maybe[skip]) {
            let hash = hashes[skip];
            let below = skip > 0;
            let offset = name.suffix_offset(skip) as u8;
            let hint = self.filter.categories_of(hash);
            for probe in &profile.probes {
                // The first (most specific) allow and block are all that can change the outcome:
                // once found, their kind is not looked up again.
                let settled = match probe.role {
                    Role::Allow => allow.is_some(),
                    Role::Block => block.is_some() && (allow.is_some() || !probe.has_allow_rules),
                };
                if settled || !hint.may_contain(probe.category) {
                    continue;
                }
                let table = &self.categories[probe.category as usize].compiled.table;
                let Some(meta) = table.get(hash) else {
                    continue;
                };
                let source = RuleSource::List {
                    category: probe.category,
                    file: meta.file(),
                    line: meta.line(),
                };
                let allows = match probe.role {
                    Role::Allow => {
                        meta.applies(Action::Allow, below) || meta.applies(Action::Block, below)
                    }
                    Role::Block => meta.applies(Action::Allow, below),
                };
                if allows {
                    if allow.is_none() {
                        let action = if meta.applies(Action::Allow, below) {
                            Action::Allow
                        } else {
                            Action::Block
                        };
                        allow = Some(Rule {
                            source,
                            offset,
                            scope: meta.scope(action),
                            allows: true,
                        });
                    }
                } else if probe.role == Role::Block
                    && block.is_none()
                    && meta.applies(Action::Block, below)
                {
                    block = Some(Rule {
                        source,
                        offset,
                        scope: meta.scope(Action::Block),
                        allows: false,
                    });
                }
            }
        }
        let safe_search = || {
            safesearch::rewrite_target(name.as_bytes(), profile.safe_search).map(|target| {
                (
                    Verdict::Rewrite(target),
                    Rule {
                        source: RuleSource::SafeSearch,
                        offset: 0,
                        scope: crate::lists::Scope::Exact,
                        allows: false,
                    },
                )
            })
        };
        let (verdict, rule, overridden) = if let Some(allow) = allow {
            match safe_search() {
                Some((verdict, rule)) => (verdict, Some(rule), block),
                None => (Verdict::Allow, Some(allow), block),
            }
        } else if let Some(block) = block {
            (Verdict::Block(profile.answer), Some(block), None)
        } else if profile.block_unlisted {
            let rule = Rule {
                source: RuleSource::Unlisted,
                offset: 0,
                scope: crate::lists::Scope::Exact,
                allows: false,
            };
            (Verdict::Block(profile.answer), Some(rule), None)
        } else if profile.bypass_protection
            && safesearch::BYPASS_NAMES
                .iter()
                .any(|n| n.as_bytes() == name.as_bytes())
        {
            let rule = Rule {
                source: RuleSource::BypassProtection,
                offset: 0,
                scope: crate::lists::Scope::Exact,
                allows: false,
            };
            (Verdict::Block(BlockAnswer::Nxdomain), Some(rule), None)
        } else if let Some((verdict, rule)) = safe_search() {
            (verdict, Some(rule), None)
        } else {
            (Verdict::Allow, None, None)
        };
        Decision {
            verdict,
            school: None,
            profile: Some(profile_index),
            slot: None,
            device: None,
            rule,
            overridden,
        }
    }

    /// Turns a decision into its printable form.
    pub fn explain(&self, client: IpAddr, name: &QueryName, decision: &Decision) -> Explanation {
        let school = decision.school.map(|s| &self.schools[s as usize]);
        let rule = decision.rule.and_then(|r| self.rule_info(name, &r));
        Explanation {
            name: name.as_str().to_string(),
            client,
            decision: decision.verdict.as_str(),
            school: school.map(|s| s.id.clone()),
            school_name: school.map(|s| s.name.clone()),
            device: decision
                .device
                .and_then(|d| self.devices.get(d))
                .map(|d| d.id.clone()),
            profile: decision
                .profile
                .map(|p| self.profiles[p as usize].name.clone()),
            category: rule.as_ref().map(|r| r.category.clone()),
            service: decision
                .rule
                .and_then(|r| self.rule_service(&r))
                .map(str::to_string),
            when: decision
                .profile
                .and_then(|p| self.when_of(p, decision.rule.as_ref())),
            rule,
            overridden: decision.overridden.and_then(|r| self.rule_info(name, &r)),
            answer: match decision.verdict {
                Verdict::Block(answer) => Some(answer.as_string()),
                _ => None,
            },
            rewrite: match decision.verdict {
                Verdict::Rewrite(target) => Some(target),
                _ => None,
            },
            at: None,
        }
    }

    /// The service whose table a rule is in.
    pub fn rule_service(&self, rule: &Rule) -> Option<&str> {
        match rule.source {
            RuleSource::List { category, .. } => {
                self.categories[category as usize].service.as_deref()
            }
            _ => None,
        }
    }

    /// The schedule or calendar entry that decided, for a decision under variant `profile`:
    /// the rule that added the deciding table, else what switched the profile.
    fn when_of(&self, profile: u32, rule: Option<&Rule>) -> Option<String> {
        let because = self.profiles.get(profile as usize)?.because.as_ref()?;
        let table = rule.and_then(|r| match r.source {
            RuleSource::List { category, .. } => Some(category),
            _ => None,
        });
        table
            .and_then(|t| {
                because
                    .added
                    .iter()
                    .find(|(added, _)| *added == t)
                    .map(|(_, cause)| cause.clone())
            })
            .or_else(|| because.switched.clone())
    }

    fn rule_info(&self, name: &QueryName, rule: &Rule) -> Option<RuleInfo> {
        let entry = rule.scope.render(&name.as_str()[rule.offset as usize..]);
        let kind = if rule.allows { "allow" } else { "block" };
        match rule.source {
            RuleSource::List {
                category,
                file,
                line,
            } => {
                let category = &self.categories[category as usize];
                Some(RuleInfo {
                    kind,
                    category: match &category.service {
                        Some(_) => crate::services::SERVICES_CATEGORY.to_string(),
                        None => category.name.clone(),
                    },
                    list: category
                        .compiled
                        .files
                        .get(file as usize)
                        .map(|f| f.path.display().to_string()),
                    line: Some(line),
                    entry,
                })
            }
            RuleSource::BypassProtection => Some(RuleInfo {
                kind,
                category: "bypass-protection".into(),
                list: None,
                line: None,
                entry,
            }),
            RuleSource::SafeSearch => Some(RuleInfo {
                kind: "rewrite",
                category: "safe-search".into(),
                list: None,
                line: None,
                entry,
            }),
            RuleSource::Unlisted => Some(RuleInfo {
                kind,
                category: UNLISTED_CATEGORY.into(),
                list: None,
                line: None,
                entry,
            }),
            RuleSource::UnknownNetwork | RuleSource::UnknownDevice => None,
        }
    }

    /// The category name of a rule (`bypass-protection`, `safe-search` for built-in rules), for
    /// Extended DNS Errors and logs; does not allocate.
    pub fn rule_category(&self, rule: &Rule) -> &str {
        match rule.source {
            RuleSource::List { category, .. } => &self.categories[category as usize].name,
            RuleSource::BypassProtection => "bypass-protection",
            RuleSource::SafeSearch => "safe-search",
            RuleSource::UnknownNetwork => "unknown-network",
            RuleSource::UnknownDevice => "unknown-device",
            RuleSource::Unlisted => UNLISTED_CATEGORY,
        }
    }

    /// Decides as [`Policy::decide`] would at `at_ms` (for `explain --at` and the console):
    /// the place's variant at that moment, not the one in force now.
    pub fn decide_at(&self, client: IpAddr, name: &QueryName, at_ms: i64) -> Decision {
        let now = self.decide(client, name);
        let Some(slot) = now.slot else {
            return now;
        };
        let mut decision = self.decide_for_profile(self.variant_at(slot, at_ms), name);
        decision.school = now.school;
        decision.slot = now.slot;
        decision
    }

    /// Decides for a device as [`Policy::decide_device`] would at `at_ms`.
    pub fn decide_device_at(&self, token: Option<&str>, name: &QueryName, at_ms: i64) -> Decision {
        let now = self.decide_device(token, name);
        let Some(slot) = now.slot else {
            return now;
        };
        let mut decision = self.decide_for_profile(self.variant_at(slot, at_ms), name);
        decision.school = now.school;
        decision.device = now.device;
        decision.slot = now.slot;
        decision
    }

    /// The variant a place has at `at_ms`.
    pub fn variant_at(&self, slot: u32, at_ms: i64) -> u32 {
        let key = self.time.key_at_instant(slot, at_ms);
        self.variants
            .get(&key)
            .copied()
            .unwrap_or(self.time.slots[slot as usize].base)
    }

    /// Brings every place's rules up to `now_ms` (the schedule timer calls this at each edge
    /// and when a new policy is swapped in); returns the next edge (`i64::MAX`: none).
    pub fn refresh_time(&self, now_ms: i64) -> i64 {
        if self.time.is_static() {
            return i64::MAX;
        }
        time::refresh(&self.time, &self.variants, &self.active, now_ms)
    }

    /// How long an answer decided as `decision` for `name` may be cached by the device, in
    /// seconds, when the place's next edge comes before `ttl` runs out and changes this
    /// name's verdict: the answer then expires at the edge. `None`: keep the TTL. The second
    /// decision is only made for answers whose TTL reaches past an edge.
    #[inline]
    pub fn ttl_limit(
        &self,
        decision: &Decision,
        name: &QueryName,
        now_ms: i64,
        ttl: u32,
    ) -> Option<u32> {
        let slot = decision.slot?;
        let (edge, next) = self.active.next(slot);
        if edge == i64::MAX || edge.saturating_sub(now_ms) >= i64::from(ttl) * 1000 {
            return None;
        }
        self.ttl_limit_near_edge(decision, name, now_ms, edge, next)
    }

    #[cold]
    fn ttl_limit_near_edge(
        &self,
        decision: &Decision,
        name: &QueryName,
        now_ms: i64,
        edge: i64,
        next: u32,
    ) -> Option<u32> {
        if Some(next) == decision.profile {
            return None;
        }
        let after = self.decide_for_profile(next, name);
        if after.verdict == decision.verdict {
            return None;
        }
        Some((edge.saturating_sub(now_ms).max(0) / 1000) as u32)
    }

    /// The variant a place has now (as the schedule timer last set it).
    pub fn variant_now(&self, slot: u32) -> u32 {
        self.active.variant(slot)
    }

    /// A place's next edge (ms since the epoch) and the variant after it; `None` when its
    /// rules never change.
    pub fn next_change(&self, slot: u32) -> Option<(i64, u32)> {
        let (edge, next) = self.active.next(slot);
        (edge != i64::MAX).then_some((edge, next))
    }

    /// A variant in words' parts: for `check`, the console and `explain`.
    pub fn summary(&self, variant: u32) -> VariantSummary {
        let profile = &self.profiles[variant as usize];
        let names = |tables: &[u32]| -> Vec<String> {
            tables
                .iter()
                .map(|&t| self.table_name(t).to_string())
                .collect()
        };
        let added = |role: &[u32]| -> Vec<(String, String)> {
            profile
                .because
                .iter()
                .flat_map(|b| b.added.iter())
                .filter(|(t, _)| role.contains(t))
                .map(|(t, cause)| (self.table_name(*t).to_string(), cause.clone()))
                .collect()
        };
        VariantSummary {
            profile: profile.name.clone(),
            switched: profile.because.as_ref().and_then(|b| b.switched.clone()),
            added_blocks: added(&profile.block),
            added_allows: added(&profile.allow),
            blocked: names(&profile.block),
            allowed: names(&profile.allow),
            block_unlisted: profile.block_unlisted,
        }
    }

    /// Schedules, rules in time, the calendar and the places they apply to.
    pub fn time_rules(&self) -> &TimeRules {
        &self.time
    }

    /// A place's week from the local midnight of `monday`, in stretches of equal rules.
    pub fn week(&self, slot: u32, monday: jiff::civil::Date) -> Vec<time::Stretch> {
        time::week(&self.time, &self.variants, slot, monday)
    }

    /// The services catalogue.
    pub fn services(&self) -> &crate::services::Catalog {
        &self.services
    }

    /// The iCal files the calendar imported.
    pub fn calendar_files(&self) -> &[PathBuf] {
        &self.calendar_files
    }

    /// A table's name for people: `service:tiktok` → `tiktok`, categories as named.
    pub fn table_name(&self, table: u32) -> &str {
        let category = &self.categories[table as usize];
        category.service.as_deref().unwrap_or(&category.name)
    }

    /// Categories in config order (by name).
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    /// The profile a decision or a school names by index (a school's copy, with its
    /// exceptions, included).
    pub fn profile(&self, index: u32) -> &Profile {
        &self.profiles[index as usize]
    }

    /// The configured profiles, in config order.
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles[..self.configured_profiles]
    }

    /// Schools by index.
    pub fn schools(&self) -> &[School] {
        &self.schools
    }

    /// The default profile for unknown networks.
    pub fn default_profile(&self) -> Option<&Profile> {
        self.default_slot
            .map(|slot| &self.profiles[self.time.slots[slot as usize].base as usize])
    }

    /// Index of a profile by name.
    pub fn profile_index(&self, name: &str) -> Option<u32> {
        self.profiles
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u32)
    }

    /// Identifies the rules in force (changes whenever any list or the config changes).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Heap bytes held by the matching structures (tables and name filters).
    pub fn matcher_bytes(&self) -> usize {
        self.filter.heap_bytes()
            + self
                .categories
                .iter()
                .map(|c| c.compiled.table.heap_bytes())
                .sum::<usize>()
    }
}
