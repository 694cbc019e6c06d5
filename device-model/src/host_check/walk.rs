//! The walk itself: a validated [`CheckRequest`] becomes page-walker's
//! [`Expectation`] and is checked against the page tables in guest RAM.

use page_walker::{check_range, CheckReport, Expectation, MemType, PagingMode, PagingState};
use page_walker::{SizePolicy, WalkError};
use vm_memory::{GuestMemory, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::CheckRequest;

/// Checks `request` against the page tables in `memory`; `Err` means the
/// tables could not be walked (unreadable, malformed), with a message for
/// the report that also says which guest RAM the engine had provided.
pub fn walk(memory: &GuestMemoryMmap, request: &CheckRequest) -> Result<CheckReport, String> {
    walk_tables(memory, request).map_err(|e| format!("{e} (guest RAM: {})", layout(memory)))
}

fn walk_tables<M: GuestMemory + ?Sized>(
    memory: &M,
    request: &CheckRequest,
) -> Result<CheckReport, WalkError> {
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
            max: request.max_leaf,
        },
        // The driver maps VRAM write-combining (pgprot_writecombine).
        memtype: MemType::WriteCombining,
        require_present: request.require_present,
    };
    check_range(memory, &paging, &expectation)
}

/// `start+size` of each region, for error messages.
fn layout(memory: &GuestMemoryMmap) -> String {
    if memory.num_regions() == 0 {
        return "none shared".into();
    }
    memory
        .iter()
        .map(|region| format!("{:#x}+{:#x}", region.start_addr().0, region.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use page_walker::testutil::{TestGuest, PWT, USER, WRITABLE};
    use page_walker::{Leaves, MismatchKind, PageSize};
    use vm_memory::GuestAddress;

    use super::*;
    use crate::host_check::Strategy;

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

    fn request(max_leaf: PageSize) -> CheckRequest {
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
        let outcome = walk(&guest(), &request(PageSize::Size2M)).unwrap();
        assert_eq!(
            outcome,
            CheckReport {
                pass: true,
                pages: 512,
                present: 512,
                leaves: Leaves {
                    k4: 0,
                    m2: 1,
                    g1: 0
                },
                smaller_pages: 0,
                memtype: Some(MemType::WriteCombining),
                first_mismatch: None,
            }
        );
    }

    #[test]
    fn mismatches_come_through_with_their_kind() {
        let ram = guest();
        let too_small = walk(&ram, &request(PageSize::Size4K)).unwrap();
        let m = too_small.first_mismatch.unwrap();
        assert_eq!((m.va, m.kind), (VA, MismatchKind::WrongSize));
        let moved = CheckRequest {
            expected_gpa: BAR + (2 << 20),
            ..request(PageSize::Size2M)
        };
        let m = walk(&ram, &moved).unwrap().first_mismatch.unwrap();
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
        let ram = guest_with_ptes();
        let second = CheckRequest {
            va: VA + (2 << 20),
            offset: 2 << 20,
            expected_gpa: BAR + (2 << 20),
            ..request(PageSize::Size2M)
        };
        for strategy in [Strategy::Range, Strategy::RangeMm] {
            let request = CheckRequest {
                strategy,
                ..second.clone()
            };
            let outcome = walk(&ram, &request).unwrap();
            assert!(outcome.pass, "{:?}", outcome.first_mismatch);
            assert_eq!(outcome.smaller_pages, outcome.pages);
            assert_eq!((outcome.pages, outcome.present), (512, 512));
            assert_eq!(outcome.leaves.k4, 512);
            assert_eq!(outcome.memtype, Some(MemType::WriteCombining));
        }
    }

    #[test]
    fn a_2m_leaf_and_smaller_ptes_mixed_pass_and_a_4k_only_strategy_does_not() {
        let ram = guest_with_ptes();
        let both = CheckRequest {
            len: 4 << 20,
            ..request(PageSize::Size2M)
        };
        let outcome = walk(&ram, &both).unwrap();
        assert!(outcome.pass, "{:?}", outcome.first_mismatch);
        assert_eq!((outcome.pages, outcome.present), (1024, 1024));
        assert_eq!(outcome.smaller_pages, 512);
        assert_eq!(
            outcome.leaves,
            Leaves {
                k4: 512,
                m2: 1,
                g1: 0
            }
        );
        // Strategy `page` over the same tables: the 2M leaf is larger than
        // allowed, so the wrong size; the PTEs are what it expects.
        let page = CheckRequest {
            strategy: Strategy::Page,
            len: 4 << 20,
            ..request(PageSize::Size4K)
        };
        let outcome = walk(&ram, &page).unwrap();
        let m = outcome.first_mismatch.unwrap();
        assert_eq!((m.va, m.kind), (VA, MismatchKind::WrongSize));
        assert_eq!(outcome.smaller_pages, 0);
    }

    #[test]
    fn unreadable_tables_are_walk_errors() {
        let outside = CheckRequest {
            root: 0x4000_0000,
            ..request(PageSize::Size2M)
        };
        let err = walk(&guest(), &outside).unwrap_err();
        assert!(err.contains("not readable"), "{err}");
    }

    #[test]
    fn walk_errors_say_which_ram_was_shared() {
        let request = CheckRequest {
            root: 0x4000_0000,
            len: 0x1000,
            strategy: Strategy::Page,
            ..request(PageSize::Size4K)
        };
        let none = GuestMemoryMmap::default();
        let err = walk(&none, &request).unwrap_err();
        assert!(err.contains("guest RAM: none shared"), "{err}");
        let one_mib = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let err = walk(&one_mib, &request).unwrap_err();
        assert!(err.contains("guest RAM: 0x0+0x100000"), "{err}");
    }
}
