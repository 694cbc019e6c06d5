//! `--add HOST[:GUEST]`: user files appended to the guest initramfs, without rebuilding it.
//!
//! Linux unpacks concatenated cpio archives, so the cached initramfs is copied and a small newc
//! archive with the files (and their parent directories) is appended.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Cursor, Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One `--add` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedFile {
    pub host: PathBuf,
    /// Absolute path inside the guest.
    pub guest: String,
}

/// Parses `HOST[:GUEST]`; GUEST defaults to `/bin/<file name>`.
pub fn parse_add(arg: &str) -> Result<AddedFile, String> {
    let (host, guest) = match arg.split_once(':') {
        Some((host, guest)) => (host, guest.to_owned()),
        None => {
            let name = Path::new(arg)
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| format!("'{arg}' has no file name"))?;
            (arg, format!("/bin/{name}"))
        }
    };
    if host.is_empty() {
        return Err(format!("'{arg}': empty host path"));
    }
    if !guest.starts_with('/') || guest.ends_with('/') || guest.split('/').any(|c| c == "..") {
        return Err(format!(
            "'{arg}': the guest path must be absolute, name a file and not contain '..'"
        ));
    }
    Ok(AddedFile {
        host: PathBuf::from(host),
        guest,
    })
}

/// The directories that must exist for `guest` (without the root), outermost first.
fn parents(guest: &str) -> Vec<String> {
    let parts: Vec<&str> = guest.trim_start_matches('/').split('/').collect();
    (1..parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// Writes `base` + an archive of `files` to `out`.
pub fn extend_initramfs(base: &Path, files: &[AddedFile], out: &Path) -> Result<()> {
    let mut entries: Vec<(cpio::NewcBuilder, Box<dyn ReadSeek>)> = Vec::new();
    let mut dirs = BTreeSet::new();
    for (index, file) in files.iter().enumerate() {
        for dir in parents(&file.guest) {
            if dirs.insert(dir.clone()) {
                entries.push((
                    cpio::NewcBuilder::new(&dir).mode(0o040_755).nlink(2),
                    Box::new(Cursor::new(Vec::new())),
                ));
            }
        }
        let handle = File::open(&file.host)
            .with_context(|| format!("--add {}: cannot open", file.host.display()))?;
        let metadata = handle.metadata()?;
        anyhow::ensure!(
            metadata.is_file(),
            "--add {}: not a regular file",
            file.host.display()
        );
        let mode = 0o100_000 | (metadata.permissions().mode() & 0o7777);
        entries.push((
            cpio::NewcBuilder::new(file.guest.trim_start_matches('/'))
                .mode(mode)
                .nlink(1)
                .ino(1_000_000 + index as u32),
            Box::new(handle),
        ));
    }
    let mut output =
        File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::io::copy(
        &mut File::open(base).with_context(|| format!("cannot read {}", base.display()))?,
        &mut output,
    )?;
    cpio::write_cpio(entries.into_iter(), output)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_and_guest_paths() {
        assert_eq!(
            parse_add("/tmp/tool:/opt/t/tool"),
            Ok(AddedFile {
                host: "/tmp/tool".into(),
                guest: "/opt/t/tool".into()
            })
        );
        assert_eq!(parse_add("target/x").unwrap().guest, "/bin/x");
        for bad in [":/x", "/tmp/a:rel", "/tmp/a:/x/../y", "/tmp/a:/dir/"] {
            assert!(parse_add(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn appended_archive_has_dirs_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.cpio");
        std::fs::write(&base, b"BASE").unwrap();
        let tool = dir.path().join("tool");
        std::fs::write(&tool, b"#!/bin/sh\necho hi\n").unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = dir.path().join("out.cpio");
        let files = [AddedFile {
            host: tool,
            guest: "/opt/t/tool".into(),
        }];
        extend_initramfs(&base, &files, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(b"BASE"));
        let mut names = Vec::new();
        let mut rest: &[u8] = &bytes[4..];
        loop {
            let reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            names.push((reader.entry().name().to_owned(), reader.entry().mode()));
            rest = reader.finish().unwrap();
        }
        assert_eq!(
            names,
            [
                ("opt".to_owned(), 0o040_755),
                ("opt/t".to_owned(), 0o040_755),
                ("opt/t/tool".to_owned(), 0o100_755)
            ]
        );
    }

    #[test]
    fn missing_host_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.cpio");
        std::fs::write(&base, b"").unwrap();
        let files = [AddedFile {
            host: dir.path().join("nope"),
            guest: "/bin/nope".into(),
        }];
        let err = extend_initramfs(&base, &files, &dir.path().join("o")).unwrap_err();
        assert!(format!("{err:#}").contains("--add"));
    }
}
