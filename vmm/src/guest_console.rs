//! Reads the guest's serial console: echoes it, collects the results the
//! guest tools print (`RANGEFAULT-*` lines) and flags kernel trouble.

use std::time::{Duration, Instant};

use serde_json::Value;

/// Kernel log fragments that mean the guest kernel misbehaved. A boot test
/// fails on any of them, whatever the scenario reported.
const PROBLEM_MARKERS: &[&str] = &[
    "Oops",
    "BUG:",
    "WARNING:",
    "Kernel panic",
    "general protection fault",
    "Unable to handle",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "suspicious RCU usage",
    "Call Trace:",
    "kernel BUG",
];

/// Longest console line kept whole; longer output is cut into lines of this size.
pub const MAX_LINE: usize = 64 << 10;
/// Most results, errors and problem lines kept each (a guest printing "WARNING:" in a loop must
/// not grow host memory); what is dropped beyond is counted.
const MAX_ENTRIES: usize = 1000;

/// What the guest said, as far as the host cares.
#[derive(Debug, Default)]
pub struct GuestConsole {
    pub results: Vec<Value>,
    pub errors: Vec<String>,
    pub exit_code: Option<i32>,
    /// The driver's "bound:" line and when it arrived.
    pub bound_line: Option<String>,
    pub bound_after: Option<Duration>,
    pub problems: Vec<String>,
    /// Results, errors and problem lines beyond `MAX_ENTRIES`, not kept.
    pub dropped: u64,
    started: Option<Instant>,
}

impl GuestConsole {
    pub fn new(started: Instant) -> Self {
        Self {
            started: Some(started),
            ..Self::default()
        }
    }

    /// Takes one console line (without its line ending).
    pub fn feed(&mut self, raw: &str) {
        let line = raw.trim_end_matches(['\r', '\n']);
        let text = strip_timestamp(line);
        if let Some(json) = text.strip_prefix("RANGEFAULT-RESULT ") {
            match serde_json::from_str(json) {
                Ok(value) => keep(&mut self.results, value, &mut self.dropped),
                Err(e) => keep(
                    &mut self.errors,
                    format!("unparseable result line ({e}): {json}"),
                    &mut self.dropped,
                ),
            }
        } else if let Some(message) = text.strip_prefix("RANGEFAULT-ERROR ") {
            keep(&mut self.errors, message.to_owned(), &mut self.dropped);
        } else if let Some(code) = text.strip_prefix("RANGEFAULT-EXIT ") {
            self.exit_code = Some(code.trim().parse().unwrap_or(255));
        } else if text.contains("rangefault") && text.contains(" bound:") {
            self.bound_line = Some(text.to_owned());
            self.bound_after = self.started.map(|s| s.elapsed());
        }
        if PROBLEM_MARKERS.iter().any(|m| text.contains(m)) {
            keep(&mut self.problems, text.to_owned(), &mut self.dropped);
        }
    }

    /// `key=value` from the driver's bound line, e.g. `vram`.
    pub fn bound_value(&self, key: &str) -> Option<&str> {
        let line = self.bound_line.as_deref()?;
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_end_matches(','))
    }
}

/// Pushes `item` unless `list` is full, counting what is dropped.
fn keep<T>(list: &mut Vec<T>, item: T, dropped: &mut u64) {
    if list.len() < MAX_ENTRIES {
        list.push(item);
    } else {
        *dropped += 1;
    }
}

/// Drops printk's "[    1.234567] " prefix.
fn strip_timestamp(line: &str) -> &str {
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((stamp, tail)) = rest.split_once(']') {
            if stamp.trim().parse::<f64>().is_ok() {
                return tail.trim_start();
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(lines: &[&str]) -> GuestConsole {
        let mut c = GuestConsole::new(Instant::now());
        for l in lines {
            c.feed(l);
        }
        c
    }

    #[test]
    fn collects_results_exit_and_bound_line() {
        let c = console(&[
            "[    1.000000] rangefault 0000:00:03.0: bound: vram=1073741824 page_size=2097152 bar2=0xfe00000000 abi=1\r",
            "RANGEFAULT-RESULT {\"scenario\":\"skeleton\",\"pass\":true}",
            "RANGEFAULT-EXIT 0",
        ]);
        assert_eq!(c.results.len(), 1);
        assert_eq!(c.exit_code, Some(0));
        assert_eq!(c.bound_value("vram"), Some("1073741824"));
        assert_eq!(c.bound_value("bar2"), Some("0xfe00000000"));
        assert!(c.problems.is_empty());
    }

    #[test]
    fn flags_kernel_problems_and_bad_json() {
        let c = console(&[
            "[    2.5] WARNING: CPU: 0 PID: 1 at mm/memory.c:123 insert_pfn",
            "[    2.6] BUG: sleeping function called from invalid context",
            "RANGEFAULT-RESULT {not json",
        ]);
        assert_eq!(c.problems.len(), 2);
        assert_eq!(c.errors.len(), 1);
        assert!(c.results.is_empty());
    }

    #[test]
    fn a_flood_of_problem_lines_is_capped_and_counted() {
        let mut c = GuestConsole::new(Instant::now());
        for _ in 0..MAX_ENTRIES + 5 {
            c.feed("WARNING: again");
        }
        assert_eq!(c.problems.len(), MAX_ENTRIES);
        assert_eq!(c.dropped, 5);
    }

    #[test]
    fn garbage_exit_code_is_a_failure() {
        assert_eq!(console(&["RANGEFAULT-EXIT x"]).exit_code, Some(255));
    }
}
