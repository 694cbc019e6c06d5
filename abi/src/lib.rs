//! What the device, the VMM, the guest tools and the kernel module must agree on, in one
//! `no_std` crate without dependencies: the device's PCI identity, config-space layout and BAR0
//! register map (this module), the driver's char-device ioctls ([`uapi`]), the VRAM test
//! pattern ([`pattern`]) and the benchmark's touch orders and fault windows ([`touch`]).
//!
//! The kernel module (`guest-driver/module`) cannot use crates and keeps its own copy in
//! `abi.rs` and `uapi.rs` there; `tests/kernel_mirror.rs` compiles those files and fails on any
//! constant, size or field offset that differs from this crate. Change both together.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod pattern;
pub mod touch;
pub mod uapi;

/// PCI vendor ID. 0x1234 is the placeholder ID that QEMU's experimental
/// devices (bochs-display, edu) use; rangefault has no registered ID.
pub const VENDOR_ID: u16 = 0x1234;
/// PCI device ID ("RF").
pub const DEVICE_ID: u16 = 0x5246;
pub const SUBSYSTEM_VENDOR_ID: u16 = VENDOR_ID;
pub const SUBSYSTEM_ID: u16 = 0x0001;
pub const REVISION: u8 = 1;
/// Display controller / other (0x0380): a VRAM-bearing device.
pub const CLASS_CODE: u32 = 0x03_80_00;

/// BAR indices.
pub const REGS_BAR: usize = 0;
pub const VRAM_BAR: usize = 2;
/// BAR0 size: one page of registers, MSI-X table and PBA.
pub const REGS_BAR_SIZE: u64 = 4096;

/// Config-space offset of the vendor-specific capability.
pub const VENDOR_CAP_OFFSET: u8 = 0x40;
/// Length of the vendor capability in bytes (cap header included).
pub const VENDOR_CAP_LEN: u8 = 0x10;
/// Vendor capability layout, relative to its start:
/// +0 id (0x09), +1 next, +2 length, +3 layout version,
/// +4 u32 log2(preferred page size), +8 u64 VRAM size in bytes.
/// Offsets of the capability's length and layout-version bytes.
pub const VENDOR_CAP_LENGTH_AT: u8 = 2;
pub const VENDOR_CAP_LAYOUT_VERSION_AT: u8 = 3;
pub const VENDOR_CAP_VERSION: u8 = 1;
pub const VENDOR_CAP_PAGE_SHIFT: u8 = 4;
pub const VENDOR_CAP_VRAM_SIZE: u8 = 8;
/// Config-space offset of the MSI-X capability.
pub const MSIX_CAP_OFFSET: u8 = 0x50;
/// Number of MSI-X vectors.
pub const MSIX_VECTORS: u16 = 2;
/// MSI-X table and PBA live in BAR0 at these offsets.
pub const MSIX_TABLE_OFFSET: u64 = 0x800;
pub const MSIX_PBA_OFFSET: u64 = 0xc00;

/// BAR0 registers. All are 32 bits wide; 64-bit values are lo/hi pairs.
pub mod reg {
    /// RO: [`super::MAGIC`].
    pub const MAGIC: u64 = 0x000;
    /// RO: [`super::ABI_VERSION`].
    pub const VERSION: u64 = 0x004;
    /// RO: VRAM size in bytes, low and high halves.
    pub const VRAM_SIZE_LO: u64 = 0x008;
    pub const VRAM_SIZE_HI: u64 = 0x00c;
    /// RO: log2 of the preferred page size.
    pub const PAGE_SHIFT: u64 = 0x010;
    /// RO: [`super::status`] bits.
    pub const STATUS: u64 = 0x014;
    /// RW: [`super::control`] bits.
    pub const CONTROL: u64 = 0x018;
    /// RW: free for the driver; reads back what was written.
    pub const SCRATCH: u64 = 0x01c;
    /// RW: self-test window (VRAM offset lo/hi, length, seed).
    pub const SELFTEST_OFFSET_LO: u64 = 0x020;
    pub const SELFTEST_OFFSET_HI: u64 = 0x024;
    pub const SELFTEST_LEN: u64 = 0x028;
    pub const SELFTEST_SEED: u64 = 0x02c;
    /// WO doorbell: write a [`super::selftest`] command; the device runs it
    /// synchronously on its own view of VRAM (the backing memfd).
    pub const SELFTEST_CMD: u64 = 0x030;
    /// RO: [`super::selftest`] result of the last command.
    pub const SELFTEST_RESULT: u64 = 0x034;
    /// RO: offset (relative to the window) of the first mismatching byte.
    pub const SELFTEST_MISMATCH_AT: u64 = 0x038;
    /// One past the last self-test register; the host page-table check registers
    /// ([`super::check`]) follow at 0x100.
    pub const END: u64 = 0x03c;
}

