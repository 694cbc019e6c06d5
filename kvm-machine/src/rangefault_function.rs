//! The rangefault device as PCI function 00:03.0 of the KVM machine: config
//! accesses and BAR0 MMIO exits go to the device model, BAR2 is a memslot
//! kept in step with the guest's BAR programming, and MSI-X messages the
//! model releases are injected with KVM_SIGNAL_MSI. A write that rings the
//! page-table check's doorbell first hands the writing vCPU's CR3 and PAT
//! to the check (see [`super::guest_access`]).

use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use device_model::host_check::CpuState;
use device_model::{abi, MsixMessage, RangefaultDevice};

use super::bar_placement::{vram_placement, BarState, Refusal};
use super::counters::Counters;
use super::exiting_vcpu::ExitingVcpu;
use super::guest_access::DoorbellCpu;
use super::layout::overlaps;
use super::msi::MsiSender;
use super::vram_slot::VramSlot;
use device_model::ratelimit::RateLimitedLog;

/// Config-space offsets the "firmware" programs.
const COMMAND: u64 = 0x04;
const COMMAND_MEMORY: u16 = 1 << 1;
const BAR0: u64 = 0x10;

/// The VRAM memslot plus the last refusal, so each bad placement is
/// reported once rather than on every config write.
struct SlotState {
    slot: VramSlot,
    refused: Option<Refusal>,
    regs_over_ram: bool,
}

/// The device plugged into the KVM machine.
pub struct RangefaultFunction {
    device: Arc<Mutex<RangefaultDevice>>,
    slot: Mutex<SlotState>,
    msi: MsiSender,
    /// Where the ringing vCPU's CR3 and PAT go for the page-table check.
    doorbell: Arc<DoorbellCpu>,
    ram: Vec<Range<u64>>,
    /// One past the highest guest-physical address.
    phys_limit: u64,
    counters: Arc<Counters>,
    odd: RateLimitedLog,
}

