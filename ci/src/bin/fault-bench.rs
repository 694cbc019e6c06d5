//! fault-bench: what faulting 1 GiB of VRAM in costs under each strategy, per preferred page
//! size, on the benchmark kernel flavour (no lockdep, no DEBUG_VM).
//!
//! One guest boot per page size runs the `bench` scenario: interleaved rounds (the order of
//! the strategies rotates each round) of map 1 GiB, touch every page once, unmap. From the
//! rounds this writes `bench/fault-latency-<engine>.{json,md}`: per strategy the exact fault
//! and entry counts, the driver's handler time and the user-visible touch time (medians), and
//! the medians of per-round ratios against TTM-style `prefault16` and stock `range`, with their
//! spread. Under QEMU TCG the times are emulated: compare rows and ratios, not with hardware.
//!
//! Usage: `cargo run --release -p rangefault-ci --bin fault-bench -- [--engine qemu|kvm]
//!         [--sizes 64K,4M]`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rangefault_ci::{build_vmm, read_report, repo, run_vmm};
use serde_json::{json, Value};

/// (VRAM, preferred page size) per boot: 1 GiB touched each time (2 GiB VRAM for 1 GiB pages).
const CONFIGS: &[(&str, &str)] = &[
    ("1G", "4K"),
    ("1G", "64K"),
    ("1G", "2M"),
    ("1G", "4M"),
    ("2G", "1G"),
];

/// Strategies the ratios are taken against.
const BASELINES: &[&str] = &["prefault16", "range"];

const USAGE: &str =
    "usage: fault-bench [--engine qemu|kvm] [--sizes 4K,64K,2M,4M,1G] [--from-reports]

Boots one guest per preferred page size on the `bench` kernel flavour (built and cached
on first use, ~10 min on 2 cores) and writes bench/fault-latency-<engine>.{json,md}.
--from-reports boots nothing and rewrites them from the last run's reports in target/.";

