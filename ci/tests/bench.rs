//! fault-bench: the results it builds from reports (synthetic ones here), its command line end
//! to end over a stand-in vmm, and the smoke benchmark on real guests, twice, which under
//! icount must count the same instructions both times (to within 0.1 %).

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use rangefault_abi::touch::TouchOrder;
use rangefault_ci::bench::model::{format_size, predict, Subject, GIB, MIB};
use rangefault_ci::bench::{self, cells::LEVELS};
use serde_json::{json, Value};

const FAULT_BENCH: &str = env!("CARGO_BIN_EXE_fault-bench");

/// The level a fault of `window` bytes is counted at.
fn level(window: u64) -> &'static str {
    match window {
        w if w >= GIB => "pud",
        w if w >= 2 * MIB => "pmd",
        _ => "pte",
    }
}

/// A cell as the probe writes it, with the faults the model predicts and made-up times that
/// depend on the subject, the size and the round.
fn cell(page_size: u64, subject: Subject, order: TouchOrder, round: u64, len: u64) -> Value {
    let faults = predict(subject, order, page_size, len);
    let per_fault = 1000 + 50 * subject.rank() as u64;
    let touch_ns = 1_000_000 + faults * per_fault + round * 777;
    let driver = subject.is_strategy().then(|| {
        let window = match subject.window(page_size, len) {
            Some(rangefault_abi::uapi::FaultWindow::Aligned(w)) => w,
            _ => 4096,
        };
        let at = level(window);
        let mut counts = json!({ "faults_pte": 0, "faults_pmd": 0, "faults_pud": 0 });
        counts[format!("faults_{at}")] = json!(faults);
        let mut latency = json!({});
        for l in LEVELS {
            let n = if l == at { faults } else { 0 };
            latency[l] = json!({
                "count": n, "sum_ns": n * per_fault, "mean_ns": per_fault, "p50_ns_le": 1024,
                "p99_ns_le": 2048, "max_ns": if n > 0 { 1500 } else { 0 },
                "histogram": if n > 0 { json!([[1024, n - n / 10], [2048, n / 10]]) } else { json!([]) },
            });
        }
        json!({
            "faults": faults, "faults_pte": counts["faults_pte"], "faults_pmd": counts["faults_pmd"],
            "faults_pud": counts["faults_pud"], "fallbacks": 0, "handler_calls": faults,
            "pte_inserts": if at == "pte" { len / 4096 } else { 0 },
            "pmd_inserts": if at == "pmd" { len / (2 * MIB) } else { 0 },
            "pud_inserts": if at == "pud" { len / GIB } else { 0 },
            "handler_ns": faults * per_fault, "fault_latency": latency,
            "host_check": { "pass": true, "status": "pass", "pages": 16384, "present": 16384,
                "leaves": { "4K": 0, "2M": 32, "1G": 0 }, "smaller_pages": 0, "memtype": "WC",
                "first_mismatch": null, "seq": 1 },
        })
    });
    json!({
        "scenario": "bench", "pass": true, "round": round, "subject": subject.name(),
        "kind": subject.kind(), "order": order.name(),
        "bdf": if subject == Subject::VfioPci { "0000:00:04.0" } else { "0000:00:03.0" },
        "page_size": page_size, "mapped_bytes": len, "touches": order.touches(len),
        // The process sees the driver's faults and a few of its own.
        "faults": if subject.is_strategy() { faults + 3 } else { faults },
        "map_ns": if subject == Subject::EagerRemap { 5_000_000 } else { 20_000 },
        "touch_ns": touch_ns, "unmap_ns": 9000 + round, "vm_pte_bytes": 4096,
        "driver": driver, "vma_lock_retries": null,
    })
}

/// The commit the made-up reports say their boots ran at.
const MEASURED_AT: &str = "e3e6bae0c0ffee00000000000000000000000001";

