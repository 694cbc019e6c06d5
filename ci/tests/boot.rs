//! Boot tests: boot the real guest kernel under the real QEMU with the
//! rangefault device served over vfio-user, and check the report.
//!
//! The guest image is built (and cached) on first use; a cold build takes
//! ~13 minutes. Only a host that cannot build it at all (not root) skips,
//! with a message; under CI nothing skips.

mod common;

use common::boot_scenario;
use rangefault_report::ScenarioResult;

/// The skeleton scenario on a device of `vram` / `page`. `boot_scenario` already asserts a
/// passing run, a clean guest log and zero trapped VRAM accesses.
fn check_skeleton(name: &str, vram: &str, page: &str, vram_bytes: u64, page_bytes: u64) {
    let Some(report) = boot_scenario(name, vram, page, "skeleton") else {
        return;
    };
    // The driver saw the configured sizes...
    let driver = report.guest_driver.as_ref().expect("the driver bound");
    assert_eq!(driver.vram_size, Some(vram_bytes), "{report}");
    assert_eq!(driver.page_size, Some(page_bytes), "{report}");
    // ...and so did the guest tool, through sysfs and the registers.
    let scenario = report.results(ScenarioResult::skeleton)[0];
    let device = &scenario.device;
    assert_eq!(device.vram_size, vram_bytes, "{report}");
    assert_eq!(device.bar2_size, vram_bytes, "{report}");
    assert_eq!(device.page_size, page_bytes, "{report}");
    assert_eq!(device.driver.as_deref(), Some("rangefault"), "{report}");
    for check in [
        "guest_to_host",
        "host_to_guest",
        "registers",
        "driver_bound",
        "bar2_matches_vram",
        "unbind_rebind",
        "rmmod",
    ] {
        let found = scenario
            .checks
            .iter()
            .find(|c| c.name == check)
            .unwrap_or_else(|| panic!("check {check} missing: {report}"));
        assert!(found.pass, "check {check} failed: {report}");
    }
    assert!(
        report.host.boundary().register_accesses.get() > 0,
        "{report}"
    );
    eprintln!(
        "{name}: boot-to-bound {:.1} s, wall {:.1} s",
        report.timing.boot_to_bound_s.unwrap_or(-1.0),
        report.timing.wall_s
    );
}

#[test]
fn skeleton_256m_vram_64k_pages() {
    check_skeleton("skeleton-256M-64K", "256M", "64K", 256 << 20, 64 << 10);
}

#[test]
fn skeleton_1g_vram_4m_pages() {
    check_skeleton("skeleton-1G-4M", "1G", "4M", 1 << 30, 4 << 20);
}
