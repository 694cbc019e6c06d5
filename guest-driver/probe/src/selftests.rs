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

fn run_one(name: &'static str, args: &[&str], skips_allowed: bool) -> SelftestRun {
    let command = format!("/bin/{name} {}", args.join(" "));
    let output = Command::new(format!("/bin/{name}")).args(args).output();
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
        run_one("pfnmap", &["--", crate::uapi::DEVICE_PATH], false),
        // mremap_test skips cases whose fixed addresses are taken; those are not ours.
        run_one("mremap_test", &[], true),
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
