//! The driver's char device: safe wrappers around its ioctls, whose structs, numbers and
//! strategies come from `rangefault_abi::uapi`, and the report's view of their results.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use rangefault_abi::check as c;
pub use rangefault_abi::uapi::{
    CheckArgs, Info, Latency, LatencyLevel, Stats, Strategy, CHECK, CHECK_CURRENT_STRATEGY, INFO,
    LATENCY, RESET_STATS, SET_ENABLED, SET_STRATEGY, STATS,
};
use serde::Serialize;

use crate::ProbeError;

pub const DEVICE_PATH: &str = "/dev/rangefault0";

/// A latency histogram summarised for the report (percentiles are bucket upper bounds).
#[derive(Clone, Debug, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub sum_ns: u64,
    pub mean_ns: u64,
    pub p50_ns_le: u64,
    pub p99_ns_le: u64,
    pub max_ns: u64,
    /// Non-empty buckets as (upper bound ns, count).
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

/// Fault latency by level, as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct FaultLatency {
    pub pte: LatencySummary,
    pub pmd: LatencySummary,
    pub pud: LatencySummary,
}

/// What the host found, as the guest reports it (`host_check` in each scenario result).
#[derive(Clone, Debug, Serialize)]
pub struct HostCheck {
    pub pass: bool,
    pub status: &'static str,
    pub pages: u32,
    pub present: u32,
    pub leaves: Leaves,
    /// Pages mapped correctly by smaller leaves than possible (THP disabled, an existing PTE
    /// table): not a mismatch.
    pub smaller_pages: u32,
    pub memtype: &'static str,
    pub first_mismatch: Option<Mismatch>,
    /// Index + 1 of the full record in the host report's `host_checks.records`.
    pub seq: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Leaves {
    #[serde(rename = "4K")]
    pub k4: u32,
    #[serde(rename = "2M")]
    pub m2: u32,
    #[serde(rename = "1G")]
    pub g1: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Mismatch {
    pub va: String,
    pub kind: &'static str,
}

impl From<CheckArgs> for HostCheck {
    fn from(a: CheckArgs) -> Self {
        let status = match a.status {
            c::STATUS_PASS => "pass",
            c::STATUS_MISMATCH => "mismatch",
            c::STATUS_WALK_ERROR => "walk_error",
            c::STATUS_BAD_REQUEST => "bad_request",
            c::STATUS_UNSUPPORTED => "unsupported",
            _ => "idle",
        };
        let memtype = match a.memtype {
            c::MEMTYPE_UC => "UC",
            c::MEMTYPE_WC => "WC",
            c::MEMTYPE_WT => "WT",
            c::MEMTYPE_WP => "WP",
            c::MEMTYPE_WB => "WB",
            c::MEMTYPE_UC_MINUS => "UC-",
            _ => "mixed",
        };
        let kind = match a.mismatch_kind {
            c::MISMATCH_NOT_PRESENT => Some("not_present"),
            c::MISMATCH_OUTSIDE_RANGE => Some("outside_range"),
            c::MISMATCH_WRONG_GPA => Some("wrong_gpa"),
            c::MISMATCH_WRONG_SIZE => Some("wrong_size"),
            c::MISMATCH_WRONG_MEMTYPE => Some("wrong_memtype"),
            c::MISMATCH_ROOT_NOT_CR3 => Some("root_not_cr3"),
            _ => None,
        };
        HostCheck {
            pass: a.status == c::STATUS_PASS,
            status,
            pages: a.pages,
            present: a.present,
            leaves: Leaves {
                k4: a.leaves_4k,
                m2: a.leaves_2m,
                g1: a.leaves_1g,
            },
            smaller_pages: a.smaller_pages,
            memtype,
            first_mismatch: kind.map(|kind| Mismatch {
                va: format!("{:#x}", a.mismatch_va),
                kind,
            }),
            seq: a.seq,
        }
    }
}

/// An open `/dev/rangefault0`.
pub struct Device {
    pub file: File,
}

impl Device {
    pub fn open() -> Result<Self, ProbeError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(DEVICE_PATH)
            .map_err(|e| ProbeError::io(DEVICE_PATH.as_ref(), e))?;
        Ok(Self { file })
    }

    fn ioctl<T>(&self, request: u32, arg: *mut T) -> Result<(), ProbeError> {
        // SAFETY: `arg` points to a live value of the size the request encodes (or is unused).
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request.into(), arg) };
        if rc < 0 {
            return Err(ProbeError::io(
                DEVICE_PATH.as_ref(),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    pub fn info(&self) -> Result<Info, ProbeError> {
        let mut info = Info::default();
        self.ioctl(INFO, &mut info)?;
        Ok(info)
    }

    pub fn stats(&self) -> Result<Stats, ProbeError> {
        let mut stats = Stats::default();
        self.ioctl(STATS, &mut stats)?;
        Ok(stats)
    }

    pub fn latency(&self) -> Result<FaultLatency, ProbeError> {
        let mut latency = Latency::default();
        self.ioctl(LATENCY, &mut latency)?;
        Ok(FaultLatency {
            pte: (&latency.pte).into(),
            pmd: (&latency.pmd).into(),
            pud: (&latency.pud).into(),
        })
    }

    pub fn set_strategy(&self, strategy: Strategy) -> Result<(), ProbeError> {
        let mut raw = strategy as u32;
        self.ioctl(SET_STRATEGY, &mut raw)
    }

    pub fn set_enabled(&self, enabled: bool) -> Result<(), ProbeError> {
        let mut raw = u32::from(enabled);
        self.ioctl(SET_ENABLED, &mut raw)
    }

    pub fn reset_stats(&self) -> Result<(), ProbeError> {
        self.ioctl(RESET_STATS, std::ptr::null_mut::<u8>())
    }

    /// Has the host check the page-table entries of `[va, va + len)` of one of our mappings.
    /// `strategy: None` expects the current strategy; `offset_delta` shifts the expected offset
    /// (non-zero only to prove the check can fail).
    pub fn check(
        &self,
        va: usize,
        len: usize,
        offset_delta: i64,
        strategy: Option<Strategy>,
    ) -> Result<HostCheck, ProbeError> {
        let mut args = CheckArgs {
            va: va as u64,
            len: len as u64,
            offset_delta,
            strategy: strategy.map_or(CHECK_CURRENT_STRATEGY, |s| s as u32),
            require_present: 1,
            ..CheckArgs::default()
        };
        self.ioctl(CHECK, &mut args)?;
        Ok(args.into())
    }

    /// Like [`Self::check`] with the current strategy, but pages not mapped yet pass: for a
    /// mapping touched only here and there. Those mapped must still be where and how big they
    /// should be.
    pub fn check_mapped_pages(&self, va: usize, len: usize) -> Result<HostCheck, ProbeError> {
        let mut args = CheckArgs {
            va: va as u64,
            len: len as u64,
            strategy: CHECK_CURRENT_STRATEGY,
            require_present: 0,
            ..CheckArgs::default()
        };
        self.ioctl(CHECK, &mut args)?;
        Ok(args.into())
    }

    /// Raw ioctl for tests of bad requests; returns errno on failure.
    pub fn raw_ioctl(&self, request: u32, arg: usize) -> Result<(), i32> {
        // SAFETY: the kernel validates `arg` as a user pointer; a bad one gives EFAULT.
        let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), request.into(), arg) };
        if rc < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(())
        }
    }
}
