//! The `semantics` scenario: what a PFN mapping of VRAM must survive (after the kernel's
//! `tools/testing/selftests/mm/pfnmap.c`), plus revocation and bad input. One JSON result with
//! one check per case; children report through their exit status so a SIGBUS is observable.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;

use rangefault_abi::pattern;
use rangefault_report::{SemanticsResult, TimedCheck};

use crate::sysfs::PciFunction;
use crate::uapi::{Device, HostCheck, Info, Strategy};
use crate::vmap::DeviceMapping;
use crate::{Check, ProbeError};

const MIB: usize = 1 << 20;
const SEED: u32 = 0x5e3a;

fn check(case: &Case, cx: &Ctx) -> TimedCheck {
    let name = case.name;
    let started = std::time::Instant::now();
    let (pass, detail) = match (case.run)(cx) {
        Ok(detail) => (true, detail),
        Err(detail) => (false, detail),
    };
    TimedCheck {
        check: Check {
            name: name.into(),
            pass,
            detail,
        },
        ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Writes the pattern word at the start of every 4 KiB page of `mapping`.
fn stamp(mapping: &DeviceMapping) {
    stamp_range(mapping, 0, mapping.len);
}

/// Writes the pattern word at the start of every 4 KiB page of `[from, to)`.
fn stamp_range(mapping: &DeviceMapping, from: usize, to: usize) {
    for at in (from..to).step_by(4096) {
        mapping.write64(at, pattern::word(SEED, mapping.offset + at as u64));
    }
}

/// First page of `[from, to)` whose word is not the pattern, if any.
fn first_bad(mapping: &DeviceMapping, from: usize, to: usize) -> Option<usize> {
    (from..to)
        .step_by(4096)
        .find(|&at| mapping.read64(at) != pattern::word(SEED, mapping.offset + at as u64))
}

/// The host's check of all of `m` (with the strategy it was mapped with).
fn host_view(device: &Device, m: &DeviceMapping) -> Result<HostCheck, String> {
    device
        .check(m.va(), m.len, 0, None)
        .map_err(|e| e.to_string())
}

/// [`host_view`], which must pass.
fn host_passes(device: &Device, m: &DeviceMapping, what: &str) -> Result<HostCheck, String> {
    let host = host_view(device, m)?;
    if host.pass {
        Ok(host)
    } else {
        Err(format!("host check {what}: {host:?}"))
    }
}

fn verify(mapping: &DeviceMapping, from: usize, to: usize) -> Result<(), String> {
    match first_bad(mapping, from, to) {
        None => Ok(()),
        Some(at) => Err(format!("wrong data at +{at:#x}")),
    }
}

/// Moves `len` bytes at `from` onto `target` with `mremap(MREMAP_FIXED)`, which replaces it.
fn move_onto(from: *mut u8, len: usize, target: &DeviceMapping) -> Result<(), String> {
    // SAFETY: `from..from + len` is part of one of our own mappings, and `target` is our own
    // other mapping (at least `len` long), which MREMAP_FIXED replaces.
    let moved = unsafe {
        libc::mremap(
            from.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target.ptr.cast::<libc::c_void>(),
        )
    };
    if moved == libc::MAP_FAILED {
        Err(format!("mremap: errno {}", errno()))
    } else {
        Ok(())
    }
}

/// Runs `child` in a forked process; returns its wait status.
fn in_child(child: impl FnOnce() -> i32) -> libc::c_int {
    // SAFETY: the probe is single-threaded here (threads are joined before any fork); the child
    // only touches memory and calls async-signal-safe functions before `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = child();
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

fn describe_status(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    }
}

fn killed_by_sigbus(status: libc::c_int) -> bool {
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS
}

fn exited_ok(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// Runs the scenario once per range-insertion strategy the kernel serves (stock `range`, and
/// `range-mm` on the patched kernel).
pub fn run_all() -> Result<Vec<SemanticsResult>, ProbeError> {
    let strategies: Vec<Strategy> = Device::open()?
        .info()?
        .strategies()
        .filter(|s| s.is_range())
        .collect();
    strategies.into_iter().map(run).collect()
}

/// What every case gets: the device (set to the strategy under test), its geometry, and the
/// length and alignment of the mappings the cases make.
struct Ctx {
    device: Device,
    info: Info,
    strategy: Strategy,
    /// Length of a case's main mapping: 8 MiB, at least two device pages, at most all of VRAM.
    len: usize,
    /// VA alignment of the mappings (the device page size, within 2 MiB..=1 GiB).
    align: usize,
}

impl Ctx {
    /// A mapping of `len` bytes at BAR offset `offset`, its VA `misalign` bytes past alignment.
    fn map(&self, offset: u64, len: usize, misalign: usize) -> Result<DeviceMapping, String> {
        DeviceMapping::new(&self.device, offset, len, self.align, misalign)
            .map_err(|e| e.to_string())
    }
}

/// One case of the scenario: its name in the result, and what it does (`Ok` or `Err` with the
/// check's detail).
struct Case {
    name: &'static str,
    run: fn(&Ctx) -> Result<String, String>,
}

/// Each function below is a case, named after it.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        &[$(Case { name: stringify!($case), run: $case }),*]
    };
}

/// The cases, in the order they run.
const CASES: &[Case] = cases![
    fork_child_reads_parent_data,
    partial_munmap_then_retouch,
    mremap_move_shrink_and_refused_grow,
    madvise_dontneed_then_retouch,
    o_direct_read_into_mapping_fails_cleanly,
    proc_self_mem_reads_through_access,
    ptrace_peek_through_access,
    process_vm_readv_is_refused,
    unaligned_va_and_offset,
    low_va_with_large_offset,
    strategy_is_fixed_per_mapping,
    eight_threads_fault_concurrently,
    racing_threads_count_each_window_once,
    read_only_shared_mapping,
    control_ioctls_need_write_access_and_cap,
    access_serves_pages_never_faulted,
    mremap_part_of_a_huge_entry,
    host_check_after_nohugepage_and_across_vmas,
    pte_mapped_piece_moved_to_an_aligned_address,
    disable_gives_sigbus_enable_refaults,
    bad_input_is_refused,
    rmmod_refused_while_open,
    unbind_while_mapped_gives_sigbus,
];

pub fn run(strategy: Strategy) -> Result<SemanticsResult, ProbeError> {
    let device = Device::open()?;
    let info = device.info()?;
    device.set_strategy(strategy)?;
    let align = (info.page_size as usize).clamp(2 * MIB, 1 << 30);
    let len = (8 * MIB)
        .max(2 * info.page_size as usize)
        .min(info.vram_size as usize);
    let cx = Ctx {
        device,
        info,
        strategy,
        len,
        align,
    };
    let checks: Vec<TimedCheck> = CASES.iter().map(|case| check(case, &cx)).collect();
    let pass = checks.iter().all(|c| c.check.pass);
    Ok(SemanticsResult {
        pass,
        page_size: info.page_size,
        strategy: strategy.name().into(),
        checks,
    })
}

fn fork_child_reads_parent_data(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    let status = in_child(|| i32::from(first_bad(&m, 0, m.len).is_some()));
    if exited_ok(status) {
        Ok(format!("child verified {} bytes", m.len))
    } else {
        Err(format!("child: {}", describe_status(status)))
    }
}

fn partial_munmap_then_retouch(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    // Punch a 1 MiB hole into the middle of the first huge entry (splitting it).
    let hole = MIB / 2;
    // SAFETY: unmapping part of our own mapping; we never touch the hole afterwards.
    if unsafe { libc::munmap(m.ptr.add(hole).cast(), MIB) } != 0 {
        return Err(format!("munmap: errno {}", errno()));
    }
    verify(&m, 0, hole)?;
    verify(&m, hole + MIB, m.len)?;
    Ok("data on both sides of the hole intact after re-faulting".into())
}

fn mremap_move_shrink_and_refused_grow(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    let target = cx.map(0, cx.len, 0)?; // a second aligned area to move onto
    move_onto(m.ptr, m.len, &target)?;
    verify(&target, 0, target.len)?;
    // SAFETY: shrinking our own mapping in place.
    let shrunk = unsafe { libc::mremap(target.ptr.cast(), target.len, target.len / 2, 0) };
    if shrunk == libc::MAP_FAILED {
        return Err(format!("mremap shrink: errno {}", errno()));
    }
    verify(&target, 0, target.len / 2)?;
    // SAFETY: asking to grow our own mapping; VM_DONTEXPAND must refuse.
    let grown = unsafe { libc::mremap(target.ptr.cast(), target.len / 2, target.len, 0) };
    if grown != libc::MAP_FAILED {
        return Err("mremap grow succeeded on a VM_DONTEXPAND mapping".into());
    }
    Ok(format!(
        "moved and shrunk with data intact; grow refused (errno {})",
        errno()
    ))
}

fn madvise_dontneed_then_retouch(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    // SAFETY: advice on our own mapping.
    let rc = unsafe { libc::madvise(m.ptr.cast(), m.len, libc::MADV_DONTNEED) };
    let outcome = if rc == 0 {
        "zapped".to_owned()
    } else {
        format!("refused (errno {})", errno())
    };
    if rc != 0 && errno() != libc::EINVAL {
        return Err(format!("madvise {outcome}"));
    }
    verify(&m, 0, m.len)?;
    Ok(format!("madvise {outcome}; data intact after re-touch"))
}

fn o_direct_read_into_mapping_fails_cleanly(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    // A real block device: direct I/O must pin the destination pages, which a PFN
    // mapping does not have (tmpfs only pretends, copying without pinning).
    let path = "/dev/ram0";
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_odirect()
        .open(path)
        .map_err(|e| format!("open {path} O_DIRECT: {e}"))?;
    // SAFETY: reading into our own mapping; the kernel must refuse to pin PFNMAP pages.
    let n = unsafe { libc::read(file.as_raw_fd(), m.ptr.cast(), 64 << 10) };
    let read_errno = errno();
    if n >= 0 || read_errno != libc::EFAULT {
        return Err(format!(
            "O_DIRECT read into a PFN mapping returned {n} (errno {read_errno})"
        ));
    }
    Ok("refused with EFAULT".into())
}

fn proc_self_mem_reads_through_access(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    let mut mem = std::fs::File::open("/proc/self/mem").map_err(|e| e.to_string())?;
    mem.seek(SeekFrom::Start(m.va() as u64 + 4096))
        .map_err(|e| e.to_string())?;
    let mut word = [0u8; 8];
    mem.read_exact(&mut word)
        .map_err(|e| format!("read: {e}"))?;
    let expected = pattern::word(SEED, 4096);
    if u64::from_le_bytes(word) != expected {
        return Err(format!(
            "read {:#x}, expected {expected:#x}",
            u64::from_le_bytes(word)
        ));
    }
    Ok("vm_ops->access served /proc/self/mem".into())
}

fn ptrace_peek_through_access(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    // SAFETY: plain fork; the child stops itself and is killed by the parent.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: async-signal-safe calls only, then stop until the parent kills us.
        unsafe {
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: our traced child, stopped.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: PEEKDATA at an address mapped in the (forked) child.
    let value = unsafe {
        *libc::__errno_location() = 0;
        libc::ptrace(libc::PTRACE_PEEKDATA, pid, m.va() + 8192, 0)
    };
    let peek_errno = errno();
    // SAFETY: ending our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    let expected = pattern::word(SEED, 8192);
    if value as u64 != expected {
        return Err(format!(
            "peek {value:#x} (errno {peek_errno}), expected {expected:#x}"
        ));
    }
    Ok("PTRACE_PEEKDATA read the child's VRAM mapping".into())
}

fn process_vm_readv_is_refused(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    let mut buf = [0u8; 8];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: m.ptr.cast(),
        iov_len: 8,
    };
    // SAFETY: reading our own address space into a local buffer.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    let read_errno = errno();
    if n != -1 || read_errno != libc::EFAULT {
        return Err(format!(
            "process_vm_readv returned {n} (errno {read_errno}), expected EFAULT"
        ));
    }
    Ok("GUP refuses PFN mappings with EFAULT (/proc/PID/mem and ptrace use access)".into())
}

fn unaligned_va_and_offset(cx: &Ctx) -> Result<String, String> {
    let offset = 64 << 10;
    let m = cx.map(offset, cx.len - 2 * MIB, 4096)?;
    stamp(&m);
    verify(&m, 0, m.len)?;
    // The host must find smaller, correct entries where huge ones cannot fit.
    let host = host_passes(&cx.device, &m, "of the unaligned mapping")?;
    Ok(format!(
        "VA {:#x} (4 KiB past alignment), offset {offset:#x}: data correct, host check {:?}",
        m.va(),
        host.leaves
    ))
}

fn low_va_with_large_offset(cx: &Ctx) -> Result<String, String> {
    // A VMA whose first window would start below address 0 in VA terms (regression test
    // for the window arithmetic). Skipped if 0x1000 is taken in this process.
    let addr = 0x1000usize;
    let offset = 0xf000;
    // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; we unmap it below.
    let ptr = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            0x10000,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
            cx.device.file.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Ok(format!(
            "skipped: cannot map at {addr:#x} (errno {})",
            errno()
        ));
    }
    // SAFETY: inside the mapping just made.
    unsafe { ptr.cast::<u64>().write_volatile(0x1234_5678) };
    // SAFETY: as above.
    let back = unsafe { ptr.cast::<u64>().read_volatile() };
    // SAFETY: our own mapping.
    unsafe { libc::munmap(ptr, 0x10000) };
    if back != 0x1234_5678 {
        return Err(format!("read back {back:#x}"));
    }
    Ok(format!(
        "mapped VA {addr:#x} at offset {offset:#x}, faulted and read back"
    ))
}

