//! One cell of the benchmark: map with one subject, touch in one order, unmap, and what each
//! step cost as the process sees it (guest clock: instructions under `vmm run --icount`), plus
//! the driver's own counters where our driver served the faults.

use std::time::Instant;

use rangefault_abi::touch::TouchOrder;
use rangefault_report::{BenchCell, DriverCost};

use super::subject::Subject;
use crate::phase::Phase;
use crate::uapi::Device;
use crate::vmap::minor_faults;
use crate::ProbeError;

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
                handler_ns: fault_latency.sum_ns(),
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
            pass,
            round: round as u64,
            subject: subject.name().into(),
            kind: subject.kind().into(),
            order: order.name().into(),
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
