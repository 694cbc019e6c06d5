// SPDX-License-Identifier: GPL-2.0

//! Range insertion: on a fault, map the whole window the strategy asks for.
//!
//! On a stock kernel the exported insert functions shape what one fault can do:
//! - `huge_fault(PMD_ORDER / PUD_ORDER)` may insert exactly one PMD / PUD leaf, the one holding
//!   the faulting address, and the core calls it only while that entry is none (or, on a write,
//!   to upgrade a read-only leaf). So a window larger than one leaf costs one fault per leaf (a
//!   4 MiB page: two faults, one per PMD).
//! - `fault` inserts PTEs with `vmf_insert_pfn`, which walks from the PGD and takes the PTE lock
//!   per call but skips entries already present. We insert the whole window, clipped to the
//!   faulting address's 2 MiB block: the PMD of any other block might be a leaf, and PTEs must
//!   never go under a PMD leaf. A device preferring 64 KiB pages gets 16 PTEs per fault.
//!
//! With the project's kernel patches, strategy `range-mm` does what the two paths above cannot:
//! one `vmf_insert_range` call maps the whole window, from whichever handler the core calls
//! first (every first touch of a none PMD or PUD reaches `huge_fault`, which spares the `->fault`
//! retry under the per-VMA lock), with the leaves the mm picks, one walk and one lock hold per
//! page table. The kernel says what it inserted, so the counters count exactly.
//!
//! The device may be revoked at any time (disable, unbind). We check before inserting, then again
//! after a full barrier; `DeviceShared::revoke` changes the state with a full barrier before it
//! zaps. Either the zap sees our entries, or we see the new state and zap them ourselves. Each
//! fault counts itself in flight for its whole duration, and `revoke` waits for that count to
//! drop to zero, so no entry of ours outlives an unbind (and the WC reservation with it).

use kernel::sync::{atomic::Relaxed, barrier::smp_mb};

use crate::latency::{FaultTimer, Level};
use crate::trace;
use crate::vm::{FaultRef, VmFault, FALLBACK, NOPAGE, PMD_ORDER, PUD_ORDER, SIGBUS};
use crate::window::{self, Range, Strategy, PAGE_SIZE, PMD_SIZE, PUD_SIZE};

const PAGE_SHIFT: u32 = 12;

/// Entries one handler call inserted, by level (for the stock paths: insert calls made).
#[derive(Clone, Copy, Default)]
pub(crate) struct Inserted {
    pub(crate) pte: u64,
    pub(crate) pmd: u64,
    pub(crate) pud: u64,
}

/// What one handler call did: for the counters, the latency histograms and the trace.
pub(crate) struct Outcome {
    pub(crate) result: VmFault,
    /// The level the fault counts at (`faults_pte/pmd/pud`, the histograms): its largest entry.
    /// None for a fallback, a refusal, or a window a racing thread had already mapped.
    pub(crate) level: Option<Level>,
    pub(crate) inserted: Inserted,
}

impl Outcome {
    fn uncounted(result: VmFault) -> Self {
        Self {
            result,
            level: None,
            inserted: Inserted::default(),
        }
    }
}

/// `vm_ops->fault`: inserts the PTEs of the window.
pub(crate) fn map_ptes(fault: &FaultRef<'_>) -> VmFault {
    handle(fault, 0, |fault| {
        if fault.strategy() == Strategy::RangeMm {
            return map_range_mm(fault, Handler::Fault);
        }
        map_pte_window(fault)
    })
}

/// `vm_ops->huge_fault`: inserts one PMD or PUD leaf when the strategy's window covers it and
/// VA, BAR offset and physical address are all aligned to it; otherwise falls back to smaller
/// entries (never an error).
pub(crate) fn map_huge(fault: &FaultRef<'_>, order: u32) -> VmFault {
    handle(fault, order, |fault| {
        if fault.strategy() == Strategy::RangeMm {
            return map_range_mm(fault, Handler::HugeFault);
        }
        map_huge_leaf(fault, order)
    })
}

