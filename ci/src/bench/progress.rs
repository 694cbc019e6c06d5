//! Running one boot with its progress: vmm's stdout (the guest console) is read line by line;
//! the probe's `rangefault-bench:` lines are echoed with an ETA, everything (stderr too) goes to
//! a log file beside the results.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The probe's prefix for its progress lines.
pub const PREFIX: &str = "rangefault-bench: ";

/// A progress line of the probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// `plan N cells`
    Plan(usize),
    /// `cell I/N SUBJECT ORDER round R`: cell I (1-based) of N is about to be measured.
    Cell {
        index: usize,
        total: usize,
        subject: String,
        order: String,
        round: u64,
    },
}

/// Parses a console line (the prefix may follow other text: the console has no line
/// discipline of ours).
pub fn parse(line: &str) -> Option<Line> {
    let rest = &line[line.find(PREFIX)? + PREFIX.len()..];
    let words: Vec<&str> = rest.split_whitespace().collect();
    match words.as_slice() {
        ["plan", n, "cells"] => Some(Line::Plan(n.parse().ok()?)),
        ["cell", of, subject, order, "round", round] => {
            let (index, total) = of.split_once('/')?;
            Some(Line::Cell {
                index: index.parse().ok()?,
                total: total.parse().ok()?,
                subject: (*subject).to_owned(),
                order: (*order).to_owned(),
                round: round.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// `45s`, `3m10s`, `1h02m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// How one finished boot went, for the next boots' estimates.
#[derive(Clone, Copy, Debug)]
struct Finished {
    /// From starting vmm to the first cell (image, boot, module).
    setup: Duration,
    /// Mean time of a cell.
    per_cell: Option<Duration>,
    cells: usize,
    /// From the last cell to vmm's exit.
    teardown: Duration,
}

/// Progress over all boots and an estimate of what is left.
#[derive(Debug)]
pub struct Tracker {
    boots: usize,
    /// Boots running side by side: the later ones take this many at a time.
    jobs: usize,
    boot: usize,
    boot_started: Instant,
    first_cell: Option<Instant>,
    last_cell: Option<Instant>,
    planned: Option<usize>,
    /// The last cell line's index (1-based): that cell is under way.
    current: usize,
    finished: Vec<Finished>,
}

impl Tracker {
    pub fn new(boots: usize, now: Instant) -> Tracker {
        Tracker {
            boots,
            jobs: 1,
            boot: 0,
            boot_started: now,
            first_cell: None,
            last_cell: None,
            planned: None,
            current: 0,
            finished: Vec::new(),
        }
    }

    /// The run's boots go `jobs` at a time.
    pub fn with_jobs(mut self, jobs: usize) -> Tracker {
        self.jobs = jobs.max(1);
        self
    }

    /// Boot `boot` (0-based) starts now.
    pub fn start_boot(&mut self, boot: usize, now: Instant) {
        self.boot = boot;
        self.boot_started = now;
        self.first_cell = None;
        self.last_cell = None;
        self.planned = None;
        self.current = 0;
    }

    /// The boot ended now.
    pub fn end_boot(&mut self, now: Instant) {
        let Some(first) = self.first_cell else {
            return;
        };
        let done = self.current;
        self.finished.push(Finished {
            setup: first - self.boot_started,
            per_cell: (done > 0).then(|| (now - first) / done as u32),
            cells: self.planned.unwrap_or(done),
            teardown: Duration::ZERO,
        });
    }

    /// The cells the guest's plan line announced in this boot.
    pub fn planned(&self) -> Option<usize> {
        self.planned
    }

    fn per_cell(&self, now: Instant) -> Option<Duration> {
        match self.first_cell {
            Some(first) if self.current > 1 => Some((now - first) / (self.current - 1) as u32),
            _ => {
                let known: Vec<Duration> =
                    self.finished.iter().filter_map(|f| f.per_cell).collect();
                (!known.is_empty()).then(|| known.iter().sum::<Duration>() / known.len() as u32)
            }
        }
    }

    /// What is left of this boot, and of the whole run (`None`: no estimate yet).
    pub fn eta(&self, now: Instant) -> (Option<Duration>, Option<Duration>) {
        let per_cell = self.per_cell(now);
        let boot_left = match (per_cell, self.planned) {
            // The cell of the last line is under way; none is before the first line.
            (Some(p), Some(n)) => {
                let left = if self.current == 0 {
                    n
                } else {
                    (n + 1).saturating_sub(self.current)
                };
                Some(p * left as u32)
            }
            _ => None,
        };
        let later = self.boots.saturating_sub(self.boot + 1).div_ceil(self.jobs) as u32;
        if later == 0 {
            return (boot_left, boot_left);
        }
        let setup = match (self.first_cell, self.finished.is_empty()) {
            (Some(first), true) => Some(first - self.boot_started),
            (_, false) => Some(
                self.finished
                    .iter()
                    .map(|f| f.setup + f.teardown)
                    .sum::<Duration>()
                    / self.finished.len() as u32,
            ),
            (None, true) => None,
        };
        let cells = self
            .planned
            .or_else(|| self.finished.last().map(|f| f.cells));
        let all_left = match (boot_left, setup, per_cell, cells) {
            (Some(left), Some(setup), Some(p), Some(n)) => {
                Some(left + (setup + p * n as u32) * later)
            }
            _ => None,
        };
        (boot_left, all_left)
    }

    /// Takes a progress line; returns what to print.
    pub fn line(&mut self, line: &Line, now: Instant) -> String {
        match line {
            Line::Plan(n) => {
                self.planned = Some(*n);
                format!(
                    "boot {}/{}: the guest plans {n} cells (booted in {})",
                    self.boot + 1,
                    self.boots,
                    duration(now - self.boot_started)
                )
            }
            Line::Cell {
                index,
                total,
                subject,
                order,
                round,
            } => {
                if self.first_cell.is_none() {
                    self.first_cell = Some(now);
                }
                self.last_cell = Some(now);
                self.current = *index;
                self.planned = self.planned.or(Some(*total));
                let (boot_left, all_left) = self.eta(now);
                let eta = match (boot_left, all_left) {
                    (Some(b), Some(a)) if a > b => {
                        format!("ETA boot {}, all {}", duration(b), duration(a))
                    }
                    (Some(b), _) => format!("ETA {}", duration(b)),
                    _ => "ETA after the first cell".to_owned(),
                };
                format!(
                    "boot {}/{}: cell {index}/{total} {subject} {order} round {round}; {eta}",
                    self.boot + 1,
                    self.boots
                )
            }
        }
    }
}

/// Runs `program args`, reading its stdout line by line: progress lines are printed (prefixed
/// `prefix`) as [`Tracker::line`] words them, every line of stdout and stderr goes to `log`,
/// and stderr is passed on to ours (vmm's own messages: image builds, errors).
pub fn run_logged(
    program: &Path,
    args: &[String],
    log: &Path,
    tracker: &mut Tracker,
    prefix: &str,
) -> Result<ExitStatus, String> {
    let file = File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
    let file = Arc::new(Mutex::new(file));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let stderr = child.stderr.take().map(|stderr| {
        let file = Arc::clone(&file);
        std::thread::spawn(move || {
            for line in lines(stderr) {
                eprintln!("{line}");
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(f, "[stderr] {line}");
            }
        })
    });
    if let Some(stdout) = child.stdout.take() {
        for line in lines(stdout) {
            {
                let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(f, "{line}");
            }
            if let Some(progress) = parse(&line) {
                eprintln!("{prefix}{}", tracker.line(&progress, Instant::now()));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {}: {e}", program.display()))?;
    if let Some(thread) = stderr {
        let _ = thread.join();
    }
    tracker.end_boot(Instant::now());
    Ok(status)
}

/// The lines of `reader`, lossily decoded, without their line ends.
fn lines(reader: impl std::io::Read) -> impl Iterator<Item = String> {
    let mut reader = BufReader::new(reader);
    std::iter::from_fn(move || {
        let mut buf = Vec::new();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(
            parse("rangefault-bench: plan 140 cells"),
            Some(Line::Plan(140))
        );
        assert_eq!(
            parse("[  3.1] rangefault-bench: cell 7/140 range-mm random round 2\r"),
            Some(Line::Cell {
                index: 7,
                total: 140,
                subject: "range-mm".into(),
                order: "random".into(),
                round: 2
            })
        );
        assert_eq!(parse("rangefault-bench: cell x/2 a b round 0"), None);
        assert_eq!(parse("RANGEFAULT-RESULT {}"), None);
        assert_eq!(parse("rangefault-bench: plan many cells"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_secs(45)), "45s");
        assert_eq!(duration(Duration::from_secs(190)), "3m10s");
        assert_eq!(duration(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn eta_from_cells_and_past_boots() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let cell = |index| Line::Cell {
            index,
            total: 10,
            subject: "page".into(),
            order: "sequential".into(),
            round: 0,
        };
        let mut t = Tracker::new(2, t0);
        t.start_boot(0, t0);
        t.line(&Line::Plan(10), t0 + s(60));
        let first = t.line(&cell(1), t0 + s(60));
        assert!(first.ends_with("ETA after the first cell"), "{first}");
        // 2 cells took 20 s: 10 s a cell, cells 5..=10 left (6), then a boot of 60 s setup
        // and 10 cells.
        let msg = t.line(&cell(5), t0 + s(100));
        assert_eq!(t.eta(t0 + s(100)), (Some(s(60)), Some(s(60 + 60 + 100))));
        assert!(
            msg.contains("cell 5/10 page sequential round 0; ETA boot 1m00s, all 3m40s"),
            "{msg}"
        );
        t.end_boot(t0 + s(160));
        // The second boot has an estimate before its first cell, from the first.
        t.start_boot(1, t0 + s(160));
        t.line(&Line::Plan(10), t0 + s(200));
        // 5 cells seen in 100 s: 20 s a cell, 10 cells.
        assert_eq!(t.eta(t0 + s(200)).0, Some(s(200)));
    }

    #[test]
    fn a_run_is_logged_and_its_progress_counted() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut t = Tracker::new(1, Instant::now());
        let script = "echo booting; echo 'rangefault-bench: plan 2 cells'; \
                      echo 'rangefault-bench: cell 1/2 page sequential round 0'; \
                      echo oops >&2; printf 'no newline'";
        let status = run_logged(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &log,
            &mut t,
            "test: ",
        )
        .unwrap();
        assert!(status.success());
        assert_eq!(t.planned(), Some(2));
        let text = std::fs::read_to_string(&log).unwrap();
        for line in [
            "booting",
            "rangefault-bench: plan 2 cells",
            "[stderr] oops",
            "no newline",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
    }
}
