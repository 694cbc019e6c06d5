//! One cell of the benchmark: map with one subject, touch in one order, unmap, and what each
//! step cost as the process sees it (guest clock: instructions under `vmm run --icount`), plus
//! the driver's own counters where our driver served the faults.

use std::time::Instant;

use rangefault_abi::touch::TouchOrder;
use serde::Serialize;

use super::subject::Subject;
use crate::phase::Phase;
use crate::uapi::{Device, FaultLatency, HostCheck};
use crate::vmap::minor_faults;
use crate::ProbeError;

#[derive(Serialize)]
pub struct BenchCell {
    pub scenario: &'static str,
    pub pass: bool,
    pub round: usize,
    pub subject: &'static str,
    pub kind: &'static str,
    pub order: &'static str,
    /// The PCI function whose BAR2 was mapped.
    pub bdf: String,
    /// The preferred page size of the device (rangefault's; the same device model for peers).
    pub page_size: u64,
    pub mapped_bytes: u64,
    pub touches: u64,
    /// `ru_minflt` over the touch loop: the faults the process took.
    pub faults: u64,
    /// mmap(2), the touch loop, munmap(2): guest clock ns.
    pub map_ns: u64,
    pub touch_ns: u64,
    pub unmap_ns: u64,
    /// Page-table pages the mapping grew (`VmPTE` after the touch minus before the mmap).
    pub vm_pte_bytes: u64,
    /// Our driver's counters over the touch (strategies only).
    pub driver: Option<DriverCost>,
    /// `vma_lock_retry` delta: faults redone under the mmap lock (None without the stats).
    pub vma_lock_retries: Option<u64>,
}

#[derive(Serialize)]
pub struct DriverCost {
    pub faults: u64,
    pub faults_pte: u64,
    pub faults_pmd: u64,
    pub faults_pud: u64,
    pub fallbacks: u64,
    pub handler_calls: u64,
    pub pte_inserts: u64,
    pub pmd_inserts: u64,
    pub pud_inserts: u64,
    /// Time inside the driver's fault handlers, summed over levels.
    pub handler_ns: u64,
    pub fault_latency: FaultLatency,
    /// The host's walk of the mapping after the touch: every page where the strategy says.
    pub host_check: HostCheck,
}

fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix(field)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

fn vmstat(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Where a cell runs: our device (opened), its preferred page size and VRAM.
pub struct Bench<'a> {
    pub device: &'a Device,
    pub bdf: &'a str,
    pub page_size: u64,
    pub vram_size: u64,
}

impl Bench<'_> {
    pub fn cell(
        &self,
        subject: &Subject,
        order: TouchOrder,
        round: usize,
    ) -> Result<BenchCell, ProbeError> {
        let len = subject.mapped_bytes(self.vram_size);
        let ours = matches!(subject, Subject::Strategy(_));
        let pte_before = status_kib("VmPTE:");
        let retries_before = vmstat("vma_lock_retry");

        let started = Instant::now();
        let mapped = {
            let _mapping = Phase::begin("map");
            subject.map(self.device, self.page_size, len)?
        };
        let map_ns = started.elapsed().as_nanos() as u64;
        if ours {
            self.device.reset_stats()?;
        }

        let mapping = &mapped.mapping;
        let minflt_before = minor_faults();
        let touching = Phase::begin("touch");
        let started = Instant::now();
        let mut sum = 0u64;
        for offset in order.offsets(len) {
            sum = sum.wrapping_add(mapping.read64(offset as usize));
        }
        let touch_ns = started.elapsed().as_nanos() as u64;
        drop(touching);
        std::hint::black_box(sum);
        let faults = minor_faults() - minflt_before;
        let pte_after = status_kib("VmPTE:");

        let driver = if ours {
            let stats = self.device.stats()?;
            let fault_latency = self.device.latency()?;
            let host_check = {
                let _checking = Phase::begin("check");
                match order {
                    TouchOrder::Strided => {
                        self.device.check_mapped_pages(mapping.va(), mapping.len)?
                    }
                    _ => self.device.check(mapping.va(), mapping.len, 0, None)?,
                }
            };
            Some(DriverCost {
                faults: stats.faults(),
                faults_pte: stats.faults_pte,
                faults_pmd: stats.faults_pmd,
                faults_pud: stats.faults_pud,
                fallbacks: stats.fallbacks,
                handler_calls: stats.handler_calls,
                pte_inserts: stats.pte_inserts,
                pmd_inserts: stats.pmd_inserts,
                pud_inserts: stats.pud_inserts,
                handler_ns: [&fault_latency.pte, &fault_latency.pmd, &fault_latency.pud]
                    .iter()
                    .map(|l| l.sum_ns)
                    .sum(),
                fault_latency,
                host_check,
            })
        } else {
            None
        };

        let started = Instant::now();
        drop(mapped);
        let unmap_ns = started.elapsed().as_nanos() as u64;
        let retries = retries_before
            .zip(vmstat("vma_lock_retry"))
            .map(|(a, b)| b - a);

        // Every subject must have taken the faults it needed and no more than one per touch;
        // our strategies must also pass the host's walk. The exact count is the host's to
        // check (fault-bench replays the order against each subject's window).
        let touches = order.touches(len);
        let pass = faults <= touches
            && driver
                .as_ref()
                .is_none_or(|d| d.host_check.pass && d.faults > 0 && faults >= d.faults);
        Ok(BenchCell {
            scenario: "bench",
            pass,
            round,
            subject: subject.name(),
            kind: subject.kind(),
            order: order.name(),
            bdf: match subject {
                Subject::VfioPci(peer) => peer.bdf.clone(),
                _ => self.bdf.to_owned(),
            },
            page_size: self.page_size,
            mapped_bytes: len,
            touches,
            faults,
            map_ns,
            touch_ns,
            unmap_ns,
            vm_pte_bytes: pte_before
                .zip(pte_after)
                .map_or(0, |(a, b)| b.saturating_sub(a) << 10),
            driver,
            vma_lock_retries: retries,
        })
    }
}
