//! `trace-overhead`: what the fault trace costs while on, and that off costs nothing visible.
//!
//! Each round touches a fresh 64 MiB mapping under every strategy the driver serves, three
//! times: events off, on, off again (ABA), so a drift of the noisy host lands on both sides of
//! the traced run. Per strategy the result gives the medians over rounds of on / mean(off) (the
//! overhead) and of the second off over the first (A/A: the noise floor the overhead must be
//! read against), for the touch time the program sees and for the driver's handler time.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use rangefault_report::{Ratio, StrategyOverhead, TraceOverhead};

use crate::faults::{mapping_alignment, touch, TouchCost};
use crate::uapi::Device;
use crate::vmap::DeviceMapping;
use crate::ProbeError;

const TRACING: &str = "/sys/kernel/tracing";
/// The events `vmm run --trace` enables.
const EVENTS: [&str; 2] = [
    "events/rangefault/enable",
    "events/exceptions/page_fault_user/enable",
];
const TOUCHED: u64 = 64 << 20;
const ROUNDS: usize = 7;

fn write(file: &str, value: &str) -> Result<(), ProbeError> {
    let path = Path::new(TRACING).join(file);
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| ProbeError::io(&path, e))
}

fn mount_tracefs() -> Result<(), ProbeError> {
    if Path::new(TRACING).join("events").is_dir() {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "tracefs", TRACING])
        .status()
        .map_err(|e| ProbeError::io(Path::new("mount"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(ProbeError::Parse(format!(
            "mount -t tracefs {TRACING}: {status}"
        )))
    }
}

fn set_events(on: bool) -> Result<(), ProbeError> {
    if on {
        // An empty buffer each time: every traced run writes the same amount.
        write("trace", "")?;
    }
    for event in EVENTS {
        write(event, if on { "1" } else { "0" })?;
    }
    Ok(())
}

fn handler_ns(cost: &TouchCost) -> u64 {
    let latency = &cost.fault_latency;
    [&latency.pte, &latency.pmd, &latency.pud]
        .iter()
        .map(|l| l.sum_ns)
        .sum()
}

pub fn run() -> Result<TraceOverhead, ProbeError> {
    mount_tracefs()?;
    // What `vmm run --trace` sets (images/init.sh), so the cost measured is the cost paid there.
    write("trace_clock", "global")?;
    write("options/record-tgid", "1")?;
    write("tracing_on", "1")?;
    let device = Device::open()?;
    let info = device.info()?;
    let touched = info.vram_size.min(TOUCHED);
    let align = mapping_alignment(info.page_size) as usize;
    let strategies: Vec<_> = info.strategies().collect();
    // Per strategy, per round: (off before, on, off after).
    let mut samples = vec![Vec::new(); strategies.len()];
    let mut pass = true;
    let mut faults = vec![0; strategies.len()];
    for _round in 0..ROUNDS {
        for (i, &strategy) in strategies.iter().enumerate() {
            device.set_strategy(strategy)?;
            let mut runs = Vec::new();
            for on in [false, true, false] {
                set_events(on)?;
                let mapping = DeviceMapping::new(&device, 0, touched as usize, align, 0)?;
                let mut sum = 0u64;
                let cost = touch(&device, &mapping, |_, value| sum = sum.wrapping_add(value));
                set_events(false)?;
                let cost = cost?;
                std::hint::black_box(sum);
                pass &= cost.host_check.pass && cost.faults > 0;
                faults[i] = cost.faults;
                runs.push((cost.touch_ns as f64, handler_ns(&cost) as f64));
            }
            samples[i].push(runs);
        }
    }
    let strategies = strategies
        .iter()
        .zip(samples)
        .zip(faults)
        .map(|((strategy, rounds), faults)| {
            let ratios = |pick: fn(&(f64, f64)) -> f64| {
                let on_off = rounds
                    .iter()
                    .map(|r| pick(&r[1]) / ((pick(&r[0]) + pick(&r[2])) / 2.0))
                    .collect();
                let off_off = rounds.iter().map(|r| pick(&r[2]) / pick(&r[0])).collect();
                (Ratio::of(on_off), Ratio::of(off_off))
            };
            let (touch_on, touch_aa) = ratios(|run| run.0);
            let (handler_on, handler_aa) = ratios(|run| run.1);
            let per_fault = |index: usize| {
                let mut values: Vec<f64> = rounds.iter().map(|r| r[index].0).collect();
                values.sort_by(f64::total_cmp);
                (values[values.len() / 2] / faults.max(1) as f64) as u64
            };
            StrategyOverhead {
                strategy: strategy.name().into(),
                faults,
                touch_on_over_off: touch_on,
                handler_on_over_off: handler_on,
                touch_off_over_off: touch_aa,
                handler_off_over_off: handler_aa,
                touch_ns_per_fault_off: per_fault(0),
                touch_ns_per_fault_on: per_fault(1),
            }
        })
        .collect();
    Ok(TraceOverhead {
        pass,
        page_size: info.page_size,
        touched_bytes: touched,
        rounds: ROUNDS,
        strategies,
    })
}
