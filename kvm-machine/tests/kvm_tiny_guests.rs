//! The KVM engine's machine driven by tiny guests (a few dozen instructions
//! assembled here with iced-x86) instead of Linux: this host's /dev/kvm
//! runs such guests even where it cannot boot Linux. Each guest stores what
//! it read at `RESULTS` in its RAM and then resets the machine through the
//! i8042; the tests compare the stored values with what the device model
//! must have answered, and look into the VRAM memfd directly.

mod kvm_support;

use std::time::Duration;

use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress};

use device_model::abi;
use kvm_machine::{EndReason, StartMode};
use kvm_support::*;

#[test]
fn pci_bus_shows_the_host_bridge_and_the_device() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    let bridge = g.record_config(0, REG_ID).unwrap();
    let bridge_class = g.record_config(0, REG_CLASS).unwrap();
    let device = g.record_config(SLOT, REG_ID).unwrap();
    let class = g.record_config(SLOT, REG_CLASS).unwrap();
    let empty = g.record_config(SLOT + 1, REG_ID).unwrap();
    // CONFIG_ADDRESS reads back (Linux's conf1 probe).
    g.select(SLOT, REG_ID).unwrap();
    g.a.mov(dx, 0xcf8u32).unwrap();
    g.a.in_(eax, dx).unwrap();
    let latch = g.store_eax().unwrap();
    g.reset().unwrap();

    let mut m = Machine::new(1);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::GuestReset);
    assert_eq!(m.result(bridge), 0x0d57_8086);
    assert_eq!(m.result(bridge_class) >> 8, 0x06_0000, "host bridge class");
    assert_eq!(
        m.result(device),
        u64::from(abi::DEVICE_ID) << 16 | u64::from(abi::VENDOR_ID)
    );
    assert_eq!(
        m.result(class),
        u64::from(abi::CLASS_CODE) << 8 | u64::from(abi::REVISION)
    );
    assert_eq!(m.result(empty), 0xffff_ffff, "no device in slot 4");
    assert_eq!(m.result(latch), 0x8000_1800);
    assert!(outcome.counters.boundary.config_accesses.get() >= 2);
}

