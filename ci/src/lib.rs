//! What the boot tests (`tests/common`) and `fault-bench` share: where the repository is, how
//! the vmm binary is built, and how one `vmm run` with a JSON report goes. The boot tests
//! themselves live in `tests/`. [`bench`] is `fault-bench`'s library: the fault model, the
//! checks, the results and their tables and plots.

// The unit tests' made-up reports are deep `json!` literals.
#![recursion_limit = "256"]

pub mod bench;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde_json::Value;

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

/// Reads a JSON report.
pub fn read_report(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("no report: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("report is not JSON: {e}"))
}

/// Runs `vmm run ARGS --report REPORT` (a stale report removed first) and returns its exit
/// status and the report it wrote.
pub fn run_vmm(vmm: &Path, args: &[&str], report: &Path) -> Result<(ExitStatus, Value), String> {
    let _ = std::fs::remove_file(report);
    let status = Command::new(vmm)
        .arg("run")
        .args(args)
        .arg("--report")
        .arg(report)
        .status()
        .map_err(|e| format!("cannot run vmm: {e}"))?;
    let value = read_report(report).map_err(|e| format!("{e}; vmm exit {status}"))?;
    Ok((status, value))
}
