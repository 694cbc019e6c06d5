//! Puts the boot vCPU where a guest expects to start: 64-bit long mode with
//! identity-mapped paging, flat segments from a small GDT and RSI pointing
//! at `boot_params` (Linux's 64-bit boot protocol, as firecracker and
//! cloud-hypervisor do it) — or plain 16-bit real mode for tiny guests.

use anyhow::{Context, Result};
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

use super::guest_ram::GuestRam;
use super::layout::{
    BOOT_STACK_TOP, GDT_ADDR, IDENTITY_MAP_END, IDT_ADDR, PDPT_ADDR, PD_ADDR, PML4_ADDR,
};

/// How the boot vCPU starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// 64-bit mode at `entry`, paging identity-maps the low 8 GiB, RSI =
    /// `rsi` (Linux: the zero page).
    Long64 { entry: u64, rsi: u64 },
    /// 16-bit real mode at 0000:`entry` (segment bases 0); only the
    /// tiny-guest tests start here.
    Real16 { entry: u16 },
}

// Control register and EFER bits.
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always set.
const RFLAGS_RESERVED: u64 = 1 << 1;

// Page-table entry bits.
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_HUGE: u64 = 1 << 7;
const PAGE_2M: u64 = 1 << 21;
const GIB: u64 = 1 << 30;

/// GDT indices (selector = index * 8).
const GDT_CODE: u16 = 1;
const GDT_DATA: u16 = 2;
const GDT_TSS: u16 = 3;

/// A GDT descriptor from (flags, base, limit), the layout of the Intel SDM
/// (flags: access byte in bits 7:0, granularity/size nibble in 15:12).
const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// Null, 64-bit code, data, and a (never loaded) TSS descriptor for TR.
const GDT: [u64; 4] = [
    0,
    gdt_entry(0xa09b, 0, 0xfffff), // code: L=1, G=1, present, exec/read, accessed
    gdt_entry(0xc093, 0, 0xfffff), // data: D/B=1, G=1, present, read/write, accessed
    gdt_entry(0x808b, 0, 0xfffff), // TSS: G=1, present, busy 32/64-bit TSS
];

/// The hidden part of a segment register, decoded from its descriptor.
fn segment(index: u16, entry: u64) -> kvm_segment {
    let bits = |shift: u32, width: u32| ((entry >> shift) & ((1 << width) - 1)) as u8;
    let granular = bits(55, 1) == 1;
    let raw_limit = ((entry >> 32) & 0x000f_0000) as u32 | (entry & 0xffff) as u32;
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    kvm_segment {
        base,
        limit: if granular {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: bits(40, 4),
        present: bits(47, 1),
        dpl: bits(45, 2),
        db: bits(54, 1),
        s: bits(44, 1),
        l: bits(53, 1),
        g: bits(55, 1),
        avl: bits(52, 1),
        unusable: u8::from(bits(47, 1) == 0),
        padding: 0,
    }
}

/// Writes the boot GDT, an empty IDT and the identity page tables.
fn write_tables(ram: &GuestRam) -> Result<()> {
    for (i, entry) in GDT.iter().enumerate() {
        ram.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))
            .context("cannot write the boot GDT")?;
    }
    ram.write_obj(0u64, GuestAddress(IDT_ADDR))
        .context("cannot write the boot IDT")?;
    // PML4[0] -> PDPT; PDPT[i] -> PD i; each PD maps 1 GiB in 2 MiB pages.
    let pd_count = IDENTITY_MAP_END / GIB;
    ram.write_obj(
        PDPT_ADDR | PTE_PRESENT | PTE_WRITABLE,
        GuestAddress(PML4_ADDR),
    )
    .context("cannot write the PML4")?;
    for pd in 0..pd_count {
        let pd_addr = PD_ADDR + pd * 0x1000;
        ram.write_obj(
            pd_addr | PTE_PRESENT | PTE_WRITABLE,
            GuestAddress(PDPT_ADDR + pd * 8),
        )
        .context("cannot write the PDPT")?;
        for i in 0..512 {
            let phys = pd * GIB + i * PAGE_2M;
            ram.write_obj(
                phys | PTE_PRESENT | PTE_WRITABLE | PTE_HUGE,
                GuestAddress(pd_addr + i * 8),
            )
            .context("cannot write a page directory")?;
        }
    }
    Ok(())
}

fn long_mode_sregs(sregs: &mut kvm_sregs) {
    let code = segment(GDT_CODE, GDT[usize::from(GDT_CODE)]);
    let data = segment(GDT_DATA, GDT[usize::from(GDT_DATA)]);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment(GDT_TSS, GDT[usize::from(GDT_TSS)]);
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (std::mem::size_of_val(&GDT) - 1) as u16;
    sregs.idt.base = IDT_ADDR;
    sregs.idt.limit = 7;
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 |= CR4_PAE;
    sregs.cr0 |= CR0_PE | CR0_ET | CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
}

fn real_mode_sregs(sregs: &mut kvm_sregs) {
    // KVM's reset state is real mode at F000:FFF0 with CS base 0xFFFF0000;
    // rebase CS to 0 so `entry` is a plain low address.
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
}

/// Sets up `vcpu` (the boot vCPU) to start in `mode`.
pub fn prepare(vcpu: &VcpuFd, ram: &GuestRam, mode: StartMode) -> Result<()> {
    let mut sregs = vcpu.get_sregs().context("KVM_GET_SREGS failed")?;
    let mut regs = kvm_regs {
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    };
    match mode {
        StartMode::Long64 { entry, rsi } => {
            write_tables(ram)?;
            long_mode_sregs(&mut sregs);
            regs.rip = entry;
            regs.rsi = rsi;
            regs.rsp = BOOT_STACK_TOP;
            regs.rbp = BOOT_STACK_TOP;
        }
        StartMode::Real16 { entry } => {
            real_mode_sregs(&mut sregs);
            regs.rip = u64::from(entry);
        }
    }
    vcpu.set_sregs(&sregs).context("KVM_SET_SREGS failed")?;
    vcpu.set_regs(&regs).context("KVM_SET_REGS failed")?;
    // x87 and SSE in their power-on state: all exceptions masked.
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).context("KVM_SET_FPU failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_decode_to_flat_segments() {
        let code = segment(GDT_CODE, GDT[1]);
        assert_eq!((code.base, code.limit), (0, 0xffff_ffff));
        assert_eq!((code.l, code.db, code.present, code.s), (1, 0, 1, 1));
        assert_eq!(code.type_, 0xb);
        assert_eq!(code.selector, 8);
        let data = segment(GDT_DATA, GDT[2]);
        assert_eq!((data.l, data.db, data.type_), (0, 1, 0x3));
        let tss = segment(GDT_TSS, GDT[3]);
        assert_eq!((tss.s, tss.type_, tss.unusable), (0, 0xb, 0));
        assert_eq!(segment(0, 0).unusable, 1);
    }
}
