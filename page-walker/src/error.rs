//! Why a walk or check could not produce an answer. A wrong but well-formed
//! mapping is not an error; it is a [`crate::Mismatch`] in the report.

use crate::paging::{PagingMode, TableLevel};

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("MAXPHYADDR {0} is outside {min}..={max}", min = crate::paging::MIN_MAXPHYADDR, max = crate::paging::MAX_MAXPHYADDR)]
    InvalidMaxPhyAddr(u8),

    #[error("VA {va:#x} is not canonical under {mode:?} paging")]
    NonCanonical { va: u64, mode: PagingMode },

    #[error("invalid range of {len:#x} bytes at VA {va_start:#x}: {reason}")]
    InvalidRange {
        va_start: u64,
        len: u64,
        reason: &'static str,
    },

    #[error(
        "{level} table at GPA {table_gpa:#x} (walking VA {va:#x}) is not readable guest memory"
    )]
    TableOutsideMemory {
        va: u64,
        level: TableLevel,
        table_gpa: u64,
        #[source]
        source: vm_memory::GuestMemoryError,
    },

    #[error(
        "{level} entry {entry:#018x} at GPA {entry_gpa:#x} (walking VA {va:#x}) sets reserved bits {reserved:#x}"
    )]
    ReservedBits {
        va: u64,
        level: TableLevel,
        entry_gpa: u64,
        entry: u64,
        reserved: u64,
    },

    #[error("leaf for VA {va:#x} selects PAT slot {index}, which holds reserved memory type {encoding:#x}")]
    ReservedPatType { va: u64, index: u8, encoding: u8 },
}
