//! The KVM machine itself, free of the rest of `vmm` so the tiny-guest
//! tests (vmm/tests/kvm_*.rs) can build it on its own: a PC-like board
//! (RAM with PCI holes, in-kernel LAPIC/IOAPIC/PIC/PIT, COM1, the i8042
//! reset line, a conf1 PCI bus with a host bridge) and the rangefault
//! device at 00:03.0 with BAR2 as a memfd-backed memslot.

mod bar_placement;
mod boot_cpu;
mod counters;
mod cpuid;
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
mod rate_limited_log;
mod run_control;
mod serial;
mod vcpu_thread;
mod vm;
mod vram_slot;

pub use platform::RANGEFAULT_SLOT;
pub use run_control::EndReason;
pub use vm::{RunOutcome, Vm, VmConfig};
// What the tiny-guest tests (vmm/tests/kvm_*.rs) need beyond the engine.
#[allow(unused_imports)]
pub use {
    boot_cpu::StartMode, counters::CounterSnapshot, serial::ConsoleOut, vm::MsixRaiser,
    vm::VmStopper,
};
