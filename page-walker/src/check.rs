//! The range check: does the guest map a VA range (a VMA) linearly onto a
//! GPA window (its slice of BAR2), with the expected leaf sizes and memory
//! type, and nothing beyond the range?

use serde::{Deserialize, Serialize};
use vm_memory::GuestMemory;

use crate::error::WalkError;
use crate::memtype::MemType;
use crate::paging::{PageSize, PagingState};
use crate::walk::{walk_range, Leaf, Span, MAX_WALK_LEN};

/// Longest range [`check_range`] accepts.
pub const MAX_CHECK_LEN: u64 = MAX_WALK_LEN;

const PAGE_4K: u64 = 4096;

/// Which leaf sizes a range is expected to be mapped with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SizePolicy {
    /// Every leaf has this size.
    Exactly(PageSize),
    /// The largest leaf that can map each page, up to `max`: size S where
    /// the S-aligned block around the page lies inside the range and VA
    /// and GPA are equally aligned modulo S, smaller sizes elsewhere. With
    /// `max: Size2M` this is "2M leaves where VA and GPA are 2M-aligned and
    /// the window allows, 4K elsewhere".
    Largest { max: PageSize },
    /// What the kernel really allows: any leaf up to `max` that also fits
    /// (its block inside the range, VA and GPA equally aligned). A leaf
    /// smaller than the one [`SizePolicy::Largest`] would expect is
    /// correct, not a mismatch (Linux splits or declines huge entries:
    /// `MADV_NOHUGEPAGE`, `mremap` of a PTE-mapped piece, a PMD fallback);
    /// the pages it maps are counted in [`CheckReport::smaller_pages`]. A
    /// leaf larger than `max` is still [`MismatchKind::WrongSize`].
    UpTo { max: PageSize },
    /// Leaf sizes are not checked.
    Any,
}

/// What a range should look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    /// Start of the range; 4K-aligned.
    pub va_start: u64,
    /// Length in bytes; a non-zero multiple of 4K, at most [`MAX_CHECK_LEN`].
    pub len: u64,
    /// GPA `va_start` must map to (BAR2 base + offset); 4K-aligned. Page
    /// `va` must map `gpa_start + (va - va_start)`.
    pub gpa_start: u64,
    pub sizes: SizePolicy,
    /// Memory type every present page must have (WC for VRAM).
    pub memtype: MemType,
    /// Whether a not-present page is a mismatch. Off for lazily faulted
    /// mappings, where holes are normal.
    pub require_present: bool,
}

impl Expectation {
    /// Last VA of the range (inclusive).
    fn va_last(&self) -> u64 {
        self.va_start + (self.len - 1)
    }

    /// The GPA page `va` should map.
    fn gpa_of(&self, va: u64) -> u64 {
        self.gpa_start + (va - self.va_start)
    }

    /// The largest leaf the policy allows at `va` (the one it expects,
    /// unless it is [`SizePolicy::UpTo`]); `None` for any.
    fn size_at(&self, va: u64) -> Option<PageSize> {
        match self.sizes {
            SizePolicy::Exactly(size) => Some(size),
            SizePolicy::Any => None,
            SizePolicy::Largest { max } | SizePolicy::UpTo { max } => PageSize::DESCENDING
                .into_iter()
                .filter(|&size| size <= max)
                .find(|&size| {
                    let mask = size.bytes() - 1;
                    let block = va & !mask;
                    (self.va_start ^ self.gpa_start) & mask == 0
                        && block >= self.va_start
                        && block + mask <= self.va_last()
                })
                .or(Some(PageSize::Size4K)),
        }
    }

    fn validate(&self) -> Result<(), WalkError> {
        let reason = if self.len == 0 {
            Some("empty")
        } else if !(self.va_start | self.len | self.gpa_start).is_multiple_of(PAGE_4K) {
            Some("VA, length and GPA must be 4K-aligned")
        } else if self.len > MAX_CHECK_LEN {
            Some("longer than MAX_CHECK_LEN")
        } else if self.va_start.checked_add(self.len - 1).is_none() {
            Some("VA range wraps around")
        } else if self.gpa_start.checked_add(self.len - 1).is_none() {
            Some("GPA window wraps around")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(WalkError::InvalidRange {
                va_start: self.va_start,
                len: self.len,
                reason,
            }),
            None => Ok(()),
        }
    }
}

