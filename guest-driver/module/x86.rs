// SPDX-License-Identifier: GPL-2.0

//! The only place that touches x86 specifics: the PAT (the VRAM BAR's write-combining memtype
//! reservation, the `IA32_PAT` MSR), CR4, the boot CPU's feature words and the physical address
//! of a page-table root.
//!
//! Rust-for-Linux 7.2 has no abstraction for any of them; each is wrapped here once, in a small
//! safe function or type, so the rest of the driver (`check.rs`, the probe in `rangefault_main.rs`)
//! has no `unsafe` for them.

use kernel::{bindings, mm::MmWithUser, prelude::*};

/// `IA32_PAT`.
const MSR_IA32_CR_PAT: u32 = 0x277;

/// The VRAM BAR's PAT memtype reservation as write-combining, for as long as this value lives.
///
/// Every `vmf_insert_pfn*` looks the memtype up, so this is what makes user mappings WC. The BAR
/// must not also be ioremapped UC- (an overlapping UC- reservation would win), so it never is.
pub(crate) struct WriteCombining {
    start: u64,
    size: u64,
}

impl WriteCombining {
    pub(crate) fn reserve(start: u64, size: u64) -> Result<Self> {
        // SAFETY: reserves a memtype for a physical range; no memory is accessed.
        kernel::error::to_result(unsafe { bindings::arch_io_reserve_memtype_wc(start, size) })?;
        Ok(Self { start, size })
    }
}

impl Drop for WriteCombining {
    fn drop(&mut self) {
        // SAFETY: frees exactly the reservation taken in `reserve`.
        unsafe { bindings::arch_io_free_memtype_wc(self.start, self.size) };
    }
}

/// The PAT MSR (the same on every CPU; Linux programs it once at boot).
pub(crate) fn read_pat() -> Result<u64> {
    let mut pat = 0u64;
    // SAFETY: reads an architectural MSR on CPU 0 into a local; `_safe` handles a #GP.
    kernel::error::to_result(unsafe {
        bindings::rdmsrq_safe_on_cpu(0, MSR_IA32_CR_PAT, &mut pat)
    })?;
    Ok(pat)
}

/// Whether the CPU runs with 5-level paging (CR4.LA57); `__pgtable_l5_enabled` is not exported
/// to modules, and CR4 is the ground truth anyway.
pub(crate) fn five_level_paging() -> bool {
    const CR4_LA57: u64 = 1 << 12;
    let cr4: u64;
    // SAFETY: reading CR4 is allowed at CPL 0, has no side effects and touches no memory.
    unsafe { core::arch::asm!("mov {}, cr4", out(reg) cr4, options(nomem, nostack, preserves_flags)) };
    cr4 & CR4_LA57 != 0
}

/// Whether the CPU supports 1 GiB pages (X86_FEATURE_GBPAGES, word 1 bit 26 of the boot CPU's
/// capabilities), i.e. whether a PUD leaf is legal.
pub(crate) fn cpu_has_gbpages() -> bool {
    const WORD: usize = 1;
    const BIT: u32 = 26;
    // SAFETY: `boot_cpu_data` is filled in during early boot and only read afterwards.
    let word = unsafe { bindings::boot_cpu_data.__bindgen_anon_3.x86_capability[WORD] };
    word & (1 << BIT) != 0
}

/// Physical address of `mm`'s top-level page table (what CR3 holds while it runs).
pub(crate) fn page_table_root(mm: &MmWithUser) -> u64 {
    // SAFETY: `mm` is live (`MmWithUser` holds a user reference) and its `pgd` is set when the mm
    // is created and never changes; the table lives in the kernel's direct map, whose
    // virtual-to-physical offset is `page_offset_base`.
    unsafe { (*mm.as_raw()).__bindgen_anon_1.pgd as u64 - bindings::page_offset_base as u64 }
}
