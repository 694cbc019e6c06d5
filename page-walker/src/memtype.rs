//! Memory types and their selection through the PAT (Intel SDM vol. 3A
//! §13.12): a leaf's PAT, PCD and PWT bits form an index into the eight
//! one-byte slots of IA32_PAT, and the slot holds the memory type.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The IA32_PAT value Linux programs on CPUs with full PAT support:
/// `PAT_VALUE(WB, WC, UC_MINUS, UC, WB, WP, UC_MINUS, WT)` in
/// `pat_bp_init()`, arch/x86/mm/pat/memtype.c (checked against 7.2). Slot 1
/// (PWT alone) is WC, which is what `pgprot_writecombine()` selects.
pub const LINUX_PAT_MSR: u64 = 0x0407_0506_0007_0106;

/// The architectural IA32_PAT value after reset, before an OS changes it.
pub const RESET_PAT_MSR: u64 = 0x0007_0406_0007_0406;

/// A memory type as the PAT encodes it; serialized by its short name
/// (`"WC"`), as reports and the SDM write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MemType {
    #[serde(rename = "UC")]
    Uncacheable,
    #[serde(rename = "WC")]
    WriteCombining,
    #[serde(rename = "WT")]
    WriteThrough,
    #[serde(rename = "WP")]
    WriteProtected,
    #[serde(rename = "WB")]
    WriteBack,
    /// UC-: uncacheable, but an MTRR type of WC may override it.
    #[serde(rename = "UC-")]
    UncachedMinus,
}

impl MemType {
    /// Decodes one PAT slot. Encodings 2, 3 and 8..=255 are reserved
    /// (writing them to IA32_PAT faults, so a real guest can't have them).
    pub fn from_pat_encoding(encoding: u8) -> Option<MemType> {
        match encoding {
            0 => Some(MemType::Uncacheable),
            1 => Some(MemType::WriteCombining),
            4 => Some(MemType::WriteThrough),
            5 => Some(MemType::WriteProtected),
            6 => Some(MemType::WriteBack),
            7 => Some(MemType::UncachedMinus),
            _ => None,
        }
    }

    pub fn pat_encoding(self) -> u8 {
        match self {
            MemType::Uncacheable => 0,
            MemType::WriteCombining => 1,
            MemType::WriteThrough => 4,
            MemType::WriteProtected => 5,
            MemType::WriteBack => 6,
            MemType::UncachedMinus => 7,
        }
    }
}

impl fmt::Display for MemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemType::Uncacheable => "UC",
            MemType::WriteCombining => "WC",
            MemType::WriteThrough => "WT",
            MemType::WriteProtected => "WP",
            MemType::WriteBack => "WB",
            MemType::UncachedMinus => "UC-",
        })
    }
}

/// The raw byte in slot `index` (0..=7) of `pat_msr`.
pub fn pat_slot(pat_msr: u64, index: u8) -> u8 {
    pat_msr.to_le_bytes()[usize::from(index & 7)]
}

/// The memory type slot `index` of `pat_msr` selects; `None` if the slot
/// holds a reserved encoding.
pub fn pat_memtype(pat_msr: u64, index: u8) -> Option<MemType> {
    MemType::from_pat_encoding(pat_slot(pat_msr, index))
}

/// What each PAT index means under [`LINUX_PAT_MSR`] (arch/x86/mm/pat/memtype.c), for tests.
#[cfg(test)]
pub(crate) const LINUX_PAT_SLOTS: [MemType; 8] = [
    MemType::WriteBack,
    MemType::WriteCombining,
    MemType::UncachedMinus,
    MemType::Uncacheable,
    MemType::WriteBack,
    MemType::WriteProtected,
    MemType::UncachedMinus,
    MemType::WriteThrough,
];

#[cfg(test)]
mod tests {
    use super::*;
    use MemType::*;

    #[test]
    fn linux_pat_slots() {
        let expected = LINUX_PAT_SLOTS;
        for (index, want) in (0u8..).zip(expected) {
            assert_eq!(
                pat_memtype(LINUX_PAT_MSR, index),
                Some(want),
                "slot {index}"
            );
        }
    }

    #[test]
    fn reset_pat_slots() {
        let expected = [WriteBack, WriteThrough, UncachedMinus, Uncacheable];
        for (index, want) in (0u8..).zip(expected) {
            assert_eq!(pat_memtype(RESET_PAT_MSR, index), Some(want));
            assert_eq!(pat_memtype(RESET_PAT_MSR, index + 4), Some(want));
        }
    }

    #[test]
    fn encodings_round_trip_and_reserved_ones_are_rejected() {
        for encoding in 0..=u8::MAX {
            match MemType::from_pat_encoding(encoding) {
                Some(t) => assert_eq!(t.pat_encoding(), encoding),
                None => assert!(matches!(encoding, 2 | 3 | 8..)),
            }
        }
        assert_eq!(pat_memtype(0x0000_0000_0000_0200, 1), None);
    }
}
