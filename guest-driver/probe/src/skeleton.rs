//! The walking-skeleton scenario: the driver bound the device, the guest sees
//! the configured sizes, and data crosses the VRAM BAR both ways.
//!
//! Guest→host: the guest writes a pattern through its mapping of BAR2, then
//! rings the device's self-test doorbell; the device checks its own view of
//! VRAM (the host memfd). Host→guest: the device fills a window of the memfd,
//! the guest reads it through BAR2. Both go through real mappings; the host
//! counts any VRAM access that trapped instead.

use rangefault_abi::pattern;
use rangefault_abi::{self as abi, reg, selftest};
use rangefault_report::{DeviceView, SkeletonResult};

use crate::mapping::Mapping;
use crate::regs::Registers;
use crate::sysfs::PciFunction;
use crate::{Check, ProbeError};

/// Bytes of each round-trip window; `vram` mappings below start at the
/// window's VRAM offset.
const WINDOW: u64 = 1 << 20;

pub fn run() -> Result<SkeletonResult, ProbeError> {
    let function = PciFunction::find()?;
    let (bar2_address, bar2_size) = function.bar(abi::VRAM_BAR)?;
    let regs = Registers::open(&function)?;

    let read = |r: u64| regs.read(r);
    let vram_size = u64::from(read(reg::VRAM_SIZE_LO)) | (u64::from(read(reg::VRAM_SIZE_HI)) << 32);
    let page_shift = read(reg::PAGE_SHIFT);
    let device = DeviceView {
        bdf: function.bdf.clone(),
        driver: function.driver(),
        vram_size,
        page_size: 1u64.checked_shl(page_shift).unwrap_or(0),
        bar2_address,
        bar2_size,
        abi_version: read(reg::VERSION),
    };

    let mut checks = vec![
        Check {
            name: "driver_bound".into(),
            pass: device.driver.as_deref() == Some("rangefault"),
            detail: format!("driver: {:?}", device.driver),
        },
        Check {
            name: "registers".into(),
            pass: read(reg::MAGIC) == abi::MAGIC
                && device.abi_version == abi::ABI_VERSION
                && read(reg::STATUS) & abi::status::ENABLED != 0,
            detail: format!(
                "magic {:#x}, abi {}, status {:#x}",
                read(reg::MAGIC),
                device.abi_version,
                read(reg::STATUS)
            ),
        },
        Check {
            name: "bar2_matches_vram".into(),
            pass: bar2_size == vram_size,
            detail: format!("BAR2 {bar2_size:#x} bytes, register says {vram_size:#x}"),
        },
    ];

    if bar2_size >= 2 * WINDOW {
        // Only the two windows are mapped: sysfs BAR mappings are populated
        // eagerly, and a whole 64 GiB BAR would need 128 MiB of page tables.
        let vram_path = function.resource_path(abi::VRAM_BAR);
        let low = Mapping::open(&vram_path, 0, WINDOW as usize)?;
        checks.push(guest_to_host(&regs, &low, 0, 0x5eed_0001));
        let high_offset = bar2_size - WINDOW;
        let high = Mapping::open(&vram_path, high_offset, WINDOW as usize)?;
        checks.push(host_to_guest(&regs, &high, high_offset, 0x5eed_0002));
    }

    drop(regs);
    checks.push(unbind_and_rebind(&function));
    checks.push(unload_module());

    let pass = checks.iter().all(|c| c.pass);
    Ok(SkeletonResult {
        pass,
        device,
        checks,
    })
}

fn guest_to_host(regs: &Registers, vram: &Mapping, offset: u64, seed: u32) -> Check {
    for at in (offset..offset + WINDOW).step_by(8) {
        vram.write64((at - offset) as usize, pattern::word(seed, at));
    }
    let result = regs.selftest(selftest::CMD_VERIFY, offset, WINDOW as u32, seed);
    let mismatch = regs.selftest_mismatch_at();
    Check {
        name: "guest_to_host".into(),
        pass: result == selftest::RESULT_PASS,
        detail: format!(
            "guest wrote {WINDOW} bytes at VRAM {offset:#x}; device check: result {result}, first mismatch at +{mismatch:#x}"
        ),
    }
}

fn host_to_guest(regs: &Registers, vram: &Mapping, offset: u64, seed: u32) -> Check {
    let result = regs.selftest(selftest::CMD_FILL, offset, WINDOW as u32, seed);
    let mismatch = (offset..offset + WINDOW)
        .step_by(8)
        .find(|&at| vram.read64((at - offset) as usize) != pattern::word(seed, at));
    Check {
        name: "host_to_guest".into(),
        pass: result == selftest::RESULT_PASS && mismatch.is_none(),
        detail: format!(
            "device filled {WINDOW} bytes at VRAM {offset:#x} (result {result}); guest read back: {}",
            match mismatch {
                None => "all match".to_owned(),
                Some(at) => format!("first mismatch at {at:#x}"),
            }
        ),
    }
}

/// Unbinds the driver through sysfs, checks the device was disabled, binds
/// it again and checks it came back enabled.
fn unbind_and_rebind(function: &PciFunction) -> Check {
    let driver_dir = std::path::Path::new("/sys/bus/pci/drivers/rangefault");
    let step = |file: &str| std::fs::write(driver_dir.join(file), &function.bdf);
    let status = || Registers::open(function).map(|regs| regs.read(reg::STATUS));
    let outcome = (|| -> Result<String, String> {
        step("unbind").map_err(|e| format!("unbind: {e}"))?;
        if function.driver().is_some() {
            return Err("still bound after unbind".into());
        }
        let after_unbind = status().map_err(|e| e.to_string())?;
        if after_unbind & abi::status::ENABLED != 0 {
            return Err(format!(
                "device still enabled after unbind (status {after_unbind:#x})"
            ));
        }
        step("bind").map_err(|e| format!("bind: {e}"))?;
        let after_bind = status().map_err(|e| e.to_string())?;
        if function.driver().as_deref() != Some("rangefault")
            || after_bind & abi::status::ENABLED == 0
        {
            return Err(format!(
                "not bound and enabled after bind (status {after_bind:#x})"
            ));
        }
        Ok(format!(
            "unbind disabled the device, bind enabled it again (status {after_bind:#x})"
        ))
    })();
    Check {
        name: "unbind_rebind".into(),
        pass: outcome.is_ok(),
        detail: outcome.unwrap_or_else(|e| e),
    }
}

/// `rmmod rangefault` must succeed and leave no trace of the module.
fn unload_module() -> Check {
    let outcome = std::process::Command::new("rmmod")
        .arg("rangefault")
        .status();
    let gone = !std::path::Path::new("/sys/module/rangefault").exists();
    Check {
        name: "rmmod".into(),
        pass: matches!(outcome, Ok(s) if s.success()) && gone,
        detail: format!("rmmod: {outcome:?}; module gone from sysfs: {gone}"),
    }
}
