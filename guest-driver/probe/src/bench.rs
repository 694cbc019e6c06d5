//! `bench`: what touching 1 GiB costs under each strategy, in interleaved rounds.
//!
//! Each round maps a fresh 1 GiB (or all of VRAM, if smaller) with every strategy the kernel
//! serves, in an order rotated by one each round (ABCD, BCDA, ...), so slow drifts of a noisy
//! host land on every strategy alike; the host (`fault-bench`) turns the rounds into medians of
//! per-round ratios. Per cell: the driver's faults and entries, its handler time (the sum of the
//! latency histograms), the user-visible time to touch every page once, and the VMA-lock
//! retries the kernel counted (`/proc/vmstat`, where PER_VMA_LOCK_STATS is on).

use serde::Serialize;

use crate::faults::{mapping_alignment, touch, TouchCost};
use crate::uapi::{Device, Strategy};
use crate::vmap::DeviceMapping;
use crate::ProbeError;

const GIB: u64 = 1 << 30;
/// Rounds per run: enough for a median with a spread, few enough for TCG.
const ROUNDS: usize = 5;

#[derive(Serialize)]
pub struct BenchCell {
    pub scenario: &'static str,
    pub pass: bool,
    pub round: usize,
    pub strategy: &'static str,
    pub page_size: u64,
    pub touched_bytes: u64,
    /// Faults, entries, handler calls, the touch time, the latency histograms, the host check.
    #[serde(flatten)]
    pub cost: TouchCost,
    /// Time inside the driver's fault handlers, summed.
    pub handler_ns: u64,
    /// `vma_lock_retry` delta: faults redone under the mmap lock (None without the stats).
    pub vma_lock_retries: Option<u64>,
}

fn vmstat(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn cell(device: &Device, strategy: Strategy, round: usize) -> Result<BenchCell, ProbeError> {
    let info = device.info()?;
    let touched = info.vram_size.min(GIB);
    device.set_strategy(strategy)?;
    let align = mapping_alignment(info.page_size) as usize;
    let mapping = DeviceMapping::new(device, 0, touched as usize, align, 0)?;
    let retries_before = vmstat("vma_lock_retry");
    let mut sum = 0u64;
    let cost = touch(device, &mapping, |_, value| sum = sum.wrapping_add(value))?;
    std::hint::black_box(sum);
    let retries = retries_before
        .zip(vmstat("vma_lock_retry"))
        .map(|(a, b)| b - a);
    let latency = &cost.fault_latency;
    let handler_ns = [&latency.pte, &latency.pmd, &latency.pud]
        .iter()
        .map(|l| l.sum_ns)
        .sum();
    Ok(BenchCell {
        scenario: "bench",
        pass: cost.faults > 0 && cost.minflt >= cost.faults,
        round,
        strategy: strategy.name(),
        page_size: info.page_size,
        touched_bytes: touched,
        cost,
        handler_ns,
        vma_lock_retries: retries,
    })
}

/// Runs every round, handing each cell to `emit` as soon as it is measured.
pub fn run(mut emit: impl FnMut(&BenchCell)) -> Result<bool, ProbeError> {
    let device = Device::open()?;
    let strategies: Vec<_> = device.info()?.strategies().collect();
    let mut pass = true;
    for round in 0..ROUNDS {
        for i in 0..strategies.len() {
            let strategy = strategies[(i + round) % strategies.len()];
            let result = cell(&device, strategy, round)?;
            pass &= result.pass;
            emit(&result);
        }
    }
    Ok(pass)
}
