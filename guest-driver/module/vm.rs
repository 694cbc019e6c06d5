// SPDX-License-Identifier: GPL-2.0

//! The only place that touches `vm_area_struct` and `vm_fault` directly, and, with `x86.rs`, the
//! only one that uses raw `bindings`.
//!
//! Rust-for-Linux 7.2 has no abstraction for `vm_operations_struct`, `vm_fault`, VM_PFNMAP,
//! `vm_page_prot` or `vm_private_data` (`VmaNew` stops short of them). As in-tree binder does, this
//! module keeps a `static` ops table and writes those fields once, during `mmap`, before the VMA
//! is visible; everything else goes through [`FaultRef`], a small safe wrapper the fault logic in
//! `fault.rs` uses without any `unsafe` of its own.
//!
//! At the end, the few kernel services outside the mm that 7.2 has no abstraction for and that
//! are not x86's: the module reference an open file holds ([`ModuleRef`]), `capable`, and the PCI
//! ID and config-space names probe needs. They are not mm, but a file of their own for three
//! small wrappers would split the driver's raw `bindings` over three files instead of two.

use kernel::ffi::{c_int, c_uint, c_ulong, c_void};
use core::marker::PhantomData;

use kernel::{
    bindings,
    error::{code::ENODEV, Result},
    mm::virt::{flags, VmaNew, VmaRef},
    pci,
    sync::{Arc, ArcBorrow},
};

use crate::shared::DeviceShared;
use crate::window::{Range, Strategy, VmaSpan, PAGE_SIZE};

/// What a VMA (and every copy of it: split, fork, mremap) faults with: the device, and the
/// strategy in force when it was mapped. Fixing the strategy per VMA means the level chosen for
/// a block depends only on the VMA and the address, never on a concurrent `SET_STRATEGY`, so two
/// threads faulting one block cannot pick different levels (a huge leaf over a PTE table, or
/// PTEs under a leaf).
pub(crate) struct VmaContext {
    pub(crate) shared: Arc<DeviceShared>,
    pub(crate) strategy: Strategy,
}

pub(crate) type VmFault = bindings::vm_fault_t;
pub(crate) const NOPAGE: VmFault = bindings::vm_fault_reason_VM_FAULT_NOPAGE;
pub(crate) const SIGBUS: VmFault = bindings::vm_fault_reason_VM_FAULT_SIGBUS;
pub(crate) const FALLBACK: VmFault = bindings::vm_fault_reason_VM_FAULT_FALLBACK;
pub(crate) const PMD_ORDER: u32 = bindings::PMD_ORDER;
pub(crate) const PUD_ORDER: u32 = bindings::PUD_ORDER;

struct VmOps(bindings::vm_operations_struct);

// SAFETY: the table is immutable function pointers; the mm core only reads it.
unsafe impl Sync for VmOps {}

static VM_OPS: VmOps = VmOps(bindings::vm_operations_struct {
    open: Some(vma_open),
    close: Some(vma_close),
    fault: Some(fault),
    huge_fault: Some(huge_fault),
    // What ptrace and /proc/PID/mem use: served from the VMA's offset, faulted in or not.
    access: Some(access),
    ..pin_init::zeroed()
});

/// The `address_space` of an open device file: every VMA mapping the file lives in it, so
/// zapping it reaches every user mapping of the device.
#[derive(PartialEq, Eq)]
pub(crate) struct AddressSpace(*mut bindings::address_space);

// SAFETY: a plain pointer to a kernel object that is only used through `zap_all`, whose caller
// guarantees it is alive; the kernel's own locking serialises the zap.
unsafe impl Send for AddressSpace {}

impl AddressSpace {
    pub(crate) fn of(file: &kernel::fs::File) -> Self {
        // SAFETY: `file` is a valid open file for the duration of this call.
        Self(unsafe { (*file.as_ptr()).f_mapping })
    }

    /// Removes every user mapping in this address space.
    ///
    /// # Safety
    ///
    /// The inode owning the address space must still be alive (e.g. an open file pins it).
    pub(crate) unsafe fn zap_all(&self) {
        // SAFETY: per the caller the address space is alive. holebegin 0 with holelen 0 means "to
        // the end"; even_cows is moot for MAP_SHARED-only mappings.
        unsafe { bindings::unmap_mapping_range(self.0, 0, 0, 1) };
    }
}

/// Whether a new VMA is a shared mapping. `VM_MAYSHARE` is the bit that says so: the kernel
/// clears `VM_SHARED` for a read-only file. The 7.2 binding of `VM_MAYSHARE` has the value of
/// `VM_MAYEXEC` (fixed by the project's kernel patches, but the module must build on stock
/// kernels too), so take the bit number instead.
pub(crate) fn is_shared_mapping(vma: &VmaNew) -> bool {
    vma.flags() & (1 << bindings::VMA_MAYSHARE_BIT) != 0
}

