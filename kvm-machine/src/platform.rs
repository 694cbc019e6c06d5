//! The machine's port and MMIO map: routes each exit to the device that
//! decodes it. Anything unclaimed reads as all-ones and swallows writes, as
//! on a PC bus, and is logged (rate-limited): the guest can do whatever it
//! likes without stopping the VMM.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::counters::Counters;
use super::exiting_vcpu::ExitingVcpu;
use super::host_bridge::HostBridge;
use super::i8042::{self, I8042};
use super::pci_conf1::{self, Conf1, Conf1Access, ConfigTarget};
use super::rangefault_function::RangefaultFunction;
use super::run_control::{EndReason, RunControl};
use super::serial::SerialPort;
use device_model::ratelimit::RateLimitedLog;

/// PCI slot of the rangefault device on bus 0 (00:03.0, as under QEMU).
pub const RANGEFAULT_SLOT: u8 = 3;

/// Legacy ports a PC guest pokes that this machine deliberately leaves
/// empty; accesses are answered like any unclaimed port but not logged.
const QUIET_PORTS: &[(u16, u16)] = &[
    (0x70, 0x71),   // CMOS/RTC (kvmclock gives Linux the time)
    (0x80, 0x80),   // POST code / I/O delay
    (0x81, 0x8f),   // ISA DMA page registers
    (0x92, 0x92),   // system control port A
    (0xed, 0xed),   // alternative I/O delay
    (0x2e8, 0x2ef), // COM4..COM2 probes (COM2 when the VMM wants none)
    (0x2f8, 0x2ff),
    (0x3e8, 0x3ef),
    (0x3b0, 0x3df), // VGA probes
];

/// The devices behind the vCPUs' exits.
pub struct Platform {
    conf1: Conf1,
    host_bridge: HostBridge,
    rangefault: RangefaultFunction,
    serial: SerialPort,
    second_serial: Option<SerialPort>,
    i8042: Mutex<I8042>,
    control: Arc<RunControl>,
    counters: Arc<Counters>,
    odd: RateLimitedLog,
}

impl Platform {
    pub fn new(
        rangefault: RangefaultFunction,
        serial: SerialPort,
        second_serial: Option<SerialPort>,
        control: Arc<RunControl>,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            conf1: Conf1::default(),
            host_bridge: HostBridge::default(),
            rangefault,
            serial,
            second_serial,
            i8042: Mutex::default(),
            control,
            counters,
            odd: RateLimitedLog::new("kvm", 20, Duration::from_secs(10)),
        }
    }

    pub fn rangefault(&self) -> &RangefaultFunction {
        &self.rangefault
    }

    pub fn io_in(&self, port: u16, data: &mut [u8]) {
        match port {
            _ if self.serial.claims(port) => self.serial.read(port, data),
            _ if self.com2().is_some_and(|com2| com2.claims(port)) => {
                self.com2().expect("claimed").read(port, data)
            }
            pci_conf1::FIRST_PORT..=pci_conf1::LAST_PORT => {
                if let Conf1Access::Config(target) = self.conf1.read(port, data) {
                    self.config_read(target, data);
                }
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT => self.i8042().read(port, data),
            _ => {
                data.fill(0xff);
                self.unclaimed_port("read", port, data.len());
            }
        }
    }

    fn com2(&self) -> Option<&SerialPort> {
        self.second_serial.as_ref()
    }

    fn i8042(&self) -> std::sync::MutexGuard<'_, I8042> {
        self.i8042.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn io_out(&self, port: u16, data: &[u8]) {
        match port {
            _ if self.serial.claims(port) => self.serial.write(port, data),
            _ if self.com2().is_some_and(|com2| com2.claims(port)) => {
                self.com2().expect("claimed").write(port, data)
            }
            pci_conf1::FIRST_PORT..=pci_conf1::LAST_PORT => {
                if let Conf1Access::Config(target) = self.conf1.write(port, data) {
                    self.config_write(target, data);
                }
            }
            i8042::DATA_PORT | i8042::COMMAND_PORT => {
                if self.i8042().write(port, data) == i8042::Effect::Reset {
                    self.control.end(EndReason::GuestReset);
                }
            }
            _ => self.unclaimed_port("write", port, data.len()),
        }
    }

    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if !self.rangefault.mmio_read(addr, data) {
            data.fill(0xff);
            self.unclaimed_mmio("read", addr, data.len());
        }
    }

    /// `vcpu` is the one that wrote (the device may ask for its CR3).
    pub fn mmio_write(&self, addr: u64, data: &[u8], vcpu: &ExitingVcpu<'_>) {
        if !self.rangefault.mmio_write(addr, data, vcpu) {
            self.unclaimed_mmio("write", addr, data.len());
        }
    }

    /// Bus 0 holds the host bridge (slot 0) and the device; every other
    /// address is empty (reads all-ones: "no device", as the guest's bus
    /// scan expects).
    fn config_read(&self, target: ConfigTarget, data: &mut [u8]) {
        match (target.bus, target.device, target.function) {
            (0, 0, 0) => self.host_bridge.read(target.offset, data),
            (0, RANGEFAULT_SLOT, 0) => self.rangefault.config_read(target.offset, data),
            _ => data.fill(0xff),
        }
    }

    fn config_write(&self, target: ConfigTarget, data: &[u8]) {
        if (target.bus, target.device, target.function) == (0, RANGEFAULT_SLOT, 0) {
            self.rangefault.config_write(target.offset, data);
        }
        // The host bridge is read-only; empty slots ignore writes.
    }

    fn unclaimed_port(&self, what: &str, port: u16, len: usize) {
        self.counters.unclaimed_accesses.inc();
        if QUIET_PORTS
            .iter()
            .any(|&(first, last)| (first..=last).contains(&port))
        {
            return;
        }
        self.odd
            .warn(|| format!("guest {what} of {len} bytes at unclaimed port {port:#x}"));
    }

    fn unclaimed_mmio(&self, what: &str, addr: u64, len: usize) {
        self.counters.unclaimed_accesses.inc();
        self.odd
            .warn(|| format!("guest {what} of {len} bytes at unclaimed MMIO address {addr:#x}"));
    }
}
