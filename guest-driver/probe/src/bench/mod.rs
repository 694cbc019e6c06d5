//! `bench`: what touching up to 1 GiB of BAR2 costs under each of our strategies and each peer,
//! in every touch order, in interleaved rounds.
//!
//! Per round and order the subjects run in an order rotated by one each round (ABC, BCA, ...),
//! so slow drifts of a noisy host land on every subject alike; the host (`fault-bench`) turns
//! the rounds into medians of per-round ratios and checks each cell's faults against the exact
//! count its window predicts. The kernel command line may narrow the run:
//! `rangefault.bench_rounds=N`, `rangefault.bench_orders=a,b`, `rangefault.bench_subjects=x,y`.

mod cell;
mod subject;
mod vfio_peer;

use rangefault_abi::touch::TouchOrder;

use crate::sysfs::PciFunction;
use crate::uapi::Device;
use crate::ProbeError;
use cell::Bench;
use rangefault_report::BenchCell;
use subject::Subject;

/// Rounds per run unless the command line says: enough for a median with a spread.
const DEFAULT_ROUNDS: usize = 5;

/// What the command line asked for.
struct Plan {
    rounds: usize,
    orders: Vec<TouchOrder>,
    subjects: Option<Vec<String>>,
}

fn plan_from(cmdline: &str) -> Result<Plan, ProbeError> {
    let mut plan = Plan {
        rounds: DEFAULT_ROUNDS,
        orders: TouchOrder::ALL.to_vec(),
        subjects: None,
    };
    for arg in cmdline.split_whitespace() {
        let Some((key, value)) = arg.split_once('=') else {
            continue;
        };
        let list = || value.split(',').map(str::to_owned);
        match key {
            "rangefault.bench_rounds" => {
                plan.rounds = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| ProbeError::Parse(format!("{arg}: not a round count")))?;
            }
            "rangefault.bench_orders" => {
                plan.orders = list()
                    .map(|name| {
                        TouchOrder::from_name(&name).ok_or_else(|| {
                            ProbeError::Parse(format!("{arg}: unknown touch order {name:?}"))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "rangefault.bench_subjects" => plan.subjects = Some(list().collect()),
            _ => {}
        }
    }
    Ok(plan)
}

/// Start cells at a fixed point of the kernel's tick grid: every 20 ms is a tick boundary for
/// HZ 100, 250, 300 and 1000.
const TICK_GRID_NS: u64 = 20_000_000;
/// Wake this long after the boundary: after the tick there, before the next (HZ ≤ 1000).
const AFTER_TICK_NS: u64 = 500_000;

/// Lets the guest go quiet before a cell, so that under `vmm run --icount` a cell's count of
/// instructions is the same from one run to the next: the serial port has sent everything
/// printed so far (its interrupts would land inside the touch, at a moment the host decides),
/// and the cell starts at the same phase of the timer tick (else one tick more or less falls
/// inside it, depending on where the previous cell happened to end). Sleeping costs no host
/// time under icount: an idle guest's clock jumps to its next timer.
fn quiesce() {
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Not a tty (a test, a pipe): nothing to drain.
    let _ = rustix::termios::tcdrain(std::io::stdout());
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let now_ns = now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64;
    let wake = (now_ns / TICK_GRID_NS + 1) * TICK_GRID_NS + AFTER_TICK_NS;
    let at = rustix::time::Timespec {
        tv_sec: (wake / 1_000_000_000) as i64,
        tv_nsec: (wake % 1_000_000_000) as i64,
    };
    while let Err(rustix::io::Errno::INTR) =
        rustix::thread::clock_nanosleep_absolute(rustix::thread::ClockId::Monotonic, &at)
    {}
}

/// Runs every round, handing each cell to `emit` as soon as it is measured.
pub fn run(mut emit: impl FnMut(BenchCell)) -> Result<bool, ProbeError> {
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| ProbeError::io("/proc/cmdline".as_ref(), e))?;
    let plan = plan_from(&cmdline)?;
    let device = Device::open()?;
    let ours = PciFunction::find_bound("rangefault")?;
    let info = device.info()?;
    let mut subjects = Subject::all(&device, &ours)?;
    if let Some(wanted) = &plan.subjects {
        if let Some(missing) = wanted
            .iter()
            .find(|name| !subjects.iter().any(|s| s.name() == *name))
        {
            let have: Vec<_> = subjects.iter().map(Subject::name).collect();
            return Err(ProbeError::Parse(format!(
                "bench: no subject {missing:?} in this guest (it has {})",
                have.join(", ")
            )));
        }
        subjects.retain(|s| wanted.iter().any(|name| name == s.name()));
    }
    let bench = Bench {
        device: &device,
        bdf: &ours.bdf,
        page_size: info.page_size,
        vram_size: info.vram_size,
    };
    let cells = plan.rounds * plan.orders.len() * subjects.len();
    println!("rangefault-bench: plan {cells} cells");
    let mut pass = true;
    let mut done = 0;
    for round in 0..plan.rounds {
        for &order in &plan.orders {
            for i in 0..subjects.len() {
                let subject = &subjects[(i + round) % subjects.len()];
                done += 1;
                println!(
                    "rangefault-bench: cell {done}/{cells} {} {} round {round}",
                    subject.name(),
                    order.name()
                );
                quiesce();
                let result = bench.cell(subject, order, round)?;
                pass &= result.pass;
                emit(result);
            }
        }
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_narrows_the_plan() {
        let plan = plan_from("console=ttyS0 rangefault.bench_rounds=3 rangefault.bench_orders=random,strided rangefault.bench_subjects=range,vfio-pci").unwrap();
        assert_eq!(plan.rounds, 3);
        assert_eq!(plan.orders, [TouchOrder::Random, TouchOrder::Strided]);
        assert_eq!(plan.subjects.unwrap(), ["range", "vfio-pci"]);
        let plan = plan_from("rdinit=/init").unwrap();
        assert_eq!((plan.rounds, plan.orders.len()), (5, 4));
        assert!(plan.subjects.is_none());
        for bad in ["rangefault.bench_rounds=0", "rangefault.bench_orders=up"] {
            assert!(plan_from(bad).is_err(), "{bad}");
        }
    }
}
