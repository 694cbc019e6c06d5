//! The host page-table check (BAR0 registers [`crate::abi::check`]): the
//! guest driver describes a range of a process's mapping of VRAM, the device
//! walks the guest's page tables from the host side (with `page-walker`) and
//! judges whether they map that range onto BAR2 the way the driver's fault
//! strategy should.
//!
//! As vm-memory intends, the device consumes guest memory and the engine
//! provides it: an engine that can read guest RAM (vfio-user DMA regions,
//! KVM memslots) implements [`GuestAccess`] and installs it with
//! [`crate::RangefaultDevice::set_guest_access`]. The walk's own types
//! (leaf sizes, memory types, mismatches, the report) are page-walker's,
//! re-exported here; nothing here mentions any VMM crate.

mod checker;
mod cr3;
mod pat;
mod request;
mod walk;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use vm_memory::GuestMemoryMmap;

pub(crate) use checker::HostChecker;
#[cfg(test)]
pub(crate) use checker::{memtype_register, mismatch_kind_register};
pub use cr3::{root_matches_cr3, Cr3Check};
pub use page_walker::{CheckReport, Leaves, MemType, Mismatch, MismatchKind, PageSize};
pub use pat::PatCheck;
pub(crate) use request::DeviceView;
pub use request::{expected_max_leaf, MAX_CHECK_LEN};
pub use walk::walk;

/// How many check records the device keeps; later checks are only counted
/// (see [`crate::RangefaultDevice::host_checks_dropped`]), so a guest that
/// rings the doorbell in a loop cannot grow host memory without bound.
pub const MAX_RECORDS: usize = 1024;

/// What an engine lets the device see for a check: guest RAM and the CPU
/// that rang the doorbell.
///
/// Both are asked on the thread that delivered the doorbell write, while the
/// engine holds the device (typically its mutex): an implementation must not
/// touch the device again.
pub trait GuestAccess: Send + Sync {
    /// Guest RAM as of now; one check walks this snapshot, so the engine may
    /// change its view meanwhile.
    fn memory(&self) -> Arc<GuestMemoryMmap>;

    /// What the engine can tell about the CPU whose write rang the
    /// doorbell. It is asked once per valid request, before the walk; the
    /// default knows nothing, which skips the CR3 cross-check and leaves
    /// the driver's PAT to decode memory types.
    fn doorbell_cpu_state(&self) -> CpuState {
        CpuState::default()
    }
}

/// Guest RAM that never changes, from an engine that cannot read CPU state.
impl GuestAccess for Arc<GuestMemoryMmap> {
    fn memory(&self) -> Arc<GuestMemoryMmap> {
        Arc::clone(self)
    }
}

/// What the engine read from the CPU that rang the doorbell; a field it
/// could not read is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuState {
    /// CR3, cross-checked with ROOT ([`Cr3Check`]).
    pub cr3: Option<u64>,
    /// IA32_PAT: decodes the walk in place of the PAT registers, which are
    /// only compared with it ([`PatCheck`]).
    pub pat: Option<u64>,
}

/// The driver's fault strategy, as written into [`crate::abi::check::FLAGS`]: the ABI crate's.
pub use crate::abi::uapi::Strategy;

/// Strategies go into reports by the name the driver and the probe use.
fn strategy_name<S: serde::Serializer>(strategy: &Strategy, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(strategy.name())
}

/// A report read back: the strategy by its name.
fn strategy_by_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Strategy, D::Error> {
    let name = String::deserialize(d)?;
    Strategy::ALL
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown strategy {name:?}")))
}

/// What the device asks the engine to check: the driver's registers,
/// validated, plus what the device derives from its own configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// Guest-physical address of the top-level table (CR3; low bits are
    /// ignored by the walk).
    pub root: u64,
    /// First VA of the range; 4K-aligned.
    pub va: u64,
    /// Length in bytes; a non-zero 4K multiple, at most [`MAX_CHECK_LEN`].
    pub len: u64,
    /// The BAR2 offset `va` should map (what the driver wrote).
    pub offset: u64,
    /// The GPA `va` should map: BAR2's base address + `offset`.
    pub expected_gpa: u64,
    /// The guest's IA32_PAT MSR, which decodes memory types: the ringing
    /// vCPU's where the engine can read it, else the PAT registers.
    pub pat: u64,
    /// Five-level paging (CR4.LA57).
    pub la57: bool,
    /// Whether a not-present page in the range is a mismatch.
    pub require_present: bool,
    #[serde(
        serialize_with = "strategy_name",
        deserialize_with = "strategy_by_name"
    )]
    pub strategy: Strategy,
    /// The largest leaf the strategy may use here (see
    /// [`expected_max_leaf`]). A page may be mapped by any leaf up to the
    /// largest of at most this size that alignment and the range allow;
    /// smaller correct leaves pass and are counted in
    /// [`CheckReport::smaller_pages`], larger ones are
    /// [`MismatchKind::WrongSize`].
    pub max_leaf: PageSize,
}

