//! The run's last step: the report of one engine run (`--report FILE`) and
//! the summary printed after the console.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use device_model::{abi, DeviceConfig, RangefaultDevice};
use serde::Serialize;

use super::trace;
use super::verdict::Verdict;
use super::RunArgs;
use crate::device_spec::DeviceSpec;
use crate::engine::{Engine, GuestRun};
use crate::fault_trace::TraceReport;
use crate::images::GuestImage;
use crate::report::{
    DeviceEntry, DeviceReport, GuestDriverView, HostChecks, Report, Timing, Versions,
};
use crate::size::format_size;

/// What the report is made of, besides the run itself.
pub struct ReportInputs<'a> {
    pub args: &'a RunArgs,
    pub config: DeviceConfig,
    pub engine: Engine,
    pub engine_reason: String,
    pub image: &'a GuestImage,
    pub bdf: String,
    /// The device the scenarios drove, for its host-check records.
    pub device: &'a Mutex<RangefaultDevice>,
    /// Every device of the run, with its bdf.
    pub devices: Vec<(DeviceSpec, String, &'a Mutex<RangefaultDevice>)>,
}

pub fn build(
    inputs: ReportInputs,
    outcome: &GuestRun,
    verdict: Verdict,
    trace: Option<TraceReport>,
) -> Report {
    let ReportInputs {
        args,
        config,
        engine,
        engine_reason,
        image,
        bdf,
        device,
        devices,
    } = inputs;
    // Poisoned only if an engine thread panicked; the counts are whole. Read
    // apart: a guard taken inside the literal below would live to its end.
    let accesses = device.lock().unwrap_or_else(|e| e.into_inner()).stats();
    let console = &outcome.console;
    let number = |key: &str| {
        console
            .bound_value(key)
            .and_then(|v| match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            })
    };
    Report {
        engine: engine.name().into(),
        engine_reason,
        versions: Versions {
            vmm: env!("CARGO_PKG_VERSION").into(),
            source: crate::images::source_tree(),
            kernel_release: image.kernel_release.clone(),
            packages: image.versions.clone(),
        },
        device: DeviceReport {
            bdf,
            vendor_id: abi::VENDOR_ID,
            device_id: abi::DEVICE_ID,
            vram_size: config.vram_size,
            page_size: config.page_size,
            accesses,
        },
        devices: devices
            .into_iter()
            .map(|(spec, bdf, device)| DeviceEntry {
                bdf,
                vram_size: spec.config.vram_size,
                page_size: spec.config.page_size,
                driver: spec.driver.name().into(),
                accesses: device.lock().unwrap_or_else(|e| e.into_inner()).stats(),
            })
            .collect(),
        guest_driver: console.bound_line.as_ref().map(|line| GuestDriverView {
            line: line.clone(),
            vram_size: number("vram"),
            page_size: number("page_size"),
            bar2_address: number("bar2"),
            insert_range: number("insert_range").map(|v| v != 0),
        }),
        scenario: match &args.guest_cmd {
            Some(cmd) => format!("guest-cmd: {cmd}"),
            None => args.scenario.clone(),
        },
        scenarios: console.results.clone(),
        guest_errors: console.errors.clone(),
        guest_exit_code: console.exit_code,
        guest_log_problems: console.problems.clone(),
        host: outcome.host.clone(),
        host_checks: HostChecks::of(device),
        host_errors: verdict.host_errors,
        engine_warnings: outcome
            .engine_log
            .iter()
            .filter(|line| line.contains("warning:"))
            .cloned()
            .collect(),
        timing: Timing {
            boot_to_bound_s: console.bound_after.map(|d| d.as_secs_f64()),
            binds: console.binds,
            bind_after_s: console
                .bind_times
                .iter()
                .map(Duration::as_secs_f64)
                .collect(),
            wall_s: outcome.wall.as_secs_f64(),
            guest_clock: if args.icount { "icount" } else { "real" }.into(),
        },
        trace,
        timed_out: outcome.timed_out,
        pass: verdict.pass,
        nested: None,
    }
}

