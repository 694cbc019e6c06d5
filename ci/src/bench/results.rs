//! From checked cells to results: per (page size, subject, order) medians with their spread,
//! medians of per-round ratios, the headline comparisons with their targets, and the
//! `results.json` and `results.csv` they are written as.

use std::collections::{BTreeMap, BTreeSet};

use rangefault_abi::touch::TouchOrder;
use serde::Serialize;
use serde_json::{json, Value};

use super::cells::{CellExt, Checked, LEVELS};
use super::model::{format_size, Subject, MIB};

/// Median and range of one measurement over rounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many values (rounds).
    pub n: usize,
}

/// The median (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// [`Stat`] of `values`; `None` for none.
pub fn stat(values: impl IntoIterator<Item = f64>) -> Option<Stat> {
    let v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return None;
    }
    Some(Stat {
        median: median(&v),
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        n: v.len(),
    })
}

/// What the clock of the run counts, for headers and axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Units {
    /// `icount`: guest instructions; `real`: guest nanoseconds.
    pub icount: bool,
    /// Whether the guest ran under QEMU TCG (its real-clock times are emulated).
    pub tcg: bool,
}

impl Units {
    pub fn new(clock: &str, engine: &str) -> Units {
        Units {
            icount: clock == "icount",
            tcg: engine != "kvm",
        }
    }

    /// The unit of every time: `instructions` or `guest ns`.
    pub fn time(self) -> &'static str {
        if self.icount {
            "instructions"
        } else {
            "guest ns"
        }
    }

    /// The unit with how to read it.
    pub fn time_long(self) -> &'static str {
        match (self.icount, self.tcg) {
            (true, _) => "instructions (QEMU icount: 1 guest ns = 1 instruction)",
            (false, true) => "guest ns (TCG: compare ratios only)",
            (false, false) => "guest ns (KVM)",
        }
    }

    /// The per-MiB measure: `instructions per MiB` or `guest ns per MiB`.
    pub fn per_mib(self) -> String {
        format!("{} per MiB", self.time())
    }
}

/// Identifies one summary row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub page_size: u64,
    pub subject: Subject,
    pub order: TouchOrder,
}

/// The cells of one (page size, subject, order), over rounds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub page_size: u64,
    pub page_size_name: String,
    pub subject: &'static str,
    pub kind: &'static str,
    pub order: &'static str,
    pub rounds: usize,
    pub mapped_bytes: u64,
    pub predicted_faults: Option<u64>,
    pub faults: Stat,
    pub driver_faults: Option<Stat>,
    pub map_ns: Stat,
    pub touch_ns: Stat,
    pub unmap_ns: Stat,
    /// map + touch.
    pub total_ns: Stat,
    pub total_ns_per_mib: Stat,
    pub touch_ns_per_mib: Stat,
    pub vm_pte_bytes: Stat,
    pub handler_ns: Option<Stat>,
    /// Handler time of the faults that inserted at each level (levels with faults only).
    pub handler_ns_per_level: BTreeMap<&'static str, Stat>,
    /// Driver faults per level (levels with faults only).
    pub faults_per_level: BTreeMap<&'static str, Stat>,
    /// PTEs, PMDs, PUDs inserted.
    pub inserts: BTreeMap<&'static str, Stat>,
    pub vma_lock_retries: Option<Stat>,
    /// Medians of per-round total_ns ratios against the other subjects of this size and order.
    pub total_vs: BTreeMap<&'static str, Stat>,
    #[serde(skip)]
    pub key: Option<Key>,
}

/// The cells the results are made of: those whose subject and order are known.
fn known(cells: &[Checked]) -> impl Iterator<Item = (Key, &Checked)> {
    cells.iter().filter_map(|c| {
        Some((
            Key {
                page_size: c.cell.page_size,
                subject: c.subject?,
                order: c.order?,
            },
            c,
        ))
    })
}

/// The (page size, subject, order) keys in table order: size, then order, then subject.
pub fn keys(cells: &[Checked]) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    for (key, _) in known(cells) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort_by_key(|k| (k.page_size, order_rank(k.order), k.subject.rank()));
    keys
}

