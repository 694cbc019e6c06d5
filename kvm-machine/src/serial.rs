//! COM1 and COM2: vm-superio's 8250 UART at 0x3f8 (IRQ 4) and 0x2f8 (IRQ 3),
//! interrupting through an irqfd. What the guest prints goes to a writer the
//! VMM chooses: COM1 is the console, COM2 (when the VMM wants it) carries
//! bulk output such as a fault trace.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use kvm_ioctls::VmFd;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use device_model::ratelimit::RateLimitedLog;

/// A legacy PC serial port: eight registers from `base`, an ISA IRQ (also its IOAPIC pin and
/// GSI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComPort {
    pub base: u16,
    pub irq: u32,
}

pub const COM1: ComPort = ComPort {
    base: 0x3f8,
    irq: 4,
};
pub const COM2: ComPort = ComPort {
    base: 0x2f8,
    irq: 3,
};

impl ComPort {
    pub fn claims(self, port: u16) -> bool {
        (self.base..self.base + 8).contains(&port)
    }
}

/// Where the guest's console output goes.
pub type ConsoleOut = Box<dyn Write + Send>;

/// Raises the UART's interrupt by signalling an eventfd KVM listens on.
pub struct IrqFdTrigger(EventFd);

impl Trigger for IrqFdTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The UART and its interrupt line.
pub struct SerialPort {
    com: ComPort,
    uart: Mutex<Serial<IrqFdTrigger, vm_superio::serial::NoEvents, ConsoleOut>>,
    errors: RateLimitedLog,
}

impl SerialPort {
    pub fn new(vm: &VmFd, com: ComPort, out: ConsoleOut) -> Result<Self> {
        let irq = EventFd::new(EFD_NONBLOCK).context("cannot create the serial IRQ eventfd")?;
        vm.register_irqfd(&irq, com.irq)
            .context("cannot route the serial IRQ (irqfd)")?;
        Ok(Self {
            com,
            uart: Mutex::new(Serial::new(IrqFdTrigger(irq), out)),
            errors: RateLimitedLog::new("kvm", 5, Duration::from_secs(10)),
        })
    }

    pub fn claims(&self, port: u16) -> bool {
        self.com.claims(port)
    }

    /// Register offset of byte `i` of an access at `port`, if still in this port's eight.
    fn register(&self, port: u16, i: usize) -> Option<u8> {
        let at = usize::from(port) + i;
        let base = usize::from(self.com.base);
        (base..base + 8).contains(&at).then(|| (at - base) as u8)
    }

    /// The UART's registers are 8 bits wide; a wider access reaches the
    /// next registers byte by byte, as on an ISA bus.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let mut uart = self.uart.lock().unwrap_or_else(|e| e.into_inner());
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = match self.register(port, i) {
                Some(offset) => uart.read(offset),
                None => 0xff,
            };
        }
    }

    pub fn write(&self, port: u16, data: &[u8]) {
        let mut uart = self.uart.lock().unwrap_or_else(|e| e.into_inner());
        for (i, &byte) in data.iter().enumerate() {
            if let Some(offset) = self.register(port, i) {
                if let Err(e) = uart.write(offset, byte) {
                    self.errors
                        .warn(|| format!("serial: cannot deliver guest output: {e:?}"));
                }
            }
        }
    }
}
