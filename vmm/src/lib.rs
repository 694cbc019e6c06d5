//! `vmm`: boots a Linux guest with the rangefault VRAM device attached and
//! reports what the guest saw. The `vmm` binary (`main.rs`) is a thin CLI
//! over [`run`]; [`hostvirt`] says which engine this host can boot Linux
//! with (the boot tests ask it too).

mod device_spec;
mod engine;
mod fault_trace;
mod guest_console;
mod guest_files;
mod guest_ram;
pub mod hostvirt;
mod images;
pub mod interrupt;
pub mod report;
pub mod run;
pub mod scratch;
/// Byte sizes as the command line writes them (`64K`, `2M`, `1G`); `fault-bench` writes them too.
pub mod size;
mod topology;

/// The vfio-user device backend, public for `vfio-user-guard`'s tests, which
/// run the guard in front of it.
pub use engine::vfio_server;
