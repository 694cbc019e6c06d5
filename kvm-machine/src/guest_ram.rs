//! Guest RAM: anonymous host memory (vm-memory's `GuestMemoryMmap`) handed
//! to KVM as one memslot per RAM range.

use anyhow::{Context, Result};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::layout::MemoryMap;

/// Guest RAM as this process sees it.
pub type GuestRam = GuestMemoryMmap<()>;

/// Allocates the RAM of `map` and registers it with KVM as memslots
/// `0..n`. The returned memory must stay alive while vCPUs can run (the
/// slots point at it): `Vm` drops it after its vCPUs and VM fd.
pub fn create(vm: &VmFd, map: &MemoryMap) -> Result<GuestRam> {
    let ranges: Vec<(GuestAddress, usize)> = map
        .ram()
        .iter()
        .map(|r| {
            let len = usize::try_from(r.end - r.start).context("guest RAM too large")?;
            Ok((GuestAddress(r.start), len))
        })
        .collect::<Result<_>>()?;
    let ram = GuestRam::from_ranges(&ranges).context("cannot allocate guest RAM")?;
    for (slot, region) in ram.iter().enumerate() {
        let memory_region = kvm_userspace_memory_region {
            slot: u32::try_from(slot).context("too many RAM regions")?,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the region is a live anonymous mapping of exactly
        // `memory_size` bytes owned by `ram`. KVM dereferences it only on
        // behalf of a running vCPU, and `Vm` keeps `ram` alive until every
        // vCPU thread has stopped and the vCPU and VM fds are closed (its
        // field order), so KVM never uses a dangling host address. Guest
        // writes cannot break Rust invariants: the host only touches guest
        // RAM through vm-memory's volatile accessors.
        unsafe { vm.set_user_memory_region(memory_region) }
            .with_context(|| format!("cannot register RAM memslot {slot}"))?;
    }
    Ok(ram)
}

/// Number of memslots [`create`] uses for `map`; later slots are free.
pub fn slots_used(map: &MemoryMap) -> u32 {
    map.ram().len() as u32
}
