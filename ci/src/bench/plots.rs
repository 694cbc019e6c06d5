//! The SVG plots: time to touch per MiB (bars per subject, grouped per page size, one plot per
//! order), the driver's per-fault handler latency per level (histograms per subject and page
//! size), and the touch loop's cost per MiB across page sizes.
//!
//! plotters draws the shapes and writes the SVG; every text is an SVG `<text>` element placed
//! here, in pixels, so no font is needed to lay anything out (plotters' own labels measure text
//! with a font, which the workspace's other plotters users register and this one does not). The
//! log axes are drawn here too: values are plotted as their logarithms.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::cells::{Checked, LEVELS};
use super::model::{format_size, Subject};
use super::results::{Key, Results};
use rangefault_abi::touch::TouchOrder;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), String>;

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 620;
/// The plotting frame inside the picture; the legend goes right of it.
const LEFT: i32 = 90;
const RIGHT: i32 = 840;
const TOP: i32 = 56;
const BOTTOM: i32 = 540;
const FONT: &str = "sans-serif";

/// Subject colours, by rank ([`Subject::rank`]); past the end they repeat.
const PALETTE: [RGBColor; 10] = [
    RGBColor(214, 39, 40),   // page
    RGBColor(255, 127, 14),  // prefault16
    RGBColor(188, 189, 34),  // ttm16
    RGBColor(31, 119, 180),  // range
    RGBColor(44, 160, 44),   // range-mm
    RGBColor(148, 103, 189), // vfio-pci
    RGBColor(127, 127, 127), // eager-remap
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

pub fn colour(subject: Subject) -> RGBColor {
    PALETTE[subject.rank() % PALETTE.len()]
}

/// `colour` lightened toward white by `t` in 0..1.
fn lighten(c: RGBColor, t: f64) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * t).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn err(e: impl std::fmt::Debug) -> String {
    format!("drawing: {e:?}")
}

/// `1`, `10`, `100`, `1k`, `10M`, `1G`: a round number short.
fn si(x: f64) -> String {
    for (unit, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if x >= unit {
            let v = x / unit;
            return if v.fract() == 0.0 {
                format!("{v:.0}{suffix}")
            } else {
                format!("{v:.1}{suffix}")
            };
        }
    }
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// Data coordinates to pixels inside the frame.
struct Frame {
    x: (f64, f64),
    y: (f64, f64),
}

/// A frame with one slot per page size along x (labelled at its middle) over `y`.
fn page_size_axis(sizes: &[u64], y: (f64, f64)) -> (Frame, Vec<(f64, String)>) {
    let frame = Frame {
        x: (0.0, sizes.len() as f64),
        y,
    };
    let ticks = sizes
        .iter()
        .enumerate()
        .map(|(i, &p)| (i as f64 + 0.5, format_size(p)))
        .collect();
    (frame, ticks)
}

impl Frame {
    fn px(&self, x: f64, y: f64) -> (i32, i32) {
        let fx = (x - self.x.0) / (self.x.1 - self.x.0);
        let fy = ((y - self.y.0) / (self.y.1 - self.y.0)).clamp(0.0, 1.0);
        (
            LEFT + (fx * f64::from(RIGHT - LEFT)).round() as i32,
            BOTTOM - (fy * f64::from(BOTTOM - TOP)).round() as i32,
        )
    }
}

fn text(area: &Area, s: &str, at: (i32, i32), size: f64, h: HPos, v: VPos) -> Drawn {
    let style = TextStyle::from((FONT, size).into_font())
        .color(&BLACK)
        .pos(Pos::new(h, v));
    area.draw(&Text::new(s.to_owned(), at, style)).map_err(err)
}

fn vertical_text(area: &Area, s: &str, at: (i32, i32), size: f64) -> Drawn {
    let style = TextStyle::from((FONT, size).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Center))
        .transform(FontTransform::Rotate270);
    area.draw(&Text::new(s.to_owned(), at, style)).map_err(err)
}

