use super::{cfg_read, cfg_write, device, VRAM};
use crate::abi;
use crate::pci_config::*;
use crate::DeviceConfig;

fn space(vram_size: u64) -> PciConfigSpace {
    PciConfigSpace::new(&DeviceConfig::new(vram_size, 2 << 20).unwrap())
}

fn r32(s: &PciConfigSpace, offset: usize) -> u32 {
    let mut b = [0u8; 4];
    assert!(s.read(offset as u64, &mut b));
    u32::from_le_bytes(b)
}

fn w32(s: &mut PciConfigSpace, offset: usize, v: u32) {
    assert!(s.write(offset as u64, &v.to_le_bytes()));
}

/// Size decoded from a 64-bit BAR's sizing read-back.
fn size_from_masks(lo: u32, hi: u32) -> u64 {
    let mask = u64::from(lo & !0xf) | (u64::from(hi) << 32);
    (!mask).wrapping_add(1)
}

#[test]
fn identity_fields() {
    let mut d = device();
    assert_eq!(
        cfg_read(&mut d, VENDOR_ID as u64, 2),
        u64::from(abi::VENDOR_ID)
    );
    assert_eq!(
        cfg_read(&mut d, DEVICE_ID as u64, 2),
        u64::from(abi::DEVICE_ID)
    );
    assert_eq!(
        cfg_read(&mut d, 0, 4),
        u64::from(abi::VENDOR_ID) | u64::from(abi::DEVICE_ID) << 16
    );
    assert_eq!(
        cfg_read(&mut d, SUBSYSTEM_VENDOR_ID as u64, 2),
        u64::from(abi::SUBSYSTEM_VENDOR_ID)
    );
    assert_eq!(
        cfg_read(&mut d, SUBSYSTEM_ID as u64, 2),
        u64::from(abi::SUBSYSTEM_ID)
    );
    assert_eq!(
        cfg_read(&mut d, REVISION as u64, 1),
        u64::from(abi::REVISION)
    );
    // Revision + class code share the dword at 0x08.
    assert_eq!(
        cfg_read(&mut d, 0x08, 4),
        u64::from(abi::CLASS_CODE) << 8 | u64::from(abi::REVISION)
    );
    assert_eq!(cfg_read(&mut d, HEADER_TYPE as u64, 1), 0);
    assert_eq!(
        cfg_read(&mut d, STATUS as u64, 2),
        u64::from(STATUS_CAP_LIST)
    );
    assert_eq!(
        cfg_read(&mut d, CAPABILITIES as u64, 1),
        u64::from(abi::VENDOR_CAP_OFFSET)
    );
    assert_eq!(cfg_read(&mut d, INTERRUPT_PIN as u64, 1), 0);
}

/// Every byte that is not a writable register keeps its value under writes
/// of all-ones and all-zeros: IDs, status, class, header type, unimplemented
/// BARs and ROM, capability contents, undefined space (which reads 0).
#[test]
fn read_only_bytes_ignore_writes() {
    let writable = |o: usize| {
        matches!(o, 0x04 | 0x05 | 0x10..=0x13 | 0x18..=0x1f | 0x3c)
            || o == usize::from(abi::MSIX_CAP_OFFSET) + 2
            || o == usize::from(abi::MSIX_CAP_OFFSET) + 3
    };
    let mut d = device();
    let mut before = [0u8; SIZE];
    d.config_read(0, &mut before);
    for offset in (0..SIZE).filter(|&o| !writable(o)) {
        for v in [0xffu8, 0x00, 0x5a] {
            d.config_write(offset as u64, &[v]);
        }
    }
    // Dword-wide writes too (they also hit writable neighbours: fine).
    for offset in (0..SIZE)
        .step_by(4)
        .filter(|&o| !(0..4).any(|i| writable(o + i)))
    {
        cfg_write(&mut d, offset as u64, 4, 0xffff_ffff);
    }
    let mut after = [0u8; SIZE];
    d.config_read(0, &mut after);
    assert_eq!(before, after);
    // Undefined space reads 0.
    assert!(after[0x60..].iter().all(|&b| b == 0));
    assert!(after[0x24..0x2c].iter().all(|&b| b == 0));
}

