//! One QEMU process, as both QEMU-run engines (vfio-user, and the outer
//! guest of kvm-nested) start it: the common part of its command line,
//! started so that it dies with us, its serial console and stderr watched
//! until it exits or runs out of time.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::guest_console::{GuestConsole, MAX_LINE};

/// The machine QEMU boots: a q35 with the kernel loaded directly.
pub struct QemuMachine<'a> {
    pub qemu: &'a Path,
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub cmdline: &'a str,
    pub memory: u64,
    pub cpus: u8,
    /// The guest's second serial port (ttyS1) into this host file.
    pub second_serial: Option<&'a Path>,
}

impl QemuMachine<'_> {
    /// QEMU's command line without RAM backend or devices: TCG with every
    /// CPU feature it emulates (`max`: svm and npt among them), the first
    /// serial port on stdout, no reboot (a guest reset ends QEMU).
    pub fn command(&self) -> Command {
        let mut command = Command::new(self.qemu);
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
            .args(["-smp", &self.cpus.to_string()])
            .args(["-m", &format!("{}M", self.memory >> 20)])
            .args(["-chardev", "stdio,id=console,signal=off"])
            .args(["-serial", "chardev:console"])
            .args(self.second_serial.iter().flat_map(|file| {
                [
                    "-chardev".into(),
                    // QEMU's option syntax doubles a comma inside a value.
                    format!(
                        "file,id=serial1,path={}",
                        file.display().to_string().replace(',', ",,")
                    ),
                    "-serial".into(),
                    "chardev:serial1".into(),
                ]
            }))
            .arg("-kernel")
            .arg(self.kernel)
            .arg("-initrd")
            .arg(self.initramfs)
            .args(["-append", self.cmdline])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl(2), which is async-signal-safe and touches no memory
        // of ours.
        unsafe {
            command.pre_exec(|| {
                // QEMU must not outlive a vmm that is killed (SIGKILL included).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
    }
}

/// How often the wait for QEMU looks for Ctrl-C or SIGTERM.
const INTERRUPT_POLL: Duration = Duration::from_millis(100);

/// How a watched QEMU run went.
pub struct Watched {
    pub console: GuestConsole,
    /// QEMU's last 50 stderr lines.
    pub stderr: Vec<String>,
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub wall: Duration,
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
            .take(MAX_LINE as u64)
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

/// Starts `command` (from [`QemuMachine::command`]), echoes and parses the
/// guest console (each line also goes to `on_line`), and waits until QEMU
/// exits or `timeout` passes (then kills it).
pub fn watch(
    mut command: Command,
    timeout: Duration,
    mut on_line: impl FnMut(&str),
) -> Result<Watched> {
    let started = Instant::now();
    let mut child: Child = command
        .spawn()
        .with_context(|| format!("cannot start {}", command.get_program().display()))?;
    let (sender, lines) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        forward_lines(stdout, sender.clone(), Output::Guest);
    }
    if let Some(stderr) = child.stderr.take() {
        forward_lines(stderr, sender.clone(), Output::Qemu);
    }
    drop(sender);

    let mut console = GuestConsole::new(started);
    let mut stderr = Vec::new();
    let deadline = started + timeout;
    let mut timed_out = false;
    // Signal and deadline are looked at on every turn, not only when the console is quiet: a
    // guest that never stops printing must still be stoppable and time out.
    loop {
        if let Some(signal) = crate::interrupt::received() {
            eprintln!(
                "vmm: {} received; killing QEMU",
                crate::interrupt::name(signal)
            );
            let _ = child.kill();
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            eprintln!(
                "vmm: guest still running after {} s; killing QEMU",
                timeout.as_secs()
            );
            let _ = child.kill();
            break;
        }
        match lines.recv_timeout(left.min(INTERRUPT_POLL)) {
            Ok(Output::Guest(line)) => {
                print!("{line}");
                console.feed(&line);
                on_line(&line);
            }
            Ok(Output::Qemu(line)) => {
                eprint!("qemu: {line}");
                stderr.push(line.trim_end().to_owned());
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    console.finish();
    let status = child.wait().ok();
    let keep = stderr.len().saturating_sub(50);
    stderr.drain(..keep);
    Ok(Watched {
        console,
        stderr,
        status,
        timed_out,
        wall: started.elapsed(),
    })
}
