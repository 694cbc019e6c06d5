//! Device-level tests, through the same API the engines use.

mod config_space;
mod fuzz;
mod host_check;
mod registers;

use crate::{DeviceConfig, RangefaultDevice};

pub(super) const VRAM: u64 = 64 << 20;

pub(super) fn device() -> RangefaultDevice {
    RangefaultDevice::new(DeviceConfig::new(VRAM, 4096).unwrap()).unwrap()
}

/// Little-endian value of a `len`-byte (<= 8) config read.
pub(super) fn cfg_read(d: &mut RangefaultDevice, offset: u64, len: usize) -> u64 {
    let mut buf = [0u8; 8];
    d.config_read(offset, &mut buf[..len]);
    u64::from_le_bytes(buf)
}

pub(super) fn cfg_write(d: &mut RangefaultDevice, offset: u64, len: usize, value: u64) {
    d.config_write(offset, &value.to_le_bytes()[..len]);
}

pub(super) fn reg_read(d: &mut RangefaultDevice, offset: u64, len: usize) -> u64 {
    let mut buf = [0u8; 8];
    d.regs_read(offset, &mut buf[..len]);
    u64::from_le_bytes(buf)
}

pub(super) fn reg_write(d: &mut RangefaultDevice, offset: u64, len: usize, value: u64) {
    d.regs_write(offset, &value.to_le_bytes()[..len]);
}

#[test]
fn new_rejects_invalid_public_fields() {
    let bad = DeviceConfig {
        vram_size: 3 << 20,
        page_size: 4096,
    };
    let err = RangefaultDevice::new(bad).unwrap_err();
    assert_eq!(err.to_string(), "VRAM size 3 MiB is not a power of two");
}

#[test]
fn accessors_reflect_config() {
    let d = device();
    assert_eq!(d.config().vram_size, VRAM);
    assert_eq!(d.vram().size(), VRAM);
    assert_eq!(d.stats(), crate::DeviceStats::default());
}

/// Engines share the device across threads behind a mutex.
#[test]
fn device_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RangefaultDevice>();
    check::<crate::Vram>();
}
