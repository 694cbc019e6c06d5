//! The host page-table check through BAR0, over guest RAM with real page
//! tables (page-walker's test guests): request derivation, every status,
//! the summary registers, SEQ and the kept records.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use page_walker::testutil::{TestGuest, PCD, PWT, USER, WRITABLE};
use page_walker::PagingMode;
use vm_memory::GuestMemoryMmap;

use super::{cfg_write, reg_read, reg_write};
use crate::abi::check;
use crate::host_check::{
    memtype_register, mismatch_kind_register, CheckReport, CheckRequest, CheckStatus, CpuState,
    GuestAccess, Leaves, MemType, MismatchKind, PageSize, PatCheck, Strategy, MAX_RECORDS,
};
use crate::{DeviceConfig, RangefaultDevice};

const BAR2: u64 = 0x38_0000_0000;
const VA: u64 = 0x0000_7f00_0000_0000;
/// The top-level table: page-walker's test guest allocates it first.
const ROOT: u64 = 0x1000;
const LINUX_PAT: u64 = 0x0407_0506_0007_0106;
const MIB: u64 = 1 << 20;
/// Write-combining under Linux's PAT, writable, user.
const WC: u64 = PWT | WRITABLE | USER;
/// Uncacheable under Linux's PAT (slot 3).
const UC: u64 = PCD | PWT | WRITABLE | USER;

/// Guest RAM with page tables, as an engine provides it; counts how often
/// the device asked for it.
#[derive(Clone)]
struct Guest {
    memory: Arc<GuestMemoryMmap>,
    cpu: CpuState,
    asked: Arc<AtomicUsize>,
}

impl GuestAccess for Guest {
    fn memory(&self) -> Arc<GuestMemoryMmap> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Arc::clone(&self.memory)
    }

    fn doorbell_cpu_state(&self) -> CpuState {
        self.cpu
    }
}

impl Guest {
    fn new(memory: GuestMemoryMmap) -> Guest {
        Guest {
            memory: Arc::new(memory),
            cpu: CpuState::default(),
            asked: Arc::default(),
        }
    }

    fn with_cpu(self, cpu: CpuState) -> Guest {
        Guest { cpu, ..self }
    }

    fn walks(&self) -> usize {
        self.asked.load(Ordering::Relaxed)
    }
}

/// Four-level tables at [`ROOT`].
fn tables() -> TestGuest {
    let tables = TestGuest::new(PagingMode::FourLevel);
    assert_eq!(tables.root, ROOT);
    tables
}

/// What the driver leaves after touching part of a 4 MiB `range` mapping
/// of BAR2 (offset 0) on a 2 MiB device: VA..+1M as 256 WC PTEs (correct,
/// smaller than the 2M leaf that fits), VA+1M..+2M not faulted, VA+2M..+4M
/// one WC 2M leaf.
fn partly_faulted() -> TestGuest {
    let mut tables = tables();
    tables.map_4k_range(VA, BAR2, MIB, WC);
    tables.map(VA + 2 * MIB, BAR2 + 2 * MIB, PageSize::Size2M, WC);
    tables
}

/// [`partly_faulted`] as guest RAM.
fn partly_faulted_guest() -> Guest {
    Guest::new(partly_faulted().mem)
}

/// What the walk reports for `ask(range, 4 MiB)` over [`partly_faulted`].
fn partly_faulted_report() -> CheckReport {
    CheckReport {
        pass: true,
        pages: 1024,
        present: 768,
        leaves: Leaves {
            k4: 256,
            m2: 1,
            g1: 0,
        },
        smaller_pages: 256,
        memtype: Some(MemType::WriteCombining),
        first_mismatch: None,
    }
}

/// [`partly_faulted`] plus an uncacheable PTE at VA+4M onto BAR2+4M: a
/// 6 MiB range with the wrong memory type at its top, and a 2M leaf that
/// `page` and `prefault16` do not allow.
fn flawed_guest() -> Guest {
    let mut tables = partly_faulted();
    tables.map(VA + 4 * MIB, BAR2 + 4 * MIB, PageSize::Size4K, UC);
    Guest::new(tables.mem)
}

