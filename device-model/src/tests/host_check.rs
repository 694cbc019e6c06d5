//! The host page-table check through BAR0, with a fake engine standing in
//! for guest RAM: request derivation, every status, the summary registers,
//! SEQ and the kept records.

use std::sync::{Arc, Mutex};

use super::{cfg_write, reg_read, reg_write};
use crate::abi::check;
use crate::host_check::{
    CheckOutcome, CheckRequest, CheckStatus, CpuState, GuestPageTables, LeafCounts, LeafSize,
    Mismatch, MismatchKind, PatCheck, PatMemType, Strategy, MAX_RECORDS,
};
use crate::{DeviceConfig, RangefaultDevice};

const BAR2: u64 = 0x38_0000_0000;
const VA: u64 = 0x0000_7f00_0000_0000;
const ROOT: u64 = 0x0123_4000;
const LINUX_PAT: u64 = 0x0407_0506_0007_0106;

/// Records every request and answers with `answer`.
#[derive(Clone)]
struct FakeTables {
    seen: Arc<Mutex<Vec<CheckRequest>>>,
    answer: Result<CheckOutcome, String>,
}

impl GuestPageTables for FakeTables {
    fn check(&self, request: &CheckRequest) -> Result<CheckOutcome, String> {
        self.seen.lock().unwrap().push(request.clone());
        self.answer.clone()
    }
}

fn passing_outcome() -> CheckOutcome {
    CheckOutcome {
        pass: true,
        pages: 1024,
        present: 768,
        leaves: LeafCounts {
            k4: 256,
            m2: 1,
            g1: 0,
        },
        smaller_pages: 0,
        memtype: Some(PatMemType::WriteCombining),
        first_mismatch: None,
    }
}

/// A device with BAR2 programmed and `answer` installed as its engine;
/// returns the requests the engine saw.
fn device_with(
    vram: u64,
    page_size: u64,
    answer: Result<CheckOutcome, String>,
) -> (RangefaultDevice, Arc<Mutex<Vec<CheckRequest>>>) {
    let mut d = RangefaultDevice::new(DeviceConfig::new(vram, page_size).unwrap()).unwrap();
    program_bar2(&mut d);
    let seen = Arc::new(Mutex::new(Vec::new()));
    d.set_page_tables(Box::new(FakeTables {
        seen: seen.clone(),
        answer,
    }));
    (d, seen)
}

fn program_bar2(d: &mut RangefaultDevice) {
    cfg_write(d, 0x18, 4, BAR2 & 0xffff_ffff);
    cfg_write(d, 0x1c, 4, BAR2 >> 32);
    assert_eq!(d.bar_address(2), Some(BAR2));
}

fn r32(d: &mut RangefaultDevice, offset: u64) -> u32 {
    reg_read(d, offset, 4) as u32
}

fn w32(d: &mut RangefaultDevice, offset: u64, value: u32) {
    reg_write(d, offset, 4, u64::from(value));
}

/// Writes a 64-bit lo/hi pair as two dwords, as the driver does.
fn w64(d: &mut RangefaultDevice, lo: u64, value: u64) {
    w32(d, lo, value as u32);
    w32(d, lo + 4, (value >> 32) as u32);
}

struct Ask {
    va: u64,
    len: u64,
    offset: u64,
    flags: u32,
}

fn ask(strategy: u32, len: u64) -> Ask {
    Ask {
        va: VA,
        len,
        offset: 0,
        flags: strategy << check::STRATEGY_SHIFT,
    }
}

/// Programs a request and rings the doorbell; returns STATUS.
fn run_check(d: &mut RangefaultDevice, ask: &Ask) -> u32 {
    run_check_with_pat(d, ask, LINUX_PAT)
}

/// [`run_check`] with the driver passing `pat` as the guest's PAT.
fn run_check_with_pat(d: &mut RangefaultDevice, ask: &Ask, pat: u64) -> u32 {
    w64(d, check::ROOT_LO, ROOT);
    w64(d, check::VA_LO, ask.va);
    w64(d, check::LEN_LO, ask.len);
    w64(d, check::OFFSET_LO, ask.offset);
    w64(d, check::PAT_LO, pat);
    w32(d, check::FLAGS, ask.flags);
    w32(d, check::DOORBELL, check::RUN);
    r32(d, check::STATUS)
}

