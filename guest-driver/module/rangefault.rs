// SPDX-License-Identifier: GPL-2.0

//! rangefault: driver for the rangefault PCI device, whose BAR2 exposes VRAM that user space will
//! map and fault in.
//!
//! Probe checks that the registers, the vendor-specific capability and the BAR the PCI core
//! assigned all describe the same VRAM, reserves the VRAM BAR as write-combining, turns the device
//! on and registers `/dev/rangefaultN`, whose mappings are faulted in by *range insertion* of the
//! device's preferred page size (`fault.rs`). Unbind revokes every mapping first.

use kernel::{
    bindings,
    device::{
        Bound,
        Core, //
    },
    io::Io,
    pci,
    prelude::*, //
};

mod abi;
mod chardev;
mod check;
mod fault;
mod latency;
mod shared;
mod uapi;
mod vm;
mod window;

use core::marker::PhantomData;

use chardev::{Chardev, DeviceName};
use window::Strategy;

/// Whether the kernel this module was built for has `vmf_insert_range` (see `Kbuild`).
const KERNEL_HAS_INSERT_RANGE: bool = cfg!(rangefault_insert_range);
/// Strategies this build serves (bit `n`: raw strategy `n`), reported by INFO.
pub(crate) const SUPPORTED_STRATEGIES: u32 = Strategy::supported_mask(KERNEL_HAS_INSERT_RANGE);
/// The strategy of a freshly bound device.
pub(crate) const DEFAULT_STRATEGY: Strategy = Strategy::default_for(KERNEL_HAS_INSERT_RANGE);
use shared::{DeviceShared, Geometry, State};

kernel::module_pci_driver! {
    type: RangefaultDriver,
    name: "rangefault",
    authors: ["rangefault developers"],
    description: "Faults the VRAM behind a PCI BAR into user space",
    license: "GPL v2",
}

kernel::pci_device_table!(
    PCI_TABLE,
    MODULE_PCI_TABLE,
    <RangefaultDriver as pci::Driver>::IdInfo,
    [(pci_device(abi::VENDOR_ID, abi::DEVICE_ID), ())]
);

/// Matches `vendor:device` with any subsystem IDs, like C's `PCI_DEVICE(vendor, device)`.
///
/// `pci::DeviceId::from_id()` would do, but it takes a `pci::Vendor`, and a `Vendor` can only be
/// named for the vendors in `pci_ids.h` (its constructor is private to the kernel crate in 7.2).
/// Our placeholder vendor 0x1234 is not among them.
const fn pci_device(vendor: u16, device: u16) -> pci::DeviceId {
    let any = bindings::PCI_ANY_ID as u32;
    let raw = bindings::pci_device_id {
        vendor: vendor as u32,
        device: device as u32,
        subvendor: any,
        subdevice: any,
        class: 0,
        class_mask: 0,
        // `IdArray::new()` stores the table index here.
        driver_data: 0,
        override_only: 0,
    };
    // SAFETY: `pci::DeviceId` implements `RawDeviceId` with `RawType = bindings::pci_device_id`,
    // whose safety contract makes the two layout-compatible (rust/kernel/device_id.rs). It is a
    // `#[repr(transparent)]` wrapper of `pci_device_id` that adds no invariant of its own
    // (rust/kernel/pci.rs, `DeviceId`), so every `pci_device_id` value is a valid `DeviceId`.
    // `transmute` checks at compile time that the sizes agree.
    unsafe { core::mem::transmute::<bindings::pci_device_id, pci::DeviceId>(raw) }
}

/// BAR0, mapped for as long as the device is bound.
type Regs<'bound> = pci::Bar<'bound, { abi::REGS_BAR_SIZE }>;

/// State of one bound device; the PCI core owns it from probe to remove. Fields drop in order:
/// the char device goes first. BAR0 lives in the shared state as a `Devres`, revoked on unbind,
/// so the CHECK ioctl can reach it while the device is bound.
#[pin_data]
struct RangefaultDevice<'bound> {
    #[pin]
    chardev: Chardev,
    _name: DeviceName,
    _write_combining: WriteCombining,
    _bound: PhantomData<&'bound ()>,
}

/// The VRAM BAR's PAT memtype reservation as write-combining, for as long as the device is bound.
///
/// Every `vmf_insert_pfn*` looks the memtype up, so this is what makes user mappings WC. The BAR
/// must not also be ioremapped UC- (an overlapping UC- reservation would win), so it never is.
struct WriteCombining {
    start: u64,
    size: u64,
}

impl WriteCombining {
    fn reserve(start: u64, size: u64) -> Result<Self> {
        // SAFETY: reserves a memtype for a physical range; no memory is accessed.
        kernel::error::to_result(unsafe { bindings::arch_io_reserve_memtype_wc(start, size) })?;
        Ok(Self { start, size })
    }
}

