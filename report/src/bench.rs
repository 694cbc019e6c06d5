//! One cell of the `bench` scenario: a subject (one of our strategies, or a peer) mapping up to
//! 1 GiB of BAR2 and touching it in one order. `fault-bench` checks each cell against the
//! fault model and summarises them.

use serde::{Deserialize, Serialize};

use crate::{FaultLatency, HostCheck};

/// Times are guest-clock nanoseconds: instructions under `vmm run --icount`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchCell {
    pub pass: bool,
    pub round: u64,
    /// A strategy's name (`rangefault_abi::uapi::Strategy::name`) or a peer's
    /// (`vfio-pci`, `eager-remap`).
    pub subject: String,
    /// `strategy` or `peer`.
    pub kind: String,
    /// `rangefault_abi::touch::TouchOrder::name`.
    pub order: String,
    /// The PCI function whose BAR2 was mapped.
    pub bdf: String,
    /// The preferred page size of rangefault's device (the same device model for the peers).
    pub page_size: u64,
    pub mapped_bytes: u64,
    pub touches: u64,
    /// `ru_minflt` over the touch loop: the faults the process took.
    pub faults: u64,
    /// mmap(2), the touch loop, munmap(2).
    pub map_ns: u64,
    pub touch_ns: u64,
    pub unmap_ns: u64,
    /// Page-table memory the mapping grew (`VmPTE` after the touch minus before the mmap).
    pub vm_pte_bytes: u64,
    /// Our driver's counters over the touch (strategies only).
    pub driver: Option<DriverCost>,
    /// `vma_lock_retry` delta: faults redone under the mmap lock (None without the counters).
    pub vma_lock_retries: Option<u64>,
}

impl BenchCell {
    /// End to end as the user sees it: mapping plus touching.
    pub fn total_ns(&self) -> u64 {
        self.map_ns + self.touch_ns
    }

    pub fn mapped_mib(&self) -> f64 {
        self.mapped_bytes as f64 / (1u64 << 20) as f64
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverCost {
    pub faults: u64,
    pub faults_pte: u64,
    pub faults_pmd: u64,
    pub faults_pud: u64,
    pub fallbacks: u64,
    pub handler_calls: u64,
    pub pte_inserts: u64,
    pub pmd_inserts: u64,
    pub pud_inserts: u64,
    /// Time inside the driver's fault handlers, all levels.
    pub handler_ns: u64,
    pub fault_latency: FaultLatency,
    /// The host's walk of the mapping after the touch.
    pub host_check: HostCheck,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_cell_round_trips() {
        let line = r#"{"pass":true,"round":2,"subject":"vfio-pci","kind":"peer",
            "order":"random","bdf":"0000:00:04.0","page_size":2097152,"mapped_bytes":1073741824,
            "touches":262144,"faults":1,"map_ns":16645,"touch_ns":23128161,"unmap_ns":15836,
            "vm_pte_bytes":0,"driver":null,"vma_lock_retries":0}"#;
        let cell: BenchCell = serde_json::from_str(line).unwrap();
        assert_eq!((cell.faults, cell.total_ns()), (1, 23144806));
        let again: BenchCell =
            serde_json::from_value(serde_json::to_value(&cell).unwrap()).unwrap();
        assert_eq!(again, cell);
        // A field the guest forgot is an error, not a zero.
        assert!(serde_json::from_str::<BenchCell>(&line.replace(r#""faults":1,"#, "")).is_err());
    }
}
