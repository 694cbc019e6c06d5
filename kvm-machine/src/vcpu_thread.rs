//! One thread per vCPU: KVM_RUN, serve the exit, repeat until the run
//! ends. Stopping interrupts KVM_RUN with a signal (no-op handler, no
//! SA_RESTART, so the ioctl returns EINTR), resent until every thread is
//! out: a signal that lands just before a thread re-enters KVM_RUN would
//! otherwise be lost.

use std::io;
use std::sync::{Arc, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kvm_ioctls::{VcpuExit, VcpuFd};
use libc::{c_int, c_void, siginfo_t};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use super::exiting_vcpu::ExitingVcpu;
use super::platform::Platform;
use super::run_control::{EndReason, RunControl};
use device_model::ratelimit::RateLimitedLog;

/// How often a stopping VMM re-kicks vCPUs still inside KVM_RUN.
const KICK_INTERVAL: Duration = Duration::from_millis(5);

/// The signal that kicks vCPU threads out of KVM_RUN.
fn kick_signal() -> c_int {
    SIGRTMIN()
}

extern "C" fn ignore_kick(_: c_int, _: *mut siginfo_t, _: *mut c_void) {}

/// Installs the kick handler once per process (a no-op: its only job is
/// to make the signal interrupt the ioctl instead of killing the process).
fn install_kick_handler() -> io::Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        result = register_signal_handler(kick_signal(), ignore_kick)
            .map_err(|e| io::Error::from_raw_os_error(e.errno()));
    });
    result
}

/// Ends the run if the vCPU thread dies by panicking (a VMM bug), so the
/// other vCPUs and the waiter do not hang until the timeout.
struct EndOnPanic {
    index: usize,
    control: Arc<RunControl>,
}

impl Drop for EndOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            self.control.end(EndReason::VcpuFailed {
                vcpu: self.index,
                error: "the vCPU thread panicked".into(),
            });
        }
    }
}

/// Starts vCPU `index` on its own thread.
pub fn spawn(
    index: usize,
    vcpu: VcpuFd,
    platform: Arc<Platform>,
    control: Arc<RunControl>,
) -> io::Result<JoinHandle<()>> {
    install_kick_handler()?;
    thread::Builder::new()
        .name(format!("vcpu{index}"))
        .spawn(move || {
            let _guard = EndOnPanic {
                index,
                control: control.clone(),
            };
            run(index, vcpu, &platform, &control);
        })
}

/// An MMIO write copied out of the exit, so the vCPU can be asked about
/// its state (CR3) while the write is served.
struct MmioWrite {
    addr: u64,
    bytes: [u8; 8],
    len: usize,
}

impl MmioWrite {
    fn copy(addr: u64, data: &[u8]) -> Self {
        // KVM's MMIO exits carry at most 8 bytes (kvm_run.mmio.data).
        let len = data.len().min(8);
        let mut bytes = [0u8; 8];
        bytes[..len].copy_from_slice(&data[..len]);
        Self { addr, bytes, len }
    }

    fn data(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn run(index: usize, mut vcpu: VcpuFd, platform: &Platform, control: &RunControl) {
    let odd = RateLimitedLog::new("kvm", 5, Duration::from_secs(10));
    let failed = |error: String| EndReason::VcpuFailed { vcpu: index, error };
    while !control.is_stopping() {
        let mut mmio_write = None;
        let end = match vcpu.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                platform.io_in(port, data);
                None
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                platform.io_out(port, data);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                platform.mmio_read(addr, data);
                None
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                // Served below, once the exit no longer borrows the vCPU.
                mmio_write = Some(MmioWrite::copy(addr, data));
                None
            }
            Ok(VcpuExit::Hlt) => Some(EndReason::Halted { vcpu: index }),
            Ok(VcpuExit::Shutdown) => {
                // A triple fault leaves nothing on the console: the registers are the evidence.
                eprintln!(
                    "vmm: kvm: vCPU {index} shut down (triple fault or reset); {}",
                    describe_state(&vcpu)
                );
                Some(EndReason::Shutdown { vcpu: index })
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                Some(EndReason::SystemEvent { vcpu: index, kind })
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => Some(failed(format!(
                "KVM could not enter the guest (hardware reason {reason:#x}, host CPU {cpu})"
            ))),
            Ok(VcpuExit::InternalError) => Some(failed(format!(
                "KVM internal error (often an instruction KVM cannot emulate); {}",
                describe_state(&vcpu)
            ))),
            Ok(exit @ (VcpuExit::Unknown | VcpuExit::Exception)) => {
                Some(failed(format!("unexpected exit {exit:?}")))
            }
            Ok(other) => {
                odd.warn(|| format!("vCPU {index}: ignoring exit {other:?}"));
                None
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
            Err(e) => Some(failed(format!("KVM_RUN failed: {e}"))),
        };
        if let Some(write) = mmio_write {
            platform.mmio_write(write.addr, write.data(), &ExitingVcpu::new(index, &vcpu));
        }
        if let Some(reason) = end {
            control.end(reason);
        }
    }
}

/// The registers that say where a vCPU was and in which mode, for a run
/// that ended without a word from the guest.
fn describe_state(vcpu: &VcpuFd) -> String {
    let regs = match vcpu.get_regs() {
        Ok(regs) => regs,
        Err(e) => return format!("registers unreadable: {e}"),
    };
    let sregs = match vcpu.get_sregs() {
        Ok(sregs) => sregs,
        Err(e) => return format!("rip={:#x}; special registers unreadable: {e}", regs.rip),
    };
    format!(
        "rip={:#x} rsp={:#x} rflags={:#x} rax={:#x} cs={:#x} cr0={:#x} cr2={:#x} cr3={:#x} \
         cr4={:#x} efer={:#x} idt={:#x}+{:#x} apic_base={:#x}",
        regs.rip,
        regs.rsp,
        regs.rflags,
        regs.rax,
        sregs.cs.selector,
        sregs.cr0,
        sregs.cr2,
        sregs.cr3,
        sregs.cr4,
        sregs.efer,
        sregs.idt.base,
        sregs.idt.limit,
        sregs.apic_base
    )
}

/// Kicks the vCPU threads until they have all left KVM_RUN, then joins
/// them. Returns the threads that did not stop within `patience`: they
/// still use the VM, so the caller must not free its memory.
pub fn stop_all(threads: Vec<JoinHandle<()>>, patience: Duration) -> Vec<JoinHandle<()>> {
    let deadline = Instant::now() + patience;
    let mut running = threads;
    loop {
        let (done, still): (Vec<_>, Vec<_>) = running.into_iter().partition(|t| t.is_finished());
        for thread in done {
            // A panic was already turned into the run's end reason.
            let _ = thread.join();
        }
        running = still;
        if running.is_empty() || Instant::now() >= deadline {
            return running;
        }
        for thread in &running {
            // The thread may exit between the check and the kill; the
            // handle keeps its pthread valid until joined, so this is safe.
            let _ = thread.kill(kick_signal());
        }
        thread::sleep(KICK_INTERVAL);
    }
}
