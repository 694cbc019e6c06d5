//! `fault-bench`: what faulting VRAM in costs under each strategy and its peers, per preferred
//! page size, with every fault count checked exactly against the model.
//!
//! One guest boot per page size runs the probe's `bench` scenario (two devices: one for our
//! driver, one for vfio-pci), which measures cells of (subject, touch order, round): map,
//! touch, unmap. This module builds the `vmm run` command lines, streams each boot's console
//! for progress ([`progress`]), checks every cell ([`cells`], against [`model`]), and writes
//! `results.json`, `results.csv` ([`results`]), `results.md` ([`markdown`]) and SVG plots
//! ([`plots`]) into the output folder, beside the boots' reports (`report-<size>.json`), which
//! `--from-reports` reads again without booting.

pub mod cells;
pub mod markdown;
pub mod model;
pub mod plots;
pub mod progress;
pub mod results;

/// What the unit tests' made-up cells share.
#[cfg(test)]
mod tests_support {
    /// A level without faults, as the probe writes it.
    pub fn no_latency() -> serde_json::Value {
        serde_json::json!({ "count": 0, "sum_ns": 0, "mean_ns": 0, "p50_ns_le": 0,
            "p99_ns_le": 0, "max_ns": 0, "histogram": [] })
    }
}

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Parser, ValueEnum};
use rangefault_abi::touch::TouchOrder;
use serde_json::{json, Value};
use vmm::report::SourceTree;

use cells::{Boot, Checked, Expect, Predictions};
use model::{format_size, parse_size, Subject, GIB, MIB};
use results::{Meta, Results, Units};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// QEMU TCG, the device over vfio-user.
    Qemu,
    /// rangefault's own KVM VMM.
    Kvm,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Qemu => "qemu",
            Engine::Kvm => "kvm",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Clock {
    /// QEMU's instruction counter: one guest ns per instruction, whatever the host's load.
    Icount,
    /// The host's time.
    Real,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::Icount => "icount",
            Clock::Real => "real",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Flavour {
    /// The patched kernel without lockdep, DEBUG_ATOMIC_SLEEP and DEBUG_VM.
    Bench,
    /// The boot tests' kernel.
    Debug,
}

impl Flavour {
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Bench => "bench",
            Flavour::Debug => "debug",
        }
    }
}

/// The default preferred page sizes: one boot each.
pub const DEFAULT_SIZES: [u64; 5] = [4 << 10, 64 << 10, 2 * MIB, 4 * MIB, GIB];

fn page_size_arg(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    if !size.is_power_of_two() || !(4 << 10..=GIB).contains(&size) {
        return Err(format!(
            "{text}: a preferred page size is a power of two in 4K ..= 1G"
        ));
    }
    Ok(size)
}

fn order_arg(text: &str) -> Result<TouchOrder, String> {
    TouchOrder::from_name(text).ok_or_else(|| {
        let all: Vec<&str> = TouchOrder::ALL.iter().map(|o| o.name()).collect();
        format!("'{text}' is not a touch order ({})", all.join(", "))
    })
}

fn subject_arg(text: &str) -> Result<Subject, String> {
    Subject::from_name(text).ok_or_else(|| {
        let all: Vec<&str> = Subject::all().map(Subject::name).collect();
        format!("'{text}' is not a subject ({})", all.join(", "))
    })
}