/// VA..VA+`len` mapped by WC PTEs onto BAR2 + `offset`: correct for every
/// strategy (smaller leaves pass).
fn ptes_guest(offset: u64, len: u64) -> Guest {
    let mut tables = tables();
    tables.map_4k_range(VA, BAR2 + offset, len, WC);
    Guest::new(tables.mem)
}

/// Guest RAM the root table is not in: every walk is an error.
fn no_ram_guest() -> Guest {
    Guest::new(GuestMemoryMmap::default())
}

/// A device with BAR2 programmed and `guest` installed as its guest RAM.
fn device_with(vram: u64, page_size: u64, guest: &Guest) -> RangefaultDevice {
    let mut d = RangefaultDevice::new(DeviceConfig::new(vram, page_size).unwrap()).unwrap();
    program_bar2(&mut d);
    d.set_guest_access(Box::new(guest.clone()));
    d
}

/// The validated request of the last check.
fn last_request(d: &RangefaultDevice) -> CheckRequest {
    let record = d.host_checks().last().expect("a check ran");
    record.request.clone().expect("a valid request")
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
    use PageSize::*;
    // (page size, expected max leaf for page / prefault16 / range / range-mm)
    let cases = [
        (4 << 10, [Size4K, Size4K, Size4K, Size4K]),
        (64 << 10, [Size4K, Size4K, Size4K, Size4K]),
        (2 << 20, [Size4K, Size4K, Size2M, Size2M]),
        (4 << 20, [Size4K, Size4K, Size2M, Size2M]),
        (1 << 30, [Size4K, Size4K, Size1G, Size1G]),
    ];
    let guest = ptes_guest(0x20_0000, 4 * MIB);
    for (page_size, max_leaves) in cases {
        let mut d = device_with(1 << 30, page_size, &guest);
        for (strategy, max_leaf) in (0u32..).zip(max_leaves) {
            let request = Ask {
                offset: 0x20_0000,
                flags: check::FLAG_REQUIRE_PRESENT | strategy << check::STRATEGY_SHIFT,
                ..ask(strategy, 4 << 20)
            };
            let walks = guest.walks();
            assert_eq!(run_check(&mut d, &request), check::STATUS_PASS);
            assert_eq!(guest.walks(), walks + 1, "the guest RAM was walked");
            assert_eq!(
                last_request(&d),
                CheckRequest {
                    root: ROOT,
                    va: VA,
                    len: 4 << 20,
                    offset: 0x20_0000,
                    expected_gpa: BAR2 + 0x20_0000,
                    pat: LINUX_PAT,
                    la57: false,
                    require_present: true,
                    strategy: Strategy::from_raw(strategy).unwrap(),
                    max_leaf,
                },
                "page size {page_size:#x}, strategy {strategy}"
            );
        }
    }
}

#[test]
fn la57_and_require_present_pass_through() {
    let va_57 = 0x00ff_0000_0000_0000;
    let mut five_level = TestGuest::new(PagingMode::FiveLevel);
    assert_eq!(five_level.root, ROOT);
    five_level.map(va_57, BAR2, PageSize::Size4K, WC);
    let guest = Guest::new(five_level.mem);
    let mut d = device_with(64 << 20, 4096, &guest);
    let la57 = Ask {
        va: va_57,
        flags: check::FLAG_LA57,
        ..ask(0, 0x1000)
    };
    assert_eq!(run_check(&mut d, &la57), check::STATUS_PASS);
    let got = last_request(&d);
    assert!(got.la57 && !got.require_present);
    assert_eq!(got.va, va_57);
    assert_eq!(guest.walks(), 1);
    // The same VA without LA57 is not canonical: a bad request.
    let four_level = Ask { flags: 0, ..la57 };
    assert_eq!(run_check(&mut d, &four_level), check::STATUS_BAD_REQUEST);
    assert_eq!(guest.walks(), 1);
}

