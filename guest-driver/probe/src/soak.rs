//! `soak`: eight threads map, touch, verify and unmap their own VRAM slices round after round,
//! the strategy rotating per thread and round, while a zapper thread disables and re-enables the
//! device (zapping every mapping) at random moments and, every [`REBIND_EVERY`] rounds, the
//! driver is unbound and bound again with every worker's mapping alive.
//!
//! A round, per worker: map its slice (set strategy + mmap under one lock: the strategy is the
//! device's, each mapping keeps the one it was made with), read every page's word and compare it
//! with what the worker wrote there the round before (the previous round's mapping, maybe of the
//! previous binding: VRAM outlives both), write this round's pattern, read it all back and have
//! the host check the mapping's page tables (every page present, at the right address, the leaf
//! size and memory type the strategy calls for). Touches run in chunks of [`CHUNK`] pages under
//! a read lock that the zapper takes for writing, so a zap lands between chunks, on mappings
//! half touched: the next chunk and the read-back fault them in again. No touch ever happens
//! while the device is disabled or gone, which is what would (correctly) raise SIGBUS; that
//! promise is checked on its own: after every zap, and after every unbind, a forked child
//! touches a mapping of the revoked device and must die of SIGBUS, and after every zap the host
//! must see no entry left in the zapper's own (touched) mapping.
//!
//! Rounds: `rangefault.soak_rounds=N` on the kernel command line (default [`DEFAULT_ROUNDS`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use rangefault_abi::pattern;
use rangefault_report::{Check, SoakResult, WorkerCounts};

use crate::faults::mapping_alignment;
use crate::sysfs::PciFunction;
use crate::uapi::{Device, Strategy};
use crate::vmap::DeviceMapping;
use crate::ProbeError;

const THREADS: usize = 8;
const DEFAULT_ROUNDS: u64 = 40;
const REBIND_EVERY: u64 = 20;
const CHUNK: usize = 16;
const PAGE: usize = 4096;
const DRIVER: &str = "/sys/bus/pci/drivers/rangefault";

/// Checks each thread makes in [`concurrent_host_checks_get_their_own_results`].
const CHECKS_PER_THREAD: usize = 50;

/// Regression test: CHECK ioctls from threads of one process at once (they share the mmap
/// lock for reading). BAR0 has one set of check registers; the driver used to program them
/// without a lock, so concurrent checks mixed each other's requests and reported `wrong_gpa` on
/// correct mappings (the soak saw it in ~3 % of its rounds). Each thread checks its own touched
/// mapping at its own offset, [`CHECKS_PER_THREAD`] times; every check must pass and see all of it.
fn concurrent_host_checks_get_their_own_results(
    device: &Device,
    slice: usize,
    align: usize,
) -> Check {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || -> Vec<String> {
                    let m = match DeviceMapping::new(device, (t * slice) as u64, slice, align, 0) {
                        Ok(m) => m,
                        Err(e) => return vec![format!("thread {t}: map: {e}")],
                    };
                    for at in (0..slice).step_by(PAGE) {
                        m.read64(at);
                    }
                    (0..CHECKS_PER_THREAD)
                        .filter_map(|i| match device.check(m.va(), m.len, 0, None) {
                            Ok(h) if h.pass && h.present as usize == slice / PAGE => None,
                            Ok(h) => Some(format!("thread {t} check {i}: {h:?}")),
                            Err(e) => Some(format!("thread {t} check {i}: {e}")),
                        })
                        .collect()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap_or_else(|_| vec!["panicked".into()]))
            .collect()
    });
    Check {
        name: "concurrent_host_checks_get_their_own_results".into(),
        pass: failures.is_empty(),
        detail: format!(
            "{THREADS} threads x {CHECKS_PER_THREAD} checks: {} failed{}",
            failures.len(),
            failures
                .first()
                .map(|f| format!(", first: {f}"))
                .unwrap_or_default()
        ),
    }
}

/// `rangefault.soak_rounds=N` from `cmdline`, else the default.
fn rounds_from(cmdline: &str) -> Result<u64, ProbeError> {
    for arg in cmdline.split_whitespace() {
        if let Some(n) = arg.strip_prefix("rangefault.soak_rounds=") {
            return n
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| ProbeError::Parse(format!("bad rangefault.soak_rounds={n}")));
        }
    }
    Ok(DEFAULT_ROUNDS)
}