/// A report of `rounds` rounds of every subject in `orders` at `page_size`.
fn report(page_size: u64, orders: &[TouchOrder], rounds: u64, len: u64) -> Value {
    let mut cells = Vec::new();
    for round in 0..rounds {
        for &order in orders {
            for subject in Subject::all() {
                cells.push(cell(page_size, subject, order, round, len));
            }
        }
    }
    json!({
        "engine": "qemu", "pass": true,
        "versions": {
            "packages": { "kernel-flavour": "bench" },
            "source": { "commit": MEASURED_AT, "dirty": false },
        },
        "timing": { "guest_clock": "icount", "wall_s": 12.5 },
        "devices": [
            { "bdf": "0000:00:03.0", "vram_size": len, "page_size": page_size, "driver": "rangefault" },
            { "bdf": "0000:00:04.0", "vram_size": len, "page_size": page_size, "driver": "vfio-pci" },
        ],
        "scenarios": cells,
    })
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// The well-formedness an SVG viewer needs first.
fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text.trim_start();
    assert!(
        start.starts_with("<svg") || start.starts_with("<?xml"),
        "{}: {}",
        path.display(),
        &text[..text.len().min(200)]
    );
    assert!(text.trim_end().ends_with("</svg>"), "{}", path.display());
    // Every opened <text> is closed, and there is at least a title.
    assert_eq!(
        text.matches("<text").count(),
        text.matches("</text>").count(),
        "{}",
        path.display()
    );
    assert!(text.contains("<text"), "{}", path.display());
}

/// The files every run writes (`instructions-per-mib.svg` under icount).
const OUTPUTS: &[&str] = &[
    "results.json",
    "results.csv",
    "results.md",
    "touch.svg",
    "latency-pte.svg",
    "latency-pmd.svg",
    "latency-pud.svg",
    "instructions-per-mib.svg",
];

fn check_outputs(out: &Path, cells: usize) -> Value {
    for name in OUTPUTS {
        assert!(
            out.join(name).is_file(),
            "{name} missing in {}",
            out.display()
        );
    }
    for entry in std::fs::read_dir(out).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "svg") {
            assert_svg(&path);
        }
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert_eq!(header.split(',').count(), bench::results::CSV_COLUMNS.len());
    assert_eq!(lines.count(), cells, "one CSV row per cell:\n{csv}");
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["cells"].as_array().map(Vec::len), Some(cells));
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("## Headline"), "{md}");
    results
}

