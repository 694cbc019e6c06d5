//! Plumbing shared by the boot tests: build vmm once, boot one guest at a time, read reports.

#![allow(dead_code)] // each test crate uses its own subset

pub mod assertions;
pub mod kvm;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use rangefault_ci::{repo, BootReport};

/// Builds the vmm binary once, into its own target dir (the outer cargo holds the workspace's):
/// beside cargo's when `CARGO_TARGET_DIR` names one (`.ci/run` keeps it outside the clone, so a
/// fresh clone reuses the compiled dependencies), else in `target/ci`. Reports and traces go to
/// the clone's `target/ci` either way.
pub fn vmm_binary() -> &'static Path {
    static VMM: OnceLock<PathBuf> = OnceLock::new();
    VMM.get_or_init(|| {
        std::fs::create_dir_all(repo().join("target/ci")).expect("target/ci");
        rangefault_ci::build_vmm(&rangefault_ci::vmm_build_dir()).unwrap_or_else(|e| panic!("{e}"))
    })
}

extern "C" {
    fn geteuid() -> u32;
}

/// Whether boot tests can run here; prints why not. Under CI they must.
pub fn can_boot() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { geteuid() } == 0;
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "boot tests need root (debootstrap/chroot for the image) and CI must run them"
        );
        eprintln!("SKIPPED: boot tests need root to build the guest image (debootstrap + chroot)");
    }
    root
}

/// One guest at a time: two TCG guests on two cores only slow each other down. Cargo runs test
/// binaries one after another; inside one binary this lock serialises the tests' boots.
fn boot_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Boots with `args`; returns (exit code, report).
pub fn boot(name: &str, args: &[&str]) -> (i32, BootReport) {
    let _guard = boot_lock();
    let report = repo().join(format!("target/ci/report-{name}.json"));
    let (status, report) = rangefault_ci::run_vmm(vmm_binary(), args, &report)
        .unwrap_or_else(|e| panic!("{}: {e}", report.display()));
    (status.code().unwrap_or(-1), report)
}

/// Boots `scenario` on a device of `vram` / `page`, asserts the run as a whole passed with a
/// clean guest log and no trapped VRAM access, and returns the report (None when skipped).
pub fn boot_scenario(name: &str, vram: &str, page: &str, scenario: &str) -> Option<BootReport> {
    boot_scenario_on("qemu", name, vram, page, scenario)
}

/// [`boot_scenario`] under `engine` (`qemu` or `kvm`).
pub fn boot_scenario_on(
    engine: &str,
    name: &str,
    vram: &str,
    page: &str,
    scenario: &str,
) -> Option<BootReport> {
    boot_scenario_with(engine, name, vram, page, scenario, &[])
}

/// [`boot_scenario_on`] with more `vmm run` arguments (e.g. `--memory 4G`).
pub fn boot_scenario_with(
    engine: &str,
    name: &str,
    vram: &str,
    page: &str,
    scenario: &str,
    extra: &[&str],
) -> Option<BootReport> {
    if !can_boot() {
        return None;
    }
    let mut args = vec![
        "--engine",
        engine,
        "--vram",
        vram,
        "--page-size",
        page,
        "--scenario",
        scenario,
    ];
    args.extend_from_slice(extra);
    let (code, report) = boot(name, &args);
    assert!(report.guest_log_problems.is_empty(), "{report}");
    assert_eq!(
        report.host.boundary().vram_trapped_accesses.get(),
        0,
        "{report}"
    );
    // QEMU printed no warning (e.g. "Could not enable error recovery": the ERR irq is served).
    assert!(report.engine_warnings.is_empty(), "{report}");
    assert_eq!(code, 0, "vmm failed; report:\n{report}");
    assert!(report.pass, "{report}");
    Some(report)
}

/// Whether the guest's driver has the `range-mm` strategy (a kernel with `vmf_insert_range`).
pub fn has_insert_range(report: &BootReport) -> bool {
    report
        .guest_driver
        .as_ref()
        .and_then(|d| d.insert_range)
        .unwrap_or(false)
}