fn strategy_is_fixed_per_mapping(cx: &Ctx) -> Result<String, String> {
    // A mapping keeps the strategy it was made with; SET_STRATEGY only affects new ones.
    let m = cx.map(0, cx.len, 0)?;
    let half = m.len / 2;
    stamp_range(&m, 0, half);
    cx.device
        .set_strategy(Strategy::Page)
        .map_err(|e| e.to_string())?;
    stamp_range(&m, half, m.len);
    cx.device
        .set_strategy(cx.strategy)
        .map_err(|e| e.to_string())?;
    verify(&m, 0, m.len)?;
    let host = host_passes(&cx.device, &m, "after a mid-mapping SET_STRATEGY")?;
    Ok(format!(
        "leaves after a mid-mapping SET_STRATEGY: {:?}",
        host.leaves
    ))
}

fn eight_threads_fault_concurrently(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    let va = m.va();
    let stride = m.len / 8;
    let offset = m.offset;
    std::thread::scope(|scope| {
        for t in 0..8 {
            scope.spawn(move || {
                // Each thread walks the whole mapping from a different start: all of them
                // fault on the same windows at once.
                for i in 0..(stride * 8 / 4096) {
                    let at = (t * stride + i * 4096) % (stride * 8);
                    let ptr = (va + at) as *mut u64;
                    // SAFETY: inside the live mapping, 8-byte aligned.
                    unsafe { ptr.write_volatile(pattern::word(SEED, offset + at as u64)) };
                }
            });
        }
    });
    verify(&m, 0, m.len)?;
    Ok("8 threads faulted the same windows; data correct".into())
}