fn mismatch_va(d: &mut RangefaultDevice) -> u64 {
    u64::from(r32(d, check::MISMATCH_VA_LO)) | u64::from(r32(d, check::MISMATCH_VA_HI)) << 32
}

#[test]
fn request_carries_the_registers_and_the_devices_expectations() {
    use LeafSize::*;
    // (page size, expected max leaf for page / prefault16 / range / range-mm)
    let cases = [
        (4 << 10, [Size4K, Size4K, Size4K, Size4K]),
        (64 << 10, [Size4K, Size4K, Size4K, Size4K]),
        (2 << 20, [Size4K, Size4K, Size2M, Size2M]),
        (4 << 20, [Size4K, Size4K, Size2M, Size2M]),
        (1 << 30, [Size4K, Size4K, Size1G, Size1G]),
    ];
    for (page_size, max_leaves) in cases {
        let (mut d, seen) = device_with(1 << 30, page_size, Ok(passing_outcome()));
        for (strategy, max_leaf) in (0u32..).zip(max_leaves) {
            let request = Ask {
                offset: 0x20_0000,
                flags: check::FLAG_REQUIRE_PRESENT | strategy << check::STRATEGY_SHIFT,
                ..ask(strategy, 4 << 20)
            };
            assert_eq!(run_check(&mut d, &request), check::STATUS_PASS);
            let got = seen.lock().unwrap().pop().expect("the engine was asked");
            assert_eq!(
                got,
                CheckRequest {
                    root: ROOT,
                    va: VA,
                    len: 4 << 20,
                    offset: 0x20_0000,
                    expected_gpa: BAR2 + 0x20_0000,
                    pat: LINUX_PAT,
                    la57: false,
                    require_present: true,
                    strategy: Strategy::from_abi(strategy).unwrap(),
                    max_leaf,
                },
                "page size {page_size:#x}, strategy {strategy}"
            );
        }
    }
}

#[test]
fn la57_and_require_present_pass_through() {
    let (mut d, seen) = device_with(64 << 20, 4096, Ok(passing_outcome()));
    let va_57 = 0x00ff_0000_0000_0000;
    let la57 = Ask {
        va: va_57,
        flags: check::FLAG_LA57,
        ..ask(0, 0x1000)
    };
    assert_eq!(run_check(&mut d, &la57), check::STATUS_PASS);
    let got = seen.lock().unwrap().pop().unwrap();
    assert!(got.la57 && !got.require_present);
    assert_eq!(got.va, va_57);
    // The same VA without LA57 is not canonical: a bad request.
    let four_level = Ask { flags: 0, ..la57 };
    assert_eq!(run_check(&mut d, &four_level), check::STATUS_BAD_REQUEST);
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn pass_fills_the_summary_registers() {
    let (mut d, _) = device_with(64 << 20, 2 << 20, Ok(passing_outcome()));
    assert_eq!(r32(&mut d, check::STATUS), check::STATUS_IDLE);
    assert_eq!(r32(&mut d, check::SEQ), 0);
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_PASS);
    assert_eq!(r32(&mut d, check::PAGES), 1024);
    assert_eq!(r32(&mut d, check::PRESENT), 768);
    assert_eq!(r32(&mut d, check::LEAVES_4K), 256);
    assert_eq!(r32(&mut d, check::LEAVES_2M), 1);
    assert_eq!(r32(&mut d, check::LEAVES_1G), 0);
    assert_eq!(r32(&mut d, check::MEMTYPE), 1); // WC
    assert_eq!(r32(&mut d, check::MISMATCH_KIND), check::MISMATCH_NONE);
    assert_eq!(mismatch_va(&mut d), 0);
    assert_eq!(r32(&mut d, check::SEQ), 1);
    assert_eq!(r32(&mut d, check::DOORBELL), 0, "write-only");
    let records = d.host_checks();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].status, CheckStatus::Pass);
    assert_eq!(records[0].outcome, Some(passing_outcome()));
    assert_eq!(records[0].error, None);
    assert_eq!(records[0].registers.flags, 2 << check::STRATEGY_SHIFT);
}