#[test]
fn pass_fills_the_summary_registers() {
    let mut d = device_with(64 << 20, 2 << 20, &partly_faulted_guest());
    assert_eq!(r32(&mut d, check::STATUS), check::STATUS_IDLE);
    assert_eq!(r32(&mut d, check::SEQ), 0);
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_PASS);
    assert_eq!(r32(&mut d, check::PAGES), 1024);
    assert_eq!(r32(&mut d, check::PRESENT), 768);
    assert_eq!(r32(&mut d, check::LEAVES_4K), 256);
    assert_eq!(r32(&mut d, check::LEAVES_2M), 1);
    assert_eq!(r32(&mut d, check::LEAVES_1G), 0);
    assert_eq!(r32(&mut d, check::SMALLER_PAGES), 256);
    assert_eq!(r32(&mut d, check::MEMTYPE), 1); // WC
    assert_eq!(r32(&mut d, check::MISMATCH_KIND), check::MISMATCH_NONE);
    assert_eq!(mismatch_va(&mut d), 0);
    assert_eq!(r32(&mut d, check::SEQ), 1);
    assert_eq!(r32(&mut d, check::DOORBELL), 0, "write-only");
    let records = d.host_checks();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].status, CheckStatus::Pass);
    assert_eq!(records[0].outcome, Some(partly_faulted_report()));
    assert_eq!(records[0].error, None);
    assert_eq!(records[0].registers.flags, 2 << check::STRATEGY_SHIFT);
}

#[test]
fn mismatch_reports_kind_and_va() {
    // `page` over a 2M leaf at VA+2M: the wrong size there, and the
    // uncacheable PTE at VA+4M makes the memory types differ.
    let mut d = device_with(64 << 20, 2 << 20, &flawed_guest());
    assert_eq!(run_check(&mut d, &ask(0, 6 << 20)), check::STATUS_MISMATCH);
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_WRONG_SIZE
    );
    assert_eq!(mismatch_va(&mut d), VA + 2 * MIB);
    assert_eq!(r32(&mut d, check::MEMTYPE), check::MEMTYPE_MIXED);
    assert_eq!(r32(&mut d, check::PAGES), 1536, "counts cover the range");
    let outcome = d.host_checks()[0].outcome.clone().unwrap();
    assert!(!outcome.pass);
    assert_eq!(outcome.memtype, None);
    let first = outcome.first_mismatch.unwrap();
    assert_eq!(
        (first.va, first.kind),
        (VA + 2 * MIB, MismatchKind::WrongSize)
    );
    for (kind, value) in [
        (MismatchKind::NotPresent, check::MISMATCH_NOT_PRESENT),
        (MismatchKind::OutsideRange, check::MISMATCH_OUTSIDE_RANGE),
        (MismatchKind::WrongGpa, check::MISMATCH_WRONG_GPA),
        (MismatchKind::WrongSize, check::MISMATCH_WRONG_SIZE),
        (MismatchKind::WrongMemType, check::MISMATCH_WRONG_MEMTYPE),
    ] {
        assert_eq!(mismatch_kind_register(kind), value);
    }
}

#[test]
fn memtype_register_is_the_abis_code() {
    for (memtype, value) in [
        (MemType::Uncacheable, check::MEMTYPE_UC),
        (MemType::WriteCombining, check::MEMTYPE_WC),
        (MemType::WriteThrough, check::MEMTYPE_WT),
        (MemType::WriteProtected, check::MEMTYPE_WP),
        (MemType::WriteBack, check::MEMTYPE_WB),
        (MemType::UncachedMinus, check::MEMTYPE_UC_MINUS),
    ] {
        assert_eq!(memtype_register(memtype), value, "{memtype:?}");
    }
}

