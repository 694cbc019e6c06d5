//! A user who brings the images needs nothing of the checkout: `--engine kvm` with `--kernel`
//! and `--initramfs` (and `--engine qemu` with `--qemu` too) never runs `images/build.sh`, so a
//! static vmm copied anywhere runs (as it does inside the outer guest of `kvm-nested`).

use std::process::{Command, Output};

fn vmm(args: &[&str], cache: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmm"))
        .args(args)
        // An empty cache: an image build would start from debootstrap and say so on stderr.
        .env("RANGEFAULT_CACHE", cache)
        .output()
        .expect("cannot run vmm")
}

#[test]
fn the_kvm_engine_boots_what_it_is_given_without_building() {
    let dir = tempfile::tempdir().unwrap();
    let kernel = dir.path().join("bzImage");
    let initramfs = dir.path().join("initramfs.cpio");
    std::fs::write(&kernel, b"not a kernel").unwrap();
    std::fs::write(&initramfs, b"").unwrap();
    let cache = dir.path().join("cache");
    let output = vmm(
        &[
            "run",
            "--engine",
            "kvm",
            "--kernel",
            kernel.to_str().unwrap(),
            "--initramfs",
            initramfs.to_str().unwrap(),
            "--timeout",
            "5",
        ],
        &cache,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    // It got as far as loading the kernel it was given (or creating the VM where /dev/kvm is
    // missing), and never near the image scripts.
    assert!(
        stderr.contains("kernel") || stderr.contains("KVM"),
        "{stderr}"
    );
    assert!(!stderr.contains("[images"), "{stderr}");
    assert!(!cache.exists(), "the image cache was touched: {stderr}");
}

#[test]
fn a_qemu_older_than_10_1_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let kernel = file("bzImage", "x");
    let initramfs = file("initramfs.cpio", "");
    let qemu = file("qemu", "#!/bin/sh\necho 'QEMU emulator version 8.2.2'\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cache = dir.path().join("cache");
    let output = vmm(
        &[
            "run",
            "--engine",
            "qemu",
            "--qemu",
            qemu.to_str().unwrap(),
            "--kernel",
            kernel.to_str().unwrap(),
            "--initramfs",
            initramfs.to_str().unwrap(),
        ],
        &cache,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("needs 10.1 or newer"), "{stderr}");
    assert!(!stderr.contains("[images") && !cache.exists(), "{stderr}");
}
