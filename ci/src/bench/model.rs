//! The exact fault model: how many faults a subject takes to touch a mapping in a given order.
//!
//! The probe walks [`TouchOrder::offsets`]; this replays the same offsets against the window one
//! fault maps (a set of mapped pages: touching an unmapped page is one fault and maps its
//! window). Strategies take their window from the ABI ([`Strategy::fault_window`]), so a new
//! strategy is modelled where it is defined; the peers are modelled here.

use rangefault_abi::touch::{TouchOrder, PAGE};
use rangefault_abi::uapi::{FaultWindow, Strategy};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// What a bench cell measured: one of the driver's strategies, or a peer the probe compares
/// them with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Strategy(Strategy),
    /// The same VRAM bound to `vfio-pci` and mapped through VFIO (its huge-fault path).
    VfioPci,
    /// Our device mapped whole at `mmap` time (`remap_pfn_range`): no fault at all.
    EagerRemap,
}

impl Subject {
    /// The peers, after the strategies.
    pub const PEERS: [Subject; 2] = [Subject::VfioPci, Subject::EagerRemap];

    /// Every subject the model knows: the ABI's strategies in their order, then the peers.
    pub fn all() -> impl Iterator<Item = Subject> {
        Strategy::ALL
            .into_iter()
            .map(Subject::Strategy)
            .chain(Self::PEERS)
    }

    pub fn from_name(name: &str) -> Option<Subject> {
        Self::all().find(|s| s.name() == name)
    }

    /// The name cells and command lines use.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Strategy(s) => s.name(),
            Subject::VfioPci => "vfio-pci",
            Subject::EagerRemap => "eager-remap",
        }
    }

    /// The cell's `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Subject::Strategy(_) => "strategy",
            _ => "peer",
        }
    }

    pub fn is_strategy(self) -> bool {
        matches!(self, Subject::Strategy(_))
    }

    /// Position in [`Self::all`]: the order of tables, plots and colours.
    pub fn rank(self) -> usize {
        Self::all().position(|s| s == self).unwrap_or(usize::MAX)
    }

    /// What one fault maps when this subject maps `mapped_bytes` of a device preferring
    /// `page_size`; `None`: nothing faults.
    pub fn window(self, page_size: u64, mapped_bytes: u64) -> Option<FaultWindow> {
        match self {
            Subject::Strategy(s) => Some(s.fault_window(page_size)),
            Subject::VfioPci => Some(FaultWindow::Aligned(vfio_leaf(mapped_bytes))),
            Subject::EagerRemap => None,
        }
    }
}

/// The leaf vfio-pci's huge fault inserts: the largest of 1 GiB, 2 MiB and 4 KiB that divides
/// both the mapping's length and its alignment (the probe aligns the mapping to
/// `min(mapped_bytes, 1 GiB)`).
pub fn vfio_leaf(mapped_bytes: u64) -> u64 {
    let alignment = mapped_bytes.min(GIB);
    [GIB, 2 * MIB, PAGE]
        .into_iter()
        .find(|&s| mapped_bytes.is_multiple_of(s) && alignment.is_multiple_of(s))
        .unwrap_or(PAGE)
}

/// The faults `subject` takes touching `mapped_bytes` in `order` on a device preferring
/// `page_size`.
pub fn predict(subject: Subject, order: TouchOrder, page_size: u64, mapped_bytes: u64) -> u64 {
    match subject.window(page_size, mapped_bytes) {
        Some(window) => replay(window, order, mapped_bytes),
        None => 0,
    }
}

/// Replays `order` over a mapping of `len` bytes where each fault maps `window`.
pub fn replay(window: FaultWindow, order: TouchOrder, len: u64) -> u64 {
    let mut mapped = PageSet::new(len.div_ceil(PAGE));
    let mut faults = 0;
    for offset in order.offsets(len) {
        let page = offset / PAGE;
        if mapped.contains(page) {
            continue;
        }
        faults += 1;
        let (start, end) = window.around(offset, len);
        mapped.insert_range(start / PAGE, end.div_ceil(PAGE));
        // A window that missed its own page would fault forever; count it once.
        mapped.insert_range(page, page + 1);
    }
    faults
}

/// A set of page indices below a bound, one bit each.
struct PageSet {
    words: Vec<u64>,
}

impl PageSet {
    fn new(pages: u64) -> Self {
        PageSet {
            words: vec![0; pages.div_ceil(64) as usize],
        }
    }

    fn contains(&self, page: u64) -> bool {
        self.words
            .get((page / 64) as usize)
            .is_some_and(|w| w & (1 << (page % 64)) != 0)
    }

    /// Adds `[start, end)`, clipped to the bound.
    fn insert_range(&mut self, start: u64, end: u64) {
        let end = end.min(self.words.len() as u64 * 64);
        let mut page = start;
        while page < end {
            let bit = page % 64;
            let count = (64 - bit).min(end - page);
            let mask = if count == 64 {
                u64::MAX
            } else {
                ((1u64 << count) - 1) << bit
            };
            self.words[(page / 64) as usize] |= mask;
            page += count;
        }
    }
}

/// Sizes in vmm's own syntax: fault-bench writes what `vmm run --device` reads.
pub use vmm::size::{format_size, parse_size};

#[cfg(test)]
mod tests {
    use super::*;
    use TouchOrder::*;

    fn strategy(name: &str) -> Subject {
        let subject = Subject::from_name(name).unwrap();
        assert!(subject.is_strategy());
        subject
    }

