//! The check's BAR0 registers (0x100..0x160) and the doorbell that runs a
//! check: validate, walk the guest RAM the engine's [`GuestAccess`]
//! provides, publish a summary in the result registers and keep the full
//! record.

use std::fmt;

use super::request::DeviceView;
use super::{
    walk, CheckRegisters, CheckReport, CheckRequest, CheckStatus, CpuState, Cr3Check, GuestAccess,
    HostCheckRecord, MemType, MismatchKind, PatCheck, MAX_RECORDS,
};
use crate::abi::check;

/// The MISMATCH_KIND register's value for `kind`.
pub(crate) fn mismatch_kind_register(kind: MismatchKind) -> u32 {
    match kind {
        MismatchKind::NotPresent => check::MISMATCH_NOT_PRESENT,
        MismatchKind::OutsideRange => check::MISMATCH_OUTSIDE_RANGE,
        MismatchKind::WrongGpa => check::MISMATCH_WRONG_GPA,
        MismatchKind::WrongSize => check::MISMATCH_WRONG_SIZE,
        MismatchKind::WrongMemType => check::MISMATCH_WRONG_MEMTYPE,
    }
}

/// The MEMTYPE register's value for `memtype`: the ABI defines it as the
/// PAT encoding.
pub(crate) fn memtype_register(memtype: MemType) -> u32 {
    u32::from(memtype.pat_encoding())
}

/// The result registers of the last check.
#[derive(Clone, Copy, Debug, Default)]
struct Summary {
    status: u32,
    pages: u32,
    present: u32,
    leaves_4k: u32,
    leaves_2m: u32,
    leaves_1g: u32,
    memtype: u32,
    mismatch_va: u64,
    mismatch_kind: u32,
    smaller_pages: u32,
}

/// Counts fit 32 bits for any legal range (64 GiB is 16 Mi pages), but the
/// engine is not trusted to stay within them.
fn saturate(count: u64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

impl Summary {
    fn of(status: CheckStatus, outcome: Option<&CheckReport>) -> Summary {
        let mut summary = Summary {
            status: status.abi_value(),
            ..Summary::default()
        };
        if let Some(outcome) = outcome {
            summary.pages = saturate(outcome.pages);
            summary.present = saturate(outcome.present);
            summary.leaves_4k = saturate(outcome.leaves.k4);
            summary.leaves_2m = saturate(outcome.leaves.m2);
            summary.leaves_1g = saturate(outcome.leaves.g1);
            summary.smaller_pages = saturate(outcome.smaller_pages);
            summary.memtype = outcome
                .memtype
                .map_or(check::MEMTYPE_MIXED, memtype_register);
            if let Some(mismatch) = &outcome.first_mismatch {
                summary.mismatch_va = mismatch.va;
                summary.mismatch_kind = mismatch_kind_register(mismatch.kind);
            }
        }
        summary
    }

    /// A ROOT that is not the CPU's table fails the check whatever the
    /// walk found: the walk read some other tables.
    fn root_not_cr3(mut self, va: u64) -> Summary {
        self.status = CheckStatus::Mismatch.abi_value();
        self.mismatch_va = va;
        self.mismatch_kind = check::MISMATCH_ROOT_NOT_CR3;
        self
    }
}

/// Replaces the low or high half of a 64-bit register pair.
fn set_half(value: &mut u64, high: bool, half: u32) {
    *value = if high {
        (*value & 0xffff_ffff) | (u64::from(half) << 32)
    } else {
        (*value & !0xffff_ffff) | u64::from(half)
    };
}

fn half(value: u64, high: bool) -> u32 {
    if high {
        (value >> 32) as u32
    } else {
        value as u32
    }
}

pub(crate) struct HostChecker {
    inputs: CheckRegisters,
    last: Summary,
    /// Checks run, including those whose records were dropped.
    runs: u64,
    records: Vec<HostCheckRecord>,
    guest: Option<Box<dyn GuestAccess>>,
}

impl fmt::Debug for HostChecker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostChecker")
            .field("inputs", &self.inputs)
            .field("last", &self.last)
            .field("runs", &self.runs)
            .field("records", &self.records.len())
            .field("guest", &self.guest.is_some())
            .finish()
    }
}

impl HostChecker {
    pub(crate) fn new() -> Self {
        Self {
            inputs: CheckRegisters::default(),
            last: Summary::default(),
            runs: 0,
            records: Vec::new(),
            guest: None,
        }
    }

    pub(crate) fn set_guest_access(&mut self, guest: Box<dyn GuestAccess>) {
        self.guest = Some(guest);
    }

    pub(crate) fn records(&self) -> &[HostCheckRecord] {
        &self.records
    }

    pub(crate) fn records_dropped(&self) -> u64 {
        self.runs - self.records.len() as u64
    }

    /// Whether `offset` (4-aligned, relative to BAR0) is one of ours.
    pub(crate) fn claims(offset: u64) -> bool {
        (check::ROOT_LO..check::END).contains(&offset)
    }

