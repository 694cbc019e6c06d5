//! `vmm run --trace`: the guest's fault trace (the driver's `rangefault` trace events and the
//! kernel's `exceptions:page_fault_user`, read from tracefs and sent gzipped over the guest's
//! second serial port) turned into a Chrome JSON trace for Perfetto, a summary for the report
//! and a PNG.

mod chrome;
mod faults;
mod ftrace;
mod plot;
mod summary;

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

pub use summary::TraceSummary;

/// What `--trace` produced, for the report.
#[derive(Debug, Serialize, Deserialize)]
pub struct TraceReport {
    pub file: PathBuf,
    /// The PNG beside it, unless it could not be drawn (`plot_error` says why).
    pub plot: Option<PathBuf>,
    pub plot_error: Option<String>,
    #[serde(flatten)]
    pub summary: TraceSummary,
}

/// Reads the gzipped trace the guest sent to `serial`, writes the Chrome JSON trace to `out`
/// and the PNG beside it. `title` heads the plot.
pub fn convert(serial: &Path, out: &Path, title: &str) -> Result<TraceReport> {
    let compressed = std::fs::read(serial)
        .with_context(|| format!("the guest sent no trace ({})", serial.display()))?;
    anyhow::ensure!(
        !compressed.is_empty(),
        "the guest sent no trace (its ttyS1 stayed silent)"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(&compressed[..])
        .read_to_string(&mut text)
        .context("the trace the guest sent is not complete gzip text")?;
    let trace = ftrace::parse(&text).context("the guest's trace")?;
    let story = faults::story(&trace.records);
    let summary = summary::summarize(&story, trace.records.len() as u64, trace.lost_events());

    let json = chrome::trace_events(&story, trace.lost_events());
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer = BufWriter::new(file);
    serde_json::to_writer(&mut writer, &json)?;
    writer.write_all(b"\n")?;
    writer
        .flush()
        .with_context(|| format!("cannot write {}", out.display()))?;

    let png = out.with_extension("png");
    let (plot, plot_error) = match plot::write_png(&story, &png, title) {
        Ok(()) => (Some(png), None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    Ok(TraceReport {
        file: out.to_owned(),
        plot,
        plot_error,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn convert_bytes(bytes: &[u8]) -> Result<TraceReport> {
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("trace.gz");
        std::fs::write(&serial, bytes).unwrap();
        convert(&serial, &dir.path().join("t.json"), "test")
    }

    #[test]
    fn an_empty_cut_or_foreign_trace_is_an_error() {
        let silent = convert_bytes(b"").unwrap_err();
        assert!(
            format!("{silent:#}").contains("sent no trace"),
            "{silent:#}"
        );
        let full = gzip(b"# entries-in-buffer/entries-written: 0/0   #P:1\n");
        let cut = convert_bytes(&full[..full.len() - 6]).unwrap_err();
        assert!(format!("{cut:#}").contains("not complete gzip"), "{cut:#}");
        let foreign = convert_bytes(&gzip(b"hello\n")).unwrap_err();
        assert!(
            format!("{foreign:#}").contains("not an ftrace event line"),
            "{foreign:#}"
        );
        let headless = convert_bytes(&gzip(b"# tracer: nop\n")).unwrap_err();
        assert!(
            format!("{headless:#}").contains("not a tracefs trace"),
            "{headless:#}"
        );
    }

    #[test]
    fn a_trace_becomes_chrome_json_with_one_fault_event_per_fault() {
        let text = "# entries-in-buffer/entries-written: 4/9   #P:2\n\
 p-9 (      9) [001] d....    1.000010: page_fault_user: address=0x7f0000000240 ip=0x1 error_code=0x4\n\
 p-9 (      9) [001] .....    1.000020: rangefault_fault_enter: va=0x7f0000000000 off=0x0 handler=huge_pmd flags=USER\n\
 p-9 (      9) [001] .....    1.000030: rangefault_fault_exit: va=0x7f0000000000 off=0x0 strategy=range level=pmd ptes=0 pmds=1 puds=0 result=NOPAGE ns=9000\n\
 p-9 (      9) [001] ...2.    1.000040: tracing_mark_write: B|9|touch\n";
        let dir = tempfile::tempdir().unwrap();
        let serial = dir.path().join("trace.gz");
        std::fs::write(&serial, gzip(text.as_bytes())).unwrap();
        let out = dir.path().join("t.json");
        let report = convert(&serial, &out, "test").unwrap();
        assert_eq!((report.summary.faults, report.summary.lost_events), (1, 5));
        let pmd = &report.summary.by_level["pmd"];
        assert_eq!(pmd.handler_ns.unwrap().max, 9000);
        assert_eq!(pmd.end_to_end_ns.unwrap().max, 20_000);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let events = json["traceEvents"].as_array().unwrap();
        let of = |cat: &str| events.iter().filter(|e| e["cat"] == cat).count();
        assert_eq!(
            (of("fault"), of("handler"), of("cpu"), of("phase")),
            (1, 1, 1, 1)
        );
        let fault = events.iter().find(|e| e["cat"] == "fault").unwrap();
        assert_eq!(
            (fault["ts"].as_f64(), fault["dur"].as_f64()),
            (Some(1_000_010.0), Some(20.0))
        );
        assert_eq!(json["otherData"]["lost_events"], 5);
    }
}