/// Every handler call: counted, timed and traced here, in one place, around `body`. `order` is
/// 0 for `fault`, the leaf order for `huge_fault`.
fn handle(fault: &FaultRef<'_>, order: u32, body: impl FnOnce(&FaultRef<'_>) -> Outcome) -> VmFault {
    let timer = FaultTimer::start();
    trace::fault_enter(fault, order);
    let shared = fault.shared();
    let counters = &shared.counters;
    counters.handler_calls.add(1, Relaxed);
    let _in_flight = shared.fault_started();
    let outcome = if shared.enabled() {
        body(fault)
    } else {
        refuse(fault)
    };
    let ns = timer.elapsed_ns();
    if let Some(level) = outcome.level {
        let faults = match level {
            Level::Pte => &counters.faults_pte,
            Level::Pmd => &counters.faults_pmd,
            Level::Pud => &counters.faults_pud,
        };
        faults.add(1, Relaxed);
        shared.latency.record(level, ns);
    }
    trace::fault_exit(fault, &outcome, ns);
    outcome.result
}

/// The stock PTE path: the window's PTEs, one `vmf_insert_pfn` each.
fn map_pte_window(fault: &FaultRef<'_>) -> Outcome {
    let shared = fault.shared();
    let geometry = shared.geometry;
    let span = fault.span();
    let va = fault.address();
    let unit = fault.strategy().unit(geometry.page_size);
    let range = match fault.strategy() {
        Strategy::Ttm16 => window::forward_window(&span, va, unit, geometry.vram_size),
        // One page table: what does not fit there may still get a huge leaf.
        _ => window::window(&span, va, unit, geometry.vram_size)
            .intersect(Range::aligned_block(va, PMD_SIZE)),
    };

    let mut result = NOPAGE;
    let mut inserts = 0u64;
    let mut page = range.start;
    while page < range.end {
        let pfn = (geometry.bar2_phys + span.offset_of(page)) >> PAGE_SHIFT;
        inserts += 1;
        result = fault.insert_pte(page, pfn);
        if result != NOPAGE {
            break;
        }
        page += PAGE_SIZE;
    }
    let counters = &shared.counters;
    counters.pte_inserts.add(inserts, Relaxed);
    let level = if result == NOPAGE {
        counters.bytes_inserted.add(range.len(), Relaxed);
        Some(Level::Pte)
    } else {
        None
    };
    Outcome {
        result: recheck(fault, range, result),
        level,
        inserted: Inserted {
            pte: inserts,
            ..Inserted::default()
        },
    }
}

/// The stock huge path: one PMD or PUD leaf, or a fallback.
fn map_huge_leaf(fault: &FaultRef<'_>, order: u32) -> Outcome {
    let shared = fault.shared();
    let leaf_size = match order {
        PMD_ORDER => PMD_SIZE,
        PUD_ORDER => PUD_SIZE,
        _ => return fall_back(fault),
    };
    let geometry = shared.geometry;
    if fault.strategy() != Strategy::Range || geometry.page_size < leaf_size {
        return fall_back(fault);
    }
    // Without 1 GiB page support a PUD leaf's PS bit is reserved: the next access would oops.
    if leaf_size == PUD_SIZE && !geometry.gbpages {
        return fall_back(fault);
    }
    let span = fault.span();
    let va = fault.address();
    let range = window::window(&span, va, geometry.page_size, geometry.vram_size);
    let Some(leaf) = window::huge_leaf_fits(&span, range, va, leaf_size) else {
        return fall_back(fault);
    };
    let phys = geometry.bar2_phys + span.offset_of(leaf.start);
    if phys % leaf_size != 0 {
        return fall_back(fault);
    }
    let pfn = phys >> PAGE_SHIFT;
    let (result, level, inserted) = if leaf_size == PMD_SIZE {
        let inserted = Inserted {
            pmd: 1,
            ..Inserted::default()
        };
        (fault.insert_pmd(pfn), Level::Pmd, inserted)
    } else {
        let inserted = Inserted {
            pud: 1,
            ..Inserted::default()
        };
        (fault.insert_pud(pfn), Level::Pud, inserted)
    };
    if result != NOPAGE {
        return Outcome::uncounted(recheck(fault, leaf, result));
    }
    let counters = &shared.counters;
    let inserts = if leaf_size == PMD_SIZE {
        &counters.pmd_inserts
    } else {
        &counters.pud_inserts
    };
    inserts.add(1, Relaxed);
    counters.bytes_inserted.add(leaf_size, Relaxed);
    Outcome {
        result: recheck(fault, leaf, result),
        level: Some(level),
        inserted,
    }
}

