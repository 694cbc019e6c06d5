//! `vmm run`: the main job.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use device_model::{abi, DeviceConfig, RangefaultDevice};

use crate::engine::{self, kvm, nested, qemu, Engine, EngineChoice, GuestLaunch};
use crate::guest_files;
use crate::hostvirt::HostVirt;
use crate::images::{self, GuestImage, Parts};
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
    /// QEMU to run (10.1 or newer: its vfio-user client); default: the image sysroot's.
    #[arg(long)]
    qemu: Option<PathBuf>,
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
    /// Record the bytes QEMU sends the device over vfio-user into DIR/vfio-user.bin
    /// (engine qemu only): the fuzz targets' seeds (fuzz/README.md).
    #[arg(long = "record-device-io", value_name = "DIR")]
    record_device_io: Option<PathBuf>,
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

/// The kernel, initramfs and QEMU this run uses: what the user named, the
/// rest from the image build. Nothing is built when the user brought all the
/// engine needs (kernel and initramfs for kvm, and QEMU for qemu), so a
/// static vmm runs anywhere.
fn guest_image(args: &RunArgs, engine: Engine) -> Result<GuestImage> {
    let brought = args.kernel.is_some() && args.initramfs.is_some();
    let mut image = match engine {
        Engine::Kvm if brought => GuestImage::default(),
        Engine::Qemu if brought && args.qemu.is_some() => GuestImage::default(),
        Engine::Qemu if brought => images::build(Parts::Qemu, args.kernel_flavour)?,
        Engine::KvmNested => images::build(Parts::Nested, args.kernel_flavour)?,
        _ => images::build(Parts::All, args.kernel_flavour)?,
    };
    if let Some(kernel) = &args.kernel {
        image.kernel_release = images::kernel_release(kernel);
    }
    if let Some(qemu) = &args.qemu {
        let version = images::check_qemu(qemu)?;
        image.versions.insert("qemu (--qemu)".into(), version);
        image.qemu = Some(qemu.clone());
    }
    Ok(image)
}

