//! What the benchmark compares: each of our driver's strategies, and the peers a user would
//! reach for instead (vfio-pci on a second device, the eager `io_remap_pfn_range` of sysfs's
//! `resource2_wc`). Every subject maps BAR2 its own way; the cell measures them alike.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;

use rangefault_abi::uapi::Strategy;

use super::vfio_peer::VfioPeer;
use crate::faults::mapping_alignment;
use crate::sysfs::PciFunction;
use crate::uapi::Device;
use crate::vmap::{DeviceMapping, Placement};
use crate::ProbeError;

/// Most bytes one cell maps: 1 GiB, as the field's figures are given per GiB.
pub const MAX_MAPPED: u64 = 1 << 30;

pub enum Subject {
    /// Our driver, with this strategy.
    Strategy(Strategy),
    /// vfio-pci's own fault handler, on its device.
    VfioPci(VfioPeer),
    /// sysfs `resource2_wc` of our device: every PTE inserted by mmap(2) itself.
    EagerRemap { path: String, bar_size: u64 },
}

impl Subject {
    pub fn name(&self) -> &'static str {
        match self {
            Subject::Strategy(s) => s.name(),
            Subject::VfioPci(_) => "vfio-pci",
            Subject::EagerRemap { .. } => "eager-remap",
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Strategy(_) => "strategy",
            _ => "peer",
        }
    }

    /// Every subject this guest has: the strategies the driver serves, then the peers whose
    /// devices exist (a device bound to vfio-pci; our device's `resource2_wc`).
    pub fn all(device: &Device, ours: &PciFunction) -> Result<Vec<Subject>, ProbeError> {
        let mut subjects: Vec<Subject> =
            device.info()?.strategies().map(Subject::Strategy).collect();
        for function in PciFunction::all()? {
            if function.driver().as_deref() == Some("vfio-pci") {
                subjects.push(Subject::VfioPci(VfioPeer::open(
                    &function.path,
                    &function.bdf,
                )?));
                break;
            }
        }
        let wc = ours.path.join("resource2_wc");
        if wc.exists() {
            subjects.push(Subject::EagerRemap {
                path: wc.display().to_string(),
                bar_size: ours.bar(2)?.1,
            });
        }
        Ok(subjects)
    }

    /// Bytes this subject's cells map.
    pub fn mapped_bytes(&self, device_vram: u64) -> u64 {
        match self {
            Subject::Strategy(_) => device_vram,
            Subject::VfioPci(peer) => peer.bar_size,
            Subject::EagerRemap { bar_size, .. } => *bar_size,
        }
        .min(MAX_MAPPED)
    }

    /// Maps `len` bytes of BAR2 as this subject does (strategies: the strategy set first).
    pub fn map(&self, device: &Device, page_size: u64, len: u64) -> Result<Mapped, ProbeError> {
        Ok(match self {
            Subject::Strategy(strategy) => {
                device.set_strategy(*strategy)?;
                let align = mapping_alignment(page_size) as usize;
                Mapped::new(DeviceMapping::new(device, 0, len as usize, align, 0)?)
            }
            Subject::VfioPci(peer) => Mapped::new(peer.map(len)?),
            Subject::EagerRemap { path, .. } => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| ProbeError::io(path.as_ref(), e))?;
                let at = Placement {
                    align: mapping_alignment(page_size) as usize,
                    misalign: 0,
                };
                let mapping = DeviceMapping::of_file(file.as_fd(), path, 0, len as usize, at)?;
                Mapped {
                    mapping,
                    _file: Some(file),
                }
            }
        })
    }
}

/// A subject's mapping (and the file behind it, where the mapping needs one open).
pub struct Mapped {
    pub mapping: DeviceMapping,
    _file: Option<File>,
}

impl Mapped {
    fn new(mapping: DeviceMapping) -> Self {
        Self {
            mapping,
            _file: None,
        }
    }
}
