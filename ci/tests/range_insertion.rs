//! Range-insertion boot tests: the fault-count matrix, mapping semantics and touch-all, each on
//! a real guest. Shared plumbing lives in `common/`.

mod common;

use common::assertions::{assert_fault_matrix, assert_semantics};
use common::{boot_scenario, scenarios_named};

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

/// Issue 5's acceptance: range insertion at 4 MiB over all of 1 GiB of VRAM leaves exactly 512
/// 2 MiB leaves, all write-combining, as the host sees them.
#[test]
fn touch_all_4m_host_sees_512_pmd_leaves() {
    let Some(report) = boot_scenario("touch-all-4M", "1G", "4M", "touch-all") else {
        return;
    };
    let result = scenarios_named(&report, "touch-all")[0];
    let host = &result["host_check"];
    assert_eq!(result["faults"], 512, "{result}");
    assert_eq!(host["pass"], true, "{result}");
    assert_eq!(host["leaves"]["2M"], 512, "{result}");
    assert_eq!(host["leaves"]["4K"], 0, "{result}");
    assert_eq!(host["leaves"]["1G"], 0, "{result}");
    assert_eq!(host["memtype"], "WC", "{result}");
}
