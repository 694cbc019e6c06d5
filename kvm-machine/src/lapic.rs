//! LAPIC local interrupt pins, wired as on a PC: LINT0 takes the 8259's
//! output (ExtINT) and LINT1 is the NMI line. KVM leaves both masked.

use anyhow::{Context, Result};
use kvm_bindings::kvm_lapic_state;
use kvm_ioctls::VcpuFd;

/// Local vector table registers for LINT0/LINT1.
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
/// Delivery modes (LVT bits 10:8).
const DELIVERY_MODE_EXTINT: u32 = 0b111;
const DELIVERY_MODE_NMI: u32 = 0b100;
const DELIVERY_MODE_MASK: u32 = 0b111 << 8;

fn get_reg(state: &kvm_lapic_state, offset: usize) -> u32 {
    let bytes: [u8; 4] = std::array::from_fn(|i| state.regs[offset + i] as u8);
    u32::from_le_bytes(bytes)
}

fn set_reg(state: &mut kvm_lapic_state, offset: usize, value: u32) {
    for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
        state.regs[offset + i] = byte as _;
    }
}

fn with_delivery_mode(lvt: u32, mode: u32) -> u32 {
    (lvt & !DELIVERY_MODE_MASK) | (mode << 8)
}

/// Sets LINT0 to ExtINT and LINT1 to NMI on `vcpu`'s in-kernel LAPIC.
pub fn wire_local_interrupts(vcpu: &VcpuFd) -> Result<()> {
    let mut state = vcpu.get_lapic().context("KVM_GET_LAPIC failed")?;
    let lint0 = get_reg(&state, APIC_LVT_LINT0);
    set_reg(
        &mut state,
        APIC_LVT_LINT0,
        with_delivery_mode(lint0, DELIVERY_MODE_EXTINT),
    );
    let lint1 = get_reg(&state, APIC_LVT_LINT1);
    set_reg(
        &mut state,
        APIC_LVT_LINT1,
        with_delivery_mode(lint1, DELIVERY_MODE_NMI),
    );
    vcpu.set_lapic(&state).context("KVM_SET_LAPIC failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_mode_replaces_only_bits_10_to_8() {
        assert_eq!(
            with_delivery_mode(0x0001_0700 | 0x42, DELIVERY_MODE_NMI),
            0x0001_0442
        );
        let mut state = kvm_lapic_state::default();
        set_reg(&mut state, APIC_LVT_LINT1, 0xdead_beef);
        assert_eq!(get_reg(&state, APIC_LVT_LINT1), 0xdead_beef);
    }
}
