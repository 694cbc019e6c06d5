//! The fault-count scenario: for each strategy, touch N bytes of a fresh, aligned mapping and
//! check that the driver served exactly the number of faults the documented formula predicts,
//! that `ru_minflt` agrees, and that data crosses the mapping both ways.

use std::time::Instant;

use rangefault_abi::uapi::FaultWindow;
use rangefault_abi::{pattern, selftest};
pub use rangefault_report::{FaultResult, TouchCost, TouchResult, WrongExpectation};

use crate::phase::Phase;
use crate::regs::Registers;
use crate::uapi::{Device, Stats, Strategy};
use crate::vmap::{minor_faults, DeviceMapping};
use crate::ProbeError;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const PAGE: u64 = 4 * KIB;
/// Window checked byte for byte in each direction.
const DATA_WINDOW: u64 = 64 * KIB;
/// Other minor faults the probe itself may take while touching (stack, heap): none expected, a
/// few tolerated.
const MINFLT_SLACK: u64 = 16;

/// Bytes one fault maps under `strategy` on a mapping whose VA is `va_align`-aligned.
///
/// This is the README's fault table: with the stock exports one fault inserts one PUD, one PMD,
/// or the PTEs of a window inside one 2 MiB block; `range-mm` maps the whole device page (at
/// most 4 MiB of PTEs where VA and offset are not 2 MiB congruent, the driver's clamp).
pub fn bytes_per_fault(strategy: Strategy, page_size: u64, va_align: u64) -> u64 {
    match strategy {
        // A VA not aligned like the device page leaves only the smaller leaves.
        Strategy::Range if page_size >= GIB && va_align < GIB => 2 * MIB,
        Strategy::RangeMm if va_align < 2 * MIB => page_size.min(4 * MIB),
        // Aligned: the ABI's window, which the benchmark's model replays too.
        _ => match strategy.fault_window(page_size) {
            FaultWindow::Aligned(bytes) | FaultWindow::Forward(bytes) => bytes,
        },
    }
}

/// VA alignment for a mapping of a device with `page_size` pages: enough for its largest leaf
/// (1 GiB pages get 1 GiB, everything else at least 2 MiB, and the page size itself).
pub fn mapping_alignment(page_size: u64) -> u64 {
    if page_size >= GIB {
        GIB
    } else {
        page_size.max(2 * MIB)
    }
}

/// How much each strategy touches (enough faults to count, few enough to stay quick under TCG).
fn touched_bytes(strategy: Strategy, page_size: u64, vram_size: u64) -> u64 {
    let wanted = match strategy {
        Strategy::Page => 16 * MIB,
        Strategy::Prefault16 | Strategy::Ttm16 => 64 * MIB,
        Strategy::Range | Strategy::RangeMm => (256 * MIB).max(page_size),
    };
    wanted.min(vram_size)
}

/// Reads the first word of every 4 KiB page of `mapping` (faulting it in), handing each
/// (offset, value) to `visit`, and measures what that cost.
pub fn touch(
    device: &Device,
    mapping: &DeviceMapping,
    mut visit: impl FnMut(u64, u64),
) -> Result<TouchCost, ProbeError> {
    device.reset_stats()?;
    let minflt_before = minor_faults();
    let touching = Phase::begin("touch");
    let started = Instant::now();
    for page in (0..mapping.len as u64).step_by(PAGE as usize) {
        visit(page, mapping.read64(page as usize));
    }
    let touch_ns = started.elapsed().as_nanos() as u64;
    drop(touching);
    let minflt = minor_faults() - minflt_before;
    let stats: Stats = device.stats()?;
    let faults = stats.faults();
    let fault_latency = device.latency()?;
    let host_check = {
        let _checking = Phase::begin("check");
        device.check(mapping.va(), mapping.len, 0, None)?
    };
    Ok(TouchCost {
        faults,
        minflt,
        faults_pte: stats.faults_pte,
        faults_pmd: stats.faults_pmd,
        faults_pud: stats.faults_pud,
        fallbacks: stats.fallbacks,
        handler_calls: stats.handler_calls,
        already_mapped: stats.already_mapped,
        pte_inserts: stats.pte_inserts,
        pmd_inserts: stats.pmd_inserts,
        pud_inserts: stats.pud_inserts,
        touch_ns,
        ns_per_fault: touch_ns.checked_div(faults).unwrap_or(0),
        fault_latency,
        host_check,
    })
}

/// Asks the host to check with a wrong offset, and (where range inserted huge leaves) with the
/// leaf level of the naive strategy; both must be reported as mismatches.
fn wrong_expectations(
    device: &Device,
    mapping: &DeviceMapping,
    strategy: Strategy,
    huge: bool,
) -> Result<Vec<WrongExpectation>, ProbeError> {
    let mut cases = Vec::new();
    let check = device.check(mapping.va(), mapping.len, 4096, None)?;
    cases.push(WrongExpectation {
        name: "offset_off_by_4k".into(),
        caught: check.mismatch_kind() == Some("wrong_gpa"),
        host_check: check,
    });
    if strategy.is_range() && huge {
        let check = device.check(mapping.va(), mapping.len, 0, Some(Strategy::Page))?;
        cases.push(WrongExpectation {
            name: "expect_4k_leaves_under_huge_entries".into(),
            caught: check.mismatch_kind() == Some("wrong_size"),
            host_check: check,
        });
    }
    Ok(cases)
}

