//! The run's first step: the kernel, initramfs and QEMU it boots, from the
//! user or the image build, with the user's `--add` files in a copy of the
//! initramfs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use tempfile::TempDir;

use super::RunArgs;
use crate::engine::Engine;
use crate::guest_files;
use crate::images::{self, GuestImage, Parts};
use crate::{interrupt, scratch};

/// What the run boots.
pub struct RunImage {
    /// What the image build reported (QEMU, versions, the nested initramfs).
    pub image: GuestImage,
    pub kernel: PathBuf,
    /// The initramfs to boot: the user's or the cached one, or the copy
    /// with `--add` files in `_added`.
    pub initramfs: PathBuf,
    /// Holds the extended initramfs for as long as the run.
    _added: Option<TempDir>,
}

impl RunImage {
    pub fn prepare(args: &RunArgs, engine: Engine) -> Result<RunImage> {
        for path in [&args.kernel, &args.initramfs, &args.qemu]
            .into_iter()
            .flatten()
        {
            anyhow::ensure!(path.is_file(), "{} does not exist", path.display());
        }
        let image = guest_image(args, engine)?;
        if let Some(signal) = interrupt::received() {
            anyhow::bail!(
                "{} received while the guest image was built",
                interrupt::name(signal)
            );
        }
        let kernel = args
            .kernel
            .clone()
            .or(image.kernel.clone())
            .context("no kernel")?;
        let initramfs = args
            .initramfs
            .clone()
            .or(image.initramfs.clone())
            .context("no initramfs")?;
        if args.add.is_empty() {
            return Ok(RunImage {
                image,
                kernel,
                initramfs,
                _added: None,
            });
        }
        let added = scratch::dir("initramfs")?;
        let extended = added.path().join("initramfs.cpio");
        guest_files::extend_initramfs(&initramfs, &args.add, &extended)?;
        Ok(RunImage {
            image,
            kernel,
            initramfs: extended,
            _added: Some(added),
        })
    }
}

/// The kernel, initramfs and QEMU this run uses: what the user named, the
/// rest from the image build. Nothing is built when the user brought all the
/// engine needs (kernel and initramfs for kvm, and QEMU for qemu), so a
/// static vmm runs anywhere.
fn guest_image(args: &RunArgs, engine: Engine) -> Result<GuestImage> {
    let brought = args.kernel.is_some() && args.initramfs.is_some();
    let mut image = match engine {
        Engine::Kvm if brought => GuestImage::default(),
        Engine::Qemu if brought && args.qemu.is_some() => GuestImage::default(),
        Engine::Qemu if brought => images::build(Parts::Qemu, args.kernel_flavour)?,
        Engine::KvmNested => images::build(Parts::Nested, args.kernel_flavour)?,
        _ => images::build(Parts::All, args.kernel_flavour)?,
    };
    if let Some(kernel) = &args.kernel {
        image.kernel_release = images::kernel_release(kernel);
    }
    if let Some(qemu) = &args.qemu {
        let version = images::check_qemu(qemu)?;
        image.versions.insert("qemu (--qemu)".into(), version);
        image.qemu = Some(qemu.clone());
    }
    Ok(image)
}
