//! What the KVM-engine boot tests assert beyond the QEMU ones, shared by the native
//! (`kvm_boot.rs`) and the nested (`nested_kvm_boot.rs`) runs.

use serde_json::Value;

use super::assertions::{assert_fault_matrix, assert_semantics};

/// Every host check the guest asked for was cross-checked against the ringing vCPU's CR3 and
/// IA32_PAT and matched (the deliberately wrong expectations change the offset or the leaf size,
/// never the root), and the engine read one CR3 per doorbell.
pub fn assert_roots_were_cr3(report: &Value) {
    let checks = &report["host_checks"];
    let records = checks["records"].as_array().expect("host_checks.records");
    assert!(!records.is_empty(), "{checks:#}");
    for record in records {
        assert_eq!(record["cr3"]["matches"], true, "{record:#}");
        assert_eq!(record["pat"]["matches"], true, "{record:#}");
    }
    assert_eq!(report["host"]["cr3_reads"], checks["total"], "{report:#}");
}

/// BAR2 was a memslot: placed at least once (never trapped: `boot_scenario` checked that).
pub fn assert_vram_was_a_memslot(report: &Value) {
    assert_eq!(report["engine"], "kvm", "{report:#}");
    assert!(
        report["host"]["vram_slot_changes"].as_u64() > Some(0),
        "{report:#}"
    );
}

/// The `faults` scenario under KVM at `page_bytes`: the formula's fault counts, the host's view,
/// and every root was the vCPU's CR3.
pub fn assert_kvm_faults(report: &Value, page_bytes: u64) {
    assert_fault_matrix(report, page_bytes);
    assert_roots_were_cr3(report);
    assert_vram_was_a_memslot(report);
}

/// The `semantics` scenario under KVM.
pub fn assert_kvm_semantics(report: &Value) {
    assert_semantics(report);
    assert_roots_were_cr3(report);
    assert_vram_was_a_memslot(report);
}