#[test]
fn bars_are_sized_programmed_and_serve_registers_and_vram() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    // Size both BARs the standard way: write all-ones, read back.
    g.config_write(SLOT, REG_BAR0, 0xffff_ffff).unwrap();
    let bar0_mask = g.record_config(SLOT, REG_BAR0).unwrap();
    g.config_write(SLOT, REG_BAR2_LO, 0xffff_ffff).unwrap();
    g.config_write(SLOT, REG_BAR2_HI, 0xffff_ffff).unwrap();
    let bar2_lo_mask = g.record_config(SLOT, REG_BAR2_LO).unwrap();
    let bar2_hi_mask = g.record_config(SLOT, REG_BAR2_HI).unwrap();
    g.program_bars(BAR2).unwrap();
    let bar2_lo = g.record_config(SLOT, REG_BAR2_LO).unwrap();
    let bar2_hi = g.record_config(SLOT, REG_BAR2_HI).unwrap();
    // BAR0 registers, through MMIO exits.
    let magic = g.record_u32(BAR0 + abi::reg::MAGIC).unwrap();
    let version = g.record_u32(BAR0 + abi::reg::VERSION).unwrap();
    let vram_size = g.record_u32(BAR0 + abi::reg::VRAM_SIZE_LO).unwrap();
    g.write_u32(BAR0 + abi::reg::SCRATCH, 0x5ca1_ab1e).unwrap();
    let scratch = g.record_u32(BAR0 + abi::reg::SCRATCH).unwrap();
    // VRAM, through the memslot: write two values, read one the host put.
    g.write_u32(BAR2, 0x600d_cafe).unwrap();
    g.a.mov(rbx, BAR2 + 0x1238).unwrap();
    g.a.mov(rax, 0x0123_4567_89ab_cdefu64).unwrap();
    g.a.mov(qword_ptr(rbx), rax).unwrap();
    let from_host = g.record_u32(BAR2 + (1 << 20)).unwrap();
    let last = g.record_u32(BAR2 + VRAM_SIZE - 4).unwrap();
    g.reset().unwrap();

    let mut m = Machine::new(1);
    let vram_top = VRAM_SIZE - 4;
    {
        let device = m.device.lock().unwrap();
        device
            .vram()
            .write_at(1 << 20, &0xfeed_face_u32.to_le_bytes())
            .unwrap();
        device
            .vram()
            .write_at(vram_top, &0x7a11_7a11_u32.to_le_bytes())
            .unwrap();
    }
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::GuestReset);

    assert_eq!(
        m.result(bar0_mask),
        0xffff_f000,
        "4 KiB, 32-bit, non-prefetchable"
    );
    assert_eq!(
        m.result(bar2_lo_mask),
        u64::from(!(VRAM_SIZE as u32 - 1) | 0xc)
    );
    assert_eq!(m.result(bar2_hi_mask), 0xffff_ffff);
    assert_eq!(
        m.result(bar2_lo),
        0xc,
        "64-bit prefetchable, low address bits 0"
    );
    assert_eq!(m.result(bar2_hi), 1);
    assert_eq!(m.result(magic), u64::from(abi::MAGIC));
    assert_eq!(m.result(version), u64::from(abi::ABI_VERSION));
    assert_eq!(m.result(vram_size), VRAM_SIZE);
    assert_eq!(m.result(scratch), 0x5ca1_ab1e);
    assert_eq!(m.result(from_host), 0xfeed_face);
    assert_eq!(m.result(last), 0x7a11_7a11);
    // What the guest wrote is in the device's memfd.
    assert_eq!(m.vram_u32(0), 0x600d_cafe);
    assert_eq!(m.vram_u64(0x1238), 0x0123_4567_89ab_cdef);
    assert_eq!(m.vm.vram_mapped_at(), Some(BAR2));
    let c = outcome.counters;
    assert_eq!(
        c.boundary.vram_trapped_accesses.get(),
        0,
        "VRAM must not exit to the VMM"
    );
    assert!(c.boundary.register_accesses.get() >= 5, "{c:?}");
}

#[test]
fn moving_bar2_moves_the_memslot() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    g.program_bars(BAR2).unwrap();
    g.write_u32(BAR2, 0xaaaa_0001).unwrap();
    // Decode off: VRAM disappears from the old address.
    g.config_write(SLOT, REG_COMMAND, 0).unwrap();
    let while_disabled = g.record_u32(BAR2).unwrap();
    // Move BAR2 below 4 GiB and turn decode back on.
    g.config_write(SLOT, REG_BAR2_LO, BAR2_MOVED as u32)
        .unwrap();
    g.config_write(SLOT, REG_BAR2_HI, 0).unwrap();
    g.config_write(SLOT, REG_COMMAND, COMMAND_MEMORY).unwrap();
    let moved = g.record_u32(BAR2_MOVED).unwrap();
    g.write_u32(BAR2_MOVED + 8, 0xbbbb_0002).unwrap();
    let old_place = g.record_u32(BAR2).unwrap();
    // BAR0 still answers.
    let magic = g.record_u32(BAR0).unwrap();
    g.reset().unwrap();

    let mut m = Machine::new(1);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::GuestReset);
    assert_eq!(
        m.result(while_disabled),
        0xffff_ffff,
        "unmapped VRAM floats high"
    );
    assert_eq!(m.result(moved), 0xaaaa_0001, "same VRAM at the new address");
    assert_eq!(
        m.result(old_place),
        0xffff_ffff,
        "nothing left at the old address"
    );
    assert_eq!(m.result(magic), u64::from(abi::MAGIC));
    assert_eq!(m.vram_u32(0), 0xaaaa_0001);
    assert_eq!(m.vram_u32(8), 0xbbbb_0002);
    assert_eq!(m.vm.vram_mapped_at(), Some(BAR2_MOVED));
    let c = outcome.counters;
    assert!(
        c.vram_slot_changes.get() >= 3,
        "add, remove, add again: {c:?}"
    );
    assert_eq!(c.boundary.vram_trapped_accesses.get(), 0);
}

