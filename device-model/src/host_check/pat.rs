//! Which PAT decodes the walk's memory types. The driver writes the guest's
//! IA32_PAT into the PAT registers; an engine that can read the MSR of the
//! CPU that rang the doorbell (KVM) hands it over through
//! [`super::GuestAccess::doorbell_cpu_state`], and then the CPU's value
//! decodes the walk and the driver's is only compared with it: a driver that
//! passes a wrong PAT shows up in the record without changing the verdict.

use serde::{Deserialize, Serialize};

/// The ringing vCPU's IA32_PAT against the driver's PAT registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatCheck {
    /// That vCPU's IA32_PAT, as the engine read it; the walk used this one.
    pub vcpu_pat: u64,
    /// What the driver wrote into the PAT registers.
    pub driver_pat: u64,
    /// Whether the two agree (all 64 bits: the MSR has no ignored bits).
    pub matches: bool,
}

impl PatCheck {
    pub fn new(driver_pat: u64, vcpu_pat: u64) -> PatCheck {
        PatCheck {
            vcpu_pat,
            driver_pat,
            matches: driver_pat == vcpu_pat,
        }
    }

    /// For the record's summary line.
    pub(crate) fn describe(&self) -> String {
        if self.matches {
            format!("vCPU PAT {:#x} matches PAT", self.vcpu_pat)
        } else {
            format!(
                "vCPU PAT {:#x} decoded the walk, NOT the driver's PAT {:#x}",
                self.vcpu_pat, self.driver_pat
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX_PAT: u64 = 0x0407_0506_0007_0106;

    #[test]
    fn equal_values_match() {
        let check = PatCheck::new(LINUX_PAT, LINUX_PAT);
        assert!(check.matches);
        assert!(check.describe().contains("matches PAT"));
    }

    #[test]
    fn any_difference_is_recorded() {
        let check = PatCheck::new(0, LINUX_PAT);
        assert_eq!(
            (check.vcpu_pat, check.driver_pat, check.matches),
            (LINUX_PAT, 0, false)
        );
        assert!(check.describe().contains("NOT the driver's PAT 0x0"));
        assert!(!PatCheck::new(LINUX_PAT ^ 1 << 56, LINUX_PAT).matches);
    }
}
