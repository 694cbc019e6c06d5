//! Assertions on reports that more than one boot-test file makes.

use serde_json::Value;

use super::{has_insert_range, scenarios_named};

/// The `faults` scenario's results in `report` for a device with `page_bytes` preferred pages:
/// every strategy's fault count is the formula's exactly, data crossed both ways, the host saw
/// the touched range as the strategy calls for, and the deliberately wrong expectations failed.
pub fn assert_fault_matrix(report: &Value, page_bytes: u64) {
    let results = scenarios_named(report, "faults");
    let strategies: Vec<&str> = results
        .iter()
        .filter_map(|r| r["strategy"].as_str())
        .collect();
    // The CI kernel carries the project's mm patches, so range-mm runs beside the stock ones:
    // every strategy the ABI knows, in its order.
    assert!(has_insert_range(report), "{report:#}");
    let every: Vec<&str> = rangefault_abi::uapi::Strategy::ALL
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(strategies, every, "{report:#}");
    for result in &results {
        let show = serde_json::to_string(result).unwrap_or_default();
        assert_eq!(result["page_size"], page_bytes, "{show}");
        assert!(result["faults"].as_u64() > Some(0), "{show}");
        assert_eq!(result["faults"], result["expected_faults"], "{show}");
        assert_eq!(result["host_to_guest"], true, "{show}");
        assert_eq!(result["guest_to_host"], true, "{show}");
        assert_eq!(result["pass"], true, "{show}");
        assert_host_view(result, page_bytes);
    }
    // The host kept the full record of every check, the deliberately wrong ones included.
    let wrong: usize = results
        .iter()
        .map(|r| r["wrong_expectations"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(wrong >= 3, "{report:#}");
    assert_eq!(
        report["host_checks"]["by_status"]["mismatch"], wrong,
        "{report:#}"
    );
    // One passing check per strategy, and one for the misaligned range-mm mapping.
    assert_eq!(
        report["host_checks"]["by_status"]["pass"],
        results.len() + 1,
        "{report:#}"
    );
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
    assert_range_mm(&results, page_bytes);
    assert_misaligned(report, page_bytes);
}

/// `range-mm` on a 4 KiB-incongruent mapping: one fault per window of the device page (at most
/// 4 MiB of PTEs), windows that straddle a 2 MiB VA boundary included; all 4 KiB leaves.
fn assert_misaligned(report: &Value, page_bytes: u64) {
    let result = scenarios_named(report, "faults-misaligned")[0];
    let show = serde_json::to_string(result).unwrap_or_default();
    let touched = result["touched_bytes"].as_u64().expect("touched_bytes");
    let per_fault = page_bytes.min(4 << 20);
    assert_eq!(result["strategy"], "range-mm", "{show}");
    assert_eq!(result["faults"], touched.div_ceil(per_fault), "{show}");
    assert_eq!(result["faults"], result["expected_faults"], "{show}");
    assert_eq!(result["pte_inserts"], touched / 4096, "{show}");
    assert_eq!(result["host_check"]["pass"], true, "{show}");
    assert_eq!(
        result["host_check"]["leaves"]["4K"],
        touched / 4096,
        "{show}"
    );
    assert_eq!(result["pass"], true, "{show}");
}

/// `range-mm` at `page_bytes`: one fault per device page, each inserting exactly the entries
/// that page takes (a 4 MiB page: 2 PMDs in one fault; 64 KiB: 16 PTEs), no fallbacks, no lost
/// races (one thread), and every handler call a fault.
fn assert_range_mm(results: &[&Value], page_bytes: u64) {
    let result = results
        .iter()
        .find(|r| r["strategy"] == "range-mm")
        .expect("range-mm result");
    let show = serde_json::to_string(result).unwrap_or_default();
    let touched = result["touched_bytes"].as_u64().expect("touched_bytes");
    let faults = touched.div_ceil(page_bytes);
    assert_eq!(result["faults"], faults, "{show}");
    assert_eq!(result["handler_calls"], faults, "{show}");
    assert_eq!(result["fallbacks"], 0, "{show}");
    assert_eq!(result["already_mapped"], 0, "{show}");
    let (pte, pmd, pud) = match page_bytes {
        p if p >= 1 << 30 => (0, 0, touched >> 30),
        p if p >= 2 << 20 => (0, touched >> 21, 0),
        _ => (touched >> 12, 0, 0),
    };
    assert_eq!(result["pte_inserts"], pte, "{show}");
    assert_eq!(result["pmd_inserts"], pmd, "{show}");
    assert_eq!(result["pud_inserts"], pud, "{show}");
    let level = match page_bytes {
        p if p >= 1 << 30 => "faults_pud",
        p if p >= 2 << 20 => "faults_pmd",
        _ => "faults_pte",
    };
    assert_eq!(result[level], faults, "{show}");
}

/// The host's walk of the guest page tables agrees with the strategy: every touched page present,
/// write-combining, mapped by leaves of exactly the expected size; and the deliberately wrong
/// expectations were caught.
pub fn assert_host_view(result: &Value, page_bytes: u64) {
    let show = serde_json::to_string(result).unwrap_or_default();
    let host = &result["host_check"];
    let touched = result["touched_bytes"].as_u64().expect("touched_bytes");
    assert_eq!(host["pass"], true, "{show}");
    assert_eq!(host["memtype"], "WC", "{show}");
    assert_eq!(host["pages"], touched / 4096, "{show}");
    assert_eq!(host["present"], touched / 4096, "{show}");
    let leaf = match (result["strategy"].as_str(), page_bytes) {
        (Some("range" | "range-mm"), p) if p >= 1 << 30 => "1G",
        (Some("range" | "range-mm"), p) if p >= 2 << 20 => "2M",
        _ => "4K",
    };
    let leaf_bytes: u64 = match leaf {
        "1G" => 1 << 30,
        "2M" => 2 << 20,
        _ => 4 << 10,
    };
    for size in ["4K", "2M", "1G"] {
        let want = if size == leaf {
            touched / leaf_bytes
        } else {
            0
        };
        assert_eq!(host["leaves"][size], want, "{size} leaves: {show}");
    }
    let wrong = result["wrong_expectations"]
        .as_array()
        .expect("wrong_expectations");
    assert!(
        wrong.iter().any(|w| w["name"] == "offset_off_by_4k"),
        "{show}"
    );
    if leaf != "4K" {
        assert!(
            wrong
                .iter()
                .any(|w| w["name"] == "expect_4k_leaves_under_huge_entries"),
            "{show}"
        );
    }
    for case in wrong {
        assert_eq!(case["caught"], true, "{show}");
        assert_eq!(case["host_check"]["pass"], false, "{show}");
    }
}

/// Every check of the `semantics` scenario passed, for stock `range` and for `range-mm`.
pub fn assert_semantics(report: &Value) {
    let results = scenarios_named(report, "semantics");
    let strategies: Vec<&str> = results
        .iter()
        .filter_map(|r| r["strategy"].as_str())
        .collect();
    assert_eq!(strategies, ["range", "range-mm"], "{report:#}");
    for result in results {
        let checks = result["checks"].as_array().expect("checks");
        assert!(checks.len() >= 23, "{result:#}");
        for check in checks {
            assert_eq!(check["pass"], true, "{} {check}", result["strategy"]);
        }
    }
}
