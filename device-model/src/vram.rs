//! VRAM backing store: a memfd, so engines can hand the same pages to QEMU or
//! map them into a KVM memslot, plus a shared mapping for the device's own
//! accesses (self-test, host tools).

use std::ffi::c_void;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::{self, NonNull};

use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};

use crate::DeviceError;

/// memfd-backed VRAM, mapped `MAP_SHARED` into this process.
pub struct Vram {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    size: u64,
}

// SAFETY: `Vram` owns its mapping and fd; the pointer is only used for raw
// byte copies (no references into the mapping are ever created), which are
// sound from any thread. The guest may write the same pages concurrently no
// matter what this process does, so there is no extra invariant to protect.
unsafe impl Send for Vram {}
// SAFETY: as for `Send`: `&Vram` only allows raw byte copies in and out of
// the mapping, never references to its contents.
unsafe impl Sync for Vram {}

impl Vram {
    /// Creates `size` bytes of zeroed VRAM. The memfd is sparse, so pages
    /// cost memory only once touched.
    pub fn new(size: u64) -> Result<Self, DeviceError> {
        if size == 0 {
            return Err(DeviceError::VramSize(size));
        }
        let len = usize::try_from(size).map_err(|_| DeviceError::VramSize(size))?;
        let fd = memfd_create(
            "rangefault-vram",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )
        .map_err(|e| DeviceError::Memfd(e.into()))?;
        ftruncate(&fd, size).map_err(|e| DeviceError::Truncate(e.into()))?;
        // The fd is handed to QEMU (and, in principle, any client): sealed, nobody can shrink the
        // file under our mapping (a later access would SIGBUS the whole VMM) or grow it.
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)
            .map_err(|e| DeviceError::Memfd(e.into()))?;
        // SAFETY: a fresh mapping (null hint, no MAP_FIXED) cannot alias any
        // existing Rust object; `fd` is a valid memfd of exactly `len` bytes.
        let raw = unsafe {
            mmap(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .map_err(|e| DeviceError::Mmap(e.into()))?;
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(DeviceError::VramSize(size))?;
        Ok(Self { fd, ptr, size })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The backing memfd, for engines that share VRAM with QEMU or a memslot.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Copies VRAM at `offset` into `buf`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let start = self.check(offset, buf.len())?;
        // SAFETY: `check` proved `start..start + buf.len()` lies inside the
        // live mapping (and the sealed memfd cannot shrink under it), and
        // `buf` is a distinct Rust allocation, so the
        // ranges do not overlap. Bytes have no invalid values, so a
        // concurrent guest write can at worst tear the data, not break Rust.
        unsafe {
            ptr::copy_nonoverlapping(self.ptr.as_ptr().add(start), buf.as_mut_ptr(), buf.len());
        }
        Ok(())
    }

    /// Copies `buf` into VRAM at `offset`.
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let start = self.check(offset, buf.len())?;
        // SAFETY: as in `read_at`: in-bounds, non-overlapping, plain bytes;
        // the mapping is writable and never borrowed as a Rust reference, so
        // writing through `&self` aliases nothing.
        unsafe {
            ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.as_ptr().add(start), buf.len());
        }
        Ok(())
    }

    /// Bounds check that cannot overflow; returns the start as an index.
    fn check(&self, offset: u64, len: usize) -> Result<usize, DeviceError> {
        let out_of_bounds = DeviceError::OutOfBounds {
            offset,
            len: len as u64,
            size: self.size,
        };
        match offset.checked_add(len as u64) {
            // `size` fits in usize (checked in `new`), so `offset` does too.
            Some(end) if end <= self.size => Ok(offset as usize),
            _ => Err(out_of_bounds),
        }
    }
}

impl Drop for Vram {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`size` describe the mapping made in `new`, which is
        // unmapped only here; no references into it can outlive `self`.
        if let Err(e) = unsafe { munmap(self.ptr.as_ptr().cast::<c_void>(), self.size as usize) } {
            tracing::warn!(error = %e, "rangefault: failed to unmap VRAM");
        }
    }
}

impl fmt::Debug for Vram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vram")
            .field("fd", &self.fd)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_is_sealed_against_resizing() {
        let vram = Vram::new(64 << 20).unwrap();
        let seals = rustix::fs::fcntl_get_seals(vram.fd()).unwrap();
        assert!(seals.contains(SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL));
        // Whoever holds the fd (QEMU) cannot shrink it under the VMM's mapping.
        assert!(rustix::fs::ftruncate(vram.fd(), 4096).is_err());
        assert_eq!(rustix::fs::fstat(vram.fd()).unwrap().st_size, 64 << 20);
    }

    const SIZE: u64 = 64 << 20;

    #[test]
    fn starts_zeroed_and_round_trips() {
        let v = Vram::new(SIZE).unwrap();
        assert_eq!(v.size(), SIZE);
        let mut buf = [0xaau8; 16];
        v.read_at(SIZE - 16, &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
        v.write_at(12345, b"rangefault").unwrap();
        let mut back = [0u8; 10];
        v.read_at(12345, &mut back).unwrap();
        assert_eq!(&back, b"rangefault");
    }

    #[test]
    fn fd_sees_the_same_bytes() {
        let v = Vram::new(SIZE).unwrap();
        v.write_at(4096, b"shared").unwrap();
        let mut buf = [0u8; 6];
        rustix::io::pread(v.fd(), &mut buf, 4096).unwrap();
        assert_eq!(&buf, b"shared");
        assert_eq!(rustix::fs::fstat(v.fd()).unwrap().st_size as u64, SIZE);
    }

    #[test]
    fn bounds_are_checked_without_panicking() {
        let v = Vram::new(SIZE).unwrap();
        let mut buf = [0u8; 8];
        // Exactly at the end is fine for empty accesses only.
        v.read_at(SIZE, &mut []).unwrap();
        v.read_at(SIZE - 8, &mut buf).unwrap();
        for offset in [SIZE - 7, SIZE, SIZE + 1, u64::MAX, u64::MAX - 7] {
            assert!(matches!(
                v.read_at(offset, &mut buf),
                Err(DeviceError::OutOfBounds { .. })
            ));
            assert!(v.write_at(offset, &buf).is_err());
        }
        assert!(v.read_at(u64::MAX, &mut []).is_err());
        let err = v.write_at(u64::MAX, &buf).unwrap_err();
        assert!(err.to_string().contains("out of bounds"), "{err}");
    }

    #[test]
    fn zero_size_is_rejected() {
        assert!(matches!(Vram::new(0), Err(DeviceError::VramSize(0))));
    }
}
