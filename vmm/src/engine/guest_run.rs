//! What a guest run leaves behind, in the same shape for every engine, so
//! `run.rs` and the report need not know which one ran.

use std::time::Duration;

use serde::Serialize;

use crate::guest_console::GuestConsole;

/// How a guest run went, whichever engine ran it.
pub struct GuestRun {
    pub console: GuestConsole,
    /// What the engine counted at the device's boundary.
    pub host: HostCounters,
    /// Set when the engine's side of the device (the vfio-user server, a
    /// KVM vCPU thread) failed: the VMM's fault, not the guest's.
    pub engine_error: Option<String>,
    /// How the engine ended (QEMU's exit status, KVM's end reason).
    pub engine_status: Option<String>,
    /// The engine's own last log lines (QEMU's stderr, KVM's end reason).
    pub engine_log: Vec<String>,
    pub timed_out: bool,
    pub wall: Duration,
}

/// Device-boundary counters for the report's `host`: the ones both engines
/// have, then the engine's own (flattened into the same object).
#[derive(Debug, Clone, Serialize)]
pub struct HostCounters {
    pub config_accesses: u64,
    pub register_accesses: u64,
    /// VRAM accesses that reached the VMM instead of going straight to the
    /// memfd; a healthy run has none.
    pub vram_trapped_accesses: u64,
    #[serde(flatten)]
    pub engine: EngineCounters,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EngineCounters {
    VfioUser(VfioUserCounters),
    Kvm(KvmCounters),
}

/// What the QEMU engine's vfio-user server counted.
#[derive(Debug, Clone, Serialize)]
pub struct VfioUserCounters {
    pub dma_maps: u64,
    pub dma_unmaps: u64,
    pub irq_updates: u64,
    pub rejected: u64,
}

/// What the KVM engine counted.
#[derive(Debug, Clone, Serialize)]
pub struct KvmCounters {
    /// Times BAR2's memslot was added, moved or removed.
    pub vram_slot_changes: u64,
    pub msis_delivered: u64,
    /// Port or MMIO accesses no device decodes.
    pub unclaimed_accesses: u64,
    /// CR3s read for the page-table check's cross-check.
    pub cr3_reads: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_counters_flatten_the_engines_own() {
        let kvm = HostCounters {
            config_accesses: 1,
            register_accesses: 2,
            vram_trapped_accesses: 0,
            engine: EngineCounters::Kvm(KvmCounters {
                vram_slot_changes: 3,
                msis_delivered: 4,
                unclaimed_accesses: 5,
                cr3_reads: 6,
            }),
        };
        let json = serde_json::to_value(&kvm).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "config_accesses": 1, "register_accesses": 2, "vram_trapped_accesses": 0,
                "vram_slot_changes": 3, "msis_delivered": 4, "unclaimed_accesses": 5,
                "cr3_reads": 6,
            })
        );
        let qemu = HostCounters {
            engine: EngineCounters::VfioUser(VfioUserCounters {
                dma_maps: 7,
                dma_unmaps: 8,
                irq_updates: 9,
                rejected: 10,
            }),
            ..kvm
        };
        let json = serde_json::to_value(&qemu).unwrap();
        assert_eq!(json["dma_maps"], 7);
        assert_eq!(json["rejected"], 10);
        assert!(json.get("msis_delivered").is_none());
    }
}
