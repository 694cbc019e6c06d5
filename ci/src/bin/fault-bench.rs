//! fault-bench: boots one guest per preferred page size, runs the `faults` scenario (every
//! strategy), and writes what one fault costs to `bench/fault-latency-<engine>.{json,md}`.
//!
//! The latency is the driver's own timing of its fault handler (Rust code carries no ftrace
//! hooks), per level inserted; under QEMU TCG it measures emulated time, so compare strategies
//! and sizes with each other, not with hardware.
//!
//! Usage: `cargo run --release -p rangefault-ci --bin fault-bench -- [--engine qemu|kvm]`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// (VRAM, preferred page size) per run: VRAM >= 2 GiB for 1 GiB pages.
const CONFIGS: &[(&str, &str)] = &[
    ("256M", "4K"),
    ("256M", "64K"),
    ("1G", "2M"),
    ("1G", "4M"),
    ("2G", "1G"),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run_config(vmm: &Path, engine: &str, vram: &str, page: &str) -> Result<Value, String> {
    let report = repo().join(format!("target/bench-{engine}-{page}.json"));
    let status = Command::new(vmm)
        .args([
            "run",
            "--engine",
            engine,
            "--vram",
            vram,
            "--page-size",
            page,
        ])
        .args(["--scenario", "faults", "--report"])
        .arg(&report)
        .status()
        .map_err(|e| format!("cannot run vmm: {e}"))?;
    let text = std::fs::read_to_string(&report).map_err(|e| format!("no report: {e}"))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("vmm {status}; report pass = {}", value["pass"]));
    }
    Ok(value)
}

/// The level a strategy's faults were served at, for the table.
fn main_level(result: &Value) -> &'static str {
    if result["faults_pud"].as_u64() > Some(0) {
        "pud"
    } else if result["faults_pmd"].as_u64() > Some(0) {
        "pmd"
    } else {
        "pte"
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let engine = args
        .iter()
        .position(|a| a == "--engine")
        .and_then(|i| args.get(i + 1))
        .map_or("qemu", String::as_str)
        .to_owned();
    let vmm = repo().join("target/release/vmm");
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "-p", "vmm"])
        .current_dir(repo())
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        eprintln!("error: building vmm failed");
        std::process::exit(1);
    }

    let mut rows = Vec::new();
    let mut versions = Value::Null;
    for (vram, page) in CONFIGS {
        eprintln!("fault-bench: {engine}, VRAM {vram}, preferred page {page}");
        let report = match run_config(&vmm, &engine, vram, page) {
            Ok(report) => report,
            Err(e) => {
                eprintln!("error: {vram}/{page}: {e}");
                std::process::exit(1);
            }
        };
        versions = report["versions"].clone();
        for result in report["scenarios"].as_array().into_iter().flatten() {
            if result["scenario"] != "faults" {
                continue;
            }
            let level = main_level(result);
            let latency = &result["fault_latency"][level];
            let touched = result["touched_bytes"].as_u64().unwrap_or(0);
            let faults = result["faults"].as_u64().unwrap_or(0);
            let total_ns = latency["mean_ns"].as_u64().unwrap_or(0) * faults;
            rows.push(json!({
                "page_size": page,
                "strategy": result["strategy"],
                "touched_bytes": touched,
                "faults": faults,
                "level": level,
                "mean_ns": latency["mean_ns"],
                "p50_ns_le": latency["p50_ns_le"],
                "p99_ns_le": latency["p99_ns_le"],
                "max_ns": latency["max_ns"],
                "fault_ns_per_mib": (total_ns as f64 / (touched as f64 / (1 << 20) as f64)).round(),
                "host_check": result["host_check"]["pass"],
            }));
        }
    }

    let out_dir = repo().join("bench");
    let _ = std::fs::create_dir_all(&out_dir);
    let results = json!({ "engine": engine, "versions": versions, "rows": rows });
    let json_path = out_dir.join(format!("fault-latency-{engine}.json"));
    let md_path = out_dir.join(format!("fault-latency-{engine}.md"));
    let mut md = format!(
        "# Fault latency, engine `{engine}`\n\nDriver-measured time inside the fault handler, by the level inserted; `fault ns/MiB` is the handler time spent per MiB mapped. Written by `fault-bench`.\n\n| page size | strategy | faults | level | mean ns | p50 ≤ ns | p99 ≤ ns | max ns | fault ns/MiB |\n|---|---|---|---|---|---|---|---|---|\n"
    );
    for row in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row["page_size"].as_str().unwrap_or("?"),
            row["strategy"].as_str().unwrap_or("?"),
            row["faults"],
            row["level"].as_str().unwrap_or("?"),
            row["mean_ns"],
            row["p50_ns_le"],
            row["p99_ns_le"],
            row["max_ns"],
            row["fault_ns_per_mib"]
        );
    }
    let written = std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&results).unwrap_or_default() + "\n",
    )
    .and_then(|()| std::fs::write(&md_path, &md));
    if let Err(e) = written {
        eprintln!("error: cannot write results: {e}");
        std::process::exit(1);
    }
    print!("{md}");
    eprintln!(
        "fault-bench: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
}