/// The STATUS register's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Mismatch,
    WalkError,
    BadRequest,
    Unsupported,
}

impl CheckStatus {
    pub fn abi_value(self) -> u32 {
        use crate::abi::check;
        match self {
            CheckStatus::Pass => check::STATUS_PASS,
            CheckStatus::Mismatch => check::STATUS_MISMATCH,
            CheckStatus::WalkError => check::STATUS_WALK_ERROR,
            CheckStatus::BadRequest => check::STATUS_BAD_REQUEST,
            CheckStatus::Unsupported => check::STATUS_UNSUPPORTED,
        }
    }
}

/// The request registers exactly as the driver left them at the doorbell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRegisters {
    pub root: u64,
    pub va: u64,
    pub len: u64,
    pub offset: u64,
    pub pat: u64,
    pub flags: u32,
}

/// Everything about one doorbell, for the host's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCheckRecord {
    /// The SEQ register's value after this check (1 for the first).
    pub seq: u64,
    pub status: CheckStatus,
    /// What the driver wrote.
    pub registers: CheckRegisters,
    /// The validated request with the device's expectations; `None` for a
    /// bad request.
    pub request: Option<CheckRequest>,
    /// The walk's verdict; `None` unless the walk completed.
    pub outcome: Option<CheckReport>,
    /// Why there is no outcome: the bad request, the walk error, or the
    /// missing guest-RAM access.
    pub error: Option<String>,
    /// ROOT against the ringing vCPU's CR3; `None` where the engine cannot
    /// read it (QEMU) or there was no valid request. A mismatch makes the
    /// status `mismatch` even if the walk passed.
    pub cr3: Option<Cr3Check>,
    /// The ringing vCPU's IA32_PAT against the PAT registers; `None` where
    /// the engine cannot read it (QEMU) or there was no valid request. The
    /// vCPU's value decoded the walk; a disagreement does not change the
    /// status.
    pub pat: Option<PatCheck>,
}

impl HostCheckRecord {
    /// One line for logs and the report's summary.
    pub fn summary(&self) -> String {
        let mut line = format!("#{} {:?}", self.seq, self.status);
        if let Some(r) = &self.request {
            line += &format!(
                ": {:?} VA {:#x}+{:#x} -> GPA {:#x} (max leaf {})",
                r.strategy, r.va, r.len, r.expected_gpa, r.max_leaf
            );
        }
        if let Some(o) = &self.outcome {
            line += &format!(
                "; {}/{} pages present, leaves 4K={} 2M={} 1G={}, memtype {}",
                o.present,
                o.pages,
                o.leaves.k4,
                o.leaves.m2,
                o.leaves.g1,
                o.memtype
                    .map(|m| format!("{m:?}"))
                    .unwrap_or_else(|| "mixed/none".into())
            );
            if o.smaller_pages != 0 {
                line += &format!(
                    ", {} pages on correct leaves smaller than allowed",
                    o.smaller_pages
                );
            }
            if let Some(m) = &o.first_mismatch {
                line += &format!("; first mismatch {:?} at {:#x}: {}", m.kind, m.va, m.what);
            }
        }
        if let Some(cr3) = &self.cr3 {
            line += &format!(
                "; vCPU CR3 {:#x} {}",
                cr3.vcpu_cr3,
                if cr3.matches {
                    "matches ROOT"
                } else {
                    "is NOT ROOT's table"
                }
            );
        }
        if let Some(pat) = &self.pat {
            line += &format!("; {}", pat.describe());
        }
        if let Some(error) = &self.error {
            line += &format!("; {error}");
        }
        line
    }
}
