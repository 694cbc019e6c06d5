//! The host page-table check on the KVM machine, driven by a tiny 64-bit
//! guest: it builds its own page tables mapping `VA` onto BAR2 (one 2 MiB
//! leaf, then 16 4 KiB PTEs, all write-combining under the Linux PAT it
//! loads into IA32_PAT), switches CR3 to them, touches VRAM through them,
//! and rings the CHECK doorbell through BAR0 as the guest driver does. It
//! stores the result registers in RAM; the test compares them, and the
//! device's records, with what the walk, the CR3 cross-check and the
//! vCPU's PAT must say.

mod kvm_support;

use iced_x86::code_asm::*;

use device_model::abi::check;
use device_model::host_check::{CheckStatus, Cr3Check, MemType, MismatchKind, PatCheck};
use device_model::HostCheckRecord;
use kvm_machine::EndReason;
use kvm_support::*;

/// The guest's page tables: the "kernel" PML4 and its PTI twin one page
/// up (the pair differs in CR3 bit 12), the tables below them, and an
/// identical copy of the PML4 elsewhere that the CPU never runs on.
const PML4: u64 = 0x40_0000;
const PML4_TWIN: u64 = PML4 + 0x1000;
const PDPT: u64 = PML4 + 0x2000;
const PD: u64 = PML4 + 0x3000;
const PT: u64 = PML4 + 0x4000;
const PML4_COPY: u64 = PML4 + 0x6000;
const TABLES_END: u64 = PML4 + 0x7000;
/// The boot page tables (identity map, no `VA`).
const BOOT_PML4: u64 = 0x9000;

/// The user-space-looking range the guest maps: a 2 MiB leaf onto BAR2,
/// then 64 KiB of 4 KiB PTEs onto the next 2 MiB of VRAM.
const VA: u64 = 0x0000_7f00_0000_0000;
const LEN: u64 = (2 << 20) + PTES * 0x1000;
const PTES: u64 = 16;

// Entry bits: present, writable, user; PWT (PAT index 1: WC under the
// Linux PAT); PS (a 2 MiB leaf in a PD).
const TABLE: u64 = 0x7;
const PWT: u64 = 1 << 3;
const PS: u64 = 1 << 7;
const IA32_PAT: u32 = 0x277;
const LINUX_PAT: u64 = page_walker::LINUX_PAT_MSR;
/// IA32_PAT at power-on: WT at index 1, so the tables' PWT pages are WT.
const POWER_ON_PAT: u64 = 0x0007_0406_0007_0406;
/// Every entry UC: a PAT a buggy driver might pass.
const ALL_UC_PAT: u64 = 0;
/// What the driver writes to FLAGS: pages must be present, strategy
/// `range` (the device's 2 MiB pages allow 2 MiB leaves).
const RANGE_PRESENT: u32 = check::FLAG_REQUIRE_PRESENT | 2 << check::STRATEGY_SHIFT;

/// A request as the driver makes it.
struct Ask {
    root: u64,
    offset: u64,
}

/// The result slots one check fills.
struct Answer {
    status: u64,
    pages: u64,
    present: u64,
    leaves: [u64; 3],
    memtype: u64,
    mismatch_kind: u64,
    mismatch_va: [u64; 2],
    seq: u64,
}

/// What the guest read back from one check.
#[derive(Debug, PartialEq, Eq)]
struct Registers {
    status: u32,
    pages: u64,
    present: u64,
    /// 4K, 2M, 1G.
    leaves: [u64; 3],
    memtype: u64,
    mismatch_kind: u32,
    mismatch_va: u64,
    seq: u64,
}

impl Answer {
    fn read(&self, m: &Machine) -> Registers {
        Registers {
            status: m.result(self.status) as u32,
            pages: m.result(self.pages),
            present: m.result(self.present),
            leaves: self.leaves.map(|slot| m.result(slot)),
            memtype: m.result(self.memtype),
            mismatch_kind: m.result(self.mismatch_kind) as u32,
            mismatch_va: m.result(self.mismatch_va[0]) | m.result(self.mismatch_va[1]) << 32,
            seq: m.result(self.seq),
        }
    }
}

