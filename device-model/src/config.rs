//! Device configuration (VRAM and preferred page size) and its validation.

use std::fmt;

/// Sizes that fix the device's guest-visible shape: BAR2 size, the vendor
/// capability and the VRAM/page registers all derive from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceConfig {
    /// VRAM (BAR2) size in bytes: a power of two in `MIN_VRAM..=MAX_VRAM`.
    pub vram_size: u64,
    /// Preferred page size advertised to the guest: a power of two in
    /// `MIN_PAGE..=MAX_PAGE`, no larger than `vram_size`.
    pub page_size: u64,
}

impl DeviceConfig {
    pub const MIN_VRAM: u64 = 64 << 20;
    pub const MAX_VRAM: u64 = 64 << 30;
    pub const DEFAULT_VRAM: u64 = 1 << 30;
    pub const MIN_PAGE: u64 = 4 << 10;
    pub const MAX_PAGE: u64 = 1 << 30;
    pub const DEFAULT_PAGE: u64 = 2 << 20;

    /// Validates and builds a configuration.
    pub fn new(vram_size: u64, page_size: u64) -> Result<Self, ConfigError> {
        // Power-of-two first: BAR sizing cannot express anything else, and it
        // is the more useful message for values like 3 MiB.
        if !vram_size.is_power_of_two() {
            return Err(ConfigError::VramNotPowerOfTwo(vram_size));
        }
        if !(Self::MIN_VRAM..=Self::MAX_VRAM).contains(&vram_size) {
            return Err(ConfigError::VramOutOfRange(vram_size));
        }
        if !page_size.is_power_of_two() {
            return Err(ConfigError::PageNotPowerOfTwo(page_size));
        }
        if !(Self::MIN_PAGE..=Self::MAX_PAGE).contains(&page_size) {
            return Err(ConfigError::PageOutOfRange(page_size));
        }
        if page_size > vram_size {
            return Err(ConfigError::PageLargerThanVram {
                page_size,
                vram_size,
            });
        }
        Ok(Self {
            vram_size,
            page_size,
        })
    }

    /// Re-checks a value whose public fields may have been set directly.
    pub fn validate(&self) -> Result<(), ConfigError> {
        Self::new(self.vram_size, self.page_size).map(|_| ())
    }

    /// log2 of the page size (exact for a validated config).
    pub fn page_shift(&self) -> u32 {
        self.page_size.trailing_zeros()
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            vram_size: Self::DEFAULT_VRAM,
            page_size: Self::DEFAULT_PAGE,
        }
    }
}

/// Why a [`DeviceConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("VRAM size {} is not a power of two", ByteSize(*.0))]
    VramNotPowerOfTwo(u64),
    #[error(
        "VRAM size {} is out of range (allowed {} to {})",
        ByteSize(*.0),
        ByteSize(DeviceConfig::MIN_VRAM),
        ByteSize(DeviceConfig::MAX_VRAM)
    )]
    VramOutOfRange(u64),
    #[error("page size {} is not a power of two", ByteSize(*.0))]
    PageNotPowerOfTwo(u64),
    #[error(
        "page size {} is out of range (allowed {} to {})",
        ByteSize(*.0),
        ByteSize(DeviceConfig::MIN_PAGE),
        ByteSize(DeviceConfig::MAX_PAGE)
    )]
    PageOutOfRange(u64),
    #[error(
        "page size {} is larger than the VRAM size {}",
        ByteSize(*page_size),
        ByteSize(*vram_size)
    )]
    PageLargerThanVram { page_size: u64, vram_size: u64 },
}

/// Displays a byte count in the largest binary unit that divides it exactly
/// ("3 MiB", "4 KiB", "1000 bytes"), so messages show the value as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 4] = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        let v = self.0;
        if v != 0 {
            for (unit, name) in UNITS {
                if v.is_multiple_of(unit) {
                    return write!(f, "{} {name}", v / unit);
                }
            }
        }
        write!(f, "{v} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn default_is_1g_vram_2m_pages() {
        let c = DeviceConfig::default();
        assert_eq!(c.vram_size, GIB);
        assert_eq!(c.page_size, 2 * MIB);
        assert_eq!(c.page_shift(), 21);
        c.validate().unwrap();
    }

    #[test]
    fn accepts_range_ends() {
        for (v, p) in [
            (DeviceConfig::MIN_VRAM, DeviceConfig::MIN_PAGE),
            (DeviceConfig::MAX_VRAM, DeviceConfig::MAX_PAGE),
            (DeviceConfig::MIN_VRAM, DeviceConfig::MIN_VRAM),
        ] {
            let c = DeviceConfig::new(v, p).unwrap();
            assert_eq!(1u64 << c.page_shift(), p);
        }
    }

    #[test]
    fn rejects_non_power_of_two() {
        let e = DeviceConfig::new(3 * MIB, 4096).unwrap_err();
        assert_eq!(e, ConfigError::VramNotPowerOfTwo(3 * MIB));
        assert_eq!(e.to_string(), "VRAM size 3 MiB is not a power of two");
        assert_eq!(
            DeviceConfig::new(0, 4096).unwrap_err(),
            ConfigError::VramNotPowerOfTwo(0)
        );
        let e = DeviceConfig::new(GIB, 3 << 12).unwrap_err();
        assert_eq!(e, ConfigError::PageNotPowerOfTwo(3 << 12));
        assert_eq!(e.to_string(), "page size 12 KiB is not a power of two");
    }

    #[test]
    fn rejects_out_of_range() {
        let e = DeviceConfig::new(32 * MIB, 4096).unwrap_err();
        assert_eq!(e, ConfigError::VramOutOfRange(32 * MIB));
        assert_eq!(
            e.to_string(),
            "VRAM size 32 MiB is out of range (allowed 64 MiB to 64 GiB)"
        );
        assert_eq!(
            DeviceConfig::new(128 * GIB, 4096).unwrap_err(),
            ConfigError::VramOutOfRange(128 * GIB)
        );
        let e = DeviceConfig::new(GIB, 2048).unwrap_err();
        assert_eq!(e, ConfigError::PageOutOfRange(2048));
        assert_eq!(
            e.to_string(),
            "page size 2 KiB is out of range (allowed 4 KiB to 1 GiB)"
        );
        assert_eq!(
            DeviceConfig::new(64 * GIB, 2 * GIB).unwrap_err(),
            ConfigError::PageOutOfRange(2 * GIB)
        );
    }

    #[test]
    fn rejects_page_larger_than_vram() {
        let e = DeviceConfig::new(64 * MIB, 128 * MIB).unwrap_err();
        assert_eq!(
            e,
            ConfigError::PageLargerThanVram {
                page_size: 128 * MIB,
                vram_size: 64 * MIB
            }
        );
        assert_eq!(
            e.to_string(),
            "page size 128 MiB is larger than the VRAM size 64 MiB"
        );
    }

    #[test]
    fn byte_size_display() {
        assert_eq!(ByteSize(0).to_string(), "0 bytes");
        assert_eq!(ByteSize(1000).to_string(), "1000 bytes");
        assert_eq!(ByteSize(4096).to_string(), "4 KiB");
        assert_eq!(ByteSize(3 * MIB).to_string(), "3 MiB");
        assert_eq!(ByteSize(8 * GIB).to_string(), "8 GiB");
        assert_eq!(ByteSize(MIB + 1).to_string(), "1048577 bytes");
    }
}
