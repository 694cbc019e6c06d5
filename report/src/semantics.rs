//! `semantics`: what a PFN mapping of VRAM must survive, one named check per case.

use serde::{Deserialize, Serialize};

use crate::TimedCheck;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SemanticsResult {
    pub pass: bool,
    pub page_size: u64,
    pub strategy: String,
    pub checks: Vec<TimedCheck>,
}