pub fn order_rank(order: TouchOrder) -> usize {
    TouchOrder::ALL
        .iter()
        .position(|&o| o == order)
        .unwrap_or(usize::MAX)
}

fn cells_of(cells: &[Checked], key: Key) -> Vec<&Checked> {
    known(cells)
        .filter(|(k, _)| *k == key)
        .map(|(_, c)| c)
        .collect()
}

/// A metric of a cell, as a float (`None` where the cell lacks it).
pub type Metric = fn(&Checked) -> Option<f64>;

pub fn total_ns(c: &Checked) -> Option<f64> {
    Some(c.cell.total_ns() as f64)
}

pub fn handler_ns(c: &Checked) -> Option<f64> {
    c.cell.handler_ns().map(|n| n as f64)
}

/// Medians of per-round ratios `numerator / denominator` of `metric`, pairing the cells of the
/// same round, page size and order; rounds missing either side (or with a zero denominator) are
/// left out.
pub fn paired_ratio(
    cells: &[Checked],
    page_size: u64,
    order: TouchOrder,
    numerator: Subject,
    denominator: Subject,
    metric: Metric,
) -> Option<Stat> {
    let side = |subject| {
        cells_of(
            cells,
            Key {
                page_size,
                subject,
                order,
            },
        )
        .into_iter()
        .filter_map(|c| Some((c.cell.round, metric(c)?)))
        .collect::<BTreeMap<u64, f64>>()
    };
    let den = side(denominator);
    let ratios = side(numerator)
        .into_iter()
        .filter_map(|(round, n)| {
            let d = *den.get(&round)?;
            (d != 0.0).then_some(n / d)
        })
        .collect::<Vec<_>>();
    stat(ratios)
}

/// Every summary row.
pub fn summaries(cells: &[Checked]) -> Vec<Summary> {
    let all_keys = keys(cells);
    all_keys
        .iter()
        .map(|&key| {
            let mine = cells_of(cells, key);
            let of =
                |f: &dyn Fn(&Checked) -> f64| stat(mine.iter().map(|c| f(c))).unwrap_or(NAN_STAT);
            let opt = |f: &dyn Fn(&Checked) -> Option<f64>| {
                let v: Vec<f64> = mine.iter().filter_map(|c| f(c)).collect();
                stat(v)
            };
            let mib = mine[0].cell.mapped_mib();
            let mut per_level = BTreeMap::new();
            let mut faults_per_level = BTreeMap::new();
            for level in LEVELS {
                let with_faults = mine.iter().any(|c| level_faults(c, level) > 0);
                if !with_faults {
                    continue;
                }
                if let Some(s) = opt(&|c| c.cell.level_ns(level).map(|n| n as f64)) {
                    per_level.insert(level, s);
                }
                if let Some(s) = opt(&|c| {
                    c.cell
                        .driver
                        .as_ref()
                        .map(|_| level_faults(c, level) as f64)
                }) {
                    faults_per_level.insert(level, s);
                }
            }
            let mut inserts = BTreeMap::new();
            for (name, f) in [
                (
                    "pte",
                    (|d: &super::cells::Driver| d.pte_inserts) as fn(&_) -> u64,
                ),
                ("pmd", |d| d.pmd_inserts),
                ("pud", |d| d.pud_inserts),
            ] {
                if let Some(s) = opt(&|c| c.cell.driver.as_ref().map(|d| f(d) as f64)) {
                    inserts.insert(name, s);
                }
            }
            let mut total_vs = BTreeMap::new();
            for other in all_keys
                .iter()
                .filter(|k| k.page_size == key.page_size && k.order == key.order)
                .filter(|k| k.subject != key.subject)
            {
                if let Some(r) = paired_ratio(
                    cells,
                    key.page_size,
                    key.order,
                    key.subject,
                    other.subject,
                    total_ns,
                ) {
                    total_vs.insert(other.subject.name(), r);
                }
            }
            Summary {
                page_size: key.page_size,
                page_size_name: format_size(key.page_size),
                subject: key.subject.name(),
                kind: key.subject.kind(),
                order: key.order.name(),
                rounds: mine.len(),
                mapped_bytes: mine[0].cell.mapped_bytes,
                predicted_faults: mine[0].predicted,
                faults: of(&|c| c.cell.faults as f64),
                driver_faults: opt(&|c| c.cell.driver.as_ref().map(|d| d.faults as f64)),
                map_ns: of(&|c| c.cell.map_ns as f64),
                touch_ns: of(&|c| c.cell.touch_ns as f64),
                unmap_ns: of(&|c| c.cell.unmap_ns as f64),
                total_ns: of(&|c| c.cell.total_ns() as f64),
                total_ns_per_mib: of(&|c| c.cell.total_ns() as f64 / mib),
                touch_ns_per_mib: of(&|c| c.cell.touch_ns as f64 / mib),
                vm_pte_bytes: of(&|c| c.cell.vm_pte_bytes as f64),
                handler_ns: opt(&|c| c.cell.handler_ns().map(|n| n as f64)),
                handler_ns_per_level: per_level,
                faults_per_level,
                inserts,
                vma_lock_retries: opt(&|c| c.cell.vma_lock_retries.map(|n| n as f64)),
                total_vs,
                key: Some(key),
            }
        })
        .collect()
}