/// Whether `vma` is one of this driver's mappings.
pub(crate) fn is_ours(vma: &VmaRef) -> bool {
    // SAFETY: reading `vm_ops` of a VMA we have (at least read) access to.
    core::ptr::eq(unsafe { (*vma.as_ptr()).vm_ops }, &VM_OPS.0)
}

/// BAR offset of the first byte `vma` maps, if it does not overflow.
pub(crate) fn vma_offset(vma: &VmaRef) -> Option<u64> {
    // SAFETY: reading `vm_pgoff` of a VMA we have (at least read) access to.
    let pgoff = unsafe { (*vma.as_ptr()).vm_pgoff };
    u64::try_from(pgoff).ok()?.checked_mul(PAGE_SIZE)
}

/// Turns a new VMA into a write-combining PFN mapping served by this driver's fault handlers,
/// holding a reference to `context` until the VMA is closed.
pub(crate) fn setup_pfnmap(vma: &VmaNew, context: Arc<VmaContext>) {
    vma.set_io();
    vma.set_dontexpand();
    vma.set_dontdump();
    let raw = vma.as_ptr();
    // SAFETY: `VmaNew` means the VMA is being set up inside f_op->mmap and is not yet visible to
    // any other thread (mm/vma.c calls mmap_file before inserting it), so plain writes cannot
    // race. VM_PFNMAP goes with the VM_IO set above (what remap_pfn_range sets too); the ops table
    // is 'static; `vm_private_data` takes over one `Arc` reference, given back in `vma_close`.
    unsafe {
        (*raw).__bindgen_anon_2.vm_flags |= flags::PFNMAP;
        (*raw).vm_page_prot = bindings::pgprot_writecombine((*raw).vm_page_prot);
        (*raw).vm_ops = &VM_OPS.0;
        (*raw).vm_private_data = Arc::into_raw(context).cast_mut().cast::<c_void>();
    }
}

/// The context a VMA of ours refers to.
///
/// # Safety
///
/// `vma` must be one of this driver's VMAs (set up by [`setup_pfnmap`]) and stay open for `'a`.
unsafe fn context_of<'a>(vma: *mut bindings::vm_area_struct) -> ArcBorrow<'a, VmaContext> {
    // SAFETY: per the caller, `vm_private_data` holds an `Arc` reference taken in `setup_pfnmap`
    // or `vma_open`, released only in `vma_close`.
    unsafe { ArcBorrow::from_raw((*vma).vm_private_data.cast::<VmaContext>()) }
}

/// The strategy `vma` was mapped with, if it is a mapping of the device `shared` (`None` for
/// any other VMA, another rangefault device's included: its offsets mean another BAR).
pub(crate) fn strategy_of(vma: &VmaRef, shared: &DeviceShared) -> Option<Strategy> {
    if !is_ours(vma) {
        return None;
    }
    // SAFETY: `is_ours` confirmed it is our VMA, and `vma` is borrowed (so open) for the call.
    let context = unsafe { context_of(vma.as_ptr()) };
    core::ptr::eq(&*context.shared, shared).then_some(context.strategy)
}

/// Entries one `vmf_insert_range` call installed, by level (entries already present with the
/// right pfn are not counted).
#[cfg(rangefault_insert_range)]
#[derive(Clone, Copy, Default)]
pub(crate) struct RangeInserted {
    pub(crate) pud: u64,
    pub(crate) pmd: u64,
    pub(crate) pte: u64,
    /// Pages that already mapped the right pfn.
    pub(crate) present: u64,
}

/// One page fault on one of our VMAs, for the duration of the fault handler.
pub(crate) struct FaultRef<'a> {
    vmf: *mut bindings::vm_fault,
    vma: &'a VmaRef,
    context: ArcBorrow<'a, VmaContext>,
    _not_send: PhantomData<*mut ()>,
}

impl<'a> FaultRef<'a> {
    /// # Safety
    ///
    /// `vmf` is the argument of a `fault`/`huge_fault` call on one of our VMAs, valid (and its VMA
    /// locked for reading by the caller of the handler) for `'a`.
    unsafe fn from_raw(vmf: *mut bindings::vm_fault) -> Self {
        // SAFETY: per the caller, `vmf` and its VMA are valid and the VMA is read-locked (mmap
        // lock or per-VMA lock), which is what `VmaRef` requires.
        unsafe {
            let vma = (*vmf).__bindgen_anon_1.vma;
            Self {
                vmf,
                vma: VmaRef::from_raw(vma),
                context: context_of(vma),
                _not_send: PhantomData,
            }
        }
    }

