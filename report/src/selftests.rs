//! `mm-selftests`: the kernel's own mm selftests (`pfnmap`, `mremap_test`), from their TAP output.

use serde::{Deserialize, Serialize};

/// One selftest binary's run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelftestRun {
    pub name: String,
    pub command: String,
    pub pass: bool,
    pub exit_code: Option<i32>,
    pub totals: Option<Totals>,
    /// `not ok` and `# SKIP` lines, for the report.
    pub problems: Vec<String>,
}

/// kselftest's closing `# Totals: pass:N fail:N xfail:N xpass:N skip:N error:N` line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub pass: u32,
    pub fail: u32,
    pub xfail: u32,
    pub xpass: u32,
    pub skip: u32,
    pub error: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelftestsResult {
    pub pass: bool,
    pub runs: Vec<SelftestRun>,
}