/// Title, frame, the y axis in decades (its values are log10), x ticks at `x_ticks`, and the
/// axis titles.
fn axes(
    area: &Area,
    frame: &Frame,
    title: &str,
    x_title: &str,
    y_title: &str,
    x_ticks: &[(f64, String)],
) -> Drawn {
    area.fill(&WHITE).map_err(err)?;
    text(
        area,
        title,
        (i32::try_from(WIDTH / 2).unwrap_or(0), 14),
        20.0,
        HPos::Center,
        VPos::Top,
    )?;
    let grid = RGBColor(220, 220, 220);
    let mut decade = frame.y.0.ceil();
    while decade <= frame.y.1 + 1e-9 {
        let (x0, y) = frame.px(frame.x.0, decade);
        let (x1, _) = frame.px(frame.x.1, decade);
        area.draw(&PathElement::new(vec![(x0, y), (x1, y)], grid))
            .map_err(err)?;
        text(
            area,
            &si(10f64.powf(decade)),
            (x0 - 8, y),
            13.0,
            HPos::Right,
            VPos::Center,
        )?;
        decade += 1.0;
    }
    for (x, label) in x_ticks {
        let (px, py) = frame.px(*x, frame.y.0);
        area.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK))
            .map_err(err)?;
        text(area, label, (px, py + 8), 13.0, HPos::Center, VPos::Top)?;
    }
    area.draw(&Rectangle::new(
        [(LEFT, TOP), (RIGHT, BOTTOM)],
        BLACK.stroke_width(1),
    ))
    .map_err(err)?;
    text(
        area,
        x_title,
        ((LEFT + RIGHT) / 2, BOTTOM + 34),
        15.0,
        HPos::Center,
        VPos::Top,
    )?;
    vertical_text(area, y_title, (22, (TOP + BOTTOM) / 2), 15.0)
}

/// The legend, right of the frame: a swatch and a name per entry.
fn legend(area: &Area, entries: &[(RGBColor, String)]) -> Drawn {
    let x = RIGHT + 20;
    for (i, (c, name)) in entries.iter().enumerate() {
        let y = TOP + 6 + 20 * i32::try_from(i).unwrap_or(0);
        area.draw(&Rectangle::new([(x, y), (x + 14, y + 12)], c.filled()))
            .map_err(err)?;
        text(area, name, (x + 20, y + 6), 13.0, HPos::Left, VPos::Center)?;
    }
    Ok(())
}

/// A picture with nothing to show but why.
fn empty(area: &Area, title: &str, why: &str) -> Drawn {
    area.fill(&WHITE).map_err(err)?;
    text(
        area,
        title,
        (i32::try_from(WIDTH / 2).unwrap_or(0), 14),
        20.0,
        HPos::Center,
        VPos::Top,
    )?;
    text(
        area,
        why,
        ((LEFT + RIGHT) / 2, (TOP + BOTTOM) / 2),
        16.0,
        HPos::Center,
        VPos::Center,
    )
}

/// Draws into an SVG string and writes it to `path`.
fn write_svg(path: &Path, draw: impl FnOnce(&Area) -> Drawn) -> Result<(), String> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&area)?;
        area.present().map_err(err)?;
    }
    std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The log10 range that holds `values` (positive ones), a little widened.
fn log_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let logs: Vec<f64> = values
        .into_iter()
        .filter(|v| *v > 0.0 && v.is_finite())
        .map(f64::log10)
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return None;
    }
    let lo = (lo - 0.15).floor();
    let hi = (hi + 0.15).ceil().max(lo + 1.0);
    Some((lo, hi))
}

fn y_title(results: &Results, what: &str) -> String {
    format!("{what} ({}, log scale)", results.units().per_mib())
}

/// Bars of map + touch per MiB (median, with the rounds' min–max), one per subject, grouped per
/// page size, for one order.
pub fn touch(results: &Results, order: TouchOrder, path: &Path) -> Result<(), String> {
    let sizes = results.sizes();
    let subjects = results.subjects();
    let value = |page_size, subject| {
        results.summary(Key {
            page_size,
            subject,
            order,
        })
    };
    let title = format!(
        "Time to map and touch, per MiB, {} order ({})",
        order.name(),
        results.units().time()
    );
    let all: Vec<f64> = sizes
        .iter()
        .flat_map(|&p| subjects.iter().map(move |&s| (p, s)))
        .filter_map(|(p, s)| value(p, s))
        .flat_map(|s| [s.total_ns_per_mib.min, s.total_ns_per_mib.max])
        .collect();
    let Some(y) = log_range(all) else {
        return write_svg(path, |a| empty(a, &title, "not measured"));
    };
    let (frame, ticks) = page_size_axis(&sizes, y);
    write_svg(path, |area| {
        axes(
            area,
            &frame,
            &title,
            "preferred page size",
            &y_title(results, "map + touch"),
            &ticks,
        )?;
        let width = 0.8 / subjects.len().max(1) as f64;
        for (g, &page_size) in sizes.iter().enumerate() {
            for (j, &subject) in subjects.iter().enumerate() {
                let Some(s) = value(page_size, subject) else {
                    continue;
                };
                let v = s.total_ns_per_mib;
                if v.median <= 0.0 || !v.median.is_finite() {
                    continue;
                }
                let x0 = g as f64 + 0.1 + j as f64 * width;
                let (px0, py) = frame.px(x0 + width * 0.05, v.median.log10());
                let (px1, base) = frame.px(x0 + width * 0.95, frame.y.0);
                area.draw(&Rectangle::new(
                    [(px0, py), (px1, base)],
                    colour(subject).filled(),
                ))
                .map_err(err)?;
                if v.min > 0.0 && v.max > v.min {
                    let (cx, lo) = frame.px(x0 + width / 2.0, v.min.log10());
                    let (_, hi) = frame.px(x0 + width / 2.0, v.max.log10());
                    let cap = ((px1 - px0) / 4).max(1);
                    for line in [
                        vec![(cx, lo), (cx, hi)],
                        vec![(cx - cap, lo), (cx + cap, lo)],
                        vec![(cx - cap, hi), (cx + cap, hi)],
                    ] {
                        area.draw(&PathElement::new(line, BLACK)).map_err(err)?;
                    }
                }
            }
        }
        let entries: Vec<(RGBColor, String)> = subjects
            .iter()
            .map(|&s| (colour(s), s.name().to_owned()))
            .collect();
        legend(area, &entries)
    })
}

