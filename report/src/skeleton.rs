//! `skeleton`: the driver bound the device, the guest sees the configured sizes, and data
//! crosses the VRAM BAR both ways.

use serde::{Deserialize, Serialize};

use crate::Check;

/// The device as the guest finds it in sysfs and BAR0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub bdf: String,
    pub driver: Option<String>,
    pub vram_size: u64,
    pub page_size: u64,
    pub bar2_address: u64,
    pub bar2_size: u64,
    pub abi_version: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkeletonResult {
    pub pass: bool,
    pub device: DeviceView,
    pub checks: Vec<Check>,
}
