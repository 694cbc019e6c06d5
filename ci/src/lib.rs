//! What the boot tests (`tests/common`) and `fault-bench` share: where the repository is, how
//! the vmm binary is built, and how one `vmm run` with a JSON report goes. The boot tests
//! themselves live in `tests/`. [`bench`] is `fault-bench`'s library: the fault model, the
//! checks, the results and their tables and plots.

// The unit tests' made-up reports are deep `json!` literals.
#![recursion_limit = "256"]

pub mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use rangefault_report::ScenarioResult;
use serde_json::Value;
use vmm::report::Report;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the release vmm binary into `target_dir` and returns its path.
pub fn build_vmm(target_dir: &Path) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "vmm", "--target-dir"])
        .arg(target_dir)
        .current_dir(repo())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building vmm failed ({status})"));
    }
    Ok(target_dir.join("release/vmm"))
}

/// Where the boot tests and `fault-bench` build vmm: beside cargo's target dir when
/// `CARGO_TARGET_DIR` names one (`ci-release`), else the clone's `target/ci`. Never cargo's own
/// dir: a `cargo test` holds its lock while the tests run.
pub fn vmm_build_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| PathBuf::from(dir).join("ci-release"))
        .unwrap_or_else(|| repo().join("target/ci"))
}

/// Reads a report as JSON (`fault-bench` reads stored reports this way: it needs only their
/// cells and devices, and reports written by older vmm builds still have those).
pub fn read_report(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("no report: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("report is not JSON: {e}"))
}

/// A `vmm run` report in vmm's own types (the guest's results in `rangefault-report`'s), and
/// its JSON, which failure messages show (`{report}`).
pub struct BootReport {
    pub report: Report,
    pub json: Value,
}

impl BootReport {
    /// Reads `path`; a report that is not vmm's `Report` (a field renamed on one side) is an
    /// error.
    pub fn read(path: &Path) -> Result<Self, String> {
        let json = read_report(path)?;
        let report = serde_json::from_value(json.clone())
            .map_err(|e| format!("the report is not vmm's Report type ({e}): {json:#}"))?;
        Ok(BootReport { report, json })
    }

    /// The results of one probe scenario, e.g. `report.results(ScenarioResult::soak)`;
    /// panics when there are none (a test that looks for a result expects one).
    pub fn results<'a, T>(
        &'a self,
        pick: impl Fn(&'a ScenarioResult) -> Option<&'a T>,
    ) -> Vec<&'a T> {
        let found = rangefault_report::scenario::of(&self.report.scenarios, pick);
        assert!(!found.is_empty(), "no such result in {self}");
        found
    }
}

impl std::ops::Deref for BootReport {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.report
    }
}

impl std::fmt::Display for BootReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.json)
    }
}

/// Runs `vmm run ARGS --report REPORT` (a stale report removed first) and returns its exit
/// status and the report it wrote.
pub fn run_vmm(
    vmm: &Path,
    args: &[&str],
    report: &Path,
) -> Result<(ExitStatus, BootReport), String> {
    let _ = std::fs::remove_file(report);
    let status = Command::new(vmm)
        .arg("run")
        .args(args)
        .arg("--report")
        .arg(report)
        .status()
        .map_err(|e| format!("cannot run vmm: {e}"))?;
    let report = BootReport::read(report).map_err(|e| format!("{e}; vmm exit {status}"))?;
    Ok((status, report))
}
