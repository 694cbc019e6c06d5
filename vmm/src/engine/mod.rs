//! Engines run the guest with the rangefault device attached.

mod guest_run;
pub mod kvm;
pub mod nested;
pub mod nested_report;
pub mod qemu;
pub mod vfio_server;

pub use guest_run::{GuestRun, HostCounters};

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::hostvirt::HostVirt;

/// The guest both device engines boot: what `vmm run` asked for.
pub struct GuestLaunch {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
    pub memory: u64,
    pub cpus: u8,
    pub timeout: Duration,
    /// The guest's second serial port (ttyS1) into this host file: how a fault trace leaves
    /// the guest.
    pub second_serial: Option<PathBuf>,
    /// QEMU's instruction-counting clock (`vmm run --icount`).
    pub icount: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// kvm where the host can boot Linux under KVM, else qemu.
    Auto,
    /// QEMU with TCG; the device is served over vfio-user.
    Qemu,
    /// rangefault's own rust-vmm/KVM VMM.
    Kvm,
    /// The kvm engine inside a QEMU TCG guest whose CPU has svm: proves it
    /// on a host without hardware virtualization (slow: TCG runs both guests).
    KvmNested,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Qemu,
    Kvm,
    KvmNested,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Qemu => "qemu",
            Engine::Kvm => "kvm",
            Engine::KvmNested => "kvm-nested",
        }
    }
}

/// Picks the engine and says why.
pub fn choose(choice: EngineChoice, host: &HostVirt) -> Result<(Engine, String), String> {
    match choice {
        EngineChoice::Qemu => Ok((Engine::Qemu, "requested with --engine qemu".into())),
        EngineChoice::KvmNested => Ok((
            Engine::KvmNested,
            "requested with --engine kvm-nested: the kvm engine inside a QEMU TCG guest with svm"
                .into(),
        )),
        EngineChoice::Kvm if host.kvm_boots_linux() => {
            Ok((Engine::Kvm, "requested with --engine kvm".into()))
        }
        // The user may insist, but say plainly that Linux will not boot.
        EngineChoice::Kvm => Ok((
            Engine::Kvm,
            format!(
                "requested with --engine kvm; WARNING: {}, so Linux will not boot here",
                host.explain()
            ),
        )),
        EngineChoice::Auto if host.kvm_boots_linux() => {
            Ok((Engine::Kvm, format!("auto: {}, so kvm", host.explain())))
        }
        EngineChoice::Auto => Ok((
            Engine::Qemu,
            format!("auto: {}, so qemu (TCG)", host.explain()),
        )),
    }
}