/// Leaf entries that map some of the range, each counted once however many
/// of its 4K pages the range covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaves {
    pub k4: u64,
    pub m2: u64,
    pub g1: u64,
}

impl Leaves {
    fn count(&mut self, size: PageSize) {
        match size {
            PageSize::Size4K => self.k4 += 1,
            PageSize::Size2M => self.m2 += 1,
            PageSize::Size1G => self.g1 += 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// A page is not present but the expectation requires it.
    NotPresent,
    /// A huge leaf maps VAs outside the range too.
    OutsideRange,
    WrongGpa,
    WrongSize,
    WrongMemType,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// First VA in the range the offending entry covers.
    pub va: u64,
    pub kind: MismatchKind,
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// No mismatch.
    pub pass: bool,
    /// 4K pages in the range.
    pub pages: u64,
    /// 4K pages in the range that are mapped.
    pub present: u64,
    pub leaves: Leaves,
    /// Present pages mapped by a leaf that passed every check but is
    /// smaller than the largest leaf that could map them. Only
    /// [`SizePolicy::UpTo`] accepts such leaves (the others call them
    /// [`MismatchKind::WrongSize`]), so it is 0 under every other policy.
    pub smaller_pages: u64,
    /// The memory type of every present page, if they all share one.
    pub memtype: Option<MemType>,
    /// The lowest-VA mismatch. Counting goes on past it, so the other fields
    /// describe the whole range.
    pub first_mismatch: Option<Mismatch>,
}

/// Walks `expectation`'s range and reports how the guest maps it. A
/// mapping that differs from the expectation is a failed report; malformed
/// or unreadable tables and invalid expectations are errors.
pub fn check_range<M: GuestMemory + ?Sized>(
    mem: &M,
    paging: &PagingState,
    expectation: &Expectation,
) -> Result<CheckReport, WalkError> {
    expectation.validate()?;
    let mut tally = Tally::new(expectation);
    walk_range(
        mem,
        paging,
        expectation.va_start,
        expectation.va_last(),
        |span| tally.record(span),
    )?;
    Ok(tally.into_report())
}

/// How a correct leaf's size compares with the largest the policy allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// The largest (or sizes are not checked).
    Largest,
    /// Smaller, which [`SizePolicy::UpTo`] accepts.
    Smaller,
}

/// Memory types seen so far.
#[derive(Clone, Copy)]
enum SeenMemTypes {
    None,
    Uniform(MemType),
    Mixed,
}

struct Tally<'a> {
    expectation: &'a Expectation,
    pages: u64,
    present: u64,
    leaves: Leaves,
    smaller_pages: u64,
    memtypes: SeenMemTypes,
    first_mismatch: Option<Mismatch>,
}

impl<'a> Tally<'a> {
    fn new(expectation: &'a Expectation) -> Self {
        Tally {
            expectation,
            pages: 0,
            present: 0,
            leaves: Leaves::default(),
            smaller_pages: 0,
            memtypes: SeenMemTypes::None,
            first_mismatch: None,
        }
    }

    fn record(&mut self, span: Span) {
        // The range is 4K-aligned and entries cover 4K multiples, so spans
        // are whole pages.
        let pages = (span.last - span.first) / PAGE_4K + 1;
        self.pages += pages;
        let Some(leaf) = span.leaf else {
            if self.expectation.require_present {
                let what = format!("{pages} page(s) from VA {:#x} not present", span.first);
                self.mismatch(span.first, MismatchKind::NotPresent, what);
            }
            return;
        };
        self.present += pages;
        self.leaves.count(leaf.size);
        self.memtypes = match self.memtypes {
            SeenMemTypes::None => SeenMemTypes::Uniform(leaf.memtype),
            SeenMemTypes::Uniform(seen) if seen == leaf.memtype => self.memtypes,
            _ => SeenMemTypes::Mixed,
        };
        match self.judge(&leaf) {
            Ok(Fit::Largest) => {}
            Ok(Fit::Smaller) => self.smaller_pages += pages,
            Err((kind, what)) => self.mismatch(span.first, kind, what),
        }
    }