    pub(crate) fn read(&self, offset: u64) -> Option<u32> {
        let inputs = &self.inputs;
        let last = &self.last;
        let high = offset & 4 != 0;
        Some(match offset {
            check::ROOT_LO | check::ROOT_HI => half(inputs.root, high),
            check::VA_LO | check::VA_HI => half(inputs.va, high),
            check::LEN_LO | check::LEN_HI => half(inputs.len, high),
            check::OFFSET_LO | check::OFFSET_HI => half(inputs.offset, high),
            check::PAT_LO | check::PAT_HI => half(inputs.pat, high),
            check::FLAGS => inputs.flags,
            // Write-only doorbell.
            check::DOORBELL => 0,
            check::STATUS => last.status,
            check::PAGES => last.pages,
            check::PRESENT => last.present,
            check::LEAVES_4K => last.leaves_4k,
            check::LEAVES_2M => last.leaves_2m,
            check::LEAVES_1G => last.leaves_1g,
            check::MEMTYPE => last.memtype,
            // MISMATCH_VA_LO is 4 mod 8, so its halves are not picked by bit 2.
            check::MISMATCH_VA_LO => last.mismatch_va as u32,
            check::MISMATCH_VA_HI => (last.mismatch_va >> 32) as u32,
            check::MISMATCH_KIND => last.mismatch_kind,
            // The register is 32 bits; it wraps after 4 Gi checks.
            check::SEQ => self.runs as u32,
            check::SMALLER_PAGES => last.smaller_pages,
            _ => return None,
        })
    }

    /// Applies a dword write; `Err` says why it was ignored.
    pub(crate) fn write(
        &mut self,
        offset: u64,
        value: u32,
        device: DeviceView,
    ) -> Result<(), &'static str> {
        let inputs = &mut self.inputs;
        let high = offset & 4 != 0;
        match offset {
            check::ROOT_LO | check::ROOT_HI => set_half(&mut inputs.root, high, value),
            check::VA_LO | check::VA_HI => set_half(&mut inputs.va, high, value),
            check::LEN_LO | check::LEN_HI => set_half(&mut inputs.len, high, value),
            check::OFFSET_LO | check::OFFSET_HI => set_half(&mut inputs.offset, high, value),
            check::PAT_LO | check::PAT_HI => set_half(&mut inputs.pat, high, value),
            check::FLAGS => inputs.flags = value,
            check::DOORBELL if value == check::RUN => self.run(device),
            check::DOORBELL => return Err("unknown check doorbell command"),
            _ => return Err("read-only check register"),
        }
        Ok(())
    }

    /// Runs one check synchronously (the guest's MMIO write completes after
    /// it, so the driver reads the result right away).
    fn run(&mut self, device: DeviceView) {
        self.runs += 1;
        let registers = self.inputs;
        let (mut status, request, outcome, error, cpu) = match registers.to_request(device) {
            Err(why) => (
                CheckStatus::BadRequest,
                None,
                None,
                Some(why),
                CpuState::default(),
            ),
            Ok(mut request) => {
                let cpu = self.doorbell_cpu_state();
                // The CPU's own PAT is the truth; the driver's is only
                // compared with it below.
                if let Some(pat) = cpu.pat {
                    request.pat = pat;
                }
                let (status, outcome, error) = self.walk(&request);
                (status, Some(request), outcome, error, cpu)
            }
        };
        self.last = Summary::of(status, outcome.as_ref());
        let cr3 = request
            .as_ref()
            .zip(cpu.cr3)
            .map(|(request, cr3)| Cr3Check::new(request.root, cr3));
        if let (Some(request), Some(Cr3Check { matches: false, .. })) = (&request, cr3) {
            status = CheckStatus::Mismatch;
            self.last = self.last.root_not_cr3(request.va);
        }
        let pat = cpu
            .pat
            .map(|vcpu_pat| PatCheck::new(registers.pat, vcpu_pat));
        let record = HostCheckRecord {
            seq: self.runs,
            status,
            registers,
            request,
            outcome,
            error,
            cr3,
            pat,
        };
        tracing::debug!("rangefault: host check {}", record.summary());
        if self.records.len() < MAX_RECORDS {
            self.records.push(record);
        }
    }

    /// What the engine knows of the CPU that rang, if there is an engine.
    fn doorbell_cpu_state(&self) -> CpuState {
        self.guest
            .as_ref()
            .map_or_else(CpuState::default, |guest| guest.doorbell_cpu_state())
    }

    fn walk(&self, request: &CheckRequest) -> (CheckStatus, Option<CheckReport>, Option<String>) {
        let Some(guest) = &self.guest else {
            return (
                CheckStatus::Unsupported,
                None,
                Some("this engine gives the device no access to guest RAM".into()),
            );
        };
        match walk(&guest.memory(), request) {
            Ok(outcome) => {
                let status = if outcome.pass && outcome.first_mismatch.is_none() {
                    CheckStatus::Pass
                } else {
                    CheckStatus::Mismatch
                };
                (status, Some(outcome), None)
            }
            Err(error) => (CheckStatus::WalkError, None, Some(error)),
        }
    }
}