/// The order the per-fault latency and per-MiB plots use: sequential where measured.
pub fn main_order(results: &Results) -> Option<TouchOrder> {
    let orders = results.orders();
    orders
        .iter()
        .copied()
        .find(|&o| o == TouchOrder::Sequential)
        .or_else(|| orders.first().copied())
}

/// One histogram: bucket index (covers `[2^i, 2^(i+1))`) → count.
type Histogram = std::collections::BTreeMap<u32, u64>;

/// The histograms of `level` summed over rounds, per (subject, page size) with faults there.
pub fn latency_series(
    cells: &[Checked],
    level: &str,
    order: TouchOrder,
) -> Vec<(Subject, u64, Histogram)> {
    let mut series: Vec<(Subject, u64, Histogram)> = Vec::new();
    for c in cells {
        let (Some(subject), Some(o)) = (c.subject, c.order) else {
            continue;
        };
        if o != order {
            continue;
        }
        let Some(l) = c
            .cell
            .driver
            .as_ref()
            .and_then(|d| d.fault_latency.level(level))
        else {
            continue;
        };
        if l.count == 0 {
            continue;
        }
        let i = match series
            .iter()
            .position(|(s, p, _)| *s == subject && *p == c.cell.page_size)
        {
            Some(i) => i,
            None => {
                series.push((subject, c.cell.page_size, Histogram::new()));
                series.len() - 1
            }
        };
        for &(upper, count) in &l.histogram {
            if upper >= 2 {
                *series[i].2.entry(upper.ilog2() - 1).or_default() += count;
            }
        }
    }
    series.retain(|(_, _, h)| h.values().any(|&n| n > 0));
    series.sort_by_key(|(s, p, _)| (s.rank(), *p));
    series
}

/// Per-fault handler latency at `level`: a step histogram per (subject, page size).
pub fn latency(results: &Results, level: &str, path: &Path) -> Result<(), String> {
    let unit = results.units().time();
    let Some(order) = main_order(results) else {
        let title = format!("Fault handler latency, {level} faults");
        return write_svg(path, |a| empty(a, &title, "not measured"));
    };
    let title = format!(
        "Fault handler latency, {level} faults, {} order, all rounds",
        order.name()
    );
    let series = latency_series(&results.cells, level, order);
    let buckets = series.iter().flat_map(|(_, _, h)| h.keys().copied());
    let (Some(lo), Some(hi)) = (buckets.clone().min(), buckets.max()) else {
        return write_svg(path, |a| {
            empty(
                a,
                &title,
                &format!("no fault inserted at the {level} level"),
            )
        });
    };
    let counts = series
        .iter()
        .flat_map(|(_, _, h)| h.values().map(|&n| n as f64));
    let Some((_, y_hi)) = log_range(counts) else {
        return write_svg(path, |a| empty(a, &title, "no fault"));
    };
    // Below 1 (log 0): empty buckets sit on the floor.
    let floor = -0.5;
    let frame = Frame {
        x: (f64::from(lo), f64::from(hi + 1)),
        y: (floor, y_hi),
    };
    let step = ((hi + 1 - lo) / 12).max(1);
    let ticks: Vec<(f64, String)> = (lo..=hi + 1)
        .step_by(step as usize)
        .map(|i| (f64::from(i), si(2f64.powi(i as i32))))
        .collect();
    let sizes = results.sizes();
    write_svg(path, |area| {
        axes(
            area,
            &frame,
            &title,
            &format!("handler time per fault ({unit}; buckets [2^i, 2^(i+1)))"),
            "faults (log scale; the floor is 0)",
            &ticks,
        )?;
        let mut entries = Vec::new();
        for (subject, page_size, h) in &series {
            let shade = sizes.iter().position(|p| p == page_size).unwrap_or(0) as f64
                / sizes.len().max(1) as f64
                * 0.55;
            let c = lighten(colour(*subject), shade);
            let first = *h.keys().next().unwrap_or(&lo);
            let last = *h.keys().last().unwrap_or(&hi);
            let y_of = |n: u64| if n == 0 { floor } else { (n as f64).log10() };
            let mut points = vec![frame.px(f64::from(first), floor)];
            for i in first..=last {
                let y = y_of(h.get(&i).copied().unwrap_or(0));
                points.push(frame.px(f64::from(i), y));
                points.push(frame.px(f64::from(i + 1), y));
            }
            points.push(frame.px(f64::from(last + 1), floor));
            area.draw(&PathElement::new(points, c.stroke_width(2)))
                .map_err(err)?;
            entries.push((c, format!("{} {}", subject.name(), format_size(*page_size))));
        }
        legend(area, &entries)
    })
}

