//! `--engine kvm-nested`: the inner run inside the outer guest, its report
//! merged with the outer view (`engine::nested_report`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use super::exit_status::RunEnd;
use super::image::RunImage;
use super::{report, RunArgs};
use crate::engine::nested;
use crate::engine::nested_report::{self, OuterFacts};
use crate::images;
use crate::size::format_size;

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

/// Runs the inner run in the outer guest, and reports the inner run's
/// report with the outer guest's view added.
pub fn run(args: &RunArgs, image: &RunImage, reason: String) -> Result<ExitCode> {
    let qemu = image.image.qemu()?;
    // The project's kernel (it has KVM_AMD), whichever kernel the inner run boots.
    let outer_kernel = image.image.kernel.clone().context("no outer kernel")?;
    let outer_initramfs = image
        .image
        .nested_initramfs
        .clone()
        .context("images/build.sh did not report nested_initramfs=")?;
    let launch = nested::NestedLaunch {
        qemu,
        outer_kernel: &outer_kernel,
        outer_initramfs: &outer_initramfs,
        inner_kernel: &image.kernel,
        inner_initramfs: &image.initramfs,
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
    let outer = OuterFacts {
        engine_reason: &reason,
        scenario: &args.scenario,
        versions: &image.image.versions,
        source: &images::source_tree(),
        outer_kernel_release: images::kernel_release(&outer_kernel),
    };
    let merged = nested_report::merge(&run, &launch, &outer);
    report::write(args.report.as_deref(), &merged.report)?;
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
    for line in &merged.outer_errors {
        println!("problem: {line}");
    }
    println!(
        "result: {} (inner engine {}: {})",
        if merged.pass { "PASS" } else { "FAIL" },
        merged.report["engine"].as_str().unwrap_or("?"),
        merged.report["engine_reason"].as_str().unwrap_or("?")
    );
    let end = RunEnd {
        timed_out: run.timed_out,
        pass: merged.pass,
        // The inner vmm's status stands for the guest's; with a report but
        // no status seen, the run failed without one.
        guest_status: run
            .inner_report
            .is_ok()
            .then(|| run.inner_exit.unwrap_or(1)),
    };
    Ok(end.exit_code())
}
