//! The KVM engine booting Linux here, on a host without hardware virtualization: `vmm run
//! --engine kvm-nested` boots an outer guest under QEMU TCG whose CPU (`-cpu max`) has svm and
//! npt, the outer kernel's kvm_amd gives it a real /dev/kvm, and a static vmm inside runs the
//! inner guest under *our* KVM engine with 2 vCPUs and the default command line. The
//! assertions are `kvm_boot.rs`'s (the fault formula, the host check with the CR3 cross-check,
//! VRAM as a memslot with no trapped access), plus that the inner vmm chose KVM by itself.

mod common;

use serde_json::Value;

use common::boot_scenario_on;
use common::kvm::{assert_kvm_faults, assert_kvm_semantics, assert_vram_was_a_memslot};

/// Boots `scenario` in the nested setup; asserts the run passed at both levels.
fn boot_nested(name: &str, vram: &str, page: &str, scenario: &str) -> Option<Value> {
    let report = boot_scenario_on("kvm-nested", name, vram, page, scenario)?;
    let nested = &report["nested"];
    assert_eq!(nested["engine"], "kvm-nested", "{report:#}");
    assert_eq!(nested["inner_vmm_exit"], 0, "{report:#}");
    assert_eq!(nested["outer"]["timed_out"], false, "{report:#}");
    // `auto` inside the outer guest found hardware-style KVM (TCG's svm), and said so.
    let reason = report["engine_reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("auto:") && reason.contains("svm"),
        "{report:#}"
    );
    eprintln!(
        "{name}: outer wall {:.1} s, inner boot-to-bound {:.1} s, inner wall {:.1} s",
        nested["outer"]["wall_s"].as_f64().unwrap_or(-1.0),
        report["timing"]["boot_to_bound_s"].as_f64().unwrap_or(-1.0),
        report["timing"]["wall_s"].as_f64().unwrap_or(-1.0)
    );
    Some(report)
}

#[test]
fn skeleton_nested_kvm() {
    let Some(report) = boot_nested("nested-skeleton", "256M", "64K", "skeleton") else {
        return;
    };
    assert_vram_was_a_memslot(&report);
    let scenario = &report["scenarios"][0];
    assert_eq!(scenario["scenario"], "skeleton", "{report:#}");
    assert_eq!(scenario["pass"], true, "{report:#}");
    assert_eq!(report["guest_driver"]["vram_size"], 256 << 20, "{report:#}");
}

#[test]
fn faults_64k_nested_kvm() {
    if let Some(report) = boot_nested("nested-faults-64K", "256M", "64K", "faults") {
        assert_kvm_faults(&report, 64 << 10);
    }
}

#[test]
fn faults_2m_nested_kvm() {
    if let Some(report) = boot_nested("nested-faults-2M", "1G", "2M", "faults") {
        assert_kvm_faults(&report, 2 << 20);
    }
}

#[test]
fn semantics_2m_nested_kvm() {
    if let Some(report) = boot_nested("nested-semantics-2M", "1G", "2M", "semantics") {
        assert_kvm_semantics(&report);
    }
}
