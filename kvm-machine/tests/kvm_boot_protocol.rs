//! The KVM engine's Linux boot path, checked with a stand-in kernel: a
//! minimal bzImage (a real setup header, a protected-mode "kernel" whose
//! 64-bit entry point is a few instructions) loaded by `Vm::load_linux`
//! exactly as a real kernel would be. The stand-in reads what the boot
//! protocol hands it (RSI = boot_params, the command line, the initramfs
//! location, the e820 map) and the BARs the VMM's "firmware" placed, and
//! reports back on the serial port and in RAM.

mod kvm_support;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iced_x86::code_asm::*;
use vm_memory::{Bytes, GuestAddress};

use device_model::{abi, DeviceConfig, RangefaultDevice};
use kvm_machine::layout::{self, MemoryMap};
use kvm_machine::{EndReason, Vm, VmConfig};
use kvm_support::{kvm_usable, Captured};

const RAM_SIZE: u64 = 128 << 20;
const VRAM_SIZE: u64 = 64 << 20;
/// Where the stand-in kernel stores what it found.
const RESULTS: u64 = 0x30_0000;
/// Where a bzImage's protected-mode part is loaded (code32_start).
const KERNEL_LOAD: u64 = 0x10_0000;
/// Its 64-bit entry point.
const STARTUP_64: u64 = KERNEL_LOAD + 0x200;

/// boot_params offsets (Documentation/arch/x86/zero-page.rst).
const BP_E820_ENTRIES: u64 = 0x1e8;
const BP_RAMDISK_IMAGE: u64 = 0x218;
const BP_RAMDISK_SIZE: u64 = 0x21c;
const BP_CMD_LINE_PTR: u64 = 0x228;
const BP_E820_TABLE: u64 = 0x2d0;

/// The stand-in kernel's 64-bit entry: prints the command line, stores
/// RSI, the initramfs location, the e820 count, BAR0's MAGIC and BAR2's
/// config value, writes a marker into VRAM at BAR2, then resets.
fn startup_64(vram_base: u64) -> Vec<u8> {
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(qword_ptr(RESULTS), rsi).unwrap();
    a.mov(eax, dword_ptr(rsi + BP_RAMDISK_IMAGE as i32))
        .unwrap();
    a.mov(qword_ptr(RESULTS + 8), rax).unwrap();
    a.mov(eax, dword_ptr(rsi + BP_RAMDISK_SIZE as i32)).unwrap();
    a.mov(qword_ptr(RESULTS + 16), rax).unwrap();
    a.movzx(eax, byte_ptr(rsi + BP_E820_ENTRIES as i32))
        .unwrap();
    a.mov(qword_ptr(RESULTS + 24), rax).unwrap();
    // The firmware placed BAR0 and enabled decode: read MAGIC.
    a.mov(rbx, layout::MMIO32_BAR_BASE).unwrap();
    a.mov(eax, dword_ptr(rbx)).unwrap();
    a.mov(qword_ptr(RESULTS + 32), rax).unwrap();
    // BAR2's high dword as programmed, via conf1.
    a.mov(
        eax,
        0x8000_0000u32 | (u32::from(kvm_machine::RANGEFAULT_SLOT) << 11) | 0x1c,
    )
    .unwrap();
    a.mov(dx, 0xcf8u32).unwrap();
    a.out(dx, eax).unwrap();
    a.mov(dx, 0xcfcu32).unwrap();
    a.in_(eax, dx).unwrap();
    a.mov(qword_ptr(RESULTS + 40), rax).unwrap();
    // VRAM through the memslot.
    a.mov(rbx, vram_base).unwrap();
    a.mov(dword_ptr(rbx), 0x1b00_7ed0u32).unwrap();
    // Print the NUL-terminated command line.
    a.mov(esi, dword_ptr(rsi + BP_CMD_LINE_PTR as i32)).unwrap();
    let mut next = a.create_label();
    let mut done = a.create_label();
    a.set_label(&mut next).unwrap();
    a.mov(al, byte_ptr(rsi)).unwrap();
    a.test(al, al).unwrap();
    a.jz(done).unwrap();
    a.mov(dx, 0x3f8u32).unwrap();
    a.out(dx, al).unwrap();
    a.inc(rsi).unwrap();
    a.jmp(next).unwrap();
    a.set_label(&mut done).unwrap();
    a.mov(al, u32::from(b'\n')).unwrap();
    a.out(dx, al).unwrap();
    a.mov(al, 0xfeu32).unwrap();
    a.mov(dx, 0x64u32).unwrap();
    a.out(dx, al).unwrap();
    a.hlt().unwrap();
    a.assemble(STARTUP_64).unwrap()
}

