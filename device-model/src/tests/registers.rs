use super::{device, reg_read, reg_write, VRAM};
use crate::abi::{self, reg, selftest};
use crate::{MsixMessage, RangefaultDevice};
use rangefault_abi::pattern;

fn r32(d: &mut RangefaultDevice, offset: u64) -> u32 {
    reg_read(d, offset, 4) as u32
}

fn w32(d: &mut RangefaultDevice, offset: u64, v: u32) {
    reg_write(d, offset, 4, u64::from(v));
}

fn run_selftest(d: &mut RangefaultDevice, cmd: u32, offset: u64, len: u32, seed: u32) -> u32 {
    w32(d, reg::SELFTEST_OFFSET_LO, offset as u32);
    w32(d, reg::SELFTEST_OFFSET_HI, (offset >> 32) as u32);
    w32(d, reg::SELFTEST_LEN, len);
    w32(d, reg::SELFTEST_SEED, seed);
    w32(d, reg::SELFTEST_CMD, cmd);
    r32(d, reg::SELFTEST_RESULT)
}

#[test]
fn identity_registers() {
    let mut d = device();
    assert_eq!(r32(&mut d, reg::MAGIC), abi::MAGIC);
    let mut magic = [0u8; 4];
    d.regs_read(reg::MAGIC, &mut magic);
    assert_eq!(&magic, b"RFLT");
    assert_eq!(r32(&mut d, reg::VERSION), abi::ABI_VERSION);
    assert_eq!(r32(&mut d, reg::VRAM_SIZE_LO), VRAM as u32);
    assert_eq!(r32(&mut d, reg::VRAM_SIZE_HI), 0);
    assert_eq!(reg_read(&mut d, reg::VRAM_SIZE_LO, 8), VRAM);
    assert_eq!(r32(&mut d, reg::PAGE_SHIFT), 12);
    assert_eq!(r32(&mut d, reg::STATUS), 0);
    assert_eq!(r32(&mut d, reg::SELFTEST_RESULT), selftest::RESULT_NONE);
}

#[test]
fn large_vram_size_registers() {
    let config = crate::DeviceConfig::new(8 << 30, 1 << 30).unwrap();
    let mut d = RangefaultDevice::new(config).unwrap();
    assert_eq!(r32(&mut d, reg::VRAM_SIZE_LO), 0);
    assert_eq!(r32(&mut d, reg::VRAM_SIZE_HI), 2);
    assert_eq!(r32(&mut d, reg::PAGE_SHIFT), 30);
}

#[test]
fn reads_of_every_size_at_every_offset() {
    let mut d = device();
    w32(&mut d, reg::SCRATCH, 0xa1b2_c3d4);
    w32(&mut d, reg::SELFTEST_SEED, 0x1122_3344);
    // Reference image of the register file from aligned dword reads.
    let mut image = Vec::new();
    for offset in (0..reg::END + 8).step_by(4) {
        image.extend_from_slice(&r32(&mut d, offset).to_le_bytes());
    }
    for len in [1usize, 2, 3, 4, 8] {
        for offset in 0..reg::END {
            let mut buf = [0u8; 8];
            d.regs_read(offset, &mut buf[..len]);
            let at = offset as usize;
            assert_eq!(
                buf[..len],
                image[at..at + len],
                "len {len} offset {offset:#x}"
            );
        }
    }
    // An 8-byte read spans two registers.
    assert_eq!(
        reg_read(&mut d, reg::MAGIC, 8),
        u64::from(abi::MAGIC) | u64::from(abi::ABI_VERSION) << 32
    );
}

#[test]
fn control_mirrors_into_status_and_scratch_reads_back() {
    let mut d = device();
    w32(&mut d, reg::CONTROL, 0xffff_ffff);
    assert_eq!(r32(&mut d, reg::CONTROL), abi::control::ENABLE);
    assert_eq!(r32(&mut d, reg::STATUS), abi::status::ENABLED);
    w32(&mut d, reg::CONTROL, 0);
    assert_eq!(r32(&mut d, reg::STATUS), 0);
    w32(&mut d, reg::SCRATCH, 0xdead_beef);
    assert_eq!(r32(&mut d, reg::SCRATCH), 0xdead_beef);
    // 8-byte aligned write = two dword writes (CONTROL, SCRATCH).
    reg_write(&mut d, reg::CONTROL, 8, 0x1234_5678_0000_0001);
    assert_eq!(r32(&mut d, reg::STATUS), abi::status::ENABLED);
    assert_eq!(r32(&mut d, reg::SCRATCH), 0x1234_5678);
    assert_eq!(d.stats().bad_accesses, 0);
}

