//! rangefault-probe: runs inside the guest, exercises the rangefault device
//! and driver, and prints one `RANGEFAULT-RESULT <json>` line per scenario
//! for the host's vmm to collect. Exit code 0 means every check passed.

mod access_control;
mod bench;
mod fault_inject;
mod faults;
mod mapping;
mod phase;
mod regs;
mod selftests;
mod semantics;
mod skeleton;
mod soak;
mod sysfs;
mod touch_all;
mod trace_overhead;
mod uapi;
mod vmap;

/// The kernel module's window arithmetic (pure `core` code), tested on the host.
#[cfg(test)]
#[path = "../../module/window.rs"]
#[allow(dead_code)]
mod kernel_window;

use std::path::Path;
use std::process::ExitCode;

use rangefault_report::ScenarioResult;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "no rangefault PCI device (vendor {:#06x}, device {:#06x}) in sysfs",
        rangefault_abi::VENDOR_ID,
        rangefault_abi::DEVICE_ID
    )]
    NoDevice,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("mmap returned a null pointer")]
    NullMapping,
    #[error("unknown scenario {0:?} (known: {known})", known = SCENARIOS.join(", "))]
    UnknownScenario(String),
}

impl ProbeError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

const SCENARIOS: &[&str] = &[
    "skeleton",
    "faults",
    "touch-all",
    "trace-overhead",
    "semantics",
    "mm-selftests",
    "bench",
    "fault-inject",
    "soak",
    "robustness",
];

pub use rangefault_report::Check;

/// Prints `result` as the result line the host reads back into the same type; returns
/// whether it passed.
fn emit(result: ScenarioResult) -> bool {
    let pass = result.pass();
    match serde_json::to_string(&result) {
        Ok(json) => println!("{}{json}", rangefault_report::RESULT_PREFIX),
        Err(e) => println!(
            "RANGEFAULT-ERROR cannot serialise a {} result: {e}",
            result.name()
        ),
    }
    pass
}

fn run(scenario: &str) -> Result<bool, ProbeError> {
    match scenario {
        "skeleton" => Ok(emit(ScenarioResult::Skeleton(skeleton::run()?))),
        "faults" => {
            let function = sysfs::PciFunction::find()?;
            let regs = regs::Registers::open(&function)?;
            let device = uapi::Device::open()?;
            let mut pass = true;
            let strategies: Vec<_> = device.info()?.strategies().collect();
            for &strategy in &strategies {
                pass &= emit(ScenarioResult::Faults(faults::run_one(
                    &device, &regs, strategy,
                )?));
            }
            if strategies.contains(&uapi::Strategy::RangeMm) {
                pass &= emit(ScenarioResult::FaultsMisaligned(faults::run_misaligned(
                    &device,
                    uapi::Strategy::RangeMm,
                )?));
            }
            Ok(pass)
        }
        "semantics" => {
            let mut pass = true;
            for result in semantics::run_all()? {
                pass &= emit(ScenarioResult::Semantics(result));
            }
            Ok(pass)
        }
        "bench" => bench::run(|cell| {
            emit(ScenarioResult::Bench(cell));
        }),
        "mm-selftests" => Ok(emit(ScenarioResult::MmSelftests(selftests::run()?))),
        "trace-overhead" => Ok(emit(ScenarioResult::TraceOverhead(trace_overhead::run()?))),
        // `robustness` is both in one boot (what the CI test runs), then one kmemleak scan.
        "fault-inject" | "soak" | "robustness" => {
            fault_inject::kmemleak_manual();
            let mut pass = true;
            if scenario != "soak" {
                pass &= emit(ScenarioResult::FaultInject(fault_inject::run()?));
            }
            if scenario != "fault-inject" {
                pass &= emit(ScenarioResult::Soak(soak::run()?));
            }
            pass &= emit(ScenarioResult::Kmemleak(fault_inject::kmemleak_verdict(
                true,
            )));
            Ok(pass)
        }
        "touch-all" => Ok(emit(ScenarioResult::TouchAll(touch_all::run()?))),
        other => Err(ProbeError::UnknownScenario(other.to_owned())),
    }
}

fn main() -> ExitCode {
    let scenario = std::env::args().nth(1).unwrap_or_else(|| "skeleton".into());
    match run(&scenario) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            println!("RANGEFAULT-ERROR {scenario}: {e}");
            ExitCode::from(2)
        }
    }
}