/// Rounds of 8 threads touching every window of a mapping from different starts, with a zap
/// (disable/enable) between rounds. `range-mm` faults are counted exactly (the kernel says what
/// it inserted): one per window per round, whoever wins the race; the stock inserts cannot say,
/// so there a lost race still counts and only the upper bound (handler calls) holds.
fn racing_threads_count_each_window_once(cx: &Ctx) -> Result<String, String> {
    const ROUNDS: usize = 1000;
    // Rounds cost thread creation and TLB-shootdown IPIs, which a nested guest pays for in
    // world switches (~85 ms a round there): past MIN_ROUNDS, the rounds stop at BUDGET.
    const MIN_ROUNDS: usize = 100;
    const BUDGET: std::time::Duration = std::time::Duration::from_secs(15);
    const THREADS: usize = 8;
    let (device, strategy, page_size) = (&cx.device, cx.strategy, cx.info.page_size);
    // A few windows, touched by all threads at once: the races, not the bytes, are the point.
    let m = cx.map(0, cx.len.min((4 * page_size as usize).max(2 * MIB)), 0)?;
    let window = (page_size as usize).clamp(4096, m.len);
    let windows = m.len / window;
    let va = m.va();
    let (mut faults, mut calls, mut lost) = (0u64, 0u64, 0u64);
    let started = std::time::Instant::now();
    let mut rounds = 0;
    for round in 0..ROUNDS {
        if round >= MIN_ROUNDS && started.elapsed() > BUDGET {
            break;
        }
        rounds += 1;
        device.reset_stats().map_err(|e| e.to_string())?;
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                scope.spawn(move || {
                    for i in 0..windows {
                        let w = (i + t + round) % windows;
                        // Threads touch different pages of the same windows.
                        let at = w * window + (t * 4096) % window;
                        // SAFETY: inside the live mapping, 8-byte aligned.
                        unsafe { ((va + at) as *const u64).read_volatile() };
                    }
                });
            }
        });
        let stats = device.stats().map_err(|e| e.to_string())?;
        faults += stats.faults();
        calls += stats.handler_calls;
        lost += stats.already_mapped;
        if strategy == Strategy::RangeMm && stats.faults() != windows as u64 {
            return Err(format!(
                "round {round}: {} faults for {windows} windows ({stats:?})",
                stats.faults()
            ));
        }
        if stats.faults() < windows as u64 || stats.handler_calls < stats.faults() {
            return Err(format!("round {round}: {stats:?} for {windows} windows"));
        }
        // Zap everything: the next round faults every window again.
        device.set_enabled(false).map_err(|e| e.to_string())?;
        device.set_enabled(true).map_err(|e| e.to_string())?;
    }
    let host = host_view(device, &m)?;
    // After the last zap nothing is present: touch all, then the host must agree.
    if host.present != 0 {
        return Err(format!("entries survived the last zap: {host:?}"));
    }
    stamp(&m);
    verify(&m, 0, m.len)?;
    host_passes(device, &m, "after the rounds")?;
    Ok(format!(
        "{rounds} rounds (of {ROUNDS}, {} s budget) x {THREADS} threads x {windows} windows: {faults} faults, {calls} handler calls, {lost} lost races",
        BUDGET.as_secs()
    ))
}

