//! The guest's result lines as types. `rangefault-probe` prints each result as
//! `RANGEFAULT-RESULT {json}` (a [`ScenarioResult`]); the host (`vmm`'s report, `fault-bench`,
//! the boot tests) reads them back. One definition for both sides, so a field renamed in the
//! guest cannot go unnoticed on the host: a line that does not parse into these types is an
//! error there.

pub mod bench;
pub mod check;
pub mod faults;
pub mod host_check;
pub mod latency;
pub mod robustness;
pub mod scenario;
pub mod selftests;
pub mod semantics;
pub mod skeleton;
pub mod trace_overhead;

pub use bench::{BenchCell, DriverCost};
pub use check::{Check, TimedCheck};
pub use faults::{FaultResult, TouchCost, TouchResult, WrongExpectation};
pub use host_check::{HostCheck, Leaves, Mismatch};
pub use latency::{FaultLatency, LatencySummary};
pub use robustness::{CaseResult, FaultInjectResult, KmemleakResult, SoakResult, WorkerCounts};
pub use scenario::{GuestResult, ScenarioResult, RESULT_PREFIX};
pub use selftests::{SelftestRun, SelftestsResult, Totals};
pub use semantics::SemanticsResult;
pub use skeleton::{DeviceView, SkeletonResult};
pub use trace_overhead::{Ratio, StrategyOverhead, TraceOverhead};
