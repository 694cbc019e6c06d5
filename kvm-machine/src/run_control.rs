//! How a run ends: the first reason any vCPU (or the VMM) reports wins, and
//! every vCPU thread then winds down.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

/// Why the guest stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The guest reset the machine through the i8042 (`reboot=k`): this
    /// machine has no other way out, so it means "power off" too.
    GuestReset,
    /// KVM_EXIT_SHUTDOWN: a triple fault (or a reset KVM decided on).
    Shutdown { vcpu: usize },
    /// KVM_EXIT_SYSTEM_EVENT (shutdown/reset/crash requested via KVM).
    SystemEvent { vcpu: usize, kind: u32 },
    /// A vCPU halted to userspace (only without the in-kernel irqchip).
    Halted { vcpu: usize },
    /// The VMM decided the guest is done (e.g. its console said so).
    Stopped(String),
    /// The run took longer than allowed.
    TimedOut,
    /// A vCPU could not continue (KVM error, failed entry, ...).
    VcpuFailed { vcpu: usize, error: String },
}

impl EndReason {
    /// Whether the VMM (rather than the guest) is at fault.
    pub fn is_host_error(&self) -> bool {
        matches!(self, EndReason::VcpuFailed { .. })
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndReason::GuestReset => write!(f, "the guest reset the machine (i8042)"),
            EndReason::Shutdown { vcpu } => {
                write!(f, "vCPU {vcpu} shut down (triple fault or reset)")
            }
            EndReason::SystemEvent { vcpu, kind } => {
                write!(f, "vCPU {vcpu} reported system event {kind}")
            }
            EndReason::Halted { vcpu } => write!(f, "vCPU {vcpu} halted"),
            EndReason::Stopped(why) => write!(f, "stopped by the VMM: {why}"),
            EndReason::TimedOut => write!(f, "timed out"),
            EndReason::VcpuFailed { vcpu, error } => write!(f, "vCPU {vcpu} failed: {error}"),
        }
    }
}

/// Shared between the vCPU threads and whoever waits for the run.
#[derive(Debug, Default)]
pub struct RunControl {
    stopping: AtomicBool,
    reason: Mutex<Option<EndReason>>,
    ended: Condvar,
}

impl RunControl {
    /// Ends the run for `reason`, unless it already ended.
    pub fn end(&self, reason: EndReason) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            tracing::debug!("kvm: run ends: {reason}");
            *slot = Some(reason);
        }
        self.stopping.store(true, Ordering::SeqCst);
        self.ended.notify_all();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Waits until the run ends or `deadline` passes (then it ends it as
    /// timed out); returns the reason.
    pub fn wait(&self, deadline: Instant) -> EndReason {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(reason) = slot.as_ref() {
                return reason.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                drop(slot);
                self.end(EndReason::TimedOut);
                slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            slot = self
                .ended
                .wait_timeout(slot, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn first_reason_wins() {
        let control = RunControl::default();
        assert!(!control.is_stopping());
        control.end(EndReason::GuestReset);
        control.end(EndReason::TimedOut);
        assert!(control.is_stopping());
        assert_eq!(control.wait(Instant::now()), EndReason::GuestReset);
    }

    #[test]
    fn waiting_past_the_deadline_times_out() {
        let control = RunControl::default();
        let reason = control.wait(Instant::now() + Duration::from_millis(20));
        assert_eq!(reason, EndReason::TimedOut);
        assert!(control.is_stopping());
    }
}
