//! The device model's config space and BAR0 register file, driven by a
//! sequence of accesses as an engine forwards them, with guest RAM the
//! input fills (page tables or garbage) behind the host-check doorbell.
//!
//! Invariants (each access's own bytes and each doorbell's result as they
//! happen, all of them at the end of the input: a read-only byte or
//! register that an access changed stays changed until then):
//! - config space equals a shadow model kept from the PCI rules alone: a
//!   write changes only the writable bits (COMMAND's three, INTERRUPT_LINE,
//!   the BARs' address bits above their size, MSI-X enable/mask), so IDs,
//!   BAR type bits, BAR sizing masks and the capabilities never change, and
//!   bytes past 256 read 0xff;
//! - BAR0's identity registers (magic, ABI version, VRAM size, page shift)
//!   never change;
//! - every host check ends in a defined status whose registers agree with
//!   each other and with the device's record of it;
//! - the access counters count every access.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use device_model::abi::{self, check, reg};
use device_model::{DeviceConfig, RangefaultDevice};

use rangefault_fuzz::device_ops::{self, DeviceOp};

const VRAM: u64 = 64 << 20;
/// Guest RAM at GPA 0: every 8-byte slot a u16 can name.
const RAM: usize = 8 << 16;
const CONFIG_SIZE: usize = 256;

/// Which bits of each config byte a write may change, from the PCI spec and
/// the device's geometry (not from the model's own mask).
fn writable_bits(vram_size: u64) -> [u8; CONFIG_SIZE] {
    let mut mask = [0u8; CONFIG_SIZE];
    // COMMAND: memory space, bus master, INTx disable.
    mask[0x04] = 0b0000_0110;
    mask[0x05] = 0b0000_0100;
    mask[0x3c] = 0xff; // INTERRUPT_LINE
                       // BAR0: 32-bit, address bits above its size.
    let bar0 = !(abi::REGS_BAR_SIZE as u32 - 1) & !0xf;
    mask[0x10..0x14].copy_from_slice(&bar0.to_le_bytes());
    // BAR2/BAR3: one 64-bit BAR, address bits above the VRAM size.
    let bar2 = !(vram_size - 1) & !0xf;
    mask[0x18..0x20].copy_from_slice(&bar2.to_le_bytes());
    // MSI-X message control: enable (15) and function mask (14).
    mask[usize::from(abi::MSIX_CAP_OFFSET) + 3] = 0xc0;
    mask
}

struct Harness {
    device: RangefaultDevice,
    ram: GuestMemoryMmap,
    shadow: [u8; CONFIG_SIZE],
    writable: [u8; CONFIG_SIZE],
    /// Accesses made through the device's four entry points.
    accesses: u64,
    doorbells: u64,
}

