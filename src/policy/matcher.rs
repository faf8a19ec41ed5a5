//! `DomainTable`: the compiled names of one category, built once and matched without allocating.
//!
//! A table holds one category's names (all its list files). It stores, per distinct name, a
//! 64-bit fingerprint (xxh3 with a per-process random seed) and a 64-bit word holding the first
//! file and line that listed it and which rules apply to it (block or allow, the name itself
//! and/or the names below it). Fingerprints are sorted and bucketed by their top bits, with a
//! bucket-start index of about one byte per name, so a lookup is one index read and a short
//! scan of one cache line: about 17 bytes per name and no load-factor slack, against 55–65
//! bytes for a `HashSet<String>`.
//!
//! Matching by fingerprint means two different names could share one; with 64 bits and 5 million
//! names the chance that a given query suffix hits a listed fingerprint by accident is about
//! 3·10⁻¹³. The seed is random per process so that nobody can craft a name that collides with an
//! allow-listed one. The entry text is recovered from the query itself (the matched suffix), and
//! the line number from the table, so nothing else needs storing.

use std::sync::OnceLock;

use crate::lists::{Action, Scope};

/// Hashes a normalised name (or suffix of one) the way every table and the bloom filter do.
#[inline]
pub fn name_hash(name: &[u8]) -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    });
    xxhash_rust::xxh3::xxh3_64_with_seed(name, seed)
}

/// Most list files one table (one category) can hold.
pub const MAX_FILES: usize = 1 << 16;

const FILE_SHIFT: u32 = 32;
const BLOCK_EXACT: u64 = 1 << 48;
const BLOCK_BELOW: u64 = 1 << 49;
const ALLOW_EXACT: u64 = 1 << 50;
const ALLOW_BELOW: u64 = 1 << 51;
const FLAGS: u64 = BLOCK_EXACT | BLOCK_BELOW | ALLOW_EXACT | ALLOW_BELOW;
const ORIGIN: u64 = (1 << 48) - 1;

/// What a table knows about one name: the first file and line that listed it, and the rules
/// that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta(u64);

impl EntryMeta {
    fn new(file: u16, line: u32, action: Action, scope: Scope) -> EntryMeta {
        let (exact, below) = match action {
            Action::Block => (BLOCK_EXACT, BLOCK_BELOW),
            Action::Allow => (ALLOW_EXACT, ALLOW_BELOW),
        };
        let flags = match scope {
            Scope::Subtree => exact | below,
            Scope::Exact => exact,
            Scope::Below => below,
        };
        EntryMeta(u64::from(line) | (u64::from(file) << FILE_SHIFT) | flags)
    }

    /// The first line of the file that listed this name.
    pub fn line(self) -> u32 {
        self.0 as u32
    }

    /// Index, within the table's category, of the file that listed this name first.
    pub fn file(self) -> u16 {
        (self.0 >> FILE_SHIFT) as u16
    }

    /// Whether a rule of `action` applies when this entry matched the query name itself
    /// (`below == false`) or one of its parents (`below == true`).
    pub fn applies(self, action: Action, below: bool) -> bool {
        let bit = match (action, below) {
            (Action::Block, false) => BLOCK_EXACT,
            (Action::Block, true) => BLOCK_BELOW,
            (Action::Allow, false) => ALLOW_EXACT,
            (Action::Allow, true) => ALLOW_BELOW,
        };
        self.0 & bit != 0
    }

    /// The scope of the rules of `action`, for showing the entry as it was written.
    pub fn scope(self, action: Action) -> Scope {
        let (exact, below) = match action {
            Action::Block => (BLOCK_EXACT, BLOCK_BELOW),
            Action::Allow => (ALLOW_EXACT, ALLOW_BELOW),
        };
        match (self.0 & exact != 0, self.0 & below != 0) {
            (true, false) => Scope::Exact,
            (false, true) => Scope::Below,
            _ => Scope::Subtree,
        }
    }

    /// Combines two rules for one name: all flags, and the earliest (file, line).
    fn merge(self, other: EntryMeta) -> EntryMeta {
        let origin = (self.0 & ORIGIN).min(other.0 & ORIGIN);
        EntryMeta(origin | ((self.0 | other.0) & FLAGS))
    }
}

/// The immutable, matchable set of one list file's names.
#[derive(Debug, Default)]
pub struct DomainTable {
    /// (fingerprint, meta) side by side: the match and its meta share a cache line.
    entries: Box<[(u64, u64)]>,
    /// `index[b]..index[b + 1]` is the range of `keys` whose top `bits` bits equal `b`.
    index: Box<[u32]>,
    bits: u32,
}

impl DomainTable {
    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table holds no names.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Heap bytes held by the table.
    pub fn heap_bytes(&self) -> usize {
        self.entries.len() * 16 + self.index.len() * 4
    }

    /// Every fingerprint, for building the policy-wide name filter.
    pub fn fingerprints(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.iter().map(|&(key, _)| key)
    }

    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        hash.checked_shr(64 - self.bits).unwrap_or(0) as usize
    }

    /// Looks up a fingerprint made by [`name_hash`].
    #[inline]
    pub fn get(&self, hash: u64) -> Option<EntryMeta> {
        if self.entries.is_empty() {
            return None;
        }
        let b = self.bucket(hash);
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        for &(key, meta) in &self.entries[lo..hi] {
            if key == hash {
                return Some(EntryMeta(meta));
            }
            if key > hash {
                break;
            }
        }
        None
    }
}

/// Collects rules for one file, then sorts them into a [`DomainTable`].
#[derive(Debug, Default)]
pub struct DomainTableBuilder {
    entries: Vec<(u64, u64)>,
}