/// fault-bench: per preferred page size one guest boot runs the probe's `bench` scenario and
/// every cell's faults are checked exactly against the model; writes results.{json,csv,md} and
/// SVG plots into --out, beside the boots' reports.
#[derive(Debug, Parser)]
#[command(name = "fault-bench", version)]
pub struct Cli {
    /// The engine that runs the guests.
    #[arg(long, value_enum, default_value_t = Engine::Qemu)]
    pub engine: Engine,
    /// Preferred page sizes, one boot each (1 GiB of 1 GiB VRAM mapped; 2 GiB VRAM for 1G)
    /// [default: 4K,64K,2M,4M,1G; with --from-reports: every report in --out].
    #[arg(long, value_delimiter = ',', value_parser = page_size_arg)]
    pub sizes: Option<Vec<u64>>,
    /// Rounds per boot, at least 2 (ratios pair the cells of one round) [default: 5].
    #[arg(long, value_parser = clap::value_parser!(u64).range(2..=1000))]
    pub rounds: Option<u64>,
    /// Touch orders [default: all: sequential,reverse,random,strided].
    #[arg(long, value_delimiter = ',', value_parser = order_arg)]
    pub orders: Option<Vec<TouchOrder>>,
    /// Subjects the guest measures: strategies (page, prefault16, ttm16, range, range-mm, ...)
    /// and peers (vfio-pci, eager-remap) [default: all the guest serves].
    #[arg(long, value_delimiter = ',', value_parser = subject_arg)]
    pub subjects: Option<Vec<Subject>>,
    /// The guest clock: icount (instruction counts, immune to host load; qemu only) or real
    /// [default: icount for qemu, real for kvm].
    #[arg(long, value_enum)]
    pub clock: Option<Clock>,
    /// The guest kernel [default: bench; with --smoke: debug].
    #[arg(long = "kernel-flavour", value_enum)]
    pub kernel_flavour: Option<Flavour>,
    /// One small configuration (what CI runs): VRAM 64M with 2M pages, subjects
    /// prefault16,range,vfio-pci, sequential order, 3 rounds, the debug kernel; --out defaults
    /// to target/bench-smoke/.
    #[arg(long, conflicts_with_all = ["sizes", "rounds", "orders", "subjects", "kernel_flavour"])]
    pub smoke: bool,
    /// Where the reports and results go [default: bench/<engine>/ in the repository].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Boot nothing: rebuild the results from the reports saved in --out.
    #[arg(
        long = "from-reports",
        conflicts_with_all = ["rounds", "orders", "subjects", "clock", "kernel_flavour", "vmm", "timeout"]
    )]
    pub from_reports: bool,
    /// Run this vmm binary instead of building one.
    #[arg(long, value_name = "PATH")]
    pub vmm: Option<PathBuf>,
    /// vmm's --timeout per boot, in seconds [default: from the number of cells].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: Option<u64>,
    /// Boots run side by side. Under icount each QEMU runs one host thread and its counts do
    /// not depend on the host's load, so a 2-core host runs two at once [default: 2 with
    /// --clock icount, else 1: wall-clock times would slow each other].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub jobs: Option<u64>,
}

/// A checked command line.
#[derive(Clone, Debug)]
pub struct Config {
    pub engine: Engine,
    pub clock: Clock,
    pub flavour: Flavour,
    pub sizes: Vec<u64>,
    /// Whether --sizes was given (with --from-reports: otherwise every report found).
    pub sizes_given: bool,
    pub rounds: u64,
    pub orders: Vec<TouchOrder>,
    /// The subject filter, when given.
    pub subjects: Option<Vec<Subject>>,
    pub smoke: bool,
    pub out: PathBuf,
    pub from_reports: bool,
    pub vmm: Option<PathBuf>,
    pub timeout: Option<u64>,
    pub jobs: usize,
}

/// Drops repeats, keeping the first of each.
fn unique<T: PartialEq + Copy>(items: &mut Vec<T>) {
    let mut kept: Vec<T> = Vec::new();
    items.retain(|x| {
        let new = !kept.contains(x);
        kept.push(*x);
        new
    });
}

/// The smoke configuration's VRAM.
pub const SMOKE_VRAM: u64 = 64 * MIB;

