//! The guest-physical address map of the KVM machine: where RAM, the PCI
//! holes, the platform's fixed MMIO and the boot structures live.
//!
//! It follows the PC conventions Linux expects (and firecracker /
//! cloud-hypervisor use): RAM from 0 up to the 32-bit PCI hole at 3 GiB, the
//! rest of RAM from 4 GiB, the IOAPIC/LAPIC and KVM's private pages at the
//! top of the first 4 GiB, and 64-bit BARs above all RAM.

use std::ops::Range;

/// One KiB, MiB, GiB (for readable constants).
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The boot GDT (null, code, data, TSS descriptors).
pub const GDT_ADDR: u64 = 0x500;
/// An empty IDT: the kernel installs its own before enabling interrupts.
pub const IDT_ADDR: u64 = 0x520;
/// Linux's `boot_params` ("zero page").
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// Initial stack of the boot vCPU (grows down, below the page tables).
pub const BOOT_STACK_TOP: u64 = 0x8ff0;
/// Identity-mapping page tables: PML4, then one PDPT, then the PDs.
pub const PML4_ADDR: u64 = 0x9000;
pub const PDPT_ADDR: u64 = 0xa000;
pub const PD_ADDR: u64 = 0xb000;
/// The boot page tables identity-map [0, this) with 2 MiB pages: the first
/// 4 GiB (kernel, boot data, the 32-bit PCI hole) and the 4 GiB above,
/// where tiny guests place 64-bit BARs. 8 PDs fit between PD_ADDR and
/// CMDLINE_ADDR.
pub const IDENTITY_MAP_END: u64 = 8 * GIB;
/// The kernel command line (NUL-terminated).
pub const CMDLINE_ADDR: u64 = 0x2_0000;
/// x86 Linux's COMMAND_LINE_SIZE, NUL included.
pub const CMDLINE_MAX: usize = 2048;
/// Start of the Extended BIOS Data Area; the MP table lives here, where
/// Linux scans for it ("bottom 1 KiB of base memory").
pub const EBDA_ADDR: u64 = 0x9_fc00;
/// Everything from the EBDA to 1 MiB is the legacy BIOS/VGA area: backed by
/// RAM but reported as reserved.
pub const HIGH_MEMORY_START: u64 = MIB;

/// RAM below 4 GiB ends here at the latest: 3 GiB .. 4 GiB is the 32-bit
/// PCI hole (BARs below 4 GiB) plus the platform's fixed MMIO.
pub const PCI_HOLE_START: u64 = 3 * GIB;
/// RAM that does not fit below the hole continues here.
pub const HIGH_RAM_START: u64 = 4 * GIB;
/// From here to 4 GiB the platform owns the addresses: IOAPIC (0xfec00000),
/// LAPIC (0xfee00000), KVM's TSS and identity-map pages, the BIOS ROM
/// alias. BARs placed here are refused.
pub const PLATFORM_MMIO_START: u64 = 0xfec0_0000;
/// KVM needs three pages for the real-mode TSS (Intel VMX only) ...
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// ... and one for the EPT identity map, just below it.
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;
/// Where the VMM's "firmware" puts BAR0 before booting Linux.
pub const MMIO32_BAR_BASE: u64 = PCI_HOLE_START;

/// The IOAPIC and LAPIC bases (the in-kernel irqchip serves them).
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
pub const LAPIC_ADDR: u32 = 0xfee0_0000;

/// e820 entry types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// One e820 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// Where the guest's RAM is, for a given RAM size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMap {
    /// Guest-physical RAM ranges, ascending (one or two).
    ram: Vec<Range<u64>>,
}

/// Why a RAM size cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("guest RAM of {0:#x} bytes is too small (at least 2 MiB, a multiple of 4 KiB)")]
    TooSmall(u64),
    #[error("guest RAM of {0:#x} bytes does not fit the address space")]
    TooLarge(u64),
}

impl MemoryMap {
    pub fn new(ram_size: u64) -> Result<Self, LayoutError> {
        if ram_size < 2 * MIB || !ram_size.is_multiple_of(4 * KIB) {
            return Err(LayoutError::TooSmall(ram_size));
        }
        let low = ram_size.min(PCI_HOLE_START);
        let mut ram = Vec::with_capacity(2);
        ram.push(0..low);
        let high = ram_size - low;
        if high > 0 {
            let end = HIGH_RAM_START
                .checked_add(high)
                .ok_or(LayoutError::TooLarge(ram_size))?;
            ram.push(HIGH_RAM_START..end);
        }
        Ok(Self { ram })
    }

