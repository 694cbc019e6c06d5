//! What crossed from the guest to the VMM, for the report and the tests.

use device_model::metrics::{BoundaryCounters, Counter};
use serde::{Deserialize, Serialize};

/// Counters bumped by the vCPU threads; the report serializes them as they are.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Config, BAR0 and trapped VRAM accesses (VRAM exits to the VMM when BAR2 is not mapped
    /// as a memslot: a refused placement).
    #[serde(flatten)]
    pub boundary: BoundaryCounters,
    /// Times BAR2's memslot was added, moved or removed.
    pub vram_slot_changes: Counter,
    pub msis_delivered: Counter,
    /// Port or MMIO accesses nothing decodes.
    pub unclaimed_accesses: Counter,
    /// vCPU CR3s read for the page-table check's cross-check (one per
    /// doorbell write).
    pub cr3_reads: Counter,
    /// vCPU IA32_PATs read to decode the page-table check's memory types
    /// (one per doorbell write).
    pub pat_reads: Counter,
}
