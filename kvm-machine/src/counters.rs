//! What crossed from the guest to the VMM, for the report and the tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters bumped by the vCPU threads.
#[derive(Debug, Default)]
pub struct Counters {
    pub config_accesses: AtomicU64,
    pub register_accesses: AtomicU64,
    /// VRAM accesses that exited to the VMM because BAR2 was not mapped as
    /// a memslot (refused placement); a healthy run has none.
    pub vram_trapped_accesses: AtomicU64,
    /// Times BAR2's memslot was added, moved or removed.
    pub vram_slot_changes: AtomicU64,
    pub msis_delivered: AtomicU64,
    /// Port or MMIO accesses nothing decodes.
    pub unclaimed_accesses: AtomicU64,
    /// vCPU CR3s read for the page-table check's cross-check (one per
    /// doorbell write).
    pub cr3_reads: AtomicU64,
    /// vCPU IA32_PATs read to decode the page-table check's memory types
    /// (one per doorbell write).
    pub pat_reads: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub config_accesses: u64,
    pub register_accesses: u64,
    pub vram_trapped_accesses: u64,
    pub vram_slot_changes: u64,
    pub msis_delivered: u64,
    pub unclaimed_accesses: u64,
    pub cr3_reads: u64,
    pub pat_reads: u64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            config_accesses: get(&self.config_accesses),
            register_accesses: get(&self.register_accesses),
            vram_trapped_accesses: get(&self.vram_trapped_accesses),
            vram_slot_changes: get(&self.vram_slot_changes),
            msis_delivered: get(&self.msis_delivered),
            unclaimed_accesses: get(&self.unclaimed_accesses),
            cr3_reads: get(&self.cr3_reads),
            pat_reads: get(&self.pat_reads),
        }
    }
}
