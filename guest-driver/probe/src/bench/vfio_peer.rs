//! The vfio-pci peer: a second rangefault device, bound to vfio-pci by `/init`, its BAR2
//! mapped through VFIO as QEMU (and vfio's selftests) map a BAR: reserve, then MAP_FIXED at an
//! address aligned to the BAR, up to 1 GiB. Its faults are 7.2's `vfio_pci_mmap_huge_fault`,
//! which picks the level itself (PUD, then PMD, then PTE) whatever the device prefers.
//!
//! Opened with rust-vmm's `vfio-ioctls`: its legacy container sets the type1v2 IOMMU, so the
//! guest has a virtual IOMMU (QEMU's intel-iommu, `vmm run` adds it for a vfio-pci device) and
//! this is vfio-pci on a real type1 container, not no-IOMMU mode (which the crate cannot open).

use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::sync::Arc;

use vfio_ioctls::{VfioContainer, VfioDevice};

use crate::vmap::{DeviceMapping, Placement};
use crate::ProbeError;

/// BAR2's region index in VFIO's PCI layout (`VFIO_PCI_BAR2_REGION_INDEX`).
const BAR2_REGION: u32 = 2;

/// The opened device; the container and group close with it.
pub struct VfioPeer {
    pub bdf: String,
    device: VfioDevice,
    region_offset: u64,
    pub bar_size: u64,
}

fn vfio_error(what: &str, error: impl std::fmt::Display) -> ProbeError {
    ProbeError::Parse(format!("vfio-pci peer: {what}: {error}"))
}

impl VfioPeer {
    /// Opens the device at sysfs `path` (bound to vfio-pci) through a new type1 container.
    pub fn open(path: &Path, bdf: &str) -> Result<Self, ProbeError> {
        let container = VfioContainer::new(None).map_err(|e| vfio_error("container", e))?;
        let device = VfioDevice::new(path, Arc::new(container), false)
            .map_err(|e| vfio_error(&format!("device {bdf}"), e))?;
        let region_offset = device.get_region_offset(BAR2_REGION);
        let bar_size = device.get_region_size(BAR2_REGION);
        if bar_size == 0 {
            return Err(vfio_error(bdf, "BAR2 region has no size"));
        }
        Ok(Self {
            bdf: bdf.to_owned(),
            device,
            region_offset,
            bar_size,
        })
    }

    /// Maps `len` bytes of BAR2 at the BAR's own alignment (at most 1 GiB), as the field does.
    pub fn map(&self, len: u64) -> Result<DeviceMapping, ProbeError> {
        // SAFETY: the device fd is open for as long as `self.device` lives, which outlives
        // this call; mmap only borrows it.
        let fd = unsafe { BorrowedFd::borrow_raw(self.device.as_raw_fd()) };
        let at = Placement {
            align: self.bar_size.min(1 << 30) as usize,
            misalign: 0,
        };
        DeviceMapping::of_file(fd, "vfio BAR2", self.region_offset, len as usize, at)
    }
}