    /// Whether `leaf` (seen at its first page in the range) is correct, or
    /// the first way it differs from the expectation.
    fn judge(&self, leaf: &Leaf) -> Result<Fit, (MismatchKind, String)> {
        let exp = self.expectation;
        if leaf.va_base() < exp.va_start || leaf.va_last() > exp.va_last() {
            return Err((
                MismatchKind::OutsideRange,
                format!(
                    "{} leaf VA {:#x}..={:#x} extends outside the range {:#x}..={:#x}",
                    leaf.size,
                    leaf.va_base(),
                    leaf.va_last(),
                    exp.va_start,
                    exp.va_last()
                ),
            ));
        }
        // A leaf maps linearly, so its first page decides for all of them.
        let want_gpa = exp.gpa_of(leaf.va);
        if leaf.gpa != want_gpa {
            return Err((
                MismatchKind::WrongGpa,
                format!("maps GPA {:#x}, expected {want_gpa:#x}", leaf.gpa),
            ));
        }
        let fit = match (exp.size_at(leaf.va), exp.sizes) {
            (None, _) => Fit::Largest,
            (Some(largest), _) if leaf.size == largest => Fit::Largest,
            (Some(largest), SizePolicy::UpTo { .. }) if leaf.size < largest => Fit::Smaller,
            (Some(largest), SizePolicy::UpTo { .. }) => {
                return Err((
                    MismatchKind::WrongSize,
                    format!(
                        "{} leaf where at most a {largest} leaf is allowed",
                        leaf.size
                    ),
                ));
            }
            (Some(want), _) => {
                return Err((
                    MismatchKind::WrongSize,
                    format!("{} leaf where a {want} leaf is expected", leaf.size),
                ));
            }
        };
        if leaf.memtype != exp.memtype {
            return Err((
                MismatchKind::WrongMemType,
                format!(
                    "memory type {} (PAT slot {}), expected {}",
                    leaf.memtype, leaf.pat_index, exp.memtype
                ),
            ));
        }
        Ok(fit)
    }

    fn mismatch(&mut self, va: u64, kind: MismatchKind, what: String) {
        // Spans arrive in VA order, so the first one recorded is the lowest.
        self.first_mismatch
            .get_or_insert(Mismatch { va, kind, what });
    }