/// `open(O_RDONLY)` + `mmap(PROT_READ, MAP_SHARED)`: how the kernel's own pfnmap selftest maps.
fn read_only_shared_mapping(cx: &Ctx) -> Result<String, String> {
    let stamped = cx.map(0, cx.len, 0)?;
    stamp(&stamped);
    let file = std::fs::File::open(crate::uapi::DEVICE_PATH).map_err(|e| e.to_string())?;
    let len = stamped.len.min(4 * MIB);
    // SAFETY: a fresh read-only shared mapping of the device, unmapped below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            stamped.offset as libc::off_t,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(format!("read-only shared mmap: errno {}", errno()));
    }
    let bad = (0..len).step_by(4096).find(|&at| {
        // SAFETY: inside the read-only mapping just made.
        let word = unsafe { ptr.cast::<u8>().add(at).cast::<u64>().read_volatile() };
        word != pattern::word(SEED, stamped.offset + at as u64)
    });
    // SAFETY: a private (COW) mapping must still be refused.
    let private = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    let private_errno = errno();
    // SAFETY: our own mapping.
    unsafe { libc::munmap(ptr, len) };
    if private != libc::MAP_FAILED {
        return Err("MAP_PRIVATE on a read-only fd succeeded".into());
    }
    match bad {
        Some(at) => Err(format!("wrong data at +{at:#x} through the read-only mapping")),
        None => Ok(format!(
            "read {len} bytes through O_RDONLY + PROT_READ/MAP_SHARED; MAP_PRIVATE errno {private_errno}"
        )),
    }
}

