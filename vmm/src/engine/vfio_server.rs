//! Serves the device model to QEMU over vfio-user (crate `vfio_user`).
//!
//! VRAM (BAR2) is handed to QEMU as the device's memfd with one sparse mmap
//! area covering the whole BAR, so guest VRAM accesses go straight to host
//! memory; any access that still arrives as REGION_READ/WRITE is served from
//! the memfd too, and counted: a healthy run has zero.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use vfio_bindings::bindings::vfio::{
    vfio_region_info, vfio_region_sparse_mmap_area, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_NORESIZE,
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_ERR_IRQ_INDEX,
    VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion, SparseArea};

use device_model::metrics::{BoundaryCounters, Counter};
use device_model::{abi, RangefaultDevice};

use crate::guest_ram::DmaRam;

/// PCI config space size we expose (conventional, no extended space).
const CONFIG_SPACE_SIZE: u64 = 256;

/// Counters of what crossed the socket; the report serializes them as they are.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ServerStats {
    /// Config, BAR0 and trapped VRAM accesses (VRAM reads/writes that came over the socket
    /// instead of through the mapping).
    #[serde(flatten)]
    pub boundary: BoundaryCounters,
    pub dma_maps: Counter,
    pub dma_unmaps: Counter,
    pub irq_updates: Counter,
    pub rejected: Counter,
}

/// The device seen through vfio-user.
pub struct DeviceServer {
    device: Arc<Mutex<RangefaultDevice>>,
    stats: Arc<ServerStats>,
    /// MSI-X vector -> eventfd QEMU gave us to signal it.
    msix_eventfds: Vec<Option<File>>,
    /// The eventfd QEMU listens on for unrecoverable device errors (the ERR
    /// irq index). The device never raises one; the index exists so that
    /// QEMU enables error recovery instead of warning that it cannot.
    err_eventfd: Option<File>,
    /// Guest RAM as DMA-mapped by the client.
    dma_ram: DmaRam,
}

impl DeviceServer {
    /// Also gives `device` its view of guest RAM, which follows the client's
    /// DMA maps from here on.
    pub fn new(device: Arc<Mutex<RangefaultDevice>>, stats: Arc<ServerStats>) -> Self {
        let dma_ram = DmaRam::new();
        device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_guest_access(Box::new(dma_ram.guest_ram()));
        Self {
            device,
            stats,
            msix_eventfds: (0..abi::MSIX_VECTORS).map(|_| None).collect(),
            err_eventfd: None,
            dma_ram,
        }
    }

    /// A poisoned lock only means another thread panicked mid-access; the
    /// device state is plain data, so keep serving.
    fn device(&self) -> MutexGuard<'_, RangefaultDevice> {
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// SET_IRQS on the ERR index, with the kernel's vfio-pci rules for it:
    /// TRIGGER only, vector 0 only; an eventfd sets the trigger, DATA_NONE
    /// with count 0 or an eventfd message without an fd (QEMU's way of
    /// passing -1) clears it. The trigger survives a device reset, as in
    /// the kernel.
    fn set_err_irq(
        &mut self,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        let action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        let data = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
        if action != VFIO_IRQ_SET_ACTION_TRIGGER || start != 0 || count > 1 {
            return Err(self.reject(format!(
                "SET_IRQS on the ERR irq with flags {flags:#x}, vectors {start}+{count}"
            )));
        }
        match data {
            VFIO_IRQ_SET_DATA_NONE if count == 0 => self.err_eventfd = None,
            VFIO_IRQ_SET_DATA_EVENTFD if count == 1 && fds.len() <= 1 => {
                self.err_eventfd = fds.into_iter().next();
            }
            _ => {
                return Err(self.reject(format!(
                    "SET_IRQS on the ERR irq with flags {flags:#x}, {} fds for {count} vectors",
                    fds.len()
                )))
            }
        }
        Ok(())
    }

    fn reject(&self, what: String) -> std::io::Error {
        self.stats.rejected.inc();
        tracing::warn!("vfio-user: rejected {what}");
        std::io::Error::new(std::io::ErrorKind::InvalidInput, what)
    }
}

fn region(index: u32, size: u64, flags: u32) -> vfio_region_info {
    vfio_region_info {
        argsz: std::mem::size_of::<vfio_region_info>() as u32,
        flags,
        index,
        cap_offset: 0,
        size,
        offset: 0,
    }
}

