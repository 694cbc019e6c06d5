//! The KVM machine: guest RAM, in-kernel irqchip + PIT, the platform
//! devices, the rangefault device at 00:03.0 (with the host page-table
//! check installed over guest RAM), and N vCPUs. Load a guest (Linux or
//! raw code), then [`Vm::run`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kvm_bindings::{kvm_pit_config, CpuId, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress};

use device_model::RangefaultDevice;

use super::boot_cpu::{self, StartMode};
use super::counters::Counters;
use super::cpuid::{self, VcpuTopology};
use super::guest_access::{DoorbellCpu, KvmGuestAccess};
use super::guest_ram::{self, GuestRam};
use super::layout::{MemoryMap, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR, MMIO32_BAR_BASE};
use super::linux_boot;
use super::msi::MsiSender;
use super::platform::Platform;
use super::rangefault_function::RangefaultFunction;
use super::run_control::{EndReason, RunControl};
use super::serial::{self, ConsoleOut, SerialPort};
use super::vram_slot::VramSlot;
use super::{lapic, msrs, vcpu_thread};

/// How long stopping waits for vCPU threads to leave KVM_RUN.
const STOP_PATIENCE: Duration = Duration::from_secs(5);
/// Guest physical address width when CPUID does not say.
const DEFAULT_PHYS_BITS: u32 = 36;

/// The machine's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmConfig {
    /// Guest RAM in bytes (a multiple of 4 KiB, at least 2 MiB).
    pub memory: u64,
    /// vCPUs, 1..=255 (vCPU 0 boots, the others wait for INIT/SIPI).
    pub cpus: u8,
}

/// How a run went.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub reason: EndReason,
    pub counters: Arc<Counters>,
    pub wall: Duration,
}

/// Lets another thread end a running VM.
#[derive(Clone)]
pub struct VmStopper(Arc<RunControl>);

impl VmStopper {
    pub fn stop(&self, why: impl Into<String>) {
        self.0.end(EndReason::Stopped(why.into()));
    }
}

/// A KVM virtual machine with the rangefault device attached.
pub struct Vm {
    // Fields drop in this order: the vCPU fds, then the platform (holding
    // the last references to the VM fd and the VRAM memslot), and guest RAM
    // only after KVM has let go of it.
    vcpus: Vec<VcpuFd>,
    platform: Arc<Platform>,
    ram: Arc<GuestRam>,
    map: MemoryMap,
    cpus: u8,
    control: Arc<RunControl>,
    counters: Arc<Counters>,
    start: Option<StartMode>,
    /// vCPU threads that would not stop: their VM still reaches guest RAM.
    leaked_vcpu_threads: bool,
}

impl Vm {
    /// Creates the machine; the guest's console output goes to `console`.
    pub fn new(
        config: VmConfig,
        device: Arc<Mutex<RangefaultDevice>>,
        console: ConsoleOut,
    ) -> Result<Self> {
        Self::with_com2(config, device, console, None)
    }

    /// [`Vm::new`] with a second serial port (COM2, the guest's ttyS1) writing to `com2`.
    pub fn with_com2(
        config: VmConfig,
        device: Arc<Mutex<RangefaultDevice>>,
        console: ConsoleOut,
        com2: Option<ConsoleOut>,
    ) -> Result<Self> {
        if config.cpus == 0 {
            bail!("a VM needs at least one vCPU");
        }
        let kvm = Kvm::new().context("cannot open /dev/kvm")?;
        let vm = Arc::new(kvm.create_vm().context("KVM_CREATE_VM failed")?);
        // KVM wants these before vCPUs exist: private pages for VMX's
        // real-mode emulation, in the platform range below 4 GiB.
        vm.set_tss_address(KVM_TSS_ADDR as usize)
            .context("KVM_SET_TSS_ADDR failed")?;
        vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR)
            .context("KVM_SET_IDENTITY_MAP_ADDR failed")?;
        vm.create_irq_chip().context("KVM_CREATE_IRQCHIP failed")?;
        vm.create_pit2(kvm_pit_config {
            // Port 0x61 (PC speaker) handled in the kernel too.
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        })
        .context("KVM_CREATE_PIT2 failed")?;

