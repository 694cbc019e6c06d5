//! The orders in which the benchmark touches a mapping: the guest's probe walks them, the host
//! replays them against each strategy's [`FaultWindow`](crate::uapi::FaultWindow) to predict
//! the exact fault count. One definition, so the two cannot drift.

/// The unit the benchmark touches: one read of the first word of a 4 KiB page.
pub const PAGE: u64 = 4096;

/// `strided` touches one page every 2 MiB + 4 KiB: each touch lands in a new 2 MiB block, one
/// page further in, so every 64 KiB window and every PMD is hit at a different place.
pub const STRIDE: u64 = (2 << 20) + PAGE;

/// How the benchmark walks a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TouchOrder {
    /// Every page, first to last.
    Sequential,
    /// Every page, last to first: forward-only prefault (`ttm16`) gains nothing.
    Reverse,
    /// Every page once, in a fixed pseudo-random order (the same on every run).
    Random,
    /// One page every [`STRIDE`] bytes.
    Strided,
}

impl TouchOrder {
    pub const ALL: [TouchOrder; 4] = [
        TouchOrder::Sequential,
        TouchOrder::Reverse,
        TouchOrder::Random,
        TouchOrder::Strided,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TouchOrder::Sequential => "sequential",
            TouchOrder::Reverse => "reverse",
            TouchOrder::Random => "random",
            TouchOrder::Strided => "strided",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The byte offsets touched in a mapping of `len` bytes, in order.
    pub fn offsets(self, len: u64) -> Offsets {
        let pages = len / PAGE;
        Offsets {
            order: self,
            pages,
            // The smallest power of two holding every page index: the domain of the shuffle.
            bits: u64::BITS - pages.saturating_sub(1).leading_zeros(),
            next: 0,
            len,
        }
    }

    /// How many pages [`Self::offsets`] touches in a mapping of `len` bytes.
    pub fn touches(self, len: u64) -> u64 {
        match self {
            TouchOrder::Strided => len.div_ceil(STRIDE),
            _ => len / PAGE,
        }
    }
}

/// Iterator over the offsets of one [`TouchOrder`].
pub struct Offsets {
    order: TouchOrder,
    pages: u64,
    bits: u32,
    next: u64,
    len: u64,
}

impl Iterator for Offsets {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match self.order {
            TouchOrder::Sequential | TouchOrder::Reverse => {
                if self.next >= self.pages {
                    return None;
                }
                let index = self.next;
                self.next += 1;
                Some(match self.order {
                    TouchOrder::Sequential => index * PAGE,
                    _ => (self.pages - 1 - index) * PAGE,
                })
            }
            TouchOrder::Strided => {
                let offset = self.next * STRIDE;
                if offset >= self.len {
                    return None;
                }
                self.next += 1;
                Some(offset)
            }
            // A bijection on `bits`-bit indices, skipping those past the last page (at most half
            // of them): a permutation of every page without a table, so no_std and cheap.
            TouchOrder::Random => loop {
                if self.next >= 1 << self.bits {
                    return None;
                }
                let index = shuffle(self.next, self.bits);
                self.next += 1;
                if index < self.pages {
                    return Some(index * PAGE);
                }
            },
        }
    }
}

/// A fixed permutation of `0 .. 1 << bits`: rounds of multiply by an odd constant (a bijection
/// modulo a power of two) and xor-shift right (a bijection too).
fn shuffle(index: u64, bits: u32) -> u64 {
    if bits == 0 {
        return index;
    }
    let mask = u64::MAX >> (u64::BITS - bits);
    let shift = bits.div_ceil(2);
    let mut x = index;
    for multiplier in [
        0x9e37_79b9_7f4a_7c15u64,
        0xbf58_476d_1ce4_e5b9,
        0x94d0_49bb_1331_11eb,
    ] {
        x = x.wrapping_mul(multiplier) & mask;
        x ^= x >> shift;
        x = x.wrapping_add(0x5851_f42d) & mask;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    #[test]
    fn every_full_order_touches_each_page_once() {
        for len in [64 * MIB, 1 << 30, 3 * 64 * MIB] {
            for order in [
                TouchOrder::Sequential,
                TouchOrder::Reverse,
                TouchOrder::Random,
            ] {
                let offsets: Vec<u64> = order.offsets(len).collect();
                assert_eq!(offsets.len() as u64, order.touches(len), "{order:?} {len}");
                let unique: BTreeSet<u64> = offsets.iter().copied().collect();
                assert_eq!(unique.len() as u64, len / PAGE, "{order:?} {len}");
                assert_eq!(*unique.iter().last().unwrap(), len - PAGE);
            }
        }
    }

    #[test]
    fn the_orders_are_what_they_say() {
        let seq: Vec<u64> = TouchOrder::Sequential.offsets(64 * MIB).take(3).collect();
        assert_eq!(seq, [0, PAGE, 2 * PAGE]);
        let rev: Vec<u64> = TouchOrder::Reverse.offsets(64 * MIB).take(2).collect();
        assert_eq!(rev, [64 * MIB - PAGE, 64 * MIB - 2 * PAGE]);
        let strided: Vec<u64> = TouchOrder::Strided.offsets(1 << 30).collect();
        assert_eq!(strided.len(), 512);
        assert_eq!(strided[1], 2 * MIB + PAGE);
        assert_eq!(strided.len() as u64, TouchOrder::Strided.touches(1 << 30));
        // Random is neither sequential nor local: few neighbours follow each other.
        let random: Vec<u64> = TouchOrder::Random.offsets(1 << 30).collect();
        let adjacent = random
            .windows(2)
            .filter(|w| w[0].abs_diff(w[1]) <= 16 * PAGE);
        assert!(adjacent.count() < random.len() / 100);
        // And fixed: the host replays exactly what the guest touched.
        let again: Vec<u64> = TouchOrder::Random.offsets(1 << 30).take(1000).collect();
        assert_eq!(random[..1000], again[..]);
    }

    #[test]
    fn names_round_trip() {
        for order in TouchOrder::ALL {
            assert_eq!(TouchOrder::from_name(order.name()), Some(order));
        }
        assert_eq!(TouchOrder::from_name("diagonal"), None);
    }
}