fn run(args: &RunArgs, config: DeviceConfig, engine: Engine, reason: String) -> Result<ExitCode> {
    for path in [&args.kernel, &args.initramfs, &args.qemu]
        .into_iter()
        .flatten()
    {
        anyhow::ensure!(path.is_file(), "{} does not exist", path.display());
    }
    anyhow::ensure!(
        args.record_device_io.is_none() || engine == Engine::Qemu,
        "--record-device-io records vfio-user, which only engine qemu speaks"
    );
    let image = guest_image(args, engine)?;
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

    if engine == Engine::KvmNested {
        return run_nested(args, &image, &kernel, &initramfs, reason);
    }

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
    // The engine takes the device; keep a handle to read its host checks after.
    let checked_device = Arc::clone(&device);
    let launch = GuestLaunch {
        kernel,
        initramfs,
        cmdline: cmdline.trim_end().to_owned(),
        memory: args.memory,
        cpus: args.cpus,
        timeout: Duration::from_secs(args.timeout),
    };
    let outcome = match engine {
        Engine::Qemu => qemu::run(
            image.qemu()?,
            &launch,
            device,
            args.record_device_io.as_deref(),
        )?,
        Engine::Kvm => kvm::run(&launch, device)?,
        Engine::KvmNested => anyhow::bail!("kvm-nested runs through run_nested"),
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

/// The inner run's `vmm run` arguments: this run's, with the engine left
/// to `auto` (inside the outer guest it must find KVM and say so).
fn inner_args(args: &RunArgs) -> Result<Vec<String>> {
    let mut inner: Vec<String> = [
        "--engine",
        "auto",
        "--memory",
        &format_size(args.memory),
        "--vram",
        &format_size(args.vram),
        "--page-size",
        &format_size(args.page_size),
        "--cpus",
        &args.cpus.to_string(),
        "--scenario",
        &args.scenario,
        "--timeout",
        &args.timeout.to_string(),
    ]
    .map(str::to_owned)
    .into();
    if let Some(cmd) = &args.guest_cmd {
        inner.push(format!("--guest-cmd={cmd}"));
    }
    if !args.cmdline.is_empty() {
        inner.push(format!("--cmdline={}", args.cmdline));
    }
    // The outer /init reads them one per line.
    anyhow::ensure!(
        !inner.iter().any(|arg| arg.contains('\n')),
        "--engine kvm-nested cannot pass a --guest-cmd or --cmdline with a newline to the inner run"
    );
    Ok(inner)
}

/// `--engine kvm-nested`: runs the inner run in the outer guest, and reports
/// the inner run's report with the outer guest's view added under `nested`
/// (its errors, warnings and kernel problems also in the top-level lists,
/// so a nested run passes only if both levels were clean).
fn run_nested(
    args: &RunArgs,
    image: &GuestImage,
    kernel: &std::path::Path,
    initramfs: &std::path::Path,
    reason: String,
) -> Result<ExitCode> {
    let qemu = image.qemu()?;
    // The project's kernel (it has KVM_AMD), whichever kernel the inner run boots.
    let outer_kernel = image.kernel.clone().context("no outer kernel")?;
    let outer_initramfs = image
        .nested_initramfs
        .clone()
        .context("images/build.sh did not report nested_initramfs=")?;
    let launch = nested::NestedLaunch {
        qemu,
        outer_kernel: &outer_kernel,
        outer_initramfs: &outer_initramfs,
        inner_kernel: kernel,
        inner_initramfs: initramfs,
        inner_args: inner_args(args)?,
        memory: args.memory + args.vram + nested::OUTER_OVERHEAD,
        cpus: args.cpus,
        timeout: Duration::from_secs(args.timeout) + nested::OUTER_EXTRA_TIME,
    };
    eprintln!(
        "vmm: kvm-nested: outer guest under QEMU TCG ({} RAM, {} vCPUs) runs: vmm run {}",
        format_size(launch.memory),
        launch.cpus,
        launch.inner_args.join(" ")
    );
    let run = nested::run(&launch)?;

    let mut outer_errors = Vec::new();
    if let Err(why) = &run.inner_report {
        outer_errors.push(why.clone());
    }
    if run.timed_out {
        outer_errors.push(format!(
            "the outer guest ran past {} s",
            launch.timeout.as_secs()
        ));
    } else if !run.qemu_status.is_some_and(|s| s.success()) {
        outer_errors.push(format!(
            "the outer QEMU ended with {}",
            run.qemu_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "an unknown status".into())
        ));
    }
    let outer_warnings: Vec<&String> = run
        .qemu_stderr
        .iter()
        .filter(|line| line.contains("warning:"))
        .collect();
    let mut report = match &run.inner_report {
        Ok(report) => report.clone(),
        // What the outer console saw of the inner guest, in the report's shape.
        Err(_) => serde_json::json!({
            "engine": "kvm-nested",
            "engine_reason": reason,
            "versions": {"vmm": env!("CARGO_PKG_VERSION"), "kernel_release": null, "packages": {}},
            "scenario": args.scenario,
            "scenarios": run.console.results,
            "guest_errors": run.console.errors,
            "guest_exit_code": run.console.exit_code,
            "guest_log_problems": [],
            "host": {},
            "host_checks": {},
            "host_errors": [],
            "engine_warnings": [],
            "timing": {"wall_s": run.wall.as_secs_f64()},
            "timed_out": run.timed_out,
            "pass": false,
        }),
    };
    // The inner vmm built nothing: the image's versions are this side's.
    if report["versions"]["packages"]
        .as_object()
        .is_none_or(|p| p.is_empty())
    {
        report["versions"]["packages"] = serde_json::to_value(&image.versions)?;
    }
    let append = |report: &mut serde_json::Value, key: &str, lines: Vec<String>| {
        if let Some(list) = report[key].as_array_mut() {
            for line in lines {
                let line = serde_json::Value::String(line);
                if !list.contains(&line) {
                    list.push(line);
                }
            }
        }
    };
    append(&mut report, "host_errors", outer_errors.clone());
    append(
        &mut report,
        "engine_warnings",
        outer_warnings
            .iter()
            .map(|l| format!("outer QEMU: {l}"))
            .collect(),
    );
    append(
        &mut report,
        "guest_log_problems",
        run.console.problems.clone(),
    );
    // The outer console carries the inner one too: a problem of either kernel fails the run.
    let pass = report["pass"] == true
        && outer_errors.is_empty()
        && outer_warnings.is_empty()
        && run.console.problems.is_empty();
    report["pass"] = pass.into();
    report["nested"] = serde_json::json!({
        "engine": "kvm-nested",
        "engine_reason": reason,
        "outer": {
            "accelerator": "tcg",
            "cpu": "max",
            "memory": launch.memory,
            "cpus": launch.cpus,
            "kernel_release": images::kernel_release(&outer_kernel),
            "qemu_status": run.qemu_status.map(|s| s.to_string()),
            "wall_s": run.wall.as_secs_f64(),
            "timed_out": run.timed_out,
        },
        "inner_vmm_exit": run.inner_exit,
        "inner_report": run.inner_report.is_ok(),
        "errors": outer_errors,
    });
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("---- rangefault kvm-nested summary ----");
    println!(
        "outer guest: QEMU TCG, {} RAM, {} vCPUs, {:.1} s wall; inner vmm exit {}",
        format_size(launch.memory),
        launch.cpus,
        run.wall.as_secs_f64(),
        run.inner_exit
            .map(|c| c.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    for line in &outer_errors {
        println!("problem: {line}");
    }
    println!(
        "result: {} (inner engine {}: {})",
        if pass { "PASS" } else { "FAIL" },
        report["engine"].as_str().unwrap_or("?"),
        report["engine_reason"].as_str().unwrap_or("?")
    );
    Ok(if run.timed_out {
        ExitCode::from(EXIT_TIMEOUT)
    } else if pass {
        ExitCode::SUCCESS
    } else if run.inner_report.is_err() {
        ExitCode::from(EXIT_NO_RESULT)
    } else {
        match run.inner_exit {
            Some(code) if code != 0 => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            _ => ExitCode::FAILURE,
        }
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
