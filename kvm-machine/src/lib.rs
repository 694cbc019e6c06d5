//! rangefault's KVM machine, free of the rest of `vmm` (whose `kvm`
//! engine boots Linux on it) so the tiny-guest tests (tests/kvm_*.rs) drive
//! it directly: a PC-like board (RAM with PCI holes, in-kernel
//! LAPIC/IOAPIC/PIC/PIT, COM1, the i8042 reset line, a conf1 PCI bus with a
//! host bridge) and the rangefault device at 00:03.0 with BAR2 as a
//! memfd-backed memslot and the host page-table check walking guest RAM
//! (ROOT cross-checked with the ringing vCPU's CR3, memory types decoded
//! with its IA32_PAT): the machine provides guest RAM and the vCPU's state,
//! the device walks the tables itself.

mod bar_placement;
mod boot_cpu;
mod counters;
mod cpuid;
mod exiting_vcpu;
mod guest_access;
mod guest_ram;
mod host_bridge;
mod i8042;
mod lapic;
pub mod layout;
mod linux_boot;
mod mptable;
mod msi;
mod msrs;
mod pci_conf1;
mod platform;
mod rangefault_function;
mod run_control;
mod serial;
mod vcpu_thread;
mod vm;
mod vram_slot;

pub use platform::RANGEFAULT_SLOT;
pub use run_control::EndReason;
pub use vm::{RunOutcome, Vm, VmConfig};
pub use {
    boot_cpu::StartMode, counters::Counters, serial::ConsoleOut, vm::MsixRaiser, vm::VmStopper,
};
