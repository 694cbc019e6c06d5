//! The driver's char-device ioctl ABI: the argument structs, the request numbers and the fault
//! strategies. The kernel module's copy is `guest-driver/module/uapi.rs` (the strategies:
//! `window.rs` there).

use core::mem::size_of;

use crate::check;

/// The ioctl type byte ("magic") of every request.
pub const IOC_TYPE: u32 = b'r' as u32;

/// Linux's `_IOC` direction bits (asm-generic, which x86 uses).
pub const IOC_NONE: u32 = 0;
pub const IOC_WRITE: u32 = 1;
pub const IOC_READ: u32 = 2;

/// Linux's `_IOC(dir, IOC_TYPE, nr, size)`.
pub const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (IOC_TYPE << 8) | nr
}

/// `RANGEFAULT_IOC_INFO`: reads an [`Info`].
pub const INFO: u32 = ioc(IOC_READ, 0, size_of::<Info>());
/// `RANGEFAULT_IOC_STATS`: reads [`Stats`].
pub const STATS: u32 = ioc(IOC_READ, 1, size_of::<Stats>());
/// Argument: `u32` raw [`Strategy`]. Needs write access.
pub const SET_STRATEGY: u32 = ioc(IOC_WRITE, 2, size_of::<u32>());
/// Argument: `u32`, 0 disables (zapping every mapping), 1 enables again. Needs write access and
/// CAP_SYS_ADMIN.
pub const SET_ENABLED: u32 = ioc(IOC_WRITE, 3, size_of::<u32>());
/// Zeroes [`Stats`] and [`Latency`]; no argument.
pub const RESET_STATS: u32 = ioc(IOC_NONE, 4, 0);
/// Reads and writes a [`CheckArgs`].
pub const CHECK: u32 = ioc(IOC_READ | IOC_WRITE, 5, size_of::<CheckArgs>());
/// Reads a [`Latency`].
pub const LATENCY: u32 = ioc(IOC_READ, 6, size_of::<Latency>());

/// `RANGEFAULT_IOC_INFO`: what the device is and how the driver maps it.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Info {
    pub vram_size: u64,
    pub page_size: u64,
    pub bar2_phys: u64,
    /// The current [`Strategy`], raw.
    pub strategy: u32,
    /// The driver's state, raw.
    pub state: u32,
    /// Bit `n`: raw strategy `n` is served (`range-mm` needs the patched kernel).
    pub strategies: u32,
    pub reserved: u32,
}

impl Info {
    /// Whether this driver and kernel serve `strategy`.
    pub fn serves(&self, strategy: Strategy) -> bool {
        self.strategies & (1 << strategy as u32) != 0
    }

    /// The strategies this driver and kernel serve, in ABI order.
    pub fn strategies(&self) -> impl Iterator<Item = Strategy> + '_ {
        Strategy::ALL.into_iter().filter(|s| self.serves(*s))
    }

    /// The strategy a mapping gets when nobody chose one: the driver's current one.
    pub fn current_strategy(&self) -> Option<Strategy> {
        Strategy::from_raw(self.strategy)
    }
}

/// `RANGEFAULT_IOC_STATS`: counters since load or the last [`RESET_STATS`] (the module's
/// `uapi::Stats` says what each counts).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Stats {
    pub faults_pte: u64,
    pub faults_pmd: u64,
    pub faults_pud: u64,
    pub fallbacks: u64,
    pub pte_inserts: u64,
    pub bytes_inserted: u64,
    pub zaps: u64,
    pub sigbus: u64,
    pub handler_calls: u64,
    pub already_mapped: u64,
    pub pmd_inserts: u64,
    pub pud_inserts: u64,
}

impl Stats {
    /// Faults that inserted entries (exact for `range-mm`; for the stock strategies, handler
    /// calls that returned NOPAGE).
    pub fn faults(&self) -> u64 {
        self.faults_pte + self.faults_pmd + self.faults_pud
    }
}

/// Buckets of a [`LatencyLevel`] histogram.
pub const LATENCY_BUCKETS: usize = 32;

/// One level's fault-latency histogram (bucket `i`: `[2^i, 2^(i+1))` ns).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct LatencyLevel {
    pub count: u64,
    pub sum_ns: u64,
    pub max_ns: u64,
    pub buckets: [u64; LATENCY_BUCKETS],
}

/// `RANGEFAULT_IOC_LATENCY`: fault-handler latency by the level inserted.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Latency {
    pub pte: LatencyLevel,
    pub pmd: LatencyLevel,
    pub pud: LatencyLevel,
}

/// [`CheckArgs::strategy`]: expect the driver's current strategy.
pub const CHECK_CURRENT_STRATEGY: u32 = u32::MAX;

/// `RANGEFAULT_IOC_CHECK`: has the device verify, from the host, the page-table entries the
/// calling process has for `[va, va + len)` of one of its mappings of the device. The out
/// fields are the device's summary registers ([`crate::check`]).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct CheckArgs {
    // In.
    pub va: u64,
    pub len: u64,
    /// Added to the offset the VMA really maps (non-zero only to prove the check can fail).
    pub offset_delta: i64,
    /// Raw [`Strategy`] to expect, or [`CHECK_CURRENT_STRATEGY`].
    pub strategy: u32,
    /// `1`: every page must be present.
    pub require_present: u32,
    // Out.
    pub status: u32,
    pub memtype: u32,
    pub pages: u32,
    pub present: u32,
    pub leaves_4k: u32,
    pub leaves_2m: u32,
    pub leaves_1g: u32,
    pub mismatch_kind: u32,
    pub mismatch_va: u64,
    pub seq: u32,
    /// Pages mapped correctly by leaves smaller than the largest the strategy allows there.
    pub smaller_pages: u32,
}

