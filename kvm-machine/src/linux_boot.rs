//! Loads Linux for the 64-bit boot protocol (Documentation/arch/x86/boot.rst):
//! the kernel (bzImage or ELF vmlinux, via linux-loader) at 1 MiB or its
//! ELF load address, the initramfs at the top of low RAM, the command line
//! and `boot_params` with the e820 map, plus the MP table for SMP.

use std::fs::File;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::{self, bzimage::BzImage, elf::Elf, Cmdline, KernelLoader};
use vm_memory::{Bytes, GuestAddress};

use super::boot_cpu::StartMode;
use super::guest_ram::GuestRam;
use super::layout::{
    MemoryMap, CMDLINE_ADDR, CMDLINE_MAX, EBDA_ADDR, HIGH_MEMORY_START, ZERO_PAGE_ADDR,
};
use super::mptable;

/// "HdrS": the setup header magic.
const HDR_MAGIC: u32 = 0x5372_6448;
/// The boot sector magic Linux checks in `boot_flag`.
const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// type_of_loader 0xff: "undefined" boot loader.
const LOADER_UNDEFINED: u8 = 0xff;
/// xloadflags bit 0: the kernel has the 64-bit entry point at +0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// The 64-bit entry point's offset from the protected-mode kernel start.
const STARTUP_64_OFFSET: u64 = 0x200;
/// Alignment Linux wants for a relocatable kernel (ELF boot has no header
/// to say so).
const KERNEL_ALIGNMENT: u32 = 0x100_0000;
/// initrd_addr_max when no setup header says otherwise (boot protocol
/// 2.03+ kernels all accept this).
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x7fff_ffff;
const PAGE: u64 = 4096;

/// What the boot vCPU needs to start the loaded kernel.
pub struct LoadedLinux {
    pub start: StartMode,
    pub kernel_end: u64,
    pub initramfs: std::ops::Range<u64>,
}

/// Which of linux-loader's formats the file is.
fn is_elf(file: &mut File) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(0))?;
    let n = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(n == 4 && &magic == b"\x7fELF")
}

