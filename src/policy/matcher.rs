//! `DomainTable`: the compiled names of one category, built once and matched without
//! allocating.
//!
//! A table holds one category's names (all its list files). Per distinct name it stores a
//! 64-bit fingerprint (xxh3 with a per-process random seed) and a 64-bit word with the first
//! file and line that listed it and which rules apply (block or allow, the name itself and/or
//! the names below it), side by side in one 16-byte slot.
//!
//! Slots are laid out as *ordered linear probing*: entries sorted by fingerprint, each placed at
//! its home slot `fingerprint × capacity / 2⁶⁴` or, if that is taken, just after the previous
//! entry. Because placement follows the sort order, a lookup starts at the home slot and stops
//! at the first empty slot or larger fingerprint: one cache line, usually, and no index to read
//! first. At 85 % load that is about 19 bytes per name, against 55–65 for a `HashSet<String>`.
//! Building sorts in place and spreads the entries inside the same allocation, so compiling a
//! category needs no second copy of it.
//!
//! Matching by fingerprint means two different names could share one; with 64 bits and 5 million
//! names the chance that a given query suffix hits a listed fingerprint by accident is about
//! 3·10⁻¹³. The seed is random per process so that nobody can craft a name that collides with an
//! allow-listed one. The entry text is recovered from the query itself (the matched suffix), and
//! the file and line from the table, so nothing else needs storing.

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
    // Zero marks an empty slot in the tables.
    xxhash_rust::xxh3::xxh3_64_with_seed(name, seed).max(1)
}

/// Share of slots in use; ordered linear probing stays short at this load.
const LOAD: f64 = 0.85;

#[inline]
fn home_slot(hash: u64, capacity: usize) -> usize {
    ((hash as u128 * capacity as u128) >> 64) as usize
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

/// The immutable, matchable set of one category's names.
#[derive(Debug, Default)]
pub struct DomainTable {
    /// (fingerprint, meta) slots; fingerprint 0 is an empty slot. Ends with at least one
    /// empty slot past every home slot, so a scan always stops inside the slice.
    slots: Box<[(u64, u64)]>,
    /// Home slots are taken in `0..capacity`.
    capacity: usize,
    len: usize,
    /// Entries with an allow rule (`@@`, RPZ passthru).
    allow_entries: usize,
}

impl DomainTable {
    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds no names.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Heap bytes held by the table.
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * 16
    }

    /// Whether any entry allows (so that a blocked category can still override a block).
    pub fn has_allow_rules(&self) -> bool {
        self.allow_entries > 0
    }

    /// Every fingerprint, for building the policy-wide name filter.
    pub fn fingerprints(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots
            .iter()
            .map(|&(key, _)| key)
            .filter(|&key| key != 0)
    }

    /// Looks up a fingerprint made by [`name_hash`].
    #[inline]
    pub fn get(&self, hash: u64) -> Option<EntryMeta> {
        if self.len == 0 {
            return None;
        }
        for &(key, meta) in &self.slots[home_slot(hash, self.capacity)..] {
            if key == hash {
                return Some(EntryMeta(meta));
            }
            if key == 0 || key > hash {
                return None;
            }
        }
        None
    }
}

/// Collects rules for one category, then lays them out as a [`DomainTable`].
#[derive(Debug, Default)]
pub struct DomainTableBuilder {
    entries: Vec<(u64, u64)>,
}

