//! The host page-table check on this machine: the device walks the guest's
//! page tables straight in guest RAM (the RAM memslots never change, so one
//! snapshot serves every check), cross-checks the driver's ROOT with the CR3 of the vCPU whose MMIO write
//! rang the doorbell, and decodes memory types with that vCPU's IA32_PAT
//! (recording whether the driver passed the same).
//!
//! CR3 and PAT travel from the exit handler to the check through a
//! [`DoorbellCpu`]: the vCPU thread reads them (KVM_GET_SREGS,
//! KVM_GET_MSRS) just before handing the doorbell write to the device and
//! takes them back right after, all under the device lock, so another
//! vCPU's values can never show up in this check.

use std::sync::{Arc, Mutex, MutexGuard};

use device_model::host_check::CpuState;
use device_model::GuestAccess;

use super::guest_ram::GuestRam;

/// The ringing vCPU's CR3 and PAT, handed from the exit handler to the
/// check.
#[derive(Debug, Default)]
pub struct DoorbellCpu(Mutex<CpuState>);

impl DoorbellCpu {
    /// Sets (or, with the default, clears) what the next check sees.
    pub fn set(&self, cpu: CpuState) {
        *self.lock() = cpu;
    }

    fn take(&self) -> CpuState {
        std::mem::take(&mut *self.lock())
    }

    /// Only a panic between two plain assignments could poison it; the
    /// value is whole either way.
    fn lock(&self) -> MutexGuard<'_, CpuState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the device gets as [`GuestAccess`] on this machine.
pub struct KvmGuestAccess {
    ram: Arc<GuestRam>,
    doorbell: Arc<DoorbellCpu>,
}

impl KvmGuestAccess {
    /// Provides `ram`; CR3 and PAT come through `doorbell`.
    pub fn new(ram: &GuestRam, doorbell: Arc<DoorbellCpu>) -> Self {
        Self {
            // The regions are reference-counted: this keeps the mapping
            // alive for as long as the device may walk it.
            ram: Arc::new(ram.clone()),
            doorbell,
        }
    }
}

impl GuestAccess for KvmGuestAccess {
    fn memory(&self) -> Arc<GuestRam> {
        Arc::clone(&self.ram)
    }

    fn doorbell_cpu_state(&self) -> CpuState {
        self.doorbell.take()
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::GuestAddress;

    use super::*;

    #[test]
    fn the_cpu_state_is_used_once() {
        let ram = GuestRam::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let doorbell = Arc::new(DoorbellCpu::default());
        let tables = KvmGuestAccess::new(&ram, doorbell.clone());
        assert_eq!(tables.doorbell_cpu_state(), CpuState::default());
        let cpu = CpuState {
            cr3: Some(0x9000),
            pat: Some(page_walker::LINUX_PAT_MSR),
        };
        doorbell.set(cpu);
        assert_eq!(tables.doorbell_cpu_state(), cpu);
        assert_eq!(
            tables.doorbell_cpu_state(),
            CpuState::default(),
            "a stale CR3 or PAT never leaks"
        );
    }
}
