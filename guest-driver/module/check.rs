// SPDX-License-Identifier: GPL-2.0

//! The CHECK ioctl: has the device verify from the host, by walking this process's page tables
//! in guest RAM, that a range of one of our mappings maps what it should, at the leaf level the
//! strategy calls for, write-combining.

use kernel::{current, io::Io, prelude::*};

use crate::abi::check as reg;
use crate::shared::DeviceShared;
use crate::uapi::CheckArgs;
use crate::vm;
use crate::window::{Strategy, PAGE_SIZE};
use crate::x86;

/// Checks `[args.va, args.va + args.len)`, which may span several VMAs of ours (a split by
/// mprotect, say): each VMA's piece is checked against its own offset, and the summaries are
/// merged. A hole or a VMA that is not ours is refused.
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
    let end = args.va.checked_add(args.len).ok_or(EINVAL)?;
    let pat = x86::read_pat()?;
    let la57 = x86::five_level_paging();

    let task = current!();
    let mm = task.mm().ok_or(EINVAL)?;
    // Hold the mmap lock so no VMA can go away while the host walks its page tables. (It does
    // not exclude faults under the per-VMA lock: the caller checks a range it is not touching.)
    let locked = mm.mmap_read_lock();
    let root = x86::page_table_root(mm);

    let mut merged: Option<CheckArgs> = None;
    let mut cursor = args.va;
    while cursor < end {
        let vma = locked.vma_lookup(cursor as usize).ok_or(EINVAL)?;
        let Some(mapped_with) = vm::strategy_of(vma, shared) else {
            return Err(EINVAL);
        };
        let piece_end = end.min(vma.end() as u64);
        let offset = vm::vma_offset(vma)
            .ok_or(EINVAL)?
            .checked_add(cursor - vma.start() as u64)
            .and_then(|o| o.checked_add_signed(args.offset_delta))
            .ok_or(EINVAL)?;
        let mut flags = (requested.unwrap_or(mapped_with) as u32) << reg::STRATEGY_SHIFT;
        if la57 {
            flags |= reg::FLAG_LA57;
        }
        if args.require_present != 0 {
            flags |= reg::FLAG_REQUIRE_PRESENT;
        }
        let piece = Piece {
            root,
            va: cursor,
            len: piece_end - cursor,
            offset,
            pat,
            flags,
        };
        let result = shared.with_check_registers(|regs| piece.ask(regs)).ok_or(ENODEV)?;
        merged = Some(match merged {
            None => result,
            Some(so_far) => merge(so_far, result),
        });
        cursor = piece_end;
        // Each piece is a synchronous host walk: let a range over many VMAs be interrupted.
        if cursor < end && task.signal_pending() {
            return Err(EINTR);
        }
    }
    drop(locked);
    if let Some(result) = merged {
        // The outputs are the merged summary; the inputs stay as the caller gave them.
        *args = CheckArgs {
            va: args.va,
            len: args.len,
            offset_delta: args.offset_delta,
            strategy: args.strategy,
            require_present: args.require_present,
            ..result
        };
    }
    Ok(())
}

/// One VMA's part of a check, as the device's registers take it.
struct Piece {
    root: u64,
    va: u64,
    len: u64,
    offset: u64,
    pat: u64,
    flags: u32,
}

impl Piece {
    /// Rings the device; it walks synchronously, so the results are there when the write returns.
    fn ask(&self, regs: &crate::shared::Registers) -> CheckArgs {
        let write64 = |lo: usize, hi: usize, value: u64| {
            regs.write32(value as u32, lo);
            regs.write32((value >> 32) as u32, hi);
        };
        write64(reg::ROOT_LO, reg::ROOT_HI, self.root);
        write64(reg::VA_LO, reg::VA_HI, self.va);
        write64(reg::LEN_LO, reg::LEN_HI, self.len);
        write64(reg::OFFSET_LO, reg::OFFSET_HI, self.offset);
        write64(reg::PAT_LO, reg::PAT_HI, self.pat);
        regs.write32(self.flags, reg::FLAGS);
        regs.write32(reg::RUN, reg::DOORBELL);
        CheckArgs {
            status: regs.read32(reg::STATUS),
            pages: regs.read32(reg::PAGES),
            present: regs.read32(reg::PRESENT),
            leaves_4k: regs.read32(reg::LEAVES_4K),
            leaves_2m: regs.read32(reg::LEAVES_2M),
            leaves_1g: regs.read32(reg::LEAVES_1G),
            memtype: regs.read32(reg::MEMTYPE),
            mismatch_kind: regs.read32(reg::MISMATCH_KIND),
            mismatch_va: u64::from(regs.read32(reg::MISMATCH_VA_LO))
                | (u64::from(regs.read32(reg::MISMATCH_VA_HI)) << 32),
            seq: regs.read32(reg::SEQ),
            smaller_pages: regs.read32(reg::SMALLER_PAGES),
            ..CheckArgs::default()
        }
    }
}

/// Two consecutive pieces' summaries as one: counts add up, the first failure wins, and the
/// memory type is mixed if the pieces disagree.
fn merge(a: CheckArgs, b: CheckArgs) -> CheckArgs {
    let a_failed = a.status != reg::STATUS_PASS;
    let failed = if a_failed { &a } else { &b };
    CheckArgs {
        status: failed.status,
        mismatch_kind: failed.mismatch_kind,
        mismatch_va: failed.mismatch_va,
        // The device saturates its counts; so does the sum (a range over many VMAs).
        pages: a.pages.saturating_add(b.pages),
        present: a.present.saturating_add(b.present),
        leaves_4k: a.leaves_4k.saturating_add(b.leaves_4k),
        leaves_2m: a.leaves_2m.saturating_add(b.leaves_2m),
        leaves_1g: a.leaves_1g.saturating_add(b.leaves_1g),
        smaller_pages: a.smaller_pages.saturating_add(b.smaller_pages),
        memtype: match (a.present, b.present) {
            (0, _) => b.memtype,
            (_, 0) => a.memtype,
            _ if a.memtype == b.memtype => a.memtype,
            _ => reg::MEMTYPE_MIXED,
        },
        seq: b.seq,
        ..a
    }
}
