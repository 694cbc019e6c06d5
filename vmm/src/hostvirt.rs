//! What virtualization this host offers, and which engine `auto` picks.

use std::fs;
use std::path::Path;

/// Facts about the host that decide which engine can boot Linux.
#[derive(Debug, Clone)]
pub struct HostVirt {
    pub dev_kvm: bool,
    /// `vmx` or `svm` in /proc/cpuinfo: hardware virtualization.
    pub hardware_virt: Option<&'static str>,
    /// The paravirtual `kvm_pvm` module: it emulates guest kernel code and
    /// cannot boot a normal Linux guest.
    pub kvm_pvm: bool,
}

impl HostVirt {
    pub fn detect() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .unwrap_or_default();
        let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
        let hardware_virt = if has("vmx") {
            Some("vmx")
        } else if has("svm") {
            Some("svm")
        } else {
            None
        };
        Self {
            dev_kvm: Path::new("/dev/kvm").exists(),
            hardware_virt,
            kvm_pvm: Path::new("/sys/module/kvm_pvm").exists(),
        }
    }

    /// Whether KVM here can run a Linux guest at native speed.
    pub fn kvm_boots_linux(&self) -> bool {
        self.dev_kvm && self.hardware_virt.is_some() && !self.kvm_pvm
    }

    /// One sentence on why KVM can or cannot boot Linux here.
    pub fn explain(&self) -> String {
        match (self.dev_kvm, self.hardware_virt, self.kvm_pvm) {
            (false, _, _) => "no /dev/kvm on this host".into(),
            (true, _, true) => "/dev/kvm is the paravirtual kvm_pvm module, which emulates guest kernel code and cannot boot Linux".into(),
            (true, None, false) => "/dev/kvm exists but the CPU shows no vmx/svm (nested or paravirtual KVM that cannot boot Linux)".into(),
            (true, Some(flag), false) => format!("/dev/kvm with hardware virtualization ({flag})"),
        }
    }
}
