//! Turning the driver's request registers into a [`CheckRequest`]: reject
//! what no walk could answer, and derive what the device expects from its own
//! configuration rather than trusting the guest for it.

use super::{CheckRegisters, CheckRequest, PageSize, Strategy};
use crate::abi::check;

/// Longest range one check covers: the longest page-walker walks (64 GiB
/// of 4K pages reads 128 MiB of tables, bounding the time the doorbell can
/// hold the device); the largest VRAM is this size too.
pub use page_walker::MAX_CHECK_LEN;

const PAGE_4K: u64 = 4 << 10;
const KNOWN_FLAGS: u32 = check::FLAG_LA57 | check::FLAG_REQUIRE_PRESENT | check::STRATEGY_MASK;

/// The largest leaf `strategy` may produce on a device whose preferred
/// page size is `page_size`: `page`, `prefault16` and `ttm16` insert PTEs only;
/// `range` and `range-mm` insert PUDs for 1 GiB pages, PMDs for
/// 2 MiB..512 MiB pages and PTEs below that. The kernel may still map with
/// smaller leaves (`MADV_NOHUGEPAGE`, `mremap`, fallbacks): those pass and
/// are counted apart; only larger ones are the wrong size.
pub fn expected_max_leaf(strategy: Strategy, page_size: u64) -> PageSize {
    match strategy {
        Strategy::Page | Strategy::Prefault16 | Strategy::Ttm16 => PageSize::Size4K,
        Strategy::Range | Strategy::RangeMm => {
            if page_size >= PageSize::Size1G.bytes() {
                PageSize::Size1G
            } else if page_size >= PageSize::Size2M.bytes() {
                PageSize::Size2M
            } else {
                PageSize::Size4K
            }
        }
    }
}

/// What the device knows that the request is judged against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceView {
    /// BAR2's programmed base address, `None` while unprogrammed.
    pub(crate) vram_bar: Option<u64>,
    pub(crate) page_size: u64,
}

impl CheckRegisters {
    /// Validates the registers; `Err` names the first problem (a bad
    /// request: the walker is not called).
    pub(crate) fn to_request(self, device: DeviceView) -> Result<CheckRequest, String> {
        let unknown_flags = self.flags & !KNOWN_FLAGS;
        if unknown_flags != 0 {
            return Err(format!("unknown FLAGS bits {unknown_flags:#x}"));
        }
        let strategy_value = (self.flags & check::STRATEGY_MASK) >> check::STRATEGY_SHIFT;
        let strategy = Strategy::from_raw(strategy_value)
            .ok_or_else(|| format!("unknown strategy {strategy_value}"))?;
        let la57 = self.flags & check::FLAG_LA57 != 0;
        if self.len == 0 {
            return Err("empty range (LEN is 0)".into());
        }
        if !(self.va | self.len | self.offset).is_multiple_of(PAGE_4K) {
            return Err(format!(
                "VA {:#x}, LEN {:#x} and OFFSET {:#x} must all be 4 KiB aligned",
                self.va, self.len, self.offset
            ));
        }
        if self.len > MAX_CHECK_LEN {
            return Err(format!(
                "LEN {:#x} is longer than the {MAX_CHECK_LEN:#x} a check covers",
                self.len
            ));
        }
        check_canonical(self.va, self.len, la57)?;
        // OFFSET may point past VRAM: no correct mapping can match it, and
        // the walk says so as a mismatch, which is what a driver testing
        // the check with a deliberately wrong offset wants to see.
        let bar = device
            .vram_bar
            .ok_or("BAR2 is not programmed, so no GPA can be expected")?;
        let expected_gpa = bar
            .checked_add(self.offset)
            .filter(|gpa| gpa.checked_add(self.len - 1).is_some())
            .ok_or_else(|| format!("BAR2 {bar:#x} + OFFSET {:#x} overflows", self.offset))?;
        Ok(CheckRequest {
            root: self.root,
            va: self.va,
            len: self.len,
            offset: self.offset,
            expected_gpa,
            pat: self.pat,
            la57,
            require_present: self.flags & check::FLAG_REQUIRE_PRESENT != 0,
            strategy,
            max_leaf: expected_max_leaf(strategy, device.page_size),
        })
    }
}

