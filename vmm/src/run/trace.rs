//! `--trace`: the fault trace the guest wrote to its second serial port,
//! converted for Perfetto (with a plot and a summary for the report).

use std::path::Path;

use device_model::DeviceConfig;

use super::RunArgs;
use crate::engine::Engine;
use crate::fault_trace::{self, TraceReport};
use crate::size::format_size;

/// The converted trace and what went wrong with it (host errors: a run
/// whose trace is incomplete fails).
pub struct CollectedTrace {
    pub report: Option<TraceReport>,
    pub host_errors: Vec<String>,
}

/// Converts the trace in `serial` to `args.trace`, when the run traced.
pub fn collect(
    args: &RunArgs,
    config: DeviceConfig,
    engine: Engine,
    serial: Option<&Path>,
) -> CollectedTrace {
    let mut host_errors = Vec::new();
    let report = match (&args.trace, serial) {
        (Some(out), Some(serial)) => {
            // Say what the times are: QEMU's emulated (or instruction-counting) clock, or KVM's.
            let clock = match engine {
                Engine::Qemu if args.icount => "QEMU icount: guest ns = instructions",
                Engine::Qemu => "TCG: not hardware time",
                _ => "hardware virtualization",
            };
            let title = format!(
                "{}: {} VRAM, {} pages ({} engine, {clock})",
                args.scenario,
                format_size(config.vram_size),
                format_size(config.page_size),
                engine.name()
            );
            match fault_trace::convert(serial, out, &title) {
                Ok(trace) => {
                    if trace.summary.lost_events > 0 {
                        host_errors.push(format!(
                            "the fault trace lost {} events: its buffer was too small (raise --trace-buffer)",
                            trace.summary.lost_events
                        ));
                    }
                    Some(trace)
                }
                Err(e) => {
                    host_errors.push(format!("fault trace: {e:#}"));
                    None
                }
            }
        }
        _ => None,
    };
    CollectedTrace {
        report,
        host_errors,
    }
}

pub fn print_summary(trace: &TraceReport) {
    let summary = &trace.summary;
    println!(
        "trace: {} faults, {} handler calls, {} events ({} lost) -> {}{}",
        summary.faults,
        summary.handler_calls,
        summary.events,
        summary.lost_events,
        trace.file.display(),
        trace
            .plot
            .as_ref()
            .map(|png| format!(", {}", png.display()))
            .unwrap_or_default()
    );
    for (level, group) in &summary.by_level {
        if let Some(p) = group.handler_ns {
            println!(
                "  {level}: {} faults, handler p50 {} p90 {} p99 {} max {} ns",
                group.faults, p.p50, p.p90, p.p99, p.max
            );
        }
    }
    if let Some(why) = &trace.plot_error {
        println!("  no plot: {why}");
    }
}
