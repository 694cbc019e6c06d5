//! Synthetic guests for unit tests: a small `GuestMemoryMmap` whose first
//! pages hold page tables, and helpers to install and corrupt entries.
//! Other crates' tests get it with the `test-util` feature.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::entry::{PAGE_SIZE, PRESENT};
use crate::paging::{PageSize, PagingMode, PagingState, TableLevel};

pub use crate::entry::{EXECUTE_DISABLE, HUGE_PAT, PCD, PTE_PAT, PWT, USER, WRITABLE};

/// Guest RAM size; anonymous mmap, so untouched pages cost nothing.
pub const RAM_SIZE: u64 = 64 << 20;
/// Where a BAR would be: above RAM, so leaves point outside guest memory
/// just as VRAM mappings do.
pub const BAR_GPA: u64 = 0x80_0000_0000;
/// Leaf bits of a typical user data mapping: RW, U/S and XD.
pub const USER_BITS: u64 = WRITABLE | USER | EXECUTE_DISABLE;
/// Intermediate tables get every permission so leaves decide.
const TABLE_FLAGS: u64 = PRESENT | WRITABLE | USER;

pub struct TestGuest {
    pub mem: GuestMemoryMmap,
    pub mode: PagingMode,
    pub root: u64,
    next_free: u64,
}

impl TestGuest {
    pub fn new(mode: PagingMode) -> Self {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM_SIZE as usize)])
            .expect("allocate test guest memory");
        let mut guest = TestGuest {
            mem,
            mode,
            root: 0,
            // Keep GPA 0 unused so a zero table address stands out.
            next_free: 0x1000,
        };
        guest.root = guest.alloc_table();
        guest
    }

    /// Paging state with Linux's PAT.
    pub fn paging(&self) -> PagingState {
        PagingState::linux(self.root, self.mode)
    }

    /// A zeroed (all not-present) table page.
    pub fn alloc_table(&mut self) -> u64 {
        let table = self.next_free;
        self.next_free += 0x1000;
        assert!(self.next_free <= RAM_SIZE, "test guest out of table pages");
        table
    }

    pub fn read(&self, gpa: u64) -> u64 {
        self.mem.read_obj(GuestAddress(gpa)).expect("read entry")
    }

    pub fn write(&self, gpa: u64, value: u64) {
        self.mem
            .write_obj(value, GuestAddress(gpa))
            .expect("write entry");
    }

    /// GPA of the entry for `va` at `level`, creating missing tables above
    /// it.
    pub fn entry_gpa(&mut self, va: u64, level: TableLevel) -> u64 {
        let mut table = self.root;
        let mut at = self.mode.root_level();
        loop {
            let entry_gpa = table + 8 * at.index_of(va) as u64;
            if at == level {
                return entry_gpa;
            }
            let mut entry = self.read(entry_gpa);
            if entry & PRESENT == 0 {
                entry = self.alloc_table() | TABLE_FLAGS;
                self.write(entry_gpa, entry);
            }
            assert_eq!(entry & PAGE_SIZE, 0, "a leaf is in the way at {at}");
            table = entry & 0x000f_ffff_ffff_f000;
            at = next_level(at);
        }
    }

    /// Installs a present leaf of `size` mapping `va` to `gpa`, with extra
    /// entry bits `flags` (PWT, PTE_PAT/HUGE_PAT, WRITABLE, ...).
    pub fn map(&mut self, va: u64, gpa: u64, size: PageSize, flags: u64) {
        let level = match size {
            PageSize::Size4K => TableLevel::Pt,
            PageSize::Size2M => TableLevel::Pd,
            PageSize::Size1G => TableLevel::Pdpt,
        };
        let ps = if size == PageSize::Size4K {
            0
        } else {
            PAGE_SIZE
        };
        let entry_gpa = self.entry_gpa(va, level);
        self.write(entry_gpa, gpa | flags | ps | PRESENT);
    }

    /// Maps `len` bytes at `va` to `gpa` with 4K leaves.
    pub fn map_4k_range(&mut self, va: u64, gpa: u64, len: u64, flags: u64) {
        for offset in (0..len).step_by(0x1000) {
            self.map(va + offset, gpa + offset, PageSize::Size4K, flags);
        }
    }
}

fn next_level(level: TableLevel) -> TableLevel {
    match level {
        TableLevel::Pml5 => TableLevel::Pml4,
        TableLevel::Pml4 => TableLevel::Pdpt,
        TableLevel::Pdpt => TableLevel::Pd,
        TableLevel::Pd | TableLevel::Pt => TableLevel::Pt,
    }
}