struct Options {
    engine: String,
    sizes: Option<Vec<String>>,
    from_reports: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        engine: "qemu".into(),
        sizes: None,
        from_reports: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--engine" => options.engine = args.next().ok_or("--engine needs a value")?,
            "--sizes" => {
                let list = args.next().ok_or("--sizes needs a value")?;
                let sizes: Vec<String> = list.split(',').map(str::to_owned).collect();
                if let Some(bad) = sizes
                    .iter()
                    .find(|s| !CONFIGS.iter().any(|(_, page)| page == s))
                {
                    return Err(format!("--sizes: {bad} is not one of 4K,64K,2M,4M,1G"));
                }
                options.sizes = Some(sizes);
            }
            "--from-reports" => options.from_reports = true,
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn report_path(engine: &str, page: &str) -> PathBuf {
    repo().join(format!("target/bench-{engine}-{page}.json"))
}

fn run_config(vmm: &Path, engine: &str, vram: &str, page: &str) -> Result<Value, String> {
    let args = [
        "--engine",
        engine,
        "--kernel-flavour",
        "bench",
        "--vram",
        vram,
        "--page-size",
        page,
        "--scenario",
        "bench",
        "--timeout",
        "3600",
    ];
    let (status, value) = run_vmm(vmm, &args, &report_path(engine, page))?;
    if !status.success() {
        return Err(format!("vmm {status}; report pass = {}", value["pass"]));
    }
    Ok(value)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn field(cell: &Value, key: &str) -> f64 {
    cell[key].as_f64().unwrap_or(f64::NAN)
}

/// Median, min and max of `values` (rounds of one measurement).
fn spread(mut values: Vec<f64>) -> Value {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    json!({ "median": median(&mut values), "min": min, "max": max, "rounds": values.len() })
}

/// Median and spread of `key` over the rounds of one strategy.
fn summary(cells: &[&Value], key: &str) -> Value {
    spread(cells.iter().map(|c| field(c, key)).collect())
}

/// Per-round `key` of `strategy` over `baseline`, as median and spread.
fn ratio(cells: &[Value], strategy: &str, baseline: &str, key: &str) -> Option<Value> {
    let mut rounds: Vec<u64> = cells.iter().filter_map(|c| c["round"].as_u64()).collect();
    // Every strategy's cell names its round: one ratio per round, not per cell.
    rounds.sort_unstable();
    rounds.dedup();
    let find = |s: &str, r: u64| {
        cells
            .iter()
            .find(|c| c["strategy"] == s && c["round"] == r)
            .map(|c| field(c, key))
    };
    let ratios: Vec<f64> = rounds
        .iter()
        .filter_map(|&r| Some(find(strategy, r)? / find(baseline, r)?))
        .collect();
    (!ratios.is_empty()).then(|| spread(ratios))
}

fn analyse(page: &str, report: &Value) -> Value {
    let cells: Vec<Value> = report["scenarios"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["scenario"] == "bench")
        .cloned()
        .collect();
    let mut strategies: Vec<String> = Vec::new();
    for cell in &cells {
        let name = cell["strategy"].as_str().unwrap_or("?").to_owned();
        if !strategies.contains(&name) {
            strategies.push(name);
        }
    }
    let rows: Vec<Value> = strategies
        .iter()
        .map(|strategy| {
            let mine: Vec<&Value> = cells
                .iter()
                .filter(|c| c["strategy"] == *strategy)
                .collect();
            let mib = field(mine[0], "touched_bytes") / f64::from(1 << 20);
            let per_mib = |key: &str| {
                let mut v: Vec<f64> = mine.iter().map(|c| field(c, key) / mib).collect();
                median(&mut v).round()
            };
            let mut vs = serde_json::Map::new();
            for baseline in BASELINES {
                if baseline == strategy {
                    continue;
                }
                vs.insert(
                    (*baseline).to_owned(),
                    json!({
                        "handler": ratio(&cells, strategy, baseline, "handler_ns"),
                        "touch": ratio(&cells, strategy, baseline, "touch_ns"),
                        "faults": ratio(&cells, strategy, baseline, "faults"),
                    }),
                );
            }
            json!({
                "page_size": page,
                "strategy": strategy,
                "rounds": mine.len(),
                "touched_bytes": mine[0]["touched_bytes"],
                "faults": summary(&mine, "faults"),
                "handler_calls": summary(&mine, "handler_calls"),
                "pte_inserts": mine[0]["pte_inserts"],
                "pmd_inserts": mine[0]["pmd_inserts"],
                "pud_inserts": mine[0]["pud_inserts"],
                "vma_lock_retries": summary(&mine, "vma_lock_retries"),
                "handler_ns": summary(&mine, "handler_ns"),
                "touch_ns": summary(&mine, "touch_ns"),
                "handler_ns_per_mib": per_mib("handler_ns"),
                "touch_ns_per_mib": per_mib("touch_ns"),
                "vs": vs,
            })
        })
        .collect();
    json!(rows)
}

fn fmt_ratio(row: &Value, baseline: &str, key: &str) -> String {
    let r = &row["vs"][baseline][key];
    match (r["median"].as_f64(), r["min"].as_f64(), r["max"].as_f64()) {
        (Some(m), Some(lo), Some(hi)) => format!("{m:.3} ({lo:.3}–{hi:.3})"),
        _ => "–".into(),
    }
}

fn markdown(engine: &str, flavour: &str, rows: &[Value]) -> String {
    let mut md = format!(
        "# Fault cost, engine `{engine}`, kernel flavour `{flavour}`\n\n\
         Written by `fault-bench`. Per preferred page size one guest boot touches 1 GiB once per \
         strategy per round, in rotated order; times are medians over the rounds, ratios are \
         medians of per-round ratios (min–max in brackets). `handler` is the driver's own time \
         in its fault handlers; `touch` is the user-visible time to touch every 4 KiB page once \
         (exception entry, VMA-lock retries and, under TCG, the emulator's TLB fills included). \
         Under QEMU TCG all times are emulated: read the ratios, not the nanoseconds.\n\n\
         | page size | strategy | faults | PTEs / PMDs / PUDs | VMA-lock retries | handler ns/MiB | touch ns/MiB | handler vs prefault16 | touch vs prefault16 | handler vs range | touch vs range |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} / {} | {} | {} | {} | {} | {} | {} | {} |",
            row["page_size"].as_str().unwrap_or("?"),
            row["strategy"].as_str().unwrap_or("?"),
            row["faults"]["median"],
            row["pte_inserts"],
            row["pmd_inserts"],
            row["pud_inserts"],
            row["vma_lock_retries"]["median"],
            row["handler_ns_per_mib"],
            row["touch_ns_per_mib"],
            fmt_ratio(row, "prefault16", "handler"),
            fmt_ratio(row, "prefault16", "touch"),
            fmt_ratio(row, "range", "handler"),
            fmt_ratio(row, "range", "touch"),
        );
    }
    md
}

fn main() {
    let options = match parse_args() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let engine = options.engine.as_str();
    let vmm = if options.from_reports {
        PathBuf::new()
    } else {
        match build_vmm(&repo().join("target")) {
            Ok(vmm) => vmm,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    };

    let configs: Vec<&(&str, &str)> = CONFIGS
        .iter()
        .filter(|(_, page)| {
            options
                .sizes
                .as_ref()
                .is_none_or(|sizes| sizes.iter().any(|s| s == page))
        })
        .collect();
    let started = Instant::now();
    let mut rows = Vec::new();
    let mut versions = Value::Null;
    let mut boots_wall_s = 0.0;
    for (done, (vram, page)) in configs.iter().enumerate() {
        let eta = if done == 0 {
            "unknown (the first boot may build the bench kernel, ~10 min)".to_owned()
        } else {
            let per = started.elapsed().as_secs() / done as u64;
            format!("~{} s", per * (configs.len() - done) as u64)
        };
        eprintln!(
            "fault-bench: [{}/{}] {engine}, VRAM {vram}, preferred page {page}; remaining: {eta}",
            done + 1,
            configs.len()
        );
        let report = if options.from_reports {
            read_report(&report_path(engine, page))
        } else {
            run_config(&vmm, engine, vram, page)
        };
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                eprintln!("error: {vram}/{page}: {e}");
                std::process::exit(1);
            }
        };
        versions = report["versions"].clone();
        boots_wall_s += report["timing"]["wall_s"].as_f64().unwrap_or(0.0);
        rows.extend(
            analyse(page, &report)
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
    }

    let flavour = versions["packages"]["kernel-flavour"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let out_dir = repo().join("bench");
    let _ = std::fs::create_dir_all(&out_dir);
    let results = json!({
        "engine": engine,
        "kernel_flavour": flavour,
        "versions": versions,
        "wall_s": (!options.from_reports).then(|| started.elapsed().as_secs()),
        "boots_wall_s": boots_wall_s.round(),
        "rows": rows,
    });
    let json_path = out_dir.join(format!("fault-latency-{engine}.json"));
    let md_path = out_dir.join(format!("fault-latency-{engine}.md"));
    let md = markdown(engine, &flavour, &rows);
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
        "fault-bench: wrote {} and {} in {} s",
        json_path.display(),
        md_path.display(),
        started.elapsed().as_secs()
    );
}