/// Host page-table check: the driver describes a range of the calling process's mapping of
/// VRAM; the device walks the guest's page tables (in guest RAM, from the host side) and leaves a
/// summary in these registers. The host keeps the full result for its report.
pub mod check {
    /// RW: guest-physical address of the process's top-level page table (what CR3 holds; bits
    /// 0..11 and 63 are ignored).
    pub const ROOT_LO: u64 = 0x100;
    pub const ROOT_HI: u64 = 0x104;
    /// RW: first virtual address and length (bytes, 4 KiB multiples) of the range to check.
    pub const VA_LO: u64 = 0x108;
    pub const VA_HI: u64 = 0x10c;
    pub const LEN_LO: u64 = 0x110;
    pub const LEN_HI: u64 = 0x114;
    /// RW: the VRAM (BAR2) offset that `VA` should map.
    pub const OFFSET_LO: u64 = 0x118;
    pub const OFFSET_HI: u64 = 0x11c;
    /// RW: the guest's IA32_PAT MSR as the driver sees it. Engines that can read the vCPU's
    /// own PAT (KVM) decode memory types with that and record any disagreement.
    pub const PAT_LO: u64 = 0x120;
    pub const PAT_HI: u64 = 0x124;
    /// RW: [`FLAG_LA57`] | [`FLAG_REQUIRE_PRESENT`] | strategy << [`STRATEGY_SHIFT`].
    pub const FLAGS: u64 = 0x128;
    /// WO doorbell: write [`RUN`]; the check runs synchronously.
    pub const DOORBELL: u64 = 0x12c;
    /// RO results of the last check.
    pub const STATUS: u64 = 0x130;
    pub const PAGES: u64 = 0x134;
    pub const PRESENT: u64 = 0x138;
    pub const LEAVES_4K: u64 = 0x13c;
    pub const LEAVES_2M: u64 = 0x140;
    pub const LEAVES_1G: u64 = 0x144;
    /// PAT memory-type encoding shared by every present page ([`MEMTYPE_UC`] ..
    /// [`MEMTYPE_UC_MINUS`]), or [`MEMTYPE_MIXED`].
    pub const MEMTYPE: u64 = 0x148;
    pub const MISMATCH_VA_LO: u64 = 0x14c;
    pub const MISMATCH_VA_HI: u64 = 0x150;
    /// [`MISMATCH_NONE`] .. [`MISMATCH_ROOT_NOT_CR3`].
    pub const MISMATCH_KIND: u64 = 0x154;
    /// Number of checks run so far (the host report's index of this one is `SEQ - 1`).
    pub const SEQ: u64 = 0x158;
    /// Present 4 KiB pages mapped by a leaf that is correct in every way (GPA, memory type,
    /// within the range) but smaller than the largest the strategy and alignment allow there:
    /// what Linux leaves after `MADV_NOHUGEPAGE`, an `mremap` of a PTE-mapped piece or a
    /// huge-entry fallback. Such pages pass (they are not a [`MISMATCH_WRONG_SIZE`]); they
    /// are included in PRESENT and their leaves in LEAVES_*. 0 unless the walk completed.
    pub const SMALLER_PAGES: u64 = 0x15c;
    /// One past the last check register.
    pub const END: u64 = 0x160;