    #[test]
    fn the_cases_the_readme_names() {
        let range = strategy("range");
        let range_mm = strategy("range-mm");
        let ttm16 = strategy("ttm16");
        let prefault16 = strategy("prefault16");
        assert_eq!(predict(range, Sequential, 2 * MIB, GIB), 512);
        assert_eq!(predict(ttm16, Reverse, 2 * MIB, GIB), 262_144);
        assert_eq!(predict(ttm16, Sequential, 2 * MIB, GIB), 16_384);
        assert_eq!(predict(prefault16, Strided, 2 * MIB, GIB), 512);
        assert_eq!(predict(Subject::VfioPci, Sequential, 2 * MIB, GIB), 1);
        // The stock exports insert one PMD per fault: a 4 MiB page costs two.
        assert_eq!(predict(range, Sequential, 4 * MIB, GIB), 512);
        assert_eq!(predict(range_mm, Sequential, 4 * MIB, GIB), 256);
    }

    #[test]
    fn every_order_against_every_window() {
        let page = strategy("page");
        let prefault16 = strategy("prefault16");
        let ttm16 = strategy("ttm16");
        let range = strategy("range");
        let range_mm = strategy("range-mm");
        for order in [Sequential, Reverse, Random] {
            // One fault per page, per 64 KiB block, per device page: whatever the order.
            assert_eq!(predict(page, order, 2 * MIB, GIB), 262_144, "{order:?}");
            assert_eq!(
                predict(prefault16, order, 4 * KIB, GIB),
                16_384,
                "{order:?}"
            );
            assert_eq!(predict(range_mm, order, 64 * KIB, GIB), 16_384, "{order:?}");
            assert_eq!(predict(range, order, GIB, 2 * GIB), 2, "{order:?}");
            assert_eq!(predict(range, order, 4 * KIB, GIB), 262_144, "{order:?}");
            assert_eq!(predict(Subject::EagerRemap, order, 2 * MIB, GIB), 0);
        }
        // Forward prefault gains little when the touches do not go forward.
        let random = predict(ttm16, Random, 64 * KIB, GIB);
        assert!(random > 16_384 && random < 262_144, "{random}");
        // Strided: every touch lands in a new 2 MiB block, one page further in.
        for subject in [page, prefault16, ttm16, range, range_mm] {
            assert_eq!(predict(subject, Strided, 2 * MIB, GIB), 512, "{subject:?}");
        }
        // 4 MiB windows: the 2 MiB + 4 KiB stride hits each window twice.
        assert_eq!(predict(range_mm, Strided, 4 * MIB, GIB), 256);
        assert_eq!(predict(range_mm, Strided, GIB, GIB), 1);
    }

    #[test]
    fn vfio_maps_the_largest_leaf_the_mapping_allows() {
        assert_eq!(vfio_leaf(GIB), GIB);
        assert_eq!(vfio_leaf(2 * GIB), GIB);
        assert_eq!(vfio_leaf(64 * MIB), 2 * MIB);
        assert_eq!(vfio_leaf(MIB), PAGE);
        assert_eq!(vfio_leaf(3 * GIB / 2), 2 * MIB);
        // The smoke configuration: 64 MiB in 2 MiB leaves.
        assert_eq!(predict(Subject::VfioPci, Sequential, 2 * MIB, 64 * MIB), 32);
        assert_eq!(predict(Subject::VfioPci, Random, 4 * KIB, 64 * MIB), 32);
    }

    #[test]
    fn a_short_last_window_is_clipped() {
        // 3 MiB touched in 2 MiB windows: two faults, the second maps only 1 MiB.
        let w = FaultWindow::Aligned(2 * MIB);
        assert_eq!(replay(w, Sequential, 3 * MIB), 2);
        assert_eq!(replay(w, Reverse, 3 * MIB), 2);
        // 16 pages forward from the last page map the last page only.
        assert_eq!(
            replay(FaultWindow::Forward(64 * KIB), Reverse, 64 * KIB),
            16
        );
    }

    #[test]
    fn subjects_come_from_the_abi_and_the_peers() {
        for s in Strategy::ALL {
            let subject = Subject::from_name(s.name()).unwrap();
            assert_eq!(subject, Subject::Strategy(s));
            assert_eq!(subject.kind(), "strategy");
        }
        assert_eq!(Subject::from_name("vfio-pci"), Some(Subject::VfioPci));
        assert_eq!(Subject::from_name("eager-remap").unwrap().kind(), "peer");
        assert_eq!(Subject::from_name("dma-buf"), None);
        let ranks: Vec<usize> = Subject::all().map(Subject::rank).collect();
        assert_eq!(ranks, (0..Strategy::ALL.len() + 2).collect::<Vec<_>>());
    }

    #[test]
    fn the_page_set_fills_ranges_across_words() {
        let mut set = PageSet::new(200);
        set.insert_range(60, 130);
        assert!(!set.contains(59));
        assert!((60..130).all(|p| set.contains(p)));
        assert!(!set.contains(130));
        set.insert_range(190, 500);
        assert!(set.contains(199) && !set.contains(189));
        assert!(!set.contains(10_000));
    }

    #[test]
    fn sizes() {
        for (text, bytes) in [("4K", 4096), ("64k", 65_536), ("2M", 2 << 20), ("1G", GIB)] {
            assert_eq!(parse_size(text).ok(), Some(bytes));
        }
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert_eq!(parse_size("2X").ok(), None);
        assert_eq!(parse_size("").ok(), None);
        assert_eq!(format_size(4096), "4K");
        assert_eq!(format_size(64 << 10), "64K");
        assert_eq!(format_size(4 << 20), "4M");
        assert_eq!(format_size(2 * GIB), "2G");
        assert_eq!(format_size(1000), "1000");
    }
}
