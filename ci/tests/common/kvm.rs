//! What the KVM-engine boot tests assert beyond the QEMU ones, shared by the native
//! (`kvm_boot.rs`) and the nested (`nested_kvm_boot.rs`) runs.

use vmm::report::HostCounters;

use super::assertions::{assert_fault_matrix, assert_semantics};
use super::BootReport;

/// The KVM engine's own counters.
fn kvm_counters(report: &BootReport) -> &kvm_machine::Counters {
    match &report.host {
        HostCounters::Kvm(counters) => counters,
        HostCounters::VfioUser(_) => panic!("not a KVM run: {report}"),
    }
}

/// Every host check the guest asked for was cross-checked against the ringing vCPU's CR3 and
/// IA32_PAT and matched (the deliberately wrong expectations change the offset or the leaf size,
/// never the root), and the engine read one CR3 per doorbell.
pub fn assert_roots_were_cr3(report: &BootReport) {
    let checks = &report.host_checks;
    assert!(!checks.records.is_empty(), "{report}");
    for record in &checks.records {
        assert!(record.cr3.is_some_and(|c| c.matches), "{record:#?}");
        assert!(record.pat.is_some_and(|p| p.matches), "{record:#?}");
    }
    assert_eq!(
        kvm_counters(report).cr3_reads.get(),
        checks.total,
        "{report}"
    );
}

pub fn assert_vram_was_a_memslot(report: &BootReport) {
    assert_eq!(report.engine, "kvm", "{report}");
    assert!(kvm_counters(report).vram_slot_changes.get() > 0, "{report}");
}

pub fn assert_kvm_faults(report: &BootReport, page_bytes: u64) {
    assert_fault_matrix(report, page_bytes);
    assert_roots_were_cr3(report);
    assert_vram_was_a_memslot(report);
}

pub fn assert_kvm_semantics(report: &BootReport) {
    assert_semantics(report);
    assert_roots_were_cr3(report);
    assert_vram_was_a_memslot(report);
}
