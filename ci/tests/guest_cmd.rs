//! `--add` / `--guest-cmd`: user files reach the guest without rebuilding the image, the
//! command runs after the driver is loaded, its result lines land in the report and its exit
//! status is vmm's.

mod common;

use common::{boot, can_boot, repo};

fn write_script(name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = repo().join(format!("target/ci/{name}"));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("target/ci");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn user_program_runs_and_reports() {
    if !can_boot() {
        return;
    }
    let script = write_script(
        "user-probe.sh",
        r#"test -c /dev/rangefault0 || exit 9
echo 'RANGEFAULT-RESULT {"scenario":"user","pass":true,"device":"/dev/rangefault0"}'"#,
    );
    let add = format!("{}:/opt/user/probe", script.display());
    let (code, report) = boot(
        "guest-cmd-ok",
        &[
            "--engine",
            "qemu",
            "--add",
            &add,
            "--guest-cmd",
            "/opt/user/probe",
        ],
    );
    assert_eq!(code, 0, "{report}");
    // A user program's own line, kept as written beside the probe's typed ones.
    let user = &report.scenarios[0];
    assert_eq!(user.name(), Some("user"), "{report}");
    assert!(user.probe().is_none(), "{report}");
    assert_eq!(user.pass(), Some(true), "{report}");
    assert_eq!(report.scenario, "guest-cmd: /opt/user/probe", "{report}");
    assert!(report.pass, "{report}");
}

#[test]
fn user_program_exit_status_is_vmms() {
    if !can_boot() {
        return;
    }
    let script = write_script("user-fails.sh", "exit 3");
    let add = script.display().to_string();
    let (code, report) = boot(
        "guest-cmd-fails",
        &[
            "--engine",
            "qemu",
            "--add",
            &add,
            "--guest-cmd",
            "user-fails.sh",
        ],
    );
    assert_eq!(code, 3, "{report}");
    assert_eq!(report.guest_exit_code, Some(3), "{report}");
    assert!(!report.pass, "{report}");
}

/// A guest program that rebinds the driver (as one handing the device to vfio-pci and back
/// would) does not stretch `boot_to_bound_s`: that is the first bind; rebinds are counted.
#[test]
fn rebinding_keeps_boot_to_bound_the_first_bind() {
    if !can_boot() {
        return;
    }
    let (code, report) = boot(
        "guest-cmd-rebind",
        &[
            "--engine",
            "qemu",
            "--guest-cmd",
            "sleep 2; d=/sys/bus/pci/drivers/rangefault; b=$(ls $d | grep :); \
             echo $b > $d/unbind && echo $b > $d/bind",
        ],
    );
    assert_eq!(code, 0, "{report}");
    let timing = &report.timing;
    assert_eq!(timing.binds, 2, "{report}");
    let first = timing.boot_to_bound_s.expect("boot_to_bound_s");
    let again = *timing.bind_after_s.get(1).expect("second bind");
    assert!(first < again - 1.5, "{report}");
    assert_eq!(timing.bind_after_s[0], first, "{report}");
}
