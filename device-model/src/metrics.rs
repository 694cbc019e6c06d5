//! Counters that any thread bumps and that write themselves into a report as their current
//! value (firecracker's `SharedIncMetric` pattern): a struct of them derives `Serialize` and
//! goes into the JSON as it is, with no snapshot copy and no hand mapping to keep in step.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A count, bumped with relaxed atomics: each counts events of its own, nothing orders on it.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.get())
    }
}

/// A report read back (by the boot tests) holds the values counted.
impl<'de> Deserialize<'de> for Counter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        u64::deserialize(deserializer).map(|n| Counter(AtomicU64::new(n)))
    }
}

/// What both engines count where the guest meets the device.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BoundaryCounters {
    pub config_accesses: Counter,
    pub register_accesses: Counter,
    /// VRAM accesses that reached the VMM instead of going straight to the memfd (BAR2 not
    /// mapped, or a trapped access); a healthy run has none.
    pub vram_trapped_accesses: Counter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_serialize_as_their_value() {
        #[derive(Default, Serialize)]
        struct Engine {
            #[serde(flatten)]
            boundary: BoundaryCounters,
            dma_maps: Counter,
        }
        let engine = Engine::default();
        engine.boundary.register_accesses.inc();
        engine.dma_maps.inc();
        engine.dma_maps.inc();
        assert_eq!(
            serde_json::to_value(&engine).unwrap(),
            serde_json::json!({
                "config_accesses": 0, "register_accesses": 1, "vram_trapped_accesses": 0,
                "dma_maps": 2,
            })
        );
        assert_eq!(engine.dma_maps.get(), 2);
    }
}
