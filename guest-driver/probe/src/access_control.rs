//! Who may do what with `/dev/rangefault0`, tried as unprivileged users.
//!
//! The node gets the mode a distribution's udev rule would give a GPU node (`0660`, group
//! `video`). A member of the group may map and read through a read-only fd but not change the
//! device with it; with a read-write fd it may choose the strategy, but revoking every mapping
//! (`SET_ENABLED`) also takes CAP_SYS_ADMIN. Someone outside the group cannot open it at all.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;

use crate::uapi::{Device, DEVICE_PATH};

/// Debian's `video` group.
const VIDEO_GID: libc::gid_t = 44;
const MEMBER_UID: libc::uid_t = 1000;
const OUTSIDER_UID: libc::uid_t = 1001;

/// Runs the checks in children (privileges cannot be regained), restoring the node's mode.
pub fn run(device: &Device) -> Result<String, String> {
    let path = std::path::Path::new(DEVICE_PATH);
    let original = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let c_path = CString::new(DEVICE_PATH).map_err(|e| e.to_string())?;
    // SAFETY: chown of our device node to root:video.
    if unsafe { libc::chown(c_path.as_ptr(), 0, VIDEO_GID) } != 0 {
        return Err(format!("chown: {}", std::io::Error::last_os_error()));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| e.to_string())?;
    let strategy_before = device.info().map_err(|e| e.to_string())?.current_strategy();

    let member = as_user(MEMBER_UID, &[VIDEO_GID], member_checks);
    let outsider = as_user(OUTSIDER_UID, &[], outsider_checks);

    // Put back what the checks may have changed.
    std::fs::set_permissions(path, original.permissions()).map_err(|e| e.to_string())?;
    if let Some(strategy) = strategy_before {
        device.set_strategy(strategy).map_err(|e| e.to_string())?;
    }

    match (member, outsider) {
        (Ok(()), Ok(())) => Ok(
            "video member: O_RDONLY maps and reads, cannot write it through /proc/self/mem, control ioctls EBADF; O_RDWR sets the strategy, SET_ENABLED EPERM; outsider: open EACCES"
                .into(),
        ),
        (member, outsider) => Err(format!("member: {member:?}; outsider: {outsider:?}")),
    }
}

/// Runs `checks` in a child with the given identity; its exit code indexes the failed step.
fn as_user(uid: libc::uid_t, groups: &[libc::gid_t], checks: fn() -> u8) -> Result<(), String> {
    // SAFETY: the probe is single-threaded here; the child drops privileges and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain identity changes in our own child.
        let dropped = unsafe {
            libc::setgroups(groups.len(), groups.as_ptr()) == 0
                && libc::setgid(uid) == 0
                && libc::setuid(uid) == 0
        };
        let code = if dropped { checks() } else { 99 };
        // SAFETY: leaving the child without the parent's destructors.
        unsafe { libc::_exit(i32::from(code)) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, step) => Err(format!("step {step} failed")),
        _ => Err(format!("child status {status:#x}")),
    }
}

/// A control ioctl with a `u32` argument `value`; the errno if it fails.
fn control(device: &Device, request: u32, mut value: u32) -> Result<(), i32> {
    device.raw_ioctl(request, (&raw mut value) as usize)
}

fn member_checks() -> u8 {
    use crate::uapi::{RESET_STATS, SET_ENABLED, SET_STRATEGY};
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(DEVICE_PATH) else {
        return 1;
    };
    let reader = Device { file };
    // SAFETY: a read-only shared mapping of one page, unmapped right away.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            reader.file.as_raw_fd(),
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return 2;
    }
    // SAFETY: reading the page just mapped.
    let before = unsafe { ptr.cast::<u64>().read_volatile() };
    // A debugger's write (/proc/self/mem, as ptrace) into the read-only mapping must fail:
    // `vm_ops->access` gets no permission check from GUP.
    let poked = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .and_then(|mem| {
            use std::os::unix::fs::FileExt;
            mem.write_at(&(!before).to_le_bytes(), ptr as u64)
        });
    // SAFETY: reading the page again, then unmapping it.
    let after = unsafe { ptr.cast::<u64>().read_volatile() };
    // SAFETY: our own mapping.
    unsafe { libc::munmap(ptr, 4096) };
    if poked.is_ok() || after != before {
        return 10;
    }
    if reader.info().is_err() {
        return 3;
    }
    if control(&reader, SET_ENABLED, 0) != Err(libc::EBADF) {
        return 4;
    }
    if control(&reader, SET_STRATEGY, 0) != Err(libc::EBADF) {
        return 5;
    }
    if reader.raw_ioctl(RESET_STATS, 0) != Err(libc::EBADF) {
        return 6;
    }
    let Ok(writer) = Device::open() else {
        return 7;
    };
    if control(&writer, SET_STRATEGY, 0) != Ok(()) {
        return 8;
    }
    if control(&writer, SET_ENABLED, 0) != Err(libc::EPERM) {
        return 9;
    }
    0
}

fn outsider_checks() -> u8 {
    match std::fs::File::open(DEVICE_PATH) {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => 0,
        _ => 1,
    }
}
