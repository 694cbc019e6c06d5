//! The device's guest-visible ABI: PCI identity, config-space layout and the
//! BAR0 register map. The kernel module (`guest-driver/module`) and the
//! guest tools mirror these numbers; change them together.

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
    /// One past the last defined register (0x100..0x800 is reserved for the
    /// host page-table check).
    pub const END: u64 = 0x03c;
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
