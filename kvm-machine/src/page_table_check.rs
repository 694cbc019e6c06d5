//! The engines' half of the host page-table check: answers the device's
//! [`CheckRequest`]s by walking the guest's page tables in guest RAM with
//! page-walker, and translates its report into the device's terms.
//!
//! Lives with the KVM machine, which uses it, and serves `vmm`'s QEMU
//! engine too; each engine's view of guest RAM implements
//! [`GuestPageTables`] on top of [`check_in`].

use device_model::host_check::{
    CheckOutcome, CheckRequest, LeafCounts, LeafSize, Mismatch, MismatchKind, PatMemType,
};
use device_model::GuestPageTables;
use page_walker::{
    check_range, CheckReport, Expectation, MemType, PageSize, PagingMode, PagingState, SizePolicy,
    WalkError,
};
use vm_memory::{GuestMemory, GuestMemoryMmap};

// The device refuses longer requests as bad, so every request it passes on
// is one page-walker accepts.
const _: () = assert!(device_model::host_check::MAX_CHECK_LEN == page_walker::MAX_CHECK_LEN);

/// Checks `request` against the page tables in `memory`.
pub fn check_in<M: GuestMemory + ?Sized>(
    memory: &M,
    request: &CheckRequest,
) -> Result<CheckOutcome, WalkError> {
    let mode = if request.la57 {
        PagingMode::FiveLevel
    } else {
        PagingMode::FourLevel
    };
    let paging = PagingState::new(request.root, mode, request.pat);
    let expectation = Expectation {
        va_start: request.va,
        len: request.len,
        gpa_start: request.expected_gpa,
        // Leaves up to the largest the strategy and alignment allow: the
        // kernel may map with smaller ones (MADV_NOHUGEPAGE, mremap of a
        // PTE-mapped piece), which are correct and counted apart; larger
        // ones are the wrong size.
        sizes: SizePolicy::UpTo {
            max: page_size(request.max_leaf),
        },
        // The driver maps VRAM write-combining (pgprot_writecombine).
        memtype: MemType::WriteCombining,
        require_present: request.require_present,
    };
    check_range(memory, &paging, &expectation).map(outcome)
}

/// Guest RAM that never changes (a KVM VM's memslots).
#[derive(Clone, Debug)]
pub struct FixedGuestRam(pub GuestMemoryMmap);

impl GuestPageTables for FixedGuestRam {
    fn check(&self, request: &CheckRequest) -> Result<CheckOutcome, String> {
        check_in(&self.0, request).map_err(|e| e.to_string())
    }
}

fn page_size(leaf: LeafSize) -> PageSize {
    match leaf {
        LeafSize::Size4K => PageSize::Size4K,
        LeafSize::Size2M => PageSize::Size2M,
        LeafSize::Size1G => PageSize::Size1G,
    }
}

fn outcome(report: CheckReport) -> CheckOutcome {
    CheckOutcome {
        pass: report.pass,
        pages: report.pages,
        present: report.present,
        leaves: LeafCounts {
            k4: report.leaves.k4,
            m2: report.leaves.m2,
            g1: report.leaves.g1,
        },
        smaller_pages: report.smaller_pages,
        memtype: report
            .memtype
            .and_then(|m| PatMemType::from_encoding(m.pat_encoding())),
        first_mismatch: report.first_mismatch.map(|m| Mismatch {
            va: m.va,
            kind: mismatch_kind(m.kind),
            what: m.what,
        }),
    }
}

fn mismatch_kind(kind: page_walker::MismatchKind) -> MismatchKind {
    match kind {
        page_walker::MismatchKind::NotPresent => MismatchKind::NotPresent,
        page_walker::MismatchKind::OutsideRange => MismatchKind::OutsideRange,
        page_walker::MismatchKind::WrongGpa => MismatchKind::WrongGpa,
        page_walker::MismatchKind::WrongSize => MismatchKind::WrongSize,
        page_walker::MismatchKind::WrongMemType => MismatchKind::WrongMemType,
    }
}

#[cfg(test)]
mod tests {
    use device_model::host_check::Strategy;
    use page_walker::testutil::{TestGuest, PWT, USER, WRITABLE};

    use super::*;

    const BAR: u64 = 0xfe_0000_0000;
    const VA: u64 = 0x0000_7f00_0000_0000;
    /// The PML4: page-walker's test guest allocates it first.
    const ROOT: u64 = 0x1000;
    /// Write-combining under Linux's PAT, writable, user.
    const WC_LEAF: u64 = PWT | WRITABLE | USER;

    /// Page tables at [`ROOT`] mapping VA onto BAR with one WC 2M leaf.
    fn tables() -> TestGuest {
        let mut tables = TestGuest::new(PagingMode::FourLevel);
        assert_eq!(tables.root, ROOT);
        tables.map(VA, BAR, PageSize::Size2M, WC_LEAF);
        tables
    }

    fn guest() -> GuestMemoryMmap {
        tables().mem
    }

    fn request(max_leaf: LeafSize) -> CheckRequest {
        CheckRequest {
            root: ROOT,
            va: VA,
            len: 2 << 20,
            offset: 0,
            expected_gpa: BAR,
            pat: page_walker::LINUX_PAT_MSR,
            la57: false,
            require_present: true,
            strategy: Strategy::Range,
            max_leaf,
        }
    }

