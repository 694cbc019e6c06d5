//! The PCI topology line(s) `vmm` prints at start.

use device_model::{abi, DeviceConfig};

use crate::device_spec::GuestDriver;
use crate::size::format_size;

/// Human-readable vendor/device/class names from the PCI ID database, where
/// it knows them.
fn names() -> (String, String, String) {
    let vendor = <pci_ids::Vendor as pci_ids::FromId<u16>>::from_id(abi::VENDOR_ID)
        .map(|v| v.name().to_owned())
        .unwrap_or_else(|| "unknown vendor".into());
    let device = pci_ids::Device::from_vid_pid(abi::VENDOR_ID, abi::DEVICE_ID)
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|| "rangefault VRAM device (not in pci.ids)".into());
    let class = (abi::CLASS_CODE >> 16) as u8;
    let subclass = (abi::CLASS_CODE >> 8) as u8;
    let class_name = pci_ids::Subclass::from_cid_sid(class, subclass)
        .map(|s| format!("{} / {}", s.class().name(), s.name()))
        .unwrap_or_else(|| "unknown class".into());
    (vendor, device, class_name)
}

/// Lines describing the device at `bdf`, which `driver` takes in the guest.
pub fn describe(bdf: &str, config: &DeviceConfig, driver: GuestDriver) -> Vec<String> {
    let (vendor, device, class) = names();
    vec![
        format!(
            "{bdf} [{:04x}:{:04x}] class {:06x} ({class}): {vendor} {device}",
            abi::VENDOR_ID,
            abi::DEVICE_ID,
            abi::CLASS_CODE
        ),
        format!(
            "    BAR{} mem32 {} registers, MSI-X table + PBA ({} vectors)",
            abi::REGS_BAR,
            format_size(abi::REGS_BAR_SIZE),
            abi::MSIX_VECTORS
        ),
        format!(
            "    BAR{} mem64 prefetchable {} VRAM, preferred page size {}",
            abi::VRAM_BAR,
            format_size(config.vram_size),
            format_size(config.page_size)
        ),
        format!("    guest driver: {}", driver.name()),
    ]
}
