//! `fault-inject`, `soak` and the closing `kmemleak` scan (`robustness` runs all three).

use serde::{Deserialize, Serialize};

use crate::Check;

/// Outcome counts of one fault-injection case: a strategy on an aligned or misaligned mapping.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub strategy: String,
    pub misaligned: bool,
    pub pass: bool,
    pub sweep_steps: u32,
    /// The sweep reached an n the operation no longer got to.
    pub sweep_complete: bool,
    /// Failures injected (sweep: steps whose `fail-nth` read back 0; storm: `times` consumed).
    pub injected_sweep: u64,
    pub injected_storm_page_alloc: i64,
    pub injected_storm_slab: i64,
    pub open_enomem: u64,
    pub map_enomem: u64,
    /// Steps where the failure hit the touch or the copy and the touch retried transparently.
    pub touch_retried_clean: u64,
    pub copy_efault: u64,
    pub copy_short: u64,
    pub data_mismatches: u64,
    pub host_checks_passed: u64,
    pub refcnt_leaks: u64,
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultInjectResult {
    pub pass: bool,
    pub page_size: u64,
    pub injected_total: u64,
    pub cases: Vec<CaseResult>,
    pub disable_enable_after: bool,
    pub ms: u64,
}

/// One soak worker's counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerCounts {
    pub rounds: u64,
    pub pages_verified: u64,
    pub data_mismatches: u64,
    pub host_checks_passed: u64,
    pub host_checks_failed: u64,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoakResult {
    pub pass: bool,
    pub page_size: u64,
    pub rounds: u64,
    pub threads: usize,
    pub slice_bytes: usize,
    pub strategies: Vec<String>,
    pub zaps: u64,
    pub rebinds: u64,
    /// SIGBUS probes: a child touching a disabled or unbound device's mapping.
    pub sigbus_expected: u64,
    pub sigbus_seen: u64,
    /// Zaps after which the host still found an entry in the zapper's mapping.
    pub entries_after_zap: u64,
    pub host_checks_passed: u64,
    pub data_mismatches: u64,
    pub per_thread: Vec<WorkerCounts>,
    /// Regression test for the first bug the soak found (run before the soak).
    pub concurrent_host_checks_get_their_own_results: Check,
    pub problems: Vec<String>,
    pub wall_s: f64,
}

/// kmemleak's verdict: it scans only where the guest booted with `kmemleak=on` (else it passes,
/// saying so in `report`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KmemleakResult {
    pub pass: bool,
    pub enabled: bool,
    /// None when kmemleak was off.
    pub clean: Option<bool>,
    pub scan_ms: Option<u64>,
    /// What `/sys/kernel/debug/kmemleak` said (its leak marker defused), or why there is no scan.
    pub report: String,
}