    fn into_report(self) -> CheckReport {
        CheckReport {
            pass: self.first_mismatch.is_none(),
            pages: self.pages,
            present: self.present,
            leaves: self.leaves,
            smaller_pages: self.smaller_pages,
            memtype: match self.memtypes {
                SeenMemTypes::Uniform(memtype) => Some(memtype),
                SeenMemTypes::None | SeenMemTypes::Mixed => None,
            },
            first_mismatch: self.first_mismatch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::PagingMode::{FiveLevel, FourLevel};
    use crate::testutil::*;
    use MismatchKind::*;
    use PageSize::*;

    /// 2M-aligned user VA, as a huge-page-aligned VMA would be.
    const VA: u64 = 0x0000_7f00_0020_0000;
    const MIB: u64 = 1 << 20;

    fn wc(va_start: u64, len: u64, gpa_start: u64, sizes: SizePolicy) -> Expectation {
        Expectation {
            va_start,
            len,
            gpa_start,
            sizes,
            memtype: MemType::WriteCombining,
            require_present: false,
        }
    }

    fn check(g: &TestGuest, exp: &Expectation) -> CheckReport {
        check_range(&g.mem, &g.paging(), exp).unwrap()
    }

    #[test]
    fn all_4k_range_passes() {
        let mut g = TestGuest::new(FourLevel);
        g.map_4k_range(VA, BAR_GPA, 64 * 0x1000, PWT | USER_BITS);
        let exp = Expectation {
            require_present: true,
            ..wc(VA, 64 * 0x1000, BAR_GPA, SizePolicy::Exactly(Size4K))
        };
        let report = check(&g, &exp);
        assert_eq!(
            report,
            CheckReport {
                pass: true,
                pages: 64,
                present: 64,
                leaves: Leaves {
                    k4: 64,
                    m2: 0,
                    g1: 0
                },
                smaller_pages: 0,
                memtype: Some(MemType::WriteCombining),
                first_mismatch: None,
            }
        );
    }

    /// A 5 MiB VMA at VA+1M mapping BAR offset 1M: 4K pages up to the first
    /// 2M boundary, then two 2M leaves, then 4K pages for the last 1M.
    fn mixed_guest(mode: crate::PagingMode) -> (TestGuest, Expectation) {
        let mut g = TestGuest::new(mode);
        let (va, gpa) = (VA + MIB, BAR_GPA + MIB);
        g.map_4k_range(va, gpa, MIB, PWT);
        g.map(va + MIB, gpa + MIB, Size2M, PWT);
        g.map(va + 3 * MIB, gpa + 3 * MIB, Size2M, PWT);
        g.map_4k_range(va + 5 * MIB, gpa + 5 * MIB, MIB, PWT);
        let exp = wc(va, 6 * MIB, gpa, SizePolicy::Largest { max: Size2M });
        (g, exp)
    }

    #[test]
    fn mixed_leaf_sizes_pass_the_largest_policy() {
        for mode in [FourLevel, FiveLevel] {
            let (g, exp) = mixed_guest(mode);
            let report = check(&g, &exp);
            assert!(report.pass, "{mode:?}: {:?}", report.first_mismatch);
            assert_eq!(report.pages, 6 * 256);
            assert_eq!(report.present, 6 * 256);
            assert_eq!(
                report.leaves,
                Leaves {
                    k4: 512,
                    m2: 2,
                    g1: 0
                }
            );
        }
    }

    #[test]
    fn one_g_leaf_is_counted_once() {
        let mut g = TestGuest::new(FourLevel);
        let va = 0x0000_7f00_4000_0000;
        g.map(va, BAR_GPA, Size1G, PWT);
        let report = check(
            &g,
            &wc(va, 1 << 30, BAR_GPA, SizePolicy::Largest { max: Size1G }),
        );
        assert!(report.pass, "{:?}", report.first_mismatch);
        assert_eq!(
            report.leaves,
            Leaves {
                k4: 0,
                m2: 0,
                g1: 1
            }
        );
        assert_eq!((report.pages, report.present), (262_144, 262_144));
        // A 2M cap makes the same 1G leaf the wrong size.
        let capped = check(
            &g,
            &wc(va, 1 << 30, BAR_GPA, SizePolicy::Largest { max: Size2M }),
        );
        assert_eq!(capped.first_mismatch.unwrap().kind, WrongSize);
    }

    #[test]
    fn wrong_gpa_is_reported_at_its_va() {
        let mut g = TestGuest::new(FourLevel);
        g.map_4k_range(VA, BAR_GPA, 32 * 0x1000, PWT);
        let bad_va = VA + 17 * 0x1000;
        g.map(bad_va, BAR_GPA + 0x10_0000, Size4K, PWT);
        // A later, second wrong page does not replace the first.
        g.map(VA + 20 * 0x1000, 0, Size4K, PWT);
        let report = check(
            &g,
            &wc(VA, 32 * 0x1000, BAR_GPA, SizePolicy::Exactly(Size4K)),
        );
        assert!(!report.pass);
        let mismatch = report.first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (bad_va, WrongGpa));
        assert!(mismatch.what.contains("0x8000100000"), "{}", mismatch.what);
        // Counting covered the whole range anyway.
        assert_eq!((report.pages, report.leaves.k4), (32, 32));
    }

    #[test]
    fn wrong_gpa_inside_a_huge_leaf() {
        let (mut g, exp) = mixed_guest(FourLevel);
        let second_2m = exp.va_start + 3 * MIB;
        g.map(second_2m, exp.gpa_start + MIB, Size2M, PWT); // the first 2M's GPA again
        let mismatch = check(&g, &exp).first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (second_2m, WrongGpa));
    }