impl Config {
    pub fn from_cli(cli: Cli) -> Result<Config, String> {
        let clock = match (cli.engine, cli.clock) {
            (Engine::Kvm, Some(Clock::Icount)) => {
                return Err(
                    "--clock icount needs --engine qemu: KVM runs the guest on the real \
                            CPU, whose clock counts time"
                        .into(),
                )
            }
            (Engine::Kvm, _) => Clock::Real,
            (Engine::Qemu, clock) => clock.unwrap_or(Clock::Icount),
        };
        let smoke = cli.smoke;
        let mut sizes = match (&cli.sizes, smoke) {
            (_, true) => vec![2 * MIB],
            (Some(sizes), false) => sizes.clone(),
            (None, false) => DEFAULT_SIZES.to_vec(),
        };
        sizes.sort_unstable();
        sizes.dedup();
        let mut orders = match (&cli.orders, smoke) {
            (_, true) => vec![TouchOrder::Sequential],
            (Some(orders), false) => orders.clone(),
            (None, false) => TouchOrder::ALL.to_vec(),
        };
        unique(&mut orders);
        let subjects = if smoke {
            Some(
                ["prefault16", "range", "vfio-pci"]
                    .iter()
                    .filter_map(|n| Subject::from_name(n))
                    .collect(),
            )
        } else {
            cli.subjects.map(|mut s| {
                unique(&mut s);
                s
            })
        };
        let out = cli.out.unwrap_or_else(|| {
            if smoke {
                crate::repo().join("target/bench-smoke")
            } else {
                crate::repo().join("bench").join(cli.engine.name())
            }
        });
        Ok(Config {
            engine: cli.engine,
            clock,
            flavour: cli.kernel_flavour.unwrap_or(if smoke {
                Flavour::Debug
            } else {
                Flavour::Bench
            }),
            sizes_given: cli.sizes.is_some() || smoke,
            sizes,
            rounds: cli.rounds.unwrap_or(if smoke { 3 } else { 5 }),
            orders,
            subjects,
            smoke,
            out,
            from_reports: cli.from_reports,
            vmm: cli.vmm,
            timeout: cli.timeout,
            jobs: cli
                .jobs
                .map_or(if clock == Clock::Icount { 2 } else { 1 }, |j| j as usize),
        })
    }

    /// The VRAM of both devices of the boot for `page_size`.
    pub fn vram(&self, page_size: u64) -> u64 {
        if self.smoke {
            SMOKE_VRAM
        } else if page_size >= GIB {
            2 * GIB
        } else {
            GIB
        }
    }

    /// Whether the boot needs the device vfio-pci takes: it needs QEMU's virtual IOMMU, so
    /// the kvm engine's guests have no vfio-pci peer.
    pub fn wants_vfio(&self) -> bool {
        self.engine == Engine::Qemu
            && self
                .subjects
                .as_ref()
                .is_none_or(|s| s.contains(&Subject::VfioPci))
    }

    /// The probe's parameters on the kernel command line.
    pub fn cmdline(&self) -> String {
        let orders: Vec<&str> = self.orders.iter().map(|o| o.name()).collect();
        let mut line = format!(
            "rangefault.bench_rounds={} rangefault.bench_orders={}",
            self.rounds,
            orders.join(",")
        );
        if let Some(subjects) = &self.subjects {
            let names: Vec<&str> = subjects.iter().map(|s| s.name()).collect();
            line += &format!(" rangefault.bench_subjects={}", names.join(","));
        }
        line
    }

    /// Cells one boot measures at most (all subjects the model knows when there is no filter).
    pub fn cells_per_boot(&self) -> u64 {
        let subjects = self
            .subjects
            .as_ref()
            .map_or(Subject::all().count(), Vec::len);
        self.rounds * self.orders.len() as u64 * subjects as u64
    }

    /// vmm's --timeout: boot and setup, then two minutes a cell (a cell of `page` touching
    /// 1 GiB under TCG takes seconds; the debug kernel and icount are slower).
    pub fn timeout_s(&self) -> u64 {
        self.timeout
            .unwrap_or_else(|| 900 + 120 * self.cells_per_boot())
            .min(86_400)
    }

