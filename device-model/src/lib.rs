//! The rangefault device model: a VRAM-bearing PCI function with a type-0
//! config space, a register BAR (BAR0, with the MSI-X table and PBA) and a
//! 64-bit prefetchable VRAM BAR (BAR2) backed by a memfd.
//!
//! It knows nothing about any VMM: engines (a vfio-user server for QEMU, a
//! KVM VMM) forward config and BAR0 accesses here, share [`Vram::fd`] with
//! the guest, and deliver the MSI-X messages this model hands back. Engines
//! that can read guest RAM also give the device a [`GuestAccess`] (guest RAM
//! and the ringing CPU's state) for the host page-table check
//! ([`host_check`]), which walks the guest's tables itself.

/// The device's ABI lives in the `rangefault-abi` crate, which the guest tools share; this
/// name for it keeps the device's and the VMM's `abi::` paths.
pub use rangefault_abi as abi;
mod config;
pub mod host_check;
pub mod metrics;
mod msix;
mod pci_config;
pub mod ratelimit;
mod registers;
mod vram;

pub use config::{ByteSize, ConfigError, DeviceConfig};
pub use host_check::{CheckReport, CheckRequest, GuestAccess, HostCheckRecord};
pub use msix::{MsixMessage, MsixState, MsixVector};
pub use vram::Vram;

use pci_config::PciConfigSpace;
use registers::Registers;
use serde::{Deserialize, Serialize};

