// SPDX-License-Identifier: GPL-2.0

//! Which range one fault should map: pure arithmetic, no kernel state.
//!
//! The window is the naturally aligned block of the chosen unit, in *BAR offset* space, that holds
//! the faulting address, projected back to virtual addresses and clipped to the VMA and to VRAM.
//! Aligning in offset space means a device page is never split between two faults when the VMA
//! maps it congruently; an incongruent VMA still works, with smaller entries.

/// How much a fault maps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Strategy {
    /// One 4 KiB page per fault: the naive driver.
    Page = 0,
    /// 16 pages (an aligned 64 KiB block) per fault, like TTM's prefault.
    Prefault16 = 1,
    /// The device's preferred page size per fault, approximated with the stock exports (one
    /// huge leaf per fault, PTEs inserted one call at a time).
    Range = 2,
    /// The device's preferred page size per fault, in one `vmf_insert_range` call (one walk, one
    /// lock hold per page table). Only on kernels carrying that mm API.
    RangeMm = 3,
    /// 16 pages forward from the faulting one, clipped to the VMA: what TTM's
    /// `ttm_bo_vm_fault_reserved` does (`Prefault16` aligns the block instead).
    Ttm16 = 4,
}

impl Strategy {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Page),
            1 => Some(Self::Prefault16),
            2 => Some(Self::Range),
            3 => Some(Self::RangeMm),
            4 => Some(Self::Ttm16),
            _ => None,
        }
    }

    /// Bytes one fault aims to map, for a device preferring `page_size`.
    pub(crate) fn unit(self, page_size: u64) -> u64 {
        match self {
            Self::Page => PAGE_SIZE,
            Self::Prefault16 | Self::Ttm16 => 16 * PAGE_SIZE,
            Self::Range | Self::RangeMm => page_size,
        }
    }

    /// Strategies this build can serve, as a bitmask of raw values: `RangeMm` needs a kernel
    /// with `vmf_insert_range` (see `Kbuild`).
    pub(crate) const fn supported_mask(kernel_has_insert_range: bool) -> u32 {
        let stock = (1 << Self::Page as u32)
            | (1 << Self::Prefault16 as u32)
            | (1 << Self::Range as u32)
            | (1 << Self::Ttm16 as u32);
        if kernel_has_insert_range {
            stock | (1 << Self::RangeMm as u32)
        } else {
            stock
        }
    }

    /// What a new mapping gets until user space picks: the real range insertion where the
    /// kernel has it, else its stock approximation.
    pub(crate) const fn default_for(kernel_has_insert_range: bool) -> Self {
        if kernel_has_insert_range {
            Self::RangeMm
        } else {
            Self::Range
        }
    }
}

pub(crate) const PAGE_SIZE: u64 = 1 << 12;
pub(crate) const PMD_SIZE: u64 = 1 << 21;
pub(crate) const PUD_SIZE: u64 = 1 << 30;

/// A VMA as the fault path sees it.
#[derive(Clone, Copy)]
pub(crate) struct VmaSpan {
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// BAR offset mapped at `start` (`vm_pgoff << PAGE_SHIFT`).
    pub(crate) offset: u64,
}

impl VmaSpan {
    /// BAR offset that `va` (inside the VMA) maps.
    pub(crate) fn offset_of(&self, va: u64) -> u64 {
        self.offset + (va - self.start)
    }
}

/// A virtual range `[start, end)` of one VMA.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Range {
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl Range {
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }

    pub(crate) fn intersect(&self, other: Range) -> Range {
        let start = self.start.max(other.start);
        Range {
            start,
            end: self.end.min(other.end).max(start),
        }
    }

    pub(crate) fn contains(&self, other: Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// The naturally aligned block of `size` (a power of two) that holds `va`.
    pub(crate) fn aligned_block(va: u64, size: u64) -> Range {
        let start = va & !(size - 1);
        Range {
            start,
            end: start + size,
        }
    }
}

/// The window a fault at `va` (inside the VMA) should map with blocks of `unit` bytes.
///
/// Computed as distances from `va`, clamped to the VMA before any subtraction: the block can
/// start below the VMA (or below address 0, for a VMA mapped low with a large offset) and end
/// past it.
pub(crate) fn window(vma: &VmaSpan, va: u64, unit: u64, vram_size: u64) -> Range {
    let offset = vma.offset_of(va);
    let block_offset = offset & !(unit - 1);
    let block_end_offset = block_offset.saturating_add(unit).min(vram_size);
    let back = (offset - block_offset).min(va - vma.start);
    let ahead = block_end_offset.saturating_sub(offset).min(vma.end - va);
    Range {
        start: va - back,
        end: va + ahead,
    }
}

