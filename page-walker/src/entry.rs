//! Bit layout of one 64-bit paging-structure entry (Intel SDM vol. 3A
//! §4.5, tables 4-15 to 4-20). Pure decoding; no memory access.
//!
//! EFER.NXE is assumed set (Linux sets it whenever the CPU has NX), so bit
//! 63 is the execute-disable bit rather than reserved. 1 GiB pages are
//! assumed supported, so PS in a PDPTE is a leaf rather than reserved.

use crate::paging::{PageSize, TableLevel};

pub(crate) const PRESENT: u64 = 1 << 0;
pub const WRITABLE: u64 = 1 << 1;
pub const USER: u64 = 1 << 2;
pub const PWT: u64 = 1 << 3;
pub const PCD: u64 = 1 << 4;
/// PS: set in a PDPTE or PDE that maps a page. Reserved in PML5Es and
/// PML4Es. The same bit in a PTE is PAT (see [`PTE_PAT`]).
pub(crate) const PAGE_SIZE: u64 = 1 << 7;
/// PAT in a PTE, where there is no PS bit to collide with.
pub const PTE_PAT: u64 = 1 << 7;
/// PAT in a 2M or 1G leaf: bit 7 is taken by PS, so PAT moved to the lowest
/// address bit, which a huge page's alignment leaves free.
pub const HUGE_PAT: u64 = 1 << 12;
pub const EXECUTE_DISABLE: u64 = 1 << 63;

/// Highest address bit (exclusive) any entry can hold.
const ADDRESS_LIMIT_BIT: u32 = 52;

/// Inclusive bit range `lo..=hi` as a mask.
const fn bits(lo: u32, hi: u32) -> u64 {
    (u64::MAX >> (63 - hi)) & (u64::MAX << lo)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry(pub(crate) u64);

/// What a present entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A leaf: the entry maps a page of this size.
    Page(PageSize),
    /// The next-level table, of this level.
    Table(TableLevel),
}

impl Entry {
    pub(crate) fn present(self) -> bool {
        self.0 & PRESENT != 0
    }

    pub(crate) fn writable(self) -> bool {
        self.0 & WRITABLE != 0
    }

    pub(crate) fn user(self) -> bool {
        self.0 & USER != 0
    }

    pub(crate) fn execute_disable(self) -> bool {
        self.0 & EXECUTE_DISABLE != 0
    }

    /// What this entry, read from a table at `level`, points at.
    pub(crate) fn target(self, level: TableLevel) -> Target {
        let page_size_bit = self.0 & PAGE_SIZE != 0;
        match level {
            TableLevel::Pml5 => Target::Table(TableLevel::Pml4),
            TableLevel::Pml4 => Target::Table(TableLevel::Pdpt),
            TableLevel::Pdpt if page_size_bit => Target::Page(PageSize::Size1G),
            TableLevel::Pdpt => Target::Table(TableLevel::Pd),
            TableLevel::Pd if page_size_bit => Target::Page(PageSize::Size2M),
            TableLevel::Pd => Target::Table(TableLevel::Pt),
            TableLevel::Pt => Target::Page(PageSize::Size4K),
        }
    }

    /// PAT slot index (PAT<<2 | PCD<<1 | PWT) of a leaf of `size`.
    pub(crate) fn pat_index(self, size: PageSize) -> u8 {
        let pat_bit = match size {
            PageSize::Size4K => PTE_PAT,
            PageSize::Size2M | PageSize::Size1G => HUGE_PAT,
        };
        u8::from(self.0 & pat_bit != 0) << 2
            | u8::from(self.0 & PCD != 0) << 1
            | u8::from(self.0 & PWT != 0)
    }

    /// The reserved bits this present entry sets, read at `level` on a CPU
    /// with `maxphyaddr` address bits. Non-zero means the CPU would fault
    /// with PFEC.RSVD.
    pub(crate) fn reserved_bits(self, level: TableLevel, maxphyaddr: u8) -> u64 {
        let mut reserved = if u32::from(maxphyaddr) < ADDRESS_LIMIT_BIT {
            bits(u32::from(maxphyaddr), ADDRESS_LIMIT_BIT - 1)
        } else {
            0
        };
        match (level, self.target(level)) {
            (TableLevel::Pml5 | TableLevel::Pml4, _) => reserved |= PAGE_SIZE,
            // Address bits below the page's alignment, except PAT at 12.
            (_, Target::Page(size @ (PageSize::Size2M | PageSize::Size1G))) => {
                reserved |= bits(13, size.shift() - 1)
            }
            _ => {}
        }
        self.0 & reserved
    }