const NAN_STAT: Stat = Stat {
    median: f64::NAN,
    min: f64::NAN,
    max: f64::NAN,
    n: 0,
};

fn level_faults(c: &Checked, level: &str) -> u64 {
    c.cell.driver.as_ref().map_or(0, |d| match level {
        "pte" => d.faults_pte,
        "pmd" => d.faults_pmd,
        "pud" => d.faults_pud,
        _ => 0,
    })
}

/// A target a headline ratio should meet.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

impl Target {
    pub fn met(self, value: f64) -> bool {
        match self {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        }
    }

    /// `≤ 0.5×`.
    pub fn text(self) -> String {
        match self {
            Target::AtMost(t) => format!("≤ {}×", trim_float(t)),
            Target::AtLeast(t) => format!("≥ {}×", trim_float(t)),
        }
    }
}

fn trim_float(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.contains('.') {
        s.to_owned()
    } else {
        format!("{s}.0")
    }
}

/// One headline comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Headline {
    /// `range (stock) vs ttm16`.
    pub what: String,
    pub order: &'static str,
    pub page_size: u64,
    pub page_size_name: String,
    pub numerator: &'static str,
    pub denominator: &'static str,
    /// Always end to end (map + touch): `total_ns`.
    pub metric: &'static str,
    /// `None`: not measured (a side has no cell in this order at this size).
    pub ratio: Option<Stat>,
    /// The same pair's ratio of the driver's handler time, where both sides have it.
    pub handler_ratio: Option<Stat>,
    pub target: Option<Target>,
    /// `None`: no target, or not measured.
    pub met: Option<bool>,
}

/// The fixed comparisons: (what, numerator, denominator, page size, target).
const COMPARISONS: &[(&str, &str, &str, u64, Option<Target>)] = &[
    (
        "range vs vfio-pci",
        "range",
        "vfio-pci",
        2 * MIB,
        Some(Target::AtMost(1.0)),
    ),
    (
        "range (stock) vs ttm16",
        "range",
        "ttm16",
        64 << 10,
        Some(Target::AtMost(0.5)),
    ),
    (
        "range-mm vs ttm16",
        "range-mm",
        "ttm16",
        64 << 10,
        Some(Target::AtMost(0.5)),
    ),
    (
        "page ÷ range",
        "page",
        "range",
        2 * MIB,
        Some(Target::AtLeast(50.0)),
    ),
];