impl RangefaultFunction {
    pub fn new(
        device: Arc<Mutex<RangefaultDevice>>,
        slot: VramSlot,
        msi: MsiSender,
        doorbell: Arc<DoorbellCpu>,
        ram: Vec<Range<u64>>,
        phys_limit: u64,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            device,
            slot: Mutex::new(SlotState {
                slot,
                refused: None,
                regs_over_ram: false,
            }),
            msi,
            doorbell,
            ram,
            phys_limit,
            counters,
            odd: RateLimitedLog::new("kvm", 10, Duration::from_secs(5)),
        }
    }

    /// A poisoned lock means another vCPU thread panicked mid-access; the
    /// device is plain data, so keep serving rather than fail the guest.
    fn device(&self) -> MutexGuard<'_, RangefaultDevice> {
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config_read(&self, offset: u64, data: &mut [u8]) {
        self.counters.boundary.config_accesses.inc();
        self.device().config_read(offset, data);
    }

    /// Writes config space, then moves/removes the VRAM memslot if the
    /// write changed BAR2, BAR0 or memory decode, and delivers MSI-X
    /// messages an unmask released.
    pub fn config_write(&self, offset: u64, data: &[u8]) {
        self.counters.boundary.config_accesses.inc();
        let messages = {
            let mut device = self.device();
            device.config_write(offset, data);
            // Under the device lock, so two vCPUs programming BARs cannot
            // apply their placements out of order.
            self.sync_vram_slot(&device);
            device.take_msix_deliverable()
        };
        self.deliver(messages);
    }

    /// Serves an MMIO read if it hits BAR0 (or a trapped BAR2).
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> bool {
        let mut device = self.device();
        match route(&device, addr) {
            Some(Bar::Regs(offset)) => {
                self.counters.boundary.register_accesses.inc();
                device.regs_read(offset, data);
                true
            }
            Some(Bar::Vram(offset)) => {
                self.counters.boundary.vram_trapped_accesses.inc();
                if device.vram().read_at(offset, data).is_err() {
                    data.fill(0xff);
                }
                true
            }
            None => false,
        }
    }

    /// Serves an MMIO write by `vcpu` if it hits BAR0 (or a trapped BAR2).
    pub fn mmio_write(&self, addr: u64, data: &[u8], vcpu: &ExitingVcpu<'_>) -> bool {
        let messages = {
            let mut device = self.device();
            match route(&device, addr) {
                Some(Bar::Regs(offset)) => {
                    self.counters.boundary.register_accesses.inc();
                    // Under the device lock, so no other vCPU's write can
                    // ring in between and see this CR3 and PAT.
                    let rings = rings_check_doorbell(offset, data.len());
                    if rings {
                        self.doorbell.set(self.cpu_state_of(vcpu));
                    }
                    device.regs_write(offset, data);
                    if rings {
                        self.doorbell.set(CpuState::default());
                    }
                    device.take_msix_deliverable()
                }
                Some(Bar::Vram(offset)) => {
                    self.counters.boundary.vram_trapped_accesses.inc();
                    // In bounds by construction of `route`; nothing to do
                    // about a failure the guest could not cause anyway.
                    let _ = device.vram().write_at(offset, data);
                    Vec::new()
                }
                None => return false,
            }
        };
        self.deliver(messages);
        true
    }

    /// `vcpu`'s CR3 (for the ROOT cross-check) and IA32_PAT (to decode
    /// memory types); a value KVM cannot give is `None`, and the check runs
    /// without the cross-check or with the driver's PAT.
    fn cpu_state_of(&self, vcpu: &ExitingVcpu<'_>) -> CpuState {
        self.counters.cr3_reads.inc();
        let cr3 = vcpu.cr3().inspect_err(|e| {
            self.odd.warn(|| {
                format!(
                    "vCPU {}: {e:#}; this page-table check runs without the CR3 cross-check",
                    vcpu.index()
                )
            })
        });
        self.counters.pat_reads.inc();
        let pat = vcpu.pat().inspect_err(|e| {
            self.odd.warn(|| {
                format!(
                    "vCPU {}: {e:#}; this page-table check decodes memory types with the driver's PAT",
                    vcpu.index()
                )
            })
        });
        CpuState {
            cr3: cr3.ok(),
            pat: pat.ok(),
        }
    }

    /// Does what firmware does before the OS runs: places BAR0 at `regs`
    /// and BAR2 at `vram`, and enables memory decode.
    pub fn assign_bars(&self, regs: u32, vram: u64) {
        let bar = |index: usize| BAR0 + 4 * index as u64;
        self.config_write(bar(abi::REGS_BAR), &regs.to_le_bytes());
        self.config_write(bar(abi::VRAM_BAR), &(vram as u32).to_le_bytes());
        self.config_write(bar(abi::VRAM_BAR + 1), &((vram >> 32) as u32).to_le_bytes());
        let mut command = [0u8; 2];
        self.device().config_read(COMMAND, &mut command);
        let command = u16::from_le_bytes(command) | COMMAND_MEMORY;
        self.config_write(COMMAND, &command.to_le_bytes());
    }

    pub fn vram_size(&self) -> u64 {
        self.slot().slot.size()
    }

    /// Where VRAM is mapped in the guest now.
    pub fn vram_mapped_at(&self) -> Option<u64> {
        self.slot().slot.mapped_at()
    }

    fn slot(&self) -> MutexGuard<'_, SlotState> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sync_vram_slot(&self, device: &RangefaultDevice) {
        let state = BarState {
            memory_decode: device.memory_decode_enabled(),
            regs_bar: device.bar_address(abi::REGS_BAR),
            regs_size: abi::REGS_BAR_SIZE,
            vram_bar: device.bar_address(abi::VRAM_BAR),
            vram_size: device.vram().size(),
        };
        let mut slot = self.slot();
        let regs_over_ram = state.memory_decode
            && state.regs_bar.is_some_and(|base| {
                let regs = base..base.saturating_add(abi::REGS_BAR_SIZE);
                self.ram.iter().any(|r| overlaps(r, &regs))
            });
        if regs_over_ram && !slot.regs_over_ram {
            self.odd.warn(|| {
                format!(
                    "BAR0 programmed at {:#x}, over guest RAM: the guest will reach RAM there, not the registers",
                    state.regs_bar.unwrap_or_default()
                )
            });
        }
        slot.regs_over_ram = regs_over_ram;
        let wanted = match vram_placement(&state, &self.ram, self.phys_limit) {
            Ok(at) => {
                slot.refused = None;
                at
            }
            Err(refusal) => {
                if slot.refused.as_ref() != Some(&refusal) {
                    self.odd
                        .warn(|| format!("{refusal}: VRAM not mapped there, accesses will trap"));
                    slot.refused = Some(refusal);
                }
                None
            }
        };
        if slot.slot.mapped_at() == wanted {
            return;
        }
        match slot.slot.place(wanted) {
            Ok(()) => {
                self.counters.vram_slot_changes.inc();
                match wanted {
                    Some(at) => tracing::debug!("kvm: VRAM memslot at {at:#x}"),
                    None => tracing::debug!("kvm: VRAM memslot removed"),
                }
            }
            // KVM can still refuse (a slot it keeps privately); the guest
            // then traps on VRAM, which is slow but correct.
            Err(e) => self.odd.warn(|| format!("{e:#}")),
        }
    }

    /// Raises MSI-X vector `vector` on the device's behalf: delivered now,
    /// or left pending in the PBA while masked (delivered on unmask). No
    /// device event raises interrupts yet; the tests do, through `MsixRaiser`.
    pub fn raise_msix(&self, vector: u16) {
        let message = self.device().signal_msix(vector);
        self.deliver(message.map(|m| vec![(vector, m)]).unwrap_or_default());
    }

    /// Injects MSI-X messages, if the function may master the bus.
    fn deliver(&self, messages: Vec<(u16, MsixMessage)>) {
        if messages.is_empty() {
            return;
        }
        if !self.device().bus_master_enabled() {
            self.odd.warn(|| {
                format!(
                    "{} MSI-X message(s) dropped: bus mastering is disabled",
                    messages.len()
                )
            });
            return;
        }
        for (vector, message) in messages {
            match self.msi.send(message) {
                Ok(true) => self.counters.msis_delivered.inc(),
                Ok(false) => self.odd.warn(|| {
                    format!(
                        "MSI-X vector {vector} ({:#x} <- {:#x}) was not accepted by any LAPIC",
                        message.address, message.data
                    )
                }),
                Err(e) => self
                    .odd
                    .warn(|| format!("KVM_SIGNAL_MSI for vector {vector} failed: {e}")),
            }
        }
    }
}

