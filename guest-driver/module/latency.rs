// SPDX-License-Identifier: GPL-2.0

//! Fault-latency histograms. Rust functions carry no ftrace hooks (no `__fentry__`), so
//! function_graph cannot time our handlers: they time themselves, per level inserted.

use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::time::{Instant, Monotonic};

use crate::uapi::{self, LATENCY_BUCKETS as BUCKETS};

pub(crate) struct Histogram {
    count: Atomic<u64>,
    sum_ns: Atomic<u64>,
    max_ns: Atomic<u64>,
    buckets: [Atomic<u64>; BUCKETS],
}

impl Histogram {
    pub(crate) const fn new() -> Self {
        Self {
            count: Atomic::new(0),
            sum_ns: Atomic::new(0),
            max_ns: Atomic::new(0),
            buckets: [const { Atomic::new(0) }; BUCKETS],
        }
    }

    fn record(&self, ns: u64) {
        let bucket = (u64::BITS - 1 - (ns | 1).leading_zeros()) as usize;
        self.buckets[bucket.min(BUCKETS - 1)].add(1, Relaxed);
        self.count.add(1, Relaxed);
        self.sum_ns.add(ns, Relaxed);
        let mut max = self.max_ns.load(Relaxed);
        while ns > max {
            match self.max_ns.cmpxchg(max, ns, Relaxed) {
                Ok(_) => break,
                Err(now) => max = now,
            }
        }
    }

    fn snapshot(&self) -> uapi::LatencyLevel {
        let mut buckets = [0u64; BUCKETS];
        for (out, bucket) in buckets.iter_mut().zip(&self.buckets) {
            *out = bucket.load(Relaxed);
        }
        uapi::LatencyLevel {
            count: self.count.load(Relaxed),
            sum_ns: self.sum_ns.load(Relaxed),
            max_ns: self.max_ns.load(Relaxed),
            buckets,
        }
    }

    fn reset(&self) {
        for counter in [&self.count, &self.sum_ns, &self.max_ns]
            .into_iter()
            .chain(&self.buckets)
        {
            counter.store(0, Relaxed);
        }
    }
}

/// Which entry a fault ended up inserting.
#[derive(Clone, Copy)]
pub(crate) enum Level {
    Pte,
    Pmd,
    Pud,
}

pub(crate) struct FaultLatency {
    pte: Histogram,
    pmd: Histogram,
    pud: Histogram,
}

impl FaultLatency {
    pub(crate) const fn new() -> Self {
        Self {
            pte: Histogram::new(),
            pmd: Histogram::new(),
            pud: Histogram::new(),
        }
    }

    pub(crate) fn record(&self, level: Level, ns: u64) {
        match level {
            Level::Pte => self.pte.record(ns),
            Level::Pmd => self.pmd.record(ns),
            Level::Pud => self.pud.record(ns),
        }
    }

    pub(crate) fn snapshot(&self) -> uapi::Latency {
        uapi::Latency {
            pte: self.pte.snapshot(),
            pmd: self.pmd.snapshot(),
            pud: self.pud.snapshot(),
        }
    }

    pub(crate) fn reset(&self) {
        self.pte.reset();
        self.pmd.reset();
        self.pud.reset();
    }
}

/// Taken when a fault handler starts.
pub(crate) struct FaultTimer(Instant<Monotonic>);

impl FaultTimer {
    pub(crate) fn start() -> Self {
        Self(Instant::now())
    }

    pub(crate) fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
