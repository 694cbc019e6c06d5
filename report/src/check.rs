//! A named check inside a scenario result.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub detail: String,
}

/// A check and how long it took (wall time: under TCG, and nested even more, the costly cases
/// are not the ones they are natively).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimedCheck {
    #[serde(flatten)]
    pub check: Check,
    pub ms: u64,
}
