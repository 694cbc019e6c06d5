//! The run's temporary directories (vfio-user socket, trace, extended initramfs, the nested
//! engine's files): named `rangefault-<pid>-<purpose>-*` in the temp dir, so that what a
//! `vmm` killed with SIGKILL left behind (nothing runs then) is recognised and removed by the
//! next run, while another live `vmm`'s directories are left alone.

use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use tempfile::TempDir;

const PREFIX: &str = "rangefault-";

/// A private (0700) directory for `purpose`, removed when dropped.
pub fn dir(purpose: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-{purpose}-", std::process::id()))
        .permissions(Permissions::from_mode(0o700))
        .tempdir()
        .with_context(|| format!("cannot create a temporary directory for the {purpose}"))
}

/// Removes the directories of `vmm` processes that no longer exist; returns how many.
pub fn sweep_stale() -> usize {
    sweep_stale_in(&std::env::temp_dir())
}

fn sweep_stale_in(temp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir
            && !Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_directories_of_dead_processes_go() {
        let temp = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: this pid cannot be alive.
        let dead = temp.path().join("rangefault-4194305-socket-x");
        let alive = temp
            .path()
            .join(format!("rangefault-{}-socket-y", std::process::id()));
        let other = temp.path().join("rangefault-notapid");
        for dir in [&dead, &alive, &other] {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join("file"), b"x").unwrap();
        }
        assert_eq!(sweep_stale_in(temp.path()), 1);
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
    }

    #[test]
    fn a_directory_is_named_after_this_process_and_goes_when_dropped() {
        let dir = dir("test").unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            name.starts_with(&format!("rangefault-{}-test-", std::process::id())),
            "{name}"
        );
        let path = dir.path().to_owned();
        drop(dir);
        assert!(!path.exists());
    }
}
