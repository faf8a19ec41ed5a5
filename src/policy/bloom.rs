//! `NameFilter`: a blocked bloom filter over every name in a policy that also answers per
//! category.
//!
//! Most queries are for names no list mentions. Before probing any category table for a suffix
//! of the name, the policy asks this filter; a "no" is certain and costs one cache line. On a
//! "maybe", the same cache line answers per category ("could category 7 hold this name?"), so
//! only the categories that probably hold the name are probed. Every (name, category) sets six
//! untagged and six tagged bits inside one 512-bit block, twenty bits per name in all: about
//! 1 % false positives for each question, which cost only a table probe that finds nothing.

/// The filter.
#[derive(Debug, Default)]
pub struct NameFilter {
    blocks: Box<[[u64; 8]]>,
}

const BITS_PER_NAME: usize = 20;
const PROBES: u32 = 6;

impl NameFilter {
    /// Builds filters for `count` (fingerprint, category) pairs.
    pub fn build(count: usize, entries: impl Iterator<Item = (u64, u32)>) -> NameFilter {
        let blocks = (count * BITS_PER_NAME).div_ceil(512).max(1);
        // Zeroed memory is mapped lazily, so the advice still comes before the first touch.
        let blocks_vec = vec![[0u64; 8]; blocks];
        super::hugepages::advise(blocks_vec.as_ptr(), blocks * 64);
        let mut filter = NameFilter {
            blocks: blocks_vec.into_boxed_slice(),
        };
        for (h, tag) in entries {
            let block = &mut filter.blocks[block_of(h, blocks)];
            set(block, h);
            set(block, tagged_hash(h, tag));
        }
        filter
    }

    /// Starts loading the block of a fingerprint into the cache, so that several suffixes'
    /// misses overlap instead of following one another.
    #[inline]
    pub fn prefetch(&self, h: u64) {
        let block = &self.blocks[block_of(h, self.blocks.len())];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint; it reads nothing the program sees and cannot fault, and
        // SSE, which it needs, is part of the x86_64 baseline.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                block.as_ptr().cast(),
            );
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = block;
    }

    /// False means no category in the policy holds this fingerprint.
    #[inline]
    pub fn may_contain(&self, h: u64) -> bool {
        test(&self.blocks[block_of(h, self.blocks.len())], h)
    }

    /// False means category `tag` does not hold this fingerprint.
    #[inline]
    pub fn may_contain_in(&self, h: u64, tag: u32) -> bool {
        self.categories_of(h).may_contain(tag)
    }

    /// The block of a fingerprint, to ask about several categories for one cache miss.
    #[inline]
    pub fn categories_of(&self, h: u64) -> CategoryHint<'_> {
        CategoryHint {
            block: &self.blocks[block_of(h, self.blocks.len())],
            h,
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.blocks.len() * 64
    }
}

/// One fingerprint's block: answers "could category N hold it?" without another miss.
pub struct CategoryHint<'a> {
    block: &'a [u64; 8],
    h: u64,
}

impl CategoryHint<'_> {
    /// False means category `tag` does not hold the fingerprint.
    #[inline]
    pub fn may_contain(&self, tag: u32) -> bool {
        test(self.block, tagged_hash(self.h, tag))
    }
}

/// The block depends on the fingerprint only, so every category's bits for one name share a
/// cache line. Mixed so the block does not correlate with the bucket bits the tables use.
#[inline]
fn block_of(h: u64, blocks: usize) -> usize {
    let mixed = h.rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((mixed as u128 * blocks as u128) >> 64) as usize
}

#[inline]
fn tagged_hash(h: u64, tag: u32) -> u64 {
    let x = h ^ (u64::from(tag) + 1).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (x ^ (x >> 29)).wrapping_mul(0xc4ce_b9fe_1a85_ec53)
}

/// Six 9-bit positions from the low 54 bits of a hash.
#[inline]
fn bits(h: u64) -> impl Iterator<Item = u64> {
    (0..PROBES).map(move |i| (h >> (i * 9)) & 511)
}

fn set(block: &mut [u64; 8], h: u64) {
    for bit in bits(h) {
        block[(bit >> 6) as usize] |= 1 << (bit & 63);
    }
}

#[inline]
fn test(block: &[u64; 8], h: u64) -> bool {
    bits(h).all(|bit| block[(bit >> 6) as usize] & (1 << (bit & 63)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::matcher::name_hash;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let members: Vec<(u64, u32)> = (0..50_000u32)
            .map(|i| (name_hash(format!("in{i}.example").as_bytes()), i % 7))
            .collect();
        let filter = NameFilter::build(members.len(), members.iter().copied());
        assert!(
            members
                .iter()
                .all(|&(h, tag)| filter.may_contain(h) && filter.may_contain_in(h, tag))
        );
        let outsiders = (0..50_000)
            .filter(|i| filter.may_contain(name_hash(format!("out{i}.example").as_bytes())))
            .count();
        assert!(outsiders < 1_500, "{outsiders} false positives");
        let wrong_tag = members
            .iter()
            .filter(|&&(h, tag)| filter.may_contain_in(h, (tag + 1) % 7))
            .count();
        assert!(
            wrong_tag < 1_500,
            "{wrong_tag} false positives across categories"
        );
    }
}