/// Whether a BAR0 write of `len` bytes at `offset` covers the check's
/// doorbell (the device also takes FLAGS + DOORBELL as one 8-byte write).
fn rings_check_doorbell(offset: u64, len: usize) -> bool {
    let doorbell = abi::check::DOORBELL;
    offset <= doorbell && doorbell - offset < len as u64
}

/// Which BAR an MMIO address falls in, with the offset into it.
enum Bar {
    Regs(u64),
    Vram(u64),
}

fn route(device: &RangefaultDevice, addr: u64) -> Option<Bar> {
    if !device.memory_decode_enabled() {
        return None;
    }
    let offset_in = |base: Option<u64>, size: u64| {
        let offset = addr.checked_sub(base?)?;
        (offset < size).then_some(offset)
    };
    if let Some(offset) = offset_in(device.bar_address(abi::REGS_BAR), abi::REGS_BAR_SIZE) {
        return Some(Bar::Regs(offset));
    }
    offset_in(device.bar_address(abi::VRAM_BAR), device.vram().size()).map(Bar::Vram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doorbell_writes_are_recognised() {
        use abi::check::{DOORBELL, FLAGS, STATUS};
        assert!(rings_check_doorbell(DOORBELL, 4));
        assert!(rings_check_doorbell(FLAGS, 8));
        assert!(!rings_check_doorbell(FLAGS, 4));
        assert!(!rings_check_doorbell(STATUS, 4));
        assert!(!rings_check_doorbell(DOORBELL + 4, 8));
    }
}
