//! Type-0 PCI config space (256 bytes, no extended space).
//!
//! Modelled as bytes plus a per-byte write mask, as real hardware behaves:
//! a write changes only the writable bits, and everything else (IDs, BAR type
//! bits, capability contents) is read-only by construction. BAR sizing falls
//! out of the same rule: the address bits are the writable ones, so writing
//! all-ones reads back the size mask with the type bits intact.

use crate::abi;
use crate::config::DeviceConfig;

pub(crate) const SIZE: usize = 256;

// Standard type-0 header offsets.
pub(crate) const VENDOR_ID: usize = 0x00;
pub(crate) const DEVICE_ID: usize = 0x02;
pub(crate) const COMMAND: usize = 0x04;
pub(crate) const STATUS: usize = 0x06;
pub(crate) const REVISION: usize = 0x08;
pub(crate) const CLASS_CODE: usize = 0x09;
pub(crate) const HEADER_TYPE: usize = 0x0e;
pub(crate) const BAR0: usize = 0x10;
pub(crate) const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
pub(crate) const SUBSYSTEM_ID: usize = 0x2e;
pub(crate) const CAPABILITIES: usize = 0x34;
pub(crate) const INTERRUPT_LINE: usize = 0x3c;
pub(crate) const INTERRUPT_PIN: usize = 0x3d;

pub(crate) const CAP_ID_VENDOR: u8 = 0x09;
pub(crate) const CAP_ID_MSIX: u8 = 0x11;

pub(crate) const COMMAND_MEMORY: u16 = 1 << 1;
pub(crate) const COMMAND_BUS_MASTER: u16 = 1 << 2;
pub(crate) const COMMAND_INTX_DISABLE: u16 = 1 << 10;
pub(crate) const STATUS_CAP_LIST: u16 = 1 << 4;

/// BAR low bits: bits 2:1 = 0b10 is a 64-bit memory BAR; bit 3 prefetchable.
pub(crate) const BAR_MEM_64: u32 = 0b10 << 1;
pub(crate) const BAR_PREFETCH: u32 = 1 << 3;
const BAR_FLAGS_MASK: u32 = 0xf;

/// MSI-X message control: enable (bit 15) and function mask (bit 14).
pub(crate) const MSIX_ENABLE: u16 = 1 << 15;
pub(crate) const MSIX_FUNCTION_MASK: u16 = 1 << 14;

#[derive(Debug, Clone)]
pub(crate) struct PciConfigSpace {
    data: [u8; SIZE],
    wmask: [u8; SIZE],
}

impl PciConfigSpace {
    pub(crate) fn new(config: &DeviceConfig) -> Self {
        let mut s = Self {
            data: [0; SIZE],
            wmask: [0; SIZE],
        };
        s.set16(VENDOR_ID, abi::VENDOR_ID);
        s.set16(DEVICE_ID, abi::DEVICE_ID);
        s.set16(COMMAND, 0);
        s.wmask16(
            COMMAND,
            COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE,
        );
        s.set16(STATUS, STATUS_CAP_LIST);
        s.data[REVISION] = abi::REVISION;
        s.data[CLASS_CODE..CLASS_CODE + 3].copy_from_slice(&abi::CLASS_CODE.to_le_bytes()[..3]);
        s.data[HEADER_TYPE] = 0;
        s.set16(SUBSYSTEM_VENDOR_ID, abi::SUBSYSTEM_VENDOR_ID);
        s.set16(SUBSYSTEM_ID, abi::SUBSYSTEM_ID);
        s.data[CAPABILITIES] = abi::VENDOR_CAP_OFFSET;
        s.wmask[INTERRUPT_LINE] = 0xff;
        // Pin 0: no INTx, MSI-X only.
        s.data[INTERRUPT_PIN] = 0;

        // BAR0: 32-bit non-prefetchable memory (type bits all zero).
        let regs_mask = !(abi::REGS_BAR_SIZE - 1) as u32 & !BAR_FLAGS_MASK;
        s.wmask32(bar_offset(abi::REGS_BAR), regs_mask);
        // BAR2/3: 64-bit prefetchable. For sizes >= 4 GiB the low dword has
        // no address bits and the high dword's low bits are fixed too.
        let vram_mask = !(config.vram_size - 1);
        let lo = bar_offset(abi::VRAM_BAR);
        s.set32(lo, BAR_MEM_64 | BAR_PREFETCH);
        s.wmask32(lo, vram_mask as u32 & !BAR_FLAGS_MASK);
        s.wmask32(lo + 4, (vram_mask >> 32) as u32);

        // Vendor capability: read-only device geometry for the driver.
        let v = usize::from(abi::VENDOR_CAP_OFFSET);
        s.data[v] = CAP_ID_VENDOR;
        s.data[v + 1] = abi::MSIX_CAP_OFFSET;
        s.data[v + usize::from(abi::VENDOR_CAP_LENGTH_AT)] = abi::VENDOR_CAP_LEN;
        s.data[v + usize::from(abi::VENDOR_CAP_LAYOUT_VERSION_AT)] = abi::VENDOR_CAP_VERSION;
        s.set32(
            v + usize::from(abi::VENDOR_CAP_PAGE_SHIFT),
            config.page_shift(),
        );
        let size_at = v + usize::from(abi::VENDOR_CAP_VRAM_SIZE);
        s.data[size_at..size_at + 8].copy_from_slice(&config.vram_size.to_le_bytes());

        // MSI-X capability: table and PBA both in BAR0 (BIR 0).
        let m = usize::from(abi::MSIX_CAP_OFFSET);
        s.data[m] = CAP_ID_MSIX;
        s.data[m + 1] = 0;
        s.set16(m + 2, abi::MSIX_VECTORS - 1);
        s.wmask16(m + 2, MSIX_ENABLE | MSIX_FUNCTION_MASK);
        s.set32(m + 4, abi::MSIX_TABLE_OFFSET as u32 | abi::REGS_BAR as u32);
        s.set32(m + 8, abi::MSIX_PBA_OFFSET as u32 | abi::REGS_BAR as u32);
        s
    }

