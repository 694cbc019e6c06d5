// SPDX-License-Identifier: GPL-2.0

//! `/dev/rangefaultN`: mmap VRAM, ioctls for info, stats, strategy and enable/disable.

use core::mem::size_of;

use kernel::{
    container_of,
    fs::{file, File},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::virt::VmaNew,
    prelude::*,
    sync::{
        atomic::{Atomic, Full, Relaxed},
        Arc,
    },
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use crate::shared::{DeviceShared, State};
use crate::uapi;
use crate::vm;
use crate::window::Strategy;

/// The misc device of one bound device, with the state its files get.
///
/// Field order is drop order: the registration goes first, so `misc_deregister` (which waits for
/// any `open` in progress, both hold `misc_mtx`) has returned before `shared` is dropped.
#[pin_data]
pub(crate) struct Chardev {
    #[pin]
    registration: MiscDeviceRegistration<DeviceShared>,
    shared: Arc<DeviceShared>,
}

impl Chardev {
    pub(crate) fn new(shared: Arc<DeviceShared>, name: &'static CStr) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            shared,
            registration <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<DeviceShared> {
        &self.shared
    }

    /// The `Chardev` around a registration handed to `open`.
    fn of(registration: &MiscDeviceRegistration<DeviceShared>) -> &Chardev {
        let field = core::ptr::from_ref(registration).cast_mut();
        // SAFETY: every `MiscDeviceRegistration<DeviceShared>` is the `registration` field of a
        // pinned `Chardev` (only `Chardev::new` creates one). `misc_open` holds `misc_mtx` while it
        // calls `open`, and deregistration takes the same lock; `registration` is dropped (that
        // is, deregistered) before `shared`, so the whole `Chardev` is intact during `open`.
        unsafe { &*container_of!(field, Chardev, registration) }
    }
}

/// Names for up to eight devices (`MiscDeviceOptions` wants `&'static CStr`).
const NAMES: [&CStr; 8] = [
    c"rangefault0",
    c"rangefault1",
    c"rangefault2",
    c"rangefault3",
    c"rangefault4",
    c"rangefault5",
    c"rangefault6",
    c"rangefault7",
];
static NAMES_IN_USE: Atomic<u32> = Atomic::new(0);

/// One of [`NAMES`], reserved for a bound device until dropped.
pub(crate) struct DeviceName(u32);

impl DeviceName {
    pub(crate) fn take() -> Result<Self> {
        loop {
            let used = NAMES_IN_USE.load(Relaxed);
            let free = (!used).trailing_zeros();
            if free as usize >= NAMES.len() {
                return Err(EBUSY);
            }
            if NAMES_IN_USE.cmpxchg(used, used | (1 << free), Full).is_ok() {
                return Ok(Self(free));
            }
        }
    }

    pub(crate) fn name(&self) -> &'static CStr {
        NAMES[self.0 as usize]
    }
}

impl Drop for DeviceName {
    fn drop(&mut self) {
        let mut used = NAMES_IN_USE.load(Relaxed);
        while let Err(now) = NAMES_IN_USE.cmpxchg(used, used & !(1 << self.0), Full) {
            used = now;
        }
    }
}

/// Whether `file` was opened for writing: what every ioctl that changes the device needs.
fn opened_for_write(file: &File) -> bool {
    file.flags() & file::flags::O_ACCMODE != file::flags::O_RDONLY
}

/// Whether the caller may revoke every mapping of the device (all processes'), as `SET_ENABLED`
/// does: besides write access, CAP_SYS_ADMIN, as for other device-wide teardown.
fn may_revoke() -> bool {
    vm::capable_sys_admin()
}

/// What an ioctl needs of its caller (README: "The driver's ioctls").
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Access {
    /// Read-only fds too: INFO, STATS, LATENCY, CHECK (they change nothing others see).
    Read,
    /// An fd opened for writing: SET_STRATEGY, RESET_STATS.
    Write,
    /// Write access and CAP_SYS_ADMIN: SET_ENABLED (it zaps every process's mappings).
    Revoke,
}

fn required_access(cmd: u32) -> Access {
    match cmd {
        uapi::SET_STRATEGY | uapi::RESET_STATS => Access::Write,
        uapi::SET_ENABLED => Access::Revoke,
        _ => Access::Read,
    }
}

fn write_user<T: AsBytes>(arg: usize, value: &T) -> Result {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .writer()
        .write(value)
}

fn read_user<T: FromBytes>(arg: usize) -> Result<T> {
    UserSlice::new(UserPtr::from_addr(arg), size_of::<T>())
        .reader()
        .read()
}

/// One open file of a device: the device's state, and the module reference that keeps this code
/// loaded while the file, or a mapping (which holds its file), exists.
///
/// Dropping it (at the end of `release`) undoes `file_opened`, then drops `shared`, then the
/// module reference: field order is drop order, and the module's code must stay until the last.
pub(crate) struct OpenFile {
    shared: Arc<DeviceShared>,
    _module: vm::ModuleRef,
}

impl OpenFile {
    fn new(shared: Arc<DeviceShared>, file: &File) -> Result<KBox<Self>> {
        let module = vm::ModuleRef::get()?;
        shared.file_opened(file)?;
        // If the allocation fails, dropping the value undoes `file_opened` and puts the module.
        Ok(KBox::new(
            Self {
                shared,
                _module: module,
            },
            GFP_KERNEL,
        )?)
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        self.shared.file_released();
    }
}

#[vtable]
impl MiscDevice for DeviceShared {
    type Ptr = KBox<OpenFile>;

    fn open(file: &File, registration: &MiscDeviceRegistration<Self>) -> Result<KBox<OpenFile>> {
        OpenFile::new(Chardev::of(registration).shared.clone(), file)
    }

    fn mmap(open: &OpenFile, _file: &File, vma: &VmaNew) -> Result {
        let shared = &open.shared;
        // A private (COW) PFN mapping is a kernel BUG once PUD entries are involved.
        if !vm::is_shared_mapping(vma) {
            return Err(EINVAL);
        }
        if shared.state_raw() == State::Gone as u32 {
            return Err(ENODEV);
        }
        let len = (vma.end() - vma.start()) as u64;
        let end = vm::vma_offset(vma).and_then(|offset| offset.checked_add(len));
        if end.is_none_or(|end| end > shared.geometry.vram_size) {
            return Err(EINVAL);
        }
        // VRAM holds data, never code.
        vma.try_clear_mayexec()?;
        let context = Arc::new(
            vm::VmaContext {
                strategy: shared.strategy(),
                shared: shared.clone(),
            },
            GFP_KERNEL,
        )?;
        vm::setup_pfnmap(vma, context);
        Ok(())
    }

    fn ioctl(open: &OpenFile, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        let shared = &*open.shared;
        let access = required_access(cmd);
        if access >= Access::Write && !opened_for_write(file) {
            return Err(EBADF);
        }
        if access == Access::Revoke && !may_revoke() {
            return Err(EPERM);
        }
        match cmd {
            uapi::INFO => write_user(arg, &shared.info())?,
            uapi::STATS => write_user(arg, &shared.stats())?,
            uapi::LATENCY => write_user(arg, &shared.latency.snapshot())?,
            uapi::SET_STRATEGY => {
                // Applies to mappings made from now on (each VMA keeps its own).
                let strategy = Strategy::from_raw(read_user::<u32>(arg)?)
                    .filter(|s| crate::SUPPORTED_STRATEGIES & (1 << *s as u32) != 0)
                    .ok_or(EINVAL)?;
                shared.set_strategy(strategy);
            }
            uapi::SET_ENABLED => match read_user::<u32>(arg)? {
                0 => shared.revoke(State::Disabled),
                1 => shared.enable()?,
                _ => return Err(EINVAL),
            },
            uapi::RESET_STATS => shared.reset_stats(),
            uapi::CHECK => {
                let mut args: uapi::CheckArgs = read_user(arg)?;
                crate::check::run(shared, &mut args)?;
                write_user(arg, &args)?;
            }
            _ => return Err(ENOTTY),
        }
        Ok(0)
    }
}