/// The window a `ttm16` fault at `va` maps: `len` bytes from the faulting page on, clipped to
/// the VMA and to VRAM. It may cross a page table's end, as TTM's prefault loop does.
pub(crate) fn forward_window(vma: &VmaSpan, va: u64, len: u64, vram_size: u64) -> Range {
    let start = va & !(PAGE_SIZE - 1);
    let left_in_vram = vram_size.saturating_sub(vma.offset_of(start));
    Range {
        start,
        end: start + len.min(vma.end - start).min(left_in_vram),
    }
}

/// Most bytes one `range-mm` fault maps where it can only get PTEs: 1024 PTEs. A 1 GiB device
/// page would otherwise ask for 262144 PTEs (512 tables) in one fault.
// Only range-mm uses this and `range_mm_unit`: unused in builds for stock kernels.
#[allow(dead_code)]
pub(crate) const RANGE_MM_MAX_PTE_BYTES: u64 = 4 << 20;

/// The window unit of a `range-mm` fault in `vma` on a device preferring `page_size`. Only
/// PTEs fit where VA and BAR offset are not congruent modulo 2 MiB, and whenever the core
/// called `fault` rather than `huge_fault` (`ptes_only`: THP disabled for the VMA, or a PTE
/// table already there): then the window is clamped.
#[allow(dead_code)]
pub(crate) fn range_mm_unit(vma: &VmaSpan, page_size: u64, ptes_only: bool) -> u64 {
    if !ptes_only && vma.start.wrapping_sub(vma.offset).is_multiple_of(PMD_SIZE) {
        page_size
    } else {
        page_size.min(RANGE_MM_MAX_PTE_BYTES)
    }
}