#[test]
fn results_from_synthetic_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let orders = [
        TouchOrder::Sequential,
        TouchOrder::Random,
        TouchOrder::Strided,
    ];
    let sizes = [64 << 10, 2 * MIB, GIB];
    for &p in &sizes {
        let len = if p >= GIB { GIB } else { 64 * MIB };
        write_json(
            &out.join(format!("report-{}.json", format_size(p))),
            &report(p, &orders, 3, len),
        );
    }
    // A plot of an order an earlier run had goes.
    std::fs::write(out.join("touch-reverse.svg"), "stale").unwrap();
    let results = bench::rebuild_from_reports(out, None).unwrap();
    assert_eq!(results.problems, Vec::<String>::new());
    let cells = sizes.len() * orders.len() * 3 * Subject::all().count();
    let json = check_outputs(out, cells);
    assert_eq!(json["pass"], true);
    assert_eq!(json["meta"]["clock"], "icount");
    assert_eq!(json["meta"]["time_unit"], "instructions");
    assert_eq!(json["meta"]["rounds"], 3);
    assert_eq!(json["meta"]["sizes"], json!(["64K", "2M", "1G"]));
    // Stamped with the commit the reports were made at, not with this checkout's.
    assert_eq!(json["meta"]["git_commit"], MEASURED_AT);
    assert_eq!(json["meta"]["git_dirty"], false);
    for order in ["random", "strided"] {
        assert!(out.join(format!("touch-{order}.svg")).is_file());
    }
    assert!(!out.join("touch-reverse.svg").exists());
    // A summary per (size, subject, order), with the model's faults.
    let summaries = json["summaries"].as_array().unwrap();
    assert_eq!(summaries.len(), cells / 3);
    let range_2m = summaries
        .iter()
        .find(|s| {
            s["page_size"] == 2 * MIB && s["subject"] == "range" && s["order"] == "sequential"
        })
        .unwrap();
    assert_eq!(range_2m["predicted_faults"], 32);
    assert_eq!(range_2m["driver_faults"]["median"], 32.0);
    assert_eq!(range_2m["faults"]["median"], 35.0);
    // The headline: sequential and random, the fixed comparisons and eager-remap's.
    let headline = json["headline"].as_array().unwrap();
    let row = |what: &str, order: &str| {
        headline
            .iter()
            .find(|h| h["what"] == what && h["order"] == order)
            .unwrap_or_else(|| panic!("{what} {order}: {headline:#?}"))
    };
    let vfio = row("range vs vfio-pci", "sequential");
    assert_eq!(vfio["page_size_name"], "2M");
    assert!(vfio["ratio"]["median"].as_f64().unwrap() > 0.0);
    assert!(vfio["met"].is_boolean());
    assert!(row("range-mm vs ttm16", "random")["ratio"].is_object());
    // page ÷ range at 2M: 16384 faults against 32 at ~1000 instructions each.
    assert_eq!(row("page ÷ range", "sequential")["met"], false);
    assert!(row("eager-remap (mmap included) vs vfio-pci", "sequential")["ratio"].is_object());
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    for text in [
        "## Order `sequential`",
        "## Order `strided`",
        "instructions",
        "range (stock) vs ttm16",
    ] {
        assert!(md.contains(text), "{text}: {md}");
    }
    // The 1G boot's strategies fault at the PUD level, so the PUD plot has series.
    let pud = std::fs::read_to_string(out.join("latency-pud.svg")).unwrap();
    assert!(pud.contains("range 1G"), "{pud}");
    assert!(md.contains("commit `e3e6bae0c0ff`"), "{md}");
    // Only the sizes asked for.
    let some = bench::rebuild_from_reports(out, Some(&[2 * MIB])).unwrap();
    assert_eq!(some.meta.sizes, ["2M"]);
}

#[test]
fn reports_of_different_commits_are_a_problem_and_get_no_stamp() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    for (p, commit) in [(64 << 10, json!(MEASURED_AT)), (2 * MIB, json!("0badc0de"))] {
        let mut r = report(p, &[TouchOrder::Sequential], 1, 64 * MIB);
        r["versions"]["source"]["commit"] = commit;
        write_json(&out.join(format!("report-{}.json", format_size(p))), &r);
    }
    let results = bench::rebuild_from_reports(out, None).unwrap();
    assert!(
        results
            .problems
            .iter()
            .any(|p| p.contains("the reports were made at different commits")),
        "{:#?}",
        results.problems
    );
    assert_eq!(results.meta.git_commit, None);
}