/// A bzImage: one setup sector after the boot sector, then the
/// protected-mode part (its 32-bit entry never runs: `hlt` filler up to
/// the 64-bit entry at +0x200).
fn bzimage(startup_64: &[u8]) -> Vec<u8> {
    const SETUP_SECTS: u8 = 1;
    let setup_len = (usize::from(SETUP_SECTS) + 1) * 512;
    let mut image = vec![0u8; setup_len];
    let mut put = |offset: usize, bytes: &[u8]| {
        image[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    put(0x1f1, &[SETUP_SECTS]);
    put(0x1fe, &0xaa55u16.to_le_bytes()); // boot_flag
    put(0x202, b"HdrS");
    put(0x206, &0x020fu16.to_le_bytes()); // boot protocol 2.15
    put(0x211, &[1]); // loadflags: LOADED_HIGH
    put(0x214, &(KERNEL_LOAD as u32).to_le_bytes()); // code32_start
    put(0x22c, &0x7fff_ffffu32.to_le_bytes()); // initrd_addr_max
    put(0x230, &0x20_0000u32.to_le_bytes()); // kernel_alignment
    put(0x236, &1u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64
    put(0x238, &2047u32.to_le_bytes()); // cmdline_size
    put(0x258, &0x100_0000u64.to_le_bytes()); // pref_address
    put(0x260, &0x20_0000u32.to_le_bytes()); // init_size
    let mut kernel = vec![0xf4u8; 0x200]; // hlt
    kernel.extend_from_slice(startup_64);
    image.extend_from_slice(&kernel);
    image
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn load_linux_follows_the_64_bit_boot_protocol() {
    if !kvm_usable("boot-protocol") {
        return;
    }
    let map = MemoryMap::new(RAM_SIZE).unwrap();
    let vram_base = map.high_bar_base(VRAM_SIZE).unwrap();
    assert_eq!(vram_base, 1 << 32, "above RAM and 4 GiB");
    let dir = tempfile::tempdir().unwrap();
    let kernel = write_file(dir.path(), "bzImage", &bzimage(&startup_64(vram_base)));
    let initramfs_bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let initramfs = write_file(dir.path(), "initramfs.cpio", &initramfs_bytes);
    let cmdline = "console=ttyS0 rdinit=/init rangefault.scenario=skeleton";

    let config = DeviceConfig::new(VRAM_SIZE, 2 << 20).unwrap();
    let device = Arc::new(Mutex::new(RangefaultDevice::new(config).unwrap()));
    let console = Captured::default();
    let mut vm = Vm::new(
        VmConfig {
            memory: RAM_SIZE,
            cpus: 2,
        },
        device.clone(),
        Box::new(console.clone()),
    )
    .unwrap();
    vm.load_linux(&kernel, &initramfs, cmdline).unwrap();
    assert_eq!(vm.vram_mapped_at(), Some(vram_base));
    let outcome = vm.run(Duration::from_secs(20)).unwrap();
    assert_eq!(outcome.reason, EndReason::GuestReset);

    let ram = vm.ram();
    let result = |slot: u64| -> u64 { ram.read_obj(GuestAddress(RESULTS + 8 * slot)).unwrap() };
    assert_eq!(
        result(0),
        layout::ZERO_PAGE_ADDR,
        "RSI points at boot_params"
    );
    let (initrd_at, initrd_len) = (result(1), result(2));
    assert_eq!(initrd_len, initramfs_bytes.len() as u64);
    assert_eq!(initrd_at % 4096, 0, "page-aligned");
    assert!(initrd_at + initrd_len <= RAM_SIZE, "inside RAM");
    assert!(
        initrd_at >= 0x100_0000 + 0x20_0000,
        "clear of the decompressed kernel"
    );
    let mut loaded = vec![0u8; initramfs_bytes.len()];
    ram.read_slice(&mut loaded, GuestAddress(initrd_at))
        .unwrap();
    assert_eq!(loaded, initramfs_bytes);
    assert_eq!(result(3), map.e820().len() as u64);
    assert_eq!(result(4), u64::from(abi::MAGIC), "BAR0 placed and decoding");
    assert_eq!(result(5), vram_base >> 32, "BAR2 placed above 4 GiB");
    let mut marker = [0u8; 4];
    device
        .lock()
        .unwrap()
        .vram()
        .read_at(0, &mut marker)
        .unwrap();
    assert_eq!(u32::from_le_bytes(marker), 0x1b00_7ed0);
    let printed = console.text();
    assert_eq!(printed, format!("{cmdline}\n"));

    // The e820 table as Linux reads it.
    for (i, entry) in map.e820().iter().enumerate() {
        let at = layout::ZERO_PAGE_ADDR + BP_E820_TABLE + 20 * i as u64;
        let addr: u64 = ram.read_obj(GuestAddress(at)).unwrap();
        let size: u64 = ram.read_obj(GuestAddress(at + 8)).unwrap();
        let kind: u32 = ram.read_obj(GuestAddress(at + 16)).unwrap();
        assert_eq!((addr, size, kind), (entry.addr, entry.size, entry.kind));
    }
    // The MP table Linux scans for, with both vCPUs.
    let mut signature = [0u8; 4];
    ram.read_slice(&mut signature, GuestAddress(layout::EBDA_ADDR))
        .unwrap();
    assert_eq!(&signature, b"_MP_");
}

#[test]
fn load_linux_rejects_what_it_cannot_boot() {
    if !kvm_usable("boot-protocol") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut image = bzimage(&[0xf4]);
    image[0x236] = 0; // no 64-bit entry point
    let kernel32 = write_file(dir.path(), "bzImage32", &image);
    let garbage = write_file(dir.path(), "garbage", &[0x55; 4096]);
    let huge_initramfs = write_file(dir.path(), "huge.cpio", &vec![0; 200 << 20]);
    let initramfs = write_file(dir.path(), "initramfs.cpio", b"070701");
    let kernel = write_file(dir.path(), "bzImage", &bzimage(&[0xf4]));

    let new_vm = || {
        let config = DeviceConfig::new(VRAM_SIZE, 2 << 20).unwrap();
        let device = Arc::new(Mutex::new(RangefaultDevice::new(config).unwrap()));
        Vm::new(
            VmConfig {
                memory: RAM_SIZE,
                cpus: 1,
            },
            device,
            Box::new(io::sink()),
        )
        .unwrap()
    };
    let error = |kernel: &Path, initramfs: &Path, cmdline: &str| {
        new_vm()
            .load_linux(kernel, initramfs, cmdline)
            .unwrap_err()
            .to_string()
    };
    assert!(error(&kernel32, &initramfs, "").contains("64-bit"));
    assert!(error(&garbage, &initramfs, "").contains("bzImage"));
    assert!(error(&kernel, &huge_initramfs, "").contains("initramfs"));
    assert!(error(&kernel, &initramfs, &"x".repeat(4096)).contains("command line"));
    assert!(error(&dir.path().join("missing"), &initramfs, "").contains("cannot open"));
}
