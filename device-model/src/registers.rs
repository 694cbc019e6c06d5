//! BAR0: the 32-bit register file, the self-test engine behind it, and the
//! routing of the host page-table check registers to [`HostChecker`] and of
//! the MSI-X table and PBA windows to [`MsixState`].

use std::time::Duration;

/// Largest self-test window, in bytes (see `run_selftest`).
pub const MAX_SELFTEST_LEN: u32 = 64 << 20;

use crate::abi::{self, reg, selftest};
use crate::config::DeviceConfig;
use crate::host_check::{DeviceView, HostChecker};
use crate::msix::{self, MsixState};
use crate::ratelimit::RateLimitedLog;
use crate::vram::Vram;
use rangefault_abi::pattern;

/// Self-test works through a bounded buffer so a 4 GiB window does not
/// allocate 4 GiB.
const SELFTEST_CHUNK: usize = 1 << 20;

/// What a 4-aligned BAR0 offset decodes to.
enum Region {
    Register(u64),
    HostCheck(u64),
    MsixTable(u64),
    MsixPba(u64),
    Unknown,
}

fn decode(offset: u64) -> Region {
    let table = abi::MSIX_TABLE_OFFSET..abi::MSIX_TABLE_OFFSET + msix::TABLE_SIZE;
    let pba = abi::MSIX_PBA_OFFSET..abi::MSIX_PBA_OFFSET + msix::PBA_SIZE;
    if offset < reg::END {
        Region::Register(offset)
    } else if HostChecker::claims(offset) {
        Region::HostCheck(offset)
    } else if table.contains(&offset) {
        Region::MsixTable(offset - table.start)
    } else if pba.contains(&offset) {
        Region::MsixPba(offset - pba.start)
    } else {
        Region::Unknown
    }
}

#[derive(Debug)]
pub(crate) struct Registers {
    vram_size: u64,
    page_shift: u32,
    host_checker: HostChecker,
    control: u32,
    scratch: u32,
    selftest_offset: u64,
    selftest_len: u32,
    selftest_seed: u32,
    selftest_result: u32,
    selftest_mismatch_at: u32,
    selftests_run: u64,
    warn_limit: RateLimitedLog,
}

impl Registers {
    pub(crate) fn new(config: &DeviceConfig) -> Self {
        Self {
            vram_size: config.vram_size,
            page_shift: config.page_shift(),
            host_checker: HostChecker::new(),
            control: 0,
            scratch: 0,
            selftest_offset: 0,
            selftest_len: 0,
            selftest_seed: 0,
            selftest_result: selftest::RESULT_NONE,
            selftest_mismatch_at: 0,
            selftests_run: 0,
            warn_limit: RateLimitedLog::new("rangefault", 10, Duration::from_secs(1)),
        }
    }

    pub(crate) fn selftests_run(&self) -> u64 {
        self.selftests_run
    }

    pub(crate) fn host_checker(&self) -> &HostChecker {
        &self.host_checker
    }

    pub(crate) fn host_checker_mut(&mut self) -> &mut HostChecker {
        &mut self.host_checker
    }

    /// Reads any number of bytes at any offset, byte by byte from the
    /// little-endian register file (so 8-byte reads span two registers).
    /// Undefined offsets read 0. Returns false if any byte was undefined.
    pub(crate) fn read(&self, offset: u64, data: &mut [u8], msix: &MsixState) -> bool {
        let mut defined = true;
        for (i, out) in data.iter_mut().enumerate() {
            let dword = offset
                .checked_add(i as u64)
                .filter(|&at| at < abi::REGS_BAR_SIZE)
                .and_then(|at| Some((self.read_dword(at & !3, msix)?, at & 3)));
            *out = match dword {
                Some((value, byte)) => value.to_le_bytes()[byte as usize],
                None => {
                    defined = false;
                    0
                }
            };
        }
        defined
    }

