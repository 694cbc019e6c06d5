//! What a guest run leaves behind, in the same shape for every engine, so
//! `run.rs` and the report need not know which one ran.

use std::sync::Arc;
use std::time::Duration;

use device_model::metrics::BoundaryCounters;

use serde::{Deserialize, Serialize};

use super::vfio_server::ServerStats;
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

/// Device-boundary counters for the report's `host`: the ones both engines have, then the
/// engine's own (flattened into the same object). The engine's counters themselves, shared
/// with the threads that bumped them; they serialize as their values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostCounters {
    VfioUser(Arc<ServerStats>),
    Kvm(Arc<kvm_machine::Counters>),
}

impl HostCounters {
    /// The counts both engines keep.
    pub fn boundary(&self) -> &BoundaryCounters {
        match self {
            HostCounters::VfioUser(stats) => &stats.boundary,
            HostCounters::Kvm(counters) => &counters.boundary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_counters_flatten_the_engines_own() {
        let kvm = kvm_machine::Counters::default();
        kvm.boundary.register_accesses.inc();
        kvm.cr3_reads.inc();
        let json = serde_json::to_value(HostCounters::Kvm(Arc::new(kvm))).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "config_accesses": 0, "register_accesses": 1, "vram_trapped_accesses": 0,
                "vram_slot_changes": 0, "msis_delivered": 0, "unclaimed_accesses": 0,
                "cr3_reads": 1, "pat_reads": 0,
            })
        );
        let qemu = ServerStats::default();
        qemu.rejected.inc();
        let qemu = HostCounters::VfioUser(Arc::new(qemu));
        let json = serde_json::to_value(&qemu).unwrap();
        assert_eq!(json["rejected"], 1);
        assert_eq!(json["config_accesses"], 0);
        assert!(json.get("msis_delivered").is_none());
        assert_eq!(qemu.boundary().vram_trapped_accesses.get(), 0);
    }
}
