//! The vCPU whose exit is being served, for devices that need to know
//! more about it than the access itself (the page-table check wants its
//! CR3).

use kvm_ioctls::VcpuFd;

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
    pub fn cr3(&self) -> Result<u64, kvm_ioctls::Error> {
        self.fd.get_sregs().map(|sregs| sregs.cr3)
    }
}