#[test]
fn a_cell_the_model_disagrees_with_fails_the_run_but_the_results_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let mut r = report(2 * MIB, &[TouchOrder::Sequential], 2, 64 * MIB);
    let cells = r["scenarios"].as_array_mut().unwrap();
    let n = cells.len();
    let bad = cells
        .iter_mut()
        .position(|c| c["subject"] == "range-mm" && c["round"] == 1)
        .unwrap();
    cells[bad]["driver"]["faults"] = json!(33);
    let vfio = cells
        .iter()
        .position(|c| c["subject"] == "vfio-pci" && c["round"] == 0)
        .unwrap();
    cells[vfio]["faults"] = json!(31);
    write_json(&out.join("report-2M.json"), &r);
    let results = bench::rebuild_from_reports(out, None).unwrap();
    assert_eq!(results.problems.len(), 2, "{:#?}", results.problems);
    assert!(results.problems.iter().any(|p| p.contains(&format!(
        "report-2M.json cell {bad} (2M range-mm sequential round 1): driver.faults 33, the model predicts 32"
    ))));
    assert!(results
        .problems
        .iter()
        .any(|p| p.contains("faults (ru_minflt) 31, the model predicts 32")));
    let json = check_outputs(out, n);
    assert_eq!(json["pass"], false);
    assert_eq!(
        json["cells"][bad]["problems"].as_array().map(Vec::len),
        Some(1)
    );

    // The binary says so and exits 1.
    let output = Command::new(FAULT_BENCH)
        .args(["--from-reports", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("driver.faults 33, the model predicts 32"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems"), "{stderr}");
}

#[test]
fn an_unknown_subject_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = report(2 * MIB, &[TouchOrder::Sequential], 2, 64 * MIB);
    for c in r["scenarios"].as_array_mut().unwrap() {
        if c["subject"] == "page" {
            c["subject"] = json!("dma-buf");
        }
    }
    write_json(&dir.path().join("report-2M.json"), &r);
    let results = bench::rebuild_from_reports(dir.path(), None).unwrap();
    assert!(!results.pass());
    assert!(results
        .problems
        .iter()
        .all(|p| p.contains("unknown subject 'dma-buf'")));
    assert_eq!(results.problems.len(), 2);
}

#[test]
fn bad_command_lines_exit_2() {
    for args in [
        &["--sizes", "5K"][..],
        &["--rounds", "1"],
        &["--orders", "sideways"],
        &["--subjects", "dma-buf"],
        &["--engine", "kvm", "--clock", "icount"],
        &["--smoke", "--sizes", "2M"],
        &["--from-reports", "--rounds", "3"],
        &["--frobnicate"],
    ] {
        let output = Command::new(FAULT_BENCH).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
    let e = Command::new(FAULT_BENCH)
        .args(["--engine", "kvm", "--clock", "icount"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&e.stderr).contains("--clock icount needs --engine qemu"));
    let help = Command::new(FAULT_BENCH).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--engine",
        "--sizes",
        "--rounds",
        "--orders",
        "--subjects",
        "--clock",
        "--kernel-flavour",
        "--smoke",
        "--out",
        "--from-reports",
    ] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
    // Reports that are not there: exit 1, naming the folder.
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(FAULT_BENCH)
        .args(["--from-reports", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no report-<size>.json"));
}

/// A stand-in vmm: records its arguments, prints the console in `DIR/console-<page>.txt` and
/// copies `DIR/report-<page>.json` to its --report (exit 3 where there is none).
fn fake_vmm(dir: &Path) -> std::path::PathBuf {
    let script = dir.join("vmm");
    let d = dir.display();
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
printf '%s\n' "$@" >> "{d}/args.txt"
report=""; page=""
while [ $# -gt 0 ]; do
    case "$1" in
        --report) report="$2"; shift ;;
        --device) case "$2" in *driver=*) ;; *) page="${{2##*page-size=}}" ;; esac; shift ;;
    esac
    shift
done
echo "vmm: qemu says hello" >&2
[ -f "{d}/console-$page.txt" ] && cat "{d}/console-$page.txt"
[ -f "{d}/report-$page.json" ] || exit 3
cp "{d}/report-$page.json" "$report"
"#
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn console(report: &Value) -> String {
    let cells = report["scenarios"].as_array().unwrap();
    let mut text = format!(
        "[    1.0] booting\nrangefault-bench: plan {} cells\n",
        cells.len()
    );
    for (i, c) in cells.iter().enumerate() {
        text += &format!(
            "rangefault-bench: cell {}/{} {} {} round {}\nRANGEFAULT-RESULT {c}\n",
            i + 1,
            cells.len(),
            c["subject"].as_str().unwrap(),
            c["order"].as_str().unwrap(),
            c["round"]
        );
    }
    text
}

fn run_bench(args: &[&str], vmm: &Path, out: &Path) -> Output {
    Command::new(FAULT_BENCH)
        .args(args)
        .arg("--vmm")
        .arg(vmm)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_live_run_over_a_stand_in_vmm() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&fake).unwrap();
    let vmm = fake_vmm(&fake);
    let orders = [TouchOrder::Sequential, TouchOrder::Random];
    let subjects: Vec<Subject> = ["prefault16", "range", "vfio-pci"]
        .iter()
        .map(|s| Subject::from_name(s).unwrap())
        .collect();
    for p in [64 << 10, 2 * MIB] {
        let mut cells = Vec::new();
        for round in 0..2 {
            for order in orders {
                for &s in &subjects {
                    cells.push(cell(p, s, order, round, GIB));
                }
            }
        }
        let mut r = report(p, &[], 0, GIB);
        r["scenarios"] = json!(cells);
        let name = format_size(p);
        write_json(&fake.join(format!("report-{name}.json")), &r);
        std::fs::write(fake.join(format!("console-{name}.txt")), console(&r)).unwrap();
    }
    let args = [
        "--sizes",
        "64K,2M",
        "--rounds",
        "2",
        "--orders",
        "sequential,random",
        "--subjects",
        "prefault16,range,vfio-pci",
    ];
    let output = run_bench(&args, &vmm, &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    // Progress lines with an ETA, vmm's stderr passed on, the console itself not.
    assert!(
        stderr.contains("fault-bench: boot 1/2: cell 12/12 vfio-pci random round 1; ETA"),
        "{stderr}"
    );
    assert!(
        stderr.contains("boot 2/2: the guest plans 12 cells"),
        "{stderr}"
    );
    assert!(stderr.contains("vmm: qemu says hello"), "{stderr}");
    assert!(!stderr.contains("RANGEFAULT-RESULT"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("| range vs vfio-pci | sequential | 2M |"),
        "{stdout}"
    );
    let json = check_outputs(&out, 24);
    assert_eq!(json["pass"], true, "{:#}", json["problems"]);
    assert_eq!(json["meta"]["kernel_flavour"], "bench");
    // The console went to the log beside the results; the boot record names the command.
    let log = std::fs::read_to_string(out.join("console-2M.log")).unwrap();
    assert!(log.contains("[    1.0] booting") && log.contains("[stderr] vmm: qemu says hello"));
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("boot-64K.json")).unwrap()).unwrap();
    assert_eq!(record["planned_cells"], 12);
    assert_eq!(json["meta"]["vmm_args"]["64K"], record["vmm_args"]);
    // What vmm was asked for.
    let recorded = std::fs::read_to_string(fake.join("args.txt")).unwrap();
    let expected = format!(
        "run\n--engine\nqemu\n--kernel-flavour\nbench\n--icount\n--cpus\n1\n--device\nvram=1G,page-size=2M\n\
         --device\nvram=1G,page-size=2M,driver=vfio-pci\n--scenario\nbench\n--cmdline\n\
         rangefault.bench_rounds=2 rangefault.bench_orders=sequential,random \
         rangefault.bench_subjects=prefault16,range,vfio-pci\n--timeout\n{}\n--report\n{}\n",
        900 + 120 * 12,
        out.join("report-2M.json").display()
    );
    assert!(recorded.contains(&expected), "{recorded}");
    // The reports stayed: --from-reports rebuilds the same cells.
    let again = Command::new(FAULT_BENCH)
        .args(["--from-reports", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let rebuilt = check_outputs(&out, 24);
    assert_eq!(rebuilt["meta"]["from_reports"], true);
    assert_eq!(rebuilt["meta"]["vmm_args"], json["meta"]["vmm_args"]);
    assert_eq!(rebuilt["summaries"], json["summaries"]);

    // A boot that fails (vmm exits 3, no report) and one the guest did not finish: exit 1,
    // and the results of what there is are still written.
    std::fs::remove_file(fake.join("report-64K.json")).unwrap();
    let mut r: Value =
        serde_json::from_str(&std::fs::read_to_string(fake.join("report-2M.json")).unwrap())
            .unwrap();
    r["scenarios"].as_array_mut().unwrap().pop();
    write_json(&fake.join("report-2M.json"), &r);
    let output = run_bench(&args, &vmm, &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("report-64K.json (64K): no report"),
        "{stderr}"
    );
    assert!(stderr.contains("vmm exit status: 3"), "{stderr}");
    assert!(
        stderr.contains("no cell for vfio-pci random round 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the guest planned 12 cells, the report has 11"),
        "{stderr}"
    );
    let json = check_outputs(&out, 11);
    assert_eq!(json["pass"], false);
}

/// The touch loop's instruction count of every (subject, order, round), and the faults.
fn instruction_counts(results: &Value) -> BTreeMap<String, (u64, u64, u64)> {
    results["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                format!(
                    "{} {} round {}",
                    c["subject"].as_str().unwrap_or("?"),
                    c["order"].as_str().unwrap_or("?"),
                    c["round"]
                ),
                (
                    c["touch_ns"].as_u64().unwrap_or(0),
                    c["map_ns"].as_u64().unwrap_or(0),
                    c["faults"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

/// Most a touch loop's instruction count may move between two icount runs: measured ≤ 0.04 %
/// (a first round's one-time work, and host-timed events the guest cannot keep out).
const ICOUNT_TOLERANCE: f64 = 0.001;

/// `fault-bench --smoke` (what CI runs) boots the real guest twice under icount, side by side:
/// both runs pass every check, write every result, take the same faults, and count the same
/// instructions in every touch loop to within [`ICOUNT_TOLERANCE`].
#[test]
fn smoke_twice_counts_the_same_instructions() {
    if !common::can_boot() {
        return;
    }
    let vmm = common::vmm_binary();
    let runs: Vec<Value> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2)
            .map(|i| {
                scope.spawn(move || {
                    let out = common::repo().join(format!("target/ci/bench-smoke-{i}"));
                    let _ = std::fs::remove_dir_all(&out);
                    (i, out.clone(), run_bench(&["--smoke"], vmm, &out))
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| {
                let (i, out, output) = run.join().unwrap();
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert_eq!(
                    output.status.code(),
                    Some(0),
                    "smoke run {i} failed (console: {}):\n{stderr}",
                    out.join("console-2M.log").display()
                );
                assert!(out.join("report-2M.json").is_file());
                // 3 rounds of prefault16, range, vfio-pci, sequential.
                let results = check_outputs(&out, 9);
                assert_eq!(results["pass"], true, "{:#}", results["problems"]);
                assert_eq!(results["meta"]["clock"], "icount");
                assert_eq!(results["meta"]["kernel_flavour"], "debug");
                results
            })
            .collect()
    });
    let (a, b) = (instruction_counts(&runs[0]), instruction_counts(&runs[1]));
    assert_eq!(a.len(), 9, "{a:#?}");
    let mut worst = 0.0f64;
    let differences: Vec<String> = a
        .iter()
        .filter(|(k, (touch, _, faults))| {
            let Some((touch_b, _, faults_b)) = b.get(*k) else {
                return true;
            };
            let moved = touch.abs_diff(*touch_b) as f64 / *touch.max(touch_b) as f64;
            worst = worst.max(moved);
            faults != faults_b || moved > ICOUNT_TOLERANCE
        })
        .map(|(k, v)| format!("{k}: (touch, map, faults) {v:?} then {:?}", b.get(k)))
        .collect();
    assert!(
        differences.is_empty(),
        "icount runs differ by more than {ICOUNT_TOLERANCE}:\n{}",
        differences.join("\n")
    );
    eprintln!(
        "icount: touch loops of the two runs within {:.4} %",
        worst * 100.0
    );
}
