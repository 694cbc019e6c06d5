// SPDX-License-Identifier: GPL-2.0

//! The device's guest-visible ABI, the kernel's copy of `abi/src/lib.rs` (crate
//! `rangefault-abi`).
//!
//! The numbers must match that file; change both together: that crate's `tests/kernel_mirror.rs`
//! compiles this file on the host and fails on any value that differs. Only the types differ: offsets are
//! `usize` and BAR indices `u32` because that is what the kernel's I/O and PCI APIs take.

// The driver grows into the ABI step by step; a mirror that is complete is easier to compare with
// its original than one trimmed to what the code uses today.
#![allow(dead_code)]

/// PCI vendor ID (QEMU's placeholder for experimental devices; not in `pci_ids.h`).
pub(crate) const VENDOR_ID: u16 = 0x1234;
/// PCI device ID ("RF").
pub(crate) const DEVICE_ID: u16 = 0x5246;

/// BAR holding the registers, the MSI-X table and the PBA.
pub(crate) const REGS_BAR: u32 = 0;
/// BAR exposing the VRAM.
pub(crate) const VRAM_BAR: u32 = 2;
/// Size of [`REGS_BAR`] in bytes.
pub(crate) const REGS_BAR_SIZE: usize = 4096;

/// Config-space offset where the device model places its vendor-specific capability. The driver
/// finds the capability by walking the list; this value only documents where it should be.
pub(crate) const VENDOR_CAP_OFFSET: usize = 0x40;
/// Length of the vendor capability in bytes, cap header included.
pub(crate) const VENDOR_CAP_LEN: u8 = 0x10;
/// Vendor capability layout, relative to its start: +0 id (0x09), +1 next, +2 length,
/// +3 layout version, +4 u32 log2(preferred page size), +8 u64 VRAM size in bytes.
pub(crate) const VENDOR_CAP_LENGTH_AT: usize = 2;
pub(crate) const VENDOR_CAP_LAYOUT_VERSION_AT: usize = 3;
pub(crate) const VENDOR_CAP_VERSION: u8 = 1;
pub(crate) const VENDOR_CAP_PAGE_SHIFT: usize = 4;
pub(crate) const VENDOR_CAP_VRAM_SIZE: usize = 8;

/// Config-space offset of the MSI-X capability.
pub(crate) const MSIX_CAP_OFFSET: usize = 0x50;
/// Number of MSI-X vectors.
pub(crate) const MSIX_VECTORS: u16 = 2;
/// MSI-X table and PBA offsets in [`REGS_BAR`].
pub(crate) const MSIX_TABLE_OFFSET: usize = 0x800;
pub(crate) const MSIX_PBA_OFFSET: usize = 0xc00;

/// [`REGS_BAR`] registers. All are 32 bits wide; 64-bit values are lo/hi pairs.
pub(crate) mod reg {
    /// RO: [`super::MAGIC`].
    pub(crate) const MAGIC: usize = 0x000;
    /// RO: [`super::ABI_VERSION`].
    pub(crate) const VERSION: usize = 0x004;
    /// RO: VRAM size in bytes, low and high halves.
    pub(crate) const VRAM_SIZE_LO: usize = 0x008;
    pub(crate) const VRAM_SIZE_HI: usize = 0x00c;
    /// RO: log2 of the preferred page size.
    pub(crate) const PAGE_SHIFT: usize = 0x010;
    /// RO: [`super::status`] bits.
    pub(crate) const STATUS: usize = 0x014;
    /// RW: [`super::control`] bits.
    pub(crate) const CONTROL: usize = 0x018;
    /// RW: free for the driver; reads back what was written.
    pub(crate) const SCRATCH: usize = 0x01c;
    /// RW: self-test window (VRAM offset lo/hi, length, seed).
    pub(crate) const SELFTEST_OFFSET_LO: usize = 0x020;
    pub(crate) const SELFTEST_OFFSET_HI: usize = 0x024;
    pub(crate) const SELFTEST_LEN: usize = 0x028;
    pub(crate) const SELFTEST_SEED: usize = 0x02c;
    /// WO doorbell: a [`super::selftest`] command, run synchronously by the device.
    pub(crate) const SELFTEST_CMD: usize = 0x030;
    /// RO: [`super::selftest`] result of the last command.
    pub(crate) const SELFTEST_RESULT: usize = 0x034;
    /// RO: offset (relative to the window) of the first mismatching byte.
    pub(crate) const SELFTEST_MISMATCH_AT: usize = 0x038;
    /// One past the last defined register.
    pub(crate) const END: usize = 0x03c;
}

