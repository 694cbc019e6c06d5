//! `mm-selftests`: the kernel's own mm selftests that reach the paths the project's kernel
//! patches and driver touch, built from the guest kernel's tree into the image: `pfnmap`
//! against `/dev/rangefault0` (the file it maps read-only, shared) and `mremap_test`.

use std::process::Command;

use rangefault_report::{SelftestRun, SelftestsResult, Totals};

use crate::ProbeError;

/// Parses the `# Totals:` line of kselftest output.
pub fn parse_totals(output: &str) -> Option<Totals> {
    let line = output.lines().rev().find(|l| l.starts_with("# Totals:"))?;
    let mut totals = Totals::default();
    for field in line.trim_start_matches("# Totals:").split_whitespace() {
        let (key, value) = field.split_once(':')?;
        let value = value.parse().ok()?;
        match key {
            "pass" => totals.pass = value,
            "fail" => totals.fail = value,
            "xfail" => totals.xfail = value,
            "xpass" => totals.xpass = value,
            "skip" => totals.skip = value,
            "error" => totals.error = value,
            _ => {}
        }
    }
    Some(totals)
}

/// How a selftest's address space is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Randomized,
    /// `personality(ADDR_NO_RANDOMIZE)`: the same addresses on every boot.
    Fixed,
}

/// Runs `f` with `persona` added to this process's personality(2) (what `setarch -R` does),
/// then restores it.
fn with_persona<T>(
    persona: libc::c_ulong,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    // SAFETY: personality(2) only reads or sets a flag word of this task; 0xffffffff queries.
    let old = unsafe { libc::personality(0xffff_ffff) };
    if old == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::personality(old as libc::c_ulong | persona) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    let result = f();
    // SAFETY: as above; back to the persona we found.
    unsafe { libc::personality(old as libc::c_ulong) };
    result
}

fn run_one(name: &'static str, args: &[&str], skips_allowed: bool, layout: Layout) -> SelftestRun {
    let command = format!("/bin/{name} {}", args.join(" "));
    let output = match layout {
        Layout::Randomized => Command::new(format!("/bin/{name}")).args(args).output(),
        // The child inherits the persona; the probe's own address space is laid out already.
        Layout::Fixed => with_persona(libc::ADDR_NO_RANDOMIZE as libc::c_ulong, || {
            Command::new(format!("/bin/{name}")).args(args).output()
        }),
    };
    let (stdout, exit_code) = match &output {
        Ok(o) => (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            o.status.code(),
        ),
        Err(e) => (format!("cannot run: {e}"), None),
    };
    // Echo it to the console: the test's own words are what a developer wants to read.
    for line in stdout.lines() {
        println!("[{name}] {line}");
    }
    let totals = parse_totals(&stdout);
    let problems: Vec<String> = stdout
        .lines()
        .filter(|l| l.starts_with("not ok") || l.contains("# SKIP"))
        .map(str::to_owned)
        .collect();
    let pass = exit_code == Some(0)
        && totals.as_ref().is_some_and(|t| {
            t.pass > 0 && t.fail == 0 && t.error == 0 && (skips_allowed || t.skip == 0)
        });
    SelftestRun {
        name: name.into(),
        command,
        pass,
        exit_code,
        totals,
        problems,
    }
}

pub fn run() -> Result<SelftestsResult, ProbeError> {
    let runs = vec![
        // Every pfnmap test must run: a skip means it could not map our node.
        run_one(
            "pfnmap",
            &["--", crate::uapi::DEVICE_PATH],
            false,
            Layout::Randomized,
        ),
        // mremap_test skips cases whose fixed addresses are taken; those are not ours. It runs
        // without ASLR: it checks that its destination is free but not the preamble it maps
        // right below it with MAP_FIXED_NOREPLACE (mremap_test.c, remap_region), so under ASLR
        // a mapping that happens to lie there now and then failed a boot with "Failed to map dest
        // preamble region: File exists". A fixed layout makes the outcome the same every boot.
        run_one("mremap_test", &[], true, Layout::Fixed),
    ];
    Ok(SelftestsResult {
        pass: runs.iter().all(|r| r.pass),
        runs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_layout_reaches_the_child_and_is_undone() {
        // SAFETY: a query of this task's persona.
        let before = unsafe { libc::personality(0xffff_ffff) };
        let out = with_persona(libc::ADDR_NO_RANDOMIZE as libc::c_ulong, || {
            Command::new("cat").arg("/proc/self/personality").output()
        })
        .unwrap();
        let child = u64::from_str_radix(String::from_utf8_lossy(&out.stdout).trim(), 16).unwrap();
        assert_ne!(child & libc::ADDR_NO_RANDOMIZE as u64, 0, "{child:#x}");
        // SAFETY: as above.
        assert_eq!(unsafe { libc::personality(0xffff_ffff) }, before);
    }

    #[test]
    fn totals_line_is_parsed() {
        let out = "TAP version 13\n1..2\nok 1 a\nok 2 b # SKIP no\n# Totals: pass:1 fail:0 xfail:0 xpass:0 skip:1 error:0\n";
        assert_eq!(
            parse_totals(out),
            Some(Totals {
                pass: 1,
                skip: 1,
                ..Totals::default()
            })
        );
        assert_eq!(parse_totals("1..0 # SKIP Cannot mmap\n"), None);
    }
}