    pub(crate) fn shared(&self) -> &DeviceShared {
        &self.context.shared
    }

    /// The strategy this VMA was mapped with.
    pub(crate) fn strategy(&self) -> Strategy {
        self.context.strategy
    }

    /// Page-aligned faulting address.
    pub(crate) fn address(&self) -> u64 {
        // SAFETY: `vmf` is valid for `'a` (type invariant).
        unsafe { (*self.vmf).__bindgen_anon_1.address as u64 }
    }

    /// The fault's `FAULT_FLAG_*` bits.
    pub(crate) fn flags(&self) -> u32 {
        // SAFETY: `vmf` is valid for `'a` (type invariant).
        unsafe { (*self.vmf).flags }
    }

    fn is_write(&self) -> bool {
        self.flags() & bindings::fault_flag_FAULT_FLAG_WRITE != 0
    }

    pub(crate) fn span(&self) -> VmaSpan {
        VmaSpan {
            start: self.vma.start() as u64,
            end: self.vma.end() as u64,
            // mmap checked that the offset fits (see chardev.rs).
            offset: vma_offset(self.vma).unwrap_or(0),
        }
    }

    /// Inserts one PTE at `va` (inside the VMA). Already-present entries are left alone.
    pub(crate) fn insert_pte(&self, va: u64, pfn: u64) -> VmFault {
        // SAFETY: the VMA is a VM_PFNMAP, shared mapping (mmap enforced both), read-locked for
        // `'a`; `vmf_insert_pfn` checks `va` against the VMA itself.
        unsafe { bindings::vmf_insert_pfn(self.vma.as_ptr(), va as usize, pfn as usize) }
    }

    /// Inserts the PMD leaf that holds the faulting address. Only valid from `huge_fault` with
    /// `PMD_ORDER`. The core calls that while the PMD is none, and also on a write fault to a
    /// present read-only leaf (`wp_huge_pmd`): the fault's write flag is passed through so such a
    /// fault upgrades the entry instead of returning without change and faulting forever.
    pub(crate) fn insert_pmd(&self, pfn: u64) -> VmFault {
        // SAFETY: `vmf` is valid for `'a`; we are in `huge_fault(PMD_ORDER)`.
        unsafe { bindings::vmf_insert_pfn_pmd(self.vmf, pfn as usize, self.is_write()) }
    }

    /// Inserts the PUD leaf that holds the faulting address (from `huge_fault(PUD_ORDER)` only).
    pub(crate) fn insert_pud(&self, pfn: u64) -> VmFault {
        // SAFETY: `vmf` is valid for `'a`; we are in `huge_fault(PUD_ORDER)`.
        unsafe { bindings::vmf_insert_pfn_pud(self.vmf, pfn as usize, self.is_write()) }
    }

    /// Maps `range` (inside the VMA, holding the faulting address) onto the physically
    /// contiguous pfns from `pfn` with one `vmf_insert_range` call: the mm picks the largest
    /// leaves that fit, walks the tables once and takes each table's lock once.
    #[cfg(rangefault_insert_range)]
    pub(crate) fn insert_range(&self, range: Range, pfn: u64) -> (VmFault, RangeInserted) {
        let mut count = bindings::vmf_insert_range_count::default();
        // SAFETY: `vmf` is valid for `'a` (type invariant), its VMA a VM_PFNMAP that is not a COW
        // mapping (mmap required VM_MAYSHARE) read-locked by the core for the call; the range
        // holds the faulting address and lies in the VMA (the window is clipped to it); `count`
        // is a local.
        let result = unsafe {
            bindings::vmf_insert_range(
                self.vmf,
                range.start as usize,
                pfn as usize,
                (range.len() / PAGE_SIZE) as usize,
                (*self.vma.as_ptr()).vm_page_prot,
                &mut count,
            )
        };
        let inserted = RangeInserted {
            pud: count.pud as u64,
            pmd: count.pmd as u64,
            pte: count.pte as u64,
            present: count.present as u64,
        };
        (result, inserted)
    }

    /// Removes whatever this VMA maps in `range` (used when the device went away mid-fault).
    pub(crate) fn zap(&self, range: Range) {
        self.vma
            .zap_vma_range(range.start as usize, range.len() as usize);
    }
}

