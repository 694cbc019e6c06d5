//! The host page-table check on this machine: the device walks the guest's
//! page tables straight in guest RAM (the RAM memslots never change), and
//! cross-checks the driver's ROOT with the CR3 of the vCPU whose MMIO write
//! rang the doorbell.
//!
//! The CR3 travels from the exit handler to the check through a
//! [`DoorbellCr3`]: the vCPU thread reads it (KVM_GET_SREGS) just before
//! handing the doorbell write to the device and takes it back right after,
//! all under the device lock, so another vCPU's value can never show up in
//! this check.

use std::sync::{Arc, Mutex, MutexGuard};

use device_model::{CheckOutcome, CheckRequest, GuestPageTables};

use super::guest_ram::GuestRam;
use crate::page_table_check::FixedGuestRam;

/// The ringing vCPU's CR3, handed from the exit handler to the check.
#[derive(Debug, Default)]
pub struct DoorbellCr3(Mutex<Option<u64>>);

impl DoorbellCr3 {
    /// Sets (or, with `None`, clears) the CR3 the next check sees.
    pub fn set(&self, cr3: Option<u64>) {
        *self.lock() = cr3;
    }

    fn take(&self) -> Option<u64> {
        self.lock().take()
    }

    /// Only a panic between two plain assignments could poison it; the
    /// value is whole either way.
    fn lock(&self) -> MutexGuard<'_, Option<u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the device gets as [`GuestPageTables`] on this machine.
pub struct KvmPageTables {
    ram: FixedGuestRam,
    doorbell: Arc<DoorbellCr3>,
}

impl KvmPageTables {
    /// Walks `ram`; the CR3 comes through `doorbell`.
    pub fn new(ram: &GuestRam, doorbell: Arc<DoorbellCr3>) -> Self {
        Self {
            // The regions are reference-counted: this keeps the mapping
            // alive for as long as the device may walk it.
            ram: FixedGuestRam(ram.clone()),
            doorbell,
        }
    }
}

impl GuestPageTables for KvmPageTables {
    fn check(&self, request: &CheckRequest) -> Result<CheckOutcome, String> {
        self.ram.check(request)
    }

    fn doorbell_cr3(&self) -> Option<u64> {
        self.doorbell.take()
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::GuestAddress;

    use super::*;

    #[test]
    fn the_cr3_is_used_once() {
        let ram = GuestRam::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let doorbell = Arc::new(DoorbellCr3::default());
        let tables = KvmPageTables::new(&ram, doorbell.clone());
        assert_eq!(tables.doorbell_cr3(), None);
        doorbell.set(Some(0x9000));
        assert_eq!(tables.doorbell_cr3(), Some(0x9000));
        assert_eq!(tables.doorbell_cr3(), None, "a stale CR3 never leaks");
    }
}