/// The nine VFIO PCI regions: BAR0 (trapped registers), BAR2 (VRAM, mmapped
/// from the device's memfd), config space; the rest are absent (size 0).
pub fn regions(device: &RangefaultDevice) -> Vec<ServerRegion> {
    let read_write = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    (0..VFIO_PCI_NUM_REGIONS)
        .map(|index| match index {
            VFIO_PCI_BAR0_REGION_INDEX => ServerRegion {
                region_info: region(index, abi::REGS_BAR_SIZE, read_write),
                sparse_areas: vec![],
                mmap_fd: None,
            },
            VFIO_PCI_BAR2_REGION_INDEX => {
                let size = device.vram().size();
                ServerRegion {
                    region_info: region(index, size, read_write | VFIO_REGION_INFO_FLAG_MMAP),
                    // The crate only sends the fd along with a sparse mmap
                    // capability, so declare one area covering the BAR.
                    sparse_areas: vec![SparseArea {
                        area: vfio_region_sparse_mmap_area { offset: 0, size },
                    }],
                    mmap_fd: Some(device.vram().fd().as_raw_fd()),
                }
            }
            VFIO_PCI_CONFIG_REGION_INDEX => ServerRegion {
                region_info: region(index, CONFIG_SPACE_SIZE, read_write),
                sparse_areas: vec![],
                mmap_fd: None,
            },
            _ => ServerRegion {
                region_info: region(index, 0, 0),
                sparse_areas: vec![],
                mmap_fd: None,
            },
        })
        .collect()
}

/// MSI-X, and the one-vector ERR index; no INTx (under TCG a pending INTx
/// disables BAR mmaps in QEMU), no MSI, no REQ.
///
/// QEMU's vfio-pci (`vfio_populate_device`, the same code for vfio-user)
/// asks GET_IRQ_INFO for the ERR index and warns "Could not enable error
/// recovery for the device" unless its count is exactly 1; it then hands
/// over an eventfd for it with SET_IRQS. REQ it only uses when present,
/// and quietly does without.
pub fn irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| {
            let (flags, count) = match index {
                VFIO_PCI_MSIX_IRQ_INDEX => (
                    VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE,
                    u32::from(abi::MSIX_VECTORS),
                ),
                VFIO_PCI_ERR_IRQ_INDEX => (VFIO_IRQ_INFO_EVENTFD, 1),
                _ => (0, 0),
            };
            IrqInfo {
                index,
                flags,
                count,
            }
        })
        .collect()
}

