//! The KVM engine booting Linux here, on a host without hardware virtualization: `vmm run
//! --engine kvm-nested` boots an outer guest under QEMU TCG whose CPU (`-cpu max`) has svm and
//! npt, the outer kernel's kvm_amd gives it a real /dev/kvm, and a static vmm inside runs the
//! inner guest under *our* KVM engine with 2 vCPUs and the default command line. The
//! assertions are `kvm_boot.rs`'s (the fault formula, the host check with the CR3 cross-check,
//! VRAM as a memslot with no trapped access), plus that the inner vmm chose KVM by itself.

mod common;

use common::kvm::{assert_kvm_faults, assert_kvm_semantics, assert_vram_was_a_memslot};
use common::{boot_scenario_on, BootReport};
use rangefault_report::ScenarioResult;

fn boot_nested(name: &str, vram: &str, page: &str, scenario: &str) -> Option<BootReport> {
    let report = boot_scenario_on("kvm-nested", name, vram, page, scenario)?;
    let nested = report
        .nested
        .as_ref()
        .expect("a kvm-nested report has its outer view");
    assert_eq!(nested.engine, "kvm-nested", "{report}");
    assert_eq!(nested.inner_vmm_exit, Some(0), "{report}");
    assert!(!nested.outer.timed_out, "{report}");
    let reason = &report.engine_reason;
    assert!(
        reason.starts_with("auto:") && reason.contains("svm"),
        "{report}"
    );
    eprintln!(
        "{name}: outer wall {:.1} s, inner boot-to-bound {:.1} s, inner wall {:.1} s",
        nested.outer.wall_s,
        report.timing.boot_to_bound_s.unwrap_or(-1.0),
        report.timing.wall_s
    );
    Some(report)
}

#[test]
fn skeleton_nested_kvm() {
    let Some(report) = boot_nested("nested-skeleton", "256M", "64K", "skeleton") else {
        return;
    };
    assert_vram_was_a_memslot(&report);
    let scenario = report.results(ScenarioResult::skeleton)[0];
    assert!(scenario.pass, "{report}");
    let driver = report.guest_driver.as_ref().expect("the driver bound");
    assert_eq!(driver.vram_size, Some(256 << 20), "{report}");
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