#[test]
fn command_register_writable_bits() {
    let mut d = device();
    assert_eq!(cfg_read(&mut d, COMMAND as u64, 2), 0);
    assert!(!d.memory_decode_enabled());
    // A dword write also hits status, which must stay read-only.
    cfg_write(&mut d, COMMAND as u64, 4, 0xffff_ffff);
    assert_eq!(
        cfg_read(&mut d, COMMAND as u64, 2),
        u64::from(COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE)
    );
    assert_eq!(
        cfg_read(&mut d, STATUS as u64, 2),
        u64::from(STATUS_CAP_LIST)
    );
    assert!(d.memory_decode_enabled());
    assert!(d.bus_master_enabled());
    cfg_write(&mut d, COMMAND as u64, 2, u64::from(COMMAND_BUS_MASTER));
    assert!(!d.memory_decode_enabled());
    assert!(d.bus_master_enabled());
    // Byte write to the high byte reaches INTx disable only.
    cfg_write(&mut d, COMMAND as u64 + 1, 1, 0xff);
    assert_eq!(
        cfg_read(&mut d, COMMAND as u64, 2),
        u64::from(COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE)
    );
    cfg_write(&mut d, COMMAND as u64, 1, u64::from(COMMAND_MEMORY));
    assert!(d.memory_decode_enabled());
}

#[test]
fn bar0_sizing_and_programming() {
    let mut d = device();
    let bar0 = bar_offset(abi::REGS_BAR) as u64;
    assert_eq!(cfg_read(&mut d, bar0, 4), 0);
    assert_eq!(d.bar_address(0), None);
    cfg_write(&mut d, bar0, 4, 0xffff_ffff);
    let mask = cfg_read(&mut d, bar0, 4) as u32;
    // 32-bit, non-prefetchable memory: type bits zero.
    assert_eq!(mask & 0xf, 0);
    assert_eq!(u64::from(!(mask & !0xf)) + 1, abi::REGS_BAR_SIZE);
    // Only address bits stick.
    cfg_write(&mut d, bar0, 4, 0xfebf_1234);
    assert_eq!(cfg_read(&mut d, bar0, 4), 0xfebf_1000);
    assert_eq!(d.bar_address(0), Some(0xfebf_1000));
    cfg_write(&mut d, bar0, 4, 0);
    assert_eq!(d.bar_address(0), None);
}

#[test]
fn bar2_sizing_64m() {
    let mut d = device();
    let lo = bar_offset(abi::VRAM_BAR) as u64;
    let flags = u64::from(BAR_MEM_64 | BAR_PREFETCH);
    assert_eq!(flags, 0xc);
    assert_eq!(cfg_read(&mut d, lo, 4), flags);
    cfg_write(&mut d, lo, 4, 0xffff_ffff);
    cfg_write(&mut d, lo + 4, 4, 0xffff_ffff);
    let (mlo, mhi) = (
        cfg_read(&mut d, lo, 4) as u32,
        cfg_read(&mut d, lo + 4, 4) as u32,
    );
    assert_eq!(mlo, 0xfc00_000c);
    assert_eq!(mhi, 0xffff_ffff);
    assert_eq!(size_from_masks(mlo, mhi), VRAM);
}

