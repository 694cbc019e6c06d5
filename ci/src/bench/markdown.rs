//! `results.md`: the headline table, then one table per touch order with a row per page size ×
//! subject.

use std::fmt::Write as _;

use super::model::Subject;
use super::results::{Results, Stat, Summary};

/// `12345`, `0.5`: integers without decimals, small values with three significant places.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// A ratio: `0.432×`, `39.4×`, `378×`.
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let text = if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    };
    format!("{text}×")
}

/// `1234 (1200–1300)`, or the value alone when every round agrees.
pub fn with_spread(s: &Stat) -> String {
    if s.min == s.max {
        number(s.median)
    } else {
        format!("{} ({}–{})", number(s.median), number(s.min), number(s.max))
    }
}

/// `0.432× (0.404–0.778)`.
pub fn ratio_with_spread(s: &Stat) -> String {
    format!("{} ({}–{})", ratio(s.median), trim_x(s.min), trim_x(s.max))
}

fn trim_x(x: f64) -> String {
    ratio(x).trim_end_matches('×').to_owned()
}

fn opt(s: Option<&Stat>) -> String {
    s.map(with_spread).unwrap_or_else(|| "–".into())
}

/// The Markdown document.
pub fn render(results: &Results) -> String {
    let meta = &results.meta;
    let units = results.units();
    let unit = units.time();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# fault-bench: engine `{}`, kernel flavour `{}`, clock `{}`\n",
        meta.engine, meta.kernel_flavour, meta.clock
    );
    let _ = writeln!(
        md,
        "Written by `fault-bench`{}. Sizes {}; orders {}; {} rounds{}. Every time is in \
         **{}**. Each cell maps the device afresh, touches one word per 4 KiB page in the \
         order named (`strided`: one page every 2 MiB + 4 KiB) and unmaps; `total` is map + \
         touch. Values are medians over the rounds (min–max in brackets); ratios are medians \
         of per-round ratios (the two cells of the same round, size and order), min–max in \
         brackets. Fault counts are checked exactly against the model (`ci/src/bench/model.rs`).\n",
        if meta.from_reports {
            " (from saved reports)"
        } else {
            ""
        },
        meta.sizes.join(", "),
        meta.orders.join(", "),
        meta.rounds,
        meta.git_commit
            .as_ref()
            .map(|c| format!(
                "; commit `{}`{}",
                &c[..c.len().min(12)],
                if meta.git_dirty == Some(true) {
                    " (with local changes)"
                } else {
                    ""
                }
            ))
            .unwrap_or_else(|| "; commit not recorded in the reports".into()),
        units.time_long(),
    );
    if !results.problems.is_empty() {
        let _ = writeln!(md, "## Problems ({})\n", results.problems.len());
        for p in &results.problems {
            let _ = writeln!(md, "- {p}");
        }
        md.push('\n');
    }
    headline(&mut md, results);
    for order in results.orders() {
        let _ = writeln!(md, "## Order `{}`\n", order.name());
        let baselines: Vec<Subject> = ["ttm16", "vfio-pci"]
            .iter()
            .filter_map(|n| Subject::from_name(n))
            .filter(|s| results.subjects().contains(s))
            .collect();
        let _ = write!(
            md,
            "| page size | subject | faults (model) | faults (minflt) | driver faults | \
             map {unit} | touch {unit} | total {unit} | total {unit}/MiB | VmPTE bytes | \
             handler {unit} pte / pmd / pud |"
        );
        for b in &baselines {
            let _ = write!(md, " total vs {} |", b.name());
        }
        md.push('\n');
        md.push_str(&"|---".repeat(11 + baselines.len()));
        md.push_str("|\n");
        for s in results
            .summaries
            .iter()
            .filter(|s| s.key.is_some_and(|k| k.order == order))
        {
            row(&mut md, s, &baselines);
        }
        md.push('\n');
    }
    md
}

fn row(md: &mut String, s: &Summary, baselines: &[Subject]) {
    let levels: Vec<String> = ["pte", "pmd", "pud"]
        .iter()
        .map(|l| {
            s.handler_ns_per_level
                .get(l)
                .map(|x| number(x.median))
                .unwrap_or_else(|| "–".into())
        })
        .collect();
    let _ = write!(
        md,
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        s.page_size_name,
        s.subject,
        s.predicted_faults
            .map(|f| f.to_string())
            .unwrap_or_else(|| "–".into()),
        with_spread(&s.faults),
        opt(s.driver_faults.as_ref()),
        with_spread(&s.map_ns),
        with_spread(&s.touch_ns),
        with_spread(&s.total_ns),
        number(s.total_ns_per_mib.median),
        with_spread(&s.vm_pte_bytes),
        if s.handler_ns.is_some() {
            levels.join(" / ")
        } else {
            "–".into()
        },
    );
    for b in baselines {
        let cell = s
            .total_vs
            .get(b.name())
            .map(ratio_with_spread)
            .unwrap_or_else(|| "–".into());
        let _ = write!(md, " {cell} |");
    }
    md.push('\n');
}

fn headline(md: &mut String, results: &Results) {
    let orders: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for h in &results.headline {
            if !v.contains(&h.order) {
                v.push(h.order);
            }
        }
        v
    };
    let _ = writeln!(
        md,
        "## Headline ({} order{})\n\n\
         End to end: map + touch of the whole mapping, per round, then the median of the \
         per-round ratios. `range` is the stock exports' range insertion; `range-mm` is \
         `vmf_insert_range`. The handler column is the same ratio of the driver's own handler \
         time, where both sides have one.\n",
        orders.join(" and "),
        if orders.len() > 1 { "s" } else { "" }
    );
    md.push_str(
        "| comparison | order | page size | ratio (min–max) | handler ratio | target | verdict |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for h in &results.headline {
        let (ratio_text, verdict) = match (&h.ratio, h.met) {
            (None, _) => ("not measured".to_owned(), "not measured"),
            (Some(r), Some(true)) => (ratio_with_spread(r), "met"),
            (Some(r), Some(false)) => (ratio_with_spread(r), "**not met**"),
            (Some(r), None) => (ratio_with_spread(r), "–"),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            h.what,
            h.order,
            h.page_size_name,
            ratio_text,
            h.handler_ratio
                .as_ref()
                .map(ratio_with_spread)
                .unwrap_or_else(|| "–".into()),
            h.target.map(|t| t.text()).unwrap_or_else(|| "–".into()),
            verdict
        );
    }
    md.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ratios() {
        assert_eq!(number(1234.0), "1234");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(0.4321), "0.432");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(f64::NAN), "–");
        assert_eq!(ratio(0.4321), "0.432×");
        assert_eq!(ratio(39.44), "39.4×");
        assert_eq!(ratio(378.9), "379×");
        let s = Stat {
            median: 0.5,
            min: 0.25,
            max: 3.0,
            n: 3,
        };
        assert_eq!(ratio_with_spread(&s), "0.500× (0.250–3.000)");
        assert_eq!(with_spread(&s), "0.500 (0.250–3)");
        let same = Stat {
            median: 512.0,
            min: 512.0,
            max: 512.0,
            n: 5,
        };
        assert_eq!(with_spread(&same), "512");
    }
}
