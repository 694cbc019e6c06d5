//! Deterministic pseudo-random accesses: any offset, any size, any value
//! must be handled without panicking, and must not disturb read-only state.

use super::{cfg_read, device, reg_read};
use crate::abi::{self, reg};

/// xorshift64*: tiny, deterministic, good enough to scatter accesses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Offsets biased toward the interesting places: inside the space,
    /// just past its end, and near u64::MAX.
    fn offset(&mut self, space: u64) -> u64 {
        match self.below(8) {
            0 => u64::MAX - self.below(16),
            1 => space - 8 + self.below(16),
            2 => self.next(),
            _ => self.below(space),
        }
    }

    /// Values biased toward small numbers so self-test and enable bits get
    /// exercised rather than always rejected.
    fn value(&mut self) -> u64 {
        match self.below(4) {
            0 => self.below(4),
            1 => self.below(1 << 16),
            _ => self.next(),
        }
    }
}

#[test]
fn random_accesses_do_not_panic() {
    let mut d = device();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut buf = [0u8; 24];
    for _ in 0..20_000 {
        let len = match rng.below(4) {
            0 => rng.below(25) as usize,
            1 => 4,
            2 => 8,
            _ => [1, 2][rng.below(2) as usize],
        };
        for b in &mut buf[..len] {
            *b = rng.value() as u8;
        }
        let word = rng.value().to_le_bytes();
        if len <= 8 {
            buf[..len].copy_from_slice(&word[..len]);
        }
        match rng.below(4) {
            0 => d.config_read(rng.offset(256), &mut buf[..len]),
            1 => d.config_write(rng.offset(256), &buf[..len]),
            2 => d.regs_read(rng.offset(abi::REGS_BAR_SIZE), &mut buf[..len]),
            _ => {
                // Aligned offsets half the time so writes actually land.
                let mut offset = rng.offset(abi::REGS_BAR_SIZE);
                if rng.below(2) == 0 {
                    offset &= !3;
                }
                d.regs_write(offset, &buf[..len]);
            }
        }
        if rng.below(64) == 0 {
            d.signal_msix(rng.below(4) as u16);
            d.take_msix_deliverable();
        }
    }
    // Read-only state survived.
    assert_eq!(cfg_read(&mut d, 0, 2), u64::from(abi::VENDOR_ID));
    assert_eq!(cfg_read(&mut d, 2, 2), u64::from(abi::DEVICE_ID));
    assert_eq!(cfg_read(&mut d, 0x34, 1), u64::from(abi::VENDOR_CAP_OFFSET));
    assert_eq!(reg_read(&mut d, reg::MAGIC, 4), u64::from(abi::MAGIC));
    assert_eq!(reg_read(&mut d, reg::VRAM_SIZE_LO, 8), super::VRAM);
    let stats = d.stats();
    assert_eq!(
        stats.config_reads + stats.config_writes + stats.reg_reads + stats.reg_writes,
        20_000 + 5
    );
    assert!(stats.bad_accesses > 0);
    // With this seed a few doorbell writes reach the self-test engine.
    assert!(stats.selftests_run > 0, "{stats:?}");
}