/// The guest's side of the check, on top of the shared [`Guest`].
trait CheckingGuest {
    fn store_qword(&mut self, addr: u64, value: u64) -> Asm;
    fn build_page_tables(&mut self) -> Asm;
    fn load_pat(&mut self, pat: u64, told: Option<u64>) -> Result<u64, IcedError>;
    fn switch_cr3(&mut self, cr3: u64) -> Asm;
    fn write_pair(&mut self, lo: u64, value: u64) -> Asm;
    fn ring(&mut self, ask: &Ask) -> Result<Answer, IcedError>;
}

impl CheckingGuest for Guest {
    fn store_qword(&mut self, addr: u64, value: u64) -> Asm {
        self.a.mov(rbx, addr)?;
        self.a.mov(rax, value)?;
        self.a.mov(qword_ptr(rbx), rax)
    }

    /// Zeroes the table area, then builds PML4 -> PDPT -> PD (a 2 MiB WC
    /// leaf, then a PT of 16 WC PTEs), keeping the boot identity map in
    /// PML4[0] so code, data and BAR0 stay where they are; then copies the
    /// PML4 to its PTI twin and to the unrelated copy.
    fn build_page_tables(&mut self) -> Asm {
        self.a.cld()?;
        self.a.mov(rdi, PML4)?;
        self.a.xor(eax, eax)?;
        self.a.mov(ecx, ((TABLES_END - PML4) / 8) as u32)?;
        self.a.rep().stosq()?;
        // PML4[0]: whatever the current (boot) PML4 has there.
        self.a.mov(rax, cr3)?;
        self.a.and(rax, -0x1000i32)?;
        self.a.mov(rax, qword_ptr(rax))?;
        self.a.mov(rbx, PML4)?;
        self.a.mov(qword_ptr(rbx), rax)?;
        let index = |va: u64, shift: u32| (va >> shift) & 0x1ff;
        self.store_qword(PML4 + 8 * index(VA, 39), PDPT | TABLE)?;
        self.store_qword(PDPT + 8 * index(VA, 30), PD | TABLE)?;
        self.store_qword(PD + 8 * index(VA, 21), BAR2 | TABLE | PWT | PS)?;
        self.store_qword(PD + 8 * (index(VA, 21) + 1), PT | TABLE)?;
        for i in 0..PTES {
            let gpa = BAR2 + (2 << 20) + i * 0x1000;
            self.store_qword(PT + 8 * i, gpa | TABLE | PWT)?;
        }
        for copy in [PML4_TWIN, PML4_COPY] {
            self.a.mov(rsi, PML4)?;
            self.a.mov(rdi, copy)?;
            self.a.mov(ecx, 512u32)?;
            self.a.rep().movsq()?;
        }
        Ok(())
    }

    /// Loads `pat` into IA32_PAT, reads it back (the value the guest
    /// really has) and stores it; then writes the device's PAT registers:
    /// what it read back, as the driver does, or `told`, as a driver that
    /// got its PAT wrong does. Returns the result slot.
    fn load_pat(&mut self, pat: u64, told: Option<u64>) -> Result<u64, IcedError> {
        self.a.mov(ecx, IA32_PAT)?;
        self.a.mov(eax, pat as u32)?;
        self.a.mov(edx, (pat >> 32) as u32)?;
        self.a.wrmsr()?;
        self.a.xor(eax, eax)?;
        self.a.xor(edx, edx)?;
        self.a.rdmsr()?;
        self.a.shl(rdx, 32)?;
        self.a.or(rax, rdx)?;
        let slot = self.store_rax()?;
        match told {
            None => {
                self.a.mov(rbx, BAR0)?;
                self.a.mov(dword_ptr(rbx + check::PAT_LO), eax)?;
                self.a.shr(rax, 32)?;
                self.a.mov(dword_ptr(rbx + check::PAT_HI), eax)?;
            }
            Some(told) => self.write_pair(check::PAT_LO, told)?,
        }
        Ok(slot)
    }

    fn switch_cr3(&mut self, cr3_value: u64) -> Asm {
        self.a.mov(rax, cr3_value)?;
        self.a.mov(cr3, rax)
    }