#[test]
fn mismatch_reports_kind_and_va() {
    let bad_va = 0xffff_8000_1234_5000;
    let outcome = CheckOutcome {
        pass: false,
        memtype: None,
        first_mismatch: Some(Mismatch {
            va: bad_va,
            kind: MismatchKind::WrongSize,
            what: "4K leaf where a 2M leaf is expected".into(),
        }),
        ..passing_outcome()
    };
    let (mut d, _) = device_with(64 << 20, 2 << 20, Ok(outcome.clone()));
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_MISMATCH);
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_WRONG_SIZE
    );
    assert_eq!(mismatch_va(&mut d), bad_va);
    assert_eq!(r32(&mut d, check::MEMTYPE), check::MEMTYPE_MIXED);
    assert_eq!(r32(&mut d, check::PAGES), 1024, "counts cover the range");
    assert_eq!(d.host_checks()[0].outcome, Some(outcome));
    for (kind, value) in [
        (MismatchKind::NotPresent, check::MISMATCH_NOT_PRESENT),
        (MismatchKind::OutsideRange, check::MISMATCH_OUTSIDE_RANGE),
        (MismatchKind::WrongGpa, check::MISMATCH_WRONG_GPA),
        (MismatchKind::WrongSize, check::MISMATCH_WRONG_SIZE),
        (MismatchKind::WrongMemType, check::MISMATCH_WRONG_MEMTYPE),
    ] {
        assert_eq!(kind.abi_value(), value);
    }
}

#[test]
fn walk_error_is_its_own_status_and_clears_the_last_summary() {
    let (mut d, _) = device_with(64 << 20, 4096, Ok(passing_outcome()));
    assert_eq!(run_check(&mut d, &ask(0, 0x1000)), check::STATUS_PASS);
    let (mut d2, seen) = device_with(64 << 20, 4096, Err("PML4 outside RAM".into()));
    assert_eq!(
        run_check(&mut d2, &ask(0, 0x1000)),
        check::STATUS_WALK_ERROR
    );
    assert_eq!(seen.lock().unwrap().len(), 1);
    for r in [
        check::PAGES,
        check::PRESENT,
        check::LEAVES_4K,
        check::MEMTYPE,
        check::SMALLER_PAGES,
    ] {
        assert_eq!(r32(&mut d2, r), 0, "{r:#x}");
    }
    let record = &d2.host_checks()[0];
    assert_eq!(record.status, CheckStatus::WalkError);
    assert_eq!(record.error.as_deref(), Some("PML4 outside RAM"));
    assert!(record.request.is_some() && record.outcome.is_none());
    // A later walk error on the first device wipes its earlier pass.
    d.set_page_tables(Box::new(FakeTables {
        seen: Arc::default(),
        answer: Err("gone".into()),
    }));
    assert_eq!(run_check(&mut d, &ask(0, 0x1000)), check::STATUS_WALK_ERROR);
    assert_eq!(r32(&mut d, check::PAGES), 0);
    assert_eq!(r32(&mut d, check::SEQ), 2);
}

#[test]
fn bad_requests_never_reach_the_engine() {
    let (mut d, seen) = device_with(64 << 20, 4096, Ok(passing_outcome()));
    let bad = [
        ask(4, 0x1000),              // unknown strategy
        ask(0, 0),                   // empty
        ask(0, 0x1800),              // not a 4K multiple
        ask(0, (64 << 30) + 0x1000), // too long
        Ask {
            va: VA + 0x10,
            ..ask(0, 0x1000)
        }, // unaligned VA
        Ask {
            offset: 0x10,
            ..ask(0, 0x1000)
        }, // unaligned offset
        Ask {
            flags: 1 << 4,
            ..ask(0, 0x1000)
        }, // unknown flag
        Ask {
            va: 1 << 47,
            ..ask(0, 0x1000)
        }, // not canonical
    ];
    for (i, request) in bad.iter().enumerate() {
        assert_eq!(
            run_check(&mut d, request),
            check::STATUS_BAD_REQUEST,
            "request {i}"
        );
        assert_eq!(r32(&mut d, check::SEQ), i as u32 + 1);
    }
    assert!(seen.lock().unwrap().is_empty());
    for record in d.host_checks() {
        assert_eq!(record.status, CheckStatus::BadRequest);
        assert!(record.request.is_none());
        assert!(record.error.is_some(), "{record:?}");
    }
}

