//! The kvm-nested run's report: the inner run's report with the outer
//! guest's view added under `nested`, and the outer guest's errors, QEMU
//! warnings and kernel problems added to the top-level lists, so a nested
//! run passes only if both levels were clean.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::nested::{NestedLaunch, NestedRun};
use crate::report::{NestedView, OuterGuest, SourceTree};

/// What the merge needs besides the run: this side's facts.
pub struct OuterFacts<'a> {
    pub engine_reason: &'a str,
    pub scenario: &'a str,
    /// The image's package versions (the inner vmm built nothing).
    pub versions: &'a BTreeMap<String, String>,
    /// The checkout this side built the images from (the inner vmm sees none).
    pub source: &'a SourceTree,
    pub outer_kernel_release: Option<String>,
}

/// The merged report and what the outer level contributed.
pub struct NestedReport {
    pub report: Value,
    pub pass: bool,
    /// Why the outer level failed, if it did (also in `host_errors`).
    pub outer_errors: Vec<String>,
}

pub fn merge(run: &NestedRun, launch: &NestedLaunch, outer: &OuterFacts) -> NestedReport {
    let outer_errors = outer_errors(run, launch);
    let outer_warnings: Vec<&String> = run
        .qemu_stderr
        .iter()
        .filter(|line| line.contains("warning:"))
        .collect();
    let mut report = match &run.inner_report {
        Ok(report) => report.clone(),
        Err(_) => console_report(run, outer),
    };
    if report["versions"]["packages"]
        .as_object()
        .is_none_or(|p| p.is_empty())
    {
        report["versions"]["packages"] = json!(outer.versions);
    }
    report["versions"]["source"] = json!(outer.source);
    append(&mut report, "host_errors", outer_errors.clone());
    append(
        &mut report,
        "engine_warnings",
        outer_warnings
            .iter()
            .map(|l| format!("outer QEMU: {l}"))
            .collect(),
    );
    append(
        &mut report,
        "guest_log_problems",
        run.console.problems.clone(),
    );
    // The outer console carries the inner one too: a problem of either kernel fails the run.
    let pass = report["pass"] == true
        && outer_errors.is_empty()
        && outer_warnings.is_empty()
        && run.console.problems.is_empty();
    report["pass"] = pass.into();
    let nested = NestedView {
        engine: "kvm-nested".into(),
        engine_reason: outer.engine_reason.into(),
        outer: OuterGuest {
            accelerator: "tcg".into(),
            cpu: "max".into(),
            memory: launch.memory,
            cpus: launch.cpus,
            kernel_release: outer.outer_kernel_release.clone(),
            qemu_status: run.qemu_status.map(|s| s.to_string()),
            wall_s: run.wall.as_secs_f64(),
            timed_out: run.timed_out,
        },
        inner_vmm_exit: run.inner_exit,
        inner_report: run.inner_report.is_ok(),
        errors: outer_errors.clone(),
    };
    report["nested"] = json!(nested);
    NestedReport {
        report,
        pass,
        outer_errors,
    }
}

fn outer_errors(run: &NestedRun, launch: &NestedLaunch) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(why) = &run.inner_report {
        errors.push(why.clone());
    }
    if run.timed_out {
        errors.push(format!(
            "the outer guest ran past {} s",
            launch.timeout.as_secs()
        ));
    } else if !run.qemu_status.is_some_and(|s| s.success()) {
        errors.push(format!(
            "the outer QEMU ended with {}",
            run.qemu_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "an unknown status".into())
        ));
    }
    errors
}

/// Without the inner report: what the outer console saw of the inner
/// guest, in the report's shape.
fn console_report(run: &NestedRun, outer: &OuterFacts) -> Value {
    json!({
        "engine": "kvm-nested",
        "engine_reason": outer.engine_reason,
        "versions": {"vmm": env!("CARGO_PKG_VERSION"), "kernel_release": null, "packages": {}},
        "scenario": outer.scenario,
        "scenarios": run.console.results,
        "guest_errors": run.console.errors,
        "guest_exit_code": run.console.exit_code,
        "guest_log_problems": [],
        "host": {},
        "host_checks": {},
        "host_errors": [],
        "engine_warnings": [],
        "timing": {"wall_s": run.wall.as_secs_f64()},
        "timed_out": run.timed_out,
        "pass": false,
    })
}

