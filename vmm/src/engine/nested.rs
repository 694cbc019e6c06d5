//! The kvm-nested engine: rangefault's KVM engine, run where the host has
//! no hardware virtualization. QEMU TCG boots an *outer* guest whose CPU
//! (`-cpu max`) has svm and npt, so the outer kernel's kvm_amd gives it a
//! hardware-style /dev/kvm; inside it a static `vmm run --engine auto`
//! boots the ordinary (inner) guest under KVM with the device in-process.
//!
//! Everything the inner run needs travels in the outer initramfs: the
//! cached one (busybox, static vmm, /init: images/nested-init.sh) with the
//! inner kernel, inner initramfs and the inner run's arguments appended per
//! run. The inner console reaches our console through the outer one; the
//! inner JSON report comes out on the outer guest's second serial port,
//! which QEMU writes to a file.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use super::qemu::process::{self, QemuMachine};
use crate::guest_console::GuestConsole;
use crate::guest_files::{self, AddedFile};

/// What the outer guest needs on top of the inner run's own memory: its
/// kernel, the initramfs (unpacked into RAM, holding the inner images) and
/// the static vmm.
pub const OUTER_OVERHEAD: u64 = 1 << 30;
/// How much longer than the inner run the outer guest may take: its own
/// boot, unpacking the inner images, and the report's way out.
pub const OUTER_EXTRA_TIME: Duration = Duration::from_secs(120);

/// The outer kernel's command line. `kvm.halt_poll_ns=0`: KVM's halt
/// polling spins the outer vCPU of an idle inner vCPU for up to its poll
/// window before sleeping; under TCG on few host cores that spin takes the
/// time the other vCPUs need (a 2-vCPU inner boot took 2.5x as long with it).
const OUTER_CMDLINE: &str = "console=ttyS0 rdinit=/init panic=-1 kvm.halt_poll_ns=0";

/// The line the outer /init prints when the inner vmm exits.
const INNER_EXIT_PREFIX: &str = "rangefault-nested: inner vmm exited ";

/// Everything needed to run the inner guest inside the outer one.
pub struct NestedLaunch<'a> {
    pub qemu: &'a Path,
    /// The outer guest's kernel (it must have KVM_AMD; the project's does).
    pub outer_kernel: &'a Path,
    /// images/nested.sh's archive.
    pub outer_initramfs: &'a Path,
    pub inner_kernel: &'a Path,
    pub inner_initramfs: &'a Path,
    /// `vmm run` arguments for the inner run (without --kernel, --initramfs
    /// and --report, which the outer /init adds).
    pub inner_args: Vec<String>,
    pub memory: u64,
    pub cpus: u8,
    pub timeout: Duration,
}

/// How the nested run went, seen from outside.
pub struct NestedRun {
    /// The outer guest's console: the outer kernel, then the inner vmm's
    /// output (the inner console included, so its result lines parse too).
    pub console: GuestConsole,
    /// The inner vmm's report, or why there is none.
    pub inner_report: Result<Value, String>,
    /// The inner vmm's exit status, as the outer /init saw it.
    pub inner_exit: Option<i32>,
    pub qemu_stderr: Vec<String>,
    pub qemu_status: Option<ExitStatus>,
    pub timed_out: bool,
    pub wall: Duration,
}

/// Boots the outer guest and waits for it to power off (or the timeout).
pub fn run(launch: &NestedLaunch) -> Result<NestedRun> {
    let work = crate::scratch::dir("nested")?;
    let args_file = work.path().join("args");
    std::fs::write(&args_file, launch.inner_args.join("\n") + "\n")?;
    let initramfs = work.path().join("outer.cpio");
    guest_files::extend_initramfs(
        launch.outer_initramfs,
        &[
            added(launch.inner_kernel, "/inner/bzImage"),
            added(launch.inner_initramfs, "/inner/initramfs.cpio"),
            added(&args_file, "/nested/args"),
        ],
        &initramfs,
    )
    .context("cannot pack the outer initramfs")?;
    let report_file = work.path().join("inner-report.json");

    let machine = QemuMachine {
        qemu: launch.qemu,
        kernel: launch.outer_kernel,
        initramfs: &initramfs,
        cmdline: OUTER_CMDLINE,
        memory: launch.memory,
        cpus: launch.cpus,
        second_serial: Some(&report_file),
    };
    let mut command = machine.command();
    command.args(["-machine", "q35"]);
    let mut inner_exit = None;
    let watched = process::watch(command, launch.timeout, |line| {
        if let Some(code) = line.trim_end().strip_prefix(INNER_EXIT_PREFIX) {
            inner_exit = code.trim().parse().ok();
        }
    })?;
    Ok(NestedRun {
        console: watched.console,
        inner_report: read_report(&report_file),
        inner_exit,
        qemu_stderr: watched.stderr,
        qemu_status: watched.status,
        timed_out: watched.timed_out,
        wall: watched.wall,
    })
}

fn added(host: &Path, guest: &str) -> AddedFile {
    AddedFile {
        host: PathBuf::from(host),
        guest: guest.to_owned(),
    }
}

/// The inner report as the outer guest's ttyS1 wrote it (its tty turns
/// "\n" into "\r\n", which JSON takes as whitespace).
fn read_report(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("the outer guest sent no inner report ({e})"))?;
    if text.trim().is_empty() {
        return Err("the outer guest sent no inner report (the inner vmm wrote none)".into());
    }
    serde_json::from_str(&text).map_err(|e| format!("the inner report is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_report_with_tty_line_endings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(
            &path,
            "{\r\n  \"pass\": true,\r\n  \"engine\": \"kvm\"\r\n}\r\n",
        )
        .unwrap();
        let report = read_report(&path).unwrap();
        assert_eq!(report["engine"], "kvm");
    }

    #[test]
    fn a_missing_or_broken_report_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        assert!(read_report(&path).unwrap_err().contains("no inner report"));
        std::fs::write(&path, "").unwrap();
        assert!(read_report(&path).unwrap_err().contains("wrote none"));
        std::fs::write(&path, "{\"pass\": tr").unwrap();
        assert!(read_report(&path).unwrap_err().contains("not JSON"));
    }
}
