//! What the KVM tiny-guest tests share: a machine with the device and a
//! captured console, and a 64-bit guest assembled with iced-x86 that stores
//! what it reads at `RESULTS` and resets the machine at the end.

#![allow(dead_code)] // each test crate uses its own subset

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress};

use device_model::{DeviceConfig, RangefaultDevice};
use kvm_machine::{RunOutcome, StartMode, Vm, VmConfig};

pub const RAM_SIZE: u64 = 128 << 20;
pub const VRAM_SIZE: u64 = 64 << 20;
/// Where the 64-bit guests' code goes (1 MiB, identity-mapped).
pub const CODE: u64 = 0x10_0000;
/// Where guests store the values they read, one u64 per slot.
pub const RESULTS: u64 = 0x20_0000;
/// BAR placements the guests program: BAR0 at the start of the 32-bit
/// hole, BAR2 at 4 GiB (a 64-bit address) and then moved below 4 GiB.
pub const BAR0: u64 = 0xc000_0000;
pub const BAR2: u64 = 0x1_0000_0000;
pub const BAR2_MOVED: u64 = 0xe000_0000;
/// Nothing decodes here.
pub const NOWHERE: u64 = 0xd000_0000;
pub const SLOT: u32 = kvm_machine::RANGEFAULT_SLOT as u32;
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);

// PCI config-space registers.
pub const REG_ID: u32 = 0x00;
pub const REG_COMMAND: u32 = 0x04;
pub const REG_CLASS: u32 = 0x08;
pub const REG_BAR0: u32 = 0x10;
pub const REG_BAR2_LO: u32 = 0x18;
pub const REG_BAR2_HI: u32 = 0x1c;
pub const COMMAND_MEMORY: u32 = 1 << 1;

/// Whether KVM can run guests here; says so visibly when not, and fails under CI (`CI` set),
/// which must run the KVM `tests` (as the boot tests do, `ci/tests/common`).
pub fn kvm_usable(tests: &str) -> bool {
    match kvm_ioctls::Kvm::new() {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "/dev/kvm is not usable here ({e}) and CI must run the KVM {tests} tests"
            );
            eprintln!(
                "SKIPPED: /dev/kvm is not usable here ({e}); the KVM {tests} tests did not run"
            );
            false
        }
    }
}

/// Guest console output, kept for the test to look at.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A machine with the device, its console captured.
pub struct Machine {
    pub vm: Vm,
    pub device: Arc<Mutex<RangefaultDevice>>,
    pub console: Captured,
    /// What the guest wrote to COM2 (only with [`Machine::with_com2`]).
    pub com2: Captured,
}

impl Machine {
    pub fn new(cpus: u8) -> Self {
        Self::build(cpus, false)
    }

    /// A machine with a second serial port (COM2).
    pub fn with_com2(cpus: u8) -> Self {
        Self::build(cpus, true)
    }

    fn build(cpus: u8, com2: bool) -> Self {
        let config = DeviceConfig::new(VRAM_SIZE, 2 << 20).expect("device config");
        let device = Arc::new(Mutex::new(RangefaultDevice::new(config).expect("device")));
        let console = Captured::default();
        let second = Captured::default();
        let vm = Vm::with_com2(
            VmConfig {
                memory: RAM_SIZE,
                cpus,
            },
            device.clone(),
            Box::new(console.clone()),
            com2.then(|| Box::new(second.clone()) as Box<dyn Write + Send>),
        )
        .expect("create the VM");
        Self {
            vm,
            device,
            console,
            com2: second,
        }
    }

    /// Loads 64-bit code at `CODE` and runs it.
    pub fn run_long_mode(&mut self, code: &[u8], timeout: Duration) -> RunOutcome {
        self.vm.load_raw(CODE, code).expect("load the guest");
        self.vm.set_start(StartMode::Long64 {
            entry: CODE,
            rsi: 0,
        });
        self.vm.run(timeout).expect("run the guest")
    }

    /// The value the guest stored in result slot `slot`.
    pub fn result(&self, slot: u64) -> u64 {
        self.vm
            .ram()
            .read_obj(GuestAddress(RESULTS + 8 * slot))
            .expect("read a result")
    }

    pub fn vram_u32(&self, offset: u64) -> u32 {
        let mut bytes = [0u8; 4];
        self.device
            .lock()
            .unwrap()
            .vram()
            .read_at(offset, &mut bytes)
            .expect("read VRAM");
        u32::from_le_bytes(bytes)
    }