/// The headline rows: the fixed comparisons in sequential order (and in random order where
/// random was measured), then `eager-remap` against every other subject at every size.
pub fn headline(cells: &[Checked]) -> Vec<Headline> {
    let all_keys = keys(cells);
    let measured_orders: BTreeSet<usize> = all_keys.iter().map(|k| order_rank(k.order)).collect();
    let mut orders = vec![TouchOrder::Sequential];
    if measured_orders.contains(&order_rank(TouchOrder::Random)) {
        orders.push(TouchOrder::Random);
    }
    let mut rows = Vec::new();
    let row = |what: String,
               order: TouchOrder,
               page_size: u64,
               num: Subject,
               den: Subject,
               target: Option<Target>| {
        let ratio = paired_ratio(cells, page_size, order, num, den, total_ns);
        Headline {
            what,
            order: order.name(),
            page_size,
            page_size_name: format_size(page_size),
            numerator: num.name(),
            denominator: den.name(),
            metric: "total_ns",
            ratio,
            handler_ratio: paired_ratio(cells, page_size, order, num, den, handler_ns),
            target,
            met: target.zip(ratio).map(|(t, r)| t.met(r.median)),
        }
    };
    for &order in &orders {
        for &(what, num, den, page_size, target) in COMPARISONS {
            let (Some(num), Some(den)) = (Subject::from_name(num), Subject::from_name(den)) else {
                continue;
            };
            rows.push(row(what.to_owned(), order, page_size, num, den, target));
        }
    }
    let sizes: BTreeSet<u64> = all_keys.iter().map(|k| k.page_size).collect();
    let eager = Subject::EagerRemap;
    for &order in &orders {
        let eager_sizes: Vec<u64> = sizes
            .iter()
            .copied()
            .filter(|&p| {
                all_keys
                    .iter()
                    .any(|k| k.page_size == p && k.subject == eager && k.order == order)
            })
            .collect();
        if eager_sizes.is_empty() {
            rows.push(Headline {
                what: "eager-remap (mmap included) vs the others".into(),
                order: order.name(),
                page_size: 0,
                page_size_name: "any".into(),
                numerator: eager.name(),
                denominator: "any",
                metric: "total_ns",
                ratio: None,
                handler_ratio: None,
                target: None,
                met: None,
            });
            continue;
        }
        for page_size in eager_sizes {
            let mut others: Vec<Subject> = all_keys
                .iter()
                .filter(|k| k.page_size == page_size && k.order == order && k.subject != eager)
                .map(|k| k.subject)
                .collect();
            others.sort_by_key(|s| s.rank());
            others.dedup();
            for other in others {
                rows.push(row(
                    format!("eager-remap (mmap included) vs {}", other.name()),
                    order,
                    page_size,
                    eager,
                    other,
                    None,
                ));
            }
        }
    }
    rows
}

/// What the run was.
#[derive(Clone, Debug, Serialize)]
pub struct Meta {
    pub engine: String,
    pub kernel_flavour: String,
    /// `icount` or `real`.
    pub clock: String,
    /// The unit of every `*_ns` field.
    pub time_unit: &'static str,
    pub rounds: u64,
    pub sizes: Vec<String>,
    pub orders: Vec<&'static str>,
    pub subjects: Vec<String>,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    /// `vmm run` arguments per page size, where this run (or the one that wrote the reports)
    /// recorded them.
    pub vmm_args: BTreeMap<String, Vec<String>>,
    /// Whether this was rebuilt from saved reports.
    pub from_reports: bool,
    pub wall_s: Option<f64>,
}

/// Everything `results.json` holds.
pub struct Results {
    pub meta: Meta,
    pub cells: Vec<Checked>,
    pub summaries: Vec<Summary>,
    pub headline: Vec<Headline>,
    pub problems: Vec<String>,
}

impl Results {
    pub fn new(meta: Meta, cells: Vec<Checked>, problems: Vec<String>) -> Results {
        let summaries = summaries(&cells);
        let headline = headline(&cells);
        Results {
            meta,
            cells,
            summaries,
            headline,
            problems,
        }
    }

    pub fn units(&self) -> Units {
        Units::new(&self.meta.clock, &self.meta.engine)
    }

