//! Decides whether the VRAM BAR, as the guest programmed it, can become a
//! memslot. A guest may program anything (sizing writes all-ones, a buggy
//! driver may overlap RAM or the other BAR); such placements are refused
//! and VRAM accesses there trap to the VMM instead.

use std::fmt;
use std::ops::Range;

use super::layout::{overlaps, PLATFORM_MMIO_START};

/// What the guest programmed, as far as placing VRAM is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarState {
    /// Command register: memory decode enabled.
    pub memory_decode: bool,
    /// BAR0 base, if programmed.
    pub regs_bar: Option<u64>,
    pub regs_size: u64,
    /// BAR2 base, if programmed.
    pub vram_bar: Option<u64>,
    pub vram_size: u64,
}

/// Why a programmed BAR2 is not mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Past the guest's physical address width (or wrapping around).
    BeyondAddressSpace {
        base: u64,
        limit: u64,
    },
    OverlapsRam {
        base: u64,
        ram: Range<u64>,
    },
    OverlapsRegsBar {
        base: u64,
        regs: u64,
    },
    /// In the IOAPIC/LAPIC/KVM-private range below 4 GiB.
    OverlapsPlatform {
        base: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BeyondAddressSpace { base, limit } => write!(
                f,
                "BAR2 at {base:#x} lies beyond the guest physical address space ({limit:#x})"
            ),
            Refusal::OverlapsRam { base, ram } => write!(
                f,
                "BAR2 at {base:#x} overlaps guest RAM {:#x}..{:#x}",
                ram.start, ram.end
            ),
            Refusal::OverlapsRegsBar { base, regs } => {
                write!(f, "BAR2 at {base:#x} overlaps BAR0 at {regs:#x}")
            }
            Refusal::OverlapsPlatform { base } => write!(
                f,
                "BAR2 at {base:#x} overlaps the platform's MMIO (IOAPIC/LAPIC/KVM pages)"
            ),
        }
    }
}

/// Where VRAM should be mapped: `Ok(None)` when the guest has it disabled
/// or unprogrammed, `Err` when the guest's placement is unusable.
pub fn vram_placement(
    state: &BarState,
    ram: &[Range<u64>],
    phys_limit: u64,
) -> Result<Option<u64>, Refusal> {
    let Some(base) = state.vram_bar.filter(|_| state.memory_decode) else {
        return Ok(None);
    };
    let range = match base.checked_add(state.vram_size) {
        Some(end) if end <= phys_limit => base..end,
        _ => {
            return Err(Refusal::BeyondAddressSpace {
                base,
                limit: phys_limit,
            })
        }
    };
    if let Some(r) = ram.iter().find(|r| overlaps(r, &range)) {
        return Err(Refusal::OverlapsRam {
            base,
            ram: r.clone(),
        });
    }
    if let Some(regs) = state.regs_bar {
        if overlaps(&(regs..regs.saturating_add(state.regs_size)), &range) {
            return Err(Refusal::OverlapsRegsBar { base, regs });
        }
    }
    if overlaps(&(PLATFORM_MMIO_START..1 << 32), &range) {
        return Err(Refusal::OverlapsPlatform { base });
    }
    Ok(Some(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn state(vram_bar: Option<u64>) -> BarState {
        BarState {
            memory_decode: true,
            regs_bar: Some(0xc000_0000),
            regs_size: 4096,
            vram_bar,
            vram_size: GIB,
        }
    }

    #[allow(clippy::single_range_in_vec_init)] // one RAM range, not a range of numbers
    const RAM: &[Range<u64>] = &[0..2 * GIB];
    const LIMIT: u64 = 1 << 46;

    #[test]
    fn a_sane_bar_is_mapped() {
        assert_eq!(
            vram_placement(&state(Some(4 * GIB)), RAM, LIMIT),
            Ok(Some(4 * GIB))
        );
    }

    #[test]
    fn disabled_or_unprogrammed_is_unmapped_without_complaint() {
        assert_eq!(vram_placement(&state(None), RAM, LIMIT), Ok(None));
        let mut s = state(Some(4 * GIB));
        s.memory_decode = false;
        assert_eq!(vram_placement(&s, RAM, LIMIT), Ok(None));
    }

    #[test]
    fn bad_placements_are_refused() {
        // Sizing leaves all-ones in the BAR.
        let sizing = state(Some(!(GIB - 1)));
        assert!(matches!(
            vram_placement(&sizing, RAM, LIMIT),
            Err(Refusal::BeyondAddressSpace { .. })
        ));
        assert!(matches!(
            vram_placement(&state(Some(GIB)), RAM, LIMIT),
            Err(Refusal::OverlapsRam { .. })
        ));
        assert!(matches!(
            vram_placement(&state(Some(3 * GIB)), RAM, LIMIT),
            Err(Refusal::OverlapsRegsBar { .. })
        ));
        let mut small = state(Some(0xfec0_0000));
        small.vram_size = 64 << 20;
        small.regs_bar = None;
        assert!(matches!(
            vram_placement(&small, RAM, LIMIT),
            Err(Refusal::OverlapsPlatform { .. })
        ));
    }
}
