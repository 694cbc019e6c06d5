//! `touch-all`: map all of VRAM (range insertion) and touch every page once.

use std::time::Instant;

use serde::Serialize;

use crate::faults::{bytes_per_fault, mapping_alignment};
use crate::uapi::{Device, FaultLatency, HostCheck, Strategy};
use crate::vmap::{minor_faults, DeviceMapping};
use crate::ProbeError;

#[derive(Serialize)]
pub struct TouchAll {
    pub scenario: &'static str,
    pub pass: bool,
    pub page_size: u64,
    pub strategy: &'static str,
    pub touched_bytes: u64,
    pub faults: u64,
    pub expected_faults: u64,
    pub minflt: u64,
    pub faults_pte: u64,
    pub faults_pmd: u64,
    pub faults_pud: u64,
    pub ns_per_fault: u64,
    pub host_check: HostCheck,
    /// The driver's own timing of each fault handler, by level inserted.
    pub fault_latency: FaultLatency,
}

pub fn run() -> Result<TouchAll, ProbeError> {
    let device = Device::open()?;
    let info = device.info()?;
    let align = mapping_alignment(info.page_size);
    device.set_strategy(Strategy::Range)?;
    let mapping = DeviceMapping::new(&device, 0, info.vram_size as usize, align as usize, 0)?;
    device.reset_stats()?;
    let minflt_before = minor_faults();
    let started = Instant::now();
    let mut sum = 0u64;
    for page in (0..info.vram_size).step_by(4096) {
        sum = sum.wrapping_add(mapping.read64(page as usize));
    }
    std::hint::black_box(sum);
    let elapsed = started.elapsed();
    let minflt = minor_faults() - minflt_before;
    let stats = device.stats()?;
    let fault_latency = device.latency()?;
    let host_check = device.check(mapping.va(), mapping.len, 0, None)?;
    let faults = stats.faults();
    let expected = info.vram_size / bytes_per_fault(Strategy::Range, info.page_size, align);
    Ok(TouchAll {
        scenario: "touch-all",
        pass: faults == expected && minflt >= faults && host_check.pass,
        page_size: info.page_size,
        strategy: "range",
        touched_bytes: info.vram_size,
        faults,
        expected_faults: expected,
        minflt,
        faults_pte: stats.faults_pte,
        faults_pmd: stats.faults_pmd,
        faults_pud: stats.faults_pud,
        ns_per_fault: (elapsed.as_nanos() as u64).checked_div(faults).unwrap_or(0),
        host_check,
        fault_latency,
    })
}