#[test]
fn unprogrammed_bar2_is_a_bad_request() {
    let mut d = super::device();
    let seen = Arc::new(Mutex::new(Vec::new()));
    d.set_page_tables(Box::new(FakeTables {
        seen: seen.clone(),
        answer: Ok(passing_outcome()),
    }));
    assert_eq!(
        run_check(&mut d, &ask(0, 0x1000)),
        check::STATUS_BAD_REQUEST
    );
    assert!(d.host_checks()[0].error.as_ref().unwrap().contains("BAR2"));
    assert!(seen.lock().unwrap().is_empty());
}

#[test]
fn without_guest_ram_access_the_check_is_unsupported() {
    let mut d = super::device();
    program_bar2(&mut d);
    assert_eq!(
        run_check(&mut d, &ask(0, 0x1000)),
        check::STATUS_UNSUPPORTED
    );
    assert_eq!(r32(&mut d, check::SEQ), 1);
    let record = &d.host_checks()[0];
    assert_eq!(record.status, CheckStatus::Unsupported);
    // The request was valid, so the device's expectations are recorded.
    assert_eq!(record.request.as_ref().unwrap().expected_gpa, BAR2);
}

#[test]
fn request_registers_read_back_and_results_are_read_only() {
    let (mut d, _) = device_with(64 << 20, 4096, Ok(passing_outcome()));
    // 8-byte writes to a lo/hi pair work too.
    reg_write(&mut d, check::ROOT_LO, 8, 0x1122_3344_5566_7000);
    reg_write(&mut d, check::PAT_LO, 8, LINUX_PAT);
    w64(&mut d, check::VA_LO, VA);
    w64(&mut d, check::LEN_LO, 0x3000);
    w64(&mut d, check::OFFSET_LO, 0x5000);
    w32(&mut d, check::FLAGS, 0x0201);
    assert_eq!(reg_read(&mut d, check::ROOT_LO, 8), 0x1122_3344_5566_7000);
    assert_eq!(reg_read(&mut d, check::VA_LO, 8), VA);
    assert_eq!(reg_read(&mut d, check::LEN_LO, 8), 0x3000);
    assert_eq!(reg_read(&mut d, check::OFFSET_LO, 8), 0x5000);
    assert_eq!(reg_read(&mut d, check::PAT_LO, 8), LINUX_PAT);
    assert_eq!(r32(&mut d, check::FLAGS), 0x0201);
    let bad_before = d.stats().bad_accesses;
    let read_only = [
        check::STATUS,
        check::PAGES,
        check::PRESENT,
        check::LEAVES_4K,
        check::LEAVES_2M,
        check::LEAVES_1G,
        check::MEMTYPE,
        check::MISMATCH_VA_LO,
        check::MISMATCH_VA_HI,
        check::MISMATCH_KIND,
        check::SEQ,
        check::SMALLER_PAGES,
    ];
    for &r in &read_only {
        w32(&mut d, r, 0xffff_ffff);
        assert_eq!(r32(&mut d, r), 0, "{r:#x}");
    }
    // A doorbell value other than RUN is ignored.
    w32(&mut d, check::DOORBELL, 2);
    assert_eq!(r32(&mut d, check::SEQ), 0);
    assert_eq!(
        d.stats().bad_accesses - bad_before,
        read_only.len() as u64 + 1
    );
    // FLAGS + DOORBELL in one 8-byte write runs the check.
    reg_write(
        &mut d,
        check::FLAGS,
        8,
        u64::from(check::RUN) << 32 | u64::from(check::FLAG_LA57),
    );
    assert_eq!(r32(&mut d, check::SEQ), 1);
    assert_eq!(r32(&mut d, check::STATUS), check::STATUS_PASS);
}