/// # Safety
///
/// Called by the mm core as `vm_ops->fault` of one of our VMAs.
unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> VmFault {
    // SAFETY: the mm core passes a valid `vmf` for one of our VMAs, locked for the call.
    let fault = unsafe { FaultRef::from_raw(vmf) };
    crate::fault::map_ptes(&fault)
}

/// # Safety
///
/// Called by the mm core as `vm_ops->huge_fault` of one of our VMAs.
unsafe extern "C" fn huge_fault(vmf: *mut bindings::vm_fault, order: c_uint) -> VmFault {
    // SAFETY: as for `fault`.
    let fault = unsafe { FaultRef::from_raw(vmf) };
    crate::fault::map_huge(&fault, order)
}

/// A window of VRAM mapped write-combining into the kernel for one `access` call.
struct IoWindow {
    addr: *mut c_void,
    len: usize,
}

impl IoWindow {
    /// Maps `len` bytes of bus address `phys` (inside BAR2, whose WC memtype probe reserved).
    fn map_wc(phys: u64, len: usize) -> Option<Self> {
        // SAFETY: `phys..phys + len` lies in BAR2 (the caller checked it against VRAM); a WC
        // mapping matches the memtype reserved for the whole BAR.
        let addr = unsafe { bindings::ioremap_wc(phys, len as c_ulong) };
        (!addr.is_null()).then_some(Self { addr, len })
    }

    fn read(&self, out: &mut [u8]) {
        let len = out.len().min(self.len);
        // SAFETY: `addr` maps `self.len` bytes of I/O memory; `out` has at least `len` bytes.
        unsafe { bindings::memcpy_fromio(out.as_mut_ptr().cast(), self.addr, len) };
    }

    fn write(&self, data: &[u8]) {
        let len = data.len().min(self.len);
        // SAFETY: as for `read`, in the other direction.
        unsafe { bindings::memcpy_toio(self.addr, data.as_ptr().cast(), len) };
    }
}

impl Drop for IoWindow {
    fn drop(&mut self) {
        // SAFETY: `addr` came from `ioremap_wc` and is unmapped once, here.
        unsafe { bindings::iounmap(self.addr) };
    }
}

/// `vm_ops->access`: ptrace, `/proc/PID/mem` and friends reading or writing a mapping of ours.
/// The VMA's offset says which VRAM byte an address maps, so pages never faulted in are served
/// too (`generic_access_phys` needs a present PTE and fails with EIO otherwise). A revoked
/// device serves nothing: the access counts as a fault in flight, so revocation waits for it.
///
/// # Safety
///
/// Called by the mm core as `vm_ops->access` of one of our VMAs (held open, mmap lock held for
/// reading), with `buf` valid for `len` bytes.
unsafe extern "C" fn access(
    vma: *mut bindings::vm_area_struct,
    addr: c_ulong,
    buf: *mut c_void,
    len: c_int,
    write: c_int,
) -> c_int {
    // SAFETY: per the caller, `vma` is ours, open and read-locked for this call.
    let (vma_ref, context) = unsafe { (VmaRef::from_raw(vma), context_of(vma)) };
    // ptrace and /proc/PID/mem come here without GUP's permission checks: a read-only mapping
    // must not become a way to write VRAM (generic_access_phys refuses it the same way).
    if write != 0 && vma_ref.flags() & flags::WRITE == 0 {
        return -(bindings::EINVAL as c_int);
    }
    let shared = &context.shared;
    let _in_flight = shared.fault_started();
    if !shared.enabled() {
        return -(bindings::EIO as c_int);
    }
    let addr = addr as u64;
    let Some(offset) = vma_offset(vma_ref) else {
        return -(bindings::EIO as c_int);
    };
    let start = vma_ref.start() as u64;
    if addr < start || addr >= vma_ref.end() as u64 {
        return -(bindings::EFAULT as c_int);
    }
    let offset = offset + (addr - start);
    // One page per call, as generic_access_phys does; the core loops over the rest.
    let in_page = (PAGE_SIZE - addr % PAGE_SIZE) as usize;
    let len = (len.max(0) as usize)
        .min(in_page)
        .min((shared.geometry.vram_size.saturating_sub(offset)) as usize);
    if len == 0 {
        return 0;
    }
    let Some(window) = IoWindow::map_wc(shared.geometry.bar2_phys + offset, len) else {
        return -(bindings::ENOMEM as c_int);
    };
    // SAFETY: the core hands a kernel buffer of at least `len` bytes (we only shortened it).
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    if write != 0 {
        window.write(buf);
    } else {
        window.read(buf);
    }
    len as c_int
}

