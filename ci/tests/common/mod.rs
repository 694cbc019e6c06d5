//! Plumbing shared by the boot tests: build vmm once, boot one guest at a time, read reports.

#![allow(dead_code)] // each test crate uses its own subset

pub mod assertions;
pub mod kvm;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

pub use rangefault_ci::repo;

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
pub fn boot(name: &str, args: &[&str]) -> (i32, Value) {
    let _guard = boot_lock();
    let report = repo().join(format!("target/ci/report-{name}.json"));
    let (status, value) = rangefault_ci::run_vmm(vmm_binary(), args, &report)
        .unwrap_or_else(|e| panic!("{}: {e}", report.display()));
    (status.code().unwrap_or(-1), value)
}

/// Boots `scenario` on a device of `vram` / `page`, asserts the run as a whole passed with a
/// clean guest log and no trapped VRAM access, and returns the report (None when skipped).
pub fn boot_scenario(name: &str, vram: &str, page: &str, scenario: &str) -> Option<Value> {
    boot_scenario_on("qemu", name, vram, page, scenario)
}

/// [`boot_scenario`] under `engine` (`qemu` or `kvm`).
pub fn boot_scenario_on(
    engine: &str,
    name: &str,
    vram: &str,
    page: &str,
    scenario: &str,
) -> Option<Value> {
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
) -> Option<Value> {
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
    let show = serde_json::to_string_pretty(&report).unwrap_or_default();
    assert_eq!(
        report["guest_log_problems"],
        serde_json::json!([]),
        "{show}"
    );
    assert_eq!(report["host"]["vram_trapped_accesses"], 0, "{show}");
    // QEMU printed no warning (e.g. "Could not enable error recovery": the ERR irq is served).
    assert_eq!(report["engine_warnings"], serde_json::json!([]), "{show}");
    assert_eq!(code, 0, "vmm failed; report:\n{show}");
    assert_eq!(report["pass"], true, "{show}");
    Some(report)
}

/// Whether the guest's driver has the `range-mm` strategy (a kernel with `vmf_insert_range`).
pub fn has_insert_range(report: &Value) -> bool {
    report["guest_driver"]["insert_range"] == true
}

/// The results of the guest scenario `name` in `report`.
pub fn scenarios_named<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    let found: Vec<&Value> = report["scenarios"]
        .as_array()
        .map(|all| all.iter().filter(|s| s["scenario"] == name).collect())
        .unwrap_or_default();
    assert!(!found.is_empty(), "no {name} result in {report:#}");
    found
}