#[test]
fn records_are_bounded_but_seq_keeps_counting() {
    let (mut d, _) = device_with(64 << 20, 4096, Ok(passing_outcome()));
    let extra = 5;
    for _ in 0..MAX_RECORDS + extra {
        run_check(&mut d, &ask(0, 0x1000));
    }
    assert_eq!(d.host_checks().len(), MAX_RECORDS);
    assert_eq!(d.host_checks_dropped(), extra as u64);
    assert_eq!(r32(&mut d, check::SEQ), (MAX_RECORDS + extra) as u32);
    // The first ones are kept, in order.
    assert_eq!(d.host_checks()[0].seq, 1);
    assert_eq!(d.host_checks()[MAX_RECORDS - 1].seq, MAX_RECORDS as u64);
}

#[test]
fn records_serialize_for_the_report() {
    let (mut d, _) = device_with(64 << 20, 2 << 20, Ok(passing_outcome()));
    run_check(&mut d, &ask(2, 4 << 20));
    let json = serde_json::to_string(&d.host_checks()[0]).unwrap();
    for needle in [
        "\"status\":\"pass\"",
        "\"strategy\":\"range\"",
        "\"max_leaf\":\"2M\"",
        "\"memtype\":\"WC\"",
        "\"m2\":1",
        "\"smaller_pages\":0",
        "\"first_mismatch\":null",
    ] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
    let summary = d.host_checks()[0].summary();
    assert!(summary.starts_with("#1 Pass: Range"), "{summary}");
}

#[test]
fn smaller_leaves_pass_and_are_counted_in_their_own_register() {
    // 4 MiB expected as two 2M leaves, mapped with correct 4K PTEs instead
    // (MADV_NOHUGEPAGE): a pass, every page smaller than possible.
    let all_4k = CheckOutcome {
        present: 1024,
        leaves: LeafCounts {
            k4: 1024,
            m2: 0,
            g1: 0,
        },
        smaller_pages: 1024,
        ..passing_outcome()
    };
    let (mut d, seen) = device_with(64 << 20, 2 << 20, Ok(all_4k.clone()));
    assert_eq!(run_check(&mut d, &ask(3, 4 << 20)), check::STATUS_PASS);
    assert_eq!(seen.lock().unwrap()[0].strategy, Strategy::RangeMm);
    assert_eq!(seen.lock().unwrap()[0].max_leaf, LeafSize::Size2M);
    assert_eq!(r32(&mut d, check::SMALLER_PAGES), 1024);
    assert_eq!(r32(&mut d, check::PAGES), r32(&mut d, check::SMALLER_PAGES));
    assert_eq!(r32(&mut d, check::MISMATCH_KIND), check::MISMATCH_NONE);
    let record = &d.host_checks()[0];
    assert_eq!(record.outcome, Some(all_4k));
    let json = serde_json::to_string(record).unwrap();
    for needle in ["\"smaller_pages\":1024", "\"strategy\":\"range_mm\""] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
    assert!(
        record
            .summary()
            .contains("1024 pages on correct leaves smaller"),
        "{}",
        record.summary()
    );
    // A mismatch keeps its count too, and the next check replaces it.
    let mixed = CheckOutcome {
        pass: false,
        smaller_pages: 256,
        first_mismatch: Some(Mismatch {
            va: VA + (2 << 20),
            kind: MismatchKind::WrongSize,
            what: "1G leaf where at most a 2M leaf is allowed".into(),
        }),
        ..passing_outcome()
    };
    d.set_page_tables(Box::new(FakeTables {
        seen: Arc::default(),
        answer: Ok(mixed),
    }));
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_MISMATCH);
    assert_eq!(r32(&mut d, check::SMALLER_PAGES), 256);
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_WRONG_SIZE
    );
    d.set_page_tables(Box::new(FakeTables {
        seen: Arc::default(),
        answer: Ok(passing_outcome()),
    }));
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_PASS);
    assert_eq!(r32(&mut d, check::SMALLER_PAGES), 0);
    assert!(!d.host_checks()[2].summary().contains("smaller"));
}

