//! `DomainTable`: the compiled form of one list file, built once and matched without allocating.
//!
//! A table stores, per distinct name, a 64-bit fingerprint (xxh3 with a per-process random seed)
//! and a 32-bit word holding the first line that listed it and which rules apply to it (block or
//! allow, the name itself and/or the names below it). Fingerprints are sorted and bucketed by
//! their top bits, with a bucket-start index of about one byte per name, so a lookup is one
//! index read and a short scan of one cache line: about 13 bytes per name and no load-factor
//! slack, against 60–90 bytes for a `HashSet<String>`.
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

/// Largest line number a table can record; later lines are recorded as this value.
pub const MAX_LINE: u32 = (1 << 28) - 1;

const BLOCK_EXACT: u32 = 1 << 28;
const BLOCK_BELOW: u32 = 1 << 29;
const ALLOW_EXACT: u32 = 1 << 30;
const ALLOW_BELOW: u32 = 1 << 31;

/// What a table knows about one name: its first line and the rules that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryMeta(u32);

impl EntryMeta {
    fn new(line: u32, action: Action, scope: Scope) -> EntryMeta {
        let (exact, below) = match action {
            Action::Block => (BLOCK_EXACT, BLOCK_BELOW),
            Action::Allow => (ALLOW_EXACT, ALLOW_BELOW),
        };
        let flags = match scope {
            Scope::Subtree => exact | below,
            Scope::Exact => exact,
            Scope::Below => below,
        };
        EntryMeta(line.min(MAX_LINE) | flags)
    }

    /// The first line of the file that listed this name.
    pub fn line(self) -> u32 {
        self.0 & MAX_LINE
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

    fn merge(self, other: EntryMeta) -> EntryMeta {
        let line = self.line().min(other.line());
        EntryMeta(line | ((self.0 | other.0) & !MAX_LINE))
    }
}

/// The immutable, matchable set of one list file's names.
#[derive(Debug, Default)]
pub struct DomainTable {
    keys: Box<[u64]>,
    metas: Box<[u32]>,
    /// `index[b]..index[b + 1]` is the range of `keys` whose top `bits` bits equal `b`.
    index: Box<[u32]>,
    bits: u32,
}

impl DomainTable {
    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the table holds no names.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Heap bytes held by the table.
    pub fn heap_bytes(&self) -> usize {
        self.keys.len() * 8 + self.metas.len() * 4 + self.index.len() * 4
    }

    /// Every fingerprint, for building the policy-wide bloom filter.
    pub fn fingerprints(&self) -> &[u64] {
        &self.keys
    }

    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        hash.checked_shr(64 - self.bits).unwrap_or(0) as usize
    }

    /// Looks up a fingerprint made by [`name_hash`].
    #[inline]
    pub fn get(&self, hash: u64) -> Option<EntryMeta> {
        if self.keys.is_empty() {
            return None;
        }
        let b = self.bucket(hash);
        let (lo, hi) = (self.index[b] as usize, self.index[b + 1] as usize);
        for (i, &key) in self.keys[lo..hi].iter().enumerate() {
            if key == hash {
                return Some(EntryMeta(self.metas[lo + i]));
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
    keys: Vec<u64>,
    metas: Vec<u32>,
}

impl DomainTableBuilder {
    /// A builder expecting about `capacity` rules (e.g. the file's line count).
    pub fn with_capacity(capacity: usize) -> DomainTableBuilder {
        DomainTableBuilder {
            keys: Vec::with_capacity(capacity),
            metas: Vec::with_capacity(capacity),
        }
    }

    /// Adds one normalised name.
    pub fn insert(&mut self, name: &str, line: u32, action: Action, scope: Scope) {
        self.keys.push(name_hash(name.as_bytes()));
        self.metas.push(EntryMeta::new(line, action, scope).0);
    }

    /// Sorts by fingerprint (a counting sort on the bucket bits, then tiny per-bucket sorts),
    /// merges repeated names, and builds the bucket index.
    pub fn build(self) -> DomainTable {
        let n = self.keys.len();
        // About four names per bucket: one cache line of fingerprints per lookup.
        let bits = if n < 8 { 0 } else { (n / 4).ilog2().min(31) };
        let buckets = 1usize << bits;
        let bucket_of = |h: u64| h.checked_shr(64 - bits).unwrap_or(0) as usize;

        let mut starts = vec![0u32; buckets + 1];
        for &h in &self.keys {
            starts[bucket_of(h) + 1] += 1;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        let mut keys = vec![0u64; n];
        let mut metas = vec![0u32; n];
        let mut next = starts.clone();
        for (&h, &m) in self.keys.iter().zip(&self.metas) {
            let slot = &mut next[bucket_of(h)];
            keys[*slot as usize] = h;
            metas[*slot as usize] = m;
            *slot += 1;
        }
        drop(self);

        // Sort each bucket and merge duplicates, compacting in place.
        let mut out = 0usize;
        let mut index = vec![0u32; buckets + 1];
        for b in 0..buckets {
            let (lo, hi) = (starts[b] as usize, starts[b + 1] as usize);
            index[b] = out as u32;
            insertion_sort(&mut keys[lo..hi], &mut metas[lo..hi]);
            for i in lo..hi {
                if out > index[b] as usize && keys[out - 1] == keys[i] {
                    metas[out - 1] = EntryMeta(metas[out - 1]).merge(EntryMeta(metas[i])).0;
                } else {
                    keys[out] = keys[i];
                    metas[out] = metas[i];
                    out += 1;
                }
            }
        }
        index[buckets] = out as u32;
        keys.truncate(out);
        metas.truncate(out);
        DomainTable {
            keys: keys.into_boxed_slice(),
            metas: metas.into_boxed_slice(),
            index: index.into_boxed_slice(),
            bits,
        }
    }
}

/// Buckets hold a handful of keys, where insertion sort beats everything else.
fn insertion_sort(keys: &mut [u64], metas: &mut [u32]) {
    for i in 1..keys.len() {
        let mut j = i;
        while j > 0 && keys[j - 1] > keys[j] {
            keys.swap(j - 1, j);
            metas.swap(j - 1, j);
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
            b.insert(name, i as u32 + 1, *action, *scope);
        }
        b.build()
    }

    #[test]
    fn finds_every_inserted_name_and_nothing_else() {
        for n in [0usize, 1, 7, 8, 100, 10_000] {
            let names: Vec<String> = (0..n).map(|i| format!("host{i}.example")).collect();
            let mut b = DomainTableBuilder::with_capacity(n);
            for (i, name) in names.iter().enumerate() {
                b.insert(name, i as u32 + 1, Action::Block, Scope::Subtree);
            }
            let t = b.build();
            assert_eq!(t.len(), n);
            for (i, name) in names.iter().enumerate() {
                let meta = t.get(name_hash(name.as_bytes())).expect(name);
                assert_eq!(meta.line(), i as u32 + 1);
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
