//! Range-insertion boot tests: the fault-count matrix, mapping semantics and touch-all, each on
//! a real guest. Shared plumbing lives in `common/`.

mod common;

use common::assertions::{assert_fault_matrix, assert_semantics};
use common::{boot_scenario, boot_scenario_with};
use rangefault_report::ScenarioResult;

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
    let result = report.results(ScenarioResult::mm_selftests)[0];
    let names: Vec<&str> = result.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["pfnmap", "mremap_test"], "{result:#?}");
    for run in &result.runs {
        assert!(run.pass, "{run:#?}");
        let totals = run.totals.as_ref().expect("kselftest totals");
        assert!(totals.pass > 0, "{run:#?}");
        assert_eq!(totals.fail, 0, "{run:#?}");
    }
    let pfnmap = result.runs[0].totals.as_ref().expect("pfnmap totals");
    assert_eq!(pfnmap.skip, 0, "pfnmap skipped: {result:#?}");
}

#[test]
fn touch_all_64k_faults_vram_over_64k() {
    let Some(report) = boot_scenario("touch-all-64K", "1G", "64K", "touch-all") else {
        return;
    };
    let result = report.results(ScenarioResult::touch_all)[0];
    assert_eq!(result.cost.faults, (1u64 << 30) / (64 << 10), "{result:#?}");
    assert_eq!(result.cost.faults, result.expected_faults, "{result:#?}");
    assert!(result.cost.host_check.pass, "{result:#?}");
    assert!(result.pass, "{result:#?}");
}

/// Range insertion at 4 MiB over all of 1 GiB of VRAM, with the default strategy (`range-mm`
/// on the project's kernel): 256 faults, one per 4 MiB page, leaving exactly 512 2 MiB leaves,
/// all write-combining, as the host sees them.
#[test]
fn touch_all_4m_host_sees_512_pmd_leaves() {
    let Some(report) = boot_scenario("touch-all-4M", "1G", "4M", "touch-all") else {
        return;
    };
    let result = report.results(ScenarioResult::touch_all)[0];
    let host = &result.cost.host_check;
    assert_eq!(result.strategy, "range-mm", "{result:#?}");
    assert_eq!(result.cost.faults, 256, "{result:#?}");
    assert_eq!(result.cost.pmd_inserts, 512, "{result:#?}");
    assert!(host.pass, "{result:#?}");
    assert_eq!(host.leaves.m2, 512, "{result:#?}");
    assert_eq!(host.leaves.k4, 0, "{result:#?}");
    assert_eq!(host.leaves.g1, 0, "{result:#?}");
    assert_eq!(host.memtype, "WC", "{result:#?}");
}