impl DomainTableBuilder {
    /// A builder expecting about `capacity` rules (e.g. the file's line count).
    pub fn with_capacity(capacity: usize) -> DomainTableBuilder {
        let entries = Vec::with_capacity(capacity);
        super::hugepages::advise(entries.as_ptr(), capacity * 16);
        DomainTableBuilder { entries }
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

    /// Sorts by fingerprint, merges repeated names, and spreads the entries into their slots,
    /// all inside the builder's own allocation.
    pub fn build(self) -> DomainTable {
        let mut entries = self.entries;
        sort_by_fingerprint(&mut entries);
        merge_duplicates(&mut entries);
        let len = entries.len();
        let allow_entries = entries
            .iter()
            .filter(|&&(_, meta)| meta & (ALLOW_EXACT | ALLOW_BELOW) != 0)
            .count();
        if len == 0 {
            return DomainTable::default();
        }
        let capacity = ((len as f64 / LOAD) as usize).max(len + 1);
        // Fluctuations of the home slots around their average: a few standard deviations.
        let slack = 64 + 4 * (len as f64).sqrt() as usize;
        let total = capacity + slack;
        entries.resize(total, (0, 0));
        // Move the sorted entries to the end, then spread them forward into their slots. Slot i
        // is never after the i-th entry's new position, so nothing unread is overwritten.
        let source = total - len;
        entries.copy_within(0..len, source);
        let mut next_free = 0usize;
        for i in 0..len {
            let entry = entries[source + i];
            let slot = home_slot(entry.0, capacity).max(next_free);
            if slot > source + i {
                // Cannot happen with the slack above; stay correct if it ever does.
                let mut table =
                    spread_into_new(&entries[source + i..], &entries[..next_free], capacity);
                table.allow_entries = allow_entries;
                return table;
            }
            entries[next_free..slot].fill((0, 0));
            entries[slot] = entry;
            next_free = slot + 1;
        }
        let end = next_free.max(capacity) + 1;
        entries[next_free..].fill((0, 0));
        entries.truncate(end);
        DomainTable {
            slots: entries.into_boxed_slice(),
            capacity,
            len,
            allow_entries,
        }
    }
}

/// The fallback of [`DomainTableBuilder::build`]: spreads into a fresh allocation.
fn spread_into_new(rest: &[(u64, u64)], placed: &[(u64, u64)], capacity: usize) -> DomainTable {
    let mut slots = placed.to_vec();
    let mut len = placed.iter().filter(|e| e.0 != 0).count();
    for &entry in rest {
        let slot = home_slot(entry.0, capacity).max(slots.len());
        slots.resize(slot, (0, 0));
        slots.push(entry);
        len += 1;
    }
    let end = slots.len().max(capacity) + 1;
    slots.resize(end, (0, 0));
    DomainTable {
        slots: slots.into_boxed_slice(),
        capacity,
        len,
        allow_entries: 0,
    }
}

/// Sorts by fingerprint in place: MSD radix sort one byte at a time (American flag sort), so
/// each pass writes to 256 places at once and stays cache- and TLB-friendly, with insertion
/// sort for small buckets.
fn sort_by_fingerprint(entries: &mut [(u64, u64)]) {
    radix_pass(entries, 56);
}

fn radix_pass(entries: &mut [(u64, u64)], shift: u32) {
    if entries.len() <= 32 {
        insertion_sort(entries);
        return;
    }
    let digit = |h: u64| ((h >> shift) & 0xff) as usize;
    let mut counts = [0usize; 256];
    for &(h, _) in entries.iter() {
        counts[digit(h)] += 1;
    }
    let mut starts = [0usize; 257];
    for d in 0..256 {
        starts[d + 1] = starts[d] + counts[d];
    }
    // Follow each displaced entry's cycle to its bucket.
    let mut next = starts;
    for d in 0..256 {
        while next[d] < starts[d + 1] {
            let i = next[d];
            let mut target = digit(entries[i].0);
            if target == d {
                next[d] += 1;
                continue;
            }
            let mut moving = entries[i];
            while target != d {
                let j = next[target];
                next[target] += 1;
                std::mem::swap(&mut moving, &mut entries[j]);
                target = digit(moving.0);
            }
            entries[i] = moving;
            next[d] += 1;
        }
    }
    if shift == 0 {
        return;
    }
    for d in 0..256 {
        radix_pass(&mut entries[starts[d]..starts[d + 1]], shift - 8);
    }
}

/// Merges runs of one fingerprint (a name listed twice) into one entry, in place.
fn merge_duplicates(entries: &mut Vec<(u64, u64)>) {
    let mut out = 0usize;
    for i in 0..entries.len() {
        if out > 0 && entries[out - 1].0 == entries[i].0 {
            entries[out - 1].1 = EntryMeta(entries[out - 1].1)
                .merge(EntryMeta(entries[i].1))
                .0;
        } else {
            entries[out] = entries[i];
            out += 1;
        }
    }
    entries.truncate(out);
}

/// Small buckets, where insertion sort beats everything else.
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
    fn clustered_fingerprints_take_the_fallback_and_still_match() {
        // Every key's home slot is the last one: the in-place spread would overrun.
        let keys: Vec<u64> = (0..1000u64).map(|i| u64::MAX - 3 * i).collect();
        let mut b = DomainTableBuilder::default();
        for (i, &k) in keys.iter().enumerate() {
            b.entries.push((
                k,
                EntryMeta::new(0, i as u32 + 1, Action::Block, Scope::Subtree).0,
            ));
        }
        let t = b.build();
        assert_eq!(t.len(), keys.len());
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(t.get(k).map(|m| m.line()), Some(i as u32 + 1));
            assert!(t.get(k - 1).is_none());
        }
        assert!(t.get(1).is_none());
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