    /// Applies aligned 4-byte writes, and aligned 8-byte writes as two 4-byte
    /// ones; anything else is ignored. Returns false if (part of) the write
    /// was ignored. `vram_bar` is BAR2's programmed address, which a host
    /// check's expected GPA derives from.
    pub(crate) fn write(
        &mut self,
        offset: u64,
        data: &[u8],
        vram: &Vram,
        msix: &mut MsixState,
        vram_bar: Option<u64>,
    ) -> bool {
        match (data.len(), offset % 4, offset % 8) {
            (4, 0, _) | (8, _, 0) => {
                let mut ok = true;
                for (i, chunk) in data.chunks_exact(4).enumerate() {
                    let value = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                    // 8-aligned offsets leave room for +4 without overflow.
                    let at = offset + 4 * i as u64;
                    ok &= self.write_dword(at, value, vram, msix, vram_bar);
                }
                ok
            }
            (len, ..) => {
                self.ignored(offset, len, "registers take aligned 4- or 8-byte writes");
                false
            }
        }
    }

    fn read_dword(&self, offset: u64, msix: &MsixState) -> Option<u32> {
        match decode(offset) {
            Region::Register(r) => self.read_register(r),
            Region::HostCheck(r) => self.host_checker.read(r),
            Region::MsixTable(off) => Some(msix.table_read(off)),
            Region::MsixPba(off) => Some(msix.pba_read(off)),
            Region::Unknown => None,
        }
    }

    fn read_register(&self, r: u64) -> Option<u32> {
        Some(match r {
            reg::MAGIC => abi::MAGIC,
            reg::VERSION => abi::ABI_VERSION,
            reg::VRAM_SIZE_LO => self.vram_size as u32,
            reg::VRAM_SIZE_HI => (self.vram_size >> 32) as u32,
            reg::PAGE_SHIFT => self.page_shift,
            reg::STATUS => {
                if self.control & abi::control::ENABLE != 0 {
                    abi::status::ENABLED
                } else {
                    0
                }
            }
            reg::CONTROL => self.control,
            reg::SCRATCH => self.scratch,
            reg::SELFTEST_OFFSET_LO => self.selftest_offset as u32,
            reg::SELFTEST_OFFSET_HI => (self.selftest_offset >> 32) as u32,
            reg::SELFTEST_LEN => self.selftest_len,
            reg::SELFTEST_SEED => self.selftest_seed,
            // Write-only doorbell.
            reg::SELFTEST_CMD => 0,
            reg::SELFTEST_RESULT => self.selftest_result,
            reg::SELFTEST_MISMATCH_AT => self.selftest_mismatch_at,
            _ => return None,
        })
    }

    fn write_dword(
        &mut self,
        offset: u64,
        value: u32,
        vram: &Vram,
        msix: &mut MsixState,
        vram_bar: Option<u64>,
    ) -> bool {
        if offset >= abi::REGS_BAR_SIZE {
            self.ignored(offset, 4, "beyond BAR0");
            return false;
        }
        match decode(offset) {
            Region::Register(r) => self.write_register(r, value, vram),
            Region::HostCheck(r) => {
                let device = DeviceView {
                    vram_bar,
                    page_size: 1 << self.page_shift,
                };
                match self.host_checker.write(r, value, device) {
                    Ok(()) => true,
                    Err(why) => {
                        self.ignored(offset, 4, why);
                        false
                    }
                }
            }
            Region::MsixTable(off) => {
                msix.table_write(off, value);
                true
            }
            Region::MsixPba(_) => {
                self.ignored(offset, 4, "the MSI-X PBA is read-only");
                false
            }
            Region::Unknown => {
                self.ignored(offset, 4, "no register at this offset");
                false
            }
        }
    }