impl Harness {
    fn new(page_shift: u32) -> Self {
        let config = DeviceConfig::new(VRAM, 1 << page_shift).expect("a valid geometry");
        let mut device = RangefaultDevice::new(config).expect("the device");
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).expect("guest RAM");
        // The clone shares the mapping: RamWrite changes what checks see.
        device.set_guest_access(Box::new(std::sync::Arc::new(ram.clone())));
        let mut shadow = [0u8; CONFIG_SIZE];
        device.config_read(0, &mut shadow);
        let mut harness = Self {
            device,
            ram,
            shadow,
            writable: writable_bits(VRAM),
            accesses: 1,
            doorbells: 0,
        };
        harness.check_fresh();
        harness
    }

    /// The power-on values the ABI promises (what the shadow starts from).
    fn check_fresh(&mut self) {
        let s = &self.shadow;
        let u16_at = |at: usize| u16::from_le_bytes([s[at], s[at + 1]]);
        assert_eq!(u16_at(0x00), abi::VENDOR_ID);
        assert_eq!(u16_at(0x02), abi::DEVICE_ID);
        assert_eq!(u16_at(0x04), 0, "COMMAND starts clear");
        assert_eq!(s[0x08], abi::REVISION);
        assert_eq!(&s[0x09..0x0c], &abi::CLASS_CODE.to_le_bytes()[..3]);
        assert_eq!(s[0x0e], 0, "type-0 header");
        assert_eq!(u16_at(0x2c), abi::SUBSYSTEM_VENDOR_ID);
        assert_eq!(u16_at(0x2e), abi::SUBSYSTEM_ID);
        assert_eq!(s[0x34], abi::VENDOR_CAP_OFFSET);
        assert_eq!(s[0x3d], 0, "no INTx pin");
        // BAR type bits: BAR0 32-bit memory, BAR2 64-bit prefetchable.
        assert_eq!(s[0x10] & 0xf, 0);
        assert_eq!(s[0x18] & 0xf, 0b1100);
        for unimplemented in [0x14, 0x20, 0x24, 0x30] {
            assert_eq!(&s[unimplemented..unimplemented + 4], &[0; 4]);
        }
        let v = usize::from(abi::VENDOR_CAP_OFFSET);
        let size_at = v + usize::from(abi::VENDOR_CAP_VRAM_SIZE);
        assert_eq!(
            u64::from_le_bytes(s[size_at..size_at + 8].try_into().unwrap()),
            VRAM
        );
    }

    fn config_read(&mut self, offset: u64, data: &mut [u8]) {
        self.accesses += 1;
        self.device.config_read(offset, data);
    }

    fn regs_read32(&mut self, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        self.accesses += 1;
        self.device.regs_read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn apply(&mut self, op: DeviceOp) {
        match op {
            DeviceOp::ConfigRead { offset, len } => {
                let mut data = vec![0u8; len];
                self.config_read(offset, &mut data);
                for (i, byte) in data.iter().enumerate() {
                    let expected = config_index(offset, i).map_or(0xff, |at| self.shadow[at]);
                    assert_eq!(*byte, expected, "config byte {i} of a read at {offset:#x}");
                }
            }
            DeviceOp::ConfigWrite { offset, data } => {
                self.accesses += 1;
                self.device.config_write(offset, &data);
                for (i, &value) in data.iter().enumerate() {
                    if let Some(at) = config_index(offset, i) {
                        let mask = self.writable[at];
                        self.shadow[at] = (self.shadow[at] & !mask) | (value & mask);
                    }
                }
                self.device.take_msix_deliverable();
                // The bytes written; the rest of config space is compared
                // at the end (a stray change to it lasts until then).
                let mut written = vec![0u8; data.len()];
                self.config_read(offset, &mut written);
                for (i, byte) in written.iter().enumerate() {
                    let expected = config_index(offset, i).map_or(0xff, |at| self.shadow[at]);
                    assert_eq!(*byte, expected, "config byte {i} of a write at {offset:#x}");
                }
                self.check_bar2_address();
            }
            DeviceOp::Bar0Read { offset, len } => {
                let mut data = vec![0u8; len];
                self.accesses += 1;
                self.device.regs_read(offset, &mut data);
            }
            DeviceOp::Bar0Write { offset, mut data } => {
                cap_selftest_len(offset, &mut data);
                let seq_before = self.regs_read32(check::SEQ);
                self.accesses += 1;
                self.device.regs_write(offset, &data);
                self.device.take_msix_deliverable();
                let rang = self.regs_read32(check::SEQ).wrapping_sub(seq_before);
                if rang != 0 {
                    self.doorbells += u64::from(rang);
                    self.check_host_check_result();
                }
            }
            DeviceOp::RamWrite { slot, value } => {
                self.ram
                    .write_obj(value, GuestAddress(u64::from(slot) * 8))
                    .expect("every slot is inside guest RAM");
            }
            DeviceOp::SignalMsix { vector } => {
                self.device.signal_msix(u16::from(vector));
                self.device.take_msix_deliverable();
            }
        }
    }

    /// The invariants that hold between any two accesses.
    fn check_invariants(&mut self) {
        self.check_config();
        self.check_identity();
        let stats = self.device.stats();
        assert_eq!(
            stats.config_reads + stats.config_writes + stats.reg_reads + stats.reg_writes,
            self.accesses
        );
        assert!(self.device.host_checks().len() <= device_model::host_check::MAX_RECORDS);
    }

    fn check_config(&mut self) {
        let mut config = [0u8; CONFIG_SIZE + 16];
        self.config_read(0, &mut config);
        assert_eq!(&config[..CONFIG_SIZE], &self.shadow[..], "config space");
        assert!(config[CONFIG_SIZE..].iter().all(|&b| b == 0xff));
        self.check_bar2_address();
    }

    /// The address the device decodes BAR2 at is the one config space shows.
    fn check_bar2_address(&self) {
        let bar2 = u64::from_le_bytes(self.shadow[0x18..0x20].try_into().unwrap()) & !0xf;
        assert_eq!(
            self.device.bar_address(abi::VRAM_BAR),
            Some(bar2).filter(|&a| a != 0)
        );
    }

    /// BAR0's identity registers.
    fn check_identity(&mut self) {
        assert_eq!(self.regs_read32(reg::MAGIC), abi::MAGIC);
        assert_eq!(self.regs_read32(reg::VERSION), abi::ABI_VERSION);
        assert_eq!(self.regs_read32(reg::VRAM_SIZE_LO), VRAM as u32);
        assert_eq!(self.regs_read32(reg::VRAM_SIZE_HI), (VRAM >> 32) as u32);
        let page_shift = self.device.config().page_shift();
        assert_eq!(self.regs_read32(reg::PAGE_SHIFT), page_shift);
    }

    /// A doorbell rang: its result registers describe one defined outcome,
    /// the one the device recorded.
    fn check_host_check_result(&mut self) {
        let status = self.regs_read32(check::STATUS);
        let kind = self.regs_read32(check::MISMATCH_KIND);
        let pages = self.regs_read32(check::PAGES);
        let present = self.regs_read32(check::PRESENT);
        assert!(
            (check::STATUS_PASS..=check::STATUS_UNSUPPORTED).contains(&status),
            "status {status} after a doorbell"
        );
        assert!(present <= pages, "{present} of {pages} pages present");
        match status {
            check::STATUS_PASS => assert_eq!(kind, check::MISMATCH_NONE),
            check::STATUS_MISMATCH => assert!(
                (check::MISMATCH_NOT_PRESENT..=check::MISMATCH_ROOT_NOT_CR3).contains(&kind),
                "mismatch kind {kind}"
            ),
            _ => {}
        }
        let recorded = self.device.host_checks().len() as u64 + self.device.host_checks_dropped();
        assert_eq!(
            recorded, self.doorbells,
            "every doorbell that ran is recorded"
        );
        // The last record is this check's while records are still kept.
        let latest = match self.device.host_checks_dropped() {
            0 => self.device.host_checks().last(),
            _ => None,
        };
        if let Some(record) = latest {
            if let Some(outcome) = &record.outcome {
                assert_eq!(outcome.pass, outcome.first_mismatch.is_none());
                assert!(outcome.present <= outcome.pages);
                assert_eq!(u64::from(pages), outcome.pages.min(u64::from(u32::MAX)));
            }
        }
    }
}

/// Config-space index of byte `i` of an access at `offset`, if inside.
fn config_index(offset: u64, i: usize) -> Option<usize> {
    let at = offset.checked_add(i as u64)?;
    (at < CONFIG_SIZE as u64).then_some(at as usize)
}

/// Keeps a self-test under 64 KiB (SELFTEST_LEN's upper half is zeroed), so
/// one input fills or verifies at most that much VRAM and the fuzzer's
/// executions stay fast; the self-test's length handling is the unit tests'.
fn cap_selftest_len(offset: u64, data: &mut [u8]) {
    for (i, byte) in data.iter_mut().enumerate() {
        if let Some(at) = offset.checked_add(i as u64) {
            if (reg::SELFTEST_LEN + 2..reg::SELFTEST_LEN + 4).contains(&at) {
                *byte = 0;
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&geometry, ops)) = input.split_first() else {
        return;
    };
    // Preferred page sizes 4K ..= 64M (VRAM is 64M).
    let page_shift = 12 + u32::from(geometry) % 15;
    let mut harness = Harness::new(page_shift);
    for op in device_ops::decode(ops) {
        harness.apply(op);
    }
    harness.check_invariants();
});
