//! The JSON report `vmm run --report FILE` writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use device_model::host_check::CheckStatus;
use device_model::{DeviceStats, HostCheckRecord, RangefaultDevice};
use serde::{Deserialize, Serialize};

pub use crate::engine::HostCounters;

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub engine: String,
    pub engine_reason: String,
    pub versions: Versions,
    /// The device the scenarios drove (the first one rangefault takes), as configured on the host.
    pub device: DeviceReport,
    /// Every device of the run (`--device`), in slot order, with the guest driver it was for.
    pub devices: Vec<DeviceEntry>,
    /// What the guest driver reported when it bound (sizes in bytes).
    pub guest_driver: Option<GuestDriverView>,
    pub scenario: String,
    /// One entry per `RANGEFAULT-RESULT` line the guest printed.
    pub scenarios: Vec<rangefault_report::GuestResult>,
    pub guest_errors: Vec<String>,
    pub guest_exit_code: Option<i32>,
    /// Kernel oops/WARN/lockdep lines seen on the guest console.
    pub guest_log_problems: Vec<String>,
    /// What the engine counted at the device's boundary (both engines'
    /// common counters, then the engine's own).
    pub host: HostCounters,
    /// The device's page-table checks (the guest reads each one's summary
    /// from BAR0 and puts it in its scenario result as `host_check`).
    pub host_checks: HostChecks,
    pub host_errors: Vec<String>,
    /// Warnings the engine printed (QEMU's `warning:` lines): a clean boot has none.
    pub engine_warnings: Vec<String>,
    pub timing: Timing,
    /// The fault trace (`--trace`): where it went and what it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::fault_trace::TraceReport>,
    pub timed_out: bool,
    /// The overall verdict (also vmm's exit status).
    pub pass: bool,
    /// `--engine kvm-nested`: the outer guest's view, added to the inner run's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nested: Option<NestedView>,
}

/// What the outer level of a kvm-nested run adds to the inner run's report.
#[derive(Debug, Serialize, Deserialize)]
pub struct NestedView {
    /// Always `kvm-nested` (the report's own `engine` is the inner run's, `kvm`).
    pub engine: String,
    pub engine_reason: String,
    pub outer: OuterGuest,
    /// The inner vmm's exit status, as the outer /init saw it.
    pub inner_vmm_exit: Option<i32>,
    /// Whether the inner vmm's report came out (else the report is built from the console).
    pub inner_report: bool,
    /// Why the outer level failed, if it did (also in `host_errors`).
    pub errors: Vec<String>,
}