/// The touch loop's cost per MiB (median) across page sizes, a line per subject.
pub fn per_mib(results: &Results, path: &Path) -> Result<(), String> {
    let units = results.units();
    let what = if units.icount {
        "Guest instructions per MiB touched"
    } else {
        "Guest ns per MiB touched"
    };
    let Some(order) = main_order(results) else {
        return write_svg(path, |a| empty(a, what, "not measured"));
    };
    let title = format!("{what} (touch loop), {} order", order.name());
    let sizes = results.sizes();
    let subjects = results.subjects();
    let point = |i: usize, subject| {
        let s = results.summary(Key {
            page_size: sizes[i],
            subject,
            order,
        })?;
        let v = s.touch_ns_per_mib.median;
        (v > 0.0).then(|| (i as f64 + 0.5, v.log10()))
    };
    let values = results
        .summaries
        .iter()
        .filter(|s| s.key.is_some_and(|k| k.order == order))
        .map(|s| s.touch_ns_per_mib.median);
    let Some(y) = log_range(values) else {
        return write_svg(path, |a| empty(a, &title, "not measured"));
    };
    let (frame, ticks) = page_size_axis(&sizes, y);
    write_svg(path, |area| {
        axes(
            area,
            &frame,
            &title,
            "preferred page size",
            &y_title(results, "touch"),
            &ticks,
        )?;
        let mut entries = Vec::new();
        for &subject in &subjects {
            let c = colour(subject);
            let points: Vec<(i32, i32)> = (0..sizes.len())
                .filter_map(|i| point(i, subject))
                .map(|(x, y)| frame.px(x, y))
                .collect();
            if points.is_empty() {
                continue;
            }
            area.draw(&PathElement::new(points.clone(), c.stroke_width(2)))
                .map_err(err)?;
            for p in points {
                area.draw(&Circle::new(p, 4, c.filled())).map_err(err)?;
            }
            entries.push((c, subject.name().to_owned()));
        }
        legend(area, &entries)
    })
}

/// `instructions-per-mib.svg` under icount, `guest-ns-per-mib.svg` under the real clock.
pub fn per_mib_file(results: &Results) -> &'static str {
    if results.units().icount {
        "instructions-per-mib.svg"
    } else {
        "guest-ns-per-mib.svg"
    }
}

/// Writes every plot into `out`; returns the paths.
pub fn write_all(results: &Results, out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    let path = out.join("touch.svg");
    touch(results, TouchOrder::Sequential, &path)?;
    written.push(path);
    for order in results.orders() {
        if order != TouchOrder::Sequential {
            let path = out.join(format!("touch-{}.svg", order.name()));
            touch(results, order, &path)?;
            written.push(path);
        }
    }
    for level in LEVELS {
        let path = out.join(format!("latency-{level}.svg"));
        latency(results, level, &path)?;
        written.push(path);
    }
    let path = out.join(per_mib_file(results));
    per_mib(results, &path)?;
    written.push(path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(si(1.0), "1");
        assert_eq!(si(1000.0), "1k");
        assert_eq!(si(1500.0), "1.5k");
        assert_eq!(si(1e9), "1G");
        assert_eq!(si(0.5), "0.5");
    }

    #[test]
    fn log_ranges_hold_their_values() {
        assert_eq!(log_range([100.0, 5000.0]), Some((1.0, 4.0)));
        assert_eq!(log_range([1000.0]), Some((2.0, 4.0)));
        assert_eq!(log_range([0.0, f64::NAN]), None);
    }
}
