//! The driver's char device: safe wrappers around its ioctls, whose structs, numbers and
//! strategies come from `rangefault_abi::uapi`, and the report's view of their results.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use crate::ProbeError;
pub use rangefault_abi::uapi::{
    CheckArgs, Info, Latency, Stats, Strategy, CHECK, CHECK_CURRENT_STRATEGY, INFO, LATENCY,
    RESET_STATS, SET_ENABLED, SET_STRATEGY, STATS,
};

pub const DEVICE_PATH: &str = "/dev/rangefault0";

/// The report's view of the ioctls' results: types the host reads back as they are.
pub use rangefault_report::{FaultLatency, HostCheck};

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

    fn ioctl<T>(&self, request: u32, arg: *mut T) -> Result<(), ProbeError> {
        // SAFETY: `arg` points to a live value of the size the request encodes (or is unused).
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request.into(), arg) };
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

    pub fn latency(&self) -> Result<FaultLatency, ProbeError> {
        let mut latency = Latency::default();
        self.ioctl(LATENCY, &mut latency)?;
        Ok(FaultLatency {
            pte: (&latency.pte).into(),
            pmd: (&latency.pmd).into(),
            pud: (&latency.pud).into(),
        })
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

    /// Has the host check the page-table entries of `[va, va + len)` of one of our mappings.
    /// `strategy: None` expects the current strategy; `offset_delta` shifts the expected offset
    /// (non-zero only to prove the check can fail).
    pub fn check(
        &self,
        va: usize,
        len: usize,
        offset_delta: i64,
        strategy: Option<Strategy>,
    ) -> Result<HostCheck, ProbeError> {
        let mut args = CheckArgs {
            va: va as u64,
            len: len as u64,
            offset_delta,
            strategy: strategy.map_or(CHECK_CURRENT_STRATEGY, |s| s as u32),
            require_present: 1,
            ..CheckArgs::default()
        };
        self.ioctl(CHECK, &mut args)?;
        Ok(args.into())
    }

    /// Like [`Self::check`] with the current strategy, but pages not mapped yet pass: for a
    /// mapping touched only here and there. Those mapped must still be where and how big they
    /// should be.
    pub fn check_mapped_pages(&self, va: usize, len: usize) -> Result<HostCheck, ProbeError> {
        let mut args = CheckArgs {
            va: va as u64,
            len: len as u64,
            strategy: CHECK_CURRENT_STRATEGY,
            require_present: 0,
            ..CheckArgs::default()
        };
        self.ioctl(CHECK, &mut args)?;
        Ok(args.into())
    }

    /// Raw ioctl for tests of bad requests; returns errno on failure.
    pub fn raw_ioctl(&self, request: u32, arg: usize) -> Result<(), i32> {
        // SAFETY: the kernel validates `arg` as a user pointer; a bad one gives EFAULT.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request.into(), arg) };
        if rc < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(())
        }
    }
}