    /// `vmm` arguments (after the binary) for the boot of `page_size`.
    pub fn vmm_args(&self, page_size: u64, report: &Path) -> Vec<String> {
        let device = format!(
            "vram={},page-size={}",
            format_size(self.vram(page_size)),
            format_size(page_size)
        );
        let mut args: Vec<String> = vec![
            "run".into(),
            "--engine".into(),
            self.engine.name().into(),
            "--kernel-flavour".into(),
            self.flavour.name().into(),
        ];
        if self.clock == Clock::Icount {
            // One vCPU: the bench is one thread, and a second vCPU's housekeeping (RCU, kworkers)
            // lands in the touch loops at host-timed moments, which moved counts by ~0.4 %.
            args.extend(["--icount".into(), "--cpus".into(), "1".into()]);
        }
        args.extend(["--device".into(), device.clone()]);
        if self.wants_vfio() {
            args.extend(["--device".into(), format!("{device},driver=vfio-pci")]);
        }
        args.extend([
            "--scenario".into(),
            "bench".into(),
            "--cmdline".into(),
            self.cmdline(),
            "--timeout".into(),
            self.timeout_s().to_string(),
            "--report".into(),
            report.display().to_string(),
        ]);
        args
    }

    fn expect(&self, planned: Option<usize>) -> Expect {
        Expect {
            rounds: Some(self.rounds),
            orders: Some(self.orders.clone()),
            subjects: self.subjects.clone(),
            planned,
        }
    }
}

/// `report-2M.json`.
pub fn report_name(page_size: u64) -> String {
    format!("report-{}.json", format_size(page_size))
}

/// What a boot recorded beside its report: `boot-2M.json`.
pub fn boot_record_name(page_size: u64) -> String {
    format!("boot-{}.json", format_size(page_size))
}

/// The report's kernel flavour, where it names one.
fn report_flavour(report: &Value) -> Option<&str> {
    report["versions"]["packages"]["kernel-flavour"]
        .as_str()
        .or_else(|| report["kernel"]["flavour"].as_str())
}

/// The report's guest clock (`real` where the report predates the field).
fn report_clock(report: &Value) -> &str {
    report["timing"]["guest_clock"].as_str().unwrap_or("real")
}

/// Reads the saved reports in `out` (those of `sizes`, or every `report-*.json`) and checks
/// them; no expectations beyond a full grid.
pub fn load_reports(out: &Path, sizes: Option<&[u64]>) -> Result<Vec<Boot>, String> {
    let sizes: Vec<u64> = match sizes {
        Some(sizes) => sizes.to_vec(),
        None => {
            let entries = std::fs::read_dir(out)
                .map_err(|e| format!("cannot read {}: {e}", out.display()))?;
            let mut found: Vec<u64> = entries
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    parse_size(name.strip_prefix("report-")?.strip_suffix(".json")?).ok()
                })
                .collect();
            found.sort_unstable();
            found
        }
    };
    if sizes.is_empty() {
        return Err(format!("no report-<size>.json in {}", out.display()));
    }
    let mut predictions = Predictions::default();
    let mut boots = Vec::new();
    for page_size in sizes {
        let name = report_name(page_size);
        let report = crate::read_report(&out.join(&name)).map_err(|e| format!("{name}: {e}"))?;
        boots.push(Boot::check(
            &name,
            page_size,
            report,
            &Expect::default(),
            &mut predictions,
        ));
    }
    Ok(boots)
}

