//! The KVM machine itself, free of the rest of `vmm` so the tiny-guest
//! tests (vmm/tests/kvm_*.rs) can build it on its own: a PC-like board
//! (RAM with PCI holes, in-kernel LAPIC/IOAPIC/PIC/PIT, COM1, the i8042
//! reset line, a conf1 PCI bus with a host bridge) and the rangefault
//! device at 00:03.0 with BAR2 as a memfd-backed memslot and the host
//! page-table check walking guest RAM (ROOT cross-checked with the ringing
//! vCPU's CR3, memory types decoded with its IA32_PAT). Besides its own
//! files it uses `crate::page_table_check`, which the tests include with
//! `#[path]` too.

mod bar_placement;
mod boot_cpu;
mod counters;
mod cpuid;
mod exiting_vcpu;
mod guest_ram;
mod host_bridge;
mod i8042;
mod lapic;
pub mod layout;
mod linux_boot;
mod mptable;
mod msi;
mod msrs;
mod page_tables;
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