#[test]
fn walk_error_is_its_own_status_and_clears_the_last_summary() {
    let mut d = device_with(64 << 20, 2 << 20, &partly_faulted_guest());
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_PASS);
    let no_ram = no_ram_guest();
    let mut d2 = device_with(64 << 20, 4096, &no_ram);
    assert_eq!(
        run_check(&mut d2, &ask(0, 0x1000)),
        check::STATUS_WALK_ERROR
    );
    assert_eq!(no_ram.walks(), 1);
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
    let error = record.error.as_deref().unwrap();
    assert!(error.contains("is not readable guest memory"), "{error}");
    assert!(error.contains("guest RAM: none shared"), "{error}");
    assert!(record.request.is_some() && record.outcome.is_none());
    // A later walk error on the first device wipes its earlier pass.
    d.set_guest_access(Box::new(no_ram_guest()));
    assert_eq!(run_check(&mut d, &ask(0, 0x1000)), check::STATUS_WALK_ERROR);
    assert_eq!(r32(&mut d, check::PAGES), 0);
    assert_eq!(r32(&mut d, check::SEQ), 2);
}

#[test]
fn bad_requests_never_reach_the_engine() {
    let guest = ptes_guest(0, 0x1000);
    let mut d = device_with(64 << 20, 4096, &guest);
    let bad = [
        ask(5, 0x1000),              // unknown strategy
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
    assert_eq!(guest.walks(), 0);
    for record in d.host_checks() {
        assert_eq!(record.status, CheckStatus::BadRequest);
        assert!(record.request.is_none());
        assert!(record.error.is_some(), "{record:?}");
    }
}

#[test]
fn unprogrammed_bar2_is_a_bad_request() {
    let mut d = super::device();
    let guest = ptes_guest(0, 0x1000);
    d.set_guest_access(Box::new(guest.clone()));
    assert_eq!(
        run_check(&mut d, &ask(0, 0x1000)),
        check::STATUS_BAD_REQUEST
    );
    assert!(d.host_checks()[0].error.as_ref().unwrap().contains("BAR2"));
    assert_eq!(guest.walks(), 0);
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
    // Five-level tables mapping VA..+12K onto BAR2+0x5000, which the
    // 8-byte doorbell write at the end asks about.
    let mut five_level = TestGuest::new(PagingMode::FiveLevel);
    five_level.map_4k_range(VA, BAR2 + 0x5000, 0x3000, WC);
    let mut d = device_with(64 << 20, 4096, &Guest::new(five_level.mem));
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
    reg_write(&mut d, check::ROOT_LO, 8, ROOT);
    reg_write(
        &mut d,
        check::FLAGS,
        8,
        u64::from(check::RUN) << 32 | u64::from(check::FLAG_LA57),
    );
    assert_eq!(r32(&mut d, check::SEQ), 1);
    assert_eq!(r32(&mut d, check::STATUS), check::STATUS_PASS);
    assert_eq!(r32(&mut d, check::PAGES), 3);
}

#[test]
fn records_are_bounded_but_seq_keeps_counting() {
    let mut d = device_with(64 << 20, 4096, &ptes_guest(0, 0x1000));
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

/// `range` over the 2M leaf of [`partly_faulted`] alone.
fn the_2m_leaf() -> Ask {
    Ask {
        va: VA + 2 * MIB,
        offset: 2 * MIB,
        ..ask(2, 2 * MIB)
    }
}

#[test]
fn records_serialize_for_the_report() {
    let mut d = device_with(64 << 20, 2 << 20, &partly_faulted_guest());
    assert_eq!(run_check(&mut d, &the_2m_leaf()), check::STATUS_PASS);
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
    // A mismatch's kind in snake case, as the MISMATCH_KIND names go.
    run_check(&mut d, &ask(0, 4 << 20));
    let json = serde_json::to_string(&d.host_checks()[1]).unwrap();
    assert!(json.contains("\"kind\":\"wrong_size\""), "{json}");
}

#[test]
fn smaller_leaves_pass_and_are_counted_in_their_own_register() {
    // 4 MiB expected as two 2M leaves, mapped with correct 4K PTEs instead
    // (MADV_NOHUGEPAGE): a pass, every page smaller than possible.
    let all_4k = CheckReport {
        present: 1024,
        leaves: Leaves {
            k4: 1024,
            m2: 0,
            g1: 0,
        },
        smaller_pages: 1024,
        ..partly_faulted_report()
    };
    let mut d = device_with(64 << 20, 2 << 20, &ptes_guest(0, 4 * MIB));
    assert_eq!(run_check(&mut d, &ask(3, 4 << 20)), check::STATUS_PASS);
    assert_eq!(last_request(&d).strategy, Strategy::RangeMm);
    assert_eq!(last_request(&d).max_leaf, PageSize::Size2M);
    assert_eq!(r32(&mut d, check::SMALLER_PAGES), 1024);
    assert_eq!(r32(&mut d, check::PAGES), r32(&mut d, check::SMALLER_PAGES));
    assert_eq!(r32(&mut d, check::MISMATCH_KIND), check::MISMATCH_NONE);
    let record = &d.host_checks()[0];
    assert_eq!(record.outcome, Some(all_4k));
    let json = serde_json::to_string(record).unwrap();
    for needle in ["\"smaller_pages\":1024", "\"strategy\":\"range-mm\""] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
    assert!(
        record
            .summary()
            .contains("1024 pages on correct leaves smaller"),
        "{}",
        record.summary()
    );
    // A mismatch keeps its count too (the uncacheable PTE at VA+4M), and
    // the next check replaces it.
    d.set_guest_access(Box::new(flawed_guest()));
    assert_eq!(run_check(&mut d, &ask(2, 6 << 20)), check::STATUS_MISMATCH);
    assert_eq!(r32(&mut d, check::SMALLER_PAGES), 256);
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_WRONG_MEMTYPE
    );
    assert_eq!(mismatch_va(&mut d), VA + 4 * MIB);
    d.set_guest_access(Box::new(partly_faulted_guest()));
    assert_eq!(run_check(&mut d, &the_2m_leaf()), check::STATUS_PASS);
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
            check::STRATEGY_RANGE_MM,
            check::STRATEGY_TTM16
        ]
        .map(Strategy::from_raw),
        [
            Some(Strategy::Page),
            Some(Strategy::Prefault16),
            Some(Strategy::Range),
            Some(Strategy::RangeMm),
            Some(Strategy::Ttm16)
        ]
    );
    assert_eq!(Strategy::from_raw(5), None);
}

