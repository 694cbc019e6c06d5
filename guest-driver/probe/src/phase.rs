//! Scenario phases (map, touch, check) as slices of a fault trace (`vmm run --trace`).
//!
//! Each phase writes ATrace-style `B|pid|name` and `E|pid` lines to tracefs's `trace_marker`:
//! the convention systrace and Perfetto read as slices, which the host's converter turns into
//! slices of the same thread. Without tracefs mounted (no `--trace`) nothing is written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::OnceLock;

const TRACE_MARKER: &str = "/sys/kernel/tracing/trace_marker";

fn marker() -> Option<&'static File> {
    static MARKER: OnceLock<Option<File>> = OnceLock::new();
    MARKER
        .get_or_init(|| OpenOptions::new().write(true).open(TRACE_MARKER).ok())
        .as_ref()
}

/// A phase, from `begin` until dropped.
pub struct Phase(());

impl Phase {
    pub fn begin(name: &str) -> Self {
        write_marker(&format!("B|{}|{name}", std::process::id()));
        Self(())
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        write_marker(&format!("E|{}", std::process::id()));
    }
}

/// One write per marker: tracefs takes each write as one event. A failed write only loses the
/// slice, never the scenario.
fn write_marker(line: &str) {
    if let Some(mut file) = marker() {
        let _ = file.write_all(line.as_bytes());
    }
}