#[test]
fn real_mode_guest_prints_on_the_serial_port() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut m = Machine::new(1);
    run_real_mode_writes(&mut m, &[(0x3f8, b"hello from real mode\n")]);
    assert_eq!(m.console.text(), "hello from real mode\n");
}

/// Runs, in real mode on `m`, code that writes each byte of each (port, bytes) with `out`,
/// then resets through the i8042; checks that the run ended with that reset.
fn run_real_mode_writes(m: &mut Machine, writes: &[(u32, &[u8])]) {
    const ENTRY: u16 = 0x1000;
    let mut a = CodeAssembler::new(16).unwrap();
    for &(port, bytes) in writes {
        for byte in bytes {
            a.mov(dx, port).unwrap();
            a.mov(al, u32::from(*byte)).unwrap();
            a.out(dx, al).unwrap();
        }
    }
    a.mov(al, 0xfeu32).unwrap();
    a.mov(dx, 0x64u32).unwrap();
    a.out(dx, al).unwrap();
    a.hlt().unwrap();
    let code = a.assemble(u64::from(ENTRY)).unwrap();
    m.vm.load_raw(u64::from(ENTRY), &code).unwrap();
    m.vm.set_start(StartMode::Real16 { entry: ENTRY });
    let outcome = m.vm.run(RUN_TIMEOUT).unwrap();
    assert_eq!(outcome.reason, EndReason::GuestReset);
}

/// Bulk output (`vmm run --trace`) leaves on COM2, apart from the console; without COM2 the
/// same writes go nowhere (and do not reach the console).
#[test]
fn com2_carries_its_own_bytes_apart_from_the_console() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    for with_com2 in [true, false] {
        let mut m = if with_com2 {
            Machine::with_com2(1)
        } else {
            Machine::new(1)
        };
        run_real_mode_writes(&mut m, &[(0x2f8, b"\x1f\x8b trace"), (0x3f8, b"console\n")]);
        assert_eq!(m.console.text(), "console\n");
        let expected: &[u8] = if with_com2 { b"\x1f\x8b trace" } else { b"" };
        assert_eq!(m.com2.bytes(), expected);
    }
}

#[test]
fn long_mode_guest_prints_with_line_status_polling() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    g.print("RANGEFAULT-EXIT 0\r\n").unwrap();
    g.reset().unwrap();
    let mut m = Machine::new(1);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::GuestReset);
    assert_eq!(m.console.text(), "RANGEFAULT-EXIT 0\r\n");
}

/// What Linux's i8042 driver does at boot (status, command byte read and write, self-test),
/// then the reset `reboot=k` falls back to: the output port written with the reset line low.
/// Linux under this machine used to print "Can't read CTR" after polling each command.
#[test]
fn the_i8042_answers_linux_and_resets_through_its_output_port() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    let read_port = |g: &mut Guest, port: u32| -> Result<u64, IcedError> {
        g.a.xor(eax, eax)?;
        g.a.mov(dx, port)?;
        g.a.in_(al, dx)?;
        g.store_eax()
    };
    let command = |g: &mut Guest, byte: u32| -> Asm {
        g.a.mov(al, byte)?;
        g.a.mov(dx, 0x64u32)?;
        g.a.out(dx, al)
    };
    let data = |g: &mut Guest, byte: u32| -> Asm {
        g.a.mov(al, byte)?;
        g.a.mov(dx, 0x60u32)?;
        g.a.out(dx, al)
    };
    let idle_status = read_port(&mut g, 0x64).unwrap();
    command(&mut g, 0x20).unwrap(); // read CTR
    let ready_status = read_port(&mut g, 0x64).unwrap();
    let ctr = read_port(&mut g, 0x60).unwrap();
    command(&mut g, 0x60).unwrap(); // write CTR
    data(&mut g, 0x47).unwrap();
    command(&mut g, 0x20).unwrap();
    let written = read_port(&mut g, 0x60).unwrap();
    command(&mut g, 0xaa).unwrap(); // self-test
    let self_test = read_port(&mut g, 0x60).unwrap();
    // Output port with bit 0 (the reset line, active low) clear: the machine resets.
    command(&mut g, 0xd1).unwrap();
    data(&mut g, 0xfe).unwrap();
    let mut halt = g.a.create_label();
    g.a.set_label(&mut halt).unwrap();
    g.a.hlt().unwrap();
    g.a.jmp(halt).unwrap();
    let mut m = Machine::new(1);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::GuestReset);
    // Nothing to read, system flag set, keyboard not inhibited.
    assert_eq!(m.result(idle_status) & 0x15, 0x14);
    assert_eq!(
        m.result(ready_status) & 0x01,
        0x01,
        "a reply waits after 0x20"
    );
    assert_eq!(m.result(ctr) & 0x30, 0x30, "ports disabled at power-on");
    assert_eq!(m.result(written), 0x47);
    assert_eq!(m.result(self_test), 0x55);
}

