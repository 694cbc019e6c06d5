//! Range-insertion boot tests: the fault-count matrix, mapping semantics and touch-all, each on
//! a real guest. Shared plumbing lives in `common/`.

mod common;

use common::assertions::{assert_fault_matrix, assert_semantics};
use common::{boot_scenario, boot_scenario_with, scenarios_named};

/// Runs the `faults` scenario on a device with `page` preferred pages and checks every
/// strategy's fault count against the formula exactly (see `common::assertions`).
fn fault_matrix(vram: &str, page: &str, page_bytes: u64) {
    let Some(report) = boot_scenario(&format!("faults-{vram}-{page}"), vram, page, "faults") else {
        return;
    };
    assert_fault_matrix(&report, page_bytes);
}

#[test]
fn faults_4k() {
    fault_matrix("256M", "4K", 4 << 10);
}

#[test]
fn faults_64k() {
    fault_matrix("256M", "64K", 64 << 10);
}

#[test]
fn faults_2m() {
    fault_matrix("1G", "2M", 2 << 20);
}

#[test]
fn faults_4m() {
    fault_matrix("1G", "4M", 4 << 20);
}

#[test]
fn faults_1g() {
    fault_matrix("2G", "1G", 1 << 30);
}

/// 8 PMDs per `range-mm` fault (stock `range`: 8 faults).
#[test]
fn faults_16m() {
    fault_matrix("1G", "16M", 16 << 20);
}

/// 256 PMDs, two PMD tables' worth of locking, in one `range-mm` fault.
#[test]
fn faults_512m() {
    fault_matrix("1G", "512M", 512 << 20);
}

fn semantics(vram: &str, page: &str) {
    let Some(report) = boot_scenario(&format!("semantics-{page}"), vram, page, "semantics") else {
        return;
    };
    assert_semantics(&report);
}

#[test]
fn semantics_2m() {
    semantics("1G", "2M");
}

#[test]
fn semantics_64k() {
    semantics("256M", "64K");
}

/// A 4 MiB page is a pair of PMDs: partial munmap of the pair, mremap of half of it.
#[test]
fn semantics_4m() {
    semantics("1G", "4M");
}

/// PUD leaves: mremap moves them (the kernel used to log "bad pud" and clear them), a partial
/// move splits them; the console scan flags any such message.
#[test]
fn semantics_1g() {
    semantics("2G", "1G");
}

/// The kernel's own mm selftests from the guest's tree: `pfnmap -- /dev/rangefault0` must run
/// every test (it maps the node read-only, shared) and pass; `mremap_test` must pass.
#[test]
fn kernel_mm_selftests() {
    // mremap_test moves 2 GiB regions: without swap, overcommit refuses them in less RAM.
    let Some(report) = boot_scenario_with(
        "qemu",
        "mm-selftests",
        "256M",
        "2M",
        "mm-selftests",
        &["--memory", "4G"],
    ) else {
        return;
    };
    let result = scenarios_named(&report, "mm-selftests")[0];
    let runs = result["runs"].as_array().expect("runs");
    let names: Vec<&str> = runs.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["pfnmap", "mremap_test"], "{result:#}");
    for run in runs {
        assert_eq!(run["pass"], true, "{run:#}");
        assert!(run["totals"]["pass"].as_u64() > Some(0), "{run:#}");
        assert_eq!(run["totals"]["fail"], 0, "{run:#}");
    }
    assert_eq!(runs[0]["totals"]["skip"], 0, "pfnmap skipped: {result:#}");
}

#[test]
fn touch_all_64k_faults_vram_over_64k() {
    let Some(report) = boot_scenario("touch-all-64K", "1G", "64K", "touch-all") else {
        return;
    };
    let result = scenarios_named(&report, "touch-all")[0];
    assert_eq!(result["faults"], (1u64 << 30) / (64 << 10), "{result}");
    assert_eq!(result["faults"], result["expected_faults"], "{result}");
    assert_eq!(result["host_check"]["pass"], true, "{result}");
    assert_eq!(result["pass"], true, "{result}");
}

/// Range insertion at 4 MiB over all of 1 GiB of VRAM, with the default strategy (`range-mm`
/// on the project's kernel): 256 faults, one per 4 MiB page, leaving exactly 512 2 MiB leaves,
/// all write-combining, as the host sees them.
#[test]
fn touch_all_4m_host_sees_512_pmd_leaves() {
    let Some(report) = boot_scenario("touch-all-4M", "1G", "4M", "touch-all") else {
        return;
    };
    let result = scenarios_named(&report, "touch-all")[0];
    let host = &result["host_check"];
    assert_eq!(result["strategy"], "range-mm", "{result}");
    assert_eq!(result["faults"], 256, "{result}");
    assert_eq!(result["pmd_inserts"], 512, "{result}");
    assert_eq!(host["pass"], true, "{result}");
    assert_eq!(host["leaves"]["2M"], 512, "{result}");
    assert_eq!(host["leaves"]["4K"], 0, "{result}");
    assert_eq!(host["leaves"]["1G"], 0, "{result}");
    assert_eq!(host["memtype"], "WC", "{result}");
}
