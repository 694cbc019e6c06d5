//! MSI delivery: the device model hands back MSI-X messages (address +
//! data); KVM_SIGNAL_MSI injects them through the in-kernel LAPICs.

use std::sync::Arc;

use kvm_bindings::kvm_msi;
use kvm_ioctls::VmFd;

use device_model::MsixMessage;

/// Injects MSI messages into the VM.
pub struct MsiSender {
    vm: Arc<VmFd>,
}

impl MsiSender {
    pub fn new(vm: Arc<VmFd>) -> Self {
        Self { vm }
    }

    /// Sends `message`; `Ok(false)` if KVM dropped it (e.g. no LAPIC
    /// accepts that destination), which the guest caused, not the VMM.
    pub fn send(&self, message: MsixMessage) -> Result<bool, kvm_ioctls::Error> {
        let msi = kvm_msi {
            address_lo: message.address as u32,
            address_hi: (message.address >> 32) as u32,
            data: message.data,
            ..Default::default()
        };
        Ok(self.vm.signal_msi(msi)? > 0)
    }
}
