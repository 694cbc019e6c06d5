// SPDX-License-Identifier: GPL-2.0

//! What the device says it is, checked at probe: BAR0's magic and ABI version, and the VRAM
//! geometry, which the registers, the vendor-specific capability and the BAR the PCI core
//! assigned must all agree on.

use kernel::{
    device::Bound,
    io::Io,
    pci,
    prelude::*, //
};

use crate::abi;
use crate::vm::pci_regs;

/// BAR0, mapped for as long as the device is bound.
pub(crate) type Regs<'bound> = pci::Bar<'bound, { abi::REGS_BAR_SIZE }>;

/// Fails unless BAR0 carries our magic and an ABI version this driver speaks.
fn check_abi(pdev: &pci::Device<Bound>, regs: &Regs<'_>) -> Result {
    let magic = regs.read32(abi::reg::MAGIC);
    if magic != abi::MAGIC {
        dev_err!(
            pdev,
            "bad magic {:#010x}, expected {:#010x}\n",
            magic,
            abi::MAGIC
        );
        return Err(EINVAL);
    }
    let version = regs.read32(abi::reg::VERSION);
    if version != abi::ABI_VERSION {
        dev_err!(
            pdev,
            "ABI version {} is not supported (this driver speaks {})\n",
            version,
            abi::ABI_VERSION
        );
        return Err(EINVAL);
    }
    Ok(())
}

/// How much VRAM the device has and in what page size it prefers to map it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct VramGeometry {
    pub(crate) size: u64,
    pub(crate) page_shift: u32,
}

impl VramGeometry {
    /// Page shifts the driver accepts: from the CPU's base page up to a PUD-sized (1 GiB) page,
    /// the largest the fault path can insert.
    const PAGE_SHIFTS: core::ops::RangeInclusive<u32> = 12..=30;

    pub(crate) fn page_size(&self) -> u64 {
        1 << self.page_shift
    }

    /// Checks the ABI, then reads the geometry from the registers and from the vendor capability
    /// and fails unless both agree with each other and with the length of the VRAM BAR.
    pub(crate) fn probe(pdev: &pci::Device<Bound>, regs: &Regs<'_>) -> Result<Self> {
        check_abi(pdev, regs)?;
        let geometry = Self::from_registers(pdev, regs)?;
        let advertised = Self::from_vendor_cap(pdev)?;
        if advertised != geometry {
            dev_err!(
                pdev,
                "registers say vram={} page_shift={}, vendor capability says vram={} page_shift={}\n",
                geometry.size,
                geometry.page_shift,
                advertised.size,
                advertised.page_shift
            );
            return Err(EINVAL);
        }
        let vram_len = pdev.resource_len(abi::VRAM_BAR)?;
        if vram_len != geometry.size {
            dev_err!(
                pdev,
                "VRAM size {} differs from BAR{} length {}\n",
                geometry.size,
                abi::VRAM_BAR,
                vram_len
            );
            return Err(EINVAL);
        }
        Ok(geometry)
    }

    /// Reads the geometry from the BAR0 registers and checks that it is usable.
    fn from_registers(pdev: &pci::Device<Bound>, regs: &Regs<'_>) -> Result<Self> {
        let size_lo = regs.read32(abi::reg::VRAM_SIZE_LO);
        let size_hi = regs.read32(abi::reg::VRAM_SIZE_HI);
        let geometry = Self {
            size: (u64::from(size_hi) << 32) | u64::from(size_lo),
            page_shift: regs.read32(abi::reg::PAGE_SHIFT),
        };
        if !Self::PAGE_SHIFTS.contains(&geometry.page_shift) {
            dev_err!(
                pdev,
                "page shift {} is outside {}..={}\n",
                geometry.page_shift,
                Self::PAGE_SHIFTS.start(),
                Self::PAGE_SHIFTS.end()
            );
            return Err(EINVAL);
        }
        // An absent BAR2 also has length 0, so the BAR check alone would let this through.
        if geometry.size == 0 {
            dev_err!(pdev, "device reports no VRAM\n");
            return Err(EINVAL);
        }
        Ok(geometry)
    }