/// Whether the leaf of `size` holding `va` can map the window: it lies inside it and VA and BAR
/// offset are equally aligned (the pfn is then `size`-aligned, as BAR2 is naturally aligned).
pub(crate) fn huge_leaf_fits(vma: &VmaSpan, window: Range, va: u64, size: u64) -> Option<Range> {
    let leaf = Range::aligned_block(va, size);
    if window.contains(leaf) && vma.offset_of(leaf.start).is_multiple_of(size) {
        Some(leaf)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    //! Host-side tests: this file is pure `core` code, compiled into the probe's test binary.
    use super::*;

    const MIB: u64 = 1 << 20;

    fn vma(start: u64, len: u64, offset: u64) -> VmaSpan {
        VmaSpan {
            start,
            end: start + len,
            offset,
        }
    }

    #[test]
    fn a_forward_window_starts_at_the_fault_and_stops_at_the_vma_or_vram_end() {
        let v = vma(0x4000_0000, 8 * MIB, 0);
        let w = forward_window(&v, 0x4000_0000 + 2 * MIB - 0x1234, 64 << 10, 1 << 30);
        assert_eq!(
            (w.start, w.end),
            (
                0x4000_0000 + 2 * MIB - 0x2000,
                0x4000_0000 + 2 * MIB + 0xe000
            )
        );
        let w = forward_window(&v, 0x4000_0000 + 8 * MIB - 0x1000, 64 << 10, 1 << 30);
        assert_eq!(w.len(), 0x1000);
        // A VMA reaching past VRAM's end (offset 1 GiB - 8 KiB): two pages left.
        let v = vma(0x4000_0000, 8 * MIB, (1 << 30) - 0x2000);
        assert_eq!(
            forward_window(&v, 0x4000_0000, 64 << 10, 1 << 30).len(),
            0x2000
        );
    }

    #[test]
    fn aligned_window_is_the_block() {
        let v = vma(0x4000_0000, 8 * MIB, 0);
        let w = window(&v, 0x4000_0000 + 3 * MIB + 0x5000, 2 * MIB, 1 << 30);
        assert_eq!(
            w,
            Range {
                start: 0x4000_0000 + 2 * MIB,
                end: 0x4000_0000 + 4 * MIB
            }
        );
        assert_eq!(
            huge_leaf_fits(&v, w, 0x4000_0000 + 3 * MIB, 2 * MIB),
            Some(w)
        );
    }

    #[test]
    fn window_is_clipped_to_vma_and_vram() {
        let v = vma(0x10_0000, 3 * MIB, 0);
        let w = window(&v, 0x10_0000 + 2 * MIB + 0x1000, 2 * MIB, 1 << 30);
        assert_eq!(
            w,
            Range {
                start: 0x10_0000 + 2 * MIB,
                end: 0x10_0000 + 3 * MIB
            }
        );
        // VRAM ends inside the block.
        let v = vma(0x4000_0000, 4 * MIB, 62 * MIB);
        let w = window(&v, 0x4000_0000, 4 * MIB, 64 * MIB);
        assert_eq!(w.len(), 2 * MIB);
    }

    #[test]
    fn vma_low_in_memory_with_a_large_offset_does_not_underflow() {
        // mmap(0x1000, .., offset 0xf000) with 64 KiB blocks: the block starts below VA 0.
        let v = vma(0x1000, 0x10000, 0xf000);
        assert_eq!(
            window(&v, 0x1000, 64 << 10, 1 << 30),
            Range {
                start: 0x1000,
                end: 0x2000
            }
        );
        // 2 MiB device, VA 0x10000, offset 1 MiB.
        let v = vma(0x10000, 4 * MIB, MIB);
        let w = window(&v, 0x10000, 2 * MIB, 1 << 30);
        assert_eq!(
            w,
            Range {
                start: 0x10000,
                end: 0x10000 + MIB
            }
        );
        assert_eq!(huge_leaf_fits(&v, w, 0x10000, 2 * MIB), None);
    }

    #[test]
    fn misaligned_vma_falls_back_to_no_huge_leaf() {
        let v = vma(0x4000_1000, 8 * MIB, 0);
        let w = window(&v, 0x4000_1000 + 3 * MIB, 2 * MIB, 1 << 30);
        assert_eq!(w.len(), 2 * MIB);
        assert_eq!(huge_leaf_fits(&v, w, 0x4000_1000 + 3 * MIB, 2 * MIB), None);
    }

    #[test]
    fn range_mm_clamps_pte_only_windows() {
        // Congruent modulo 2 MiB, from huge_fault: the whole device page.
        assert_eq!(
            range_mm_unit(&vma(0x4000_0000, GIB_T, 0), 1 << 30, false),
            1 << 30
        );
        assert_eq!(
            range_mm_unit(&vma(0x4020_0000, GIB_T, 0), 1 << 30, false),
            1 << 30
        );
        // Only 4 KiB congruent: at most 1024 PTEs.
        assert_eq!(
            range_mm_unit(&vma(0x4000_1000, GIB_T, 0), 1 << 30, false),
            4 * MIB
        );
        assert_eq!(
            range_mm_unit(&vma(0x4000_1000, GIB_T, 0), 64 << 10, false),
            64 << 10
        );
        assert_eq!(
            range_mm_unit(&vma(0x4000_1000, GIB_T, 0x1000), 1 << 30, false),
            1 << 30
        );
        // From ->fault (THP disabled, or a PTE table exists): PTEs only, clamped.
        assert_eq!(
            range_mm_unit(&vma(0x4000_0000, GIB_T, 0), 1 << 30, true),
            4 * MIB
        );
        assert_eq!(
            range_mm_unit(&vma(0x4000_0000, GIB_T, 0), 2 * MIB, true),
            2 * MIB
        );
    }

    const GIB_T: u64 = 1 << 30;

    #[test]
    fn strategy_masks_and_defaults() {
        assert_eq!(Strategy::supported_mask(false), 0b10111);
        assert_eq!(Strategy::supported_mask(true), 0b11111);
        assert_eq!(Strategy::default_for(true), Strategy::RangeMm);
        assert_eq!(Strategy::default_for(false), Strategy::Range);
        for raw in 0..5 {
            assert_eq!(Strategy::from_raw(raw).map(|s| s as u32), Some(raw));
        }
        assert_eq!(Strategy::from_raw(5), None);
        assert_eq!(Strategy::RangeMm.unit(4 << 20), 4 << 20);
    }

    #[test]
    fn every_fault_address_lies_in_its_window() {
        for (start, len, offset, unit) in [
            (0x1000, 0x40_0000, 0x3000, 64 << 10),
            (0x7000_1000, 0x80_0000, 0x20_0000, 2 * MIB),
            (0x10_0000, 0x10_0000, 0xff000, 1 << 30),
        ] {
            let v = vma(start, len, offset);
            for va in (start..start + len).step_by(0x3000) {
                let w = window(&v, va, unit, 2 << 30);
                assert!(w.start <= va && va < w.end, "{va:#x} not in {w:?}");
                assert!(w.start >= v.start && w.end <= v.end);
                assert!(w.len() <= unit);
            }
        }
    }
}
