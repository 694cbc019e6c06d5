//! The QEMU engine: QEMU (TCG) runs the guest, our process serves the
//! rangefault device to it over vfio-user.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use device_model::RangefaultDevice;

use super::vfio_guard::GuardedServer;
use super::vfio_server::{self, DeviceServer, ServerStats, ServerStatsSnapshot};
use super::{EngineCounters, GuestRun, HostCounters, VfioUserCounters};
use crate::guest_console::GuestConsole;

/// PCI slot the device gets on QEMU's root bus (00:03.0).
pub const PCI_SLOT: u8 = 3;

/// Everything needed to start the guest.
pub struct QemuLaunch {
    pub qemu: PathBuf,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
    pub memory: u64,
    pub cpus: u8,
    pub timeout: Duration,
}

enum Output {
    Guest(String),
    Qemu(String),
}

fn forward_lines(
    stream: impl Read + Send + 'static,
    sender: mpsc::Sender<Output>,
    wrap: fn(String) -> Output,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        // Console output is not guaranteed UTF-8; take it lossily.
        // At most MAX_LINE bytes per read: a guest that never sends a newline gets its output
        // cut into lines instead of growing host memory without bound.
        while (&mut reader)
            .take(crate::guest_console::MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .is_ok_and(|n| n > 0)
        {
            let line = String::from_utf8_lossy(&buf).into_owned();
            buf.clear();
            if sender.send(wrap(line)).is_err() {
                break;
            }
        }
    });
}

fn qemu_command(launch: &QemuLaunch, socket: &std::path::Path) -> Command {
    let mut command = Command::new(&launch.qemu);
    let memory = format!("{}M", launch.memory >> 20);
    let device = serde_json::json!({
        "driver": "vfio-user-pci",
        "socket": {"path": socket, "type": "unix"},
        "addr": format!("{PCI_SLOT:#x}"),
    });
    command
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-accel", "tcg"])
        .args(["-cpu", "max"])
        .args(["-smp", &launch.cpus.to_string()])
        .args(["-m", &memory])
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
        .args(["-chardev", "stdio,id=console,signal=off"])
        .args(["-serial", "chardev:console"])
        .arg("-kernel")
        .arg(&launch.kernel)
        .arg("-initrd")
        .arg(&launch.initramfs)
        .args(["-append", &launch.cmdline])
        .args(["-device", &device.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Boots the guest under QEMU with `device` attached and waits for it to
/// power off (or for the timeout).
pub fn run(launch: &QemuLaunch, device: Arc<Mutex<RangefaultDevice>>) -> Result<GuestRun> {
    // Private to us (and QEMU, which runs as us): the crate's server listens
    // here too, behind the guard, and must have no other client.
    let socket_dir = tempfile::Builder::new()
        .prefix("rangefault-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .context("cannot create a directory for the vfio-user socket")?;
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
        GuardedServer::start(
            &socket,
            &socket_dir.path().join("device.sock"),
            regions,
            irqs,
            move || DeviceServer::new(device, backend_stats),
            stats.clone(),
        )?
    };

    let started = Instant::now();
    let mut child: Child = qemu_command(launch, &socket)
        .spawn()
        .with_context(|| format!("cannot start {}", launch.qemu.display()))?;
    let (sender, lines) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        forward_lines(stdout, sender.clone(), Output::Guest);
    }
    if let Some(stderr) = child.stderr.take() {
        forward_lines(stderr, sender.clone(), Output::Qemu);
    }
    drop(sender);

    let mut console = GuestConsole::new(started);
    let mut qemu_stderr = Vec::new();
    let deadline = started + launch.timeout;
    let mut timed_out = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(Output::Guest(line)) => {
                print!("{line}");
                console.feed(&line);
            }
            Ok(Output::Qemu(line)) => {
                eprint!("qemu: {line}");
                qemu_stderr.push(line.trim_end().to_owned());
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                eprintln!(
                    "vmm: guest still running after {} s; killing QEMU",
                    launch.timeout.as_secs()
                );
                let _ = child.kill();
                break;
            }
        }
    }
    let qemu_status = child.wait().ok();
    // QEMU closing the socket ends the server; if QEMU died before
    // connecting, the server never started serving and is left behind.
    let server_error = server.wait_stopped(Duration::from_secs(3));
    let keep = qemu_stderr.len().saturating_sub(50);
    qemu_stderr.drain(..keep);
    Ok(GuestRun {
        console,
        host: host_counters(stats.snapshot()),
        // Set when the vfio-user server stopped on an error or a panic.
        engine_error: server_error,
        engine_status: qemu_status.map(|s| format!("QEMU {s}")),
        engine_log: qemu_stderr,
        timed_out,
        wall: started.elapsed(),
    })
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