        let map = MemoryMap::new(config.memory)?;
        let ram = guest_ram::create(&vm, &map)?;
        let supported = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .context("KVM_GET_SUPPORTED_CPUID failed")?;
        let phys_limit = 1u64 << phys_bits(&supported);

        let control = Arc::new(RunControl::default());
        let counters = Arc::new(Counters::default());
        let doorbell = Arc::new(DoorbellCpu::default());
        let slot = {
            let mut device = device.lock().unwrap_or_else(|e| e.into_inner());
            device.set_guest_access(Box::new(KvmGuestAccess::new(&ram, doorbell.clone())));
            VramSlot::new(vm.clone(), guest_ram::slots_used(&map), device.vram())?
        };
        let rangefault = RangefaultFunction::new(
            device,
            slot,
            MsiSender::new(vm.clone()),
            doorbell,
            map.ram().to_vec(),
            phys_limit,
            counters.clone(),
        );
        let serial = SerialPort::new(&vm, serial::COM1, console)?;
        let second_serial = com2
            .map(|out| SerialPort::new(&vm, serial::COM2, out))
            .transpose()?;
        let platform = Arc::new(Platform::new(
            rangefault,
            serial,
            second_serial,
            control.clone(),
            counters.clone(),
        ));

        let tsc_deadline = kvm.check_extension(Cap::TscDeadlineTimer);
        let vcpus = (0..config.cpus)
            .map(|index| {
                let topology = VcpuTopology {
                    index,
                    count: config.cpus,
                    tsc_deadline,
                };
                create_vcpu(&vm, &supported, topology)
                    .with_context(|| format!("cannot set up vCPU {index}"))
            })
            .collect::<Result<Vec<_>>>()?;

        Ok(Self {
            vcpus,
            platform,
            ram: Arc::new(ram),
            map,
            cpus: config.cpus,
            control,
            counters,
            start: None,
            leaked_vcpu_threads: false,
        })
    }

    /// Loads a Linux kernel, its initramfs and command line, and places the
    /// device's BARs as firmware would: BAR0 at the start of the 32-bit
    /// PCI hole, BAR2 above all RAM, memory decode on.
    pub fn load_linux(&mut self, kernel: &Path, initramfs: &Path, cmdline: &str) -> Result<()> {
        let loaded = linux_boot::load(&self.ram, &self.map, self.cpus, kernel, initramfs, cmdline)?;
        tracing::debug!(
            "kvm: kernel ends at {:#x}, initramfs at {:#x}..{:#x}",
            loaded.kernel_end,
            loaded.initramfs.start,
            loaded.initramfs.end
        );
        let vram_size = self.platform.rangefault().vram_size();
        let vram_base = self
            .map
            .high_bar_base(vram_size)
            .context("no room for the VRAM BAR above RAM")?;
        self.platform
            .rangefault()
            .assign_bars(MMIO32_BAR_BASE as u32, vram_base);
        if self.platform.rangefault().vram_mapped_at() != Some(vram_base) {
            bail!(
                "cannot map {vram_size:#x} bytes of VRAM at {vram_base:#x} (beyond the guest's physical address width?)"
            );
        }
        self.start = Some(loaded.start);
        Ok(())
    }

    /// A handle that ends the run from another thread.
    pub fn stopper(&self) -> VmStopper {
        VmStopper(self.control.clone())
    }

    /// Runs the guest until it ends (reset, shutdown, a stopper) or
    /// `timeout` passes. A VM runs once.
    pub fn run(&mut self, timeout: Duration) -> Result<RunOutcome> {
        let start = self
            .start
            .context("nothing to run: load a guest and set its start mode first")?;
        let Some(boot_vcpu) = self.vcpus.first() else {
            bail!("this VM already ran");
        };
        boot_cpu::prepare(boot_vcpu, &self.ram, start)?;

        let started = Instant::now();
        let mut threads = Vec::new();
        for (index, vcpu) in std::mem::take(&mut self.vcpus).into_iter().enumerate() {
            match vcpu_thread::spawn(index, vcpu, self.platform.clone(), self.control.clone()) {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    self.control.end(EndReason::VcpuFailed {
                        vcpu: index,
                        error: format!("cannot start its thread: {e}"),
                    });
                    break;
                }
            }
        }
        let reason = self.control.wait(started + timeout);
        let stuck = vcpu_thread::stop_all(threads, STOP_PATIENCE);
        if !stuck.is_empty() {
            self.leaked_vcpu_threads = true;
            bail!(
                "{} vCPU thread(s) did not stop after the run ended ({reason})",
                stuck.len()
            );
        }
        Ok(RunOutcome {
            reason,
            counters: Arc::clone(&self.counters),
            wall: started.elapsed(),
        })
    }
}