fn control_ioctls_need_write_access_and_cap(cx: &Ctx) -> Result<String, String> {
    crate::access_control::run(&cx.device)
}

/// `/proc/self/mem` reads and writes pages of a mapping that were never faulted in (served from
/// the VMA's offset by `vm_ops->access`), without faulting them; a revoked device serves EIO.
fn access_serves_pages_never_faulted(cx: &Ctx) -> Result<String, String> {
    let device = &cx.device;
    let writer = cx.map(0, cx.len, 0)?;
    stamp(&writer);
    let fresh = cx.map(writer.offset, writer.len, 0)?;
    let mut mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .map_err(|e| e.to_string())?;
    device.reset_stats().map_err(|e| e.to_string())?;
    let at = fresh.len / 2 + 3 * 4096 + 8;
    let mut word = [0u8; 8];
    mem.seek(SeekFrom::Start((fresh.va() + at) as u64))
        .map_err(|e| e.to_string())?;
    mem.read_exact(&mut word)
        .map_err(|e| format!("read: {e}"))?;
    let expected = pattern::word(SEED, writer.offset + (at - 8) as u64);
    let read_back = u64::from_le_bytes(word);
    // Bytes 8..16 of the page hold no pattern word: compare through the writer instead.
    let through_writer = writer.read64(at);
    if read_back != through_writer {
        return Err(format!(
            "/proc/self/mem read {read_back:#x}, the mapping holds {through_writer:#x}"
        ));
    }
    let page = at - 8;
    mem.seek(SeekFrom::Start((fresh.va() + page) as u64))
        .map_err(|e| e.to_string())?;
    mem.read_exact(&mut word)
        .map_err(|e| format!("read: {e}"))?;
    if u64::from_le_bytes(word) != expected {
        return Err(format!(
            "/proc/self/mem read {:#x}, expected {expected:#x}",
            u64::from_le_bytes(word)
        ));
    }
    let poke = 0x5a5a_0000_0000_0000u64 | at as u64;
    mem.seek(SeekFrom::Start((fresh.va() + at) as u64))
        .map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut mem, &poke.to_le_bytes()).map_err(|e| format!("write: {e}"))?;
    let faults = device.stats().map_err(|e| e.to_string())?.handler_calls;
    if writer.read64(at) != poke {
        return Err("a write through /proc/self/mem did not reach VRAM".into());
    }
    if faults != 0 {
        return Err(format!(
            "access faulted the mapping in ({faults} handler calls)"
        ));
    }
    device.set_enabled(false).map_err(|e| e.to_string())?;
    mem.seek(SeekFrom::Start((fresh.va() + page) as u64))
        .map_err(|e| e.to_string())?;
    let revoked = mem.read_exact(&mut word);
    device.set_enabled(true).map_err(|e| e.to_string())?;
    match revoked {
        Err(e) if e.raw_os_error() == Some(libc::EIO) => {
            Ok("read and wrote never-faulted pages with no fault; EIO while revoked".into())
        }
        other => Err(format!("/proc/self/mem on a revoked device: {other:?}")),
    }
}

