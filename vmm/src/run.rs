//! `vmm run`: the main job.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use device_model::{abi, DeviceConfig, RangefaultDevice};

use crate::engine::{self, kvm, qemu, Engine, EngineChoice};
use crate::guest_files;
use crate::hostvirt::HostVirt;
use crate::images::{self, Parts};
use crate::report::{DeviceReport, GuestDriverView, HostChecks, Report, Timing, Versions};
use crate::size::{format_size, power_of_two_in};
use crate::topology;

/// Exit status for bad usage (like clap's own).
const EXIT_USAGE: u8 = 2;
/// Exit status when the guest never reported a result.
const EXIT_NO_RESULT: u8 = 70;
/// Exit status when the guest ran past --timeout.
const EXIT_TIMEOUT: u8 = 124;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Which engine runs the guest.
    #[arg(long, value_enum, default_value_t = EngineChoice::Auto)]
    engine: EngineChoice,
    /// Guest kernel (bzImage); default: the cached image, built if missing.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Guest initramfs; default: the cached image, built if missing.
    #[arg(long)]
    initramfs: Option<PathBuf>,
    /// Which cached kernel to build and boot: `debug` (lockdep, DEBUG_VM) or `bench`.
    #[arg(long = "kernel-flavour", value_enum, default_value_t = images::KernelFlavour::Debug)]
    kernel_flavour: images::KernelFlavour,
    /// Extra kernel command-line arguments, appended to the defaults.
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Guest RAM, 128M ..= 64G.
    #[arg(long, default_value = "1G", value_parser = power_of_two_in(128 << 20, 64 << 30))]
    memory: u64,
    /// VRAM size (BAR2), a power of two in 64M ..= 64G.
    #[arg(long, default_value = "1G", value_parser = power_of_two_in(DeviceConfig::MIN_VRAM, DeviceConfig::MAX_VRAM))]
    vram: u64,
    /// The device's preferred page size, a power of two in 4K ..= 1G.
    #[arg(long = "page-size", default_value = "2M", value_parser = power_of_two_in(DeviceConfig::MIN_PAGE, DeviceConfig::MAX_PAGE))]
    page_size: u64,
    /// Guest vCPUs, 1 ..= 16.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=16))]
    cpus: u8,
    /// Scenario the guest runs (see rangefault-probe; letters, digits, '-' and '_').
    #[arg(long, default_value = "skeleton", value_parser = scenario_name)]
    scenario: String,
    /// Put a host file into the guest initramfs (repeatable; GUEST defaults to /bin/NAME).
    #[arg(long = "add", value_name = "HOST[:GUEST]", value_parser = guest_files::parse_add)]
    add: Vec<guest_files::AddedFile>,
    /// Run this shell command in the guest instead of --scenario; its exit code is the result.
    #[arg(long = "guest-cmd", value_name = "CMD")]
    guest_cmd: Option<String>,
    /// Write a JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Give up (and fail) if the guest has not powered off after this many seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,
}

/// A scenario name goes onto the kernel command line: a space would add kernel parameters.
fn scenario_name(text: &str) -> Result<String, String> {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "'{text}' is not a scenario name (letters, digits, '-' and '_' only)"
        ))
    }
}

