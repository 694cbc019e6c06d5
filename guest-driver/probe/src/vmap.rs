//! Mapping the device at a chosen alignment.
//!
//! The Rust misc device has no `get_unmapped_area`, so mmap would only be 4 KiB aligned and huge
//! entries could never fit. We reserve a PROT_NONE area big enough, then map the device with
//! MAP_FIXED at an aligned address inside it (plus an optional deliberate misalignment).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::uapi::Device;
use crate::ProbeError;

/// Where a mapping goes: at a VA that is `align`-aligned plus `misalign` bytes.
#[derive(Clone, Copy)]
pub struct Placement {
    pub align: usize,
    pub misalign: usize,
}

/// A shared mapping of VRAM `[offset, offset + len)`.
pub struct DeviceMapping {
    pub ptr: *mut u8,
    pub len: usize,
    pub offset: u64,
    /// The whole reservation, unmapped on drop.
    reserved: (*mut u8, usize),
}

fn os_error(what: &str) -> ProbeError {
    ProbeError::Io {
        path: what.to_owned(),
        source: std::io::Error::last_os_error(),
    }
}

impl DeviceMapping {
    /// Maps `len` bytes at VRAM `offset`, at a VA that is `align`-aligned plus `misalign` bytes.
    pub fn new(
        device: &Device,
        offset: u64,
        len: usize,
        align: usize,
        misalign: usize,
    ) -> Result<Self, ProbeError> {
        let at = Placement { align, misalign };
        Self::of_file(device.file.as_fd(), "/dev/rangefault0", offset, len, at)
    }

    /// Maps `len` bytes of `file` (what `name` opened) from `file_offset` on, placed as `at` says:
    /// the other BAR2 mappings the benchmark compares with (a vfio device, sysfs `resource2_wc`).
    pub fn of_file(
        file: BorrowedFd<'_>,
        name: &str,
        file_offset: u64,
        len: usize,
        at: Placement,
    ) -> Result<Self, ProbeError> {
        let Placement { align, misalign } = at;
        let reserve_len = len + align + misalign;
        // SAFETY: a fresh anonymous PROT_NONE reservation; no existing memory is affected.
        let reserved = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                reserve_len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if reserved == libc::MAP_FAILED {
            return Err(os_error("mmap reservation"));
        }
        let base = reserved as usize;
        let target = base.next_multiple_of(align) + misalign;
        // SAFETY: `target..target+len` lies inside our own reservation, which MAP_FIXED replaces.
        let ptr = unsafe {
            libc::mmap(
                target as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                file_offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            let error = os_error(&format!("mmap {name}"));
            // SAFETY: unmapping our own reservation.
            unsafe { libc::munmap(reserved, reserve_len) };
            return Err(error);
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
            offset: file_offset,
            reserved: (reserved.cast(), reserve_len),
        })
    }

    pub fn va(&self) -> usize {
        self.ptr as usize
    }

    pub fn write64(&self, at: usize, value: u64) {
        assert!(at.is_multiple_of(8) && at + 8 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as `self`.
        unsafe { self.ptr.add(at).cast::<u64>().write_volatile(value) }
    }

    pub fn read64(&self, at: usize) -> u64 {
        assert!(at.is_multiple_of(8) && at + 8 <= self.len);
        // SAFETY: in bounds and aligned (checked); the mapping lives as long as `self`.
        unsafe { self.ptr.add(at).cast::<u64>().read_volatile() }
    }
}

impl Drop for DeviceMapping {
    fn drop(&mut self) {
        // SAFETY: the reservation (which contains the device mapping) is ours alone.
        unsafe { libc::munmap(self.reserved.0.cast(), self.reserved.1) };
    }
}

/// Minor faults of this process so far.
pub fn minor_faults() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt as u64
}
