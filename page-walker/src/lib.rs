//! Host-side x86-64 page-table walker: reads a guest's page tables out of
//! its memory (any vm-memory [`GuestMemory`](vm_memory::GuestMemory):
//! KVM memslots, vfio-user DMA regions) and reports what a VA maps to, or
//! checks that a whole VA range maps a GPA window as expected.
//!
//! Everything is bounded: walks have fixed depth, ranges are capped at
//! [`MAX_WALK_LEN`], each table entry is read once per walk, and malformed
//! tables produce a [`WalkError`] rather than a panic.

mod check;
mod entry;
mod error;
mod memtype;
mod paging;
#[cfg(any(test, feature = "test-util"))]
pub mod testutil;
mod walk;

pub use check::{
    check_range, CheckReport, Expectation, Leaves, Mismatch, MismatchKind, SizePolicy,
    MAX_CHECK_LEN,
};
pub use error::WalkError;
pub use memtype::{pat_memtype, MemType, LINUX_PAT_MSR, RESET_PAT_MSR};
pub use paging::{PageSize, PagingMode, PagingState, TableLevel, MAX_MAXPHYADDR, MIN_MAXPHYADDR};
pub use walk::{translate, Leaf, MAX_WALK_LEN};
