// SPDX-License-Identifier: GPL-2.0

//! State one bound device shares with its open files and VMAs.
//!
//! Files and VMAs can outlive the binding (user space keeps them across an unbind), so this lives
//! in an `Arc` that each file and each VMA holds. It contains no reference to the PCI device:
//! after unbind it only remembers that the device is gone.

use kernel::{
    devres::Devres,
    fs::File,
    pci,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Acquire, Full, Relaxed},
        Arc, Mutex,
    },
};

use crate::latency::FaultLatency;
use crate::uapi;
use crate::vm::AddressSpace;
use crate::window::Strategy;

/// Whether faults may map VRAM.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Enabled = 0,
    /// Disabled by user space (`SET_ENABLED 0`): mappings zapped, faults SIGBUS, can be enabled.
    Disabled = 1,
    /// The device was unbound: mappings zapped, faults SIGBUS, for good.
    Gone = 2,
}

/// A running fault handler, counted in [`DeviceShared`] until dropped.
pub(crate) struct FaultInFlight<'a>(&'a DeviceShared);

impl Drop for FaultInFlight<'_> {
    fn drop(&mut self) {
        self.0
            .faults_in_flight
            .fetch_sub(1, kernel::sync::atomic::Release);
    }
}

/// VRAM geometry, fixed at probe.
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    pub(crate) bar2_phys: u64,
    pub(crate) vram_size: u64,
    pub(crate) page_size: u64,
    /// The CPU maps 1 GiB pages (PUD leaves are legal).
    pub(crate) gbpages: bool,
}

/// Fault-path counters (see [`uapi::Stats`]).
pub(crate) struct Counters {
    pub(crate) faults_pte: Atomic<u64>,
    pub(crate) faults_pmd: Atomic<u64>,
    pub(crate) faults_pud: Atomic<u64>,
    pub(crate) fallbacks: Atomic<u64>,
    pub(crate) pte_inserts: Atomic<u64>,
    pub(crate) bytes_inserted: Atomic<u64>,
    pub(crate) zaps: Atomic<u64>,
    pub(crate) sigbus: Atomic<u64>,
    pub(crate) handler_calls: Atomic<u64>,
    pub(crate) already_mapped: Atomic<u64>,
    pub(crate) pmd_inserts: Atomic<u64>,
    pub(crate) pud_inserts: Atomic<u64>,
}

/// The address space every mapping of the device lives in, while a file is open.
///
/// All opens of `/dev/rangefaultN` share the device node's inode and so its `address_space`;
/// `unmap_mapping_range` on it reaches every VMA of every process.
struct OpenFiles {
    /// Valid while `count > 0`: an open file pins the inode that owns it.
    mapping: Option<AddressSpace>,
    count: usize,
}

impl Counters {
    const fn new() -> Self {
        Self {
            faults_pte: Atomic::new(0),
            faults_pmd: Atomic::new(0),
            faults_pud: Atomic::new(0),
            fallbacks: Atomic::new(0),
            pte_inserts: Atomic::new(0),
            bytes_inserted: Atomic::new(0),
            zaps: Atomic::new(0),
            sigbus: Atomic::new(0),
            handler_calls: Atomic::new(0),
            already_mapped: Atomic::new(0),
            pmd_inserts: Atomic::new(0),
            pud_inserts: Atomic::new(0),
        }
    }
}

/// BAR0, for as long as the device is bound (revoked on unbind).
pub(crate) type Registers = pci::Bar<'static, { crate::abi::REGS_BAR_SIZE }>;

#[pin_data]
pub(crate) struct DeviceShared {
    pub(crate) geometry: Geometry,
    registers: Devres<Registers>,
    strategy: Atomic<u32>,
    state: Atomic<u32>,
    /// Fault handlers running right now (see [`Self::fault_started`]).
    faults_in_flight: Atomic<u64>,
    pub(crate) counters: Counters,
    pub(crate) latency: FaultLatency,
    #[pin]
    open_files: Mutex<OpenFiles>,
    /// Held while one host check programs BAR0's check registers, rings the doorbell and reads
    /// the results: BAR0 has one set of them, and two CHECK ioctls (threads of one process hold
    /// the mmap lock for reading together) would otherwise interleave their writes and each read
    /// a mix of both requests (found by the `soak` scenario: `wrong_gpa` on correct mappings).
    #[pin]
    check_registers: Mutex<()>,
}