impl Drop for WriteCombining {
    fn drop(&mut self) {
        // SAFETY: frees exactly the reservation taken in `reserve`.
        unsafe { bindings::arch_io_free_memtype_wc(self.start, self.size) };
    }
}

struct RangefaultDriver;

impl pci::Driver for RangefaultDriver {
    type IdInfo = ();
    type Data<'bound> = RangefaultDevice<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: &'bound Self::IdInfo,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || RangefaultDevice::probe(pdev))
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        // Zap every user mapping before the device goes away; later touches get SIGBUS.
        this.chardev.shared().revoke(State::Gone);
        // BAR0 is still mapped here; its `Devres` is revoked after unbind returns.
        if let Ok(regs) = this.chardev.shared().registers(pdev.as_ref()) {
            regs.update(abi::reg::CONTROL, |control: u32| {
                control & !abi::control::ENABLE
            });
        }
        dev_info!(pdev, "unbound\n");
    }
}

impl<'bound> RangefaultDevice<'bound> {
    fn probe(pdev: &'bound pci::Device<Core<'_>>) -> Result<impl PinInit<Self, Error> + 'bound> {
        pdev.enable_device_mem()?;
        let regs =
            pdev.iomap_region_sized::<{ abi::REGS_BAR_SIZE }>(abi::REGS_BAR, c"rangefault")?;

        check_abi(pdev, &regs)?;
        let geometry = VramGeometry::from_registers(pdev, &regs)?;
        let advertised = VramGeometry::from_vendor_cap(pdev)?;
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

        let vram_start = pdev.resource_start(abi::VRAM_BAR)?;
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

        let shared = DeviceShared::new(
            Geometry {
                bar2_phys: vram_start,
                vram_size: geometry.size,
                page_size: geometry.page_size(),
                gbpages: cpu_has_gbpages(),
            },
            regs.into_devres()?,
        )?;
        let write_combining = WriteCombining::reserve(vram_start, vram_len)?;
        let name = DeviceName::take()?;

        shared
            .registers(pdev.as_ref())?
            .update(abi::reg::CONTROL, |control: u32| {
                control | abi::control::ENABLE
            });
        // The host test parses this line; keep its keys and formats.
        dev_info!(
            pdev,
            "bound: vram={} page_size={} bar2={:#x} abi={} dev=/dev/{} insert_range={}\n",
            geometry.size,
            geometry.page_size(),
            vram_start,
            abi::ABI_VERSION,
            name.name().to_str().unwrap_or("?"),
            u32::from(KERNEL_HAS_INSERT_RANGE)
        );
        let device_name = name.name();
        Ok(try_pin_init!(Self {
            chardev <- Chardev::new(shared, device_name),
            _name: name,
            _write_combining: write_combining,
            _bound: PhantomData,
        }))
    }
}

/// Whether the CPU supports 1 GiB pages (X86_FEATURE_GBPAGES, word 1 bit 26 of the boot CPU's
/// capabilities), i.e. whether a PUD leaf is legal.
fn cpu_has_gbpages() -> bool {
    const WORD: usize = 1;
    const BIT: u32 = 26;
    // SAFETY: `boot_cpu_data` is filled in during early boot and only read afterwards.
    let word = unsafe { bindings::boot_cpu_data.__bindgen_anon_3.x86_capability[WORD] };
    word & (1 << BIT) != 0
}

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
struct VramGeometry {
    size: u64,
    page_shift: u32,
}

impl VramGeometry {
    /// Page shifts the driver accepts: from the CPU's base page up to a PUD-sized (1 GiB) page,
    /// the largest the fault path can insert.
    const PAGE_SHIFTS: core::ops::RangeInclusive<u32> = 12..=30;

    fn page_size(&self) -> u64 {
        1 << self.page_shift
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
        let Some(cap) = config_space::find_capability(&config, bindings::PCI_CAP_ID_VNDR) else {
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
        bindings,
        io::Io,
        pci, //
    };

    /// Size of the standard config space, the part the capability list lives in.
    pub(crate) const NORMAL_SIZE: usize = pci::ConfigSpaceSize::Normal.into_raw();

    const STATUS: usize = bindings::PCI_STATUS as usize;
    const STATUS_CAP_LIST: u16 = bindings::PCI_STATUS_CAP_LIST as u16;
    const CAPABILITY_LIST: usize = bindings::PCI_CAPABILITY_LIST as usize;
    const CAP_LIST_NEXT: usize = bindings::PCI_CAP_LIST_NEXT as usize;
    /// Capabilities live after the standard header.
    const STD_HEADER_SIZEOF: usize = bindings::PCI_STD_HEADER_SIZEOF as usize;
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
