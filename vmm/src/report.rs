//! The JSON report `vmm run --report FILE` writes.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::engine::vfio_server::ServerStatsSnapshot;

#[derive(Debug, Serialize)]
pub struct Report {
    pub engine: String,
    pub engine_reason: String,
    pub versions: Versions,
    /// The device as configured on the host.
    pub device: DeviceReport,
    /// What the guest driver reported when it bound (sizes in bytes).
    pub guest_driver: Option<GuestDriverView>,
    pub scenario: String,
    /// One entry per `RANGEFAULT-RESULT` line the guest printed.
    pub scenarios: Vec<Value>,
    pub guest_errors: Vec<String>,
    pub guest_exit_code: Option<i32>,
    /// Kernel oops/WARN/lockdep lines seen on the guest console.
    pub guest_log_problems: Vec<String>,
    pub host: ServerStatsSnapshot,
    pub host_errors: Vec<String>,
    pub timing: Timing,
    pub timed_out: bool,
    /// The overall verdict (also vmm's exit status).
    pub pass: bool,
}

#[derive(Debug, Serialize)]
pub struct Versions {
    pub vmm: &'static str,
    pub kernel_release: Option<String>,
    /// Packages of the image sysroot (QEMU, rustc, linux-source, ...).
    pub packages: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct DeviceReport {
    pub bdf: String,
    pub vendor_id: u16,
    pub device_id: u16,
    pub vram_size: u64,
    pub page_size: u64,
}

#[derive(Debug, Serialize)]
pub struct GuestDriverView {
    pub line: String,
    pub vram_size: Option<u64>,
    pub page_size: Option<u64>,
    pub bar2_address: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Timing {
    /// From starting the engine to the driver's "bound:" line.
    pub boot_to_bound_s: Option<f64>,
    pub wall_s: f64,
}
