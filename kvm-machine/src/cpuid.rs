//! The CPUID each vCPU gets: what KVM supports (KVM_GET_SUPPORTED_CPUID),
//! with the per-vCPU topology filled in (APIC IDs, logical CPU count) and
//! the hypervisor bit set, as firecracker and cloud-hypervisor do.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_CPUID_FLAG_SIGNIFCANT_INDEX};

/// Leaf 1 ECX bit 31: "running under a hypervisor" (Linux then looks at
/// the 0x4000_0000 leaves for KVM's paravirt features).
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX bit 24: TSC-deadline LAPIC timer (KVM supports it when it
/// reports the capability, but leaves the bit to the VMM).
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 EDX bit 28: more than one logical CPU per package.
const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Extended topology level types (leaf 0xB/0x1F ECX\[15:8\]).
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

/// What shapes one vCPU's CPUID.
#[derive(Debug, Clone, Copy)]
pub struct VcpuTopology {
    /// This vCPU's index, also its APIC ID.
    pub index: u8,
    /// vCPUs in the VM, all cores of one package, one thread each.
    pub count: u8,
    pub tsc_deadline: bool,
}

/// Extended-topology leaves: KVM reports them with subleaf 0 only (all
/// zeros), which would make Linux see one package per vCPU.
const TOPOLOGY_LEAVES: [u32; 2] = [0xb, 0x1f];

/// `supported` adjusted for the vCPU described by `topology`.
pub fn for_vcpu(
    supported: &CpuId,
    topology: VcpuTopology,
) -> Result<CpuId, vmm_sys_util::fam::Error> {
    let mut entries: Vec<kvm_cpuid_entry2> = Vec::new();
    for leaf in supported.as_slice() {
        if TOPOLOGY_LEAVES.contains(&leaf.function) {
            // Replaced below by a full set of subleaves (once per leaf).
            if leaf.index == 0 {
                entries.extend((0..3).map(|index| kvm_cpuid_entry2 {
                    function: leaf.function,
                    index,
                    flags: KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                    ..Default::default()
                }));
            }
        } else {
            entries.push(*leaf);
        }
    }
    for entry in &mut entries {
        patch(entry, topology);
    }
    CpuId::from_entries(&entries)
}

fn patch(entry: &mut kvm_cpuid_entry2, t: VcpuTopology) {
    let apic_id = u32::from(t.index);
    let count = u32::from(t.count.max(1));
    // Bits needed to number `count` cores (the APIC-ID shift of the
    // package level).
    let core_bits = u32::BITS - (count - 1).leading_zeros();
    match entry.function {
        0x1 => {
            // EBX: [31:24] initial APIC ID, [23:16] logical CPUs per
            // package; keep the CLFLUSH size and brand index.
            entry.ebx = (entry.ebx & 0xffff) | (count << 16) | (apic_id << 24);
            entry.ecx |= LEAF1_ECX_HYPERVISOR;
            if t.tsc_deadline {
                entry.ecx |= LEAF1_ECX_TSC_DEADLINE;
            }
            if count > 1 {
                entry.edx |= LEAF1_EDX_HTT;
            } else {
                entry.edx &= !LEAF1_EDX_HTT;
            }
        }
        0x4 => {
            // Intel deterministic cache parameters: EAX[31:26] is cores per
            // package minus one.
            entry.eax = (entry.eax & 0x03ff_ffff) | ((count - 1) << 26);
        }
        0xb | 0x1f => {
            // Extended topology: one thread per core, `count` cores.
            entry.edx = apic_id;
            let (shift, logical, level) = match entry.index {
                0 => (0, 1, LEVEL_SMT),
                1 => (core_bits, count, LEVEL_CORE),
                _ => (0, 0, 0),
            };
            entry.eax = shift;
            entry.ebx = logical;
            entry.ecx = (level << 8) | (entry.index & 0xff);
        }
        0x8000_0008 => {
            // AMD: ECX[15:12] APIC-ID size, ECX[7:0] cores minus one.
            entry.ecx = (entry.ecx & !0xf0ff) | (core_bits << 12) | (count - 1);
        }
        0x8000_001e => {
            // AMD extended APIC ID / core ID; one thread per core.
            entry.eax = apic_id;
            entry.ebx = apic_id & 0xff;
            entry.ecx = 0;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ebx: 0x0008_0800,
            edx: LEAF1_EDX_HTT,
            ..Default::default()
        }
    }

    #[test]
    fn leaf1_carries_apic_id_and_count() {
        let supported = CpuId::from_entries(&[entry(1, 0), entry(0xb, 0)]).unwrap();
        let topology = VcpuTopology {
            index: 2,
            count: 3,
            tsc_deadline: true,
        };
        let cpuid = for_vcpu(&supported, topology).unwrap();
        let leaf1 = cpuid.as_slice()[0];
        assert_eq!(leaf1.ebx >> 24, 2);
        assert_eq!((leaf1.ebx >> 16) & 0xff, 3);
        assert_eq!(leaf1.ebx & 0xffff, 0x0800);
        assert_ne!(leaf1.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_ne!(leaf1.ecx & LEAF1_ECX_TSC_DEADLINE, 0);
        // Leaf 0xB now has the SMT, core and terminating subleaves.
        let topology: Vec<_> = cpuid.as_slice()[1..].to_vec();
        assert_eq!(topology.len(), 3);
        let smt = topology[0];
        assert_eq!((smt.index, smt.eax, smt.ebx, smt.edx), (0, 0, 1, 2));
        assert_eq!(smt.ecx, LEVEL_SMT << 8);
        let core = topology[1];
        assert_eq!(core.edx, 2);
        assert_eq!(core.eax, 2, "3 cores need 2 APIC-ID bits");
        assert_eq!(core.ebx, 3);
        assert_eq!(core.ecx, (LEVEL_CORE << 8) | 1);
        assert_eq!(topology[2].ecx & 0xff00, 0, "end of the levels");
        assert!(topology
            .iter()
            .all(|e| e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX != 0));
    }

    #[test]
    fn a_single_vcpu_has_no_htt() {
        let supported = CpuId::from_entries(&[entry(1, 0)]).unwrap();
        let topology = VcpuTopology {
            index: 0,
            count: 1,
            tsc_deadline: false,
        };
        let leaf1 = for_vcpu(&supported, topology).unwrap().as_slice()[0];
        assert_eq!(leaf1.edx & LEAF1_EDX_HTT, 0);
        assert_eq!(leaf1.ecx & LEAF1_ECX_TSC_DEADLINE, 0);
    }
}
