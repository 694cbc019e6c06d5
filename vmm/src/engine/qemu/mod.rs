//! The QEMU engine: QEMU (TCG) runs the guest, our process serves the
//! rangefault device to it over vfio-user.

pub mod process;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use vfio_user_guard::{GuardOptions, GuardedServer};

use device_model::RangefaultDevice;

use super::vfio_server::{self, DeviceServer, ServerStats};
use super::{GuestLaunch, GuestRun, HostCounters};
use process::QemuMachine;

/// PCI slot the first device gets on QEMU's root bus (00:03.0); the next ones follow.
pub const PCI_SLOT: u8 = 3;

/// The device in slot `PCI_SLOT + index`, as the guest names it.
pub fn bdf(index: usize) -> String {
    format!("0000:00:{:02x}.0", PCI_SLOT as usize + index)
}

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

fn qemu_command(qemu: &Path, launch: &GuestLaunch, sockets: &[PathBuf], iommu: bool) -> Command {
    let mut command = machine(qemu, launch).command();
    let memory = format!("{}M", launch.memory >> 20);
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
        .args(["-machine", "q35,memory-backend=ram"]);
    if iommu {
        // Before the devices, which look up their IOMMU when they are realized. Caching mode
        // makes the guest report every mapping it makes, which a vfio-user device behind the
        // IOMMU needs (QEMU refuses such a device without it).
        command.args(["-device", "intel-iommu,caching-mode=on"]);
    }
    for (index, socket) in sockets.iter().enumerate() {
        let device = serde_json::json!({
            "driver": "vfio-user-pci",
            "socket": {"path": socket, "type": "unix"},
            "addr": format!("{:#x}", PCI_SLOT as usize + index),
        });
        command.args(["-device", &device.to_string()]);
    }
    if launch.icount {
        // One instruction per guest nanosecond, and no sleeping in real time when the guest
        // idles: the guest's clock then counts instructions only.
        command.args(["-icount", "shift=0,sleep=off"]);
    }
    command
}

/// Boots the guest under QEMU with `devices` attached (slot `PCI_SLOT` on), each served by
/// its own vfio-user server, and waits for it to power off (or for the timeout). `iommu`
/// gives the guest a virtual IOMMU (for vfio-pci in the guest). With `record_dir`, everything
/// QEMU sends the first device over vfio-user is also written to `record_dir/vfio-user.bin`
/// (the others' to `vfio-user-N.bin`).
pub fn run(
    qemu: &Path,
    launch: &GuestLaunch,
    devices: &[Arc<Mutex<RangefaultDevice>>],
    iommu: bool,
    record_dir: Option<&Path>,
) -> Result<GuestRun> {
    // Private to us (and QEMU, which runs as us): the crate's servers listen
    // here too, behind the guards, and must have no other client.
    let socket_dir = crate::scratch::dir("socket")?;
    let stats = Arc::new(ServerStats::default());
    let mut servers = Vec::new();
    let mut sockets = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        let socket = socket_dir.path().join(format!("vfio-user-{index}.sock"));
        let (regions, irqs) = {
            let device = device.lock().unwrap_or_else(|e| e.into_inner());
            (vfio_server::regions(&device), vfio_server::irqs())
        };
        // QEMU talks to the guard, which screens every message before the
        // crate's server (on device-N.sock beside it) sees it.
        let backend_stats = stats.clone();
        let mut options = GuardOptions::new({
            let stats = stats.clone();
            move || {
                stats.rejected.inc();
            }
        });
        options.record = record_dir.map(|dir| recording(dir, index)).transpose()?;
        let device = Arc::clone(device);
        servers.push(GuardedServer::start(
            &socket,
            &socket_dir.path().join(format!("device-{index}.sock")),
            regions,
            irqs,
            move || DeviceServer::new(device, backend_stats),
            options,
        )?);
        sockets.push(socket);
    }

    let command = qemu_command(qemu, launch, &sockets, iommu);
    let watched = process::watch(command, launch.timeout, |_| {})?;
    // QEMU closing a socket ends its server; if QEMU died before
    // connecting, the server never started serving and is left behind.
    let server_errors: Vec<String> = servers
        .iter()
        .enumerate()
        .filter_map(|(index, server)| {
            let error = server.wait_stopped(Duration::from_secs(3))?;
            Some(if devices.len() > 1 {
                format!("device {}: {error}", bdf(index))
            } else {
                error
            })
        })
        .collect();
    Ok(GuestRun {
        console: watched.console,
        // The servers share one set of counters: the device boundary, all devices together.
        host: HostCounters::VfioUser(stats),
        // Set when a vfio-user server stopped on an error or a panic.
        engine_error: (!server_errors.is_empty()).then(|| server_errors.join("; ")),
        engine_status: watched.status.map(|s| format!("QEMU {s}")),
        engine_log: watched.stderr,
        timed_out: watched.timed_out,
        wall: watched.wall,
    })
}

/// Where the guard records the client's bytes: `dir/vfio-user.bin` for the first device,
/// `dir/vfio-user-N.bin` for device N after it.
fn recording(dir: &Path, index: usize) -> Result<Box<dyn Write + Send>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = match index {
        0 => dir.join("vfio-user.bin"),
        n => dir.join(format!("vfio-user-{n}.bin")),
    };
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(Box::new(BufWriter::new(file)))
}
