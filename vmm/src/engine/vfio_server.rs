//! Serves the device model to QEMU over vfio-user (crate `vfio_user`).
//!
//! VRAM (BAR2) is handed to QEMU as the device's memfd with one sparse mmap
//! area covering the whole BAR, so guest VRAM accesses go straight to host
//! memory; any access that still arrives as REGION_READ/WRITE is served from
//! the memfd too, and counted: a healthy run has zero.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use vfio_bindings::bindings::vfio::{
    vfio_region_info, vfio_region_sparse_mmap_area, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_NORESIZE,
    VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_EVENTFD,
    VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_BAR0_REGION_INDEX,
    VFIO_PCI_BAR2_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_MSIX_IRQ_INDEX,
    VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_MMAP,
    VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
};
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion, SparseArea};

use device_model::{abi, RangefaultDevice};

/// PCI config space size we expose (conventional, no extended space).
const CONFIG_SPACE_SIZE: u64 = 256;

/// Counters of what crossed the socket.
#[derive(Debug, Default)]
pub struct ServerStats {
    pub config_accesses: AtomicU64,
    pub register_accesses: AtomicU64,
    /// VRAM reads/writes that trapped instead of going through the mapping.
    pub vram_trapped_accesses: AtomicU64,
    pub dma_maps: AtomicU64,
    pub dma_unmaps: AtomicU64,
    pub irq_updates: AtomicU64,
    pub rejected: AtomicU64,
}

/// A snapshot of [`ServerStats`] for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatsSnapshot {
    pub config_accesses: u64,
    pub register_accesses: u64,
    pub vram_trapped_accesses: u64,
    pub dma_maps: u64,
    pub dma_unmaps: u64,
    pub irq_updates: u64,
    pub rejected: u64,
}

impl ServerStats {
    pub fn snapshot(&self) -> ServerStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerStatsSnapshot {
            config_accesses: get(&self.config_accesses),
            register_accesses: get(&self.register_accesses),
            vram_trapped_accesses: get(&self.vram_trapped_accesses),
            dma_maps: get(&self.dma_maps),
            dma_unmaps: get(&self.dma_unmaps),
            irq_updates: get(&self.irq_updates),
            rejected: get(&self.rejected),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The device seen through vfio-user.
pub struct DeviceServer {
    device: Arc<Mutex<RangefaultDevice>>,
    stats: Arc<ServerStats>,
    /// MSI-X vector -> eventfd QEMU gave us to signal it.
    msix_eventfds: Vec<Option<File>>,
}

impl DeviceServer {
    pub fn new(device: Arc<Mutex<RangefaultDevice>>, stats: Arc<ServerStats>) -> Self {
        Self {
            device,
            stats,
            msix_eventfds: (0..abi::MSIX_VECTORS).map(|_| None).collect(),
        }
    }

    /// A poisoned lock only means another thread panicked mid-access; the
    /// device state is plain data, so keep serving.
    fn device(&self) -> MutexGuard<'_, RangefaultDevice> {
        self.device.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reject(&self, what: String) -> std::io::Error {
        bump(&self.stats.rejected);
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

/// MSI-X only: no INTx (under TCG a pending INTx disables BAR mmaps in QEMU).
pub fn irqs() -> Vec<IrqInfo> {
    (0..VFIO_PCI_NUM_IRQS)
        .map(|index| IrqInfo {
            index,
            flags: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE
            } else {
                0
            },
            count: if index == VFIO_PCI_MSIX_IRQ_INDEX {
                u32::from(abi::MSIX_VECTORS)
            } else {
                0
            },
        })
        .collect()
}

impl ServerBackend for DeviceServer {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> std::io::Result<()> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                bump(&self.stats.config_accesses);
                self.device().config_read(offset, data);
            }
            VFIO_PCI_BAR0_REGION_INDEX => {
                bump(&self.stats.register_accesses);
                self.device().regs_read(offset, data);
            }
            VFIO_PCI_BAR2_REGION_INDEX => {
                bump(&self.stats.vram_trapped_accesses);
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
                bump(&self.stats.config_accesses);
                self.device().config_write(offset, data);
            }
            VFIO_PCI_BAR0_REGION_INDEX => {
                bump(&self.stats.register_accesses);
                self.device().regs_write(offset, data);
            }
            VFIO_PCI_BAR2_REGION_INDEX => {
                bump(&self.stats.vram_trapped_accesses);
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
        _offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> std::io::Result<()> {
        // QEMU maps all guest RAM (with an fd: shared memfd memory) and also
        // the device's own BARs (without one). Both are fine; the host
        // page-table check will read guest RAM through the fds.
        bump(&self.stats.dma_maps);
        tracing::debug!(
            "vfio-user: DMA map {address:#x}+{size:#x} ({})",
            if fd.is_some() { "with fd" } else { "no fd" }
        );
        Ok(())
    }

    fn dma_unmap(&mut self, _flags: DmaUnmapFlags, address: u64, size: u64) -> std::io::Result<()> {
        bump(&self.stats.dma_unmaps);
        tracing::debug!("vfio-user: DMA unmap {address:#x}+{size:#x}");
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
        bump(&self.stats.irq_updates);
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            // QEMU disables INTx/MSI/ERR/REQ even though we have none.
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