impl DeviceShared {
    pub(crate) fn new(geometry: Geometry, registers: Devres<Registers>) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                geometry,
                registers,
                strategy: Atomic::new(crate::DEFAULT_STRATEGY as u32),
                state: Atomic::new(State::Enabled as u32),
                faults_in_flight: Atomic::new(0),
                counters: Counters::new(),
                latency: FaultLatency::new(),
                open_files <- new_mutex!(OpenFiles {
                    mapping: None,
                    count: 0,
                }),
                check_registers <- new_mutex!(()),
            }),
            GFP_KERNEL,
        )
    }

    /// Runs `f` on BAR0 if the device is still bound (under RCU: `f` must not sleep), one host
    /// check at a time (see `check_registers`; the mutex is taken before the RCU read section).
    pub(crate) fn with_check_registers<R>(&self, f: impl FnOnce(&Registers) -> R) -> Option<R> {
        let _one_check = self.check_registers.lock();
        self.registers.try_access_with(f)
    }

    /// BAR0 from a bound-device context (probe, unbind).
    pub(crate) fn registers<'a>(
        &'a self,
        pdev: &'a kernel::device::Device<kernel::device::Bound>,
    ) -> Result<&'a Registers> {
        self.registers.access(pdev)
    }

    pub(crate) fn strategy(&self) -> Strategy {
        Strategy::from_raw(self.strategy.load(Relaxed)).unwrap_or(crate::DEFAULT_STRATEGY)
    }

    pub(crate) fn set_strategy(&self, strategy: Strategy) {
        self.strategy.store(strategy as u32, Relaxed);
    }

    /// Whether faults may insert right now. The fault path checks this before inserting and again
    /// after (see `fault.rs`), pairing with the full barrier in [`Self::revoke`].
    pub(crate) fn enabled(&self) -> bool {
        self.state.load(Acquire) == State::Enabled as u32
    }

    pub(crate) fn state_raw(&self) -> u32 {
        self.state.load(Relaxed)
    }

    /// Moves to `state` (Disabled or Gone) and zaps every user mapping, so the next touch faults
    /// and gets SIGBUS. A fault racing with this either sees the new state before inserting, or
    /// inserted before the zap walks its page table, or sees the new state after inserting and
    /// zaps its own entries.
    pub(crate) fn revoke(&self, state: State) {
        if state == State::Disabled
            && self
                .state
                .cmpxchg(State::Enabled as u32, State::Disabled as u32, Full)
                .is_err()
        {
            // Already disabled or gone: nothing to revoke.
            return;
        }
        if state == State::Gone {
            self.state.xchg(State::Gone as u32, Full);
        }
        let open = self.open_files.lock();
        if let (Some(mapping), true) = (&open.mapping, open.count > 0) {
            // SAFETY: an open file pins the inode that owns `mapping` (`count > 0`), and we hold
            // the lock that `file_released` takes before letting go of it.
            unsafe { mapping.zap_all() };
        }
        drop(open);
        // Faults that passed their first check before the state changed may still be inserting;
        // each rechecks and zaps its own entries before it ends. Wait for them, so nothing of
        // ours is mapped once we return (unbind then frees the WC reservation).
        while self.faults_in_flight.load(Acquire) != 0 {
            kernel::time::delay::fsleep(kernel::time::Delta::from_micros(50));
        }
        self.counters.zaps.add(1, Relaxed);
    }

    /// Marks a fault handler as running until the guard drops. The full barrier orders the
    /// increment before the handler's first state check, pairing with `revoke`'s state change
    /// before it reads the count.
    pub(crate) fn fault_started(&self) -> FaultInFlight<'_> {
        self.faults_in_flight.fetch_add(1, Full);
        FaultInFlight(self)
    }

    /// Enables faults again after a `revoke(Disabled)`; a gone device stays gone.
    pub(crate) fn enable(&self) -> Result {
        match self
            .state
            .cmpxchg(State::Disabled as u32, State::Enabled as u32, Full)
        {
            Ok(_) => Ok(()),
            Err(current) if current == State::Enabled as u32 => Ok(()),
            Err(_) => Err(ENODEV),
        }
    }

    /// Records an open file; its address space is the one revocation zaps.
    pub(crate) fn file_opened(&self, file: &File) -> Result {
        let mapping = AddressSpace::of(file);
        let mut open = self.open_files.lock();
        if open.count > 0 && open.mapping.as_ref() != Some(&mapping) {
            // Another device node (a copy made with mknod) would have its own address space,
            // and revocation could not reach its mappings.
            return Err(EBUSY);
        }
        open.mapping = Some(mapping);
        open.count += 1;
        Ok(())
    }

    pub(crate) fn file_released(&self) {
        let mut open = self.open_files.lock();
        open.count = open.count.saturating_sub(1);
        if open.count == 0 {
            open.mapping = None;
        }
    }

    pub(crate) fn info(&self) -> uapi::Info {
        uapi::Info {
            vram_size: self.geometry.vram_size,
            page_size: self.geometry.page_size,
            bar2_phys: self.geometry.bar2_phys,
            strategy: self.strategy() as u32,
            state: self.state_raw(),
            strategies: crate::SUPPORTED_STRATEGIES,
            _reserved: 0,
        }
    }

    pub(crate) fn stats(&self) -> uapi::Stats {
        let c = &self.counters;
        uapi::Stats {
            faults_pte: c.faults_pte.load(Relaxed),
            faults_pmd: c.faults_pmd.load(Relaxed),
            faults_pud: c.faults_pud.load(Relaxed),
            fallbacks: c.fallbacks.load(Relaxed),
            pte_inserts: c.pte_inserts.load(Relaxed),
            bytes_inserted: c.bytes_inserted.load(Relaxed),
            zaps: c.zaps.load(Relaxed),
            sigbus: c.sigbus.load(Relaxed),
            handler_calls: c.handler_calls.load(Relaxed),
            already_mapped: c.already_mapped.load(Relaxed),
            pmd_inserts: c.pmd_inserts.load(Relaxed),
            pud_inserts: c.pud_inserts.load(Relaxed),
        }
    }

    pub(crate) fn reset_stats(&self) {
        self.latency.reset();
        let c = &self.counters;
        for counter in [
            &c.faults_pte,
            &c.faults_pmd,
            &c.faults_pud,
            &c.fallbacks,
            &c.pte_inserts,
            &c.bytes_inserted,
            &c.zaps,
            &c.sigbus,
            &c.handler_calls,
            &c.already_mapped,
            &c.pmd_inserts,
            &c.pud_inserts,
        ] {
            counter.store(0, kernel::sync::atomic::Release);
        }
    }
}
