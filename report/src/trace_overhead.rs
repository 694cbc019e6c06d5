//! `trace-overhead`: what the fault trace's events cost, touch and handler, events on over off.

use serde::{Deserialize, Serialize};

/// Median, min and max of per-round ratios.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ratio {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Ratio {
    /// The summary of `values` (at least one).
    pub fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            median: values[values.len() / 2],
            min: values[0],
            max: values[values.len() - 1],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyOverhead {
    pub strategy: String,
    pub faults: u64,
    /// on / mean(off before, off after), per round.
    pub touch_on_over_off: Ratio,
    pub handler_on_over_off: Ratio,
    /// off after / off before, per round: the noise floor.
    pub touch_off_over_off: Ratio,
    pub handler_off_over_off: Ratio,
    /// Median touch time per fault with the events off and on (TCG time: context only).
    pub touch_ns_per_fault_off: u64,
    pub touch_ns_per_fault_on: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceOverhead {
    pub pass: bool,
    pub page_size: u64,
    pub touched_bytes: u64,
    pub rounds: usize,
    pub strategies: Vec<StrategyOverhead>,
}