/// The results of `boots`: the cells, their problems, and the meta data the reports and the
/// boot records (`boot-<size>.json`) in `out` give. `config` is the live run's (None: from
/// reports).
pub fn assemble(
    boots: &[Boot],
    out: &Path,
    config: Option<&Config>,
    wall_s: Option<f64>,
) -> Results {
    let mut problems: Vec<String> = boots.iter().flat_map(Boot::all_problems).collect();
    let reports: Vec<&Value> = boots
        .iter()
        .map(|b| &b.report)
        .filter(|r| r.is_object())
        .collect();
    let distinct = |values: Vec<String>| {
        let mut v = values;
        v.sort();
        v.dedup();
        v
    };
    let engines = distinct(
        reports
            .iter()
            .filter_map(|r| r["engine"].as_str().map(str::to_owned))
            .collect(),
    );
    let clocks = distinct(reports.iter().map(|r| report_clock(r).to_owned()).collect());
    let flavours = distinct(
        reports
            .iter()
            .filter_map(|r| report_flavour(r).map(str::to_owned))
            .collect(),
    );
    let (engine, clock, flavour) = match config {
        Some(c) => {
            for (what, found, wanted) in [
                ("engine", &engines, c.engine.name()),
                ("guest clock", &clocks, c.clock.name()),
                ("kernel flavour", &flavours, c.flavour.name()),
            ] {
                if found.iter().any(|f| f != wanted) {
                    problems.push(format!(
                        "the reports say {what} {}, the run asked for {wanted}",
                        found.join(", ")
                    ));
                }
            }
            (
                c.engine.name().to_owned(),
                c.clock.name().to_owned(),
                c.flavour.name().to_owned(),
            )
        }
        None => {
            for (what, found) in [("engines", &engines), ("guest clocks", &clocks)] {
                if found.len() > 1 {
                    problems.push(format!("the reports mix {what}: {}", found.join(", ")));
                }
            }
            let first = |v: &Vec<String>, default: &str| {
                v.first().cloned().unwrap_or_else(|| default.to_owned())
            };
            (
                first(&engines, "unknown"),
                first(&clocks, "real"),
                if flavours.is_empty() {
                    "unknown".to_owned()
                } else {
                    flavours.join("+")
                },
            )
        }
    };
    // The commit the boots built their images from, as each report recorded it (a run rebuilt
    // from saved reports is stamped with theirs, not with today's checkout).
    let mut sources: Vec<SourceTree> = reports
        .iter()
        .map(|r| serde_json::from_value(r["versions"]["source"].clone()).unwrap_or_default())
        .collect();
    sources.sort();
    sources.dedup();
    if sources.len() > 1 {
        let named: Vec<String> = sources
            .iter()
            .map(|s| match (&s.commit, s.dirty) {
                (Some(c), Some(true)) => format!("{c} (with local changes)"),
                (Some(c), _) => c.clone(),
                (None, _) => "none recorded".into(),
            })
            .collect();
        problems.push(format!(
            "the reports were made at different commits: {}",
            named.join(", ")
        ));
    }
    let (git_commit, git_dirty) = match sources.as_slice() {
        [one] => (one.commit.clone(), one.dirty),
        _ => (None, None),
    };
    let cells: Vec<Checked> = boots.iter().flat_map(|b| b.cells.iter().cloned()).collect();
    let mut vmm_args = BTreeMap::new();
    for boot in boots {
        let record = std::fs::read_to_string(out.join(boot_record_name(boot.page_size)))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        if let Some(args) = record.as_ref().and_then(|r| r["vmm_args"].as_array()) {
            let args = args
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect();
            vmm_args.insert(format_size(boot.page_size), args);
        }
    }
    let units = Units::new(&clock, &engine);
    let measured_orders: Vec<&'static str> = TouchOrder::ALL
        .into_iter()
        .filter(|o| cells.iter().any(|c| c.order == Some(*o)))
        .map(TouchOrder::name)
        .collect();
    let mut subjects: Vec<Subject> = cells.iter().filter_map(|c| c.subject).collect();
    subjects.sort_by_key(|s| s.rank());
    subjects.dedup();
    let meta = Meta {
        engine,
        kernel_flavour: flavour,
        clock,
        time_unit: units.time(),
        rounds: match config {
            Some(c) => c.rounds,
            None => cells.iter().map(|c| c.cell.round + 1).max().unwrap_or(0),
        },
        sizes: boots.iter().map(|b| format_size(b.page_size)).collect(),
        orders: measured_orders,
        subjects: subjects.iter().map(|s| s.name().to_owned()).collect(),
        git_commit,
        git_dirty,
        vmm_args,
        from_reports: config.is_none(),
        wall_s,
    };
    Results::new(meta, cells, problems)
}