#[test]
fn guest_misbehaviour_is_logged_and_survived() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    // An unknown port floats high.
    g.a.mov(dx, 0x1234u32).unwrap();
    g.a.in_(eax, dx).unwrap();
    let unknown_port = g.store_eax().unwrap();
    g.a.out(dx, eax).unwrap();
    g.program_bars(BAR2).unwrap();
    // Odd access sizes on BAR0: a byte, a word, a qword.
    g.a.mov(rbx, BAR0).unwrap();
    g.a.movzx(eax, byte_ptr(rbx)).unwrap();
    let magic_byte = g.store_eax().unwrap();
    g.a.movzx(eax, word_ptr(rbx + 2)).unwrap();
    let magic_word = g.store_eax().unwrap();
    g.a.mov(rax, qword_ptr(rbx)).unwrap();
    let magic_qword = g.store_rax().unwrap();
    // Past the defined registers, and an unclaimed MMIO address.
    let reserved = g.record_u32(BAR0 + 0xffc).unwrap();
    let nowhere = g.record_u32(NOWHERE).unwrap();
    g.write_u32(NOWHERE, 1).unwrap();
    // Odd conf1 accesses: a byte to 0xCFB, a word read of the data port.
    g.a.mov(dx, 0xcfbu32).unwrap();
    g.a.mov(al, 1u32).unwrap();
    g.a.out(dx, al).unwrap();
    g.select(SLOT, REG_ID).unwrap();
    g.a.mov(dx, 0xcfeu32).unwrap();
    g.a.in_(ax, dx).unwrap();
    g.a.movzx(eax, ax).unwrap();
    let device_word = g.store_eax().unwrap();
    // BAR2 over RAM: refused; the guest reaches RAM there, not VRAM.
    g.config_write(SLOT, REG_BAR2_LO, 64 << 20).unwrap();
    g.config_write(SLOT, REG_BAR2_HI, 0).unwrap();
    g.write_u32(64 << 20, 0x0bad_0bad).unwrap();
    // BAR2 over BAR0: refused; BAR0 still answers.
    g.config_write(SLOT, REG_BAR2_LO, BAR0 as u32).unwrap();
    let magic_under_overlap = g.record_u32(BAR0).unwrap();
    // BAR2 past the physical address width (as left by sizing).
    g.config_write(SLOT, REG_BAR2_LO, 0xffff_ffff).unwrap();
    g.config_write(SLOT, REG_BAR2_HI, 0xffff_ffff).unwrap();
    // Finally a sane place again: VRAM works.
    g.config_write(SLOT, REG_BAR2_LO, 0).unwrap();
    g.config_write(SLOT, REG_BAR2_HI, 1).unwrap();
    g.write_u32(BAR2 + 16, 0x600d_0001).unwrap();
    let after = g.record_u32(BAR2 + 16).unwrap();
    g.reset().unwrap();

    let mut m = Machine::new(1);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::GuestReset);
    let magic = u64::from(abi::MAGIC);
    assert_eq!(m.result(unknown_port), 0xffff_ffff);
    assert_eq!(m.result(magic_byte), magic & 0xff);
    assert_eq!(m.result(magic_word), (magic >> 16) & 0xffff);
    assert_eq!(
        m.result(magic_qword),
        magic | u64::from(abi::ABI_VERSION) << 32
    );
    assert_eq!(m.result(reserved), 0, "reserved registers read as zero");
    assert_eq!(m.result(nowhere), 0xffff_ffff);
    assert_eq!(m.result(device_word), u64::from(abi::DEVICE_ID));
    assert_eq!(m.result(magic_under_overlap), magic);
    assert_eq!(m.result(after), 0x600d_0001);
    let ram: u32 = m.vm.ram().read_obj(GuestAddress(64 << 20)).unwrap();
    assert_eq!(ram, 0x0bad_0bad, "the overlapping BAR did not hide RAM");
    assert_eq!(m.vram_u32(0), 0, "VRAM untouched by the write to RAM");
    assert_eq!(m.vram_u32(16), 0x600d_0001);
    assert_eq!(m.vm.vram_mapped_at(), Some(BAR2));
    assert!(
        outcome.counters.unclaimed_accesses.get() >= 4,
        "{:?}",
        outcome.counters
    );
}

