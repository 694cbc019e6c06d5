//! The guest image: kernel, initramfs and the QEMU to run them, built and
//! cached by the scripts in `images/` (see images/build.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Where the repo's `images/` scripts are (compiled in: the VMM is run from
/// its checkout with `cargo run`).
fn images_dir() -> PathBuf {
    checkout_dir().join("images")
}

/// The checkout vmm was built from, whose `images/` build the guest.
fn checkout_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The checkout the images are built from ([`checkout_dir`]), as git sees it now.
pub fn source_tree() -> crate::report::SourceTree {
    let git = |args: &[&str]| {
        let output = Command::new("git")
            .arg("-C")
            .arg(checkout_dir())
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        output.status.success().then_some(text)
    };
    crate::report::SourceTree {
        commit: git(&["rev-parse", "HEAD"]),
        dirty: git(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty()),
    }
}

/// The oldest QEMU with the vfio-user client (`vfio-user-pci`).
pub const MIN_QEMU: (u32, u32) = (10, 1);

/// What `images/build.sh` produced (or the user brought).
#[derive(Debug, Clone, Default)]
pub struct GuestImage {
    /// None when the user brought kernel and initramfs for the kvm engine:
    /// nothing was built and no QEMU is needed.
    pub qemu: Option<PathBuf>,
    pub kernel: Option<PathBuf>,
    pub initramfs: Option<PathBuf>,
    /// The outer guest's initramfs of `--engine kvm-nested` (images/nested.sh).
    pub nested_initramfs: Option<PathBuf>,
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
    /// Everything, and the outer initramfs of kvm-nested.
    Nested,
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
    anyhow::ensure!(
        script.is_file(),
        "this vmm was built from a checkout at {} that is not here, so it cannot build the \
         guest image; pass --kernel and --initramfs (and --qemu for the qemu engine)",
        Path::new(env!("CARGO_MANIFEST_DIR")).display()
    );
    let mut command = Command::new("bash");
    command.arg(&script);
    command.env("RANGEFAULT_KERNEL_FLAVOUR", flavour.name());
    match parts {
        Parts::Qemu => {
            command.arg("qemu");
        }
        Parts::Nested => {
            command.arg("nested");
        }
        Parts::All => {}
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

impl GuestImage {
    /// The QEMU to run: the user's `--qemu` or the image sysroot's.
    pub fn qemu(&self) -> Result<&Path> {
        self.qemu.as_deref().context("no QEMU (pass --qemu)")
    }
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
        qemu: Some(qemu),
        kernel: path("kernel"),
        initramfs: path("initramfs"),
        nested_initramfs: path("nested_initramfs"),
        kernel_release: values.get("kernel_release").map(|s| (*s).to_owned()),
        versions,
    })
}

/// The release a bzImage names in its setup header (`kernel_version`, boot
/// protocol 2.00+), e.g. "7.2.13"; None for anything else.
pub fn kernel_release(bzimage: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = vec![0u8; 64 << 10];
    let mut file = std::fs::File::open(bzimage).ok()?;
    let len = file.read(&mut head).ok()?;
    release_from_setup(&head[..len])
}

fn release_from_setup(head: &[u8]) -> Option<String> {
    // "HdrS" at 0x202; the version string's offset from 0x200 at 0x20e.
    if head.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let offset = u16::from_le_bytes(head.get(0x20e..0x210)?.try_into().ok()?);
    let start = 0x200 + usize::from(offset);
    let text = head.get(start..)?;
    let end = text.iter().position(|&b| b == 0)?;
    let version = std::str::from_utf8(&text[..end]).ok()?;
    version.split_whitespace().next().map(str::to_owned)
}

/// Checks that `qemu` runs and is at least [`MIN_QEMU`]; returns its version.
pub fn check_qemu(qemu: &Path) -> Result<String> {
    let output = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("--qemu {}: cannot run it", qemu.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|word| *word != "version")
        .nth(1)
        .with_context(|| format!("--qemu {}: no version in {text:?}", qemu.display()))?;
    let mut numbers = version.split(['.', '-', '(']).map(|n| n.parse::<u32>());
    let found = match (numbers.next(), numbers.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor),
        _ => bail!("--qemu {}: cannot read version {version:?}", qemu.display()),
    };
    anyhow::ensure!(
        found >= MIN_QEMU,
        "--qemu {} is QEMU {version}; rangefault needs {}.{} or newer (the vfio-user client)",
        qemu.display(),
        MIN_QEMU.0,
        MIN_QEMU.1
    );
    Ok(version.to_owned())
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
        assert_eq!(image.qemu, Some(PathBuf::from("/c/qemu")));
        assert_eq!(image.kernel, Some(PathBuf::from("/c/bzImage")));
        assert_eq!(image.kernel_release.as_deref(), Some("7.2.13"));
    }

    #[test]
    fn reads_the_release_from_a_setup_header() {
        let mut head = vec![0u8; 0x400];
        head[0x202..0x206].copy_from_slice(b"HdrS");
        head[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let version = b"7.2.13 (root@b) #1 SMP\0";
        head[0x300..0x300 + version.len()].copy_from_slice(version);
        assert_eq!(release_from_setup(&head).as_deref(), Some("7.2.13"));
        head[0x202] = b'X';
        assert_eq!(release_from_setup(&head), None);
        assert_eq!(release_from_setup(&head[..0x100]), None);
    }

    #[test]
    fn a_script_that_is_not_qemu_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("qemu");
        std::fs::write(&fake, "#!/bin/sh\necho 'QEMU emulator version 9.2.0'\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let error = check_qemu(&fake).unwrap_err().to_string();
        assert!(error.contains("needs 10.1 or newer"), "{error}");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'QEMU emulator version 10.1.2 (Debian)'\n",
        )
        .unwrap();
        assert_eq!(check_qemu(&fake).unwrap(), "10.1.2");
        assert!(check_qemu(&dir.path().join("none")).is_err());
    }

    #[test]
    fn missing_qemu_is_an_error() {
        assert!(parse_build_output("kernel=/x\n").is_err());
    }
}