/// Writes results.{json,csv,md} and the plots into `out`; returns what it wrote.
pub fn write_outputs(results: &Results, out: &Path) -> Result<Vec<PathBuf>, String> {
    let write = |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok::<PathBuf, String>(path)
    };
    let json = serde_json::to_string_pretty(&results.to_json())
        .map_err(|e| format!("results.json: {e}"))?;
    let mut written = vec![
        write("results.json", json + "\n")?,
        write("results.csv", results::csv(results))?,
        write("results.md", markdown::render(results))?,
    ];
    written.extend(plots::write_all(results, out)?);
    // Plots an earlier run wrote that this one does not (an order or a clock it had).
    if let Ok(entries) = std::fs::read_dir(out) {
        for path in entries.filter_map(|e| Some(e.ok()?.path())) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ours = name.ends_with(".svg")
                && (name.starts_with("touch")
                    || name.starts_with("latency-")
                    || name.ends_with("-per-mib.svg"));
            if ours && !written.contains(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(written)
}

/// `--from-reports`: the results of the reports saved in `out`, written there.
pub fn rebuild_from_reports(out: &Path, sizes: Option<&[u64]>) -> Result<Results, String> {
    let boots = load_reports(out, sizes)?;
    let results = assemble(&boots, out, None, None);
    write_outputs(&results, out)?;
    Ok(results)
}

/// Boots one guest per page size, `config.jobs` at a time, and checks each boot as it ends.
fn run_boots(config: &Config, vmm: &Path) -> Vec<Boot> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let boots = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..config.jobs.min(config.sizes.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&page_size) = config.sizes.get(i) else {
                    break;
                };
                let boot = run_boot(config, vmm, i, page_size);
                let mut boots = boots.lock().unwrap_or_else(|e| e.into_inner());
                boots.push(boot);
                boots.sort_by_key(|b| b.page_size);
                // The results so far, so a long run can be read while it goes on.
                let partial = assemble(&boots, &config.out, Some(config), None);
                if let Err(e) = write_outputs(&partial, &config.out) {
                    eprintln!("fault-bench: {e}");
                }
            });
        }
    });
    boots.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Boot `i` of the run, for `page_size`: its console logged, its report checked.
