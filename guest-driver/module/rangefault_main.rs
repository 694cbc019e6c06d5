// SPDX-License-Identifier: GPL-2.0

//! rangefault: driver for the rangefault PCI device, whose BAR2 exposes VRAM that user space will
//! map and fault in.
//!
//! Probe checks that the registers, the vendor-specific capability and the BAR the PCI core
//! assigned all describe the same VRAM (`geometry.rs`), reserves the VRAM BAR as write-combining, turns the device
//! on and registers `/dev/rangefaultN`, whose mappings are faulted in by *range insertion* of the
//! device's preferred page size (`fault.rs`). Unbind revokes every mapping first.

use kernel::{
    device::Core,
    io::Io,
    pci,
    prelude::*, //
};

mod abi;
mod chardev;
mod check;
mod fault;
mod geometry;
mod latency;
mod shared;
mod trace;
mod uapi;
mod vm;
mod window;
mod x86;

use core::marker::PhantomData;

use chardev::{Chardev, DeviceName};
use geometry::VramGeometry;
use shared::{DeviceShared, Geometry, State};
use window::Strategy;

/// Whether the kernel this module was built for has `vmf_insert_range` (see `Kbuild`).
const KERNEL_HAS_INSERT_RANGE: bool = cfg!(rangefault_insert_range);
/// Strategies this build serves (bit `n`: raw strategy `n`), reported by INFO.
pub(crate) const SUPPORTED_STRATEGIES: u32 = Strategy::supported_mask(KERNEL_HAS_INSERT_RANGE);
/// The strategy of a freshly bound device.
pub(crate) const DEFAULT_STRATEGY: Strategy = Strategy::default_for(KERNEL_HAS_INSERT_RANGE);

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
    [(vm::pci_device(abi::VENDOR_ID, abi::DEVICE_ID), ())]
);

/// State of one bound device; the PCI core owns it from probe to remove. Fields drop in order:
/// the char device goes first. BAR0 lives in the shared state as a `Devres`, revoked on unbind,
/// so the CHECK ioctl can reach it while the device is bound.
#[pin_data]
struct RangefaultDevice<'bound> {
    #[pin]
    chardev: Chardev,
    _name: DeviceName,
    _write_combining: x86::WriteCombining,
    _bound: PhantomData<&'bound ()>,
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

        let geometry = VramGeometry::probe(pdev, &regs)?;
        let vram_start = pdev.resource_start(abi::VRAM_BAR)?;

        let shared = DeviceShared::new(
            Geometry {
                bar2_phys: vram_start,
                vram_size: geometry.size,
                page_size: geometry.page_size(),
                gbpages: x86::cpu_has_gbpages(),
            },
            regs.into_devres()?,
        )?;
        let write_combining = x86::WriteCombining::reserve(vram_start, geometry.size)?;
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
