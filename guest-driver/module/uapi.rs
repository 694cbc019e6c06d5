// SPDX-License-Identifier: GPL-2.0

//! The char device's ioctl ABI, the kernel's copy of `abi/src/uapi.rs` (crate `rangefault-abi`);
//! change both. That crate's `tests/kernel_mirror.rs` compiles this file on the host and fails
//! on any request number, size or field offset that differs.

use kernel::{
    ioctl::{_IO, _IOR, _IOW},
    transmute::AsBytes,
};

/// The ioctl type byte ("magic") of every request.
pub(crate) const IOC_TYPE: u32 = b'r' as u32;

/// `RANGEFAULT_IOC_INFO`: what the device is and how the driver maps it.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Info {
    pub(crate) vram_size: u64,
    pub(crate) page_size: u64,
    pub(crate) bar2_phys: u64,
    /// [`crate::window::Strategy`] as its raw value.
    pub(crate) strategy: u32,
    /// [`crate::shared::State`] as its raw value.
    pub(crate) state: u32,
    /// Strategies this driver and kernel serve: bit `n` set for raw strategy `n` (`range-mm`
    /// only where the kernel has `vmf_insert_range`).
    pub(crate) strategies: u32,
    pub(crate) _reserved: u32,
}

/// `RANGEFAULT_IOC_STATS`: counters since load or the last `RESET_STATS`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    /// Faults that inserted entries, by the largest level inserted: PTEs only. For `range-mm`
    /// the kernel reports what it inserted, so a fault that lost a race counts in
    /// `already_mapped` instead; the stock inserts cannot say whether the entry was there, so
    /// for the other strategies this counts `fault` calls that returned NOPAGE.
    pub(crate) faults_pte: u64,
    /// Faults that inserted PMD (2 MiB) leaves and no PUD (same caveat as `faults_pte`).
    pub(crate) faults_pmd: u64,
    /// Faults that inserted a PUD (1 GiB) leaf (same caveat as `faults_pte`).
    pub(crate) faults_pud: u64,
    /// `huge_fault` calls answered with VM_FAULT_FALLBACK.
    pub(crate) fallbacks: u64,
    /// PTEs inserted (stock strategies: `vmf_insert_pfn` calls, present entries included).
    pub(crate) pte_inserts: u64,
    /// Bytes covered by the entries inserted.
    pub(crate) bytes_inserted: u64,
    /// Times every user mapping was zapped (disable, unbind).
    pub(crate) zaps: u64,
    /// Faults refused with SIGBUS (device disabled or gone).
    pub(crate) sigbus: u64,
    /// Every call of `fault` and `huge_fault`, whatever came of it.
    pub(crate) handler_calls: u64,
    /// `range-mm` handler calls that inserted nothing because the window was mapped already (a
    /// racing thread inserted it, or a write fault upgraded a read-only leaf).
    pub(crate) already_mapped: u64,
    /// PMD leaves inserted.
    pub(crate) pmd_inserts: u64,
    /// PUD leaves inserted.
    pub(crate) pud_inserts: u64,
}

/// `RANGEFAULT_IOC_CHECK`: ask the device to verify, from the host, the page-table entries this
/// process has for `[va, va + len)` of one of its mappings of the device.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct CheckArgs {
    // In.
    pub(crate) va: u64,
    pub(crate) len: u64,
    /// Added to the offset the VMA really maps (non-zero only to prove the check can fail).
    pub(crate) offset_delta: i64,
    /// Strategy to expect; `u32::MAX` means the current one.
    pub(crate) strategy: u32,
    /// `1`: every page must be present.
    pub(crate) require_present: u32,
    // Out (the device's summary registers).
    pub(crate) status: u32,
    pub(crate) memtype: u32,
    pub(crate) pages: u32,
    pub(crate) present: u32,
    pub(crate) leaves_4k: u32,
    pub(crate) leaves_2m: u32,
    pub(crate) leaves_1g: u32,
    pub(crate) mismatch_kind: u32,
    pub(crate) mismatch_va: u64,
    pub(crate) seq: u32,
    /// Pages mapped correctly by leaves smaller than the largest the strategy allows there.
    pub(crate) smaller_pages: u32,
}

// SAFETY: `repr(C)`, fields ordered so that there is no padding (8,8,8 then 4-byte pairs, then
// 8, then two 4-byte fields): every byte is initialised.
unsafe impl AsBytes for CheckArgs {}
// SAFETY: as above; any bit pattern is a valid value of each field.
unsafe impl kernel::transmute::FromBytes for CheckArgs {}

// SAFETY: `repr(C)` structs of `u64`s and four trailing `u32`s: no padding, every byte initialised.
unsafe impl AsBytes for Info {}
// SAFETY: `repr(C)` struct of `u64`s only: no padding.
unsafe impl AsBytes for Stats {}

pub(crate) const INFO: u32 = _IOR::<Info>(IOC_TYPE, 0);
pub(crate) const STATS: u32 = _IOR::<Stats>(IOC_TYPE, 1);
/// Argument: `u32` strategy (0 page, 1 prefault16, 2 range, 3 range-mm, 4 ttm16). Needs write access.
pub(crate) const SET_STRATEGY: u32 = _IOW::<u32>(IOC_TYPE, 2);
/// Argument: `u32`, 0 disables (zapping every mapping), 1 enables again. Needs write access and
/// CAP_SYS_ADMIN.
pub(crate) const SET_ENABLED: u32 = _IOW::<u32>(IOC_TYPE, 3);
/// Buckets of a [`LatencyLevel`]: bucket `i` counts faults that took `[2^i, 2^(i+1))` ns (bucket
/// 0 also takes 0 ns).
pub(crate) const LATENCY_BUCKETS: usize = 32;

/// One level's fault-latency histogram: bucket `i` counts faults of `[2^i, 2^(i+1))` ns.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LatencyLevel {
    pub(crate) count: u64,
    pub(crate) sum_ns: u64,
    pub(crate) max_ns: u64,
    pub(crate) buckets: [u64; LATENCY_BUCKETS],
}

/// `RANGEFAULT_IOC_LATENCY`: fault-handler latency by the level inserted (since the last
/// `RESET_STATS`).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Latency {
    pub(crate) pte: LatencyLevel,
    pub(crate) pmd: LatencyLevel,
    pub(crate) pud: LatencyLevel,
}

// SAFETY: `repr(C)` structs of `u64`s and `u64` arrays only: no padding.
unsafe impl AsBytes for LatencyLevel {}
// SAFETY: `repr(C)` struct of three `LatencyLevel`s (multiples of 8 bytes): no padding.
unsafe impl AsBytes for Latency {}

pub(crate) const RESET_STATS: u32 = _IO(IOC_TYPE, 4);
pub(crate) const LATENCY: u32 = _IOR::<Latency>(IOC_TYPE, 6);
pub(crate) const CHECK: u32 = kernel::ioctl::_IOWR::<CheckArgs>(IOC_TYPE, 5);
