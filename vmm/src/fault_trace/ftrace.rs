//! The guest's trace buffer as tracefs's `trace` file prints it (the `nop` tracer with
//! `record-tgid`): a commented header, then one line per event.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ParseError {
    #[error("line {line}: not an ftrace event line: {text:?}")]
    Malformed { line: usize, text: String },
    #[error(
        "the trace has no `entries-in-buffer/entries-written` header: not a tracefs trace file"
    )]
    NoHeader,
}

/// One event line: `<task>-<pid> (<tgid>) [<cpu>] <flags> <secs>.<usecs>: <event>: <fields>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub task: &'a str,
    pub pid: u32,
    /// `None` where tracefs had not recorded the task's process (printed as dashes).
    pub tgid: Option<u32>,
    pub cpu: u32,
    /// The trace clock (tracefs prints microseconds), in nanoseconds.
    pub ts_ns: u64,
    pub event: &'a str,
    pub fields: &'a str,
}

impl<'a> Record<'a> {
    /// The value of `key=value` among the fields (space separated, values without spaces).
    pub fn field(&self, key: &str) -> Option<&'a str> {
        self.fields.split(' ').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// A numeric field, decimal or `0x` hex.
    pub fn number(&self, key: &str) -> Option<u64> {
        let value = self.field(key)?;
        match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => value.parse().ok(),
        }
    }
}

/// A parsed trace file.
#[derive(Debug)]
pub struct Trace<'a> {
    /// Events the ring buffer held when read, and events written to it: the difference was
    /// overwritten (the buffer was too small).
    pub entries_in_buffer: u64,
    pub entries_written: u64,
    pub records: Vec<Record<'a>>,
}

impl Trace<'_> {
    pub fn lost_events(&self) -> u64 {
        self.entries_written.saturating_sub(self.entries_in_buffer)
    }
}

pub fn parse(text: &str) -> Result<Trace<'_>, ParseError> {
    let mut header = None;
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(comment) = line.strip_prefix('#') {
            header = header.or_else(|| entries_header(comment));
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        records.push(record(line).ok_or_else(|| ParseError::Malformed {
            line: index + 1,
            text: line.chars().take(200).collect(),
        })?);
    }
    let (entries_in_buffer, entries_written) = header.ok_or(ParseError::NoHeader)?;
    Ok(Trace {
        entries_in_buffer,
        entries_written,
        records,
    })
}

/// `# entries-in-buffer/entries-written: 3124/3124   #P:2`
fn entries_header(comment: &str) -> Option<(u64, u64)> {
    let rest = comment
        .trim()
        .strip_prefix("entries-in-buffer/entries-written:")?;
    let counts = rest.split_whitespace().next()?;
    let (held, written) = counts.split_once('/')?;
    Some((held.parse().ok()?, written.parse().ok()?))
}

fn record(line: &str) -> Option<Record<'_>> {
    // The task name may hold spaces and dashes: anchor on the CPU column, `) [NNN] `.
    let cpu_open = line.find(") [")? + 1;
    let (task_part, rest) = line.split_at(cpu_open);
    let (tgid_open, _) = task_part.rmatch_indices('(').next()?;
    let task_pid = task_part[..tgid_open].trim();
    let tgid_text = task_part[tgid_open + 1..task_part.len() - 1].trim();
    let (task, pid) = task_pid.rsplit_once('-')?;
    let tgid = if tgid_text.bytes().all(|b| b == b'-') {
        None
    } else {
        Some(tgid_text.parse().ok()?)
    };

    let rest = rest.strip_prefix(" [")?;
    let (cpu, rest) = rest.split_once(']')?;
    let mut columns = rest.trim_start().splitn(2, ' ');
    let _flags = columns.next()?;
    let rest = columns.next()?.trim_start();
    let (ts, rest) = rest.split_once(": ")?;
    let (event, fields) = match rest.split_once(": ") {
        Some((event, fields)) => (event, fields),
        None => (rest.strip_suffix(':').unwrap_or(rest), ""),
    };
    if event.is_empty() || event.contains(' ') {
        return None;
    }
    Some(Record {
        task,
        pid: pid.parse().ok()?,
        tgid,
        cpu: cpu.trim().parse().ok()?,
        ts_ns: timestamp_ns(ts)?,
        event,
        fields,
    })
}

/// `13.867324` (seconds, microseconds) in nanoseconds, exactly.
fn timestamp_ns(text: &str) -> Option<u64> {
    let (secs, frac) = text.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10u64.pow(9 - frac.len() as u32);
    secs.parse::<u64>()
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(frac.parse::<u64>().ok()? * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# tracer: nop\n#\n# entries-in-buffer/entries-written: 5/7   #P:2\n#\n#           TASK-PID       TGID    CPU#  |||||  TIMESTAMP  FUNCTION\n";

    #[test]
    fn reads_the_header_and_an_event_line() {
        let text = format!(
            "{HEADER} rangefault-prob-48      (     48) [001] .....    13.867324: rangefault_fault_enter: va=0x7fd01c200000 off=0x0 handler=huge_pmd flags=USER|VMA_LOCK\n"
        );
        let trace = parse(&text).unwrap();
        assert_eq!((trace.entries_in_buffer, trace.entries_written), (5, 7));
        assert_eq!(trace.lost_events(), 2);
        let record = &trace.records[0];
        assert_eq!(record.task, "rangefault-prob");
        assert_eq!((record.pid, record.tgid, record.cpu), (48, Some(48), 1));
        assert_eq!(record.ts_ns, 13_867_324_000);
        assert_eq!(record.event, "rangefault_fault_enter");
        assert_eq!(record.number("va"), Some(0x7fd0_1c20_0000));
        assert_eq!(record.field("handler"), Some("huge_pmd"));
        assert_eq!(record.number("missing"), None);
    }

    #[test]
    fn task_names_with_spaces_and_dashes_and_unknown_tgids() {
        let text = format!(
            "{HEADER}   my task-x-7      (-------) [000] d..1.     1.000001: tracing_mark_write: B|7|touch\n"
        );
        let trace = parse(&text).unwrap();
        let record = &trace.records[0];
        assert_eq!(
            (record.task, record.pid, record.tgid),
            ("my task-x", 7, None)
        );
        assert_eq!(record.fields, "B|7|touch");
        assert_eq!(record.ts_ns, 1_000_001_000);
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_it() {
        let text = format!("{HEADER}garbage without columns\n");
        match parse(&text) {
            Err(ParseError::Malformed { line, .. }) => assert_eq!(line, 6),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_without_the_header_is_not_a_trace() {
        assert!(matches!(parse(""), Err(ParseError::NoHeader)));
        assert!(matches!(
            parse("hello-1 (1) [000] ..... 1.0: x: y\n"),
            Err(ParseError::NoHeader)
        ));
    }
}