impl DomainTableBuilder {
    /// A builder expecting about `capacity` rules (e.g. the file's line count).
    pub fn with_capacity(capacity: usize) -> DomainTableBuilder {
        DomainTableBuilder {
            entries: Vec::with_capacity(capacity),
        }
    }

    /// Adds one normalised name, listed at `line` of the table's `file`-th file.
    pub fn insert(&mut self, name: &str, file: u16, line: u32, action: Action, scope: Scope) {
        let meta = EntryMeta::new(file, line, action, scope).0;
        self.entries.push((name_hash(name.as_bytes()), meta));
    }

    /// Rules added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sorts by fingerprint (an in-place radix pass on the bucket bits, then tiny per-bucket
    /// sorts), merges repeated names, and builds the bucket index. Sorting in place keeps the
    /// transient memory of a build at the builder's own 12 bytes per rule.
    pub fn build(self) -> DomainTable {
        let mut entries = self.entries;
        let n = entries.len();
        // About four names per bucket: one or two cache lines of entries per lookup.
        let bits = if n < 8 { 0 } else { (n / 4).ilog2().min(31) };
        let buckets = 1usize << bits;
        let bucket_of = |h: u64| h.checked_shr(64 - bits).unwrap_or(0) as usize;

        let mut starts = vec![0u32; buckets + 1];
        for &(h, _) in &entries {
            starts[bucket_of(h) + 1] += 1;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        // American flag sort: follow each displaced entry's cycle to its bucket.
        let mut next = starts.clone();
        for b in 0..buckets {
            let end = starts[b + 1];
            while next[b] < end {
                let i = next[b] as usize;
                let mut target = bucket_of(entries[i].0);
                if target == b {
                    next[b] += 1;
                    continue;
                }
                let mut moving = entries[i];
                while target != b {
                    let j = next[target] as usize;
                    next[target] += 1;
                    std::mem::swap(&mut moving, &mut entries[j]);
                    target = bucket_of(moving.0);
                }
                entries[i] = moving;
                next[b] += 1;
            }
        }
        drop(next);

        // Sort each bucket and merge duplicates, compacting in place.
        let mut out = 0usize;
        for b in 0..buckets {
            let (lo, hi) = (starts[b] as usize, starts[b + 1] as usize);
            let bucket_start = out;
            insertion_sort(&mut entries[lo..hi]);
            for i in lo..hi {
                if out > bucket_start && entries[out - 1].0 == entries[i].0 {
                    let merged = EntryMeta(entries[out - 1].1).merge(EntryMeta(entries[i].1));
                    entries[out - 1].1 = merged.0;
                } else {
                    entries[out] = entries[i];
                    out += 1;
                }
            }
            // `starts[b]` is no longer needed as an input: reuse it as the output index.
            starts[b] = bucket_start as u32;
        }
        starts[buckets] = out as u32;
        entries.truncate(out);
        DomainTable {
            entries: entries.into_boxed_slice(),
            index: starts.into_boxed_slice(),
            bits,
        }
    }
}

/// Buckets hold a handful of entries, where insertion sort beats everything else.
fn insertion_sort(entries: &mut [(u64, u64)]) {
    for i in 1..entries.len() {
        let mut j = i;
        while j > 0 && entries[j - 1].0 > entries[j].0 {
            entries.swap(j - 1, j);
            j -= 1;
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn table(rules: &[(&str, Action, Scope)]) -> DomainTable {
        let mut b = DomainTableBuilder::default();
        for (i, (name, action, scope)) in rules.iter().enumerate() {
            b.insert(name, 0, i as u32 + 1, *action, *scope);
        }
        b.build()
    }

    #[test]
    fn finds_every_inserted_name_and_nothing_else() {
        for n in [0usize, 1, 7, 8, 100, 10_000] {
            let names: Vec<String> = (0..n).map(|i| format!("host{i}.example")).collect();
            let mut b = DomainTableBuilder::with_capacity(n);
            for (i, name) in names.iter().enumerate() {
                b.insert(name, 1, i as u32 + 1, Action::Block, Scope::Subtree);
            }
            let t = b.build();
            assert_eq!(t.len(), n);
            for (i, name) in names.iter().enumerate() {
                let meta = t.get(name_hash(name.as_bytes())).expect(name);
                assert_eq!((meta.file(), meta.line()), (1, i as u32 + 1));
            }
            for i in 0..1000 {
                assert!(
                    t.get(name_hash(format!("other{i}.example").as_bytes()))
                        .is_none()
                );
            }
        }
    }

    #[test]
    fn repeated_names_merge_their_rules_and_keep_the_first_line() {
        let t = table(&[
            ("a.example", Action::Block, Scope::Exact),
            ("b.example", Action::Block, Scope::Below),
            ("a.example", Action::Block, Scope::Below),
            ("a.example", Action::Allow, Scope::Exact),
        ]);
        assert_eq!(t.len(), 2);
        let a = t.get(name_hash(b"a.example")).unwrap();
        assert_eq!(a.line(), 1);
        assert!(a.applies(Action::Block, false) && a.applies(Action::Block, true));
        assert!(a.applies(Action::Allow, false) && !a.applies(Action::Allow, true));
        assert_eq!(a.scope(Action::Block), Scope::Subtree);
        let b = t.get(name_hash(b"b.example")).unwrap();
        assert!(!b.applies(Action::Block, false) && b.applies(Action::Block, true));
        assert_eq!(b.scope(Action::Block), Scope::Below);
    }
}
