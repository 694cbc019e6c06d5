//! Guest RAM as a vfio-user client shares it with the device server: each
//! DMA_MAP that carries an fd names a piece of guest-physical memory backed by
//! that fd. [`DmaRam`] keeps one read-only `MAP_SHARED` mapping per piece and
//! publishes them as a vm-memory [`GuestMemoryMmap`] through [`GuestRam`], the
//! handle the device's host page-table check reads guest page tables through
//! (the QEMU engine's [`GuestAccess`]).
//!
//! The client's maps are not trusted to be tidy: a map over existing ones
//! replaces the part it covers, an unmap may cover part of a map, several or
//! none, and maps that cannot be used (no fd, an fd too short or resizable)
//! are reported as errors for the caller to log; nothing here panics on them.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use device_model::GuestAccess;
use vm_memory::{
    FileOffset, GuestAddress, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap, MmapRegion,
};

/// Why a DMA map cannot serve as guest RAM.
#[derive(Debug, thiserror::Error)]
pub enum DmaMapError {
    #[error("it is empty")]
    Empty,
    #[error("it wraps around the address space")]
    Wraps,
    #[error("it is too large for this process")]
    TooLarge,
    #[error("cannot stat its fd: {0}")]
    Stat(#[source] std::io::Error),
    #[error("its fd holds {file_len:#x} bytes, fewer than offset {offset:#x} + size {size:#x}")]
    BeyondFile {
        file_len: u64,
        offset: u64,
        size: u64,
    },
    /// Reading a page the client truncated away would kill this process
    /// with SIGBUS, so only fds sealed against shrinking are mapped (QEMU's
    /// memory-backend-memfd seals by default).
    #[error("its fd is not sealed against shrinking (F_SEAL_SHRINK)")]
    NotSealed,
    #[error("mmap failed: {0}")]
    Mmap(#[source] vm_memory::mmap::MmapRegionError),
    /// Each region costs an mmap and an fd; a client must not exhaust either.
    #[error("guest RAM already has {MAX_REGIONS} regions")]
    TooManyRegions,
}

/// Most DMA regions kept as guest RAM (QEMU uses a handful).
pub const MAX_REGIONS: usize = 1024;

/// A shared, always-consistent view of the guest RAM known so far. Cheap to
/// clone; readers take a [`GuestRam::snapshot`] and walk it without holding
/// any lock, so the server can keep updating the view meanwhile.
#[derive(Clone, Debug, Default)]
pub struct GuestRam {
    current: Arc<Mutex<Arc<GuestMemoryMmap>>>,
}

impl GuestRam {
    /// The guest RAM as of now.
    pub fn snapshot(&self) -> Arc<GuestMemoryMmap> {
        Arc::clone(&self.lock())
    }

    fn publish(&self, memory: GuestMemoryMmap) {
        *self.lock() = Arc::new(memory);
    }

    /// A poisoned lock only means a reader panicked while cloning an Arc; the
    /// value is still whole.
    fn lock(&self) -> MutexGuard<'_, Arc<GuestMemoryMmap>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The QEMU engine's guest RAM, as the vfio-user client has shared it so far.
impl GuestAccess for GuestRam {
    fn memory(&self) -> Arc<GuestMemoryMmap> {
        self.snapshot()
    }
}

/// `first..=last` describes each map: inclusive, so a map may end at the top
/// of the address space without overflowing.
fn range_of(address: u64, size: u64) -> Result<(u64, u64), DmaMapError> {
    if size == 0 {
        return Err(DmaMapError::Empty);
    }
    let last = address.checked_add(size - 1).ok_or(DmaMapError::Wraps)?;
    Ok((address, last))
}

/// The client's DMA maps that carry guest RAM, keyed by guest-physical start.
#[derive(Debug, Default)]
pub struct DmaRam {
    regions: BTreeMap<u64, Arc<GuestRegionMmap>>,
    shared: GuestRam,
}

impl DmaRam {
    pub fn new() -> Self {
        Self::default()
    }

    /// The handle readers use; it follows every later change.
    pub fn guest_ram(&self) -> GuestRam {
        self.shared.clone()
    }

    /// Records `size` bytes of `file` at `file_offset` as guest RAM at
    /// `address`, replacing whatever was mapped there. On error nothing
    /// changes.
    pub fn map(
        &mut self,
        address: u64,
        size: u64,
        file: File,
        file_offset: u64,
    ) -> Result<(), DmaMapError> {
        let (first, last) = range_of(address, size)?;
        if self.regions.len() >= MAX_REGIONS {
            return Err(DmaMapError::TooManyRegions);
        }
        check_backing(&file, file_offset, size)?;
        let region = map_region(FileOffset::new(file, file_offset), address, size)?;
        self.carve(first, last);
        self.regions.insert(address, Arc::new(region));
        self.publish();
        Ok(())
    }

    /// Forgets whatever guest RAM lies in `address..address + size`; returns
    /// how many bytes that was (0 for an unknown range).
    pub fn unmap(&mut self, address: u64, size: u64) -> u64 {
        let Ok((first, last)) = range_of(address, size) else {
            return 0;
        };
        let removed = self.carve(first, last);
        if removed > 0 {
            self.publish();
        }
        removed
    }

    pub fn unmap_all(&mut self) {
        self.regions.clear();
        self.publish();
    }

    /// `(address, size)` of each piece of guest RAM, ascending.
    pub fn layout(&self) -> Vec<(u64, u64)> {
        self.regions
            .values()
            .map(|region| (region.start_addr().0, region.len()))
            .collect()
    }

    /// Removes `first..=last` from the known regions, keeping (remapping)
    /// the parts of partly covered regions outside it. Returns the bytes
    /// removed.
    fn carve(&mut self, first: u64, last: u64) -> u64 {
        let overlapping: Vec<u64> = self
            .regions
            .range(..=last)
            .filter(|(_, region)| region.last_addr().0 >= first)
            .map(|(&start, _)| start)
            .collect();
        let mut removed = 0;
        for start in overlapping {
            let Some(region) = self.regions.remove(&start) else {
                continue;
            };
            let end = region.last_addr().0;
            removed += end.min(last) - start.max(first) + 1;
            if start < first {
                self.keep_piece(&region, start, first - start);
            }
            if end > last {
                self.keep_piece(&region, last + 1, end - last);
            }
        }
        removed
    }

    /// Re-maps `size` bytes of `region` from guest address `address` on, as
    /// a region of its own.
    fn keep_piece(&mut self, region: &GuestRegionMmap, address: u64, size: u64) {
        let Some(file) = region.file_offset() else {
            // Every region here was made from a file; nothing to keep otherwise.
            return;
        };
        let offset = file.start() + (address - region.start_addr().0);
        let piece = FileOffset::from_arc(Arc::clone(file.arc()), offset);
        match map_region(piece, address, size) {
            Ok(piece) => {
                self.regions.insert(address, Arc::new(piece));
            }
            Err(e) => tracing::warn!(
                "guest RAM: dropping {address:#x}+{size:#x}, the remainder of a partly \
                 replaced DMA map: {e}"
            ),
        }
    }

    fn publish(&self) {
        let regions: Vec<_> = self.regions.values().cloned().collect();
        let memory = if regions.is_empty() {
            GuestMemoryMmap::new()
        } else {
            // The map holds sorted, disjoint regions (carve runs before each
            // insert), which is all from_arc_regions asks for.
            match GuestMemoryMmap::from_arc_regions(regions) {
                Ok(memory) => memory,
                Err(e) => {
                    tracing::error!("guest RAM: cannot publish the DMA regions: {e}");
                    return;
                }
            }
        };
        tracing::debug!("guest RAM now: {:x?}", self.layout());
        self.shared.publish(memory);
    }
}

/// Refuses backing files that are too short or could be shrunk under the
/// mapping, either of which would turn a read into SIGBUS.
fn check_backing(file: &File, offset: u64, size: u64) -> Result<(), DmaMapError> {
    // Seals first, size second: once F_SEAL_SHRINK is set the size can only grow, so the size
    // read afterwards stays true (the other order would let the client shrink in between).
    // SAFETY: F_GET_SEALS takes no argument and only reads the fd's seal
    // set; `file` owns the fd for the duration of the call. Files that
    // cannot be sealed answer -1 (EINVAL), which counts as unsealed.
    let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
        return Err(DmaMapError::NotSealed);
    }
    let file_len = file.metadata().map_err(DmaMapError::Stat)?.len();
    if offset.checked_add(size).is_none_or(|end| end > file_len) {
        return Err(DmaMapError::BeyondFile {
            file_len,
            offset,
            size,
        });
    }
    Ok(())
}

/// A read-only shared mapping of `size` bytes of `file`, placed at guest
/// address `address`.
fn map_region(file: FileOffset, address: u64, size: u64) -> Result<GuestRegionMmap, DmaMapError> {
    let len = usize::try_from(size).map_err(|_| DmaMapError::TooLarge)?;
    let mapping = MmapRegion::build(
        Some(file),
        len,
        libc::PROT_READ,
        libc::MAP_SHARED | libc::MAP_NORESERVE,
    )
    .map_err(DmaMapError::Mmap)?;
    // range_of already refused maps that wrap, so this cannot be None.
    GuestRegionMmap::new(mapping, GuestAddress(address)).ok_or(DmaMapError::Wraps)
}

/// A sealed memfd of `len` bytes, as QEMU hands out for guest RAM.
#[cfg(test)]
pub(crate) fn sealed_memfd(len: u64) -> File {
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create reads the NUL-terminated name and returns a new fd
    // or -1; it touches no other memory.
    let fd = unsafe {
        libc::memfd_create(
            c"rangefault-test-ram".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh fd that nothing else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(len).expect("size the memfd");
    // SAFETY: F_ADD_SEALS takes an int of seal bits and changes only the
    // fd's seal set; `file` owns the fd.
    let sealed = unsafe {
        libc::fcntl(
            file.as_raw_fd(),
            libc::F_ADD_SEALS,
            libc::F_SEAL_SHRINK | libc::F_SEAL_GROW,
        )
    };
    assert_eq!(sealed, 0, "seal: {}", std::io::Error::last_os_error());
    file
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use vm_memory::Bytes;

    use super::*;

    const MIB: u64 = 1 << 20;

    /// A 4 MiB memfd whose every 8-byte word holds its own file offset, so
    /// a read at any GPA tells which file offset the GPA maps.
    fn labelled_ram() -> File {
        let file = sealed_memfd(4 * MIB);
        let words: Vec<u8> = (0..4 * MIB / 8)
            .flat_map(|i| (i * 8).to_le_bytes())
            .collect();
        file.write_all_at(&words, 0).expect("fill the memfd");
        file
    }

    /// The file offset `gpa` maps to, or None if it is not guest RAM.
    fn label_at(ram: &GuestRam, gpa: u64) -> Option<u64> {
        ram.snapshot().read_obj::<u64>(GuestAddress(gpa)).ok()
    }

    fn dup(file: &File) -> File {
        file.try_clone().expect("dup")
    }

    #[test]
    fn maps_are_readable_at_their_guest_address_and_offset() {
        let file = labelled_ram();
        let mut dma = DmaRam::new();
        let ram = dma.guest_ram();
        assert_eq!(label_at(&ram, 0), None);
        dma.map(0x1_0000_0000, 2 * MIB, dup(&file), MIB).unwrap();
        dma.map(0, MIB, dup(&file), 0).unwrap();
        assert_eq!(label_at(&ram, 0x10), Some(0x10));
        assert_eq!(label_at(&ram, 0x1_0000_0008), Some(MIB + 8));
        assert_eq!(label_at(&ram, MIB), None, "a hole between the maps");
        assert_eq!(dma.layout(), [(0, MIB), (0x1_0000_0000, 2 * MIB)]);
        // The backing is shared: later writes by the client show through.
        file.write_all_at(&0xabcd_u64.to_le_bytes(), 0x18).unwrap();
        assert_eq!(label_at(&ram, 0x18), Some(0xabcd));
    }

    #[test]
    fn partial_unmaps_keep_the_rest() {
        let file = labelled_ram();
        let mut dma = DmaRam::new();
        let ram = dma.guest_ram();
        dma.map(0, 4 * MIB, dup(&file), 0).unwrap();
        // A hole in the middle leaves two pieces with their original offsets.
        assert_eq!(dma.unmap(MIB, MIB), MIB);
        assert_eq!(dma.layout(), [(0, MIB), (2 * MIB, 2 * MIB)]);
        assert_eq!(label_at(&ram, MIB - 8), Some(MIB - 8));
        assert_eq!(label_at(&ram, MIB), None);
        assert_eq!(label_at(&ram, 3 * MIB), Some(3 * MIB));
        // An unmap spanning a hole and parts of both pieces.
        assert_eq!(dma.unmap(MIB / 2, 2 * MIB), MIB);
        assert_eq!(dma.layout(), [(0, MIB / 2), (5 * MIB / 2, 3 * MIB / 2)]);
        assert_eq!(label_at(&ram, 5 * MIB / 2), Some(5 * MIB / 2));
        // Unknown, empty and wrapping unmaps change nothing.
        assert_eq!(dma.unmap(0x10_0000_0000, MIB), 0);
        assert_eq!(dma.unmap(0, 0), 0);
        assert_eq!(dma.unmap(u64::MAX, 2), 0);
        assert_eq!(dma.layout().len(), 2);
        dma.unmap_all();
        assert!(dma.layout().is_empty());
        assert_eq!(label_at(&ram, 0), None);
    }

    #[test]
    fn an_overlapping_map_replaces_what_it_covers() {
        let file = labelled_ram();
        let mut dma = DmaRam::new();
        let ram = dma.guest_ram();
        dma.map(0, 2 * MIB, dup(&file), 0).unwrap();
        dma.map(MIB, 2 * MIB, dup(&file), 2 * MIB).unwrap();
        assert_eq!(dma.layout(), [(0, MIB), (MIB, 2 * MIB)]);
        assert_eq!(label_at(&ram, 8), Some(8));
        assert_eq!(label_at(&ram, MIB), Some(2 * MIB));
        // The same map again is a no-op in effect.
        dma.map(MIB, 2 * MIB, dup(&file), 2 * MIB).unwrap();
        assert_eq!(dma.layout(), [(0, MIB), (MIB, 2 * MIB)]);
    }

    #[test]
    fn unusable_maps_are_refused_and_change_nothing() {
        let file = labelled_ram();
        let mut dma = DmaRam::new();
        dma.map(0, MIB, dup(&file), 0).unwrap();
        let bad = [
            (0, 0, 0, "empty"),
            (u64::MAX - 0xfff, 0x2000, 0, "wraps"),
            (0, 4 * MIB, MIB, "fewer than"),
            (0, MIB, u64::MAX - 0xfff, "fewer than"),
            (0, MIB, 0x10, "mmap failed"), // unaligned file offset
        ];
        for (address, size, offset, why) in bad {
            let err = dma.map(address, size, dup(&file), offset).unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
            assert_eq!(dma.layout(), [(0, MIB)]);
        }
        // A plain temporary file can shrink under the mapping: refused.
        let plain = tempfile::tempfile().unwrap();
        plain.set_len(MIB).unwrap();
        let err = dma.map(MIB, MIB, plain, 0).unwrap_err();
        assert!(matches!(err, DmaMapError::NotSealed), "{err}");
    }

    #[test]
    fn a_snapshot_outlives_later_changes() {
        let file = labelled_ram();
        let mut dma = DmaRam::new();
        dma.map(0, MIB, dup(&file), 0).unwrap();
        let before = dma.guest_ram().snapshot();
        dma.unmap_all();
        assert_eq!(before.read_obj::<u64>(GuestAddress(8)).unwrap(), 8);
        assert_eq!(label_at(&dma.guest_ram(), 8), None);
    }
}