    pub fn ram(&self) -> &[Range<u64>] {
        &self.ram
    }

    /// End of the RAM below the PCI hole.
    pub fn low_ram_end(&self) -> u64 {
        self.ram[0].end
    }

    /// One past the highest RAM address.
    pub fn ram_top(&self) -> u64 {
        self.ram.last().map_or(0, |r| r.end)
    }

    /// The e820 map Linux gets: RAM below the EBDA, the legacy area
    /// reserved, RAM from 1 MiB, the platform MMIO reserved, high RAM. The
    /// PCI hole is left out, so Linux sees it as free for BARs.
    pub fn e820(&self) -> Vec<E820Entry> {
        let mut map = vec![
            E820Entry {
                addr: 0,
                size: EBDA_ADDR,
                kind: E820_RAM,
            },
            E820Entry {
                addr: EBDA_ADDR,
                size: HIGH_MEMORY_START - EBDA_ADDR,
                kind: E820_RESERVED,
            },
        ];
        if self.low_ram_end() > HIGH_MEMORY_START {
            map.push(E820Entry {
                addr: HIGH_MEMORY_START,
                size: self.low_ram_end() - HIGH_MEMORY_START,
                kind: E820_RAM,
            });
        }
        map.push(E820Entry {
            addr: PLATFORM_MMIO_START,
            size: HIGH_RAM_START - PLATFORM_MMIO_START,
            kind: E820_RESERVED,
        });
        map.extend(self.ram.get(1).map(|high| E820Entry {
            addr: high.start,
            size: high.end - high.start,
            kind: E820_RAM,
        }));
        map
    }

    /// Where the "firmware" puts a 64-bit BAR of `size` bytes (a power of
    /// two) for Linux: above all RAM and above 4 GiB, naturally aligned.
    pub fn high_bar_base(&self, size: u64) -> Option<u64> {
        let floor = self.ram_top().max(HIGH_RAM_START);
        let align = size.max(GIB);
        floor.checked_next_multiple_of(align)
    }
}

/// Whether two half-open ranges share an address.
pub fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ram_is_one_range_below_the_hole() {
        let map = MemoryMap::new(512 * MIB).unwrap();
        assert_eq!(map.ram().len(), 1);
        assert_eq!(map.ram()[0], 0..512 * MIB);
        let e820 = map.e820();
        assert_eq!(e820[0].size, EBDA_ADDR);
        assert_eq!(e820[1].kind, E820_RESERVED);
        assert_eq!(e820[2].addr, HIGH_MEMORY_START);
        assert_eq!(e820[2].addr + e820[2].size, 512 * MIB);
        assert_eq!(e820.len(), 4);
        assert_eq!(map.high_bar_base(GIB), Some(4 * GIB));
    }

    #[test]
    fn large_ram_skips_the_pci_hole() {
        let map = MemoryMap::new(8 * GIB).unwrap();
        assert_eq!(map.ram(), &[0..3 * GIB, 4 * GIB..9 * GIB]);
        let e820 = map.e820();
        let ram: u64 = e820
            .iter()
            .filter(|e| e.kind == E820_RAM)
            .map(|e| e.size)
            .sum();
        // The legacy area is RAM-backed but reserved.
        assert_eq!(ram, 8 * GIB - (HIGH_MEMORY_START - EBDA_ADDR));
        for e in &e820 {
            let range = e.addr..e.addr + e.size;
            assert!(!overlaps(&range, &(PCI_HOLE_START..PLATFORM_MMIO_START)));
        }
        assert_eq!(map.high_bar_base(4 * GIB), Some(12 * GIB));
        assert_eq!(map.high_bar_base(64 * GIB), Some(64 * GIB));
    }

    #[test]
    fn odd_sizes_are_rejected() {
        assert!(MemoryMap::new(0).is_err());
        assert!(MemoryMap::new(4 * MIB + 1).is_err());
        assert!(MemoryMap::new(!0xfff).is_err());
    }
}
