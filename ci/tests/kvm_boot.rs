//! The range-insertion boot tests under `--engine kvm`: the real guest kernel on rangefault's own
//! KVM VMM, VRAM as a memslot over the device's memfd, and the host page-table check walking
//! guest RAM directly with the CR3 cross-check on. A subset of `range_insertion.rs` (faults at
//! 64K and 2M, semantics at 2M), plus what only KVM can tell: every check's ROOT was the page
//! table the ringing vCPU ran on.
//!
//! Linux boots under KVM only with hardware virtualization; elsewhere (no vmx/svm, or the
//! paravirtual `kvm_pvm` module, which cannot boot Linux) these tests print `SKIPPED: ...` and
//! pass: `nested_kvm_boot.rs` runs the same assertions everywhere, with the KVM engine inside a
//! QEMU TCG guest.

mod common;

use std::io::Write;

use vmm::hostvirt::HostVirt;

use common::kvm::{assert_kvm_faults, assert_kvm_semantics};
use common::{boot_scenario_on, BootReport};

/// Boots `scenario` under KVM; None (after a visible SKIPPED line) where that cannot work (by
/// the rule `vmm run --engine auto` uses: vmm's own `HostVirt`).
fn boot_on_kvm(name: &str, vram: &str, page: &str, scenario: &str) -> Option<BootReport> {
    let host = HostVirt::detect();
    if !host.kvm_boots_linux() {
        let why = host.explain();
        // Straight to stderr: the test harness captures `eprintln!` of passing tests, and a skip
        // must show in the CI log.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: {name}: {why}; the KVM boot tests did not run"
        );
        return None;
    }
    let report = boot_scenario_on("kvm", name, vram, page, scenario)?;
    assert_eq!(report.engine, "kvm", "{report}");
    Some(report)
}

/// The `faults` scenario at `page`: every strategy's fault count is the formula's, the host saw
/// the touched range present and WC, and every root was the vCPU's CR3.
fn faults(vram: &str, page: &str, page_bytes: u64) {
    let name = format!("kvm-faults-{vram}-{page}");
    if let Some(report) = boot_on_kvm(&name, vram, page, "faults") {
        assert_kvm_faults(&report, page_bytes);
    }
}

#[test]
fn faults_64k_on_kvm() {
    faults("256M", "64K", 64 << 10);
}

#[test]
fn faults_2m_on_kvm() {
    faults("1G", "2M", 2 << 20);
}

#[test]
fn semantics_2m_on_kvm() {
    if let Some(report) = boot_on_kvm("kvm-semantics-2M", "1G", "2M", "semantics") {
        assert_kvm_semantics(&report);
    }
}