#[test]
fn wrong_size_or_unaligned_writes_are_ignored() {
    let mut d = device();
    w32(&mut d, reg::SCRATCH, 0x1111_1111);
    let bad = [
        (reg::SCRATCH, 1),
        (reg::SCRATCH, 2),
        (reg::SCRATCH, 3),
        (reg::SCRATCH + 1, 4),
        (reg::SCRATCH + 2, 2),
        (reg::SCRATCH, 8), // 4- but not 8-aligned
        (reg::SCRATCH - 4, 5),
        (reg::SCRATCH, 16),
    ];
    for (i, (offset, len)) in bad.iter().enumerate() {
        d.regs_write(*offset, &vec![0xee; *len]);
        assert_eq!(r32(&mut d, reg::SCRATCH), 0x1111_1111, "{offset:#x}/{len}");
        assert_eq!(r32(&mut d, reg::CONTROL), 0, "{offset:#x}/{len}");
        assert_eq!(d.stats().bad_accesses, i as u64 + 1);
    }
    d.regs_write(reg::SCRATCH, &[]);
    assert_eq!(r32(&mut d, reg::SCRATCH), 0x1111_1111);
}

#[test]
fn read_only_registers_ignore_writes() {
    let mut d = device();
    let ro = [
        reg::MAGIC,
        reg::VERSION,
        reg::VRAM_SIZE_LO,
        reg::VRAM_SIZE_HI,
        reg::PAGE_SHIFT,
        reg::STATUS,
        reg::SELFTEST_RESULT,
        reg::SELFTEST_MISMATCH_AT,
    ];
    let before: Vec<u32> = ro.iter().map(|&o| r32(&mut d, o)).collect();
    for &o in &ro {
        w32(&mut d, o, 0xffff_ffff);
    }
    let after: Vec<u32> = ro.iter().map(|&o| r32(&mut d, o)).collect();
    assert_eq!(before, after);
    assert_eq!(d.stats().bad_accesses, ro.len() as u64);
    // The command doorbell is write-only.
    assert_eq!(r32(&mut d, reg::SELFTEST_CMD), 0);
}

#[test]
fn unknown_offsets_read_zero_and_ignore_writes() {
    let mut d = device();
    let unknown = [
        reg::END,
        0xfc,
        abi::check::END,
        0x7fc,
        abi::MSIX_TABLE_OFFSET + 16 * u64::from(abi::MSIX_VECTORS),
        abi::MSIX_PBA_OFFSET + 8,
        abi::REGS_BAR_SIZE - 4,
    ];
    for (i, &offset) in unknown.iter().enumerate() {
        w32(&mut d, offset, 0xffff_ffff);
        reg_write(&mut d, offset & !7, 8, u64::MAX);
        assert_eq!(r32(&mut d, offset), 0, "{offset:#x}");
        assert!(d.stats().bad_accesses >= 3 * (i as u64 + 1));
    }
    // Beyond the BAR and at overflowing offsets: reads 0, never panics.
    for offset in [
        abi::REGS_BAR_SIZE,
        0x1_0000,
        u64::MAX,
        u64::MAX - 3,
        u64::MAX - 7,
    ] {
        assert_eq!(reg_read(&mut d, offset, 8), 0);
        w32(&mut d, offset & !3, 1);
        reg_write(&mut d, offset & !7, 8, 1);
    }
    // Straddling the BAR end: defined bytes are real, the rest 0.
    assert_eq!(reg_read(&mut d, abi::REGS_BAR_SIZE - 2, 4), 0);
    // Defined registers were untouched by all of this.
    assert_eq!(r32(&mut d, reg::CONTROL), 0);
    assert_eq!(r32(&mut d, reg::SCRATCH), 0);
}

#[test]
fn selftest_fill_then_verify_passes() {
    let mut d = device();
    let (offset, len, seed) = (0x10_0003u64, 0x2345u32, 0xfeed);
    assert_eq!(
        run_selftest(&mut d, selftest::CMD_FILL, offset, len, seed),
        selftest::RESULT_PASS
    );
    let mut buf = vec![0u8; len as usize];
    d.vram().read_at(offset, &mut buf).unwrap();
    assert_eq!(pattern::first_mismatch(seed, offset, &buf), None);
    // Bytes just outside the window are untouched.
    let mut edge = [0u8; 1];
    d.vram().read_at(offset - 1, &mut edge).unwrap();
    assert_eq!(edge, [0]);
    d.vram()
        .read_at(offset + u64::from(len), &mut edge)
        .unwrap();
    assert_eq!(edge, [0]);
    assert_eq!(
        run_selftest(&mut d, selftest::CMD_VERIFY, offset, len, seed),
        selftest::RESULT_PASS
    );
    assert_eq!(r32(&mut d, reg::SELFTEST_MISMATCH_AT), 0);
    // A sub-window verifies on its own; another seed does not.
    assert_eq!(
        run_selftest(&mut d, selftest::CMD_VERIFY, offset + 5, 100, seed),
        selftest::RESULT_PASS
    );
    assert_eq!(
        run_selftest(&mut d, selftest::CMD_VERIFY, offset, len, seed + 1),
        selftest::RESULT_MISMATCH
    );
    assert_eq!(d.stats().selftests_run, 4);
}

