//! The report's view of a trace: how many faults, and their latency percentiles by the level
//! they were counted at and by strategy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::faults::Story;

/// Nearest-rank percentiles of a set of durations, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(mut values: Vec<u64>) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable();
        let rank = |p: usize| values[(values.len() * p).div_ceil(100).max(1) - 1];
        Some(Self {
            count: values.len() as u64,
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: values[values.len() - 1],
        })
    }
}

/// Faults of one level or strategy.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FaultGroup {
    pub faults: u64,
    /// Time in the handler call that inserted (the driver's own `ns`).
    pub handler_ns: Option<Percentiles>,
    /// From the exception to that call's return (tracefs stamps microseconds, so these are
    /// multiples of 1000); faults without an exception in the trace are not in it.
    pub end_to_end_ns: Option<Percentiles>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TraceSummary {
    /// Events the guest's buffer held, and events it lost (buffer too small: --trace-buffer).
    pub events: u64,
    pub lost_events: u64,
    /// Faults on driver mappings (one per exception, however many handler calls it took).
    pub faults: u64,
    pub handler_calls: u64,
    /// Handler calls by the vm_fault_t they returned (`NOPAGE`, `FALLBACK`, ...).
    pub handler_results: BTreeMap<String, u64>,
    /// By the level the driver counted the fault at (`pte`, `pmd`, `pud`; `none` for a fault
    /// that inserted nothing: a refusal, or a window a racing thread mapped first).
    pub by_level: BTreeMap<String, FaultGroup>,
    pub by_strategy: BTreeMap<String, FaultGroup>,
    /// User page-fault exceptions that did not reach the driver (the program's own memory).
    pub other_user_faults: u64,
    /// Handler calls the trace has only one end of.
    pub incomplete_calls: u64,
    /// Scenario phases (ATrace markers) in order.
    pub phases: Vec<PhaseTime>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PhaseTime {
    pub name: String,
    /// None for a phase the trace has no end of.
    pub ns: Option<u64>,
}

pub fn summarize(story: &Story, events: u64, lost_events: u64) -> TraceSummary {
    let mut handler_results = BTreeMap::new();
    for call in story.faults.iter().flat_map(|f| &f.calls) {
        *handler_results.entry(call.result.clone()).or_insert(0) += 1;
    }
    let group = |key: &dyn Fn(&super::faults::Fault) -> String| {
        let mut samples: BTreeMap<String, (Vec<u64>, Vec<u64>)> = BTreeMap::new();
        for fault in &story.faults {
            let (handler, end_to_end) = samples.entry(key(fault)).or_default();
            handler.push(fault.last().ns);
            end_to_end.extend(fault.end_to_end_ns());
        }
        samples
            .into_iter()
            .map(|(name, (handler, end_to_end))| {
                let group = FaultGroup {
                    faults: handler.len() as u64,
                    handler_ns: Percentiles::of(handler),
                    end_to_end_ns: Percentiles::of(end_to_end),
                };
                (name, group)
            })
            .collect()
    };
    TraceSummary {
        events,
        lost_events,
        faults: story.faults.len() as u64,
        handler_calls: story.faults.iter().map(|f| f.calls.len() as u64).sum(),
        handler_results,
        by_level: group(&|fault| fault.last().level.clone()),
        by_strategy: group(&|fault| fault.last().strategy.clone()),
        other_user_faults: story.other_exceptions,
        incomplete_calls: story.incomplete_calls,
        phases: story
            .phases
            .iter()
            .map(|p| PhaseTime {
                name: p.name.clone(),
                ns: p.end_ns.map(|end| end - p.begin_ns),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).collect()).unwrap();
        assert_eq!(
            (p.count, p.p50, p.p90, p.p99, p.max),
            (100, 50, 90, 99, 100)
        );
        let one = Percentiles::of(vec![7]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7, 7, 7));
        let p = Percentiles::of(vec![5, 1, 3]).unwrap();
        assert_eq!((p.p50, p.p90, p.max), (3, 5, 5));
        assert_eq!(Percentiles::of(Vec::new()), None);
    }
}
