//! From trace records to faults: each user page-fault exception joined with the driver's handler
//! calls it led to (`huge_fault` fallbacks, then the call that inserted), and the ATrace phase
//! markers joined into slices.

use std::collections::HashMap;

use super::ftrace::Record;

const EXCEPTION: &str = "page_fault_user";
const ENTER: &str = "rangefault_fault_enter";
const EXIT: &str = "rangefault_fault_exit";
const MARKER: &str = "tracing_mark_write";
const PAGE_MASK: u64 = !0xfff;

/// A task: thread `pid` of process `tgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
}

impl Task {
    fn of(record: &Record<'_>) -> Self {
        Self {
            pid: record.pid,
            tgid: record.tgid.unwrap_or(record.pid),
        }
    }
}

/// One call of the driver's `fault` or `huge_fault`.
#[derive(Debug, Clone)]
pub struct HandlerCall {
    pub cpu: u32,
    pub enter_ns: u64,
    pub exit_ns: u64,
    /// `fault`, `huge_pmd` or `huge_pud`.
    pub handler: String,
    pub flags: String,
    pub va: u64,
    pub bar_offset: u64,
    pub strategy: String,
    /// The level the driver counted the fault at: `pte`, `pmd`, `pud`, or `none`.
    pub level: String,
    pub ptes: u64,
    pub pmds: u64,
    pub puds: u64,
    /// The vm_fault_t flags returned, e.g. `NOPAGE` or `FALLBACK`.
    pub result: String,
    /// The driver's own timing of the call (what its LATENCY histograms count).
    pub ns: u64,
}

impl HandlerCall {
    /// The core tries again with smaller entries (or after a retry) for the same fault.
    fn fault_goes_on(&self) -> bool {
        self.result
            .split('|')
            .any(|flag| flag == "FALLBACK" || flag == "RETRY")
    }
}

/// A user page-fault exception (`exceptions:page_fault_user`).
#[derive(Debug, Clone, Copy)]
pub struct Exception {
    pub ts_ns: u64,
    pub cpu: u32,
    pub address: u64,
    pub ip: u64,
    pub error_code: u64,
}

/// One fault on a driver mapping: from the exception (when the trace has it: a fault from
/// inside the kernel, such as get_user_pages, has none) to the last handler call's return.
#[derive(Debug, Clone)]
pub struct Fault {
    pub task: Task,
    pub exception: Option<Exception>,
    pub calls: Vec<HandlerCall>,
}

impl Fault {
    pub fn start_ns(&self) -> u64 {
        self.exception
            .map(|e| e.ts_ns)
            .unwrap_or(self.calls[0].enter_ns)
    }

    pub fn end_ns(&self) -> u64 {
        self.calls.last().map_or(0, |call| call.exit_ns)
    }

    /// The call that ended the fault: its level and result are the fault's.
    pub fn last(&self) -> &HandlerCall {
        self.calls.last().expect("a fault has at least one call")
    }

    /// From the exception to the last handler's return, where the exception is known.
    pub fn end_to_end_ns(&self) -> Option<u64> {
        let exception = self.exception?;
        Some(self.end_ns().saturating_sub(exception.ts_ns))
    }
}