struct Shared {
    device: RwLock<Arc<Device>>,
    /// Bumped by every rebind: mappings of an older generation belong to a gone device.
    generation: AtomicU64,
    /// Touches hold it for reading; zaps and rebinds for writing.
    gate: RwLock<()>,
    /// SET_STRATEGY + mmap as one step.
    map_lock: Mutex<()>,
    strategies: Vec<Strategy>,
    slice: usize,
    align: usize,
    stop: AtomicBool,
    zaps: AtomicU64,
    sigbus_expected: AtomicU64,
    sigbus_seen: AtomicU64,
    entries_after_zap: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl Shared {
    fn problem(&self, what: String) {
        let mut problems = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if problems.len() < 50 {
            problems.push(what);
        }
    }

    fn device(&self) -> Arc<Device> {
        self.device
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn map(
        &self,
        device: &Device,
        strategy: Strategy,
        slot: usize,
    ) -> Result<DeviceMapping, ProbeError> {
        let _one = self.map_lock.lock().unwrap_or_else(|e| e.into_inner());
        device.set_strategy(strategy)?;
        DeviceMapping::new(
            device,
            (slot * self.slice) as u64,
            self.slice,
            self.align,
            0,
        )
    }

    fn touch_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    fn revoke_gate(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn seed(round: u64, thread: usize) -> u32 {
    (round as u32).wrapping_mul(THREADS as u32 + 1) + thread as u32 + 1
}

/// A child touches `m` (of a revoked device); true when it died of SIGBUS.
fn child_gets_sigbus(m: &DeviceMapping) -> bool {
    // SAFETY: the child only reads one word of a live mapping (which must raise SIGBUS) and
    // calls `_exit`: both async-signal-safe, as fork in a threaded process requires.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            m.ptr.cast::<u64>().read_volatile();
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS
}

fn worker(shared: &Shared, t: usize, rounds: u64, barriers: &[Barrier; 3]) -> WorkerCounts {
    let mut counts = WorkerCounts::default();
    let mut previous: Option<u32> = None;
    let pages = shared.slice / PAGE;
    let offset = (t * shared.slice) as u64;
    for round in 0..rounds {
        barriers[0].wait();
        let device = shared.device();
        let strategy = shared.strategies[(round as usize + t) % shared.strategies.len()];
        let seed = seed(round, t);
        let mapping = match shared.map(&device, strategy, t) {
            Ok(m) => Some(m),
            Err(e) => {
                if counts.errors.len() < 10 {
                    counts.errors.push(format!("round {round}: map: {e}"));
                }
                None
            }
        };
        if let Some(m) = &mapping {
            for chunk in (0..pages).collect::<Vec<_>>().chunks(CHUNK) {
                let _touching = shared.touch_gate();
                for &page in chunk {
                    let at = page * PAGE;
                    let expected = previous.map(|s| pattern::word(s, offset + at as u64));
                    if expected.is_some_and(|w| m.read64(at) != w) {
                        counts.data_mismatches += 1;
                    }
                    m.write64(at, pattern::word(seed, offset + at as u64));
                }
            }
            let _touching = shared.touch_gate();
            for page in 0..pages {
                let at = page * PAGE;
                counts.pages_verified += 1;
                if m.read64(at) != pattern::word(seed, offset + at as u64) {
                    counts.data_mismatches += 1;
                }
            }
            match device.check(m.va(), m.len, 0, None) {
                Ok(host) if host.pass => counts.host_checks_passed += 1,
                Ok(host) => {
                    counts.host_checks_failed += 1;
                    if counts.errors.len() < 10 {
                        counts.errors.push(format!(
                            "round {round} {}: host check {host:?}",
                            strategy.name()
                        ));
                    }
                }
                Err(e) => {
                    counts.host_checks_failed += 1;
                    if counts.errors.len() < 10 {
                        counts.errors.push(format!("round {round}: check: {e}"));
                    }
                }
            }
            previous = Some(seed);
        }
        // Mapped and checked: the main thread may unbind now, with this mapping alive.
        barriers[1].wait();
        barriers[2].wait();
        drop(mapping);
        counts.rounds += 1;
    }
    counts
}

/// Disables and enables the device at random moments until told to stop.
fn zapper(shared: &Shared) {
    let slot = THREADS + 1;
    let mut rng = 0x9e37_79b9_u64;
    let mut own: Option<(u64, DeviceMapping)> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        rng = pattern::splitmix64(rng);
        std::thread::sleep(Duration::from_micros(1000 + rng % 9000));
        let _revoking = shared.revoke_gate();
        let generation = shared.generation.load(Ordering::Acquire);
        let device = shared.device();
        if own.as_ref().is_none_or(|(g, _)| *g != generation) {
            own = None; // the old binding's mapping
            match shared.map(&device, Strategy::Page, slot) {
                Ok(m) => own = Some((generation, m)),
                Err(e) => {
                    shared.problem(format!("zapper: map: {e}"));
                    continue;
                }
            }
        }
        let Some((_, m)) = &own else { continue };
        m.read64(0);
        if let Err(e) = device.set_enabled(false) {
            shared.problem(format!("zapper: disable: {e}"));
            continue;
        }
        shared.zaps.fetch_add(1, Ordering::Relaxed);
        match device.check_mapped_pages(m.va(), m.len) {
            Ok(host) if host.present == 0 => {}
            Ok(host) => {
                shared.entries_after_zap.fetch_add(1, Ordering::Relaxed);
                shared.problem(format!("entries after a zap: {host:?}"));
            }
            Err(e) => shared.problem(format!("zapper: check: {e}")),
        }
        shared.sigbus_expected.fetch_add(1, Ordering::Relaxed);
        if child_gets_sigbus(m) {
            shared.sigbus_seen.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(e) = device.set_enabled(true) {
            shared.problem(format!("zapper: enable: {e}"));
        }
    }
}

/// Opens the device node again after a bind (devtmpfs may take a moment to recreate it).
fn reopen() -> Result<Device, ProbeError> {
    let started = Instant::now();
    loop {
        match Device::open() {
            Ok(device) => return Ok(device),
            Err(e) if started.elapsed() > Duration::from_secs(5) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Unbind with every worker's mapping (and one of our own, touched) alive, check that touching
/// ours now gives SIGBUS, bind again.
fn rebind(shared: &Shared, bdf: &str) -> Result<(), String> {
    let _revoking = shared.revoke_gate();
    let device = shared.device();
    let own = shared
        .map(&device, Strategy::Page, THREADS)
        .map_err(|e| format!("map: {e}"))?;
    own.read64(0);
    std::fs::write(format!("{DRIVER}/unbind"), bdf).map_err(|e| format!("unbind: {e}"))?;
    shared.sigbus_expected.fetch_add(1, Ordering::Relaxed);
    if child_gets_sigbus(&own) {
        shared.sigbus_seen.fetch_add(1, Ordering::Relaxed);
    }
    drop(own);
    std::fs::write(format!("{DRIVER}/bind"), bdf).map_err(|e| format!("bind: {e}"))?;
    let fresh = reopen().map_err(|e| format!("reopen: {e}"))?;
    *shared.device.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
    shared.generation.fetch_add(1, Ordering::Release);
    Ok(())
}

pub fn run() -> Result<SoakResult, ProbeError> {
    let cmdline = std::fs::read_to_string("/proc/cmdline")
        .map_err(|e| ProbeError::io("/proc/cmdline".as_ref(), e))?;
    let rounds = rounds_from(&cmdline)?;
    let function = PciFunction::find()?;
    let device = Device::open()?;
    let info = device.info()?;
    let default = info.current_strategy();
    let strategies: Vec<Strategy> = info.strategies().collect();
    let slice = (512 << 10).max(info.page_size as usize);
    if (THREADS + 2) * slice > info.vram_size as usize {
        return Err(ProbeError::Parse(format!(
            "VRAM {:#x} too small for {} slices of {slice:#x}",
            info.vram_size,
            THREADS + 2
        )));
    }
    let align = mapping_alignment(info.page_size) as usize;
    let regression = concurrent_host_checks_get_their_own_results(&device, slice, align);
    let shared = Shared {
        device: RwLock::new(Arc::new(device)),
        generation: AtomicU64::new(0),
        gate: RwLock::new(()),
        map_lock: Mutex::new(()),
        strategies: strategies.clone(),
        slice,
        align,
        stop: AtomicBool::new(false),
        zaps: AtomicU64::new(0),
        sigbus_expected: AtomicU64::new(0),
        sigbus_seen: AtomicU64::new(0),
        entries_after_zap: AtomicU64::new(0),
        problems: Mutex::new(Vec::new()),
    };
    let started = Instant::now();
    let barriers = [
        Barrier::new(THREADS + 1),
        Barrier::new(THREADS + 1),
        Barrier::new(THREADS + 1),
    ];
    let mut rebinds = 0;
    let per_thread = std::thread::scope(|scope| {
        let zapping = scope.spawn(|| zapper(&shared));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (shared, barriers) = (&shared, &barriers);
                scope.spawn(move || worker(shared, t, rounds, barriers))
            })
            .collect();
        for round in 0..rounds {
            barriers[0].wait();
            barriers[1].wait();
            if round % REBIND_EVERY == REBIND_EVERY - 1 {
                match rebind(&shared, &function.bdf) {
                    Ok(()) => rebinds += 1,
                    Err(e) => shared.problem(format!("round {round}: rebind: {e}")),
                }
            }
            barriers[2].wait();
        }
        shared.stop.store(true, Ordering::Relaxed);
        let _ = zapping.join();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| WorkerCounts {
                    errors: vec!["worker panicked".into()],
                    ..WorkerCounts::default()
                })
            })
            .collect::<Vec<_>>()
    });
    let device = shared.device();
    if let Some(default) = default {
        device.set_strategy(default)?;
    }
    let mut problems = shared
        .problems
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (t, w) in per_thread.iter().enumerate() {
        for e in &w.errors {
            problems.push(format!("thread {t}: {e}"));
        }
    }
    let zaps = shared.zaps.load(Ordering::Relaxed);
    let sigbus_expected = shared.sigbus_expected.load(Ordering::Relaxed);
    let sigbus_seen = shared.sigbus_seen.load(Ordering::Relaxed);
    let entries_after_zap = shared.entries_after_zap.load(Ordering::Relaxed);
    let data_mismatches = per_thread.iter().map(|w| w.data_mismatches).sum();
    let host_checks_passed = per_thread.iter().map(|w| w.host_checks_passed).sum();
    let rounds_done = per_thread.iter().map(|w| w.rounds).min().unwrap_or(0);
    let pass = problems.is_empty()
        && regression.pass
        && rounds_done == rounds
        && data_mismatches == 0
        && host_checks_passed == rounds * THREADS as u64
        && zaps > 0
        && rebinds == rounds / REBIND_EVERY
        && sigbus_seen == sigbus_expected
        && entries_after_zap == 0
        && device.info()?.state == 0;
    Ok(SoakResult {
        pass,
        page_size: info.page_size,
        rounds: rounds_done,
        threads: THREADS,
        slice_bytes: slice,
        strategies: strategies.iter().map(|s| s.name().into()).collect(),
        zaps,
        rebinds,
        sigbus_expected,
        sigbus_seen,
        entries_after_zap,
        host_checks_passed,
        data_mismatches,
        per_thread,
        concurrent_host_checks_get_their_own_results: regression,
        problems,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_come_from_the_command_line() {
        assert_eq!(rounds_from("console=ttyS0").unwrap(), DEFAULT_ROUNDS);
        assert_eq!(
            rounds_from("a rangefault.soak_rounds=10000 b").unwrap(),
            10000
        );
        assert!(rounds_from("rangefault.soak_rounds=0").is_err());
        assert!(rounds_from("rangefault.soak_rounds=x").is_err());
    }

    #[test]
    fn seeds_differ_per_round_and_thread() {
        let mut seen = std::collections::HashSet::new();
        for round in 0..100 {
            for t in 0..THREADS {
                assert!(seen.insert(seed(round, t)));
            }
        }
    }
}