/// Which handler the core called.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// `huge_fault`: the PUD or PMD was none, huge leaves are allowed.
    HugeFault,
    /// `fault`: only PTEs can go in here (THP disabled, or a PTE table exists).
    Fault,
}

/// `range-mm`, from either handler: the whole window in one `vmf_insert_range` call.
#[cfg(rangefault_insert_range)]
fn map_range_mm(fault: &FaultRef<'_>, handler: Handler) -> Outcome {
    let shared = fault.shared();
    let geometry = shared.geometry;
    let span = fault.span();
    let unit = window::range_mm_unit(&span, geometry.page_size, handler == Handler::Fault);
    let range = window::window(&span, fault.address(), unit, geometry.vram_size);
    let pfn = (geometry.bar2_phys + span.offset_of(range.start)) >> PAGE_SHIFT;
    let (result, inserted) = fault.insert_range(range, pfn);

    let counters = &shared.counters;
    counters.pte_inserts.add(inserted.pte, Relaxed);
    counters.pmd_inserts.add(inserted.pmd, Relaxed);
    counters.pud_inserts.add(inserted.pud, Relaxed);
    counters.bytes_inserted.add(
        inserted.pte * PAGE_SIZE + inserted.pmd * PMD_SIZE + inserted.pud * PUD_SIZE,
        Relaxed,
    );
    // A fault counts at the largest level it inserted; one that inserted nothing found the
    // window mapped by a racing thread (or raced with zaps more often than the kernel retries:
    // the access faults again).
    let level = if result != NOPAGE {
        None
    } else if inserted.pud > 0 {
        Some(Level::Pud)
    } else if inserted.pmd > 0 {
        Some(Level::Pmd)
    } else if inserted.pte > 0 {
        Some(Level::Pte)
    } else {
        if inserted.present > 0 {
            counters.already_mapped.add(1, Relaxed);
        }
        None
    };
    Outcome {
        result: recheck(fault, range, result),
        level,
        inserted: Inserted {
            pte: inserted.pte,
            pmd: inserted.pmd,
            pud: inserted.pud,
        },
    }
}

/// Without the kernel API no VMA gets `range-mm` (SET_STRATEGY refuses it).
#[cfg(not(rangefault_insert_range))]
fn map_range_mm(fault: &FaultRef<'_>, _handler: Handler) -> Outcome {
    refuse(fault)
}

fn fall_back(fault: &FaultRef<'_>) -> Outcome {
    fault.shared().counters.fallbacks.add(1, Relaxed);
    Outcome::uncounted(FALLBACK)
}

fn refuse(fault: &FaultRef<'_>) -> Outcome {
    Outcome::uncounted(sigbus(fault))
}

fn sigbus(fault: &FaultRef<'_>) -> VmFault {
    fault.shared().counters.sigbus.add(1, Relaxed);
    SIGBUS
}

/// After inserting `range`: if the device was revoked meanwhile, take the entries out again.
fn recheck(fault: &FaultRef<'_>, range: Range, result: VmFault) -> VmFault {
    // Pairs with the full barrier of the state change in `DeviceShared::revoke`.
    smp_mb();
    if fault.shared().enabled() {
        return result;
    }
    fault.zap(range);
    sigbus(fault)
}