/// Loads `kernel`, `initramfs` and `cmdline` for a machine with `cpus`
/// vCPUs and RAM laid out as `map`.
pub fn load(
    ram: &GuestRam,
    map: &MemoryMap,
    cpus: u8,
    kernel: &Path,
    initramfs: &Path,
    cmdline: &str,
) -> Result<LoadedLinux> {
    let mut kernel_file =
        File::open(kernel).with_context(|| format!("cannot open {}", kernel.display()))?;
    let (entry, kernel_end, header) = if is_elf(&mut kernel_file)? {
        let loaded = Elf::load(
            ram,
            None,
            &mut kernel_file,
            Some(GuestAddress(HIGH_MEMORY_START)),
        )
        .map_err(|e| anyhow::anyhow!("cannot load ELF kernel {}: {e}", kernel.display()))?;
        (loaded.kernel_load.0, loaded.kernel_end, None)
    } else {
        let loaded = BzImage::load(
            ram,
            None,
            &mut kernel_file,
            Some(GuestAddress(HIGH_MEMORY_START)),
        )
        .map_err(|e| anyhow::anyhow!("cannot load bzImage {}: {e}", kernel.display()))?;
        let header = loaded
            .setup_header
            .context("bzImage without a setup header")?;
        let xloadflags = header.xloadflags;
        ensure!(
            xloadflags & XLF_KERNEL_64 != 0,
            "{} is not a 64-bit bzImage (no 64-bit entry point)",
            kernel.display()
        );
        // The compressed image is at 1 MiB, but it decompresses to its
        // preferred address and needs `init_size` bytes there: keep the
        // initramfs clear of both.
        let pref_address = header.pref_address;
        let decompressed_end = pref_address.saturating_add(u64::from(header.init_size));
        (
            loaded.kernel_load.0 + STARTUP_64_OFFSET,
            loaded.kernel_end.max(decompressed_end),
            Some(header),
        )
    };

    let cmdline_limit = header
        .map(|h| h.cmdline_size as usize + 1)
        .filter(|&limit| limit > 1)
        .unwrap_or(CMDLINE_MAX)
        .min(CMDLINE_MAX);
    let mut line = Cmdline::new(cmdline_limit)
        .map_err(|e| anyhow::anyhow!("kernel command line buffer: {e}"))?;
    line.insert_str(cmdline)
        .map_err(|e| anyhow::anyhow!("kernel command line {cmdline:?}: {e}"))?;
    loader::load_cmdline(ram, GuestAddress(CMDLINE_ADDR), &line)
        .map_err(|e| anyhow::anyhow!("cannot write the kernel command line: {e}"))?;
    let cmdline_len = line
        .as_cstring()
        .map_err(|e| anyhow::anyhow!("kernel command line: {e}"))?
        .as_bytes_with_nul()
        .len();

    let initrd_max = header.map_or(DEFAULT_INITRD_ADDR_MAX, |h| u64::from(h.initrd_addr_max));
    let initramfs_range = load_initramfs(ram, map, initramfs, initrd_max, kernel_end)?;

    let mut params = boot_params {
        hdr: header.unwrap_or_else(elf_setup_header),
        ..Default::default()
    };
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    params.hdr.ramdisk_image = initramfs_range.start as u32;
    params.hdr.ramdisk_size = (initramfs_range.end - initramfs_range.start) as u32;
    let e820 = map.e820();
    ensure!(e820.len() <= params.e820_table.len(), "e820 map too long");
    for (slot, entry) in params.e820_table.iter_mut().zip(&e820) {
        *slot = boot_e820_entry {
            addr: entry.addr,
            size: entry.size,
            r#type: entry.kind,
        };
    }
    params.e820_entries = e820.len() as u8;
    LinuxBootConfigurator::write_bootparams::<GuestRam>(
        &BootParams::new::<boot_params>(&params, GuestAddress(ZERO_PAGE_ADDR)),
        ram,
    )
    .map_err(|e| anyhow::anyhow!("cannot write boot_params: {e}"))?;

    let mp = mptable::build(EBDA_ADDR as u32, cpus);
    ensure!(
        EBDA_ADDR + mp.len() as u64 <= 0xa_0000,
        "MP table for {cpus} vCPUs does not fit the EBDA"
    );
    ram.write_slice(&mp, GuestAddress(EBDA_ADDR))
        .context("cannot write the MP table")?;

    Ok(LoadedLinux {
        start: StartMode::Long64 {
            entry,
            rsi: ZERO_PAGE_ADDR,
        },
        kernel_end,
        initramfs: initramfs_range,
    })
}

/// The setup header fields an ELF kernel needs (firecracker's choice).
fn elf_setup_header() -> setup_header {
    setup_header {
        boot_flag: BOOT_FLAG_MAGIC,
        header: HDR_MAGIC,
        kernel_alignment: KERNEL_ALIGNMENT,
        ..Default::default()
    }
}

/// Places the initramfs page-aligned at the top of low RAM (below
/// `initrd_max`), above the kernel.
fn load_initramfs(
    ram: &GuestRam,
    map: &MemoryMap,
    path: &Path,
    initrd_max: u64,
    kernel_end: u64,
) -> Result<std::ops::Range<u64>> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    let ceiling = map.low_ram_end().min(initrd_max.saturating_add(1));
    let Some(start) = ceiling.checked_sub(size).map(|s| s & !(PAGE - 1)) else {
        bail!(
            "initramfs {} ({size} bytes) is larger than low RAM",
            path.display()
        );
    };
    ensure!(
        start >= kernel_end,
        "initramfs {} ({size} bytes) does not fit between the kernel (ends {kernel_end:#x}) and {ceiling:#x}; give the guest more memory",
        path.display()
    );
    let len = usize::try_from(size).context("initramfs too large")?;
    ram.read_exact_volatile_from(GuestAddress(start), &mut file, len)
        .with_context(|| format!("cannot read {} into guest RAM", path.display()))?;
    Ok(start..start + size)
}
