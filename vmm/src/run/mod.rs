//! `vmm run`: the main job, in steps: the image it boots ([`image`]), the
//! kernel command line ([`cmdline`]), the engine run, the verdict
//! ([`verdict`]), the report and summary ([`report`]) and the exit status
//! ([`exit_status`]); with `--trace`, the fault trace between the engine
//! and the verdict ([`trace`]). `--engine kvm-nested` takes its own path
//! after the image ([`nested`]).

mod cmdline;
mod exit_status;
mod image;
mod nested;
mod report;
#[cfg(test)]
mod test_support;
mod trace;
mod verdict;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use device_model::{DeviceConfig, RangefaultDevice};

use crate::device_spec::{self, DeviceSpec, GuestDriver, MAX_DEVICES};
use crate::engine::{self, kvm, qemu, Engine, EngineChoice, GuestLaunch};
use crate::guest_files;
use crate::hostvirt::HostVirt;
use crate::images;
use crate::interrupt;
use crate::scratch;
use crate::size::{format_size, power_of_two_in};
use crate::topology;
use exit_status::RunEnd;
use image::RunImage;
use report::ReportInputs;
use verdict::Verdict;

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
    /// A device instance instead of --vram/--page-size, repeatable (up to 8, slots 00:03.0 on):
    /// `vram=SIZE,page-size=SIZE[,driver=rangefault|vfio-pci]`. A `vfio-pci` device is bound to
    /// vfio-pci in the guest, which then gets a virtual IOMMU (engine qemu).
    #[arg(long = "device", value_name = "SPEC", value_parser = device_spec::parse_device, conflicts_with_all = ["vram", "page_size"])]
    devices: Vec<DeviceSpec>,
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
    /// Trace every fault of the run (the driver's trace events and the kernel's user page-fault
    /// exceptions) and write it here as Chrome JSON, for ui.perfetto.dev; a latency plot goes
    /// beside it (same name, `.png`) and a summary into the report. Engines qemu and kvm.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// The guest's trace buffer per vCPU for --trace, 1M ..= 256M: a fault costs ~150 bytes;
    /// a run that overflows it reports how many events it lost.
    #[arg(long = "trace-buffer", default_value = "16M", value_parser = power_of_two_in(1 << 20, 256 << 20))]
    trace_buffer: u64,
    /// Deterministic time (QEMU engine): the guest clock counts instructions, one guest
    /// nanosecond per instruction (`-icount shift=0,sleep=off`), so the guest's timings are
    /// instruction counts that do not move with the host's load.
    #[arg(long)]
    icount: bool,
    /// Record the bytes QEMU sends the device over vfio-user into DIR/vfio-user.bin
    /// (engine qemu only): the fuzz targets' seeds (fuzz/README.md).
    #[arg(long = "record-device-io", value_name = "DIR")]
    record_device_io: Option<PathBuf>,
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
    if let Err(e) = interrupt::install() {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let stale = scratch::sweep_stale();
    if stale > 0 {
        eprintln!("vmm: removed {stale} temporary directories of vmm runs that were killed");
    }
    let specs = if args.devices.is_empty() {
        match DeviceConfig::new(args.vram, args.page_size) {
            Ok(config) => vec![DeviceSpec {
                config,
                driver: GuestDriver::Rangefault,
            }],
            Err(e) => {
                eprintln!(
                    "error: --vram {} / --page-size {}: {e}",
                    format_size(args.vram),
                    format_size(args.page_size)
                );
                return ExitCode::from(exit_status::EXIT_USAGE);
            }
        }
    } else {
        args.devices.clone()
    };
    if specs.len() > MAX_DEVICES {
        eprintln!(
            "error: --device given {} times; at most {MAX_DEVICES}",
            specs.len()
        );
        return ExitCode::from(exit_status::EXIT_USAGE);
    }
    let host = HostVirt::detect();
    let (engine, reason) = match engine::choose(args.engine, &host) {
        Ok(choice) => choice,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(exit_status::EXIT_USAGE);
        }
    };
    if engine != Engine::Qemu
        && (specs.len() > 1 || specs.iter().any(|d| d.driver != GuestDriver::Rangefault))
    {
        eprintln!(
            "error: engine {} runs one device, driven by rangefault; more devices, or vfio-pci (which needs the virtual IOMMU of QEMU's q35), need --engine qemu",
            engine.name()
        );
        return ExitCode::from(exit_status::EXIT_USAGE);
    }
    if engine == Engine::KvmNested && !args.devices.is_empty() {
        eprintln!("error: --engine kvm-nested takes --vram and --page-size, not --device");
        return ExitCode::from(exit_status::EXIT_USAGE);
    }
    if args.icount && engine != Engine::Qemu {
        eprintln!("error: --icount needs --engine qemu (KVM runs the guest on the real CPU)");
        return ExitCode::from(exit_status::EXIT_USAGE);
    }
    // Say so now, not after a boot whose trace would have nowhere to go.
    if let Some(dir) = args.trace.as_deref().and_then(Path::parent) {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            eprintln!("error: --trace: {} is not a directory", dir.display());
            return ExitCode::from(exit_status::EXIT_USAGE);
        }
    }
    if args.trace.is_some() && engine == Engine::KvmNested {
        eprintln!(
            "error: --trace needs --engine qemu or kvm (kvm-nested does not carry the inner guest's trace out)"
        );
        return ExitCode::from(exit_status::EXIT_USAGE);
    }
    eprintln!("vmm: engine {} ({reason})", engine.name());
    let code = match run(&args, &specs, engine, reason) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Everything of the run is dropped by now (QEMU reaped, temporary directories removed).
    match interrupt::received() {
        Some(signal) => {
            eprintln!("vmm: stopped by {}", interrupt::name(signal));
            ExitCode::from(128 + signal as u8)
        }
        None => code,
    }
}

