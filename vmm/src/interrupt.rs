//! Ctrl-C, SIGTERM and SIGHUP end a run the way a timeout does: the engine stops the guest
//! (QEMU is killed and reaped, the KVM VM stopped), the run unwinds normally so every
//! temporary directory is removed, and `vmm` exits with 128 + the signal's number.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signal that asked the run to stop (0: none yet).
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// Routes the three signals into [`received`]; from now on they no longer kill the process.
pub fn install() -> Result<()> {
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // SAFETY: the action only stores into an atomic, which is async-signal-safe.
        unsafe {
            signal_hook::low_level::register(signal, move || {
                RECEIVED.store(signal as usize, Ordering::SeqCst);
            })
        }
        .with_context(|| format!("cannot handle signal {signal}"))?;
    }
    Ok(())
}

/// The signal received since [`install`], if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal as i32),
    }
}

/// The signal's name for messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}
