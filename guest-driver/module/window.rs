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
    /// The device's preferred page size per fault: range insertion.
    Range = 2,
}

impl Strategy {
    pub(crate) fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Page),
            1 => Some(Self::Prefault16),
            2 => Some(Self::Range),
            _ => None,
        }
    }

    /// Bytes one fault aims to map, for a device preferring `page_size`.
    pub(crate) fn unit(self, page_size: u64) -> u64 {
        match self {
            Self::Page => PAGE_SIZE,
            Self::Prefault16 => 16 * PAGE_SIZE,
            Self::Range => page_size,
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

/// The window a fault at `va` should map with blocks of `unit` bytes.
pub(crate) fn window(vma: &VmaSpan, va: u64, unit: u64, vram_size: u64) -> Range {
    let offset = vma.offset_of(va);
    let block_offset = offset & !(unit - 1);
    let block_end_offset = (block_offset + unit).min(vram_size);
    let start = va - (offset - block_offset);
    let end = start + (block_end_offset - block_offset);
    Range { start, end }.intersect(Range {
        start: vma.start,
        end: vma.end,
    })
}

/// Whether the leaf of `size` holding `va` can map the window: it lies inside it and VA and BAR
/// offset are equally aligned (the pfn is then `size`-aligned, as BAR2 is naturally aligned).
pub(crate) fn huge_leaf_fits(vma: &VmaSpan, window: Range, va: u64, size: u64) -> Option<Range> {
    let leaf = Range::aligned_block(va, size);
    if window.contains(leaf) && vma.offset_of(leaf.start) % size == 0 {
        Some(leaf)
    } else {
        None
    }
}
