//! `vmm` interrupted, or its QEMU gone. Ctrl-C or SIGTERM stops QEMU and removes every
//! temporary directory before `vmm` exits with 128 + the signal; after a SIGKILL (nothing of
//! `vmm` runs) QEMU still dies with it (parent-death signal), and the next run removes what the
//! killed one left; a QEMU that dies mid-run ends the run with a report that says so.
//!
//! The QEMU here is a stand-in that reports a version, prints a line and hangs (or kills
//! itself): a guest that never finishes, as a hung or misbehaving QEMU would look.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `vmm run` that stops after the sweep: pages larger than the VRAM (exit status 2).
const BAD_DEVICE: &[&str] = &["run", "--vram", "64M", "--page-size", "128M"];

struct Setup {
    dir: tempfile::TempDir,
    qemu_pid_file: PathBuf,
}

impl Setup {
    fn new() -> Self {
        Self::with_qemu_end("exec sleep 600")
    }

    /// A stand-in QEMU whose run ends with the shell line `end`.
    fn with_qemu_end(end: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let qemu_pid_file = dir.path().join("qemu.pid");
        let qemu = dir.path().join("qemu");
        std::fs::write(
            &qemu,
            format!(
                "#!/bin/sh\n[ \"$1\" = --version ] && {{ echo 'QEMU emulator version 10.1.0'; exit 0; }}\n\
                 echo $$ > {}\necho 'guest: booting'\n{end}\n",
                qemu_pid_file.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["bzImage", "initramfs.cpio"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        Self { dir, qemu_pid_file }
    }

    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn vmm(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vmm"));
        command
            .args(args)
            .env("TMPDIR", self.tmp())
            .env("RANGEFAULT_CACHE", self.dir.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// `vmm run` on the stand-in QEMU, once that QEMU runs; returns vmm and QEMU's pid.
    fn start_run(&self) -> (Child, i32) {
        self.start_run_with(&[])
    }

    fn start_run_with(&self, extra: &[&str]) -> (Child, i32) {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let child = self
            .vmm(&[
                "run",
                "--engine",
                "qemu",
                "--qemu",
                &path("qemu"),
                "--kernel",
                &path("bzImage"),
                "--initramfs",
                &path("initramfs.cpio"),
                "--timeout",
                "120",
            ])
            .args(extra)
            .spawn()
            .unwrap();
        let qemu = wait_for(Duration::from_secs(20), || {
            std::fs::read_to_string(&self.qemu_pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<i32>().ok())
        })
        .expect("the stand-in QEMU never started");
        (child, qemu)
    }

    fn scratch_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.tmp())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("rangefault-"))
            .collect()
    }
}

fn wait_for<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(value) = probe() {
            return Some(value);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Gone, or a zombie waiting for init to reap it.
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a pid this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    wait_for(limit, || child.try_wait().unwrap()).expect("vmm did not exit")
}

#[test]
fn sigterm_and_ctrl_c_stop_qemu_and_leave_no_temporary_files() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let setup = Setup::new();
        let (mut vmm, qemu) = setup.start_run();
        assert!(
            !setup.scratch_dirs().is_empty(),
            "the run has its socket directory"
        );
        signal(vmm.id(), sig);
        let status = wait_exit(&mut vmm, Duration::from_secs(20));
        let stderr = std::io::read_to_string(vmm.stderr.take().unwrap()).unwrap();
        assert_eq!(status.code(), Some(code), "{stderr}");
        assert!(stderr.contains("stopped by SIG"), "{stderr}");
        assert!(is_gone(qemu), "QEMU {qemu} outlived vmm: {stderr}");
        assert_eq!(setup.scratch_dirs(), Vec::<String>::new(), "{stderr}");
    }
}

#[test]
fn after_a_sigkill_qemu_dies_too_and_the_next_run_clears_what_was_left() {
    let setup = Setup::new();
    let (mut vmm, qemu) = setup.start_run();
    signal(vmm.id(), libc::SIGKILL);
    wait_exit(&mut vmm, Duration::from_secs(10));
    assert!(
        wait_for(Duration::from_secs(10), || is_gone(qemu).then_some(())).is_some(),
        "QEMU {qemu} outlived a killed vmm"
    );
    assert!(
        !setup.scratch_dirs().is_empty(),
        "nothing ran to remove them"
    );
    // Any run clears them first, even one that stops at a bad device configuration.
    let output = setup.vmm(BAD_DEVICE).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("removed 1 temporary directories"),
        "{stderr}"
    );
    assert_eq!(setup.scratch_dirs(), Vec::<String>::new());
}

#[test]
fn a_live_runs_directories_are_not_swept() {
    let setup = Setup::new();
    let (mut vmm, _qemu) = setup.start_run();
    let before = setup.scratch_dirs();
    let output = setup.vmm(BAD_DEVICE).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(setup.scratch_dirs(), before);
    signal(vmm.id(), libc::SIGTERM);
    wait_exit(&mut vmm, Duration::from_secs(20));
}

#[test]
fn a_qemu_killed_mid_run_ends_the_run_with_a_report_that_says_so() {
    let setup = Setup::with_qemu_end("sleep 1; kill -9 $$");
    let report = setup.dir.path().join("report.json");
    let (mut vmm, qemu) = setup.start_run_with(&["--report", report.to_str().unwrap()]);
    let status = wait_exit(&mut vmm, Duration::from_secs(30));
    let stderr = std::io::read_to_string(vmm.stderr.take().unwrap()).unwrap();
    // No result from the guest: exit status 70, and the report names what QEMU ended with.
    assert_eq!(status.code(), Some(70), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["pass"], false);
    let errors = report["host_errors"].to_string();
    assert!(errors.contains("signal: 9"), "{errors}");
    assert!(is_gone(qemu));
    assert_eq!(setup.scratch_dirs(), Vec::<String>::new(), "{stderr}");
}

/// A guest that never stops printing: the signal is still seen (it used to be looked at only
/// when the console was quiet for 100 ms).
#[test]
fn a_chatty_guest_is_stopped_by_sigterm_too() {
    let setup = Setup::with_qemu_end("while :; do echo 'guest: still talking'; done");
    let (mut vmm, qemu) = setup.start_run();
    std::thread::sleep(Duration::from_millis(500));
    signal(vmm.id(), libc::SIGTERM);
    let status = wait_exit(&mut vmm, Duration::from_secs(20));
    let stderr = std::io::read_to_string(vmm.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(is_gone(qemu), "QEMU {qemu} outlived vmm");
    assert_eq!(setup.scratch_dirs(), Vec::<String>::new());
}