/// The outer guest of a kvm-nested run: a QEMU TCG guest whose kernel runs the inner vmm.
#[derive(Debug, Serialize, Deserialize)]
pub struct OuterGuest {
    pub accelerator: String,
    pub cpu: String,
    pub memory: u64,
    pub cpus: u8,
    pub kernel_release: Option<String>,
    pub qemu_status: Option<String>,
    pub wall_s: f64,
    pub timed_out: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Versions {
    pub vmm: String,
    /// The checkout the guest image (kernel patches, driver, guest tools) was built from.
    #[serde(default)]
    pub source: SourceTree,
    pub kernel_release: Option<String>,
    /// Packages of the image sysroot (QEMU, rustc, linux-source, ...).
    pub packages: BTreeMap<String, String>,
}

/// A git checkout as a run found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceTree {
    /// `git rev-parse HEAD`; None where git or the repository is missing.
    pub commit: Option<String>,
    /// Whether tracked files differed from that commit.
    pub dirty: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceReport {
    pub bdf: String,
    pub vendor_id: u16,
    pub device_id: u16,
    pub vram_size: u64,
    pub page_size: u64,
    /// What the device model counted itself: config and BAR0 accesses,
    /// the bad ones among them, self-tests run.
    pub accesses: DeviceStats,
}

/// One device of the run.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub bdf: String,
    pub vram_size: u64,
    pub page_size: u64,
    /// The guest driver the device was given to (`rangefault`, `vfio-pci`).
    pub driver: String,
    pub accesses: DeviceStats,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GuestDriverView {
    pub line: String,
    pub vram_size: Option<u64>,
    pub page_size: Option<u64>,
    pub bar2_address: Option<u64>,
    /// Whether the driver was built for a kernel with `vmf_insert_range` (strategy range-mm).
    pub insert_range: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Timing {
    /// From starting the engine to the driver's first "bound:" line.
    pub boot_to_bound_s: Option<f64>,
    /// "bound:" lines seen: 1 for a plain boot, more when a guest program
    /// unbinds and rebinds the driver.
    pub binds: u64,
    /// From starting the engine to each "bound:" line, the first included
    /// (the first 1000; `binds` counts them all).
    pub bind_after_s: Vec<f64>,
    pub wall_s: f64,
    /// What the guest's clock counts: `real` time, or `icount` (`--icount`: one guest
    /// nanosecond per instruction, so the guest's timings are instruction counts).
    pub guest_clock: String,
}

/// Every host page-table check the guest asked for.
#[derive(Debug, Serialize, Deserialize)]
pub struct HostChecks {
    /// Doorbells rung (the device's SEQ).
    pub total: u64,
    /// Checks beyond the device's record limit, counted but not kept.
    pub dropped: u64,
    /// Kept checks per status ("pass", "mismatch", "walk_error",
    /// "bad_request", "unsupported"); absent statuses are 0.
    pub by_status: BTreeMap<String, u64>,
    /// One line per kept check, in order.
    pub summary: Vec<String>,
    /// The full records: the driver's registers, the device's expectations,
    /// the walk's verdict or the error.
    pub records: Vec<HostCheckRecord>,
}

impl HostChecks {
    /// Reads the records out of the device once the guest has stopped.
    pub fn of(device: &Mutex<RangefaultDevice>) -> Self {
        // Poisoned only if the server thread panicked; the records are still
        // whole and the more useful for it.
        let device = device.lock().unwrap_or_else(|e| e.into_inner());
        let records = device.host_checks().to_vec();
        let dropped = device.host_checks_dropped();
        let mut by_status: BTreeMap<String, u64> = [
            CheckStatus::Pass,
            CheckStatus::Mismatch,
            CheckStatus::WalkError,
            CheckStatus::BadRequest,
            CheckStatus::Unsupported,
        ]
        .into_iter()
        .map(|status| (status_name(status).to_owned(), 0))
        .collect();
        for record in &records {
            *by_status
                .entry(status_name(record.status).to_owned())
                .or_default() += 1;
        }
        HostChecks {
            total: records.len() as u64 + dropped,
            dropped,
            by_status,
            summary: records.iter().map(HostCheckRecord::summary).collect(),
            records,
        }
    }
}

/// The name a status has in the JSON records, for the per-status counts.
fn status_name(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Pass => "pass",
        CheckStatus::Mismatch => "mismatch",
        CheckStatus::WalkError => "walk_error",
        CheckStatus::BadRequest => "bad_request",
        CheckStatus::Unsupported => "unsupported",
    }
}

#[cfg(test)]
mod tests {
    use device_model::abi::check;
    use device_model::DeviceConfig;

    use super::*;

    #[test]
    fn host_checks_count_and_serialize() {
        let config = DeviceConfig::new(64 << 20, 4096).unwrap();
        let device = Mutex::new(RangefaultDevice::new(config).unwrap());
        {
            let mut d = device.lock().unwrap();
            // No BAR2 address: a bad request, recorded all the same.
            d.regs_write(check::LEN_LO, &0x1000u32.to_le_bytes());
            d.regs_write(check::DOORBELL, &check::RUN.to_le_bytes());
        }
        let checks = HostChecks::of(&device);
        assert_eq!((checks.total, checks.dropped), (1, 0));
        assert_eq!(checks.by_status["bad_request"], 1);
        assert_eq!(checks.by_status["pass"], 0);
        let json = serde_json::to_value(&checks).unwrap();
        // The status names used for the counts are the records' own.
        assert_eq!(json["records"][0]["status"], "bad_request");
        assert_eq!(json["records"][0]["seq"], 1);
        assert!(json["summary"][0].as_str().unwrap().contains("BAR2"));
    }
}
