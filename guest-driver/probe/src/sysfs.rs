//! Finding the rangefault device in sysfs.

use std::fs;
use std::path::{Path, PathBuf};

use rangefault_abi as abi;

use crate::ProbeError;

/// A rangefault PCI function as sysfs shows it.
pub struct PciFunction {
    pub path: PathBuf,
    pub bdf: String,
}

impl PciFunction {
    /// The first function with our vendor and device ID.
    pub fn find() -> Result<Self, ProbeError> {
        Self::all()?.into_iter().next().ok_or(ProbeError::NoDevice)
    }

    /// The first of our functions that `driver` is bound to.
    pub fn find_bound(driver: &str) -> Result<Self, ProbeError> {
        Self::all()?
            .into_iter()
            .find(|f| f.driver().as_deref() == Some(driver))
            .ok_or(ProbeError::NoDevice)
    }

    /// Every function with our vendor and device ID, in bus order.
    pub fn all() -> Result<Vec<Self>, ProbeError> {
        let root = Path::new("/sys/bus/pci/devices");
        let mut entries: Vec<_> = fs::read_dir(root)
            .map_err(|e| ProbeError::io(root, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        Ok(entries
            .into_iter()
            .filter(|path| {
                let id = |name: &str| read_hex(&path.join(name)).ok();
                id("vendor") == Some(u64::from(abi::VENDOR_ID))
                    && id("device") == Some(u64::from(abi::DEVICE_ID))
            })
            .map(|path| {
                let bdf = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Self { path, bdf }
            })
            .collect())
    }

    /// Name of the bound driver, if any.
    pub fn driver(&self) -> Option<String> {
        fs::read_link(self.path.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    }

    /// (start, size) of a BAR from the `resource` file.
    pub fn bar(&self, index: usize) -> Result<(u64, u64), ProbeError> {
        let path = self.path.join("resource");
        let text = fs::read_to_string(&path).map_err(|e| ProbeError::io(&path, e))?;
        let line = text
            .lines()
            .nth(index)
            .ok_or_else(|| ProbeError::Parse(format!("{}: no line {index}", path.display())))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(parse_hex)
            .collect::<Result<_, _>>()?;
        match fields[..] {
            [start, end, _flags] if end > start => Ok((start, end - start + 1)),
            _ => Err(ProbeError::Parse(format!(
                "{}: BAR{index} unassigned",
                path.display()
            ))),
        }
    }

    pub fn resource_path(&self, bar: usize) -> PathBuf {
        self.path.join(format!("resource{bar}"))
    }
}

fn read_hex(path: &Path) -> Result<u64, ProbeError> {
    let text = fs::read_to_string(path).map_err(|e| ProbeError::io(path, e))?;
    parse_hex(text.trim())
}

fn parse_hex(text: &str) -> Result<u64, ProbeError> {
    u64::from_str_radix(text.trim_start_matches("0x"), 16)
        .map_err(|_| ProbeError::Parse(format!("not a hex number: {text:?}")))
}
