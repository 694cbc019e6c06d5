//! The vCPU whose exit is being served, for devices that need to know
//! more about it than the access itself (the page-table check wants its
//! CR3 and IA32_PAT).

use anyhow::{bail, Context, Result};
use kvm_bindings::{kvm_msr_entry, Msrs};
use kvm_ioctls::VcpuFd;

const MSR_IA32_PAT: u32 = 0x277;

/// A borrowed view of the vCPU that caused the exit; only valid while its
/// thread serves that exit (the vCPU is not running then, so its registers
/// are those of the access).
pub struct ExitingVcpu<'a> {
    index: usize,
    fd: &'a VcpuFd,
}

impl<'a> ExitingVcpu<'a> {
    pub fn new(index: usize, fd: &'a VcpuFd) -> Self {
        Self { index, fd }
    }

    pub fn index(&self) -> usize {
        self.index
    }

    /// Its CR3 (KVM_GET_SREGS).
    pub fn cr3(&self) -> Result<u64> {
        let sregs = self.fd.get_sregs().context("KVM_GET_SREGS failed")?;
        Ok(sregs.cr3)
    }

    /// Its IA32_PAT (KVM_GET_MSRS).
    pub fn pat(&self) -> Result<u64> {
        let entry = kvm_msr_entry {
            index: MSR_IA32_PAT,
            ..Default::default()
        };
        let mut msrs = Msrs::from_entries(&[entry]).context("an MSR list for IA32_PAT")?;
        let read = self.fd.get_msrs(&mut msrs).context("KVM_GET_MSRS failed")?;
        match msrs.as_slice() {
            [entry] if read == 1 => Ok(entry.data),
            _ => bail!("KVM_GET_MSRS read {read} of 1 MSRs (IA32_PAT)"),
        }
    }
}