/// A 2 MiB device over `guest` whose engine knows `cpu`.
fn device_with_cpu(guest: Guest, cpu: CpuState) -> RangefaultDevice {
    device_with(64 << 20, 2 << 20, &guest.with_cpu(cpu))
}

fn device_with_cr3(guest: Guest, cr3: u64) -> RangefaultDevice {
    let cpu = CpuState {
        cr3: Some(cr3),
        pat: None,
    };
    device_with_cpu(guest, cpu)
}

#[test]
fn a_root_that_is_the_cpus_cr3_passes_and_is_recorded() {
    // PCID bits, and the user half of a PTI pair, still name ROOT's table.
    for cr3 in [ROOT, ROOT | 0x7ff, ROOT | 0x1000] {
        let mut d = device_with_cr3(partly_faulted_guest(), cr3);
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
    let mut d = device_with(64 << 20, 2 << 20, &partly_faulted_guest());
    run_check(&mut d, &ask(2, 4 << 20));
    assert_eq!(d.host_checks()[0].cr3, None);
}

#[test]
fn a_root_that_is_not_the_cpus_cr3_is_a_mismatch() {
    let other = ROOT + 0x2000;
    // The walk of ROOT passed, but the CPU runs on other tables.
    let mut d = device_with_cr3(partly_faulted_guest(), other);
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_MISMATCH);
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_ROOT_NOT_CR3
    );
    assert_eq!(mismatch_va(&mut d), VA);
    assert_eq!(r32(&mut d, check::LEAVES_2M), 1, "the walk's counts stay");
    let record = &d.host_checks()[0];
    assert_eq!(record.status, CheckStatus::Mismatch);
    assert_eq!(record.outcome, Some(partly_faulted_report()));
    assert_eq!(
        record.cr3.map(|c| (c.vcpu_cr3, c.matches)),
        Some((other, false))
    );
    let json = serde_json::to_string(record).unwrap();
    assert!(json.contains("\"matches\":false"), "{json}");
    // It outranks a walk error and a walk mismatch too.
    let mut d = device_with_cr3(no_ram_guest(), other);
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_MISMATCH);
    let error = d.host_checks()[0].error.clone().unwrap();
    assert!(error.contains("not readable"), "{error}");
    let mut d = device_with_cr3(flawed_guest(), other);
    assert_eq!(run_check(&mut d, &ask(2, 6 << 20)), check::STATUS_MISMATCH);
    let walked = d.host_checks()[0].outcome.clone().unwrap();
    assert_eq!(
        walked.first_mismatch.map(|m| m.kind),
        Some(MismatchKind::WrongMemType)
    );
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_ROOT_NOT_CR3
    );
    // A bad request asks nothing of the engine, CR3 included.
    let mut d = device_with_cr3(partly_faulted_guest(), other);
    assert_eq!(run_check(&mut d, &ask(0, 0)), check::STATUS_BAD_REQUEST);
    assert_eq!(d.host_checks()[0].cr3, None);
}

