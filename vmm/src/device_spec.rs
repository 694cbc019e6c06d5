//! `--device vram=1G,page-size=64K[,driver=vfio-pci]`: one instance of the rangefault device,
//! and which guest driver takes it. More than one lets a guest run peers beside each other,
//! such as vfio-pci on a second device while rangefault drives the first.

use device_model::DeviceConfig;

use crate::size::{format_size, parse_size};

/// The most devices one guest gets: each takes a slot on QEMU's root bus.
pub const MAX_DEVICES: usize = 8;

/// Which guest driver binds a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestDriver {
    /// Our driver (the default).
    Rangefault,
    /// vfio-pci, for user space to map BAR2 through VFIO: the guest then gets a virtual IOMMU.
    VfioPci,
}

impl GuestDriver {
    pub fn name(self) -> &'static str {
        match self {
            GuestDriver::Rangefault => "rangefault",
            GuestDriver::VfioPci => "vfio-pci",
        }
    }
}

/// One `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceSpec {
    pub config: DeviceConfig,
    pub driver: GuestDriver,
}

/// Parses `vram=SIZE,page-size=SIZE[,driver=rangefault|vfio-pci]` (any order; `vram`
/// defaults to 1G and `page-size` to 2M, as `--vram` and `--page-size` do).
pub fn parse_device(text: &str) -> Result<DeviceSpec, String> {
    let mut vram = 1 << 30;
    let mut page_size = 2 << 20;
    let mut driver = GuestDriver::Rangefault;
    for part in text.split(',') {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not KEY=VALUE (vram=, page-size=, driver=)"))?;
        match key {
            "vram" => vram = parse_size(value)?,
            "page-size" => page_size = parse_size(value)?,
            "driver" => {
                driver = match value {
                    "rangefault" => GuestDriver::Rangefault,
                    "vfio-pci" => GuestDriver::VfioPci,
                    _ => return Err(format!("driver={value}: use rangefault or vfio-pci")),
                }
            }
            _ => return Err(format!("unknown key '{key}' (vram=, page-size=, driver=)")),
        }
    }
    let config = DeviceConfig::new(vram, page_size).map_err(|e| {
        format!(
            "vram={} page-size={}: {e}",
            format_size(vram),
            format_size(page_size)
        )
    })?;
    Ok(DeviceSpec { config, driver })
}

/// The kernel parameters that make the guest hand the `vfio-pci` devices (at `bdfs`) to
/// vfio-pci: a virtual IOMMU in pass-through mode for everything else (vfio-pci's type1 IOMMU
/// needs one; rangefault's own DMA stays untranslated), and the list `/init` binds.
///
/// Type1 refuses a group whose MSIs are not isolated unless told otherwise: the guest kernel
/// has no interrupt remapping (IRQ_REMAP, another kernel build), and the benchmark's vfio user
/// maps BAR2 and takes no interrupts, so it is told otherwise.
pub fn vfio_cmdline(bdfs: &[String]) -> Option<String> {
    (!bdfs.is_empty()).then(|| {
        format!(
            "intel_iommu=on iommu=pt vfio_iommu_type1.allow_unsafe_interrupts=1 rangefault.vfio_pci={}",
            bdfs.join(",")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_takes_keys_in_any_order_with_defaults() {
        let spec = parse_device("page-size=64K,vram=2G").unwrap();
        assert_eq!(
            (spec.config.vram_size, spec.config.page_size, spec.driver),
            (2 << 30, 64 << 10, GuestDriver::Rangefault)
        );
        let spec = parse_device("driver=vfio-pci").unwrap();
        assert_eq!(spec.config.vram_size, 1 << 30);
        assert_eq!(spec.driver, GuestDriver::VfioPci);
    }

    #[test]
    fn bad_devices_say_what_is_wrong() {
        for (text, needle) in [
            ("vram", "is not KEY=VALUE"),
            ("size=1G", "unknown key 'size'"),
            ("driver=nouveau", "use rangefault or vfio-pci"),
            ("vram=3G", "vram=3G page-size=2M"),
            ("page-size=8K,vram=64K", "page-size=8K"),
            ("vram=lots", "is not a size"),
        ] {
            let err = parse_device(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn vfio_devices_get_an_iommu_and_a_binding() {
        assert_eq!(vfio_cmdline(&[]), None);
        assert_eq!(
            vfio_cmdline(&["0000:00:04.0".into()]).unwrap(),
            "intel_iommu=on iommu=pt vfio_iommu_type1.allow_unsafe_interrupts=1 rangefault.vfio_pci=0000:00:04.0"
        );
    }
}