/// The tiny-guest tests (tests/kvm_*.rs) load raw code and look inside
/// the machine; `vmm`'s engine itself boots Linux.
impl Vm {
    /// Guest RAM, to load or inspect.
    pub fn ram(&self) -> &GuestRam {
        &self.ram
    }

    /// Copies `code` (or data) into guest RAM at `addr`.
    pub fn load_raw(&mut self, addr: u64, code: &[u8]) -> Result<()> {
        self.ram
            .write_slice(code, GuestAddress(addr))
            .with_context(|| format!("cannot load {} bytes at {addr:#x}", code.len()))
    }

    /// How vCPU 0 starts (needed once, before [`Self::run`]).
    pub fn set_start(&mut self, mode: StartMode) {
        self.start = Some(mode);
    }

    /// Where the guest sees VRAM now (None: not mapped).
    pub fn vram_mapped_at(&self) -> Option<u64> {
        self.platform.rangefault().vram_mapped_at()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A handle to raise the device's MSI-X vectors while the VM runs.
    pub fn msix_raiser(&self) -> MsixRaiser {
        MsixRaiser(self.platform.clone())
    }
}

/// Raises the device's MSI-X vectors from another thread.
pub struct MsixRaiser(Arc<Platform>);

impl MsixRaiser {
    pub fn raise(&self, vector: u16) {
        self.0.rangefault().raise_msix(vector);
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.leaked_vcpu_threads {
            // A vCPU may still run guest code against this memory; freeing
            // it could hand the pages to something else. An extra reference
            // that is never dropped keeps it mapped.
            tracing::warn!("kvm: leaking guest RAM: vCPU threads are still running");
            std::mem::forget(self.ram.clone());
        }
    }
}

/// Creates vCPU `topology.index` with its CPUID, boot MSRs and LAPIC
/// wiring. Registers and mode are set for vCPU 0 only, at run time; the
/// others wait for the boot CPU's INIT/SIPI (in-kernel irqchip).
fn create_vcpu(vm: &VmFd, supported: &CpuId, topology: VcpuTopology) -> Result<VcpuFd> {
    let vcpu = vm
        .create_vcpu(u64::from(topology.index))
        .context("KVM_CREATE_VCPU failed")?;
    let cpuid = cpuid::for_vcpu(supported, topology)
        .map_err(|e| anyhow::anyhow!("cannot build the vCPU's CPUID: {e:?}"))?;
    vcpu.set_cpuid2(&cpuid).context("KVM_SET_CPUID2 failed")?;
    msrs::set_boot_msrs(&vcpu)?;
    lapic::wire_local_interrupts(&vcpu)?;
    Ok(vcpu)
}

/// The guest's physical address width (CPUID 0x8000_0008 EAX\[7:0\]).
fn phys_bits(cpuid: &CpuId) -> u32 {
    cpuid
        .as_slice()
        .iter()
        .find(|e| e.function == 0x8000_0008)
        .map(|e| e.eax & 0xff)
        .filter(|&bits| (32..=52).contains(&bits))
        .unwrap_or(DEFAULT_PHYS_BITS)
}