/// Runs the scenario for one strategy on a fresh mapping at VRAM offset 0.
pub fn run_one(
    device: &Device,
    regs: &Registers,
    strategy: Strategy,
) -> Result<FaultResult, ProbeError> {
    let info = device.info()?;
    let touched = touched_bytes(strategy, info.page_size, info.vram_size);
    let align = mapping_alignment(info.page_size);
    device.set_strategy(strategy)?;
    let mapping = DeviceMapping::new(device, 0, touched as usize, align as usize, 0)?;

    // Host -> guest: the device writes a pattern into VRAM before the guest ever maps it.
    let fill = regs.selftest(selftest::CMD_FILL, 0, DATA_WINDOW as u32, 0xfee1);
    let mut read_ok = true;
    let cost = touch(device, &mapping, |page, value| {
        if page < DATA_WINDOW && value != pattern::word(0xfee1, page) {
            read_ok = false;
        }
    })?;
    let huge = cost.faults_pmd + cost.faults_pud > 0;
    let wrong = wrong_expectations(device, &mapping, strategy, huge)?;

    // Guest -> host: the guest writes a window, the device checks its own copy.
    for at in (0..DATA_WINDOW).step_by(8) {
        mapping.write64(at as usize, pattern::word(0xbeef, at));
    }
    let verify = regs.selftest(selftest::CMD_VERIFY, 0, DATA_WINDOW as u32, 0xbeef);
    let faults = cost.faults;
    let minflt = cost.minflt;
    let extra_faults = device.stats()?.faults() - faults;

    let expected = touched.div_ceil(bytes_per_fault(strategy, info.page_size, align));
    let host_to_guest = fill == selftest::RESULT_PASS && read_ok;
    let guest_to_host = verify == selftest::RESULT_PASS && extra_faults == 0;
    let minflt_ok = (faults..=faults + MINFLT_SLACK).contains(&minflt);
    Ok(FaultResult {
        touch: TouchResult {
            pass: faults == expected
                && minflt_ok
                && host_to_guest
                && guest_to_host
                && cost.host_check.pass
                && wrong.iter().all(|w| w.caught),
            page_size: info.page_size,
            strategy: strategy.name().into(),
            va: format!("{:#x}", mapping.va()),
            touched_bytes: touched,
            expected_faults: expected,
            cost,
        },
        host_to_guest,
        guest_to_host,
        wrong_expectations: wrong,
        detail: format!(
            "fill result {fill}, verify result {verify}, faults after touching {extra_faults}, minflt {minflt} (driver {faults})"
        ),
    })
}

/// `faults-misaligned`: `strategy` on a mapping whose VA is 4 KiB past an aligned address, so VA
/// and BAR offset are incongruent and no huge leaf can fit. Range insertion must still map one
/// window per fault (with PTEs, windows straddling 2 MiB VA boundaries included), never fail.
pub fn run_misaligned(device: &Device, strategy: Strategy) -> Result<TouchResult, ProbeError> {
    let info = device.info()?;
    let per_fault = bytes_per_fault(strategy, info.page_size, PAGE);
    let touched = (8 * MIB).max(2 * per_fault).min(info.vram_size / 2);
    device.set_strategy(strategy)?;
    let align = mapping_alignment(info.page_size);
    let mapping = DeviceMapping::new(device, 0, touched as usize, align as usize, PAGE as usize)?;
    let cost = touch(device, &mapping, |_, _| {})?;
    let expected = touched.div_ceil(per_fault);
    let minflt_ok = (cost.faults..=cost.faults + MINFLT_SLACK).contains(&cost.minflt);
    Ok(TouchResult {
        pass: cost.faults == expected && minflt_ok && cost.host_check.pass,
        page_size: info.page_size,
        strategy: strategy.name().into(),
        va: format!("{:#x}", mapping.va()),
        touched_bytes: touched,
        expected_faults: expected,
        cost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_per_fault_is_the_abi_window_where_aligned_and_smaller_leaves_where_not() {
        use Strategy::*;
        for (strategy, page, align, bytes) in [
            (Page, 2 * MIB, 2 * MIB, PAGE),
            (Prefault16, 2 * MIB, 2 * MIB, 16 * PAGE),
            (Ttm16, 64 * KIB, 2 * MIB, 16 * PAGE),
            (Range, 64 * KIB, 2 * MIB, 64 * KIB),
            (Range, 4 * MIB, 4 * MIB, 2 * MIB),
            (Range, GIB, GIB, GIB),
            (Range, GIB, 2 * MIB, 2 * MIB),
            (RangeMm, 4 * MIB, 4 * MIB, 4 * MIB),
            (RangeMm, GIB, GIB, GIB),
            (RangeMm, 16 * MIB, PAGE, 4 * MIB),
            (RangeMm, 64 * KIB, PAGE, 64 * KIB),
        ] {
            assert_eq!(
                bytes_per_fault(strategy, page, align),
                bytes,
                "{strategy:?} page {page:#x} align {align:#x}"
            );
        }
    }
}