    pub fn pass(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn summary(&self, key: Key) -> Option<&Summary> {
        self.summaries.iter().find(|s| s.key == Some(key))
    }

    /// Page sizes with a summary, ascending.
    pub fn sizes(&self) -> Vec<u64> {
        let set: BTreeSet<u64> = self.summaries.iter().map(|s| s.page_size).collect();
        set.into_iter().collect()
    }

    /// Subjects with a summary, in rank order.
    pub fn subjects(&self) -> Vec<Subject> {
        let mut v: Vec<Subject> = self
            .summaries
            .iter()
            .filter_map(|s| Some(s.key?.subject))
            .collect();
        v.sort_by_key(|s| s.rank());
        v.dedup();
        v
    }

    /// Orders with a summary, in the ABI's order.
    pub fn orders(&self) -> Vec<TouchOrder> {
        TouchOrder::ALL
            .into_iter()
            .filter(|&o| {
                self.summaries
                    .iter()
                    .any(|s| s.key.is_some_and(|k| k.order == o))
            })
            .collect()
    }

    pub fn to_json(&self) -> Value {
        let cells: Vec<Value> = self
            .cells
            .iter()
            .map(|c| {
                let mut v = c.raw.clone();
                if let Some(map) = v.as_object_mut() {
                    map.insert("report".into(), json!(c.source));
                    map.insert("predicted_faults".into(), json!(c.predicted));
                    map.insert("total_ns".into(), json!(c.cell.total_ns()));
                    map.insert("problems".into(), json!(c.problems));
                }
                v
            })
            .collect();
        json!({
            "meta": self.meta,
            "pass": self.pass(),
            "problems": self.problems,
            "headline": self.headline,
            "summaries": self.summaries,
            "cells": cells,
        })
    }
}

/// One CSV field: quoted where it holds a comma, a quote or a line break.
pub fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

pub const CSV_COLUMNS: &[&str] = &[
    "report",
    "clock",
    "page_size",
    "subject",
    "kind",
    "order",
    "round",
    "bdf",
    "mapped_bytes",
    "touches",
    "faults",
    "predicted_faults",
    "driver_faults",
    "driver_faults_pte",
    "driver_faults_pmd",
    "driver_faults_pud",
    "fallbacks",
    "handler_calls",
    "pte_inserts",
    "pmd_inserts",
    "pud_inserts",
    "handler_ns",
    "pte_fault_count",
    "pte_fault_sum_ns",
    "pte_fault_max_ns",
    "pmd_fault_count",
    "pmd_fault_sum_ns",
    "pmd_fault_max_ns",
    "pud_fault_count",
    "pud_fault_sum_ns",
    "pud_fault_max_ns",
    "map_ns",
    "touch_ns",
    "unmap_ns",
    "total_ns",
    "vm_pte_bytes",
    "vma_lock_retries",
    "pass",
    "valid",
    "problems",
];

/// `results.csv`: a header, then one row per cell (empty fields where a cell has no value).
pub fn csv(results: &Results) -> String {
    let mut out = CSV_COLUMNS.join(",") + "\n";
    let opt = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    for c in &results.cells {
        let cell = &c.cell;
        let d = cell.driver.as_ref();
        let lat = d.map(|d| &d.fault_latency);
        let mut fields = vec![
            c.source.clone(),
            results.meta.clock.clone(),
            cell.page_size.to_string(),
            cell.subject.clone(),
            cell.kind.clone(),
            cell.order.clone(),
            cell.round.to_string(),
            cell.bdf.clone(),
            cell.mapped_bytes.to_string(),
            cell.touches.to_string(),
            cell.faults.to_string(),
            opt(c.predicted),
            opt(d.map(|d| d.faults)),
            opt(d.map(|d| d.faults_pte)),
            opt(d.map(|d| d.faults_pmd)),
            opt(d.map(|d| d.faults_pud)),
            opt(d.map(|d| d.fallbacks)),
            opt(d.map(|d| d.handler_calls)),
            opt(d.map(|d| d.pte_inserts)),
            opt(d.map(|d| d.pmd_inserts)),
            opt(d.map(|d| d.pud_inserts)),
            opt(d.map(|d| d.handler_ns)),
        ];
        for level in LEVELS {
            let l = lat.and_then(|l| l.level(level));
            fields.push(opt(l.map(|l| l.count)));
            fields.push(opt(l.map(|l| l.sum_ns)));
            fields.push(opt(l.map(|l| l.max_ns)));
        }
        fields.extend([
            cell.map_ns.to_string(),
            cell.touch_ns.to_string(),
            cell.unmap_ns.to_string(),
            cell.total_ns().to_string(),
            cell.vm_pte_bytes.to_string(),
            opt(cell.vma_lock_retries),
            cell.pass.to_string(),
            c.is_valid().to_string(),
            c.problems.join("; "),
        ]);
        debug_assert_eq!(fields.len(), CSV_COLUMNS.len());
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out += &line.join(",");
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::cells::{Boot, Expect, Predictions};
    use serde_json::json;

    /// A valid cell of `subject` at 2M/64M in `order`, with `touch_ns`.
    pub fn cell(page_size: u64, subject: &str, order: &str, round: u64, touch_ns: u64) -> Value {
        let s = Subject::from_name(subject).unwrap();
        let o = TouchOrder::from_name(order).unwrap();
        let len = 64 << 20;
        let faults = crate::bench::model::predict(s, o, page_size, len);
        json!({
            "scenario": "bench", "pass": true, "round": round, "subject": subject,
            "kind": s.kind(), "order": order, "bdf": "0000:00:03.0",
            "page_size": page_size, "mapped_bytes": len, "touches": o.touches(len),
            "faults": faults, "map_ns": 100, "touch_ns": touch_ns, "unmap_ns": 7,
            "vm_pte_bytes": 4096,
            "driver": s.is_strategy().then(|| json!({
                "faults": faults, "faults_pte": 0, "faults_pmd": faults, "faults_pud": 0,
                "fallbacks": 0, "handler_calls": faults, "pte_inserts": 0, "pmd_inserts": faults,
                "pud_inserts": 0, "handler_ns": touch_ns / 10, "host_check": { "pass": true, "status": "pass", "pages": 16384, "present": 16384,
                    "leaves": { "4K": 0, "2M": 32, "1G": 0 }, "smaller_pages": 0, "memtype": "WC",
                    "first_mismatch": null, "seq": 1 },
                "fault_latency": { "pte": crate::bench::tests_support::no_latency(),
                    "pud": crate::bench::tests_support::no_latency(),
                    "pmd": { "count": faults, "sum_ns": touch_ns / 10, "mean_ns": 10,
                    "p50_ns_le": 1024, "p99_ns_le": 1024, "max_ns": 1000,
                    "histogram": [[1024, faults]] } } })),
            "vma_lock_retries": null,
        })
    }

    fn checked(page_size: u64, cells: Vec<Value>) -> Vec<Checked> {
        let report = json!({ "pass": true, "scenarios": cells });
        Boot::check(
            "r.json",
            page_size,
            report,
            &Expect::default(),
            &mut Predictions::default(),
        )
        .cells
    }

    #[test]
    fn medians_and_spreads() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let s = stat([5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (3.0, 1.0, 5.0, 3));
        assert!(stat([]).is_none());
    }

    #[test]
    fn ratios_pair_rounds_not_medians() {
        let p = 2 << 20;
        // range: 1000, 3000, 2000; vfio: 2000, 1000, 4000 (+100 map each).
        let cells = checked(
            p,
            vec![
                cell(p, "range", "sequential", 0, 900),
                cell(p, "range", "sequential", 1, 2900),
                cell(p, "range", "sequential", 2, 1900),
                cell(p, "vfio-pci", "sequential", 0, 1900),
                cell(p, "vfio-pci", "sequential", 1, 900),
                cell(p, "vfio-pci", "sequential", 2, 3900),
                // A round with only one side is left out.
                cell(p, "range", "sequential", 3, 1),
            ],
        );
        let r = paired_ratio(
            &cells,
            p,
            TouchOrder::Sequential,
            Subject::from_name("range").unwrap(),
            Subject::VfioPci,
            total_ns,
        )
        .unwrap();
        // Per round: 0.5, 3.0, 0.5: median 0.5 (the ratio of medians would be 1.0).
        assert_eq!((r.median, r.min, r.max, r.n), (0.5, 0.5, 3.0, 3));
        // No handler time on the vfio side: no handler ratio.
        assert!(paired_ratio(
            &cells,
            p,
            TouchOrder::Sequential,
            Subject::from_name("range").unwrap(),
            Subject::VfioPci,
            handler_ns
        )
        .is_none());
    }

    #[test]
    fn headline_rows_say_met_not_met_or_not_measured() {
        let p = 2 << 20;
        let mut cells = Vec::new();
        for round in 0..3 {
            cells.push(cell(p, "range", "sequential", round, 900));
            cells.push(cell(p, "vfio-pci", "sequential", round, 1900));
            cells.push(cell(p, "page", "sequential", round, 9900));
            cells.push(cell(p, "eager-remap", "sequential", round, 400));
        }
        let results = checked(p, cells);
        let rows = headline(&results);
        let find = |what: &str| rows.iter().find(|r| r.what == what).unwrap();
        let vfio = find("range vs vfio-pci");
        assert_eq!(vfio.ratio.unwrap().median, 0.5);
        assert_eq!(vfio.met, Some(true));
        let page = find("page ÷ range");
        assert_eq!(page.ratio.unwrap().median, 10.0);
        assert_eq!(page.met, Some(false));
        let ttm = find("range-mm vs ttm16");
        assert!(ttm.ratio.is_none() && ttm.met.is_none());
        // eager-remap against each other subject of its size.
        let eager: Vec<&str> = rows
            .iter()
            .filter(|r| r.numerator == "eager-remap")
            .map(|r| r.denominator)
            .collect();
        assert_eq!(eager, ["page", "range", "vfio-pci"]);
        assert_eq!(
            find("eager-remap (mmap included) vs range")
                .ratio
                .unwrap()
                .median,
            0.5
        );
        // Random was not measured: sequential rows only.
        assert!(rows.iter().all(|r| r.order == "sequential"));
    }

    #[test]
    fn summaries_per_size_subject_order() {
        let p = 2 << 20;
        let cells = checked(
            p,
            vec![
                cell(p, "range", "sequential", 0, 6300),
                cell(p, "range", "sequential", 1, 6400),
                cell(p, "range", "random", 0, 12_700),
                cell(p, "range", "random", 1, 12_700),
            ],
        );
        let rows = summaries(&cells);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].order, "sequential");
        assert_eq!(rows[0].predicted_faults, Some(32));
        assert_eq!(rows[0].total_ns.median, 6450.0);
        // 64 MiB: per MiB is a 64th.
        assert_eq!(rows[1].total_ns_per_mib.median, 12_800.0 / 64.0);
        assert_eq!(rows[0].handler_ns_per_level["pmd"].median, 635.0);
        assert!(!rows[0].handler_ns_per_level.contains_key("pte"));
    }