/// A scenario phase: an ATrace `B|pid|name` ... `E|pid` pair on one thread.
#[derive(Debug, Clone)]
pub struct Phase {
    pub task: Task,
    pub name: String,
    pub begin_ns: u64,
    pub end_ns: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Story {
    pub faults: Vec<Fault>,
    pub phases: Vec<Phase>,
    /// User page-fault exceptions that did not reach the driver (anonymous memory, files).
    pub other_exceptions: u64,
    /// Handler calls the trace holds only half of (cut at the buffer's start or end) or that
    /// returned out of order.
    pub incomplete_calls: u64,
    /// Task name by pid, as the trace printed it.
    pub task_names: HashMap<u32, String>,
}

/// What a thread is in the middle of.
#[derive(Default)]
struct ThreadState {
    exception: Option<Exception>,
    open: Option<Fault>,
    /// The open handler call: its enter stamp, handler kind and fault flags.
    entered: Option<(u64, String, String)>,
    phases: Vec<usize>,
}

pub fn story(records: &[Record<'_>]) -> Story {
    let mut story = Story::default();
    let mut threads: HashMap<u32, ThreadState> = HashMap::new();
    for record in records {
        let task = Task::of(record);
        story
            .task_names
            .entry(task.pid)
            .or_insert_with(|| record.task.to_owned());
        let thread = threads.entry(task.pid).or_default();
        match record.event {
            EXCEPTION => {
                if let Some(fault) = thread.open.take() {
                    story.faults.push(fault);
                }
                if thread.exception.take().is_some() {
                    story.other_exceptions += 1;
                }
                thread.exception = Some(Exception {
                    ts_ns: record.ts_ns,
                    cpu: record.cpu,
                    address: record.number("address").unwrap_or(0),
                    ip: record.number("ip").unwrap_or(0),
                    error_code: record.number("error_code").unwrap_or(0),
                });
            }
            ENTER => {
                if thread.entered.is_some() {
                    story.incomplete_calls += 1;
                }
                thread.entered = Some((
                    record.ts_ns,
                    record.field("handler").unwrap_or("?").to_owned(),
                    record.field("flags").unwrap_or("").to_owned(),
                ));
            }
            EXIT => {
                let ns = record.number("ns").unwrap_or(0);
                let (enter_ns, handler, flags) = match thread.entered.take() {
                    Some((ts, handler, flags)) => (ts, handler, flags),
                    None => {
                        story.incomplete_calls += 1;
                        (record.ts_ns.saturating_sub(ns), "?".into(), String::new())
                    }
                };
                let call = HandlerCall {
                    cpu: record.cpu,
                    enter_ns,
                    exit_ns: record.ts_ns,
                    handler,
                    flags,
                    va: record.number("va").unwrap_or(0),
                    bar_offset: record.number("off").unwrap_or(0),
                    strategy: record.field("strategy").unwrap_or("?").to_owned(),
                    level: record.field("level").unwrap_or("?").to_owned(),
                    ptes: record.number("ptes").unwrap_or(0),
                    pmds: record.number("pmds").unwrap_or(0),
                    puds: record.number("puds").unwrap_or(0),
                    result: record.field("result").unwrap_or("?").to_owned(),
                    ns,
                };
                if thread.open.is_none() {
                    // The exception that led here, if it was for this page.
                    let exception = thread.exception.take();
                    let ours = exception.filter(|e| e.address & PAGE_MASK == call.va & PAGE_MASK);
                    story.other_exceptions += u64::from(exception.is_some() && ours.is_none());
                    thread.open = Some(Fault {
                        task,
                        exception: ours,
                        calls: Vec::new(),
                    });
                }
                let open = thread.open.as_mut().expect("opened above");
                let goes_on = call.fault_goes_on();
                open.calls.push(call);
                if !goes_on {
                    story.faults.extend(thread.open.take());
                }
            }
            MARKER => marker(&mut story, thread, task, record),
            _ => {}
        }
    }
    for thread in threads.into_values() {
        story.faults.extend(thread.open);
        story.other_exceptions += u64::from(thread.exception.is_some());
        story.incomplete_calls += u64::from(thread.entered.is_some());
    }
    story.faults.sort_by_key(Fault::start_ns);
    story
}

/// `B|pid|name` opens a phase on the writing thread, `E|pid` closes its innermost one.
fn marker(story: &mut Story, thread: &mut ThreadState, task: Task, record: &Record<'_>) {
    let mut parts = record.fields.trim_end().splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("B"), Some(_), Some(name)) => {
            thread.phases.push(story.phases.len());
            story.phases.push(Phase {
                task,
                name: name.to_owned(),
                begin_ns: record.ts_ns,
                end_ns: None,
            });
        }
        (Some("E"), _, _) => {
            if let Some(index) = thread.phases.pop() {
                story.phases[index].end_ns = Some(record.ts_ns);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::ftrace::parse;
    use super::*;

    fn trace(lines: &[&str]) -> String {
        let mut text = String::from("# entries-in-buffer/entries-written: 1/1   #P:2\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    const EXC: &str = " probe-9 (      9) [001] d....    1.000010: page_fault_user: address=0x7f0000000240 ip=0x401000 error_code=0x14";
    const PMD_ENTER: &str = " probe-9 (      9) [001] .....    1.000020: rangefault_fault_enter: va=0x7f0000000000 off=0x0 handler=huge_pmd flags=USER|VMA_LOCK";
    const PMD_FALLBACK: &str = " probe-9 (      9) [001] .....    1.000025: rangefault_fault_exit: va=0x7f0000000000 off=0x0 strategy=range level=none ptes=0 pmds=0 puds=0 result=FALLBACK ns=4000";
    const PTE_ENTER: &str = " probe-9 (      9) [001] .....    1.000030: rangefault_fault_enter: va=0x7f0000000000 off=0x0 handler=fault flags=USER";
    const PTE_EXIT: &str = " probe-9 (      9) [001] .....    1.000050: rangefault_fault_exit: va=0x7f0000000000 off=0x0 strategy=range level=pte ptes=16 pmds=0 puds=0 result=NOPAGE ns=19000";

    #[test]
    fn a_fallback_chain_is_one_fault_from_its_exception() {
        let text = trace(&[EXC, PMD_ENTER, PMD_FALLBACK, PTE_ENTER, PTE_EXIT]);
        let story = story(&parse(&text).unwrap().records);
        assert_eq!(story.faults.len(), 1);
        let fault = &story.faults[0];
        assert_eq!(fault.calls.len(), 2);
        assert_eq!(fault.last().level, "pte");
        assert_eq!(fault.last().ptes, 16);
        assert_eq!(fault.calls[0].handler, "huge_pmd");
        assert_eq!(fault.start_ns(), 1_000_010_000);
        assert_eq!(fault.end_to_end_ns(), Some(40_000));
        assert_eq!((story.other_exceptions, story.incomplete_calls), (0, 0));
    }

    #[test]
    fn exceptions_elsewhere_and_kernel_side_faults_are_told_apart() {
        let other = " probe-9 (      9) [001] d....    1.000001: page_fault_user: address=0x5000 ip=0x401000 error_code=0x6";
        // An exception for another page, then a handler call without one (e.g. from GUP).
        let text = trace(&[other, EXC, other, PTE_ENTER, PTE_EXIT]);
        let story = story(&parse(&text).unwrap().records);
        assert_eq!(story.faults.len(), 1);
        assert!(story.faults[0].exception.is_none());
        assert_eq!(story.other_exceptions, 3);
    }

    #[test]
    fn a_call_cut_at_the_buffer_start_still_counts_with_its_own_timing() {
        let text = trace(&[PTE_EXIT]);
        let story = story(&parse(&text).unwrap().records);
        assert_eq!(story.faults.len(), 1);
        assert_eq!(story.incomplete_calls, 1);
        assert_eq!(story.faults[0].calls[0].enter_ns, 1_000_050_000 - 19_000);
    }

    #[test]
    fn markers_become_nested_phases() {
        let text = trace(&[
            " init-1 (      1) [000] ...2.    1.0: tracing_mark_write: B|1|scenario touch-all",
            " probe-9 (      9) [001] ...2.    1.1: tracing_mark_write: B|9|touch",
            " probe-9 (      9) [001] ...2.    1.2: tracing_mark_write: E|9",
            " init-1 (      1) [000] ...2.    1.3: tracing_mark_write: E|1",
        ]);
        let story = story(&parse(&text).unwrap().records);
        let phases: Vec<_> = story
            .phases
            .iter()
            .map(|p| (p.name.as_str(), p.task.pid, p.begin_ns, p.end_ns))
            .collect();
        assert_eq!(
            phases,
            [
                ("scenario touch-all", 1, 1_000_000_000, Some(1_300_000_000)),
                ("touch", 9, 1_100_000_000, Some(1_200_000_000)),
            ]
        );
    }
}