    /// A 64-bit register pair as two dword writes, as the driver does.
    fn write_pair(&mut self, lo: u64, value: u64) -> Asm {
        self.write_u32(BAR0 + lo, value as u32)?;
        self.write_u32(BAR0 + lo + 4, (value >> 32) as u32)
    }

    /// Programs a request, rings, and stores every result register.
    fn ring(&mut self, ask: &Ask) -> Result<Answer, IcedError> {
        self.write_pair(check::ROOT_LO, ask.root)?;
        self.write_pair(check::VA_LO, VA)?;
        self.write_pair(check::LEN_LO, LEN)?;
        self.write_pair(check::OFFSET_LO, ask.offset)?;
        self.write_u32(BAR0 + check::FLAGS, RANGE_PRESENT)?;
        self.write_u32(BAR0 + check::DOORBELL, check::RUN)?;
        let mut read = |r: u64| self.record_u32(BAR0 + r);
        Ok(Answer {
            status: read(check::STATUS)?,
            pages: read(check::PAGES)?,
            present: read(check::PRESENT)?,
            leaves: [
                read(check::LEAVES_4K)?,
                read(check::LEAVES_2M)?,
                read(check::LEAVES_1G)?,
            ],
            memtype: read(check::MEMTYPE)?,
            mismatch_kind: read(check::MISMATCH_KIND)?,
            mismatch_va: [read(check::MISMATCH_VA_LO)?, read(check::MISMATCH_VA_HI)?],
            seq: read(check::SEQ)?,
        })
    }
}

/// A guest with BARs programmed, the Linux PAT loaded (and passed to the
/// device), its tables built and CR3 on them, and VRAM touched through
/// `VA`. Returns the PAT slot.
fn prepared_guest() -> (Guest, u64) {
    prepared_guest_telling(None)
}

/// [`prepared_guest`], but the driver passes `told` as its PAT, if given.
fn prepared_guest_telling(told: Option<u64>) -> (Guest, u64) {
    let mut g = Guest::new();
    g.program_bars(BAR2).unwrap();
    let pat = g.load_pat(LINUX_PAT, told).unwrap();
    g.build_page_tables().unwrap();
    g.switch_cr3(PML4).unwrap();
    // Through the new mapping: the 2 MiB leaf, then a 4 KiB PTE.
    g.write_u32(VA + 0x40, 0x1eaf_0002).unwrap();
    g.write_u32(VA + (2 << 20) + 0x1040, 0x1eaf_0004).unwrap();
    (g, pat)
}

/// Runs `g` to its reset; returns the machine to read results from.
fn run(mut g: Guest) -> (Machine, kvm_machine::RunOutcome) {
    g.reset().unwrap();
    let mut m = Machine::new(1);
    let outcome = m.run_long_mode(&g.assemble(), RUN_TIMEOUT);
    assert_eq!(
        outcome.reason,
        EndReason::GuestReset,
        "{}",
        m.console.text()
    );
    (m, outcome)
}

fn records(m: &Machine) -> Vec<HostCheckRecord> {
    m.device.lock().unwrap().host_checks().to_vec()
}

/// What a passing check of the whole range reads back.
fn passing(seq: u64) -> Registers {
    Registers {
        status: check::STATUS_PASS,
        pages: LEN / 0x1000,
        present: LEN / 0x1000,
        leaves: [PTES, 1, 0],
        memtype: 1, // WC
        mismatch_kind: check::MISMATCH_NONE,
        mismatch_va: 0,
        seq,
    }
}

