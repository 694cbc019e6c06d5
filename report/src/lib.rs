//! The guest's result lines as types. `rangefault-probe` prints each result as
//! `RANGEFAULT-RESULT {json}`; the host (`vmm`'s report, `fault-bench`, the boot tests) reads
//! them back. One definition for both sides, so a field renamed in the guest cannot go
//! unnoticed on the host: a line that does not parse into these types is an error there.

pub mod bench;
pub mod host_check;
pub mod latency;

pub use bench::{BenchCell, DriverCost};
pub use host_check::{HostCheck, Leaves, Mismatch};
pub use latency::{FaultLatency, LatencySummary};
