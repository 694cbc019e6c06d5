//! The guest CPU state a walk starts from, and the fixed geometry of x86-64
//! paging: which table levels exist, how much VA each entry covers, which
//! leaf sizes exist and which VAs are canonical.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::memtype::LINUX_PAT_MSR;

/// CR4.LA57: whether the guest walks four or five levels of tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PagingMode {
    /// 48-bit VAs, root is a PML4.
    FourLevel,
    /// 57-bit VAs (LA57), root is a PML5.
    FiveLevel,
}

impl PagingMode {
    /// The level of the table CR3 points at.
    pub fn root_level(self) -> TableLevel {
        match self {
            PagingMode::FourLevel => TableLevel::Pml4,
            PagingMode::FiveLevel => TableLevel::Pml5,
        }
    }

    /// Number of VA bits that are translated; the bits above must copy the
    /// top one (canonical form).
    pub fn va_bits(self) -> u32 {
        match self {
            PagingMode::FourLevel => 48,
            PagingMode::FiveLevel => 57,
        }
    }

    /// Whether `va` is canonical in this mode.
    pub fn is_canonical(self, va: u64) -> bool {
        let unused = 64 - self.va_bits();
        (((va << unused) as i64) >> unused) as u64 == va
    }
}

/// The guest's paging registers: everything besides guest memory that a
/// translation depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagingState {
    /// CR3 as the guest loaded it. Only bits 12..MAXPHYADDR name the root
    /// table; the rest (PCID or PWT/PCD in 11:0, the no-flush bit 63, the
    /// LAM bits 61/62) don't change where the walk starts, so they are
    /// ignored.
    pub cr3: u64,
    pub mode: PagingMode,
    /// IA32_PAT (MSR 0x277): turns an entry's PAT/PCD/PWT bits into a
    /// memory type.
    pub pat_msr: u64,
    /// `CPUID.80000008H:EAX[7:0]`. Address bits from here up to 51 are
    /// reserved in every entry. Valid range:
    /// [`MIN_MAXPHYADDR`]..=[`MAX_MAXPHYADDR`].
    pub maxphyaddr: u8,
}

/// Smallest MAXPHYADDR a guest can be given (QEMU's lower bound for
/// `phys-bits`).
pub const MIN_MAXPHYADDR: u8 = 32;
/// Largest MAXPHYADDR the paging-entry format can express.
pub const MAX_MAXPHYADDR: u8 = 52;

impl PagingState {
    /// A guest with the architectural maximum MAXPHYADDR (so no address bit
    /// counts as reserved) and the given CR3, mode and PAT.
    pub fn new(cr3: u64, mode: PagingMode, pat_msr: u64) -> Self {
        PagingState {
            cr3,
            mode,
            pat_msr,
            maxphyaddr: MAX_MAXPHYADDR,
        }
    }

    /// [`PagingState::new`] with the PAT that Linux programs on CPUs with
    /// full PAT support ([`LINUX_PAT_MSR`]).
    pub fn linux(cr3: u64, mode: PagingMode) -> Self {
        Self::new(cr3, mode, LINUX_PAT_MSR)
    }

    /// Mask of the bits of an entry or CR3 that can hold a physical address.
    pub(crate) fn phys_addr_mask(&self) -> u64 {
        (1u64 << self.maxphyaddr) - 1
    }

    /// GPA of the root table.
    pub(crate) fn root_table(&self) -> u64 {
        self.cr3 & self.phys_addr_mask() & !0xfff
    }
}

/// A paging-structure level, named as in the Intel SDM. Linux calls them
/// pgd (PML5 or PML4), p4d, pud (PDPT), pmd (PD) and pte (PT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TableLevel {
    Pml5,
    Pml4,
    Pdpt,
    Pd,
    Pt,
}

impl TableLevel {
    /// log2 of the VA span one entry of a table at this level covers.
    pub fn entry_shift(self) -> u32 {
        match self {
            TableLevel::Pml5 => 48,
            TableLevel::Pml4 => 39,
            TableLevel::Pdpt => 30,
            TableLevel::Pd => 21,
            TableLevel::Pt => 12,
        }
    }

    /// Bytes of VA one entry covers.
    pub fn entry_span(self) -> u64 {
        1 << self.entry_shift()
    }

    /// Index of the entry that translates `va` in a table of this level.
    pub fn index_of(self, va: u64) -> usize {
        ((va >> self.entry_shift()) & 0x1ff) as usize
    }
}

impl fmt::Display for TableLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TableLevel::Pml5 => "PML5",
            TableLevel::Pml4 => "PML4",
            TableLevel::Pdpt => "PDPT",
            TableLevel::Pd => "PD",
            TableLevel::Pt => "PT",
        })
    }
}

/// Size of the page a leaf entry maps: a PTE (4K), a PDE with PS (2M, a
/// Linux PMD leaf) or a PDPTE with PS (1G, a Linux PUD leaf).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PageSize {
    #[serde(rename = "4K")]
    Size4K,
    #[serde(rename = "2M")]
    Size2M,
    #[serde(rename = "1G")]
    Size1G,
}

impl PageSize {
    /// Largest first, for "the biggest leaf that fits" searches.
    pub const DESCENDING: [PageSize; 3] = [PageSize::Size1G, PageSize::Size2M, PageSize::Size4K];

    pub fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }

    pub fn bytes(self) -> u64 {
        1 << self.shift()
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Size4K => "4K",
            PageSize::Size2M => "2M",
            PageSize::Size1G => "1G",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let four = PagingMode::FourLevel;
        assert!(four.is_canonical(0x0000_7fff_ffff_f000));
        assert!(four.is_canonical(0xffff_8000_0000_0000));
        assert!(!four.is_canonical(0x0000_8000_0000_0000));
        assert!(!four.is_canonical(0x00ff_0000_0000_0000));
        let five = PagingMode::FiveLevel;
        assert!(five.is_canonical(0x00ff_ffff_ffff_f000));
        assert!(five.is_canonical(0xff00_0000_0000_0000));
        assert!(!five.is_canonical(0x0100_0000_0000_0000));
    }

    #[test]
    fn root_table_ignores_pcid_noflush_and_lam_bits() {
        let state = PagingState::new(
            0x8000_0000_0012_3000 | 0x6000_0000_0000_0000 | 0xabc,
            PagingMode::FourLevel,
            0,
        );
        let state = PagingState {
            maxphyaddr: 46,
            ..state
        };
        assert_eq!(state.root_table(), 0x12_3000);
    }

    #[test]
    fn indices_per_level() {
        let va = 0x0000_7f12_3456_7000;
        assert_eq!(TableLevel::Pml4.index_of(va), 0xfe);
        assert_eq!(TableLevel::Pdpt.index_of(va), 0x48);
        assert_eq!(TableLevel::Pd.index_of(va), 0x1a2);
        assert_eq!(TableLevel::Pt.index_of(va), 0x167);
        // A 57-bit VA uses bits 56..48 for the PML5 index.
        assert_eq!(TableLevel::Pml5.index_of(0x00ab_0000_0000_0000), 0xab);
    }
}