fn mremap_part_of_a_huge_entry(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    let part = 2 * MIB;
    let target = cx.map(0, part, 4096)?; // a 4 KiB-misaligned landing area
    move_onto(m.ptr, part, &target)?;
    verify(&target, 0, part)?;
    verify(&m, part, m.len)?;
    Ok("moved 2 MiB out of a huge entry to a misaligned address; both sides intact".into())
}

/// The host check follows what the kernel allows: 4 KiB leaves after MADV_NOHUGEPAGE are
/// correct (smaller than possible, not a mismatch), and a range over several VMAs is checked
/// VMA by VMA against each one's own offset.
fn host_check_after_nohugepage_and_across_vmas(cx: &Ctx) -> Result<String, String> {
    let (device, page_size) = (&cx.device, cx.info.page_size);
    let m = cx.map(0, cx.len, 0)?;
    // SAFETY: advice on our own mapping.
    if unsafe { libc::madvise(m.ptr.cast(), m.len, libc::MADV_NOHUGEPAGE) } != 0 {
        return Err(format!("madvise(MADV_NOHUGEPAGE): errno {}", errno()));
    }
    stamp(&m);
    verify(&m, 0, m.len)?;
    let host = host_view(device, &m)?;
    // Where huge leaves were possible, every page is on a smaller leaf than possible.
    let smaller_expected = if page_size >= 2 * MIB as u64 {
        host.pages
    } else {
        0
    };
    if !host.pass
        || host.leaves.m2 != 0
        || host.leaves.g1 != 0
        || host.smaller_pages != smaller_expected
    {
        return Err(format!("after MADV_NOHUGEPAGE: {host:?}"));
    }
    let nohuge = format!(
        "{:?}, {} smaller than possible",
        host.leaves, host.smaller_pages
    );
    // Three VMAs: split the middle off with mprotect (same offsets, same pages).
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    let third = (m.len / 3) & !(2 * MIB - 1);
    // SAFETY: changing the protection of the middle of our own mapping.
    if unsafe { libc::mprotect(m.ptr.add(third).cast(), third, libc::PROT_READ) } != 0 {
        return Err(format!("mprotect: errno {}", errno()));
    }
    verify(&m, 0, m.len)?;
    let host = host_view(device, &m)?;
    if !host.pass || host.pages as usize != m.len / 4096 {
        return Err(format!("over three VMAs: {host:?}"));
    }
    Ok(format!(
        "MADV_NOHUGEPAGE: {nohuge}; three VMAs: {:?}, {} smaller than possible",
        host.leaves, host.smaller_pages
    ))
}

