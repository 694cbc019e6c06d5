//! The bench cells of a `vmm run --scenario bench` report, and their checks: every cell passed,
//! its faults are exactly what the model predicts, and each boot measured a full grid of
//! subject × order × round.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rangefault_abi::touch::{TouchOrder, PAGE};
use serde::Deserialize;
use serde_json::Value;

use super::model::{format_size, predict, Subject};

/// The cells and their parts are the guest's own types.
pub use rangefault_report::{
    BenchCell as Cell, DriverCost as Driver, FaultLatency, LatencySummary as Latency,
};

/// The page-table levels, in [`FaultLatency`]'s order.
pub const LEVELS: [&str; 3] = FaultLatency::LEVELS;

/// What the checks and summaries ask of a cell beyond its fields.
pub trait CellExt {
    /// The driver's handler time summed over the touch.
    fn handler_ns(&self) -> Option<u64>;
    /// The handler time of faults that inserted at `level`.
    fn level_ns(&self, level: &str) -> Option<u64>;
}

impl CellExt for Cell {
    fn handler_ns(&self) -> Option<u64> {
        self.driver.as_ref().map(|d| d.handler_ns)
    }

    fn level_ns(&self, level: &str) -> Option<u64> {
        let latency = &self.driver.as_ref()?.fault_latency;
        latency.level(level).map(|l| l.sum_ns)
    }
}

/// A cell with where it came from and what the checks found.
#[derive(Clone, Debug)]
pub struct Checked {
    /// The report file it came from.
    pub source: String,
    /// Its index among the report's bench cells.
    pub index: usize,
    pub cell: Cell,
    /// The cell as the guest wrote it (fields this version does not know included).
    pub raw: Value,
    /// `None`: a subject the model does not know (a problem).
    pub subject: Option<Subject>,
    pub order: Option<TouchOrder>,
    pub predicted: Option<u64>,
    pub problems: Vec<String>,
}

impl Checked {
    /// `2M range sequential round 3`.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} round {}",
            format_size(self.cell.page_size),
            self.cell.subject,
            self.cell.order,
            self.cell.round
        )
    }

    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Predictions per (subject, order, page size, mapped bytes): each replay walks every page.
#[derive(Default)]
pub struct Predictions(HashMap<(Subject, TouchOrder, u64, u64), u64>);

impl Predictions {
    pub fn get(&mut self, subject: Subject, order: TouchOrder, page_size: u64, len: u64) -> u64 {
        *self
            .0
            .entry((subject, order, page_size, len))
            .or_insert_with(|| predict(subject, order, page_size, len))
    }
}

/// The devices the report lists (`devices`, optional): bdf → (page size, driver).
pub fn devices(report: &Value) -> Option<BTreeMap<String, (u64, String)>> {
    let list = report.get("devices")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|d| {
                Some((
                    d["bdf"].as_str()?.to_owned(),
                    (
                        d["page_size"].as_u64()?,
                        d["driver"].as_str().unwrap_or("").to_owned(),
                    ),
                ))
            })
            .collect(),
    )
}