    /// Reads the geometry the device advertises in its vendor-specific capability.
    fn from_vendor_cap(pdev: &pci::Device<Bound>) -> Result<Self> {
        let config = pdev.config_space();
        let Some(cap) = config_space::find_capability(&config, pci_regs::CAP_ID_VNDR) else {
            dev_err!(pdev, "no vendor-specific capability in config space\n");
            return Err(EINVAL);
        };

        let cap_len = config.try_read8(cap + abi::VENDOR_CAP_LENGTH_AT)?;
        let layout = config.try_read8(cap + abi::VENDOR_CAP_LAYOUT_VERSION_AT)?;
        if cap_len < abi::VENDOR_CAP_LEN
            || cap + usize::from(abi::VENDOR_CAP_LEN) > config_space::NORMAL_SIZE
            || layout != abi::VENDOR_CAP_VERSION
        {
            dev_err!(
                pdev,
                "vendor capability at {:#x} (length {}, layout {}) is not rangefault's (length {}, layout {})\n",
                cap,
                cap_len,
                layout,
                abi::VENDOR_CAP_LEN,
                abi::VENDOR_CAP_VERSION
            );
            return Err(EINVAL);
        }

        // Dword reads: the capability is dword-aligned, and config space has no 64-bit access.
        let size_lo = config.try_read32(cap + abi::VENDOR_CAP_VRAM_SIZE)?;
        let size_hi = config.try_read32(cap + abi::VENDOR_CAP_VRAM_SIZE + 4)?;
        Ok(Self {
            size: (u64::from(size_hi) << 32) | u64::from(size_lo),
            page_shift: config.try_read32(cap + abi::VENDOR_CAP_PAGE_SHIFT)?,
        })
    }
}

/// The standard (first 256 bytes of) config space, beyond the accessors `pci::ConfigSpace` offers.
mod config_space {
    use kernel::{
        io::Io,
        pci, //
    };

    use crate::vm::pci_regs::{
        CAPABILITY_LIST, CAP_LIST_NEXT, STATUS, STATUS_CAP_LIST, STD_HEADER_SIZEOF,
    };

    /// Size of the standard config space, the part the capability list lives in.
    pub(crate) const NORMAL_SIZE: usize = pci::ConfigSpaceSize::Normal.into_raw();

    /// Bound on the walk so a looping list cannot hang probe; the PCI core's `PCI_FIND_CAP_TTL`
    /// (drivers/pci/pci.h, not exported to Rust) with the same value.
    const FIND_CAP_TTL: usize = 48;

    /// Returns the offset of the first capability with ID `cap_id`.
    ///
    /// Walks the list the way the PCI core's `pci_find_capability()` does; 7.2 has no Rust
    /// abstraction for it, and the safe config-space accessors are all the walk needs.
    pub(crate) fn find_capability(
        config: &pci::ConfigSpace<'_, pci::Normal>,
        cap_id: u32,
    ) -> Option<usize> {
        if config.read16(STATUS) & STATUS_CAP_LIST == 0 {
            return None;
        }
        let mut next = config.read8(CAPABILITY_LIST);
        for _ in 0..FIND_CAP_TTL {
            // The low two bits of a capability pointer are reserved.
            let at = usize::from(next & !0b11);
            if at < STD_HEADER_SIZEOF {
                return None;
            }
            // `at` is a byte value, so `at + CAP_LIST_NEXT` stays inside the 256-byte space and
            // the reads cannot fail their bounds check.
            let id = config.try_read8(at).ok()?;
            // A failed config read returns all ones.
            if id == 0xff {
                return None;
            }
            if u32::from(id) == cap_id {
                return Some(at);
            }
            next = config.try_read8(at + CAP_LIST_NEXT).ok()?;
        }
        None
    }
}