fn pte_mapped_piece_moved_to_an_aligned_address(cx: &Ctx) -> Result<String, String> {
    // Faulted in at a misaligned VA (PTEs only), then moved where huge leaves would fit:
    // the PTEs move with it, and the host must call them correct, not wrong_size.
    let piece = 4 * MIB;
    let m = cx.map(0, piece, 4096)?;
    stamp(&m);
    let target = cx.map(0, piece, 0)?;
    move_onto(m.ptr, piece, &target)?;
    let host = host_passes(&cx.device, &target, "after moving PTEs to an aligned VA")?;
    verify(&target, 0, piece)?;
    Ok(format!(
        "leaves {:?}, {} pages smaller than possible, all correct",
        host.leaves, host.smaller_pages
    ))
}

fn disable_gives_sigbus_enable_refaults(cx: &Ctx) -> Result<String, String> {
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    cx.device.set_enabled(false).map_err(|e| e.to_string())?;
    let status = in_child(|| {
        // SAFETY: inside the live mapping; the fault must raise SIGBUS.
        unsafe { m.ptr.cast::<u64>().read_volatile() };
        0
    });
    cx.device.set_enabled(true).map_err(|e| e.to_string())?;
    if !killed_by_sigbus(status) {
        return Err(format!(
            "child touching a disabled device: {}",
            describe_status(status)
        ));
    }
    verify(&m, 0, m.len)?;
    Ok("SIGBUS while disabled, data back after enable".into())
}