impl ServerBackend for DeviceServer {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> std::io::Result<()> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                self.stats.boundary.config_accesses.inc();
                self.device().config_read(offset, data);
            }
            VFIO_PCI_BAR0_REGION_INDEX => {
                self.stats.boundary.register_accesses.inc();
                self.device().regs_read(offset, data);
            }
            VFIO_PCI_BAR2_REGION_INDEX => {
                self.stats.boundary.vram_trapped_accesses.inc();
                let device = self.device();
                if device.vram().read_at(offset, data).is_err() {
                    drop(device);
                    return Err(
                        self.reject(format!("VRAM read of {} bytes at {offset:#x}", data.len()))
                    );
                }
            }
            _ => {
                return Err(self.reject(format!(
                    "read of {} bytes at {offset:#x} in absent region {region}",
                    data.len()
                )))
            }
        }
        Ok(())
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> std::io::Result<()> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                self.stats.boundary.config_accesses.inc();
                self.device().config_write(offset, data);
            }
            VFIO_PCI_BAR0_REGION_INDEX => {
                self.stats.boundary.register_accesses.inc();
                self.device().regs_write(offset, data);
            }
            VFIO_PCI_BAR2_REGION_INDEX => {
                self.stats.boundary.vram_trapped_accesses.inc();
                let device = self.device();
                if device.vram().write_at(offset, data).is_err() {
                    drop(device);
                    return Err(
                        self.reject(format!("VRAM write of {} bytes at {offset:#x}", data.len()))
                    );
                }
            }
            _ => {
                return Err(self.reject(format!(
                    "write of {} bytes at {offset:#x} in absent region {region}",
                    data.len()
                )))
            }
        }
        Ok(())
    }

    fn dma_map(
        &mut self,
        _flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        // QEMU maps all guest RAM (with an fd: its shared memfd) and also the
        // device's own BARs (without one). A map never fails towards QEMU:
        // what cannot serve as guest RAM only leaves the page-table check
        // blind there (its walk errors name the RAM it knew).
        self.stats.dma_maps.inc();
        let Some(file) = fd else {
            tracing::debug!("vfio-user: DMA map {address:#x}+{size:#x} (no fd, not guest RAM)");
            // Whatever RAM was mapped there before is not there any more.
            self.dma_ram.unmap(address, size);
            return Ok(());
        };
        match self.dma_ram.map(address, size, file, offset) {
            Ok(()) => tracing::debug!(
                "vfio-user: DMA map {address:#x}+{size:#x} at fd offset {offset:#x}: guest RAM"
            ),
            Err(e) => tracing::warn!(
                "vfio-user: DMA map {address:#x}+{size:#x} at fd offset {offset:#x} \
                 is not usable as guest RAM: {e}"
            ),
        }
        Ok(())
    }

    fn dma_unmap(&mut self, flags: DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        self.stats.dma_unmaps.inc();
        if flags.contains(DmaUnmapFlags::UNMAP_ALL) {
            tracing::debug!("vfio-user: DMA unmap all");
            self.dma_ram.unmap_all();
        } else {
            let removed = self.dma_ram.unmap(address, size);
            tracing::debug!(
                "vfio-user: DMA unmap {address:#x}+{size:#x} ({removed:#x} bytes of guest RAM)"
            );
        }
        Ok(())
    }

    fn reset(&mut self) -> std::io::Result<()> {
        tracing::info!("vfio-user: device reset requested");
        self.msix_eventfds.iter_mut().for_each(|fd| *fd = None);
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> std::io::Result<()> {
        self.stats.irq_updates.inc();
        if index == VFIO_PCI_ERR_IRQ_INDEX {
            return self.set_err_irq(flags, start, count, fds);
        }
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            // QEMU disables INTx/MSI/REQ even though we have none.
            return if count == 0 {
                Ok(())
            } else {
                Err(self.reject(format!("SET_IRQS on irq index {index} with count {count}")))
            };
        }
        if flags & VFIO_IRQ_SET_ACTION_TYPE_MASK != VFIO_IRQ_SET_ACTION_TRIGGER {
            // Masking is done by QEMU's MSI-X emulation; nothing to do here.
            return Ok(());
        }
        let end = start
            .checked_add(count)
            .filter(|&e| e <= u32::from(abi::MSIX_VECTORS));
        let Some(end) = end else {
            return Err(self.reject(format!("MSI-X vectors {start}+{count}")));
        };
        match flags & VFIO_IRQ_SET_DATA_TYPE_MASK {
            VFIO_IRQ_SET_DATA_NONE if count == 0 => {
                self.msix_eventfds.iter_mut().for_each(|fd| *fd = None);
            }
            VFIO_IRQ_SET_DATA_EVENTFD => {
                // A client disabling vectors may send fewer fds than
                // vectors: the ones given fill the range in order, the rest
                // are cleared.
                let mut fds = fds.into_iter();
                for slot in start..end {
                    self.msix_eventfds[slot as usize] = fds.next();
                }
            }
            _ => {
                return Err(self.reject(format!(
                    "SET_IRQS flags {flags:#x} with {} fds for {count} vectors",
                    fds.len()
                )))
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The whole host side of the page-table check without a guest: guest
    //! RAM arrives as a DMA map of a memfd holding a tiny page table, and the
    //! check is driven through BAR0 exactly as the guest driver does. Also
    //! the irqs the server declares and the SET_IRQS QEMU sends for them.

    use std::io::Write;
    use std::os::fd::{FromRawFd, IntoRawFd};
    use std::os::unix::fs::FileExt;

    use device_model::abi::check;
    use device_model::host_check::{CheckStatus, MismatchKind};
    use device_model::DeviceConfig;
    use vfio_bindings::bindings::vfio::{
        VFIO_IRQ_SET_ACTION_MASK, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX,
    };
    use vmm_sys_util::eventfd::EventFd;

    use super::*;
    use crate::guest_ram::sealed_memfd;

    const MIB: u64 = 1 << 20;
    /// Where the guest placed BAR2 (64 MiB aligned for 64 MiB of VRAM).
    const BAR2: u64 = 0xfe_0000_0000;
    /// Guest RAM: 2 MiB at this GPA, from offset 1 MiB of the memfd.
    const RAM_GPA: u64 = 0x8000_0000;
    const RAM_FILE_OFFSET: u64 = MIB;
    /// Tables, as GPAs inside that RAM.
    const PML4: u64 = RAM_GPA + 0x1000;
    const PDPT: u64 = RAM_GPA + 0x2000;
    const PD: u64 = RAM_GPA + 0x3000;
    const PT: u64 = RAM_GPA + 0x4000;
    /// The mapping under test: a 2M leaf onto BAR2 + 0, then 512 4K leaves
    /// onto BAR2 + 2M.. (a block the driver filled PTE by PTE).
    const VA: u64 = 0x0000_7f00_0000_0000;
    const LINUX_PAT: u64 = 0x0407_0506_0007_0106;

    const TABLE: u64 = 0x7; // present, writable, user
    const PWT: u64 = 0x8; // with Linux's PAT: write-combining
    const PS: u64 = 0x80;

    /// A server for a 64 MiB / 2 MiB-page device whose guest has mapped
    /// the memfd holding the page tables as RAM, and programmed BAR2.
    fn server() -> (DeviceServer, Arc<Mutex<RangefaultDevice>>) {
        let config = DeviceConfig::new(64 * MIB, 2 * MIB).unwrap();
        let device = Arc::new(Mutex::new(RangefaultDevice::new(config).unwrap()));
        let mut server = DeviceServer::new(device.clone(), Arc::default());

        let ram = sealed_memfd(4 * MIB);
        let entry = |gpa: u64, value: u64| {
            ram.write_all_at(&value.to_le_bytes(), gpa - RAM_GPA + RAM_FILE_OFFSET)
                .unwrap();
        };
        entry(PML4 + 8 * 0xfe, PDPT | TABLE); // VA bits 47..39 = 0xfe
        entry(PDPT, PD | TABLE);
        entry(PD, BAR2 | PS | PWT | TABLE);
        entry(PD + 8, PT | TABLE);
        for i in 0..512 {
            entry(PT + 8 * i, (BAR2 + 2 * MIB + i * 0x1000) | PWT | TABLE);
        }
        // QEMU also maps the device's own BAR, without an fd, and maps RAM
        // in more than one piece; neither disturbs the check.
        server
            .dma_map(DmaMapFlags::READ_WRITE, 0, BAR2, 64 * MIB, None)
            .unwrap();
        let flags = DmaMapFlags::READ_WRITE;
        server
            .dma_map(
                flags,
                RAM_FILE_OFFSET,
                RAM_GPA,
                MIB,
                Some(ram.try_clone().unwrap()),
            )
            .unwrap();
        server
            .dma_map(flags, RAM_FILE_OFFSET + MIB, RAM_GPA + MIB, MIB, Some(ram))
            .unwrap();

        config_write32(&mut server, 0x18, BAR2 as u32);
        config_write32(&mut server, 0x1c, (BAR2 >> 32) as u32);
        (server, device)
    }

    fn config_write32(server: &mut DeviceServer, offset: u64, value: u32) {
        server
            .region_write(VFIO_PCI_CONFIG_REGION_INDEX, offset, &value.to_le_bytes())
            .unwrap();
    }

    fn bar0_write(server: &mut DeviceServer, offset: u64, value: u64) {
        // 8-byte writes to lo/hi pairs, as QEMU forwards a writeq.
        let bytes = value.to_le_bytes();
        let data = if offset.is_multiple_of(8) {
            &bytes[..]
        } else {
            &bytes[..4]
        };
        server
            .region_write(VFIO_PCI_BAR0_REGION_INDEX, offset, data)
            .unwrap();
    }

    fn bar0_read(server: &mut DeviceServer, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        server
            .region_read(VFIO_PCI_BAR0_REGION_INDEX, offset, &mut data)
            .unwrap();
        u32::from_le_bytes(data)
    }

    /// What the driver asks: `len` bytes from `va`, expected at BAR2 offset
    /// `offset`, faulted with `strategy`.
    struct Ask {
        va: u64,
        len: u64,
        offset: u64,
        strategy: u32,
    }

    /// The result registers after one doorbell.
    #[derive(Debug, PartialEq, Eq)]
    struct Summary {
        status: u32,
        pages: u32,
        present: u32,
        leaves: [u32; 3],
        memtype: u32,
        mismatch_kind: u32,
        mismatch_va: u64,
    }

    fn run_check(server: &mut DeviceServer, ask: &Ask) -> Summary {
        bar0_write(server, check::ROOT_LO, PML4);
        bar0_write(server, check::VA_LO, ask.va);
        bar0_write(server, check::LEN_LO, ask.len);
        bar0_write(server, check::OFFSET_LO, ask.offset);
        bar0_write(server, check::PAT_LO, LINUX_PAT);
        let flags = check::FLAG_REQUIRE_PRESENT | ask.strategy << check::STRATEGY_SHIFT;
        bar0_write(server, check::FLAGS, u64::from(flags));
        bar0_write(server, check::DOORBELL, u64::from(check::RUN));
        let mut read = |offset| bar0_read(server, offset);
        Summary {
            status: read(check::STATUS),
            pages: read(check::PAGES),
            present: read(check::PRESENT),
            leaves: [
                read(check::LEAVES_4K),
                read(check::LEAVES_2M),
                read(check::LEAVES_1G),
            ],
            memtype: read(check::MEMTYPE),
            mismatch_kind: read(check::MISMATCH_KIND),
            mismatch_va: u64::from(read(check::MISMATCH_VA_LO))
                | u64::from(read(check::MISMATCH_VA_HI)) << 32,
        }
    }

    const RANGE: u32 = 2;
    const PAGE: u32 = 0;

    #[test]
    fn a_correct_mapping_passes_through_bar0() {
        let (mut server, device) = server();
        // The 2M leaf: what `range` on a 2M-page device should produce.
        let huge = Ask {
            va: VA,
            len: 2 * MIB,
            offset: 0,
            strategy: RANGE,
        };
        assert_eq!(
            run_check(&mut server, &huge),
            Summary {
                status: check::STATUS_PASS,
                pages: 512,
                present: 512,
                leaves: [0, 1, 0],
                memtype: 1, // WC
                mismatch_kind: check::MISMATCH_NONE,
                mismatch_va: 0,
            }
        );
        // The 4K block, judged as a `page`-strategy mapping.
        let small = Ask {
            va: VA + 2 * MIB,
            len: 2 * MIB,
            offset: 2 * MIB,
            strategy: PAGE,
        };
        let summary = run_check(&mut server, &small);
        assert_eq!(summary.status, check::STATUS_PASS, "{summary:?}");
        assert_eq!(summary.leaves, [512, 0, 0]);
        assert_eq!(bar0_read(&mut server, check::SEQ), 2);

        let device = device.lock().unwrap();
        let records = device.host_checks();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].status, CheckStatus::Pass);
        let request = records[0].request.as_ref().unwrap();
        assert_eq!(request.expected_gpa, BAR2);
        assert_eq!(request.root, PML4);
    }

    #[test]
    fn wrong_expectations_are_reported_as_mismatches() {
        let (mut server, device) = server();
        // Wrong offset: the driver claims the range maps 2 MiB further in.
        let wrong_offset = Ask {
            va: VA,
            len: 2 * MIB,
            offset: 2 * MIB,
            strategy: RANGE,
        };
        let summary = run_check(&mut server, &wrong_offset);
        assert_eq!(summary.status, check::STATUS_MISMATCH);
        assert_eq!(summary.mismatch_kind, check::MISMATCH_WRONG_GPA);
        assert_eq!(summary.mismatch_va, VA);
        // An offset past the end of VRAM is judged the same way.
        let past_vram = Ask {
            offset: 64 * MIB,
            ..wrong_offset
        };
        let summary = run_check(&mut server, &past_vram);
        assert_eq!(summary.mismatch_kind, check::MISMATCH_WRONG_GPA);
        // Wrong level: `page` expects PTEs, the first block is a PMD leaf.
        let wrong_level = Ask {
            va: VA,
            len: 4 * MIB,
            offset: 0,
            strategy: PAGE,
        };
        let summary = run_check(&mut server, &wrong_level);
        assert_eq!(summary.status, check::STATUS_MISMATCH);
        assert_eq!(summary.mismatch_kind, check::MISMATCH_WRONG_SIZE);
        assert_eq!(summary.mismatch_va, VA);
        assert_eq!(summary.leaves, [512, 1, 0], "counts cover the range");
        // The other way round is no mismatch: `range` on a 2M device could
        // have a PMD where the 4K block is, but correct PTEs are what the
        // kernel gives after MADV_NOHUGEPAGE or in an existing PTE table.
        let summary = run_check(
            &mut server,
            &Ask {
                strategy: RANGE,
                ..wrong_level
            },
        );
        assert_eq!(summary.status, check::STATUS_PASS);
        assert_eq!(summary.mismatch_kind, check::MISMATCH_NONE);
        // Past the mapping: nothing present, which the driver required.
        let summary = run_check(
            &mut server,
            &Ask {
                va: VA + 4 * MIB,
                offset: 4 * MIB,
                ..wrong_offset
            },
        );
        assert_eq!(summary.mismatch_kind, check::MISMATCH_NOT_PRESENT);
        assert_eq!(summary.present, 0);

        let device = device.lock().unwrap();
        let kinds: Vec<_> = device
            .host_checks()
            .iter()
            .filter_map(|r| r.outcome.as_ref().unwrap().first_mismatch.as_ref())
            .map(|m| m.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                MismatchKind::WrongGpa,
                MismatchKind::WrongGpa,
                MismatchKind::WrongSize,
                MismatchKind::NotPresent
            ]
        );
    }

    #[test]
    fn unmapped_ram_is_a_walk_error_not_a_crash() {
        let (mut server, device) = server();
        // The client takes the RAM holding the PD and PT away.
        server
            .dma_unmap(DmaUnmapFlags::empty(), RAM_GPA, MIB)
            .unwrap();
        let ask = Ask {
            va: VA,
            len: 2 * MIB,
            offset: 0,
            strategy: RANGE,
        };
        assert_eq!(
            run_check(&mut server, &ask).status,
            check::STATUS_WALK_ERROR
        );
        // Unmapping everything, twice, and unknown ranges is fine too.
        for _ in 0..2 {
            server.dma_unmap(DmaUnmapFlags::UNMAP_ALL, 0, 0).unwrap();
        }
        server
            .dma_unmap(DmaUnmapFlags::empty(), 0x1234_0000, 0x1000)
            .unwrap();
        assert_eq!(
            run_check(&mut server, &ask).status,
            check::STATUS_WALK_ERROR
        );
        let device = device.lock().unwrap();
        let error = device.host_checks()[1].error.clone().unwrap();
        assert!(error.contains("none shared"), "{error}");
    }

    #[test]
    fn bad_dma_maps_are_survived() {
        let (mut server, _) = server();
        let flags = DmaMapFlags::READ_WRITE;
        let short = sealed_memfd(MIB);
        // Beyond the fd's end, empty, wrapping: refused quietly, QEMU sees Ok.
        server
            .dma_map(flags, 0, 0, 2 * MIB, Some(short.try_clone().unwrap()))
            .unwrap();
        server
            .dma_map(flags, 0, 0, 0, Some(short.try_clone().unwrap()))
            .unwrap();
        server
            .dma_map(flags, 0, u64::MAX - 0xfff, 0x2000, Some(short))
            .unwrap();
        // The RAM mapped before is still there.
        let ask = Ask {
            va: VA,
            len: 2 * MIB,
            offset: 0,
            strategy: RANGE,
        };
        assert_eq!(run_check(&mut server, &ask).status, check::STATUS_PASS);
    }

    /// An eventfd as the crate hands it over, and a second handle on it.
    fn eventfd() -> (File, EventFd) {
        let efd = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let other = efd.try_clone().unwrap();
        // SAFETY: `into_raw_fd` gives up sole ownership of a valid open fd,
        // which the File takes over.
        let file = unsafe { File::from_raw_fd(efd.into_raw_fd()) };
        (file, other)
    }

    const ERR_TRIGGER_EVENTFD: u32 = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;

    #[test]
    fn irqs_declare_msix_and_one_err_vector_only() {
        let irqs = irqs();
        assert_eq!(irqs.len(), VFIO_PCI_NUM_IRQS as usize);
        for (i, irq) in irqs.iter().enumerate() {
            assert_eq!(irq.index, i as u32);
        }
        let err = &irqs[VFIO_PCI_ERR_IRQ_INDEX as usize];
        // QEMU enables error recovery only for a count of exactly 1.
        assert_eq!((err.count, err.flags), (1, VFIO_IRQ_INFO_EVENTFD));
        let msix = &irqs[VFIO_PCI_MSIX_IRQ_INDEX as usize];
        assert_eq!(msix.count, u32::from(abi::MSIX_VECTORS));
        for index in [VFIO_PCI_INTX_IRQ_INDEX, 1, VFIO_PCI_REQ_IRQ_INDEX] {
            assert_eq!(irqs[index as usize].count, 0, "irq index {index}");
        }
    }

    #[test]
    fn the_err_eventfd_is_taken_and_cleared_as_qemu_does() {
        let (mut server, _) = server();
        let stats = server.stats.clone();
        // vfio_register_err_notifier: TRIGGER with one eventfd.
        let (fd, other) = eventfd();
        server
            .set_irqs(VFIO_PCI_ERR_IRQ_INDEX, ERR_TRIGGER_EVENTFD, 0, 1, vec![fd])
            .unwrap();
        let mut stored = server.err_eventfd.as_ref().expect("the eventfd is kept");
        stored.write_all(&1u64.to_ne_bytes()).unwrap();
        assert_eq!(other.read().unwrap(), 1, "it is the eventfd QEMU sent");
        // A reset leaves it, as the kernel's vfio-pci does.
        server.reset().unwrap();
        assert!(server.err_eventfd.is_some());
        // vfio_unregister_err_notifier: fd -1 arrives as no fd at all.
        server
            .set_irqs(VFIO_PCI_ERR_IRQ_INDEX, ERR_TRIGGER_EVENTFD, 0, 1, vec![])
            .unwrap();
        assert!(server.err_eventfd.is_none());
        // vfio_disable_irqindex: DATA_NONE, count 0.
        let (fd, _) = eventfd();
        server
            .set_irqs(VFIO_PCI_ERR_IRQ_INDEX, ERR_TRIGGER_EVENTFD, 0, 1, vec![fd])
            .unwrap();
        let none = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
        server
            .set_irqs(VFIO_PCI_ERR_IRQ_INDEX, none, 0, 0, vec![])
            .unwrap();
        assert!(server.err_eventfd.is_none());
        assert_eq!(stats.rejected.get(), 0);
    }

    #[test]
    fn err_irq_requests_beyond_its_one_vector_are_rejected() {
        let (mut server, _) = server();
        let stats = server.stats.clone();
        let err = VFIO_PCI_ERR_IRQ_INDEX;
        let two = || vec![eventfd().0, eventfd().0];
        let refused = [
            // A second vector, or one past the first.
            (ERR_TRIGGER_EVENTFD, 0, 2, two()),
            (ERR_TRIGGER_EVENTFD, 1, 1, vec![eventfd().0]),
            // More fds than vectors.
            (ERR_TRIGGER_EVENTFD, 0, 1, two()),
            // Masking: the ERR irq only triggers.
            (
                VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK,
                0,
                1,
                vec![eventfd().0],
            ),
            // Loopback signalling is not offered.
            (
                VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
                0,
                1,
                vec![],
            ),
        ];
        let n = refused.len() as u64;
        for (flags, start, count, fds) in refused {
            let e = server.set_irqs(err, flags, start, count, fds).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        }
        assert!(server.err_eventfd.is_none());
        // The indexes without vectors, and any beyond the last (which the
        // crate refuses before asking us), still take nothing but a disable.
        let beyond = VFIO_PCI_NUM_IRQS;
        for index in [VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_REQ_IRQ_INDEX, beyond] {
            let fds = vec![eventfd().0];
            assert!(server
                .set_irqs(index, ERR_TRIGGER_EVENTFD, 0, 1, fds)
                .is_err());
            let none = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
            server.set_irqs(index, none, 0, 0, vec![]).unwrap();
        }
        assert_eq!(stats.rejected.get(), n + 3);
    }
}
