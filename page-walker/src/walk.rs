//! The walk: descends from CR3 through exactly the tables that cover a VA
//! range, in VA order, reading each entry once. A huge leaf or a
//! not-present entry covers its whole span in one step, so the cost is
//! proportional to the number of entries that map the range, not to its
//! number of 4K pages.
//!
//! The descent depth is fixed by the paging mode (at most five tables), so
//! a walk terminates whatever the tables contain, including tables that
//! point back at themselves or at each other.

use serde::{Deserialize, Serialize};
use vm_memory::{Bytes, GuestAddress, GuestMemory};

use crate::entry::{Entry, Target};
use crate::error::WalkError;
use crate::memtype::{pat_memtype, pat_slot, MemType};
use crate::paging::{PageSize, PagingState, TableLevel, MAX_MAXPHYADDR, MIN_MAXPHYADDR};

/// Longest VA range one walk covers. It bounds the work a walk can do: at
/// most one PTE per 4K page, i.e. 16 Mi entries and 128 MiB of table reads.
pub const MAX_WALK_LEN: u64 = 64 << 30;

/// A present translation, seen from one 4K page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaf {
    /// The 4K page asked about.
    pub va: u64,
    /// The GPA that 4K page maps: the leaf's base plus the page's offset
    /// within the leaf.
    pub gpa: u64,
    /// Size of the page the leaf entry maps.
    pub size: PageSize,
    /// Effective permissions, combined over every level as the CPU does:
    /// writable and user only if every level allows it, no-execute if any
    /// level sets XD.
    pub writable: bool,
    pub user: bool,
    pub nx: bool,
    /// PAT<<2 | PCD<<1 | PWT of the leaf entry.
    pub pat_index: u8,
    /// The guest's PAT slot for `pat_index`. Host-side MTRR/EPT types are
    /// not folded in: this is what the guest asked for.
    pub memtype: MemType,
}

impl Leaf {
    /// First VA the leaf entry maps.
    pub fn va_base(&self) -> u64 {
        self.va & !(self.size.bytes() - 1)
    }

    /// Last VA the leaf entry maps (inclusive, so a leaf at the top of the
    /// address space has one).
    pub fn va_last(&self) -> u64 {
        self.va_base() + (self.size.bytes() - 1)
    }

    /// GPA the leaf entry maps at [`Leaf::va_base`].
    pub fn gpa_base(&self) -> u64 {
        self.gpa - (self.va - self.va_base())
    }
}

/// A piece of a walked range that one entry decides: `first..=last` is
/// mapped by `leaf` (whose `va` is `first`'s 4K page), or not present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) leaf: Option<Leaf>,
}

/// Translates `va` as the guest CPU would: `Ok(None)` if some level is not
/// present, an error if the tables are malformed or unreadable.
pub fn translate<M: GuestMemory + ?Sized>(
    mem: &M,
    paging: &PagingState,
    va: u64,
) -> Result<Option<Leaf>, WalkError> {
    let mut found = None;
    walk_range(mem, paging, va, va, |span| found = span.leaf)?;
    Ok(found)
}

/// Calls `visit` for each span of `first..=last` (inclusive, so a range
/// may end at the top of the address space) in ascending VA order. The
/// spans tile the range exactly.
pub(crate) fn walk_range<M, F>(
    mem: &M,
    paging: &PagingState,
    first: u64,
    last: u64,
    visit: F,
) -> Result<(), WalkError>
where
    M: GuestMemory + ?Sized,
    F: FnMut(Span),
{
    if !(MIN_MAXPHYADDR..=MAX_MAXPHYADDR).contains(&paging.maxphyaddr) {
        return Err(WalkError::InvalidMaxPhyAddr(paging.maxphyaddr));
    }
    let mode = paging.mode;
    for va in [first, last] {
        if !mode.is_canonical(va) {
            return Err(WalkError::NonCanonical { va, mode });
        }
    }
    // Both ends canonical but in different halves: the gap between is not.
    let upper_half = 1u64 << (mode.va_bits() - 1);
    if first < upper_half && last >= upper_half {
        return Err(WalkError::NonCanonical {
            va: upper_half,
            mode,
        });
    }
    if last < first || last - first >= MAX_WALK_LEN {
        return Err(WalkError::InvalidRange {
            va_start: first,
            len: last.wrapping_sub(first).wrapping_add(1),
            reason: "a walk covers 1 byte to MAX_WALK_LEN",
        });
    }
    let mut walker = Walker { mem, paging, visit };
    let all_allowed = Permissions {
        writable: true,
        user: true,
        nx: false,
    };
    walker.table(
        mode.root_level(),
        paging.root_table(),
        first,
        last,
        all_allowed,
    )
}