/// Errors from building the device or touching VRAM.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("VRAM size {0:#x} cannot be mapped in this process")]
    VramSize(u64),
    #[error("creating the VRAM memfd failed")]
    Memfd(#[source] std::io::Error),
    #[error("sizing the VRAM memfd failed")]
    Truncate(#[source] std::io::Error),
    #[error("mapping VRAM failed")]
    Mmap(#[source] std::io::Error),
    #[error("VRAM access of {len} bytes at {offset:#x} is out of bounds (VRAM size {size:#x})")]
    OutOfBounds { offset: u64, len: u64, size: u64 },
}

/// The device's own access counters, for the report (`device.accesses`),
/// logs and tests. Plain integers: the device is only ever touched through
/// `&mut self`, under the engine's lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStats {
    pub config_reads: u64,
    pub config_writes: u64,
    pub reg_reads: u64,
    pub reg_writes: u64,
    /// Accesses that touched undefined space or were ignored (wrong size,
    /// read-only target, beyond the end of config space or BAR0).
    pub bad_accesses: u64,
    pub selftests_run: u64,
}

/// The device: config space, BAR0 registers, MSI-X and VRAM.
#[derive(Debug)]
pub struct RangefaultDevice {
    config: DeviceConfig,
    vram: Vram,
    pci: PciConfigSpace,
    regs: Registers,
    msix: MsixState,
    stats: DeviceStats,
}

impl RangefaultDevice {
    pub fn new(config: DeviceConfig) -> Result<Self, DeviceError> {
        // The fields are public, so re-check rather than trust the caller.
        config.validate()?;
        Ok(Self {
            vram: Vram::new(config.vram_size)?,
            pci: PciConfigSpace::new(&config),
            regs: Registers::new(&config),
            msix: MsixState::default(),
            stats: DeviceStats::default(),
            config,
        })
    }

    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    pub fn vram(&self) -> &Vram {
        &self.vram
    }

    /// Reads config space; any offset and length (bytes past 256 read 0xff).
    pub fn config_read(&mut self, offset: u64, data: &mut [u8]) {
        self.stats.config_reads += 1;
        if !self.pci.read(offset, data) {
            self.stats.bad_accesses += 1;
        }
    }

    /// Writes config space; read-only bits and bytes past 256 are dropped.
    /// May change MSI-X enable/mask: call [`Self::take_msix_deliverable`]
    /// afterwards if the engine raises interrupts.
    pub fn config_write(&mut self, offset: u64, data: &[u8]) {
        self.stats.config_writes += 1;
        if !self.pci.write(offset, data) {
            self.stats.bad_accesses += 1;
        }
        let (enabled, function_masked) = self.pci.msix_control();
        self.msix.set_control(enabled, function_masked);
    }

    /// Reads BAR0 at `offset` (relative to the BAR); never fails.
    pub fn regs_read(&mut self, offset: u64, data: &mut [u8]) {
        self.stats.reg_reads += 1;
        if !self.regs.read(offset, data, &self.msix) {
            self.stats.bad_accesses += 1;
        }
    }

    /// Writes BAR0 at `offset`. Self-test commands and host page-table
    /// checks run synchronously here (a check walks the guest RAM of the
    /// installed [`GuestAccess`]). May unmask MSI-X vectors: see
    /// [`Self::take_msix_deliverable`].
    pub fn regs_write(&mut self, offset: u64, data: &[u8]) {
        self.stats.reg_writes += 1;
        let vram_bar = self.pci.bar_address(abi::VRAM_BAR);
        if !self
            .regs
            .write(offset, data, &self.vram, &mut self.msix, vram_bar)
        {
            self.stats.bad_accesses += 1;
        }
    }

    /// Gives the device access to guest RAM (and, where the engine can read
    /// it, the ringing CPU's state) for host checks; until then every host
    /// check ends in `STATUS_UNSUPPORTED`. Replaces an earlier one.
    pub fn set_guest_access(&mut self, guest: Box<dyn GuestAccess>) {
        self.regs.host_checker_mut().set_guest_access(guest);
    }

    /// Every host check run so far, oldest first, up to
    /// [`host_check::MAX_RECORDS`]; later ones are only counted in
    /// [`Self::host_checks_dropped`].
    pub fn host_checks(&self) -> &[HostCheckRecord] {
        self.regs.host_checker().records()
    }

    /// Host checks that ran but whose records were not kept.
    pub fn host_checks_dropped(&self) -> u64 {
        self.regs.host_checker().records_dropped()
    }

    /// Base address the guest programmed into `bar` (BAR2 as 64 bits);
    /// `None` if the BAR is unimplemented or still 0.
    pub fn bar_address(&self, bar: usize) -> Option<u64> {
        self.pci.bar_address(bar)
    }

    /// Command register bit 1: the guest lets the device decode its BARs.
    /// Engines should only route BAR accesses while this holds.
    pub fn memory_decode_enabled(&self) -> bool {
        self.pci.command() & pci_config::COMMAND_MEMORY != 0
    }

    /// Command register bit 2: the device may master the bus (send MSIs).
    pub fn bus_master_enabled(&self) -> bool {
        self.pci.command() & pci_config::COMMAND_BUS_MASTER != 0
    }

    pub fn msix(&self) -> &MsixState {
        &self.msix
    }

    /// Raises MSI-X vector `vector`: the message to deliver now, or `None` if
    /// MSI-X is off (dropped) or the vector is masked (kept pending).
    ///
    /// Scaffolding: no device event calls this yet. Self-tests and host
    /// checks complete inside the doorbell's MMIO write, so the driver reads
    /// their status right after and has nothing to wait for. The path is
    /// implemented and tested end to end (table, PBA, masking, delivery on
    /// unmask; the KVM engine's `MsixRaiser`, the vfio-user irq eventfds)
    /// for the first asynchronous producer.
    pub fn signal_msix(&mut self, vector: u16) -> Option<MsixMessage> {
        self.msix.signal(usize::from(vector))
    }

    /// Pending vectors that are now unmasked, cleared from the PBA; the
    /// engine must deliver them (the spec requires it on unmask).
    pub fn take_msix_deliverable(&mut self) -> Vec<(u16, MsixMessage)> {
        self.msix.take_deliverable()
    }

    pub fn stats(&self) -> DeviceStats {
        let mut stats = self.stats;
        stats.selftests_run = self.regs.selftests_run();
        stats
    }
}

#[cfg(test)]
mod tests;