#[test]
fn smaller_pages_is_the_register_after_seq() {
    assert_eq!(check::SEQ, 0x158);
    assert_eq!(check::SMALLER_PAGES, 0x15c);
    assert_eq!(check::END, 0x160);
    assert_eq!(
        [
            check::STRATEGY_PAGE,
            check::STRATEGY_PREFAULT16,
            check::STRATEGY_RANGE,
            check::STRATEGY_RANGE_MM
        ]
        .map(Strategy::from_abi),
        [
            Some(Strategy::Page),
            Some(Strategy::Prefault16),
            Some(Strategy::Range),
            Some(Strategy::RangeMm)
        ]
    );
    assert_eq!(Strategy::from_abi(4), None);
}

/// An engine that also knows some of the ringing CPU's state.
struct TablesWithCpu {
    tables: FakeTables,
    cpu: CpuState,
}

impl GuestPageTables for TablesWithCpu {
    fn check(&self, request: &CheckRequest) -> Result<CheckOutcome, String> {
        self.tables.check(request)
    }

    fn doorbell_cpu_state(&self) -> CpuState {
        self.cpu
    }
}

/// A device whose engine answers `answer` and knows `cpu`; returns the
/// requests the engine saw.
fn device_with_cpu(
    answer: Result<CheckOutcome, String>,
    cpu: CpuState,
) -> (RangefaultDevice, Arc<Mutex<Vec<CheckRequest>>>) {
    let (mut d, seen) = device_with(64 << 20, 2 << 20, Ok(passing_outcome()));
    d.set_page_tables(Box::new(TablesWithCpu {
        tables: FakeTables {
            seen: seen.clone(),
            answer,
        },
        cpu,
    }));
    (d, seen)
}

fn device_with_cr3(answer: Result<CheckOutcome, String>, cr3: u64) -> RangefaultDevice {
    let cpu = CpuState {
        cr3: Some(cr3),
        pat: None,
    };
    device_with_cpu(answer, cpu).0
}

#[test]
fn a_root_that_is_the_cpus_cr3_passes_and_is_recorded() {
    // PCID bits, and the user half of a PTI pair, still name ROOT's table.
    for cr3 in [ROOT, ROOT | 0x7ff, ROOT | 0x1000] {
        let mut d = device_with_cr3(Ok(passing_outcome()), cr3);
        assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_PASS);
        assert_eq!(r32(&mut d, check::MISMATCH_KIND), check::MISMATCH_NONE);
        let record = &d.host_checks()[0];
        assert_eq!(
            record.cr3.map(|c| (c.vcpu_cr3, c.matches)),
            Some((cr3, true))
        );
        assert!(record.summary().contains("matches ROOT"), "{record:?}");
    }
    // Engines that cannot tell record nothing.
    let (mut d, _) = device_with(64 << 20, 2 << 20, Ok(passing_outcome()));
    run_check(&mut d, &ask(2, 4 << 20));
    assert_eq!(d.host_checks()[0].cr3, None);
}

#[test]
fn a_root_that_is_not_the_cpus_cr3_is_a_mismatch() {
    let other = ROOT + 0x2000;
    // The walk of ROOT passed, but the CPU runs on other tables.
    let mut d = device_with_cr3(Ok(passing_outcome()), other);
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_MISMATCH);
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_ROOT_NOT_CR3
    );
    assert_eq!(mismatch_va(&mut d), VA);
    assert_eq!(r32(&mut d, check::LEAVES_2M), 1, "the walk's counts stay");
    let record = &d.host_checks()[0];
    assert_eq!(record.status, CheckStatus::Mismatch);
    assert_eq!(record.outcome, Some(passing_outcome()));
    assert_eq!(
        record.cr3.map(|c| (c.vcpu_cr3, c.matches)),
        Some((other, false))
    );
    let json = serde_json::to_string(record).unwrap();
    assert!(json.contains("\"matches\":false"), "{json}");
    // It outranks a walk error and a walk mismatch too.
    let mut d = device_with_cr3(Err("garbage".into()), other);
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_MISMATCH);
    assert_eq!(d.host_checks()[0].error.as_deref(), Some("garbage"));
    let wrong_gpa = CheckOutcome {
        pass: false,
        first_mismatch: Some(Mismatch {
            va: VA + 0x1000,
            kind: MismatchKind::WrongGpa,
            what: "elsewhere".into(),
        }),
        ..passing_outcome()
    };
    let mut d = device_with_cr3(Ok(wrong_gpa), other);
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_MISMATCH);
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_ROOT_NOT_CR3
    );
    // A bad request asks nothing of the engine, CR3 included.
    let mut d = device_with_cr3(Ok(passing_outcome()), other);
    assert_eq!(run_check(&mut d, &ask(0, 0)), check::STATUS_BAD_REQUEST);
    assert_eq!(d.host_checks()[0].cr3, None);
}