/// Value of [`reg::MAGIC`]: "RFLT" in little-endian byte order.
pub(crate) const MAGIC: u32 = u32::from_le_bytes(*b"RFLT");
/// Value of [`reg::VERSION`] this driver speaks.
pub(crate) const ABI_VERSION: u32 = 1;

pub(crate) mod status {
    /// The device is enabled (CONTROL.ENABLE was set).
    pub(crate) const ENABLED: u32 = 1 << 0;
}

pub(crate) mod control {
    /// Turns the device on; VRAM accesses are meant to happen only while it is set.
    pub(crate) const ENABLE: u32 = 1 << 0;
}

pub(crate) mod selftest {
    /// Commands.
    pub(crate) const CMD_FILL: u32 = 1;
    pub(crate) const CMD_VERIFY: u32 = 2;
    /// Results.
    pub(crate) const RESULT_NONE: u32 = 0;
    pub(crate) const RESULT_PASS: u32 = 1;
    pub(crate) const RESULT_MISMATCH: u32 = 2;
    pub(crate) const RESULT_BAD_ARGS: u32 = 3;
}

/// Host page-table check registers (see `abi/src/lib.rs`, `check`).
pub(crate) mod check {
    pub(crate) const ROOT_LO: usize = 0x100;
    pub(crate) const ROOT_HI: usize = 0x104;
    pub(crate) const VA_LO: usize = 0x108;
    pub(crate) const VA_HI: usize = 0x10c;
    pub(crate) const LEN_LO: usize = 0x110;
    pub(crate) const LEN_HI: usize = 0x114;
    pub(crate) const OFFSET_LO: usize = 0x118;
    pub(crate) const OFFSET_HI: usize = 0x11c;
    pub(crate) const PAT_LO: usize = 0x120;
    pub(crate) const PAT_HI: usize = 0x124;
    pub(crate) const FLAGS: usize = 0x128;
    pub(crate) const DOORBELL: usize = 0x12c;
    pub(crate) const STATUS: usize = 0x130;
    pub(crate) const PAGES: usize = 0x134;
    pub(crate) const PRESENT: usize = 0x138;
    pub(crate) const LEAVES_4K: usize = 0x13c;
    pub(crate) const LEAVES_2M: usize = 0x140;
    pub(crate) const LEAVES_1G: usize = 0x144;
    pub(crate) const MEMTYPE: usize = 0x148;
    pub(crate) const MISMATCH_VA_LO: usize = 0x14c;
    pub(crate) const MISMATCH_VA_HI: usize = 0x150;
    pub(crate) const MISMATCH_KIND: usize = 0x154;
    pub(crate) const SEQ: usize = 0x158;
    pub(crate) const SMALLER_PAGES: usize = 0x15c;
    pub(crate) const STATUS_PASS: u32 = 1;
    pub(crate) const MEMTYPE_MIXED: u32 = 0xff;

    pub(crate) const FLAG_LA57: u32 = 1 << 0;
    pub(crate) const FLAG_REQUIRE_PRESENT: u32 = 1 << 1;
    pub(crate) const STRATEGY_SHIFT: u32 = 8;
    pub(crate) const RUN: u32 = 1;
}