#[test]
fn bar2_sizing_at_and_above_4g() {
    for (vram, mlo, mhi) in [
        (4u64 << 30, 0x0000_000c, 0xffff_ffff_u32),
        (8 << 30, 0x0000_000c, 0xffff_fffe),
        (DeviceConfig::MAX_VRAM, 0x0000_000c, 0xffff_fff0),
    ] {
        let mut s = space(vram);
        let lo = bar_offset(abi::VRAM_BAR);
        w32(&mut s, lo, 0xffff_ffff);
        w32(&mut s, lo + 4, 0xffff_ffff);
        assert_eq!(r32(&s, lo), mlo, "vram {vram:#x}");
        assert_eq!(r32(&s, lo + 4), mhi, "vram {vram:#x}");
        assert_eq!(size_from_masks(r32(&s, lo), r32(&s, lo + 4)), vram);
        // Program an address; bits below the BAR's alignment are dropped,
        // including all of the low dword.
        w32(&mut s, lo, 0x1234_5678);
        w32(&mut s, lo + 4, 0x0000_0041);
        assert_eq!(r32(&s, lo), 0xc);
        let expected = u64::from(0x41 & mhi) << 32;
        assert_eq!(s.bar_address(abi::VRAM_BAR), Some(expected));
    }
}

#[test]
fn bar2_programming_64bit_address() {
    let mut d = device();
    let lo = bar_offset(abi::VRAM_BAR) as u64;
    assert_eq!(d.bar_address(2), None, "type bits alone are not an address");
    cfg_write(&mut d, lo, 4, 0xc000_0000);
    cfg_write(&mut d, lo + 4, 4, 0x38);
    assert_eq!(d.bar_address(2), Some(0x38_c000_0000));
    assert_eq!(cfg_read(&mut d, lo, 8), 0x38_c000_000c);
    // Misaligned for 64 MiB: low bits dropped.
    cfg_write(&mut d, lo, 4, 0xc123_4560);
    assert_eq!(d.bar_address(2), Some(0x38_c000_0000));
    // High dword alone is a valid address.
    cfg_write(&mut d, lo, 4, 0);
    assert_eq!(d.bar_address(2), Some(0x38 << 32));
}

#[test]
fn unimplemented_bars_and_rom_read_zero() {
    let mut d = device();
    for offset in [0x14u64, 0x20, 0x24, 0x30] {
        cfg_write(&mut d, offset, 4, 0xffff_ffff);
        assert_eq!(cfg_read(&mut d, offset, 4), 0, "offset {offset:#x}");
    }
    for bar in [1, 3, 4, 5, 6, 100, usize::MAX] {
        assert_eq!(d.bar_address(bar), None);
    }
}

#[test]
fn capability_list_walk() {
    let mut d = device();
    let mut caps = Vec::new();
    let mut ptr = cfg_read(&mut d, CAPABILITIES as u64, 1);
    while ptr != 0 {
        assert!(caps.len() < 8, "capability list loops");
        assert_eq!(ptr % 4, 0);
        let id = cfg_read(&mut d, ptr, 1) as u8;
        caps.push((id, ptr));
        ptr = cfg_read(&mut d, ptr + 1, 1);
    }
    assert_eq!(
        caps,
        vec![
            (CAP_ID_VENDOR, u64::from(abi::VENDOR_CAP_OFFSET)),
            (CAP_ID_MSIX, u64::from(abi::MSIX_CAP_OFFSET))
        ]
    );

    let v = u64::from(abi::VENDOR_CAP_OFFSET);
    assert_eq!(cfg_read(&mut d, v + 2, 1), u64::from(abi::VENDOR_CAP_LEN));
    assert_eq!(
        cfg_read(&mut d, v + 3, 1),
        u64::from(abi::VENDOR_CAP_VERSION)
    );
    assert_eq!(
        cfg_read(&mut d, v + u64::from(abi::VENDOR_CAP_PAGE_SHIFT), 4),
        12
    );
    assert_eq!(
        cfg_read(&mut d, v + u64::from(abi::VENDOR_CAP_VRAM_SIZE), 8),
        VRAM
    );

    let m = u64::from(abi::MSIX_CAP_OFFSET);
    assert_eq!(cfg_read(&mut d, m + 2, 2), u64::from(abi::MSIX_VECTORS - 1));
    assert_eq!(cfg_read(&mut d, m + 4, 4), abi::MSIX_TABLE_OFFSET);
    assert_eq!(cfg_read(&mut d, m + 8, 4), abi::MSIX_PBA_OFFSET);
    // BIR (low 3 bits) names BAR0 for both.
    assert_eq!(cfg_read(&mut d, m + 4, 4) & 7, abi::REGS_BAR as u64);
}

