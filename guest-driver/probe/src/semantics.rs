//! The `semantics` scenario: what a PFN mapping of VRAM must survive (after the kernel's
//! `tools/testing/selftests/mm/pfnmap.c`), plus revocation and bad input. One JSON result with
//! one check per case; children report through their exit status so a SIGBUS is observable.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;

use serde::Serialize;

use device_model::pattern;

use crate::sysfs::PciFunction;
use crate::uapi::{Device, Strategy};
use crate::vmap::DeviceMapping;
use crate::{Check, ProbeError};

const MIB: usize = 1 << 20;
const SEED: u32 = 0x5e3a;

#[derive(Serialize)]
pub struct SemanticsResult {
    pub scenario: &'static str,
    pub pass: bool,
    pub page_size: u64,
    pub checks: Vec<Check>,
}

fn check(name: &'static str, case: impl FnOnce() -> Result<String, String>) -> Check {
    match case() {
        Ok(detail) => Check {
            name,
            pass: true,
            detail,
        },
        Err(detail) => Check {
            name,
            pass: false,
            detail,
        },
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Writes the pattern word at the start of every 4 KiB page of `mapping`.
fn stamp(mapping: &DeviceMapping) {
    stamp_range(mapping, 0, mapping.len);
}

/// Writes the pattern word at the start of every 4 KiB page of `[from, to)`.
fn stamp_range(mapping: &DeviceMapping, from: usize, to: usize) {
    for at in (from..to).step_by(4096) {
        mapping.write64(at, pattern::word(SEED, mapping.offset + at as u64));
    }
}

/// First page of `[from, to)` whose word is not the pattern, if any.
fn first_bad(mapping: &DeviceMapping, from: usize, to: usize) -> Option<usize> {
    (from..to)
        .step_by(4096)
        .find(|&at| mapping.read64(at) != pattern::word(SEED, mapping.offset + at as u64))
}

fn verify(mapping: &DeviceMapping, from: usize, to: usize) -> Result<(), String> {
    match first_bad(mapping, from, to) {
        None => Ok(()),
        Some(at) => Err(format!("wrong data at +{at:#x}")),
    }
}

/// Runs `child` in a forked process; returns its wait status.
fn in_child(child: impl FnOnce() -> i32) -> libc::c_int {
    // SAFETY: the probe is single-threaded here (threads are joined before any fork); the child
    // only touches memory and calls async-signal-safe functions before `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = child();
        // SAFETY: leaving the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    status
}

fn describe_status(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        format!("killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exit {}", libc::WEXITSTATUS(status))
    }
}

fn killed_by_sigbus(status: libc::c_int) -> bool {
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGBUS
}

fn exited_ok(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

pub fn run() -> Result<SemanticsResult, ProbeError> {
    let device = Device::open()?;
    let info = device.info()?;
    device.set_strategy(Strategy::Range)?;
    let align = (info.page_size as usize).clamp(2 * MIB, 1 << 30);
    let len = (8 * MIB)
        .max(2 * info.page_size as usize)
        .min(info.vram_size as usize);
    let map = |offset: u64, len: usize, misalign: usize| {
        DeviceMapping::new(&device, offset, len, align, misalign).map_err(|e| e.to_string())
    };

    let mut checks = Vec::new();

    checks.push(check("fork_child_reads_parent_data", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        let status = in_child(|| i32::from(first_bad(&m, 0, m.len).is_some()));
        if exited_ok(status) {
            Ok(format!("child verified {} bytes", m.len))
        } else {
            Err(format!("child: {}", describe_status(status)))
        }
    }));

    checks.push(check("partial_munmap_then_retouch", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        // Punch a 1 MiB hole into the middle of the first huge entry (splitting it).
        let hole = MIB / 2;
        // SAFETY: unmapping part of our own mapping; we never touch the hole afterwards.
        if unsafe { libc::munmap(m.ptr.add(hole).cast(), MIB) } != 0 {
            return Err(format!("munmap: errno {}", errno()));
        }
        verify(&m, 0, hole)?;
        verify(&m, hole + MIB, m.len)?;
        Ok("data on both sides of the hole intact after re-faulting".into())
    }));

    checks.push(check("mremap_move_shrink_and_refused_grow", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        let target = map(0, len, 0)?; // a second aligned area to move onto
                                      // SAFETY: moving our own mapping onto our own other mapping (MREMAP_FIXED replaces it).
        let moved = unsafe {
            libc::mremap(
                m.ptr.cast(),
                m.len,
                m.len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                target.ptr.cast::<libc::c_void>(),
            )
        };
        if moved == libc::MAP_FAILED {
            return Err(format!("mremap move: errno {}", errno()));
        }
        verify(&target, 0, target.len)?;
        // SAFETY: shrinking our own mapping in place.
        let shrunk = unsafe { libc::mremap(target.ptr.cast(), target.len, target.len / 2, 0) };
        if shrunk == libc::MAP_FAILED {
            return Err(format!("mremap shrink: errno {}", errno()));
        }
        verify(&target, 0, target.len / 2)?;
        // SAFETY: asking to grow our own mapping; VM_DONTEXPAND must refuse.
        let grown = unsafe { libc::mremap(target.ptr.cast(), target.len / 2, target.len, 0) };
        if grown != libc::MAP_FAILED {
            return Err("mremap grow succeeded on a VM_DONTEXPAND mapping".into());
        }
        Ok(format!(
            "moved and shrunk with data intact; grow refused (errno {})",
            errno()
        ))
    }));

    checks.push(check("madvise_dontneed_then_retouch", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        // SAFETY: advice on our own mapping.
        let rc = unsafe { libc::madvise(m.ptr.cast(), m.len, libc::MADV_DONTNEED) };
        let outcome = if rc == 0 {
            "zapped".to_owned()
        } else {
            format!("refused (errno {})", errno())
        };
        if rc != 0 && errno() != libc::EINVAL {
            return Err(format!("madvise {outcome}"));
        }
        verify(&m, 0, m.len)?;
        Ok(format!("madvise {outcome}; data intact after re-touch"))
    }));

    checks.push(check("o_direct_read_into_mapping_fails_cleanly", || {
        let m = map(0, len, 0)?;
        // A real block device: direct I/O must pin the destination pages, which a PFN
        // mapping does not have (tmpfs only pretends, copying without pinning).
        let path = "/dev/ram0";
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_odirect()
            .open(path)
            .map_err(|e| format!("open {path} O_DIRECT: {e}"))?;
        // SAFETY: reading into our own mapping; the kernel must refuse to pin PFNMAP pages.
        let n = unsafe { libc::read(file.as_raw_fd(), m.ptr.cast(), 64 << 10) };
        let read_errno = errno();
        if n >= 0 || read_errno != libc::EFAULT {
            return Err(format!(
                "O_DIRECT read into a PFN mapping returned {n} (errno {read_errno})"
            ));
        }
        Ok("refused with EFAULT".into())
    }));

    checks.push(check("proc_self_mem_reads_through_access", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        let mut mem = std::fs::File::open("/proc/self/mem").map_err(|e| e.to_string())?;
        mem.seek(SeekFrom::Start(m.va() as u64 + 4096))
            .map_err(|e| e.to_string())?;
        let mut word = [0u8; 8];
        mem.read_exact(&mut word)
            .map_err(|e| format!("read: {e}"))?;
        let expected = pattern::word(SEED, 4096);
        if u64::from_le_bytes(word) != expected {
            return Err(format!(
                "read {:#x}, expected {expected:#x}",
                u64::from_le_bytes(word)
            ));
        }
        Ok("vm_ops->access served /proc/self/mem".into())
    }));

    checks.push(check("ptrace_peek_through_access", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        // SAFETY: plain fork; the child stops itself and is killed by the parent.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: async-signal-safe calls only, then stop until the parent kills us.
            unsafe {
                libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
                libc::raise(libc::SIGSTOP);
                libc::_exit(0);
            }
        }
        let mut status = 0;
        // SAFETY: our traced child, stopped.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        // SAFETY: PEEKDATA at an address mapped in the (forked) child.
        let value = unsafe {
            *libc::__errno_location() = 0;
            libc::ptrace(libc::PTRACE_PEEKDATA, pid, m.va() + 8192, 0)
        };
        let peek_errno = errno();
        // SAFETY: ending our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, &mut status, 0);
        }
        let expected = pattern::word(SEED, 8192);
        if value as u64 != expected {
            return Err(format!(
                "peek {value:#x} (errno {peek_errno}), expected {expected:#x}"
            ));
        }
        Ok("PTRACE_PEEKDATA read the child's VRAM mapping".into())
    }));

    checks.push(check("process_vm_readv_is_refused", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        let mut buf = [0u8; 8];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: m.ptr.cast(),
            iov_len: 8,
        };
        // SAFETY: reading our own address space into a local buffer.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        let read_errno = errno();
        if n != -1 || read_errno != libc::EFAULT {
            return Err(format!(
                "process_vm_readv returned {n} (errno {read_errno}), expected EFAULT"
            ));
        }
        Ok("GUP refuses PFN mappings with EFAULT (/proc/PID/mem and ptrace use access)".into())
    }));

    checks.push(check("unaligned_va_and_offset", || {
        let offset = 64 << 10;
        let m = map(offset, len - 2 * MIB, 4096)?;
        stamp(&m);
        verify(&m, 0, m.len)?;
        // The host must find smaller, correct entries where huge ones cannot fit.
        let host = device
            .check(m.va(), m.len, 0, None)
            .map_err(|e| e.to_string())?;
        if !host.pass {
            return Err(format!("host check: {host:?}"));
        }
        Ok(format!(
            "VA {:#x} (4 KiB past alignment), offset {offset:#x}: data correct, host check {:?}",
            m.va(),
            host.leaves
        ))
    }));

    checks.push(check("low_va_with_large_offset", || {
        // A VMA whose first window would start below address 0 in VA terms (regression test
        // for the window arithmetic). Skipped if 0x1000 is taken in this process.
        let addr = 0x1000usize;
        let offset = 0xf000;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping; we unmap it below.
        let ptr = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                0x10000,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                device.file.as_raw_fd(),
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Ok(format!(
                "skipped: cannot map at {addr:#x} (errno {})",
                errno()
            ));
        }
        // SAFETY: inside the mapping just made.
        unsafe { ptr.cast::<u64>().write_volatile(0x1234_5678) };
        // SAFETY: as above.
        let back = unsafe { ptr.cast::<u64>().read_volatile() };
        // SAFETY: our own mapping.
        unsafe { libc::munmap(ptr, 0x10000) };
        if back != 0x1234_5678 {
            return Err(format!("read back {back:#x}"));
        }
        Ok(format!(
            "mapped VA {addr:#x} at offset {offset:#x}, faulted and read back"
        ))
    }));

    checks.push(check("strategy_is_fixed_per_mapping", || {
        // A mapping keeps the strategy it was made with; SET_STRATEGY only affects new ones.
        let m = map(0, len, 0)?;
        let half = m.len / 2;
        stamp_range(&m, 0, half);
        device
            .set_strategy(Strategy::Page)
            .map_err(|e| e.to_string())?;
        stamp_range(&m, half, m.len);
        device
            .set_strategy(Strategy::Range)
            .map_err(|e| e.to_string())?;
        verify(&m, 0, m.len)?;
        let host = device
            .check(m.va(), m.len, 0, None)
            .map_err(|e| e.to_string())?;
        if !host.pass {
            return Err(format!("host check: {host:?}"));
        }
        Ok(format!(
            "leaves after a mid-mapping SET_STRATEGY: {:?}",
            host.leaves
        ))
    }));

    checks.push(check("eight_threads_fault_concurrently", || {
        let m = map(0, len, 0)?;
        let va = m.va();
        let stride = m.len / 8;
        let offset = m.offset;
        std::thread::scope(|scope| {
            for t in 0..8 {
                scope.spawn(move || {
                    // Each thread walks the whole mapping from a different start: all of them
                    // fault on the same windows at once.
                    for i in 0..(stride * 8 / 4096) {
                        let at = (t * stride + i * 4096) % (stride * 8);
                        let ptr = (va + at) as *mut u64;
                        // SAFETY: inside the live mapping, 8-byte aligned.
                        unsafe { ptr.write_volatile(pattern::word(SEED, offset + at as u64)) };
                    }
                });
            }
        });
        verify(&m, 0, m.len)?;
        Ok("8 threads faulted the same windows; data correct".into())
    }));

    checks.push(check("disable_gives_sigbus_enable_refaults", || {
        let m = map(0, len, 0)?;
        stamp(&m);
        device.set_enabled(false).map_err(|e| e.to_string())?;
        let status = in_child(|| {
            // SAFETY: inside the live mapping; the fault must raise SIGBUS.
            unsafe { m.ptr.cast::<u64>().read_volatile() };
            0
        });
        device.set_enabled(true).map_err(|e| e.to_string())?;
        if !killed_by_sigbus(status) {
            return Err(format!(
                "child touching a disabled device: {}",
                describe_status(status)
            ));
        }
        verify(&m, 0, m.len)?;
        Ok("SIGBUS while disabled, data back after enable".into())
    }));

    checks.push(check("bad_input_is_refused", || {
        let fd = device.file.as_raw_fd();
        // SAFETY: each call asks for a fresh mapping and is expected to fail.
        let private = unsafe {
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_PRIVATE, fd, 0)
        };
        let private_errno = errno();
        // SAFETY: as above.
        let beyond = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                (info.vram_size - 4096) as libc::off_t,
            )
        };
        let beyond_errno = errno();
        let bad_strategy = device.raw_ioctl(0x4004_7202, 7);
        let bad_request = device.raw_ioctl(0x1234, 0);
        let bad_pointer = device.raw_ioctl(0x8020_7200, 16);
        let ok = private == libc::MAP_FAILED
            && private_errno == libc::EINVAL
            && beyond == libc::MAP_FAILED
            && beyond_errno == libc::EINVAL
            && bad_strategy.is_err()
            && bad_request == Err(libc::ENOTTY)
            && bad_pointer == Err(libc::EFAULT);
        let detail = format!(
            "MAP_PRIVATE errno {private_errno}, past VRAM errno {beyond_errno}, bad strategy {bad_strategy:?}, unknown ioctl {bad_request:?}, bad pointer {bad_pointer:?}"
        );
        if ok { Ok(detail) } else { Err(detail) }
    }));

    checks.push(check("rmmod_refused_while_open", || {
        let status = std::process::Command::new("rmmod")
            .arg("rangefault")
            .status();
        let still_loaded = std::path::Path::new("/sys/module/rangefault").exists();
        if still_loaded && !matches!(status, Ok(s) if s.success()) {
            Ok("rmmod refused while /dev/rangefault0 is open".into())
        } else {
            Err(format!(
                "rmmod with an open file: {status:?}, loaded: {still_loaded}"
            ))
        }
    }));

    checks.push(check("unbind_while_mapped_gives_sigbus", || {
        let function = PciFunction::find().map_err(|e| e.to_string())?;
        let m = map(0, len, 0)?;
        stamp(&m);
        let mut pipe = [0; 2];
        // SAFETY: creating a pipe into a two-element array.
        unsafe { libc::pipe(pipe.as_mut_ptr()) };
        let status = {
            // SAFETY: as in `in_child`; the child waits on the pipe, then touches.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let mut byte = 0u8;
                // SAFETY: blocking read of one byte from our pipe, then a touch that must SIGBUS.
                unsafe {
                    libc::read(pipe[0], (&raw mut byte).cast(), 1);
                    m.ptr.add(4096).cast::<u64>().read_volatile();
                    libc::_exit(0);
                }
            }
            let unbind = std::fs::write("/sys/bus/pci/drivers/rangefault/unbind", &function.bdf);
            // SAFETY: waking the child through our pipe.
            unsafe { libc::write(pipe[1], [1u8].as_ptr().cast(), 1) };
            let mut status = 0;
            // SAFETY: waiting for our child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            unbind.map_err(|e| format!("unbind: {e}"))?;
            status
        };
        drop(m);
        let rebind = std::fs::write("/sys/bus/pci/drivers/rangefault/bind", &function.bdf);
        if !killed_by_sigbus(status) {
            return Err(format!(
                "child touching after unbind: {}",
                describe_status(status)
            ));
        }
        rebind.map_err(|e| format!("rebind: {e}"))?;
        Ok("child got SIGBUS after unbind; driver re-bound cleanly".into())
    }));

    let pass = checks.iter().all(|c| c.pass);
    Ok(SemanticsResult {
        scenario: "semantics",
        pass,
        page_size: info.page_size,
        checks,
    })
}

/// `OpenOptions::custom_flags(O_DIRECT)` with a readable name.
trait ODirect {
    fn custom_flags_odirect(&mut self) -> &mut Self;
}

impl ODirect for std::fs::OpenOptions {
    fn custom_flags_odirect(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_DIRECT)
    }
}
