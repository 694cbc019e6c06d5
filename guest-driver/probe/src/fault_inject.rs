//! `fault-inject`: the fault paths under the kernel's fault injection (`fail_page_alloc`,
//! `failslab`), aimed at one forked child at a time, and what each failure looks like to it.
//!
//! For every strategy the driver serves, on an aligned mapping and (for `range-mm`) on one 4 KiB
//! past alignment (VA and offset incongruent: PTE windows that straddle 2 MiB blocks, so
//! `vmf_insert_range` allocates PTE tables beyond the faulting one itself), two passes:
//!
//! - **Sweep** (`/proc/self/fail-nth`, what syzkaller uses): child *n* arms `fail-nth = n`, so the
//!   *n*-th allocation that passes the attributes' filters fails, then opens the device, maps it
//!   (an anonymous reservation, then the device `MAP_FIXED` inside it), reads every page but
//!   the first of the second half, which it copies into a pipe with `write(2)` before touching
//!   the rest (a fault in kernel mode, on a new page table for the PTE strategies). It
//!   reads `fail-nth` back (0: the failure was injected) and disarms. The sweep goes on with
//!   n + 1 until a child's whole operation made fewer than n allocations: every allocation of
//!   the operation has then failed once, in order. Both attributes count (`ignore-gfp-wait=N`,
//!   since page tables and these slab objects are `GFP_KERNEL`; `fail_page_alloc/min-order=0`,
//!   since a page table is one page; `ignore-gfp-highmem` stays `Y`, so the child's own
//!   anonymous pages, `GFP_HIGHUSER`, are not failed).
//! - **Storm** (`task-filter=Y`, `/proc/<pid>/make-it-fail=1` set by the child for itself after
//!   it mapped, `probability=100`, `interval=1`, `times=STORM_TIMES` on both attributes): the
//!   child's first `STORM_TIMES` eligible allocations fail, whatever they are; then it touches
//!   and copies as above. Injected = `times` before minus `times` after (exact; debugfs
//!   decrements it once per failure). `verbose=1` also prints "FAULT_INJECTION: forcing a
//!   failure" (rate-limited, so the counters, not those lines, are the figures).
//!
//! Expected outcomes, from the 7.2 sources:
//! - `open` (the `struct file`, the driver's `OpenFile` box): `ENOMEM`; the driver undoes its
//!   open (file count, module reference), so `/sys/module/rangefault/refcnt` is back where it was.
//! - `mmap` (the VMA, maple-tree nodes, the driver's per-VMA context): `ENOMEM` (mm/vma.c
//!   allocates the VMA and the tree's nodes before it calls the driver's `mmap`).
//! - A user-mode touch: a page-table allocation failing in `__handle_mm_fault` (`pmd_alloc`),
//!   `__do_fault`'s `prealloc_pte`, the driver's `vmf_insert_pfn` (`get_locked_pte`) or
//!   `vmf_insert_range` at the faulting address returns `VM_FAULT_OOM`; x86's
//!   `do_user_addr_fault` calls `pagefault_out_of_memory`, which (no memcg OOM, no fatal signal)
//!   prints "Huh VM_FAULT_OOM leaked out to the #PF handler. Retrying PF" (rate-limited) and
//!   returns: the access faults again and succeeds once allocations do. **No signal, correct
//!   data.** A table beyond the faulting address failing inside `vmf_insert_range` is swallowed
//!   (best effort): those pages fault later. Never `SIGBUS`/`SIGSEGV` here.
//! - A kernel-mode fault (`write(2)` from the mapping into a pipe): `VM_FAULT_OOM` is fixed up
//!   (`kernelmode_fixup_or_oops`), the copy stops: `EFAULT`, or a short count; whatever was
//!   copied is the right data.
//! - Afterwards (parent): the child exited 0, the device disables and enables again, no module
//!   reference leaked, and with `kmemleak=on` a scan finds no unreferenced object.
//!
//! kmemleak: the automatic scan thread is stopped (`scan=off`), and after the last child (and
//! the object age kmemleak requires, 5 s) `scan` runs twice (the second drops transient
//! suspects) and `/sys/kernel/debug/kmemleak` must be empty. No report is filtered.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use rangefault_abi::{pattern, selftest};
use rangefault_report::{CaseResult, FaultInjectResult, KmemleakResult};