/// Permissions accumulated on the way down.
#[derive(Clone, Copy)]
struct Permissions {
    writable: bool,
    user: bool,
    nx: bool,
}

impl Permissions {
    fn restrict(self, entry: Entry) -> Permissions {
        Permissions {
            writable: self.writable && entry.writable(),
            user: self.user && entry.user(),
            nx: self.nx || entry.execute_disable(),
        }
    }
}

struct Walker<'a, M: ?Sized, F> {
    mem: &'a M,
    paging: &'a PagingState,
    visit: F,
}

impl<M, F> Walker<'_, M, F>
where
    M: GuestMemory + ?Sized,
    F: FnMut(Span),
{
    /// Walks the part `first..=last` of the VA span that the `level` table
    /// at `table_gpa` translates.
    fn table(
        &mut self,
        level: TableLevel,
        table_gpa: u64,
        first: u64,
        last: u64,
        above: Permissions,
    ) -> Result<(), WalkError> {
        let lo = level.index_of(first);
        let hi = level.index_of(last);
        let mut raw = [0u8; 4096];
        let raw = &mut raw[lo * 8..(hi + 1) * 8];
        let entries_gpa = table_gpa + 8 * lo as u64;
        self.mem
            .read_slice(raw, GuestAddress(entries_gpa))
            .map_err(|source| WalkError::TableOutsideMemory {
                va: first,
                level,
                table_gpa,
                source,
            })?;

        let entry_span = level.entry_span();
        // The VA the table's entry 0 translates; keeps the sign-extension bits.
        let table_va = first & !((entry_span << 9) - 1);
        for (index, bytes) in (lo..).zip(raw.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(bytes);
            let entry = Entry(u64::from_le_bytes(le));
            let entry_va = table_va | (index as u64) << level.entry_shift();
            let entry_gpa = table_gpa + 8 * index as u64;
            let sub_first = first.max(entry_va);
            let sub_last = last.min(entry_va + (entry_span - 1));

            if !entry.present() {
                (self.visit)(Span {
                    first: sub_first,
                    last: sub_last,
                    leaf: None,
                });
                continue;
            }
            let reserved = entry.reserved_bits(level, self.paging.maxphyaddr);
            if reserved != 0 {
                return Err(WalkError::ReservedBits {
                    va: sub_first,
                    level,
                    entry_gpa,
                    entry: entry.0,
                    reserved,
                });
            }
            let permissions = above.restrict(entry);
            match entry.target(level) {
                Target::Table(next) => {
                    let next_gpa = entry.address(PageSize::Size4K, self.paging.maxphyaddr);
                    self.table(next, next_gpa, sub_first, sub_last, permissions)?;
                }
                Target::Page(size) => {
                    let leaf = self.leaf(entry, size, entry_va, sub_first, permissions)?;
                    (self.visit)(Span {
                        first: sub_first,
                        last: sub_last,
                        leaf: Some(leaf),
                    });
                }
            }
        }
        Ok(())
    }

    /// Describes the 4K page containing `va` under the leaf `entry` that
    /// maps `size` bytes from `entry_va`.
    fn leaf(
        &self,
        entry: Entry,
        size: PageSize,
        entry_va: u64,
        va: u64,
        permissions: Permissions,
    ) -> Result<Leaf, WalkError> {
        let page_va = va & !0xfff;
        let pat_index = entry.pat_index(size);
        let memtype =
            pat_memtype(self.paging.pat_msr, pat_index).ok_or(WalkError::ReservedPatType {
                va,
                index: pat_index,
                encoding: pat_slot(self.paging.pat_msr, pat_index),
            })?;
        Ok(Leaf {
            va: page_va,
            gpa: entry.address(size, self.paging.maxphyaddr) + (page_va - entry_va),
            size,
            writable: permissions.writable,
            user: permissions.user,
            nx: permissions.nx,
            pat_index,
            memtype,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memtype::RESET_PAT_MSR;
    use crate::paging::PagingMode::{FiveLevel, FourLevel};
    use crate::testutil::*;
    use PageSize::*;
    use TableLevel::*;

    const USER_VA: u64 = 0x0000_7f12_3440_0000;

    fn collect_spans(guest: &TestGuest, first: u64, last: u64) -> Vec<Span> {
        let mut spans = Vec::new();
        walk_range(&guest.mem, &guest.paging(), first, last, |s| spans.push(s)).unwrap();
        spans
    }

    #[test]
    fn four_k_leaf() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA + 0x5000, Size4K, PWT | USER_BITS);
        let leaf = translate(&g.mem, &g.paging(), USER_VA + 0x123)
            .unwrap()
            .unwrap();
        assert_eq!(
            leaf,
            Leaf {
                va: USER_VA,
                gpa: BAR_GPA + 0x5000,
                size: Size4K,
                writable: true,
                user: true,
                nx: true,
                pat_index: 1,
                memtype: MemType::WriteCombining,
            }
        );
        assert_eq!(
            translate(&g.mem, &g.paging(), USER_VA + 0x1000).unwrap(),
            None
        );
    }

    #[test]
    fn two_m_leaf_maps_each_4k_page_at_its_offset() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA + 0x20_0000, Size2M, PWT | USER_BITS);
        let leaf = translate(&g.mem, &g.paging(), USER_VA + 0x1f_f7ff)
            .unwrap()
            .unwrap();
        assert_eq!(leaf.va, USER_VA + 0x1f_f000);
        assert_eq!(leaf.gpa, BAR_GPA + 0x20_0000 + 0x1f_f000);
        assert_eq!(
            (leaf.va_base(), leaf.gpa_base()),
            (USER_VA, BAR_GPA + 0x20_0000)
        );
        assert_eq!(leaf.va_last(), USER_VA + 0x1f_ffff);
        assert_eq!(leaf.size, Size2M);
        assert_eq!(leaf.memtype, MemType::WriteCombining);
    }

    #[test]
    fn one_g_leaf() {
        let mut g = TestGuest::new(FourLevel);
        let va = 0x0000_7f00_4000_0000;
        g.map(va, BAR_GPA, Size1G, USER_BITS);
        let leaf = translate(&g.mem, &g.paging(), va + 0x3fff_f000)
            .unwrap()
            .unwrap();
        assert_eq!((leaf.size, leaf.gpa), (Size1G, BAR_GPA + 0x3fff_f000));
        assert_eq!(leaf.memtype, MemType::WriteBack);
    }

    #[test]
    fn pat_bit_is_bit_7_in_ptes_and_bit_12_in_huge_leaves() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA, Size4K, PTE_PAT | PCD | PWT);
        g.map(USER_VA + 0x20_0000, BAR_GPA, Size2M, HUGE_PAT | PWT);
        g.map(0x0000_7f00_4000_0000, BAR_GPA, Size1G, HUGE_PAT | PCD);
        let pat = |va| translate(&g.mem, &g.paging(), va).unwrap().unwrap();
        assert_eq!(pat(USER_VA).pat_index, 7);
        assert_eq!(pat(USER_VA).memtype, MemType::WriteThrough);
        // HUGE_PAT is not an address bit: the 2M page is still at BAR_GPA.
        let two_m = pat(USER_VA + 0x20_0000);
        assert_eq!((two_m.pat_index, two_m.gpa), (5, BAR_GPA));
        assert_eq!(two_m.memtype, MemType::WriteProtected);
        assert_eq!(pat(0x0000_7f00_4000_0000).pat_index, 6);
    }

    #[test]
    fn every_pat_index_under_linux_pat() {
        let expected = crate::memtype::LINUX_PAT_SLOTS;
        let mut g = TestGuest::new(FourLevel);
        for (index, want) in (0u64..).zip(expected) {
            let va = USER_VA + index * 0x1000;
            let flags = (index & 4) << 5 | (index & 3) << 3; // -> PAT bit 7, PCD, PWT
            g.map(va, BAR_GPA, Size4K, flags);
            let huge_va = USER_VA + (index + 1) * 0x20_0000;
            g.map(
                huge_va,
                BAR_GPA,
                Size2M,
                (index & 4) << 10 | (index & 3) << 3,
            );
            for va in [va, huge_va] {
                let leaf = translate(&g.mem, &g.paging(), va).unwrap().unwrap();
                assert_eq!((leaf.pat_index, leaf.memtype), (index as u8, want));
            }
        }
    }

    #[test]
    fn not_present_at_each_level() {
        for level in [Pml4, Pdpt, Pd, Pt] {
            let mut g = TestGuest::new(FourLevel);
            g.map(USER_VA, BAR_GPA, Size4K, 0);
            let entry = g.entry_gpa(USER_VA, level);
            // Only P cleared: the rest of a non-present entry is ignored,
            // even bits that would be reserved.
            g.write(entry, (g.read(entry) & !1) | 1 << 51 | 1 << 7);
            let paging = PagingState {
                maxphyaddr: 40,
                ..g.paging()
            };
            assert_eq!(
                translate(&g.mem, &paging, USER_VA).unwrap(),
                None,
                "{level}"
            );
        }
    }

    #[test]
    fn not_present_pml5_entry() {
        let mut g = TestGuest::new(FiveLevel);
        g.map(USER_VA, BAR_GPA, Size4K, 0);
        let entry = g.entry_gpa(USER_VA, Pml5);
        g.write(entry, 0);
        assert_eq!(translate(&g.mem, &g.paging(), USER_VA).unwrap(), None);
    }

    #[test]
    fn five_level_paging_uses_the_pml5() {
        let mut g = TestGuest::new(FiveLevel);
        let va = 0x00ab_cdef_1234_5000; // needs LA57
        g.map(va, BAR_GPA + 0x7000, Size4K, 0);
        let leaf = translate(&g.mem, &g.paging(), va).unwrap().unwrap();
        assert_eq!(leaf.gpa, BAR_GPA + 0x7000);
        // Read as a PML4, the same root does not know this VA.
        let four = PagingState {
            mode: FourLevel,
            ..g.paging()
        };
        assert!(matches!(
            translate(&g.mem, &four, va),
            Err(WalkError::NonCanonical { .. })
        ));
    }

    #[test]
    fn five_level_upper_half() {
        let mut g = TestGuest::new(FiveLevel);
        let va = 0xff11_2233_4455_6000;
        g.map(va, BAR_GPA, Size2M, 0);
        let leaf = translate(&g.mem, &g.paging(), va).unwrap().unwrap();
        assert_eq!(
            (leaf.va_base(), leaf.gpa),
            (0xff11_2233_4440_0000, BAR_GPA + 0x15_6000)
        );
    }

    #[test]
    fn kernel_half_four_level() {
        let mut g = TestGuest::new(FourLevel);
        let va = 0xffff_ffff_ffff_f000; // last page of the address space
        g.map(va, 0x1234_5000, Size4K, 0);
        let leaf = translate(&g.mem, &g.paging(), va).unwrap().unwrap();
        assert_eq!(leaf.gpa, 0x1234_5000);
        assert_eq!(collect_spans(&g, va, u64::MAX).len(), 1);
    }

    #[test]
    fn cr3_low_and_high_bits_are_ignored() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA, Size4K, 0);
        let paging = PagingState {
            cr3: g.root | 1 << 63 | 0x7ff,
            ..g.paging()
        };
        assert!(translate(&g.mem, &paging, USER_VA).unwrap().is_some());
    }

    #[test]
    fn permissions_combine_across_levels() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA, Size4K, USER_BITS);
        let pd_entry = g.entry_gpa(USER_VA, Pd);
        g.write(pd_entry, g.read(pd_entry) & !0b10); // read-only at PD
        let pml4_entry = g.entry_gpa(USER_VA, Pml4);
        g.write(pml4_entry, g.read(pml4_entry) | EXECUTE_DISABLE);
        let leaf = translate(&g.mem, &g.paging(), USER_VA).unwrap().unwrap();
        assert!(!leaf.writable && leaf.user && leaf.nx);
    }

    #[test]
    fn reserved_address_bits_at_each_level() {
        for level in [Pml4, Pdpt, Pd, Pt] {
            let mut g = TestGuest::new(FourLevel);
            g.map(USER_VA, BAR_GPA, Size4K, 0);
            let entry = g.entry_gpa(USER_VA, level);
            g.write(entry, g.read(entry) | 1 << 47);
            // Fine while the guest has 48 address bits...
            let wide = PagingState {
                maxphyaddr: 48,
                ..g.paging()
            };
            if level == Pt {
                assert!(translate(&g.mem, &wide, USER_VA).unwrap().is_some());
            }
            // ...reserved with 46.
            let narrow = PagingState {
                maxphyaddr: 46,
                ..g.paging()
            };
            match translate(&g.mem, &narrow, USER_VA + 0x10) {
                Err(WalkError::ReservedBits {
                    va,
                    level: at,
                    entry_gpa,
                    reserved,
                    ..
                }) => {
                    assert_eq!(
                        (va, at, entry_gpa, reserved),
                        (USER_VA + 0x10, level, entry, 1 << 47)
                    );
                }
                other => panic!("{level}: {other:?}"),
            }
        }
    }

    #[test]
    fn page_size_bit_in_pml4e_and_pml5e_is_reserved() {
        for (mode, level) in [(FourLevel, Pml4), (FiveLevel, Pml5), (FiveLevel, Pml4)] {
            let mut g = TestGuest::new(mode);
            g.map(USER_VA, BAR_GPA, Size4K, 0);
            let entry = g.entry_gpa(USER_VA, level);
            g.write(entry, g.read(entry) | 1 << 7);
            assert!(
                matches!(
                    translate(&g.mem, &g.paging(), USER_VA),
                    Err(WalkError::ReservedBits { level: l, .. }) if l == level
                ),
                "{mode:?} {level}"
            );
        }
    }

    #[test]
    fn misaligned_huge_leaves_are_reserved() {
        let mut g = TestGuest::new(FourLevel);
        // Bit 12 is PAT in a huge leaf, so bit 13 is the lowest that misaligns.
        g.map(USER_VA, BAR_GPA + 0x2000, Size2M, HUGE_PAT);
        assert!(matches!(
            translate(&g.mem, &g.paging(), USER_VA),
            Err(WalkError::ReservedBits {
                level: Pd,
                reserved: 0x2000,
                ..
            })
        ));
        let va = 0x0000_7f00_4000_0000;
        g.map(va, BAR_GPA + 0x20_0000, Size1G, 0);
        assert!(matches!(
            translate(&g.mem, &g.paging(), va),
            Err(WalkError::ReservedBits {
                level: Pdpt,
                reserved: 0x20_0000,
                ..
            })
        ));
    }

    #[test]
    fn table_outside_guest_memory() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA, Size4K, 0);
        let entry = g.entry_gpa(USER_VA, Pd);
        g.write(entry, RAM_SIZE | 0b111);
        match translate(&g.mem, &g.paging(), USER_VA) {
            Err(WalkError::TableOutsideMemory {
                va,
                level,
                table_gpa,
                ..
            }) => assert_eq!((va, level, table_gpa), (USER_VA, Pt, RAM_SIZE)),
            other => panic!("{other:?}"),
        }
        // A CR3 outside memory fails at the root.
        let paging = PagingState {
            cr3: BAR_GPA,
            ..g.paging()
        };
        assert!(matches!(
            translate(&g.mem, &paging, USER_VA),
            Err(WalkError::TableOutsideMemory { level: Pml4, .. })
        ));
    }

    #[test]
    fn self_referencing_pml4_terminates() {
        // PML4[0] points at the PML4 itself (a "recursive" slot), so every
        // level of a walk through slot 0 reads the PML4 again. The fixed
        // depth ends it: the 4th read uses PML4[0] as a PTE, mapping the
        // PML4's own page.
        let g = TestGuest::new(FourLevel);
        g.write(g.root, g.root | 0b11);
        let leaf = translate(&g.mem, &g.paging(), 0).unwrap().unwrap();
        assert_eq!((leaf.size, leaf.gpa), (Size4K, g.root));
        // A walk over the whole first 512 GiB slot only finds that one
        // recursion path and holes.
        let spans = collect_spans(&g, 0, (1 << 36) - 1);
        assert_eq!(spans.iter().filter(|s| s.leaf.is_some()).count(), 1);
    }

    #[test]
    fn self_referencing_huge_entries_terminate() {
        // Every entry of one page points at that page with PS set: at the
        // PML4 PS is reserved; from the PDPT it maps a 1G page.
        let g = TestGuest::new(FourLevel);
        for i in 0..512 {
            g.write(g.root + 8 * i, g.root | 0b11 | 1 << 7);
        }
        assert!(matches!(
            translate(&g.mem, &g.paging(), USER_VA),
            Err(WalkError::ReservedBits { level: Pml4, .. })
        ));
    }

    #[test]
    fn non_canonical_and_bad_ranges() {
        let g = TestGuest::new(FourLevel);
        let paging = g.paging();
        assert!(matches!(
            translate(&g.mem, &paging, 0x0000_8000_0000_0000),
            Err(WalkError::NonCanonical {
                va: 0x0000_8000_0000_0000,
                ..
            })
        ));
        let across = walk_range(
            &g.mem,
            &paging,
            0x7fff_ffff_f000,
            0xffff_8000_0000_0fff,
            |_| {},
        );
        assert!(matches!(across, Err(WalkError::NonCanonical { .. })));
        let too_long = walk_range(&g.mem, &paging, 0, MAX_WALK_LEN, |_| {});
        assert!(matches!(too_long, Err(WalkError::InvalidRange { .. })));
        let backwards = walk_range(&g.mem, &paging, 0x2000, 0x1000, |_| {});
        assert!(matches!(backwards, Err(WalkError::InvalidRange { .. })));
        let bad_phys = PagingState {
            maxphyaddr: 53,
            ..paging
        };
        assert!(matches!(
            translate(&g.mem, &bad_phys, 0),
            Err(WalkError::InvalidMaxPhyAddr(53))
        ));
    }

    #[test]
    fn reserved_pat_encoding_is_an_error() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA, Size4K, PWT);
        let paging = PagingState {
            pat_msr: RESET_PAT_MSR & !0xff00 | 0x0200, // slot 1 := 2 (reserved)
            ..g.paging()
        };
        assert!(matches!(
            translate(&g.mem, &paging, USER_VA),
            Err(WalkError::ReservedPatType {
                index: 1,
                encoding: 2,
                ..
            })
        ));
    }

    #[test]
    fn huge_leaves_and_holes_are_one_span_each() {
        let mut g = TestGuest::new(FourLevel);
        let base = 0x0000_7f00_4000_0000; // 1G-aligned
        g.map(base, BAR_GPA, Size1G, 0);
        g.map(base + (1 << 30), BAR_GPA, Size2M, 0);
        let spans = collect_spans(&g, base, base + (2 << 30) - 1);
        // The 1G leaf, the 2M leaf, then 511 not-present PDEs.
        assert_eq!(spans.len(), 2 + 511);
        assert_eq!(spans[0].leaf.unwrap().size, Size1G);
        assert_eq!(
            (spans[0].first, spans[0].last),
            (base, base + (1 << 30) - 1)
        );
        assert_eq!(spans[1].leaf.unwrap().size, Size2M);
        // A not-present PML4 entry covers all of its part of a range in one span.
        assert_eq!(collect_spans(&g, 0, MAX_WALK_LEN - 1).len(), 1);
    }

    #[test]
    fn spans_tile_a_clipped_range() {
        let mut g = TestGuest::new(FourLevel);
        g.map(USER_VA, BAR_GPA, Size2M, 0);
        let (first, last) = (USER_VA + 0x3000, USER_VA + 0x20_4fff);
        let spans = collect_spans(&g, first, last);
        assert_eq!(spans[0].first, first);
        assert_eq!(spans.last().unwrap().last, last);
        for pair in spans.windows(2) {
            assert_eq!(pair[0].last + 1, pair[1].first);
        }
        assert_eq!(spans[0].leaf.unwrap().gpa, BAR_GPA + 0x3000);
    }
}