    #[test]
    fn a_matching_2m_leaf_passes() {
        let outcome = FixedGuestRam(guest())
            .check(&request(LeafSize::Size2M))
            .unwrap();
        assert_eq!(
            outcome,
            CheckOutcome {
                pass: true,
                pages: 512,
                present: 512,
                leaves: LeafCounts {
                    k4: 0,
                    m2: 1,
                    g1: 0
                },
                smaller_pages: 0,
                memtype: Some(PatMemType::WriteCombining),
                first_mismatch: None,
            }
        );
    }

    #[test]
    fn mismatches_come_through_with_their_kind() {
        let ram = FixedGuestRam(guest());
        let too_small = ram.check(&request(LeafSize::Size4K)).unwrap();
        let m = too_small.first_mismatch.unwrap();
        assert_eq!((m.va, m.kind), (VA, MismatchKind::WrongSize));
        let moved = CheckRequest {
            expected_gpa: BAR + (2 << 20),
            ..request(LeafSize::Size2M)
        };
        let m = ram.check(&moved).unwrap().first_mismatch.unwrap();
        assert_eq!(m.kind, MismatchKind::WrongGpa);
    }

    /// [`guest`] plus a second 2 MiB, VA+2M onto BAR+2M, mapped by 512
    /// correct WC 4K PTEs, as after MADV_NOHUGEPAGE or an mremap of a
    /// PTE-mapped piece.
    fn guest_with_ptes() -> GuestMemoryMmap {
        let mut tables = tables();
        tables.map_4k_range(VA + (2 << 20), BAR + (2 << 20), 2 << 20, WC_LEAF);
        tables.mem
    }

    #[test]
    fn correct_4k_ptes_where_2m_fits_pass_as_smaller_pages() {
        let ram = FixedGuestRam(guest_with_ptes());
        let second = CheckRequest {
            va: VA + (2 << 20),
            offset: 2 << 20,
            expected_gpa: BAR + (2 << 20),
            ..request(LeafSize::Size2M)
        };
        for strategy in [Strategy::Range, Strategy::RangeMm] {
            let outcome = ram
                .check(&CheckRequest {
                    strategy,
                    ..second.clone()
                })
                .unwrap();
            assert!(outcome.pass, "{:?}", outcome.first_mismatch);
            assert_eq!(outcome.smaller_pages, outcome.pages);
            assert_eq!((outcome.pages, outcome.present), (512, 512));
            assert_eq!(outcome.leaves.k4, 512);
            assert_eq!(outcome.memtype, Some(PatMemType::WriteCombining));
        }
    }

    #[test]
    fn a_2m_leaf_and_smaller_ptes_mixed_pass_and_a_4k_only_strategy_does_not() {
        let ram = FixedGuestRam(guest_with_ptes());
        let both = CheckRequest {
            len: 4 << 20,
            ..request(LeafSize::Size2M)
        };
        let outcome = ram.check(&both).unwrap();
        assert!(outcome.pass, "{:?}", outcome.first_mismatch);
        assert_eq!((outcome.pages, outcome.present), (1024, 1024));
        assert_eq!(outcome.smaller_pages, 512);
        assert_eq!(
            outcome.leaves,
            LeafCounts {
                k4: 512,
                m2: 1,
                g1: 0
            }
        );
        // Strategy `page` over the same tables: the 2M leaf is larger than
        // allowed, so the wrong size; the PTEs are what it expects.
        let page = CheckRequest {
            strategy: Strategy::Page,
            ..request(LeafSize::Size4K)
        };
        let outcome = ram
            .check(&CheckRequest {
                len: 4 << 20,
                ..page
            })
            .unwrap();
        let m = outcome.first_mismatch.unwrap();
        assert_eq!((m.va, m.kind), (VA, MismatchKind::WrongSize));
        assert_eq!(outcome.smaller_pages, 0);
    }

    #[test]
    fn unreadable_tables_are_walk_errors() {
        let outside = CheckRequest {
            root: 0x4000_0000,
            ..request(LeafSize::Size2M)
        };
        let err = FixedGuestRam(guest()).check(&outside).unwrap_err();
        assert!(err.contains("not readable"), "{err}");
    }

    #[test]
    fn every_leaf_size_and_mismatch_kind_translates() {
        for leaf in [LeafSize::Size4K, LeafSize::Size2M, LeafSize::Size1G] {
            assert_eq!(page_size(leaf).bytes(), leaf.bytes());
        }
        use page_walker::MismatchKind as Walker;
        for (walker, device) in [
            (Walker::NotPresent, MismatchKind::NotPresent),
            (Walker::OutsideRange, MismatchKind::OutsideRange),
            (Walker::WrongGpa, MismatchKind::WrongGpa),
            (Walker::WrongSize, MismatchKind::WrongSize),
            (Walker::WrongMemType, MismatchKind::WrongMemType),
        ] {
            assert_eq!(mismatch_kind(walker), device);
        }
        for memtype in [
            MemType::Uncacheable,
            MemType::WriteCombining,
            MemType::WriteThrough,
            MemType::WriteProtected,
            MemType::WriteBack,
            MemType::UncachedMinus,
        ] {
            let ours = PatMemType::from_encoding(memtype.pat_encoding()).unwrap();
            assert_eq!(ours.encoding(), memtype.pat_encoding());
        }
    }
}
