//! Range-insertion boot tests: the fault-count matrix, mapping semantics and touch-all, each on
//! a real guest. Shared plumbing lives in `common/`.

mod common;

use serde_json::Value;

use common::{boot_scenario, scenarios_named};

/// Runs the `faults` scenario on a device with `page` preferred pages and checks every
/// strategy's fault count against the formula exactly.
fn fault_matrix(vram: &str, page: &str, page_bytes: u64) {
    let Some(report) = boot_scenario(&format!("faults-{vram}-{page}"), vram, page, "faults") else {
        return;
    };
    let results = scenarios_named(&report, "faults");
    let strategies: Vec<&str> = results
        .iter()
        .filter_map(|r| r["strategy"].as_str())
        .collect();
    assert_eq!(strategies, ["page", "prefault16", "range"], "{report:#}");
    for result in &results {
        let show = serde_json::to_string(result).unwrap_or_default();
        assert_eq!(result["page_size"], page_bytes, "{show}");
        assert!(result["faults"].as_u64() > Some(0), "{show}");
        assert_eq!(result["faults"], result["expected_faults"], "{show}");
        assert_eq!(result["host_to_guest"], true, "{show}");
        assert_eq!(result["guest_to_host"], true, "{show}");
        assert_eq!(result["pass"], true, "{show}");
    }
    // The levels the faults were served at are what the strategy and size call for.
    let range = results
        .iter()
        .find(|r| r["strategy"] == "range")
        .expect("range result");
    let (pte, pmd, pud) = (
        &range["faults_pte"],
        &range["faults_pmd"],
        &range["faults_pud"],
    );
    match page_bytes {
        p if p >= 1 << 30 => assert!(pud.as_u64() > Some(0) && pte == 0 && pmd == 0, "{range}"),
        p if p >= 2 << 20 => assert!(pmd.as_u64() > Some(0) && pte == 0 && pud == 0, "{range}"),
        _ => assert!(pte.as_u64() > Some(0) && pmd == 0 && pud == 0, "{range}"),
    }
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
    let result: &Value = scenarios_named(&report, "semantics")[0];
    let checks = result["checks"].as_array().expect("checks");
    assert!(checks.len() >= 14, "{result:#}");
    for check in checks {
        assert_eq!(check["pass"], true, "{check}");
    }
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
    assert_eq!(result["pass"], true, "{result}");
}
