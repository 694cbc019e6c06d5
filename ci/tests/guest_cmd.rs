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
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["scenarios"][0]["scenario"], "user", "{report:#}");
    assert_eq!(
        report["scenario"], "guest-cmd: /opt/user/probe",
        "{report:#}"
    );
    assert_eq!(report["pass"], true, "{report:#}");
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
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["guest_exit_code"], 3, "{report:#}");
    assert_eq!(report["pass"], false, "{report:#}");
}
