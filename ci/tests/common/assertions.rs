//! Assertions on reports that more than one boot-test file makes.

use rangefault_report::{FaultResult, ScenarioResult, TouchResult};

use super::{has_insert_range, BootReport};

/// The `faults` scenario's results in `report` for a device with `page_bytes` preferred pages:
/// every strategy's fault count is the formula's exactly, data crossed both ways, the host saw
/// the touched range as the strategy calls for, and the deliberately wrong expectations failed.
pub fn assert_fault_matrix(report: &BootReport, page_bytes: u64) {
    let results = report.results(ScenarioResult::faults);
    let strategies: Vec<&str> = results.iter().map(|r| r.touch.strategy.as_str()).collect();
    // The CI kernel carries the project's mm patches, so range-mm runs beside the stock ones:
    // every strategy the ABI knows, in its order.
    assert!(has_insert_range(report), "{report}");
    let every: Vec<&str> = rangefault_abi::uapi::Strategy::ALL
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(strategies, every, "{report}");
    for result in &results {
        let touch = &result.touch;
        assert_eq!(touch.page_size, page_bytes, "{result:#?}");
        assert!(touch.cost.faults > 0, "{result:#?}");
        assert_eq!(touch.cost.faults, touch.expected_faults, "{result:#?}");
        assert!(result.host_to_guest, "{result:#?}");
        assert!(result.guest_to_host, "{result:#?}");
        assert!(touch.pass, "{result:#?}");
        assert_host_view(result, page_bytes);
    }
    // The host kept the full record of every check, the deliberately wrong ones included.
    let wrong: u64 = results
        .iter()
        .map(|r| r.wrong_expectations.len() as u64)
        .sum();
    assert!(wrong >= 3, "{report}");
    let by_status = &report.host_checks.by_status;
    assert_eq!(by_status.get("mismatch"), Some(&wrong), "{report}");
    // One passing check per strategy, and one for the misaligned range-mm mapping.
    assert_eq!(
        by_status.get("pass"),
        Some(&(results.len() as u64 + 1)),
        "{report}"
    );
    // The levels the faults were served at are what the strategy and size call for.
    let range = &results
        .iter()
        .find(|r| r.touch.strategy == "range")
        .expect("range result")
        .touch
        .cost;
    let (pte, pmd, pud) = (range.faults_pte, range.faults_pmd, range.faults_pud);
    match page_bytes {
        p if p >= 1 << 30 => assert!(pud > 0 && pte == 0 && pmd == 0, "{range:#?}"),
        p if p >= 2 << 20 => assert!(pmd > 0 && pte == 0 && pud == 0, "{range:#?}"),
        _ => assert!(pte > 0 && pmd == 0 && pud == 0, "{range:#?}"),
    }
    assert_range_mm(&results, page_bytes);
    assert_misaligned(
        report.results(ScenarioResult::faults_misaligned)[0],
        page_bytes,
    );
}

/// `range-mm` on a 4 KiB-incongruent mapping: one fault per window of the device page (at most
/// 4 MiB of PTEs), windows that straddle a 2 MiB VA boundary included; all 4 KiB leaves.
fn assert_misaligned(result: &TouchResult, page_bytes: u64) {
    let touched = result.touched_bytes;
    let per_fault = page_bytes.min(4 << 20);
    let cost = &result.cost;
    assert_eq!(result.strategy, "range-mm", "{result:#?}");
    assert_eq!(cost.faults, touched.div_ceil(per_fault), "{result:#?}");
    assert_eq!(cost.faults, result.expected_faults, "{result:#?}");
    assert_eq!(cost.pte_inserts, touched / 4096, "{result:#?}");
    assert!(cost.host_check.pass, "{result:#?}");
    assert_eq!(
        u64::from(cost.host_check.leaves.k4),
        touched / 4096,
        "{result:#?}"
    );
    assert!(result.pass, "{result:#?}");
}

