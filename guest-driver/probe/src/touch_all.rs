//! `touch-all`: map all of VRAM with the driver's default strategy (what any program gets:
//! `range-mm` on the patched kernel, stock `range` elsewhere) and touch every page once.

use crate::faults::{bytes_per_fault, mapping_alignment, touch, TouchResult};
use crate::phase::Phase;
use crate::uapi::Device;
use crate::vmap::DeviceMapping;
use crate::ProbeError;

pub fn run() -> Result<TouchResult, ProbeError> {
    let device = Device::open()?;
    let info = device.info()?;
    let align = mapping_alignment(info.page_size);
    // A fresh boot: the driver's current strategy is its default.
    let strategy = info
        .current_strategy()
        .ok_or_else(|| ProbeError::Parse(format!("unknown strategy {}", info.strategy)))?;
    let mapping = {
        let _mapping = Phase::begin("map");
        DeviceMapping::new(&device, 0, info.vram_size as usize, align as usize, 0)?
    };
    let mut sum = 0u64;
    let cost = touch(&device, &mapping, |_, value| sum = sum.wrapping_add(value))?;
    std::hint::black_box(sum);
    let expected = info.vram_size / bytes_per_fault(strategy, info.page_size, align);
    Ok(TouchResult {
        pass: cost.faults == expected && cost.minflt >= cost.faults && cost.host_check.pass,
        page_size: info.page_size,
        strategy: strategy.name().into(),
        va: format!("{:#x}", mapping.va()),
        touched_bytes: info.vram_size,
        expected_faults: expected,
        cost,
    })
}