#[test]
fn vendor_cap_carries_page_shift_and_large_vram() {
    let s = space(8 << 30);
    let v = usize::from(abi::VENDOR_CAP_OFFSET);
    assert_eq!(r32(&s, v + usize::from(abi::VENDOR_CAP_PAGE_SHIFT)), 21);
    let at = v + usize::from(abi::VENDOR_CAP_VRAM_SIZE);
    assert_eq!(r32(&s, at), 0);
    assert_eq!(r32(&s, at + 4), 2);
}

#[test]
fn msix_enable_and_function_mask() {
    let mut d = device();
    let ctl = u64::from(abi::MSIX_CAP_OFFSET) + 2;
    assert!(!d.msix().enabled());
    cfg_write(&mut d, ctl, 2, 0xffff);
    assert_eq!(
        cfg_read(&mut d, ctl, 2),
        u64::from(MSIX_ENABLE | MSIX_FUNCTION_MASK | (abi::MSIX_VECTORS - 1))
    );
    assert!(d.msix().enabled());
    assert!(d.msix().function_masked());
    // A byte write to the high byte alone works too.
    cfg_write(&mut d, ctl + 1, 1, u64::from(MSIX_ENABLE >> 8));
    assert!(d.msix().enabled());
    assert!(!d.msix().function_masked());
    // A dword write at the cap start touches id/next (RO) and control.
    cfg_write(&mut d, ctl - 2, 4, 0);
    assert!(!d.msix().enabled());
    assert_eq!(cfg_read(&mut d, ctl - 2, 1), u64::from(CAP_ID_MSIX));
    assert_eq!(cfg_read(&mut d, ctl, 2), u64::from(abi::MSIX_VECTORS - 1));
}

#[test]
fn interrupt_line_is_rw_pin_is_zero() {
    let mut d = device();
    cfg_write(&mut d, INTERRUPT_LINE as u64, 2, 0xff0b);
    assert_eq!(cfg_read(&mut d, INTERRUPT_LINE as u64, 1), 0x0b);
    assert_eq!(cfg_read(&mut d, INTERRUPT_PIN as u64, 1), 0);
}

#[test]
fn odd_sizes_and_out_of_range() {
    let mut d = device();
    // Unaligned 3-byte read inside the header.
    let mut b = [0u8; 3];
    d.config_read(1, &mut b);
    let ids = (u32::from(abi::DEVICE_ID) << 16 | u32::from(abi::VENDOR_ID)).to_le_bytes();
    assert_eq!(b, ids[1..4]);
    assert_eq!(d.stats().bad_accesses, 0);
    // Straddling the end: in-range bytes are real, the rest 0xff.
    let mut b = [0u8; 4];
    d.config_read(254, &mut b);
    assert_eq!(b, [0, 0, 0xff, 0xff]);
    assert_eq!(d.stats().bad_accesses, 1);
    // Extended config space and absurd offsets read 0xff.
    for offset in [256u64, 0x100, 0xfff, u64::MAX, u64::MAX - 1] {
        assert_eq!(cfg_read(&mut d, offset, 4), 0xffff_ffff);
        assert_eq!(cfg_read(&mut d, offset, 2), 0xffff);
    }
    // Writes out there are dropped without touching anything.
    let mut before = [0u8; SIZE];
    d.config_read(0, &mut before);
    cfg_write(&mut d, 256, 4, 0);
    cfg_write(&mut d, u64::MAX, 8, 0);
    d.config_write(0, &[]);
    let mut after = [0u8; SIZE];
    d.config_read(0, &mut after);
    assert_eq!(before, after);
    // A long write spanning all of config space only changes writable bits.
    d.config_write(0, &[0xff; 300]);
    assert_eq!(cfg_read(&mut d, 0, 2), u64::from(abi::VENDOR_ID));
    assert!(d.memory_decode_enabled());
    let stats = d.stats();
    assert!(stats.config_reads >= 10 && stats.config_writes >= 4);
}
