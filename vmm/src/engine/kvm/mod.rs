//! The KVM engine: rangefault's own VMM (rust-vmm crates) boots the guest
//! with the device model in-process. BAR0 is served on MMIO exits, BAR2 is
//! a memslot backed by the device's VRAM memfd, MSI-X goes through
//! KVM_SIGNAL_MSI, and the host page-table check walks guest RAM directly,
//! cross-checking ROOT with the CR3 of the vCPU that rang and decoding
//! memory types with that vCPU's IA32_PAT. The console
//! feeds the same [`GuestConsole`] parser as the QEMU engine, and the
//! outcome is the same [`GuestRun`], with the KVM engine's own counters.
//! The machine itself is the `kvm-machine` crate.

use std::io::{self, Write};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use device_model::RangefaultDevice;
use kvm_machine::{EndReason, RunOutcome, Vm, VmConfig};

use super::{GuestLaunch, GuestRun, HostCounters};
use crate::guest_console::GuestConsole;
use crate::hostvirt::HostVirt;

/// How often the wait for the VM looks for Ctrl-C or SIGTERM.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

// Both engines put the device at the same address, so the guest, the
// topology printout and the reports agree.
const _: () = assert!(kvm_machine::RANGEFAULT_SLOT == super::qemu::PCI_SLOT);

/// Kernel messages printed once the guest has halted or powered off. This
/// machine has no ACPI, so a guest that powers off anyway (not our /init,
/// which reboots) ends in a halt the VMM cannot see (the halted vCPUs sleep
/// in the kernel): the console is the only sign.
const HALTED_MARKERS: &[&str] = &[
    "reboot: System halted",
    "reboot: Power down",
    "Power off not available: System halted instead",
];

enum Event {
    Line(String),
    Ended(Result<RunOutcome>),
}

/// Serial output, cut into lines for the main thread.
struct ConsoleLines {
    pending: Vec<u8>,
    sender: Sender<Event>,
}

impl ConsoleLines {
    fn send_pending(&mut self) -> io::Result<()> {
        let line = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.sender
            .send(Event::Line(line))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "console reader gone"))
    }
}

impl Write for ConsoleLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &byte in buf {
            self.pending.push(byte);
            // A guest that never sends a newline must not grow host memory without bound.
            if byte == b'\n' || self.pending.len() >= crate::guest_console::MAX_LINE {
                self.send_pending()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ConsoleLines {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.send_pending();
        }
    }
}

/// Boots the guest under KVM with `device` attached and waits for it to
/// power off (or for the timeout).
pub fn run(launch: &GuestLaunch, device: Arc<Mutex<RangefaultDevice>>) -> Result<GuestRun> {
    let host = HostVirt::detect();
    if !host.kvm_boots_linux() {
        eprintln!(
            "vmm: warning: {}; a Linux guest will not boot under --engine kvm here (expect a timeout)",
            host.explain()
        );
    }
    let (sender, events) = mpsc::channel();
    let console = ConsoleLines {
        pending: Vec::new(),
        sender: sender.clone(),
    };
    let config = VmConfig {
        memory: launch.memory,
        cpus: launch.cpus,
    };
    let com2 = match &launch.second_serial {
        Some(path) => Some(Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        ) as kvm_machine::ConsoleOut),
        None => None,
    };
    let mut vm = Vm::with_com2(config, device, Box::new(console), com2)
        .context("cannot create the KVM VM")?;
    // No ACPI here, so no power-off: the guest's /init reboots instead
    // (rangefault.end=reboot) and Linux resets through the keyboard
    // controller (reboot=k), which ends the run. The i8042 has no keyboard
    // or mouse behind it: say so, or Linux probes them for seconds.
    let cmdline = format!(
        "{} reboot=k rangefault.end=reboot i8042.nokbd i8042.noaux",
        launch.cmdline
    );
    vm.load_linux(&launch.kernel, &launch.initramfs, &cmdline)?;
    let stopper = vm.stopper();
    let timeout = launch.timeout;
    let started = Instant::now();
    thread::Builder::new()
        .name("kvm-vm".into())
        .spawn(move || {
            let outcome = vm.run(timeout);
            // Dropping the VM flushes the console's last partial line
            // before the end is announced.
            drop(vm);
            let _ = sender.send(Event::Ended(outcome));
        })
        .context("cannot start the VM thread")?;

    let mut console = GuestConsole::new(started);
    let mut stopping = false;
    let outcome = loop {
        // On every turn, not only when the console is quiet: a chatty guest must stop too.
        if let (false, Some(signal)) = (stopping, crate::interrupt::received()) {
            stopper.stop(format!("{} received", crate::interrupt::name(signal)));
            stopping = true;
        }
        match events.recv_timeout(INTERRUPT_POLL) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(Event::Line(line)) => {
                print!("{line}");
                console.feed(&line);
                if HALTED_MARKERS.iter().any(|m| line.contains(m)) {
                    stopper.stop("the guest kernel halted");
                }
            }
            Ok(Event::Ended(outcome)) => {
                console.finish();
                break outcome?;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                anyhow::bail!("the KVM VM thread died without a result")
            }
        }
    };
    Ok(guest_run(console, outcome))
}

/// The outcome in the shape run.rs reports for either engine.
fn guest_run(console: GuestConsole, outcome: RunOutcome) -> GuestRun {
    let c = &outcome.counters;
    eprintln!(
        "vmm: kvm: {} (VRAM memslot changes {}, MSIs {}, unclaimed accesses {}, CR3 reads {}, PAT reads {})",
        outcome.reason,
        c.vram_slot_changes.get(),
        c.msis_delivered.get(),
        c.unclaimed_accesses.get(),
        c.cr3_reads.get(),
        c.pat_reads.get()
    );
    GuestRun {
        console,
        host: HostCounters::Kvm(Arc::clone(c)),
        engine_error: outcome
            .reason
            .is_host_error()
            .then(|| format!("KVM engine: {}", outcome.reason)),
        engine_status: Some(format!("KVM: {}", outcome.reason)),
        // The VMM's own warnings went to the log as they happened.
        engine_log: Vec::new(),
        timed_out: outcome.reason == EndReason::TimedOut,
        wall: outcome.wall,
    }
}