    pub const FLAG_LA57: u32 = 1 << 0;
    pub const FLAG_REQUIRE_PRESENT: u32 = 1 << 1;
    /// Strategy the driver faulted with: [`STRATEGY_PAGE`], [`STRATEGY_PREFAULT16`],
    /// [`STRATEGY_RANGE`], [`STRATEGY_RANGE_MM`] or [`STRATEGY_TTM16`]. `page`, `prefault16`
    /// and `ttm16` allow 4K leaves
    /// only. `range` and `range-mm` allow leaves up to the largest the preferred page size
    /// allows where VA and address are aligned and the block lies in the range (1G for 1 GiB
    /// pages, 2M for 2 MiB..512 MiB), 4K otherwise. A correct leaf smaller than that is
    /// allowed and counted in [`SMALLER_PAGES`]; a leaf larger than the strategy allows is a
    /// [`MISMATCH_WRONG_SIZE`].
    pub const STRATEGY_SHIFT: u32 = 8;
    pub const STRATEGY_MASK: u32 = 0xff << STRATEGY_SHIFT;
    /// Strategy values (FLAGS bits 8..15).
    pub const STRATEGY_PAGE: u32 = 0;
    pub const STRATEGY_PREFAULT16: u32 = 1;
    pub const STRATEGY_RANGE: u32 = 2;
    /// `range-mm`: maps through the kernel's newer range API; expected leaves as `range`.
    pub const STRATEGY_RANGE_MM: u32 = 3;
    /// `ttm16`: 16 pages forward from the faulting one, as TTM prefaults; 4K leaves.
    pub const STRATEGY_TTM16: u32 = 4;
    pub const RUN: u32 = 1;

    pub const STATUS_IDLE: u32 = 0;
    pub const STATUS_PASS: u32 = 1;
    pub const STATUS_MISMATCH: u32 = 2;
    /// The page tables could not be walked (garbage, reserved bits, outside guest RAM).
    pub const STATUS_WALK_ERROR: u32 = 3;
    /// The request itself is invalid (unaligned, empty, too long, unknown strategy).
    pub const STATUS_BAD_REQUEST: u32 = 4;
    /// This engine gives the device no access to guest RAM.
    pub const STATUS_UNSUPPORTED: u32 = 5;

    /// MEMTYPE values: the PAT encodings, and [`MEMTYPE_MIXED`] when present pages differ.
    pub const MEMTYPE_UC: u32 = 0;
    pub const MEMTYPE_WC: u32 = 1;
    pub const MEMTYPE_WT: u32 = 4;
    pub const MEMTYPE_WP: u32 = 5;
    pub const MEMTYPE_WB: u32 = 6;
    pub const MEMTYPE_UC_MINUS: u32 = 7;
    pub const MEMTYPE_MIXED: u32 = 0xff;

    pub const MISMATCH_NONE: u32 = 0;
    pub const MISMATCH_NOT_PRESENT: u32 = 1;
    pub const MISMATCH_OUTSIDE_RANGE: u32 = 2;
    pub const MISMATCH_WRONG_GPA: u32 = 3;
    /// A leaf larger than the strategy allows (or, for a strict expectation, not the
    /// expected size). Smaller correct leaves are counted in [`SMALLER_PAGES`] instead.
    pub const MISMATCH_WRONG_SIZE: u32 = 4;
    pub const MISMATCH_WRONG_MEMTYPE: u32 = 5;
    /// ROOT is not the page table the CPU that rang the doorbell is using (its CR3, compared on
    /// bits 12..60, either half of a PTI pair accepted); STATUS is [`STATUS_MISMATCH`] whatever
    /// the walk found, and MISMATCH_VA is VA. Only engines that can read the vCPU's CR3 (KVM)
    /// report it.
    pub const MISMATCH_ROOT_NOT_CR3: u32 = 6;
}

/// Value of [`reg::MAGIC`]: "RFLT" in little-endian byte order.
pub const MAGIC: u32 = u32::from_le_bytes(*b"RFLT");
pub const ABI_VERSION: u32 = 1;

pub mod status {
    /// The device is enabled (CONTROL.ENABLE was set).
    pub const ENABLED: u32 = 1 << 0;
}

pub mod control {
    pub const ENABLE: u32 = 1 << 0;
}

pub mod selftest {
    /// Commands.
    pub const CMD_FILL: u32 = 1;
    pub const CMD_VERIFY: u32 = 2;
    /// Results.
    pub const RESULT_NONE: u32 = 0;
    pub const RESULT_PASS: u32 = 1;
    pub const RESULT_MISMATCH: u32 = 2;
    pub const RESULT_BAD_ARGS: u32 = 3;
}