/// The driver's fault strategies; the raw values are also those of the device's
/// `check::STRATEGY_*`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// One 4 KiB page per fault.
    Page = check::STRATEGY_PAGE,
    /// An aligned 64 KiB block per fault, like TTM's prefault.
    Prefault16 = check::STRATEGY_PREFAULT16,
    /// Range insertion with the stock exports.
    Range = check::STRATEGY_RANGE,
    /// Range insertion with `vmf_insert_range` (patched kernels only).
    RangeMm = check::STRATEGY_RANGE_MM,
    /// 16 pages forward from the faulting one, clipped to the VMA: what TTM's
    /// `ttm_bo_vm_fault_reserved` prefaults (`prefault16` aligns the block instead).
    Ttm16 = check::STRATEGY_TTM16,
}

impl Strategy {
    pub const ALL: [Strategy; 5] = [
        Strategy::Page,
        Strategy::Prefault16,
        Strategy::Ttm16,
        Strategy::Range,
        Strategy::RangeMm,
    ];

    pub fn from_raw(raw: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| *s as u32 == raw)
    }

    /// The name reports and command lines use.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Page => "page",
            Strategy::Prefault16 => "prefault16",
            Strategy::Range => "range",
            Strategy::RangeMm => "range-mm",
            Strategy::Ttm16 => "ttm16",
        }
    }

    /// Whether the strategy inserts the device's preferred page size per fault.
    pub fn is_range(self) -> bool {
        matches!(self, Strategy::Range | Strategy::RangeMm)
    }

    /// What one fault maps with this strategy on a device preferring `page_size`, where the
    /// mapping is aligned to the device page (as the benchmark maps it): the host's exact fault
    /// count is predicted from this ([`crate::touch`]).
    pub fn fault_window(self, page_size: u64) -> FaultWindow {
        const PMD: u64 = 2 << 20;
        const PUD: u64 = 1 << 30;
        match self {
            Strategy::Page => FaultWindow::Aligned(crate::touch::PAGE),
            Strategy::Prefault16 => FaultWindow::Aligned(16 * crate::touch::PAGE),
            Strategy::Ttm16 => FaultWindow::Forward(16 * crate::touch::PAGE),
            // The stock exports insert one huge leaf per fault: a 4 MiB device page costs two.
            Strategy::Range if page_size >= PUD => FaultWindow::Aligned(PUD),
            Strategy::Range if page_size >= PMD => FaultWindow::Aligned(PMD),
            Strategy::Range | Strategy::RangeMm => FaultWindow::Aligned(page_size),
        }
    }
}

/// The range one fault maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultWindow {
    /// The naturally aligned block of this many bytes around the faulting address.
    Aligned(u64),
    /// This many bytes from the faulting page on, clipped to the mapping's end.
    Forward(u64),
}

impl FaultWindow {
    /// The byte range `[start, end)` of a mapping of `len` bytes that a fault at `offset` maps.
    pub fn around(self, offset: u64, len: u64) -> (u64, u64) {
        match self {
            FaultWindow::Aligned(size) => {
                let start = offset & !(size - 1);
                (start, (start + size).min(len))
            }
            FaultWindow::Forward(size) => {
                let start = offset & !(crate::touch::PAGE - 1);
                (start, (start + size).min(len))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_no_padding() {
        assert_eq!(size_of::<Info>(), 3 * 8 + 4 * 4);
        assert_eq!(size_of::<Stats>(), 12 * 8);
        assert_eq!(size_of::<LatencyLevel>(), (3 + LATENCY_BUCKETS) * 8);
        assert_eq!(size_of::<Latency>(), 3 * size_of::<LatencyLevel>());
        assert_eq!(size_of::<CheckArgs>(), 3 * 8 + 10 * 4 + 8 + 2 * 4);
    }

    #[test]
    fn request_numbers() {
        // What `_IOR('r', 0, struct info)` etc. give on x86-64.
        assert_eq!(INFO, 0x8028_7200);
        assert_eq!(STATS, 0x8060_7201);
        assert_eq!(SET_STRATEGY, 0x4004_7202);
        assert_eq!(SET_ENABLED, 0x4004_7203);
        assert_eq!(RESET_STATS, 0x0000_7204);
        assert_eq!(CHECK, 0xc050_7205);
        assert_eq!(LATENCY, 0x8348_7206);
    }

    #[test]
    fn strategies() {
        // Every raw value below ALL.len() is one strategy, once.
        for raw in 0..Strategy::ALL.len() as u32 {
            assert_eq!(Strategy::from_raw(raw).map(|s| s as u32), Some(raw));
        }
        assert_eq!(Strategy::from_raw(4), Some(Strategy::Ttm16));
        assert_eq!(Strategy::from_raw(5), None);
        let info = Info {
            strategy: 2,
            strategies: 0b0111,
            ..Info::default()
        };
        assert!(info
            .strategies()
            .eq([Strategy::Page, Strategy::Prefault16, Strategy::Range]));
        assert_eq!(info.current_strategy(), Some(Strategy::Range));
        assert!(!info.serves(Strategy::RangeMm));
    }
}
