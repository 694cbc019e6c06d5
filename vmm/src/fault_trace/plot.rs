//! A PNG of the trace: every fault's handler time over the run, by level, on a log scale. What
//! Perfetto shows interactively, as a picture for documents (the README's).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::faults::Story;

/// Debian's fonts-dejavu-core; plotters draws text with a font it is given.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn register_font_once() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT).map_err(|e| {
                format!("cannot read {FONT} (Debian package fonts-dejavu-core): {e}")
            })?;
            register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(bytes.into_boxed_slice()),
            )
            .map_err(|_| format!("{FONT} is not a font plotters can use"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

const LEVELS: [(&str, RGBColor); 4] = [
    ("pte", RGBColor(31, 119, 180)),
    ("pmd", RGBColor(44, 160, 44)),
    ("pud", RGBColor(214, 39, 40)),
    ("none", RGBColor(127, 127, 127)),
];

pub fn write_png(story: &Story, path: &Path, title: &str) -> Result<()> {
    register_font_once()?;
    let faults = &story.faults;
    let first = faults.first().map_or(0, |f| f.start_ns());
    let ms = |ns: u64| (ns - first) as f64 / 1e6;
    let x_end = faults.iter().map(|f| ms(f.end_ns())).fold(1.0, f64::max);
    let handler_us = |ns: u64| (ns as f64 / 1000.0).max(0.1);
    let y_max = faults
        .iter()
        .map(|f| handler_us(f.last().ns))
        .fold(10.0, f64::max)
        * 2.0;

    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_end * 1.02, (0.1..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("time since the first fault (ms, guest clock)")
        .y_desc("time in the handler (µs, log)")
        .label_style(("sans-serif", 15))
        .x_label_formatter(&|ms| format!("{ms:.0}"))
        .y_label_formatter(&|us| format!("{us}"))
        .draw()?;
    for (level, color) in LEVELS {
        let points: Vec<(f64, f64)> = faults
            .iter()
            .filter(|f| f.last().level == level)
            .map(|f| (ms(f.start_ns()), handler_us(f.last().ns)))
            .collect();
        if points.is_empty() {
            continue;
        }
        let label = format!("{level} ({} faults)", points.len());
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 2, color.filled())),
            )?
            .label(label)
            .legend(move |(x, y)| Circle::new((x, y), 4, color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