/// Adds `lines` to the list `report[key]`, each once.
fn append(report: &mut Value, key: &str, lines: Vec<String>) {
    if let Some(list) = report[key].as_array_mut() {
        for line in lines {
            let line = Value::String(line);
            if !list.contains(&line) {
                list.push(line);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::ExitStatus;
    use std::time::Duration;

    use super::*;

    fn launch() -> NestedLaunch<'static> {
        NestedLaunch {
            qemu: Path::new("qemu"),
            outer_kernel: Path::new("bzImage"),
            outer_initramfs: Path::new("outer.cpio"),
            inner_kernel: Path::new("bzImage"),
            inner_initramfs: Path::new("inner.cpio"),
            inner_args: Vec::new(),
            memory: 3 << 30,
            cpus: 2,
            timeout: Duration::from_secs(420),
        }
    }

    /// A clean outer run around `inner_report`.
    fn run(inner_report: Result<Value, String>) -> NestedRun {
        NestedRun {
            console: Default::default(),
            inner_report,
            inner_exit: Some(0),
            qemu_stderr: Vec::new(),
            qemu_status: Some(ExitStatus::from_raw(0)),
            timed_out: false,
            wall: Duration::from_secs(30),
        }
    }

    fn merged(run: &NestedRun) -> NestedReport {
        let versions = BTreeMap::from([("qemu".to_owned(), "11.1".to_owned())]);
        let outer = OuterFacts {
            engine_reason: "asked for",
            scenario: "faults",
            versions: &versions,
            source: &SourceTree {
                commit: Some("abc".into()),
                dirty: Some(false),
            },
            outer_kernel_release: Some("7.2.0".into()),
        };
        merge(run, &launch(), &outer)
    }

    fn inner_passed() -> Value {
        json!({
            "engine": "kvm",
            "versions": {"packages": {}},
            "host_errors": ["inner trouble"],
            "engine_warnings": [],
            "guest_log_problems": [],
            "pass": true,
        })
    }

    #[test]
    fn a_clean_outer_run_keeps_the_inner_verdict_and_adds_its_view() {
        let merged = merged(&run(Ok(inner_passed())));
        assert!(merged.pass && merged.outer_errors.is_empty());
        let report = &merged.report;
        assert_eq!(report["pass"], true);
        assert_eq!(report["engine"], "kvm", "the inner report's");
        assert_eq!(report["versions"]["packages"]["qemu"], "11.1");
        assert_eq!(report["versions"]["source"]["commit"], "abc");
        assert_eq!(report["nested"]["outer"]["memory"], 3u64 << 30);
        assert_eq!(report["nested"]["outer"]["kernel_release"], "7.2.0");
        assert_eq!(report["nested"]["inner_report"], true);
        assert_eq!(report["host_errors"], json!(["inner trouble"]));
    }

    #[test]
    fn outer_trouble_fails_the_run_and_lands_in_the_top_level_lists() {
        let mut failed = run(Ok(inner_passed()));
        failed.qemu_status = Some(ExitStatus::from_raw(1 << 8));
        failed.qemu_stderr = vec!["qemu: warning: something".into()];
        failed.console.problems = vec!["WARNING: outer kernel".into()];
        let merged = merged(&failed);
        assert!(!merged.pass);
        assert_eq!(merged.report["pass"], false);
        let errors = merged.report["host_errors"].as_array().unwrap();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1]
            .as_str()
            .unwrap()
            .starts_with("the outer QEMU ended with"));
        assert_eq!(
            merged.report["engine_warnings"],
            json!(["outer QEMU: qemu: warning: something"])
        );
        assert_eq!(
            merged.report["guest_log_problems"],
            json!(["WARNING: outer kernel"])
        );
        // A timeout is reported as such, not as QEMU's status.
        let mut late = run(Ok(inner_passed()));
        late.timed_out = true;
        assert_eq!(merged_errors(&late), ["the outer guest ran past 420 s"]);
    }

    fn merged_errors(run: &NestedRun) -> Vec<String> {
        merged(run).outer_errors
    }

    #[test]
    fn without_an_inner_report_the_outer_console_stands_in() {
        let mut lost = run(Err("no inner report on ttyS1".into()));
        lost.console.exit_code = Some(0);
        let merged = merged(&lost);
        assert!(!merged.pass);
        let report = &merged.report;
        assert_eq!(report["engine"], "kvm-nested");
        assert_eq!(report["scenario"], "faults");
        assert_eq!(report["guest_exit_code"], 0);
        assert_eq!(report["host_errors"], json!(["no inner report on ttyS1"]));
        assert_eq!(report["nested"]["inner_report"], false);
    }
}
