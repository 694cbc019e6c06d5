//! BAR0 registers through sysfs (the driver keeps BAR0 mapped too; both are fine to read).

use rangefault_abi::{self as abi, reg};

use crate::mapping::Mapping;
use crate::sysfs::PciFunction;
use crate::ProbeError;

pub struct Registers {
    map: Mapping,
}

impl Registers {
    pub fn open(function: &PciFunction) -> Result<Self, ProbeError> {
        let map = Mapping::open(
            &function.resource_path(abi::REGS_BAR),
            0,
            abi::REGS_BAR_SIZE as usize,
        )?;
        Ok(Self { map })
    }

    pub fn read(&self, register: u64) -> u32 {
        self.map.read32(register as usize)
    }

    pub fn write(&self, register: u64, value: u32) {
        self.map.write32(register as usize, value)
    }

    /// Runs a device self-test command over `[offset, offset + len)`; returns the result code.
    pub fn selftest(&self, command: u32, offset: u64, len: u32, seed: u32) -> u32 {
        self.write(reg::SELFTEST_OFFSET_LO, offset as u32);
        self.write(reg::SELFTEST_OFFSET_HI, (offset >> 32) as u32);
        self.write(reg::SELFTEST_LEN, len);
        self.write(reg::SELFTEST_SEED, seed);
        self.write(reg::SELFTEST_CMD, command);
        self.read(reg::SELFTEST_RESULT)
    }

    /// Offset (relative to the window) of the first byte the last VERIFY found wrong.
    pub fn selftest_mismatch_at(&self) -> u32 {
        self.read(reg::SELFTEST_MISMATCH_AT)
    }
}
