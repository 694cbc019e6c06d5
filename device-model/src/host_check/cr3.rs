//! The CR3 cross-check: is the ROOT the driver wrote the page table the CPU
//! that rang the doorbell is actually using? Engines that can read the
//! vCPU's CR3 (KVM) hand it over through
//! [`super::GuestAccess::doorbell_cpu_state`]; the comparison rule lives
//! here because it is part of what ROOT means in the ABI.

use serde::{Deserialize, Serialize};

/// The bits of CR3 (and ROOT) that name the top-level table: 12..=60.
/// Below are PCID (or PWT/PCD), above the no-flush bit 63 and the LAM bits
/// 61/62, none of which change where the walk starts.
const TABLE_BITS: u64 = 0x1fff_ffff_ffff_f000;
/// Under page-table isolation a process has two top-level tables, the
/// kernel's and the user's, in one 8 KiB pair that differs in bit 12; the
/// CPU runs on either depending on the mode it is in.
const PTI_USER_BIT: u64 = 1 << 12;

/// What the engine said about the CPU that rang the doorbell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cr3Check {
    /// That vCPU's CR3, as the engine read it.
    pub vcpu_cr3: u64,
    /// Whether ROOT names the same table (or its PTI twin).
    pub matches: bool,
}

impl Cr3Check {
    /// Compares the driver's `root` with the vCPU's `cr3`.
    pub fn new(root: u64, cr3: u64) -> Cr3Check {
        Cr3Check {
            vcpu_cr3: cr3,
            matches: root_matches_cr3(root, cr3),
        }
    }
}

/// Whether `root` names the table `cr3` points at, or the other half of its
/// PTI pair.
pub fn root_matches_cr3(root: u64, cr3: u64) -> bool {
    (root ^ cr3) & TABLE_BITS & !PTI_USER_BIT == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const PGD: u64 = 0x0000_0001_2345_6000;

    #[test]
    fn the_same_table_matches_whatever_the_flag_bits() {
        assert!(root_matches_cr3(PGD, PGD));
        // PCID in 0..11, no-flush in 63, LAM in 61/62.
        assert!(root_matches_cr3(PGD, PGD | 0x7ff | 1 << 63));
        assert!(root_matches_cr3(PGD | 0xfff, PGD | 3 << 61));
    }

    #[test]
    fn either_half_of_a_pti_pair_matches() {
        assert!(root_matches_cr3(PGD, PGD | PTI_USER_BIT | 0x80));
        assert!(root_matches_cr3(PGD | PTI_USER_BIT, PGD));
    }

    #[test]
    fn another_table_does_not_match() {
        assert!(!root_matches_cr3(PGD, PGD + 0x2000));
        assert!(!root_matches_cr3(PGD, PGD ^ 1 << 40));
        assert!(!root_matches_cr3(PGD, 0));
        let check = Cr3Check::new(PGD, 0x9000);
        assert_eq!((check.vcpu_cr3, check.matches), (0x9000, false));
    }
}