fn run_boot(config: &Config, vmm: &Path, i: usize, page_size: u64) -> Boot {
    let mut predictions = Predictions::default();
    let name = report_name(page_size);
    let report_path = config.out.join(&name);
    let _ = std::fs::remove_file(&report_path);
    let args = config.vmm_args(page_size, &report_path);
    let size = format_size(page_size);
    eprintln!(
        "fault-bench: boot {}/{}: page size {size}, VRAM {}: {} {}",
        i + 1,
        config.sizes.len(),
        format_size(config.vram(page_size)),
        vmm.display(),
        shell_words(&args)
    );
    let log = config.out.join(format!("console-{size}.log"));
    let boot_started = Instant::now();
    // One tracker per boot: boots running side by side each say their own ETA.
    let mut tracker =
        progress::Tracker::new(config.sizes.len(), boot_started).with_jobs(config.jobs);
    tracker.start_boot(i, boot_started);
    let status = progress::run_logged(vmm, &args, &log, &mut tracker, "fault-bench: ");
    let planned = tracker.planned();
    let record = json!({
        "vmm": vmm.display().to_string(),
        "vmm_args": args,
        "planned_cells": planned,
        "exit_code": status.as_ref().ok().and_then(|s| s.code()),
        "wall_s": boot_started.elapsed().as_secs_f64(),
    });
    let _ = std::fs::write(
        config.out.join(boot_record_name(page_size)),
        serde_json::to_string_pretty(&record).unwrap_or_default() + "\n",
    );
    let mut boot = match crate::read_report(&report_path) {
        Ok(report) => Boot::check(
            &name,
            page_size,
            report,
            &config.expect(planned),
            &mut predictions,
        ),
        Err(e) => Boot {
            source: name.clone(),
            page_size,
            report: Value::Null,
            cells: Vec::new(),
            problems: vec![format!("{e} (console: {})", log.display())],
        },
    };
    match &status {
        Ok(s) if s.success() => {}
        Ok(s) => boot
            .problems
            .push(format!("vmm {s} (console: {})", log.display())),
        Err(e) => boot.problems.push(e.clone()),
    }
    let failed = boot.all_problems();
    eprintln!(
        "fault-bench: boot {}/{} ({size}) done in {}: {} cells, {}",
        i + 1,
        config.sizes.len(),
        progress::duration(boot_started.elapsed()),
        boot.cells.len(),
        if failed.is_empty() {
            "all checks pass".to_owned()
        } else {
            format!("{} problems", failed.len())
        }
    );
    for p in &failed {
        eprintln!("fault-bench: FAIL: {p}");
    }
    boot
}

/// `args` as a shell would need them quoted.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_=,./:".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the configured benchmark (or rebuilds it from reports); the results, written.
pub fn run(config: &Config) -> Result<Results, String> {
    std::fs::create_dir_all(&config.out)
        .map_err(|e| format!("cannot create {}: {e}", config.out.display()))?;
    let config = &Config {
        out: std::fs::canonicalize(&config.out).unwrap_or_else(|_| config.out.clone()),
        ..config.clone()
    };
    let started = Instant::now();
    let results = if config.from_reports {
        let sizes = config.sizes_given.then_some(config.sizes.as_slice());
        let boots = load_reports(&config.out, sizes)?;
        assemble(&boots, &config.out, None, None)
    } else {
        let vmm = match &config.vmm {
            Some(vmm) => vmm.clone(),
            None => crate::build_vmm(&crate::vmm_build_dir())?,
        };
        let boots = run_boots(config, &vmm);
        assemble(
            &boots,
            &config.out,
            Some(config),
            Some(started.elapsed().as_secs_f64()),
        )
    };
    write_outputs(&results, &config.out)?;
    Ok(results)
}