/// A VMA of ours was duplicated (fork, split, mremap): it takes its own reference.
///
/// # Safety
///
/// Called by the mm core as `vm_ops->open` with a VMA copied from one of ours.
unsafe extern "C" fn vma_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: the copy carries the original's `vm_private_data`, whose reference is still held by
    // the original VMA.
    let context: Arc<VmaContext> = unsafe { context_of(vma) }.into();
    let _ = Arc::into_raw(context);
}

/// # Safety
///
/// Called by the mm core as `vm_ops->close` of one of our VMAs, once.
unsafe extern "C" fn vma_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: gives back the reference this VMA took in `setup_pfnmap` or `vma_open`.
    drop(unsafe { Arc::from_raw((*vma).vm_private_data.cast::<VmaContext>()) });
}

// The kernel services below are not the mm's, but 7.2 has no Rust abstraction for them either and
// they are not x86's: they are wrapped here once so that raw `bindings` stay in this file and
// `x86.rs` (README, `guest-driver/module/`).

/// A reference on this module, held by every open file: Rust misc devices have no
/// `fops->owner` (Rust-for-Linux #1182), so without it `rmmod` would succeed under an open file
/// or mapping (a mapping holds its file). Dropped at the end of `release`, which leaves the
/// window C's owner-based put closes (returning from `release` into freed code); no better hook
/// exists in 7.2.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference; fails with `ENODEV` while the module is being unloaded.
    pub(crate) fn get() -> Result<Self> {
        // SAFETY: `THIS_MODULE` is this module, which is live while its code runs.
        if unsafe { bindings::try_module_get(crate::THIS_MODULE.as_ptr()) } {
            Ok(Self(()))
        } else {
            Err(ENODEV)
        }
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: gives back the reference `get` took (a `ModuleRef` exists only after a
        // successful `try_module_get`, and is dropped once).
        unsafe { bindings::module_put(crate::THIS_MODULE.as_ptr()) }
    }
}

/// Whether the calling task has CAP_SYS_ADMIN (and, as `capable` does, marks it as having used
/// the privilege). Process context only (an ioctl).
pub(crate) fn capable_sys_admin() -> bool {
    // SAFETY: called in process context, so `current` and its credentials are valid; `capable`
    // may mark the task as having used privilege, which is what it is for.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// Matches `vendor:device` with any subsystem IDs, like C's `PCI_DEVICE(vendor, device)`.
///
/// `pci::DeviceId::from_id()` would do, but it takes a `pci::Vendor`, and a `Vendor` can only be
/// named for the vendors in `pci_ids.h` (its constructor is private to the kernel crate in 7.2).
/// Our placeholder vendor 0x1234 is not among them.
pub(crate) const fn pci_device(vendor: u16, device: u16) -> pci::DeviceId {
    let any = bindings::PCI_ANY_ID as u32;
    let raw = bindings::pci_device_id {
        vendor: vendor as u32,
        device: device as u32,
        subvendor: any,
        subdevice: any,
        class: 0,
        class_mask: 0,
        // `IdArray::new()` stores the table index here.
        driver_data: 0,
        override_only: 0,
    };
    // SAFETY: `pci::DeviceId` implements `RawDeviceId` with `RawType = bindings::pci_device_id`,
    // whose safety contract makes the two layout-compatible (rust/kernel/device_id.rs). It is a
    // `#[repr(transparent)]` wrapper of `pci_device_id` that adds no invariant of its own
    // (rust/kernel/pci.rs, `DeviceId`), so every `pci_device_id` value is a valid `DeviceId`.
    // `transmute` checks at compile time that the sizes agree.
    unsafe { core::mem::transmute::<bindings::pci_device_id, pci::DeviceId>(raw) }
}

/// The standard config-space offsets and IDs (`include/uapi/linux/pci_regs.h`) the capability
/// walk in `geometry.rs` needs; 7.2's `pci::ConfigSpace` has accessors but no names for them.
pub(crate) mod pci_regs {
    use kernel::bindings;

    pub(crate) const STATUS: usize = bindings::PCI_STATUS as usize;
    pub(crate) const STATUS_CAP_LIST: u16 = bindings::PCI_STATUS_CAP_LIST as u16;
    pub(crate) const CAPABILITY_LIST: usize = bindings::PCI_CAPABILITY_LIST as usize;
    pub(crate) const CAP_LIST_NEXT: usize = bindings::PCI_CAP_LIST_NEXT as usize;
    /// Capabilities live after the standard header.
    pub(crate) const STD_HEADER_SIZEOF: usize = bindings::PCI_STD_HEADER_SIZEOF as usize;
    /// The vendor-specific capability's ID.
    pub(crate) const CAP_ID_VNDR: u32 = bindings::PCI_CAP_ID_VNDR;
}