    fn write_register(&mut self, r: u64, value: u32, vram: &Vram) -> bool {
        match r {
            // Only defined bits stick, so the driver can probe for them.
            reg::CONTROL => self.control = value & abi::control::ENABLE,
            reg::SCRATCH => self.scratch = value,
            reg::SELFTEST_OFFSET_LO => {
                self.selftest_offset = (self.selftest_offset & !0xffff_ffff) | u64::from(value);
            }
            reg::SELFTEST_OFFSET_HI => {
                self.selftest_offset =
                    (self.selftest_offset & 0xffff_ffff) | (u64::from(value) << 32);
            }
            reg::SELFTEST_LEN => self.selftest_len = value,
            reg::SELFTEST_SEED => self.selftest_seed = value,
            reg::SELFTEST_CMD => self.run_selftest(value, vram),
            _ => {
                self.ignored(r, 4, "read-only register");
                return false;
            }
        }
        true
    }

    /// Runs a self-test command synchronously on the device's view of VRAM.
    fn run_selftest(&mut self, cmd: u32, vram: &Vram) {
        self.selftests_run += 1;
        let (offset, len, seed) = (self.selftest_offset, self.selftest_len, self.selftest_seed);
        self.selftest_mismatch_at = 0;
        let in_bounds = offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= vram.size());
        // The test runs synchronously inside one register write: a multi-GiB one would stall the
        // vCPU (and QEMU's 5 s vfio-user reply timeout), so the window is capped.
        self.selftest_result = if len == 0 || len > MAX_SELFTEST_LEN || !in_bounds {
            selftest::RESULT_BAD_ARGS
        } else {
            match cmd {
                selftest::CMD_FILL => Self::fill(vram, offset, len, seed),
                selftest::CMD_VERIFY => match Self::verify(vram, offset, len, seed) {
                    Ok(None) => selftest::RESULT_PASS,
                    Ok(Some(at)) => {
                        self.selftest_mismatch_at = at;
                        selftest::RESULT_MISMATCH
                    }
                    Err(result) => result,
                },
                _ => selftest::RESULT_BAD_ARGS,
            }
        };
        tracing::debug!(
            cmd,
            offset,
            len,
            seed,
            result = self.selftest_result,
            "rangefault: self-test"
        );
    }

    fn fill(vram: &Vram, offset: u64, len: u32, seed: u32) -> u32 {
        let mut buf = vec![0u8; SELFTEST_CHUNK.min(len as usize)];
        let mut done = 0u64;
        while done < u64::from(len) {
            let n = buf.len().min((u64::from(len) - done) as usize);
            let chunk = &mut buf[..n];
            pattern::fill(seed, offset + done, chunk);
            if vram.write_at(offset + done, chunk).is_err() {
                return selftest::RESULT_BAD_ARGS;
            }
            done += n as u64;
        }
        selftest::RESULT_PASS
    }

    /// `Ok(Some(at))`: first mismatching byte, relative to `offset`.
    fn verify(vram: &Vram, offset: u64, len: u32, seed: u32) -> Result<Option<u32>, u32> {
        let mut buf = vec![0u8; SELFTEST_CHUNK.min(len as usize)];
        let mut done = 0u64;
        while done < u64::from(len) {
            let n = buf.len().min((u64::from(len) - done) as usize);
            let chunk = &mut buf[..n];
            vram.read_at(offset + done, chunk)
                .map_err(|_| selftest::RESULT_BAD_ARGS)?;
            if let Some(i) = pattern::first_mismatch(seed, offset + done, chunk) {
                // `len` is a u32, so any position inside it fits.
                return Ok(Some((done + i as u64) as u32));
            }
            done += n as u64;
        }
        Ok(None)
    }

    /// Logs a dropped guest access without letting a guest flood the log.
    fn ignored(&mut self, offset: u64, len: usize, why: &'static str) {
        if let Some(suppressed) = self.warn_limit.admit() {
            tracing::warn!(
                offset = format_args!("{offset:#x}"),
                len,
                suppressed,
                "rangefault: ignored BAR0 write: {why}"
            );
        }
    }
}
