//! A shared mapping of a file (a sysfs BAR resource or the driver's char
//! device), with volatile accessors: the memory is a device's, so every access
//! must really happen, in order, with the width asked for.

use std::fs::OpenOptions;
use std::path::Path;
use std::ptr::NonNull;

use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use crate::ProbeError;

pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `path` at file offset `offset`, read-write, shared.
    pub fn open(path: &Path, offset: u64, len: usize) -> Result<Self, ProbeError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| ProbeError::io(path, e))?;
        // SAFETY: we ask the kernel for a fresh mapping (no address hint), so
        // no existing Rust object is aliased; the result is checked below.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &file,
                offset,
            )
        }
        .map_err(|e| ProbeError::io(path, e.into()))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(ProbeError::NullMapping)?;
        Ok(Self { ptr, len })
    }

    fn check(&self, offset: usize, width: usize) {
        assert!(
            offset.is_multiple_of(width) && offset + width <= self.len,
            "access at {offset:#x} (width {width}) outside mapping of {:#x}",
            self.len
        );
    }

    pub fn read32(&self, offset: usize) -> u32 {
        self.check(offset, 4);
        // SAFETY: `check` keeps the aligned access inside the live mapping.
        unsafe { self.ptr.as_ptr().add(offset).cast::<u32>().read_volatile() }
    }

    pub fn write32(&self, offset: usize, value: u32) {
        self.check(offset, 4);
        // SAFETY: `check` keeps the aligned access inside the live mapping.
        unsafe {
            self.ptr
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value)
        }
    }

    pub fn read64(&self, offset: usize) -> u64 {
        self.check(offset, 8);
        // SAFETY: `check` keeps the aligned access inside the live mapping.
        unsafe { self.ptr.as_ptr().add(offset).cast::<u64>().read_volatile() }
    }

    pub fn write64(&self, offset: usize, value: u64) {
        self.check(offset, 8);
        // SAFETY: `check` keeps the aligned access inside the live mapping.
        unsafe {
            self.ptr
                .as_ptr()
                .add(offset)
                .cast::<u64>()
                .write_volatile(value)
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe the mapping created in `open`, and no
        // reference into it outlives `self`.
        let _ = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
