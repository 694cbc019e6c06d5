//! An Intel MultiProcessor Specification 1.4 table: without ACPI tables it
//! is how Linux finds the other vCPUs and the IOAPIC (firecracker boots
//! Linux the same way). Layout: floating pointer, then the configuration
//! table with processor, bus, IOAPIC, I/O and local interrupt entries.

use super::layout::{IOAPIC_ADDR, LAPIC_ADDR};

const FLOATING_SIGNATURE: &[u8; 4] = b"_MP_";
const TABLE_SIGNATURE: &[u8; 4] = b"PCMP";
const SPEC_REVISION: u8 = 4;
const FLOATING_LEN: usize = 16;
const HEADER_LEN: usize = 44;

const ENTRY_PROCESSOR: u8 = 0;
const ENTRY_BUS: u8 = 1;
const ENTRY_IOAPIC: u8 = 2;
const ENTRY_IO_INTERRUPT: u8 = 3;
const ENTRY_LOCAL_INTERRUPT: u8 = 4;

const CPU_ENABLED: u8 = 1 << 0;
const CPU_BOOTSTRAP: u8 = 1 << 1;
/// Family 6 signature and the FPU + APIC feature bits, as firecracker
/// reports (Linux only uses them for display).
const CPU_SIGNATURE: u32 = (6 << 8) | (1 << 4) | 1;
const CPU_FEATURES: u32 = (1 << 0) | (1 << 9);
const LAPIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const IOAPIC_ENABLED: u8 = 1;
const ISA_BUS: u8 = 0;
/// The in-kernel IOAPIC has 24 pins; ISA IRQ n is pin n.
const IOAPIC_PINS: u8 = 24;

const INT_TYPE_INT: u8 = 0;
const INT_TYPE_NMI: u8 = 1;
const INT_TYPE_EXTINT: u8 = 3;
/// Polarity/trigger "conforms to the bus" (ISA: active high, edge).
const INT_FLAGS_CONFORM: u16 = 0;

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |sum, b| sum.wrapping_add(*b))
        .wrapping_neg()
}

/// The complete table for `cpus` vCPUs, to be placed at guest address
/// `base` (the floating pointer refers to the table by address).
pub fn build(base: u32, cpus: u8) -> Vec<u8> {
    let ioapic_id = cpus;
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    let mut push = |bytes: &[u8]| {
        entries.extend_from_slice(bytes);
        count += 1;
    };

    for cpu in 0..cpus {
        let mut e = vec![ENTRY_PROCESSOR, cpu, LAPIC_VERSION];
        e.push(CPU_ENABLED | if cpu == 0 { CPU_BOOTSTRAP } else { 0 });
        e.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        e.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        e.extend_from_slice(&[0; 8]);
        push(&e);
    }
    let mut bus = vec![ENTRY_BUS, ISA_BUS];
    bus.extend_from_slice(b"ISA   ");
    push(&bus);
    let mut ioapic = vec![ENTRY_IOAPIC, ioapic_id, IOAPIC_VERSION, IOAPIC_ENABLED];
    ioapic.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    push(&ioapic);
    for irq in 0..IOAPIC_PINS {
        let mut e = vec![ENTRY_IO_INTERRUPT, INT_TYPE_INT];
        e.extend_from_slice(&INT_FLAGS_CONFORM.to_le_bytes());
        e.extend_from_slice(&[ISA_BUS, irq, ioapic_id, irq]);
        push(&e);
    }
    // LINT0 of every LAPIC takes the 8259 (ExtINT), LINT1 is NMI.
    for (kind, lint) in [(INT_TYPE_EXTINT, 0u8), (INT_TYPE_NMI, 1u8)] {
        let mut e = vec![ENTRY_LOCAL_INTERRUPT, kind];
        e.extend_from_slice(&INT_FLAGS_CONFORM.to_le_bytes());
        e.extend_from_slice(&[ISA_BUS, 0, 0xff, lint]);
        push(&e);
    }

    let table_len = (HEADER_LEN + entries.len()) as u16;
    let mut table = Vec::with_capacity(usize::from(table_len));
    table.extend_from_slice(TABLE_SIGNATURE);
    table.extend_from_slice(&table_len.to_le_bytes());
    table.push(SPEC_REVISION);
    table.push(0); // checksum, below
    table.extend_from_slice(b"RANGEFLT"); // OEM ID
    table.extend_from_slice(b"KVM MACHINE "); // product ID
    table.extend_from_slice(&0u32.to_le_bytes()); // OEM table pointer
    table.extend_from_slice(&0u16.to_le_bytes()); // OEM table size
    table.extend_from_slice(&count.to_le_bytes());
    table.extend_from_slice(&LAPIC_ADDR.to_le_bytes());
    table.extend_from_slice(&0u16.to_le_bytes()); // extended table length
    table.push(0); // extended table checksum
    table.push(0); // reserved
    debug_assert_eq!(table.len(), HEADER_LEN);
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut floating = Vec::with_capacity(FLOATING_LEN);
    floating.extend_from_slice(FLOATING_SIGNATURE);
    floating.extend_from_slice(&(base + FLOATING_LEN as u32).to_le_bytes());
    floating.push(1); // length in 16-byte units
    floating.push(SPEC_REVISION);
    floating.push(0); // checksum, below
    floating.extend_from_slice(&[0; 5]); // feature bytes: table present
    floating[10] = checksum(&floating);

    floating.extend_from_slice(&table);
    floating
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
    }

    #[test]
    fn checksums_and_sizes_are_right() {
        for cpus in [1u8, 2, 16] {
            let table = build(0x9fc00, cpus);
            let entries = 20 * usize::from(cpus) + 8 * (1 + 1 + 24 + 2);
            assert_eq!(table.len(), FLOATING_LEN + HEADER_LEN + entries);
            assert!(table.len() <= 1024, "must fit the EBDA");
            assert_eq!(&table[..4], b"_MP_");
            assert_eq!(sum(&table[..16]), 0);
            assert_eq!(u32::from_le_bytes(table[4..8].try_into().unwrap()), 0x9fc10);
            let config = &table[16..];
            assert_eq!(&config[..4], b"PCMP");
            let len = u16::from_le_bytes([config[4], config[5]]) as usize;
            assert_eq!(len, config.len());
            assert_eq!(sum(config), 0);
            let count = u16::from_le_bytes([config[34], config[35]]);
            assert_eq!(count, u16::from(cpus) + 2 + 24 + 2);
            // The first processor entry is the bootstrap processor.
            assert_eq!(config[HEADER_LEN], ENTRY_PROCESSOR);
            assert_eq!(config[HEADER_LEN + 3], CPU_ENABLED | CPU_BOOTSTRAP);
        }
    }
}
