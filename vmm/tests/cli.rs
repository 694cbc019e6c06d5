//! Bad command-line values get a one-line error naming the flag and the
//! allowed range, exit status 2, and no guest is started.

use std::process::Command;

/// What one run of `vmm` said: exit status, stdout, stderr.
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn vmm(args: &[&str]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_vmm"))
        .args(args)
        .output()
        .expect("cannot run vmm");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn assert_rejected(args: &[&str], expect: &[&str]) {
    let Outcome {
        code,
        stdout,
        stderr,
    } = vmm(args);
    assert_eq!(code, 2, "{args:?} should be rejected; stderr: {stderr}");
    for needle in expect {
        assert!(
            stderr.contains(needle),
            "{args:?}: stderr should mention {needle:?}: {stderr}"
        );
    }
    // What a run prints once the arguments are accepted: the engine line and the image
    // builders' log on stderr, the PCI topology on stdout.
    assert!(
        !stderr.contains("vmm: engine") && !stderr.contains("[images"),
        "{args:?}: nothing should start: {stderr}"
    );
    assert!(
        stdout.is_empty(),
        "{args:?}: nothing should start (stdout): {stdout}"
    );
}

#[test]
fn vram_not_a_power_of_two() {
    assert_rejected(&["run", "--vram", "3M"], &["--vram", "power of two"]);
}

#[test]
fn vram_out_of_range() {
    assert_rejected(&["run", "--vram", "32M"], &["--vram", "64M ..= 64G"]);
    assert_rejected(&["run", "--vram", "128G"], &["--vram", "64M ..= 64G"]);
}

#[test]
fn page_size_out_of_range_or_garbage() {
    assert_rejected(&["run", "--page-size", "2K"], &["--page-size", "4K ..= 1G"]);
    assert_rejected(
        &["run", "--page-size", "lots"],
        &["--page-size", "not a size"],
    );
    assert_rejected(
        &["run", "--page-size", "3X"],
        &["--page-size", "unknown unit"],
    );
}

#[test]
fn page_size_larger_than_vram() {
    assert_rejected(
        &["run", "--vram", "64M", "--page-size", "1G"],
        &["--page-size", "--vram"],
    );
}

#[test]
fn cpus_and_memory_out_of_range() {
    assert_rejected(&["run", "--cpus", "0"], &["--cpus"]);
    assert_rejected(&["run", "--memory", "64M"], &["--memory", "128M"]);
}

#[test]
fn scenario_names_cannot_smuggle_kernel_parameters() {
    assert_rejected(
        &["run", "--scenario", "faults init=/bin/sh"],
        &["--scenario", "not a scenario name"],
    );
}

#[test]
fn unknown_engine() {
    assert_rejected(&["run", "--engine", "xen"], &["--engine", "qemu"]);
}

#[test]
fn options_an_engine_cannot_honour_are_refused_before_anything_starts() {
    assert_rejected(
        &["run", "--engine", "kvm", "--icount"],
        &["--icount", "qemu"],
    );
    assert_rejected(
        &["run", "--engine", "kvm-nested", "--trace", "t.json"],
        &["--trace", "kvm-nested"],
    );
    assert_rejected(&["run", "--trace-buffer", "3M"], &["--trace-buffer"]);
    assert_rejected(
        &["run", "--trace", "/nonexistent-dir/t.json"],
        &["--trace", "/nonexistent-dir is not a directory"],
    );
}

#[test]
fn bad_devices_are_refused_before_anything_starts() {
    assert_rejected(
        &["run", "--device", "vram=1G,colour=red"],
        &["--device", "unknown key 'colour'"],
    );
    assert_rejected(
        &["run", "--device", "vram=1G", "--vram", "2G"],
        &["--device", "cannot be used with"],
    );
    let nine: Vec<&str> = ["run"]
        .into_iter()
        .chain(std::iter::repeat_n(["--device", "vram=64M"], 9).flatten())
        .collect();
    assert_rejected(&nine, &["--device given 9 times; at most 8"]);
    assert_rejected(
        &[
            "run",
            "--engine",
            "kvm",
            "--device",
            "vram=64M",
            "--device",
            "vram=64M,driver=vfio-pci",
        ],
        &["engine kvm runs one device", "--engine qemu"],
    );
}