pub fn main(args: RunArgs) -> ExitCode {
    let config = match DeviceConfig::new(args.vram, args.page_size) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "error: --vram {} / --page-size {}: {e}",
                format_size(args.vram),
                format_size(args.page_size)
            );
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let host = HostVirt::detect();
    let (engine, reason) = match engine::choose(args.engine, &host) {
        Ok(choice) => choice,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    eprintln!("vmm: engine {} ({reason})", engine.name());
    match run(&args, config, engine, reason) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &RunArgs, config: DeviceConfig, engine: Engine, reason: String) -> Result<ExitCode> {
    for path in [&args.kernel, &args.initramfs].into_iter().flatten() {
        anyhow::ensure!(path.is_file(), "{} does not exist", path.display());
    }
    let parts = if args.kernel.is_some() && args.initramfs.is_some() {
        Parts::Qemu
    } else {
        Parts::All
    };
    let image = images::build(parts, args.kernel_flavour)?;
    let kernel = args
        .kernel
        .clone()
        .or(image.kernel.clone())
        .context("no kernel")?;
    let initramfs = args
        .initramfs
        .clone()
        .or(image.initramfs.clone())
        .context("no initramfs")?;

    // User files go into a copy of the initramfs that lives as long as this run (`_added`).
    let (initramfs, _added) = if args.add.is_empty() {
        (initramfs, None)
    } else {
        let added = tempfile::Builder::new()
            .prefix("rangefault-add-")
            .tempdir()?;
        let extended = added.path().join("initramfs.cpio");
        guest_files::extend_initramfs(&initramfs, &args.add, &extended)?;
        (extended, Some(added))
    };

    let bdf = format!("0000:00:{:02x}.0", qemu::PCI_SLOT);
    println!("PCI topology exposed to the guest:");
    for line in topology::describe(&bdf, &config) {
        println!("  {line}");
    }

    let device = RangefaultDevice::new(config).context("cannot create the device")?;
    let device = Arc::new(Mutex::new(device));
    let guest_cmd = args.guest_cmd.as_ref().map(|cmd| {
        use base64::Engine as _;
        format!(
            " rangefault.cmd={}",
            base64::engine::general_purpose::STANDARD.encode(cmd)
        )
    });
    let cmdline = format!(
        "console=ttyS0 rdinit=/init panic=-1 rangefault.scenario={}{} {}",
        args.scenario,
        guest_cmd.unwrap_or_default(),
        args.cmdline
    );
    // x86's COMMAND_LINE_SIZE; a longer one would be cut silently.
    anyhow::ensure!(
        cmdline.len() < 2048,
        "the kernel command line would be {} bytes (limit 2047); shorten --guest-cmd or --cmdline",
        cmdline.len()
    );
    let launch = qemu::QemuLaunch {
        qemu: image.qemu.clone(),
        kernel,
        initramfs,
        cmdline: cmdline.trim_end().to_owned(),
        memory: args.memory,
        cpus: args.cpus,
        timeout: Duration::from_secs(args.timeout),
    };
    // The engine takes the device; keep a handle to read its host checks after.
    let checked_device = Arc::clone(&device);
    let outcome = match engine {
        Engine::Qemu => qemu::run(&launch, device)?,
        Engine::Kvm => kvm::run(
            &kvm::KvmLaunch {
                kernel: launch.kernel.clone(),
                initramfs: launch.initramfs.clone(),
                cmdline: launch.cmdline.clone(),
                memory: launch.memory,
                cpus: launch.cpus,
                timeout: launch.timeout,
            },
            device,
        )?,
    };

    let console = &outcome.console;
    let mut host_errors: Vec<String> = outcome.engine_error.iter().cloned().collect();
    if outcome.console.dropped > 0 {
        host_errors.push(format!(
            "{} guest result/error/problem lines beyond the first 1000 of each were not kept",
            outcome.console.dropped
        ));
    }
    if outcome.console.exit_code.is_none() && !outcome.timed_out {
        let last_words = &outcome.engine_log[outcome.engine_log.len().saturating_sub(3)..];
        host_errors.push(format!(
            "the guest ended without reporting a result ({}{})",
            outcome
                .engine_status
                .as_deref()
                .unwrap_or("the engine's status is unknown"),
            if last_words.is_empty() {
                String::new()
            } else {
                format!("; its last words: {}", last_words.join(" | "))
            }
        ));
    }
    let number = |key: &str| {
        console
            .bound_value(key)
            .and_then(|v| match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => v.parse().ok(),
            })
    };
    let pass = console.exit_code == Some(0)
        && console.problems.is_empty()
        && console.errors.is_empty()
        && host_errors.is_empty()
        && outcome.host.vram_trapped_accesses == 0
        && !outcome.timed_out;
    let report = Report {
        engine: engine.name().into(),
        engine_reason: reason,
        versions: Versions {
            vmm: env!("CARGO_PKG_VERSION"),
            kernel_release: image.kernel_release.clone(),
            packages: image.versions.clone(),
        },
        device: DeviceReport {
            bdf,
            vendor_id: abi::VENDOR_ID,
            device_id: abi::DEVICE_ID,
            vram_size: config.vram_size,
            page_size: config.page_size,
        },
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
        host_checks: HostChecks::of(&checked_device),
        host_errors,
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
        },
        timed_out: outcome.timed_out,
        pass,
    };
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    print_summary(&report);
    Ok(if report.timed_out {
        ExitCode::from(EXIT_TIMEOUT)
    } else if let Some(code) = report.guest_exit_code {
        if code == 0 && !report.pass {
            ExitCode::FAILURE
        } else {
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    } else {
        ExitCode::from(EXIT_NO_RESULT)
    })
}

fn print_summary(report: &Report) {
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
            scenario["scenario"].as_str().unwrap_or("?"),
            if scenario["pass"] == true {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }
    println!(
        "trapped VRAM accesses: {} (register accesses {}, config accesses {})",
        report.host.vram_trapped_accesses,
        report.host.register_accesses,
        report.host.config_accesses
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
