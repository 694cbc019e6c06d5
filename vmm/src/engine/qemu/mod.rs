//! The QEMU engine: QEMU (TCG) runs the guest, our process serves the
//! rangefault device to it over vfio-user.

pub mod process;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use vfio_user_guard::{GuardOptions, GuardedServer};

use device_model::RangefaultDevice;

use super::vfio_server::{self, DeviceServer, ServerStats, ServerStatsSnapshot};
use super::{EngineCounters, GuestLaunch, GuestRun, HostCounters, VfioUserCounters};
use process::QemuMachine;

/// PCI slot the device gets on QEMU's root bus (00:03.0).
pub const PCI_SLOT: u8 = 3;

fn machine<'a>(qemu: &'a Path, launch: &'a GuestLaunch) -> QemuMachine<'a> {
    QemuMachine {
        qemu,
        kernel: &launch.kernel,
        initramfs: &launch.initramfs,
        cmdline: &launch.cmdline,
        memory: launch.memory,
        cpus: launch.cpus,
        second_serial: launch.second_serial.as_deref(),
    }
}

fn qemu_command(qemu: &Path, launch: &GuestLaunch, socket: &Path) -> Command {
    let mut command = machine(qemu, launch).command();
    let memory = format!("{}M", launch.memory >> 20);
    let device = serde_json::json!({
        "driver": "vfio-user-pci",
        "socket": {"path": socket, "type": "unix"},
        "addr": format!("{PCI_SLOT:#x}"),
    });
    command
        // Guest RAM must be a shared memfd: vfio-user hands its fd to the
        // device server (DMA_MAP), which is how the host page-table check
        // reads guest page tables. Sealed (QEMU's default, spelled out because
        // the server relies on it) so it cannot shrink under the server's
        // mapping.
        .args([
            "-object",
            &format!("memory-backend-memfd,id=ram,size={memory},share=on,seal=on"),
        ])
        .args(["-machine", "q35,memory-backend=ram"])
        .args(["-device", &device.to_string()]);
    if launch.icount {
        // One instruction per guest nanosecond, and no sleeping in real time when the guest
        // idles: the guest's clock then counts instructions only.
        command.args(["-icount", "shift=0,sleep=off"]);
    }
    command
}

/// Boots the guest under QEMU with `device` attached and waits for it to
/// power off (or for the timeout). With `record_dir`, everything QEMU sends
/// over vfio-user is also written to `record_dir/vfio-user.bin`.
pub fn run(
    qemu: &Path,
    launch: &GuestLaunch,
    device: Arc<Mutex<RangefaultDevice>>,
    record_dir: Option<&Path>,
) -> Result<GuestRun> {
    // Private to us (and QEMU, which runs as us): the crate's server listens
    // here too, behind the guard, and must have no other client.
    let socket_dir = crate::scratch::dir("socket")?;
    let socket = socket_dir.path().join("vfio-user.sock");

    let (regions, irqs) = {
        let device = device.lock().unwrap_or_else(|e| e.into_inner());
        (vfio_server::regions(&device), vfio_server::irqs())
    };
    let stats = Arc::new(ServerStats::default());
    // QEMU talks to the guard, which screens every message before the
    // crate's server (on device.sock beside it) sees it.
    let server = {
        let backend_stats = stats.clone();
        let mut options = GuardOptions::new({
            let stats = stats.clone();
            move || {
                stats.rejected.fetch_add(1, Ordering::Relaxed);
            }
        });
        options.record = record_dir.map(recording).transpose()?;
        GuardedServer::start(
            &socket,
            &socket_dir.path().join("device.sock"),
            regions,
            irqs,
            move || DeviceServer::new(device, backend_stats),
            options,
        )?
    };

    let watched = process::watch(qemu_command(qemu, launch, &socket), launch.timeout, |_| {})?;
    // QEMU closing the socket ends the server; if QEMU died before
    // connecting, the server never started serving and is left behind.
    let server_error = server.wait_stopped(Duration::from_secs(3));
    Ok(GuestRun {
        console: watched.console,
        host: host_counters(stats.snapshot()),
        // Set when the vfio-user server stopped on an error or a panic.
        engine_error: server_error,
        engine_status: watched.status.map(|s| format!("QEMU {s}")),
        engine_log: watched.stderr,
        timed_out: watched.timed_out,
        wall: watched.wall,
    })
}

/// Where the guard records the client's bytes: `dir/vfio-user.bin`.
fn recording(dir: &Path) -> Result<Box<dyn Write + Send>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("vfio-user.bin");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}

fn host_counters(s: ServerStatsSnapshot) -> HostCounters {
    HostCounters {
        config_accesses: s.config_accesses,
        register_accesses: s.register_accesses,
        vram_trapped_accesses: s.vram_trapped_accesses,
        engine: EngineCounters::VfioUser(VfioUserCounters {
            dma_maps: s.dma_maps,
            dma_unmaps: s.dma_unmaps,
            irq_updates: s.irq_updates,
            rejected: s.rejected,
        }),
    }
}