#[test]
fn secondary_vcpus_wait_and_the_run_still_ends() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    g.print("two vcpus\n").unwrap();
    g.reset().unwrap();
    let mut m = Machine::new(2);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::GuestReset);
    assert_eq!(m.console.text(), "two vcpus\n");
}

#[test]
fn a_spinning_guest_is_stopped_at_the_timeout() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    let mut g = Guest::new();
    let mut spin = g.a.create_label();
    g.a.set_label(&mut spin).unwrap();
    g.a.pause().unwrap();
    g.a.jmp(spin).unwrap();
    let mut m = Machine::new(2);
    let outcome = m.run_long_mode(&g.assemble(), Duration::from_millis(300));
    assert_eq!(outcome.reason, EndReason::TimedOut);
    assert!(outcome.wall < Duration::from_secs(5), "{:?}", outcome.wall);
}

/// Guest-side setup for the MSI-X test: an IDT whose vector `MSI_VECTOR`
/// runs `handler_addr`, described by an IDTR at `IDTR`.
const IDT: u64 = 0x21_0000;
const IDTR: u64 = 0x22_0000;
const HANDLER: u64 = 0x18_0000;
const MSI_FLAG: u64 = 0x23_0000;
const MSI_VECTOR: u64 = 0x40;
const LAPIC: u64 = 0xfee0_0000;
const MSIX_CAP_CONTROL: u32 = abi::MSIX_CAP_OFFSET as u32; // dword holding message control
const COMMAND_BUS_MASTER: u32 = 1 << 2;
const READY: u32 = 0x7ead_0001;

fn write_interrupt_gate(m: &Machine, vector: u64, handler: u64) {
    let mut gate = [0u8; 16];
    gate[0..2].copy_from_slice(&(handler as u16).to_le_bytes());
    gate[2..4].copy_from_slice(&8u16.to_le_bytes()); // the boot code segment
    gate[5] = 0x8e; // present, DPL 0, 64-bit interrupt gate
    gate[6..8].copy_from_slice(&((handler >> 16) as u16).to_le_bytes());
    gate[8..12].copy_from_slice(&((handler >> 32) as u32).to_le_bytes());
    let ram = m.vm.ram();
    ram.write_slice(&gate, GuestAddress(IDT + 16 * vector))
        .unwrap();
    ram.write_obj(0xfffu16, GuestAddress(IDTR)).unwrap();
    ram.write_obj(IDT, GuestAddress(IDTR + 2)).unwrap();
}