/// `range-mm` at `page_bytes`: one fault per device page, each inserting exactly the entries
/// that page takes (a 4 MiB page: 2 PMDs in one fault; 64 KiB: 16 PTEs), no fallbacks, no lost
/// races (one thread), and every handler call a fault.
fn assert_range_mm(results: &[&FaultResult], page_bytes: u64) {
    let result = &results
        .iter()
        .find(|r| r.touch.strategy == "range-mm")
        .expect("range-mm result")
        .touch;
    let cost = &result.cost;
    let touched = result.touched_bytes;
    let faults = touched.div_ceil(page_bytes);
    assert_eq!(cost.faults, faults, "{result:#?}");
    assert_eq!(cost.handler_calls, faults, "{result:#?}");
    assert_eq!(cost.fallbacks, 0, "{result:#?}");
    assert_eq!(cost.already_mapped, 0, "{result:#?}");
    let (pte, pmd, pud) = match page_bytes {
        p if p >= 1 << 30 => (0, 0, touched >> 30),
        p if p >= 2 << 20 => (0, touched >> 21, 0),
        _ => (touched >> 12, 0, 0),
    };
    assert_eq!(cost.pte_inserts, pte, "{result:#?}");
    assert_eq!(cost.pmd_inserts, pmd, "{result:#?}");
    assert_eq!(cost.pud_inserts, pud, "{result:#?}");
    let at_level = match page_bytes {
        p if p >= 1 << 30 => cost.faults_pud,
        p if p >= 2 << 20 => cost.faults_pmd,
        _ => cost.faults_pte,
    };
    assert_eq!(at_level, faults, "{result:#?}");
}

/// The host's walk of the guest page tables agrees with the strategy: every touched page present,
/// write-combining, mapped by leaves of exactly the expected size; and the deliberately wrong
/// expectations were caught.
pub fn assert_host_view(result: &FaultResult, page_bytes: u64) {
    let touch = &result.touch;
    let host = &touch.cost.host_check;
    let touched = touch.touched_bytes;
    assert!(host.pass, "{result:#?}");
    assert_eq!(host.memtype, "WC", "{result:#?}");
    assert_eq!(u64::from(host.pages), touched / 4096, "{result:#?}");
    assert_eq!(u64::from(host.present), touched / 4096, "{result:#?}");
    let range = matches!(touch.strategy.as_str(), "range" | "range-mm");
    let leaf_bytes: u64 = match page_bytes {
        p if range && p >= 1 << 30 => 1 << 30,
        p if range && p >= 2 << 20 => 2 << 20,
        _ => 4 << 10,
    };
    for (bytes, count) in [
        (4u64 << 10, host.leaves.k4),
        (2 << 20, host.leaves.m2),
        (1 << 30, host.leaves.g1),
    ] {
        let want = if bytes == leaf_bytes {
            touched / leaf_bytes
        } else {
            0
        };
        assert_eq!(u64::from(count), want, "{bytes:#x} leaves: {result:#?}");
    }
    let wrong = &result.wrong_expectations;
    assert!(
        wrong.iter().any(|w| w.name == "offset_off_by_4k"),
        "{result:#?}"
    );
    if leaf_bytes != 4 << 10 {
        assert!(
            wrong
                .iter()
                .any(|w| w.name == "expect_4k_leaves_under_huge_entries"),
            "{result:#?}"
        );
    }
    for case in wrong {
        assert!(case.caught, "{result:#?}");
        assert!(!case.host_check.pass, "{result:#?}");
    }
}

/// Every check of the `semantics` scenario passed, for stock `range` and for `range-mm`.
pub fn assert_semantics(report: &BootReport) {
    let results = report.results(ScenarioResult::semantics);
    let strategies: Vec<&str> = results.iter().map(|r| r.strategy.as_str()).collect();
    assert_eq!(strategies, ["range", "range-mm"], "{report}");
    for result in results {
        assert!(result.checks.len() >= 23, "{result:#?}");
        for check in &result.checks {
            assert!(check.check.pass, "{} {check:#?}", result.strategy);
        }
    }
}
