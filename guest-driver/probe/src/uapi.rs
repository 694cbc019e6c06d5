//! The driver's char-device ABI (mirrors `guest-driver/module/uapi.rs`).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use serde::Serialize;

use crate::ProbeError;

pub const DEVICE_PATH: &str = "/dev/rangefault0";

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, Serialize)]
pub struct Info {
    pub vram_size: u64,
    pub page_size: u64,
    pub bar2_phys: u64,
    pub strategy: u32,
    pub state: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug, Serialize)]
pub struct Stats {
    pub faults_pte: u64,
    pub faults_pmd: u64,
    pub faults_pud: u64,
    pub fallbacks: u64,
    pub pte_inserts: u64,
    pub bytes_inserted: u64,
    pub zaps: u64,
    pub sigbus: u64,
}

impl Stats {
    /// Page faults the driver served (one per fault, whatever it inserted).
    pub fn faults(&self) -> u64 {
        self.faults_pte + self.faults_pmd + self.faults_pud
    }
}

/// The driver's fault strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Page = 0,
    Prefault16 = 1,
    Range = 2,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Strategy::Page, Strategy::Prefault16, Strategy::Range];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Page => "page",
            Strategy::Prefault16 => "prefault16",
            Strategy::Range => "range",
        }
    }
}

const fn ioc(dir: u32, nr: u32, size: usize) -> libc::c_ulong {
    ((dir << 30) | ((size as u32) << 16) | ((b'r' as u32) << 8) | nr) as libc::c_ulong
}
const IOC_READ: u32 = 2;
const IOC_WRITE: u32 = 1;
const INFO: libc::c_ulong = ioc(IOC_READ, 0, std::mem::size_of::<Info>());
const STATS: libc::c_ulong = ioc(IOC_READ, 1, std::mem::size_of::<Stats>());
const SET_STRATEGY: libc::c_ulong = ioc(IOC_WRITE, 2, 4);
const SET_ENABLED: libc::c_ulong = ioc(IOC_WRITE, 3, 4);
const RESET_STATS: libc::c_ulong = ioc(0, 4, 0);

/// An open `/dev/rangefault0`.
pub struct Device {
    pub file: File,
}

impl Device {
    pub fn open() -> Result<Self, ProbeError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(DEVICE_PATH)
            .map_err(|e| ProbeError::io(DEVICE_PATH.as_ref(), e))?;
        Ok(Self { file })
    }

    fn ioctl<T>(&self, request: libc::c_ulong, arg: *mut T) -> Result<(), ProbeError> {
        // SAFETY: `arg` points to a live value of the size the request encodes (or is unused).
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request, arg) };
        if rc < 0 {
            return Err(ProbeError::io(
                DEVICE_PATH.as_ref(),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    pub fn info(&self) -> Result<Info, ProbeError> {
        let mut info = Info::default();
        self.ioctl(INFO, &mut info)?;
        Ok(info)
    }

    pub fn stats(&self) -> Result<Stats, ProbeError> {
        let mut stats = Stats::default();
        self.ioctl(STATS, &mut stats)?;
        Ok(stats)
    }

    pub fn set_strategy(&self, strategy: Strategy) -> Result<(), ProbeError> {
        let mut raw = strategy as u32;
        self.ioctl(SET_STRATEGY, &mut raw)
    }

    pub fn set_enabled(&self, enabled: bool) -> Result<(), ProbeError> {
        let mut raw = u32::from(enabled);
        self.ioctl(SET_ENABLED, &mut raw)
    }

    pub fn reset_stats(&self) -> Result<(), ProbeError> {
        self.ioctl(RESET_STATS, std::ptr::null_mut::<u8>())
    }

    /// Raw ioctl for tests of bad requests; returns errno on failure.
    pub fn raw_ioctl(&self, request: libc::c_ulong, arg: usize) -> Result<(), i32> {
        // SAFETY: the kernel validates `arg` as a user pointer; a bad one gives EFAULT.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request, arg) };
        if rc < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(())
        }
    }
}
