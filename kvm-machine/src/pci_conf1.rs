//! PCI configuration mechanism #1: the CONFIG_ADDRESS latch at 0xCF8 and
//! the CONFIG_DATA window at 0xCFC..0xCFF.

use std::sync::atomic::{AtomicU32, Ordering};

/// First and last port of the mechanism.
pub const FIRST_PORT: u16 = 0xcf8;
pub const LAST_PORT: u16 = 0xcff;
const DATA_PORT: u16 = 0xcfc;
/// CONFIG_ADDRESS bit 31: the next data access is a config cycle.
const ENABLE: u32 = 1 << 31;

/// A config-space access the data port turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigTarget {
    pub bus: u8,
    pub device: u8,
    pub function: u8,
    /// Byte offset in the function's config space (AMD-style extended
    /// register bits 27:24 included, so it can exceed 255).
    pub offset: u64,
}

/// What a port access amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conf1Access {
    /// Served by the latch itself (or a disabled/odd access, answered like
    /// hardware does: reads float to all-ones, writes vanish).
    Done,
    /// Forward to this function's config space.
    Config(ConfigTarget),
}

/// The CONFIG_ADDRESS latch. One per host bridge; vCPUs share it as they
/// share the real register (Linux serializes with pci_config_lock).
#[derive(Debug, Default)]
pub struct Conf1 {
    address: AtomicU32,
}

impl Conf1 {
    pub fn read(&self, port: u16, data: &mut [u8]) -> Conf1Access {
        if port < DATA_PORT {
            // Only a dword read of 0xCF8 returns the latch (Linux's type-1
            // probe checks exactly that); byte probes of 0xCF8..0xCFB (the
            // type-2 probe) see no device.
            match <&mut [u8; 4]>::try_from(&mut *data) {
                Ok(dword) if port == FIRST_PORT => {
                    *dword = self.address.load(Ordering::Relaxed).to_le_bytes();
                }
                _ => data.fill(0xff),
            }
            return Conf1Access::Done;
        }
        match self.target(port) {
            Some(target) => Conf1Access::Config(target),
            None => {
                data.fill(0xff);
                Conf1Access::Done
            }
        }
    }

    pub fn write(&self, port: u16, data: &[u8]) -> Conf1Access {
        if port < DATA_PORT {
            if let (FIRST_PORT, Ok(dword)) = (port, <[u8; 4]>::try_from(data)) {
                self.address
                    .store(u32::from_le_bytes(dword), Ordering::Relaxed);
            }
            return Conf1Access::Done;
        }
        match self.target(port) {
            Some(target) => Conf1Access::Config(target),
            None => Conf1Access::Done,
        }
    }

    /// The config access a data-port access at `port` makes, if enabled.
    fn target(&self, port: u16) -> Option<ConfigTarget> {
        let address = self.address.load(Ordering::Relaxed);
        if address & ENABLE == 0 {
            return None;
        }
        let register = u64::from(address & 0xfc) | u64::from((address >> 16) & 0xf00);
        Some(ConfigTarget {
            bus: (address >> 16) as u8,
            device: ((address >> 11) & 0x1f) as u8,
            function: ((address >> 8) & 0x7) as u8,
            offset: register + u64::from(port - DATA_PORT),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn select(conf1: &Conf1, address: u32) {
        assert_eq!(
            conf1.write(FIRST_PORT, &address.to_le_bytes()),
            Conf1Access::Done
        );
    }

    #[test]
    fn latch_reads_back_as_linux_probes_it() {
        let conf1 = Conf1::default();
        select(&conf1, 0x8000_0000);
        let mut dword = [0; 4];
        conf1.read(FIRST_PORT, &mut dword);
        assert_eq!(u32::from_le_bytes(dword), 0x8000_0000);
        // A byte write to 0xCFB does not touch the latch.
        conf1.write(0xcfb, &[1]);
        conf1.read(FIRST_PORT, &mut dword);
        assert_eq!(u32::from_le_bytes(dword), 0x8000_0000);
        let mut byte = [0];
        conf1.read(0xcfa, &mut byte);
        assert_eq!(byte, [0xff]);
    }

    #[test]
    fn data_port_decodes_bus_device_function_offset() {
        let conf1 = Conf1::default();
        select(&conf1, 0x8001_1a3c | 0x0100_0000);
        let mut word = [0; 2];
        assert_eq!(
            conf1.read(0xcfe, &mut word),
            Conf1Access::Config(ConfigTarget {
                bus: 1,
                device: 3,
                function: 2,
                offset: 0x13e,
            })
        );
    }

    #[test]
    fn disabled_cycles_float_high() {
        let conf1 = Conf1::default();
        select(&conf1, 0x0000_1800);
        let mut dword = [0; 4];
        assert_eq!(conf1.read(0xcfc, &mut dword), Conf1Access::Done);
        assert_eq!(dword, [0xff; 4]);
        assert_eq!(conf1.write(0xcfc, &[0; 4]), Conf1Access::Done);
    }
}
