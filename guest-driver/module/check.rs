// SPDX-License-Identifier: GPL-2.0

//! The CHECK ioctl: has the device verify from the host, by walking this process's page tables
//! in guest RAM, that a range of one of our mappings maps what it should, at the leaf level the
//! strategy calls for, write-combining.

use kernel::{bindings, current, io::Io, prelude::*};

use crate::abi::check as reg;
use crate::shared::DeviceShared;
use crate::uapi::CheckArgs;
use crate::vm;
use crate::window::{Strategy, PAGE_SIZE};

/// `IA32_PAT`.
const MSR_IA32_CR_PAT: u32 = 0x277;

/// The PAT MSR (the same on every CPU; Linux programs it once at boot).
fn read_pat() -> Result<u64> {
    let mut pat = 0u64;
    // SAFETY: reads an architectural MSR on CPU 0 into a local; `_safe` handles a #GP.
    kernel::error::to_result(unsafe {
        bindings::rdmsrq_safe_on_cpu(0, MSR_IA32_CR_PAT, &mut pat)
    })?;
    Ok(pat)
}

/// Whether the CPU runs with 5-level paging (CR4.LA57); `__pgtable_l5_enabled` is not exported
/// to modules, and CR4 is the ground truth anyway.
fn five_level_paging() -> bool {
    const CR4_LA57: u64 = 1 << 12;
    let cr4: u64;
    // SAFETY: reading CR4 is allowed at CPL 0, has no side effects and touches no memory.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags)) };
    cr4 & CR4_LA57 != 0
}

pub(crate) fn run(shared: &DeviceShared, args: &mut CheckArgs) -> Result {
    if args.len == 0 || args.va % PAGE_SIZE != 0 || args.len % PAGE_SIZE != 0 {
        return Err(EINVAL);
    }
    // An explicit strategy must be a real one (only to prove the check can fail).
    let requested = if args.strategy == u32::MAX {
        None
    } else {
        Some(Strategy::from_raw(args.strategy).ok_or(EINVAL)?)
    };
    let pat = read_pat()?;
    let la57 = five_level_paging();

    let task = current!();
    let mm = task.mm().ok_or(EINVAL)?;
    // Hold the mmap lock so the VMA cannot go away while the host walks its page tables. (It does
    // not exclude faults under the per-VMA lock: the caller checks a range it is not touching.)
    let locked = mm.mmap_read_lock();
    let vma = locked.vma_lookup(args.va as usize).ok_or(EINVAL)?;
    let end = args.va.checked_add(args.len).ok_or(EINVAL)?;
    let Some(mapped_with) = vm::strategy_of(vma) else {
        return Err(EINVAL);
    };
    if end > vma.end() as u64 {
        return Err(EINVAL);
    }
    let strategy = requested.unwrap_or(mapped_with) as u32;
    let offset = vm::vma_offset(vma)
        .ok_or(EINVAL)?
        .checked_add(args.va - vma.start() as u64)
        .and_then(|o| o.checked_add_signed(args.offset_delta))
        .ok_or(EINVAL)?;
    // SAFETY: `mm` is live (we hold its mmap lock); `pgd` lives in the kernel's direct map, whose
    // virtual-to-physical offset is `page_offset_base`.
    let root = unsafe { (*mm.as_raw()).__bindgen_anon_1.pgd as u64 - bindings::page_offset_base as u64 };

    let mut flags = strategy << reg::STRATEGY_SHIFT;
    if la57 {
        flags |= reg::FLAG_LA57;
    }
    if args.require_present != 0 {
        flags |= reg::FLAG_REQUIRE_PRESENT;
    }
    let done = shared.with_registers(|regs| {
        let write64 = |lo: usize, hi: usize, value: u64| {
            regs.write32(value as u32, lo);
            regs.write32((value >> 32) as u32, hi);
        };
        write64(reg::ROOT_LO, reg::ROOT_HI, root);
        write64(reg::VA_LO, reg::VA_HI, args.va);
        write64(reg::LEN_LO, reg::LEN_HI, args.len);
        write64(reg::OFFSET_LO, reg::OFFSET_HI, offset);
        write64(reg::PAT_LO, reg::PAT_HI, pat);
        regs.write32(flags, reg::FLAGS);
        // The device walks synchronously: the results are there when the write returns.
        regs.write32(reg::RUN, reg::DOORBELL);
        args.status = regs.read32(reg::STATUS);
        args.pages = regs.read32(reg::PAGES);
        args.present = regs.read32(reg::PRESENT);
        args.leaves_4k = regs.read32(reg::LEAVES_4K);
        args.leaves_2m = regs.read32(reg::LEAVES_2M);
        args.leaves_1g = regs.read32(reg::LEAVES_1G);
        args.memtype = regs.read32(reg::MEMTYPE);
        args.mismatch_kind = regs.read32(reg::MISMATCH_KIND);
        args.mismatch_va = u64::from(regs.read32(reg::MISMATCH_VA_LO))
            | (u64::from(regs.read32(reg::MISMATCH_VA_HI)) << 32);
        args.seq = regs.read32(reg::SEQ);
    });
    drop(locked);
    done.ok_or(ENODEV)
}