fn run(args: &RunArgs, specs: &[DeviceSpec], engine: Engine, reason: String) -> Result<ExitCode> {
    anyhow::ensure!(
        args.record_device_io.is_none() || engine == Engine::Qemu,
        "--record-device-io records vfio-user, which only engine qemu speaks"
    );
    let image = RunImage::prepare(args, engine)?;
    if engine == Engine::KvmNested {
        return nested::run(args, &image, reason);
    }

    let bdfs: Vec<String> = (0..specs.len()).map(qemu::bdf).collect();
    println!("PCI topology exposed to the guest:");
    for (spec, bdf) in specs.iter().zip(&bdfs) {
        for line in topology::describe(bdf, &spec.config, spec.driver) {
            println!("  {line}");
        }
    }
    // The report's `device` (and its host checks) is the first one rangefault drives: the one
    // the scenarios open as /dev/rangefault0.
    let primary = specs
        .iter()
        .position(|d| d.driver == GuestDriver::Rangefault)
        .unwrap_or(0);
    let config = specs[primary].config;
    let vfio_bdfs: Vec<String> = specs
        .iter()
        .zip(&bdfs)
        .filter(|(spec, _)| spec.driver == GuestDriver::VfioPci)
        .map(|(_, bdf)| bdf.clone())
        .collect();
    let trace_dir = match &args.trace {
        Some(_) => Some(scratch::dir("trace")?),
        None => None,
    };
    let mut cmdline = cmdline::kernel_cmdline(args, trace_dir.is_some())?;
    if let Some(vfio) = device_spec::vfio_cmdline(&vfio_bdfs) {
        cmdline = format!("{cmdline} {vfio}");
    }
    let launch = GuestLaunch {
        kernel: image.kernel.clone(),
        initramfs: image.initramfs.clone(),
        cmdline,
        memory: args.memory,
        cpus: args.cpus,
        timeout: Duration::from_secs(args.timeout),
        second_serial: trace_dir.as_ref().map(|dir| dir.path().join("trace.gz")),
        icount: args.icount,
    };
    let devices = specs
        .iter()
        .map(|spec| {
            RangefaultDevice::new(spec.config)
                .map(|d| Arc::new(Mutex::new(d)))
                .context("cannot create the device")
        })
        .collect::<Result<Vec<_>>>()?;
    // The engine takes the devices; keep handles to read their host checks after.
    let outcome = match engine {
        Engine::Qemu => qemu::run(
            image.image.qemu()?,
            &launch,
            &devices,
            !vfio_bdfs.is_empty(),
            args.record_device_io.as_deref(),
        )?,
        Engine::Kvm => kvm::run(&launch, Arc::clone(&devices[0]))?,
        Engine::KvmNested => anyhow::bail!("kvm-nested runs through nested::run"),
    };

    let trace = trace::collect(args, config, engine, launch.second_serial.as_deref());
    let verdict = Verdict::of(&outcome, trace.host_errors);
    let inputs = ReportInputs {
        args,
        config,
        engine,
        engine_reason: reason,
        image: &image.image,
        bdf: bdfs[primary].clone(),
        device: &devices[primary],
        devices: specs
            .iter()
            .zip(&bdfs)
            .zip(&devices)
            .map(|((spec, bdf), device)| (*spec, bdf.clone(), device.as_ref()))
            .collect(),
    };
    let report = report::build(inputs, &outcome, verdict, trace.report);
    report::write(args.report.as_deref(), &report)?;
    report::print_summary(&report);
    let end = RunEnd {
        timed_out: report.timed_out,
        pass: report.pass,
        guest_status: report.guest_exit_code,
    };
    Ok(end.exit_code())
}
