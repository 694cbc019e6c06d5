//! The guest image: kernel, initramfs and the QEMU to run them, built and
//! cached by the scripts in `images/` (see images/build.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Where the repo's `images/` scripts are (compiled in: the VMM is run from
/// its checkout with `cargo run`).
fn images_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../images")
}

/// What `images/build.sh` produced.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub qemu: PathBuf,
    pub kernel: Option<PathBuf>,
    pub initramfs: Option<PathBuf>,
    pub kernel_release: Option<String>,
    /// Package name -> version actually used (sysroot and kernel).
    pub versions: BTreeMap<String, String>,
}

/// Which parts to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Only QEMU (the user brings kernel and initramfs).
    Qemu,
    /// Everything.
    All,
}

/// Which guest kernel build (images/kernel.sh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KernelFlavour {
    /// lockdep, DEBUG_VM and friends: what the boot tests run.
    #[default]
    Debug,
    /// The debug options off, for benchmark numbers (its own cached build, ~10 min cold).
    Bench,
}

impl KernelFlavour {
    pub fn name(self) -> &'static str {
        match self {
            KernelFlavour::Debug => "debug",
            KernelFlavour::Bench => "bench",
        }
    }
}

/// Runs images/build.sh (a no-op in seconds when the cache is warm; a cold
/// build takes tens of minutes and prints progress on stderr).
pub fn build(parts: Parts, flavour: KernelFlavour) -> Result<GuestImage> {
    let script = images_dir().join("build.sh");
    let mut command = Command::new("bash");
    command.arg(&script);
    command.env("RANGEFAULT_KERNEL_FLAVOUR", flavour.name());
    if parts == Parts::Qemu {
        command.arg("qemu");
    }
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "building the guest image failed ({}); see the messages above",
            output.status
        );
    }
    parse_build_output(&String::from_utf8_lossy(&output.stdout))
}

fn parse_build_output(stdout: &str) -> Result<GuestImage> {
    let values: BTreeMap<&str, &str> = stdout
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let path = |key: &str| values.get(key).map(PathBuf::from);
    let qemu = path("qemu").context("images/build.sh did not report qemu=")?;
    let mut versions = BTreeMap::new();
    if let Some(manifest) = values.get("manifest") {
        let text =
            std::fs::read_to_string(manifest).with_context(|| format!("cannot read {manifest}"))?;
        for line in text.lines() {
            if let Some((name, version)) = line.split_once(' ') {
                versions.insert(name.to_owned(), version.to_owned());
            }
        }
    }
    Ok(GuestImage {
        qemu,
        kernel: path("kernel"),
        initramfs: path("initramfs"),
        kernel_release: values.get("kernel_release").map(|s| (*s).to_owned()),
        versions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_value_output() {
        let image = parse_build_output(
            "qemu=/c/qemu\nkernel=/c/bzImage\ninitramfs=/c/i.cpio\nkernel_release=7.2.13\n",
        )
        .unwrap();
        assert_eq!(image.qemu, PathBuf::from("/c/qemu"));
        assert_eq!(image.kernel, Some(PathBuf::from("/c/bzImage")));
        assert_eq!(image.kernel_release.as_deref(), Some("7.2.13"));
    }

    #[test]
    fn missing_qemu_is_an_error() {
        assert!(parse_build_output("kernel=/x\n").is_err());
    }
}
