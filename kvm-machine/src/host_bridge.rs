//! Device 00:00.0: a plain host bridge. Linux's conf1 sanity check (used
//! when there is no ACPI/DMI) wants a host bridge or a VGA device on bus 0;
//! nothing in it is writable.

/// Intel's vendor ID and the ID cloud-hypervisor gives its virtual PCIe
/// host bridge: no Linux quirk matches it.
const VENDOR_ID: u16 = 0x8086;
const DEVICE_ID: u16 = 0x0d57;
/// Class 06 (bridge), subclass 00 (host bridge), prog-if 00.
const CLASS_CODE: [u8; 3] = [0x00, 0x00, 0x06];

/// The host bridge's read-only config space.
#[derive(Debug, Clone)]
pub struct HostBridge {
    config: [u8; 256],
}

impl Default for HostBridge {
    fn default() -> Self {
        let mut config = [0u8; 256];
        config[0x00..0x02].copy_from_slice(&VENDOR_ID.to_le_bytes());
        config[0x02..0x04].copy_from_slice(&DEVICE_ID.to_le_bytes());
        config[0x09..0x0c].copy_from_slice(&CLASS_CODE);
        // Header type 0 (offset 0x0e), no BARs, no capabilities.
        Self { config }
    }
}

impl HostBridge {
    /// Bytes past the 256-byte space read as all-ones.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, out) in data.iter_mut().enumerate() {
            *out = offset
                .checked_add(i as u64)
                .and_then(|at| self.config.get(usize::try_from(at).ok()?))
                .copied()
                .unwrap_or(0xff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_as_a_host_bridge() {
        let bridge = HostBridge::default();
        let mut dword = [0; 4];
        bridge.read(0, &mut dword);
        assert_eq!(u32::from_le_bytes(dword), 0x0d57_8086);
        bridge.read(8, &mut dword);
        assert_eq!(u32::from_le_bytes(dword) >> 8, 0x06_0000);
        bridge.read(254, &mut dword);
        assert_eq!(dword, [0, 0, 0xff, 0xff]);
        bridge.read(u64::MAX, &mut dword);
        assert_eq!(dword, [0xff; 4]);
    }
}
