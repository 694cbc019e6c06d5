//! BAR2 as a KVM memslot backed by the device's VRAM memfd, so guest VRAM
//! accesses go straight to the same pages the device model sees and never
//! exit to the VMM. The slot follows the guest's BAR programming.

use std::fs::File;
use std::mem::ManuallyDrop;
use std::sync::Arc;

use anyhow::{Context, Result};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{FileOffset, MmapRegion};

use device_model::Vram;

/// The VRAM memslot and where it is mapped in the guest, if anywhere.
pub struct VramSlot {
    vm: Arc<VmFd>,
    slot: u32,
    /// This process's MAP_SHARED mapping of the memfd; KVM maps guest
    /// pages to the same host pages. Dropped by hand: only once the slot
    /// is gone (see `Drop`).
    mapping: ManuallyDrop<MmapRegion<()>>,
    mapped_at: Option<u64>,
}

impl VramSlot {
    /// Maps the VRAM memfd into this process; nothing is visible to the
    /// guest until [`Self::place`].
    pub fn new(vm: Arc<VmFd>, slot: u32, vram: &Vram) -> Result<Self> {
        let size = usize::try_from(vram.size()).context("VRAM larger than the address space")?;
        let fd = vram
            .fd()
            .try_clone_to_owned()
            .context("cannot duplicate the VRAM memfd")?;
        let mapping = MmapRegion::from_file(FileOffset::new(File::from(fd), 0), size)
            .context("cannot map VRAM for the memslot")?;
        Ok(Self {
            vm,
            slot,
            mapping: ManuallyDrop::new(mapping),
            mapped_at: None,
        })
    }

    pub fn size(&self) -> u64 {
        self.mapping.size() as u64
    }

    /// Where the guest sees VRAM now.
    pub fn mapped_at(&self) -> Option<u64> {
        self.mapped_at
    }

    /// Maps VRAM at guest address `at`, or unmaps it for `None`. Moving is
    /// remove-then-add: KVM does not move a slot's base in place.
    pub fn place(&mut self, at: Option<u64>) -> Result<()> {
        if at == self.mapped_at {
            return Ok(());
        }
        if self.mapped_at.is_some() {
            self.set(0, 0).context("cannot remove the VRAM memslot")?;
            self.mapped_at = None;
        }
        if let Some(addr) = at {
            self.set(addr, self.size())
                .with_context(|| format!("cannot map VRAM at {addr:#x}"))?;
            self.mapped_at = Some(addr);
        }
        Ok(())
    }

    fn set(&self, guest_addr: u64, size: u64) -> Result<(), kvm_ioctls::Error> {
        let region = kvm_userspace_memory_region {
            slot: self.slot,
            flags: 0,
            guest_phys_addr: guest_addr,
            memory_size: size,
            userspace_addr: self.mapping.as_ptr() as u64,
        };
        // SAFETY: `mapping` is a live MAP_SHARED mapping of `size()` bytes
        // (or the slot is being deleted with size 0) that lives as long as
        // `self`, and `Drop` deletes the slot before the mapping goes away.
        // The guest writing these pages cannot break Rust invariants: this
        // process only reaches VRAM through `Vram`'s raw byte copies.
        unsafe { self.vm.set_user_memory_region(region) }
    }
}

impl Drop for VramSlot {
    fn drop(&mut self) {
        if self.mapped_at.is_some() {
            if let Err(e) = self.set(0, 0) {
                // Unmapping now would let a later mapping reuse the address
                // range while the guest can still reach it: leak instead.
                tracing::warn!("kvm: cannot remove the VRAM memslot ({e}); leaking its mapping");
                return;
            }
        }
        // SAFETY: the slot no longer refers to the mapping (never placed,
        // or deleted just above), and `drop` runs once, so the mapping is
        // dropped exactly once and nothing uses it afterwards.
        unsafe { ManuallyDrop::drop(&mut self.mapping) };
    }
}