#[test]
fn selftest_reports_first_corrupt_byte_across_chunks() {
    let mut d = device();
    // Spans several 1 MiB chunks and ends at the end of VRAM.
    let len = 3u32 << 20;
    let offset = VRAM - u64::from(len);
    assert_eq!(
        run_selftest(&mut d, selftest::CMD_FILL, offset, len, 7),
        selftest::RESULT_PASS
    );
    for rel in [0u64, 1, (1 << 20) + 17, u64::from(len) - 1] {
        let mut b = [0u8; 1];
        d.vram().read_at(offset + rel, &mut b).unwrap();
        d.vram().write_at(offset + rel, &[b[0] ^ 0x80]).unwrap();
        assert_eq!(
            run_selftest(&mut d, selftest::CMD_VERIFY, offset, len, 7),
            selftest::RESULT_MISMATCH
        );
        assert_eq!(u64::from(r32(&mut d, reg::SELFTEST_MISMATCH_AT)), rel);
        d.vram().write_at(offset + rel, &b).unwrap();
    }
    assert_eq!(
        run_selftest(&mut d, selftest::CMD_VERIFY, offset, len, 7),
        selftest::RESULT_PASS
    );
    assert_eq!(r32(&mut d, reg::SELFTEST_MISMATCH_AT), 0);
}

#[test]
fn selftest_bad_args() {
    let mut d = device();
    let cases = [
        (selftest::CMD_FILL, 0, 0),              // empty
        (selftest::CMD_VERIFY, 0, 0),            // empty
        (selftest::CMD_FILL, VRAM - 4, 5),       // one byte past the end
        (selftest::CMD_FILL, VRAM, 1),           // at the end
        (selftest::CMD_VERIFY, 1 << 32, 16),     // high dword beyond VRAM
        (selftest::CMD_FILL, u64::MAX - 3, 16),  // offset + len overflows
        (selftest::CMD_FILL, 0, (64 << 20) + 1), // longer than a synchronous test may run
        (0, 0, 16),                              // unknown commands
        (3, 0, 16),
        (0xffff_ffff, 0, 16),
    ];
    for (cmd, offset, len) in cases {
        assert_eq!(
            run_selftest(&mut d, cmd, offset, len, 1),
            selftest::RESULT_BAD_ARGS,
            "cmd {cmd} offset {offset:#x} len {len}"
        );
    }
    // Nothing was written by the rejected fills.
    let mut tail = [0u8; 16];
    d.vram().read_at(VRAM - 16, &mut tail).unwrap();
    assert_eq!(tail, [0; 16]);
    let mut head = [0u8; 16];
    d.vram().read_at(0, &mut head).unwrap();
    assert_eq!(head, [0; 16]);
    // The window registers read back, including a 64-bit offset.
    assert_eq!(reg_read(&mut d, reg::SELFTEST_OFFSET_LO, 8), 0);
    w32(&mut d, reg::SELFTEST_OFFSET_HI, 0xabcd);
    assert_eq!(r32(&mut d, reg::SELFTEST_OFFSET_HI), 0xabcd);
    assert_eq!(d.stats().selftests_run, cases.len() as u64);
}

#[test]
fn msix_table_and_pba_through_bar0() {
    let mut d = device();
    let t = abi::MSIX_TABLE_OFFSET;
    // Vectors come out of reset masked.
    assert_eq!(r32(&mut d, t + 12), 1);
    w32(&mut d, t + 16, 0xfee0_1000);
    w32(&mut d, t + 20, 0x1);
    w32(&mut d, t + 24, 0x4022);
    w32(&mut d, t + 28, 0);
    assert_eq!(reg_read(&mut d, t + 16, 8), 0x1_fee0_1000);
    let v = d.msix().vector(1).unwrap();
    assert_eq!(
        (v.address, v.data, v.masked),
        (0x1_fee0_1000, 0x4022, false)
    );
    // Enable MSI-X in config space.
    let ctl = u64::from(abi::MSIX_CAP_OFFSET) + 2;
    d.config_write(ctl, &0x8000u16.to_le_bytes());
    assert!(d.msix().enabled());
    let msg = MsixMessage {
        address: 0x1_fee0_1000,
        data: 0x4022,
    };
    assert_eq!(d.signal_msix(1), Some(msg));
    // Mask the vector with an 8-byte write of data + control: pending shows
    // in the PBA, which the guest cannot write.
    reg_write(&mut d, t + 24, 8, 0x1_0000_4022);
    assert_eq!(d.signal_msix(1), None);
    assert_eq!(r32(&mut d, abi::MSIX_PBA_OFFSET), 0b10);
    w32(&mut d, abi::MSIX_PBA_OFFSET, 0);
    assert_eq!(r32(&mut d, abi::MSIX_PBA_OFFSET), 0b10);
    assert!(d.take_msix_deliverable().is_empty());
    w32(&mut d, t + 28, 0);
    assert_eq!(d.take_msix_deliverable(), vec![(1, msg)]);
    assert_eq!(reg_read(&mut d, abi::MSIX_PBA_OFFSET, 8), 0);
    // Vector 0 was never unmasked.
    assert_eq!(d.signal_msix(0), None);
    assert!(d.msix().is_pending(0));
    assert_eq!(d.signal_msix(abi::MSIX_VECTORS), None);
}
