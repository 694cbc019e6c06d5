//! COM1: vm-superio's 8250 UART at 0x3f8, interrupting on IRQ 4 through an
//! irqfd. What the guest prints goes to a writer the VMM chooses.

use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use kvm_ioctls::VmFd;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use device_model::ratelimit::RateLimitedLog;

/// COM1's eight registers.
pub const FIRST_PORT: u16 = 0x3f8;
pub const LAST_PORT: u16 = 0x3ff;
/// COM1's ISA IRQ (also its IOAPIC pin and GSI).
pub const IRQ: u32 = 4;

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
    uart: Mutex<Serial<IrqFdTrigger, vm_superio::serial::NoEvents, ConsoleOut>>,
    errors: RateLimitedLog,
}

impl SerialPort {
    pub fn new(vm: &VmFd, out: ConsoleOut) -> Result<Self> {
        let irq = EventFd::new(EFD_NONBLOCK).context("cannot create the serial IRQ eventfd")?;
        vm.register_irqfd(&irq, IRQ)
            .context("cannot route the serial IRQ (irqfd)")?;
        Ok(Self {
            uart: Mutex::new(Serial::new(IrqFdTrigger(irq), out)),
            errors: RateLimitedLog::new("kvm", 5, Duration::from_secs(10)),
        })
    }

    /// The UART's registers are 8 bits wide; a wider access reaches the
    /// next registers byte by byte, as on an ISA bus.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        let mut uart = self.uart.lock().unwrap_or_else(|e| e.into_inner());
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = match register(port, i) {
                Some(offset) => uart.read(offset),
                None => 0xff,
            };
        }
    }

    pub fn write(&self, port: u16, data: &[u8]) {
        let mut uart = self.uart.lock().unwrap_or_else(|e| e.into_inner());
        for (i, &byte) in data.iter().enumerate() {
            if let Some(offset) = register(port, i) {
                if let Err(e) = uart.write(offset, byte) {
                    self.errors
                        .warn(|| format!("serial: cannot deliver guest output: {e:?}"));
                }
            }
        }
    }
}

/// Register offset of byte `i` of an access at `port`, if still in COM1.
fn register(port: u16, i: usize) -> Option<u8> {
    let at = usize::from(port) + i;
    (usize::from(FIRST_PORT)..=usize::from(LAST_PORT))
        .contains(&at)
        .then(|| (at - usize::from(FIRST_PORT)) as u8)
}