    pub fn vram_u64(&self, offset: u64) -> u64 {
        let mut bytes = [0u8; 8];
        self.device
            .lock()
            .unwrap()
            .vram()
            .read_at(offset, &mut bytes)
            .expect("read VRAM");
        u64::from_le_bytes(bytes)
    }
}

/// A 64-bit guest under construction, with the helpers the tests share.
pub struct Guest {
    pub a: CodeAssembler,
    next_slot: u64,
}

pub type Asm = Result<(), IcedError>;

impl Guest {
    pub fn new() -> Self {
        Self {
            a: CodeAssembler::new(64).expect("64-bit assembler"),
            next_slot: 0,
        }
    }

    /// Selects `reg` of device `device` on bus 0 in CONFIG_ADDRESS.
    pub fn select(&mut self, device: u32, reg: u32) -> Asm {
        let address = 0x8000_0000 | (device << 11) | reg;
        self.a.mov(eax, address)?;
        self.a.mov(dx, 0xcf8u32)?;
        self.a.out(dx, eax)?;
        self.a.mov(dx, 0xcfcu32)
    }

    /// EAX = config dword `reg` of `device`.
    pub fn config_read(&mut self, device: u32, reg: u32) -> Asm {
        self.select(device, reg)?;
        self.a.in_(eax, dx)
    }

    pub fn config_write(&mut self, device: u32, reg: u32, value: u32) -> Asm {
        self.select(device, reg)?;
        self.a.mov(eax, value)?;
        self.a.out(dx, eax)
    }

    /// Stores RAX in the next result slot; returns the slot.
    pub fn store_rax(&mut self) -> Result<u64, IcedError> {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.a.mov(qword_ptr(RESULTS + 8 * slot), rax)?;
        Ok(slot)
    }

    /// Zero-extends EAX into RAX, then stores it.
    pub fn store_eax(&mut self) -> Result<u64, IcedError> {
        self.a.mov(eax, eax)?;
        self.store_rax()
    }

    /// Reads the config dword and stores it.
    pub fn record_config(&mut self, device: u32, reg: u32) -> Result<u64, IcedError> {
        self.config_read(device, reg)?;
        self.store_eax()
    }

    /// Reads the 32-bit value at guest address `addr` and stores it.
    pub fn record_u32(&mut self, addr: u64) -> Result<u64, IcedError> {
        self.a.mov(rbx, addr)?;
        self.a.mov(eax, dword_ptr(rbx))?;
        self.store_eax()
    }

    pub fn write_u32(&mut self, addr: u64, value: u32) -> Asm {
        self.a.mov(rbx, addr)?;
        self.a.mov(dword_ptr(rbx), value)
    }

    /// BAR0 at `BAR0`, BAR2 at `bar2`, memory decode on.
    pub fn program_bars(&mut self, bar2: u64) -> Asm {
        self.config_write(SLOT, REG_BAR0, BAR0 as u32)?;
        self.config_write(SLOT, REG_BAR2_LO, bar2 as u32)?;
        self.config_write(SLOT, REG_BAR2_HI, (bar2 >> 32) as u32)?;
        self.config_write(SLOT, REG_COMMAND, COMMAND_MEMORY)
    }

    /// Writes `text` to COM1, waiting for the transmitter each time.
    pub fn print(&mut self, text: &str) -> Asm {
        for byte in text.bytes() {
            let mut ready = self.a.create_label();
            self.a.set_label(&mut ready)?;
            self.a.mov(dx, 0x3fdu32)?; // line status register
            self.a.in_(al, dx)?;
            self.a.test(al, 0x20)?; // transmitter holding register empty
            self.a.jz(ready)?;
            self.a.mov(dx, 0x3f8u32)?;
            self.a.mov(al, u32::from(byte))?;
            self.a.out(dx, al)?;
        }
        Ok(())
    }

    /// Resets the machine through the i8042 (the end of every guest).
    pub fn reset(&mut self) -> Asm {
        self.a.mov(al, 0xfeu32)?;
        self.a.mov(dx, 0x64u32)?;
        self.a.out(dx, al)?;
        let mut halt = self.a.create_label();
        self.a.set_label(&mut halt)?;
        self.a.hlt()?;
        self.a.jmp(halt)
    }

    pub fn assemble(mut self) -> Vec<u8> {
        self.a.assemble(CODE).expect("assemble the guest")
    }
}