    #[test]
    fn small_leaves_where_a_huge_one_fits_are_the_wrong_size() {
        let mut g = TestGuest::new(FourLevel);
        g.map_4k_range(VA, BAR_GPA, 2 * MIB, PWT);
        let report = check(
            &g,
            &wc(VA, 2 * MIB, BAR_GPA, SizePolicy::Largest { max: Size2M }),
        );
        let mismatch = report.first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (VA, WrongSize));
        // With VA and GPA differently aligned, 4K is what fits.
        g.map_4k_range(VA, BAR_GPA + 0x1000, 2 * MIB, PWT);
        let misaligned = wc(
            VA,
            2 * MIB,
            BAR_GPA + 0x1000,
            SizePolicy::Largest { max: Size2M },
        );
        assert!(check(&g, &misaligned).pass);
    }

    #[test]
    fn up_to_accepts_correct_4k_ptes_where_2m_fits_and_counts_them() {
        // What MADV_NOHUGEPAGE leaves: 4K PTEs over a range 2M leaves could map.
        let mut g = TestGuest::new(FourLevel);
        g.map_4k_range(VA, BAR_GPA, 4 * MIB, PWT);
        let exp = Expectation {
            require_present: true,
            ..wc(VA, 4 * MIB, BAR_GPA, SizePolicy::UpTo { max: Size2M })
        };
        let report = check(&g, &exp);
        assert!(report.pass, "{:?}", report.first_mismatch);
        assert_eq!((report.pages, report.present), (1024, 1024));
        assert_eq!(report.smaller_pages, report.pages);
        assert_eq!(report.leaves.k4, 1024);
        // The strict policy still calls them the wrong size, and counts no
        // page as "smaller but correct".
        let strict = check(
            &g,
            &Expectation {
                sizes: SizePolicy::Largest { max: Size2M },
                ..exp
            },
        );
        assert_eq!(strict.first_mismatch.unwrap().kind, WrongSize);
        assert_eq!(strict.smaller_pages, 0);
        // Where only 4K fits (VA and GPA differently aligned), 4K is the
        // largest: nothing is smaller.
        g.map_4k_range(VA, BAR_GPA + 0x1000, 4 * MIB, PWT);
        let misaligned = check(
            &g,
            &Expectation {
                gpa_start: BAR_GPA + 0x1000,
                ..exp
            },
        );
        assert!(misaligned.pass);
        assert_eq!(misaligned.smaller_pages, 0);
    }

    #[test]
    fn up_to_rejects_leaves_larger_than_max() {
        let mut g = TestGuest::new(FourLevel);
        g.map(VA, BAR_GPA, Size2M, PWT);
        let exp = wc(VA, 2 * MIB, BAR_GPA, SizePolicy::UpTo { max: Size4K });
        let report = check(&g, &exp);
        let mismatch = report.first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (VA, WrongSize));
        assert!(mismatch.what.contains("at most a 4K"), "{}", mismatch.what);
        assert_eq!(report.smaller_pages, 0);
        // A 1G leaf under a 2M cap likewise.
        let mut g = TestGuest::new(FourLevel);
        let va = 0x0000_7f00_4000_0000;
        g.map(va, BAR_GPA, Size1G, PWT);
        let capped = check(
            &g,
            &wc(va, 1 << 30, BAR_GPA, SizePolicy::UpTo { max: Size2M }),
        );
        assert_eq!(capped.first_mismatch.unwrap().kind, WrongSize);
        // ...and passes without smaller pages when 1G is allowed.
        let allowed = check(
            &g,
            &wc(va, 1 << 30, BAR_GPA, SizePolicy::UpTo { max: Size1G }),
        );
        assert!(allowed.pass);
        assert_eq!(allowed.smaller_pages, 0);
    }

    #[test]
    fn up_to_mixes_largest_smaller_and_wrong_leaves() {
        // The mixed guest, with its second 2M leaf replaced by 4K PTEs (an
        // mremap'd PTE-mapped piece): 4K where only 4K fits, one 2M leaf,
        // 512 smaller-but-correct PTEs, 4K again.
        for mode in [FourLevel, FiveLevel] {
            let (mut g, exp) = mixed_guest(mode);
            let exp = Expectation {
                sizes: SizePolicy::UpTo { max: Size2M },
                require_present: true,
                ..exp
            };
            let second_2m = exp.va_start + 3 * MIB;
            let pd_entry = g.entry_gpa(second_2m, crate::TableLevel::Pd);
            g.write(pd_entry, 0);
            g.map_4k_range(second_2m, exp.gpa_start + 3 * MIB, 2 * MIB, PWT);
            let report = check(&g, &exp);
            assert!(report.pass, "{mode:?}: {:?}", report.first_mismatch);
            assert_eq!((report.pages, report.present), (6 * 256, 6 * 256));
            assert_eq!(report.smaller_pages, 512);
            assert_eq!(
                report.leaves,
                Leaves {
                    k4: 256 + 512 + 256,
                    m2: 1,
                    g1: 0
                }
            );
            // A smaller leaf that is wrong otherwise is that mismatch and
            // not counted as smaller.
            let bad = second_2m + 7 * 0x1000;
            g.map(bad, exp.gpa_of(bad), Size4K, 0); // WB
            let report = check(&g, &exp);
            let mismatch = report.first_mismatch.unwrap();
            assert_eq!((mismatch.va, mismatch.kind), (bad, WrongMemType));
            assert_eq!(report.smaller_pages, 511);
            g.map(bad, exp.gpa_of(bad) + 0x1000, Size4K, PWT);
            let report = check(&g, &exp);
            assert_eq!(report.first_mismatch.unwrap().kind, WrongGpa);
            assert_eq!(report.smaller_pages, 511);
        }
    }

    #[test]
    fn up_to_counts_present_smaller_pages_and_allows_holes() {
        let mut g = TestGuest::new(FourLevel);
        g.map_4k_range(VA, BAR_GPA, 0x1000, PWT);
        g.map(VA + 5 * 0x1000, BAR_GPA + 5 * 0x1000, Size4K, PWT);
        let lazy = wc(VA, 4 * MIB, BAR_GPA, SizePolicy::UpTo { max: Size2M });
        let report = check(&g, &lazy);
        assert!(report.pass, "{:?}", report.first_mismatch);
        assert_eq!(
            (report.pages, report.present, report.smaller_pages),
            (1024, 2, 2)
        );
    }

    #[test]
    fn huge_leaf_in_a_4k_only_range_is_the_wrong_size() {
        let mut g = TestGuest::new(FourLevel);
        g.map(VA, BAR_GPA, Size2M, PWT);
        let mismatch = check(&g, &wc(VA, 2 * MIB, BAR_GPA, SizePolicy::Exactly(Size4K)))
            .first_mismatch
            .unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (VA, WrongSize));
        assert!(check(&g, &wc(VA, 2 * MIB, BAR_GPA, SizePolicy::Any)).pass);
    }

    #[test]
    fn huge_leaf_beyond_the_range_is_reported() {
        let mut g = TestGuest::new(FourLevel);
        g.map(VA, BAR_GPA, Size2M, PWT);
        // The VMA is only the first 1 MiB of what the 2M leaf maps.
        let report = check(&g, &wc(VA, MIB, BAR_GPA, SizePolicy::Any));
        let mismatch = report.first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (VA, OutsideRange));
        assert_eq!(
            (report.pages, report.present, report.leaves.m2),
            (256, 256, 1)
        );
        // Same for a range that starts inside the leaf.
        let tail = check(&g, &wc(VA + MIB, MIB, BAR_GPA + MIB, SizePolicy::Any));
        let mismatch = tail.first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (VA + MIB, OutsideRange));
    }

    #[test]
    fn wrong_memtype_is_reported() {
        let mut g = TestGuest::new(FourLevel);
        g.map_4k_range(VA, BAR_GPA, 4 * 0x1000, PWT);
        g.map(VA + 0x2000, BAR_GPA + 0x2000, Size4K, 0); // WB
        let report = check(&g, &wc(VA, 4 * 0x1000, BAR_GPA, SizePolicy::Any));
        let mismatch = report.first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (VA + 0x2000, WrongMemType));
        assert_eq!(report.memtype, None); // mixed
    }

    #[test]
    fn holes_are_allowed_unless_presence_is_required() {
        let mut g = TestGuest::new(FourLevel);
        g.map_4k_range(VA, BAR_GPA, 0x1000, PWT);
        g.map(VA + 5 * 0x1000, BAR_GPA + 5 * 0x1000, Size4K, PWT);
        let lazy = wc(VA, 4 * MIB, BAR_GPA, SizePolicy::Largest { max: Size2M });
        let report = check(&g, &lazy);
        // 4K leaves where 2M would fit are still the wrong size...
        assert_eq!(report.first_mismatch.unwrap().kind, WrongSize);
        assert_eq!((report.pages, report.present), (1024, 2));
        // ...while holes alone pass.
        let holes_only = check(&g, &wc(VA, 4 * MIB, BAR_GPA, SizePolicy::Exactly(Size4K)));
        assert!(holes_only.pass);
        assert_eq!(holes_only.memtype, Some(MemType::WriteCombining));
        let strict = Expectation {
            require_present: true,
            ..wc(VA, 4 * MIB, BAR_GPA, SizePolicy::Exactly(Size4K))
        };
        let mismatch = check(&g, &strict).first_mismatch.unwrap();
        assert_eq!((mismatch.va, mismatch.kind), (VA + 0x1000, NotPresent));
    }

    #[test]
    fn empty_range_reports_nothing_present() {
        let g = TestGuest::new(FourLevel);
        let report = check(&g, &wc(VA, 4 * MIB, BAR_GPA, SizePolicy::Any));
        assert!(report.pass);
        assert_eq!(
            (report.pages, report.present, report.memtype),
            (1024, 0, None)
        );
    }

    #[test]
    fn invalid_expectations_are_errors() {
        let g = TestGuest::new(FourLevel);
        let bad = [
            wc(VA, 0, BAR_GPA, SizePolicy::Any),
            wc(VA + 1, 0x1000, BAR_GPA, SizePolicy::Any),
            wc(VA, 0x1001, BAR_GPA, SizePolicy::Any),
            wc(VA, 0x1000, BAR_GPA + 8, SizePolicy::Any),
            wc(0, MAX_CHECK_LEN + 0x1000, BAR_GPA, SizePolicy::Any),
            wc(!0xfff, 0x2000, BAR_GPA, SizePolicy::Any),
            wc(VA, 0x2000, !0xfff, SizePolicy::Any),
        ];
        for exp in bad {
            assert!(
                matches!(
                    check_range(&g.mem, &g.paging(), &exp),
                    Err(WalkError::InvalidRange { .. })
                ),
                "{exp:?}"
            );
        }
        // The largest range is accepted.
        assert!(check_range(
            &g.mem,
            &g.paging(),
            &wc(0, MAX_CHECK_LEN, 0, SizePolicy::Any)
        )
        .is_ok());
    }

    #[test]
    fn malformed_tables_are_errors_not_mismatches() {
        let (mut g, exp) = mixed_guest(FourLevel);
        let pd_entry = g.entry_gpa(exp.va_start + MIB, crate::TableLevel::Pd);
        g.write(pd_entry, g.read(pd_entry) | 1 << 13); // misaligned 2M leaf
        match check_range(&g.mem, &g.paging(), &exp) {
            Err(WalkError::ReservedBits { va, .. }) => assert_eq!(va, exp.va_start + MIB),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn one_gib_of_4k_pages() {
        let mut g = TestGuest::new(FourLevel);
        let va = 0x0000_7f00_4000_0000;
        g.map_4k_range(va, BAR_GPA, 1 << 30, PWT | USER_BITS);
        let start = std::time::Instant::now();
        let report = check(&g, &wc(va, 1 << 30, BAR_GPA, SizePolicy::Exactly(Size4K)));
        assert!(report.pass);
        assert_eq!(report.leaves.k4, 262_144);
        // 512 table reads of 4 KiB each; generous bound for debug builds.
        assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    }

    #[test]
    fn report_serializes() {
        let (g, exp) = mixed_guest(FourLevel);
        let report = check(&g, &exp);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("\"m2\":2"), "{json}");
    }

    /// Reports name sizes and memory types as people write them, the
    /// same as `Display` does, and mismatch kinds in snake case.
    #[test]
    fn names_serialize_as_displayed() {
        let name = |v: serde_json::Value| v.as_str().unwrap().to_owned();
        for size in PageSize::DESCENDING {
            assert_eq!(name(serde_json::to_value(size).unwrap()), size.to_string());
        }
        for encoding in 0..=u8::MAX {
            if let Some(memtype) = MemType::from_pat_encoding(encoding) {
                let json = serde_json::to_value(memtype).unwrap();
                assert_eq!(name(json), memtype.to_string());
            }
        }
        let kind = serde_json::to_value(MismatchKind::WrongMemType).unwrap();
        assert_eq!(name(kind), "wrong_mem_type");
    }
}