    /// Reads `data.len()` bytes at `offset`; bytes past the end read 0xff
    /// (as with no extended config space). Returns false if any byte was
    /// out of range.
    pub(crate) fn read(&self, offset: u64, data: &mut [u8]) -> bool {
        let mut in_range = true;
        for (i, out) in data.iter_mut().enumerate() {
            *out = match index(offset, i) {
                Some(idx) => self.data[idx],
                None => {
                    in_range = false;
                    0xff
                }
            };
        }
        in_range
    }

    /// Writes the writable bits of each byte; bytes past the end are dropped.
    /// Returns false if any byte was out of range.
    pub(crate) fn write(&mut self, offset: u64, data: &[u8]) -> bool {
        let mut in_range = true;
        for (i, &value) in data.iter().enumerate() {
            match index(offset, i) {
                Some(idx) => {
                    let mask = self.wmask[idx];
                    self.data[idx] = (self.data[idx] & !mask) | (value & mask);
                }
                None => in_range = false,
            }
        }
        in_range
    }

    pub(crate) fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    /// (MSI-X enable, function mask) from the capability's message control.
    pub(crate) fn msix_control(&self) -> (bool, bool) {
        let ctl = self.get16(usize::from(abi::MSIX_CAP_OFFSET) + 2);
        (ctl & MSIX_ENABLE != 0, ctl & MSIX_FUNCTION_MASK != 0)
    }

    /// Guest-programmed base address of an implemented BAR, `None` if the
    /// BAR does not exist or holds 0.
    pub(crate) fn bar_address(&self, bar: usize) -> Option<u64> {
        let addr = match bar {
            abi::REGS_BAR => u64::from(self.get32(bar_offset(bar)) & !BAR_FLAGS_MASK),
            abi::VRAM_BAR => {
                let lo = self.get32(bar_offset(bar)) & !BAR_FLAGS_MASK;
                let hi = self.get32(bar_offset(bar) + 4);
                u64::from(lo) | (u64::from(hi) << 32)
            }
            _ => return None,
        };
        (addr != 0).then_some(addr)
    }

    fn get16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.data[at], self.data[at + 1]])
    }

    fn get32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.data[at..at + 4].try_into().expect("4 bytes"))
    }

    fn set16(&mut self, at: usize, v: u16) {
        self.data[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, at: usize, v: u32) {
        self.data[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn wmask16(&mut self, at: usize, m: u16) {
        self.wmask[at..at + 2].copy_from_slice(&m.to_le_bytes());
    }

    fn wmask32(&mut self, at: usize, m: u32) {
        self.wmask[at..at + 4].copy_from_slice(&m.to_le_bytes());
    }
}

pub(crate) fn bar_offset(bar: usize) -> usize {
    BAR0 + 4 * bar
}

/// Config-space index of byte `i` of an access at `offset`, if in range
/// (overflow-safe for any offset).
fn index(offset: u64, i: usize) -> Option<usize> {
    let at = offset.checked_add(i as u64)?;
    (at < SIZE as u64).then_some(at as usize)
}
