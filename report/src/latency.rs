//! The driver's fault-latency histograms (`LATENCY` ioctl), summarised.

use rangefault_abi::uapi::LatencyLevel;
use serde::{Deserialize, Serialize};

/// One level's histogram, summarised (percentiles are bucket upper bounds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub sum_ns: u64,
    pub mean_ns: u64,
    pub p50_ns_le: u64,
    pub p99_ns_le: u64,
    pub max_ns: u64,
    /// Non-empty buckets as (upper bound ns, count); bucket `i` covers `[2^i, 2^(i+1))` ns.
    pub histogram: Vec<(u64, u64)>,
}

impl From<&LatencyLevel> for LatencySummary {
    fn from(level: &LatencyLevel) -> Self {
        let upper = |i: usize| 1u64.checked_shl(i as u32 + 1).unwrap_or(u64::MAX);
        let percentile = |p: u64| {
            let want = (level.count * p).div_ceil(100).max(1);
            let mut seen = 0;
            for (i, &n) in level.buckets.iter().enumerate() {
                seen += n;
                if seen >= want {
                    return upper(i);
                }
            }
            0
        };
        LatencySummary {
            count: level.count,
            sum_ns: level.sum_ns,
            mean_ns: level.sum_ns.checked_div(level.count).unwrap_or(0),
            p50_ns_le: if level.count > 0 { percentile(50) } else { 0 },
            p99_ns_le: if level.count > 0 { percentile(99) } else { 0 },
            max_ns: level.max_ns,
            histogram: level
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(i, &n)| (upper(i), n))
                .collect(),
        }
    }
}

/// Fault latency by the level a fault inserted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultLatency {
    pub pte: LatencySummary,
    pub pmd: LatencySummary,
    pub pud: LatencySummary,
}

impl FaultLatency {
    /// The levels by their report names, in order.
    pub const LEVELS: [&'static str; 3] = ["pte", "pmd", "pud"];

    pub fn level(&self, name: &str) -> Option<&LatencySummary> {
        match name {
            "pte" => Some(&self.pte),
            "pmd" => Some(&self.pmd),
            "pud" => Some(&self.pud),
            _ => None,
        }
    }

    /// Time in the handlers, all levels.
    pub fn sum_ns(&self) -> u64 {
        self.pte.sum_ns + self.pmd.sum_ns + self.pud.sum_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_summarises_to_bucket_bounds() {
        let mut level = LatencyLevel {
            count: 4,
            sum_ns: 4000,
            max_ns: 3000,
            ..LatencyLevel::default()
        };
        level.buckets[9] = 3; // [512, 1024)
        level.buckets[11] = 1; // [2048, 4096)
        let s = LatencySummary::from(&level);
        assert_eq!((s.mean_ns, s.p50_ns_le, s.p99_ns_le), (1000, 1024, 4096));
        assert_eq!(s.histogram, [(1024, 3), (4096, 1)]);
        assert_eq!(LatencySummary::from(&LatencyLevel::default()).p50_ns_le, 0);
    }
}
