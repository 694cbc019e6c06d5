//! `faults`, `faults-misaligned` and `touch-all`: one strategy's mapping touched page by page,
//! against the fault formula.

use serde::{Deserialize, Serialize};

use crate::{FaultLatency, HostCheck};

/// What touching a fresh mapping cost, seen by the driver (STATS, LATENCY), the process
/// (`ru_minflt`) and the host (CHECK over the mapping).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TouchCost {
    pub faults: u64,
    pub minflt: u64,
    pub faults_pte: u64,
    pub faults_pmd: u64,
    pub faults_pud: u64,
    pub fallbacks: u64,
    /// Every call of the driver's handlers (`faults` plus lost races and fallbacks).
    pub handler_calls: u64,
    /// Handler calls that found the address mapped already (`range-mm` only).
    pub already_mapped: u64,
    /// Entries inserted, by level.
    pub pte_inserts: u64,
    pub pmd_inserts: u64,
    pub pud_inserts: u64,
    /// From the first touch to the last, as the program sees it (exceptions, retries, TLB).
    pub touch_ns: u64,
    pub ns_per_fault: u64,
    /// The host's walk of this process's page tables over the mapping.
    pub host_check: HostCheck,
    /// The driver's own timing of each fault handler, by level inserted.
    pub fault_latency: FaultLatency,
}

/// One touch of a whole mapping against the fault formula (`touch-all`, `faults-misaligned`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TouchResult {
    pub pass: bool,
    pub page_size: u64,
    /// `rangefault_abi::uapi::Strategy::name`.
    pub strategy: String,
    pub va: String,
    pub touched_bytes: u64,
    pub expected_faults: u64,
    #[serde(flatten)]
    pub cost: TouchCost,
}

/// `faults`: a [`TouchResult`] plus data both ways and checks that must fail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultResult {
    #[serde(flatten)]
    pub touch: TouchResult,
    pub host_to_guest: bool,
    pub guest_to_host: bool,
    /// Checks with a deliberately wrong expectation: each must report a mismatch.
    pub wrong_expectations: Vec<WrongExpectation>,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrongExpectation {
    pub name: String,
    pub caught: bool,
    pub host_check: HostCheck,
}
