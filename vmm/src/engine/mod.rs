//! Engines run the guest with the rangefault device attached.

pub mod qemu;
pub mod vfio_server;

use clap::ValueEnum;

use crate::hostvirt::HostVirt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EngineChoice {
    /// kvm where the host can boot Linux under KVM, else qemu.
    Auto,
    /// QEMU with TCG; the device is served over vfio-user.
    Qemu,
    /// rangefault's own rust-vmm/KVM VMM.
    Kvm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Qemu,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Qemu => "qemu",
        }
    }
}

/// Picks the engine and says why.
pub fn choose(choice: EngineChoice, host: &HostVirt) -> Result<(Engine, String), String> {
    match choice {
        EngineChoice::Qemu => Ok((Engine::Qemu, "requested with --engine qemu".into())),
        EngineChoice::Kvm => Err(format!(
            "--engine kvm: the KVM engine is not available yet; use --engine qemu (host: {})",
            host.explain()
        )),
        EngineChoice::Auto => Ok((
            Engine::Qemu,
            if host.kvm_boots_linux() {
                format!(
                    "auto: {}, but the KVM engine is not available yet, so qemu (TCG)",
                    host.explain()
                )
            } else {
                format!("auto: {}, so qemu (TCG)", host.explain())
            },
        )),
    }
}
