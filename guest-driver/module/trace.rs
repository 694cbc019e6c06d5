// SPDX-License-Identifier: GPL-2.0

//! The driver's trace events, `rangefault:rangefault_fault_enter` and `rangefault_fault_exit`:
//! one record per fault-handler call, off until user space enables them in tracefs.
//!
//! They are defined in C (`rangefault_trace.h`, instantiated by `rangefault_trace.c`), because
//! `TRACE_EVENT` is a C macro and `kernel::declare_trace!` only reaches tracepoints the kernel's
//! own bindings declare, which an out-of-tree module's are not. What that macro does is done here
//! by hand: test the tracepoint's static key (a patched-out jump while the event is off), and only
//! then compute the arguments and call the C emitter. Raw `bindings` stay in this file.

use kernel::bindings;
use kernel::ffi::{c_uint, c_ulong};

use crate::fault::Outcome;
use crate::latency::Level;
use crate::vm::FaultRef;

#[allow(non_upper_case_globals)]
mod ffi {
    use super::*;

    // Defined by rangefault_trace.c (CREATE_TRACE_POINTS, CREATE_RUST_TRACE_POINTS). The
    // `tracepoint` statics are never read from Rust, only their keys' addresses taken (a
    // zero-sized field in them is what `improper_ctypes` objects to).
    #[allow(improper_ctypes)]
    unsafe extern "C" {
        pub(super) static __tracepoint_rangefault_fault_enter: bindings::tracepoint;
        pub(super) static __tracepoint_rangefault_fault_exit: bindings::tracepoint;
        pub(super) fn rust_do_trace_rangefault_fault_enter(
            address: c_ulong,
            bar_offset: u64,
            order: c_uint,
            flags: c_uint,
        );
        #[allow(clippy::too_many_arguments)]
        pub(super) fn rust_do_trace_rangefault_fault_exit(
            address: c_ulong,
            bar_offset: u64,
            strategy: c_uint,
            level: c_uint,
            ptes: u32,
            pmds: u32,
            puds: u32,
            result: c_uint,
            ns: u64,
        );
    }
}

/// Whether a tracepoint is enabled: its static key, as `trace_<name>()` tests it in C.
macro_rules! enabled {
    ($tracepoint:ident) => {
        // SAFETY: the static is a `struct tracepoint` defined by rangefault_trace.c; testing its
        // key is what `trace_<name>()` does and is valid in any context.
        unsafe {
            kernel::static_branch_unlikely!(ffi::$tracepoint, bindings::tracepoint, key)
        }
    };
}

/// A handler starts. `order`: 0 for `fault`, the leaf order for `huge_fault`.
#[inline(always)]
pub(crate) fn fault_enter(fault: &FaultRef<'_>, order: u32) {
    if enabled!(__tracepoint_rangefault_fault_enter) {
        let va = fault.address();
        // SAFETY: the emitter only copies its arguments into the trace buffer; a fault handler
        // may sleep, so any context the core calls it in is one a tracepoint may fire in.
        unsafe {
            ffi::rust_do_trace_rangefault_fault_enter(
                va as c_ulong,
                fault.span().offset_of(va),
                order,
                fault.flags(),
            )
        }
    }
}

/// A handler returns what `outcome` says, after `ns` in the handler.
#[inline(always)]
pub(crate) fn fault_exit(fault: &FaultRef<'_>, outcome: &Outcome, ns: u64) {
    if enabled!(__tracepoint_rangefault_fault_exit) {
        let va = fault.address();
        let inserted = outcome.inserted;
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        // SAFETY: as in `fault_enter`.
        unsafe {
            ffi::rust_do_trace_rangefault_fault_exit(
                va as c_ulong,
                fault.span().offset_of(va),
                fault.strategy() as c_uint,
                level_code(outcome.level),
                count(inserted.pte),
                count(inserted.pmd),
                count(inserted.pud),
                outcome.result,
                ns,
            )
        }
    }
}

/// The codes `RANGEFAULT_LEVEL_NAMES` in rangefault_trace.h names.
fn level_code(level: Option<Level>) -> c_uint {
    match level {
        None => 0,
        Some(Level::Pte) => 1,
        Some(Level::Pmd) => 2,
        Some(Level::Pud) => 3,
    }
}