fn bad_input_is_refused(cx: &Ctx) -> Result<String, String> {
    let fd = cx.device.file.as_raw_fd();
    // SAFETY: each call asks for a fresh mapping and is expected to fail.
    let private = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            fd,
            0,
        )
    };
    let private_errno = errno();
    // SAFETY: as above.
    let beyond = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            (cx.info.vram_size - 4096) as libc::off_t,
        )
    };
    let beyond_errno = errno();
    let bad_strategy = cx.device.raw_ioctl(crate::uapi::SET_STRATEGY, 7);
    let bad_request = cx.device.raw_ioctl(0x1234, 0);
    let bad_pointer = cx.device.raw_ioctl(crate::uapi::INFO, 16);
    let ok = private == libc::MAP_FAILED
        && private_errno == libc::EINVAL
        && beyond == libc::MAP_FAILED
        && beyond_errno == libc::EINVAL
        && bad_strategy.is_err()
        && bad_request == Err(libc::ENOTTY)
        && bad_pointer == Err(libc::EFAULT);
    let detail = format!(
        "MAP_PRIVATE errno {private_errno}, past VRAM errno {beyond_errno}, bad strategy {bad_strategy:?}, unknown ioctl {bad_request:?}, bad pointer {bad_pointer:?}"
    );
    if ok {
        Ok(detail)
    } else {
        Err(detail)
    }
}

fn rmmod_refused_while_open(_cx: &Ctx) -> Result<String, String> {
    let status = std::process::Command::new("rmmod")
        .arg("rangefault")
        .status();
    let still_loaded = std::path::Path::new("/sys/module/rangefault").exists();
    if still_loaded && !matches!(status, Ok(s) if s.success()) {
        Ok("rmmod refused while /dev/rangefault0 is open".into())
    } else {
        Err(format!(
            "rmmod with an open file: {status:?}, loaded: {still_loaded}"
        ))
    }
}

fn unbind_while_mapped_gives_sigbus(cx: &Ctx) -> Result<String, String> {
    let function = PciFunction::find().map_err(|e| e.to_string())?;
    let m = cx.map(0, cx.len, 0)?;
    stamp(&m);
    let mut pipe = [0; 2];
    // SAFETY: creating a pipe into a two-element array.
    unsafe { libc::pipe(pipe.as_mut_ptr()) };
    let status = {
        // SAFETY: as in `in_child`; the child waits on the pipe, then touches.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut byte = 0u8;
            // SAFETY: blocking read of one byte from our pipe, then a touch that must SIGBUS.
            unsafe {
                libc::read(pipe[0], (&raw mut byte).cast(), 1);
                m.ptr.add(4096).cast::<u64>().read_volatile();
                libc::_exit(0);
            }
        }
        let unbind = std::fs::write("/sys/bus/pci/drivers/rangefault/unbind", &function.bdf);
        // SAFETY: waking the child through our pipe.
        unsafe { libc::write(pipe[1], [1u8].as_ptr().cast(), 1) };
        let mut status = 0;
        // SAFETY: waiting for our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        unbind.map_err(|e| format!("unbind: {e}"))?;
        status
    };
    drop(m);
    let rebind = std::fs::write("/sys/bus/pci/drivers/rangefault/bind", &function.bdf);
    if !killed_by_sigbus(status) {
        return Err(format!(
            "child touching after unbind: {}",
            describe_status(status)
        ));
    }
    rebind.map_err(|e| format!("rebind: {e}"))?;
    Ok("child got SIGBUS after unbind; driver re-bound cleanly".into())
}

/// `OpenOptions::custom_flags(O_DIRECT)` with a readable name.
trait ODirect {
    fn custom_flags_odirect(&mut self) -> &mut Self;
}

impl ODirect for std::fs::OpenOptions {
    fn custom_flags_odirect(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_DIRECT)
    }
}
