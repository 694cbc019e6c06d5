//! `touch-all`: map all of VRAM (range insertion) and touch every page once.

use serde::Serialize;

use crate::faults::{bytes_per_fault, mapping_alignment, touch, TouchCost};
use crate::uapi::{Device, Strategy};
use crate::vmap::DeviceMapping;
use crate::ProbeError;

#[derive(Serialize)]
pub struct TouchAll {
    pub scenario: &'static str,
    pub pass: bool,
    pub page_size: u64,
    pub strategy: &'static str,
    pub touched_bytes: u64,
    pub expected_faults: u64,
    #[serde(flatten)]
    pub cost: TouchCost,
}

pub fn run() -> Result<TouchAll, ProbeError> {
    let device = Device::open()?;
    let info = device.info()?;
    let align = mapping_alignment(info.page_size);
    device.set_strategy(Strategy::Range)?;
    let mapping = DeviceMapping::new(&device, 0, info.vram_size as usize, align as usize, 0)?;
    let mut sum = 0u64;
    let cost = touch(&device, &mapping, |_, value| sum = sum.wrapping_add(value))?;
    std::hint::black_box(sum);
    let expected = info.vram_size / bytes_per_fault(Strategy::Range, info.page_size, align);
    Ok(TouchAll {
        scenario: "touch-all",
        pass: cost.faults == expected && cost.minflt >= cost.faults && cost.host_check.pass,
        page_size: info.page_size,
        strategy: "range",
        touched_bytes: info.vram_size,
        expected_faults: expected,
        cost,
    })
}