/// The binary: parses `args`, runs, prints the headline; the exit status (0 pass, 1 a check
/// failed or nothing could be run, 2 a bad command line).
pub fn main_from(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let results = match run(&config) {
        Ok(results) => results,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let md = markdown::render(&results);
    if let Some(start) = md.find("## Headline") {
        let end = md[start..]
            .find("\n## Order")
            .map_or(md.len(), |e| start + e);
        print!("{}", &md[start..end]);
    }
    eprintln!(
        "fault-bench: {} cells; wrote results.json, results.csv, results.md and the plots in {}",
        results.cells.len(),
        config.out.display()
    );
    if results.pass() {
        0
    } else {
        for p in &results.problems {
            eprintln!("fault-bench: FAIL: {p}");
        }
        eprintln!("fault-bench: {} problems", results.problems.len());
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("fault-bench").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_cli(cli)
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.engine, Engine::Qemu);
        assert_eq!(c.clock, Clock::Icount);
        assert_eq!(c.flavour, Flavour::Bench);
        assert_eq!(c.sizes, DEFAULT_SIZES);
        assert_eq!(c.rounds, 5);
        assert_eq!(c.orders, TouchOrder::ALL);
        assert!(c.subjects.is_none() && c.wants_vfio());
        assert!(c.out.ends_with("bench/qemu"));
        let kvm = config(&["--engine", "kvm"]).unwrap();
        assert_eq!(kvm.clock, Clock::Real);
        assert!(kvm.out.ends_with("bench/kvm"));
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--engine", "xen"][..],
            &["--sizes", "3K"],
            &["--sizes", "2G"],
            &["--sizes", "64K,big"],
            &["--rounds", "1"],
            &["--orders", "diagonal"],
            &["--subjects", "range,dma-buf"],
            &["--clock", "tsc"],
            &["--kernel-flavour", "fast"],
            &["--smoke", "--rounds", "4"],
            &["--from-reports", "--subjects", "range"],
            &["--unknown"],
        ] {
            let e = config(args).expect_err(&format!("{args:?}"));
            assert!(!e.is_empty());
        }
        let e = config(&["--engine", "kvm", "--clock", "icount"]).unwrap_err();
        assert!(e.contains("--clock icount needs --engine qemu"), "{e}");
        let e = config(&["--subjects", "dma-buf"]).unwrap_err();
        assert!(e.contains("vfio-pci") && e.contains("range-mm"), "{e}");
        assert_eq!(main_from(["fault-bench", "--rounds", "1"]), 2);
        assert_eq!(
            main_from(["fault-bench", "--engine", "kvm", "--clock", "icount"]),
            2
        );
    }

    #[test]
    fn smoke() {
        let c = config(&["--smoke"]).unwrap();
        assert_eq!(c.sizes, [2 * MIB]);
        assert_eq!(c.vram(2 * MIB), 64 * MIB);
        assert_eq!(c.rounds, 3);
        assert_eq!(c.orders, [TouchOrder::Sequential]);
        assert_eq!(c.flavour, Flavour::Debug);
        assert!(c.out.ends_with("target/bench-smoke"));
        let args = c.vmm_args(2 * MIB, Path::new("/o/report-2M.json"));
        assert_eq!(
            args,
            [
                "run",
                "--engine",
                "qemu",
                "--kernel-flavour",
                "debug",
                "--icount",
                "--cpus",
                "1",
                "--device",
                "vram=64M,page-size=2M",
                "--device",
                "vram=64M,page-size=2M,driver=vfio-pci",
                "--scenario",
                "bench",
                "--cmdline",
                "rangefault.bench_rounds=3 rangefault.bench_orders=sequential \
                 rangefault.bench_subjects=prefault16,range,vfio-pci",
                "--timeout",
                "1980",
                "--report",
                "/o/report-2M.json",
            ]
        );
    }

    #[test]
    fn vmm_command_lines() {
        let c = config(&[
            "--sizes",
            "1G,64K",
            "--subjects",
            "range,range-mm",
            "--clock",
            "real",
            "--orders",
            "random,sequential",
            "--rounds",
            "2",
        ])
        .unwrap();
        assert_eq!(c.sizes, [64 << 10, GIB]);
        assert!(!c.wants_vfio());
        assert_eq!(c.vram(GIB), 2 * GIB);
        assert_eq!(c.vram(64 << 10), GIB);
        let args = c.vmm_args(GIB, Path::new("r.json")).join(" ");
        assert!(!args.contains("--icount"), "{args}");
        assert!(!args.contains("vfio-pci"), "{args}");
        assert!(
            args.contains("--device vram=2G,page-size=1G --scenario"),
            "{args}"
        );
        assert!(args.contains(
            "rangefault.bench_rounds=2 rangefault.bench_orders=random,sequential \
             rangefault.bench_subjects=range,range-mm"
        ));
        assert_eq!(c.cells_per_boot(), 8);
        assert_eq!(config(&["--timeout", "60"]).unwrap().timeout_s(), 60);
    }

    #[test]
    fn quoting_for_the_log() {
        let args = [
            "--cmdline".to_owned(),
            "a=1 b=2".to_owned(),
            "it's".to_owned(),
        ];
        assert_eq!(shell_words(&args), "--cmdline 'a=1 b=2' 'it'\\''s'");
    }
}