#[test]
fn the_cpus_pat_decodes_the_walk_and_is_compared_with_the_drivers() {
    // All UC: what a driver that read the wrong PAT might pass. Decoded
    // with it, the WC leaves would be the wrong memory type.
    const ALL_UC: u64 = 0;
    for (cpu_pat, driver_pat) in [(LINUX_PAT, LINUX_PAT), (LINUX_PAT, ALL_UC)] {
        let cpu = CpuState {
            cr3: Some(ROOT),
            pat: Some(cpu_pat),
        };
        let mut d = device_with_cpu(partly_faulted_guest(), cpu);
        // A disagreement is recorded, never a mismatch.
        assert_eq!(
            run_check_with_pat(&mut d, &ask(2, 4 << 20), driver_pat),
            check::STATUS_PASS
        );
        assert_eq!(r32(&mut d, check::MISMATCH_KIND), check::MISMATCH_NONE);
        assert_eq!(last_request(&d).pat, cpu_pat, "the walk used the CPU's");
        let record = &d.host_checks()[0];
        assert_eq!(record.status, CheckStatus::Pass);
        assert_eq!(
            record.outcome.as_ref().unwrap().memtype,
            Some(MemType::WriteCombining)
        );
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
    let mut d = device_with_cpu(
        partly_faulted_guest(),
        CpuState {
            cr3: Some(ROOT),
            pat: None,
        },
    );
    assert_eq!(run_check(&mut d, &ask(2, 4 << 20)), check::STATUS_PASS);
    assert_eq!(last_request(&d).pat, LINUX_PAT);
    assert_eq!(d.host_checks()[0].pat, None);
    assert!(d.host_checks()[0].cr3.is_some());
    let mut d = device_with(64 << 20, 2 << 20, &partly_faulted_guest());
    run_check(&mut d, &ask(2, 4 << 20));
    assert_eq!(last_request(&d).pat, LINUX_PAT);
    assert_eq!(
        (d.host_checks()[0].cr3, d.host_checks()[0].pat),
        (None, None)
    );
    // The driver's all-UC PAT decodes the WC leaves as UC: the walk used it.
    let mut d = device_with(64 << 20, 2 << 20, &partly_faulted_guest());
    assert_eq!(
        run_check_with_pat(&mut d, &ask(2, 4 << 20), 0),
        check::STATUS_MISMATCH
    );
    assert_eq!(
        r32(&mut d, check::MISMATCH_KIND),
        check::MISMATCH_WRONG_MEMTYPE
    );
    // A bad request asks the engine nothing, PAT included.
    let cpu = CpuState {
        cr3: Some(ROOT),
        pat: Some(LINUX_PAT),
    };
    let mut d = device_with_cpu(partly_faulted_guest(), cpu);
    assert_eq!(run_check(&mut d, &ask(0, 0)), check::STATUS_BAD_REQUEST);
    assert_eq!(d.host_checks()[0].pat, None);
}