/// Checks one cell: `boot_page_size` is the page size the boot configured (when known).
pub fn check_cell(
    cell: &Cell,
    boot_page_size: Option<u64>,
    devices: Option<&BTreeMap<String, (u64, String)>>,
    predictions: &mut Predictions,
) -> (
    Option<Subject>,
    Option<TouchOrder>,
    Option<u64>,
    Vec<String>,
) {
    let mut problems = Vec::new();
    if !cell.pass {
        problems.push("the guest says it failed (pass false)".to_owned());
    }
    let subject = Subject::from_name(&cell.subject);
    match subject {
        None => problems.push(format!(
            "unknown subject '{}': neither an ABI strategy nor a peer ({})",
            cell.subject,
            Subject::all()
                .map(Subject::name)
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(s) if s.kind() != cell.kind => problems.push(format!(
            "kind '{}', but {} is a {}",
            cell.kind,
            s.name(),
            s.kind()
        )),
        Some(_) => {}
    }
    let order = TouchOrder::from_name(&cell.order);
    if order.is_none() {
        problems.push(format!("unknown order '{}'", cell.order));
    }
    if let Some(page) = boot_page_size.filter(|&p| p != cell.page_size) {
        problems.push(format!(
            "page size {}, but the boot's devices prefer {}",
            format_size(cell.page_size),
            format_size(page)
        ));
    }
    if let Some(devices) = devices {
        let bdf = &cell.bdf;
        match devices.get(bdf) {
            None => problems.push(format!("bdf {bdf} is none of the report's devices")),
            Some((page, _)) if *page != cell.page_size => problems.push(format!(
                "device {bdf} prefers {}, the cell says {}",
                format_size(*page),
                format_size(cell.page_size)
            )),
            Some((_, driver)) => {
                let vfio = subject == Some(Subject::VfioPci);
                if !driver.is_empty() && (driver == "vfio-pci") != vfio {
                    problems.push(format!("device {bdf} is driven by {driver}"));
                }
            }
        }
    }
    if cell.mapped_bytes == 0 || !cell.mapped_bytes.is_multiple_of(PAGE) {
        problems.push(format!(
            "mapped_bytes {} is not a positive number of pages",
            cell.mapped_bytes
        ));
        return (subject, order, None, problems);
    }
    let (Some(subject), Some(order)) = (subject, order) else {
        return (subject, order, None, problems);
    };
    let touches = order.touches(cell.mapped_bytes);
    if cell.touches != touches {
        problems.push(format!(
            "{} touches, but {} of {} touches {touches}",
            cell.touches,
            order.name(),
            format_size(cell.mapped_bytes)
        ));
    }
    let predicted = predictions.get(subject, order, cell.page_size, cell.mapped_bytes);
    if subject.is_strategy() {
        match &cell.driver {
            None => problems.push("no driver counters (a strategy cell must have them)".into()),
            Some(driver) if driver.faults != predicted => problems.push(format!(
                "driver.faults {}, the model predicts {predicted}",
                driver.faults
            )),
            Some(_) => {}
        }
        if cell.faults < predicted {
            problems.push(format!(
                "faults (ru_minflt) {} below the model's {predicted}",
                cell.faults
            ));
        }
    } else if cell.faults != predicted {
        problems.push(format!(
            "faults (ru_minflt) {}, the model predicts {predicted}",
            cell.faults
        ));
    }
    (Some(subject), Some(order), Some(predicted), problems)
}

/// What a live run asked the guest for, to check the boot delivered it.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    pub rounds: Option<u64>,
    pub orders: Option<Vec<TouchOrder>>,
    /// The subject filter, when one was given.
    pub subjects: Option<Vec<Subject>>,
    /// The cells the guest's plan line announced.
    pub planned: Option<usize>,
}

/// One boot's report, read and checked.
#[derive(Clone, Debug)]
pub struct Boot {
    /// The report's file name (`report-2M.json`).
    pub source: String,
    /// The preferred page size the boot configured.
    pub page_size: u64,
    pub report: Value,
    pub cells: Vec<Checked>,
    /// Problems of the boot as a whole (each cell has its own too).
    pub problems: Vec<String>,
}

impl Boot {
    /// Reads the bench cells of `report` and checks each and the grid they form.
    pub fn check(
        source: &str,
        page_size: u64,
        report: Value,
        expect: &Expect,
        predictions: &mut Predictions,
    ) -> Boot {
        let mut problems = Vec::new();
        if report["pass"] != true {
            problems.push(format!(
                "the run failed (report pass = {}; guest errors: {})",
                report["pass"], report["guest_errors"]
            ));
        }
        let devices = devices(&report);
        let mut cells = Vec::new();
        let bench = report["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["scenario"] == "bench");
        for (index, raw) in bench.enumerate() {
            match Cell::deserialize(raw) {
                Ok(cell) => {
                    let (subject, order, predicted, cell_problems) =
                        check_cell(&cell, Some(page_size), devices.as_ref(), predictions);
                    cells.push(Checked {
                        source: source.to_owned(),
                        index,
                        cell,
                        raw: raw.clone(),
                        subject,
                        order,
                        predicted,
                        problems: cell_problems,
                    });
                }
                Err(e) => problems.push(format!(
                    "bench cell {index} is not a cell ({e}): {}",
                    shorten(&raw.to_string())
                )),
            }
        }
        if cells.is_empty() {
            problems.push("no bench cell in the report".into());
        }
        problems.extend(grid_problems(&cells, expect));
        Boot {
            source: source.to_owned(),
            page_size,
            report,
            cells,
            problems,
        }
    }

    /// Every problem of the boot and its cells, each naming where.
    pub fn all_problems(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .problems
            .iter()
            .map(|p| format!("{} ({}): {p}", self.source, format_size(self.page_size)))
            .collect();
        for c in &self.cells {
            for p in &c.problems {
                all.push(format!(
                    "{} cell {} ({}): {p}",
                    c.source,
                    c.index,
                    c.label()
                ));
            }
        }
        all
    }
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Every `what` (order, subject) asked for was measured, and nothing else was.
fn asked_versus_measured(
    what: &str,
    wanted: &[&str],
    measured: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    for name in wanted.iter().filter(|name| !measured.contains(*name)) {
        problems.push(format!("{what} {name} was asked for but not measured"));
    }
    for name in measured.iter().filter(|name| !wanted.contains(name)) {
        problems.push(format!("{what} {name} measured but not asked for"));
    }
}

/// The grid: each subject measured, in each order, in each round, exactly once; and what a live
/// run asked for.
pub fn grid_problems(cells: &[Checked], expect: &Expect) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen: BTreeMap<(String, String, u64), usize> = BTreeMap::new();
    for c in cells {
        *seen
            .entry((c.cell.subject.clone(), c.cell.order.clone(), c.cell.round))
            .or_default() += 1;
    }
    let subjects: BTreeSet<&str> = cells.iter().map(|c| c.cell.subject.as_str()).collect();
    let orders: BTreeSet<&str> = cells.iter().map(|c| c.cell.order.as_str()).collect();
    let mut rounds: BTreeSet<u64> = cells.iter().map(|c| c.cell.round).collect();
    if let Some(n) = expect.rounds {
        rounds.extend(0..n);
        if let Some(extra) = rounds.iter().find(|&&r| r >= n) {
            problems.push(format!(
                "round {extra} measured, but {n} rounds were asked for"
            ));
        }
    }
    for ((subject, order, round), n) in &seen {
        if *n > 1 {
            problems.push(format!("{n} cells for {subject} {order} round {round}"));
        }
    }
    for subject in &subjects {
        for order in &orders {
            for round in &rounds {
                let key = ((*subject).to_owned(), (*order).to_owned(), *round);
                if !seen.contains_key(&key) {
                    problems.push(format!("no cell for {subject} {order} round {round}"));
                }
            }
        }
    }
    if let Some(wanted) = &expect.orders {
        let wanted: Vec<&str> = wanted.iter().map(|o| o.name()).collect();
        asked_versus_measured("order", &wanted, &orders, &mut problems);
    }
    if let Some(wanted) = &expect.subjects {
        let wanted: Vec<&str> = wanted.iter().map(|s| s.name()).collect();
        asked_versus_measured("subject", &wanted, &subjects, &mut problems);
    }
    if let Some(planned) = expect.planned {
        if planned != cells.len() {
            problems.push(format!(
                "the guest planned {planned} cells, the report has {}",
                cells.len()
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cell(subject: &str, order: &str, round: u64, faults: u64, driver: Option<u64>) -> Value {
        let strategy = Subject::from_name(subject).is_some_and(Subject::is_strategy);
        json!({
            "scenario": "bench", "pass": true, "round": round, "subject": subject,
            "kind": if strategy { "strategy" } else { "peer" }, "order": order,
            "bdf": if subject == "vfio-pci" { "0000:00:04.0" } else { "0000:00:03.0" },
            "page_size": 2 << 20, "mapped_bytes": 64 << 20,
            "touches": TouchOrder::from_name(order).map_or(0, |o| o.touches(64 << 20)),
            "faults": faults, "map_ns": 10, "touch_ns": 1000, "unmap_ns": 5, "vm_pte_bytes": 0,
            "driver": driver.map(|f| json!({
                "faults": f, "faults_pte": 0, "faults_pmd": f, "faults_pud": 0, "fallbacks": 0,
                "handler_calls": f, "pte_inserts": 0, "pmd_inserts": f, "pud_inserts": 0,
                "handler_ns": 100, "host_check": { "pass": true, "status": "pass", "pages": 16384, "present": 16384,
                    "leaves": { "4K": 0, "2M": 32, "1G": 0 }, "smaller_pages": 0, "memtype": "WC",
                    "first_mismatch": null, "seq": 1 },
                "fault_latency": { "pte": super::super::tests_support::no_latency(),
                    "pud": super::super::tests_support::no_latency(),
                    "pmd": { "count": f, "sum_ns": 100, "mean_ns": 3, "p50_ns_le": 4,
                    "p99_ns_le": 4, "max_ns": 3, "histogram": [[4, f]] } } })),
            "vma_lock_retries": null,
        })
    }

    fn report(cells: Vec<Value>) -> Value {
        json!({ "pass": true, "scenarios": cells, "devices": [
            { "bdf": "0000:00:03.0", "vram_size": 64 << 20, "page_size": 2 << 20, "driver": "rangefault" },
            { "bdf": "0000:00:04.0", "vram_size": 64 << 20, "page_size": 2 << 20, "driver": "vfio-pci" },
        ]})
    }

    fn boot(cells: Vec<Value>, expect: &Expect) -> Boot {
        Boot::check(
            "report-2M.json",
            2 << 20,
            report(cells),
            expect,
            &mut Predictions::default(),
        )
    }

    #[test]
    fn exact_cells_pass() {
        let cells = (0..2)
            .flat_map(|r| {
                [
                    cell("range", "sequential", r, 40, Some(32)),
                    cell("prefault16", "sequential", r, 1024, Some(1024)),
                    cell("vfio-pci", "sequential", r, 32, None),
                ]
            })
            .collect();
        let expect = Expect {
            rounds: Some(2),
            orders: Some(vec![TouchOrder::Sequential]),
            subjects: Some(
                ["range", "prefault16", "vfio-pci"]
                    .map(|s| Subject::from_name(s).unwrap())
                    .to_vec(),
            ),
            planned: Some(6),
        };
        let boot = boot(cells, &expect);
        assert_eq!(boot.all_problems(), Vec::<String>::new());
        assert_eq!(boot.cells[0].predicted, Some(32));
        assert_eq!(boot.cells[1].predicted, Some(1024));
    }

    #[test]
    fn wrong_faults_are_named() {
        let boot = boot(
            vec![
                cell("range", "sequential", 0, 40, Some(33)),
                cell("range", "reverse", 0, 31, Some(32)),
                cell("vfio-pci", "sequential", 0, 33, None),
                cell("vfio-pci", "reverse", 0, 32, None),
            ],
            &Expect::default(),
        );
        let problems = boot.all_problems();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].contains("cell 0 (2M range sequential round 0)"),
            "{problems:#?}"
        );
        assert!(problems[0].contains("driver.faults 33, the model predicts 32"));
        assert!(problems[1].contains("ru_minflt) 31 below the model's 32"));
        assert!(problems[2].contains("ru_minflt) 33, the model predicts 32"));
    }

    #[test]
    fn unknown_subjects_kinds_and_missing_counters_fail() {
        let mut wrong_kind = cell("vfio-pci", "sequential", 0, 32, None);
        wrong_kind["kind"] = json!("strategy");
        let mut elsewhere = cell("range", "sequential", 0, 32, Some(32));
        elsewhere["bdf"] = json!("0000:00:04.0");
        let boot = boot(
            vec![
                cell("dma-buf", "sequential", 0, 32, None),
                cell("range", "sequential", 0, 32, None),
                wrong_kind,
                cell("range", "diagonal", 0, 32, Some(32)),
                elsewhere,
            ],
            &Expect::default(),
        );
        let problems = boot.all_problems().join("\n");
        assert!(problems.contains("unknown subject 'dma-buf'"), "{problems}");
        assert!(problems.contains("no driver counters"), "{problems}");
        assert!(
            problems.contains("kind 'strategy', but vfio-pci is a peer"),
            "{problems}"
        );
        assert!(problems.contains("unknown order 'diagonal'"), "{problems}");
        assert!(
            problems.contains("device 0000:00:04.0 is driven by vfio-pci"),
            "{problems}"
        );
        assert!(
            problems.contains("2 cells for range sequential round 0"),
            "{problems}"
        );
    }

    #[test]
    fn the_grid_must_be_full_and_what_was_asked() {
        let expect = Expect {
            rounds: Some(2),
            orders: Some(vec![TouchOrder::Sequential, TouchOrder::Random]),
            subjects: Some(vec![Subject::from_name("range").unwrap(), Subject::VfioPci]),
            planned: Some(4),
        };
        let boot = boot(
            vec![
                cell("range", "sequential", 0, 32, Some(32)),
                cell("range", "sequential", 1, 32, Some(32)),
                cell("range", "reverse", 1, 32, Some(32)),
            ],
            &expect,
        );
        let problems = boot.problems.join("\n");
        for expected in [
            "no cell for range reverse round 0",
            "order random was asked for but not measured",
            "order reverse measured but not asked for",
            "subject vfio-pci was asked for but not measured",
            "the guest planned 4 cells, the report has 3",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
    }

    #[test]
    fn a_failed_run_or_a_broken_cell_is_a_problem() {
        let mut r = report(vec![
            json!({ "scenario": "bench", "pass": false, "error": "EIO" }),
        ]);
        r["pass"] = json!(false);
        let boot = Boot::check(
            "r.json",
            2 << 20,
            r,
            &Expect::default(),
            &mut Predictions::default(),
        );
        let problems = boot.problems.join("\n");
        assert!(problems.contains("the run failed"), "{problems}");
        assert!(
            problems.contains("bench cell 0 is not a cell"),
            "{problems}"
        );
        assert!(problems.contains("no bench cell"), "{problems}");
    }
}