/// Writes `report` as pretty JSON to `path`, when the user asked for one.
pub fn write(path: Option<&Path>, report: &impl Serialize) -> Result<()> {
    if let Some(path) = path {
        let json = serde_json::to_string_pretty(report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

pub fn print_summary(report: &Report) {
    println!("---- rangefault summary ----");
    match &report.guest_driver {
        Some(view) => println!(
            "driver bound after {:.1} s: vram={} page_size={} bar2={:#x}",
            report.timing.boot_to_bound_s.unwrap_or_default(),
            view.vram_size
                .map(format_size)
                .unwrap_or_else(|| "?".into()),
            view.page_size
                .map(format_size)
                .unwrap_or_else(|| "?".into()),
            view.bar2_address.unwrap_or_default()
        ),
        None => println!("driver did not report binding"),
    }
    if report.timing.binds > 1 {
        println!(
            "driver bound {} times (rebinds after {})",
            report.timing.binds,
            report.timing.bind_after_s[1..]
                .iter()
                .map(|s| format!("{s:.1} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for scenario in &report.scenarios {
        println!(
            "scenario {}: {}",
            scenario.name().unwrap_or("?"),
            match scenario.pass() {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "(no verdict)",
            }
        );
    }
    if let Some(trace) = &report.trace {
        trace::print_summary(trace);
    }
    println!(
        "trapped VRAM accesses: {} (register accesses {}, config accesses {})",
        report.host.boundary().vram_trapped_accesses.get(),
        report.host.boundary().register_accesses.get(),
        report.host.boundary().config_accesses.get()
    );
    for line in report
        .guest_errors
        .iter()
        .chain(&report.guest_log_problems)
        .chain(&report.host_errors)
    {
        println!("problem: {line}");
    }
    println!(
        "result: {} (guest exit {:?}, {:.1} s wall)",
        if report.pass { "PASS" } else { "FAIL" },
        report.guest_exit_code,
        report.timing.wall_s
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::test_support::{args, run};

    #[test]
    fn the_report_carries_the_devices_own_counters_and_the_verdict() {
        let config = DeviceConfig::new(64 << 20, 2 << 20).unwrap();
        let device = Mutex::new(RangefaultDevice::new(config).unwrap());
        {
            let mut d = device.lock().unwrap();
            let mut word = [0u8; 4];
            d.regs_read(0, &mut word);
            // Past the end of config space: a bad access.
            d.config_read(0x1000, &mut word);
        }
        let args = args(&["--scenario", "faults"]);
        let image = GuestImage::default();
        let inputs = ReportInputs {
            args: &args,
            config,
            engine: Engine::Kvm,
            engine_reason: "asked for".into(),
            image: &image,
            bdf: "0000:00:03.0".into(),
            device: &device,
            devices: vec![(
                DeviceSpec {
                    config,
                    driver: crate::device_spec::GuestDriver::VfioPci,
                },
                "0000:00:04.0".into(),
                &device,
            )],
        };
        let mut outcome = run(Some(0));
        outcome.console.feed(
            r#"RANGEFAULT-RESULT {"scenario":"kmemleak","pass":true,"enabled":false,"clean":null,"scan_ms":null,"report":"off"}"#,
        );
        outcome
            .console
            .feed(r#"RANGEFAULT-RESULT {"scenario":"user","pass":false}"#);
        let verdict = Verdict::of(&outcome, Vec::new());
        let report = build(inputs, &outcome, verdict, None);
        assert!(report.pass);
        assert_eq!(report.scenario, "faults");
        let json = serde_json::to_value(&report).unwrap();
        let accesses = &json["device"]["accesses"];
        assert_eq!(accesses["reg_reads"], 1, "{json:#}");
        assert_eq!(accesses["config_reads"], 1, "{json:#}");
        assert_eq!(accesses["bad_accesses"], 1, "{json:#}");
        assert_eq!(json["engine"], "kvm");
        assert_eq!(json["devices"][0]["driver"], "vfio-pci");
        assert_eq!(json["devices"][0]["bdf"], "0000:00:04.0");
        assert_eq!(json["devices"][0]["accesses"]["reg_reads"], 1);
        assert_eq!(json["guest_exit_code"], 0);
        // What the boot tests do: read the whole report back into its own types.
        let back: Report = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        assert_eq!(
            back.scenarios[0].probe().map(|r| r.name()),
            Some("kmemleak")
        );
        assert_eq!(back.scenarios[1].pass(), Some(false));
    }
}