#[test]
fn a_masked_msix_vector_is_delivered_on_unmask() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    // The handler counts the interrupt and acknowledges it at the LAPIC.
    let mut h = CodeAssembler::new(64).unwrap();
    h.push(rbx).unwrap();
    h.add(dword_ptr(MSI_FLAG), 1).unwrap();
    h.mov(rbx, LAPIC + 0xb0).unwrap(); // EOI
    h.mov(dword_ptr(rbx), 0).unwrap();
    h.pop(rbx).unwrap();
    h.iretq().unwrap();
    let handler = h.assemble(HANDLER).unwrap();

    let mut g = Guest::new();
    g.a.lidt(ptr(IDTR)).unwrap();
    g.write_u32(LAPIC + 0xf0, 0x1ff).unwrap(); // software-enable the LAPIC
    g.program_bars(BAR2).unwrap();
    g.config_write(SLOT, REG_COMMAND, COMMAND_MEMORY | COMMAND_BUS_MASTER)
        .unwrap();
    // Table entry 0: to the boot CPU's LAPIC, vector 0x40, masked.
    let entry = BAR0 + abi::MSIX_TABLE_OFFSET;
    g.write_u32(entry, LAPIC as u32).unwrap();
    g.write_u32(entry + 4, 0).unwrap();
    g.write_u32(entry + 8, MSI_VECTOR as u32).unwrap();
    g.write_u32(entry + 12, 1).unwrap();
    // MSI-X enable is bit 15 of message control, the upper half of the
    // capability's first dword.
    g.config_write(SLOT, MSIX_CAP_CONTROL, 0x8000_0000).unwrap();
    g.write_u32(BAR0 + abi::reg::SCRATCH, READY).unwrap();
    // Wait for the host's interrupt to show up as pending.
    let mut pending = g.a.create_label();
    g.a.set_label(&mut pending).unwrap();
    g.a.pause().unwrap();
    g.a.mov(rbx, BAR0 + abi::MSIX_PBA_OFFSET).unwrap();
    g.a.mov(eax, dword_ptr(rbx)).unwrap();
    g.a.test(eax, 1).unwrap();
    g.a.jz(pending).unwrap();
    let pba_before = g.store_eax().unwrap();
    g.a.sti().unwrap();
    g.write_u32(entry + 12, 0).unwrap(); // unmask: the VMM must deliver now
    let mut delivered = g.a.create_label();
    g.a.set_label(&mut delivered).unwrap();
    g.a.pause().unwrap();
    g.a.cmp(dword_ptr(MSI_FLAG), 0).unwrap();
    g.a.je(delivered).unwrap();
    let pba_after = g.record_u32(BAR0 + abi::MSIX_PBA_OFFSET).unwrap();
    g.a.mov(eax, dword_ptr(MSI_FLAG)).unwrap();
    let interrupts = g.store_eax().unwrap();
    g.reset().unwrap();

    let mut m = Machine::new(1);
    m.vm.load_raw(HANDLER, &handler).unwrap();
    write_interrupt_gate(&m, MSI_VECTOR, HANDLER);
    // The host side: once the guest is ready, raise vector 0 (masked, so
    // it must stay pending until the guest unmasks it).
    let raiser = m.vm.msix_raiser();
    let device = m.device.clone();
    let host = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + RUN_TIMEOUT;
        while std::time::Instant::now() < deadline {
            let mut scratch = [0u8; 4];
            device
                .lock()
                .unwrap()
                .regs_read(abi::reg::SCRATCH, &mut scratch);
            if u32::from_le_bytes(scratch) == READY {
                raiser.raise(0);
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    });
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert!(host.join().unwrap(), "the guest never got ready");
    assert_eq!(outcome.reason, EndReason::GuestReset);
    assert_eq!(m.result(pba_before), 1, "pending while masked");
    assert_eq!(m.result(interrupts), 1, "delivered exactly once");
    assert_eq!(m.result(pba_after), 0, "no longer pending");
    assert_eq!(outcome.counters.msis_delivered.get(), 1);
}

#[test]
fn a_triple_fault_ends_the_run() {
    if !kvm_usable("tiny-guest") {
        return;
    }
    // The boot IDT is empty: the #UD cannot be delivered, nor the #DF.
    let mut g = Guest::new();
    g.a.ud2().unwrap();
    let mut m = Machine::new(1);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(outcome.reason, EndReason::Shutdown { vcpu: 0 });
}