/// The range must lie in one canonical half of the 48-bit (or, with LA57,
/// 57-bit) address space: no CPU walk can translate anything else.
fn check_canonical(va: u64, len: u64, la57: bool) -> Result<(), String> {
    let va_bits = if la57 { 57 } else { 48 };
    let unused = 64 - va_bits;
    let canonical = |v: u64| (((v << unused) as i64) >> unused) as u64 == v;
    let upper_half = 1u64 << (va_bits - 1);
    let in_one_half = va
        .checked_add(len - 1)
        .filter(|&last| canonical(va) && canonical(last))
        .is_some_and(|last| (va < upper_half) == (last < upper_half));
    if in_one_half {
        Ok(())
    } else {
        Err(format!(
            "VA range {va:#x}+{len:#x} is not canonical under {va_bits}-bit paging"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VA: u64 = 0x0000_7f00_0020_0000;
    const BAR: u64 = 0xfe_0000_0000;
    const GIB: u64 = 1 << 30;

    fn device(page_size: u64) -> DeviceView {
        DeviceView {
            vram_bar: Some(BAR),
            page_size,
        }
    }

    fn regs(flags: u32) -> CheckRegisters {
        CheckRegisters {
            root: 0x1234_5000,
            va: VA,
            len: 2 << 20,
            offset: 0x40_0000,
            pat: 0x0407_0506_0007_0106,
            flags,
        }
    }

    fn strategy_flags(s: u32) -> u32 {
        s << check::STRATEGY_SHIFT
    }

    #[test]
    fn max_leaf_per_strategy_and_page_size() {
        use PageSize::*;
        use Strategy::*;
        let cases = [
            (4 << 10, [Size4K, Size4K, Size4K, Size4K, Size4K]),
            (64 << 10, [Size4K, Size4K, Size4K, Size4K, Size4K]),
            (1 << 20, [Size4K, Size4K, Size4K, Size4K, Size4K]),
            (2 << 20, [Size4K, Size4K, Size4K, Size2M, Size2M]),
            (4 << 20, [Size4K, Size4K, Size4K, Size2M, Size2M]),
            (512 << 20, [Size4K, Size4K, Size4K, Size2M, Size2M]),
            (GIB, [Size4K, Size4K, Size4K, Size1G, Size1G]),
        ];
        for (page_size, want) in cases {
            let got =
                [Page, Prefault16, Ttm16, Range, RangeMm].map(|s| expected_max_leaf(s, page_size));
            assert_eq!(got, want, "page size {page_size:#x}");
        }
    }

    #[test]
    fn valid_request_carries_registers_and_derivations() {
        let flags = check::FLAG_REQUIRE_PRESENT | strategy_flags(2);
        let request = regs(flags).to_request(device(2 << 20)).unwrap();
        assert_eq!(
            request,
            CheckRequest {
                root: 0x1234_5000,
                va: VA,
                len: 2 << 20,
                offset: 0x40_0000,
                expected_gpa: BAR + 0x40_0000,
                pat: 0x0407_0506_0007_0106,
                la57: false,
                require_present: true,
                strategy: Strategy::Range,
                max_leaf: PageSize::Size2M,
            }
        );
        let range_mm = regs(strategy_flags(3)).to_request(device(4 << 20)).unwrap();
        assert_eq!(
            (range_mm.strategy, range_mm.max_leaf),
            (Strategy::RangeMm, PageSize::Size2M)
        );
        let la57 = regs(check::FLAG_LA57).to_request(device(GIB)).unwrap();
        assert!(la57.la57 && !la57.require_present);
        assert_eq!(
            (la57.strategy, la57.max_leaf),
            (Strategy::Page, PageSize::Size4K)
        );
    }

    #[test]
    fn bad_requests_are_rejected_with_a_reason() {
        let ok = regs(strategy_flags(2));
        let bad = [
            (
                CheckRegisters {
                    flags: strategy_flags(5),
                    ..ok
                },
                "unknown strategy 5",
            ),
            (
                CheckRegisters {
                    flags: 1 << 5,
                    ..ok
                },
                "unknown FLAGS",
            ),
            (CheckRegisters { len: 0, ..ok }, "empty"),
            (CheckRegisters { len: 0x1800, ..ok }, "aligned"),
            (CheckRegisters { va: VA + 8, ..ok }, "aligned"),
            (
                CheckRegisters {
                    offset: 0x800,
                    ..ok
                },
                "aligned",
            ),
            (
                CheckRegisters {
                    len: MAX_CHECK_LEN + 0x1000,
                    ..ok
                },
                "longer",
            ),
            (
                CheckRegisters {
                    va: 0x0000_8000_0000_0000,
                    ..ok
                },
                "canonical",
            ),
            (
                CheckRegisters {
                    va: 0x0000_7fff_ffff_f000,
                    ..ok
                },
                "canonical",
            ),
            (CheckRegisters { va: !0xfff, ..ok }, "canonical"),
        ];
        for (registers, why) in bad {
            let err = registers.to_request(device(2 << 20)).unwrap_err();
            assert!(err.contains(why), "{registers:?}: {err}");
        }
        let unprogrammed = DeviceView {
            vram_bar: None,
            ..device(2 << 20)
        };
        assert!(ok.to_request(unprogrammed).unwrap_err().contains("BAR2"));
        let at_the_top = DeviceView {
            vram_bar: Some(!0xfff),
            ..device(2 << 20)
        };
        assert!(ok.to_request(at_the_top).unwrap_err().contains("overflows"));
        // Past the end of VRAM is still a request (its walk will mismatch).
        let beyond = CheckRegisters {
            offset: 64 * GIB,
            ..ok
        };
        let request = beyond.to_request(device(2 << 20)).unwrap();
        assert_eq!(request.expected_gpa, BAR + 64 * GIB);
    }

    #[test]
    fn canonical_halves() {
        // A kernel-half range is fine; so is a 57-bit VA with LA57.
        assert!(check_canonical(0xffff_8000_0000_0000, 0x1000, false).is_ok());
        assert!(check_canonical(0x00ff_ffff_ffff_f000, 0x1000, true).is_ok());
        assert!(check_canonical(0x00ff_ffff_ffff_f000, 0x1000, false).is_err());
        // The last page of the lower half, but not one past it.
        assert!(check_canonical(0x0000_7fff_ffff_f000, 0x1000, false).is_ok());
        assert!(check_canonical(0x0000_7fff_ffff_f000, 0x2000, false).is_err());
    }
}