use crate::faults::mapping_alignment;
use crate::regs::Registers;
use crate::sysfs::PciFunction;
use crate::uapi::{Device, Strategy};
use crate::vmap::DeviceMapping;
use crate::ProbeError;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const PAGE: usize = 4 * KIB;
const SEED: u32 = 0xfa11;
const FAIL_PAGE_ALLOC: &str = "/sys/kernel/debug/fail_page_alloc";
const FAILSLAB: &str = "/sys/kernel/debug/failslab";
const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";
const MODULE_REFCNT: &str = "/sys/module/rangefault/refcnt";
/// The most sweep steps per case: an operation here makes a few dozen allocations (more with
/// kmemleak's own metadata); a sweep that does not finish within this fails.
const MAX_NTH: u32 = 400;
/// Failures per attribute in a storm.
const STORM_TIMES: i64 = 16;

/// One case: a strategy on a mapping `misalign` bytes past alignment.
#[derive(Clone, Copy)]
struct Case {
    strategy: Strategy,
    misalign: usize,
    len: usize,
    align: usize,
}

/// What one child saw (it serialises this onto its pipe).
#[derive(Debug, Serialize, Deserialize, Default)]
struct ChildView {
    open_errno: Option<i32>,
    map_errno: Option<i32>,
    pages_touched: u64,
    /// Words read under injection that were not the pattern.
    touch_mismatches: u64,
    /// `write(2)` of one page from the mapping: bytes written, or the errno.
    copy_bytes: Option<i64>,
    copy_errno: Option<i32>,
    copy_data_ok: bool,
    /// Sweep: `fail-nth` read back after the operation (0: the failure was injected).
    nth_left: Option<i64>,
    /// After disarming: pages whose word is not the pattern.
    verify_mismatches: u64,
    host_check_pass: Option<bool>,
    host_check: Option<crate::uapi::HostCheck>,
    error: Option<String>,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_of(e: &ProbeError) -> i32 {
    match e {
        ProbeError::Io { source, .. } => source.raw_os_error().unwrap_or(0),
        _ => 0,
    }
}

fn write_knob(dir: &str, name: &str, value: &str) -> Result<(), ProbeError> {
    let path = format!("{dir}/{name}");
    std::fs::write(&path, value).map_err(|e| ProbeError::io(path.as_ref(), e))
}

fn read_knob(dir: &str, name: &str) -> Result<String, ProbeError> {
    let path = format!("{dir}/{name}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| ProbeError::io(path.as_ref(), e))
}

const KNOBS: &[&str] = &[
    "probability",
    "interval",
    "times",
    "space",
    "verbose",
    "task-filter",
    "ignore-gfp-wait",
];

/// The injection attributes as they were, restored on drop.
struct Knobs {
    saved: Vec<(&'static str, &'static str, String)>,
}

impl Knobs {
    fn arm() -> Result<Self, ProbeError> {
        let mut saved = Vec::new();
        for dir in [FAIL_PAGE_ALLOC, FAILSLAB] {
            for &name in KNOBS {
                saved.push((dir, name, read_knob(dir, name)?));
            }
        }
        saved.push((
            FAIL_PAGE_ALLOC,
            "min-order",
            read_knob(FAIL_PAGE_ALLOC, "min-order")?,
        ));
        let knobs = Self { saved };
        for dir in [FAIL_PAGE_ALLOC, FAILSLAB] {
            write_knob(dir, "probability", "0")?;
            write_knob(dir, "interval", "1")?;
            write_knob(dir, "times", "0")?;
            write_knob(dir, "space", "0")?;
            write_knob(dir, "verbose", "1")?;
            write_knob(dir, "task-filter", "Y")?;
            write_knob(dir, "ignore-gfp-wait", "N")?;
        }
        write_knob(FAIL_PAGE_ALLOC, "min-order", "0")?;
        Ok(knobs)
    }

    /// Storm: the next `times` eligible allocations of a make-it-fail task fail.
    fn storm(&self, times: i64) -> Result<(), ProbeError> {
        for dir in [FAIL_PAGE_ALLOC, FAILSLAB] {
            write_knob(dir, "times", &times.to_string())?;
            write_knob(dir, "probability", "100")?;
        }
        Ok(())
    }

    /// Ends a storm; returns the failures left per attribute (page_alloc, slab).
    fn calm(&self) -> Result<(i64, i64), ProbeError> {
        let mut left = [0i64; 2];
        for (i, dir) in [FAIL_PAGE_ALLOC, FAILSLAB].into_iter().enumerate() {
            write_knob(dir, "probability", "0")?;
            left[i] = read_knob(dir, "times")?
                .parse()
                .map_err(|_| ProbeError::Parse(format!("{dir}/times")))?;
            write_knob(dir, "times", "0")?;
        }
        Ok((left[0], left[1]))
    }
}

impl Drop for Knobs {
    fn drop(&mut self) {
        // Probability first, so nothing is failed while the rest is restored.
        for dir in [FAIL_PAGE_ALLOC, FAILSLAB] {
            let _ = write_knob(dir, "probability", "0");
        }
        for (dir, name, value) in self.saved.iter().rev() {
            let _ = write_knob(dir, name, value);
        }
    }
}

fn refcnt() -> Result<i64, ProbeError> {
    std::fs::read_to_string(MODULE_REFCNT)
        .map_err(|e| ProbeError::io(MODULE_REFCNT.as_ref(), e))?
        .trim()
        .parse()
        .map_err(|_| ProbeError::Parse(format!("{MODULE_REFCNT}: not a number")))
}

/// How the child arms injection for itself.
enum Arm {
    /// Sweep step: `fail-nth = n` before opening the device.
    Nth(u32),
    /// Storm: `make-it-fail = 1` once mapped.
    MakeItFail,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fresh descriptors into the array, which we then own.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: errno {}", errno());
    // SAFETY: both are fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Runs one child for `case`; returns its wait status and what it reported.
fn run_child(device: &Device, case: Case, arm: Arm) -> (libc::c_int, Option<ChildView>) {
    let (rx, tx) = pipe();
    // SAFETY: the probe is single-threaded here; the child runs our own code and ends with
    // `_exit`, never returning into the parent's state.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(rx);
        let view = child(device, case, arm);
        let mut out = File::from(tx);
        let text = serde_json::to_string(&view).unwrap_or_default();
        let _ = out.write_all(text.as_bytes());
        drop(out);
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    drop(tx);
    let mut text = String::new();
    let _ = File::from(rx).read_to_string(&mut text);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    (status, serde_json::from_str(&text).ok())
}

/// The child: arm, open, map, touch, copy, disarm, verify, check.
fn child(parent_device: &Device, case: Case, arm: Arm) -> ChildView {
    let mut view = ChildView::default();
    // Everything the operation needs beyond the kernel is allocated before arming.
    let (copy_rx, copy_tx) = pipe();
    let mut copied = vec![0u8; PAGE];
    let mut fail_nth = match OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/fail-nth")
    {
        Ok(f) => f,
        Err(e) => {
            view.error = Some(format!("/proc/self/fail-nth: {e}"));
            return view;
        }
    };
    let mut make_it_fail = match OpenOptions::new()
        .write(true)
        .open("/proc/self/make-it-fail")
    {
        Ok(f) => f,
        Err(e) => {
            view.error = Some(format!("/proc/self/make-it-fail: {e}"));
            return view;
        }
    };
    if let Arm::Nth(n) = arm {
        if let Err(e) = fail_nth.write_all(n.to_string().as_bytes()) {
            view.error = Some(format!("arming fail-nth: {e}"));
            return view;
        }
    }
    let opened = match Device::open() {
        Ok(d) => Some(d),
        Err(e) => {
            view.open_errno = Some(errno_of(&e));
            None
        }
    };
    let mapping = opened.as_ref().and_then(|device| {
        match DeviceMapping::new(device, 0, case.len, case.align, case.misalign) {
            Ok(m) => Some(m),
            Err(e) => {
                view.map_errno = Some(errno_of(&e));
                None
            }
        }
    });
    if let (Some(_), Arm::MakeItFail) = (&mapping, &arm) {
        if let Err(e) = make_it_fail.write_all(b"1") {
            view.error = Some(format!("make-it-fail: {e}"));
        }
    }
    if let Some(m) = &mapping {
        // The first half by user-mode reads, then the first page of the second half (a new
        // page table under the `page`-like strategies) by a kernel-mode copy, then the rest.
        let copy_at = m.len / 2;
        let mut touch = |at: usize| {
            view.pages_touched += 1;
            if m.read64(at) != pattern::word(SEED, at as u64) {
                view.touch_mismatches += 1;
            }
        };
        (0..copy_at).step_by(PAGE).for_each(&mut touch);
        // SAFETY: `m.ptr + copy_at .. + PAGE` lies inside the live mapping; write(2) only
        // reads it.
        let n = unsafe { libc::write(copy_tx.as_raw_fd(), m.ptr.add(copy_at).cast(), PAGE) };
        if n < 0 {
            view.copy_errno = Some(errno());
        } else {
            view.copy_bytes = Some(n as i64);
        }
        (copy_at + PAGE..m.len).step_by(PAGE).for_each(&mut touch);
    }
    // Disarm.
    if let Arm::Nth(_) = arm {
        let mut text = String::with_capacity(16);
        let _ = fail_nth.seek(SeekFrom::Start(0));
        let _ = fail_nth.read_to_string(&mut text);
        view.nth_left = text.trim().parse().ok();
        let _ = fail_nth.seek(SeekFrom::Start(0));
        let _ = fail_nth.write_all(b"0");
    } else {
        let _ = make_it_fail.write_all(b"0");
    }
    let Some(m) = mapping else {
        return view;
    };
    let copied_len = view.copy_bytes.unwrap_or(0).max(0) as usize;
    drop(copy_tx);
    let mut rx = File::from(copy_rx);
    let _ = rx.read_exact(&mut copied[..copied_len]);
    view.copy_data_ok =
        pattern::first_mismatch(SEED, (m.len / 2) as u64, &copied[..copied_len]).is_none();
    view.verify_mismatches = (0..m.len)
        .step_by(PAGE)
        .filter(|&at| m.read64(at) != pattern::word(SEED, at as u64))
        .count() as u64;
    let device = opened.as_ref().unwrap_or(parent_device);
    match device.check(m.va(), m.len, 0, None) {
        Ok(host) => {
            view.host_check_pass = Some(host.pass);
            view.host_check = Some(host);
        }
        Err(e) => view.error = Some(format!("host check: {e}")),
    }
    view
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    }
}

/// Checks one child's outcome against the documented ones; adds to `r`. Returns whether the
/// failure was injected (sweep) or None when the child's report is unusable.
fn judge(
    r: &mut CaseResult,
    status: libc::c_int,
    view: Option<ChildView>,
    refcnt_before: i64,
    step: &str,
) -> Option<ChildView> {
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        r.problems
            .push(format!("{step}: child {}", describe(status)));
        return None;
    }
    let Some(v) = view else {
        r.problems.push(format!("{step}: no report from the child"));
        return None;
    };
    let mut bad = |what: String| r.problems.push(format!("{step}: {what}: {v:?}"));
    if v.error.is_some() {
        bad("child error".into());
    }
    match v.open_errno {
        None => {}
        Some(libc::ENOMEM) => r.open_enomem += 1,
        Some(e) => bad(format!("open failed with errno {e}")),
    }
    match v.map_errno {
        None => {}
        Some(libc::ENOMEM) => r.map_enomem += 1,
        Some(e) => bad(format!("mmap failed with errno {e}")),
    }
    let mapped = v.open_errno.is_none() && v.map_errno.is_none();
    if mapped {
        let mismatches = v.touch_mismatches + v.verify_mismatches;
        r.data_mismatches += mismatches;
        if mismatches != 0 {
            bad(format!("{mismatches} wrong words"));
        }
        match (v.copy_bytes, v.copy_errno) {
            (Some(n), _) if n == PAGE as i64 => {}
            (Some(_), _) => r.copy_short += 1,
            (None, Some(libc::EFAULT)) => r.copy_efault += 1,
            other => bad(format!("copy from the mapping: {other:?}")),
        }
        if !v.copy_data_ok {
            bad("the copied bytes are wrong".into());
        }
        if v.host_check_pass == Some(true) {
            r.host_checks_passed += 1;
        } else {
            bad("host check failed".into());
        }
    }
    match refcnt() {
        Ok(now) if now == refcnt_before => {}
        Ok(now) => {
            r.refcnt_leaks += 1;
            r.problems.push(format!(
                "{step}: module refcnt {refcnt_before} -> {now} after the child"
            ));
        }
        Err(e) => r.problems.push(format!("{step}: {e}")),
    }
    Some(v)
}

fn run_case(device: &Device, knobs: &Knobs, case: Case) -> Result<CaseResult, ProbeError> {
    device.set_strategy(case.strategy)?;
    let mut r = CaseResult {
        strategy: case.strategy.name().into(),
        misaligned: case.misalign != 0,
        ..CaseResult::default()
    };
    let base = refcnt()?;
    for n in 1..=MAX_NTH {
        r.sweep_steps = n;
        let (status, view) = run_child(device, case, Arm::Nth(n));
        let Some(v) = judge(&mut r, status, view, base, &format!("fail-nth {n}")) else {
            continue;
        };
        if v.nth_left != Some(0) {
            r.sweep_complete = true;
            break;
        }
        r.injected_sweep += 1;
        if v.open_errno.is_none() && v.map_errno.is_none() {
            r.touch_retried_clean += 1;
        }
    }
    if !r.sweep_complete {
        r.problems
            .push(format!("sweep not complete after {MAX_NTH} steps"));
    }
    knobs.storm(STORM_TIMES)?;
    let (status, view) = run_child(device, case, Arm::MakeItFail);
    let (page_left, slab_left) = knobs.calm()?;
    r.injected_storm_page_alloc = STORM_TIMES - page_left;
    r.injected_storm_slab = STORM_TIMES - slab_left;
    if let Some(v) = judge(&mut r, status, view, base, "storm") {
        if v.open_errno.is_some() || v.map_errno.is_some() {
            r.problems.push(format!(
                "storm: the child's setup failed before arming: {v:?}"
            ));
        }
    }
    if r.injected_storm_page_alloc + r.injected_storm_slab == 0 {
        r.problems.push("storm: nothing was injected".into());
    }
    if r.injected_sweep == 0 {
        r.problems.push("sweep: nothing was injected".into());
    }
    r.pass = r.problems.is_empty();
    Ok(r)
}

/// kmemleak's verdict as a result line (`scenario: kmemleak`); it scans only where
/// `kmemleak=on` was given (else it passes, saying so).
pub fn kmemleak_verdict(wait_for_age: bool) -> KmemleakResult {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if !cmdline.split_whitespace().any(|a| a == "kmemleak=on") {
        return KmemleakResult {
            pass: true,
            enabled: false,
            clean: None,
            scan_ms: None,
            report: "boot without kmemleak=on".into(),
        };
    }
    if wait_for_age {
        // kmemleak reports only objects older than 5 s (jiffies_min_age).
        std::thread::sleep(Duration::from_secs(6));
    }
    let started = Instant::now();
    let failed = |report: String| KmemleakResult {
        pass: false,
        enabled: true,
        clean: Some(false),
        scan_ms: None,
        report,
    };
    for _ in 0..2 {
        if let Err(e) = std::fs::write(KMEMLEAK, "scan") {
            return failed(format!("scan: {e}"));
        }
    }
    let report = match std::fs::read_to_string(KMEMLEAK) {
        Ok(text) => text,
        Err(e) => return failed(format!("read: {e}")),
    };
    // The report goes into the result with its marker defused, so the console scan flags
    // kmemleak's own "suspected memory leaks" line, not this copy of it.
    let clean = report.trim().is_empty();
    KmemleakResult {
        pass: clean,
        enabled: true,
        clean: Some(clean),
        scan_ms: Some(started.elapsed().as_millis() as u64),
        report: report.replace("unreferenced object", "unreferenced-object"),
    }
}

/// Stops kmemleak's periodic scan (its own prints would land at random times).
pub fn kmemleak_manual() {
    let _ = std::fs::write(KMEMLEAK, "scan=off");
}

pub fn run() -> Result<FaultInjectResult, ProbeError> {
    let started = Instant::now();
    let function = PciFunction::find()?;
    let regs = Registers::open(&function)?;
    let device = Device::open()?;
    let info = device.info()?;
    let align = mapping_alignment(info.page_size) as usize;
    let len = (4 * MIB)
        .max(2 * info.page_size as usize)
        .min(info.vram_size as usize / 2);
    // The host writes the pattern; the children only read VRAM.
    let filled = regs.selftest(selftest::CMD_FILL, 0, (len + PAGE) as u32, SEED);
    if filled != selftest::RESULT_PASS {
        return Err(ProbeError::Parse(format!(
            "self-test fill: result {filled}"
        )));
    }
    let knobs = Knobs::arm()?;
    let mut cases = Vec::new();
    let strategies: Vec<Strategy> = info.strategies().collect();
    for &strategy in &strategies {
        cases.push(run_case(
            &device,
            &knobs,
            Case {
                strategy,
                misalign: 0,
                len,
                align,
            },
        )?);
    }
    if strategies.contains(&Strategy::RangeMm) {
        cases.push(run_case(
            &device,
            &knobs,
            Case {
                strategy: Strategy::RangeMm,
                misalign: PAGE,
                len,
                align,
            },
        )?);
    }
    drop(knobs);
    if let Some(default) = info.current_strategy() {
        device.set_strategy(default)?;
    }
    let disable_enable_after = device.set_enabled(false).is_ok()
        && device.set_enabled(true).is_ok()
        && device.info()?.state == 0;
    let injected_total = cases
        .iter()
        .map(|c| {
            c.injected_sweep
                + c.injected_storm_page_alloc.max(0) as u64
                + c.injected_storm_slab.max(0) as u64
        })
        .sum();
    let pass = cases.iter().all(|c| c.pass) && injected_total > 0 && disable_enable_after;
    Ok(FaultInjectResult {
        pass,
        page_size: info.page_size,
        injected_total,
        cases,
        disable_enable_after,
        ms: started.elapsed().as_millis() as u64,
    })
}