    #[test]
    fn csv_rows_and_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"x\""), "\"say \"\"x\"\"\"");
        let p = 2 << 20;
        let mut raw = cell(p, "range", "sequential", 0, 100);
        raw["faults"] = json!(1);
        let cells = checked(p, vec![raw, cell(p, "vfio-pci", "sequential", 0, 100)]);
        let meta = Meta {
            engine: "qemu".into(),
            kernel_flavour: "bench".into(),
            clock: "icount".into(),
            time_unit: "instructions",
            rounds: 1,
            sizes: vec!["2M".into()],
            orders: vec!["sequential"],
            subjects: vec![],
            git_commit: None,
            git_dirty: None,
            vmm_args: BTreeMap::new(),
            from_reports: true,
            wall_s: None,
        };
        let results = Results::new(meta, cells, vec![]);
        let text = csv(&results);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(header, CSV_COLUMNS);
        let col = |row: usize, name: &str| {
            let i = CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
            lines[row].split(',').nth(i).unwrap().to_owned()
        };
        assert_eq!(col(1, "subject"), "range");
        assert_eq!(col(1, "predicted_faults"), "32");
        assert_eq!(col(1, "valid"), "false");
        assert_eq!(col(2, "driver_faults"), "");
        assert_eq!(col(2, "total_ns"), "200");
        assert_eq!(col(2, "valid"), "true");
    }

    #[test]
    fn targets() {
        assert!(Target::AtMost(1.0).met(1.0));
        assert!(!Target::AtMost(0.5).met(0.51));
        assert!(Target::AtLeast(50.0).met(50.0));
        assert_eq!(Target::AtMost(0.5).text(), "≤ 0.5×");
        assert_eq!(Target::AtLeast(50.0).text(), "≥ 50.0×");
    }
}
