//! An age profile in compiled form: which category tables to probe, in which role; and the
//! variants of a profile that places and rules in time make (see `time`).

use crate::config::SafeSearchLevel;

use super::decision::BlockAnswer;

/// Whether a category's entries block or allow for a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The category is in the profile's `block` set; its `@@`/passthru entries still allow.
    Block,
    /// The category is in the profile's `allow` set: every entry allows.
    Allow,
}

/// One category table a profile consults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Index of the category.
    pub category: u32,
    /// Role of that category for this profile.
    pub role: Role,
    /// Whether the category has allow rules (`@@`, passthru), which a blocked category can
    /// still contribute after one of its blocks matched.
    pub has_allow_rules: bool,
}

/// An exceptions table a profile consults before its lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExceptionProbe {
    /// Index of the exceptions category.
    pub category: u32,
    /// District-wide exceptions also unblock `locked` categories; a school's never do.
    pub district: bool,
}

/// A compiled age profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Config name (`primary`, `staff`, …).
    pub name: String,
    /// Description from the config.
    pub description: Option<String>,
    /// Blocked categories (indices).
    pub block: Vec<u32>,
    /// Allowed categories (indices).
    pub allow: Vec<u32>,
    /// Safe-search level.
    pub safe_search: SafeSearchLevel,
    /// How blocks are answered.
    pub answer: BlockAnswer,
    /// Whether bypass names are answered NXDOMAIN.
    pub bypass_protection: bool,
    /// Whether names no allowed table lists are blocked.
    pub block_unlisted: bool,
    /// Every allowed, then every blocked category.
    pub probes: Vec<Probe>,
    /// Exceptions consulted before the lists: the school's (in a school's variant of the
    /// profile), then the district's. Empty for most profiles, and then free.
    pub exceptions: Vec<ExceptionProbe>,
    /// The configured profile this one is (or is a variant of).
    pub configured: u32,
    /// Why a variant differs from its configured profile; `None` for configured profiles.
    pub because: Option<Box<Because>>,
}

/// What made a variant: the exam or rule that switched the profile, and the tables open rules
/// added (for `explain`: which schedule or calendar entry decided).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Because {
    /// `exam "…" (file:line)` or `schedule "…" (file:line key)`.
    pub switched: Option<String>,
    /// Tables added by open rules, with the rule.
    pub added: Vec<(u32, String)>,
}
