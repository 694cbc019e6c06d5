//! The page walker over arbitrary guest memory: any CR3, paging mode,
//! MAXPHYADDR, PAT and expectation, and up to 64 KiB of guest RAM at GPA 0
//! holding whatever the input says (self-referencing tables, reserved bits,
//! pointers out of RAM).
//!
//! Invariants:
//! - the walk terminates within its bound: it reads at most one entry per
//!   level per 4K page of the range (counted at the guest-memory accesses);
//! - a report is self-consistent: its page count is the range's, present
//!   pages are covered by the leaves it counts, a pass has no mismatch and
//!   the first mismatch lies inside the range;
//! - `translate` of the first page agrees with a one-page check of it.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use vm_memory::bitmap::BS;
use vm_memory::guest_memory::GuestMemorySliceIterator;
use vm_memory::{
    Bytes, GuestAddress, GuestMemory, GuestMemoryMmap, GuestMemoryResult, Permissions,
};

use page_walker::{
    check_range, translate, Expectation, MemType, PageSize, PagingMode, PagingState, SizePolicy,
    MAX_CHECK_LEN,
};

const PAGE: u64 = 4096;
const MAX_RAM: usize = 64 << 10;
/// Longest range one input walks: a valid longer one is shortened to this,
/// so one execution reads at most ~1.3 M entries (the bound itself is
/// `MAX_CHECK_LEN`, 64 GiB, which the unit tests cover).
const MAX_FUZZ_LEN: u64 = 1 << 30;
const FIXED: usize = 43;

/// Guest memory that counts the accesses the walker makes.
struct CountingMemory<'a> {
    inner: &'a GuestMemoryMmap,
    accesses: AtomicU64,
}

impl GuestMemory for CountingMemory<'_> {
    type PhysicalMemory = GuestMemoryMmap;
    type Bitmap = ();

    fn check_range(&self, addr: GuestAddress, count: usize, access: Permissions) -> bool {
        GuestMemory::check_range(self.inner, addr, count, access)
    }

    fn get_slices<'a>(
        &'a self,
        addr: GuestAddress,
        count: usize,
        access: Permissions,
    ) -> GuestMemoryResult<impl GuestMemorySliceIterator<'a, BS<'a, ()>>> {
        self.accesses.fetch_add(1, Ordering::Relaxed);
        GuestMemory::get_slices(self.inner, addr, count, access)
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

fn memtype(selector: u8) -> MemType {
    match selector % 6 {
        0 => MemType::Uncacheable,
        1 => MemType::WriteCombining,
        2 => MemType::WriteThrough,
        3 => MemType::WriteProtected,
        4 => MemType::WriteBack,
        _ => MemType::UncachedMinus,
    }
}

fn size_policy(bits: u8) -> SizePolicy {
    let size = [PageSize::Size4K, PageSize::Size2M, PageSize::Size1G][usize::from(bits >> 2) % 3];
    match bits & 3 {
        0 => SizePolicy::Exactly(size),
        1 => SizePolicy::Largest { max: size },
        2 => SizePolicy::UpTo { max: size },
        _ => SizePolicy::Any,
    }
}

fuzz_target!(|input: &[u8]| {
    if input.len() < FIXED {
        return;
    }
    let flags = input[8];
    let mode = if flags & 1 != 0 {
        PagingMode::FiveLevel
    } else {
        PagingMode::FourLevel
    };
    let paging = PagingState {
        cr3: u64_at(input, 0),
        mode,
        pat_msr: u64_at(input, 10),
        // Out-of-range values too: the walker must refuse them.
        maxphyaddr: input[9],
    };
    let mut len = u64_at(input, 26);
    if len.is_multiple_of(PAGE) && len > MAX_FUZZ_LEN && len <= MAX_CHECK_LEN {
        len = MAX_FUZZ_LEN;
    }
    let expectation = Expectation {
        va_start: u64_at(input, 18),
        len,
        gpa_start: u64_at(input, 34),
        sizes: size_policy(flags >> 1),
        memtype: memtype(input[42]),
        require_present: flags & 0x80 != 0,
    };
    let contents = &input[FIXED..input.len().min(FIXED + MAX_RAM)];
    let ram_size = (contents.len() as u64).div_ceil(PAGE).max(1) * PAGE;
    let ram =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), ram_size as usize)]).expect("guest RAM");
    ram.write_slice(contents, GuestAddress(0))
        .expect("the contents fit");
    let memory = CountingMemory {
        inner: &ram,
        accesses: AtomicU64::new(0),
    };

    let levels = match mode {
        PagingMode::FourLevel => 4,
        PagingMode::FiveLevel => 5,
    };
    let result = check_range(&memory, &paging, &expectation);
    let accesses = memory.accesses.load(Ordering::Relaxed);
    let Ok(report) = result else {
        // An error stops the walk early: still within the bound.
        assert!(accesses <= levels * (len / PAGE).max(1) + levels);
        return;
    };
    let pages = expectation.len / PAGE;
    assert!(
        accesses <= levels * pages,
        "{accesses} guest-memory accesses for {pages} pages"
    );
    assert_eq!(report.pages, pages);
    assert!(report.present <= report.pages);
    let leaves = report.leaves;
    assert!(
        leaves.k4 + leaves.m2 + leaves.g1 <= report.present,
        "every counted leaf maps a present page of the range: {report:?}"
    );
    assert!(
        report.present <= leaves.k4 + 512 * leaves.m2 + (512 * 512) * leaves.g1,
        "present pages are covered by the leaves: {report:?}"
    );
    assert!(report.smaller_pages <= report.present);
    assert_eq!(report.pass, report.first_mismatch.is_none(), "{report:?}");
    assert!(
        report.memtype.is_none() || report.present > 0,
        "a memory type without present pages: {report:?}"
    );
    if let Some(mismatch) = &report.first_mismatch {
        let last = expectation.va_start + (expectation.len - 1);
        assert!(
            (expectation.va_start..=last).contains(&mismatch.va),
            "{mismatch:?} outside the range"
        );
    }
    if expectation.require_present && report.pass {
        assert_eq!(report.present, report.pages);
    }

    // The first page on its own: translate and a one-page check agree.
    let one_page = Expectation {
        len: PAGE,
        ..expectation
    };
    let translated = translate(&ram, &paging, expectation.va_start);
    let single = check_range(&ram, &paging, &one_page);
    match (translated, single) {
        (Ok(leaf), Ok(single)) => {
            assert_eq!(
                leaf.is_some(),
                single.present == 1,
                "{leaf:?} vs {single:?}"
            );
            if let Some(leaf) = leaf {
                assert_eq!(leaf.va, expectation.va_start & !(PAGE - 1));
            }
        }
        (Err(_), Err(_)) => {}
        (translated, single) => {
            panic!("translate {translated:?} but a one-page check {single:?}")
        }
    }
});