#[test]
fn the_cpus_pat_decodes_the_walk_and_is_compared_with_the_drivers() {
    // All UC: what a driver that read the wrong PAT might pass.
    const ALL_UC: u64 = 0;
    for (cpu_pat, driver_pat) in [(LINUX_PAT, LINUX_PAT), (LINUX_PAT, ALL_UC)] {
        let cpu = CpuState {
            cr3: Some(ROOT),
            pat: Some(cpu_pat),
        };
        let (mut d, seen) = device_with_cpu(Ok(passing_outcome()), cpu);
        // A disagreement is recorded, never a mismatch.
        assert_eq!(
            run_check_with_pat(&mut d, &ask(2, 4 << 20), driver_pat),
            check::STATUS_PASS
        );
        assert_eq!(r32(&mut d, check::MISMATCH_KIND), check::MISMATCH_NONE);
        assert_eq!(
            seen.lock().unwrap()[0].pat,
            cpu_pat,
            "the walk used the CPU's"
        );
        let record = &d.host_checks()[0];
        assert_eq!(record.status, CheckStatus::Pass);
        assert_eq!(record.registers.pat, driver_pat);
        assert_eq!(record.request.as_ref().unwrap().pat, cpu_pat);
        let matches = cpu_pat == driver_pat;
        assert_eq!(
            record.pat,
            Some(PatCheck {
                vcpu_pat: cpu_pat,
                driver_pat,
                matches
            })
        );
        let json = serde_json::to_value(record).unwrap();
        assert_eq!(
            json["pat"],
            serde_json::json!({"vcpu_pat": cpu_pat, "driver_pat": driver_pat, "matches": matches})
        );
        assert_eq!(
            record.summary().contains("NOT the driver's PAT"),
            !matches,
            "{}",
            record.summary()
        );
    }
}

#[test]
fn without_the_cpus_pat_the_drivers_decodes_the_walk() {
    // An engine that reads CR3 but not the PAT, and one that reads nothing.
    let (mut d, seen) = device_with_cpu(
        Ok(passing_outcome()),
        CpuState {
            cr3: Some(ROOT),
            pat: None,
        },
    );
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_PASS);
    assert_eq!(seen.lock().unwrap()[0].pat, LINUX_PAT);
    assert_eq!(d.host_checks()[0].pat, None);
    assert!(d.host_checks()[0].cr3.is_some());
    let (mut d, seen) = device_with(64 << 20, 2 << 20, Ok(passing_outcome()));
    run_check(&mut d, &ask(2, 4 << 20));
    assert_eq!(seen.lock().unwrap()[0].pat, LINUX_PAT);
    assert_eq!(
        (d.host_checks()[0].cr3, d.host_checks()[0].pat),
        (None, None)
    );
    // A bad request asks the engine nothing, PAT included.
    let cpu = CpuState {
        cr3: Some(ROOT),
        pat: Some(LINUX_PAT),
    };
    let (mut d, _) = device_with_cpu(Ok(passing_outcome()), cpu);
    assert_eq!(run_check(&mut d, &ask(0, 0)), check::STATUS_BAD_REQUEST);
    assert_eq!(d.host_checks()[0].pat, None);
}