#[test]
fn the_guests_own_tables_pass_and_match_its_cr3() {
    if !kvm_usable("host-check") {
        return;
    }
    let (mut g, pat) = prepared_guest();
    let exact = g
        .ring(&Ask {
            root: PML4,
            offset: 0,
        })
        .unwrap();
    // The user half of the PTI pair, and flag bits (PCID, no-flush) in
    // ROOT, still name the CPU's table.
    let twin = g
        .ring(&Ask {
            root: PML4_TWIN,
            offset: 0,
        })
        .unwrap();
    let flagged = g
        .ring(&Ask {
            root: PML4 | 1 << 63 | 0x5a5,
            offset: 0,
        })
        .unwrap();
    // The CPU on the twin, the driver naming the kernel half.
    g.switch_cr3(PML4_TWIN).unwrap();
    let on_twin = g
        .ring(&Ask {
            root: PML4,
            offset: 0,
        })
        .unwrap();

    let (m, outcome) = run(g);
    assert_eq!(m.result(pat), LINUX_PAT);
    for (i, answer) in [exact, twin, flagged, on_twin].iter().enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(answer.read(&m), passing(seq), "check #{seq}");
    }
    let records = records(&m);
    let cr3s: Vec<Option<Cr3Check>> = records.iter().map(|r| r.cr3).collect();
    let matching = |table: u64| {
        Some(Cr3Check {
            vcpu_cr3: table,
            matches: true,
        })
    };
    assert_eq!(
        cr3s,
        [
            matching(PML4),
            matching(PML4),
            matching(PML4),
            matching(PML4_TWIN)
        ]
    );
    for record in &records {
        assert_eq!(record.status, CheckStatus::Pass, "{}", record.summary());
        let request = record.request.as_ref().unwrap();
        assert_eq!((request.pat, request.expected_gpa), (LINUX_PAT, BAR2));
        // The vCPU's IA32_PAT, read by the host, is the one it loaded.
        assert_eq!(
            record.pat,
            Some(PatCheck {
                vcpu_pat: LINUX_PAT,
                driver_pat: LINUX_PAT,
                matches: true
            })
        );
    }
    // The CPU really used these tables: its writes through VA hit VRAM.
    assert_eq!(m.vram_u32(0x40), 0x1eaf_0002);
    assert_eq!(m.vram_u32((2 << 20) + 0x1040), 0x1eaf_0004);
    let c = outcome.counters;
    assert_eq!(c.cr3_reads.get(), 4, "one CR3 per doorbell: {c:?}");
    assert_eq!(c.pat_reads.get(), 4, "one PAT per doorbell: {c:?}");
    assert_eq!(c.boundary.vram_trapped_accesses.get(), 0);
}

#[test]
fn a_root_that_is_not_the_cpus_cr3_fails_the_check() {
    if !kvm_usable("host-check") {
        return;
    }
    let (mut g, _) = prepared_guest();
    // Tables identical to the CPU's, but not the ones it runs on: the walk
    // passes, the cross-check does not.
    let copy = g
        .ring(&Ask {
            root: PML4_COPY,
            offset: 0,
        })
        .unwrap();
    // The boot tables: the walk finds nothing at VA either.
    let boot = g
        .ring(&Ask {
            root: BOOT_PML4,
            offset: 0,
        })
        .unwrap();

    let (m, _) = run(g);
    let root_not_cr3 = |seq, pages_present, leaves| Registers {
        status: check::STATUS_MISMATCH,
        pages: LEN / 0x1000,
        present: pages_present,
        leaves,
        memtype: if pages_present > 0 {
            1
        } else {
            u64::from(check::MEMTYPE_MIXED)
        },
        mismatch_kind: check::MISMATCH_ROOT_NOT_CR3,
        mismatch_va: VA,
        seq,
    };
    assert_eq!(copy.read(&m), root_not_cr3(1, LEN / 0x1000, [PTES, 1, 0]));
    assert_eq!(boot.read(&m), root_not_cr3(2, 0, [0, 0, 0]));
    let records = records(&m);
    let not_matching = Some(Cr3Check {
        vcpu_cr3: PML4,
        matches: false,
    });
    for record in &records {
        assert_eq!(record.status, CheckStatus::Mismatch);
        assert_eq!(record.cr3, not_matching, "{}", record.summary());
        assert!(
            record.summary().contains("is NOT ROOT's table"),
            "{}",
            record.summary()
        );
    }
    // The walk's own verdicts are kept: the copy passed, the boot tables
    // do not map VA.
    let walked = |i: usize| records[i].outcome.as_ref().unwrap();
    assert!(walked(0).pass);
    let missing = walked(1).first_mismatch.as_ref().unwrap();
    assert_eq!((missing.va, missing.kind), (VA, MismatchKind::NotPresent));
}