    /// The address this entry holds: a next-level table for a non-leaf, the
    /// page base for a leaf of `size` (4K for tables). Bits at or above
    /// MAXPHYADDR are masked off; callers reject them as reserved first.
    pub(crate) fn address(self, size: PageSize, maxphyaddr: u8) -> u64 {
        let below_max = bits(0, u32::from(maxphyaddr) - 1);
        self.0 & below_max & !(size.bytes() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PageSize::*;
    use TableLevel::*;

    #[test]
    fn bit_ranges() {
        assert_eq!(bits(13, 20), 0x1f_e000);
        assert_eq!(bits(0, 63), u64::MAX);
        assert_eq!(bits(46, 51), 0x000f_c000_0000_0000);
    }

    #[test]
    fn pat_bit_moves_with_page_size() {
        // Bit 7 is PAT in a PTE but PS in a PDE; bit 12 is PAT in huge leaves.
        assert_eq!(Entry(PTE_PAT | PWT).pat_index(Size4K), 5);
        assert_eq!(Entry(PAGE_SIZE | PWT).pat_index(Size2M), 1);
        assert_eq!(Entry(PAGE_SIZE | HUGE_PAT | PCD).pat_index(Size2M), 6);
        assert_eq!(Entry(PAGE_SIZE | HUGE_PAT | PCD | PWT).pat_index(Size1G), 7);
        // In a PTE, bit 12 is an address bit, not PAT.
        assert_eq!(Entry(HUGE_PAT).pat_index(Size4K), 0);
    }

    #[test]
    fn target_per_level() {
        use Target::{Page, Table};
        assert_eq!(Entry(PRESENT).target(Pt), Page(Size4K));
        assert_eq!(Entry(PRESENT | PTE_PAT).target(Pt), Page(Size4K));
        assert_eq!(Entry(PRESENT | PAGE_SIZE).target(Pd), Page(Size2M));
        assert_eq!(Entry(PRESENT | PAGE_SIZE).target(Pdpt), Page(Size1G));
        assert_eq!(Entry(PRESENT).target(Pd), Table(Pt));
        assert_eq!(Entry(PRESENT).target(Pdpt), Table(Pd));
        assert_eq!(Entry(PRESENT | PAGE_SIZE).target(Pml4), Table(Pdpt));
        assert_eq!(Entry(PRESENT | PAGE_SIZE).target(Pml5), Table(Pml4));
    }

    #[test]
    fn reserved_bits_per_level() {
        let high = 1u64 << 47;
        assert_eq!(Entry(PRESENT | high).reserved_bits(Pt, 52), 0);
        assert_eq!(Entry(PRESENT | high).reserved_bits(Pt, 46), high);
        assert_eq!(Entry(PRESENT | high).reserved_bits(Pt, 48), 0);
        assert_eq!(
            Entry(PRESENT | PAGE_SIZE).reserved_bits(Pml4, 52),
            PAGE_SIZE
        );
        assert_eq!(
            Entry(PRESENT | PAGE_SIZE).reserved_bits(Pml5, 52),
            PAGE_SIZE
        );
        // PAT in a PTE is not reserved.
        assert_eq!(Entry(PRESENT | PTE_PAT).reserved_bits(Pt, 52), 0);
        let huge = PRESENT | PAGE_SIZE | HUGE_PAT;
        assert_eq!(Entry(huge).reserved_bits(Pd, 52), 0);
        assert_eq!(Entry(huge | 1 << 13).reserved_bits(Pd, 52), 1 << 13);
        assert_eq!(Entry(huge | 1 << 20).reserved_bits(Pd, 52), 1 << 20);
        assert_eq!(Entry(huge | 1 << 21).reserved_bits(Pd, 52), 0);
        assert_eq!(Entry(huge | 1 << 29).reserved_bits(Pdpt, 52), 1 << 29);
        assert_eq!(Entry(huge | 1 << 30).reserved_bits(Pdpt, 52), 0);
        // A table pointer may use bits 13..20 freely.
        assert_eq!(Entry(PRESENT | 1 << 13).reserved_bits(Pd, 52), 0);
        // Software-available and protection-key bits 52..62 and XD are not reserved.
        assert_eq!(Entry(PRESENT | bits(52, 63)).reserved_bits(Pt, 52), 0);
    }

    #[test]
    fn addresses_drop_flags_pat_and_high_bits() {
        let e = Entry(EXECUTE_DISABLE | bits(52, 62) | 0x0000_1234_5678_9000 | 0xfff);
        assert_eq!(e.address(Size4K, 52), 0x0000_1234_5678_9000);
        let e = Entry(PRESENT | PAGE_SIZE | HUGE_PAT | 0x4060_0000);
        assert_eq!(e.address(Size2M, 52), 0x4060_0000);
        assert_eq!(e.address(Size1G, 52), 0x4000_0000);
    }
}
