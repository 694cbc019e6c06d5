//! `vmm run --trace`: a traced boot gives a Chrome JSON trace that a parser accepts (the checks
//! below are the format's rules Perfetto relies on), with exactly the faults the driver counted,
//! per level, a PNG, and the summary in the report.

mod common;

use std::collections::HashMap;

use serde_json::Value;

use common::BootReport;
use rangefault_report::ScenarioResult;

/// Checks `trace` against the trace-event format as Perfetto's JSON importer reads it: an
/// object with a `traceEvents` array; every event with a phase, a name and integer pid/tid;
/// complete events (`X`) with a timestamp and a non-negative duration, nested properly per
/// thread; metadata (`M`) naming processes and threads.
fn assert_chrome_trace(trace: &Value) {
    let events = trace["traceEvents"]
        .as_array()
        .expect("traceEvents is an array");
    assert!(!events.is_empty(), "an empty trace");
    let mut slices: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for event in events {
        let ph = event["ph"]
            .as_str()
            .unwrap_or_else(|| panic!("no ph: {event}"));
        assert!(event["name"].is_string(), "no name: {event}");
        assert!(event["pid"].is_u64(), "pid not an integer: {event}");
        match ph {
            "M" => {
                assert!(
                    ["process_name", "thread_name"].contains(&event["name"].as_str().unwrap()),
                    "{event}"
                );
                assert!(event["args"]["name"].is_string(), "{event}");
            }
            "X" => {
                let ts = event["ts"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("no ts: {event}"));
                let dur = event["dur"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("no dur: {event}"));
                assert!(ts >= 0.0 && dur >= 0.0, "{event}");
                let tid = event["tid"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no tid: {event}"));
                slices
                    .entry((event["pid"].as_u64().unwrap(), tid))
                    .or_default()
                    .push((ts, ts + dur));
            }
            other => panic!("unexpected phase {other}: {event}"),
        }
    }
    // On one track, a slice that starts inside another ends inside it too.
    for (track, mut spans) in slices {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<f64> = Vec::new();
        for (start, end) in spans {
            while open.last().is_some_and(|&outer_end| outer_end <= start) {
                open.pop();
            }
            if let Some(&outer_end) = open.last() {
                assert!(
                    end <= outer_end,
                    "track {track:?}: [{start}, {end}] overlaps a slice ending at {outer_end}"
                );
            }
            open.push(end);
        }
    }
}

fn events_of<'a>(trace: &'a Value, cat: &str) -> Vec<&'a Value> {
    trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["cat"] == cat)
        .collect()
}

fn phase_names(trace: &Value) -> Vec<&str> {
    events_of(trace, "phase")
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

/// Boots `args` with `--trace` and checks the trace against the touch-all result's counters.
fn traced_touch_all(name: &str, args: &[&str]) -> (BootReport, Value) {
    let trace_path = common::repo().join(format!("target/ci/trace-{name}.json"));
    let png = trace_path.with_extension("png");
    for stale in [&trace_path, &png] {
        let _ = std::fs::remove_file(stale);
    }
    let mut all = args.to_vec();
    let trace_arg = trace_path.to_str().unwrap();
    all.extend(["--trace", trace_arg]);
    let (code, report) = common::boot(name, &all);
    assert_eq!(code, 0, "{report}");
    assert!(report.pass, "{report}");
    assert!(report.guest_log_problems.is_empty(), "{report}");

    let trace: Value =
        serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).expect("the trace is JSON");
    assert_chrome_trace(&trace);
    let result = &report.results(ScenarioResult::touch_all)[0].cost;
    let faults = events_of(&trace, "fault");
    assert!(result.faults > 0, "{report}");
    assert_eq!(faults.len() as u64, result.faults, "{report}");
    for (level, counted) in [
        ("pte", result.faults_pte),
        ("pmd", result.faults_pmd),
        ("pud", result.faults_pud),
    ] {
        let traced = faults
            .iter()
            .filter(|f| f["args"]["level"] == level)
            .count() as u64;
        assert_eq!(traced, counted, "{level} faults");
    }
    let handler_calls = events_of(&trace, "handler").len() as u64;
    assert_eq!(handler_calls, result.handler_calls);
    let inserted = |key: &str| {
        faults
            .iter()
            .map(|f| f["args"][key].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!(inserted("ptes"), result.pte_inserts);
    assert_eq!(inserted("pmds"), result.pmd_inserts);
    // Every fault of touch-all comes from a user access: each has its exception.
    assert!(
        faults.iter().all(|f| f["args"]["exception"].is_object()),
        "{report}"
    );

    let trace_report = report.trace.as_ref().expect("a trace in the report");
    let summary = &trace_report.summary;
    assert_eq!(summary.faults, result.faults, "{report}");
    assert_eq!(summary.lost_events, 0, "{report}");
    assert_eq!(summary.incomplete_calls, 0, "{report}");
    let plot = trace_report.plot.as_deref().expect("a plot");
    let png_bytes = std::fs::read(plot).unwrap();
    assert!(png_bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert_eq!(plot, png);
    (report, trace)
}

#[test]
fn a_traced_touch_all_holds_every_fault_the_driver_counted() {
    if !common::can_boot() {
        return;
    }
    let (report, trace) = traced_touch_all(
        "touch-all-64k",
        &[
            "--vram",
            "64M",
            "--page-size",
            "64K",
            "--scenario",
            "touch-all",
        ],
    );
    let pte = &report.trace.as_ref().expect("a trace").summary.by_level["pte"];
    assert_eq!(pte.faults, 1024, "{pte:#?}");
    let handler = pte.handler_ns.expect("handler times");
    for ns in [handler.p50, handler.p90, handler.p99, handler.max] {
        assert!(ns > 0, "{pte:#?}");
    }
    assert_eq!(
        phase_names(&trace),
        ["scenario touch-all", "map", "touch", "check"]
    );
}

#[test]
fn a_traced_guest_cmd_shows_its_huge_faults() {
    if !common::can_boot() {
        return;
    }
    let (report, trace) = traced_touch_all(
        "guest-cmd-2m",
        &[
            "--vram",
            "256M",
            "--page-size",
            "2M",
            "--guest-cmd",
            "rangefault-probe touch-all",
        ],
    );
    let summary = &report.trace.as_ref().expect("a trace").summary;
    assert_eq!(summary.by_level["pmd"].faults, 128, "{summary:#?}");
    assert_eq!(phase_names(&trace), ["guest-cmd", "map", "touch", "check"]);
}