#[test]
fn a_wrong_offset_is_a_mismatch_under_the_right_cr3() {
    if !kvm_usable("host-check") {
        return;
    }
    let (mut g, _) = prepared_guest();
    // One device page further into VRAM than the tables map.
    let shifted = g
        .ring(&Ask {
            root: PML4,
            offset: 2 << 20,
        })
        .unwrap();

    let (m, _) = run(g);
    let got = shifted.read(&m);
    assert_eq!(got.status, check::STATUS_MISMATCH);
    assert_eq!(got.mismatch_kind, check::MISMATCH_WRONG_GPA);
    assert_eq!(got.mismatch_va, VA);
    assert_eq!((got.leaves, got.present), ([PTES, 1, 0], LEN / 0x1000));
    let record = &records(&m)[0];
    assert_eq!(
        record.cr3,
        Some(Cr3Check {
            vcpu_cr3: PML4,
            matches: true
        })
    );
    assert_eq!(
        record.request.as_ref().unwrap().expected_gpa,
        BAR2 + (2 << 20)
    );
}

#[test]
fn the_vcpus_pat_decodes_memory_types_whatever_the_driver_passes() {
    if !kvm_usable("host-check") {
        return;
    }
    // The CPU runs the Linux PAT (WC at index 1); the driver says all UC.
    let (mut g, linux) = prepared_guest_telling(Some(ALL_UC_PAT));
    let told_uc = g
        .ring(&Ask {
            root: PML4,
            offset: 0,
        })
        .unwrap();
    // The CPU runs the power-on PAT (WT at index 1); the driver says
    // Linux's.
    let power_on = g.load_pat(POWER_ON_PAT, Some(LINUX_PAT)).unwrap();
    let told_linux = g
        .ring(&Ask {
            root: PML4,
            offset: 0,
        })
        .unwrap();

    let (m, outcome) = run(g);
    assert_eq!(
        (m.result(linux), m.result(power_on)),
        (LINUX_PAT, POWER_ON_PAT)
    );
    // The pages are WC under the CPU's PAT: a pass, whatever the driver
    // said.
    assert_eq!(told_uc.read(&m), passing(1));
    // The pages are WT under the CPU's PAT: a memory-type mismatch, though
    // the driver's PAT would have made them WC.
    let got = told_linux.read(&m);
    assert_eq!(
        (got.status, got.mismatch_kind, got.mismatch_va, got.memtype),
        (check::STATUS_MISMATCH, check::MISMATCH_WRONG_MEMTYPE, VA, 4)
    );
    let records = records(&m);
    let disagreeing = |vcpu_pat, driver_pat| {
        Some(PatCheck {
            vcpu_pat,
            driver_pat,
            matches: false,
        })
    };
    let (uc, wt) = (&records[0], &records[1]);
    assert_eq!(uc.status, CheckStatus::Pass, "{}", uc.summary());
    assert_eq!(uc.pat, disagreeing(LINUX_PAT, ALL_UC_PAT));
    assert_eq!(uc.registers.pat, ALL_UC_PAT);
    assert_eq!(uc.request.as_ref().unwrap().pat, LINUX_PAT);
    assert!(
        uc.summary().contains("NOT the driver's PAT 0x0"),
        "{}",
        uc.summary()
    );
    assert_eq!(wt.status, CheckStatus::Mismatch, "{}", wt.summary());
    assert_eq!(wt.pat, disagreeing(POWER_ON_PAT, LINUX_PAT));
    let walked = wt.outcome.as_ref().unwrap();
    assert_eq!(walked.memtype, Some(MemType::WriteThrough));
    assert_eq!(
        walked.first_mismatch.as_ref().map(|m| m.kind),
        Some(MismatchKind::WrongMemType)
    );
    // The CR3 cross-check is unaffected.
    for record in &records {
        assert_eq!(record.cr3.map(|c| c.matches), Some(true));
    }
    assert_eq!(outcome.counters.pat_reads.get(), 2);
}
